# optim/: optimizer interface, SGD, MCMC.
libnecklace_a_SOURCES += optim/optim.h optim/optim.c optim/sgd.c

if HAVE_CRITERION
check_PROGRAMS += tests/test_sgd
endif
tests_test_sgd_SOURCES = tests/test_sgd.c
tests_test_sgd_LDADD = $(TEST_LIBS)
