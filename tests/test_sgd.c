/* SGD: the update rule against hand arithmetic, and a tiny separable problem it must solve. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"

static struct chain_layer head[] = {{.kind = "linear", .units = 2}};
static struct chain_stage stage = {.name = "t", .head = head, .nhead = 1};

/* Two Gaussian blobs in 4-D, label = which blob. */
static void blobs(float *x, int32_t *y, int n, uint64_t seed)
{
	struct nk_rng r;
	rng_seed(&r, seed);
	for (int i = 0; i < n; i++) {
		y[i] = i % 2;
		for (int j = 0; j < 4; j++)
			x[i * 4 + j] = (y[i] ? 1.0f : -1.0f) * (j < 2 ? 1.0f : 0.0f) + 0.3f * (float)rng_normal(&r);
	}
}

Test(sgd, update_rule_momentum_and_decay)
{
	struct model *m, *ref;
	struct optim *o;
	char err[NK_ERR_LEN];
	struct chain_optim cfg = {.kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.5, .weight_decay = 0.01, .iters = 1};
	cr_assert_eq(model_new(&m, &stage, (struct layer_dims){4, 1, 1}, 2, 8, 9, err), 0, "%s", err);
	cr_assert_eq(model_new(&ref, &stage, (struct layer_dims){4, 1, 1}, 2, 8, 9, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o, m, &cfg, 1, err), 0, "%s", err);
	float x[32];
	int32_t y[8];
	blobs(x, y, 8, 3);
	size_t P = m->nparams;
	float *v = calloc(P, sizeof *v);
	for (int step = 0; step < 2; step++) {
		/* Reference: gradients of the same parameters, then v = mu v + g + wd w; w -= lr v. */
		model_forward(ref, x, 8);
		model_loss(ref, y, 8, NULL, 1);
		model_backward(ref, 8);
		for (size_t i = 0; i < P; i++) {
			v[i] = 0.5f * v[i] + ref->grads[i] + 0.01f * ref->params[i];
			ref->params[i] -= 0.1f * v[i];
		}
		struct optim_stats st;
		cr_assert_eq(optim_train(o, x, y, 8, NULL, &st), 0);
		cr_assert_eq(st.steps, 1);
		cr_assert_eq(st.n, 8);
		for (size_t i = 0; i < P; i++)
			cr_assert_float_eq(m->params[i], ref->params[i], 1e-6, "step %d param %zu", step, i);
	}
	free(v);
	optim_free(o);
	model_free(m);
	model_free(ref);
}

Test(sgd, separable_problem_loss_goes_down)
{
	struct model *m;
	struct optim *o;
	char err[NK_ERR_LEN];
	struct chain_optim cfg = {.kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .iters = 1};
	cr_assert_eq(model_new(&m, &stage, (struct layer_dims){4, 1, 1}, 2, 64, 2, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o, m, &cfg, 1, err), 0, "%s", err);
	float x[64 * 4];
	int32_t y[64];
	blobs(x, y, 64, 5);
	struct optim_stats first, st;
	cr_assert_eq(optim_train(o, x, y, 64, NULL, &first), 0);
	for (int i = 0; i < 100; i++)
		optim_train(o, x, y, 64, NULL, &st);
	cr_assert_lt(st.loss, first.loss / 4, "loss %g -> %g", first.loss, st.loss);
	cr_assert_eq(st.correct, 64, "separable blobs, %d/64 right", st.correct);
	optim_free(o);
	model_free(m);
}

Test(sgd, stops_early_when_a_newer_batch_waits)
{
	struct model *m;
	struct optim *o;
	char err[NK_ERR_LEN];
	struct chain_optim cfg = {.kind = OPTIM_SGD, .lr = 0.1, .iters = 50};
	cr_assert_eq(model_new(&m, &stage, (struct layer_dims){4, 1, 1}, 2, 8, 2, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o, m, &cfg, 1, err), 0, "%s", err);
	float x[32];
	int32_t y[8];
	blobs(x, y, 8, 5);
	struct optim_stats st;
	volatile int newer = 0;
	cr_assert_eq(optim_train(o, x, y, 8, &newer, &st), 0);
	cr_assert_eq(st.steps, 50);
	newer = 1;
	cr_assert_eq(optim_train(o, x, y, 8, &newer, &st), 0);
	cr_assert_eq(st.steps, 1);
	cr_assert_eq(optim_train(o, x, y, 9, NULL, &st), NK_EINVAL, "more samples than max_batch");
	optim_free(o);
	model_free(m);
}

Test(sgd, refuses_binary_layers)
{
	struct chain_layer bh[] = {{.kind = "linear", .units = 2, .binary = 1}};
	struct chain_stage bst = {.name = "b", .head = bh, .nhead = 1};
	struct model *m;
	struct optim *o;
	char err[NK_ERR_LEN];
	struct chain_optim cfg = {.kind = OPTIM_SGD, .lr = 0.1};
	cr_assert_eq(model_new(&m, &bst, (struct layer_dims){4, 1, 1}, 2, 8, 2, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o, m, &cfg, 1, err), NK_EUNSUP);
	cr_assert(strstr(err, "binary layer head"), "%s", err);
	model_free(m);
}

Test(sgd, learning_rate_schedules)
{
	struct chain_optim c = {.kind = OPTIM_SGD, .lr = 0.2, .gamma = 0.1, .every = 0.5};
	cr_assert_float_eq(sgd_lr(&c, 0.0), 0.2, 1e-12, "constant");
	cr_assert_float_eq(sgd_lr(&c, 0.7), 0.2, 1e-12, "constant");
	c.schedule = SCHED_COSINE;
	cr_assert_float_eq(sgd_lr(&c, 0.0), 0.2, 1e-12);
	cr_assert_float_eq(sgd_lr(&c, 0.5), 0.1, 1e-12, "half way: half the rate");
	cr_assert_float_eq(sgd_lr(&c, 0.25), 0.1 * (1 + cos(M_PI / 4)), 1e-12);
	cr_assert_float_eq(sgd_lr(&c, 1.0), 0.0, 1e-12);
	cr_assert_float_eq(sgd_lr(&c, 3.0), 0.0, 1e-12, "past the end: clamped");
	c.final = 0.05;
	cr_assert_float_eq(sgd_lr(&c, 1.0), 0.01, 1e-12, "final: a floor of final * lr");
	/* Warm-up: linear from lr / 1000 to lr, then cosine over the rest of the run. */
	c.final = 0;
	c.warmup = 0.1;
	cr_assert_float_eq(sgd_lr(&c, 0.0), 0.2 * 1e-3 / 0.101, 1e-12);
	cr_assert_float_eq(sgd_lr(&c, 0.05), 0.2 * 0.051 / 0.101, 1e-12);
	cr_assert_float_eq(sgd_lr(&c, 0.1), 0.2, 1e-12);
	cr_assert_float_eq(sgd_lr(&c, 0.55), 0.1, 1e-12, "the cosine's middle, after the warm-up");
	c.warmup = 0;
	c.schedule = SCHED_STEP;
	c.every = 0.3;
	cr_assert_float_eq(sgd_lr(&c, 0.29), 0.2, 1e-12);
	cr_assert_float_eq(sgd_lr(&c, 0.3), 0.02, 1e-12);
	cr_assert_float_eq(sgd_lr(&c, 0.61), 0.002, 1e-12);
}

/* The step uses the rate of the run's progress: at the end of a cosine run a step moves nothing. */
Test(sgd, step_follows_the_progress)
{
	struct model *m = NULL;
	struct optim *o = NULL;
	char err[NK_ERR_LEN] = "";
	struct chain_layer head[] = {{.kind = "linear", .units = 3}};
	struct chain_stage st = {.name = "s", .head = head, .nhead = 1,
				 .optim = {.kind = OPTIM_SGD, .lr = 0.5, .schedule = SCHED_COSINE}};
	cr_assert_eq(model_new(&m, &st, (struct layer_dims){4, 1, 1}, 3, 2, 1, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o, m, &st.optim, 2, err), 0, "%s", err);
	float x[8] = {1, 2, 3, 4, -1, 0.5f, 2, -3}, *keep = malloc(m->nparams * sizeof *keep);
	int32_t y[2] = {0, 2};
	struct optim_stats os;
	memcpy(keep, m->params, m->nparams * sizeof *keep);
	o->progress = 1.0;
	cr_assert_eq(optim_train(o, x, y, 2, NULL, &os), 0);
	cr_assert_arr_eq(m->params, keep, m->nparams * sizeof *keep, "lr 0 at the end of the run");
	o->progress = 0.5;
	cr_assert_eq(optim_train(o, x, y, 2, NULL, &os), 0);
	cr_assert(memcmp(m->params, keep, m->nparams * sizeof *keep) != 0, "half way the step moves");
	free(keep);
	optim_free(o);
	model_free(m);
}

/* Poison: batches of +Inf or NaN change neither the weights nor batch norm's running
 * statistics; one sample of absurd size leaves those statistics finite. */
Test(sgd, nonfinite_batches_change_nothing)
{
	static struct chain_layer body[] = {{.kind = "batchnorm"}};
	static struct chain_stage bn_stage = {.name = "t", .layers = body, .nlayers = 1, .head = head, .nhead = 1};
	struct model *m;
	struct optim *o;
	char err[NK_ERR_LEN];
	struct chain_optim cfg = {.kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .iters = 1};
	cr_assert_eq(model_new(&m, &bn_stage, (struct layer_dims){4, 1, 1}, 2, 8, 9, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o, m, &cfg, 1, err), 0, "%s", err);
	float x[32], bad[32];
	int32_t y[8];
	struct optim_stats st;
	for (int i = 0; i < 5; i++) {
		blobs(x, y, 8, 100 + (uint64_t)i);
		cr_assert_eq(optim_train(o, x, y, 8, NULL, &st), 0);
	}
	size_t P = m->nparams, B = m->nbufs;
	float *w0 = malloc(sizeof(float) * P), *b0 = malloc(sizeof(float) * B);
	memcpy(w0, m->params, sizeof(float) * P);
	memcpy(b0, m->bufs, sizeof(float) * B);
	const float poison[] = {INFINITY, -INFINITY, NAN};
	for (int k = 0; k < 3; k++) {
		memcpy(bad, x, sizeof bad);
		bad[5] = poison[k];
		cr_assert_eq(optim_train(o, bad, y, 8, NULL, &st), 0);
		cr_assert_eq(st.skipped, 1, "poison %d (loss %g) was trained on", k, st.loss);
		cr_assert_eq(memcmp(w0, m->params, sizeof(float) * P), 0, "poison %d moved the weights", k);
		cr_assert_eq(memcmp(b0, m->bufs, sizeof(float) * B), 0, "poison %d moved batch norm's statistics", k);
	}
	memcpy(bad, x, sizeof bad);
	for (int i = 0; i < 4; i++)
		bad[i] = 1e30f; /* its square overflows a float */
	cr_assert_eq(optim_train(o, bad, y, 8, NULL, &st), 0);
	for (size_t i = 0; i < B; i++)
		cr_assert(isfinite(m->bufs[i]), "running statistic %zu is %g", i, m->bufs[i]);
	free(w0);
	free(b0);
	optim_free(o);
	model_free(m);
}

/* A batch whose loss is absurdly above the losses so far does not move the weights; several in
 * a row are taken (the data changed for good). */
Test(sgd, outlying_batches_wait_for_a_second_opinion)
{
	struct model *m;
	struct optim *o;
	char err[NK_ERR_LEN];
	struct chain_optim cfg = {.kind = OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .iters = 1};
	cr_assert_eq(model_new(&m, &stage, (struct layer_dims){4, 1, 1}, 2, 8, 9, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o, m, &cfg, 1, err), 0, "%s", err);
	float x[32], bad[32];
	int32_t y[8];
	struct optim_stats st;
	/* the very first batch is judged too: against a uniform guess's loss */
	int32_t flipped[8];
	blobs(x, y, 8, 7);
	for (int i = 0; i < 32; i++)
		bad[i] = x[i] * 1e6f;
	model_forward(m, bad, 8);
	const float *lg = model_logits(m);
	for (int i = 0; i < 8; i++) /* the untrained model's guesses, made confident and wrong */
		flipped[i] = lg[i * 2 + 1] > lg[i * 2] ? 0 : 1;
	cr_assert_eq(optim_train(o, bad, flipped, 8, NULL, &st), 0);
	cr_assert_eq(st.skipped, 1, "a first batch with loss %g was trained on", st.loss);
	o->outliers = 0;
	for (int i = 0; i < 30; i++) {
		blobs(x, y, 8, 100 + (uint64_t)i);
		cr_assert_eq(optim_train(o, x, y, 8, NULL, &st), 0);
		cr_assert_eq(st.skipped, 0, "normal batch %d skipped (loss %g)", i, st.loss);
	}
	size_t P = m->nparams;
	float *w0 = malloc(sizeof(float) * P);
	memcpy(w0, m->params, sizeof(float) * P);
	for (int i = 0; i < 32; i++)
		bad[i] = -x[i] * 1e6f; /* confidently wrong */
	for (int k = 0; k < OPTIM_OUTLIERS; k++) {
		cr_assert_eq(optim_train(o, bad, y, 8, NULL, &st), 0);
		cr_assert_eq(st.skipped, 1, "outlier %d in a row (loss %g) was trained on", k, st.loss);
		cr_assert_eq(memcmp(w0, m->params, sizeof(float) * P), 0);
	}
	cr_assert_eq(optim_train(o, bad, y, 8, NULL, &st), 0);
	cr_assert_eq(st.skipped, 0, "the data changed for good, and the model would never learn it");
	cr_assert_neq(memcmp(w0, m->params, sizeof(float) * P), 0);
	free(w0);
	optim_free(o);
	model_free(m);
}
