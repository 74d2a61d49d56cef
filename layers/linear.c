/* Fully connected layer on the flattened input: y[n] = W x[n] + b, W [out][in], then b [out]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/gemm.h"
#include "layers/layer.h"

static int linear_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	if (spec->units <= 0)
		return nk_errf(err, NK_EINVAL, "%s: units must be positive", l->name);
	l->out = (struct layer_dims){spec->units, 1, 1};
	l->binary = spec->binary;
	l->scale = spec->binary ? 1.0f / sqrtf((float)dims_size(l->in)) : 1.0f;
	l->nparams = (size_t)spec->units * dims_size(l->in) + spec->units;
	return 0;
}

static void linear_init_params(struct layer *l, struct nk_rng *r)
{
	if (l->binary)
		layer_fill_signs(l->w, l->nparams, r);
	else
		layer_fill_uniform(l->w, l->nparams, 1.0f / sqrtf((float)dims_size(l->in)), r);
}

static void linear_forward(struct layer *l, int n)
{
	const int I = dims_size(l->in), O = l->out.c;
	const float *b = l->w + (size_t)O * I;
#pragma omp parallel if ((long)n * I * O > NK_PAR_WORK)
	{
		int lo, hi;
		nk_split(n, &lo, &hi);
		for (int i = lo; i < hi; i++)
			memcpy(l->y + (size_t)i * O, b, sizeof(float) * O);
		if (hi > lo)
			gemm_nt(hi - lo, O, I, l->x + (size_t)lo * I, I, l->w, I, l->y + (size_t)lo * O, O);
		if (l->scale != 1.0f)
			for (size_t j = (size_t)lo * O; j < (size_t)hi * O; j++)
				l->y[j] *= l->scale;
	}
}

/* Binary layers (scale != 1) are trained by MCMC only: backward assumes scale == 1. */
static void linear_backward(struct layer *l, int n)
{
	const int I = dims_size(l->in), O = l->out.c;
	float *gb = l->g + (size_t)O * I;
	memset(l->g, 0, sizeof(float) * l->nparams);
	for (int i = 0; i < n; i++)
		for (int o = 0; o < O; o++)
			gb[o] += l->dy[(size_t)i * O + o];
#pragma omp parallel if ((long)n * I * O > NK_PAR_WORK)
	{
		/* dW [O][I] = dy^T x, split by input columns; dx [n][I] = dy W, split by samples. */
		int lo, hi;
		nk_split(I, &lo, &hi);
		if (hi > lo)
			gemm_tn(O, hi - lo, n, l->dy, O, l->x + lo, I, l->g + lo, I);
		if (l->dx) {
			nk_split(n, &lo, &hi);
			if (hi > lo) {
				memset(l->dx + (size_t)lo * I, 0, sizeof(float) * (size_t)(hi - lo) * I);
				gemm_nn(hi - lo, I, O, l->dy + (size_t)lo * O, O, l->w, I, l->dx + (size_t)lo * I, I);
			}
		}
	}
}

static long long linear_macs(const struct layer *l)
{
	return (long long)l->out.c * dims_size(l->in);
}

const struct layer_ops linear_ops = {
	.kind = "linear",
	.init = linear_init,
	.init_params = linear_init_params,
	.forward = linear_forward,
	.backward = linear_backward,
	.macs = linear_macs,
};
