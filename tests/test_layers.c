/* Every layer kind: forward against a naive reference, backward against finite differences. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/layer.h"
#include "layers/xent.h"

struct fixture {
	struct layer l;
	float *x, *dx;
	int n;
};

static float urand(struct nk_rng *r, float lo, float hi)
{
	return lo + (hi - lo) * (float)rng_uniform(r);
}

/* A standalone layer with its own buffers; inputs away from 0 so that ReLU kinks stay clear of
 * the finite-difference steps, and all distinct so that max-pool has no ties. */
static void fx_new(struct fixture *f, const struct layer_ops *ops, struct chain_layer spec,
		   struct layer_dims in, int n, uint64_t seed)
{
	char err[NK_ERR_LEN];
	memset(f, 0, sizeof *f);
	f->n = n;
	f->l.ops = ops;
	f->l.in = in;
	f->l.max_batch = n;
	snprintf(f->l.name, sizeof f->l.name, "t");
	cr_assert_eq(ops->init(&f->l, &spec, err), 0, "%s", err);
	struct nk_rng r;
	rng_seed(&r, seed);
	size_t nin = (size_t)n * dims_size(in), nout = (size_t)n * dims_size(f->l.out);
	f->x = nk_floats(nin);
	f->dx = nk_floats(nin);
	f->l.w = nk_floats(f->l.nparams + 1);
	f->l.g = nk_floats(f->l.nparams + 1);
	f->l.y = nk_floats(nout);
	f->l.dy = nk_floats(nout);
	f->l.buf = nk_floats(f->l.nbuf + 1);
	for (size_t i = 0; i < nin; i++) {
		float v = 0.05f + 0.001f * (float)i / nin + urand(&r, 0, 0.9f);
		f->x[i] = (rng_u64(&r) & 1) ? v : -v;
	}
	for (size_t i = 0; i < f->l.nparams; i++)
		f->l.w[i] = urand(&r, -0.5f, 0.5f);
	for (size_t i = 0; i < nout; i++)
		f->l.dy[i] = urand(&r, -1, 1);
	f->l.x = f->x;
	f->l.dx = f->dx;
}

static void fx_free(struct fixture *f)
{
	if (f->l.ops->free)
		f->l.ops->free(&f->l);
	free(f->x);
	free(f->dx);
	free(f->l.w);
	free(f->l.g);
	free(f->l.y);
	free(f->l.dy);
	free(f->l.buf);
}

/* L = sum(y * dy): its gradient w.r.t. y is dy, so backward must give dL/dw and dL/dx. */
static double probe_loss(struct fixture *f)
{
	f->l.ops->forward(&f->l, f->n);
	double s = 0;
	size_t nout = (size_t)f->n * dims_size(f->l.out);
	for (size_t i = 0; i < nout; i++)
		s += (double)f->l.y[i] * f->l.dy[i];
	return s;
}

static void check_one(struct fixture *f, float *v, float analytic, const char *what, size_t i)
{
	const float eps = 1e-3f;
	float keep = *v;
	*v = keep + eps;
	double lp = probe_loss(f);
	*v = keep - eps;
	double lm = probe_loss(f);
	*v = keep;
	double num = (lp - lm) / (2 * eps);
	double tol = 2e-2 * fmax(1.0, fabs(num));
	cr_expect(fabs(num - analytic) <= tol, "%s[%zu]: finite difference %g, backward %g", what, i, num,
		  analytic);
}

/* Backward against central differences on up to 300 parameters and 300 inputs. */
static void grad_check(struct fixture *f)
{
	probe_loss(f);
	f->l.ops->backward(&f->l, f->n);
	size_t nin = (size_t)f->n * dims_size(f->l.in);
	float *g = malloc(sizeof(float) * (f->l.nparams + 1)), *dx = malloc(sizeof(float) * nin);
	memcpy(g, f->l.g, sizeof(float) * f->l.nparams);
	memcpy(dx, f->dx, sizeof(float) * nin);
	size_t step = f->l.nparams / 300 + 1;
	for (size_t i = 0; i < f->l.nparams; i += step)
		check_one(f, &f->l.w[i], g[i], "w", i);
	step = nin / 300 + 1;
	for (size_t i = 0; i < nin; i += step)
		check_one(f, &f->x[i], dx[i], "x", i);
	free(g);
	free(dx);
}

static void naive_conv(const struct fixture *f, int K, int k, int s, int p, float *out)
{
	const struct layer_dims in = f->l.in, o = f->l.out;
	const float *b = f->l.w + (size_t)K * in.c * k * k;
	for (int n = 0; n < f->n; n++)
		for (int q = 0; q < K; q++)
			for (int oh = 0; oh < o.h; oh++)
				for (int ow = 0; ow < o.w; ow++) {
					double acc = b[q];
					for (int c = 0; c < in.c; c++)
						for (int i = 0; i < k; i++)
							for (int j = 0; j < k; j++) {
								int ih = oh * s - p + i, iw = ow * s - p + j;
								if (ih < 0 || iw < 0 || ih >= in.h || iw >= in.w)
									continue;
								acc += (double)f->l.w[((q * in.c + c) * k + i) * k + j] *
								       f->x[((n * in.c + c) * in.h + ih) * in.w + iw];
							}
					out[((n * K + q) * o.h + oh) * o.w + ow] = (float)acc;
				}
}

static void conv_case(int n, int C, int H, int K, int k, int s, int p)
{
	struct fixture f;
	struct chain_layer spec = {.kind = "conv", .filters = K, .kernel = k, .stride = s, .pad = p};
	fx_new(&f, &conv2d_ops, spec, (struct layer_dims){C, H, H}, n, 7);
	int oh = (H + 2 * p - k) / s + 1;
	cr_assert_eq(f.l.out.c, K);
	cr_assert_eq(f.l.out.h, oh);
	cr_assert_eq(f.l.nparams, (size_t)K * C * k * k + K);
	size_t nout = (size_t)n * K * oh * oh;
	float *ref = malloc(sizeof(float) * nout);
	naive_conv(&f, K, k, s, p, ref);
	f.l.ops->forward(&f.l, n);
	for (size_t i = 0; i < nout; i++)
		cr_assert(fabsf(ref[i] - f.l.y[i]) <= 1e-4f * (1 + fabsf(ref[i])), "y[%zu] %g != naive %g", i,
			  f.l.y[i], ref[i]);
	grad_check(&f);
	free(ref);
	fx_free(&f);
}

Test(conv2d, matches_naive_7x7_stride3) { conv_case(3, 1, 28, 32, 7, 3, 0); }
Test(conv2d, matches_naive_3x3_pad1) { conv_case(2, 3, 9, 5, 3, 1, 1); }
Test(conv2d, matches_naive_11x11_pad5) { conv_case(2, 4, 8, 6, 11, 1, 5); }
Test(conv2d, matches_naive_odd_sizes) { conv_case(5, 2, 7, 3, 2, 2, 1); }

Test(conv2d, binary_scales_by_fan_in)
{
	struct fixture f;
	struct chain_layer spec = {.kind = "conv", .filters = 3, .kernel = 3, .stride = 1, .pad = 1, .binary = 1};
	fx_new(&f, &conv2d_ops, spec, (struct layer_dims){2, 5, 5}, 2, 5);
	cr_assert_float_eq(f.l.scale, 1.0 / sqrt(18.0), 1e-7);
	struct nk_rng r;
	rng_seed(&r, 1);
	conv2d_ops.init_params(&f.l, &r);
	for (size_t i = 0; i < f.l.nparams; i++)
		cr_assert(f.l.w[i] == 1.0f || f.l.w[i] == -1.0f, "binary weight %g", f.l.w[i]);
	size_t nout = 2 * 3 * 25;
	float *ref = malloc(sizeof(float) * nout);
	naive_conv(&f, 3, 3, 1, 1, ref);
	f.l.ops->forward(&f.l, 2);
	for (size_t i = 0; i < nout; i++)
		cr_assert_float_eq(f.l.y[i], ref[i] * f.l.scale, 1e-5, "y[%zu]", i);
	free(ref);
	fx_free(&f);
}

Test(conv2d, channel_forward_matches_forward)
{
	/* forward_channel (eight samples a vector, output laid out [plane][ld]) against the full
	 * forward, for samples [1, n): blocks of eight that start and end inside a vector. */
	const int cases[][7] = {{2, 28, 32, 7, 3, 0, 19}, {3, 9, 5, 3, 1, 1, 4}, {2, 8, 6, 11, 1, 5, 11},
				{1, 40, 2, 3, 1, 1, 2}, {2, 20, 3, 5, 1, 2, 17}};
	for (int c = 0; c < 5; c++) {
		const int *v = cases[c];
		struct fixture f;
		struct chain_layer spec = {.kind = "conv", .filters = v[2], .kernel = v[3], .stride = v[4], .pad = v[5]};
		fx_new(&f, &conv2d_ops, spec, (struct layer_dims){v[0], v[1], v[1]}, v[6], 3);
		f.l.ops->forward(&f.l, f.n);
		cr_assert_eq(f.l.ops->channel_prepare(&f.l, f.n), 0);
		const int np = f.l.out.h * f.l.out.w, ld = f.n + 3;
		float *out = malloc(sizeof(float) * ld * np);
		for (int ch = 0; ch < v[2]; ch++) {
			for (int i = 0; i < ld * np; i++)
				out[i] = -7.0f;
			f.l.ops->forward_channel(&f.l, ch, 1, f.n, out, ld);
			for (int p = 0; p < np; p++) {
				for (int i = 1; i < f.n; i++) {
					float want = f.l.y[((size_t)i * v[2] + ch) * np + p], got = out[(size_t)p * ld + i];
					cr_assert(fabsf(got - want) <= 1e-4f * (1 + fabsf(want)),
						  "case %d channel %d sample %d pos %d: %g vs %g", c, ch, i, p, got, want);
				}
				/* Samples outside [1, n) are left alone. */
				cr_assert(out[(size_t)p * ld] == -7.0f && out[(size_t)p * ld + f.n] == -7.0f);
			}
		}
		free(out);
		fx_free(&f);
	}
}

Test(conv2d, refuses_kernel_larger_than_input)
{
	struct layer l = {.in = {1, 4, 4}, .max_batch = 1};
	struct chain_layer spec = {.kind = "conv", .filters = 2, .kernel = 7};
	char err[NK_ERR_LEN];
	cr_assert_eq(conv2d_ops.init(&l, &spec, err), NK_ESHAPE);
	cr_assert(strstr(err, "does not fit"), "%s", err);
}

Test(linear, matches_naive)
{
	struct fixture f;
	struct chain_layer spec = {.kind = "linear", .units = 7};
	fx_new(&f, &linear_ops, spec, (struct layer_dims){3, 4, 5}, 9, 3);
	int I = 60;
	cr_assert_eq(f.l.nparams, (size_t)7 * I + 7);
	f.l.ops->forward(&f.l, f.n);
	for (int n = 0; n < f.n; n++)
		for (int o = 0; o < 7; o++) {
			double acc = f.l.w[7 * I + o];
			for (int i = 0; i < I; i++)
				acc += (double)f.l.w[o * I + i] * f.x[n * I + i];
			cr_assert_float_eq(f.l.y[n * 7 + o], acc, 1e-4, "y[%d][%d]", n, o);
		}
	grad_check(&f);
	fx_free(&f);
}

Test(relu, matches_naive)
{
	struct fixture f;
	fx_new(&f, &relu_ops, (struct chain_layer){.kind = "relu"}, (struct layer_dims){2, 3, 3}, 4, 5);
	f.l.ops->forward(&f.l, f.n);
	for (int i = 0; i < 72; i++)
		cr_assert_eq(f.l.y[i], f.x[i] > 0 ? f.x[i] : 0.0f);
	grad_check(&f);
	fx_free(&f);
}

static void pool_case(const struct layer_ops *ops, int size, int stride, int is_max)
{
	struct fixture f;
	struct chain_layer spec = {.kind = "pool", .size = size, .stride = stride};
	fx_new(&f, ops, spec, (struct layer_dims){3, 7, 6}, 2, 11);
	int OH = (7 - size) / stride + 1, OW = (6 - size) / stride + 1;
	cr_assert_eq(f.l.out.h, OH);
	cr_assert_eq(f.l.out.w, OW);
	f.l.ops->forward(&f.l, f.n);
	for (int q = 0; q < 6; q++)
		for (int oh = 0; oh < OH; oh++)
			for (int ow = 0; ow < OW; ow++) {
				float m = -INFINITY, s = 0;
				for (int i = 0; i < size; i++)
					for (int j = 0; j < size; j++) {
						float v = f.x[q * 42 + (oh * stride + i) * 6 + ow * stride + j];
						m = v > m ? v : m;
						s += v;
					}
				float want = is_max ? m : s / (size * size);
				cr_assert_float_eq(f.l.y[(q * OH + oh) * OW + ow], want, 1e-6);
			}
	grad_check(&f);
	fx_free(&f);
}

/* A grid pool's windows, cut as PyTorch's adaptive pools cut them: output i of n over length len
 * covers [floor(i len / n), ceil((i + 1) len / n)). */
static void grid_case(const struct layer_ops *ops, int H, int W, int g, int is_max)
{
	struct fixture f;
	struct chain_layer spec = {.kind = "pool", .grid = g};
	fx_new(&f, ops, spec, (struct layer_dims){2, H, W}, 3, 23);
	cr_assert_eq(f.l.out.h, g);
	cr_assert_eq(f.l.out.w, g);
	f.l.ops->forward(&f.l, f.n);
	for (int q = 0; q < 6; q++)
		for (int oh = 0; oh < g; oh++)
			for (int ow = 0; ow < g; ow++) {
				int r0 = (int)floor((double)oh * H / g), r1 = (int)ceil((double)(oh + 1) * H / g);
				int c0 = (int)floor((double)ow * W / g), c1 = (int)ceil((double)(ow + 1) * W / g);
				double m = -INFINITY, s = 0;
				for (int i = r0; i < r1; i++)
					for (int j = c0; j < c1; j++) {
						double v = f.x[q * H * W + i * W + j];
						m = v > m ? v : m;
						s += v;
					}
				double want = is_max ? m : s / ((r1 - r0) * (c1 - c0));
				cr_assert_float_eq(f.l.y[(q * g + oh) * g + ow], want, 1e-6, "plane %d (%d, %d)", q, oh, ow);
			}
	grad_check(&f);
	fx_free(&f);
}

Test(avgpool, grid_matches_adaptive_windows)
{
	grid_case(&avgpool_ops, 7, 7, 2, 0);   /* overlapping windows: rows 0-3 and 3-6 */
	grid_case(&avgpool_ops, 14, 14, 4, 0);
	grid_case(&avgpool_ops, 8, 6, 3, 0);
	grid_case(&avgpool_ops, 5, 5, 5, 0);   /* one pixel each: the identity */
}

Test(maxpool, grid_matches_adaptive_windows) { grid_case(&maxpool_ops, 7, 9, 3, 1); }

Test(avgpool, grid_channel_map_matches_forward)
{
	/* The MCMC path maps a channel in the transposed layout [position][ld]. */
	struct fixture f;
	struct chain_layer spec = {.kind = "avgpool", .grid = 2};
	const int n = 5, ld = 8, H = 7;
	fx_new(&f, &avgpool_ops, spec, (struct layer_dims){1, H, H}, n, 29);
	f.l.ops->forward(&f.l, n);
	float in[49 * 8], out[4 * 8];
	for (int i = 0; i < n; i++)
		for (int p = 0; p < H * H; p++)
			in[p * ld + i] = f.x[i * H * H + p];
	avgpool_ops.map_channel(&f.l, in, out, ld, 0, n);
	for (int i = 0; i < n; i++)
		for (int p = 0; p < 4; p++)
			cr_assert_float_eq(out[p * ld + i], f.l.y[i * 4 + p], 1e-6);
	fx_free(&f);
}

Test(avgpool, refuses_a_grid_finer_than_its_input)
{
	struct layer l = {.in = {2, 3, 3}, .max_batch = 1};
	char err[NK_ERR_LEN] = "";
	struct chain_layer spec = {.kind = "avgpool", .grid = 4};
	cr_assert_neq(avgpool_ops.init(&l, &spec, err), 0);
	cr_assert(strstr(err, "grid 4"), "%s", err);
	avgpool_ops.free(&l);
}

/* ---- batch normalisation ---- */

static void bn_fixture(struct fixture *f, int C, int H, int n)
{
	struct chain_layer spec = {.kind = "batchnorm", .momentum = 0.1, .eps = 1e-5};
	fx_new(f, &batchnorm_ops, spec, (struct layer_dims){C, H, H}, n, 31);
	cr_assert_eq(f->l.nparams, 2u * C);
	cr_assert_eq(f->l.nbuf, 2u * C);
	for (int c = 0; c < C; c++) {
		f->l.w[c] = 0.5f + 0.25f * c;        /* gamma */
		f->l.w[C + c] = 0.1f * c - 0.2f;     /* beta */
		f->l.buf[c] = 0.3f;                  /* running mean */
		f->l.buf[C + c] = 2.0f;              /* running var */
	}
	/* Give each channel its own offset and scale, as real features have. */
	for (int i = 0; i < n; i++)
		for (int c = 0; c < C; c++)
			for (int p = 0; p < H * H; p++) {
				float *x = &f->x[((size_t)i * C + c) * H * H + p];
				*x = *x * (1.0f + c) + 0.7f * c;
			}
}

Test(batchnorm, training_forward_normalises_with_batch_statistics)
{
	struct fixture f;
	const int C = 3, H = 4, n = 5, HW = H * H;
	bn_fixture(&f, C, H, n);
	f.l.training = 1;
	f.l.ops->forward(&f.l, n);
	for (int c = 0; c < C; c++) {
		double s = 0, ss = 0, m = (double)n * HW;
		for (int i = 0; i < n; i++)
			for (int p = 0; p < HW; p++)
				s += f.x[(i * C + c) * HW + p];
		double mean = s / m;
		for (int i = 0; i < n; i++)
			for (int p = 0; p < HW; p++)
				ss += pow(f.x[(i * C + c) * HW + p] - mean, 2);
		double var = ss / m;
		for (int i = 0; i < n; i++)
			for (int p = 0; p < HW; p++) {
				size_t at = (size_t)(i * C + c) * HW + p;
				double want = f.l.w[c] * (f.x[at] - mean) / sqrt(var + 1e-5) + f.l.w[C + c];
				cr_assert_float_eq(f.l.y[at], want, 1e-5, "channel %d sample %d", c, i);
			}
		/* Running statistics: 0.9 old + 0.1 batch, the variance unbiased. */
		cr_assert_float_eq(f.l.buf[c], 0.9 * 0.3 + 0.1 * mean, 1e-5);
		cr_assert_float_eq(f.l.buf[C + c], 0.9 * 2.0 + 0.1 * ss / (m - 1), 1e-4);
	}
	fx_free(&f);
}

Test(batchnorm, backward_matches_finite_differences)
{
	struct fixture f;
	bn_fixture(&f, 3, 3, 4);
	f.l.training = 1;
	grad_check(&f);
	fx_free(&f);
}

Test(batchnorm, eval_mode_uses_running_statistics_sample_by_sample)
{
	struct fixture f;
	const int C = 2, H = 3, n = 4, HW = H * H;
	bn_fixture(&f, C, H, n);
	f.l.training = 0;
	f.l.ops->forward(&f.l, n);
	float keep[18];
	memcpy(keep, f.l.y, sizeof keep); /* sample 0 */
	for (int i = 0; i < n; i++)
		for (int c = 0; c < C; c++)
			for (int p = 0; p < HW; p++) {
				size_t at = (size_t)(i * C + c) * HW + p;
				double want = f.l.w[c] * (f.x[at] - 0.3) / sqrt(2.0 + 1e-5) + f.l.w[C + c];
				cr_assert_float_eq(f.l.y[at], want, 1e-5);
			}
	cr_assert_float_eq(f.l.buf[0], 0.3f, 0, "eval mode must not move the running mean");
	cr_assert_float_eq(f.l.buf[C], 2.0f, 0, "eval mode must not move the running variance");
	/* Another batch around sample 0 does not change sample 0's output (training mode would). */
	for (size_t i = (size_t)C * HW; i < (size_t)n * C * HW; i++)
		f.x[i] = 10.0f * f.x[i] + 3.0f;
	f.l.ops->forward(&f.l, n);
	cr_assert_arr_eq(f.l.y, keep, sizeof keep);
	f.l.training = 1;
	f.l.ops->forward(&f.l, n);
	cr_assert(memcmp(f.l.y, keep, sizeof keep) != 0, "training mode ignores the batch");
	fx_free(&f);
}

Test(maxpool, matches_naive) { pool_case(&maxpool_ops, 2, 2, 1); }
Test(maxpool, overlapping_windows) { pool_case(&maxpool_ops, 3, 2, 1); }
Test(avgpool, matches_naive) { pool_case(&avgpool_ops, 2, 2, 0); }
Test(avgpool, overlapping_windows) { pool_case(&avgpool_ops, 3, 1, 0); }

Test(gap, matches_naive)
{
	struct fixture f;
	fx_new(&f, &gap_ops, (struct chain_layer){.kind = "gap"}, (struct layer_dims){4, 3, 5}, 3, 13);
	cr_assert_eq(f.l.out.c, 4);
	f.l.ops->forward(&f.l, f.n);
	for (int q = 0; q < 12; q++) {
		double s = 0;
		for (int i = 0; i < 15; i++)
			s += f.x[q * 15 + i];
		cr_assert_float_eq(f.l.y[q], s / 15, 1e-6);
	}
	grad_check(&f);
	fx_free(&f);
}

Test(flatten, copies_in_order)
{
	struct fixture f;
	fx_new(&f, &flatten_ops, (struct chain_layer){.kind = "flatten"}, (struct layer_dims){2, 3, 4}, 2, 17);
	cr_assert_eq(f.l.out.c, 24);
	cr_assert_eq(f.l.out.h, 1);
	f.l.ops->forward(&f.l, f.n);
	cr_assert_arr_eq(f.l.y, f.x, sizeof(float) * 48);
	grad_check(&f);
	fx_free(&f);
}

Test(layer, table_finds_every_kind)
{
	const char *kinds[] = {"conv", "linear", "relu", "maxpool", "avgpool", "gap", "flatten", "batchnorm"};
	for (int i = 0; i < 8; i++) {
		const struct layer_ops *ops = layer_find(kinds[i]);
		cr_assert(ops, "%s", kinds[i]);
		cr_assert_str_eq(ops->kind, kinds[i]);
	}
	cr_assert_null(layer_find("lstm"));
}

Test(xent, loss_and_gradient)
{
	/* Hand-computed: logits (0, ln 3) with label 1 -> p = (1/4, 3/4), loss = ln(4/3). */
	float z[2] = {0.0f, logf(3.0f)}, d[2];
	int32_t y = 1;
	int correct;
	double loss = xent(z, &y, 1, 2, d, &correct);
	cr_assert_float_eq(loss, log(4.0 / 3.0), 1e-6);
	cr_assert_eq(correct, 1);
	cr_assert_float_eq(d[0], 0.25, 1e-6);
	cr_assert_float_eq(d[1], -0.25, 1e-6);
	/* Finite differences on a batch. */
	struct nk_rng r;
	rng_seed(&r, 1);
	float logits[4 * 5], g[4 * 5];
	int32_t labels[4] = {0, 3, 4, 2};
	for (int i = 0; i < 20; i++)
		logits[i] = urand(&r, -3, 3);
	xent(logits, labels, 4, 5, g, NULL);
	for (int i = 0; i < 20; i++) {
		float keep = logits[i];
		logits[i] = keep + 1e-3f;
		double lp = xent(logits, labels, 4, 5, NULL, NULL);
		logits[i] = keep - 1e-3f;
		double lm = xent(logits, labels, 4, 5, NULL, NULL);
		logits[i] = keep;
		cr_assert_float_eq((lp - lm) / 2e-3, g[i], 1e-3, "logit %d", i);
	}
	cr_assert_float_eq(xent_one(logits + 5, 3, 5), xent(logits + 5, &labels[1], 1, 5, NULL, NULL), 1e-9);
}
