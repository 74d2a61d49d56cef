/* Rectified linear unit, elementwise: y = max(x, 0). */
#include "layers/gemm.h"
#include "layers/layer.h"

static int relu_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	l->out = l->in;
	return 0;
}

/* y = max(x, 0) and dx = dy where x > 0, on [0, len): branch-free, so the loops vectorise
 * (a branch on the sign of activations mispredicts half of the time). */
NK_CLONES
static void relu_range(const float *x, float *y, size_t len)
{
	for (size_t i = 0; i < len; i++)
		y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

NK_CLONES
static void relu_grad_range(const float *x, const float *dy, float *dx, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

#define CHUNK 4096

static void relu_forward(struct layer *l, int n)
{
	const size_t len = (size_t)n * dims_size(l->in);
#pragma omp parallel for schedule(static) if (len > (1 << 18))
	for (size_t i = 0; i < len; i += CHUNK)
		relu_range(l->x + i, l->y + i, NK_MIN(CHUNK, len - i));
}

static void relu_backward(struct layer *l, int n)
{
	if (!l->dx)
		return;
	const size_t len = (size_t)n * dims_size(l->in);
#pragma omp parallel for schedule(static) if (len > (1 << 18))
	for (size_t i = 0; i < len; i += CHUNK)
		relu_grad_range(l->x + i, l->dy + i, l->dx + i, NK_MIN(CHUNK, len - i));
}

static void relu_map(const struct layer *l, const float *in, float *out, int ld, int n0, int n1)
{
	for (int p = 0; p < l->in.h * l->in.w; p++)
		relu_range(in + (size_t)p * ld + n0, out + (size_t)p * ld + n0, n1 - n0);
}

const struct layer_ops relu_ops = {
	.kind = "relu",
	.init = relu_init,
	.forward = relu_forward,
	.backward = relu_backward,
	.map_channel = relu_map,
};
