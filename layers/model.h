/* The model of one stage: a body (layers whose output travels downstream) and a head (the
 * early-exit classifier). All trainable parameters live in one contiguous array, each layer
 * holding a view; gradients likewise. Activations are allocated once, for max_batch samples. */
#ifndef NK_MODEL_H
#define NK_MODEL_H

#include "layers/layer.h"

struct model {
	struct layer *layers;   /* [nlayers]: body [0, nbody), then head */
	int nlayers, nbody;
	struct layer_dims in;   /* one input sample */
	int classes;
	int max_batch;
	size_t nparams;
	float *params;          /* [nparams] */
	float *grads;           /* [nparams] */
	size_t nbufs;
	float *bufs;            /* [nbufs] state kept but not trained (batchnorm statistics) */
	float *arena;           /* every layer's y and dy */
	/* [n][classes] added to the head's output by every forward that reaches it, or NULL: the
	 * upstream stage's logits when this stage boosts (its head learns a correction to them). */
	const float *offset;
};

/* Build the stage's model for inputs of shape in; weights drawn from seed (a boosting stage's
 * classifier starts at 0). */
int model_new(struct model **out, const struct chain_stage *st, struct layer_dims in, int classes,
	      int max_batch, uint64_t seed, char err[NK_ERR_LEN]);
void model_free(struct model *m);

/* Training mode (on) or evaluation mode (off, the default) for every following forward. */
void model_set_training(struct model *m, int on);

/* Forward n <= max_batch samples x [n][in] through body and head (x must stay valid until the
 * next forward: the first layer reads it in backward). */
void model_forward(struct model *m, const float *x, int n);
/* Forward x through the body only: what the stage sends downstream. */
void model_forward_body(struct model *m, const float *x, int n);
/* Forward x through layers [0, to). */
void model_forward_to(struct model *m, const float *x, int to, int n);
/* Forward from layer `from` on, its input already in place. */
void model_forward_from(struct model *m, int from, int n);
/* Mean cross-entropy of the head on labels y; with grad, also fills the head's output gradient. */
double model_loss(struct model *m, const int32_t *y, int n, int *correct, int grad);
/* Back-propagate the head's output gradient (from model_loss with grad) through every layer,
 * filling grads. */
void model_backward(struct model *m, int n);

const float *model_logits(const struct model *m);     /* [n][classes] after forward */
const float *model_body_out(const struct model *m);   /* [n][body dims]: what goes downstream */
struct layer_dims model_body_dims(const struct model *m);
/* Multiply-adds per sample of layers [from, to). */
long long model_macs(const struct model *m, int from, int to);

#endif
