/* Chain-file parser: JSON text to a validated struct chain, or one message naming the bad spot. */
#include "src/chain.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JP_LEN 256 /* a JSON path such as stages[0].layers[1].conv.filters */

struct pctx {
	const char *origin;     /* file name for messages */
	const char *base_dir;   /* relative data paths resolve against this (NULL: leave relative) */
	char *err;
	int classes;            /* data.classes, needed by the head */
};

/* ---- messages and JSON paths ---- */

/* "ORIGIN: json.path: what" (NK_EINVAL). */
static int __attribute__((format(printf, 3, 4)))
bad(struct pctx *c, const char *jp, const char *fmt, ...)
{
	char what[NK_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return nk_errf(c->err, NK_EINVAL, "%s: %s: %s", c->origin, jp[0] ? jp : "(top level)", what);
}

static int nomem(struct pctx *c)
{
	return nk_errf(c->err, NK_ENOMEM, "%s: out of memory", c->origin);
}

/* A path that did not fit ends in "...". */
static const char *jp_fit(char out[JP_LEN], int n)
{
	if (n >= JP_LEN)
		memcpy(out + JP_LEN - 4, "...", 4);
	return out;
}

static const char *jp_key(char out[JP_LEN], const char *jp, const char *key)
{
	return jp_fit(out, snprintf(out, JP_LEN, "%s%s%s", jp, jp[0] ? "." : "", key));
}

static const char *jp_idx(char out[JP_LEN], const char *jp, size_t i)
{
	return jp_fit(out, snprintf(out, JP_LEN, "%s[%zu]", jp, i));
}

static const char *type_name(const json_t *v)
{
	static const char *const names[] = {
		[JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
		[JSON_INTEGER] = "an integer", [JSON_REAL] = "a real number",
		[JSON_TRUE] = "a boolean", [JSON_FALSE] = "a boolean", [JSON_NULL] = "null",
	};
	return v ? names[json_typeof(v)] : "nothing";
}

/* Zeroed array of n elements; never NULL for n == 0 so that NULL always means out of memory. */
static void *zalloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size);
}

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

static const struct field top_fields[] = {
	SKIP_F("chain", REQ), {"seed", F_U64, OPT, 0, 0, 0, 0, 1, offsetof(struct chain, seed)},
	SKIP_F("data", REQ), SKIP_F("stages", REQ), END_F,
};

static const struct field data_fields[] = {
	SKIP_F("format", OPT), SKIP_F("dir", OPT), SKIP_F("train", REQ), SKIP_F("test", OPT),
	INT_F("classes", OPT, 2, 10, struct chain_data, classes),
	INT_F("batch", OPT, 1, 64, struct chain_data, batch),
	INT_F("epochs", OPT, 1, 1, struct chain_data, epochs),
	INT_F("test_every", OPT, 0, 0, struct chain_data, test_every),
	BOOL_F("shuffle", 1, struct chain_data, shuffle),
	SKIP_F("normalize", OPT),
	NUM_F("rate", R_GE0, 0, struct chain_data, rate),
	INT_F("limit", OPT, 0, 0, struct chain_data, limit),
	END_F,
};

static const struct field normalize_fields[] = {
	NUM_F("mean", R_ANY, 0, struct chain_data, mean),
	NUM_F("std", R_GT0, 1, struct chain_data, std),
	END_F,
};

static const struct field stage_fields[] = {
	SKIP_F("name", REQ), SKIP_F("listen", OPT), SKIP_F("layers", OPT), SKIP_F("head", REQ),
	SKIP_F("optimizer", REQ), SKIP_F("exit", OPT), END_F,
};

static const struct field exit_fields[] = {
	NUM_F("threshold", R_PROB, 0, struct chain_stage, exit_threshold),
	NUM_F("entropy", R_GT0, 0, struct chain_stage, exit_entropy),
	END_F,
};

static const struct field sgd_fields[] = {
	NUM_F("lr", R_GT0, 0.01, struct chain_optim, lr),
	NUM_F("momentum", R_FRAC, 0, struct chain_optim, momentum),
	NUM_F("weight_decay", R_GE0, 0, struct chain_optim, weight_decay),
	INT_F("iters", OPT, 1, 1, struct chain_optim, iters),
	END_F,
};

static const struct field mcmc_fields[] = {
	INT_F("iters", OPT, 1, 200, struct chain_optim, iters), SKIP_F("layers", REQ), END_F,
};

static const struct field mcmc_layer_fields[] = {
	NUM_F("share", R_GT0, 1, struct chain_mcmc_layer, share),
	SKIP_F("move", OPT), SKIP_F("proposal", REQ), SKIP_F("prior", OPT),
	NUM_F("lambda", R_GE0, 1, struct chain_mcmc_layer, lambda),
	END_F,
};

static const struct field move_k_field = INT_F("K", REQ, 1, 0, struct chain_mcmc_layer, k);
static const struct field dist_var_field = NUM_F("var", R_GT0, 0, struct chain_dist, var);
static const struct field dist_fields[] = {
	{"var", F_NUM, REQ, R_GT0, 0, offsetof(struct chain_dist, var)},
	NUM_F("df", R_GT0, 1, struct chain_dist, df),
	END_F,
};

/* What a field accepts, for messages: "a positive integer", "a number in (0, 1]". */
static const char *field_want(const struct field *f, char *buf, size_t n)
{
	if (f->type == F_BOOL)
		return "true or false";
	if (f->type != F_NUM) {
		if (f->lo == 1 || f->lo == 0)
			return f->lo == 1 ? "a positive integer" : "a non-negative integer";
		snprintf(buf, n, "an integer >= %g", f->lo);
	} else if (isinf(f->lo) && isinf(f->hi)) {
		return "a number";
	} else if (isinf(f->hi)) {
		snprintf(buf, n, "a number %s %g", f->lo_open ? ">" : ">=", f->lo);
	} else {
		snprintf(buf, n, "a number in %c%g, %g%c", f->lo_open ? '(' : '[', f->lo, f->hi,
			 f->hi_open ? ')' : ']');
	}
	return buf;
}

static int num_ok(const struct field *f, double x)
{
	if (f->lo_open ? !(x > f->lo) : !(x >= f->lo))
		return 0;
	return f->hi_open ? x < f->hi : x <= f->hi;
}

/* Store x as the field's C type (F_U64 values above 2^53 go through field_store instead). */
static void field_put(const struct field *f, void *target, double x)
{
	char *p = (char *)target + f->off;
	if (f->type == F_NUM)
		*(double *)p = x;
	else if (f->type == F_U64)
		*(uint64_t *)p = (uint64_t)x;
	else if (f->type != F_SKIP)
		*(int *)p = (int)x;
}

/* Check v (found at path jp) against f and store it in target. */
static int field_store(struct pctx *c, const char *jp, const json_t *v, const struct field *f,
		       void *target)
{
	char want[64];
	const char *w = field_want(f, want, sizeof want);
	if (f->type == F_BOOL) {
		if (!json_is_boolean(v))
			return bad(c, jp, "expected %s, got %s", w, type_name(v));
		field_put(f, target, json_is_true(v));
	} else if (f->type == F_INT || f->type == F_U64) {
		if (!json_is_integer(v))
			return bad(c, jp, "expected %s, got %s", w, type_name(v));
		json_int_t x = json_integer_value(v);
		if (x < (json_int_t)f->lo || (f->type == F_INT && x > (json_int_t)f->hi))
			return bad(c, jp, "expected %s, got %lld", w, (long long)x);
		if (f->type == F_U64)
			*(uint64_t *)((char *)target + f->off) = (uint64_t)x;
		else
			field_put(f, target, (double)x);
	} else if (f->type == F_NUM) {
		if (!json_is_number(v))
			return bad(c, jp, "expected %s, got %s", w, type_name(v));
		if (!num_ok(f, json_number_value(v)))
			return bad(c, jp, "expected %s, got %g", w, json_number_value(v));
		field_put(f, target, json_number_value(v));
	}
	return 0;
}

static void key_list(const struct field *fs, char *buf, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (const struct field *f = fs; f->key && len < n; f++)
		len += snprintf(buf + len, n - len, "%s%s", f == fs ? "" : ", ", f->key);
}

/* Parse the object obj (at path jp; NULL counts as {}) against the table fs: unknown keys and
 * missing required keys are errors, absent optional keys get their defaults. */
static int fields_parse(struct pctx *c, const char *jp, json_t *obj, const struct field *fs,
			void *target)
{
	char sub[JP_LEN], keys[256];
	const char *key;
	json_t *v;
	int rc;
	if (obj && !json_is_object(obj))
		return bad(c, jp, "expected an object, got %s", type_name(obj));
	json_object_foreach(obj, key, v) {
		const struct field *f = fs;
		while (f->key && strcmp(f->key, key) != 0)
			f++;
		if (!f->key) {
			key_list(fs, keys, sizeof keys);
			return bad(c, jp, "unknown key '%s' (%s%s)", key,
				   fs->key ? "known: " : "takes no options", keys);
		}
	}
	for (const struct field *f = fs; f->key; f++) {
		v = obj ? json_object_get(obj, f->key) : NULL;
		if (!v && f->req)
			return bad(c, jp, "missing required key '%s'", f->key);
		if (!v)
			field_put(f, target, f->dflt);
		else if (f->type != F_SKIP && (rc = field_store(c, jp_key(sub, jp, f->key), v, f, target)))
			return rc;
	}
	return 0;
}

/* A string value at jp copied into dst[cap]. */
static int string_at(struct pctx *c, const char *jp, const json_t *v, char *dst, size_t cap)
{
	if (!json_is_string(v))
		return bad(c, jp, "expected a string, got %s", type_name(v));
	if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
		return bad(c, jp, "string too long or with NUL bytes (at most %zu bytes)", cap - 1);
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* Whether v is an object with exactly one key (a kind such as "conv" or "sgd"): *key, *val. */
static int single_key(json_t *v, const char **key, json_t **val)
{
	if (!json_is_object(v) || json_object_size(v) != 1)
		return 0;
	void *it = json_object_iter(v);
	*key = json_object_iter_key(it);
	*val = json_object_iter_value(it);
	return 1;
}

static int one_key(struct pctx *c, const char *jp, json_t *obj, const char *what,
		   const char **key, json_t **val)
{
	if (!single_key(obj, key, val))
		return bad(c, jp, "expected exactly one key (%s), got %zu", what,
			   json_object_size(obj));
	return 0;
}

/* ---- layers ---- */

enum {
	K_TRAINABLE = 1,        /* has weights: gets an entry in optimizer.mcmc.layers */
	K_UNITS = 2,            /* "units": required in the body, defaults to classes in the head */
	K_STRIDE_IS_SIZE = 4,   /* "stride" defaults to "size" */
};

static const struct field conv_fields[] = {
	INT_F("filters", REQ, 1, 0, struct chain_layer, filters),
	INT_F("kernel", REQ, 1, 0, struct chain_layer, kernel),
	INT_F("stride", OPT, 1, 1, struct chain_layer, stride),
	INT_F("pad", OPT, 0, 0, struct chain_layer, pad),
	BOOL_F("binary", 0, struct chain_layer, binary),
	END_F,
};

static const struct field linear_fields[] = {
	/* 0 = absent; positivity and the head default are checked by layer_parse (K_UNITS) */
	INT_F("units", OPT, 0, 0, struct chain_layer, units),
	BOOL_F("binary", 0, struct chain_layer, binary),
	END_F,
};

static const struct field pool_fields[] = {
	INT_F("size", OPT, 1, 2, struct chain_layer, size),
	INT_F("stride", OPT, 1, 0, struct chain_layer, stride), /* 0: = size (K_STRIDE_IS_SIZE) */
	END_F,
};

static const struct field no_fields[] = {END_F};

struct layer_kind {
	const char *name;
	const struct field *opts;   /* allowed options, which are required, defaults */
	int flags;
};

static const struct layer_kind layer_kinds[] = {
	{"conv", conv_fields, K_TRAINABLE},
	{"linear", linear_fields, K_TRAINABLE | K_UNITS},
	{"relu", no_fields, 0},
	{"maxpool", pool_fields, K_STRIDE_IS_SIZE},
	{"avgpool", pool_fields, K_STRIDE_IS_SIZE},
	{"gap", no_fields, 0},
	{"flatten", no_fields, 0},
};
#define NKINDS (sizeof layer_kinds / sizeof layer_kinds[0])

static const struct layer_kind *kind_find(const char *name)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (strcmp(layer_kinds[i].name, name) == 0)
			return &layer_kinds[i];
	return NULL;
}

static int unknown_kind(struct pctx *c, const char *jp, const char *name)
{
	char known[128];
	size_t len = 0;
	for (size_t i = 0; i < NKINDS && len < sizeof known; i++)
		len += snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "",
				layer_kinds[i].name);
	return bad(c, jp, "unknown layer kind '%s' (known: %s)", name, known);
}

/* "units" of a linear layer; head_last: the head's final classifier. */
static int layer_units(struct pctx *c, const char *jp, json_t *opts, struct chain_layer *l,
		       int head_last)
{
	char sub[JP_LEN];
	jp_key(sub, jp, "units");
	if (head_last) {
		if (l->units == 0)
			l->units = c->classes;
		if (l->units != c->classes)
			return bad(c, sub, "the head's last layer must have data.classes (%d) units, "
				   "got %d", c->classes, l->units);
	} else if (l->units == 0) {
		if (!opts || !json_object_get(opts, "units"))
			return bad(c, jp, "missing required key 'units'");
		return bad(c, sub, "expected a positive integer, got 0");
	}
	return 0;
}

/* One layer item at jp: "relu" or {"conv": {...}}. */
static int layer_parse(struct pctx *c, const char *jp, json_t *item, struct chain_layer *l,
		       int head_last)
{
	const char *name = "";
	json_t *opts = NULL;
	char sub[JP_LEN];
	int rc;
	if (json_is_string(item)) {
		name = json_string_value(item);
	} else if (json_is_object(item)) {
		if ((rc = one_key(c, jp, item, "the layer kind", &name, &opts)))
			return rc;
	} else {
		return bad(c, jp, "expected a layer such as \"relu\" or {\"conv\": {...}}, got %s",
			   type_name(item));
	}
	const struct layer_kind *k = kind_find(name);
	if (!k)
		return unknown_kind(c, jp, name);
	memset(l, 0, sizeof *l);
	snprintf(l->kind, sizeof l->kind, "%s", k->name);
	jp_key(sub, jp, k->name);
	if ((rc = fields_parse(c, sub, opts, k->opts, l)))
		return rc;
	if ((k->flags & K_STRIDE_IS_SIZE) && l->stride == 0)
		l->stride = l->size;
	if (k->flags & K_UNITS)
		return layer_units(c, sub, opts, l, head_last);
	return 0;
}

/* "layers" (head 0: an array, absent = empty) or "head" (head 1: one item or a non-empty
 * array, ending in "linear") into *out, counting parsed items in *n. */
static int layers_parse(struct pctx *c, const char *jp, json_t *v, int head,
			struct chain_layer **out, int *n)
{
	char sub[JP_LEN];
	int arr = json_is_array(v);
	size_t len = arr ? json_array_size(v) : (size_t)head;
	if (!head && v && !arr)
		return bad(c, jp, "expected an array of layers, got %s", type_name(v));
	if (head && len == 0)
		return bad(c, jp, "the head must have at least one layer (ending in \"linear\")");
	if (!(*out = zalloc(len, sizeof **out)))
		return nomem(c);
	for (size_t i = 0; i < len; i++) {
		const char *ijp = arr ? jp_idx(sub, jp, i) : jp;
		int last = head && i == len - 1;
		int rc = layer_parse(c, ijp, arr ? json_array_get(v, i) : v, &(*out)[i], last);
		if (rc)
			return rc;
		++*n;
		if (last && strcmp((*out)[i].kind, "linear") != 0)
			return bad(c, ijp, "the last head layer must be \"linear\", got '%s'",
				   (*out)[i].kind);
	}
	return 0;
}

/* ---- optimizers ---- */

/* The i-th trainable layer of s (body first, then head); where: "layers[0]" or "head[0]". */
static const struct chain_layer *trainable(const struct chain_stage *s, int i, char *where,
					   size_t n)
{
	for (int j = 0; j < s->nlayers + s->nhead; j++) {
		int body = j < s->nlayers;
		const struct chain_layer *l = body ? &s->layers[j] : &s->head[j - s->nlayers];
		if ((kind_find(l->kind)->flags & K_TRAINABLE) && i-- == 0) {
			snprintf(where, n, "%s[%d]", body ? "layers" : "head", body ? j : j - s->nlayers);
			return l;
		}
	}
	return NULL;
}

struct move_form {
	const char *name;
	int takes_k;                /* {"name": K} rather than "name" */
	enum chain_move_kind kind;
	const char *layer;          /* the layer kind it applies to */
};

static const struct move_form move_forms[] = {
	{"filter", 0, MOVE_FILTER, "conv"},
	{"filter", 1, MOVE_FILTER_K, "conv"},
	{"uniform", 1, MOVE_UNIFORM, "linear"},
	{"row", 0, MOVE_ROW, "linear"},
};

/* "move" at jp for layer l (named where); absent: "filter" on conv, "row" on linear. */
static int move_parse(struct pctx *c, const char *jp, json_t *v, const struct chain_layer *l,
		      const char *where, struct chain_mcmc_layer *m)
{
	const char *name = NULL;
	json_t *kv = NULL;
	char sub[JP_LEN];
	if (!v)
		name = strcmp(l->kind, "conv") == 0 ? "filter" : "row";
	else if (json_is_string(v))
		name = json_string_value(v);
	else
		single_key(v, &name, &kv);
	const struct move_form *f = NULL;
	for (size_t i = 0; name && i < sizeof move_forms / sizeof move_forms[0]; i++)
		if (strcmp(move_forms[i].name, name) == 0 && move_forms[i].takes_k == (kv != NULL))
			f = &move_forms[i];
	if (!f)
		return bad(c, jp, "expected \"filter\", {\"filter\": K}, {\"uniform\": K} or \"row\"");
	if (strcmp(f->layer, l->kind) != 0)
		return bad(c, jp, "'%s' moves need a %s layer, but this entry is for %s (%s)",
			   f->name, f->layer, where, l->kind);
	m->move = f->kind;
	if (kv)
		return field_store(c, jp_key(sub, jp, f->name), kv, &move_k_field, m);
	return 0;
}

/* A proposal or prior at jp: {"student": VAR}, {"student": {"var": V, "df": D}},
 * {"gaussian": VAR}, or (allow_flip) "flip". */
static int dist_parse(struct pctx *c, const char *jp, json_t *v, int allow_flip,
		      struct chain_dist *d)
{
	const char *name = NULL;
	json_t *val = NULL;
	char sub[JP_LEN];
	memset(d, 0, sizeof *d);
	if (allow_flip && json_is_string(v) && strcmp(json_string_value(v), "flip") == 0) {
		d->kind = DIST_FLIP;
		return 0;
	}
	single_key(v, &name, &val);
	if (name && strcmp(name, "student") == 0)
		d->kind = DIST_STUDENT;
	else if (name && strcmp(name, "gaussian") == 0)
		d->kind = DIST_GAUSSIAN;
	else
		return bad(c, jp, "expected {\"student\": VAR}, {\"student\": {\"var\": V, \"df\": D}}"
			   ", {\"gaussian\": VAR}%s", allow_flip ? " or \"flip\"" : "");
	jp_key(sub, jp, name);
	d->df = 1;
	if (d->kind == DIST_STUDENT && json_is_object(val))
		return fields_parse(c, sub, val, dist_fields, d);
	return field_store(c, sub, val, &dist_var_field, d);
}

/* One entry of optimizer.mcmc.layers at jp, for the trainable layer l. */
static int mcmc_layer_parse(struct pctx *c, const char *jp, json_t *e, const struct chain_layer *l,
			    const char *where, struct chain_mcmc_layer *m)
{
	char sub[JP_LEN];
	json_t *prior;
	int rc;
	if ((rc = fields_parse(c, jp, e, mcmc_layer_fields, m)))
		return rc;
	if ((rc = move_parse(c, jp_key(sub, jp, "move"), json_object_get(e, "move"), l, where, m)))
		return rc;
	jp_key(sub, jp, "proposal");
	if ((rc = dist_parse(c, sub, json_object_get(e, "proposal"), 1, &m->proposal)))
		return rc;
	if (l->binary && m->proposal.kind != DIST_FLIP)
		return bad(c, sub, "%s is a binary %s layer: it takes only the \"flip\" proposal",
			   where, l->kind);
	if (!l->binary && m->proposal.kind == DIST_FLIP)
		return bad(c, sub, "\"flip\" proposals need a binary layer, but %s (%s) is not binary",
			   where, l->kind);
	if ((prior = json_object_get(e, "prior")))
		return dist_parse(c, jp_key(sub, jp, "prior"), prior, 0, &m->prior);
	return 0;
}

static int mcmc_parse(struct pctx *c, const char *jp, json_t *o, struct chain_stage *s)
{
	char sub[JP_LEN], where[32];
	int rc, want = 0, body = 0;
	if ((rc = fields_parse(c, jp, o, mcmc_fields, &s->optim)))
		return rc;
	json_t *arr = json_object_get(o, "layers");
	jp_key(sub, jp, "layers");
	if (!json_is_array(arr))
		return bad(c, sub, "expected an array (one entry per conv/linear layer), got %s",
			   type_name(arr));
	for (; trainable(s, want, where, sizeof where); want++)
		body += where[0] == 'l'; /* "layers[i]", not "head[i]" */
	if (json_array_size(arr) != (size_t)want)
		return bad(c, sub, "expected %d entries, one per trainable layer (%d in the body, %d in "
			   "the head), found %zu", want, body, want - body, json_array_size(arr));
	if (!(s->optim.mcmc = zalloc((size_t)want, sizeof *s->optim.mcmc)))
		return nomem(c);
	for (int i = 0; i < want; i++) {
		char ejp[JP_LEN];
		const struct chain_layer *l = trainable(s, i, where, sizeof where);
		rc = mcmc_layer_parse(c, jp_idx(ejp, sub, (size_t)i), json_array_get(arr, (size_t)i),
				      l, where, &s->optim.mcmc[i]);
		if (rc)
			return rc;
		s->optim.nmcmc++;
	}
	return 0;
}

/* "optimizer": {"sgd": {...}} or {"mcmc": {...}}; needs the stage's layers parsed. */
static int optim_parse(struct pctx *c, const char *jp, json_t *v, struct chain_stage *s)
{
	const char *name = "";
	json_t *o = NULL;
	char sub[JP_LEN];
	int rc;
	if (!json_is_object(v))
		return bad(c, jp, "expected {\"sgd\": {...}} or {\"mcmc\": {...}}, got %s", type_name(v));
	if ((rc = one_key(c, jp, v, "sgd or mcmc", &name, &o)))
		return rc;
	jp_key(sub, jp, name);
	if (strcmp(name, "sgd") == 0) {
		s->optim.kind = OPTIM_SGD;
		return fields_parse(c, sub, o, sgd_fields, &s->optim);
	}
	if (strcmp(name, "mcmc") == 0) {
		s->optim.kind = OPTIM_MCMC;
		return mcmc_parse(c, sub, o, s);
	}
	return bad(c, jp, "unknown optimizer '%s' (known: sgd, mcmc)", name);
}

/* ---- stages ---- */

static int name_ok(const char *s)
{
	return s[0] && !s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")];
}

/* "host:port" with a non-empty host and a port in 1..65535. */
static int listen_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
	if (!colon || colon == s || digits == 0 || digits > 5 || colon[1 + digits])
		return 0;
	long port = strtol(colon + 1, NULL, 10);
	return port >= 1 && port <= 65535;
}

static int stage_parse(struct pctx *c, const char *jp, json_t *js, struct chain_stage *s)
{
	char sub[JP_LEN];
	json_t *v;
	int rc;
	if ((rc = fields_parse(c, jp, js, stage_fields, s)))
		return rc;
	if ((rc = string_at(c, jp_key(sub, jp, "name"), json_object_get(js, "name"), s->name,
			    sizeof s->name)))
		return rc;
	if (!name_ok(s->name))
		return bad(c, sub, "stage names must be non-empty and use only A-Z a-z 0-9 _ . -, "
			   "got '%s'", s->name);
	if ((v = json_object_get(js, "listen"))) {
		if ((rc = string_at(c, jp_key(sub, jp, "listen"), v, s->listen, sizeof s->listen)))
			return rc;
		if (!listen_ok(s->listen))
			return bad(c, sub, "expected \"host:port\" with a port in 1..65535, got '%s'",
				   s->listen);
	}
	v = json_object_get(js, "layers");
	if ((rc = layers_parse(c, jp_key(sub, jp, "layers"), v, 0, &s->layers, &s->nlayers)))
		return rc;
	v = json_object_get(js, "head");
	if ((rc = layers_parse(c, jp_key(sub, jp, "head"), v, 1, &s->head, &s->nhead)))
		return rc;
	v = json_object_get(js, "optimizer");
	if ((rc = optim_parse(c, jp_key(sub, jp, "optimizer"), v, s)))
		return rc;
	v = json_object_get(js, "exit");
	if ((rc = fields_parse(c, jp_key(sub, jp, "exit"), v, exit_fields, s)))
		return rc;
	if (s->exit_threshold > 0 && s->exit_entropy > 0)
		return bad(c, sub, "give at most one of 'threshold' and 'entropy'");
	return 0;
}

static int stages_parse(struct pctx *c, json_t *arr, struct chain *ch)
{
	char jp[JP_LEN], sub[JP_LEN];
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return bad(c, "stages", "expected a non-empty array of stages, got %s",
			   json_is_array(arr) ? "an empty array" : type_name(arr));
	if (!(ch->stages = zalloc(json_array_size(arr), sizeof *ch->stages)))
		return nomem(c);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		int rc = stage_parse(c, jp_idx(jp, "stages", i), json_array_get(arr, i), &ch->stages[i]);
		ch->nstages++;
		if (rc)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(ch->stages[j].name, ch->stages[i].name) == 0)
				return bad(c, jp_key(sub, jp, "name"),
					   "duplicate stage name '%s' (also stages[%zu])",
					   ch->stages[i].name, j);
	}
	return 0;
}

/* ---- data ---- */

/* name resolved: absolute stays, else joined to dir (when given) else to base_dir. */
static int path_join(struct pctx *c, const char *jp, const char *dir, const char *name,
		     char out[CHAIN_PATH_LEN])
{
	int n;
	if (name[0] == '/' || !dir || !dir[0])
		n = snprintf(out, CHAIN_PATH_LEN, "%s", name);
	else
		n = snprintf(out, CHAIN_PATH_LEN, "%s%s%s", dir,
			     dir[strlen(dir) - 1] == '/' ? "" : "/", name);
	if (n < 0 || n >= CHAIN_PATH_LEN)
		return bad(c, jp, "path too long (at most %d bytes)", CHAIN_PATH_LEN - 1);
	return 0;
}

/* "train"/"test": exactly two strings (images, labels), resolved against dir. */
static int file_pair(struct pctx *c, const char *jp, json_t *v, const char *dir,
		     char out[2][CHAIN_PATH_LEN])
{
	char sub[JP_LEN], name[CHAIN_PATH_LEN];
	if (!json_is_array(v) || json_array_size(v) != 2)
		return bad(c, jp, "expected an array of 2 file names (images, labels)");
	for (size_t i = 0; i < 2; i++) {
		int rc = string_at(c, jp_idx(sub, jp, i), json_array_get(v, i), name, sizeof name);
		if (rc || (rc = path_join(c, sub, dir, name, out[i])))
			return rc;
	}
	return 0;
}

static int data_parse(struct pctx *c, json_t *o, struct chain_data *d)
{
	char dir[CHAIN_PATH_LEN], rel[CHAIN_PATH_LEN];
	json_t *v;
	int rc;
	if ((rc = fields_parse(c, "data", o, data_fields, d)))
		return rc;
	c->classes = d->classes;
	if ((rc = fields_parse(c, "data.normalize", json_object_get(o, "normalize"),
			       normalize_fields, d)))
		return rc;
	snprintf(d->format, sizeof d->format, "idx");
	if ((v = json_object_get(o, "format"))) {
		if ((rc = string_at(c, "data.format", v, rel, sizeof rel)))
			return rc;
		if (strcmp(rel, "idx") != 0)
			return bad(c, "data.format", "format '%s' is not supported (supported: idx)", rel);
	}
	snprintf(dir, sizeof dir, "%s", c->base_dir ? c->base_dir : "");
	if ((v = json_object_get(o, "dir"))) {
		if ((rc = string_at(c, "data.dir", v, rel, sizeof rel)) ||
		    (rc = path_join(c, "data.dir", c->base_dir, rel, dir)))
			return rc;
	}
	if ((rc = file_pair(c, "data.train", json_object_get(o, "train"), dir, d->train)))
		return rc;
	if ((v = json_object_get(o, "test"))) {
		if ((rc = file_pair(c, "data.test", v, dir, d->test)))
			return rc;
		d->has_test = 1;
	}
	return 0;
}

/* ---- entry points ---- */

static uint64_t fnv1a64(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static int chain_build(struct pctx *c, json_t *root, struct chain *ch)
{
	int rc;
	if (!json_is_object(root))
		return bad(c, "", "expected an object, got %s", type_name(root));
	if ((rc = fields_parse(c, "", root, top_fields, ch)))
		return rc;
	if ((rc = string_at(c, "chain", json_object_get(root, "chain"), ch->name, sizeof ch->name)))
		return rc;
	if (!ch->name[0])
		return bad(c, "chain", "the chain name must not be empty");
	json_t *data = json_object_get(root, "data");
	if (!json_is_object(data))
		return bad(c, "data", "expected an object, got %s", type_name(data));
	if ((rc = data_parse(c, data, &ch->data)))
		return rc;
	return stages_parse(c, json_object_get(root, "stages"), ch);
}

int chain_parse(struct chain **out, const char *text, size_t len, const char *origin,
		const char *base_dir, char err[NK_ERR_LEN])
{
	struct pctx c = {origin ? origin : "chain", base_dir, err, 10};
	json_error_t je;
	*out = NULL;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return nk_errf(err, NK_EFORMAT, "%s:%d:%d: %s", c.origin, je.line, je.column, je.text);
	struct chain *ch = calloc(1, sizeof *ch);
	int rc = ch ? chain_build(&c, root, ch) : nomem(&c);
	json_decref(root);
	if (rc) {
		chain_free(ch);
		return rc;
	}
	ch->hash = fnv1a64(text, len);
	*out = ch;
	return 0;
}

/* The whole file at path in a malloc'd buffer. */
static int slurp(const char *path, char **buf, size_t *len, char *err)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, n = 0;
	char *b = NULL;
	if (!f)
		return nk_errf(err, errno == ENOENT ? NK_ENOENT : NK_EIO, "%s: %s", path, strerror(errno));
	for (;;) {
		char *nb = realloc(b, cap);
		if (!nb) {
			free(b);
			fclose(f);
			return nk_errf(err, NK_ENOMEM, "%s: out of memory", path);
		}
		b = nb;
		n += fread(b + n, 1, cap - n, f);
		if (n < cap)
			break;
		cap *= 2;
	}
	int bad_read = ferror(f) ? errno : 0;
	fclose(f);
	if (bad_read) {
		free(b);
		return nk_errf(err, NK_EIO, "%s: read failed: %s", path, strerror(bad_read));
	}
	*buf = b;
	*len = n;
	return 0;
}

/* The folder of path, made absolute so data paths survive a chdir. */
static int dir_of(const char *path, char out[CHAIN_PATH_LEN])
{
	const char *slash = strrchr(path, '/');
	int keep = !slash ? 0 : slash == path ? 1 : (int)(slash - path); /* "/x" keeps "/" */
	char cwd[CHAIN_PATH_LEN];
	int n;
	if (path[0] == '/')
		n = snprintf(out, CHAIN_PATH_LEN, "%.*s", keep, path);
	else
		n = snprintf(out, CHAIN_PATH_LEN, "%s%s%.*s", getcwd(cwd, sizeof cwd) ? cwd : ".",
			     keep ? "/" : "", keep, path);
	return n < 0 || n >= CHAIN_PATH_LEN ? -1 : 0;
}

int chain_load(struct chain **out, const char *path, char err[NK_ERR_LEN])
{
	char dir[CHAIN_PATH_LEN], *text = NULL;
	size_t len = 0;
	*out = NULL;
	if (strlen(path) >= CHAIN_PATH_LEN || dir_of(path, dir) != 0)
		return nk_errf(err, NK_EINVAL, "%s: path too long (at most %d bytes)", path,
			       CHAIN_PATH_LEN - 1);
	int rc = slurp(path, &text, &len, err);
	if (rc)
		return rc;
	rc = chain_parse(out, text, len, path, dir, err);
	free(text);
	if (rc == 0)
		snprintf((*out)->path, sizeof (*out)->path, "%s", path);
	return rc;
}

void chain_free(struct chain *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nstages; i++) {
		free(c->stages[i].layers);
		free(c->stages[i].head);
		free(c->stages[i].optim.mcmc);
	}
	free(c->stages);
	free(c);
}

int chain_stage_index(const struct chain *c, const char *name)
{
	for (int i = 0; c && name && i < c->nstages; i++)
		if (strcmp(c->stages[i].name, name) == 0)
			return i;
	return -1;
}
