/* The optimizer interface: SGD and MCMC train a stage's model on one batch at a time. */
#ifndef NK_OPTIM_H
#define NK_OPTIM_H

#include <stdint.h>

#include "layers/model.h"
#include "src/chain.h"
#include "src/rng.h"

/* What one call of optim_train did. */
struct optim_stats {
	double loss;    /* head loss on the batch before this call's updates */
	int correct;    /* samples the head got right before this call's updates */
	int n;          /* samples in the batch */
	int steps;      /* SGD steps or MCMC proposals made */
	int skipped;    /* 1: the loss was not finite or an outlier (optim_loss_ok), or the gradient
			 * not finite: nothing was changed */
};

struct optim {
	const struct optim_ops *ops;
	struct model *m;
	struct chain_optim cfg;
	struct nk_rng rng;
	long *proposed, *accepted; /* [m->nlayers] MCMC moves per layer, since optim_reset_counts */
	double progress;        /* fraction of the run done, [0, 1], set by the driver: SGD's
				 * learning-rate schedule follows it */
	double loss_avg;        /* running average of the batch losses that were let through */
	long nloss;             /* ... how many */
	int outliers;           /* outlying batch losses in a row (optim_loss_ok) */
	void *priv;
};

struct optim_ops {
	const char *name;
	int (*init)(struct optim *o, char err[NK_ERR_LEN]);
	void (*free)(struct optim *o);  /* optional */
	/* Up to cfg.iters steps on x [n][in], y [n] (at least one); returns early once *newer is
	 * non-zero (a newer batch waits). newer may be NULL. The model's activations are stale
	 * afterwards: forward again before reading them. */
	int (*train)(struct optim *o, const float *x, const int32_t *y, int n, const volatile int *newer,
		     struct optim_stats *st);
	/* optional: the optimizer's float state (SGD: the momentum buffer), *n floats, for
	 * checkpoints; NULL and *n = 0 when it has none. */
	float *(*state)(struct optim *o, size_t *n);
};

extern const struct optim_ops sgd_ops, mcmc_ops;

int optim_new(struct optim **out, struct model *m, const struct chain_optim *cfg, uint64_t seed,
	      char err[NK_ERR_LEN]);
void optim_free(struct optim *o);
int optim_train(struct optim *o, const float *x, const int32_t *y, int n, const volatile int *newer,
		struct optim_stats *st);
void optim_reset_counts(struct optim *o);
/* Whether a batch whose loss (before any change) is loss may change the model: not when it is
 * not finite, nor when it is an outlier (over 10 + 100 times the running average of the losses
 * let through; during the first 20 batches at least a uniform guess's loss, log(classes)) unless
 * OPTIM_OUTLIERS such came in a row (then the data changed, and it is let through). No single
 * batch of absurd values can wreck a model this way. */
#define OPTIM_OUTLIERS 3
int optim_loss_ok(struct optim *o, double loss);
/* SGD's learning rate at fraction p of the run under cfg's schedule. */
double sgd_lr(const struct chain_optim *cfg, double p);
/* The float state a checkpoint must save beside the parameters and o->rng (NULL, *n = 0: none). */
float *optim_state(struct optim *o, size_t *n);

#endif
