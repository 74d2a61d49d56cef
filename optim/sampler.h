/* Proposal and prior distributions for MCMC: Student-t (df configurable) and Gaussian, each with
 * a variance parameter (the scale is its square root), sign flips for binary layers, and flat. */
#ifndef NK_SAMPLER_H
#define NK_SAMPLER_H

#include "src/chain.h"
#include "src/rng.h"

/* A standard Student-t draw with df degrees of freedom (Cauchy for df = 1). */
double sampler_student(double df, struct nk_rng *r);
/* A gamma(shape, 1) draw, shape > 0 (Marsaglia-Tsang). */
double sampler_gamma(double shape, struct nk_rng *r);
/* A move for one parameter: sqrt(var) * Student-t(df), or sqrt(var) * N(0, 1). Not for FLIP or
 * FLAT. */
double sampler_draw(const struct chain_dist *d, struct nk_rng *r);
/* Normalised log density at x (0 for a flat prior). */
double sampler_logpdf(const struct chain_dist *d, double x);
/* log prod_i p(new_i) / p(old_i) over n parameters, without the normalising constants; the
 * product is folded into a logarithm whenever it leaves [1e-100, 1e100], so hundreds of terms
 * never under- or overflow, and only a few logarithms are taken. */
double sampler_log_ratio(const struct chain_dist *d, const float *old_v, const float *new_v, int n);

#endif
