/* Neighbourhood selectors: which parameters of a layer one MCMC proposal moves. Indices point
 * into the layer's parameter view: conv W [K][C][k][k] then b [K]; linear W [O][I] then b [O]. */
#ifndef NK_SELECT_H
#define NK_SELECT_H

#include <stdint.h>

#include "layers/layer.h"
#include "src/chain.h"
#include "src/rng.h"

struct move {
	int n;          /* parameters moved */
	int32_t *idx;   /* [n] distinct indices into the layer's parameters */
	int filter;     /* conv moves: the one filter (output channel) touched; -1 for linear */
};

/* Check a move kind against a layer; returns the most indices one move can hold, or a negative
 * enum nk_err with err filled. */
int select_check(const struct layer *l, const struct chain_mcmc_layer *cfg, char err[NK_ERR_LEN]);
/* Draw one move. mark is scratch of l->nparams zero bytes, left zeroed. */
void select_draw(const struct layer *l, const struct chain_mcmc_layer *cfg, struct nk_rng *r,
		 uint8_t *mark, struct move *mv);

#endif
