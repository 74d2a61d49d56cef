# tests/fuzz/: libFuzzer harnesses, one target each (fuzz_TARGET.c), their seed generator and the
# replay driver. make check runs every harness over its seeds with the normal compiler
# (tests/fuzz/replay_TARGET); scripts/fuzz configures a clang tree in build-fuzz/ with
# -fsanitize=fuzzer-no-link,address,undefined and makes the libFuzzer binaries
# (tests/fuzz/fuzz_TARGET, linked with FUZZ_LDFLAGS) and tests/fuzz/fuzz-seeds, on demand only.
fuzz_ldflags = -fsanitize=fuzzer
FUZZ_COMMON = tests/fuzz/fuzz.h tests/fuzz/util.c
REPLAY_COMMON = tests/fuzz/replay.c tests/fuzz/seeds.c $(FUZZ_COMMON)

check_PROGRAMS += tests/fuzz/replay_wire tests/fuzz/replay_reader tests/fuzz/replay_hello \
	tests/fuzz/replay_chain tests/fuzz/replay_idx tests/fuzz/replay_cifar tests/fuzz/replay_csv \
	tests/fuzz/replay_images tests/fuzz/replay_ckpt
tests_fuzz_replay_wire_SOURCES = tests/fuzz/fuzz_wire.c $(REPLAY_COMMON)
tests_fuzz_replay_wire_LDADD = $(NET_LIBS)
tests_fuzz_replay_reader_SOURCES = tests/fuzz/fuzz_reader.c $(REPLAY_COMMON)
tests_fuzz_replay_reader_LDADD = $(NET_LIBS)
tests_fuzz_replay_hello_SOURCES = tests/fuzz/fuzz_hello.c $(REPLAY_COMMON)
tests_fuzz_replay_hello_LDADD = $(NET_LIBS)
tests_fuzz_replay_chain_SOURCES = tests/fuzz/fuzz_chain.c $(REPLAY_COMMON)
tests_fuzz_replay_chain_LDADD = $(NET_LIBS)
tests_fuzz_replay_idx_SOURCES = tests/fuzz/fuzz_idx.c $(REPLAY_COMMON)
tests_fuzz_replay_idx_LDADD = $(NET_LIBS)
tests_fuzz_replay_cifar_SOURCES = tests/fuzz/fuzz_cifar.c $(REPLAY_COMMON)
tests_fuzz_replay_cifar_LDADD = $(NET_LIBS)
tests_fuzz_replay_csv_SOURCES = tests/fuzz/fuzz_csv.c $(REPLAY_COMMON)
tests_fuzz_replay_csv_LDADD = $(NET_LIBS)
tests_fuzz_replay_images_SOURCES = tests/fuzz/fuzz_images.c $(REPLAY_COMMON)
tests_fuzz_replay_images_LDADD = $(NET_LIBS)
tests_fuzz_replay_ckpt_SOURCES = tests/fuzz/fuzz_ckpt.c $(REPLAY_COMMON)
tests_fuzz_replay_ckpt_LDADD = $(NET_LIBS)

fuzz_bins = tests/fuzz/fuzz_wire tests/fuzz/fuzz_reader tests/fuzz/fuzz_hello \
	tests/fuzz/fuzz_chain tests/fuzz/fuzz_idx tests/fuzz/fuzz_cifar tests/fuzz/fuzz_csv \
	tests/fuzz/fuzz_images tests/fuzz/fuzz_ckpt
EXTRA_PROGRAMS = $(fuzz_bins) tests/fuzz/fuzz-seeds
CLEANFILES += $(EXTRA_PROGRAMS)
tests_fuzz_fuzz_wire_SOURCES = tests/fuzz/fuzz_wire.c $(FUZZ_COMMON)
tests_fuzz_fuzz_wire_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_wire_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_reader_SOURCES = tests/fuzz/fuzz_reader.c $(FUZZ_COMMON)
tests_fuzz_fuzz_reader_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_reader_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_hello_SOURCES = tests/fuzz/fuzz_hello.c $(FUZZ_COMMON)
tests_fuzz_fuzz_hello_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_hello_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_chain_SOURCES = tests/fuzz/fuzz_chain.c $(FUZZ_COMMON)
tests_fuzz_fuzz_chain_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_chain_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_idx_SOURCES = tests/fuzz/fuzz_idx.c $(FUZZ_COMMON)
tests_fuzz_fuzz_idx_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_idx_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_cifar_SOURCES = tests/fuzz/fuzz_cifar.c $(FUZZ_COMMON)
tests_fuzz_fuzz_cifar_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_cifar_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_csv_SOURCES = tests/fuzz/fuzz_csv.c $(FUZZ_COMMON)
tests_fuzz_fuzz_csv_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_csv_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_images_SOURCES = tests/fuzz/fuzz_images.c $(FUZZ_COMMON)
tests_fuzz_fuzz_images_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_images_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_ckpt_SOURCES = tests/fuzz/fuzz_ckpt.c $(FUZZ_COMMON)
tests_fuzz_fuzz_ckpt_LDADD = $(NET_LIBS)
tests_fuzz_fuzz_ckpt_LDFLAGS = $(AM_LDFLAGS) $(fuzz_ldflags)
tests_fuzz_fuzz_seeds_SOURCES = tests/fuzz/seeds_main.c tests/fuzz/seeds.c $(FUZZ_COMMON)
tests_fuzz_fuzz_seeds_LDADD = $(NET_LIBS)
# scripts/fuzz builds and runs the above; the reproducers of fixed findings in tests/fuzz/findings/
# are replayed by make check.
dist_noinst_SCRIPTS += scripts/fuzz
EXTRA_DIST += tests/fuzz/findings/README tests/fuzz/findings/wire-batch-dim-over-int-max \
	tests/fuzz/findings/wire-batch-negative-h-n1 tests/fuzz/findings/wire-crash-8f851fe9
