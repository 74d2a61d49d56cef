/* Start-up and restarts: a stage that fails at any point of its start-up exits (never hangs)
 * with its message on stderr, hundreds of times over; necklace-run gives up as soon as one stage
 * fails; checkpoints come by time too, and a restarted stage says whether it resumed and from
 * what, or started fresh and why. */
#include <fcntl.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "src/chain.h"
#include "tests/run_test.h"

#define NTRAIN 1000
#define NTEST 200

static int file_has(const char *path, const char *needle)
{
	char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* A copy of the run's chain file with the training images renamed to a file that is not there. */
static void misspelt_chain(const struct run *r, char *out, size_t len)
{
	char text[8192], *p;
	FILE *f = fopen(r->chain, "r");
	cr_assert_not_null(f);
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	cr_assert_not_null(p = strstr(text, "\"train-images\""));
	memcpy(p, "\"train-imagez\"", 14);
	snprintf(out, len, "%s/misspelt.json", r->dir);
	cr_assert_eq(nk_test_write(out, text, n), 0);
}

Test(startup, every_failure_exits_with_its_message, .timeout = 600)
{
	struct run r;
	char err[NK_ERR_LEN] = "", bad_chain[400], missing[400], errpath[400], ckdir[400], ck[450],
	     logfile[400], busy[64];
	setup_run_ex(&r, 0, NTRAIN, NTEST, 90, 0.01, "");
	misspelt_chain(&r, bad_chain, sizeof bad_chain);
	snprintf(missing, sizeof missing, "%s/no-such-chain.json", r.dir);
	snprintf(errpath, sizeof errpath, "%s/stderr", r.dir);
	/* a corrupt checkpoint of s1 in its own state folder */
	snprintf(ckdir, sizeof ckdir, "%s/badstate", r.dir);
	cr_assert_eq(mkdir(ckdir, 0755), 0);
	snprintf(ck, sizeof ck, "%s/s1.ckpt", ckdir);
	cr_assert_eq(nk_test_write(ck, "not a checkpoint at all", 23), 0);
	/* a file where the log folder should be */
	snprintf(logfile, sizeof logfile, "%s/logs-are-a-file", r.dir);
	cr_assert_eq(nk_test_write(logfile, "x", 1), 0);
	/* s1's listen port held by someone else */
	struct chain *c = NULL;
	cr_assert_eq(chain_load(&c, r.chain, err), 0, "%s", err);
	int port1 = atoi(strrchr(c->stages[1].listen, ':') + 1);
	chain_free(c);
	int holder = nt_listen(port1);
	cr_assert_geq(holder, 0);
	snprintf(busy, sizeof busy, "cannot listen on 127.0.0.1:%d", port1);

	const struct {
		const char *what;
		const char *args[16];
		int status;          /* exit status expected */
		const char *needle;  /* on stderr */
	} cases[] = {
		{"misspelt training file at the source",
		 {"-c", bad_chain, "-s", "s0", "--log-dir", r.dir, "--state-dir", r.state, "--quiet", NULL},
		 2, "train-imagez"},
		{"missing chain file", {"-c", missing, "-s", "s0", "--quiet", NULL}, 2, "no-such-chain.json"},
		{"listen port in use",
		 {"-c", r.chain, "-s", "s1", "--log-dir", r.dir, "--state-dir", r.state, "--quiet", NULL},
		 1, busy},
		{"corrupt checkpoint",
		 {"-c", r.chain, "-s", "s1", "--log-dir", r.dir, "--state-dir", ckdir, "--quiet", NULL},
		 2, ck},
		{"log folder is a file",
		 {"-c", r.chain, "-s", "s2", "--log-dir", logfile, "--state-dir", r.state, "--quiet", NULL},
		 1, "logs-are-a-file"},
	};
	const int ncases = sizeof cases / sizeof cases[0], rounds = 40; /* 200 starts */
	for (int k = 0; k < rounds; k++) {
		for (int i = 0; i < ncases; i++) {
			int st = run_prog_io("necklace-stage", cases[i].args, NULL, errpath, 20);
			cr_assert(st >= 0, "round %d, %s: still running after 20 s", k, cases[i].what);
			cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == cases[i].status,
				  "round %d, %s: wait status %d, want exit %d", k, cases[i].what, st,
				  cases[i].status);
			cr_assert(file_has(errpath, cases[i].needle), "round %d, %s: stderr does not name "
				  "'%s'", k, cases[i].what, cases[i].needle);
		}
	}
	close(holder);
	remove_run(&r);
}

Test(startup, necklace_run_fails_as_soon_as_a_stage_does, .timeout = 120)
{
	struct run r;
	char bad_chain[400], errpath[400], logs[400], state[400];
	setup_run_ex(&r, 0, NTRAIN, NTEST, 90, 0.01, "");
	misspelt_chain(&r, bad_chain, sizeof bad_chain);
	snprintf(errpath, sizeof errpath, "%s/stderr", r.dir);
	snprintf(logs, sizeof logs, "%s/runlogs", r.dir);
	snprintf(state, sizeof state, "%s/runstate", r.dir);
	const char *args[] = {"-c", bad_chain, "--seconds", "60", "--log-dir", logs, "--state-dir", state, NULL};
	for (int k = 0; k < 5; k++) {
		double t0 = nk_now();
		int st = run_prog_io("necklace-run", args, NULL, errpath, 60);
		cr_assert(st >= 0, "necklace-run still running after 60 s");
		cr_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0, "necklace-run: wait status %d", st);
		cr_assert(file_has(errpath, "train-imagez"), "the failing stage's message is not on stderr");
		/* well before the 60 s it was asked to train: it stopped the others at once */
		cr_assert_lt(nk_now() - t0, 45.0);
	}
	remove_run(&r);
}

Test(startup, checkpoints_by_time_and_restarts_say_what_they_resumed, .timeout = 150)
{
	struct run r;
	/* batches never reach checkpoint_every: only the clock makes checkpoints */
	setup_run_ex(&r, 40, NTRAIN, NTEST, 90, 0.01, "\"checkpoint_every\": 1000000, \"checkpoint_s\": 0.5,");
	r.pid[2] = spawn_ex(&r, 2, 0, NULL);
	r.pid[1] = spawn_ex(&r, 1, 0, NULL);
	r.pid[0] = spawn_ex(&r, 0, 10.0, NULL);
	cr_assert(nt_log_has(r.log[1], " phase=ckpt event=saved ", 30), "s1 made no checkpoint by time");
	const char *fresh[] = {" phase=ckpt ", " event=fresh ", "no checkpoint at ", NULL};
	cr_assert_eq(nt_log_count(r.log[1], fresh), 1, "the first start did not say it started fresh");
	const char *saved[] = {" phase=ckpt ", " event=saved ", NULL};
	double saved_step = last_value(r.log[1], saved, "step");
	kill(r.pid[1], SIGKILL);
	cr_assert_eq(wait_for(r.pid[1], 5) & 0x7f, SIGKILL);
	r.pid[1] = spawn_ex(&r, 1, 0, NULL);
	for (int i = 0; i < 3; i++)
		expect_clean_exit(&r, i, 90);
	const char *resumed[] = {" phase=ckpt ", " event=resumed ", " file=", NULL};
	cr_assert_eq(nt_log_count(r.log[1], resumed), 1, "the restarted s1 did not say it resumed");
	cr_assert_geq(last_value(r.log[1], resumed, "step"), saved_step,
		      "s1 resumed from an older checkpoint than the last one it saved");
	cr_assert_geq(saved_step, 1);
	/* --fresh says so */
	const char *args[] = {"-c", r.chain, "-s", "s1", "--log-dir", r.dir, "--state-dir", r.state,
			      "--quiet", "--fresh", "--seconds", "0.5", NULL};
	char errpath[400];
	snprintf(errpath, sizeof errpath, "%s/stderr", r.dir);
	int st = run_prog_io("necklace-stage", args, NULL, errpath, 30);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "wait status %d", st);
	const char *forced[] = {" phase=ckpt ", " event=fresh ", "--fresh", NULL};
	cr_assert_eq(nt_log_count(r.log[1], forced), 1);
	remove_run(&r);
}
