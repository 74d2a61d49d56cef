/* Pooling: max and average over square windows (no padding), and global average pooling. */
#include <stdlib.h>
#include <string.h>

#include "layers/gemm.h"
#include "layers/layer.h"

struct pool {
	int size, stride;
	int *arg;       /* maxpool: [max_batch][out] input index of each maximum */
};

static int pool_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	int size = spec->size > 0 ? spec->size : 2, s = spec->stride > 0 ? spec->stride : size;
	if (size > l->in.h || size > l->in.w)
		return nk_errf(err, NK_ESHAPE, "%s: window %d does not fit input %dx%d", l->name, size,
			       l->in.h, l->in.w);
	struct pool *p = calloc(1, sizeof *p);
	if (!p)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory", l->name);
	l->priv = p;
	p->size = size;
	p->stride = s;
	l->out = (struct layer_dims){l->in.c, (l->in.h - size) / s + 1, (l->in.w - size) / s + 1};
	return 0;
}

static int maxpool_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	int rc = pool_init(l, spec, err);
	if (rc)
		return rc;
	struct pool *p = l->priv;
	p->arg = malloc(sizeof(int) * (size_t)l->max_batch * dims_size(l->out));
	return p->arg ? 0 : nk_errf(err, NK_ENOMEM, "%s: out of memory", l->name);
}

static void pool_free(struct layer *l)
{
	struct pool *p = l->priv;
	if (p)
		free(p->arg);
	free(p);
	l->priv = NULL;
}

/* One plane x [H][W] -> y [OH][OW]; arg (may be NULL) gets each maximum's input index. */
static void max_plane(const struct layer *l, const struct pool *p, const float *x, float *y, int *arg)
{
	const int W = l->in.w, OW = l->out.w;
	for (int oh = 0; oh < l->out.h; oh++)
		for (int ow = 0; ow < OW; ow++) {
			int best = (oh * p->stride) * W + ow * p->stride;
			for (int i = 0; i < p->size; i++)
				for (int j = 0; j < p->size; j++) {
					int at = (oh * p->stride + i) * W + ow * p->stride + j;
					if (x[at] > x[best])
						best = at;
				}
			y[oh * OW + ow] = x[best];
			if (arg)
				arg[oh * OW + ow] = best;
		}
}

static void maxpool_forward(struct layer *l, int n)
{
	const struct pool *p = l->priv;
	const int HW = l->in.h * l->in.w, OHW = l->out.h * l->out.w, planes = n * l->in.c;
#pragma omp parallel for schedule(static)
	for (int q = 0; q < planes; q++)
		max_plane(l, p, l->x + (size_t)q * HW, l->y + (size_t)q * OHW, p->arg + (size_t)q * OHW);
}

/* One channel, transposed planes (see layer.h): each output row is the maximum or the mean of
 * its window's input rows, sample by sample. */
NK_CLONES
static void pool_map(const struct layer *l, const float *in, float *out, int ld, int n0, int n1, int max)
{
	const struct pool *p = l->priv;
	const int W = l->in.w, OW = l->out.w;
	const float scale = 1.0f / (p->size * p->size);
	for (int oh = 0; oh < l->out.h; oh++)
		for (int ow = 0; ow < OW; ow++) {
			float *o = out + (size_t)(oh * OW + ow) * ld;
			for (int w = 0; w < p->size * p->size; w++) {
				const float *x = in + (size_t)((oh * p->stride + w / p->size) * W + ow * p->stride + w % p->size) * ld;
				for (int i = n0; i < n1; i++)
					o[i] = w == 0 ? x[i] : max ? (x[i] > o[i] ? x[i] : o[i]) : o[i] + x[i];
			}
			for (int i = n0; i < n1 && !max; i++)
				o[i] *= scale;
		}
}

static void maxpool_map(const struct layer *l, const float *in, float *out, int ld, int n0, int n1)
{
	pool_map(l, in, out, ld, n0, n1, 1);
}

static void maxpool_backward(struct layer *l, int n)
{
	if (!l->dx)
		return;
	const struct pool *p = l->priv;
	const int HW = l->in.h * l->in.w, OHW = l->out.h * l->out.w, planes = n * l->in.c;
	memset(l->dx, 0, sizeof(float) * (size_t)planes * HW);
#pragma omp parallel for schedule(static)
	for (int q = 0; q < planes; q++)
		for (int o = 0; o < OHW; o++)
			l->dx[(size_t)q * HW + p->arg[(size_t)q * OHW + o]] += l->dy[(size_t)q * OHW + o];
}

static void avg_plane(const struct layer *l, const struct pool *p, const float *x, float *y)
{
	const int W = l->in.w, OW = l->out.w;
	const float scale = 1.0f / (p->size * p->size);
	for (int oh = 0; oh < l->out.h; oh++)
		for (int ow = 0; ow < OW; ow++) {
			float s = 0.0f;
			for (int i = 0; i < p->size; i++)
				for (int j = 0; j < p->size; j++)
					s += x[(oh * p->stride + i) * W + ow * p->stride + j];
			y[oh * OW + ow] = s * scale;
		}
}

static void avgpool_map(const struct layer *l, const float *in, float *out, int ld, int n0, int n1)
{
	pool_map(l, in, out, ld, n0, n1, 0);
}

static void avgpool_forward(struct layer *l, int n)
{
	const int HW = l->in.h * l->in.w, OHW = l->out.h * l->out.w, planes = n * l->in.c;
#pragma omp parallel for schedule(static)
	for (int q = 0; q < planes; q++)
		avg_plane(l, l->priv, l->x + (size_t)q * HW, l->y + (size_t)q * OHW);
}

static void avgpool_backward(struct layer *l, int n)
{
	if (!l->dx)
		return;
	const struct pool *p = l->priv;
	const int H = l->in.h, W = l->in.w, OH = l->out.h, OW = l->out.w, planes = n * l->in.c;
	const float scale = 1.0f / (p->size * p->size);
	memset(l->dx, 0, sizeof(float) * (size_t)planes * H * W);
#pragma omp parallel for schedule(static)
	for (int q = 0; q < planes; q++) {
		float *dx = l->dx + (size_t)q * H * W;
		for (int oh = 0; oh < OH; oh++)
			for (int ow = 0; ow < OW; ow++) {
				float d = l->dy[(size_t)q * OH * OW + oh * OW + ow] * scale;
				for (int i = 0; i < p->size; i++)
					for (int j = 0; j < p->size; j++)
						dx[(oh * p->stride + i) * W + ow * p->stride + j] += d;
			}
	}
}

static int gap_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	l->out = (struct layer_dims){l->in.c, 1, 1};
	return 0;
}

static float gap_plane(const float *x, int HW)
{
	float s = 0.0f;
	for (int i = 0; i < HW; i++)
		s += x[i];
	return s / HW;
}

static void gap_map(const struct layer *l, const float *in, float *out, int ld, int n0, int n1)
{
	const int HW = l->in.h * l->in.w;
	for (int i = n0; i < n1; i++)
		out[i] = 0.0f;
	for (int p = 0; p < HW; p++)
		for (int i = n0; i < n1; i++)
			out[i] += in[(size_t)p * ld + i];
	for (int i = n0; i < n1; i++)
		out[i] /= HW;
}

static void gap_forward(struct layer *l, int n)
{
	const int planes = n * l->in.c, HW = l->in.h * l->in.w;
#pragma omp parallel for schedule(static)
	for (int q = 0; q < planes; q++)
		l->y[q] = gap_plane(l->x + (size_t)q * HW, HW);
}

static void gap_backward(struct layer *l, int n)
{
	if (!l->dx)
		return;
	const int HW = l->in.h * l->in.w, planes = n * l->in.c;
#pragma omp parallel for schedule(static)
	for (int q = 0; q < planes; q++)
		for (int i = 0; i < HW; i++)
			l->dx[(size_t)q * HW + i] = l->dy[q] / HW;
}

const struct layer_ops maxpool_ops = {
	.kind = "maxpool",
	.init = maxpool_init,
	.free = pool_free,
	.forward = maxpool_forward,
	.backward = maxpool_backward,
	.map_channel = maxpool_map,
};

const struct layer_ops avgpool_ops = {
	.kind = "avgpool",
	.init = pool_init,
	.free = pool_free,
	.forward = avgpool_forward,
	.backward = avgpool_backward,
	.map_channel = avgpool_map,
};

const struct layer_ops gap_ops = {
	.kind = "gap",
	.init = gap_init,
	.forward = gap_forward,
	.backward = gap_backward,
	.map_channel = gap_map,
};
