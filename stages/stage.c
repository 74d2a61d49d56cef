/* Stage runtime: the compute loop of one stage (main thread) over its links (event thread). */
#include "stages/stage.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/ds.h"
#include "src/logfmt.h"
#include "stages/inbox.h"
#include "stages/link.h"
#include "stages/trainer.h"

struct stage {
	const struct chain *c;
	int index;
	const struct stage_opts *o;
	struct trainer *t;          /* built once the input shape is known */
	struct inbox *in;           /* NULL at the source */
	struct net *net;
	int has_down;
	FILE *log, *echo;
	double t0;
	long dropped;               /* train batches taken stale from the inbox */
	volatile int tick;          /* the source's pace (set by the event thread) */
};

static void stage_log(struct stage *s, const char *event, const char *k, const char *v)
{
	struct logfmt l;
	lf_begin(&l);
	lf_num(&l, "t", nk_now() - s->t0, 3);
	lf_str(&l, "stage", s->c->stages[s->index].name);
	lf_str(&l, "phase", "stage");
	lf_str(&l, "event", event);
	if (k)
		lf_str(&l, k, v);
	lf_write(&l, s->echo, s->log);
}

static int stopped(const struct stage *s)
{
	return s->o->stop && *s->o->stop;
}

int stage_err_is_config(int rc)
{
	return rc == NK_EINVAL || rc == NK_ENOENT || rc == NK_EFORMAT || rc == NK_ESHAPE || rc == NK_EUNSUP;
}

/* ---- checks before anything starts ---- */

int stage_data_dims(const struct chain *c, int *in_c, int *in_h, int *in_w, char err[NK_ERR_LEN])
{
	const struct chain_data *d = &c->data;
	struct ds *ds = NULL;
	int rc = d->has_test ? ds_idx_load(&ds, d->test[0], d->test[1], d->classes, err)
			     : ds_idx_load(&ds, d->train[0], d->train[1], d->classes, err);
	if (rc)
		return rc;
	*in_c = ds->c;
	*in_h = ds->h;
	*in_w = ds->w;
	ds_free(ds);
	return 0;
}

int stage_check_chain(const struct chain *c, int in_c, int in_h, int in_w, char err[NK_ERR_LEN])
{
	for (int i = 1; i < c->nstages; i++) {
		const char *a = c->stages[i].listen;
		char host[128], port[16];
		if (!a[0])
			return nk_errf(err, NK_EINVAL, "%s: stages[%d].listen: missing: every stage after "
				       "the first needs one (its upstream connects there)", c->path, i);
		if (net_split_addr(a, host, sizeof host, port, sizeof port))
			return nk_errf(err, NK_EINVAL, "%s: stages[%d].listen: expected host:port, got '%s'",
				       c->path, i, a);
		for (int j = 1; j < i; j++)
			if (strcmp(c->stages[j].listen, a) == 0)
				return nk_errf(err, NK_EINVAL, "%s: stages[%d].listen: '%s' is also "
					       "stages[%d].listen", c->path, i, a, j);
	}
	if (in_c <= 0)
		return 0;
	struct layer_dims in = {in_c, in_h, in_w};
	for (int i = 0; i < c->nstages; i++) {
		struct trainer *t;
		int rc = trainer_new(&t, c, i, in, 1, NULL, err);
		if (rc)
			return rc;
		in = model_body_dims(t->m);
		trainer_free(t);
	}
	return 0;
}

/* ---- sending ---- */

static void note_net(struct stage *s)
{
	struct net_stats ns;
	net_get_stats(s->net, &ns);
	s->t->net.have = 1;
	s->t->net.inbox = s->in ? inbox_len(s->in) : 0;
	s->t->net.dropped = s->dropped + (s->in ? inbox_dropped(s->in) : 0);
	s->t->net.rtt_ms = s->has_down ? ns.down_rtt_ms : ns.up_rtt_ms;
	s->t->net.unsent = ns.unsent;
}

/* Send this stage's body output x for the batch described by b (shape from the model). */
static int forward(struct stage *s, const struct wire_batch *b, const float *x, double arrived,
		   char err[NK_ERR_LEN])
{
	struct wire_msg m = {.kind = WIRE_BATCH, .batch = *b};
	struct layer_dims d = model_body_dims(s->t->m);
	m.batch.c = d.c;
	m.batch.h = d.h;
	m.batch.w = d.w;
	m.batch.x = x;
	m.batch.chain_ms = b->chain_ms + (nk_now() - arrived) * 1e3;
	s->t->net.chain_ms = m.batch.chain_ms;
	return net_send(s->net, &m, err);
}

/* Pass the Stop on and wait (bounded) until the downstream holds it. */
static void send_stop(struct stage *s, const char *reason)
{
	char err[NK_ERR_LEN];
	if (!s->has_down)
		return;
	struct wire_msg m = {.kind = WIRE_STOP};
	snprintf(m.reason, sizeof m.reason, "%s", reason);
	if (net_send(s->net, &m, err) == 0 &&
	    net_flush(s->net, s->o->flush_s > 0 ? s->o->flush_s : 60.0) == 0)
		return;
	stage_log(s, "stop_undelivered", "reason", "the downstream did not take the last frames in time");
}

/* ---- the source ---- */

static int load_data(const struct chain *c, struct ds **train, struct ds **test, char err[NK_ERR_LEN])
{
	const struct chain_data *d = &c->data;
	int rc = ds_idx_load(train, d->train[0], d->train[1], d->classes, err);
	if (rc == 0 && d->has_test)
		rc = ds_idx_load(test, d->test[0], d->test[1], d->classes, err);
	if (rc == 0 && d->limit > 0 && d->limit < (*train)->n)
		(*train)->n = d->limit;
	return rc;
}

/* Sleep until *due (bounded, waking for signals), then set the next due time. */
static void pace(struct stage *s, double *due)
{
	double rate = s->c->data.rate;
	while (!stopped(s)) {
		double left = *due - nk_now();
		if (left <= 0)
			break;
		left = NK_MIN(left, 0.1);
		struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
		nanosleep(&ts, NULL);
	}
	*due = NK_MAX(*due + 1.0 / rate, nk_now() - 1.0 / rate);
}

/* The final test pass: the whole test set through this stage and down the chain. */
static int source_test(struct stage *s, struct ds *test, float *x, int32_t *y, char err[NK_ERR_LEN])
{
	const struct chain_data *d = &s->c->data;
	struct batcher_cfg bc = {.batch = d->batch, .mean = (float)d->mean, .std = (float)d->std};
	struct batcher *b = batcher_new(test, &bc);
	if (!b)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	int n, nb = batcher_batches(b), rc = 0;
	for (int k = 1; rc == 0 && !stopped(s) && (n = batcher_next(b, x, y)) > 0; k++) {
		double t = nk_now();
		trainer_test_batch(s->t, x, y, n);
		struct wire_batch wb = {.id = (uint64_t)k, .phase = WIRE_TEST, .epoch = s->t->epoch,
					.last = k == nb, .n = n, .y = y};
		if (s->has_down)
			rc = forward(s, &wb, model_body_out(s->t->m), t, err);
	}
	batcher_free(b);
	if (rc == 0 && !stopped(s))
		trainer_test_end(s->t);
	return rc;
}

static int source_train(struct stage *s, struct ds *train, float *x, int32_t *y, char err[NK_ERR_LEN])
{
	const struct chain_data *d = &s->c->data;
	struct batcher_cfg bc = {.batch = d->batch, .shuffle = d->shuffle, .seed = s->c->seed,
				 .mean = (float)d->mean, .std = (float)d->std};
	struct batcher *b = batcher_new(train, &bc);
	if (!b)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	int epochs = s->o->seconds > 0 ? 1 << 30 : d->epochs, epoch = 0, rc = 0, n;
	double due = nk_now();
	long id = 0;
	if (d->rate > 0)
		net_ticker(s->net, 1.0 / d->rate, &s->tick);
	while (rc == 0 && !stopped(s) && epoch < epochs &&
	       (s->o->seconds <= 0 || nk_now() - s->t0 < s->o->seconds)) {
		if ((n = batcher_next(b, x, y)) == 0) {
			epoch++;
			continue;
		}
		if (d->rate > 0)
			pace(s, &due);
		double t = nk_now();
		s->tick = 0;
		s->t->epoch = epoch;
		note_net(s);
		rc = trainer_train(s->t, x, y, n, ++id, d->rate > 0 ? &s->tick : NULL, err);
		struct wire_batch wb = {.id = (uint64_t)id, .phase = WIRE_TRAIN, .epoch = epoch, .n = n, .y = y};
		if (rc == 0 && s->has_down)
			rc = forward(s, &wb, trainer_body(s->t, x, n), t, err);
	}
	net_ticker(s->net, 0, NULL);
	batcher_free(b);
	trainer_flush(s->t);
	return rc;
}

static int source_run(struct stage *s, char err[NK_ERR_LEN])
{
	struct ds *train = NULL, *test = NULL;
	int rc = load_data(s->c, &train, &test, err);
	struct layer_dims in = {0, 0, 0};
	if (rc == 0) {
		in = (struct layer_dims){train->c, train->h, train->w};
		rc = trainer_new(&s->t, s->c, s->index, in, 1, NULL, err);
	}
	size_t sz = (size_t)s->c->data.batch * dims_size(in);
	float *x = rc ? NULL : nk_floats(sz ? sz : 1);
	int32_t *y = rc ? NULL : calloc((size_t)s->c->data.batch, sizeof *y);
	if (rc == 0 && (!x || !y))
		rc = nk_errf(err, NK_ENOMEM, "out of memory for batches");
	if (rc == 0) {
		s->t->log = s->log;
		s->t->echo = s->echo;
		s->t->t0 = s->t->w_t0 = s->t0;
		rc = source_train(s, train, x, y, err);
	}
	if (rc == 0 && !stopped(s)) {
		if (test)
			rc = source_test(s, test, x, y, err);
		if (rc == 0 && !stopped(s)) {
			stage_log(s, "stop", "reason", "training done");
			send_stop(s, "training done");
		}
	}
	free(x);
	free(y);
	ds_free(train);
	ds_free(test);
	return rc;
}

/* ---- the other stages ---- */

/* One batch from upstream: train (anytime) or test on it, forward the body output. */
static int on_batch(struct stage *s, struct wire_msg *m, char err[NK_ERR_LEN])
{
	const struct wire_batch *b = &m->batch;
	struct layer_dims in = {b->c, b->h, b->w};
	int rc;
	if (!s->t) { /* the first batch tells the input shape */
		if ((rc = trainer_new(&s->t, s->c, s->index, in, 1, NULL, err)))
			return rc;
		s->t->log = s->log;
		s->t->echo = s->echo;
		s->t->t0 = s->t->w_t0 = s->t0;
	}
	const struct model *md = s->t->m;
	if (in.c != md->in.c || in.h != md->in.h || in.w != md->in.w || b->n <= 0 ||
	    b->n > md->max_batch || !b->y) {
		char what[128];
		snprintf(what, sizeof what, "batch %llu: %dx%dx%dx%d%s, want Nx%dx%dx%d with N <= %d",
			 (unsigned long long)b->id, b->n, b->c, b->h, b->w, b->y ? "" : " without labels",
			 md->in.c, md->in.h, md->in.w, md->max_batch);
		stage_log(s, "bad_batch", "detail", what);
		return 0;
	}
	s->t->epoch = b->epoch;
	switch (b->phase) {
	case WIRE_TRAIN:
		note_net(s);
		if ((rc = trainer_train(s->t, b->x, b->y, b->n, (long)b->id, &s->in->newer, err)))
			return rc;
		return s->has_down ? forward(s, b, trainer_body(s->t, b->x, b->n), m->arrived, err) : 0;
	case WIRE_TEST:
		trainer_test_batch(s->t, b->x, b->y, b->n);
		rc = s->has_down ? forward(s, b, model_body_out(s->t->m), m->arrived, err) : 0;
		if (b->last)
			trainer_test_end(s->t);
		return rc;
	default: /* predict mode comes with early exits: pass it on */
		return s->has_down ? forward(s, b, trainer_body(s->t, b->x, b->n), m->arrived, err) : 0;
	}
}

static int relay_run(struct stage *s, char err[NK_ERR_LEN])
{
	int rc = 0;
	while (rc == 0 && !stopped(s)) {
		if (s->o->seconds > 0 && nk_now() - s->t0 >= s->o->seconds) {
			stage_log(s, "stop", "reason", "time limit");
			break;
		}
		struct wire_msg *m = inbox_take(s->in, 0.25, &s->dropped);
		if (!m)
			continue;
		if (m->kind == WIRE_STOP) {
			if (s->t && s->t->t_n > 0)
				trainer_test_end(s->t); /* the pass was cut short */
			if (s->t)
				trainer_flush(s->t);
			stage_log(s, "stop", "reason", m->reason[0] ? m->reason : "stop");
			send_stop(s, m->reason);
			wire_msg_free(m);
			return 0;
		}
		rc = on_batch(s, m, err);
		wire_msg_free(m);
	}
	if (s->t)
		trainer_flush(s->t);
	return rc;
}

/* ---- setup ---- */

int stage_run(const struct chain *c, int index, const struct stage_opts *o, char err[NK_ERR_LEN])
{
	struct stage s = {.c = c, .index = index, .o = o, .t0 = nk_now()};
	const char *name = c->stages[index].name;
	int rc = 0;
	s.has_down = index + 1 < c->nstages;
	s.echo = o->echo ? stdout : NULL;
	if (o->logdir && !(s.log = trainer_open_log(o->logdir, name, err)))
		return NK_EIO;
	if (index > 0 && (rc = inbox_new(&s.in, o->inbox)))
		nk_errf(err, rc, "out of memory");
	struct net_cfg nc = {.chain = c, .index = index, .inbox = s.in, .log = s.log, .echo = s.echo,
			     .t0 = s.t0, .max_frame = o->max_frame};
	if (rc == 0)
		rc = net_new(&s.net, &nc, err);
	if (rc == 0) {
		stage_log(&s, "start", "role", index == 0 ? "source" : s.has_down ? "relay" : "sink");
		rc = net_start(s.net, err);
	}
	if (rc == 0)
		rc = index == 0 ? source_run(&s, err) : relay_run(&s, err);
	if (stopped(&s))
		stage_log(&s, "stop", "reason", "signal");
	if (rc && s.log) {
		struct logfmt l;
		lf_begin(&l);
		lf_num(&l, "t", nk_now() - s.t0, 3);
		lf_str(&l, "stage", name);
		lf_str(&l, "phase", "stage");
		lf_str(&l, "event", "failed");
		lf_str(&l, "error", err);
		lf_write(&l, NULL, s.log);
	}
	net_free(s.net);
	if (s.t)
		s.t->log = NULL; /* ours */
	trainer_free(s.t);
	inbox_free(s.in);
	if (s.log)
		fclose(s.log);
	return rc;
}
