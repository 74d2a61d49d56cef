/* Chain-file option machinery: JSON-path messages and option tables checked key by key. */
#include "src/chain_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- messages and JSON paths ---- */

/* "ORIGIN: json.path: what" (NK_EINVAL). */
int chain_bad(struct pctx *c, const char *jp, const char *fmt, ...)
{
	char what[NK_ERR_LEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return nk_errf(c->err, NK_EINVAL, "%s: %s: %s", c->origin, jp[0] ? jp : "(top level)", what);
}

int chain_nomem(struct pctx *c)
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

const char *chain_jp_key(char out[JP_LEN], const char *jp, const char *key)
{
	return jp_fit(out, snprintf(out, JP_LEN, "%s%s%s", jp, jp[0] ? "." : "", key));
}

const char *chain_jp_idx(char out[JP_LEN], const char *jp, size_t i)
{
	return jp_fit(out, snprintf(out, JP_LEN, "%s[%zu]", jp, i));
}

const char *chain_type_name(const json_t *v)
{
	static const char *const names[] = {
		[JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
		[JSON_INTEGER] = "an integer", [JSON_REAL] = "a real number",
		[JSON_TRUE] = "a boolean", [JSON_FALSE] = "a boolean", [JSON_NULL] = "null",
	};
	return v ? names[json_typeof(v)] : "nothing";
}

/* Zeroed array of n elements; never NULL for n == 0 so that NULL always means out of memory. */
void *chain_zalloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size);
}

/* ---- option fields ---- */

/* What a field accepts, for messages: "a positive integer", "a number in (0, 1]". */
static const char *field_want(const struct field *f, char *buf, size_t n)
{
	if (f->type == F_BOOL)
		return "true or false";
	if (f->type == F_INT && f->hi < INT_MAX) {
		snprintf(buf, n, "an integer in [%g, %g]", f->lo, f->hi);
	} else if (f->type != F_NUM) {
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

/* Store x as the field's C type (F_U64 values above 2^53 go through chain_field_store instead). */
void chain_field_put(const struct field *f, void *target, double x)
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
int chain_field_store(struct pctx *c, const char *jp, const json_t *v, const struct field *f,
		      void *target)
{
	char want[64];
	const char *w = field_want(f, want, sizeof want);
	if (f->type == F_BOOL) {
		if (!json_is_boolean(v))
			return chain_bad(c, jp, "expected %s, got %s", w, chain_type_name(v));
		chain_field_put(f, target, json_is_true(v));
	} else if (f->type == F_INT || f->type == F_U64) {
		if (!json_is_integer(v))
			return chain_bad(c, jp, "expected %s, got %s", w, chain_type_name(v));
		json_int_t x = json_integer_value(v);
		if (x < (json_int_t)f->lo || (f->type == F_INT && x > (json_int_t)f->hi))
			return chain_bad(c, jp, "expected %s, got %lld", w, (long long)x);
		if (f->type == F_U64)
			*(uint64_t *)((char *)target + f->off) = (uint64_t)x;
		else
			chain_field_put(f, target, (double)x);
	} else if (f->type == F_NUM) {
		if (!json_is_number(v))
			return chain_bad(c, jp, "expected %s, got %s", w, chain_type_name(v));
		if (!num_ok(f, json_number_value(v)))
			return chain_bad(c, jp, "expected %s, got %g", w, json_number_value(v));
		chain_field_put(f, target, json_number_value(v));
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
int chain_fields(struct pctx *c, const char *jp, json_t *obj, const struct field *fs, void *target)
{
	char sub[JP_LEN], keys[256];
	const char *key;
	json_t *v;
	int rc;
	if (obj && !json_is_object(obj))
		return chain_bad(c, jp, "expected an object, got %s", chain_type_name(obj));
	json_object_foreach(obj, key, v) {
		const struct field *f = fs;
		while (f->key && strcmp(f->key, key) != 0)
			f++;
		if (!f->key) {
			key_list(fs, keys, sizeof keys);
			return chain_bad(c, jp, "unknown key '%s' (%s%s)", key,
					 fs->key ? "known: " : "takes no options", keys);
		}
	}
	for (const struct field *f = fs; f->key; f++) {
		v = obj ? json_object_get(obj, f->key) : NULL;
		if (!v && f->req)
			return chain_bad(c, jp, "missing required key '%s'", f->key);
		if (!v)
			chain_field_put(f, target, f->dflt);
		else if (f->type != F_SKIP &&
			 (rc = chain_field_store(c, chain_jp_key(sub, jp, f->key), v, f, target)))
			return rc;
	}
	return 0;
}

/* A string value at jp copied into dst[cap]. */
int chain_string(struct pctx *c, const char *jp, const json_t *v, char *dst, size_t cap)
{
	if (!json_is_string(v))
		return chain_bad(c, jp, "expected a string, got %s", chain_type_name(v));
	if (json_string_length(v) >= cap || strlen(json_string_value(v)) != json_string_length(v))
		return chain_bad(c, jp, "string too long or with NUL bytes (at most %zu bytes)",
				 cap - 1);
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

/* Whether v is an object with exactly one key (a kind such as "conv" or "sgd"): *key, *val. */
int chain_single_key(json_t *v, const char **key, json_t **val)
{
	if (!json_is_object(v) || json_object_size(v) != 1)
		return 0;
	void *it = json_object_iter(v);
	*key = json_object_iter_key(it);
	*val = json_object_iter_value(it);
	return 1;
}

int chain_one_key(struct pctx *c, const char *jp, json_t *obj, const char *what,
		  const char **key, json_t **val)
{
	if (!chain_single_key(obj, key, val))
		return chain_bad(c, jp, "expected exactly one key (%s), got %zu", what,
				 json_object_size(obj));
	return 0;
}

/* ---- paths ---- */

/* name resolved: absolute stays, else joined to dir (when given). */
int chain_path_join(struct pctx *c, const char *jp, const char *dir, const char *name,
		    char out[CHAIN_PATH_LEN])
{
	int n;
	if (name[0] == '/' || !dir || !dir[0])
		n = snprintf(out, CHAIN_PATH_LEN, "%s", name);
	else
		n = snprintf(out, CHAIN_PATH_LEN, "%s%s%s", dir,
			     dir[strlen(dir) - 1] == '/' ? "" : "/", name);
	if (n < 0 || n >= CHAIN_PATH_LEN)
		return chain_bad(c, jp, "path too long (at most %d bytes)", CHAIN_PATH_LEN - 1);
	return 0;
}

