/* Helpers for the suites that run the built programs on a three-stage chain: synthetic IDX data
 * written by the test, ephemeral loopback ports, necklace-stage/necklace-run from NK_BUILDDIR,
 * waiting for processes and reading their logs. Runs bounded by epochs (setup_run_epochs,
 * spawn_stage) train the same batches at every stage however fast the machine is. */
#ifndef NK_RUN_TEST_H
#define NK_RUN_TEST_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "src/rng.h"
#include "tests/net_test.h"
#include "tests/nk_test.h"

#define SIDE 12

struct run {
	char dir[256], chain[300], state[300], log[3][300];
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

/* IDX files DIR/STEM-images and DIR/STEM-labels of n side x side images: headers written
 * here, pixels (16 + i * side * side) and labels (8 + i) by fill(img, lab, ctx). */
static inline void write_idx_with(const char *dir, const char *stem, int n, int side,
				  void (*fill)(uint8_t *img, uint8_t *lab, void *ctx), void *ctx)
{
	size_t isz = 16 + (size_t)n * side * side;
	uint8_t *img = calloc(isz, 1), *lab = calloc(8 + (size_t)n, 1);
	char path[512];
	be32(img, 0x803);
	be32(img + 4, (uint32_t)n);
	be32(img + 8, (uint32_t)side);
	be32(img + 12, (uint32_t)side);
	be32(lab, 0x801);
	be32(lab + 4, (uint32_t)n);
	fill(img, lab, ctx);
	snprintf(path, sizeof path, "%s/%s-images", dir, stem);
	cr_assert_eq(nk_test_write(path, img, isz), 0);
	snprintf(path, sizeof path, "%s/%s-labels", dir, stem);
	cr_assert_eq(nk_test_write(path, lab, 8 + (size_t)n), 0);
	free(img);
	free(lab);
}

struct bars {
	int n, noise;
	uint64_t seed;
};

static inline void fill_bars(uint8_t *img, uint8_t *lab, void *ctx)
{
	const struct bars *b = ctx;
	const int n = b->n, noise = b->noise;
	struct nk_rng r;
	rng_seed(&r, b->seed);
	uint8_t bar = noise > 200 ? 140 : 255;
	for (int i = 0; i < n; i++) {
		int k = (int)rng_below(&r, 10);
		uint8_t *p = img + 16 + (size_t)i * SIDE * SIDE;
		for (int j = 0; j < SIDE * SIDE; j++)
			p[j] = (uint8_t)rng_below(&r, (uint32_t)noise);
		for (int j = 2; j < SIDE - 2; j++) {
			if (k < 5)
				p[(2 * k + 1) * SIDE + j] = bar;
			else
				p[j * SIDE + 2 * (k - 5) + 1] = bar;
		}
		lab[8 + i] = (uint8_t)k;
	}
}

/* n images of SIDE x SIDE: class k is a bar on row k+1 (k < 5) or column k-4, on noise below
 * `noise` (at most 256: the higher, the harder; above 200 the bar is dimmer too). */
static inline void write_idx(const char *dir, const char *stem, int n, uint64_t seed, int noise)
{
	struct bars b = {n, noise, seed};
	write_idx_with(dir, stem, n, SIDE, fill_bars, &b);
}

/* Data and a chain of three SGD stages (conv 8 3x3 + relu, linear head) in a fresh folder; data
 * holds the keys of "data" after the files and the batch (32), top more top-level keys. */
static inline void setup_run_data(struct run *r, int ntrain, int ntest, int noise, double lr, const char *data,
				  const char *top)
{
	char text[4096], st[3][400];
	cr_assert_not_null(nk_test_tmpdir(r->dir, sizeof r->dir));
	write_idx(r->dir, "train", ntrain, 1, noise);
	write_idx(r->dir, "test", ntest, 2, noise);
	for (int i = 0; i < 3; i++)
		snprintf(st[i], sizeof st[i],
			 "  {\"name\": \"%s\", \"listen\": \"127.0.0.1:%d\", \"layers\": [{\"conv\": {\"filters\": 8, "
			 "\"kernel\": 3, \"pad\": 1}}, \"relu\"],\n   \"head\": \"linear\", \"optimizer\": {\"sgd\": "
			 "{\"lr\": %g, \"momentum\": 0.9}}}", names[i], nt_free_port(), lr);
	snprintf(text, sizeof text,
		 "{\"chain\": \"t-run\", \"seed\": 3, %s\n"
		 " \"data\": {\"format\": \"idx\", \"dir\": \"%s\", \"train\": [\"train-images\", \"train-labels\"],\n"
		 "          \"test\": [\"test-images\", \"test-labels\"], \"batch\": 32, %s},\n"
		 " \"stages\": [\n%s,\n%s,\n%s]}\n", top, r->dir, data, st[0], st[1], st[2]);
	snprintf(r->chain, sizeof r->chain, "%s/chain.json", r->dir);
	snprintf(r->state, sizeof r->state, "%s/state", r->dir);
	cr_assert_eq(nk_test_write(r->chain, text, strlen(text)), 0);
	for (int i = 0; i < 3; i++)
		snprintf(r->log[i], sizeof r->log[i], "%s/%s.log", r->dir, names[i]);
}

/* setup_run_data for runs bounded by seconds: 1000 epochs at `rate` batches a second (0: as fast
 * as taken); top adds top-level keys (e.g. "\"checkpoint_every\": 20,"). */
static inline void setup_run_ex(struct run *r, double rate, int ntrain, int ntest, int noise, double lr,
			 const char *top)
{
	char data[80];
	snprintf(data, sizeof data, "\"epochs\": 1000, \"rate\": %g", rate);
	setup_run_data(r, ntrain, ntest, noise, lr, data, top);
}

#define TEST_LIMIT 32 /* samples of the test passes during training in setup_run_epochs */

/* setup_run_data for runs bounded by batches: `epochs` epochs as fast as the chain takes them, a
 * test pass over the first TEST_LIMIT test samples after every train batch, the whole test set at
 * the end. A stage drops a train batch only for a newer train batch behind it in its inbox or
 * outbox, never a test batch, and waits for its downstream before a test batch: so every stage
 * trains every batch, at any speed. */
static inline void setup_run_epochs(struct run *r, int epochs, int ntrain, int ntest, int noise, double lr,
				    const char *top)
{
	char data[80], keys[300];
	snprintf(data, sizeof data, "\"epochs\": %d, \"test_every\": 1", epochs);
	snprintf(keys, sizeof keys, "\"test_limit\": %d, %s", TEST_LIMIT, top);
	setup_run_data(r, ntrain, ntest, noise, lr, data, keys);
}

/* Train batches in an epoch of n samples (the last one partial). */
static inline int batches_of(int n)
{
	return (n + 31) / 32;
}

/* Fork and exec argv (argv[0]: the program) with one OpenMP thread, stdout into out (NULL:
 * discarded), stderr into err (NULL: the test's). On Linux it dies with the test (SIGKILL), so a
 * failed assertion leaves no stage running. */
static inline pid_t spawn_argv(const char *const *argv, const char *out, const char *err)
{
	pid_t parent = getpid(), pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
#ifdef __linux__
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(125);
#endif
		setenv("OMP_NUM_THREADS", "1", 1);
		if (!freopen(out ? out : "/dev/null", "w", stdout) || (err && !freopen(err, "w", stderr)))
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Start stage i: chain, name, logs and state of the run, --quiet, then pre and extra (each
 * NULL-terminated, may be NULL). */
static inline pid_t spawn_args(struct run *r, int i, const char *const *pre, const char *const *extra)
{
	const char *bd = getenv("NK_BUILDDIR");
	char bin[512];
	const char *argv[40] = {bin, "-c", r->chain, "-s", names[i], "--log-dir", r->dir, "--state-dir",
				r->state, "--quiet"};
	int k = 10;
	snprintf(bin, sizeof bin, "%s/necklace-stage", bd ? bd : ".");
	for (; pre && *pre && k < 20; pre++)
		argv[k++] = *pre;
	for (; extra && *extra && k < 39; extra++)
		argv[k++] = *extra;
	argv[k] = NULL;
	return spawn_argv(argv, NULL, NULL);
}

/* Start stage i with extra arguments (NULL-terminated, may be NULL); the source trains for
 * `seconds`, the others stop by themselves after 60 s. */
static inline pid_t spawn_ex(struct run *r, int i, double seconds, const char *const *extra)
{
	char secs[32];
	const char *pre[] = {"--seconds", secs, NULL};
	snprintf(secs, sizeof secs, "%g", i == 0 ? seconds : 60.0);
	return spawn_args(r, i, pre, extra);
}

#define STAGE_LIMIT_S "600" /* spawn_stage: a backstop for the stages after the source */

/* Start stage i of a run bounded by epochs (setup_run_epochs): the source trains them all, the
 * others stop at its Stop (or after STAGE_LIMIT_S seconds should it never come). Each waits up to
 * 60 s for its downstream before a test batch. extra: more arguments (may be NULL). */
static inline pid_t spawn_stage(struct run *r, int i, const char *const *extra)
{
	const char *source[] = {"--wait", "60", NULL};
	const char *other[] = {"--wait", "60", "--seconds", STAGE_LIMIT_S, NULL};
	return i == 0 ? spawn_args(r, i, source, extra) : spawn_args(r, i, other, extra);
}

/* Wait (at most timeout_s) for pid; its wait status, or -1 after killing it on timeout. */
static inline int wait_for(pid_t pid, double timeout_s)
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

static inline void expect_clean_exit(struct run *r, int i, double timeout_s)
{
	int st = wait_for(r->pid[i], timeout_s);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "stage %s: wait status %d",
		  names[i], st);
}

/* The value of key in the last line of path holding every needle (NULL-terminated); -1 if none. */
static inline double last_value(const char *path, const char *const *needles, const char *key)
{
	FILE *f = fopen(path, "r");
	char line[4096], k[80];
	double v = -1;
	snprintf(k, sizeof k, " %s=", key);
	while (f && fgets(line, sizeof line, f)) {
		int all = 1;
		for (const char *const *p = needles; *p; p++)
			all &= strstr(line, *p) != NULL;
		char *at = strstr(line, k);
		if (all && at)
			v = atof(at + strlen(k));
	}
	if (f)
		fclose(f);
	return v;
}

static inline double sink_test_acc(struct run *r)
{
	const char *needles[] = {" phase=test ", NULL};
	return last_value(r->log[2], needles, "test_acc");
}

/* Remove the run's folder (only reached when every assertion held: failures keep the logs). */
static inline void remove_run(struct run *r)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
	cr_assert_eq(system(cmd), 0);
}

static inline int count(const char *log, const char *a, const char *b)
{
	const char *needles[] = {a, b, NULL};
	return nt_log_count(log, needles);
}

/* Run a program of the build with args, stdout into out (NULL: discarded) and stderr into err;
 * its wait status, or -1 when it did not exit within timeout_s (it is killed). */
static inline int run_prog_io(const char *prog, const char *const *args, const char *out, const char *err,
			      double timeout_s)
{
	const char *bd = getenv("NK_BUILDDIR");
	char bin[512];
	const char *argv[32] = {bin};
	int k = 1;
	snprintf(bin, sizeof bin, "%s/%s", bd ? bd : ".", prog);
	for (; *args && k < 31; args++)
		argv[k++] = *args;
	argv[k] = NULL;
	return wait_for(spawn_argv(argv, out, err), timeout_s);
}

/* Run a program of the build with args, its stdout into out (NULL: discarded), stderr
 * discarded; its exit status (-1 when it did not exit within timeout_s). */
static inline int run_prog_out(const char *prog, const char *const *args, const char *out, double timeout_s)
{
	int st = run_prog_io(prog, args, out, "/dev/null", timeout_s);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A stage's phase=stage event=counts line: what became of its train batches. An upstream's
 * sent - unsent is its downstream's trained + skipped + dropped + refused. */
struct counts {
	long sent, unsent, trained, skipped, dropped, refused;
};

static inline struct counts counts_of(const char *log)
{
	const char *needles[] = {" phase=stage ", " event=counts ", NULL};
	cr_assert_eq(nt_log_count(log, needles), 1, "%s: not one counts line", log);
	struct counts c = {(long)last_value(log, needles, "sent"), (long)last_value(log, needles, "unsent"),
			   (long)last_value(log, needles, "trained"), (long)last_value(log, needles, "skipped"),
			   (long)last_value(log, needles, "dropped"), (long)last_value(log, needles, "refused")};
	return c;
}

/* The upstream's train batches sent (and `extra` more from a peer that is not in the chain) are
 * all accounted for at the downstream. */
static inline void expect_accounted(struct counts up, struct counts down, long extra, const char *link)
{
	cr_assert_eq(up.sent - up.unsent + extra, down.trained + down.skipped + down.dropped + down.refused,
		     "%s: sent %ld - unsent %ld + %ld from outside != trained %ld + skipped %ld + dropped %ld + "
		     "refused %ld", link, up.sent, up.unsent, extra, down.trained, down.skipped, down.dropped,
		     down.refused);
}

/* The batch= of a stage's last train line (-1: none). */
static inline long last_train_batch(const char *log)
{
	const char *needles[] = {" phase=train ", NULL};
	return (long)last_value(log, needles, "batch");
}

#endif
