/* Minibatch SGD with momentum and weight decay (PyTorch's convention: v = mu v + g + wd w,
 * w -= lr v), one update of the whole parameter array per step. */
#include <stdlib.h>

#include "layers/gemm.h"
#include "optim/optim.h"

struct sgd {
	float *v; /* [nparams] momentum buffer */
};

static int sgd_init(struct optim *o, char err[NK_ERR_LEN])
{
	for (int i = 0; i < o->m->nlayers; i++)
		if (o->m->layers[i].binary)
			return nk_errf(err, NK_EUNSUP, "sgd cannot train binary layer %s: use mcmc",
				       o->m->layers[i].name);
	struct sgd *s = calloc(1, sizeof *s);
	if (!s || !(s->v = nk_floats(o->m->nparams))) {
		free(s);
		return nk_errf(err, NK_ENOMEM, "out of memory");
	}
	o->priv = s;
	return 0;
}

static void sgd_free(struct optim *o)
{
	struct sgd *s = o->priv;
	if (s)
		free(s->v);
	free(s);
}

static void sgd_update(struct optim *o)
{
	struct sgd *s = o->priv;
	const float lr = (float)o->cfg.lr, mu = (float)o->cfg.momentum, wd = (float)o->cfg.weight_decay;
	float *w = o->m->params, *v = s->v;
	const float *g = o->m->grads;
	const size_t n = o->m->nparams;
#pragma omp parallel for simd schedule(static) if (n > NK_PAR_WORK)
	for (size_t i = 0; i < n; i++) {
		v[i] = mu * v[i] + g[i] + wd * w[i];
		w[i] -= lr * v[i];
	}
}

static int sgd_train(struct optim *o, const float *x, const int32_t *y, int n, const volatile int *newer,
		     struct optim_stats *st)
{
	int iters = o->cfg.iters > 0 ? o->cfg.iters : 1;
	for (int it = 0; it < iters; it++) {
		if (it > 0 && newer && *newer)
			break;
		int correct;
		model_forward(o->m, x, n);
		double loss = model_loss(o->m, y, n, &correct, 1);
		if (it == 0) {
			st->loss = loss;
			st->correct = correct;
		}
		model_backward(o->m, n);
		sgd_update(o);
		st->steps++;
	}
	return 0;
}

static float *sgd_state(struct optim *o, size_t *n)
{
	struct sgd *s = o->priv;
	*n = o->m->nparams;
	return s->v;
}

const struct optim_ops sgd_ops = {
	.name = "sgd",
	.init = sgd_init,
	.free = sgd_free,
	.train = sgd_train,
	.state = sgd_state,
};
