# data/: dataset readers and the batcher; data/chains/: shipped example chains.
libnecklace_a_SOURCES += data/ds.h data/idx.c data/batcher.c
nobase_dist_pkgdata_DATA += data/chains/seed-1.json data/chains/seed-1-mcmc.json

if HAVE_CRITERION
check_PROGRAMS += tests/test_idx tests/test_batcher
endif
tests_test_idx_SOURCES = tests/test_idx.c
tests_test_idx_LDADD = $(TEST_LIBS)
tests_test_batcher_SOURCES = tests/test_batcher.c
tests_test_batcher_LDADD = $(TEST_LIBS)
nobase_dist_pkgdata_DATA += data/chains/fmnist-5.json data/chains/fmnist-5-sgd.json
