/* Datasets: the table of readers behind ds_load, split checks, statistics for "normalize": "auto"
 * and the batcher configuration a chain's data block describes. */
#include "data/ds_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ds *ds_alloc(int n, int c, int h, int w, int classes, int floats, const char *what,
		    char *err)
{
	size_t sample = (size_t)c * h * w, bytes = (size_t)n * sample * (floats ? sizeof(float) : 1);
	struct ds *d = calloc(1, sizeof *d);

	if (d) {
		d->n = n;
		d->c = c;
		d->h = h;
		d->w = w;
		d->classes = classes;
		d->y = malloc(n > 0 ? (size_t)n : 1);
		if (floats)
			d->xf = malloc(bytes ? bytes : 1);
		else
			d->x = malloc(bytes ? bytes : 1);
	}
	if (!d || !d->y || (!d->x && !d->xf)) {
		ds_free(d);
		nk_errf(err, NK_ENOMEM, "%s: cannot allocate %zu bytes for %d samples", what, bytes, n);
		return NULL;
	}
	return d;
}

void ds_note(struct ds *d, const char *fmt, ...)
{
	char line[NK_ERR_LEN];
	va_list ap;

	d->skipped++;
	if (d->nnotes >= DS_MAX_NOTES)
		return;
	if (!d->notes && !(d->notes = calloc(DS_MAX_NOTES, sizeof *d->notes)))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if ((d->notes[d->nnotes] = strdup(line)))
		d->nnotes++;
}

int ds_to_floats(struct ds *d, char *err)
{
	size_t len = (size_t)d->n * d->c * d->h * d->w;
	float *xf;

	if (!d->x)
		return 0;
	if (!(xf = malloc(len ? len * sizeof *xf : 1)))
		return nk_errf(err, NK_ENOMEM, "cannot allocate %zu bytes to hold samples as floats",
			       len * sizeof *xf);
	for (size_t i = 0; i < len; i++)
		xf[i] = d->x[i];
	free(d->x);
	d->x = NULL;
	d->xf = xf;
	return 0;
}

/* Keep the first n samples and give the rest of the memory back. */
static void ds_truncate(struct ds *d, int n)
{
	size_t len = (size_t)n * d->c * d->h * d->w;
	void *p;

	d->n = n;
	if (d->x && (p = realloc(d->x, len)))
		d->x = p;
	if (d->xf && (p = realloc(d->xf, len * sizeof *d->xf)))
		d->xf = p;
	if ((p = realloc(d->y, (size_t)n)))
		d->y = p;
}

void ds_free(struct ds *d)
{
	if (!d)
		return;
	for (int i = 0; d->names && i < d->classes; i++)
		free(d->names[i]);
	for (int i = 0; i < d->nnotes; i++)
		free(d->notes[i]);
	free(d->names);
	free(d->notes);
	free(d->x);
	free(d->xf);
	free(d->y);
	free(d);
}

/* ---- one reader per format ---- */

static int load_idx(struct ds **out, const struct chain_data *d, int test, char *err)
{
	const char (*f)[CHAIN_PATH_LEN] = test ? d->test : d->train;
	return ds_idx_load(out, f[0], f[1], d->classes, err);
}

static int load_cifar(struct ds **out, const struct chain_data *d, int test, char *err)
{
	const char *files[CHAIN_MAX_FILES];
	int n = test ? d->ntest : d->ntrain;

	for (int i = 0; i < n && i < CHAIN_MAX_FILES; i++)
		files[i] = test ? d->test[i] : d->train[i];
	return ds_cifar_load(out, files, NK_MIN(n, CHAIN_MAX_FILES), d->label_bytes, d->coarse,
			     d->classes, err);
}

static int load_images(struct ds **out, const struct chain_data *d, int test, char *err)
{
	struct ds_images_cfg cfg = {
		.c = d->shape[0], .h = d->shape[1], .w = d->shape[2], .classes = d->classes,
		.strict = d->strict, .class_dir = test ? d->train[0] : NULL,
	};
	return ds_images_load(out, test ? d->test[0] : d->train[0], &cfg, err);
}

static int load_csv(struct ds **out, const struct chain_data *d, int test, char *err)
{
	struct ds_csv_cfg cfg = {
		.c = d->shape[0], .h = d->shape[1], .w = d->shape[2], .classes = d->classes,
		.header = d->header, .label_col = d->label_col, .label_name = d->label_name,
		.features = d->features,
	};
	return ds_csv_load(out, test ? d->test[0] : d->train[0], &cfg, err);
}

static const struct ds_format {
	const char *name;
	int (*load)(struct ds **out, const struct chain_data *d, int test, char *err);
} ds_formats[] = {
	{"idx", load_idx},
	{"cifar", load_cifar},
	{"images", load_images},
	{"csv", load_csv},
};

int ds_load(struct ds **out, const struct chain_data *d, int test_split, char err[NK_ERR_LEN])
{
	const char *name = d->format[0] ? d->format : "idx";
	int rc;

	*out = NULL;
	if (test_split && !d->has_test)
		return nk_errf(err, NK_EINVAL, "data: no \"test\" split to load");
	for (size_t i = 0; i < sizeof ds_formats / sizeof ds_formats[0]; i++) {
		if (strcmp(ds_formats[i].name, name) != 0)
			continue;
		rc = ds_formats[i].load(out, d, test_split, err);
		if (rc == 0 && !test_split && d->limit > 0 && d->limit < (*out)->n)
			ds_truncate(*out, d->limit);
		return rc;
	}
	return nk_errf(err, NK_EUNSUP, "data.format: no reader for format '%s'", name);
}

/* ---- both splits ---- */

int ds_check_pair(const struct ds *train, const struct ds *test, char err[NK_ERR_LEN])
{
	if (train->c != test->c || train->h != test->h || train->w != test->w)
		return nk_errf(err, NK_ESHAPE, "test split: samples are %d x %d x %d but the training "
			       "split's are %d x %d x %d", test->c, test->h, test->w, train->c,
			       train->h, train->w);
	if (train->classes != test->classes)
		return nk_errf(err, NK_EINVAL, "test split: %d classes but the training split has %d",
			       test->classes, train->classes);
	if (!train->xf != !test->xf)
		return nk_errf(err, NK_EFORMAT, "test split: values held as %s but the training split's "
			       "as %s (set data.features)", test->xf ? "floats" : "bytes",
			       train->xf ? "floats" : "bytes");
	for (int i = 0; train->names && test->names && i < train->classes; i++)
		if (strcmp(train->names[i], test->names[i]) != 0)
			return nk_errf(err, NK_EINVAL, "test split: class %d is '%s' but in the training "
				       "split it is '%s'", i, test->names[i], train->names[i]);
	return 0;
}

int ds_load_pair(struct ds **train, struct ds **test, const struct chain_data *d,
		 char err[NK_ERR_LEN])
{
	int rc = ds_load(train, d, 0, err);

	if (test)
		*test = NULL;
	if (rc || !test || !d->has_test)
		return rc;
	rc = ds_load(test, d, 1, err);
	if (rc == 0 && strcmp(d->format, "csv") == 0 && d->features == FEAT_AUTO &&
	    !(*train)->xf != !(*test)->xf)
		rc = ds_to_floats((*train)->xf ? *test : *train, err);
	if (rc == 0 && (rc = ds_check_pair(*train, *test, err))) {
		char why[NK_ERR_LEN];
		snprintf(why, sizeof why, "%s", err);
		nk_errf(err, rc, "%s: %s", d->test[0], why);
	}
	if (rc) {
		ds_free(*train);
		ds_free(*test);
		*train = *test = NULL;
	}
	return rc;
}

/* ---- normalisation ---- */

/* Mean and std of channel ch from a histogram of its bytes, in [0, 1] units. */
static void stats_bytes(const struct ds *d, int ch, float *mean, float *std)
{
	size_t plane = (size_t)d->h * d->w, sample = plane * d->c;
	uint64_t hist[256] = {0};
	double n = (double)d->n * plane, s = 0, ss = 0;

	for (int i = 0; i < d->n; i++) {
		const uint8_t *p = d->x + i * sample + ch * plane;
		for (size_t j = 0; j < plane; j++)
			hist[p[j]]++;
	}
	for (int v = 0; v < 256; v++) {
		s += (double)hist[v] * (v / 255.0);
		ss += (double)hist[v] * (v / 255.0) * (v / 255.0);
	}
	*mean = (float)(s / n);
	*std = (float)sqrt(fmax(ss / n - (s / n) * (s / n), 0));
}

/* The same for float storage, in two passes so that large offsets do not cost precision. */
static void stats_floats(const struct ds *d, int ch, float *mean, float *std)
{
	size_t plane = (size_t)d->h * d->w, sample = plane * d->c;
	double n = (double)d->n * plane, s = 0, ss = 0;

	for (int i = 0; i < d->n; i++)
		for (size_t j = 0; j < plane; j++)
			s += d->xf[i * sample + ch * plane + j];
	double m = s / n;
	for (int i = 0; i < d->n; i++)
		for (size_t j = 0; j < plane; j++) {
			double t = d->xf[i * sample + ch * plane + j] - m;
			ss += t * t;
		}
	*mean = (float)m;
	*std = (float)sqrt(ss / n);
}

void ds_stats(const struct ds *d, float *mean, float *std)
{
	for (int ch = 0; ch < d->c && ch < DS_MAX_CHANNELS; ch++) {
		if (d->x)
			stats_bytes(d, ch, &mean[ch], &std[ch]);
		else
			stats_floats(d, ch, &mean[ch], &std[ch]);
		if (!(std[ch] > 1e-6f))
			std[ch] = 1;
	}
}

int ds_batcher_cfg(struct batcher_cfg *cfg, const struct chain_data *d, const struct ds *train,
		   uint64_t seed, char err[NK_ERR_LEN])
{
	memset(cfg, 0, sizeof *cfg);
	cfg->batch = d->batch;
	cfg->shuffle = d->shuffle;
	cfg->seed = seed;
	cfg->mean = (float)d->mean;
	cfg->std = (float)d->std;
	cfg->crop = d->crop;
	cfg->flip = d->flip;
	if (d->norm == NORM_GIVEN && d->nmean > 0) {
		if (d->nmean != train->c)
			return nk_errf(err, NK_EINVAL, "data.normalize: %d values per channel given, but "
				       "the samples have %d channel%s", d->nmean, train->c,
				       train->c == 1 ? "" : "s");
		cfg->nchan = d->nmean;
		for (int i = 0; i < d->nmean; i++) {
			cfg->mean_c[i] = (float)d->mean_c[i];
			cfg->std_c[i] = (float)d->std_c[i];
		}
	} else if (d->norm == NORM_AUTO) {
		if (train->c > DS_MAX_CHANNELS)
			return nk_errf(err, NK_EINVAL, "data.normalize: \"auto\" handles at most %d "
				       "channels, the samples have %d", DS_MAX_CHANNELS, train->c);
		cfg->nchan = train->c;
		ds_stats(train, cfg->mean_c, cfg->std_c);
	}
	return 0;
}
