/* Helpers for the suites that run the built programs on a three-stage chain: synthetic IDX data
 * written by the test, ephemeral loopback ports, necklace-stage/necklace-run from NK_BUILDDIR,
 * waiting for processes and reading their logs. */
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

/* Data and a chain of three SGD stages (conv 8 3x3 + relu, linear head) in a fresh folder; top
 * adds top-level keys (e.g. "\"checkpoint_every\": 20,"). */
static inline void setup_run_ex(struct run *r, double rate, int ntrain, int ntest, int noise, double lr,
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
		 "          \"test\": [\"test-images\", \"test-labels\"], \"batch\": 32, \"epochs\": 1000, \"rate\": %g},\n"
		 " \"stages\": [\n%s,\n%s,\n%s]}\n", top, r->dir, rate, st[0], st[1], st[2]);
	snprintf(r->chain, sizeof r->chain, "%s/chain.json", r->dir);
	snprintf(r->state, sizeof r->state, "%s/state", r->dir);
	cr_assert_eq(nk_test_write(r->chain, text, strlen(text)), 0);
	for (int i = 0; i < 3; i++)
		snprintf(r->log[i], sizeof r->log[i], "%s/%s.log", r->dir, names[i]);
}

/* Start stage i with extra arguments (NULL-terminated, may be NULL); the source trains for
 * `seconds`, the others stop by themselves after 60 s. */
static inline pid_t spawn_ex(struct run *r, int i, double seconds, const char *const *extra)
{
	const char *bd = getenv("NK_BUILDDIR");
	char bin[512], secs[32];
	const char *argv[32] = {bin, "-c", r->chain, "-s", names[i], "--log-dir", r->dir, "--state-dir",
				r->state, "--quiet", "--seconds", secs};
	int k = 12;
	snprintf(bin, sizeof bin, "%s/necklace-stage", bd ? bd : ".");
	snprintf(secs, sizeof secs, "%g", i == 0 ? seconds : 60.0);
	for (; extra && *extra && k < 31; extra++)
		argv[k++] = *extra;
	argv[k] = NULL;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setenv("OMP_NUM_THREADS", "1", 1);
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
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

/* Run a program of the build with args, its stdout into out (NULL: discarded); its exit status
 * (-1 when it did not exit within timeout_s). */
static inline int run_prog_out(const char *prog, const char *const *args, const char *out, double timeout_s)
{
	const char *bd = getenv("NK_BUILDDIR");
	char bin[512];
	const char *argv[32] = {bin};
	int k = 1;
	snprintf(bin, sizeof bin, "%s/%s", bd ? bd : ".", prog);
	for (; *args && k < 31; args++)
		argv[k++] = *args;
	argv[k] = NULL;
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		setenv("OMP_NUM_THREADS", "1", 1);
		if (!freopen(out ? out : "/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
			_exit(126);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	int st = wait_for(pid, timeout_s);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
