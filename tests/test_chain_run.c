/* The chain end to end: three necklace-stage processes on ephemeral loopback ports train an SGD
 * chain on a small synthetic data set, every stage logs, the sink beats chance, Stop ends all
 * three with status 0; a downstream started late, and a middle stage killed (SIGKILL) and
 * restarted mid-run, are reconnected to and the chain goes on. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/rng.h"
#include "tests/net_test.h"
#include "tests/nk_test.h"

#define SIDE 12
#define NTRAIN 2000
#define NTEST 500

struct run {
	char dir[256], chain[300], log[3][300];
	pid_t pid[3];
};

static const char *const names[3] = {"s0", "s1", "s2"};

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* n images of SIDE x SIDE: class k is a bright bar on row k+1 (k < 5) or column k-4, plus noise. */
static void write_idx(const char *dir, const char *stem, int n, uint64_t seed)
{
	size_t isz = 16 + (size_t)n * SIDE * SIDE;
	uint8_t *img = calloc(isz, 1), *lab = calloc(8 + (size_t)n, 1);
	struct nk_rng r;
	char path[512];
	rng_seed(&r, seed);
	be32(img, 0x803);
	be32(img + 4, (uint32_t)n);
	be32(img + 8, SIDE);
	be32(img + 12, SIDE);
	be32(lab, 0x801);
	be32(lab + 4, (uint32_t)n);
	for (int i = 0; i < n; i++) {
		int k = (int)rng_below(&r, 10);
		uint8_t *p = img + 16 + (size_t)i * SIDE * SIDE;
		for (int j = 0; j < SIDE * SIDE; j++)
			p[j] = (uint8_t)rng_below(&r, 90);
		for (int j = 2; j < SIDE - 2; j++) {
			if (k < 5)
				p[(2 * k + 1) * SIDE + j] = 255;
			else
				p[j * SIDE + 2 * (k - 5) + 1] = 255;
		}
		lab[8 + i] = (uint8_t)k;
	}
	snprintf(path, sizeof path, "%s/%s-images", dir, stem);
	cr_assert_eq(nk_test_write(path, img, isz), 0);
	snprintf(path, sizeof path, "%s/%s-labels", dir, stem);
	cr_assert_eq(nk_test_write(path, lab, 8 + (size_t)n), 0);
	free(img);
	free(lab);
}

static void setup_run(struct run *r, double rate)
{
	char text[2048];
	cr_assert_not_null(nk_test_tmpdir(r->dir, sizeof r->dir));
	write_idx(r->dir, "train", NTRAIN, 1);
	write_idx(r->dir, "test", NTEST, 2);
	snprintf(text, sizeof text,
		 "{\"chain\": \"t-run\", \"seed\": 3,\n"
		 " \"data\": {\"format\": \"idx\", \"dir\": \"%s\", \"train\": [\"train-images\", \"train-labels\"],\n"
		 "          \"test\": [\"test-images\", \"test-labels\"], \"batch\": 32, \"epochs\": 1000, \"rate\": %g},\n"
		 " \"stages\": [\n"
		 "  {\"name\": \"s0\", \"listen\": \"127.0.0.1:%d\", \"layers\": [{\"conv\": {\"filters\": 8, \"kernel\": 3, \"pad\": 1}}, \"relu\"],\n"
		 "   \"head\": \"linear\", \"optimizer\": {\"sgd\": {\"lr\": 0.05, \"momentum\": 0.9}}},\n"
		 "  {\"name\": \"s1\", \"listen\": \"127.0.0.1:%d\", \"layers\": [{\"conv\": {\"filters\": 8, \"kernel\": 3, \"pad\": 1}}, \"relu\"],\n"
		 "   \"head\": \"linear\", \"optimizer\": {\"sgd\": {\"lr\": 0.05, \"momentum\": 0.9}}},\n"
		 "  {\"name\": \"s2\", \"listen\": \"127.0.0.1:%d\", \"layers\": [{\"conv\": {\"filters\": 8, \"kernel\": 3, \"pad\": 1}}, \"relu\"],\n"
		 "   \"head\": \"linear\", \"optimizer\": {\"sgd\": {\"lr\": 0.05, \"momentum\": 0.9}}}]}\n",
		 r->dir, rate, nt_free_port(), nt_free_port(), nt_free_port());
	snprintf(r->chain, sizeof r->chain, "%s/chain.json", r->dir);
	cr_assert_eq(nk_test_write(r->chain, text, strlen(text)), 0);
	for (int i = 0; i < 3; i++)
		snprintf(r->log[i], sizeof r->log[i], "%s/%s.log", r->dir, names[i]);
}

/* Start stage i; the source trains for `seconds`, the others stop by themselves after 60 s. */
static pid_t spawn(struct run *r, int i, double seconds)
{
	const char *bd = getenv("NK_BUILDDIR");
	char bin[512], secs[32];
	snprintf(bin, sizeof bin, "%s/necklace-stage", bd ? bd : ".");
	snprintf(secs, sizeof secs, "%g", i == 0 ? seconds : 60.0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setenv("OMP_NUM_THREADS", "1", 1);
		execl(bin, bin, "-c", r->chain, "-s", names[i], "--log-dir", r->dir, "--quiet", "--seconds",
		      secs, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Wait (at most timeout_s) for pid; its wait status, or -1 after killing it on timeout. */
static int wait_for(pid_t pid, double timeout_s)
{
	double end = nk_now() + timeout_s;
	int st;
	while (nk_now() < end) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		nt_sleep(0.05);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void expect_clean_exit(struct run *r, int i, double timeout_s)
{
	int st = wait_for(r->pid[i], timeout_s);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "stage %s: wait status %d",
		  names[i], st);
}

static double sink_test_acc(struct run *r)
{
	FILE *f = fopen(r->log[2], "r");
	char line[4096];
	double acc = -1;
	while (f && fgets(line, sizeof line, f)) {
		char *p = strstr(line, " test_acc=");
		if (p && strstr(line, " phase=test "))
			acc = atof(p + 10);
	}
	if (f)
		fclose(f);
	return acc;
}

/* Remove the run's folder (only reached when every assertion held: failures keep the logs). */
static void remove_run(struct run *r)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
	cr_assert_eq(system(cmd), 0);
}

static int count(const char *log, const char *a, const char *b)
{
	const char *needles[] = {a, b, NULL};
	return nt_log_count(log, needles);
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
		cr_assert_eq(count(r.log[i], " phase=test ", " n=500"), 1, "%s: no full test line", names[i]);
		cr_assert_eq(count(r.log[i], " event=stop ", "reason="), 1, "%s: no stop line", names[i]);
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
	cr_assert_eq(count(r.log[2], " phase=test ", " n=500"), 1, "the sink did not finish the test pass");
	remove_run(&r);
}

/* Run a program of the build with args; its exit status (-1 when it did not exit). */
static int run_prog(const char *prog, const char *const *args)
{
	const char *bd = getenv("NK_BUILDDIR");
	char bin[512];
	const char *argv[16] = {bin};
	int k = 1;
	snprintf(bin, sizeof bin, "%s/%s", bd ? bd : ".", prog);
	for (; *args && k < 15; args++)
		argv[k++] = *args;
	argv[k] = NULL;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		freopen("/dev/null", "w", stdout);
		freopen("/dev/null", "w", stderr);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	int st = wait_for(pid, 30);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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
