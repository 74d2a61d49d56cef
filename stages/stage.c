/* Stage runtime: set-up, checkpoints, sending, and the loop of the stages after the first
 * (main thread) over the links (event thread). */
#include "stages/stage_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/ds.h"
#include "layers/gemm.h"
#include "src/logfmt.h"

void stage_log(struct stage *s, const char *phase, const char *event, const char *k, const char *v)
{
	struct logfmt l;
	lf_begin(&l);
	lf_num(&l, "t", nk_now() - s->t0, 3);
	lf_str(&l, "stage", s->c->stages[s->index].name);
	lf_str(&l, "phase", phase);
	lf_str(&l, "event", event);
	if (k)
		lf_str(&l, k, v);
	lf_write(&l, s->echo, s->log);
}

int stage_stopped(const struct stage *s)
{
	return s->o->stop && *s->o->stop;
}

int stage_err_is_config(int rc)
{
	return rc == NK_EINVAL || rc == NK_ENOENT || rc == NK_EFORMAT || rc == NK_ESHAPE || rc == NK_EUNSUP;
}

static void nap(double sec)
{
	struct timespec ts = {(time_t)sec, (long)((sec - (double)(time_t)sec) * 1e9)};
	nanosleep(&ts, NULL);
}

/* ---- checks before anything starts ---- */

int stage_data_dims(const struct chain *c, int *in_c, int *in_h, int *in_w, char err[NK_ERR_LEN])
{
	const int *sh = c->data.shape;
	struct ds *ds = NULL;
	char derr[NK_ERR_LEN];
	int rc = ds_load(&ds, &c->data, c->data.has_test, derr);
	if (rc && sh[0] > 0) { /* not readable here: the declared shape says it */
		*in_c = sh[0];
		*in_h = sh[1];
		*in_w = sh[2];
		return 0;
	}
	if (rc) {
		nk_errf(err, rc, "%s", derr);
		return rc;
	}
	*in_c = ds->c;
	*in_h = ds->h;
	*in_w = ds->w;
	ds_free(ds);
	if (sh[0] > 0 && (sh[0] != *in_c || sh[1] != *in_h || sh[2] != *in_w))
		return nk_errf(err, NK_ESHAPE, "%s: data.shape: [%d, %d, %d] declared, but the data set's "
			       "samples are %d x %d x %d", c->path, sh[0], sh[1], sh[2], *in_c, *in_h, *in_w);
	return 0;
}

int stage_input_dims(const struct chain *c, int upto, struct layer_dims in, struct layer_dims *out,
		      char err[NK_ERR_LEN])
{
	for (int i = 0; i < upto; i++) {
		struct trainer *t;
		int rc = trainer_new(&t, c, i, in, 1, NULL, err);
		if (rc)
			return rc;
		in = model_body_dims(t->m);
		trainer_free(t);
	}
	*out = in;
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
	struct layer_dims out;
	return in_c <= 0 ? 0 : stage_input_dims(c, c->nstages, (struct layer_dims){in_c, in_h, in_w}, &out, err);
}

int stage_read_ckpt(const struct chain *c, int index, const struct stage_opts *o, struct ckpt **out,
		    char err[NK_ERR_LEN])
{
	char path[CHAIN_PATH_LEN + 80];
	const char *dir = o->state_dir ? o->state_dir : c->state_dir;
	struct ckpt *k = NULL;
	if (out)
		*out = NULL;
	if (!o->predict && o->fresh)
		return NK_ENOENT;
	if (ckpt_path(path, sizeof path, dir, c->stages[index].name))
		return nk_errf(err, NK_EINVAL, "%s: state directory path too long", dir);
	int rc = ckpt_read(&k, path, c, index, err);
	if (rc == NK_ENOENT && o->predict)
		nk_errf(err, NK_ENOENT, "%s: no checkpoint of stage %s: predict mode needs a trained "
			"chain (train it first, with the same chain file and state directory)", path,
			c->stages[index].name);
	if (rc == 0 && out)
		*out = k;
	else
		ckpt_free(k);
	return rc;
}

/* ---- the trainer and its checkpoints ---- */

int stage_build(struct stage *s, struct layer_dims in, char err[NK_ERR_LEN])
{
	int rc = trainer_new(&s->t, s->c, s->index, in, !s->o->predict, NULL, err);
	if (rc)
		return rc;
	s->t->log = s->log;
	s->t->echo = s->echo;
	s->t->t0 = s->t->w_t0 = s->t0;
	if (!s->ck)
		return 0;
	struct ckpt *k = s->ck;
	if ((rc = ckpt_apply(k, s->t->m, s->t->o, err)))
		return rc;
	s->t->steps = k->step;
	s->t->batch = k->batch;
	s->t->epoch = k->epoch;
	s->epoch_batch = k->epoch_batch;
	char path[CHAIN_PATH_LEN + 80];
	struct logfmt l;
	ckpt_path(path, sizeof path, s->state_dir, k->stage);
	lf_begin(&l);
	lf_num(&l, "t", nk_now() - s->t0, 3);
	lf_str(&l, "stage", k->stage);
	lf_str(&l, "phase", "ckpt");
	lf_str(&l, "event", s->o->predict ? "loaded" : "resumed");
	lf_int(&l, "step", k->step);
	lf_int(&l, "batch", k->batch);
	lf_int(&l, "epoch", k->epoch);
	lf_str(&l, "file", path);
	lf_write(&l, s->echo, s->log);
	ckpt_free(k);
	s->ck = NULL;
	return 0;
}

void stage_checkpoint(struct stage *s)
{
	char err[NK_ERR_LEN], path[CHAIN_PATH_LEN + 80];
	if (s->o->predict || !s->t || !s->t->o || s->t->steps == 0)
		return;
	struct ckpt k;
	ckpt_of(&k, s->c, s->index, s->t->m, s->t->o);
	k.step = s->t->steps;
	k.batch = s->t->batch;
	k.epoch = s->t->epoch;
	k.epoch_batch = s->epoch_batch;
	s->ckpt_at = nk_now(); /* a failing disk is retried at the next interval, not every batch */
	if (ckpt_save(s->state_dir, &k, err)) {
		stage_log(s, "ckpt", "failed", "error", err);
		return;
	}
	struct logfmt l;
	ckpt_path(path, sizeof path, s->state_dir, k.stage);
	lf_begin(&l);
	lf_num(&l, "t", nk_now() - s->t0, 3);
	lf_str(&l, "stage", k.stage);
	lf_str(&l, "phase", "ckpt");
	lf_str(&l, "event", "saved");
	lf_int(&l, "step", k.step);
	lf_int(&l, "batch", k.batch);
	lf_str(&l, "file", path);
	lf_write(&l, s->echo, s->log);
}

void stage_trained(struct stage *s)
{
	int every = s->c->checkpoint_every;
	double secs = s->c->checkpoint_s;
	if ((every > 0 && s->t->steps % every == 0) || (secs > 0 && nk_now() - s->ckpt_at >= secs))
		stage_checkpoint(s);
}

/* ---- sending ---- */

void stage_note_net(struct stage *s)
{
	struct net_stats ns;
	net_get_stats(s->net, &ns);
	s->t->net.have = 1;
	s->t->net.inbox = s->in ? inbox_len(s->in) : 0;
	s->t->net.dropped = s->dropped + (s->in ? inbox_dropped(s->in) : 0);
	s->t->net.rtt_ms = s->has_down ? ns.down_rtt_ms : ns.up_rtt_ms;
	s->t->net.unsent = ns.unsent + s->unsent;
	s->t->net.refused = s->refused;
	s->t->net.sent = s->sent;
	s->t->net.taken = s->taken;
}

/* stage_down_ready; again: wait for a closed downstream even when it was found unreachable. */
static int down_wait(struct stage *s, int max, int again)
{
	double wait = s->o->wait_s > 0 ? s->o->wait_s : 3.0, closed_since = -1;
	struct net_stats ns;
	if (!s->has_down)
		return 0;
	for (;;) {
		net_get_stats(s->net, &ns);
		if (ns.down_open) {
			if (s->down_lost)
				stage_log(s, "stage", "downstream_back", NULL, NULL);
			s->down_lost = 0;
			closed_since = -1;
			if (ns.backlog < max)
				return 1;
			net_wait_backlog(s->net, max, 0.05);
		} else {
			double now = nk_now();
			if (closed_since < 0)
				closed_since = now;
			if ((s->down_lost && !again) || now - closed_since >= wait)
				break;
			nap(0.01);
		}
		if (stage_stopped(s))
			return 0;
	}
	if (!s->down_lost)
		stage_log(s, "stage", "downstream_unreachable", "detail", s->o->predict ?
			  "answering here (degraded) until it is back" : "test batches are not sent until it is back");
	s->down_lost = 1;
	return 0;
}

int stage_down_ready(struct stage *s, int max)
{
	return down_wait(s, max, 0);
}

int stage_forward(struct stage *s, const struct wire_batch *b, const float *x, const float *logits, double arrived,
		  char err[NK_ERR_LEN])
{
	struct wire_msg m = {.kind = WIRE_BATCH, .batch = *b};
	m.batch.logits = logits;
	m.batch.nlogits = logits ? s->t->m->classes : 0;
	struct layer_dims d = model_body_dims(s->t->m);
	m.batch.c = d.c;
	m.batch.h = d.h;
	m.batch.w = d.w;
	m.batch.x = x;
	m.batch.sent = nk_now();
	m.batch.chain_ms = b->chain_ms + (m.batch.sent - arrived) * 1e3;
	s->t->net.chain_ms = m.batch.chain_ms;
	int rc = net_send(s->net, &m, err);
	s->sent += rc == 0 && b->phase == WIRE_TRAIN;
	return rc;
}

const float *stage_logits(const struct stage *s)
{
	return trainer_sends_logits(s->t) ? model_logits(s->t->m) : NULL;
}

void stage_send_stop(struct stage *s, const char *reason)
{
	char err[NK_ERR_LEN];
	if (!s->has_down)
		return;
	struct wire_msg m = {.kind = WIRE_STOP};
	snprintf(m.reason, sizeof m.reason, "%s", reason);
	/* the Stop is worth a full wait, even for a downstream found unreachable before */
	if (down_wait(s, 1 << 30, 1) && net_send(s->net, &m, err) == 0 &&
	    net_flush(s->net, s->o->flush_s > 0 ? s->o->flush_s : 60.0) == 0)
		return;
	stage_log(s, "stage", "stop_undelivered", "reason", "the downstream did not take the last frames in time");
}

/* ---- the other stages ---- */

/* Whether all of x[0..n) is finite: one pass, vectorised (x * 0 is 0 only for finite x). */
static int all_finite(const float *x, size_t n)
{
	float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
	for (size_t i = 0; i < n; i++)
		sum += x[i] * 0.0f;
	return sum == 0.0f;
}

/* Whether batch b fits this stage's model; logs it when not. */
static int batch_fits(struct stage *s, const struct wire_batch *b)
{
	const struct model *md = s->t->m;
	int empty_ok = b->phase == WIRE_PREDICT && b->n == 0; /* answers only */
	int labels_ok = b->y != NULL;
	for (int i = 0; labels_ok && i < b->n; i++)
		labels_ok = b->y[i] >= 0 && b->y[i] < md->classes; /* a label indexes the logits */
	int logits_ok = !b->logits || (b->nlogits == md->classes &&
					all_finite(b->logits, (size_t)b->n * b->nlogits));
	int shape_ok = b->c == md->in.c && b->h == md->in.h && b->w == md->in.w && b->n > 0 &&
		       b->n <= md->max_batch;
	int finite = shape_ok && all_finite(b->x, (size_t)b->n * dims_size(md->in));
	if (empty_ok || (shape_ok && labels_ok && logits_ok && finite))
		return 1;
	char what[240];
	snprintf(what, sizeof what, "batch %llu: %dx%dx%dx%d%s%s%s, want Nx%dx%dx%d with N <= %d and "
		 "finite values", (unsigned long long)b->id, b->n, b->c, b->h, b->w,
		 labels_ok ? "" : " without valid labels",
		 logits_ok ? "" : " with logits that are not finite or not one per class",
		 !shape_ok || finite ? "" : " with values that are not finite",
		 md->in.c, md->in.h, md->in.w, md->max_batch);
	stage_log(s, "stage", "bad_batch", "detail", what);
	return 0;
}

/* One test batch: evaluate the head, pass the body output on; the pass's line at its end. */
static int on_test(struct stage *s, const struct wire_batch *b, double arrived, char err[NK_ERR_LEN])
{
	int rc = 0;
	if (b->id == 1 && s->t->t_n > 0)
		trainer_test_end(s->t); /* the previous pass lost its end: log what it had */
	trainer_upstream(s->t, b->logits);
	trainer_test_batch(s->t, b->x, b->y, b->n);
	if (s->has_down && stage_down_ready(s, ORDERED_BACKLOG))
		rc = stage_forward(s, b, model_body_out(s->t->m), stage_logits(s), arrived, err);
	else if (s->has_down)
		s->unsent++;
	if (b->last)
		trainer_test_end(s->t);
	return rc;
}

/* One batch from upstream: train (anytime), test or predict on it, pass the result on. */
static int on_batch(struct stage *s, struct wire_msg *m, char err[NK_ERR_LEN])
{
	const struct wire_batch *b = &m->batch;
	int rc;
	if (!batch_fits(s, b)) {
		s->refused++;
		s->refused_train += b->phase == WIRE_TRAIN;
		return 0;
	}
	if (b->phase != WIRE_PREDICT)
		s->t->epoch = b->epoch;
	switch (b->phase) {
	case WIRE_TRAIN:
		if (s->o->predict)
			return 0;
		stage_note_net(s);
		s->t->progress = b->progress;
		trainer_upstream(s->t, b->logits);
		if ((rc = trainer_train(s->t, b->x, b->y, b->n, (long)b->id, &s->in->newer, err)))
			return rc;
		s->taken++;
		stage_trained(s);
		if (!s->has_down)
			return 0;
		const float *lg, *out = trainer_body(s->t, b->x, b->n, &lg);
		return stage_forward(s, b, out, lg, m->arrived, err);
	case WIRE_TEST:
		return on_test(s, b, m->arrived, err);
	default: {
		struct net_stats ns;
		net_get_stats(s->net, &ns);
		/* the link's one-way time: our arrival minus its sending, in our clock */
		double transit = ns.up_offset_ok ? (m->arrived - (b->sent - ns.up_offset_s)) * 1e3
						 : ns.up_rtt_ms / 2;
		if (!s->pr && (rc = predict_new(&s->pr, s, err)))
			return rc;
		return predict_batch(s, b, m->arrived, b->link_ms + NK_MAX(transit, 0.0), err);
	}
	}
}

/* The end: a pass cut short is logged, the state saved, the Stop passed on. */
static void relay_end(struct stage *s, const char *reason)
{
	if (s->t && s->t->t_n > 0)
		trainer_test_end(s->t);
	if (s->t)
		trainer_flush(s->t);
	predict_finish(s);
	stage_checkpoint(s);
	stage_log(s, "stage", "stop", "reason", reason);
}

static int relay_run(struct stage *s, char err[NK_ERR_LEN])
{
	int rc = 0;
	while (rc == 0 && !stage_stopped(s)) {
		if (s->o->seconds > 0 && nk_now() - s->t0 >= s->o->seconds) {
			relay_end(s, "time limit");
			return 0;
		}
		struct wire_msg *m = inbox_take(s->in, 0.25, &s->dropped);
		if (!m)
			continue;
		if (m->kind == WIRE_STOP) {
			relay_end(s, m->reason[0] ? m->reason : "stop");
			stage_send_stop(s, m->reason);
			wire_msg_free(m);
			return 0;
		}
		rc = on_batch(s, m, err);
		wire_msg_free(m);
	}
	if (s->t)
		trainer_flush(s->t);
	predict_finish(s);
	stage_checkpoint(s);
	return rc;
}

/* What became of the train batches, for accounting per link: the upstream's sent - unsent
 * equals the downstream's trained + skipped + dropped + refused (t= and stage= as usual). */
static void log_counts(struct stage *s)
{
	struct net_stats ns = {0};
	if (s->net)
		net_get_stats(s->net, &ns);
	long skipped = s->t ? s->t->skipped : 0;
	long dropped = s->dropped + (s->in ? inbox_dropped(s->in) + inbox_train_len(s->in) : 0);
	struct logfmt l;
	lf_begin(&l);
	lf_num(&l, "t", nk_now() - s->t0, 3);
	lf_str(&l, "stage", s->c->stages[s->index].name);
	lf_str(&l, "phase", "stage");
	lf_str(&l, "event", "counts");
	lf_int(&l, "sent", s->sent);
	lf_int(&l, "unsent", ns.unsent + ns.backlog_train);
	lf_int(&l, "trained", s->taken - skipped);
	lf_int(&l, "skipped", skipped);
	lf_int(&l, "dropped", dropped);
	lf_int(&l, "refused", s->refused_train);
	lf_write(&l, s->echo, s->log);
}

/* ---- setup ---- */

static void log_failure(struct stage *s, const char *err)
{
	struct logfmt l;
	lf_begin(&l);
	lf_num(&l, "t", nk_now() - s->t0, 3);
	lf_str(&l, "stage", s->c->stages[s->index].name);
	lf_str(&l, "phase", "stage");
	lf_str(&l, "event", "failed");
	lf_str(&l, "error", err);
	lf_write(&l, NULL, s->log);
}

/* The input shape is fixed before any batch comes, never taken from one: from the data set's
 * sample shape (or data.shape) through the chain, else from the checkpoint; both must agree. */
static int stage_fix_input(struct stage *s, char err[NK_ERR_LEN])
{
	const struct stage_opts *o = s->o;
	const char *name = s->c->stages[s->index].name;
	struct layer_dims in = {0, 0, 0};
	int dc = o->data_c, dh = o->data_h, dw = o->data_w, rc = 0;
	char derr[NK_ERR_LEN] = "";
	if (dc <= 0 && (rc = stage_data_dims(s->c, &dc, &dh, &dw, derr)) == NK_ESHAPE)
		return nk_errf(err, rc, "%s", derr);
	if (dc > 0 && (rc = stage_input_dims(s->c, s->index, (struct layer_dims){dc, dh, dw}, &in, err)))
		return rc;
	if (s->ck) {
		const struct layer_dims *k = &s->ck->in;
		if (in.c > 0 && (k->c != in.c || k->h != in.h || k->w != in.w))
			return nk_errf(err, NK_ESHAPE, "stage %s: the checkpoint was made for %dx%dx%d "
				       "inputs, the chain gives it %dx%dx%d (start it with --fresh to "
				       "train anew)", name, k->c, k->h, k->w, in.c, in.h, in.w);
		in = *k;
	}
	if (in.c <= 0)
		return nk_errf(err, NK_EINVAL, "stage %s cannot know its input shape: the data set is "
			       "not readable here (%s) and the chain file gives no data.shape", name, derr);
	return stage_build(s, in, err);
}

static int stage_start(struct stage *s, char err[NK_ERR_LEN])
{
	const struct stage_opts *o = s->o;
	int rc = stage_read_ckpt(s->c, s->index, o, &s->ck, err);
	s->ckpt_at = nk_now();
	if (rc == NK_ENOENT && !o->predict) { /* nothing to resume from: say so, and why */
		char path[CHAIN_PATH_LEN + 80], why[CHAIN_PATH_LEN + 160];
		ckpt_path(path, sizeof path, s->state_dir, s->c->stages[s->index].name);
		if (o->fresh)
			snprintf(why, sizeof why, "--fresh: %s is not read and will be overwritten", path);
		else
			snprintf(why, sizeof why, "no checkpoint at %s", path);
		stage_log(s, "ckpt", "fresh", "reason", why);
		rc = 0;
	}
	if (rc == 0)
		rc = stage_fix_input(s, err);
	if (rc)
		return rc;
	if (rc == 0 && s->index > 0 && (rc = inbox_new(&s->in, o->inbox)))
		nk_errf(err, rc, "out of memory");
	struct net_cfg nc = {.chain = s->c, .index = s->index, .inbox = s->in, .log = s->log,
			     .echo = s->echo, .t0 = s->t0, .max_frame = o->max_frame};
	if (rc == 0)
		rc = net_new(&s->net, &nc, err);
	if (rc == 0) {
		struct logfmt l;
		const char *wp = getenv("OMP_WAIT_POLICY");
		lf_begin(&l);
		lf_num(&l, "t", nk_now() - s->t0, 3);
		lf_str(&l, "stage", s->c->stages[s->index].name);
		lf_str(&l, "phase", "stage");
		lf_str(&l, "event", "start");
		lf_str(&l, "role", s->index == 0 ? "source" : s->has_down ? "relay" : "sink");
		lf_int(&l, "threads", nk_threads());
		lf_str(&l, "wait_policy", wp && wp[0] ? wp : "default");
		lf_write(&l, s->echo, s->log);
		rc = net_start(s->net, err);
	}
	return rc;
}

int stage_run(const struct chain *c, int index, const struct stage_opts *o, char err[NK_ERR_LEN])
{
	struct stage s = {.c = c, .index = index, .o = o, .t0 = nk_now()};
	const char *name = c->stages[index].name;
	s.state_dir = o->state_dir ? o->state_dir : c->state_dir;
	s.has_down = index + 1 < c->nstages;
	s.echo = o->echo ? stdout : NULL;
	if (o->logdir && !(s.log = trainer_open_log(o->logdir, name, err)))
		return NK_EIO;
	int rc = stage_start(&s, err);
	if (rc == 0)
		rc = index == 0 ? source_run(&s, err) : relay_run(&s, err);
	if (stage_stopped(&s))
		stage_log(&s, "stage", "stop", "reason", "signal");
	if (rc && s.log)
		log_failure(&s, err);
	if (!o->predict && s.t)
		log_counts(&s);
	net_free(s.net);
	if (s.t)
		s.t->log = NULL; /* ours */
	predict_free(s.pr);
	trainer_free(s.t);
	ckpt_free(s.ck);
	inbox_free(s.in);
	if (s.log)
		fclose(s.log);
	return rc;
}
