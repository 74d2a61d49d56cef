/* Replay driver: runs one harness (linked beside it) without libFuzzer, so that make check
 * builds and runs every harness with the normal compiler. With no arguments: over the target's
 * seeds (written to a scratch folder) and, from each seed, its truncations and a few
 * deterministic byte flips. With arguments: over those files, or the files in those folders
 * (a crash file from scripts/fuzz replays here too). A broken invariant aborts: the test fails. */
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static long runs;

static void run(const uint8_t *p, size_t n)
{
	/* a copy of exactly n bytes: reads past the input show under a sanitizer */
	uint8_t *c = malloc(n ? n : 1);
	if (!c)
		abort();
	memcpy(c, p, n);
	LLVMFuzzerTestOneInput(c, n);
	free(c);
	runs++;
}

/* The input and what a careless sender or a bad disk makes of it. */
static void run_variants(const uint8_t *p, size_t n)
{
	uint32_t rs = 0x2545f491u ^ (uint32_t)n;
	uint8_t *c = malloc(n ? n : 1);
	if (!c)
		abort();
	size_t cuts[] = {0, 1, n / 3, n / 2, n > 1 ? n - 1 : 0};
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
		if (cuts[i] < n)
			run(p, cuts[i]);
	for (int k = 0; k < 8 && n > 0; k++) {
		memcpy(c, p, n);
		for (int j = 0; j <= k % 3; j++) {
			rs ^= rs << 13, rs ^= rs >> 17, rs ^= rs << 5;
			size_t at = rs % n;
			c[at] = (uint8_t)(k & 1 ? c[at] ^ (1u << (rs >> 29)) : rs >> 24);
		}
		run(c, n);
	}
	free(c);
}

static int run_file(const char *path, int variants)
{
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	int accepted = fuzz_accepted;
	FILE *f = fopen(path, "rb");
	uint8_t *b = NULL;
	size_t n = 0, cap = 0, got;
	if (!f) {
		fprintf(stderr, "replay %s: cannot open %s\n", fuzz_name, path);
		return -1;
	}
	do {
		if (n == cap && !(b = realloc(b, cap = cap ? 2 * cap : 4096)))
			abort();
		got = fread(b + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	run(b, n);
	if (variants && !strncmp(base, "ok-", 3) && fuzz_accepted == accepted) {
		fprintf(stderr, "replay %s: seed %s was refused\n", fuzz_name, path);
		free(b);
		return -1;
	}
	if (variants)
		run_variants(b, n);
	free(b);
	return 0;
}

static int run_path(const char *path, int variants)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		return run_file(path, variants);
	DIR *dp = opendir(path);
	struct dirent *e;
	int rc = 0;
	if (!dp)
		return -1;
	while (rc == 0 && (e = readdir(dp))) {
		char p[4096];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", path, e->d_name);
		rc = run_file(p, variants);
	}
	closedir(dp);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: %s [FILE|DIR...]\nRuns the %s fuzz harness over FILEs (or the files in "
		       "DIRs); with none, over its seeds and variants of them.\n", argv[0], fuzz_name);
		return 0;
	}
	for (int i = 1; i < argc; i++)
		if (run_path(argv[i], 0) != 0)
			return 1;
	if (argc == 1) {
		const char *srcdir = getenv("srcdir") ? getenv("srcdir") : ".";
		char dir[4096]; /* a copy: the harness reuses fuzz_path's buffers */
		snprintf(dir, sizeof dir, "%s", fuzz_path("seeds"));
		fuzz_mkdirs(dir);
		int n = fuzz_seeds(fuzz_name, dir, srcdir);
		if (n <= 0) {
			fprintf(stderr, "replay %s: no seeds written\n", fuzz_name);
			return 1;
		}
		if (run_path(dir, 1) != 0)
			return 1;
		/* and the reproducers of fixed findings: tests/fuzz/findings/TARGET-* */
		char fd[4096], p[8200];
		snprintf(fd, sizeof fd, "%s/tests/fuzz/findings", srcdir);
		DIR *dp = opendir(fd);
		struct dirent *e;
		size_t nl = strlen(fuzz_name);
		while (dp && (e = readdir(dp)))
			if (!strncmp(e->d_name, fuzz_name, nl) && e->d_name[nl] == '-') {
				snprintf(p, sizeof p, "%s/%s", fd, e->d_name);
				if (run_file(p, 0) != 0) {
					closedir(dp);
					return 1;
				}
			}
		if (dp)
			closedir(dp);
	}
	printf("replay %s: %ld inputs, no findings\n", fuzz_name, runs);
	return 0;
}
