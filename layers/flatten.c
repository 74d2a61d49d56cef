/* Flatten C x H x W into C*H*W x 1 x 1 (the data is already contiguous: a copy, no reorder). */
#include <string.h>

#include "layers/layer.h"

static int flatten_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	l->out = (struct layer_dims){dims_size(l->in), 1, 1};
	return 0;
}

static void flatten_forward(struct layer *l, int n)
{
	memcpy(l->y, l->x, sizeof(float) * n * dims_size(l->in));
}

static void flatten_backward(struct layer *l, int n)
{
	if (l->dx)
		memcpy(l->dx, l->dy, sizeof(float) * n * dims_size(l->in));
}

static void flatten_map(const struct layer *l, const float *in, float *out, int ld, int n0, int n1)
{
	for (int p = 0; p < l->in.h * l->in.w; p++)
		memcpy(out + (size_t)p * ld + n0, in + (size_t)p * ld + n0, sizeof(float) * (n1 - n0));
}

const struct layer_ops flatten_ops = {
	.kind = "flatten",
	.init = flatten_init,
	.forward = flatten_forward,
	.backward = flatten_backward,
	.map_channel = flatten_map,
};
