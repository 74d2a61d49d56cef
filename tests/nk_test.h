/* Helpers shared by the Criterion suites. */
#ifndef NK_TEST_H
#define NK_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* A fresh temporary directory for this test process; path written into buf (PATH_MAX). */
static inline const char *nk_test_tmpdir(char *buf, size_t len)
{
	const char *base = getenv("TMPDIR");
	snprintf(buf, len, "%s/necklace-test-XXXXXX", base ? base : "/tmp");
	return mkdtemp(buf);
}

/* Write len bytes to path; returns 0 on success. */
static inline int nk_test_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	size_t n = fwrite(data, 1, len, f);
	return (fclose(f) == 0 && n == len) ? 0 : -1;
}

/* Lets this test process reserve at most `room` bytes beyond what it has mapped now (Criterion
 * runs each test in its own process, so the limit ends with the test); 0, or -1 when it cannot
 * be set or measured. */
static inline int nk_test_limit_address_space(size_t room)
{
	unsigned long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	int ok = fscanf(f, "%lu", &pages) == 1;
	fclose(f);
	struct rlimit rl;
	rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + room;
	return ok && setrlimit(RLIMIT_AS, &rl) == 0 ? 0 : -1;
}

#endif
