/* necklace-train: train one stage's model, or the whole chain stage after stage, in one process
 * and without the network: the baseline that says what pipelining costs. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/ds.h"
#include "src/chain.h"
#include "stages/trainer.h"

struct run {
	struct chain *chain;
	struct ds *train, *test;
	struct batcher_cfg bc;    /* training batches; test batches: the same unshuffled, plain */
	struct trainer **st;
	int nst;
	int epochs;
	double t0, seconds;
	long batch_no;
	int epoch;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: necklace-train -c CHAIN [-s STAGE] [--epochs N] [--seconds S] [--log-dir DIR]\n"
		   "\n"
		   "Train a chain's models in one process, without the network.\n"
		   "  -c, --chain FILE   chain file (JSON)\n"
		   "  -s, --stage NAME   train only this stage; the stages before it forward their\n"
		   "                     (initial) features; default: every stage, one after another\n"
		   "      --epochs N     passes over the training set (default: the chain's data.epochs)\n"
		   "      --seconds S    stop training after S seconds, then run the test pass\n"
		   "      --log-dir DIR  also append each stage's lines to DIR/NAME.log\n"
		   "  -h, --help         this text\n"
		   "Prints logfmt lines: phase=train per stage about once a second, phase=test after each\n"
		   "epoch and at the end. Exit status: 0 done, 1 runtime failure, 2 bad usage or config.\n");
}

/* One pass over the test set through every stage; each logs its head's loss and accuracy. */
static int test_pass(struct run *r, float *x, int32_t *y)
{
	if (!r->test)
		return 0;
	struct batcher_cfg bc = batcher_cfg_eval(&r->bc);
	struct batcher *b = batcher_new(r->test, &bc);
	if (!b)
		return NK_ENOMEM;
	int n;
	while ((n = batcher_next(b, x, y)) > 0) {
		const float *in = x, *logits = NULL;
		for (int i = 0; i < r->nst; i++) {
			trainer_upstream(r->st[i], logits);
			trainer_test_batch(r->st[i], in, y, n);
			in = model_body_out(r->st[i]->m);
			logits = model_logits(r->st[i]->m);
		}
	}
	for (int i = 0; i < r->nst; i++) {
		r->st[i]->epoch = r->epoch;
		trainer_test_end(r->st[i]);
	}
	batcher_free(b);
	return 0;
}

/* One training batch through every stage: each trains on its input, then forwards its body
 * output (computed with the updated parameters) as the next stage's input. */
static int train_batch(struct run *r, const float *x, const int32_t *y, int n, char err[NK_ERR_LEN])
{
	const float *in = x, *logits = NULL;
	for (int i = 0; i < r->nst; i++) {
		r->st[i]->epoch = r->epoch;
		trainer_upstream(r->st[i], logits);
		int rc = trainer_train(r->st[i], in, y, n, r->batch_no, NULL, err);
		if (rc)
			return rc;
		if (i + 1 < r->nst)
			in = trainer_body(r->st[i], in, n, &logits);
	}
	return 0;
}

static int train_loop(struct run *r, char err[NK_ERR_LEN])
{
	const struct chain_data *d = &r->chain->data;
	struct batcher *b = batcher_new(r->train, &r->bc);
	float *x = nk_floats((size_t)d->batch * r->train->c * r->train->h * r->train->w);
	int32_t *y = calloc(d->batch, sizeof *y);
	int rc = (b && x && y) ? 0 : nk_errf(err, NK_ENOMEM, "out of memory for batches");
	long tested_at = -1;
	while (rc == 0 && r->epoch < r->epochs && !interrupted &&
	       (r->seconds <= 0 || nk_now() - r->t0 < r->seconds)) {
		int n = batcher_next(b, x, y);
		if (n == 0) {
			r->epoch++;
			rc = test_pass(r, x, y);
			tested_at = r->batch_no;
			continue;
		}
		r->batch_no++;
		rc = train_batch(r, x, y, n, err);
		if (rc == 0 && d->test_every > 0 && r->batch_no % d->test_every == 0) {
			rc = test_pass(r, x, y);
			tested_at = r->batch_no;
		}
	}
	if (rc == 0 && tested_at != r->batch_no)
		rc = test_pass(r, x, y);
	if (rc < 0 && !err[0])
		nk_errf(err, rc, "%s", nk_strerror(rc));
	batcher_free(b);
	free(x);
	free(y);
	return rc;
}

/* Load the data and build the models and optimizers; every error here is the user's input. */
static int setup(struct run *r, const char *stage, const char *logdir, char err[NK_ERR_LEN])
{
	const struct chain_data *d = &r->chain->data;
	int rc = ds_load_pair(&r->train, &r->test, d, err);
	if (rc == 0)
		rc = ds_batcher_cfg(&r->bc, d, r->train, r->chain->seed, err);
	if (rc)
		return rc;
	int only = -1;
	r->nst = r->chain->nstages;
	if (stage) {
		only = chain_stage_index(r->chain, stage);
		if (only < 0)
			return nk_errf(err, NK_ENOENT, "%s: no stage named '%s'", r->chain->path, stage);
		r->nst = only + 1;
	}
	r->st = calloc(r->nst, sizeof *r->st);
	if (!r->st)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	struct layer_dims in = {r->train->c, r->train->h, r->train->w};
	for (int i = 0; i < r->nst && rc == 0; i++) {
		rc = trainer_new(&r->st[i], r->chain, i, in, only < 0 || only == i, logdir, err);
		if (rc == 0) {
			r->st[i]->echo = stdout;
			in = model_body_dims(r->st[i]->m);
		}
	}
	if (rc == 0)
		trainer_log_data(r->st[0], &r->chain->data, r->train, r->test, &r->bc);
	return rc;
}

static void teardown(struct run *r)
{
	for (int i = 0; r->st && i < r->nst; i++)
		trainer_free(r->st[i]);
	free(r->st);
	ds_free(r->train);
	ds_free(r->test);
	chain_free(r->chain);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"chain", required_argument, 0, 'c'}, {"stage", required_argument, 0, 's'},
		{"epochs", required_argument, 0, 'e'}, {"seconds", required_argument, 0, 't'},
		{"log-dir", required_argument, 0, 'l'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	const char *chain_path = NULL, *stage = NULL, *logdir = NULL;
	struct run r = {0};
	char *end;
	int c;
	while ((c = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': chain_path = optarg; break;
		case 's': stage = optarg; break;
		case 'l': logdir = optarg; break;
		case 'e':
			r.epochs = (int)strtol(optarg, &end, 10);
			if (*end || r.epochs <= 0) {
				fprintf(stderr, "necklace-train: --epochs wants a positive integer, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			r.seconds = strtod(optarg, &end);
			if (*end || !(r.seconds > 0)) {
				fprintf(stderr, "necklace-train: --seconds wants a positive number, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!chain_path || optind < argc) {
		usage(stderr);
		return 2;
	}
	char err[NK_ERR_LEN] = "";
	int rc = chain_load(&r.chain, chain_path, err);
	if (rc == 0) {
		if (r.epochs == 0)
			r.epochs = r.seconds > 0 ? 1 << 30 : r.chain->data.epochs;
		rc = setup(&r, stage, logdir, err);
	}
	if (rc) {
		fprintf(stderr, "necklace-train: %s\n", err);
		teardown(&r);
		return rc == NK_ENOMEM ? 1 : 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	r.t0 = nk_now();
	long per_epoch = (r.train->n + r.chain->data.batch - 1) / r.chain->data.batch;
	for (int i = 0; i < r.nst; i++) {
		r.st[i]->t0 = r.st[i]->w_t0 = r.t0;
		r.st[i]->total = r.epochs < (1 << 30) ? per_epoch * r.epochs : 0;
		r.st[i]->deadline = r.seconds > 0 ? r.t0 + r.seconds : 0;
	}
	rc = train_loop(&r, err);
	if (rc)
		fprintf(stderr, "necklace-train: %s\n", err);
	teardown(&r);
	return rc ? 1 : 0;
}
