/* logfmt writer: builds one line in a fixed buffer and writes it in one call, so lines written by
 * several processes to one terminal never interleave mid-line. */
#include "src/logfmt.h"
#include "src/nk.h"

#include <stdarg.h>
#include <string.h>



static void lf_printf(struct logfmt *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void lf_printf(struct logfmt *l, const char *fmt, ...)
{
	if (l->len >= sizeof l->buf - 2)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(l->buf + l->len, sizeof l->buf - 1 - l->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len = NK_MIN(l->len + (size_t)n, sizeof l->buf - 2);
}

void lf_begin(struct logfmt *l)
{
	l->len = 0;
	l->buf[0] = '\0';
}

static void lf_key(struct logfmt *l, const char *key)
{
	lf_printf(l, "%s%s=", l->len ? " " : "", key);
}

void lf_str(struct logfmt *l, const char *key, const char *val)
{
	lf_key(l, key);
	if (val[0] && !strpbrk(val, " \t\"=\\")) {
		lf_printf(l, "%s", val);
		return;
	}
	lf_printf(l, "\"");
	for (const char *p = val; *p; p++) {
		if (*p == '"' || *p == '\\')
			lf_printf(l, "\\%c", *p);
		else if (*p == '\n')
			lf_printf(l, "\\n");
		else
			lf_printf(l, "%c", *p);
	}
	lf_printf(l, "\"");
}

void lf_int(struct logfmt *l, const char *key, long long val)
{
	lf_key(l, key);
	lf_printf(l, "%lld", val);
}

void lf_num(struct logfmt *l, const char *key, double val, int prec)
{
	lf_key(l, key);
	lf_printf(l, "%.*f", prec, val);
}

void lf_gen(struct logfmt *l, const char *key, double val)
{
	lf_key(l, key);
	lf_printf(l, "%.4g", val);
}

int lf_write(struct logfmt *l, FILE *a, FILE *b)
{
	l->buf[l->len] = '\n';
	int rc = 0;
	FILE *fs[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		if (!fs[i])
			continue;
		if (fwrite(l->buf, 1, l->len + 1, fs[i]) != l->len + 1 || fflush(fs[i]) != 0)
			rc = -1;
	}
	l->buf[l->len] = '\0';
	return rc;
}
