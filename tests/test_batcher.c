/* Batcher: each sample once per epoch, seeded shuffles, short last batch, epoch ends, normalisation. */
#include <criterion/criterion.h>

#include <math.h>

#include "data/ds.h"

#define N 1000
#define SAMPLE 4 /* c = 1, h = w = 2 */

/* A dataset whose sample i holds (i & 255, i >> 8, 7, 255 - (i & 255)) and label i % 10. */
static struct ds *make_ds(int n)
{
	struct ds *d = calloc(1, sizeof(*d));

	cr_assert(d);
	d->n = n;
	d->c = 1;
	d->h = 2;
	d->w = 2;
	d->classes = 10;
	d->x = malloc((size_t)n * SAMPLE);
	d->y = malloc((size_t)n);
	cr_assert(d->x && d->y);
	for (int i = 0; i < n; i++) {
		uint8_t *p = d->x + (size_t)i * SAMPLE;
		p[0] = i & 255;
		p[1] = i >> 8;
		p[2] = 7;
		p[3] = 255 - (i & 255);
		d->y[i] = i % 10;
	}
	return d;
}

static struct batcher *make(const struct ds *d, int batch, int shuffle, uint64_t seed)
{
	struct batcher_cfg cfg = {.batch = batch, .shuffle = shuffle, .seed = seed, .mean = 0, .std = 1};
	struct batcher *b = batcher_new(d, &cfg);

	cr_assert(b);
	return b;
}

/* Index of a sample from its floats (mean 0, std 1), checking it is whole and its label fits. */
static int decode(const float *x, int32_t y)
{
	int lo = (int)lrintf(x[0] * 255), hi = (int)lrintf(x[1] * 255), i = lo | hi << 8;

	cr_assert_float_eq(x[2], 7 / 255.0f, 1e-6);
	cr_assert_eq((int)lrintf(x[3] * 255), 255 - lo);
	cr_assert_eq(y, i % 10, "label %d for sample %d", y, i);
	return i;
}

/* One epoch's sample order into order[N]; checks the batch sizes and the closing 0. */
static void epoch_order(struct batcher *b, int n, int batch, int *order)
{
	float x[64 * SAMPLE];
	int32_t y[64];
	int got = 0, k;

	cr_assert_leq(batch, 64);
	while ((k = batcher_next(b, x, y)) > 0) {
		cr_assert_eq(k, NK_MIN(batch, n - got), "batch of %d after %d samples", k, got);
		for (int i = 0; i < k; i++)
			order[got + i] = decode(x + i * SAMPLE, y[i]);
		got += k;
	}
	cr_assert_eq(got, n);
}

static void check_permutation(const int *order, int n)
{
	char *seen = calloc(n, 1);

	for (int i = 0; i < n; i++) {
		cr_assert(order[i] >= 0 && order[i] < n);
		cr_assert_not(seen[order[i]], "sample %d twice", order[i]);
		seen[order[i]] = 1;
	}
	free(seen);
}

static int is_identity(const int *order, int n)
{
	for (int i = 0; i < n; i++)
		if (order[i] != i)
			return 0;
	return 1;
}

static void free_ds(struct ds *d)
{
	free(d->x);
	free(d->y);
	free(d);
}

Test(batcher, in_order_without_shuffle)
{
	struct ds *d = make_ds(N);
	struct batcher *b = make(d, 64, 0, 1);
	int order[N];

	for (int e = 0; e < 2; e++) {
		epoch_order(b, N, 64, order);
		cr_assert(is_identity(order, N), "epoch %d", e);
	}
	batcher_free(b);
	free_ds(d);
}

Test(batcher, every_sample_once_per_epoch)
{
	struct ds *d = make_ds(N);
	struct batcher *b = make(d, 48, 1, 42);
	int order[N];

	for (int e = 0; e < 3; e++) {
		epoch_order(b, N, 48, order);
		check_permutation(order, N);
		cr_assert_eq(batcher_epoch(b), e + 1);
	}
	batcher_free(b);
	free_ds(d);
}

Test(batcher, shuffle_differs_from_identity_and_between_epochs)
{
	struct ds *d = make_ds(N);
	struct batcher *b = make(d, 64, 1, 7);
	int first[N], second[N];

	epoch_order(b, N, 64, first);
	epoch_order(b, N, 64, second);
	cr_assert_not(is_identity(first, N));
	cr_assert_not(is_identity(second, N));
	cr_assert_neq(memcmp(first, second, sizeof(first)), 0, "epochs share an order");
	batcher_free(b);
	free_ds(d);
}

/* First epochs of 2400 seeds over 4 samples: each of the 24 orders about 100 times (an off-by-one
 * in Fisher-Yates, e.g. Sattolo's cycles-only variant, skews or leaves out some). Later epochs
 * permute the previous order, which would hide such a bias, so each seed gets a fresh batcher. */
Test(batcher, shuffle_is_uniform)
{
	struct ds *d = make_ds(4);
	int count[256] = {0}, order[4], seen = 0;

	for (int s = 0; s < 2400; s++) {
		struct batcher *b = make(d, 4, 1, (uint64_t)s);
		epoch_order(b, 4, 4, order);
		count[order[0] | order[1] << 2 | order[2] << 4 | order[3] << 6]++;
		batcher_free(b);
	}
	for (int k = 0; k < 256; k++)
		if (count[k]) {
			seen++;
			cr_assert(count[k] > 60 && count[k] < 140, "order %#x seen %d times", k,
				  count[k]);
		}
	cr_assert_eq(seen, 24);
	free_ds(d);
}

Test(batcher, same_seed_same_order)
{
	struct ds *d = make_ds(N);
	struct batcher *a = make(d, 64, 1, 99), *b = make(d, 64, 1, 99), *c = make(d, 64, 1, 100);
	int oa[N], ob[N], oc[N];

	for (int e = 0; e < 3; e++) {
		epoch_order(a, N, 64, oa);
		epoch_order(b, N, 64, ob);
		epoch_order(c, N, 64, oc);
		cr_assert_eq(memcmp(oa, ob, sizeof(oa)), 0, "epoch %d differs for one seed", e);
		cr_assert_neq(memcmp(oa, oc, sizeof(oa)), 0, "epoch %d same for two seeds", e);
	}
	batcher_free(a);
	batcher_free(b);
	batcher_free(c);
	free_ds(d);
}

Test(batcher, short_last_batch_then_zero_once)
{
	struct ds *d = make_ds(N);
	struct batcher *b = make(d, 64, 1, 3);
	float x[64 * SAMPLE];
	int32_t y[64];

	cr_assert_eq(batcher_batches(b), 16);
	for (int e = 0; e < 2; e++) {
		for (int i = 0; i < 15; i++)
			cr_assert_eq(batcher_next(b, x, y), 64);
		cr_assert_eq(batcher_epoch(b), e);
		cr_assert_eq(batcher_next(b, x, y), 1000 - 15 * 64);
		cr_assert_eq(batcher_epoch(b), e, "epoch ends at the 0, not the short batch");
		cr_assert_eq(batcher_next(b, x, y), 0);
		cr_assert_eq(batcher_epoch(b), e + 1);
	}
	cr_assert_eq(batcher_next(b, x, y), 64, "next epoch starts after a single 0");
	batcher_free(b);
	free_ds(d);
}

Test(batcher, batch_counts)
{
	struct ds *d = make_ds(N);
	struct batcher *b;
	float x[SAMPLE];
	int32_t y[1];

	b = make(d, 1000, 0, 1);
	cr_assert_eq(batcher_batches(b), 1);
	batcher_free(b);
	b = make(d, 1001, 0, 1);
	cr_assert_eq(batcher_batches(b), 1);
	batcher_free(b);
	b = make(d, 999, 0, 1);
	cr_assert_eq(batcher_batches(b), 2);
	batcher_free(b);
	b = make(d, 1, 1, 1);
	cr_assert_eq(batcher_batches(b), 1000);
	for (int i = 0; i < 1000; i++)
		cr_assert_eq(batcher_next(b, x, y), 1);
	cr_assert_eq(batcher_next(b, x, y), 0);
	batcher_free(b);
	free_ds(d);
}

Test(batcher, normalisation)
{
	struct ds d = {.n = 256, .c = 1, .h = 1, .w = 1, .classes = 10};
	uint8_t px[256], lb[256];
	float x[256];
	int32_t y[256];
	const float means[] = {0, 0.2860f, 0.5f}, stds[] = {1, 0.3530f, 0.25f};

	for (int i = 0; i < 256; i++) {
		px[i] = 255 - i;
		lb[i] = i % 10;
	}
	d.x = px;
	d.y = lb;
	for (int k = 0; k < 3; k++) {
		struct batcher_cfg cfg = {.batch = 256, .mean = means[k], .std = stds[k]};
		struct batcher *b = batcher_new(&d, &cfg);

		cr_assert(b);
		cr_assert_eq(batcher_next(b, x, y), 256);
		for (int i = 0; i < 256; i++) {
			double want = ((255 - i) / 255.0 - means[k]) / stds[k];
			cr_assert(fabs(x[i] - want) <= 1e-6 * fmax(1, fabs(want)),
				  "pixel %d, mean %g std %g: %g, want %g", 255 - i, means[k], stds[k],
				  x[i], want);
			cr_assert_eq(y[i], i % 10);
		}
		batcher_free(b);
	}
	/* spot values by hand: 0 -> -mean/std, 255 -> (1 - mean)/std */
	struct batcher_cfg cfg = {.batch = 256, .mean = 0.5f, .std = 0.25f};
	struct batcher *b = batcher_new(&d, &cfg);
	cr_assert_eq(batcher_next(b, x, y), 256);
	cr_assert_float_eq(x[0], 2.0f, 1e-6);
	cr_assert_float_eq(x[255], -2.0f, 1e-6);
	cr_assert_float_eq(x[255 - 51], (0.2f - 0.5f) / 0.25f, 1e-6);
	batcher_free(b);
}

Test(batcher, rewind_repeats_order)
{
	struct ds *d = make_ds(N);
	struct batcher *b = make(d, 64, 1, 5);
	int before[N], after[N], next[N];
	float x[64 * SAMPLE];
	int32_t y[64];

	for (int i = 0; i < 5; i++)
		cr_assert_eq(batcher_next(b, x, y), 64);
	batcher_rewind(b);
	epoch_order(b, N, 64, before);
	cr_assert_eq(batcher_epoch(b), 1);
	/* second epoch: three batches, rewind, then the whole epoch starts with those three */
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(batcher_next(b, x, y), 64);
		for (int j = 0; j < 64; j++)
			after[64 * i + j] = decode(x + j * SAMPLE, y[j]);
	}
	batcher_rewind(b);
	epoch_order(b, N, 64, next);
	cr_assert_eq(memcmp(after, next, 3 * 64 * sizeof(int)), 0, "rewind changed the order");
	cr_assert_neq(memcmp(before, next, sizeof(next)), 0);
	cr_assert_eq(batcher_epoch(b), 2);
	batcher_free(b);

	/* a twin with the same seed, rewound mid-epoch twice, still sees epoch 0's order */
	b = make(d, 64, 1, 5);
	cr_assert_eq(batcher_next(b, x, y), 64);
	batcher_rewind(b);
	cr_assert_eq(batcher_next(b, x, y), 64);
	cr_assert_eq(batcher_next(b, x, y), 64);
	batcher_rewind(b);
	epoch_order(b, N, 64, after);
	cr_assert_eq(memcmp(before, after, sizeof(after)), 0, "rewind changed the order");
	cr_assert_eq(batcher_epoch(b), 1);
	batcher_free(b);
	free_ds(d);
}

Test(batcher, rejects_bad_config)
{
	struct ds *d = make_ds(10);
	struct batcher_cfg ok = {.batch = 4, .mean = 0, .std = 1}, bad;

	cr_assert_null(batcher_new(NULL, &ok));
	bad = ok;
	bad.batch = 0;
	cr_assert_null(batcher_new(d, &bad));
	bad.batch = -3;
	cr_assert_null(batcher_new(d, &bad));
	bad = ok;
	bad.std = 0;
	cr_assert_null(batcher_new(d, &bad));
	bad.std = NAN;
	cr_assert_null(batcher_new(d, &bad));
	struct batcher *b = batcher_new(d, &ok);
	cr_assert_not_null(b);
	batcher_free(b);
	batcher_free(NULL);
	free_ds(d);
}

/* ---- float storage, per-channel normalisation ---- */

Test(batcher, float_storage_used_as_is)
{
	float v[4] = {-1, 0, 2.5f, 100};
	uint8_t lb[4] = {0, 1, 2, 3};
	struct ds d = {.n = 4, .c = 1, .h = 1, .w = 1, .classes = 4, .xf = v, .y = lb};
	struct batcher_cfg cfg = {.batch = 4, .mean = 0.5f, .std = 2};
	struct batcher *b = batcher_new(&d, &cfg);
	float x[4];
	int32_t y[4];

	cr_assert(b);
	cr_assert_eq(batcher_next(b, x, y), 4);
	for (int i = 0; i < 4; i++) {
		cr_assert_float_eq(x[i], (v[i] - 0.5f) / 2, 1e-6, "value %d: %g", i, x[i]);
		cr_assert_eq(y[i], i);
	}
	batcher_free(b);
}

Test(batcher, per_channel_normalisation)
{
	uint8_t px[2 * 2 * 2] = {0, 255, 51, 102, 10, 20, 30, 40}; /* one sample, 2 channels */
	float fv[8] = {0, 1, 2, 3, 4, 5, 6, 7}, x[8];
	uint8_t lb[1] = {0};
	struct ds d = {.n = 1, .c = 2, .h = 2, .w = 2, .classes = 2, .x = px, .y = lb};
	struct batcher_cfg cfg = {.batch = 1, .mean = 9, .std = 9, .nchan = 2,
				  .mean_c = {0.5f, 0}, .std_c = {0.25f, 2}};
	struct batcher *b = batcher_new(&d, &cfg);

	cr_assert(b);
	cr_assert_eq(batcher_next(b, x, NULL), 1);
	for (int i = 0; i < 8; i++) {
		int ch = i / 4;
		float want = (px[i] / 255.0f - cfg.mean_c[ch]) / cfg.std_c[ch];
		cr_assert_float_eq(x[i], want, 1e-5, "element %d: %g, want %g", i, x[i], want);
	}
	batcher_free(b);
	d.x = NULL;
	d.xf = fv;
	b = batcher_new(&d, &cfg);
	cr_assert(b);
	cr_assert_eq(batcher_next(b, x, NULL), 1);
	for (int i = 0; i < 8; i++)
		cr_assert_float_eq(x[i], (fv[i] - cfg.mean_c[i / 4]) / cfg.std_c[i / 4], 1e-5);
	batcher_free(b);
}

Test(batcher, rejects_bad_channel_config)
{
	struct ds *d = make_ds(10);
	struct batcher_cfg cfg = {.batch = 4, .std = 1, .nchan = 2, .std_c = {1, 1}};

	cr_assert_null(batcher_new(d, &cfg), "2 channels given, the data has 1");
	cfg.nchan = 1;
	cfg.std_c[0] = 0;
	cr_assert_null(batcher_new(d, &cfg));
	cfg.std_c[0] = 1;
	cfg.crop = -1;
	cr_assert_null(batcher_new(d, &cfg));
	cfg.crop = 0;
	struct batcher *b = batcher_new(d, &cfg);
	cr_assert_not_null(b);
	batcher_free(b);
	struct ds empty = *d;
	empty.x = NULL;
	cr_assert_null(batcher_new(&empty, &cfg), "no pixels at all");
	free_ds(d);
}

/* ---- augmentation ---- */

#define AH 3
#define AW 4
#define AN 250

/* AN samples of 1 x AH x AW; pixel (i, j) of sample s = 1 + (s + 12 i + j) % 250, never 0, so a
 * zero in a batch can only be padding; label s % 200. */
static struct ds *aug_ds(void)
{
	struct ds *d = calloc(1, sizeof *d);

	cr_assert(d);
	*d = (struct ds){.n = AN, .c = 1, .h = AH, .w = AW, .classes = 200};
	d->x = malloc(AN * AH * AW);
	d->y = malloc(AN);
	for (int s = 0; s < AN; s++) {
		d->y[s] = (uint8_t)(s % 200);
		for (int k = 0; k < AH * AW; k++)
			d->x[s * AH * AW + k] = (uint8_t)(1 + (s + 12 * (k / AW) + k % AW) % 250);
	}
	return d;
}

/* Expected float of sample s shifted by (dy, dx) after an optional flip, mean 0 std 1. */
static float aug_want(const struct ds *d, int s, int i, int j, int dy, int dx, int flip)
{
	int sy = i + dy, sx = (flip ? AW - 1 - j : j) + dx;
	if (sy < 0 || sy >= AH || sx < 0 || sx >= AW)
		return 0;
	return d->x[(s * AH + sy) * AW + sx] / 255.0f;
}

static int aug_match(const struct ds *d, int s, const float *x, int dy, int dx, int flip)
{
	for (int i = 0; i < AH; i++)
		for (int j = 0; j < AW; j++)
			if (fabsf(x[i * AW + j] - aug_want(d, s, i, j, dy, dx, flip)) > 1e-6f)
				return 0;
	return 1;
}

Test(batcher, flip_mirrors_exactly)
{
	struct ds *d = aug_ds();
	struct batcher_cfg cfg = {.batch = AN, .std = 1, .seed = 3, .flip = 1};
	struct batcher *b = batcher_new(d, &cfg);
	static float x[AN * AH * AW];
	int32_t y[AN];
	int plain = 0, mirrored = 0;

	cr_assert(b);
	cr_assert_eq(batcher_next(b, x, y), AN);
	for (int s = 0; s < AN; s++) {
		int m = aug_match(d, s, x + s * AH * AW, 0, 0, 1);
		cr_assert(m || aug_match(d, s, x + s * AH * AW, 0, 0, 0),
			  "sample %d neither itself nor its mirror", s);
		mirrored += m;
		plain += !m;
	}
	cr_assert(plain > AN / 4 && mirrored > AN / 4, "%d plain, %d mirrored", plain, mirrored);
	batcher_free(b);
	free_ds(d);
}

Test(batcher, crop_shifts_with_zero_padding)
{
	struct ds *d = aug_ds();
	struct batcher_cfg cfg = {.batch = AN, .std = 1, .seed = 4, .crop = 2};
	struct batcher *b = batcher_new(d, &cfg);
	static float x[AN * AH * AW];
	int seen[5][5] = {{0}};

	cr_assert(b);
	for (int e = 0; e < 4; e++) {
		cr_assert_eq(batcher_next(b, x, NULL), AN);
		for (int s = 0; s < AN; s++) {
			int hits = 0;
			for (int dy = -2; dy <= 2; dy++)
				for (int dx = -2; dx <= 2; dx++)
					if (aug_match(d, s, x + s * AH * AW, dy, dx, 0)) {
						hits++;
						seen[dy + 2][dx + 2]++;
					}
			cr_assert_eq(hits, 1, "sample %d: not one shift of its padded self", s);
		}
		cr_assert_eq(batcher_next(b, x, NULL), 0);
	}
	for (int dy = 0; dy < 5; dy++)
		for (int dx = 0; dx < 5; dx++)
			cr_assert_gt(seen[dy][dx], 10, "shift (%d, %d) seen %d times", dy - 2, dx - 2,
				     seen[dy][dx]);
	batcher_free(b);
	free_ds(d);
}

Test(batcher, crop_pads_float_storage_with_zero)
{
	float v[4] = {5, 6, 7, 8};
	uint8_t lb[1] = {0};
	struct ds d = {.n = 1, .c = 1, .h = 2, .w = 2, .classes = 2, .xf = v, .y = lb};
	struct batcher_cfg cfg = {.batch = 1, .mean = 1, .std = 2, .crop = 1, .seed = 1};
	struct batcher *b = batcher_new(&d, &cfg);
	float x[4];
	int zeros = 0;

	cr_assert(b);
	for (int t = 0; t < 50; t++) {
		cr_assert_eq(batcher_next(b, x, NULL), 1);
		batcher_next(b, x + 0, NULL); /* the epoch's closing 0 */
		for (int i = 0; i < 4; i++)
			zeros += x[i] == (0 - 1) / 2.0f;
	}
	cr_assert_gt(zeros, 0, "padding is the value 0, normalised");
	batcher_free(b);
}

/* Every float of two epochs. */
static void two_epochs(struct batcher *b, float *out)
{
	float x[64 * AH * AW];
	int k;

	for (int e = 0; e < 2; e++)
		while ((k = batcher_next(b, x, NULL)) > 0) {
			memcpy(out, x, (size_t)k * AH * AW * sizeof *x);
			out += (size_t)k * AH * AW;
		}
}

Test(batcher, augmentation_reproducible_and_apart_from_order)
{
	struct ds *d = aug_ds();
	struct batcher_cfg cfg = {.batch = 64, .shuffle = 1, .std = 1, .seed = 11, .crop = 1,
				  .flip = 1};
	static float a[2 * AN * AH * AW], b2[2 * AN * AH * AW], c[2 * AN * AH * AW];
	struct batcher *b = batcher_new(d, &cfg);

	two_epochs(b, a);
	batcher_free(b);
	b = batcher_new(d, &cfg);
	two_epochs(b, b2);
	batcher_free(b);
	cr_assert_eq(memcmp(a, b2, sizeof a), 0, "same seed, different batches");
	cfg.seed = 12;
	b = batcher_new(d, &cfg);
	two_epochs(b, c);
	batcher_free(b);
	cr_assert_neq(memcmp(a, c, sizeof a), 0, "another seed, same batches");
	/* the order does not depend on augmentation: labels match an unaugmented twin's */
	struct batcher_cfg plain = cfg;
	plain.crop = plain.flip = 0;
	struct batcher *p = batcher_new(d, &plain), *q = batcher_new(d, &cfg);
	float x[64 * AH * AW];
	int32_t yp[64], yq[64];
	for (int i = 0; i < 8; i++) {
		int kp = batcher_next(p, x, yp), kq = batcher_next(q, x, yq);
		cr_assert_eq(kp, kq);
		cr_assert_eq(memcmp(yp, yq, (size_t)kp * sizeof *yp), 0, "batch %d order differs", i);
	}
	batcher_free(p);
	batcher_free(q);
	free_ds(d);
}

Test(batcher, rewind_repeats_augmentation)
{
	struct ds *d = aug_ds();
	struct batcher_cfg cfg = {.batch = 50, .shuffle = 1, .std = 1, .seed = 5, .crop = 2,
				  .flip = 1};
	struct batcher *b = batcher_new(d, &cfg);
	static float first[3 * 50 * AH * AW], again[3 * 50 * AH * AW];

	for (int i = 0; i < 3; i++)
		cr_assert_eq(batcher_next(b, first + i * 50 * AH * AW, NULL), 50);
	batcher_rewind(b);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(batcher_next(b, again + i * 50 * AH * AW, NULL), 50);
	cr_assert_eq(memcmp(first, again, sizeof first), 0);
	batcher_free(b);
	free_ds(d);
}

/* ---- "normalize": "auto" ---- */

Test(batcher, auto_normalisation_values)
{
	/* channel 0: half 0, half 255 -> mean 0.5, std 0.5; channel 1: 51 everywhere -> mean 0.2,
	 * constant so std 1; channel 2: 0, 51, 102, 153 evenly -> mean 0.3, std sqrt(0.05) */
	uint8_t px[4 * 3 * 1 * 2], lb[4] = {0};
	struct ds d = {.n = 4, .c = 3, .h = 1, .w = 2, .classes = 2, .x = px, .y = lb};
	for (int s = 0; s < 4; s++) {
		uint8_t *p = px + s * 6;
		p[0] = p[1] = s % 2 ? 255 : 0;
		p[2] = p[3] = 51;
		p[4] = (uint8_t)(51 * s);
		p[5] = (uint8_t)(51 * (3 - s));
	}
	struct chain_data cd = {.batch = 8, .shuffle = 1, .norm = NORM_AUTO, .std = 1, .crop = 3,
				.flip = 1};
	struct batcher_cfg cfg;
	char err[NK_ERR_LEN] = "";
	cr_assert_eq(ds_batcher_cfg(&cfg, &cd, &d, 77, err), 0, "%s", err);
	cr_assert_eq(cfg.nchan, 3);
	cr_assert_float_eq(cfg.mean_c[0], 0.5, 1e-6);
	cr_assert_float_eq(cfg.std_c[0], 0.5, 1e-6);
	cr_assert_float_eq(cfg.mean_c[1], 0.2, 1e-6);
	cr_assert_float_eq(cfg.std_c[1], 1, 1e-6);
	cr_assert_float_eq(cfg.mean_c[2], 0.3, 1e-6);
	cr_assert_float_eq(cfg.std_c[2], sqrt(0.05), 1e-6);
	cr_assert_eq(cfg.batch, 8);
	cr_assert_eq(cfg.seed, 77);
	cr_assert_eq(cfg.crop, 3);
	cr_assert_eq(cfg.flip, 1);
	/* floats: 1 and 3 -> mean 2, std 1 */
	float fv[2] = {1, 3};
	struct ds f = {.n = 2, .c = 1, .h = 1, .w = 1, .classes = 2, .xf = fv, .y = lb};
	cr_assert_eq(ds_batcher_cfg(&cfg, &cd, &f, 1, err), 0, "%s", err);
	cr_assert_float_eq(cfg.mean_c[0], 2, 1e-6);
	cr_assert_float_eq(cfg.std_c[0], 1, 1e-6);
}

Test(batcher, given_normalisation_config)
{
	uint8_t px[2] = {0, 0}, lb[2] = {0, 0};
	struct ds d = {.n = 2, .c = 1, .h = 1, .w = 1, .classes = 2, .x = px, .y = lb};
	struct chain_data cd = {.batch = 4, .norm = NORM_GIVEN, .mean = 0.25, .std = 0.5};
	struct batcher_cfg cfg;
	char err[NK_ERR_LEN] = "";

	cr_assert_eq(ds_batcher_cfg(&cfg, &cd, &d, 1, err), 0, "%s", err);
	cr_assert_eq(cfg.nchan, 0);
	cr_assert_float_eq(cfg.mean, 0.25, 1e-7);
	cr_assert_float_eq(cfg.std, 0.5, 1e-7);
	cd.nmean = 3;
	cd.mean_c[0] = cd.mean_c[1] = cd.mean_c[2] = 0.5;
	cd.std_c[0] = cd.std_c[1] = cd.std_c[2] = 1;
	cr_assert_eq(ds_batcher_cfg(&cfg, &cd, &d, 1, err), NK_EINVAL);
	cr_assert(strstr(err, "data.normalize") && strstr(err, "3 values") &&
		  strstr(err, "1 channel"), "%s", err);
}
