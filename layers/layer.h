/* The layer interface: one kind per file (layers/conv2d.c, ...), each exporting a
 * const struct layer_ops, found by name through layer_find(). Tensors are NCHW float32. */
#ifndef NK_LAYER_H
#define NK_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "src/chain.h"
#include "src/nk.h"
#include "src/rng.h"

struct layer_dims {
	int c, h, w; /* one sample */
};

/* The most values one sample may hold at any layer: sizes and their products with the batch
 * stay far inside int and size_t arithmetic (model_new checks every layer against it). */
#define DIMS_MAX_VALUES (1 << 26)

/* Values per sample, in 64 bits: -1 for a negative dimension or more than DIMS_MAX_VALUES. */
static inline long long dims_values(struct layer_dims d)
{
	long long c = d.c, h = d.h, w = d.w;
	if (c < 0 || h < 0 || w < 0 || c > DIMS_MAX_VALUES || h > DIMS_MAX_VALUES || w > DIMS_MAX_VALUES)
		return -1;
	long long v = c * h;
	return v > DIMS_MAX_VALUES || v * w > DIMS_MAX_VALUES ? -1 : v * w;
}

/* Values per sample of a shape that passed dims_values (the model's shapes all did). */
static inline int dims_size(struct layer_dims d)
{
	return d.c * d.h * d.w;
}

struct layer {
	const struct layer_ops *ops;
	char name[40];          /* "conv1", "linear2": used in logs (accept.conv1=) */
	struct layer_dims in, out;
	int binary;             /* weights in {-1,+1} */
	float scale;            /* y = scale * (W x + b): 1, or 1/sqrt(fan_in) for binary layers */
	size_t nparams;         /* weights then biases, laid out by the kind */
	float *w;               /* [nparams] view into the model's parameter array */
	float *g;               /* [nparams] view into the model's gradient array */
	const float *x;         /* [N][in]: previous layer's y, or the model input */
	float *y;               /* [N][out]: owned by the model */
	float *dx;              /* [N][in]: previous layer's dy; NULL for the first layer */
	float *dy;              /* [N][out] */
	int max_batch;
	int training;           /* forward in training mode (batchnorm: batch statistics, updating
				 * the running ones); 0: evaluation mode (the running statistics) */
	size_t nbuf;            /* state that is not trained but kept (batchnorm: running mean, var) */
	float *buf;             /* [nbuf] view into the model's buffer array */
	void *priv;             /* the kind's own options and scratch */
};

struct layer_ops {
	const char *kind;
	/* Check the options against l->in, set l->out, l->nparams, l->nbuf, l->binary and l->priv
	 * with scratch sized for l->max_batch. */
	int (*init)(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN]);
	void (*free)(struct layer *l);                            /* optional */
	/* optional: kinds with params or buffers (both are set up here) */
	void (*init_params)(struct layer *l, struct nk_rng *r);
	void (*forward)(struct layer *l, int n);
	/* Set l->g from l->dy (not accumulate), and l->dx when it is not NULL. */
	void (*backward)(struct layer *l, int n);
	long long (*macs)(const struct layer *l);                 /* optional: multiply-adds per sample */

	/* Partial forward, for optimizers that change one output channel at a time. */
	/* A channel's plane for samples [n0, n1) is laid out transposed, [plane][ld]: position p of
	 * sample i at p * ld + i, so that the loops over samples vectorise. */
	/* optional (conv): called once per new input l->x of n samples, before forward_channel; 0 or
	 * NK_ENOMEM. Runs its own OpenMP team. */
	int (*channel_prepare)(struct layer *l, int n);
	/* optional (conv): output channel f of samples [n0, n1) into out [out.h * out.w][ld], from
	 * l->x and the current weights. Runs on the calling thread. */
	void (*forward_channel)(struct layer *l, int f, int n0, int n1, float *out, int ld);
	/* optional (channelwise kinds: relu, pools, gap, flatten): map one channel's input plane
	 * [in plane][ld] to its output plane [out plane][ld], for samples [n0, n1). */
	void (*map_channel)(const struct layer *l, const float *in, float *out, int ld, int n0, int n1);
};

/* Look a kind up by name ("conv", "linear", "relu", "maxpool", "avgpool", "gap", "flatten",
 * "batchnorm"). */
const struct layer_ops *layer_find(const char *kind);

extern const struct layer_ops conv2d_ops, linear_ops, relu_ops, maxpool_ops, avgpool_ops,
	gap_ops, flatten_ops, batchnorm_ops;

/* Uniform(-bound, bound) weights, or random signs for binary layers. */
void layer_fill_uniform(float *w, size_t n, float bound, struct nk_rng *r);
void layer_fill_signs(float *w, size_t n, struct nk_rng *r);

#endif
