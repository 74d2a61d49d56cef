/* Trainer: model + optimizer + log windows for one stage. */
#include "stages/trainer.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "src/logfmt.h"

uint64_t trainer_seed(uint64_t chain_seed, int idx)
{
	return chain_seed * 0x9e3779b97f4a7c15ULL + (uint64_t)idx + 1;
}

FILE *trainer_open_log(const char *dir, const char *name, char err[NK_ERR_LEN])
{
	char path[CHAIN_PATH_LEN + CHAIN_NAME_LEN + 8];
	if (nk_mkdirs(dir) != 0) {
		nk_errf(err, NK_EIO, "%s: cannot create log directory: %s", dir, strerror(errno));
		return NULL;
	}
	snprintf(path, sizeof path, "%s/%s.log", dir, name);
	FILE *f = fopen(path, "a");
	if (!f)
		nk_errf(err, NK_EIO, "%s: cannot open log: %s", path, strerror(errno));
	return f;
}

int trainer_new(struct trainer **out, const struct chain *c, int index, struct layer_dims in,
		int with_optim, const char *logdir, char err[NK_ERR_LEN])
{
	*out = NULL;
	struct trainer *t = calloc(1, sizeof *t);
	if (!t)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	t->chain = c;
	t->index = index;
	t->cs = &c->stages[index];
	t->t0 = t->w_t0 = nk_now();
	t->progress = -1;
	char why[NK_ERR_LEN];
	uint64_t seed = trainer_seed(c->seed, index);
	int rc = model_new(&t->m, t->cs, in, c->data.classes, c->data.batch, seed, why);
	if (rc == 0 && with_optim)
		rc = optim_new(&t->o, t->m, &t->cs->optim, seed ^ 0x5eedULL, why);
	if (rc)
		nk_errf(err, rc, "%s: stage %s: %s", c->path, t->cs->name, why);
	else if (logdir && !(t->log = trainer_open_log(logdir, t->cs->name, err)))
		rc = NK_EIO;
	if (rc) {
		trainer_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void trainer_free(struct trainer *t)
{
	if (!t)
		return;
	optim_free(t->o);
	model_free(t->m);
	if (t->log)
		fclose(t->log);
	free(t);
}

static void line_begin(struct trainer *t, struct logfmt *l, const char *phase)
{
	lf_begin(l);
	lf_num(l, "t", nk_now() - t->t0, 3);
	lf_str(l, "stage", t->cs->name);
	lf_str(l, "phase", phase);
	lf_int(l, "epoch", t->epoch);
	lf_int(l, "batch", t->batch);
}

/* of= and eta_s= on train lines, when the driver told how long the run is. */
static void progress(const struct trainer *t, struct logfmt *l)
{
	double now = nk_now(), eta = -1;
	if (t->total > 0 && t->batch > t->first) {
		lf_int(l, "of", t->total);
		eta = (now - t->t0) / (t->batch - t->first) * (t->total - t->batch);
	}
	if (t->deadline > 0 && (eta < 0 || t->deadline - now < eta))
		eta = t->deadline - now;
	if (eta >= 0)
		lf_num(l, "eta_s", eta > 0 ? eta : 0, 0);
}

/* What the data turned out to be: one line for the set, one per class name, per skipped file
 * and for the normalisation in use. */
void trainer_log_data(struct trainer *tr, const struct chain_data *dc, const struct ds *train,
		      const struct ds *test, const struct batcher_cfg *bc)
{
	const struct ds *t = train;
	struct logfmt l;
	lf_begin(&l);
	lf_str(&l, "data", dc->format);
	lf_int(&l, "n", t->n);
	lf_int(&l, "test_n", test ? test->n : 0);
	lf_int(&l, "skipped", t->skipped + (test ? test->skipped : 0));
	lf_str(&l, "storage", t->xf ? "float" : "u8");
	lf_write(&l, tr->echo, tr->log);
	for (int i = 0; t->names && i < t->classes; i++) {
		lf_begin(&l);
		lf_str(&l, "class", t->names[i]);
		lf_int(&l, "index", i);
		lf_write(&l, tr->echo, tr->log);
	}
	for (int k = 0; k < 2; k++) {
		const struct ds *d = k ? test : train;
		for (int i = 0; d && i < d->nnotes; i++) {
			lf_begin(&l);
			lf_str(&l, "skipped", d->notes[i]);
			lf_write(&l, tr->echo, tr->log);
		}
	}
	lf_begin(&l);
	lf_str(&l, "normalize", dc->norm == NORM_AUTO ? "auto" : "given");
	for (int c = 0; c < bc->nchan; c++) {
		char key[32];
		snprintf(key, sizeof key, "mean.%d", c);
		lf_num(&l, key, bc->mean_c[c], 4);
		snprintf(key, sizeof key, "std.%d", c);
		lf_num(&l, key, bc->std_c[c], 4);
	}
	if (!bc->nchan) {
		lf_num(&l, "mean", bc->mean, 4);
		lf_num(&l, "std", bc->std, 4);
	}
	lf_write(&l, tr->echo, tr->log);
}

void trainer_flush(struct trainer *t)
{
	if (!t->o || t->w_batches == 0)
		return;
	struct logfmt l;
	double dt = nk_now() - t->w_t0;
	dt = dt > 1e-9 ? dt : 1e-9;
	line_begin(t, &l, "train");
	lf_num(&l, "loss", t->w_loss / t->w_n, 4);
	lf_num(&l, "acc", (double)t->w_correct / t->w_n, 4);
	lf_int(&l, "samples_s", (long long)(t->w_n / dt));
	progress(t, &l);
	const struct chain_optim *oc = &t->cs->optim;
	if (oc->kind == OPTIM_SGD && (oc->schedule != SCHED_CONSTANT || oc->warmup > 0))
		lf_num(&l, "lr", sgd_lr(oc, t->o->progress), 5);
	if (t->cs->optim.kind == OPTIM_MCMC) {
		lf_int(&l, "props_s", (long long)(t->w_steps / dt));
		for (int i = 0; i < t->m->nlayers; i++) {
			char key[64];
			if (t->o->proposed[i] == 0)
				continue;
			snprintf(key, sizeof key, "accept.%s", t->m->layers[i].name);
			lf_num(&l, key, (double)t->o->accepted[i] / t->o->proposed[i], 3);
		}
		/* The largest weight of each layer: moves too heavy-tailed for the data show here. */
		for (int i = 0; i < t->m->nlayers; i++) {
			const struct layer *ly = &t->m->layers[i];
			char key[64];
			float wmax = 0.0f;
			if (ly->binary || ly->nparams == 0)
				continue;
			for (size_t j = 0; j < ly->nparams; j++)
				wmax = fabsf(ly->w[j]) > wmax ? fabsf(ly->w[j]) : wmax;
			snprintf(key, sizeof key, "wmax.%s", ly->name);
			lf_num(&l, key, wmax, 3);
		}
		optim_reset_counts(t->o);
	}
	if (t->net.have) {
		lf_int(&l, "inbox", t->net.inbox);
		lf_int(&l, "dropped", t->net.dropped);
		lf_num(&l, "rtt_ms", t->net.rtt_ms, 3);
		if (t->net.unsent)
			lf_int(&l, "unsent", t->net.unsent);
		if (t->net.refused)
			lf_int(&l, "refused", t->net.refused);
		lf_int(&l, "taken", t->net.taken);
		if (t->index + 1 < t->chain->nstages)
			lf_int(&l, "sent", t->net.sent);
		if (t->net.chain_ms > 0)
			lf_num(&l, "chain_ms", t->net.chain_ms, 1);
	}
	if (t->skipped)
		lf_int(&l, "skipped", t->skipped);
	lf_write(&l, t->echo, t->log);
	t->w_t0 = nk_now();
	t->w_loss = 0;
	t->w_correct = t->w_n = t->w_steps = t->w_batches = 0;
}

double trainer_progress(const struct trainer *t)
{
	if (t->progress >= 0)
		return NK_MIN(t->progress, 1.0);
	double p = 0;
	if (t->total > 0)
		p = (double)t->batch / t->total;
	if (t->deadline > t->t0)
		p = NK_MAX(p, (nk_now() - t->t0) / (t->deadline - t->t0));
	return NK_MIN(p, 1.0);
}

int trainer_train(struct trainer *t, const float *x, const int32_t *y, int n, long batch,
		  const volatile int *newer, char err[NK_ERR_LEN])
{
	struct optim_stats os;
	t->batch = batch;
	if (!t->o)
		return 0;
	t->o->progress = trainer_progress(t);
	int rc = optim_train(t->o, x, y, n, newer, &os);
	if (rc)
		return nk_errf(err, rc, "stage %s: training failed: %s", t->cs->name, nk_strerror(rc));
	if (os.skipped) { /* counted, logged as skipped=, and the model is as it was */
		t->skipped++;
		return 0;
	}
	t->w_loss += os.loss * n;
	t->w_correct += os.correct;
	t->w_n += n;
	t->w_steps += os.steps;
	t->w_batches++;
	t->steps++;
	if (nk_now() - t->w_t0 >= 1.0)
		trainer_flush(t);
	return 0;
}

void trainer_upstream(struct trainer *t, const float *logits)
{
	t->m->offset = t->cs->boost ? logits : NULL;
}

int trainer_sends_logits(const struct trainer *t)
{
	return t->index + 1 < t->chain->nstages && t->chain->stages[t->index + 1].boost;
}

const float *trainer_body(struct trainer *t, const float *x, int n, const float **logits)
{
	int full = logits && trainer_sends_logits(t);
	if (full)
		model_forward(t->m, x, n);
	else
		model_forward_body(t->m, x, n);
	if (logits)
		*logits = full ? model_logits(t->m) : NULL;
	return model_body_out(t->m);
}

void trainer_test_batch(struct trainer *t, const float *x, const int32_t *y, int n)
{
	int c;
	model_forward(t->m, x, n);
	t->t_loss += model_loss(t->m, y, n, &c, 0) * n;
	t->t_correct += c;
	t->t_n += n;
}

double trainer_test_end(struct trainer *t)
{
	struct logfmt l;
	double acc = t->t_n ? (double)t->t_correct / t->t_n : 0.0;
	trainer_flush(t);
	line_begin(t, &l, "test");
	lf_num(&l, "test_loss", t->t_n ? t->t_loss / t->t_n : 0.0, 4);
	lf_num(&l, "test_acc", acc, 4);
	lf_int(&l, "n", t->t_n);
	lf_write(&l, t->echo, t->log);
	t->t_loss = 0;
	t->t_correct = t->t_n = 0;
	return acc;
}
