/* Selectors: a whole conv filter with its bias, k weights of one filter, k weights drawn uniformly
 * from a linear layer's [W | b], or one row of [W | b]. */
#include "optim/select.h"

#include <string.h>

static int is_conv(const struct layer *l)
{
	return strcmp(l->ops->kind, "conv") == 0;
}

/* Weights per conv filter (without the bias). */
static int filter_len(const struct layer *l)
{
	return (int)((l->nparams - l->out.c) / l->out.c);
}

int select_check(const struct layer *l, const struct chain_mcmc_layer *cfg, char err[NK_ERR_LEN])
{
	int conv = is_conv(l), lin = strcmp(l->ops->kind, "linear") == 0;
	switch (cfg->move) {
	case MOVE_FILTER:
	case MOVE_FILTER_K:
		if (!conv)
			return nk_errf(err, NK_EINVAL, "%s: filter moves need a conv layer", l->name);
		if (cfg->move == MOVE_FILTER)
			return filter_len(l) + 1;
		if (cfg->k <= 0 || cfg->k > filter_len(l) + 1)
			return nk_errf(err, NK_ERANGE, "%s: k = %d, but a filter has %d weights and a bias",
				       l->name, cfg->k, filter_len(l));
		return cfg->k;
	case MOVE_UNIFORM:
	case MOVE_ROW:
		if (!lin)
			return nk_errf(err, NK_EINVAL, "%s: uniform and row moves need a linear layer", l->name);
		if (cfg->move == MOVE_ROW)
			return dims_size(l->in) + 1;
		if (cfg->k <= 0 || (size_t)cfg->k > l->nparams)
			return nk_errf(err, NK_ERANGE, "%s: k = %d, but [W | b] has %zu entries", l->name,
				       cfg->k, l->nparams);
		return cfg->k;
	}
	return nk_errf(err, NK_EINVAL, "%s: unknown move kind", l->name);
}

/* k distinct values base + offsets, offsets drawn from [0, range) (index range - 1 maps to
 * extra when extra >= 0: a filter's or row's bias). */
static void distinct(struct nk_rng *r, uint8_t *mark, int k, int range, int32_t base, int32_t extra,
		     int32_t *out)
{
	for (int i = 0; i < k; i++) {
		int32_t v;
		do {
			uint32_t u = rng_below(r, (uint32_t)range);
			v = (extra >= 0 && u == (uint32_t)range - 1) ? extra : base + (int32_t)u;
		} while (mark[v]);
		mark[v] = 1;
		out[i] = v;
	}
	for (int i = 0; i < k; i++)
		mark[out[i]] = 0;
}

void select_draw(const struct layer *l, const struct chain_mcmc_layer *cfg, struct nk_rng *r,
		 uint8_t *mark, struct move *mv)
{
	mv->filter = -1;
	if (cfg->move == MOVE_FILTER || cfg->move == MOVE_FILTER_K) {
		int len = filter_len(l), f = (int)rng_below(r, (uint32_t)l->out.c);
		int32_t base = f * len, bias = l->out.c * len + f;
		mv->filter = f;
		if (cfg->move == MOVE_FILTER_K) {
			mv->n = cfg->k;
			distinct(r, mark, cfg->k, len + 1, base, bias, mv->idx);
			return;
		}
		mv->n = len + 1;
		for (int i = 0; i < len; i++)
			mv->idx[i] = base + i;
		mv->idx[len] = bias;
	} else if (cfg->move == MOVE_ROW) {
		int I = dims_size(l->in), o = (int)rng_below(r, (uint32_t)l->out.c);
		mv->n = I + 1;
		for (int i = 0; i < I; i++)
			mv->idx[i] = o * I + i;
		mv->idx[I] = l->out.c * I + o;
	} else {
		mv->n = cfg->k;
		distinct(r, mark, cfg->k, (int)l->nparams, 0, -1, mv->idx);
	}
}
