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
	char kind[16];      /* conv, linear, relu, maxpool, avgpool, gap, flatten */
	int filters;        /* conv: output channels */
	int kernel;         /* conv: square kernel size */
	int stride;         /* conv (default 1), pools (default = size) */
	int pad;            /* conv: zero padding (default 0) */
	int units;          /* linear: outputs; the head's last linear defaults to data.classes */
	int size;           /* maxpool/avgpool: square window (default 2) */
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
struct chain_optim {
	enum chain_optim_kind kind;
	/* {"sgd": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0, "iters": 1}} */
	double lr, momentum, weight_decay;
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
	double exit_threshold;  /* "exit": {"threshold": P}; 0 when absent */
	double exit_entropy;    /* "exit": {"entropy": H}; 0 when absent */
};

struct chain_data {
	char format[16];        /* "idx" */
	char train[2][CHAIN_PATH_LEN]; /* images, labels: resolved against "dir", then the file's folder */
	char test[2][CHAIN_PATH_LEN];
	int has_test;
	int classes;            /* default 10 */
	int batch;              /* default 64 */
	int epochs;             /* default 1 */
	int test_every;         /* train batches between test passes; 0 = at epoch ends only */
	int shuffle;            /* default true */
	double mean, std;       /* "normalize": {"mean": M, "std": S}; default 0 and 1 */
	double rate;            /* batches/s at the source; 0 = as fast as taken */
	int limit;              /* first N training samples; 0 = all */
};

struct chain {
	char name[CHAIN_NAME_LEN];
	char path[CHAIN_PATH_LEN];
	uint64_t seed;
	uint64_t hash;          /* FNV-1a 64 of the file's bytes */
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
