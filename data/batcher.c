/* Batcher: per-epoch Fisher-Yates order over a dataset, u8 pixels to normalised floats by table lookup. */
#include "data/ds.h"

#include <math.h>
#include <stdlib.h>

struct batcher {
	const struct ds *d;    /* borrowed; must outlive the batcher */
	struct batcher_cfg cfg;
	struct nk_rng rng;     /* advances once per epoch shuffle */
	int *order;            /* [n] sample indices of the current epoch */
	int pos;               /* next position in order */
	int epoch;             /* epochs completed */
	size_t sample;         /* c * h * w */
	float lut[256];        /* pixel value -> (p / 255 - mean) / std */
};

/* A fresh order for the current epoch: a permutation of the previous one when shuffling. */
static void batcher_shuffle(struct batcher *b)
{
	int *o = b->order;

	if (!b->cfg.shuffle)
		return;
	for (int i = b->d->n - 1; i > 0; i--) {
		int j = (int)rng_below(&b->rng, (uint32_t)i + 1);
		int t = o[i];
		o[i] = o[j];
		o[j] = t;
	}
}

struct batcher *batcher_new(const struct ds *d, const struct batcher_cfg *cfg)
{
	struct batcher *b;

	if (!d || !cfg || d->n <= 0 || !d->x || cfg->batch <= 0 || cfg->std == 0 ||
	    !isfinite(cfg->std) || !isfinite(cfg->mean))
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->order = malloc((size_t)d->n * sizeof(*b->order));
	if (!b->order) {
		free(b);
		return NULL;
	}
	b->d = d;
	b->cfg = *cfg;
	b->sample = (size_t)d->c * d->h * d->w;
	rng_seed(&b->rng, cfg->seed);
	for (int i = 0; i < d->n; i++)
		b->order[i] = i;
	for (int p = 0; p < 256; p++)
		b->lut[p] = ((float)p / 255.0f - cfg->mean) / cfg->std;
	batcher_shuffle(b);
	return b;
}

void batcher_free(struct batcher *b)
{
	if (!b)
		return;
	free(b->order);
	free(b);
}

int batcher_next(struct batcher *b, float *x, int32_t *y)
{
	const struct ds *d = b->d;
	int count = NK_MIN(b->cfg.batch, d->n - b->pos);

	if (count <= 0) {
		b->epoch++;
		b->pos = 0;
		batcher_shuffle(b);
		return 0;
	}
	for (int i = 0; i < count; i++) {
		int k = b->order[b->pos + i];
		const uint8_t *src = d->x + (size_t)k * b->sample;
		float *dst = x + (size_t)i * b->sample;

		for (size_t j = 0; j < b->sample; j++)
			dst[j] = b->lut[src[j]];
		if (y)
			y[i] = d->y ? d->y[k] : 0;
	}
	b->pos += count;
	return count;
}

int batcher_epoch(const struct batcher *b)
{
	return b->epoch;
}

int batcher_batches(const struct batcher *b)
{
	return b->d->n / b->cfg.batch + (b->d->n % b->cfg.batch != 0);
}

void batcher_rewind(struct batcher *b)
{
	b->pos = 0;
}
