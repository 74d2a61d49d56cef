# tests/: Criterion suites, one program per module; listed by each folder's local.mk.
EXTRA_DIST += tests/nk_test.h
if HAVE_CRITERION
TESTS += $(check_PROGRAMS)
else
check-local:
	@echo "make check needs Criterion: install Debian package libcriterion-dev (or run scripts/install-deps)" >&2; exit 1
endif
