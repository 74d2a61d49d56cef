# optim/: optimizer interface, SGD, MCMC.
libnecklace_a_SOURCES += optim/optim.h optim/optim.c optim/sgd.c optim/sampler.h optim/sampler.c \
	optim/select.h optim/select.c optim/mcmc.h optim/mcmc.c

if HAVE_CRITERION
check_PROGRAMS += tests/test_sgd
endif
tests_test_sgd_SOURCES = tests/test_sgd.c
tests_test_sgd_LDADD = $(TEST_LIBS)

if HAVE_CRITERION
check_PROGRAMS += tests/test_sampler tests/test_mcmc
endif
tests_test_sampler_SOURCES = tests/test_sampler.c
tests_test_sampler_LDADD = $(TEST_LIBS)
tests_test_mcmc_SOURCES = tests/test_mcmc.c
tests_test_mcmc_LDADD = $(TEST_LIBS)
