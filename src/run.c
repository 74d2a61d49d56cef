/* necklace-run: start every stage of a chain on this machine as a child process (one-host
 * simulation), show their progress from their logs, stop them all on Ctrl-C or when the source
 * is done. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "src/chain.h"
#include "stages/ckpt.h"
#include "stages/stage.h"

#define GRACE_S 120.0   /* after the source is done, the time the others get to finish */
#define GRACE_PREDICT_S 30.0 /* ... in predict mode */
#define KILL_S 10.0     /* after SIGTERM, the time before SIGKILL */
#define LINE_MAX_ 2048

struct child {
	const char *name;
	pid_t pid;              /* 0 once reaped */
	int status;             /* wait status */
	int exited;
	char log[PATH_MAX];
	long off;               /* log bytes already read */
	char train[LINE_MAX_];  /* last phase=train line */
	char test[LINE_MAX_];   /* last phase=test line */
};

struct run {
	struct chain *chain;
	const char *chain_path, *logdir, *stage_bin, *state_dir;
	double seconds, every, threshold, wait, rate;
	int predict, fresh;
	struct child *ch;
	int n;
	double t0;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: necklace-run -c CHAIN [--log-dir DIR] [--state-dir DIR] [--seconds S] [--fresh]\n"
		   "                    [--predict [--threshold T]] [--every S]\n"
		   "\n"
		   "Start every stage of the chain on this machine (necklace-stage, one process each,\n"
		   "sharing the CPU cores), print one progress line per stage every few seconds, and\n"
		   "stop them all when the source is done (it then sends the test set down the chain)\n"
		   "or on Ctrl-C. Each stage logs to DIR/NAME.log, checkpoints to STATEDIR/NAME.ckpt\n"
		   "and resumes from it when started again.\n"
		   "  -c, --chain FILE     chain file (JSON)\n"
		   "      --log-dir DIR    where the stages write their logs (default: logs)\n"
		   "      --state-dir DIR  checkpoints (default: the chain's state_dir, else state/CHAIN)\n"
		   "      --fresh          do not resume from checkpoints (they are overwritten)\n"
		   "      --seconds S      train S seconds (default: the chain's data.epochs)\n"
		   "      --predict        answer the test set with the trained chain (checkpoints)\n"
		   "                       and early exits; prints the report line (phase=predict)\n"
		   "      --threshold T    predict: exit threshold of every stage (0..1)\n"
		   "      --rate R         the source sends R batches a second (default: data.rate)\n"
		   "      --wait S         see necklace-stage --help (default 3)\n"
		   "      --every S        seconds between progress reports (default 5)\n"
		   "      --stage-bin P    the necklace-stage program (default: next to this one)\n"
		   "  -h, --help           this text\n"
		   "Exit status: 0 every stage ended cleanly, 1 a stage failed, 2 bad usage, chain file\n"
		   "or checkpoint.\n");
}

/* Value of key in a logfmt line, or "-". */
static void kv_get(const char *line, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);
	snprintf(out, len, "-");
	for (const char *p = line; (p = strstr(p, key)); p += kl) {
		if ((p == line || p[-1] == ' ') && p[kl] == '=') {
			size_t n = strcspn(p + kl + 1, " \n");
			snprintf(out, len, "%.*s", (int)NK_MIN(n, len - 1), p + kl + 1);
			return;
		}
	}
}

/* Read the lines a stage appended to its log since last time. */
static void read_log(struct child *c)
{
	FILE *f = fopen(c->log, "r");
	if (!f)
		return;
	char line[LINE_MAX_];
	if (fseek(f, c->off, SEEK_SET) == 0) {
		while (fgets(line, sizeof line, f)) {
			size_t n = strlen(line);
			if (n == 0 || line[n - 1] != '\n')
				break; /* a line still being written */
			c->off += (long)n;
			if (strstr(line, " phase=train "))
				snprintf(c->train, sizeof c->train, "%s", line);
			else if (strstr(line, " phase=test "))
				snprintf(c->test, sizeof c->test, "%s", line);
		}
	}
	fclose(f);
}

static void progress(struct run *r)
{
	for (int i = 0; i < r->n; i++) {
		struct child *c = &r->ch[i];
		char epoch[32], batch[32], of[32], eta[32], acc[32], tacc[32], sps[32], drop[32];
		read_log(c);
		kv_get(c->train, "epoch", epoch, sizeof epoch);
		kv_get(c->train, "batch", batch, sizeof batch);
		kv_get(c->train, "of", of, sizeof of);
		kv_get(c->train, "eta_s", eta, sizeof eta);
		kv_get(c->train, "acc", acc, sizeof acc);
		kv_get(c->train, "samples_s", sps, sizeof sps);
		kv_get(c->train, "dropped", drop, sizeof drop);
		kv_get(c->test, "test_acc", tacc, sizeof tacc);
		/* The source knows how long the run is: batch=DONE/TOTAL and eta_s= on its line. */
		printf("t=%.1f stage=%s state=%s epoch=%s batch=%s%s%s acc=%s test_acc=%s samples_s=%s dropped=%s%s%s\n",
		       nk_now() - r->t0, c->name, c->pid ? "running" : c->exited && WIFEXITED(c->status) &&
		       WEXITSTATUS(c->status) == 0 ? "done" : "failed", epoch, batch, *of != '-' ? "/" : "",
		       *of != '-' ? of : "", acc, tacc, sps, drop, *eta != '-' ? " eta_s=" : "",
		       *eta != '-' ? eta : "");
	}
	fflush(stdout);
}

/* The necklace-stage next to this program, else the one on PATH. */
static const char *find_stage_bin(char *buf, size_t len)
{
	char self[PATH_MAX - 64];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/necklace-stage", self);
			if (access(buf, X_OK) == 0)
				return buf;
		}
	}
	return "necklace-stage";
}

static pid_t spawn(struct run *r, int i, int threads)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	setpgid(0, 0); /* Ctrl-C reaches necklace-run, which stops the stages in order */
#ifdef __linux__
	prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
	char nt[16], secs[32];
	snprintf(nt, sizeof nt, "%d", threads);
	if (!getenv("OMP_NUM_THREADS"))
		setenv("OMP_NUM_THREADS", nt, 1);
	if (!getenv("OMP_WAIT_POLICY"))
		setenv("OMP_WAIT_POLICY", "passive", 1); /* processes share cores: no spinning */
	char thr[32], wait[32], rate[32];
	const char *argv[24] = {r->stage_bin, "-c", r->chain_path, "-s", r->ch[i].name, "--log-dir",
				r->logdir, "--quiet"};
	int k = 8;
	if (i == 0 && r->seconds > 0) {
		snprintf(secs, sizeof secs, "%g", r->seconds);
		argv[k++] = "--seconds";
		argv[k++] = secs;
	}
	if (r->state_dir) {
		argv[k++] = "--state-dir";
		argv[k++] = r->state_dir;
	}
	if (r->fresh)
		argv[k++] = "--fresh";
	if (r->predict)
		argv[k++] = "--predict";
	if (r->threshold >= 0) {
		snprintf(thr, sizeof thr, "%.17g", r->threshold);
		argv[k++] = "--threshold";
		argv[k++] = thr;
	}
	if (i == 0 && r->rate > 0) {
		snprintf(rate, sizeof rate, "%g", r->rate);
		argv[k++] = "--rate";
		argv[k++] = rate;
	}
	if (r->wait > 0) {
		snprintf(wait, sizeof wait, "%g", r->wait);
		argv[k++] = "--wait";
		argv[k++] = wait;
	}
	argv[k] = NULL;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	execvp(r->stage_bin, (char *const *)argv);
	fprintf(stderr, "necklace-run: cannot run %s: %s\n", r->stage_bin, strerror(errno));
	_exit(127);
}

static int alive(const struct run *r)
{
	int k = 0;
	for (int i = 0; i < r->n; i++)
		k += r->ch[i].pid != 0;
	return k;
}

static void reap(struct run *r)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (int i = 0; i < r->n; i++) {
			if (r->ch[i].pid == pid) {
				r->ch[i].pid = 0;
				r->ch[i].status = st;
				r->ch[i].exited = 1;
			}
		}
	}
}

static int failed(const struct child *c)
{
	return c->exited && !(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0);
}

static void signal_all(struct run *r, int sig)
{
	for (int i = 0; i < r->n; i++)
		if (r->ch[i].pid)
			kill(r->ch[i].pid, sig);
}

static void nap(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

/* Watch the children until all are gone; returns 1 when any failed. */
static int supervise(struct run *r)
{
	double next = nk_now() + r->every, done_at = 0, term_at = 0;
	int any_failed = 0;
	while (alive(r)) {
		nap(0.1);
		reap(r);
		for (int i = 0; i < r->n; i++)
			any_failed |= failed(&r->ch[i]);
		double now = nk_now();
		if (!done_at && r->ch[0].exited)
			done_at = now; /* the others get the Stop through the chain */
		if (!term_at && (any_failed || interrupted)) {
			fprintf(stderr, "necklace-run: %s: stopping every stage\n",
				interrupted ? "interrupted" : "a stage failed");
			signal_all(r, SIGTERM);
			term_at = now;
		}
		double grace = r->predict ? GRACE_PREDICT_S : GRACE_S;
		if (done_at && !term_at && now - done_at > grace) {
			fprintf(stderr, "necklace-run: stages still running %.0f s after the source ended: "
				"stopping them\n", grace);
			signal_all(r, SIGTERM);
			term_at = now;
			any_failed = 1;
		}
		if (term_at && now - term_at > KILL_S)
			signal_all(r, SIGKILL);
		if (now >= next) {
			progress(r);
			next = now + r->every;
		}
	}
	return any_failed;
}

static int start(struct run *r, char err[NK_ERR_LEN])
{
	for (int i = 0; i < r->n; i++)
		r->ch[i].name = r->chain->stages[i].name;
	if (nk_mkdirs(r->logdir) != 0)
		return nk_errf(err, NK_EIO, "%s: cannot create log directory: %s", r->logdir, strerror(errno));
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = (int)NK_MAX(1, (cores > 0 ? cores : 1) / r->n);
	for (int i = 0; i < r->n; i++) {
		struct child *c = &r->ch[i];
		struct stat st;
		snprintf(c->log, sizeof c->log, "%s/%s.log", r->logdir, c->name);
		c->off = stat(c->log, &st) == 0 ? (long)st.st_size : 0; /* only this run's lines */
	}
	printf("necklace-run: %d stages of %s, %d thread%s each, logs in %s/\n", r->n, r->chain->name,
	       threads, threads == 1 ? "" : "s", r->logdir);
	fflush(stdout);
	for (int i = r->n - 1; i >= 0; i--) { /* downstream first: fewer early batches lost */
		if ((r->ch[i].pid = spawn(r, i, threads)) < 0) {
			r->ch[i].pid = 0;
			return nk_errf(err, NK_EIO, "cannot start stage %s: %s", r->ch[i].name, strerror(errno));
		}
	}
	return 0;
}

static void summary(struct run *r, int any_failed)
{
	for (int i = 0; i < r->n; i++) {
		struct child *c = &r->ch[i];
		read_log(c);
		if (c->test[0])
			fputs(c->test, stdout);
		if (failed(c)) {
			if (WIFSIGNALED(c->status))
				printf("necklace-run: stage %s killed by signal %d\n", c->name, WTERMSIG(c->status));
			else
				printf("necklace-run: stage %s exited with status %d\n", c->name,
				       WEXITSTATUS(c->status));
		}
	}
	char acc[32];
	const char *how = any_failed ? "FAILED" : interrupted ? "interrupted" : "done";
	kv_get(r->ch[r->n - 1].test, "test_acc", acc, sizeof acc);
	if (r->predict)
		printf("necklace-run: predict %s after %.1f s\n", how, nk_now() - r->t0);
	else
		printf("necklace-run: %s after %.1f s: sink %s test_acc=%s\n", how, nk_now() - r->t0,
		       r->ch[r->n - 1].name, acc);
}

/* Every stage's checkpoint, before anything starts: none is another chain's or corrupt; in
 * predict mode, every one is there. */
static int check_state(struct run *r, char err[NK_ERR_LEN])
{
	struct stage_opts o = {.state_dir = r->state_dir, .fresh = r->fresh, .predict = r->predict};
	for (int i = 0; i < r->chain->nstages; i++) {
		int rc = stage_read_ckpt(r->chain, i, &o, NULL, err);
		if (rc && !(rc == NK_ENOENT && !r->predict))
			return rc;
	}
	return 0;
}

static int parse_args(struct run *r, int argc, char **argv)
{
	static const struct option opts[] = {
		{"chain", required_argument, 0, 'c'}, {"log-dir", required_argument, 0, 'l'},
		{"seconds", required_argument, 0, 't'}, {"every", required_argument, 0, 'e'},
		{"stage-bin", required_argument, 0, 'b'}, {"state-dir", required_argument, 0, 'S'},
		{"fresh", no_argument, 0, 'F'}, {"predict", no_argument, 0, 'P'},
		{"threshold", required_argument, 0, 'T'}, {"wait", required_argument, 0, 'w'},
		{"rate", required_argument, 0, 'r'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	char *end;
	int c;
	while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		double *d = c == 't' ? &r->seconds : c == 'w' ? &r->wait : c == 'r' ? &r->rate : &r->every;
		switch (c) {
		case 'c': r->chain_path = optarg; break;
		case 'l': r->logdir = optarg; break;
		case 'b': r->stage_bin = optarg; break;
		case 'S': r->state_dir = optarg; break;
		case 'F': r->fresh = 1; break;
		case 'P': r->predict = 1; break;
		case 'T':
			r->threshold = strtod(optarg, &end);
			if (*end || !(r->threshold >= 0 && r->threshold <= 1)) {
				fprintf(stderr, "necklace-run: --threshold wants a probability in [0, 1], not "
					"'%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
		case 'e':
		case 'w':
		case 'r':
			*d = strtod(optarg, &end);
			if (*end || !(*d > 0)) {
				fprintf(stderr, "necklace-run: --%s wants a positive number, not '%s'\n",
					c == 't' ? "seconds" : c == 'w' ? "wait" : c == 'r' ? "rate" : "every",
					optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!r->chain_path || optind < argc) {
		usage(stderr);
		return 2;
	}
	if (r->threshold >= 0 && !r->predict) {
		fprintf(stderr, "necklace-run: --threshold is for predict mode (--predict)\n");
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct run r = {.logdir = "logs", .every = 5.0, .threshold = -1};
	char err[NK_ERR_LEN] = "", binbuf[PATH_MAX + 64];
	int rc = parse_args(&r, argc, argv), in_c, in_h, in_w;
	if (rc >= 0)
		return rc;
	rc = chain_load(&r.chain, r.chain_path, err);
	if (rc == 0)
		rc = stage_data_dims(r.chain, &in_c, &in_h, &in_w, err);
	if (rc == 0)
		rc = stage_check_chain(r.chain, in_c, in_h, in_w, err);
	if (rc == 0)
		rc = check_state(&r, err);
	if (rc) {
		fprintf(stderr, "necklace-run: %s\n", err);
		chain_free(r.chain);
		return rc == NK_ENOMEM ? 1 : 2;
	}
	if (!r.stage_bin)
		r.stage_bin = find_stage_bin(binbuf, sizeof binbuf);
	r.n = r.chain->nstages;
	r.ch = calloc((size_t)r.n, sizeof *r.ch);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	r.t0 = nk_now();
	rc = r.ch ? start(&r, err) : nk_errf(err, NK_ENOMEM, "out of memory");
	if (rc) {
		fprintf(stderr, "necklace-run: %s\n", err);
		signal_all(&r, SIGTERM);
	}
	int any_failed = r.ch ? supervise(&r) : 1;
	if (r.ch)
		summary(&r, any_failed || rc);
	free(r.ch);
	chain_free(r.chain);
	return any_failed || rc ? 1 : 0;
}
