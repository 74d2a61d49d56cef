/* Minibatch SGD with momentum and weight decay (PyTorch's convention: v = mu v + g + wd w,
 * w -= lr v), one update of the whole parameter array per step, the learning rate following
 * the chain file's schedule over the run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/gemm.h"
#include "optim/optim.h"

struct sgd {
	float *v;    /* [nparams] momentum buffer */
	float *bufs; /* [nbufs] the model's buffers before a step (put back when it is skipped) */
};

static int sgd_init(struct optim *o, char err[NK_ERR_LEN])
{
	for (int i = 0; i < o->m->nlayers; i++)
		if (o->m->layers[i].binary)
			return nk_errf(err, NK_EUNSUP, "sgd cannot train binary layer %s: use mcmc",
				       o->m->layers[i].name);
	struct sgd *s = calloc(1, sizeof *s);
	if (!s || !(s->v = nk_floats(o->m->nparams)) || !(s->bufs = nk_floats(o->m->nbufs + 1))) {
		if (s)
			free(s->v);
		free(s);
		return nk_errf(err, NK_ENOMEM, "out of memory");
	}
	o->priv = s;
	return 0;
}

static void sgd_free(struct optim *o)
{
	struct sgd *s = o->priv;
	if (s) {
		free(s->v);
		free(s->bufs);
	}
	free(s);
}

double sgd_lr(const struct chain_optim *cfg, double p)
{
	p = p < 0 ? 0 : p > 1 ? 1 : p;
	/* Warm-up: from lr / 1000 (at p = 0; never 0, which would waste the first steps) to lr. */
	if (cfg->warmup > 0 && p < cfg->warmup)
		return cfg->lr * (p + 1e-3) / (cfg->warmup + 1e-3);
	const double q = cfg->warmup < 1 ? (p - cfg->warmup) / (1 - cfg->warmup) : 1;
	switch (cfg->schedule) {
	case SCHED_COSINE:
		return cfg->lr * (cfg->final + (1 - cfg->final) * 0.5 * (1 + cos(M_PI * q)));
	case SCHED_STEP:
		return cfg->lr * pow(cfg->gamma, floor(q / cfg->every + 1e-9));
	default:
		return cfg->lr;
	}
}

static void sgd_update(struct optim *o)
{
	struct sgd *s = o->priv;
	const float lr = (float)sgd_lr(&o->cfg, o->progress), mu = (float)o->cfg.momentum, wd = (float)o->cfg.weight_decay;
	float *w = o->m->params, *v = s->v;
	const float *g = o->m->grads;
	const size_t n = o->m->nparams;
#pragma omp parallel for simd schedule(static) if (n > NK_PAR_WORK)
	for (size_t i = 0; i < n; i++) {
		v[i] = mu * v[i] + g[i] + wd * w[i];
		w[i] -= lr * v[i];
	}
}

static int grads_finite(const struct model *m)
{
	const float *g = m->grads;
	float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
	for (size_t i = 0; i < m->nparams; i++)
		sum += g[i] * 0.0f; /* 0 for finite values, NaN for Inf and NaN */
	return sum == 0.0f;
}

static int sgd_train(struct optim *o, const float *x, const int32_t *y, int n, const volatile int *newer,
		     struct optim_stats *st)
{
	struct sgd *s = o->priv;
	struct model *m = o->m;
	int iters = o->cfg.iters > 0 ? o->cfg.iters : 1;
	for (int it = 0; it < iters; it++) {
		if (it > 0 && newer && *newer)
			break;
		int correct;
		memcpy(s->bufs, m->bufs, sizeof(float) * m->nbufs); /* the forward moves batch norm's */
		model_set_training(m, 1);
		model_forward(m, x, n);
		double loss = model_loss(m, y, n, &correct, 1);
		if (it == 0) {
			st->loss = loss;
			st->correct = correct;
		}
		int ok = it > 0 ? isfinite(loss) : optim_loss_ok(o, loss);
		if (ok)
			model_backward(m, n);
		model_set_training(m, 0);
		if (!ok || !grads_finite(m)) { /* no step: the model stays as it was */
			memcpy(m->bufs, s->bufs, sizeof(float) * m->nbufs);
			st->skipped = it == 0;
			break;
		}
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
