/* Batcher: per-epoch Fisher-Yates order over a dataset; bytes to normalised floats by per-channel
 * table lookup (floats by a per-channel affine map); seeded crop and flip augmentation. */
#include "data/ds.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define AUG_STREAM 0x6a09e667f3bcc909ULL /* augmentation draws: a stream apart from the shuffle */

struct batcher {
	const struct ds *d;    /* borrowed; must outlive the batcher */
	struct batcher_cfg cfg;
	struct nk_rng rng;     /* advances once per epoch shuffle */
	struct nk_rng aug;     /* crop offsets and flips, drawn per sample */
	struct nk_rng aug0;    /* aug as it was at the start of the epoch, for rewind */
	int *order;            /* [n] sample indices of the current epoch */
	int pos;               /* next position in order */
	int epoch;             /* epochs completed */
	size_t plane, sample;  /* h * w, c * h * w */
	float *lut;            /* bytes: [c][256] p -> (p / 255 - mean_c) / std_c;
				* floats: [c][2] scale, shift: v -> v * scale + shift */
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

static int cfg_ok(const struct ds *d, const struct batcher_cfg *cfg)
{
	if (!d || !cfg || d->n <= 0 || (!d->x && !d->xf) || cfg->batch <= 0 || cfg->crop < 0 ||
	    cfg->std == 0 || !isfinite(cfg->std) || !isfinite(cfg->mean))
		return 0;
	if (cfg->nchan != 0 && (cfg->nchan != d->c || cfg->nchan > DS_MAX_CHANNELS))
		return 0;
	for (int i = 0; i < cfg->nchan; i++)
		if (cfg->std_c[i] == 0 || !isfinite(cfg->std_c[i]) || !isfinite(cfg->mean_c[i]))
			return 0;
	return 1;
}

/* The per-channel tables: mean and std of channel ch are the cfg's per-channel values if given,
 * else its scalars. */
static int batcher_tables(struct batcher *b)
{
	const struct ds *d = b->d;

	b->lut = malloc((size_t)d->c * (d->x ? 256 : 2) * sizeof *b->lut);
	if (!b->lut)
		return -1;
	for (int ch = 0; ch < d->c; ch++) {
		float m = b->cfg.nchan ? b->cfg.mean_c[ch] : b->cfg.mean;
		float s = b->cfg.nchan ? b->cfg.std_c[ch] : b->cfg.std;
		if (d->x) {
			for (int p = 0; p < 256; p++)
				b->lut[ch * 256 + p] = ((float)p / 255.0f - m) / s;
		} else {
			b->lut[2 * ch] = 1.0f / s;
			b->lut[2 * ch + 1] = -m / s;
		}
	}
	return 0;
}

struct batcher *batcher_new(const struct ds *d, const struct batcher_cfg *cfg)
{
	struct batcher *b;

	if (!cfg_ok(d, cfg))
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->d = d;
	b->cfg = *cfg;
	b->order = malloc((size_t)d->n * sizeof(*b->order));
	if (!b->order || batcher_tables(b) != 0) {
		batcher_free(b);
		return NULL;
	}
	b->plane = (size_t)d->h * d->w;
	b->sample = (size_t)d->c * b->plane;
	rng_seed(&b->rng, cfg->seed);
	rng_seed(&b->aug, cfg->seed ^ AUG_STREAM);
	b->aug0 = b->aug;
	for (int i = 0; i < d->n; i++)
		b->order[i] = i;
	batcher_shuffle(b);
	return b;
}

void batcher_free(struct batcher *b)
{
	if (!b)
		return;
	free(b->order);
	free(b->lut);
	free(b);
}

/* Sample k into dst [c][h][w], normalised, as stored. */
static void copy_plain(const struct batcher *b, int k, float *dst)
{
	const struct ds *d = b->d;

	for (int ch = 0; ch < d->c; ch++) {
		size_t at = (size_t)k * b->sample + ch * b->plane;
		float *o = dst + ch * b->plane;
		if (d->x) {
			const float *lut = b->lut + ch * 256;
			const uint8_t *src = d->x + at;
			for (size_t j = 0; j < b->plane; j++)
				o[j] = lut[src[j]];
		} else {
			const float *src = d->xf + at, sc = b->lut[2 * ch], sh = b->lut[2 * ch + 1];
			for (size_t j = 0; j < b->plane; j++)
				o[j] = src[j] * sc + sh;
		}
	}
}

/* Normalised value of stored element idx of channel ch; outside the image (idx < 0): a zero. */
static inline float value(const struct batcher *b, int ch, ptrdiff_t idx)
{
	if (b->d->x)
		return b->lut[ch * 256 + (idx < 0 ? 0 : b->d->x[idx])];
	return idx < 0 ? b->lut[2 * ch + 1] : b->d->xf[idx] * b->lut[2 * ch] + b->lut[2 * ch + 1];
}

/* Sample k into dst, cropped at a random offset in [-crop, crop] from its zero-padded frame, then
 * mirrored left-right with probability 1/2 (as random-crop-then-flip pipelines do). */
static void copy_augmented(struct batcher *b, int k, float *dst)
{
	const struct ds *d = b->d;
	int p = b->cfg.crop, dy = 0, dx = 0, flip = 0;

	if (p > 0) {
		dy = (int)rng_below(&b->aug, 2 * (uint32_t)p + 1) - p;
		dx = (int)rng_below(&b->aug, 2 * (uint32_t)p + 1) - p;
	}
	if (b->cfg.flip)
		flip = (int)rng_below(&b->aug, 2);
	for (int ch = 0; ch < d->c; ch++) {
		ptrdiff_t base = (ptrdiff_t)k * (ptrdiff_t)b->sample + ch * (ptrdiff_t)b->plane;
		for (int i = 0; i < d->h; i++) {
			int sy = i + dy;
			float *o = dst + ch * b->plane + (size_t)i * d->w;
			for (int j = 0; j < d->w; j++) {
				int sx = (flip ? d->w - 1 - j : j) + dx;
				int in = sy >= 0 && sy < d->h && sx >= 0 && sx < d->w;
				o[j] = value(b, ch, in ? base + (ptrdiff_t)sy * d->w + sx : -1);
			}
		}
	}
}

int batcher_next(struct batcher *b, float *x, int32_t *y)
{
	const struct ds *d = b->d;
	int count = NK_MIN(b->cfg.batch, d->n - b->pos);
	int augment = b->cfg.crop > 0 || b->cfg.flip;

	if (count <= 0) {
		b->epoch++;
		b->pos = 0;
		batcher_shuffle(b);
		b->aug0 = b->aug;
		return 0;
	}
	for (int i = 0; i < count; i++) {
		int k = b->order[b->pos + i];
		float *dst = x + (size_t)i * b->sample;

		if (augment)
			copy_augmented(b, k, dst);
		else
			copy_plain(b, k, dst);
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
	b->aug = b->aug0;
}

struct batcher_cfg batcher_cfg_eval(const struct batcher_cfg *train)
{
	struct batcher_cfg c = *train;
	c.shuffle = c.crop = c.flip = 0;
	return c;
}
