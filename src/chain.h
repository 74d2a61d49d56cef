/* The chain file: one JSON document (jansson) describing every stage of a chain. Every device
 * reads the same file and picks its stage by name. A bad file is refused whole, before anything
 * starts, with "FILE:LINE:COL: what" for syntax errors or "FILE: json.path: what" otherwise. */
#ifndef NK_CHAIN_H
#define NK_CHAIN_H

#include <stdint.h>

#include "src/nk.h"

#define CHAIN_NAME_LEN 64
#define CHAIN_PATH_LEN 1024

/* One entry of "layers" or "head": "relu" or {"conv": {"filters": 32, "kernel": 7, ...}}. */
struct chain_layer {
	char kind[16];      /* conv, linear, relu, maxpool, avgpool, gap, flatten, batchnorm */
	int filters;        /* conv: output channels */
	int kernel;         /* conv: square kernel size */
	int stride;         /* conv (default 1), pools (default = size) */
	int pad;            /* conv: zero padding (default 0) */
	int units;          /* linear: outputs; the head's last linear defaults to data.classes */
	int size;           /* maxpool/avgpool: square window (default 2) */
	int grid;           /* maxpool/avgpool: pool to a grid x grid output, windows as PyTorch's
			     * adaptive pools cut them (0: use size and stride) */
	double momentum;    /* batchnorm: weight of a batch in the running statistics (0.1) */
	double eps;         /* batchnorm: added to the variance (1e-5) */
	int binary;         /* conv/linear: weights in {-1,+1} (default false) */
};

/* A proposal or prior distribution: {"student": VAR}, {"student": {"var": V, "df": D}},
 * {"gaussian": VAR}; a proposal may also be "flip" (binary layers); an absent prior is flat. */
enum chain_dist_kind { DIST_FLAT = 0, DIST_STUDENT, DIST_GAUSSIAN, DIST_FLIP };
struct chain_dist {
	enum chain_dist_kind kind;
	double var;         /* variance parameter (> 0) */
	double df;          /* Student-t degrees of freedom (default 1) */
};

/* Which weights one MCMC proposal moves in a layer:
 * "filter" (a whole conv filter and its bias), {"filter": K} (K weights of one conv filter),
 * {"uniform": K} (K weights drawn uniformly from a linear layer's [W | b]), "row" (one row of a
 * linear layer's [W | b]). */
enum chain_move_kind { MOVE_FILTER = 0, MOVE_FILTER_K, MOVE_UNIFORM, MOVE_ROW };
struct chain_mcmc_layer {
	double share;       /* relative chance this layer moves (> 0) */
	enum chain_move_kind move;
	int k;              /* weights per move for MOVE_FILTER_K / MOVE_UNIFORM */
	struct chain_dist proposal, prior;
	double lambda;      /* inverse temperature (>= 0) */
};

enum chain_optim_kind { OPTIM_SGD = 0, OPTIM_MCMC };
/* SGD learning-rate schedule over the run (its epochs or --seconds): after a linear warm-up over
 * the first `warmup` of the run, constant, cosine down to final * lr, or times gamma at every
 * `every` of the rest. */
enum chain_schedule { SCHED_CONSTANT = 0, SCHED_COSINE, SCHED_STEP };
struct chain_optim {
	enum chain_optim_kind kind;
	/* {"sgd": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0, "iters": 1,
	 *          "schedule": "cosine", "warmup": 0.02, "final": 0, "gamma": 0.1, "every": 0.5}} */
	double lr, momentum, weight_decay;
	enum chain_schedule schedule;
	double warmup, final, gamma, every;
	/* {"mcmc": {"iters": 200, "layers": [...]}}: one entry per trainable (conv/linear) layer of
	 * the stage, body first, then head, in order. */
	int iters;          /* SGD steps or MCMC proposals per batch (default 1 / 200) */
	struct chain_mcmc_layer *mcmc;
	int nmcmc;
};

struct chain_stage {
	char name[CHAIN_NAME_LEN];
	char listen[128];   /* "host:port" (optional until the chain runs over the network) */
	struct chain_layer *layers; /* body; may be empty */
	int nlayers;
	struct chain_layer *head;   /* early-exit classifier; "linear" is short for [{"linear": {}}] */
	int nhead;
	struct chain_optim optim;
	int boost;              /* "boost": this stage's head adds its logits to those of the stage
				 * before it, which travel with the activations (default: the
				 * chain's "boost"; never on the first stage, which has none) */
	double exit_threshold;  /* "exit": {"threshold": P}; 0 when absent */
	double exit_entropy;    /* "exit": {"entropy": H}; 0 when absent */
};

#define CHAIN_MAX_FILES 16     /* files per split (CIFAR batches) */
#define CHAIN_MAX_CHANNELS 16  /* per-channel normalisation entries */

/* "normalize": absent or "[0,1]" (pixels scaled to [0, 1]), {"mean": M, "std": S} with numbers
 * or per-channel arrays, or "auto" (per-channel mean and std of the training split). */
enum chain_norm { NORM_UNIT = 0, NORM_GIVEN, NORM_AUTO };
/* csv "features": "auto" (bytes when every value is an integer in 0..255, else floats),
 * "bytes" (pixels 0..255, scaled to [0, 1] like images) or "float" (values as they are). */
enum chain_features { FEAT_AUTO = 0, FEAT_BYTES, FEAT_FLOAT };

struct chain_data {
	char format[16];        /* "idx" (default), "cifar", "images" or "csv" */
	/* Paths, resolved against "dir", then the chain file's folder. idx: images, labels;
	 * cifar: one or more record files; images: one folder of class folders; csv: one file. */
	char train[CHAIN_MAX_FILES][CHAIN_PATH_LEN];
	char test[CHAIN_MAX_FILES][CHAIN_PATH_LEN];
	int ntrain, ntest;      /* paths in train / test */
	int has_test;
	int classes;            /* default 10 */
	int batch;              /* default 64 */
	int epochs;             /* default 1 */
	int test_every;         /* train batches between test passes; 0 = at epoch ends only */
	int shuffle;            /* default true */
	double mean, std;       /* "normalize": {"mean": M, "std": S}; default 0 and 1 */
	double rate;            /* batches/s at the source; 0 = as fast as taken */
	int limit;              /* first N training samples; 0 = all */
	enum chain_norm norm;
	int nmean;              /* NORM_GIVEN per channel: entries in mean_c, std_c; 0: mean, std */
	double mean_c[CHAIN_MAX_CHANNELS], std_c[CHAIN_MAX_CHANNELS];
	int crop;               /* "augment": {"crop": P}: random crop after P pixels of zero padding */
	int flip;               /* "augment": {"flip": true}: random horizontal flips */
	int shape[3];           /* "shape": [C, H, W]: images (default 3, 32, 32), csv (0: 1, 1, F);
				 * idx, cifar: the shape the files must have (0: not declared) */
	int strict;             /* images: refuse undecodable files rather than skip them */
	int header;             /* csv: the first line names the columns */
	int label_col;          /* csv: label column, 0-based; -1 = the last (default) */
	char label_name[CHAIN_NAME_LEN]; /* csv: label column by header name; "" = by label_col */
	enum chain_features features;    /* csv */
	int label_bytes;        /* cifar: 1 (CIFAR-10, default) or 2 (CIFAR-100: coarse, fine) */
	int coarse;             /* cifar with 2 label bytes: use the coarse label, not the fine */
};

struct chain {
	char name[CHAIN_NAME_LEN];
	char path[CHAIN_PATH_LEN];
	uint64_t seed;
	uint64_t hash;          /* FNV-1a 64 of the file's bytes */
	char state_dir[CHAIN_PATH_LEN]; /* "state_dir": where stages keep NAME.ckpt (default
				 * "state/CHAIN", the chain's name with characters other than
				 * letters, digits, '.', '_' and '-' made '_') */
	int checkpoint_every;   /* "checkpoint_every": trained batches between checkpoints (default
				 * 200; 0: only when the stage stops) */
	double checkpoint_s;    /* "checkpoint_s": seconds between checkpoints, whichever of the two
				 * comes first (default 30; 0: by batches only) */
	int test_limit;         /* "test_limit": test samples of the passes during training (0: all) */
	int boost;              /* "boost": every stage after the first boosts (see chain_stage) */
	struct chain_data data;
	struct chain_stage *stages;
	int nstages;
};

/* Read and validate a chain file. */
int chain_load(struct chain **out, const char *path, char err[NK_ERR_LEN]);
/* Parse chain text; origin names it in messages and relative paths resolve against base_dir. */
int chain_parse(struct chain **out, const char *text, size_t len, const char *origin,
		const char *base_dir, char err[NK_ERR_LEN]);
void chain_free(struct chain *c);
/* Index of the stage called name, or -1. */
int chain_stage_index(const struct chain *c, const char *name);

#endif
