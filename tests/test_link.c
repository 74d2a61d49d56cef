/* Links and inbox: wrong Hellos are refused both ways and the stage keeps waiting for the right
 * peer; bad frames drop only their connection; batches flow, a Stop is handed over; the inbox
 * drops the oldest train batch and never a test one. All on ephemeral loopback ports. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/inbox.h"
#include "stages/link.h"
#include "tests/net_test.h"
#include "tests/nk_test.h"

struct fixture {
	char dir[256], log[300];
	int port[3];
	struct chain *c;
	struct inbox *in;
	struct net *net;
	FILE *logf;
};

static void make_chain(struct fixture *f)
{
	char text[1024], err[NK_ERR_LEN] = "";
	for (int i = 0; i < 3; i++)
		f->port[i] = nt_free_port();
	snprintf(text, sizeof text,
		 "{\"chain\": \"t3\", \"data\": {\"train\": [\"-\", \"-\"], \"batch\": 8}, \"stages\": ["
		 "{\"name\": \"a\", \"listen\": \"127.0.0.1:%d\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}},"
		 "{\"name\": \"b\", \"listen\": \"127.0.0.1:%d\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}},"
		 "{\"name\": \"c\", \"listen\": \"127.0.0.1:%d\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}}]}",
		 f->port[0], f->port[1], f->port[2]);
	cr_assert_eq(chain_parse(&f->c, text, strlen(text), "t3.json", "/", err), 0, "%s", err);
	cr_assert_not_null(nk_test_tmpdir(f->dir, sizeof f->dir));
	snprintf(f->log, sizeof f->log, "%s/b.log", f->dir);
	f->logf = fopen(f->log, "a");
	cr_assert_not_null(f->logf);
}

/* Start stage index's links with fast timeouts. */
static struct net *start_net(struct fixture *f, int index, struct inbox *in, FILE *log)
{
	struct net *n = NULL;
	char err[NK_ERR_LEN] = "";
	struct net_cfg cfg = {.chain = f->c, .index = index, .inbox = in, .log = log, .t0 = nk_now(),
			      .hello_s = 2, .timeout_s = 5, .backoff_min_s = 0.02, .backoff_max_s = 0.2};
	cr_assert_eq(net_new(&n, &cfg, err), 0, "%s", err);
	cr_assert_eq(net_start(n, err), 0, "%s", err);
	return n;
}

static void cleanup(struct fixture *f)
{
	net_free(f->net);
	inbox_free(f->in);
	chain_free(f->c);
	if (f->logf)
		fclose(f->logf);
	unlink(f->log);
	rmdir(f->dir);
}

static void send_msg(int fd, const struct wire_msg *m)
{
	uint8_t *fr;
	size_t len;
	char err[NK_ERR_LEN];
	cr_assert_eq(wire_encode(m, WIRE_MAX_FRAME_DEFAULT, &fr, &len, err), 0, "%s", err);
	cr_assert_eq(send(fd, fr, len, 0), (ssize_t)len);
	wire_frame_free(fr);
}

static struct wire_msg hello(const struct chain *c, uint32_t version, uint64_t hash, const char *sender)
{
	struct wire_msg m = {.kind = WIRE_HELLO};
	m.hello.version = version;
	snprintf(m.hello.chain, sizeof m.hello.chain, "%s", c->name);
	m.hello.hash = hash;
	snprintf(m.hello.sender, sizeof m.hello.sender, "%s", sender);
	return m;
}

/* Read one frame from fd; NULL on timeout or close. */
static struct wire_msg *recv_msg(int fd)
{
	struct wire_reader r;
	struct wire_msg *m = NULL;
	char err[NK_ERR_LEN];
	wire_reader_init(&r, WIRE_MAX_FRAME_DEFAULT);
	uint8_t b;
	while (!m && recv(fd, &b, 1, 0) == 1)
		if (wire_reader_feed(&r, &b, 1, &m, err) < 0)
			break;
	wire_reader_reset(&r);
	return m;
}

Test(link, hello_mismatches_refused_then_right_peer_accepted)
{
	struct fixture f = {0};
	make_chain(&f);
	cr_assert_eq(inbox_new(&f.in, 4), 0);
	f.net = start_net(&f, 1, f.in, f.logf);
	struct wire_msg bad[3] = {hello(f.c, WIRE_VERSION + 1, f.c->hash, "a"),
				  hello(f.c, WIRE_VERSION, f.c->hash ^ 1, "a"),
				  hello(f.c, WIRE_VERSION, f.c->hash, "c")};
	const char *why[3] = {"reason=version", "reason=chain", "reason=sender"};
	for (int i = 0; i < 3; i++) {
		int fd = nt_connect(f.port[1]);
		cr_assert_geq(fd, 0);
		send_msg(fd, &bad[i]);
		struct wire_msg *m = recv_msg(fd); /* b's own Hello comes first */
		cr_assert(m && m->kind == WIRE_HELLO && strcmp(m->hello.sender, "b") == 0);
		wire_msg_free(m);
		cr_assert(nt_closed_by_peer(fd), "case %d: connection not closed", i);
		close(fd);
		cr_assert(nt_log_has(f.log, why[i], 3), "no refusal line with %s", why[i]);
	}
	struct net_stats st;
	net_get_stats(f.net, &st);
	cr_assert_eq(st.refused, 3);
	cr_assert_eq(st.up_open, 0);
	/* the right upstream is taken, and its batches reach the inbox */
	int fd = nt_connect(f.port[1]);
	struct wire_msg ok = hello(f.c, WIRE_VERSION, f.c->hash, "a");
	send_msg(fd, &ok);
	wire_msg_free(recv_msg(fd));
	float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	int32_t y[2] = {3, 4};
	struct wire_msg b = {.kind = WIRE_BATCH};
	b.batch = (struct wire_batch){.id = 77, .n = 2, .c = 1, .h = 2, .w = 2, .x = x, .y = y};
	send_msg(fd, &b);
	struct wire_msg *got = inbox_take(f.in, 3.0, NULL);
	cr_assert_not_null(got);
	cr_assert_eq(got->batch.id, 77);
	cr_assert_eq(got->batch.x[7], 8.0f);
	wire_msg_free(got);
	cr_assert(nt_log_has(f.log, "event=connected link=up peer=a", 3));
	close(fd);
	cleanup(&f);
}

Test(link, bad_frames_drop_only_their_connection)
{
	struct fixture f = {0};
	make_chain(&f);
	cr_assert_eq(inbox_new(&f.in, 4), 0);
	f.net = start_net(&f, 1, f.in, f.logf);
	struct wire_msg ok = hello(f.c, WIRE_VERSION, f.c->hash, "a");
	const uint8_t garbage[] = {0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	const uint8_t oversized[] = {0x7f, 0xff, 0xff, 0xff, 0x12};
	const uint8_t truncated[] = {0, 0, 1, 0, 0x12, 0x80}; /* 256 bytes announced, 2 sent */
	const uint8_t *bad[3] = {garbage, oversized, truncated};
	size_t len[3] = {sizeof garbage, sizeof oversized, sizeof truncated};
	const char *why[3] = {"reason=garbage", "reason=oversized", "reason=truncated"};
	for (int i = 0; i < 3; i++) {
		int fd = nt_connect(f.port[1]);
		send_msg(fd, &ok);
		wire_msg_free(recv_msg(fd));
		cr_assert_eq(send(fd, bad[i], len[i], 0), (ssize_t)len[i]);
		if (i == 2)
			shutdown(fd, SHUT_WR); /* the sender goes away inside the frame */
		else
			cr_assert(nt_closed_by_peer(fd), "case %d: connection not dropped", i);
		cr_assert(nt_log_has(f.log, why[i], 3), "no line with %s", why[i]);
		close(fd);
	}
	/* still serving */
	int fd = nt_connect(f.port[1]);
	send_msg(fd, &ok);
	struct wire_msg *m = recv_msg(fd);
	cr_assert(m && m->kind == WIRE_HELLO);
	wire_msg_free(m);
	close(fd);
	cleanup(&f);
}

Test(link, down_link_refuses_wrong_peer_and_retries)
{
	struct fixture f = {0};
	make_chain(&f);
	int lfd = nt_listen(f.port[2]); /* a fake stage c */
	cr_assert_geq(lfd, 0);
	cr_assert_eq(inbox_new(&f.in, 4), 0);
	f.net = start_net(&f, 1, f.in, f.logf);
	int fd = nt_accept(lfd);
	cr_assert_geq(fd, 0);
	wire_msg_free(recv_msg(fd)); /* b's Hello */
	struct wire_msg wrong = hello(f.c, WIRE_VERSION, f.c->hash, "x");
	send_msg(fd, &wrong);
	cr_assert(nt_log_has(f.log, "event=refused link=down peer=? want=c", 3));
	cr_assert(nt_log_has(f.log, "reason=sender", 1));
	close(fd);
	fd = nt_accept(lfd); /* b comes back after its backoff */
	cr_assert_geq(fd, 0);
	wire_msg_free(recv_msg(fd));
	struct wire_msg right = hello(f.c, WIRE_VERSION, f.c->hash, "c");
	send_msg(fd, &right);
	cr_assert(nt_log_has(f.log, "event=connected link=down peer=c", 3));
	/* pings flow on an open link; the fake peer answers one so b measures a round trip */
	struct wire_msg *p = recv_msg(fd);
	cr_assert(p && p->kind == WIRE_PING, "no ping on the open link");
	struct wire_msg pong = {.kind = WIRE_PONG, .nonce = p->nonce, .sent = p->sent};
	wire_msg_free(p);
	send_msg(fd, &pong);
	struct net_stats st = {0};
	for (int i = 0; i < 100 && st.down_rtt_ms <= 0; i++) {
		nt_sleep(0.02);
		net_get_stats(f.net, &st);
	}
	cr_assert_gt(st.down_rtt_ms, 0, "no round trip measured");
	close(fd);
	close(lfd);
	cleanup(&f);
}

Test(link, batches_flow_and_stop_is_handed_over)
{
	struct fixture f = {0};
	make_chain(&f);
	cr_assert_eq(inbox_new(&f.in, 64), 0);
	struct net *b = start_net(&f, 1, f.in, f.logf);
	struct net *a = start_net(&f, 0, NULL, NULL); /* stage a: the first, no inbox */
	static float x[8 * 16 * 4 * 4];
	int32_t y[8] = {0};
	char err[NK_ERR_LEN] = "";
	for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
		x[i] = (float)i;
	struct wire_msg m = {.kind = WIRE_BATCH};
	m.batch = (struct wire_batch){.phase = WIRE_TEST, .n = 8, .c = 16, .h = 4, .w = 4, .x = x, .y = y};
	for (int i = 1; i <= 20; i++) {
		m.batch.id = (uint64_t)i;
		cr_assert_eq(net_send(a, &m, err), 0, "%s", err);
	}
	struct wire_msg stop = {.kind = WIRE_STOP};
	snprintf(stop.reason, sizeof stop.reason, "done");
	cr_assert_eq(net_send(a, &stop, err), 0, "%s", err);
	cr_assert_eq(net_flush(a, 10.0), 0, "the Stop was not handed over");
	for (int i = 1; i <= 20; i++) {
		struct wire_msg *g = inbox_take(f.in, 1.0, NULL);
		cr_assert(g && g->kind == WIRE_BATCH && g->batch.id == (uint64_t)i, "frame %d", i);
		cr_assert_eq(g->batch.x[8 * 16 * 4 * 4 - 1], 8 * 16 * 4 * 4 - 1);
		wire_msg_free(g);
	}
	struct wire_msg *g = inbox_take(f.in, 1.0, NULL);
	cr_assert(g && g->kind == WIRE_STOP && strcmp(g->reason, "done") == 0);
	wire_msg_free(g);
	net_free(a);
	net_free(b);
	cleanup(&f);
}

Test(link, started_and_freed_at_once_never_hangs, .timeout = 60)
{
	/* A stage that fails right after start frees its links before the event thread may have
	 * entered its loop; a stop that loop could miss would hang the join (and the stage). */
	struct fixture f = {0};
	make_chain(&f);
	cr_assert_eq(inbox_new(&f.in, 4), 0);
	for (int i = 0; i < 300; i++) {
		struct net *n = start_net(&f, i % 2, i % 2 ? f.in : NULL, NULL);
		net_free(n);
	}
	cleanup(&f);
}

static struct wire_msg *msg(enum wire_phase ph, uint64_t id)
{
	struct wire_msg *m = calloc(1, sizeof *m);
	m->kind = WIRE_BATCH;
	m->batch.phase = ph;
	m->batch.id = id;
	return m;
}

Test(inbox, drops_oldest_train_never_test)
{
	struct inbox *b;
	long skipped = 0;
	cr_assert_eq(inbox_new(&b, 3), 0);
	for (int i = 1; i <= 5; i++) /* 1 and 2 are evicted */
		inbox_push(b, msg(WIRE_TRAIN, (uint64_t)i));
	cr_assert_eq(inbox_dropped(b), 2);
	inbox_push(b, msg(WIRE_TEST, 100));
	inbox_push(b, msg(WIRE_TRAIN, 6)); /* evicts 3, not the test batch */
	cr_assert_eq(inbox_dropped(b), 3);
	/* the newest train batch before the test one; 4 is stale */
	struct wire_msg *m = inbox_take(b, 0, &skipped);
	cr_assert_eq(m->batch.id, 5);
	cr_assert_eq(skipped, 1);
	wire_msg_free(m);
	m = inbox_take(b, 0, &skipped);
	cr_assert_eq(m->batch.id, 100);
	wire_msg_free(m);
	m = inbox_take(b, 0, &skipped);
	cr_assert_eq(m->batch.id, 6);
	wire_msg_free(m);
	cr_assert_null(inbox_take(b, 0.01, &skipped));
	/* test batches are kept beyond the limit; the pusher is told to pause */
	int paused = 0;
	for (int i = 0; i < 10; i++)
		paused |= inbox_push(b, msg(WIRE_TEST, (uint64_t)i));
	cr_assert(paused);
	for (int i = 0; i < 10; i++) {
		m = inbox_take(b, 0, NULL);
		cr_assert(m && m->batch.id == (uint64_t)i);
		wire_msg_free(m);
	}
	cr_assert_eq(inbox_dropped(b), 3);
	inbox_free(b);
}
