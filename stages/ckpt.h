/* Checkpoints: one stage's parameters, optimizer state, RNG state and counters in
 * STATEDIR/NAME.ckpt. The file is "NKCKPT1\n", the message length and an FNV-1a 64 hash of the
 * message (8 bytes each, little-endian), then a protobuf Checkpoint (stages/necklace.proto). It is
 * written to NAME.ckpt.tmp, fsync'd and renamed over NAME.ckpt, and the directory fsync'd, so a
 * crash leaves the old file or the new one, whole. A file is read and checked whole (length,
 * hash, chain, stage, sizes) before anything of it is applied: never half-loaded. */
#ifndef NK_CKPT_H
#define NK_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "layers/model.h"
#include "optim/optim.h"
#include "src/chain.h"
#include "src/rng.h"

#define CKPT_VERSION 1

struct ckpt {
	char chain[CHAIN_NAME_LEN];
	uint64_t hash;              /* the chain file's hash */
	char stage[CHAIN_NAME_LEN];
	long step;                  /* batches this stage has trained on */
	long batch;                 /* id of the last one */
	int epoch;
	long epoch_batch;           /* source: batches taken in the current epoch */
	struct layer_dims in;       /* the stage's input shape */
	char optimizer[16];         /* "sgd", "mcmc" */
	size_t nparams;
	float *params;              /* [nparams] */
	size_t nstate;
	float *state;               /* [nstate] optimizer state */
	size_t nbufs;
	float *bufs;                /* [nbufs] the model's buffers (batchnorm statistics) */
	struct nk_rng rng;          /* the optimizer's */
	void *own;                  /* private: memory of a read checkpoint */
};

/* STATEDIR/NAME.ckpt into out[len]; 0, or NK_ERANGE when it does not fit. */
int ckpt_path(char *out, size_t len, const char *dir, const char *stage);
/* A checkpoint of stage `index` of chain c as it is now: counters from the caller, parameters,
 * buffers, optimizer state and RNG borrowed from m and o (o may be NULL). */
void ckpt_of(struct ckpt *k, const struct chain *c, int index, const struct model *m,
	     struct optim *o);

/* Save k to DIR/NAME.ckpt (DIR created when missing) through ckpt_write_temp and ckpt_publish. */
int ckpt_save(const char *dir, const struct ckpt *k, char err[NK_ERR_LEN]);
/* The two steps of ckpt_save: write and fsync the temporary file tmp; rename it over path and
 * fsync the directory. */
int ckpt_write_temp(const char *tmp, const struct ckpt *k, char err[NK_ERR_LEN]);
int ckpt_publish(const char *tmp, const char *path, char err[NK_ERR_LEN]);

/* Read path and check it belongs to stage `index` of chain c. NK_ENOENT: no such file;
 * NK_EFORMAT: truncated, corrupt or not a checkpoint; NK_EINVAL: another chain's or stage's.
 * err names the file and what is wrong. */
int ckpt_read(struct ckpt **out, const char *path, const struct chain *c, int index,
	      char err[NK_ERR_LEN]);
void ckpt_free(struct ckpt *k);
/* Copy k's parameters and buffers into m and (when o is not NULL) its optimizer state and RNG into o, after
 * checking every size; on error nothing is changed (NK_ESHAPE). */
int ckpt_apply(const struct ckpt *k, struct model *m, struct optim *o, char err[NK_ERR_LEN]);

#endif
