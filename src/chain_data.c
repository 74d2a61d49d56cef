/* The chain file's "data" block: format, files, order, normalisation, augmentation and the
 * options of each format, checked against one table of formats. */
#include "src/chain_int.h"

#include <stdio.h>
#include <string.h>

/* Options that only some formats take. */
enum {
	K_SHAPE = 1, K_STRICT = 2, K_HEADER = 4, K_LABEL = 8, K_FEATURES = 16, K_LABEL_BYTES = 32,
};

/* How "train" and "test" name the data. */
enum files_form {
	FILES_PAIR,     /* [images, labels] */
	FILES_LIST,     /* "file" or ["file", ...] */
	FILES_ONE,      /* "path" */
};

struct data_format {
	const char *name;
	enum files_form files;
	unsigned keys;          /* K_* options it takes */
	const char *what;       /* what "train" should be, for messages */
};

static const struct data_format data_formats[] = {
	{"idx", FILES_PAIR, K_SHAPE, "an array of 2 file names (images, labels)"},
	{"cifar", FILES_LIST, K_SHAPE | K_LABEL_BYTES | K_LABEL, "a file name or an array of 1 to 16 file names"},
	{"images", FILES_ONE, K_SHAPE | K_STRICT, "a folder name (one subfolder per class)"},
	{"csv", FILES_ONE, K_SHAPE | K_HEADER | K_LABEL | K_FEATURES, "a file name"},
};
#define NFORMATS (sizeof data_formats / sizeof data_formats[0])

static const struct {
	const char *key;
	unsigned bit;
} format_keys[] = {
	{"shape", K_SHAPE}, {"strict", K_STRICT}, {"header", K_HEADER}, {"label", K_LABEL},
	{"features", K_FEATURES}, {"label_bytes", K_LABEL_BYTES},
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
	SKIP_F("augment", OPT), SKIP_F("shape", OPT),
	BOOL_F("strict", 0, struct chain_data, strict),
	BOOL_F("header", 0, struct chain_data, header),
	SKIP_F("label", OPT), SKIP_F("features", OPT),
	INT_RANGE_F("label_bytes", 1, 2, 1, struct chain_data, label_bytes),
	END_F,
};

static const struct field normalize_fields[] = {
	SKIP_F("mean", OPT), SKIP_F("std", OPT), END_F,
};

static const struct field augment_fields[] = {
	INT_RANGE_F("crop", 0, 64, 0, struct chain_data, crop),
	BOOL_F("flip", 0, struct chain_data, flip),
	END_F,
};

/* one entry of "shape" (its offset moved to the entry), and "label" as a column number */
static const struct field shape_field =
	INT_RANGE_F("shape", 1, 4096, 0, struct chain_data, shape);
static const struct field label_col_field =
	INT_F("label", OPT, 0, -1, struct chain_data, label_col);
/* mean and std: the number for every channel, then one entry of a per-channel array */
static const struct field mean_fields[2] = {
	NUM_F("mean", R_ANY, 0, struct chain_data, mean), {"mean", F_NUM, OPT, R_ANY, 0, 0},
};
static const struct field std_fields[2] = {
	NUM_F("std", R_GT0, 1, struct chain_data, std), {"std", F_NUM, OPT, R_GT0, 1, 0},
};

/* "a, b or c" from the names of the formats whose mask has bit (all formats: bit 0). */
static const char *format_names(unsigned bit, char *buf, size_t n)
{
	size_t len = 0, k = 0, count = 0;
	for (size_t i = 0; i < NFORMATS; i++)
		count += !bit || (data_formats[i].keys & bit);
	buf[0] = '\0';
	for (size_t i = 0; i < NFORMATS && len < n; i++) {
		if (bit && !(data_formats[i].keys & bit))
			continue;
		k++;
		len += snprintf(buf + len, n - len, "%s%s", k == 1 ? "" : k == count ? " or " : ", ",
				data_formats[i].name);
	}
	return buf;
}

static int format_parse(struct pctx *c, json_t *v, const struct data_format **out)
{
	char name[32], known[128];
	int rc;
	*out = &data_formats[0];
	if (!v)
		return 0;
	if ((rc = chain_string(c, "data.format", v, name, sizeof name)))
		return rc;
	for (size_t i = 0; i < NFORMATS; i++)
		if (strcmp(data_formats[i].name, name) == 0) {
			*out = &data_formats[i];
			return 0;
		}
	return chain_bad(c, "data.format", "format '%s' is not supported (supported: %s)", name,
			 format_names(0, known, sizeof known));
}

/* Options present in o that the format f does not take are refused by name. */
static int format_keys_check(struct pctx *c, json_t *o, const struct data_format *f)
{
	char jp[JP_LEN], which[128];
	for (size_t i = 0; i < sizeof format_keys / sizeof format_keys[0]; i++) {
		unsigned bit = format_keys[i].bit;
		if (!json_object_get(o, format_keys[i].key) || (f->keys & bit))
			continue;
		format_names(bit, which, sizeof which);
		return chain_bad(c, chain_jp_key(jp, "data", format_keys[i].key), "only format%s %s "
				 "take%s this option (this chain's format is '%s')",
				 strstr(which, " or ") ? "s" : "", which,
				 strstr(which, " or ") ? "" : "s", f->name);
	}
	return 0;
}

/* "train"/"test" at jp in the format's form, each path resolved against dir. */
static int files_parse(struct pctx *c, const char *jp, json_t *v, const struct data_format *f,
		       const char *dir, char out[CHAIN_MAX_FILES][CHAIN_PATH_LEN], int *n)
{
	char sub[JP_LEN], name[CHAIN_PATH_LEN];
	int one = json_is_string(v) && f->files != FILES_PAIR;
	size_t len = one ? 1 : json_array_size(v);
	if (!one && (f->files == FILES_ONE || !json_is_array(v) ||
		     (f->files == FILES_PAIR && len != 2) || len < 1 || len > CHAIN_MAX_FILES))
		return chain_bad(c, jp, "expected %s for format '%s'", f->what, f->name);
	for (size_t i = 0; i < len; i++) {
		const char *ijp = one ? jp : chain_jp_idx(sub, jp, i);
		int rc = chain_string(c, ijp, one ? v : json_array_get(v, i), name, sizeof name);
		if (rc || (rc = chain_path_join(c, ijp, dir, name, out[i])))
			return rc;
		if (!name[0])
			return chain_bad(c, ijp, "expected a non-empty path");
	}
	*n = (int)len;
	return 0;
}

/* One of "mean"/"std": a number for every channel (stored by f[0]), or an array of one per
 * channel (each checked by f[1] and stored in per[]). */
static int norm_values(struct pctx *c, const char *jp, json_t *v, const struct field f[2],
		       struct chain_data *d, double *per, int *n)
{
	char sub[JP_LEN];
	int rc;
	if (!json_is_array(v))
		return chain_field_store(c, jp, v, &f[0], d);
	if (json_array_size(v) < 1 || json_array_size(v) > CHAIN_MAX_CHANNELS)
		return chain_bad(c, jp, "expected 1 to %d values, one per channel, got %zu",
				 CHAIN_MAX_CHANNELS, json_array_size(v));
	*n = (int)json_array_size(v);
	for (int i = 0; i < *n; i++)
		if ((rc = chain_field_store(c, chain_jp_idx(sub, jp, (size_t)i),
					    json_array_get(v, (size_t)i), &f[1], &per[i])))
			return rc;
	return 0;
}

/* "normalize": "[0,1]", "auto" or {"mean": M or [...], "std": S or [...]}. */
static int norm_parse(struct pctx *c, json_t *v, struct chain_data *d)
{
	const char *jp = "data.normalize";
	int nm = 0, ns = 0, rc;
	d->mean = 0;
	d->std = 1;
	if (!v || (json_is_string(v) && strcmp(json_string_value(v), "[0,1]") == 0))
		return 0;
	if (json_is_string(v) && strcmp(json_string_value(v), "auto") == 0) {
		d->norm = NORM_AUTO;
		return 0;
	}
	if (!json_is_object(v))
		return chain_bad(c, jp, "expected \"[0,1]\", \"auto\" or {\"mean\": M, \"std\": S}");
	if ((rc = chain_fields(c, jp, v, normalize_fields, d)))
		return rc;
	d->norm = NORM_GIVEN;
	json_t *m = json_object_get(v, "mean"), *s = json_object_get(v, "std");
	if ((m && (rc = norm_values(c, "data.normalize.mean", m, mean_fields, d, d->mean_c, &nm))) ||
	    (s && (rc = norm_values(c, "data.normalize.std", s, std_fields, d, d->std_c, &ns))))
		return rc;
	if (nm && ns && nm != ns)
		return chain_bad(c, jp, "'mean' has %d values but 'std' has %d", nm, ns);
	d->nmean = NK_MAX(nm, ns);
	for (int i = 0; d->nmean && i < d->nmean; i++) {  /* a number counts for every channel */
		if (!nm)
			d->mean_c[i] = d->mean;
		if (!ns)
			d->std_c[i] = d->std;
	}
	if (d->nmean) {
		d->mean = 0;
		d->std = 1;
	}
	return 0;
}

/* "shape": [C, H, W]: what images and csv samples are made into; for idx and cifar the shape the
 * files must have (it lets a stage that cannot read the data set know its input). Images take 1
 * or 3 channels. */
static int shape_parse(struct pctx *c, json_t *v, const struct data_format *f, struct chain_data *d)
{
	char sub[JP_LEN];
	int rc;
	if (!v)
		return 0;
	if (!json_is_array(v) || json_array_size(v) != 3)
		return chain_bad(c, "data.shape", "expected [C, H, W], got %s", chain_type_name(v));
	for (size_t i = 0; i < 3; i++) {
		struct field fi = shape_field;
		fi.off += i * sizeof d->shape[0];
		if ((rc = chain_field_store(c, chain_jp_idx(sub, "data.shape", i), json_array_get(v, i),
					    &fi, d)))
			return rc;
	}
	if (strcmp(f->name, "images") == 0 && d->shape[0] != 1 && d->shape[0] != 3)
		return chain_bad(c, "data.shape[0]", "images are converted to 1 (grey) or 3 (RGB) "
				 "channels, got %d", d->shape[0]);
	if ((long long)d->shape[0] * d->shape[1] * d->shape[2] > (1 << 24))
		return chain_bad(c, "data.shape", "%d x %d x %d values per sample is too many",
				 d->shape[0], d->shape[1], d->shape[2]);
	return 0;
}

/* "label": csv: a column index or a header name; cifar: "fine" or "coarse" (2 label bytes). */
static int label_parse(struct pctx *c, json_t *v, const struct data_format *f,
		       struct chain_data *d)
{
	const char *jp = "data.label";
	d->label_col = -1;
	if (!v)
		return 0;
	if (strcmp(f->name, "cifar") == 0) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		if (strcmp(s, "fine") != 0 && strcmp(s, "coarse") != 0)
			return chain_bad(c, jp, "expected \"fine\" or \"coarse\"");
		if (d->label_bytes != 2)
			return chain_bad(c, jp, "records with one label byte (CIFAR-10) have one label; "
					 "\"fine\" and \"coarse\" need \"label_bytes\": 2 (CIFAR-100)");
		d->coarse = strcmp(s, "coarse") == 0;
		return 0;
	}
	if (json_is_string(v)) {
		int rc = chain_string(c, jp, v, d->label_name, sizeof d->label_name);
		if (rc)
			return rc;
		if (!d->label_name[0])
			return chain_bad(c, jp, "expected a column name, got an empty string");
		if (!d->header)
			return chain_bad(c, jp, "a label column named '%s' needs \"header\": true",
					 d->label_name);
		return 0;
	}
	if (!json_is_integer(v))
		return chain_bad(c, jp, "expected a column number (0 = first) or a header name, got %s",
				 chain_type_name(v));
	return chain_field_store(c, jp, v, &label_col_field, d);
}

static int features_parse(struct pctx *c, json_t *v, struct chain_data *d)
{
	static const char *const names[] = {[FEAT_AUTO] = "auto", [FEAT_BYTES] = "bytes",
					    [FEAT_FLOAT] = "float"};
	for (size_t i = 0; v && i < sizeof names / sizeof names[0]; i++)
		if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0) {
			d->features = (enum chain_features)i;
			return 0;
		}
	return v ? chain_bad(c, "data.features", "expected \"auto\", \"bytes\" or \"float\"") : 0;
}

/* Format-specific options; defaults first so that absent keys leave sane values. */
static int format_opts_parse(struct pctx *c, json_t *o, const struct data_format *f,
			     struct chain_data *d)
{
	int rc;
	if (strcmp(f->name, "images") == 0) {
		d->shape[0] = 3;
		d->shape[1] = d->shape[2] = 32;
	}
	if ((rc = format_keys_check(c, o, f)) ||
	    (rc = shape_parse(c, json_object_get(o, "shape"), f, d)) ||
	    (rc = label_parse(c, json_object_get(o, "label"), f, d)) ||
	    (rc = features_parse(c, json_object_get(o, "features"), d)))
		return rc;
	return 0;
}

int chain_data_parse(struct pctx *c, json_t *o, struct chain_data *d)
{
	char dir[CHAIN_PATH_LEN], rel[CHAIN_PATH_LEN];
	const struct data_format *f;
	json_t *v;
	int rc;
	if ((rc = chain_fields(c, "data", o, data_fields, d)))
		return rc;
	c->classes = d->classes;
	if ((rc = format_parse(c, json_object_get(o, "format"), &f)))
		return rc;
	snprintf(d->format, sizeof d->format, "%s", f->name);
	if ((rc = norm_parse(c, json_object_get(o, "normalize"), d)) ||
	    (rc = chain_fields(c, "data.augment", json_object_get(o, "augment"), augment_fields, d)) ||
	    (rc = format_opts_parse(c, o, f, d)))
		return rc;
	snprintf(dir, sizeof dir, "%s", c->base_dir ? c->base_dir : "");
	if ((v = json_object_get(o, "dir"))) {
		if ((rc = chain_string(c, "data.dir", v, rel, sizeof rel)) ||
		    (rc = chain_path_join(c, "data.dir", c->base_dir, rel, dir)))
			return rc;
	}
	if ((rc = files_parse(c, "data.train", json_object_get(o, "train"), f, dir, d->train,
			      &d->ntrain)))
		return rc;
	if ((v = json_object_get(o, "test"))) {
		if ((rc = files_parse(c, "data.test", v, f, dir, d->test, &d->ntest)))
			return rc;
		d->has_test = 1;
	}
	return 0;
}
