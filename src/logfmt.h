/* logfmt lines (key=value pairs, one event a line): the user's window on every stage. */
#ifndef NK_LOGFMT_H
#define NK_LOGFMT_H

#include <stdio.h>

struct logfmt {
	char buf[4096];
	size_t len;
};

void lf_begin(struct logfmt *l);
void lf_str(struct logfmt *l, const char *key, const char *val); /* quoted when it has spaces or quotes */
void lf_int(struct logfmt *l, const char *key, long long val);
void lf_num(struct logfmt *l, const char *key, double val, int prec); /* fixed, prec decimals */
void lf_gen(struct logfmt *l, const char *key, double val);           /* %.4g */
/* Append the newline and write the whole line to each non-NULL stream, flushing it. */
int lf_write(struct logfmt *l, FILE *a, FILE *b);

#endif
