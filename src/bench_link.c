/* necklace-bench link: throughput of one loopback link between two stages of one process. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "src/chain.h"
#include "src/logfmt.h"
#include "stages/inbox.h"
#include "stages/link.h"

/* declared in src/bench.h, which only src/bench.c includes (after its struct bench_opts) */
int bench_link_run(double seconds);

#define N 512
#define C 32
#define H 8
#define W 8

struct sink {
	struct inbox *in;
	volatile int done;
	pthread_mutex_t mu;
	long frames;          /* received whole and well-shaped */
	long bad;
};

static void *sink_thread(void *arg)
{
	struct sink *s = arg;
	while (!s->done) {
		struct wire_msg *m = inbox_take(s->in, 0.1, NULL);
		if (!m)
			continue;
		int ok = m->kind == WIRE_BATCH && m->batch.n == N && m->batch.c == C && m->batch.x &&
			 m->batch.x[N * C * H * W - 1] == 1.0f;
		pthread_mutex_lock(&s->mu);
		s->frames += ok;
		s->bad += !ok;
		pthread_mutex_unlock(&s->mu);
		wire_msg_free(m);
	}
	return NULL;
}

static long received(struct sink *s)
{
	pthread_mutex_lock(&s->mu);
	long n = s->frames;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void nap_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	nanosleep(&ts, NULL);
}

/* Send test-phase batches (never dropped) as fast as the link takes them, keeping a few queued. */
static int pump_frames(struct net *a, struct sink *s, double seconds, double *rate)
{
	static float x[N * C * H * W];
	static int32_t y[N];
	char err[NK_ERR_LEN];
	for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
		x[i] = 1.0f;
	struct wire_msg m = {.kind = WIRE_BATCH};
	m.batch = (struct wire_batch){.phase = WIRE_TEST, .n = N, .c = C, .h = H, .w = W, .x = x, .y = y};
	double t0 = 0, end = nk_now() + seconds + 10;
	long f0 = 0;
	while (nk_now() < end) {
		if (net_wait_backlog(a, 3, 0.1) == 0) {
			m.batch.id++;
			if (net_send(a, &m, err)) {
				fprintf(stderr, "necklace-bench: link: %s\n", err);
				return 1;
			}
		}
		long got = received(s);
		if (!t0 && got >= 4) { /* warmed up */
			t0 = nk_now();
			f0 = got;
			end = t0 + seconds;
		}
	}
	long got = received(s);
	if (!t0 || got <= f0) {
		fprintf(stderr, "necklace-bench: link: no frames arrived\n");
		return 1;
	}
	*rate = (double)(got - f0) / (nk_now() - t0);
	return 0;
}

static int setup(struct chain **c, struct inbox **in, struct net **a, struct net **b, char err[NK_ERR_LEN])
{
	char text[1024];
	int port = net_free_port(), rc;
	snprintf(text, sizeof text,
		 "{\"chain\": \"bench-link\", \"data\": {\"train\": [\"-\", \"-\"], \"batch\": %d}, \"stages\": ["
		 "{\"name\": \"a\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}},"
		 "{\"name\": \"b\", \"listen\": \"127.0.0.1:%d\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}}]}",
		 N, port);
	if ((rc = chain_parse(c, text, strlen(text), "bench-link", "/", err)) || (rc = inbox_new(in, 8)))
		return rc;
	struct net_cfg ca = {.chain = *c, .index = 0, .t0 = nk_now(), .outbox = 8};
	struct net_cfg cb = {.chain = *c, .index = 1, .inbox = *in, .t0 = ca.t0};
	if ((rc = net_new(b, &cb, err)) || (rc = net_new(a, &ca, err)) || (rc = net_start(*b, err)) ||
	    (rc = net_start(*a, err)))
		return rc;
	struct net_stats st = {0};
	for (int i = 0; i < 500 && !st.down_open; i++) {
		nap_us(10000);
		net_get_stats(*a, &st);
	}
	return st.down_open ? 0 : nk_errf(err, NK_EIO, "the loopback link did not open");
}

int bench_link_run(double seconds)
{
	struct chain *c = NULL;
	struct inbox *in = NULL;
	struct net *a = NULL, *b = NULL;
	struct sink s = {0};
	char err[NK_ERR_LEN] = "";
	double rate = 0;
	pthread_t th;
	int rc = setup(&c, &in, &a, &b, err);
	if (rc) {
		fprintf(stderr, "necklace-bench: link: %s\n", err);
	} else {
		s.in = in;
		pthread_mutex_init(&s.mu, NULL);
		pthread_create(&th, NULL, sink_thread, &s);
		rc = pump_frames(a, &s, seconds, &rate);
		s.done = 1;
		pthread_join(th, NULL);
		pthread_mutex_destroy(&s.mu);
	}
	net_free(a);
	net_free(b);
	inbox_free(in);
	chain_free(c);
	if (rc)
		return 1;
	double bytes = (double)N * C * H * W * sizeof(float);
	struct logfmt lf;
	lf_begin(&lf);
	lf_str(&lf, "bench", "link");
	lf_str(&lf, "shape", "512x32x8x8");
	lf_num(&lf, "mb_s", rate * bytes / 1e6, 1);
	lf_num(&lf, "frames_s", rate, 1);
	lf_int(&lf, "bad", s.bad);
	lf_write(&lf, stdout, NULL);
	return s.bad ? 1 : 0;
}
