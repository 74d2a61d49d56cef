# src/: core (errors, rng, logfmt, chain file) and the programs.
libnecklace_a_SOURCES += src/nk.h src/nk.c src/cores.h src/cores.c src/rng.h src/rng.c src/logfmt.h src/logfmt.c \
	src/chain.h src/chain_int.h src/chain.c src/chain_opts.c src/chain_data.c

if HAVE_CRITERION
check_PROGRAMS += tests/test_chain tests/test_core
endif
tests_test_chain_SOURCES = tests/test_chain.c
tests_test_chain_LDADD = $(TEST_LIBS)
tests_test_core_SOURCES = tests/test_core.c
tests_test_core_LDADD = $(TEST_LIBS)

bin_PROGRAMS += necklace-train necklace-bench
necklace_train_SOURCES = src/train.c
necklace_bench_SOURCES = src/bench.c

# The chain runtime's programs and the link benchmark (libevent, protobuf-c: NET_LIBS).
bin_PROGRAMS += necklace-stage necklace-run
necklace_stage_SOURCES = src/stage.c
necklace_stage_LDADD = $(NET_LIBS)
necklace_run_SOURCES = src/run.c
necklace_run_LDADD = $(NET_LIBS)
necklace_bench_SOURCES += src/bench.h src/bench_link.c
necklace_bench_LDADD = $(NET_LIBS)
