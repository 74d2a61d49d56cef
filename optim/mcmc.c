/* Metropolis-Hastings on a stage's layers, judged by its own head's loss. Each proposal picks a
 * layer by share, a neighbourhood in it (optim/select.c), moves it by the proposal distribution
 * (optim/sampler.c) and accepts with
 *     rho = min(1, exp(lambda (L_old - L_new)) prior(new) / prior(old)).
 * A proposal costs only what it changes: a move on the head updates the cached logits by the
 * changed weights; a move on one filter of the last conv layer recomputes that channel through
 * the channelwise layers after it (relu, pools, flatten) and its share of the logits; moves on
 * other layers recompute the forward pass from that layer on. Rejected moves are undone by
 * writing the saved values back, bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/gemm.h"
#include "optim/mcmc.h"
#include "optim/sampler.h"
#include "optim/select.h"

enum path {
	PATH_HEAD,      /* the head's last (linear) layer: logits += dW x */
	PATH_CHANNEL,   /* the conv layer feeding the head through channelwise layers only */
	PATH_FULL,      /* anything else: forward from the layer on */
};

struct mlayer {
	int li;                      /* index in the model */
	struct chain_mcmc_layer cfg;
	enum path path;
};

struct mcmc {
	struct mlayer *ml;
	int nml;
	double total_share;
	struct move mv;              /* idx [maxmove] */
	float *old, *new_;           /* [maxmove] the moved parameters before and after */
	uint8_t *mark;               /* [largest layer's nparams] selector scratch */
	int head, O, I, ld;          /* head layer; classes; head inputs; ld = max_batch */
	float *lt, *lt_new;          /* [O][ld] logits of the current state / of the proposal */
	float *xT;                   /* [I][ld] the head's input, transposed */
	float *ones;                 /* [ld] 1.0: a bias's input */
	int chan_from;               /* conv layer on PATH_CHANNEL, or -1 */
	int nchan;                   /* it and the channelwise layers up to the head */
	float **chan;                /* [nchan][ld][plane] a proposal's channel at each of them */
	int *plane;                  /* [nchan] one channel's plane size at each */
	float *diff;                 /* [threads][plane of the last][16] */
	float *xc;                   /* [K][ld][plane of the last]: the head's input by channel */
	const int32_t *y;
	int n;
	double loss;                 /* mean loss of the current state */
};

/* exp(x) for x <= 0 and log(x) for x >= 1, branch-free so that loops over samples vectorise;
 * relative error about 2e-7, like expf/logf. */
static inline float exp_neg(float x)
{
	x = x < -87.0f ? -87.0f : x;
	float t = x * 1.44269504f;                     /* x / ln 2 = k + f */
	float k = (t + 12582912.0f) - 12582912.0f;     /* round to nearest */
	float f = (t - k) * 0.69314718f;               /* |f| <= ln 2 / 2 */
	float p = 1.0f + f * (1.0f + f * (0.5f + f * (1.0f / 6 + f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
	int32_t e = ((int32_t)k + 127) << 23;
	float two_k;
	memcpy(&two_k, &e, sizeof e);
	return p * two_k;
}

static inline float log_ge1(float x)
{
	int32_t bits;
	memcpy(&bits, &x, sizeof bits);
	float e = (float)((bits >> 23) - 127);
	bits = (bits & 0x007fffff) | 0x3f800000;       /* mantissa in [1, 2) */
	float m;
	memcpy(&m, &bits, sizeof m);
	float u = (m - 1.0f) / (m + 1.0f), u2 = u * u;  /* log m = 2 atanh u, u in [0, 1/3] */
	float p = 2.0f * u * (1.0f + u2 * (1.0f / 3 + u2 * (1.0f / 5 + u2 * (1.0f / 7 + u2 * (1.0f / 9 + u2 * (1.0f / 11))))));
	return e * 0.69314718f + p;
}

/* Sum of the cross-entropies of samples [lo, hi) from transposed logits lt [O][ld], in blocks
 * of 64 samples with the class loop outside so that the sample loop vectorises. */
NK_CLONES
static double loss_range(const float *lt, int ld, int O, const int32_t *y, int lo, int hi)
{
	double sum = 0.0;
	for (int b = lo; b < hi; b += 64) {
		const int nb = hi - b < 64 ? hi - b : 64;
		float m[64], s[64], part = 0.0f;
		for (int j = 0; j < nb; j++)
			m[j] = lt[b + j];
		for (int o = 1; o < O; o++)
			for (int j = 0; j < nb; j++)
				m[j] = lt[(size_t)o * ld + b + j] > m[j] ? lt[(size_t)o * ld + b + j] : m[j];
		for (int j = 0; j < nb; j++)
			s[j] = 0.0f;
		for (int o = 0; o < O; o++)
			for (int j = 0; j < nb; j++)
				s[j] += exp_neg(lt[(size_t)o * ld + b + j] - m[j]);
		for (int j = 0; j < nb; j++)
			part += log_ge1(s[j]) + m[j] - lt[(size_t)y[b + j] * ld + b + j];
		sum += part;
	}
	return sum;
}

NK_CLONES
static void axpy_range(float *dst, const float *src, float a, int lo, int hi)
{
	for (int i = lo; i < hi; i++)
		dst[i] += a * src[i];
}

/* lt_new[o][i] = lt[o][i] + scale * sum_q w[o][q] (new[i][q] - old[i][q]) for samples [lo, hi):
 * one channel's share of the head's logits. w rows are ldw apart; new and old are [n][P]. The
 * difference goes through dt [P][16] so that the class sums run 16 samples a vector. */
NK_CLONES
static void channel_logits(const float *lt, float *lt_new, int ld, int O, const float *w, int ldw,
			   const float *newc, const float *old, int P, float scale, float *dt, int lo, int hi)
{
	for (int b = lo; b < hi; b += 16) {
		const int nb = hi - b < 16 ? hi - b : 16;
		for (int j = 0; j < 16; j++)
			for (int q = 0; q < P; q++)
				dt[q * 16 + j] = j < nb ? newc[(size_t)(b + j) * P + q] - old[(size_t)(b + j) * P + q] : 0.0f;
		for (int o0 = 0; o0 < O; o0 += 4) {
			/* 4 classes x 16 samples: eight independent vector sums. */
			const int no = O - o0 < 4 ? O - o0 : 4;
			nk_v8f acc[4][2];
			memset(acc, 0, sizeof acc);
			for (int q = 0; q < P; q++) {
				const nk_v8f d0 = nk_load8(dt + q * 16), d1 = nk_load8(dt + q * 16 + 8);
				for (int r = 0; r < 4; r++) {
					const float wq = r < no ? w[(size_t)(o0 + r) * ldw + q] : 0.0f;
					acc[r][0] += wq * d0;
					acc[r][1] += wq * d1;
				}
			}
			for (int r = 0; r < no; r++) {
				float sum[16];
				memcpy(sum, acc[r], sizeof sum);
				const size_t row = (size_t)(o0 + r) * ld + b;
				for (int j = 0; j < nb; j++)
					lt_new[row + j] = lt[row + j] + scale * sum[j];
			}
		}
	}
}

/* Proposals are small: parallel once a batch holds this many samples. */
#define PAR_SAMPLES 64

static double eval_head(struct mcmc *mc, const struct layer *h)
{
	const int n = mc->n, I = mc->I, ld = mc->ld;
	double sum = 0.0;
	/* Streaming a few hundred rows of xT is latency-bound: a second thread only pays off for
	 * big moves on big batches. */
#pragma omp parallel reduction(+ : sum) if ((long)n * mc->mv.n >= (1L << 20))
	{
		int lo, hi;
		nk_split(n, &lo, &hi);
		for (int o = 0; o < mc->O; o++)
			memcpy(mc->lt_new + (size_t)o * ld + lo, mc->lt + (size_t)o * ld + lo, sizeof(float) * (hi - lo));
		for (int j = 0; j < mc->mv.n; j++) {
			int32_t k = mc->mv.idx[j];
			const float d = h->scale * (mc->new_[j] - mc->old[j]);
			if (k < mc->O * I)
				axpy_range(mc->lt_new + (size_t)(k / I) * ld, mc->xT + (size_t)(k % I) * ld, d, lo, hi);
			else
				axpy_range(mc->lt_new + (size_t)(k - mc->O * I) * ld, mc->ones, d, lo, hi);
		}
		sum += loss_range(mc->lt_new, ld, mc->O, mc->y, lo, hi);
	}
	return sum / n;
}

static double eval_channel(struct mcmc *mc, struct model *m, int f)
{
	const int n = mc->n, ld = mc->ld, I = mc->I, P = mc->plane[mc->nchan - 1];
	const struct layer *h = &m->layers[mc->head];
	struct layer *conv = &m->layers[mc->chan_from];
	double sum = 0.0;
#pragma omp parallel reduction(+ : sum) if (n >= PAR_SAMPLES)
	{
		int lo, hi;
		nk_split(n, &lo, &hi);
		float *diff = mc->diff + (size_t)nk_thread_id() * P * 16;
		conv->ops->forward_channel(conv, f, lo, hi, mc->chan[0] + (size_t)lo * mc->plane[0]);
		for (int j = 1; j < mc->nchan; j++) {
			const struct layer *l = &m->layers[mc->chan_from + j];
			l->ops->map_planes(l, mc->chan[j - 1] + (size_t)lo * mc->plane[j - 1],
					   mc->chan[j] + (size_t)lo * mc->plane[j], hi - lo);
		}
		channel_logits(mc->lt, mc->lt_new, ld, mc->O, h->w + (size_t)f * P, I, mc->chan[mc->nchan - 1],
			       mc->xc + (size_t)f * ld * P, P, h->scale, diff, lo, hi);
		sum += loss_range(mc->lt_new, ld, mc->O, mc->y, lo, hi);
	}
	return sum / n;
}

/* dst [cols][ld] = src [rows][cols] transposed, through 16 x 16 tiles so that both sides move
 * in whole cache lines. */
static void transpose(const float *src, int rows, int cols, float *dst, int ld)
{
#pragma omp parallel for schedule(static) if ((long)rows * cols >= (1L << 16))
	for (int c0 = 0; c0 < cols; c0 += 16)
		for (int r0 = 0; r0 < rows; r0 += 16) {
			const int nr = NK_MIN(16, rows - r0), nc = NK_MIN(16, cols - c0);
			float t[16][16];
			for (int r = 0; r < nr; r++)
				for (int c = 0; c < nc; c++)
					t[c][r] = src[(size_t)(r0 + r) * cols + c0 + c];
			for (int c = 0; c < nc; c++)
				memcpy(dst + (size_t)(c0 + c) * ld + r0, t[c], sizeof(float) * nr);
		}
}

/* xc [K][ld][P] from the head's input x [n][K * P]. */
static void by_channel(struct mcmc *mc, const float *x)
{
	if (mc->chan_from < 0)
		return;
	const int P = mc->plane[mc->nchan - 1], K = mc->I / P;
#pragma omp parallel for schedule(static) if ((long)mc->n * mc->I > NK_PAR_WORK)
	for (int f = 0; f < K; f++)
		for (int i = 0; i < mc->n; i++)
			memcpy(mc->xc + ((size_t)f * mc->ld + i) * P, x + (size_t)i * mc->I + (size_t)f * P,
			       sizeof(float) * P);
}

/* lt [O][ld] = scale (W xT + b) for the batch: the head's logits from its transposed input, as
 * one GEMM whose inner loops run along the samples. */
static void head_logits(struct mcmc *mc, const struct layer *h)
{
	const int n = mc->n, ld = mc->ld, O = mc->O, I = mc->I;
	const float *b = h->w + (size_t)O * I;
#pragma omp parallel
	{
		int lo, hi;
		nk_split(n, &lo, &hi);
		for (int o = 0; o < O; o++)
			for (int i = lo; i < hi; i++)
				mc->lt[(size_t)o * ld + i] = b[o];
		if (hi > lo)
			gemm_nn(O, hi - lo, I, h->w, I, mc->xT + lo, ld, mc->lt + lo, ld);
		for (int o = 0; o < O && h->scale != 1.0f; o++)
			for (int i = lo; i < hi; i++)
				mc->lt[(size_t)o * ld + i] *= h->scale;
	}
}

/* Samples of the batch whose largest logit is their label's. */
static int correct(const struct mcmc *mc)
{
	int hits = 0;
	for (int i = 0; i < mc->n; i++) {
		int best = 0;
		for (int o = 1; o < mc->O; o++)
			if (mc->lt[(size_t)o * mc->ld + i] > mc->lt[(size_t)best * mc->ld + i])
				best = o;
		hits += best == mc->y[i];
	}
	return hits;
}

static double eval_full(struct mcmc *mc, struct model *m, int li)
{
	model_forward_from(m, li, mc->n);
	transpose(model_logits(m), mc->n, mc->O, mc->lt_new, mc->ld);
	return loss_range(mc->lt_new, mc->ld, mc->O, mc->y, 0, mc->n) / mc->n;
}

static void swap_logits(struct mcmc *mc)
{
	float *t = mc->lt;
	mc->lt = mc->lt_new;
	mc->lt_new = t;
}

/* Make the caches follow an accepted move. */
static void commit(struct mcmc *mc, struct model *m, const struct mlayer *ml)
{
	swap_logits(mc);
	if (ml->path == PATH_CHANNEL) {
		/* The model's own activations from the conv layer on are left stale: a full-path move
		 * recomputes them from an earlier layer, and callers forward again after training. */
		const int f = mc->mv.filter;
		const int P = mc->plane[mc->nchan - 1];
		const float *last = mc->chan[mc->nchan - 1];
		memcpy(mc->xc + (size_t)f * mc->ld * P, last, sizeof(float) * mc->n * P);
		transpose(last, mc->n, P, mc->xT + (size_t)f * P * mc->ld, mc->ld);
	} else if (ml->path == PATH_FULL) {
		transpose(m->layers[mc->head].x, mc->n, mc->I, mc->xT, mc->ld);
		by_channel(mc, m->layers[mc->head].x);
		if (mc->chan_from > ml->li)
			m->layers[mc->chan_from].ops->channel_prepare(&m->layers[mc->chan_from], mc->n);
	}
}

int mcmc_accept(double lambda, double loss_old, double loss_new, double log_prior_ratio, double u)
{
	double a = lambda * (loss_old - loss_new) + log_prior_ratio;
	return a >= 0 || log(u) < a;
}

double mcmc_cached_loss(const struct optim *o)
{
	const struct mcmc *mc = o->priv;
	return mc->loss;
}

static int propose(struct optim *o, struct mcmc *mc)
{
	struct model *m = o->m;
	double u = rng_uniform(&o->rng) * mc->total_share;
	int which = 0;
	while (which < mc->nml - 1 && (u -= mc->ml[which].cfg.share) >= 0)
		which++;
	const struct mlayer *ml = &mc->ml[which];
	struct layer *l = &m->layers[ml->li];
	const struct chain_mcmc_layer *cfg = &ml->cfg;
	select_draw(l, cfg, &o->rng, mc->mark, &mc->mv);
	for (int j = 0; j < mc->mv.n; j++) {
		float *w = &l->w[mc->mv.idx[j]];
		mc->old[j] = *w;
		mc->new_[j] = cfg->proposal.kind == DIST_FLIP ? -*w : (float)(*w + sampler_draw(&cfg->proposal, &o->rng));
		*w = mc->new_[j];
	}
	double lpr = sampler_log_ratio(&cfg->prior, mc->old, mc->new_, mc->mv.n);
	double loss = ml->path == PATH_HEAD ? eval_head(mc, l)
		    : ml->path == PATH_CHANNEL ? eval_channel(mc, m, mc->mv.filter)
		    : eval_full(mc, m, ml->li);
	o->proposed[ml->li]++;
	if (mcmc_accept(cfg->lambda, mc->loss, loss, lpr, rng_uniform(&o->rng))) {
		commit(mc, m, ml);
		mc->loss = loss;
		o->accepted[ml->li]++;
		return 1;
	}
	for (int j = 0; j < mc->mv.n; j++)
		l->w[mc->mv.idx[j]] = mc->old[j];
	if (ml->path == PATH_FULL)
		model_forward_from(m, ml->li, mc->n);
	return 0;
}

static int mcmc_train(struct optim *o, const float *x, const int32_t *y, int n, const volatile int *newer,
		      struct optim_stats *st)
{
	struct mcmc *mc = o->priv;
	struct model *m = o->m;
	mc->y = y;
	mc->n = n;
	model_forward_to(m, x, mc->head, n);
	transpose(m->layers[mc->head].x, n, mc->I, mc->xT, mc->ld);
	head_logits(mc, &m->layers[mc->head]);
	by_channel(mc, m->layers[mc->head].x);
	if (mc->chan_from >= 0)
		m->layers[mc->chan_from].ops->channel_prepare(&m->layers[mc->chan_from], n);
	mc->loss = loss_range(mc->lt, mc->ld, mc->O, y, 0, n) / n;
	st->loss = mc->loss;
	st->correct = correct(mc);
	int iters = o->cfg.iters > 0 ? o->cfg.iters : 200;
	for (int it = 0; it < iters && !(it > 0 && newer && *newer); it++) {
		propose(o, mc);
		st->steps++;
	}
	return 0;
}

/* The cheapest exact way to evaluate moves on layer li. */
static enum path choose_path(const struct model *m, int li, int head)
{
	const struct layer *l = &m->layers[li];
	if (li == head)
		return PATH_HEAD;
	if (!l->ops->forward_channel || !l->ops->channel_prepare)
		return PATH_FULL;
	for (int j = li + 1; j < head; j++)
		if (!m->layers[j].ops->map_planes || m->layers[j].in.c != l->out.c)
			return PATH_FULL;
	return PATH_CHANNEL;
}

static int mcmc_setup_channel(struct mcmc *mc, const struct model *m, int li, char err[NK_ERR_LEN])
{
	const int K = m->layers[li].out.c;
	mc->chan_from = li;
	mc->nchan = mc->head - li;
	mc->chan = calloc(mc->nchan, sizeof *mc->chan);
	mc->plane = calloc(mc->nchan, sizeof *mc->plane);
	if (!mc->chan || !mc->plane)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	for (int j = 0; j < mc->nchan; j++) {
		mc->plane[j] = dims_size(m->layers[li + j].out) / K;
		if (!(mc->chan[j] = nk_floats((size_t)mc->ld * mc->plane[j])))
			return nk_errf(err, NK_ENOMEM, "out of memory");
	}
	mc->diff = nk_floats((size_t)nk_threads() * mc->plane[mc->nchan - 1] * 16);
	mc->xc = nk_floats((size_t)mc->ld * mc->I);
	return mc->diff && mc->xc ? 0 : nk_errf(err, NK_ENOMEM, "out of memory");
}

static int mcmc_layers(struct optim *o, struct mcmc *mc, int *maxmove, size_t *maxparams,
		       char err[NK_ERR_LEN])
{
	struct model *m = o->m;
	int j = 0;
	for (int i = 0; i < m->nlayers; i++) {
		const struct layer *l = &m->layers[i];
		if (l->nparams == 0)
			continue;
		struct mlayer *ml = &mc->ml[j];
		ml->li = i;
		ml->cfg = o->cfg.mcmc[j++];
		int rc = select_check(l, &ml->cfg, err);
		if (rc < 0)
			return rc;
		*maxmove = NK_MAX(*maxmove, rc);
		*maxparams = NK_MAX(*maxparams, l->nparams);
		if (l->binary != (ml->cfg.proposal.kind == DIST_FLIP))
			return nk_errf(err, NK_EINVAL, "%s: binary layers move by \"flip\", and only they do", l->name);
		ml->path = choose_path(m, i, mc->head);
		mc->total_share += ml->cfg.share;
		if (ml->path == PATH_CHANNEL && (rc = mcmc_setup_channel(mc, m, i, err)))
			return rc;
	}
	return 0;
}

static int mcmc_init(struct optim *o, char err[NK_ERR_LEN])
{
	struct model *m = o->m;
	int trainable = 0, maxmove = 0;
	size_t maxparams = 0;
	for (int i = 0; i < m->nlayers; i++)
		trainable += m->layers[i].nparams > 0;
	if (trainable != o->cfg.nmcmc)
		return nk_errf(err, NK_EINVAL, "mcmc lists %d layers, the stage has %d trainable ones",
			       o->cfg.nmcmc, trainable);
	struct mcmc *mc = calloc(1, sizeof *mc);
	if (!mc)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	o->priv = mc;
	mc->nml = trainable;
	mc->chan_from = -1;
	mc->head = m->nlayers - 1;
	mc->O = m->classes;
	mc->I = dims_size(m->layers[mc->head].in);
	mc->ld = m->max_batch;
	if (strcmp(m->layers[mc->head].ops->kind, "linear") != 0)
		return nk_errf(err, NK_EINVAL, "mcmc needs a linear last head layer");
	if (!(mc->ml = calloc(trainable, sizeof *mc->ml)))
		return nk_errf(err, NK_ENOMEM, "out of memory");
	int rc = mcmc_layers(o, mc, &maxmove, &maxparams, err);
	if (rc)
		return rc;
	mc->mv.idx = malloc(sizeof(int32_t) * maxmove);
	mc->old = nk_floats(maxmove);
	mc->new_ = nk_floats(maxmove);
	mc->mark = calloc(maxparams, 1);
	mc->lt = nk_floats((size_t)mc->O * mc->ld);
	mc->lt_new = nk_floats((size_t)mc->O * mc->ld);
	mc->xT = nk_floats((size_t)mc->I * mc->ld);
	if ((mc->ones = nk_floats(mc->ld)))
		for (int i = 0; i < mc->ld; i++)
			mc->ones[i] = 1.0f;
	if (!mc->mv.idx || !mc->old || !mc->new_ || !mc->mark || !mc->lt || !mc->lt_new || !mc->xT || !mc->ones)
		return nk_errf(err, NK_ENOMEM, "out of memory for MCMC caches");
	return 0;
}

static void mcmc_free(struct optim *o)
{
	struct mcmc *mc = o->priv;
	if (!mc)
		return;
	for (int j = 0; mc->chan && j < mc->nchan; j++)
		free(mc->chan[j]);
	free(mc->chan);
	free(mc->plane);
	free(mc->diff);
	free(mc->xc);
	free(mc->ml);
	free(mc->mv.idx);
	free(mc->old);
	free(mc->new_);
	free(mc->mark);
	free(mc->lt);
	free(mc->lt_new);
	free(mc->xT);
	free(mc->ones);
	free(mc);
	o->priv = NULL;
}

const struct optim_ops mcmc_ops = {
	.name = "mcmc",
	.init = mcmc_init,
	.free = mcmc_free,
	.train = mcmc_train,
};
