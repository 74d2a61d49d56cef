# stages/: the stage runtime: trainer (model + optimizer + logs), wire, links, stage loop.
libnecklace_a_SOURCES += stages/trainer.h stages/trainer.c stages/exit.h stages/exit.c

# The network runtime is its own library so that only what needs libevent and protobuf-c gets
# their flags and libraries. stages/necklace.pb-c.[ch] are generated into the build tree.
noinst_LIBRARIES += libnecklace_net.a
libnecklace_net_a_SOURCES = stages/wire.h stages/wire.c stages/inbox.h stages/inbox.c \
	stages/link.h stages/link_int.h stages/link.c stages/net.c stages/stage.h stages/stage.c \
	stages/stage_int.h stages/source.c stages/predict.c stages/ckpt.h stages/ckpt.c
nodist_libnecklace_net_a_SOURCES = stages/necklace.pb-c.c stages/necklace.pb-c.h
libnecklace_net_a_CPPFLAGS = $(AM_CPPFLAGS) $(LIBEVENT_CFLAGS) $(PROTOBUF_C_CFLAGS)
NET_LIBS = libnecklace_net.a $(NK_LIBS) $(LIBEVENT_LIBS) $(PROTOBUF_C_LIBS)
BUILT_SOURCES = stages/necklace.pb-c.c stages/necklace.pb-c.h
CLEANFILES += stages/necklace.pb-c.c stages/necklace.pb-c.h
EXTRA_DIST += stages/necklace.proto
# BUILT_SOURCES are made first only by make all/check/install: a single target (make
# necklace-stage, make tests/test_wire) needs the header as a prerequisite of its includers.
stages/libnecklace_net_a-wire.$(OBJEXT) stages/libnecklace_net_a-ckpt.$(OBJEXT): stages/necklace.pb-c.h
stages/necklace.pb-c.h: stages/necklace.pb-c.c
	@test -f $@ || rm -f stages/necklace.pb-c.c
	@test -f $@ || $(MAKE) $(AM_MAKEFLAGS) stages/necklace.pb-c.c
stages/necklace.pb-c.c: $(srcdir)/stages/necklace.proto
	@$(MKDIR_P) stages
	$(AM_V_GEN)$(PROTOC_C) -I$(srcdir) --c_out=. $(srcdir)/stages/necklace.proto

if HAVE_CRITERION
check_PROGRAMS += tests/test_wire tests/test_link tests/test_chain_run
endif
tests_test_wire_SOURCES = tests/test_wire.c
tests_test_wire_LDADD = $(NET_LIBS) $(CRITERION_LIBS)
tests_test_link_SOURCES = tests/test_link.c
tests_test_link_LDADD = $(NET_LIBS) $(CRITERION_LIBS)
tests_test_chain_run_SOURCES = tests/test_chain_run.c
tests_test_chain_run_LDADD = $(NET_LIBS) $(CRITERION_LIBS)
EXTRA_DIST += tests/net_test.h
# tests/test_chain_run starts the built necklace-stage programs.
AM_TESTS_ENVIRONMENT += NK_BUILDDIR='$(abs_top_builddir)'; export NK_BUILDDIR;

if HAVE_CRITERION
check_PROGRAMS += tests/test_exit tests/test_ckpt tests/test_predict tests/test_depth \
	tests/test_hostile tests/test_startup
endif
tests_test_exit_SOURCES = tests/test_exit.c
tests_test_exit_LDADD = $(TEST_LIBS)
tests_test_ckpt_SOURCES = tests/test_ckpt.c
tests_test_ckpt_LDADD = $(NET_LIBS) $(CRITERION_LIBS)
tests_test_predict_SOURCES = tests/test_predict.c
tests_test_predict_LDADD = $(NET_LIBS) $(CRITERION_LIBS)
tests_test_depth_SOURCES = tests/test_depth.c
tests_test_depth_LDADD = $(NET_LIBS) $(CRITERION_LIBS)
tests_test_hostile_SOURCES = tests/test_hostile.c
tests_test_hostile_LDADD = $(NET_LIBS) $(CRITERION_LIBS)
tests_test_startup_SOURCES = tests/test_startup.c
tests_test_startup_LDADD = $(NET_LIBS) $(CRITERION_LIBS)
EXTRA_DIST += tests/run_test.h

# A hostile peer for replaying the robustness cases against a running chain (not installed).
noinst_PROGRAMS = tests/necklace-attack
tests_necklace_attack_SOURCES = tests/attack.c
tests_necklace_attack_LDADD = $(NET_LIBS)
EXTRA_DIST += tests/attack.h
