/* MCMC samplers, prior densities and neighbourhood selectors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/sampler.h"
#include "optim/select.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Empirical quantile p of n draws from d. */
static double quantile(const struct chain_dist *d, int n, double p, uint64_t seed)
{
	struct nk_rng r;
	rng_seed(&r, seed);
	double *v = malloc(sizeof(double) * n);
	for (int i = 0; i < n; i++)
		v[i] = sampler_draw(d, &r);
	qsort(v, n, sizeof *v, cmp_double);
	double q = v[(int)(p * n)];
	free(v);
	return q;
}

Test(sampler, gaussian_mean_and_variance)
{
	struct chain_dist d = {.kind = DIST_GAUSSIAN, .var = 4.0};
	struct nk_rng r;
	rng_seed(&r, 3);
	double s = 0, s2 = 0;
	const int n = 200000;
	for (int i = 0; i < n; i++) {
		double x = sampler_draw(&d, &r);
		s += x;
		s2 += x * x;
	}
	double mean = s / n, var = s2 / n - mean * mean;
	cr_assert(fabs(mean) < 0.02, "mean %g", mean);
	cr_assert(fabs(var - 4.0) < 0.06, "variance %g", var);
}

Test(sampler, cauchy_quantiles)
{
	/* Student-t with df 1 and variance parameter 9 is Cauchy with scale 3: quartiles at -3, 3,
	 * 90th percentile at 3 tan(0.4 pi) = 9.233. */
	struct chain_dist d = {.kind = DIST_STUDENT, .var = 9.0, .df = 1.0};
	cr_assert(fabs(quantile(&d, 100000, 0.5, 1)) < 0.05);
	cr_assert(fabs(quantile(&d, 100000, 0.75, 2) - 3.0) < 0.1);
	cr_assert(fabs(quantile(&d, 100000, 0.25, 3) + 3.0) < 0.1);
	cr_assert(fabs(quantile(&d, 100000, 0.9, 4) - 9.2331) < 0.35);
}

Test(sampler, student_t5_quantiles)
{
	/* Tables: t(5) 0.75 quantile 0.7267, 0.9 quantile 1.4759, 0.975 quantile 2.5706. */
	struct chain_dist d = {.kind = DIST_STUDENT, .var = 1.0, .df = 5.0};
	cr_assert(fabs(quantile(&d, 200000, 0.75, 5) - 0.7267) < 0.02);
	cr_assert(fabs(quantile(&d, 200000, 0.9, 6) - 1.4759) < 0.03);
	cr_assert(fabs(quantile(&d, 200000, 0.975, 7) - 2.5706) < 0.07);
}

Test(sampler, student_t2_quantiles)
{
	/* t(2): F^-1(p) = (2p - 1) / sqrt(2 p (1 - p)); 0.75 -> 0.8165, 0.9 -> 1.8856, 0.975 -> 4.3027.
	 * Variance parameter 4 scales by 2. */
	struct chain_dist d = {.kind = DIST_STUDENT, .var = 4.0, .df = 2.0};
	cr_assert(fabs(quantile(&d, 200000, 0.5, 8)) < 0.02);
	cr_assert(fabs(quantile(&d, 200000, 0.75, 9) - 2 * 0.8165) < 0.03);
	cr_assert(fabs(quantile(&d, 200000, 0.9, 10) - 2 * 1.8856) < 0.06);
	cr_assert(fabs(quantile(&d, 200000, 0.975, 11) - 2 * 4.3027) < 0.25);
}

Test(sampler, gamma_moments)
{
	struct nk_rng r;
	rng_seed(&r, 9);
	for (double shape = 0.5; shape < 4; shape += 1.5) {
		double s = 0, s2 = 0;
		const int n = 200000;
		for (int i = 0; i < n; i++) {
			double x = sampler_gamma(shape, &r);
			cr_assert(x > 0);
			s += x;
			s2 += x * x;
		}
		double mean = s / n, var = s2 / n - mean * mean;
		cr_assert(fabs(mean - shape) < 0.02 * shape + 0.01, "shape %g mean %g", shape, mean);
		cr_assert(fabs(var - shape) < 0.05 * shape + 0.02, "shape %g variance %g", shape, var);
	}
}

Test(sampler, log_density_closed_forms)
{
	struct chain_dist g = {.kind = DIST_GAUSSIAN, .var = 2.0};
	cr_assert_float_eq(sampler_logpdf(&g, 1.0), -0.5 * log(4 * M_PI) - 0.25, 1e-12);
	struct chain_dist c = {.kind = DIST_STUDENT, .var = 9.0, .df = 1.0};
	cr_assert_float_eq(sampler_logpdf(&c, 0.0), -log(3 * M_PI), 1e-12);
	cr_assert_float_eq(exp(sampler_logpdf(&c, 2.0)), 1.0 / (M_PI * 3 * (1 + 4.0 / 9)), 1e-12);
	struct chain_dist t3 = {.kind = DIST_STUDENT, .var = 1.0, .df = 3.0};
	cr_assert_float_eq(exp(sampler_logpdf(&t3, 1.0)), 0.2067483, 1e-6); /* t(3) density at 1 */
	struct chain_dist flat = {.kind = DIST_FLAT};
	cr_assert_eq(sampler_logpdf(&flat, 5.0), 0.0);
}

Test(sampler, log_ratio_is_sum_of_log_densities)
{
	struct chain_dist ds[] = {{.kind = DIST_STUDENT, .var = 1e-3, .df = 1.0},
				  {.kind = DIST_STUDENT, .var = 0.5, .df = 4.0},
				  {.kind = DIST_GAUSSIAN, .var = 1e-2}};
	struct nk_rng r;
	rng_seed(&r, 11);
	float old_v[1000], new_v[1000];
	for (int k = 0; k < 3; k++) {
		/* Moves big enough that a plain product of 1000 density ratios overflows. */
		double want = 0;
		for (int i = 0; i < 1000; i++) {
			old_v[i] = (float)(rng_normal(&r) * 0.05);
			new_v[i] = old_v[i] + (float)(rng_normal(&r) * 0.5);
			want += sampler_logpdf(&ds[k], new_v[i]) - sampler_logpdf(&ds[k], old_v[i]);
		}
		double got = sampler_log_ratio(&ds[k], old_v, new_v, 1000);
		cr_assert(isfinite(got));
		cr_assert(fabs(got - want) <= 1e-9 * fabs(want) + 1e-9, "dist %d: %g vs %g", k, got, want);
	}
	struct chain_dist flat = {.kind = DIST_FLAT};
	cr_assert_eq(sampler_log_ratio(&flat, old_v, new_v, 1000), 0.0);
}

/* A standalone conv (4 filters, 2 x 3 x 3) or linear (5 x 12) layer. */
static void make_layer(struct layer *l, const char *kind)
{
	char err[NK_ERR_LEN];
	memset(l, 0, sizeof *l);
	l->max_batch = 1;
	snprintf(l->name, sizeof l->name, "%s", kind);
	struct chain_layer spec = {.filters = 4, .kernel = 3, .units = 5};
	snprintf(spec.kind, sizeof spec.kind, "%s", kind);
	l->ops = layer_find(kind);
	l->in = strcmp(kind, "conv") == 0 ? (struct layer_dims){2, 5, 5} : (struct layer_dims){12, 1, 1};
	cr_assert_eq(l->ops->init(l, &spec, err), 0, "%s", err);
}

static void check_moves(struct layer *l, struct chain_mcmc_layer cfg, int want_n)
{
	char err[NK_ERR_LEN];
	int cap = select_check(l, &cfg, err);
	cr_assert_geq(cap, want_n, "%s", err);
	uint8_t *mark = calloc(l->nparams, 1), *seen = calloc(l->nparams, 1);
	int32_t *idx = malloc(sizeof(int32_t) * cap);
	struct move mv = {.idx = idx};
	struct nk_rng r;
	rng_seed(&r, 21);
	for (int t = 0; t < 2000; t++) {
		select_draw(l, &cfg, &r, mark, &mv);
		cr_assert_eq(mv.n, want_n);
		for (int i = 0; i < mv.n; i++) {
			cr_assert(idx[i] >= 0 && (size_t)idx[i] < l->nparams, "index %d", idx[i]);
			for (int j = 0; j < i; j++)
				cr_assert_neq(idx[i], idx[j], "duplicate index %d", idx[i]);
			seen[idx[i]] = 1;
		}
		if (cfg.move == MOVE_FILTER || cfg.move == MOVE_FILTER_K) {
			/* Every index is a weight of filter f ([f][2][3][3]) or its bias (72 + f). */
			for (int i = 0; i < mv.n; i++)
				cr_assert(idx[i] / 18 == mv.filter || idx[i] == 72 + mv.filter, "index %d filter %d",
					  idx[i], mv.filter);
		} else if (cfg.move == MOVE_ROW) {
			int o = idx[0] / 12;
			for (int i = 0; i < mv.n; i++)
				cr_assert(idx[i] / 12 == o || idx[i] == 60 + o, "index %d row %d", idx[i], o);
		}
		for (size_t i = 0; i < l->nparams; i++)
			cr_assert_eq(mark[i], 0, "selector scratch left dirty");
	}
	for (size_t i = 0; i < l->nparams; i++)
		cr_assert(seen[i], "index %zu never drawn", i);
	free(mark);
	free(seen);
	free(idx);
}

Test(select, whole_filter_with_bias)
{
	struct layer l;
	make_layer(&l, "conv");
	check_moves(&l, (struct chain_mcmc_layer){.move = MOVE_FILTER}, 19);
	l.ops->free(&l);
}

Test(select, k_weights_of_one_filter)
{
	struct layer l;
	make_layer(&l, "conv");
	check_moves(&l, (struct chain_mcmc_layer){.move = MOVE_FILTER_K, .k = 5}, 5);
	l.ops->free(&l);
}

Test(select, uniform_over_w_and_b)
{
	struct layer l;
	make_layer(&l, "linear");
	check_moves(&l, (struct chain_mcmc_layer){.move = MOVE_UNIFORM, .k = 7}, 7);
	/* Uniform: each of the 65 entries drawn about 2000 * 7 / 65 times. */
	struct chain_mcmc_layer cfg = {.move = MOVE_UNIFORM, .k = 7};
	uint8_t mark[65] = {0};
	int32_t idx[7];
	int count[65] = {0};
	struct move mv = {.idx = idx};
	struct nk_rng r;
	rng_seed(&r, 5);
	for (int t = 0; t < 20000; t++) {
		select_draw(&l, &cfg, &r, mark, &mv);
		for (int i = 0; i < 7; i++)
			count[idx[i]]++;
	}
	double expect = 20000.0 * 7 / 65, chi = 0;
	for (int i = 0; i < 65; i++)
		chi += (count[i] - expect) * (count[i] - expect) / expect;
	cr_assert_lt(chi, 120.0, "chi-square %g over 64 degrees of freedom", chi);
}

Test(select, one_row)
{
	struct layer l;
	make_layer(&l, "linear");
	check_moves(&l, (struct chain_mcmc_layer){.move = MOVE_ROW}, 13);
}

Test(select, refuses_misfits)
{
	struct layer conv, lin;
	char err[NK_ERR_LEN];
	make_layer(&conv, "conv");
	make_layer(&lin, "linear");
	cr_assert_lt(select_check(&conv, &(struct chain_mcmc_layer){.move = MOVE_UNIFORM, .k = 3}, err), 0);
	cr_assert_lt(select_check(&lin, &(struct chain_mcmc_layer){.move = MOVE_FILTER}, err), 0);
	cr_assert_eq(select_check(&conv, &(struct chain_mcmc_layer){.move = MOVE_FILTER_K, .k = 20}, err), NK_ERANGE);
	cr_assert(strstr(err, "k = 20"), "%s", err);
	cr_assert_eq(select_check(&lin, &(struct chain_mcmc_layer){.move = MOVE_UNIFORM, .k = 66}, err), NK_ERANGE);
	conv.ops->free(&conv);
}
