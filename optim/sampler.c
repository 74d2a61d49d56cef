/* Samplers and prior densities for the MCMC optimizer. */
#include "optim/sampler.h"

#include <math.h>

double sampler_gamma(double shape, struct nk_rng *r)
{
	if (shape < 1.0) {
		/* Boost: gamma(a) = gamma(a + 1) * U^(1/a). */
		double u = rng_uniform(r);
		return sampler_gamma(shape + 1.0, r) * pow(u > 0 ? u : 1e-300, 1.0 / shape);
	}
	double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
	for (;;) {
		double x = rng_normal(r), v = 1.0 + c * x;
		if (v <= 0)
			continue;
		v = v * v * v;
		double u = rng_uniform(r);
		if (u < 1.0 - 0.0331 * x * x * x * x || log(u > 0 ? u : 1e-300) < 0.5 * x * x + d * (1.0 - v + log(v)))
			return d * v;
	}
}

double sampler_student(double df, struct nk_rng *r)
{
	if (df == 1.0) {
		/* Cauchy: the cotangent of a uniform angle, taken from a uniform point of the unit disk
		 * (4 / pi points a draw on average; no trigonometry, several times quicker than tan). */
		double x, y;
		do {
			x = 2.0 * rng_uniform(r) - 1.0;
			y = 2.0 * rng_uniform(r) - 1.0;
		} while (x * x + y * y > 1.0 || y == 0.0);
		return x / y;
	}
	if (df == 2.0) {
		/* t(2) has a closed-form quantile function: (2u - 1) / sqrt(2 u (1 - u)). */
		double u;
		do
			u = rng_uniform(r);
		while (u == 0.0);
		return (2.0 * u - 1.0) / sqrt(2.0 * u * (1.0 - u));
	}
	/* t = Z / sqrt(V / df) with V ~ chi-square(df) = 2 gamma(df / 2). */
	double z = rng_normal(r), v = 2.0 * sampler_gamma(df / 2.0, r);
	return z / sqrt(v / df);
}

double sampler_draw(const struct chain_dist *d, struct nk_rng *r)
{
	double s = sqrt(d->var);
	if (d->kind == DIST_STUDENT)
		return s * sampler_student(d->df > 0 ? d->df : 1.0, r);
	if (d->kind == DIST_GAUSSIAN)
		return s * rng_normal(r);
	return 0.0;
}

double sampler_logpdf(const struct chain_dist *d, double x)
{
	if (d->kind == DIST_STUDENT) {
		double nu = d->df > 0 ? d->df : 1.0;
		return lgamma((nu + 1) / 2) - lgamma(nu / 2) - 0.5 * log(nu * M_PI * d->var) -
		       (nu + 1) / 2 * log1p(x * x / (nu * d->var));
	}
	if (d->kind == DIST_GAUSSIAN)
		return -0.5 * log(2 * M_PI * d->var) - x * x / (2 * d->var);
	return 0.0;
}

double sampler_log_ratio(const struct chain_dist *d, const float *old_v, const float *new_v, int n)
{
	if (d->kind == DIST_GAUSSIAN) {
		double s = 0;
		for (int i = 0; i < n; i++)
			s += (double)old_v[i] * old_v[i] - (double)new_v[i] * new_v[i];
		return s / (2 * d->var);
	}
	if (d->kind != DIST_STUDENT)
		return 0.0;
	/* p(new)/p(old) = ((1 + old^2/(nu v)) / (1 + new^2/(nu v)))^((nu + 1) / 2) */
	double nu = d->df > 0 ? d->df : 1.0, inv = 1.0 / (nu * d->var), prod = 1.0, logsum = 0.0;
	for (int i = 0; i < n; i++) {
		prod *= (1.0 + (double)old_v[i] * old_v[i] * inv) / (1.0 + (double)new_v[i] * new_v[i] * inv);
		if (prod > 1e100 || prod < 1e-100) {
			logsum += log(prod);
			prod = 1.0;
		}
	}
	return (nu + 1) / 2 * (logsum + log(prod));
}
