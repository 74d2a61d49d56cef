/* Pooling: max and average over square windows (no padding) or onto a grid (adaptive windows),
 * and global average pooling. */
#include <stdlib.h>
#include <string.h>

#include "layers/gemm.h"
#include "layers/layer.h"

struct pool {
	int *r0, *r1;   /* [out.h] rows of each output row's window: [r0, r1) */
	int *c0, *c1;   /* [out.w] columns likewise */
	int *arg;       /* maxpool: [max_batch][out] input index of each maximum */
};

/* Windows of n outputs over an input of length len: fixed size and stride, or (grid) the cuts of
 * PyTorch's adaptive pools, [floor(i len / n), ceil((i + 1) len / n)). */
static void windows(int *lo, int *hi, int n, int len, int size, int stride, int grid)
{
	for (int i = 0; i < n; i++) {
		lo[i] = grid ? i * len / n : i * stride;
		hi[i] = grid ? ((i + 1) * len + n - 1) / n : i * stride + size;
	}
}

static int pool_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	int size = spec->size > 0 ? spec->size : 2, s = spec->stride > 0 ? spec->stride : size, g = spec->grid;
	if (g > 0 && (g > l->in.h || g > l->in.w))
		return nk_errf(err, NK_ESHAPE, "%s: grid %d is finer than input %dx%d", l->name, g,
			       l->in.h, l->in.w);
	if (g == 0 && (size > l->in.h || size > l->in.w))
		return nk_errf(err, NK_ESHAPE, "%s: window %d does not fit input %dx%d", l->name, size,
			       l->in.h, l->in.w);
	struct pool *p = calloc(1, sizeof *p);
	if (!p)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory", l->name);
	l->priv = p;
	l->out = g ? (struct layer_dims){l->in.c, g, g}
		   : (struct layer_dims){l->in.c, (l->in.h - size) / s + 1, (l->in.w - size) / s + 1};
	p->r0 = malloc(sizeof(int) * 2 * (l->out.h + l->out.w));
	if (!p->r0)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory", l->name);
	p->r1 = p->r0 + l->out.h;
	p->c0 = p->r1 + l->out.h;
	p->c1 = p->c0 + l->out.w;
	windows(p->r0, p->r1, l->out.h, l->in.h, size, s, g);
	windows(p->c0, p->c1, l->out.w, l->in.w, size, s, g);
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
	if (p) {
		free(p->r0);
		free(p->arg);
	}
	free(p);
	l->priv = NULL;
}

static inline int window_area(const struct pool *p, int oh, int ow)
{
	return (p->r1[oh] - p->r0[oh]) * (p->c1[ow] - p->c0[ow]);
}

/* One plane x [H][W] -> y [OH][OW]; arg (may be NULL) gets each maximum's input index. */
static void max_plane(const struct layer *l, const struct pool *p, const float *x, float *y, int *arg)
{
	const int W = l->in.w, OW = l->out.w;
	for (int oh = 0; oh < l->out.h; oh++)
		for (int ow = 0; ow < OW; ow++) {
			int best = p->r0[oh] * W + p->c0[ow];
			for (int i = p->r0[oh]; i < p->r1[oh]; i++)
				for (int j = p->c0[ow]; j < p->c1[ow]; j++)
					if (x[i * W + j] > x[best])
						best = i * W + j;
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
	for (int oh = 0; oh < l->out.h; oh++)
		for (int ow = 0; ow < OW; ow++) {
			float *o = out + (size_t)(oh * OW + ow) * ld;
			int first = 1;
			for (int r = p->r0[oh]; r < p->r1[oh]; r++)
				for (int c = p->c0[ow]; c < p->c1[ow]; c++, first = 0) {
					const float *x = in + (size_t)(r * W + c) * ld;
					for (int i = n0; i < n1; i++)
						o[i] = first ? x[i] : max ? (x[i] > o[i] ? x[i] : o[i]) : o[i] + x[i];
				}
			const float scale = 1.0f / window_area(p, oh, ow);
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
	for (int oh = 0; oh < l->out.h; oh++)
		for (int ow = 0; ow < OW; ow++) {
			float s = 0.0f;
			for (int i = p->r0[oh]; i < p->r1[oh]; i++)
				for (int j = p->c0[ow]; j < p->c1[ow]; j++)
					s += x[i * W + j];
			y[oh * OW + ow] = s / window_area(p, oh, ow);
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
	memset(l->dx, 0, sizeof(float) * (size_t)planes * H * W);
#pragma omp parallel for schedule(static)
	for (int q = 0; q < planes; q++) {
		float *dx = l->dx + (size_t)q * H * W;
		for (int oh = 0; oh < OH; oh++)
			for (int ow = 0; ow < OW; ow++) {
				float d = l->dy[(size_t)q * OH * OW + oh * OW + ow] / window_area(p, oh, ow);
				for (int i = p->r0[oh]; i < p->r1[oh]; i++)
					for (int j = p->c0[ow]; j < p->c1[ow]; j++)
						dx[i * W + j] += d;
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
