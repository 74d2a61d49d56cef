/* Datasets held in memory as stored (uint8 pixels), and the batcher that turns them into
 * normalised float batches. Readers name the file and the record for anything wrong. */
#ifndef NK_DS_H
#define NK_DS_H

#include <stdint.h>

#include "src/nk.h"
#include "src/rng.h"

struct ds {
	int n;           /* samples */
	int c, h, w;     /* shape of one sample */
	int classes;     /* labels lie in [0, classes) */
	uint8_t *x;      /* [n][c][h][w] pixels as stored, one buffer */
	uint8_t *y;      /* [n] labels */
};

/* Read an IDX image file (magic 0x00000803, u8, N x H x W) and its IDX label file (0x00000801),
 * each plain or gzip-compressed (detected by content). Labels must be < classes (10 if 0). */
int ds_idx_load(struct ds **out, const char *images, const char *labels, int classes, char err[NK_ERR_LEN]);
void ds_free(struct ds *d);

/* Batches over a dataset: shuffled per epoch with a seed (or in order), pixels scaled to [0,1] and
 * then (x - mean) / std. The last batch of an epoch may be short. */
struct batcher_cfg {
	int batch;        /* samples per batch, > 0 */
	int shuffle;      /* reshuffle at each epoch start */
	uint64_t seed;
	float mean, std;  /* applied after scaling to [0,1]; 0 and 1 leave it there */
};
struct batcher;

struct batcher *batcher_new(const struct ds *d, const struct batcher_cfg *cfg);
void batcher_free(struct batcher *b);
/* Fill x [batch][c][h][w] and y [batch]; returns the number of samples (<= batch), 0 when the
 * epoch is done (the next call starts the next epoch). */
int batcher_next(struct batcher *b, float *x, int32_t *y);
int batcher_epoch(const struct batcher *b);      /* epochs completed so far */
int batcher_batches(const struct batcher *b);    /* batches per epoch */
void batcher_rewind(struct batcher *b);          /* back to the start of the current epoch, same order */

#endif
