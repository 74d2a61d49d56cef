/* Chain-file parser internals shared by chain.c, chain_data.c and chain_opts.c: the parse
 * context, JSON-path messages and the table-driven option fields. Not part of the API. */
#ifndef NK_CHAIN_INT_H
#define NK_CHAIN_INT_H

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>

#include "src/chain.h"

#define JP_LEN 256 /* a JSON path such as stages[0].layers[1].conv.filters */

struct pctx {
	const char *origin;     /* file name for messages */
	const char *base_dir;   /* relative data paths resolve against this (NULL: leave relative) */
	char *err;
	int classes;            /* data.classes, needed by the head */
};

/* "ORIGIN: json.path: what" (NK_EINVAL). */
int chain_bad(struct pctx *c, const char *jp, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int chain_nomem(struct pctx *c);
/* jp + ".key" / jp + "[i]" into out; a path that did not fit ends in "...". */
const char *chain_jp_key(char out[JP_LEN], const char *jp, const char *key);
const char *chain_jp_idx(char out[JP_LEN], const char *jp, size_t i);
/* "an object", "a string", ... for messages; "nothing" for NULL. */
const char *chain_type_name(const json_t *v);
/* Zeroed array of n elements; never NULL for n == 0 so that NULL always means out of memory. */
void *chain_zalloc(size_t n, size_t size);

/* ---- option fields, described by tables ---- */

enum ftype {
	F_SKIP,     /* allowed key whose value the caller parses itself */
	F_INT,      /* integer in [lo, hi] -> int */
	F_U64,      /* integer >= lo -> uint64_t */
	F_NUM,      /* number between lo and hi (open ends as flagged) -> double */
	F_BOOL,     /* true/false -> int */
};
enum { OPT = 0, REQ = 1 };

struct field {
	const char *key;
	enum ftype type;
	int req;
	double lo, hi;                  /* a range below, for F_NUM */
	unsigned char lo_open, hi_open; /* F_NUM: exclusive bounds */
	double dflt;                    /* stored when the key is absent (not for F_SKIP) */
	size_t off;                     /* where the value goes in the target struct */
};

#define SKIP_F(k, req) {k, F_SKIP, req, 0, 0, 0, 0, 0, 0}
#define INT_F(k, req, lo, dflt, st, m) {k, F_INT, req, lo, INT_MAX, 0, 0, dflt, offsetof(st, m)}
#define INT_RANGE_F(k, lo, hi, dflt, st, m) {k, F_INT, OPT, lo, hi, 0, 0, dflt, offsetof(st, m)}
#define NUM_F(k, ...) NUM_F_(k, __VA_ARGS__) /* lets a range macro fill four arguments */
#define NUM_F_(k, lo, hi, lopen, hopen, dflt, st, m) \
	{k, F_NUM, OPT, lo, hi, lopen, hopen, dflt, offsetof(st, m)}
#define BOOL_F(k, dflt, st, m) {k, F_BOOL, OPT, 0, 1, 0, 0, dflt, offsetof(st, m)}
#define END_F {NULL, F_SKIP, 0, 0, 0, 0, 0, 0, 0}
#define R_ANY -HUGE_VAL, HUGE_VAL, 0, 0
#define R_GT0 0, HUGE_VAL, 1, 0         /* (0, inf) */
#define R_GE0 0, HUGE_VAL, 0, 0         /* [0, inf) */
#define R_PROB 0, 1, 1, 0               /* (0, 1] */
#define R_FRAC 0, 1, 0, 1               /* [0, 1) */

/* Store x as the field's C type (absent keys get f->dflt this way). */
void chain_field_put(const struct field *f, void *target, double x);
/* Check v (found at path jp) against f and store it in target. */
int chain_field_store(struct pctx *c, const char *jp, const json_t *v, const struct field *f,
		      void *target);
/* Parse the object obj (at path jp; NULL counts as {}) against the table fs: unknown keys and
 * missing required keys are errors, absent optional keys get their defaults. */
int chain_fields(struct pctx *c, const char *jp, json_t *obj, const struct field *fs, void *target);
/* A string value at jp copied into dst[cap]. */
int chain_string(struct pctx *c, const char *jp, const json_t *v, char *dst, size_t cap);
/* Whether v is an object with exactly one key (a kind such as "conv" or "sgd"): *key, *val. */
int chain_single_key(json_t *v, const char **key, json_t **val);
/* As chain_single_key, but an error naming what the key should be when it is not. */
int chain_one_key(struct pctx *c, const char *jp, json_t *obj, const char *what,
		  const char **key, json_t **val);
/* name resolved: absolute stays, else joined to dir (when given) else left as it is. */
int chain_path_join(struct pctx *c, const char *jp, const char *dir, const char *name,
		    char out[CHAIN_PATH_LEN]);

/* The "data" block (chain_data.c). */
int chain_data_parse(struct pctx *c, json_t *o, struct chain_data *d);

#endif
