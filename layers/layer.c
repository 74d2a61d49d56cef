/* The table of layer kinds and the initialisers they share. */
#include "layers/layer.h"

#include <string.h>

static const struct layer_ops *const kinds[] = {
	&conv2d_ops, &linear_ops, &relu_ops, &maxpool_ops, &avgpool_ops, &gap_ops, &flatten_ops,
	&batchnorm_ops,
};

const struct layer_ops *layer_find(const char *kind)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strcmp(kinds[i]->kind, kind) == 0)
			return kinds[i];
	return NULL;
}

void layer_fill_uniform(float *w, size_t n, float bound, struct nk_rng *r)
{
	for (size_t i = 0; i < n; i++)
		w[i] = (float)((2.0 * rng_uniform(r) - 1.0) * bound);
}

void layer_fill_signs(float *w, size_t n, struct nk_rng *r)
{
	for (size_t i = 0; i < n; i++)
		w[i] = (rng_u64(r) >> 63) ? 1.0f : -1.0f;
}
