/* The chain end to end: three necklace-stage processes on ephemeral loopback ports train an SGD
 * chain on a small synthetic data set, every stage logs its train lines and test passes (at epoch
 * ends and at the end), the sink beats chance, Stop ends all three with status 0; a downstream
 * started late, and a middle stage killed (SIGKILL) and restarted mid-run, are reconnected to and
 * the restarted stage resumes from its checkpoint; a stage without its downstream keeps training
 * and counts what it could not send. */
#include "tests/run_test.h"

#define NTRAIN 2000
#define NTEST 500

static void setup_run(struct run *r, double rate)
{
	setup_run_ex(r, rate, NTRAIN, NTEST, 90, 0.01, "\"checkpoint_every\": 20,");
}

static pid_t spawn(struct run *r, int i, double seconds)
{
	return spawn_ex(r, i, seconds, NULL);
}

static int run_prog(const char *prog, const char *const *args)
{
	return run_prog_out(prog, args, NULL, 30);
}

Test(chain_run, three_stages_train_test_and_stop, .timeout = 90)
{
	struct run r;
	setup_run(&r, 60);
	for (int i = 2; i >= 0; i--)
		r.pid[i] = spawn(&r, i, 6.0);
	for (int i = 0; i < 3; i++)
		expect_clean_exit(&r, i, 60);
	long batches = 0;
	for (int i = 0; i < 3; i++) {
		cr_assert_geq(count(r.log[i], " phase=train ", " loss="), 3, "%s logged no train lines", names[i]);
		/* epoch ends (63 batches) during the 6 s, then the final pass */
		cr_assert_geq(count(r.log[i], " phase=test ", " n=500"), 3, "%s: too few test passes", names[i]);
		cr_assert_eq(count(r.log[i], " event=stop ", "reason="), 1, "%s: no stop line", names[i]);
		cr_assert_geq(count(r.log[i], " phase=ckpt ", " event=saved "), 2, "%s: no checkpoints", names[i]);
	}
	FILE *f = fopen(r.log[2], "r");
	char line[4096];
	while (f && fgets(line, sizeof line, f)) {
		char *p = strstr(line, " batch=");
		if (p && strstr(line, " phase=train "))
			batches = atol(p + 7);
	}
	fclose(f);
	cr_assert_geq(batches, 150, "the sink's last train batch is only %ld", batches);
	double acc = sink_test_acc(&r);
	cr_assert_gt(acc, 0.5, "sink test_acc %.3f (chance is 0.1)", acc);
	remove_run(&r);
}

Test(chain_run, late_downstream_and_restarted_middle_rejoin, .timeout = 120)
{
	struct run r;
	setup_run(&r, 40);
	r.pid[0] = spawn(&r, 0, 12.0);
	r.pid[1] = spawn(&r, 1, 0);
	cr_assert(nt_log_has(r.log[1], " event=waiting link=down ", 5), "s1 never tried its downstream");
	r.pid[2] = spawn(&r, 2, 0); /* the downstream after its upstream */
	cr_assert(nt_log_has(r.log[1], " event=connected link=down peer=s2", 5));
	cr_assert(nt_log_has(r.log[2], " phase=train ", 10), "s2 never trained");
	kill(r.pid[1], SIGKILL);
	cr_assert_eq(wait_for(r.pid[1], 5) & 0x7f, SIGKILL);
	cr_assert(nt_log_has(r.log[2], " event=lost link=up ", 5), "s2 did not notice");
	cr_assert(nt_log_has(r.log[0], " event=lost link=down ", 5), "s0 did not notice");
	nt_sleep(0.5);
	r.pid[1] = spawn(&r, 1, 0);
	for (int i = 0; i < 3; i++)
		expect_clean_exit(&r, i, 60);
	cr_assert_eq(count(r.log[1], " event=start ", " role=relay"), 2);
	const char *resumed[] = {" phase=ckpt ", " event=resumed ", NULL};
	double step = last_value(r.log[1], resumed, "step");
	cr_assert_geq(step, 20, "the restarted s1 did not resume from its checkpoint (step %g)", step);
	cr_assert_geq(count(r.log[0], " event=connected ", " link=down "), 2, "s0 did not reconnect");
	cr_assert_geq(count(r.log[2], " event=connected ", " link=up "), 2, "s2 was not reconnected to");
	/* s2 trained on batches that came through the restarted s1 */
	FILE *f = fopen(r.log[2], "r");
	char line[4096];
	int ups = 0, after = 0;
	while (f && fgets(line, sizeof line, f)) {
		ups += strstr(line, " event=connected link=up ") != NULL;
		after += ups >= 2 && strstr(line, " phase=train ") != NULL;
	}
	fclose(f);
	cr_assert_geq(after, 2, "s2 logged %d train lines after the restart", after);
	const char *final[] = {" phase=test ", " n=500", NULL};
	cr_assert_gt(last_value(r.log[2], final, "test_acc"), 0.3, "the sink did not finish the last test pass");
	remove_run(&r);
}

Test(chain_run, bad_chain_or_stage_refused_before_anything_starts)
{
	struct run r;
	char text[4096], logs[320], path[320];
	setup_run(&r, 10);
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

Test(chain_run, stage_without_downstream_keeps_training_and_counts_unsent, .timeout = 60)
{
	struct run r;
	setup_run(&r, 60);
	r.pid[1] = spawn(&r, 1, 0);
	r.pid[0] = spawn(&r, 0, 4.0); /* s2 never starts */
	expect_clean_exit(&r, 0, 30);
	expect_clean_exit(&r, 1, 30);
	const char *train[] = {" phase=train ", NULL};
	cr_assert_geq(count(r.log[1], " phase=train ", " loss="), 2, "s1 stopped training");
	double unsent = last_value(r.log[1], train, "unsent");
	cr_assert_gt(unsent, 20, "s1 does not count the batches it could not send (unsent=%g)", unsent);
	cr_assert_geq(count(r.log[1], " phase=test ", " n=500"), 1, "s1 skipped its own test passes");
	cr_assert_eq(count(r.log[1], " event=downstream_unreachable ", "detail="), 1);
	remove_run(&r);
}
