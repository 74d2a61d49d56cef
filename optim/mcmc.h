/* The MCMC optimizer's pieces that tests and tools look at directly. */
#ifndef NK_MCMC_H
#define NK_MCMC_H

#include "optim/optim.h"

/* The Metropolis-Hastings rule: accept when u < min(1, exp(lambda (loss_old - loss_new)) *
 * prior(new) / prior(old)), the prior ratio given as its logarithm; u uniform in [0, 1). */
int mcmc_accept(double lambda, double loss_old, double loss_new, double log_prior_ratio, double u);

/* Mean loss of the current state on the last batch, as the incremental caches hold it. */
double mcmc_cached_loss(const struct optim *o);

/* Evaluate head and channel proposals on the calling thread alone (0), on the whole OpenMP team
 * (1), or on whichever has been quicker lately (-1, the default). */
void mcmc_set_team(struct optim *o, int mode);

#endif
