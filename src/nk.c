/* Error names, error buffers, the clock and aligned allocation. */
#include "src/nk.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

const char *nk_strerror(int err)
{
	switch (err) {
	case NK_OK: return "success";
	case NK_ENOMEM: return "out of memory";
	case NK_EINVAL: return "invalid argument";
	case NK_EIO: return "input/output error";
	case NK_EFORMAT: return "malformed input";
	case NK_ERANGE: return "value out of range";
	case NK_ENOENT: return "not found";
	case NK_ESHAPE: return "shape mismatch";
	case NK_EUNSUP: return "not supported";
	case NK_ESTATE: return "invalid state";
	}
	return "unknown error";
}

int nk_errf(char *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, NK_ERR_LEN, fmt, ap);
		va_end(ap);
	}
	return code;
}

int nk_mkdirs(const char *dir)
{
	char p[4096];
	if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *s = p + 1;; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST)
			return -1;
		if (!(*s = c))
			return 0;
	}
}

double nk_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void *nk_alloc(size_t bytes)
{
	void *p = NULL;
	if (bytes == 0)
		bytes = 64;
	bytes = (bytes + 63) & ~(size_t)63;
	if (posix_memalign(&p, 64, bytes) != 0)
		return NULL;
	return p;
}

float *nk_floats(size_t n)
{
	float *p = nk_alloc(n * sizeof(float));
	if (p)
		memset(p, 0, n * sizeof(float));
	return p;
}
