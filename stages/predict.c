/* Predict mode at one stage: the exit rule on its head's softmax, the samples that go on packed
 * together, the answers (a tally) travelling with the batches, degraded answers while the
 * downstream is unreachable, and the report at the last stage the answers reach. */
#include "stages/stage_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/logfmt.h"
#include "stages/exit.h"

struct predict {
	struct exit_rule rule;
	int last;                   /* the chain's last stage: answers every sample */
	struct wire_tally pend;     /* answers held here: st[nstages] by position, lat_ms[nlat] */
	int cap_lat;
	float *xbuf;                /* [max_batch][body dims]: the samples that go on */
	float *lbuf;                /* [max_batch][classes]: their logits, when the next stage boosts */
	int32_t *ybuf, *pred;       /* [max_batch] */
	uint8_t *out;               /* [max_batch]: 1 for the samples answered here */
	int pass_n;                 /* samples in the pass, as the source announced */
	int held;                   /* answers held that no report or downstream has */
	int reported;
	long long body_macs, head_macs; /* of this stage, per sample */
};

int predict_new(struct predict **out, struct stage *s, char err[NK_ERR_LEN])
{
	const struct model *m = s->t->m;
	int nst = s->c->nstages, mb = m->max_batch;
	struct predict *p = calloc(1, sizeof *p);
	*out = NULL;
	if (!p)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	p->rule = exit_rule_of(&s->c->stages[s->index], s->o->threshold);
	p->last = s->index == nst - 1;
	p->body_macs = model_macs(m, 0, m->nbody);
	p->head_macs = model_macs(m, m->nbody, m->nlayers);
	p->pend.nst = nst;
	p->pend.st = calloc((size_t)nst, sizeof *p->pend.st);
	p->xbuf = nk_floats((size_t)mb * dims_size(model_body_dims(m)) + 1);
	p->lbuf = nk_floats((size_t)mb * m->classes);
	p->ybuf = calloc((size_t)mb, sizeof *p->ybuf);
	p->pred = calloc((size_t)mb, sizeof *p->pred);
	p->out = calloc((size_t)mb, 1);
	if (!p->pend.st || !p->xbuf || !p->lbuf || !p->ybuf || !p->pred || !p->out) {
		predict_free(p);
		return nk_errf(err, NK_ENOMEM, "out of memory");
	}
	for (int i = 0; i < nst; i++)
		p->pend.st[i].stage = i;
	*out = p;
	return 0;
}

void predict_free(struct predict *p)
{
	if (!p)
		return;
	free(p->pend.st);
	free(p->pend.lat_ms);
	free(p->xbuf);
	free(p->lbuf);
	free(p->ybuf);
	free(p->pred);
	free(p->out);
	free(p);
}

static int add_latency(struct predict *p, double ms)
{
	if (p->pend.nlat == p->cap_lat) {
		int cap = p->cap_lat ? 2 * p->cap_lat : 256;
		double *l = realloc(p->pend.lat_ms, (size_t)cap * sizeof *l);
		if (!l)
			return NK_ENOMEM;
		p->pend.lat_ms = l;
		p->cap_lat = cap;
	}
	p->pend.lat_ms[p->pend.nlat++] = ms;
	return 0;
}

/* Add the answers of t (from upstream) to those held here. */
static int merge(struct predict *p, const struct wire_tally *t)
{
	for (int i = 0; t && i < t->nst; i++) {
		const struct wire_stage_tally *a = &t->st[i];
		if (a->stage < 0 || a->stage >= p->pend.nst)
			continue;
		struct wire_stage_tally *b = &p->pend.st[a->stage];
		b->arrived += a->arrived;
		b->evaluated += a->evaluated;
		b->answered += a->answered;
		b->correct += a->correct;
		b->degraded += a->degraded;
		b->degraded_correct += a->degraded_correct;
		b->body_macs = NK_MAX(b->body_macs, a->body_macs);
		b->head_macs = NK_MAX(b->head_macs, a->head_macs);
		p->held |= a->answered + a->degraded > 0;
	}
	for (int i = 0; t && i < t->nlat; i++)
		if (add_latency(p, t->lat_ms[i]))
			return NK_ENOMEM;
	p->held |= t && t->nlat > 0;
	return 0;
}

/* The answers were passed on: hold nothing more (the stages' costs stay known). */
static void clear(struct predict *p)
{
	for (int i = 0; i < p->pend.nst; i++) {
		struct wire_stage_tally *a = &p->pend.st[i];
		*a = (struct wire_stage_tally){.stage = i, .body_macs = a->body_macs, .head_macs = a->head_macs};
	}
	p->pend.nlat = 0;
	p->held = 0;
}

/* Decide which of the n samples in the model are answered here (out[i] = 1, all of them when
 * `all`), count them, and pack the others' body outputs, labels and (for a next stage that
 * boosts) logits; returns how many go on. */
static int decide(struct stage *s, const int32_t *y, int n, int all, int degraded)
{
	struct predict *p = s->pr;
	struct model *m = s->t->m;
	struct wire_stage_tally *me = &p->pend.st[s->index];
	memset(p->out, 0, (size_t)n);
	const int send_logits = !all && trainer_sends_logits(s->t);
	if (all || exit_rule_active(&p->rule) || send_logits) {
		model_forward_from(m, m->nbody, n);
		me->evaluated += (uint64_t)n;
		const float *lg = model_logits(m);
		for (int i = 0; i < n; i++) {
			int c, leaves = exit_decide(&p->rule, lg + (size_t)i * m->classes, m->classes, &c);
			p->out[i] = (uint8_t)(leaves || all);
			p->pred[i] = c;
		}
	}
	size_t d = (size_t)dims_size(model_body_dims(m));
	const float *body = model_body_out(m);
	int r = 0;
	for (int i = 0; i < n; i++) {
		int right = p->pred[i] == y[i];
		if (p->out[i] && degraded) {
			me->degraded++;
			me->degraded_correct += (uint64_t)right;
		} else if (p->out[i]) {
			me->answered++;
			me->correct += (uint64_t)right;
		} else {
			memcpy(p->xbuf + (size_t)r * d, body + (size_t)i * d, d * sizeof *body);
			if (send_logits)
				memcpy(p->lbuf + (size_t)r * m->classes, model_logits(m) + (size_t)i * m->classes,
				       sizeof(float) * m->classes);
			p->ybuf[r++] = y[i];
		}
	}
	return r;
}

static void report(struct stage *s, int complete, const char *why);

int predict_batch(struct stage *s, const struct wire_batch *b, double arrived, double link_ms,
		  char err[NK_ERR_LEN])
{
	struct predict *p = s->pr;
	struct wire_stage_tally *me = &p->pend.st[s->index];
	if (merge(p, b->tally))
		return nk_errf(err, NK_ENOMEM, "out of memory");
	p->pass_n = NK_MAX(p->pass_n, b->pass_n);
	me->body_macs = (uint64_t)p->body_macs;
	me->head_macs = (uint64_t)p->head_macs;
	int ready = !p->last && stage_down_ready(s, ORDERED_BACKLOG), r = 0;
	if (b->n > 0) {
		p->held = 1;
		trainer_upstream(s->t, b->logits);
		model_forward_body(s->t->m, b->x, b->n);
		me->arrived += (uint64_t)b->n;
		r = decide(s, b->y, b->n, !ready, !ready && !p->last);
		if (r == 0 && add_latency(p, b->chain_ms + link_ms + (nk_now() - arrived) * 1e3))
			return nk_errf(err, NK_ENOMEM, "out of memory");
	}
	if (ready) {
		struct wire_batch o = {.id = b->id, .phase = WIRE_PREDICT, .epoch = b->epoch, .last = b->last,
				       .n = r, .y = r ? p->ybuf : NULL, .chain_ms = b->chain_ms,
				       .link_ms = link_ms, .pass_n = p->pass_n, .tally = &p->pend};
		int rc = stage_forward(s, &o, p->xbuf, r && trainer_sends_logits(s->t) ? p->lbuf : NULL, arrived, err);
		if (rc == 0)
			clear(p);
		return rc;
	}
	if (b->last)
		report(s, 1, p->last ? NULL : "the downstream is unreachable: answered here");
	return 0;
}

void predict_finish(struct stage *s)
{
	if (s->pr && s->pr->held && !s->pr->reported)
		report(s, 0, "the pass was cut short");
}

/* ---- the report ---- */

/* Costs of the stages after this one that no tally brought: their models built here (the
 * shapes chain on from this stage's body output). */
static void downstream_macs(struct stage *s)
{
	struct predict *p = s->pr;
	struct layer_dims in = model_body_dims(s->t->m);
	char err[NK_ERR_LEN];
	for (int i = s->index + 1; i < s->c->nstages; i++) {
		struct model *m;
		if (model_new(&m, &s->c->stages[i], in, s->c->data.classes, 1, 1, err))
			return;
		struct wire_stage_tally *a = &p->pend.st[i];
		if (!a->body_macs && !a->head_macs) {
			a->body_macs = (uint64_t)model_macs(m, 0, m->nbody);
			a->head_macs = (uint64_t)model_macs(m, m->nbody, m->nlayers);
		}
		in = model_body_dims(m);
		model_free(m);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile q of the n sorted values v. */
static double percentile(const double *v, int n, double q)
{
	if (n == 0)
		return 0;
	int k = (int)ceil(q * n) - 1;
	return v[NK_MAX(0, NK_MIN(k, n - 1))];
}

/* Per-stage keys: exit.NAME (fraction of the answers), n.NAME, acc.NAME, degraded.NAME. */
static void stage_keys(struct stage *s, struct logfmt *l, uint64_t total)
{
	const struct wire_tally *t = &s->pr->pend;
	char key[CHAIN_NAME_LEN + 16], buf[64];
	for (int i = 0; i < t->nst; i++) {
		const struct wire_stage_tally *a = &t->st[i];
		const char *name = s->c->stages[i].name;
		uint64_t n = a->answered + a->degraded;
		snprintf(key, sizeof key, "exit.%s", name);
		lf_num(l, key, total ? (double)n / (double)total : 0.0, 4);
		snprintf(key, sizeof key, "n.%s", name);
		lf_int(l, key, (long long)n);
		snprintf(key, sizeof key, "acc.%s", name);
		if (n)
			lf_num(l, key, (double)(a->correct + a->degraded_correct) / (double)n, 4);
		else
			lf_str(l, key, "-");
		snprintf(key, sizeof key, "degraded.%s", name);
		if (a->degraded)
			lf_int(l, key, (long long)a->degraded);
		if (s->o->threshold < 0) {
			struct exit_rule r = exit_rule_of(&s->c->stages[i], -1);
			snprintf(key, sizeof key, "rule.%s", name);
			lf_str(l, key, exit_rule_str(&r, buf, sizeof buf));
		}
	}
}

/* The report line: complete when the pass's last batch came (else the pass was cut short);
 * why, when not NULL, says why this stage reports. */
static void report(struct stage *s, int complete, const char *why)
{
	struct predict *p = s->pr;
	const struct wire_tally *t = &p->pend;
	uint64_t total = 0, right = 0, degraded = 0;
	double macs = 0, full = 0;
	downstream_macs(s);
	for (int i = 0; i < t->nst; i++) {
		const struct wire_stage_tally *a = &t->st[i];
		total += a->answered + a->degraded;
		right += a->correct + a->degraded_correct;
		degraded += a->degraded;
		macs += (double)a->arrived * (double)a->body_macs + (double)a->evaluated * (double)a->head_macs;
		full += (double)a->body_macs + (i == t->nst - 1 ? (double)a->head_macs : 0.0);
	}
	macs = total ? macs / (double)total : 0;
	qsort(t->lat_ms, (size_t)t->nlat, sizeof *t->lat_ms, cmp_double);
	struct logfmt l;
	lf_begin(&l);
	lf_num(&l, "t", nk_now() - s->t0, 3);
	lf_str(&l, "stage", s->c->stages[s->index].name);
	lf_str(&l, "phase", "predict");
	if (s->o->threshold >= 0)
		lf_gen(&l, "threshold", s->o->threshold);
	else
		lf_str(&l, "threshold", "chain");
	lf_int(&l, "n", p->pass_n);
	lf_int(&l, "answered", (long long)total);
	lf_num(&l, "acc", total ? (double)right / (double)total : 0.0, 4);
	lf_int(&l, "macs", (long long)llround(macs));
	lf_int(&l, "full_macs", (long long)llround(full));
	lf_num(&l, "cost", full > 0 ? macs / full : 0.0, 4);
	lf_num(&l, "lat_p50_ms", percentile(t->lat_ms, t->nlat, 0.5), 2);
	lf_num(&l, "lat_p95_ms", percentile(t->lat_ms, t->nlat, 0.95), 2);
	lf_int(&l, "batches", t->nlat);
	lf_int(&l, "degraded", (long long)degraded);
	lf_int(&l, "lost", p->pass_n > (long long)total ? p->pass_n - (long long)total : 0);
	lf_int(&l, "complete", complete);
	if (why)
		lf_str(&l, "reason", why);
	stage_keys(s, &l, total);
	lf_write(&l, stdout, s->log);
	p->reported = 1;
}
