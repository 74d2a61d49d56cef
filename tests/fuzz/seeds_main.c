/* fuzz-seeds: write the seed corpora of the fuzz targets (tests/fuzz/seeds.c) for scripts/fuzz. */
#include "tests/fuzz/fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

const char fuzz_name[] = "seeds";

static void usage(FILE *f)
{
	fprintf(f, "usage: fuzz-seeds [--srcdir DIR] OUTDIR [TARGET...]\n"
		   "Writes the seeds of each TARGET (default: all) into OUTDIR/TARGET/.\n"
		   "DIR is the source tree (default: $srcdir, else .): its data/chains/*.json seed "
		   "the chain target.\nTargets:");
	for (int i = 0; fuzz_targets[i]; i++)
		fprintf(f, " %s", fuzz_targets[i]);
	fprintf(f, "\n");
}

int main(int argc, char **argv)
{
	const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
	int i = 1;
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc > 2 && !strcmp(argv[1], "--srcdir")) {
		srcdir = argv[2];
		i = 3;
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	const char *out = argv[i++];
	const char *const *names = i < argc ? (const char *const *)argv + i : fuzz_targets;
	for (; *names; names++) { /* argv[argc] is NULL too */
		char dir[4096];
		snprintf(dir, sizeof dir, "%s/%s", out, *names);
		if (nk_mkdirs(dir) != 0) {
			fprintf(stderr, "fuzz-seeds: cannot make %s: %s\n", dir, strerror(errno));
			return 1;
		}
		int k = fuzz_seeds(*names, dir, srcdir);
		if (k < 0) {
			fprintf(stderr, "fuzz-seeds: %s: unknown target or seeds not written\n", *names);
			return 1;
		}
		printf("fuzz-seeds: %s: %d seeds in %s\n", *names, k, dir);
	}
	return 0;
}
