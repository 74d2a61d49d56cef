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
