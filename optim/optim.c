/* Optimizer construction through a table of kinds, and the counters they share. */
#include "optim/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct optim_ops *const kinds[] = {
	[OPTIM_SGD] = &sgd_ops,
	[OPTIM_MCMC] = &mcmc_ops,
};

int optim_new(struct optim **out, struct model *m, const struct chain_optim *cfg, uint64_t seed,
	      char err[NK_ERR_LEN])
{
	*out = NULL;
	if ((size_t)cfg->kind >= sizeof kinds / sizeof kinds[0] || !kinds[cfg->kind])
		return nk_errf(err, NK_EUNSUP, "optimizer kind %d is not available", (int)cfg->kind);
	struct optim *o = calloc(1, sizeof *o);
	if (!o)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	o->ops = kinds[cfg->kind];
	o->m = m;
	o->cfg = *cfg;
	rng_seed(&o->rng, seed);
	o->proposed = calloc(m->nlayers, sizeof *o->proposed);
	o->accepted = calloc(m->nlayers, sizeof *o->accepted);
	int rc = (o->proposed && o->accepted) ? 0 : nk_errf(err, NK_ENOMEM, "out of memory");
	if (rc == 0)
		rc = o->ops->init(o, err);
	if (rc) {
		optim_free(o);
		return rc;
	}
	*out = o;
	return 0;
}

void optim_free(struct optim *o)
{
	if (!o)
		return;
	if (o->ops->free)
		o->ops->free(o);
	free(o->proposed);
	free(o->accepted);
	free(o);
}

int optim_train(struct optim *o, const float *x, const int32_t *y, int n, const volatile int *newer,
		struct optim_stats *st)
{
	memset(st, 0, sizeof *st);
	st->n = n;
	if (n <= 0 || n > o->m->max_batch)
		return NK_EINVAL;
	return o->ops->train(o, x, y, n, newer, st);
}

int optim_loss_ok(struct optim *o, double loss)
{
	if (!isfinite(loss))
		return 0;
	/* before 20 batches, the reference is at least a uniform guess's loss: a first batch is judged too */
	double ref = o->nloss >= 20 ? o->loss_avg : fmax(o->nloss ? o->loss_avg : 0, log(o->m->classes));
	if (loss > 10 + 100 * ref && o->outliers < OPTIM_OUTLIERS) {
		o->outliers++;
		return 0;
	}
	o->outliers = 0;
	o->loss_avg = o->nloss ? 0.95 * o->loss_avg + 0.05 * loss : loss;
	o->nloss++;
	return 1;
}

void optim_reset_counts(struct optim *o)
{
	memset(o->proposed, 0, sizeof(long) * o->m->nlayers);
	memset(o->accepted, 0, sizeof(long) * o->m->nlayers);
}

float *optim_state(struct optim *o, size_t *n)
{
	*n = 0;
	return o->ops->state ? o->ops->state(o, n) : NULL;
}
