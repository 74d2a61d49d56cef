# scripts/: set-up, demo, test and benchmark entry points.
dist_noinst_SCRIPTS += scripts/install-deps scripts/check scripts/demo scripts/bench scripts/exit-sweep scripts/soak
EXTRA_DIST += .ci/run scripts/lsan.supp
