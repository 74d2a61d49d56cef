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
	/* For forward_channel: the input split by row and stride phase, rp [max_batch][C][hp][s][rw]
	 * with rp[..][r][ph][j] = x[..][r - pad][s * j + ph - pad] (0 in the padding), so that one
	 * output row is a sum of contiguous row segments. About the input's size (im2col would be
	 * k * k / (s * s) times it). NULL when over RP_BUDGET: channels are computed directly. */
	float *rp;
	int hp, rw, rp_tried;
};

#define RP_BUDGET ((size_t)256 << 20)
#define RP_MAX_OW 32 /* wider outputs are computed directly */

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
	free(cv->rp);
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

static size_t rp_size(const struct layer *l, const struct conv2d *cv)
{
	return (size_t)l->in.c * cv->hp * cv->stride * cv->rw;
}

static void rp_fill(const struct layer *l, const struct conv2d *cv, const float *x, float *rp)
{
	const int s = cv->stride, pad = cv->pad, H = l->in.h, W = l->in.w;
	for (int c = 0; c < l->in.c; c++)
		for (int r = 0; r < cv->hp; r++)
			for (int ph = 0; ph < s; ph++) {
				float *dst = rp + (((size_t)c * cv->hp + r) * s + ph) * cv->rw;
				int ih = r - pad;
				for (int j = 0; j < cv->rw; j++) {
					int iw = s * j + ph - pad;
					dst[j] = (ih >= 0 && ih < H && iw >= 0 && iw < W) ? x[((size_t)c * H + ih) * W + iw] : 0.0f;
				}
			}
}

static void conv2d_channel_prepare(struct layer *l, int n)
{
	struct conv2d *cv = l->priv;
	if (!cv->rp_tried) {
		cv->rp_tried = 1;
		/* Rows for whole blocks of output rows (8 / NV of them, see RP_PLANE). */
		int rb = l->out.w <= 8 ? 8 : l->out.w <= 16 ? 4 : 2;
		int ohr = (l->out.h + rb - 1) / rb * rb;
		cv->hp = NK_MAX(l->in.h + 2 * cv->pad, cv->stride * (ohr - 1) + cv->k);
		/* Room for reading a whole vector-width row (8 or 16) past the last output. */
		int vw = l->out.w <= 8 ? 8 : l->out.w <= 16 ? 16 : 32;
		cv->rw = vw + (cv->k - 1) / cv->stride;
		size_t bytes = (size_t)l->max_batch * rp_size(l, cv) * sizeof(float);
		if (bytes <= RP_BUDGET && l->out.w <= RP_MAX_OW && cv->k <= 64)
			cv->rp = nk_floats((size_t)l->max_batch * rp_size(l, cv));
	}
	if (!cv->rp)
		return;
	const size_t per = rp_size(l, cv);
#pragma omp parallel for schedule(static)
	for (int i = 0; i < n; i++)
		rp_fill(l, cv, l->x + (size_t)i * dims_size(l->in), cv->rp + i * per);
}

/* One output plane from the row-phase copy: out[oh][ow] = b + sum w[c][ki][kj] *
 * rp[c][s oh + ki][kj % s][ow + kj / s]. Eight accumulators of 8 floats stay in registers: RB
 * output rows of NV vectors each (RB * NV = 8), so each weight is loaded once per RB rows and
 * the sums are independent. rp has rows enough for whole blocks of RB output rows. */
#define RP_PLANE(NAME, NV)                                                                         \
	NK_CLONES static void NAME(const struct layer *l, const struct conv2d *cv, const float *w,  \
				   float b, const float *rp, float *out)                                \
	{                                                                                          \
		enum { RB = 8 / (NV) };                                                            \
		const int k = cv->k, s = cv->stride, OW = l->out.w, rw = cv->rw;                   \
		const size_t rstep = (size_t)s * s * rw; /* next output row, same ki */            \
		int off[64];                                                                       \
		for (int kj = 0; kj < k; kj++)                                                     \
			off[kj] = (kj % s) * rw + kj / s;                                          \
		for (int oh0 = 0; oh0 < l->out.h; oh0 += RB) {                                     \
			nk_v8f acc[RB][NV];                                                           \
			memset(acc, 0, sizeof acc);                                                \
			for (int c = 0; c < l->in.c; c++)                                          \
				for (int ki = 0; ki < k; ki++) {                                   \
					const float *row = rp + (((size_t)c * cv->hp + s * oh0 + ki) * s) * rw; \
					const float *wr = w + (c * k + ki) * k;                    \
					for (int kj = 0; kj < k; kj++) {                           \
						const float a = wr[kj], *src = row + off[kj];      \
						for (int r = 0; r < RB; r++)                       \
							for (int v = 0; v < NV; v++)               \
								acc[r][v] += a * nk_load8(src + r * rstep + 8 * v); \
					}                                                          \
				}                                                                  \
			for (int r = 0; r < RB && oh0 + r < l->out.h; r++) {                       \
				float tmp[8 * NV];                                                 \
				memcpy(tmp, acc[r], sizeof tmp);                                   \
				for (int ow = 0; ow < OW; ow++)                                    \
					out[(oh0 + r) * OW + ow] = (tmp[ow] + b) * l->scale;       \
			}                                                                          \
		}                                                                                  \
	}
RP_PLANE(rp_plane8, 1)
RP_PLANE(rp_plane16, 2)
RP_PLANE(rp_plane32, 4)

/* One output plane straight from the input, for layers whose row-phase copy is too big to keep. */
static void direct_plane(const struct layer *l, const struct conv2d *cv, const float *w, float b,
			 const float *x, float *out)
{
	const int k = cv->k, s = cv->stride, pad = cv->pad, H = l->in.h, W = l->in.w;
	for (int oh = 0; oh < l->out.h; oh++)
		for (int ow = 0; ow < l->out.w; ow++) {
			float acc = b;
			for (int c = 0; c < l->in.c; c++)
				for (int ki = 0; ki < k; ki++) {
					int ih = oh * s - pad + ki;
					if (ih < 0 || ih >= H)
						continue;
					for (int kj = 0; kj < k; kj++) {
						int iw = ow * s - pad + kj;
						if (iw >= 0 && iw < W)
							acc += w[(c * k + ki) * k + kj] * x[(c * H + ih) * W + iw];
					}
				}
			out[oh * l->out.w + ow] = acc;
		}
}

static void conv2d_forward_channel(struct layer *l, int f, int n0, int n1, float *out)
{
	const struct conv2d *cv = l->priv;
	const int ckk = cv->ckk, np = cv->np;
	const float *w = l->w + (size_t)f * ckk, b = l->w[(size_t)l->out.c * ckk + f];
	for (int i = n0; i < n1; i++) {
		float *o = out + (size_t)(i - n0) * np;
		if (cv->rp) {
			const float *rp = cv->rp + (size_t)i * rp_size(l, cv);
			if (l->out.w <= 8)
				rp_plane8(l, cv, w, b, rp, o);
			else if (l->out.w <= 16)
				rp_plane16(l, cv, w, b, rp, o);
			else
				rp_plane32(l, cv, w, b, rp, o);
			continue;
		}
		direct_plane(l, cv, w, b, l->x + (size_t)i * dims_size(l->in), o);
		if (l->scale != 1.0f)
			for (int p = 0; p < np; p++)
				o[p] *= l->scale;
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
