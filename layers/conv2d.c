/* 2-D convolution, any square kernel, stride and zero padding. Forward and backward go through
 * im2col and the blocked GEMM of layers/gemm.c, one sample per OpenMP iteration; each thread has
 * its own column buffers and gradient accumulator, sized once at init. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/gemm.h"
#include "layers/layer.h"

struct conv2d {
	int k, stride, pad;
	int ckk;        /* C * k * k: rows of the column matrix */
	int np;         /* OH * OW: output positions */
	int threads;
	float *col;     /* [threads][ckk][np] */
	float *colt;    /* [threads][np][ckk] */
	float *gpart;   /* [threads][nparams] */
	/* For forward_channel: the padded input with eight samples side by side,
	 * xs [max_batch / 8][C][xh][xw][8], xs[b][c][r][j][v] = x[8 b + v][c][r - pad][j - pad] (0 in
	 * the padding and past the batch), so that one vector holds a pixel of eight samples. xw
	 * leaves room for whole blocks of 8 output columns. About the input's size. */
	float *xs;
	int xh, xw;
};

/* Gather the receptive fields of one sample x [C][H][W]: element (r, p) goes to
 * col[r * rs + p * ps], r = (c * k + ki) * k + kj, p = oh * OW + ow; padding reads as 0. */
static void im2col(const struct layer *l, const struct conv2d *cv, const float *x, float *col,
		   int rs, int ps)
{
	const int k = cv->k, s = cv->stride, pad = cv->pad;
	const int H = l->in.h, W = l->in.w, OH = l->out.h, OW = l->out.w;
	for (int c = 0; c < l->in.c; c++)
		for (int ki = 0; ki < k; ki++)
			for (int kj = 0; kj < k; kj++) {
				int r = (c * k + ki) * k + kj;
				const float *xc = x + (size_t)c * H * W;
				for (int oh = 0; oh < OH; oh++) {
					int ih = oh * s - pad + ki;
					float *dst = col + (size_t)r * rs + (size_t)oh * OW * ps;
					if (ih < 0 || ih >= H) {
						for (int ow = 0; ow < OW; ow++)
							dst[ow * ps] = 0.0f;
						continue;
					}
					for (int ow = 0; ow < OW; ow++) {
						int iw = ow * s - pad + kj;
						dst[ow * ps] = (iw >= 0 && iw < W) ? xc[ih * W + iw] : 0.0f;
					}
				}
			}
}

/* The adjoint of im2col for col laid out [ckk][np]: dx [C][H][W] = sum of the fields. */
static void col2im(const struct layer *l, const struct conv2d *cv, const float *col, float *dx)
{
	const int k = cv->k, s = cv->stride, pad = cv->pad;
	const int H = l->in.h, W = l->in.w, OH = l->out.h, OW = l->out.w;
	memset(dx, 0, sizeof(float) * dims_size(l->in));
	for (int c = 0; c < l->in.c; c++)
		for (int ki = 0; ki < k; ki++)
			for (int kj = 0; kj < k; kj++) {
				const float *src = col + (size_t)((c * k + ki) * k + kj) * cv->np;
				float *dc = dx + (size_t)c * H * W;
				for (int oh = 0; oh < OH; oh++) {
					int ih = oh * s - pad + ki;
					if (ih < 0 || ih >= H)
						continue;
					for (int ow = 0; ow < OW; ow++) {
						int iw = ow * s - pad + kj;
						if (iw >= 0 && iw < W)
							dc[ih * W + iw] += src[oh * OW + ow];
					}
				}
			}
}

static int conv2d_init(struct layer *l, const struct chain_layer *spec, char err[NK_ERR_LEN])
{
	int k = spec->kernel, s = spec->stride > 0 ? spec->stride : 1, pad = spec->pad;
	if (k <= 0 || spec->filters <= 0 || pad < 0)
		return nk_errf(err, NK_EINVAL, "%s: filters and kernel must be positive", l->name);
	int oh = (l->in.h + 2 * pad - k) / s + 1, ow = (l->in.w + 2 * pad - k) / s + 1;
	if (l->in.h + 2 * pad < k || l->in.w + 2 * pad < k || oh <= 0 || ow <= 0)
		return nk_errf(err, NK_ESHAPE, "%s: kernel %d does not fit input %dx%dx%d with padding %d",
			       l->name, k, l->in.c, l->in.h, l->in.w, pad);
	struct conv2d *cv = calloc(1, sizeof *cv);
	if (!cv)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory", l->name);
	l->priv = cv;
	cv->k = k;
	cv->stride = s;
	cv->pad = pad;
	cv->ckk = l->in.c * k * k;
	cv->np = oh * ow;
	cv->threads = nk_threads();
	l->out = (struct layer_dims){spec->filters, oh, ow};
	l->binary = spec->binary;
	l->scale = spec->binary ? 1.0f / sqrtf((float)cv->ckk) : 1.0f;
	l->nparams = (size_t)spec->filters * cv->ckk + spec->filters;
	size_t cols = (size_t)cv->threads * cv->ckk * cv->np;
	cv->col = nk_floats(cols);
	cv->colt = nk_floats(cols);
	cv->gpart = nk_floats((size_t)cv->threads * l->nparams);
	if (!cv->col || !cv->colt || !cv->gpart)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory for scratch", l->name);
	return 0;
}

static void conv2d_free(struct layer *l)
{
	struct conv2d *cv = l->priv;
	if (!cv)
		return;
	free(cv->col);
	free(cv->colt);
	free(cv->gpart);
	free(cv->xs);
	free(cv);
	l->priv = NULL;
}

static void conv2d_init_params(struct layer *l, struct nk_rng *r)
{
	struct conv2d *cv = l->priv;
	if (l->binary) {
		layer_fill_signs(l->w, l->nparams, r);
		return;
	}
	/* PyTorch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases. */
	layer_fill_uniform(l->w, l->nparams, 1.0f / sqrtf((float)cv->ckk), r);
}

static void conv2d_forward(struct layer *l, int n)
{
	struct conv2d *cv = l->priv;
	const int K = l->out.c, ckk = cv->ckk, np = cv->np;
	const float *b = l->w + (size_t)K * ckk;
#pragma omp parallel
	{
		float *col = cv->col + (size_t)nk_thread_id() * ckk * np;
#pragma omp for schedule(static)
		for (int i = 0; i < n; i++) {
			float *y = l->y + (size_t)i * K * np;
			im2col(l, cv, l->x + (size_t)i * dims_size(l->in), col, np, 1);
			for (int f = 0; f < K; f++)
				for (int p = 0; p < np; p++)
					y[f * np + p] = b[f];
			gemm_nn(K, np, ckk, l->w, ckk, col, np, y, np);
			if (l->scale != 1.0f)
				for (int j = 0; j < K * np; j++)
					y[j] *= l->scale;
		}
	}
}

/* Binary layers (scale != 1) are trained by MCMC only: backward assumes scale == 1. */
static void conv2d_backward(struct layer *l, int n)
{
	struct conv2d *cv = l->priv;
	const int K = l->out.c, ckk = cv->ckk, np = cv->np;
	const size_t np_all = l->nparams;
	memset(cv->gpart, 0, sizeof(float) * cv->threads * np_all);
#pragma omp parallel
	{
		int t = nk_thread_id();
		float *colt = cv->colt + (size_t)t * ckk * np;
		float *dcol = cv->col + (size_t)t * ckk * np;
		float *gw = cv->gpart + (size_t)t * np_all, *gb = gw + (size_t)K * ckk;
#pragma omp for schedule(static)
		for (int i = 0; i < n; i++) {
			const float *dy = l->dy + (size_t)i * K * np;
			im2col(l, cv, l->x + (size_t)i * dims_size(l->in), colt, 1, ckk);
			gemm_nn(K, ckk, np, dy, np, colt, ckk, gw, ckk);
			for (int f = 0; f < K; f++) {
				float s = 0.0f;
				for (int p = 0; p < np; p++)
					s += dy[f * np + p];
				gb[f] += s;
			}
			if (l->dx) {
				memset(dcol, 0, sizeof(float) * ckk * np);
				gemm_tn(ckk, np, K, l->w, ckk, dy, np, dcol, np);
				col2im(l, cv, dcol, l->dx + (size_t)i * dims_size(l->in));
			}
		}
#pragma omp for schedule(static)
		for (size_t j = 0; j < np_all; j++) {
			float s = 0.0f;
			for (int u = 0; u < cv->threads; u++)
				s += cv->gpart[(size_t)u * np_all + j];
			l->g[j] = s;
		}
	}
}

/* Samples [8 b0, 8 b1) of x into xs (see struct conv2d). */
static void xs_fill(const struct layer *l, const struct conv2d *cv, int n, int b0, int b1)
{
	const int C = l->in.c, H = l->in.h, W = l->in.w, pad = cv->pad, xh = cv->xh, xw = cv->xw;
	const size_t per = (size_t)C * xh * xw * 8;
	memset(cv->xs + b0 * per, 0, sizeof(float) * (b1 - b0) * per);
	for (int b = b0; b < b1; b++)
		for (int v = 0; v < 8 && 8 * b + v < n; v++) {
			const float *x = l->x + (size_t)(8 * b + v) * C * H * W;
			for (int c = 0; c < C; c++)
				for (int r = 0; r < H; r++) {
					float *dst = cv->xs + b * per + (((size_t)c * xh + r + pad) * xw + pad) * 8 + v;
					for (int j = 0; j < W; j++)
						dst[8 * j] = x[((size_t)c * H + r) * W + j];
				}
		}
}

static int conv2d_channel_prepare(struct layer *l, int n)
{
	struct conv2d *cv = l->priv;
	if (!cv->xs) {
		const int ow8 = (l->out.w + 7) / 8 * 8;
		cv->xh = l->in.h + 2 * cv->pad;
		cv->xw = NK_MAX(l->in.w + 2 * cv->pad, cv->stride * (ow8 - 1) + cv->k);
		if (!(cv->xs = nk_floats((size_t)(l->max_batch + 7) / 8 * l->in.c * cv->xh * cv->xw * 8)))
			return NK_ENOMEM;
	}
	const int nb = (n + 7) / 8;
#pragma omp parallel
	{
		int lo, hi;
		nk_split(nb, &lo, &hi);
		xs_fill(l, cv, n, lo, hi);
	}
	return 0;
}

/* Output channel f of the eight samples of one block of xs, out[p][v] = scale (b + sum w x) at
 * out + p * ld + v, for lanes [v0, v1). Eight output columns of eight samples at a time: eight
 * independent sums in registers, each weight loaded once for them, every load a whole aligned
 * vector. Inlined into kernels with k and s fixed for the common shapes, whose loops the compiler
 * then unrolls with constant offsets (nearly twice as fast), and into one for any shape. */
static inline __attribute__((always_inline)) void
block_channel(const struct layer *l, const struct conv2d *cv, const int k, const int s, const float *w, float b,
	      const float *xs, float *out, int ld, int v0, int v1)
{
	const int OW = l->out.w, xh = cv->xh, xw = cv->xw;
	for (int oh = 0; oh < l->out.h; oh++)
		for (int ow0 = 0; ow0 < OW; ow0 += 8) {
			nk_v8f acc[8];
			memset(acc, 0, sizeof acc);
			for (int c = 0; c < l->in.c; c++)
				for (int ki = 0; ki < k; ki++) {
					const float *row = xs + (((size_t)c * xh + oh * s + ki) * xw + (size_t)ow0 * s) * 8;
					const float *wr = w + (c * k + ki) * k;
					for (int kj = 0; kj < k; kj++) {
						const float a = wr[kj];
						for (int v = 0; v < 8; v++)
							acc[v] += a * nk_load8(row + (v * s + kj) * 8);
					}
				}
			for (int v = 0; v < 8 && ow0 + v < OW; v++) {
				float *o = out + (size_t)(oh * OW + ow0 + v) * ld;
				const nk_v8f y = (acc[v] + b) * l->scale;
				if (v0 == 0 && v1 == 8) {
					memcpy(o, &y, sizeof y);
				} else {
					float t[8];
					memcpy(t, &y, sizeof t);
					for (int u = v0; u < v1; u++)
						o[u] = t[u];
				}
			}
		}
}

typedef void block_fn(const struct layer *l, const struct conv2d *cv, const float *w, float b, const float *xs,
		      float *out, int ld, int v0, int v1);

#define BLOCK_KERNEL(NAME, K, S)                                                                    \
	NK_CLONES static void NAME(const struct layer *l, const struct conv2d *cv, const float *w,   \
				   float b, const float *xs, float *out, int ld, int v0, int v1)        \
	{                                                                                           \
		block_channel(l, cv, K, S, w, b, xs, out, ld, v0, v1);                              \
	}
BLOCK_KERNEL(block_k7s3, 7, 3)
BLOCK_KERNEL(block_k3s1, 3, 1)
BLOCK_KERNEL(block_k5s1, 5, 1)
BLOCK_KERNEL(block_any, cv->k, cv->stride)

static void conv2d_forward_channel(struct layer *l, int f, int n0, int n1, float *out, int ld)
{
	const struct conv2d *cv = l->priv;
	const int ckk = cv->ckk, k = cv->k, s = cv->stride;
	block_fn *fn = k == 7 && s == 3 ? block_k7s3 : k == 3 && s == 1 ? block_k3s1 : k == 5 && s == 1 ? block_k5s1 : block_any;
	const float *w = l->w + (size_t)f * ckk, b = l->w[(size_t)l->out.c * ckk + f];
	const size_t per = (size_t)l->in.c * cv->xh * cv->xw * 8;
	for (int i = n0; i < n1;) {
		const int blk = i / 8, v0 = i % 8, v1 = NK_MIN(8, n1 - 8 * blk);
		fn(l, cv, w, b, cv->xs + blk * per, out + 8 * blk, ld, v0, v1);
		i = 8 * blk + v1;
	}
}

static long long conv2d_macs(const struct layer *l)
{
	const struct conv2d *cv = l->priv;
	return (long long)l->out.c * cv->np * cv->ckk;
}

const struct layer_ops conv2d_ops = {
	.kind = "conv",
	.init = conv2d_init,
	.free = conv2d_free,
	.init_params = conv2d_init_params,
	.forward = conv2d_forward,
	.backward = conv2d_backward,
	.macs = conv2d_macs,
	.channel_prepare = conv2d_channel_prepare,
	.forward_channel = conv2d_forward_channel,
};
