/* Batch normalisation per channel: y = gamma (x - mean) / sqrt(var + eps) + beta. In training
 * mode mean and var are the batch's (over samples and positions), and the running statistics
 * move towards them by `momentum` (PyTorch's convention: the running variance is the unbiased
 * one); in evaluation mode (tests, predictions, what a stage sends downstream) the running
 * statistics are used, so a sample's output does not depend on the rest of its batch.
 *
 * Why batch norm for chain-local learning: every stage trains on its own loss while its input
 * (the upstream stage's output) keeps shifting in scale as the upstream learns; normalising each
 * channel keeps a stage's effective learning rate steady under those shifts. Its running
 * statistics are buffers of the model (l->buf: mean [C], then var [C]), saved in checkpoints.
 * Parameters: gamma [C], then beta [C]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer.h"

struct batchnorm {
	float momentum, eps;
	float *xhat;    /* [max_batch][C][HW]: the normalised input of the last training forward */
	float *istd;    /* [C]: 1 / sqrt(var + eps) of that batch */
};

static int bn_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	struct batchnorm *b = calloc(1, sizeof *b);
	if (!b)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory", l->name);
	l->priv = b;
	b->momentum = spec->momentum > 0 ? (float)spec->momentum : 0.1f;
	b->eps = spec->eps > 0 ? (float)spec->eps : 1e-5f;
	l->out = l->in;
	l->scale = 1.0f;
	l->nparams = 2 * (size_t)l->in.c;
	l->nbuf = 2 * (size_t)l->in.c;
	b->xhat = nk_floats((size_t)l->max_batch * dims_size(l->in));
	b->istd = nk_floats((size_t)l->in.c);
	if (!b->xhat || !b->istd)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory for scratch", l->name);
	return 0;
}

static void bn_free(struct layer *l)
{
	struct batchnorm *b = l->priv;
	if (b) {
		free(b->xhat);
		free(b->istd);
	}
	free(b);
	l->priv = NULL;
}

static void bn_init_params(struct layer *l, struct nk_rng *r)
{
	const int C = l->in.c;
	for (int c = 0; c < C; c++) {
		l->w[c] = 1.0f;         /* gamma */
		l->w[C + c] = 0.0f;     /* beta */
		l->buf[c] = 0.0f;       /* running mean */
		l->buf[C + c] = 1.0f;   /* running var */
	}
}

static void bn_forward(struct layer *l, int n)
{
	struct batchnorm *b = l->priv;
	const int C = l->in.c, HW = l->in.h * l->in.w;
	const float *gamma = l->w, *beta = l->w + C;
	float *rmean = l->buf, *rvar = l->buf + C;
#pragma omp parallel for schedule(static)
	for (int c = 0; c < C; c++) {
		float mean, istd;
		if (l->training) {
			/* Two passes in double: the mean, then the spread around it. */
			double s = 0.0, ss = 0.0;
			const double m = (double)n * HW;
			for (int i = 0; i < n; i++) {
				const float *x = l->x + ((size_t)i * C + c) * HW;
				for (int p = 0; p < HW; p++)
					s += x[p];
			}
			const double mu = s / m;
			for (int i = 0; i < n; i++) {
				const float *x = l->x + ((size_t)i * C + c) * HW;
				for (int p = 0; p < HW; p++)
					ss += (x[p] - mu) * (x[p] - mu);
			}
			const double var = ss / m;
			mean = (float)mu;
			istd = (float)(1.0 / sqrt(var + b->eps));
			b->istd[c] = istd;
			const float nm = rmean[c] + b->momentum * (mean - rmean[c]),
				    nv = rvar[c] + b->momentum * ((float)(m > 1 ? ss / (m - 1) : var) - rvar[c]);
			if (isfinite(nm) && isfinite(nv)) { /* an overflow would stay in them for good */
				rmean[c] = nm;
				rvar[c] = nv;
			}
		} else {
			mean = rmean[c];
			istd = 1.0f / sqrtf(rvar[c] + b->eps);
		}
		const float g = gamma[c] * istd, o = beta[c] - g * mean;
		for (int i = 0; i < n; i++) {
			const size_t at = ((size_t)i * C + c) * HW;
			const float *x = l->x + at;
			float *y = l->y + at;
			if (l->training) {
				float *xh = b->xhat + at;
				for (int p = 0; p < HW; p++)
					xh[p] = (x[p] - mean) * istd;
			}
			for (int p = 0; p < HW; p++)
				y[p] = g * x[p] + o;
		}
	}
}

/* After a training forward: dgamma = sum dy xhat, dbeta = sum dy,
 * dx = gamma istd (dy - dbeta / m - xhat dgamma / m). */
static void bn_backward(struct layer *l, int n)
{
	struct batchnorm *b = l->priv;
	const int C = l->in.c, HW = l->in.h * l->in.w;
	const float m = (float)n * HW;
#pragma omp parallel for schedule(static)
	for (int c = 0; c < C; c++) {
		double dg = 0.0, db = 0.0;
		for (int i = 0; i < n; i++) {
			const size_t at = ((size_t)i * C + c) * HW;
			const float *dy = l->dy + at, *xh = b->xhat + at;
			for (int p = 0; p < HW; p++) {
				dg += dy[p] * xh[p];
				db += dy[p];
			}
		}
		l->g[c] = (float)dg;
		l->g[C + c] = (float)db;
		if (!l->dx)
			continue;
		const float k = l->w[c] * b->istd[c], mg = (float)dg / m, mb = (float)db / m;
		for (int i = 0; i < n; i++) {
			const size_t at = ((size_t)i * C + c) * HW;
			const float *dy = l->dy + at, *xh = b->xhat + at;
			float *dx = l->dx + at;
			for (int p = 0; p < HW; p++)
				dx[p] = k * (dy[p] - mb - xh[p] * mg);
		}
	}
}

static long long bn_macs(const struct layer *l)
{
	return dims_size(l->in);
}

const struct layer_ops batchnorm_ops = {
	.kind = "batchnorm",
	.init = bn_init,
	.free = bn_free,
	.init_params = bn_init_params,
	.forward = bn_forward,
	.backward = bn_backward,
	.macs = bn_macs,
};
