/* Predict mode end to end: a three-stage chain trained for two epochs (every stage trains every
 * batch, at any speed; checkpoints), then necklace-run --predict: the report's counts add up to
 * the test set; threshold 1 keeps every sample to the last stage and matches the sink's test
 * accuracy at full cost; threshold 0 answers everything at the first stage; and with the sink
 * killed mid-stream the middle stage answers in degraded mode, reports it, and nothing hangs. */
#include "stages/wire.h"
#include "tests/run_test.h"

#define NTRAIN 2000
#define NTEST 640
#define EPOCHS 2

/* Train the chain for EPOCHS epochs (checkpoints at the end); the sink's last test accuracy.
 * top: more top-level keys of the chain file. */
static double train_chain_ex(struct run *r, const char *top)
{
	char keys[200];
	const long total = EPOCHS * batches_of(NTRAIN);
	snprintf(keys, sizeof keys, "\"checkpoint_every\": 50, %s", top);
	setup_run_epochs(r, EPOCHS, NTRAIN, NTEST, 201, 0.02, keys);
	for (int i = 2; i >= 0; i--)
		r->pid[i] = spawn_stage(r, i, NULL);
	for (int i = 0; i < 3; i++)
		expect_clean_exit(r, i, 300);
	const char *last[] = {" phase=test ", " n=640", NULL};
	double acc = last_value(r->log[2], last, "test_acc");
	cr_assert_gt(acc, 0.3, "the sink did not learn (test_acc %g after %ld batches; chance is 0.1)", acc, total);
	for (int i = 0; i < 3; i++) {
		struct counts c = counts_of(r->log[i]);
		cr_assert_eq(c.trained + c.skipped, total, "%s trained %ld of %ld batches", names[i], c.trained, total);
		char path[400];
		snprintf(path, sizeof path, "%s/%s.ckpt", r->state, names[i]);
		cr_assert_eq(access(path, R_OK), 0, "no checkpoint %s", path);
	}
	return acc;
}

static double train_chain(struct run *r)
{
	return train_chain_ex(r, "");
}

/* Run necklace-run --predict with threshold thr; the report line's file. */
static void predict(struct run *r, const char *thr, char *out, size_t len)
{
	char logs[400];
	snprintf(logs, sizeof logs, "%s/p%s", r->dir, thr);
	snprintf(out, len, "%s/predict-%s.out", r->dir, thr);
	const char *args[] = {"-c", r->chain, "--state-dir", r->state, "--log-dir", logs, "--predict",
			      "--threshold", thr, "--every", "100", NULL};
	cr_assert_eq(run_prog_out("necklace-run", args, out, 300), 0, "necklace-run --predict --threshold %s", thr);
}

static double rep(const char *out, const char *key)
{
	const char *needles[] = {" phase=predict ", NULL};
	double v = last_value(out, needles, key);
	cr_assert_geq(v, 0, "no %s= in the report of %s", key, out);
	return v;
}

/* The report's per-stage counts add up to the test set. */
static void expect_counts(const char *out)
{
	cr_assert_eq(rep(out, "n"), NTEST);
	cr_assert_eq(rep(out, "answered"), NTEST);
	cr_assert_eq(rep(out, "lost"), 0);
	cr_assert_eq(rep(out, "degraded"), 0);
	cr_assert_eq(rep(out, "complete"), 1);
	cr_assert_eq(rep(out, "n.s0") + rep(out, "n.s1") + rep(out, "n.s2"), NTEST, "%s", out);
	double f = rep(out, "exit.s0") + rep(out, "exit.s1") + rep(out, "exit.s2");
	cr_assert_float_eq(f, 1.0, 2e-4);
	cr_assert_eq(rep(out, "batches"), NTEST / 32, "one latency per batch");
	cr_assert_leq(rep(out, "lat_p50_ms"), rep(out, "lat_p95_ms"));
}

Test(predict, counts_add_up_and_thresholds_behave, .timeout = 900)
{
	struct run r;
	char out[400];
	double sink_acc = train_chain(&r);
	predict(&r, "1", out, sizeof out);
	expect_counts(out);
	cr_assert_eq(rep(out, "n.s2"), NTEST, "threshold 1: something exited early");
	cr_assert_float_eq(rep(out, "acc"), sink_acc, 1e-9, "predict acc %g, the sink's test_acc %g",
			   rep(out, "acc"), sink_acc);
	cr_assert_float_eq(rep(out, "cost"), 1.0, 1e-9);
	double full = rep(out, "full_macs");
	cr_assert_eq(rep(out, "macs"), full);

	predict(&r, "0", out, sizeof out);
	expect_counts(out);
	cr_assert_eq(rep(out, "n.s0"), NTEST, "threshold 0: not everything exited at the first stage");
	cr_assert_float_eq(rep(out, "exit.s0"), 1.0, 1e-9);
	cr_assert_lt(rep(out, "cost"), 0.5);
	cr_assert_eq(rep(out, "full_macs"), full);

	predict(&r, "0.9", out, sizeof out);
	expect_counts(out);
	remove_run(&r);
}

Test(predict, boosted_chain_carries_its_logits_through_every_phase, .timeout = 900)
{
	/* Each stage adds its head's logits to its upstream's: the sink's answers in predict mode at
	 * threshold 1 are then the same sums its test pass scored, and early exits at the middle
	 * stage use the sums up to there. */
	struct run r;
	char out[400];
	double sink_acc = train_chain_ex(&r, "\"boost\": true,");
	predict(&r, "1", out, sizeof out);
	expect_counts(out);
	cr_assert_float_eq(rep(out, "acc"), sink_acc, 1e-9, "predict acc %g, the sink's test_acc %g",
			   rep(out, "acc"), sink_acc);
	predict(&r, "0.9", out, sizeof out);
	expect_counts(out);
	remove_run(&r);
}

Test(predict, downstream_killed_answers_degraded_and_nothing_hangs, .timeout = 900)
{
	struct run r;
	train_chain(&r);
	/* at 4 batches a second the pass lasts 4.75 s at least: the sink dies in the middle */
	const char *args[] = {"--predict", "--threshold", "1", "--rate", "4", "--wait", "0.5", NULL};
	for (int i = 0; i < 3; i++)
		snprintf(r.log[i], sizeof r.log[i], "%s/d/%s.log", r.dir, names[i]);
	char logs[400];
	snprintf(logs, sizeof logs, "%s/d", r.dir);
	for (int i = 2; i >= 0; i--) {
		const char *a[12] = {"--log-dir", logs};
		for (int k = 0; args[k]; k++)
			a[k + 2] = args[k];
		r.pid[i] = spawn_stage(&r, i, a);
	}
	cr_assert(nt_log_has(r.log[1], " event=connected link=up ", 60), "s0 never reached s1");
	nt_sleep(1.0); /* a few batches through the whole chain */
	kill(r.pid[2], SIGKILL);
	cr_assert_eq(wait_for(r.pid[2], 5) & 0x7f, SIGKILL);
	expect_clean_exit(&r, 0, 120);
	expect_clean_exit(&r, 1, 120);
	const char *p[] = {" phase=predict ", NULL};
	double n = last_value(r.log[1], p, "n"), answered = last_value(r.log[1], p, "answered");
	double lost = last_value(r.log[1], p, "lost"), deg = last_value(r.log[1], p, "degraded");
	cr_assert_eq(n, NTEST, "s1 wrote no report");
	cr_assert_gt(deg, 0, "no degraded answers");
	cr_assert_eq(last_value(r.log[1], p, "degraded.s1"), deg);
	cr_assert_eq(answered + lost, NTEST, "answered %g + lost %g", answered, lost);
	cr_assert_eq(last_value(r.log[1], p, "complete"), 1);
	cr_assert_eq(count(r.log[1], " event=downstream_unreachable ", "degraded"), 1);
	remove_run(&r);
}

/* The answers travel in the Batch frame: stage entries and latencies survive encoding, also in
 * an empty batch (every sample answered upstream), and a Pong carries the responder's clock. */
Test(predict_wire, tally_and_clock_round_trip)
{
	struct wire_stage_tally st[2] = {{0, 64, 64, 40, 38, 0, 0, 100000, 20000},
					 {1, 24, 24, 0, 0, 24, 20, 590000, 20000}};
	double lat[3] = {1.5, 2.25, 40.0};
	struct wire_tally t = {2, st, 3, lat};
	struct wire_msg m = {.kind = WIRE_BATCH};
	m.batch = (struct wire_batch){.id = 9, .phase = WIRE_PREDICT, .last = 1, .n = 0, .c = 32, .h = 8,
				      .w = 8, .sent = 12.5, .link_ms = 0.75, .pass_n = 10000, .tally = &t};
	uint8_t *f;
	size_t len;
	char err[NK_ERR_LEN] = "";
	struct wire_msg *d = NULL;
	cr_assert_eq(wire_encode(&m, WIRE_MAX_FRAME_DEFAULT, &f, &len, err), 0, "%s", err);
	cr_assert_eq(wire_decode(f, len, WIRE_MAX_FRAME_DEFAULT, &d, err), 0, "%s", err);
	wire_frame_free(f);
	const struct wire_batch *b = &d->batch;
	cr_assert(b->n == 0 && b->last && b->pass_n == 10000 && b->sent == 12.5 && b->link_ms == 0.75);
	cr_assert_not_null(b->tally);
	cr_assert_eq(b->tally->nst, 2);
	for (int i = 0; i < 2; i++) {
		const struct wire_stage_tally *x = &b->tally->st[i], *y = &st[i];
		cr_assert(x->stage == y->stage && x->arrived == y->arrived && x->evaluated == y->evaluated &&
			  x->answered == y->answered && x->correct == y->correct && x->degraded == y->degraded &&
			  x->degraded_correct == y->degraded_correct && x->body_macs == y->body_macs &&
			  x->head_macs == y->head_macs, "stage entry %d changed", i);
	}
	cr_assert_eq(b->tally->nlat, 3);
	cr_assert_eq(memcmp(b->tally->lat_ms, lat, sizeof lat), 0);
	wire_msg_free(d);
	struct wire_msg pong = {.kind = WIRE_PONG, .nonce = 3, .sent = 1.25, .peer_now = 99.5};
	cr_assert_eq(wire_encode(&pong, WIRE_MAX_FRAME_DEFAULT, &f, &len, err), 0, "%s", err);
	cr_assert_eq(wire_decode(f, len, WIRE_MAX_FRAME_DEFAULT, &d, err), 0, "%s", err);
	wire_frame_free(f);
	cr_assert(d->kind == WIRE_PONG && d->sent == 1.25 && d->peer_now == 99.5);
	wire_msg_free(d);
}
