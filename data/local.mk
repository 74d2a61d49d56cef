# data/: dataset readers and the batcher; data/chains/: shipped example chains.
libnecklace_a_SOURCES += data/ds.h data/ds_int.h data/ds.c data/idx.c data/cifar.c data/images.c \
	data/resize.c data/csv.c data/batcher.c
# stb_image decodes image folders (STB_LIBS from configure).
NK_LIBS += $(STB_LIBS)
nobase_dist_pkgdata_DATA += data/chains/seed-1.json data/chains/seed-1-mcmc.json \
	data/chains/seed-1-mcmc-research.json

if HAVE_CRITERION
check_PROGRAMS += tests/test_idx tests/test_batcher tests/test_cifar tests/test_images \
	tests/test_csv tests/test_formats
endif
tests_test_idx_SOURCES = tests/test_idx.c
tests_test_idx_LDADD = $(TEST_LIBS)
tests_test_batcher_SOURCES = tests/test_batcher.c
tests_test_batcher_LDADD = $(TEST_LIBS)
tests_test_cifar_SOURCES = tests/test_cifar.c
tests_test_cifar_LDADD = $(TEST_LIBS)
tests_test_images_SOURCES = tests/test_images.c
tests_test_images_LDADD = $(TEST_LIBS)
tests_test_csv_SOURCES = tests/test_csv.c
tests_test_csv_LDADD = $(TEST_LIBS)
# test_formats runs the built necklace-train ($NK_BUILDDIR).
tests_test_formats_SOURCES = tests/test_formats.c
tests_test_formats_LDADD = $(TEST_LIBS)
EXTRA_DIST += tests/ds_test.h
nobase_dist_pkgdata_DATA += data/chains/fmnist-5.json data/chains/fmnist-5-sgd.json \
	data/chains/research-5.json
nobase_dist_pkgdata_DATA += data/chains/cifar-5.json data/chains/images-2.json
