/* necklace-attack: replay the hostile peers of the robustness tests against a stage of a running
 * chain (for the soak and replay runs; not installed). */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "stages/link.h"
#include "stages/stage.h"
#include "tests/attack.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: necklace-attack -c CHAIN -s STAGE (--first | --live SECONDS)\n"
		   "\n"
		   "Plays a hostile peer that has the chain file against STAGE's listen address.\n"
		   "  --first         before STAGE's upstream is there: pass the upstream's Hello and\n"
		   "                  send batches of wrong shapes, +Inf, NaN and absurd values\n"
		   "  --live SECONDS  while the chain runs, in rounds: a second upstream's Hello and\n"
		   "                  Stop, random bytes, 80 connections that never finish a Hello,\n"
		   "                  20 frames of 64 MiB announced before a Hello\n"
		   "Prints one line per move and exits 0 when the stage refused every move it must\n"
		   "refuse, 1 when it did not, 2 on bad usage.\n");
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void nap(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

static int dial(const char *addr)
{
	char host[128], port[16];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	if (net_split_addr(addr, host, sizeof host, port, sizeof port) || getaddrinfo(host, port, &hints, &ai))
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM, 0);
	struct timeval tv = {3, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

/* Whether the stage closed fd within timeout_s (reads its Hello and anything else first). */
static int closed_by_stage(int fd, double timeout_s)
{
	char buf[4096];
	double end = now_s() + timeout_s;
	while (now_s() < end) {
		ssize_t k = recv(fd, buf, sizeof buf, 0);
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return 1;
	}
	return 0;
}

static int first(const struct chain *c, int idx, struct layer_dims in)
{
	int fd = dial(c->stages[idx].listen), bad = 0;
	if (fd < 0 || attack_hello(fd, c, c->stages[idx - 1].name)) {
		fprintf(stderr, "necklace-attack: cannot reach %s at %s\n", c->stages[idx].name, c->stages[idx].listen);
		return 1;
	}
	struct attack_case k[ATTACK_MAX_CASES];
	int n = attack_cases(k, in.c, in.h, in.w);
	for (int i = 0; i < n; i++) {
		int rc = attack_batch(fd, (uint64_t)i + 1, k[i].ph, k[i].n, k[i].c, k[i].h, k[i].w, k[i].v);
		printf("necklace-attack: batch %d: %s %dx%dx%dx%d of %g: %s\n", i + 1, wire_phase_name(k[i].ph),
		       k[i].n, k[i].c, k[i].h, k[i].w, (double)k[i].v, rc ? "connection closed" : "sent");
		bad |= rc != 0;
		nap(0.5); /* one at a time: the stage judges each rather than dropping it stale */
	}
	close(fd);
	return bad;
}

static int live(const struct chain *c, int idx, double seconds)
{
	const char *addr = c->stages[idx].listen, *up = c->stages[idx - 1].name;
	int fails = 0, rounds = 0;
	for (double end = now_s() + seconds; now_s() < end; rounds++) {
		int fd = dial(addr), ok;
		ok = fd >= 0 && attack_hello(fd, c, up) == 0 && (attack_stop(fd, "hijacked"), closed_by_stage(fd, 5));
		printf("necklace-attack: round %d: second upstream's hello and stop: %s\n", rounds,
		       ok ? "refused" : "NOT REFUSED");
		fails += !ok;
		if (fd >= 0)
			close(fd);
		fd = dial(addr);
		ok = fd >= 0 && send(fd, "\x00\x00\x00\x10garbage-garbage!", 20, MSG_NOSIGNAL) == 20 &&
		     closed_by_stage(fd, 5);
		printf("necklace-attack: round %d: random bytes: %s\n", rounds, ok ? "refused" : "NOT REFUSED");
		fails += !ok;
		if (fd >= 0)
			close(fd);
		int big = 0;
		for (int i = 0; i < 20; i++) {
			const uint8_t prefix[4] = {0x03, 0xff, 0xff, 0xff};
			fd = dial(addr);
			big += fd >= 0 && send(fd, prefix, 4, MSG_NOSIGNAL) == 4 && closed_by_stage(fd, 5);
			if (fd >= 0)
				close(fd);
		}
		printf("necklace-attack: round %d: 64 MiB frames before a hello: %d of 20 refused\n", rounds, big);
		fails += big != 20;
		enum { N = 80 };
		int fds[N], open_left = 0;
		for (int i = 0; i < N; i++)
			if ((fds[i] = dial(addr)) >= 0)
				attack_dribble(fds[i], 0);
		double t0 = now_s();
		for (int k = 1; now_s() - t0 < 8; k++) { /* a byte every 0.2 s for 8 s; the deadline is 5 */
			open_left = 0;
			for (int i = 0; i < N; i++)
				open_left += fds[i] >= 0 && attack_dribble(fds[i], k) == 0;
			nap(0.2);
		}
		for (int i = 0; i < N; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		printf("necklace-attack: round %d: %d slow hellos: %d still open after 8 s\n", rounds, N, open_left);
		fails += open_left != 0;
		fflush(stdout);
	}
	printf("necklace-attack: %d rounds, %d moves not refused\n", rounds, fails);
	return fails != 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"chain", required_argument, 0, 'c'}, {"stage", required_argument, 0, 's'},
		{"first", no_argument, 0, 'f'}, {"live", required_argument, 0, 'l'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	const char *path = NULL, *name = NULL;
	int mode = 0, o;
	double seconds = 0;
	while ((o = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 's': name = optarg; break;
		case 'f': mode = 'f'; break;
		case 'l': mode = 'l'; seconds = atof(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!path || !name || !mode || (mode == 'l' && !(seconds > 0))) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	char err[NK_ERR_LEN] = "";
	struct chain *c = NULL;
	int idx = -1, dc = 0, dh = 0, dw = 0;
	struct layer_dims in = {0, 0, 0};
	int rc = chain_load(&c, path, err);
	if (rc == 0 && (idx = chain_stage_index(c, name)) < 1)
		rc = nk_errf(err, NK_ENOENT, "%s: '%s' is not a stage after the first", path, name);
	if (rc == 0 && mode == 'f' && (rc = stage_data_dims(c, &dc, &dh, &dw, err)) == 0)
		rc = stage_input_dims(c, idx, (struct layer_dims){dc, dh, dw}, &in, err);
	if (rc) {
		fprintf(stderr, "necklace-attack: %s\n", err);
		chain_free(c);
		return 2;
	}
	rc = mode == 'f' ? first(c, idx, in) : live(c, idx, seconds);
	chain_free(c);
	return rc;
}
