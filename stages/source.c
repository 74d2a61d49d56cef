/* The source: the first stage reads the data set, trains and streams its batches down the chain,
 * with test passes along the way; in predict mode it streams the test set through the exits. */
#include "stages/stage_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/ds.h"

struct src {
	struct ds *train, *test;
	struct batcher_cfg tcfg;    /* training batches */
	struct batcher_cfg ecfg;    /* test batches: same normalisation, in order, not augmented */
	float *x;                   /* [batch][sample] */
	int32_t *y;                 /* [batch] */
};

/* Batches per second the source sends (0: as fast as they are taken). */
static double rate_of(const struct stage *s)
{
	return s->o->rate > 0 ? s->o->rate : s->c->data.rate;
}

/* Sleep until *due (bounded, waking for signals), then set the next due time. */
static void pace(struct stage *s, double *due)
{
	double rate = rate_of(s);
	while (!stage_stopped(s)) {
		double left = *due - nk_now();
		if (left <= 0)
			break;
		left = NK_MIN(left, 0.1);
		struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
		nanosleep(&ts, NULL);
	}
	*due = NK_MAX(*due + 1.0 / rate, nk_now() - 1.0 / rate);
}

/* One test pass over the first `limit` test samples (0: all), through this stage and down the
 * chain; every stage logs its phase=test line when the last batch reaches it. */
static int source_test(struct stage *s, struct src *d, int limit, char err[NK_ERR_LEN])
{
	struct ds view = *d->test;
	if (limit > 0 && limit < view.n)
		view.n = limit;
	struct batcher *b = batcher_new(&view, &d->ecfg);
	if (!b)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	int n, nb = batcher_batches(b), rc = 0;
	for (int k = 1; rc == 0 && !stage_stopped(s) && (n = batcher_next(b, d->x, d->y)) > 0; k++) {
		double t = nk_now();
		trainer_test_batch(s->t, d->x, d->y, n);
		struct wire_batch wb = {.id = (uint64_t)k, .phase = WIRE_TEST, .epoch = s->t->epoch,
					.last = k == nb, .n = n, .y = d->y};
		if (s->has_down && stage_down_ready(s, ORDERED_BACKLOG))
			rc = stage_forward(s, &wb, model_body_out(s->t->m), stage_logits(s), t, err);
		else if (s->has_down)
			s->unsent++;
	}
	batcher_free(b);
	if (rc == 0 && !stage_stopped(s))
		trainer_test_end(s->t);
	return rc;
}

/* A resumed source picks the data order up where its checkpoint left it: same seed, same
 * epochs drawn again, the batches of the current epoch skipped. */
static void fast_forward(struct stage *s, struct batcher *b, struct src *d)
{
	for (int e = 0; e < s->t->epoch && !stage_stopped(s); e++)
		while (batcher_next(b, d->x, d->y) > 0)
			;
	for (long i = 0; i < s->epoch_batch && batcher_next(b, d->x, d->y) > 0; i++)
		;
}

/* Whether a test pass is due after batch id (test_every), or at an epoch end (test_every 0). */
static int test_due(const struct stage *s, const struct src *d, long id, int epoch_end)
{
	int every = s->c->data.test_every;
	return d->test && (every > 0 ? !epoch_end && id % every == 0 : epoch_end);
}

static int source_train(struct stage *s, struct src *d, char err[NK_ERR_LEN])
{
	const struct chain_data *dc = &s->c->data;
	struct batcher *b = batcher_new(d->train, &d->tcfg);
	if (!b)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	fast_forward(s, b, d);
	int epochs = s->o->seconds > 0 ? 1 << 30 : dc->epochs, epoch = s->t->epoch, rc = 0, n;
	double due = nk_now();
	long id = s->t->batch;
	/* Train lines carry of= and eta_s=: the run's length in batches, or its end. */
	s->t->total = s->o->seconds > 0 ? 0 : (long)batcher_batches(b) * epochs;
	s->t->first = id;
	s->t->deadline = s->o->seconds > 0 ? s->t0 + s->o->seconds : 0;
	if (rate_of(s) > 0)
		net_ticker(s->net, 1.0 / rate_of(s), &s->tick);
	while (rc == 0 && !stage_stopped(s) && epoch < epochs &&
	       (s->o->seconds <= 0 || nk_now() - s->t0 < s->o->seconds)) {
		if ((n = batcher_next(b, d->x, d->y)) == 0) {
			s->t->epoch = ++epoch;
			s->epoch_batch = 0;
			if (epoch < epochs && test_due(s, d, id, 1))
				rc = source_test(s, d, s->c->test_limit, err);
			continue;
		}
		s->epoch_batch++;
		if (rate_of(s) > 0)
			pace(s, &due);
		double t = nk_now();
		s->tick = 0;
		s->t->epoch = epoch;
		stage_note_net(s);
		rc = trainer_train(s->t, d->x, d->y, n, ++id, rate_of(s) > 0 ? &s->tick : NULL, err);
		if (rc == 0) {
			s->taken++;
			stage_trained(s);
		}
		struct wire_batch wb = {.id = (uint64_t)id, .phase = WIRE_TRAIN, .epoch = epoch, .n = n, .y = d->y,
					.progress = trainer_progress(s->t)};
		if (rc == 0 && s->has_down) {
			const float *lg, *out = trainer_body(s->t, d->x, n, &lg);
			rc = stage_forward(s, &wb, out, lg, t, err);
		}
		if (rc == 0 && test_due(s, d, id, 0))
			rc = source_test(s, d, s->c->test_limit, err);
	}
	net_ticker(s->net, 0, NULL);
	batcher_free(b);
	trainer_flush(s->t);
	return rc;
}

/* Wait (bounded) for the chain to be there before the first query. */
static void wait_chain(struct stage *s, double limit_s)
{
	struct net_stats ns;
	double end = nk_now() + limit_s;
	while (s->has_down && !stage_stopped(s) && nk_now() < end) {
		net_get_stats(s->net, &ns);
		if (ns.down_open)
			return;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static int source_predict(struct stage *s, struct src *d, char err[NK_ERR_LEN])
{
	int rc = predict_new(&s->pr, s, err);
	struct batcher *b = rc ? NULL : batcher_new(d->test, &d->ecfg);
	if (rc == 0 && !b)
		rc = nk_errf(err, NK_ENOMEM, "out of memory");
	int n, nb = b ? batcher_batches(b) : 0;
	double due = nk_now();
	wait_chain(s, 10.0);
	for (int k = 1; rc == 0 && !stage_stopped(s) && (n = batcher_next(b, d->x, d->y)) > 0; k++) {
		if (rate_of(s) > 0)
			pace(s, &due);
		double t = nk_now();
		struct wire_batch wb = {.id = (uint64_t)k, .phase = WIRE_PREDICT, .last = k == nb, .n = n,
					.x = d->x, .y = d->y, .pass_n = d->test->n};
		rc = predict_batch(s, &wb, t, 0, err);
	}
	batcher_free(b);
	return rc;
}

static int source_setup(struct stage *s, struct src *d, char err[NK_ERR_LEN])
{
	const struct chain_data *dc = &s->c->data;
	int rc = ds_load_pair(&d->train, &d->test, dc, err);
	if (rc == 0)
		rc = ds_batcher_cfg(&d->tcfg, dc, d->train, s->c->seed, err);
	if (rc)
		return rc;
	d->ecfg = batcher_cfg_eval(&d->tcfg);
	struct layer_dims in = {d->train->c, d->train->h, d->train->w};
	if (!s->t && (rc = stage_build(s, in, err)))
		return rc;
	trainer_log_data(s->t, dc, d->train, d->test, &d->tcfg);
	const struct layer_dims *m = &s->t->m->in;
	if (m->c != in.c || m->h != in.h || m->w != in.w)
		return nk_errf(err, NK_ESHAPE, "stage %s: the checkpoint was made for %dx%dx%d samples, the "
			       "data set has %dx%dx%d", s->c->stages[s->index].name, m->c, m->h, m->w,
			       in.c, in.h, in.w);
	if (s->o->predict && !d->test)
		return nk_errf(err, NK_EINVAL, "%s: data.test: predict mode streams the test split, and "
			       "the chain has none", s->c->path);
	size_t sz = (size_t)dc->batch * dims_size(in);
	d->x = nk_floats(sz ? sz : 1);
	d->y = calloc((size_t)dc->batch, sizeof *d->y);
	if (!d->x || !d->y)
		return nk_errf(err, NK_ENOMEM, "out of memory for batches");
	return 0;
}

int source_run(struct stage *s, char err[NK_ERR_LEN])
{
	struct src d = {0};
	int rc = source_setup(s, &d, err);
	if (rc == 0 && s->o->predict) {
		rc = source_predict(s, &d, err);
	} else if (rc == 0) {
		rc = source_train(s, &d, err);
		if (rc == 0 && !stage_stopped(s) && d.test)
			rc = source_test(s, &d, 0, err); /* the final pass: the whole test set */
	}
	if (s->t)
		stage_checkpoint(s);
	predict_finish(s);
	if (rc == 0 && !stage_stopped(s)) {
		const char *why = s->o->predict ? "predict done" : "training done";
		stage_log(s, "stage", "stop", "reason", why);
		stage_send_stop(s, why);
	}
	free(d.x);
	free(d.y);
	ds_free(d.train);
	ds_free(d.test);
	return rc;
}
