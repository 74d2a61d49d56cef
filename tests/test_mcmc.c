/* MCMC: the acceptance rule, incremental evaluation against full forward passes for every
 * selector and path, bit-exact undo of rejected moves, and training on a tiny problem. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/mcmc.h"

Test(mcmc, acceptance_rule)
{
	/* A loss that drops is always accepted, whatever u. */
	for (double u = 0.0; u < 1.0; u += 0.125)
		cr_assert(mcmc_accept(1e5, 0.50, 0.49, 0.0, u));
	/* lambda 0 and a flat prior: always accepted, even when the loss rises. */
	cr_assert(mcmc_accept(0.0, 0.5, 0.9, 0.0, 0.999));
	/* Hand-computed: lambda 1e5, loss up by 2e-5: rho = exp(-2) = 0.1353. */
	cr_assert(mcmc_accept(1e5, 0.5, 0.50002, 0.0, 0.13));
	cr_assert_not(mcmc_accept(1e5, 0.5, 0.50002, 0.0, 0.14));
	/* The prior ratio multiplies in: exp(-2) * exp(1) = 0.3679. */
	cr_assert(mcmc_accept(1e5, 0.5, 0.50002, 1.0, 0.36));
	cr_assert_not(mcmc_accept(1e5, 0.5, 0.50002, 1.0, 0.37));
}

struct setup {
	const char *what;
	struct chain_layer body[6];
	int nbody;
	struct chain_layer head[2];
	int nhead;
	struct chain_mcmc_layer moves[3];
	int nmoves;
	struct layer_dims in;
	int boost;      /* the head adds upstream logits (model offset) */
};

#define CONV(f, k, s, p) {.kind = "conv", .filters = f, .kernel = k, .stride = s, .pad = p}
#define BCONV(f, k, s, p) {.kind = "conv", .filters = f, .kernel = k, .stride = s, .pad = p, .binary = 1}
#define RELU {.kind = "relu"}
#define STUDENT(v) {.kind = DIST_STUDENT, .var = v, .df = 1}
#define GAUSS(v) {.kind = DIST_GAUSSIAN, .var = v}
#define FLIP {.kind = DIST_FLIP}
#define MOVE(m, kk, prop, pri, lam) {.share = 1, .move = m, .k = kk, .proposal = prop, .prior = pri, .lambda = lam}

static const struct setup setups[] = {
	{"conv relu linear", {CONV(3, 3, 2, 1), RELU}, 2, {{.kind = "linear"}}, 1,
	 {MOVE(MOVE_FILTER, 0, STUDENT(1e-3), STUDENT(1e-1), 30), MOVE(MOVE_UNIFORM, 9, STUDENT(1e-3), STUDENT(1e-1), 30)},
	 2, {2, 9, 9}, 0},
	{"conv relu maxpool flatten", {CONV(4, 3, 1, 1), RELU, {.kind = "maxpool", .size = 2}, {.kind = "flatten"}}, 4,
	 {{.kind = "linear"}}, 1,
	 {MOVE(MOVE_FILTER_K, 4, GAUSS(1e-2), GAUSS(1.0), 30), MOVE(MOVE_ROW, 0, GAUSS(1e-4), {0}, 30)}, 2, {1, 8, 8}, 0},
	{"conv relu avgpool, gap head", {CONV(5, 5, 1, 2), RELU, {.kind = "avgpool", .size = 2}}, 3,
	 {{.kind = "gap"}, {.kind = "linear"}}, 2,
	 {MOVE(MOVE_FILTER, 0, STUDENT(1e-2), {0}, 30), MOVE(MOVE_UNIFORM, 3, STUDENT(1e-2), {0}, 30)}, 2, {3, 6, 7}, 0},
	{"two convs: the first recomputes in full", {CONV(3, 3, 1, 0), RELU, CONV(4, 3, 2, 1), RELU}, 4,
	 {{.kind = "linear"}}, 1,
	 {MOVE(MOVE_FILTER, 0, STUDENT(1e-3), {0}, 30), MOVE(MOVE_FILTER_K, 2, STUDENT(1e-2), {0}, 30),
	  MOVE(MOVE_UNIFORM, 5, STUDENT(1e-3), {0}, 30)}, 3, {2, 9, 9}, 0},
	{"binary conv and head", {BCONV(4, 3, 2, 0), RELU}, 2, {{.kind = "linear", .binary = 1}}, 1,
	 {MOVE(MOVE_FILTER_K, 3, FLIP, {0}, 5), MOVE(MOVE_UNIFORM, 4, FLIP, {0}, 5)}, 2, {1, 9, 9}, 0},
	{"conv relu, pooled head (grid), boosted", {CONV(4, 3, 1, 1), RELU}, 2,
	 {{.kind = "avgpool", .grid = 3}, {.kind = "linear"}}, 2,
	 {MOVE(MOVE_FILTER, 0, STUDENT(1e-2), GAUSS(1.0), 30), MOVE(MOVE_UNIFORM, 5, STUDENT(1e-2), {0}, 30)}, 2,
	 {2, 8, 7}, 1},
	{"two convs, boosted", {CONV(3, 3, 1, 0), RELU, CONV(4, 3, 2, 1), RELU}, 4, {{.kind = "linear"}}, 1,
	 {MOVE(MOVE_FILTER, 0, STUDENT(1e-3), {0}, 30), MOVE(MOVE_FILTER, 0, STUDENT(1e-2), {0}, 30),
	  MOVE(MOVE_ROW, 0, STUDENT(1e-3), {0}, 30)}, 3, {2, 9, 9}, 1},
};

struct rig {
	struct model *m;
	struct optim *o;
	float *x, *off;
	int32_t *y;
	int n;
};

static void rig_new(struct rig *r, const struct setup *s, int n, int iters)
{
	char err[NK_ERR_LEN];
	struct chain_stage st = {.name = "t", .layers = (struct chain_layer *)s->body, .nlayers = s->nbody,
				 .head = (struct chain_layer *)s->head, .nhead = s->nhead};
	struct chain_optim cfg = {.kind = OPTIM_MCMC, .iters = iters, .mcmc = (struct chain_mcmc_layer *)s->moves,
				  .nmcmc = s->nmoves};
	cr_assert_eq(model_new(&r->m, &st, s->in, 4, n, 7, err), 0, "%s: %s", s->what, err);
	cr_assert_eq(optim_new(&r->o, r->m, &cfg, 3, err), 0, "%s: %s", s->what, err);
	r->n = n;
	r->x = malloc(sizeof(float) * n * dims_size(s->in));
	r->y = malloc(sizeof(int32_t) * n);
	struct nk_rng g;
	rng_seed(&g, 17);
	for (int i = 0; i < n * dims_size(s->in); i++)
		r->x[i] = (float)rng_normal(&g);
	for (int i = 0; i < n; i++)
		r->y[i] = (int32_t)rng_below(&g, 4);
	r->off = NULL;
	if (s->boost) {
		r->off = malloc(sizeof(float) * n * 4);
		for (int i = 0; i < n * 4; i++)
			r->off[i] = (float)(2 * rng_normal(&g));
		r->m->offset = r->off;
	}
}

static void rig_free(struct rig *r)
{
	optim_free(r->o);
	model_free(r->m);
	free(r->x);
	free(r->y);
	free(r->off);
}

static double full_loss(struct rig *r)
{
	model_forward(r->m, r->x, r->n);
	return model_loss(r->m, r->y, r->n, NULL, 0);
}

static long total(const long *v, int n)
{
	long s = 0;
	for (int i = 0; i < n; i++)
		s += v[i];
	return s;
}

/* One proposal at a time: the incremental loss equals a full forward pass, and a rejected move
 * leaves the parameters bit for bit as they were. */
static void one_by_one(const struct setup *s, int n)
{
	struct rig r;
	rig_new(&r, s, n, 1);
	float *before = malloc(sizeof(float) * r.m->nparams);
	long rejected = 0, accepted = 0;
	for (int t = 0; t < 300; t++) {
		memcpy(before, r.m->params, sizeof(float) * r.m->nparams);
		long acc0 = total(r.o->accepted, r.m->nlayers);
		int right;
		model_forward(r.m, r.x, r.n);
		double before_loss = model_loss(r.m, r.y, r.n, &right, 0);
		struct optim_stats st;
		cr_assert_eq(optim_train(r.o, r.x, r.y, r.n, NULL, &st), 0);
		cr_assert_eq(st.steps, 1);
		/* The stats describe the batch before the move. */
		cr_assert_eq(st.correct, right, "%s, step %d: %d right, stats say %d", s->what, t, right, st.correct);
		cr_assert(fabs(st.loss - before_loss) <= 2e-5 * fmax(1.0, before_loss), "%s: stats loss %g, full %g",
			  s->what, st.loss, before_loss);
		double cached = mcmc_cached_loss(r.o), full = full_loss(&r);
		cr_assert(fabs(cached - full) <= 2e-5 * fmax(1.0, full), "%s, step %d: incremental %.9g, full %.9g",
			  s->what, t, cached, full);
		if (total(r.o->accepted, r.m->nlayers) == acc0) {
			rejected++;
			cr_assert_eq(memcmp(before, r.m->params, sizeof(float) * r.m->nparams), 0,
				     "%s, step %d: rejected move not undone bit for bit", s->what, t);
		} else {
			accepted++;
		}
	}
	cr_assert(accepted > 10 && rejected > 10, "%s: %ld accepted, %ld rejected: both paths must run",
		  s->what, accepted, rejected);
	for (int i = 0; i < r.m->nlayers; i++)
		if (r.m->layers[i].nparams)
			cr_assert_gt(r.o->proposed[i], 30, "%s: layer %s never moved", s->what, r.m->layers[i].name);
	free(before);
	rig_free(&r);
}

/* Many proposals in one batch: the caches follow every accepted move. */
static void many(const struct setup *s, int n)
{
	struct rig r;
	rig_new(&r, s, n, 600);
	struct optim_stats st;
	cr_assert_eq(optim_train(r.o, r.x, r.y, r.n, NULL, &st), 0);
	cr_assert_eq(st.steps, 600);
	double cached = mcmc_cached_loss(r.o), full = full_loss(&r);
	cr_assert(fabs(cached - full) <= 5e-5 * fmax(1.0, full), "%s: after 600 proposals incremental %.9g, full %.9g",
		  s->what, cached, full);
	cr_assert_gt(total(r.o->accepted, r.m->nlayers), 20, "%s", s->what);
	rig_free(&r);
}

Test(mcmc, incremental_equals_full_each_step)
{
	for (size_t i = 0; i < sizeof setups / sizeof setups[0]; i++) {
		one_by_one(&setups[i], 37);   /* one thread, blocks with a tail */
		one_by_one(&setups[i], 150);  /* parallel over samples */
	}
}

Test(mcmc, incremental_equals_full_after_many_moves)
{
	for (size_t i = 0; i < sizeof setups / sizeof setups[0]; i++) {
		many(&setups[i], 37);
		many(&setups[i], 150);
	}
}

Test(mcmc, incremental_equals_full_on_the_seed_model)
{
	/* seed-1-mcmc-research's settings on their own shapes and batch size (seed-1-mcmc differs
	 * only in its moves' df; the heavier df-1 tail makes the larger jumps). */
	static const struct setup seed = {"seed model", {CONV(32, 7, 3, 0), RELU}, 2, {{.kind = "linear"}}, 1,
					  {MOVE(MOVE_FILTER, 0, STUDENT(1e-7), STUDENT(1e-3), 1e5),
					   MOVE(MOVE_UNIFORM, 363, STUDENT(1e-7), STUDENT(1e-3), 1e5)}, 2, {1, 28, 28}, 0};
	one_by_one(&seed, 512);
	many(&seed, 512);
}

Test(mcmc, one_thread_or_the_team_gives_the_same_chain)
{
	/* The loss is summed per block of samples in a fixed order, so whether proposals run on one
	 * thread, on the team, or on whichever is quicker, every accept decision is the same. */
	static const struct setup seed = {"seed model", {CONV(32, 7, 3, 0), RELU}, 2, {{.kind = "linear"}}, 1,
					  {MOVE(MOVE_FILTER, 0, STUDENT(1e-7), STUDENT(1e-3), 1e5),
					   MOVE(MOVE_UNIFORM, 363, STUDENT(1e-7), STUDENT(1e-3), 1e5)}, 2, {1, 28, 28}, 0};
	struct rig r[3];
	for (int k = 0; k < 3; k++) {
		rig_new(&r[k], &seed, 300, 400);
		mcmc_set_team(r[k].o, k - 1);
		struct optim_stats st;
		cr_assert_eq(optim_train(r[k].o, r[k].x, r[k].y, r[k].n, NULL, &st), 0);
	}
	for (int k = 1; k < 3; k++) {
		double a = mcmc_cached_loss(r[0].o), b = mcmc_cached_loss(r[k].o);
		cr_assert(memcmp(&a, &b, sizeof a) == 0, "team mode %d: loss %.17g, automatic %.17g", k - 1, b, a);
		cr_assert_eq(memcmp(r[0].m->params, r[k].m->params, sizeof(float) * r[0].m->nparams), 0,
			     "team mode %d: the parameters part from the automatic choice's", k - 1);
	}
	for (int k = 0; k < 3; k++)
		rig_free(&r[k]);
}

Test(mcmc, stops_early_when_a_newer_batch_waits)
{
	struct rig r;
	rig_new(&r, &setups[0], 20, 500);
	volatile int newer = 1;
	struct optim_stats st;
	cr_assert_eq(optim_train(r.o, r.x, r.y, r.n, &newer, &st), 0);
	cr_assert_eq(st.steps, 1);
	newer = 0;
	cr_assert_eq(optim_train(r.o, r.x, r.y, r.n, &newer, &st), 0);
	cr_assert_eq(st.steps, 500);
	rig_free(&r);
}

Test(mcmc, lowers_the_loss_on_a_tiny_problem)
{
	/* Labels from a fixed random linear rule on the inputs: learnable by the head alone. */
	struct setup s = {"linear head", {{.kind = ""}}, 0, {{.kind = "linear"}}, 1,
			  {MOVE(MOVE_UNIFORM, 4, STUDENT(1e-3), STUDENT(1.0), 2000)}, 1, {8, 1, 1}, 0};
	struct rig r;
	rig_new(&r, &s, 200, 3000);
	struct nk_rng g;
	rng_seed(&g, 99);
	float rule[4][8];
	for (int c = 0; c < 4; c++)
		for (int j = 0; j < 8; j++)
			rule[c][j] = (float)rng_normal(&g);
	for (int i = 0; i < r.n; i++) {
		int best = 0;
		float bv = -1e30f;
		for (int c = 0; c < 4; c++) {
			float v = 0;
			for (int j = 0; j < 8; j++)
				v += rule[c][j] * r.x[i * 8 + j];
			if (v > bv)
				bv = v, best = c;
		}
		r.y[i] = best;
	}
	struct optim_stats first, st;
	double start = full_loss(&r);
	cr_assert_eq(optim_train(r.o, r.x, r.y, r.n, NULL, &first), 0);
	for (int b = 0; b < 5; b++)
		optim_train(r.o, r.x, r.y, r.n, NULL, &st);
	double end = full_loss(&r);
	cr_assert_float_eq(first.loss, start, 1e-5 * start);
	cr_assert_lt(end, 0.6 * start, "loss %g -> %g", start, end);
	rig_free(&r);
}

Test(mcmc, refuses_flip_on_real_layers_and_wrong_counts)
{
	char err[NK_ERR_LEN];
	struct chain_layer head[] = {{.kind = "linear", .units = 4}};
	struct chain_stage st = {.name = "t", .head = head, .nhead = 1};
	struct chain_mcmc_layer moves[] = {MOVE(MOVE_UNIFORM, 2, FLIP, {0}, 1), MOVE(MOVE_UNIFORM, 2, FLIP, {0}, 1)};
	struct chain_optim cfg = {.kind = OPTIM_MCMC, .iters = 1, .mcmc = moves, .nmcmc = 1};
	struct model *m;
	struct optim *o;
	cr_assert_eq(model_new(&m, &st, (struct layer_dims){3, 1, 1}, 4, 5, 1, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o, m, &cfg, 1, err), NK_EINVAL);
	cr_assert(strstr(err, "flip"), "%s", err);
	cfg.nmcmc = 2;
	cr_assert_eq(optim_new(&o, m, &cfg, 1, err), NK_EINVAL);
	cr_assert(strstr(err, "2 layers"), "%s", err);
	model_free(m);
}

/* A batch of +Inf or absurd values makes no move: MCMC would judge every proposal against its
 * loss. (A NaN is swallowed by ReLU here; stages refuse any non-finite batch before this.) */
Test(mcmc, poisoned_batches_make_no_move)
{
	struct rig r;
	rig_new(&r, &setups[0], 20, 50);
	size_t P = r.m->nparams, len = (size_t)r.n * dims_size(setups[0].in);
	float *w0 = malloc(sizeof(float) * P), *bad = malloc(sizeof(float) * len);
	memcpy(w0, r.m->params, sizeof(float) * P);
	const float poison[] = {INFINITY, 1e30f};
	struct optim_stats st;
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < len; i++)
			bad[i] = k == 1 ? r.x[i] * poison[k] : (i == 3 ? poison[k] : r.x[i]);
		cr_assert_eq(optim_train(r.o, bad, r.y, r.n, NULL, &st), 0);
		cr_assert_eq(st.skipped, 1, "poison %d (loss %g) was trained on", k, st.loss);
		cr_assert_eq(st.steps, 0);
		cr_assert_eq(memcmp(w0, r.m->params, sizeof(float) * P), 0, "poison %d moved a weight", k);
		r.o->outliers = 0;
	}
	cr_assert_eq(optim_train(r.o, r.x, r.y, r.n, NULL, &st), 0);
	cr_assert_eq(st.skipped, 0);
	cr_assert_eq(st.steps, 50);
	free(w0);
	free(bad);
	rig_free(&r);
}
