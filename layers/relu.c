/* Rectified linear unit, elementwise: y = max(x, 0). */
#include "layers/gemm.h"
#include "layers/layer.h"

static int relu_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	l->out = l->in;
	return 0;
}

static void relu_forward(struct layer *l, int n)
{
	const size_t len = (size_t)n * dims_size(l->in);
	const float *x = l->x;
	float *y = l->y;
#pragma omp parallel for simd schedule(static) if (len > NK_PAR_WORK)
	for (size_t i = 0; i < len; i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void relu_backward(struct layer *l, int n)
{
	if (!l->dx)
		return;
	const size_t len = (size_t)n * dims_size(l->in);
	const float *x = l->x, *dy = l->dy;
	float *dx = l->dx;
#pragma omp parallel for simd schedule(static) if (len > NK_PAR_WORK)
	for (size_t i = 0; i < len; i++)
		dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

const struct layer_ops relu_ops = {
	.kind = "relu",
	.init = relu_init,
	.forward = relu_forward,
	.backward = relu_backward,
};
