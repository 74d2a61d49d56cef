/* Datasets held in memory as stored (uint8 pixels, or floats for CSV values), read by one reader
 * per format, and the batcher that turns them into normalised float batches. Readers name the
 * file and the record (or line, or path) for anything wrong. */
#ifndef NK_DS_H
#define NK_DS_H

#include <stdint.h>

#include "src/chain.h"
#include "src/nk.h"
#include "src/rng.h"

#define DS_MAX_CHANNELS CHAIN_MAX_CHANNELS /* channels that per-channel normalisation handles */
#define DS_MAX_CLASSES 256                 /* labels are stored as uint8 */
#define DS_MAX_NOTES 16                    /* skipped files described in ds.notes */

struct ds {
	int n;           /* samples */
	int c, h, w;     /* shape of one sample */
	int classes;     /* labels lie in [0, classes) */
	uint8_t *x;      /* [n][c][h][w] pixels as stored, one buffer; NULL when xf holds the data */
	uint8_t *y;      /* [n] labels */
	float *xf;       /* [n][c][h][w] values used as they are (CSV floats), or NULL */
	char **names;    /* [classes] class names (image folders: the subfolder names), or NULL */
	int skipped;     /* files left out because they could not be decoded */
	char **notes;    /* [nnotes] "PATH: why" for the first DS_MAX_NOTES of them, for the log */
	int nnotes;
};

/* Load one split (test_split 0: "train", 1: "test") of the data block d, with the reader its
 * format names; the training split is cut to d->limit samples when that is set. */
int ds_load(struct ds **out, const struct chain_data *d, int test_split, char err[NK_ERR_LEN]);
/* Both splits (test may be NULL: training only; *test stays NULL when d has no test split), then
 * ds_check_pair. A CSV split read as bytes is turned to floats when the other one needed floats
 * (features "auto"), so that both are normalised alike. */
int ds_load_pair(struct ds **train, struct ds **test, const struct chain_data *d,
		 char err[NK_ERR_LEN]);
/* Whether a test split fits the model trained on train: same sample shape, classes, storage and
 * class names. */
int ds_check_pair(const struct ds *train, const struct ds *test, char err[NK_ERR_LEN]);
void ds_free(struct ds *d);

/* Read an IDX image file (magic 0x00000803, u8, N x H x W) and its IDX label file (0x00000801),
 * each plain or gzip-compressed (detected by content). Labels must be < classes (10 if 0). */
int ds_idx_load(struct ds **out, const char *images, const char *labels, int classes, char err[NK_ERR_LEN]);

/* Read CIFAR binary record files (3 x 32 x 32 u8 pixels, red then green then blue planes, after
 * label_bytes label bytes: 1 for CIFAR-10; 2 for CIFAR-100, coarse then fine, of which coarse
 * picks one) into one dataset. Every label must be < classes. */
int ds_cifar_load(struct ds **out, const char *const *files, int nfiles, int label_bytes,
		  int coarse, int classes, char err[NK_ERR_LEN]);

/* Read an image folder DIR/<class>/<image> (png, jpg, jpeg, bmp, gif, tga, pgm, ppm; any case):
 * classes are the sorted subfolder names of class_dir (NULL: of dir itself, whose count must then
 * be classes), images sorted by name within each, each converted to c channels (1: grey, 3: RGB)
 * and resized to h x w. A file that does not decode is skipped and noted, or refused if strict. */
struct ds_images_cfg {
	int c, h, w;
	int classes;
	int strict;
	const char *class_dir;
};
int ds_images_load(struct ds **out, const char *dir, const struct ds_images_cfg *cfg,
		   char err[NK_ERR_LEN]);
/* Resample src [sh][sw][c] (interleaved, as decoders give) to dst [c][dh][dw] (planar) with a
 * triangle filter: bilinear when enlarging, widened to cover every source pixel when shrinking
 * (no aliasing). Returns 0 or NK_ENOMEM. */
int ds_resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw);

/* Read a CSV file: one sample per line, label in column label_col (-1: the last) or in the column
 * named label_name (needs header), every other column a feature; c * h * w must equal the
 * feature count (all 0: 1 x 1 x features). Fields are separated by commas (a field may be
 * quoted, but not hold a comma); blank lines are skipped. Features are stored as bytes while every
 * value is an integer 0..255 (scaled to [0, 1] like pixels), else as floats used as they are;
 * features FEAT_BYTES refuses other values, FEAT_FLOAT always stores floats. */
struct ds_csv_cfg {
	int c, h, w;
	int classes;
	int header;
	int label_col;
	const char *label_name;   /* NULL or "": by label_col */
	enum chain_features features;
};
int ds_csv_load(struct ds **out, const char *path, const struct ds_csv_cfg *cfg,
		char err[NK_ERR_LEN]);

/* Per-channel mean and standard deviation of d's samples after scaling to [0, 1] (floats as they
 * are): what "normalize": "auto" uses. A constant channel gets std 1. c <= DS_MAX_CHANNELS. */
void ds_stats(const struct ds *d, float *mean, float *std);

/* Batches over a dataset: shuffled per epoch with a seed (or in order), pixels scaled to [0,1]
 * (floats left as they are) and then (x - mean) / std per channel; training batches may be
 * augmented. The last batch of an epoch may be short. */
struct batcher_cfg {
	int batch;        /* samples per batch, > 0 */
	int shuffle;      /* reshuffle at each epoch start */
	uint64_t seed;
	float mean, std;  /* applied after scaling to [0,1]; 0 and 1 leave it there */
	int nchan;        /* > 0: mean_c, std_c per channel instead (must equal the data's c) */
	float mean_c[DS_MAX_CHANNELS], std_c[DS_MAX_CHANNELS];
	int crop;         /* augment: pad each side with crop zeros, take a random h x w window */
	int flip;         /* augment: mirror left-right with probability 1/2 */
};
struct batcher;

/* The training batcher configuration the data block describes, normalisation resolved ("auto":
 * ds_stats of train, to be logged from mean_c, std_c). Test batches take the same with shuffle,
 * crop and flip cleared. */
int ds_batcher_cfg(struct batcher_cfg *cfg, const struct chain_data *d, const struct ds *train,
		   uint64_t seed, char err[NK_ERR_LEN]);

struct batcher *batcher_new(const struct ds *d, const struct batcher_cfg *cfg);
/* The configuration for evaluation batches: train's normalisation, samples in order, no
 * augmentation. */
struct batcher_cfg batcher_cfg_eval(const struct batcher_cfg *train);
void batcher_free(struct batcher *b);
/* Fill x [batch][c][h][w] and y [batch]; returns the number of samples (<= batch), 0 when the
 * epoch is done (the next call starts the next epoch). */
int batcher_next(struct batcher *b, float *x, int32_t *y);
int batcher_epoch(const struct batcher *b);      /* epochs completed so far */
int batcher_batches(const struct batcher *b);    /* batches per epoch */
void batcher_rewind(struct batcher *b);          /* back to the start of the current epoch, same
						  * order and the same augmentation */

#endif
