/* Helpers shared by the dataset suites: a temp folder per test, files in it, error checks. */
#ifndef NK_DS_TEST_H
#define NK_DS_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw; include this header first */
#endif
#include <criterion/criterion.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "data/ds.h"
#include "tests/nk_test.h"

static char ds_tmp[PATH_MAX];

static inline void ds_test_setup(void)
{
	cr_assert(nk_test_tmpdir(ds_tmp, sizeof ds_tmp), "cannot create a temp dir");
}

static inline int ds_test_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

static inline void ds_test_teardown(void)
{
	if (ds_tmp[0])
		nftw(ds_tmp, ds_test_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* Path of a name (printf-style) inside the temp dir; eight rotating static buffers. */
static inline const char *__attribute__((format(printf, 1, 2))) tpath(const char *fmt, ...)
{
	static char buf[8][2 * PATH_MAX + 2];
	static int slot;
	char *p = buf[slot++ % 8], name[PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	snprintf(p, sizeof buf[0], "%s/%s", ds_tmp, name);
	return p;
}

/* mkdir -p of a folder inside the temp dir; returns its path. */
static inline const char *tmkdir(const char *name)
{
	char p[2 * PATH_MAX + 2];
	const char *full = tpath("%s", name);

	snprintf(p, sizeof p, "%s", full);
	for (char *s = p + strlen(ds_tmp) + 1; *s; s++)
		if (*s == '/') {
			*s = '\0';
			mkdir(p, 0755);
			*s = '/';
		}
	mkdir(p, 0755);
	return full;
}

static inline void twrite(const char *path, const void *data, size_t len)
{
	cr_assert_eq(nk_test_write(path, data, len), 0, "cannot write %s", path);
}

/* err is one line holding every word of the NULL-terminated list. */
static inline void check_words(const char *err, va_list ap)
{
	const char *word;

	cr_assert_null(strchr(err, '\n'), "one line: %s", err);
	while ((word = va_arg(ap, const char *)))
		cr_assert(strstr(err, word), "\"%s\" not in: %s", word, err);
}

#endif
