/* The chain end to end: three necklace-stage processes on ephemeral loopback ports train an SGD
 * chain on a small synthetic data set for a number of epochs, every stage trains every batch, logs
 * its train lines, a test pass after each batch and one over the whole test set at the end, the
 * sink beats chance, Stop ends all three with status 0; a downstream started late, and a middle
 * stage killed (SIGKILL) and restarted mid-run, are reconnected to and the restarted stage resumes
 * from its checkpoint; a stage without its downstream keeps training and counts what it could not
 * send. Runs are bounded by batches, not seconds: the assertions hold on a slow machine too. */
#include "tests/run_test.h"

#define NTRAIN 1000
#define NTEST 500
#define NB 32 /* batches_of(NTRAIN) */

static void setup_run(struct run *r, int epochs)
{
	cr_assert_eq(batches_of(NTRAIN), NB);
	setup_run_epochs(r, epochs, NTRAIN, NTEST, 90, 0.01, "\"checkpoint_every\": 20,");
}

static int run_prog(const char *prog, const char *const *args)
{
	return run_prog_out(prog, args, NULL, 30);
}

static int passes(const char *log, const char *n)
{
	return count(log, " phase=test ", n);
}

Test(chain_run, three_stages_train_test_and_stop, .timeout = 600)
{
	struct run r;
	const int total = 2 * NB;
	setup_run(&r, 2);
	for (int i = 2; i >= 0; i--)
		r.pid[i] = spawn_stage(&r, i, NULL);
	for (int i = 0; i < 3; i++)
		expect_clean_exit(&r, i, 300);
	struct counts c[3];
	for (int i = 0; i < 3; i++) {
		c[i] = counts_of(r.log[i]);
		cr_assert_eq(c[i].trained + c[i].skipped, total, "%s trained %ld and skipped %ld of %d batches",
			     names[i], c[i].trained, c[i].skipped, total);
		cr_assert_eq(c[i].dropped + c[i].refused, 0, "%s dropped %ld, refused %ld", names[i],
			     c[i].dropped, c[i].refused);
		cr_assert_eq(last_train_batch(r.log[i]), total, "%s's last train line is not at the last batch",
			     names[i]);
		cr_assert_eq(count(r.log[i], " phase=train ", " loss="), c[i].trained, "%s: not a train line a batch",
			     names[i]);
		/* a short pass after every batch, then the whole test set */
		cr_assert_eq(passes(r.log[i], " n=32"), total, "%s: %d short test passes", names[i],
			     passes(r.log[i], " n=32"));
		cr_assert_eq(passes(r.log[i], " n=500"), 1, "%s: no final test pass", names[i]);
		cr_assert_eq(count(r.log[i], " event=stop ", "reason="), 1, "%s: no stop line", names[i]);
		const char *saved[] = {" phase=ckpt ", " event=saved ", NULL};
		cr_assert_geq(nt_log_count(r.log[i], saved), total / 20 + 1, "%s: too few checkpoints", names[i]);
		cr_assert_eq(last_value(r.log[i], saved, "step"), c[i].trained, "%s: the last checkpoint is not the end",
			     names[i]);
	}
	cr_assert_eq(c[0].sent, total, "s0 sent %ld", c[0].sent);
	cr_assert_eq(c[2].sent, 0, "the sink has no downstream");
	expect_accounted(c[0], c[1], 0, "s0 -> s1");
	expect_accounted(c[1], c[2], 0, "s1 -> s2");
	const char *final[] = {" phase=test ", " n=500", NULL};
	double acc0 = last_value(r.log[0], final, "test_acc"), acc = sink_test_acc(&r);
	cr_assert_gt(acc0, 0.5, "s0 test_acc %.3f after %d batches (chance is 0.1)", acc0, total);
	cr_assert_gt(acc, 0.5, "sink test_acc %.3f after %d batches (chance is 0.1)", acc, total);
	remove_run(&r);
}

Test(chain_run, late_downstream_and_restarted_middle_rejoin, .timeout = 600)
{
	struct run r;
	const int total = 5 * NB;
	setup_run(&r, 5);
	r.pid[0] = spawn_stage(&r, 0, NULL);
	r.pid[1] = spawn_stage(&r, 1, NULL);
	cr_assert(nt_log_has(r.log[1], " event=waiting link=down ", 60), "s1 never tried its downstream");
	r.pid[2] = spawn_stage(&r, 2, NULL); /* the downstream after its upstream */
	cr_assert(nt_log_has(r.log[1], " event=connected link=down peer=s2", 60));
	/* s1 has a checkpoint (step 20) and s2 trained: then s1 dies. The source waits (--wait 60)
	 * for its downstream before each test batch, so it cannot run on while s1 is away. */
	cr_assert(nt_log_has(r.log[1], " phase=ckpt event=saved ", 120), "s1 saved no checkpoint");
	cr_assert(nt_log_has(r.log[2], " phase=train ", 60), "s2 never trained");
	kill(r.pid[1], SIGKILL);
	cr_assert_eq(wait_for(r.pid[1], 5) & 0x7f, SIGKILL);
	cr_assert(nt_log_has(r.log[2], " event=lost link=up ", 30), "s2 did not notice");
	cr_assert(nt_log_has(r.log[0], " event=lost link=down ", 30), "s0 did not notice");
	long before = last_train_batch(r.log[2]);
	cr_assert_lt(before, total, "the chain was done before s1 was killed");
	cr_assert_eq(count(r.log[0], " phase=test ", " n=500"), 0, "the source was done before s1 was killed");
	nt_sleep(0.5);
	r.pid[1] = spawn_stage(&r, 1, NULL);
	for (int i = 0; i < 3; i++)
		expect_clean_exit(&r, i, 400);
	cr_assert_eq(count(r.log[1], " event=start ", " role=relay"), 2);
	const char *resumed[] = {" phase=ckpt ", " event=resumed ", NULL};
	double step = last_value(r.log[1], resumed, "step");
	cr_assert_geq(step, 20, "the restarted s1 did not resume from its checkpoint (step %g)", step);
	cr_assert_geq(count(r.log[0], " event=connected ", " link=down "), 2, "s0 did not reconnect");
	cr_assert_geq(count(r.log[2], " event=connected ", " link=up "), 2, "s2 was not reconnected to");
	/* s2 trained on batches that came through the restarted s1, up to the source's last */
	FILE *f = fopen(r.log[2], "r");
	char line[4096];
	int ups = 0, after = 0;
	while (f && fgets(line, sizeof line, f)) {
		ups += strstr(line, " event=connected link=up ") != NULL;
		after += ups >= 2 && strstr(line, " phase=train ") != NULL;
	}
	if (f)
		fclose(f);
	cr_assert_geq(after, 2, "s2 logged %d train lines after the restart", after);
	cr_assert_eq(last_train_batch(r.log[2]), total, "s2 did not train the last batch (from %ld)", before);
	struct counts c0 = counts_of(r.log[0]);
	cr_assert_eq(c0.trained + c0.skipped, total, "the source trained %ld batches", c0.trained);
	const char *final[] = {" phase=test ", " n=500", NULL};
	double acc = last_value(r.log[2], final, "test_acc");
	cr_assert_gt(acc, 0.3, "the sink did not finish the last test pass (test_acc %g)", acc);
	remove_run(&r);
}

Test(chain_run, bad_chain_or_stage_refused_before_anything_starts)
{
	struct run r;
	char text[4096], logs[320], path[320];
	setup_run(&r, 1);
	snprintf(logs, sizeof logs, "%s/logs", r.dir);
	/* the same chain with s2's listen address removed */
	FILE *f = fopen(r.chain, "r");
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	char *p = strstr(text, "{\"name\": \"s2\", \"listen\": ");
	cr_assert_not_null(p);
	char *q = strchr(p + 25, ',');
	memmove(p + 15, q + 1, strlen(q + 1) + 1);
	snprintf(path, sizeof path, "%s/nolisten.json", r.dir);
	cr_assert_eq(nk_test_write(path, text, strlen(text)), 0);
	const char *a1[] = {"-c", path, "-s", "s0", "--log-dir", logs, NULL};
	cr_assert_eq(run_prog("necklace-stage", a1), 2);
	const char *a2[] = {"-c", r.chain, "-s", "nosuch", "--log-dir", logs, NULL};
	cr_assert_eq(run_prog("necklace-stage", a2), 2);
	const char *a3[] = {"-c", path, "--log-dir", logs, NULL};
	cr_assert_eq(run_prog("necklace-run", a3), 2);
	const char *a4[] = {"-c", r.chain, "-s", "s0", "--seconds", "zero", NULL};
	cr_assert_eq(run_prog("necklace-stage", a4), 2);
	cr_assert_neq(access(logs, F_OK), 0, "something started: %s exists", logs);
	const char *a5[] = {"--help", NULL};
	cr_assert_eq(run_prog("necklace-stage", a5), 0);
	cr_assert_eq(run_prog("necklace-run", a5), 0);
	remove_run(&r);
}

Test(chain_run, stage_without_downstream_keeps_training_and_counts_unsent, .timeout = 600)
{
	struct run r;
	const int total = 2 * NB;
	setup_run(&r, 2);
	const char *wait[] = {"--wait", "1", NULL}; /* s1 finds its downstream unreachable after 1 s */
	r.pid[1] = spawn_stage(&r, 1, wait);
	r.pid[0] = spawn_stage(&r, 0, NULL); /* s2 never starts */
	expect_clean_exit(&r, 0, 300);
	expect_clean_exit(&r, 1, 60);
	struct counts c0 = counts_of(r.log[0]), c1 = counts_of(r.log[1]);
	cr_assert_eq(c1.trained + c1.skipped, total, "s1 stopped training: %ld of %d batches", c1.trained, total);
	cr_assert_eq(c1.dropped, 0);
	expect_accounted(c0, c1, 0, "s0 -> s1");
	cr_assert_eq(c1.sent, total, "s1 passed %ld batches on", c1.sent);
	cr_assert_eq(c1.unsent, c1.sent, "s1 counts %ld of %ld train batches unsent", c1.unsent, c1.sent);
	const char *train[] = {" phase=train ", NULL};
	double unsent = last_value(r.log[1], train, "unsent");
	cr_assert_geq(unsent, total, "s1's train lines do not count what it could not send (unsent=%g)", unsent);
	cr_assert_eq(passes(r.log[1], " n=32"), total, "s1 skipped its own test passes");
	cr_assert_eq(passes(r.log[1], " n=500"), 1, "s1 skipped the final test pass");
	cr_assert_eq(count(r.log[1], " event=downstream_unreachable ", "detail="), 1);
	remove_run(&r);
}
