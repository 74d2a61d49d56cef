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

/* Who evaluates a path's proposals: the calling thread alone or the whole team, whichever has
 * been quicker lately. A fork and join costs microseconds on a quiet machine and many more on a
 * busy or virtual one, while a proposal costs tens, so neither choice is right everywhere. Each
 * is timed (a moving average of seconds per proposal); the slower one is tried again every
 * TEAM_EXPLORE proposals so that a change of load is noticed. The loss does not depend on the
 * choice: it is summed per block of LOSS_BLOCK samples, in order. */
struct team_choice {
	double cost[2];              /* [0] one thread, [1] the team */
	long runs[2];
};

#define TEAM_CALIBRATE 16
#define TEAM_EXPLORE 32
#define LOSS_BLOCK 64

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
	int pb;                      /* rows of a block of xT: one channel's plane, or I */
	float **xT;                  /* [I / pb] blocks [pb][ld]: the head's input, transposed */
	float *xT_spare;             /* [pb][ld] a proposal's channel, transposed; swapped in on accept */
	float *xT_mem;               /* the I / pb + 1 blocks */
	float *ones;                 /* [ld] 1.0: a bias's input */
	int chan_from;               /* conv layer on PATH_CHANNEL, or -1 */
	int nchan;                   /* it and the channelwise layers up to the head */
	float **chan;                /* [nchan - 1][plane][ld] a proposal's channel at each but the last */
	float *diff;                 /* [threads][plane of the last][16] */
	const int32_t *y;
	int n;
	double loss;                 /* mean loss of the current state */
	double *part;                /* [ld / LOSS_BLOCK] the loss of each block of samples */
	struct team_choice team[PATH_FULL]; /* for PATH_HEAD and PATH_CHANNEL */
	int team_mode;               /* -1 the quicker, 0 one thread, 1 the team: mcmc_set_team */
};

/* Row r of the head's transposed input. */
static inline const float *xT_row(const struct mcmc *mc, int r)
{
	return mc->xT[r / mc->pb] + (size_t)(r % mc->pb) * mc->ld;
}

/* exp(x) for x <= 0 and log(x) for x >= 1, branch-free so that loops over samples vectorise;
 * relative error about 2e-7, like expf/logf. */
static inline float exp_neg(float x)
{
	x = x < -87.0f ? -87.0f : x;
	float t = x * 1.44269504f;                     /* x / ln 2 = k + f */
	float k = (t + 12582912.0f) - 12582912.0f;     /* round to nearest */
	float f = (t - k) * 0.69314718f;               /* |f| <= ln 2 / 2 */
	float p = 1.0f + f * (1.0f + f * (0.5f + f * (1.0f / 6 + f * (1.0f / 24 + f * (1.0f / 120 + f * (1.0f / 720))))));
	int32_t e = ((int32_t)(k > -127.0f ? k : -127.0f) + 127) << 23;
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

/* The cross-entropies of samples [lo, hi) from transposed logits lt [O][ld], summed per block of
 * LOSS_BLOCK samples into part[b / LOSS_BLOCK] (lo is a block's start), with the class loop
 * outside so that the sample loop vectorises. */
NK_CLONES
static void loss_range(const float *lt, int ld, int O, const int32_t *y, int lo, int hi, double *part)
{
	for (int b = lo; b < hi; b += LOSS_BLOCK) {
		const int nb = hi - b < LOSS_BLOCK ? hi - b : LOSS_BLOCK;
		float m[LOSS_BLOCK], s[LOSS_BLOCK], sum = 0.0f;
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
			sum += log_ge1(s[j]) + m[j] - lt[(size_t)y[b + j] * ld + b + j];
		part[b / LOSS_BLOCK] = sum;
	}
}

/* The mean loss of the batch from the blocks' parts. */
static double loss_mean(const struct mcmc *mc)
{
	double sum = 0.0;
	for (int b = 0; b < (mc->n + LOSS_BLOCK - 1) / LOSS_BLOCK; b++)
		sum += mc->part[b];
	return sum / mc->n;
}

/* This thread's samples: whole blocks of LOSS_BLOCK. */
static void block_split(int n, int *lo, int *hi)
{
	int b0, b1;
	nk_split((n + LOSS_BLOCK - 1) / LOSS_BLOCK, &b0, &b1);
	*lo = NK_MIN(n, b0 * LOSS_BLOCK);
	*hi = NK_MIN(n, b1 * LOSS_BLOCK);
}

static int team_pick(const struct team_choice *tc, long proposal)
{
	if (tc->runs[0] < TEAM_CALIBRATE || tc->runs[1] < TEAM_CALIBRATE)
		return (int)(proposal & 1);
	const int best = tc->cost[1] < tc->cost[0];
	return proposal % TEAM_EXPLORE == 0 ? !best : best;
}

static void team_note(struct team_choice *tc, int mode, double secs)
{
	double *c = &tc->cost[mode];
	long r = ++tc->runs[mode];
	if (r <= TEAM_CALIBRATE) {
		*c += (secs - *c) / r;
	} else {
		/* A proposal the system interrupted counts as at most four ordinary ones. */
		secs = NK_MIN(secs, 4 * *c);
		*c += 0.05 * (secs - *c);
	}
}

NK_CLONES
static void axpy_range(float *dst, const float *src, float a, int lo, int hi)
{
	for (int i = lo; i < hi; i++)
		dst[i] += a * src[i];
}

/* lt_new[o][i] = lt[o][i] + scale * sum_q w[o][q] (newT[q][i] - oldT[q][i]) for samples [lo, hi):
 * one channel's share of the head's logits, from the channel as a proposal computed it and as
 * it was, both [P][ld]. w rows are ldw apart. The difference goes through dt [P][16] so that the
 * class sums run 16 samples a vector. */
NK_CLONES
static void channel_logits(const float *lt, float *lt_new, int ld, int O, const float *w, int ldw,
			   const float *newT, const float *oldT, int P, float scale, float *dt, int lo, int hi)
{
	for (int b = lo; b < hi; b += 16) {
		const int nb = hi - b < 16 ? hi - b : 16;
		if (nb < 16)
			memset(dt, 0, sizeof(float) * P * 16);
		for (int q = 0; q < P; q++)
			for (int j = 0; j < nb; j++)
				dt[q * 16 + j] = newT[(size_t)q * ld + b + j] - oldT[(size_t)q * ld + b + j];
		for (int o0 = 0; o0 < O; o0 += 5) {
			/* 5 classes x 16 samples: ten independent vector sums (ten classes in two passes). */
			const int no = O - o0 < 5 ? O - o0 : 5;
			nk_v8f acc[5][2];
			memset(acc, 0, sizeof acc);
			for (int q = 0; q < P; q++) {
				const nk_v8f d0 = nk_load8(dt + q * 16), d1 = nk_load8(dt + q * 16 + 8);
				for (int r = 0; r < 5; r++) {
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

static void eval_head(struct mcmc *mc, const struct layer *h, int threads)
{
	const int n = mc->n, I = mc->I, ld = mc->ld;
#pragma omp parallel num_threads(threads)
	{
		int lo, hi;
		block_split(n, &lo, &hi);
		for (int o = 0; o < mc->O; o++)
			memcpy(mc->lt_new + (size_t)o * ld + lo, mc->lt + (size_t)o * ld + lo, sizeof(float) * (hi - lo));
		for (int j = 0; j < mc->mv.n; j++) {
			int32_t k = mc->mv.idx[j];
			const float d = h->scale * (mc->new_[j] - mc->old[j]);
			if (k < mc->O * I)
				axpy_range(mc->lt_new + (size_t)(k / I) * ld, xT_row(mc, k % I), d, lo, hi);
			else
				axpy_range(mc->lt_new + (size_t)(k - mc->O * I) * ld, mc->ones, d, lo, hi);
		}
		loss_range(mc->lt_new, ld, mc->O, mc->y, lo, hi, mc->part);
	}
}

/* One channel of the conv layer on PATH_CHANNEL for samples [lo, hi), through the channelwise
 * layers after it, into dst [P][ld]. */
static void channel_planes(struct mcmc *mc, struct model *m, int f, int lo, int hi, float *dst)
{
	struct layer *conv = &m->layers[mc->chan_from];
	float *out = mc->nchan == 1 ? dst : mc->chan[0];
	conv->ops->forward_channel(conv, f, lo, hi, out, mc->ld);
	for (int j = 1; j < mc->nchan; j++) {
		const struct layer *l = &m->layers[mc->chan_from + j];
		const float *in = out;
		out = j == mc->nchan - 1 ? dst : mc->chan[j];
		l->ops->map_channel(l, in, out, mc->ld, lo, hi);
	}
}

static void eval_channel(struct mcmc *mc, struct model *m, int f, int threads)
{
	const int n = mc->n, ld = mc->ld, I = mc->I, P = mc->pb;
	const struct layer *h = &m->layers[mc->head];
#pragma omp parallel num_threads(threads)
	{
		int lo, hi;
		block_split(n, &lo, &hi);
		float *diff = mc->diff + (size_t)nk_thread_id() * P * 16;
		channel_planes(mc, m, f, lo, hi, mc->xT_spare);
		channel_logits(mc->lt, mc->lt_new, ld, mc->O, h->w + (size_t)f * P, I, mc->xT_spare, mc->xT[f], P,
			       h->scale, diff, lo, hi);
		loss_range(mc->lt_new, ld, mc->O, mc->y, lo, hi, mc->part);
	}
}

/* Rows [lo, hi) of src [rows][cols] transposed: column c goes to row c % pb of block
 * dst[c / pb], whose rows are ld apart. Through 16 x 16 tiles so that both sides move in whole
 * cache lines. */
static void transpose_part(const float *src, int cols, int lo, int hi, float *const *dst, int pb, int ld)
{
	for (int c0 = 0; c0 < cols; c0 += 16)
		for (int r0 = lo; r0 < hi; r0 += 16) {
			const int nr = NK_MIN(16, hi - r0), nc = NK_MIN(16, cols - c0);
			float t[16][16];
			for (int r = 0; r < nr; r++)
				for (int c = 0; c < nc; c++)
					t[c][r] = src[(size_t)(r0 + r) * cols + c0 + c];
			for (int c = 0; c < nc; c++)
				memcpy(dst[(c0 + c) / pb] + (size_t)((c0 + c) % pb) * ld + r0, t[c], sizeof(float) * nr);
		}
}

static void transpose(const float *src, int rows, int cols, float *const *dst, int pb, int ld)
{
#pragma omp parallel if ((long)rows * cols >= (1L << 16))
	{
		int lo, hi;
		nk_split(rows, &lo, &hi);
		transpose_part(src, cols, lo, hi, dst, pb, ld);
	}
}

/* The head's input, transposed into xT, computed one channel at a time from the conv layer on
 * PATH_CHANNEL, as proposals compute it; the layers before it have run. */
static int fill_channels(struct mcmc *mc, struct model *m)
{
	struct layer *conv = &m->layers[mc->chan_from];
	int rc = conv->ops->channel_prepare(conv, mc->n);
	if (rc)
		return rc;
#pragma omp parallel
	{
		int lo, hi;
		nk_split(mc->n, &lo, &hi);
		for (int f = 0; f < conv->out.c; f++)
			channel_planes(mc, m, f, lo, hi, mc->xT[f]);
	}
	return 0;
}

/* lt [O][ld] = scale (W xT + b) + offset for the batch: the head's logits from its transposed
 * input, as one GEMM whose inner loops run along the samples, plus the upstream logits of a stage
 * that boosts. Every move updates lt by its change, so the offset stays in. */
static void head_logits(struct mcmc *mc, const struct layer *h, const float *offset)
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
		for (int c = 0; c < I / mc->pb && hi > lo; c++)
			gemm_nn(O, hi - lo, mc->pb, h->w + (size_t)c * mc->pb, I, mc->xT[c] + lo, ld, mc->lt + lo, ld);
		for (int o = 0; o < O && h->scale != 1.0f; o++)
			for (int i = lo; i < hi; i++)
				mc->lt[(size_t)o * ld + i] *= h->scale;
		for (int i = lo; offset && i < hi; i++)
			for (int o = 0; o < O; o++)
				mc->lt[(size_t)o * ld + i] += offset[(size_t)i * O + o];
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
	transpose(model_logits(m), mc->n, mc->O, &mc->lt_new, mc->O, mc->ld);
	loss_range(mc->lt_new, mc->ld, mc->O, mc->y, 0, mc->n, mc->part);
	return loss_mean(mc);
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
		/* The model's own activations from the conv layer on are left stale (they are not even
		 * computed: see mcmc_train): a full-path move recomputes them from an earlier layer, and
		 * callers forward again after training. */
		float *t = mc->xT[mc->mv.filter];
		mc->xT[mc->mv.filter] = mc->xT_spare;
		mc->xT_spare = t;
	} else if (ml->path == PATH_FULL) {
		transpose(m->layers[mc->head].x, mc->n, mc->I, mc->xT, mc->pb, mc->ld);
		/* Cannot fail: its buffer was sized at the batch's start. */
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

void mcmc_set_team(struct optim *o, int mode)
{
	struct mcmc *mc = o->priv;
	mc->team_mode = mode;
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
	double loss;
	if (ml->path == PATH_FULL) {
		loss = eval_full(mc, m, ml->li);
	} else {
		struct team_choice *tc = &mc->team[ml->path];
		const int team = mc->n < PAR_SAMPLES || nk_threads() == 1 ? 0
			       : mc->team_mode >= 0 ? mc->team_mode : team_pick(tc, o->proposed[ml->li]);
		const double t0 = nk_now();
		if (ml->path == PATH_HEAD)
			eval_head(mc, l, team ? nk_threads() : 1);
		else
			eval_channel(mc, m, mc->mv.filter, team ? nk_threads() : 1);
		team_note(tc, team, nk_now() - t0);
		loss = loss_mean(mc);
	}
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
	if (mc->chan_from >= 0) {
		model_forward_to(m, x, mc->chan_from, n);
		int rc = fill_channels(mc, m);
		if (rc)
			return rc;
	} else {
		model_forward_to(m, x, mc->head, n);
		transpose(m->layers[mc->head].x, n, mc->I, mc->xT, mc->pb, mc->ld);
	}
	head_logits(mc, &m->layers[mc->head], m->offset);
	loss_range(mc->lt, mc->ld, mc->O, y, 0, n, mc->part);
	mc->loss = loss_mean(mc);
	st->loss = mc->loss;
	st->correct = correct(mc);
	if (!optim_loss_ok(o, mc->loss)) { /* every move would be judged against it: make none */
		st->skipped = 1;
		return 0;
	}
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
		if (!m->layers[j].ops->map_channel || m->layers[j].in.c != l->out.c)
			return PATH_FULL;
	return PATH_CHANNEL;
}

static int mcmc_setup_channel(struct mcmc *mc, const struct model *m, int li, char err[NK_ERR_LEN])
{
	const int K = m->layers[li].out.c;
	mc->chan_from = li;
	mc->nchan = mc->head - li;
	mc->chan = calloc(mc->nchan, sizeof *mc->chan);
	if (!mc->chan)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	for (int j = 0; j < mc->nchan - 1; j++)
		if (!(mc->chan[j] = nk_floats((size_t)mc->ld * (dims_size(m->layers[li + j].out) / K))))
			return nk_errf(err, NK_ENOMEM, "out of memory");
	mc->pb = dims_size(m->layers[mc->head - 1].out) / K;
	mc->diff = nk_floats((size_t)nk_threads() * mc->pb * 16);
	return mc->diff ? 0 : nk_errf(err, NK_ENOMEM, "out of memory");
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
	mc->team_mode = -1;
	mc->head = m->nlayers - 1;
	mc->O = m->classes;
	mc->I = dims_size(m->layers[mc->head].in);
	mc->pb = mc->I;            /* one block, unless a conv layer moves by channel */
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
	mc->part = calloc((mc->ld + LOSS_BLOCK - 1) / LOSS_BLOCK, sizeof *mc->part);
	mc->lt_new = nk_floats((size_t)mc->O * mc->ld);
	const int nblk = mc->I / mc->pb;
	mc->xT = calloc(nblk, sizeof *mc->xT);
	if ((mc->xT_mem = nk_floats((size_t)(nblk + 1) * mc->pb * mc->ld)) && mc->xT) {
		for (int c = 0; c < nblk; c++)
			mc->xT[c] = mc->xT_mem + (size_t)c * mc->pb * mc->ld;
		mc->xT_spare = mc->xT_mem + (size_t)nblk * mc->pb * mc->ld;
	}
	if ((mc->ones = nk_floats(mc->ld)))
		for (int i = 0; i < mc->ld; i++)
			mc->ones[i] = 1.0f;
	if (!mc->mv.idx || !mc->old || !mc->new_ || !mc->mark || !mc->lt || !mc->lt_new || !mc->xT || !mc->xT_mem || !mc->ones || !mc->part)
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
	free(mc->diff);
	free(mc->ml);
	free(mc->mv.idx);
	free(mc->old);
	free(mc->new_);
	free(mc->mark);
	free(mc->lt);
	free(mc->lt_new);
	free(mc->xT);
	free(mc->xT_mem);
	free(mc->ones);
	free(mc->part);
	free(mc);
	o->priv = NULL;
}

const struct optim_ops mcmc_ops = {
	.name = "mcmc",
	.init = mcmc_init,
	.free = mcmc_free,
	.train = mcmc_train,
};
