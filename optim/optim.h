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
};

struct optim {
	const struct optim_ops *ops;
	struct model *m;
	struct chain_optim cfg;
	struct nk_rng rng;
	long *proposed, *accepted; /* [m->nlayers] MCMC moves per layer, since optim_reset_counts */
	double progress;        /* fraction of the run done, [0, 1], set by the driver: SGD's
				 * learning-rate schedule follows it */
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
/* SGD's learning rate at fraction p of the run under cfg's schedule. */
double sgd_lr(const struct chain_optim *cfg, double p);
/* The float state a checkpoint must save beside the parameters and o->rng (NULL, *n = 0: none). */
float *optim_state(struct optim *o, size_t *n);

#endif
