/* Links on libevent: each connection is a struct link driven by one state machine
 * (link_dispatch), on the stage's event thread; never freed inside its own callbacks (closed links
 * are reaped from a separate event). */
#include "stages/link_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>

#include "src/logfmt.h"
#include "src/rng.h"

const char *const link_why_names[] = {
	"none", "eof", "error", "timeout", "connect_failed", "oversized", "garbage",
	"version", "chain", "sender", "protocol", "replaced", "stop", "busy", "nomem",
};

static void addr_name(const struct sockaddr *sa, socklen_t len, char *out, size_t outlen)
{
	char host[64] = "?", port[16] = "?";
	getnameinfo(sa, len, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(out, outlen, "%s:%s", host, port);
}

/* Encode a small control frame and append it to l's output. */
static void link_send_msg(struct link *l, const struct wire_msg *m)
{
	uint8_t *f;
	size_t len;
	char err[NK_ERR_LEN];
	if (!l->bev || wire_encode(m, l->net->cfg.max_frame, &f, &len, err))
		return;
	evbuffer_add(bufferevent_get_output(l->bev), f, len);
	wire_frame_free(f);
}

static void link_send_hello(struct link *l)
{
	struct net *n = l->net;
	struct wire_msg m = {.kind = WIRE_HELLO};
	m.hello.version = WIRE_VERSION;
	snprintf(m.hello.chain, sizeof m.hello.chain, "%s", n->cfg.chain->name);
	m.hello.hash = n->cfg.chain->hash;
	snprintf(m.hello.sender, sizeof m.hello.sender, "%s", n->name);
	link_send_msg(l, &m);
}

/* ---- closing, reaping, reconnecting ---- */

static void schedule_reconnect(struct net *n)
{
	struct link *l = &n->down;
	double d = n->cfg.backoff_min_s * (double)(1u << NK_MIN(l->attempts, 20));
	d = NK_MIN(d, n->cfg.backoff_max_s) * (0.5 + 0.5 * rng_uniform(&n->rng)); /* jitter */
	l->attempts++;
	l->state = LINK_BACKOFF;
	struct timeval tv = net_tv(d);
	evtimer_add(n->backoff_ev, &tv);
}

static void requeue_stop(struct net *n)
{
	struct wire_msg m = {.kind = WIRE_STOP};
	uint8_t *f;
	size_t len;
	char err[NK_ERR_LEN];
	snprintf(m.reason, sizeof m.reason, "stop");
	if (wire_encode(&m, n->cfg.max_frame, &f, &len, err) == 0)
		net_outq_push(n, f, len, 0, 1);
}

/* Close l's connection for why; its bufferevent (and, for an up link, l itself) is freed later by
 * link_reap_cb, never here: we may be inside l's own callback. */
static void link_close(struct link *l, enum link_why why)
{
	struct net *n = l->net;
	if (l->state == LINK_CLOSED || l->state == LINK_BACKOFF || l->state == LINK_IDLE)
		return;
	int was_open = l->state == LINK_OPEN;
	if (was_open)
		net_log(n, "lost", l, link_why_names[why], NULL);
	else if (why != l->last_why) /* a refusal is logged already; a failing reconnect once */
		net_log(n, l->down && why == WHY_CONNECT ? "waiting" : "closed", l, link_why_names[why], NULL);
	l->last_why = why;
	if (l->bev) {
		bufferevent_disable(l->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(l->bev, NULL, NULL, NULL, NULL);
		if (n->nreap < (int)(sizeof n->reap_bev / sizeof n->reap_bev[0]))
			n->reap_bev[n->nreap++] = l->bev;
		else
			bufferevent_free(l->bev); /* callbacks already detached */
		l->bev = NULL;
	}
	wire_reader_reset(&l->rd);
	l->paused = 0;
	l->proven = 0;
	if (l->hello_ev)
		evtimer_del(l->hello_ev);
	int requeue = 0, delivered = 0;
	pthread_mutex_lock(&n->mu);
	if (l->down) {
		n->down_open = 0;
		n->down_drained = 0;
		if (n->stop_written)
			n->stop_delivered = 1; /* the peer closed after taking it */
		requeue = n->stop_queued == 2 && !n->stop_written;
		delivered = n->stop_delivered;
		pthread_cond_broadcast(&n->cv);
	} else if (n->up == l) {
		n->up = NULL;
		n->up_open = 0;
	}
	pthread_mutex_unlock(&n->mu);
	if (l->down) {
		if (requeue)
			requeue_stop(n); /* it died in the socket buffer */
		if (!delivered)
			schedule_reconnect(n);
		else
			l->state = LINK_IDLE;
	} else {
		l->state = LINK_CLOSED;
		struct link **pp = &n->ups;
		while (*pp && *pp != l)
			pp = &(*pp)->next;
		if (*pp)
			*pp = l->next;
		l->next = n->reap_links;
		n->reap_links = l;
	}
	event_active(n->reap_ev, EV_TIMEOUT, 0);
}

void link_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net *n = arg;
	for (int i = 0; i < n->nreap; i++)
		bufferevent_free(n->reap_bev[i]);
	n->nreap = 0;
	while (n->reap_links) {
		struct link *l = n->reap_links;
		n->reap_links = l->next;
		wire_reader_reset(&l->rd);
		if (l->hello_ev)
			event_free(l->hello_ev);
		free(l);
	}
}

/* ---- opening ---- */

static void link_setup_bev(struct link *l)
{
	bufferevent_setcb(l->bev, link_read_cb, link_write_cb, link_event_cb, l);
	bufferevent_setwatermark(l->bev, EV_READ, 0, READ_HIGH);
	bufferevent_setwatermark(l->bev, EV_WRITE, 0, 0);
	bufferevent_set_max_single_write(l->bev, IO_CHUNK); /* the default is 16 KiB a call */
	wire_reader_init(&l->rd, WIRE_HELLO_MAX); /* until the peer's Hello passed */
}

static void hello_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	if (l->state == LINK_HELLO || l->state == LINK_CONNECTING) {
		char d[64];
		snprintf(d, sizeof d, "no complete hello within %.1f s", l->net->cfg.hello_s);
		net_log(l->net, "closed", l, link_why_names[WHY_TIMEOUT], d);
		l->last_why = WHY_TIMEOUT;
		link_close(l, WHY_TIMEOUT);
	}
}

/* TCP is up: send our Hello and wait for the peer's. */
static void link_begin_hello(struct link *l)
{
	struct net *n = l->net;
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(l->bev);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	l->state = LINK_HELLO;
	l->lowat = 1;
	l->born = l->last_rx = nk_now();
	struct timeval rd = net_tv(n->cfg.hello_s), wr = net_tv(n->cfg.timeout_s);
	bufferevent_set_timeouts(l->bev, &rd, &wr);
	/* the read timeout restarts with every byte: a peer dribbling bytes would never reach it */
	if (!l->hello_ev)
		l->hello_ev = evtimer_new(n->base, hello_deadline_cb, l);
	if (l->hello_ev)
		evtimer_add(l->hello_ev, &rd);
	bufferevent_enable(l->bev, EV_READ | EV_WRITE);
	link_send_hello(l);
}

static void down_connect(struct net *n)
{
	struct link *l = &n->down;
	l->state = LINK_CONNECTING;
	l->bev = bufferevent_socket_new(n->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!l->bev) {
		schedule_reconnect(n);
		return;
	}
	link_setup_bev(l);
	struct timeval tv = net_tv(n->cfg.hello_s);
	bufferevent_set_timeouts(l->bev, NULL, &tv); /* the connect timeout */
	if (bufferevent_socket_connect(l->bev, (struct sockaddr *)&n->down_sa, n->down_salen) < 0)
		link_close(l, WHY_CONNECT);
}

void link_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net *n = arg;
	if (n->down.state == LINK_BACKOFF || n->down.state == LINK_IDLE)
		down_connect(n);
}

void link_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct net *n = arg;
	int pending = 0;
	struct link *oldest = NULL;
	for (struct link *p = n->ups; p; p = p->next)
		if (p->state == LINK_HELLO) {
			pending++;
			if (!oldest || p->born <= oldest->born)
				oldest = p;
		}
	if (pending >= MAX_PENDING && oldest) { /* slots cannot be held: the oldest makes room */
		net_log(n, "closed", oldest, link_why_names[WHY_BUSY], "oldest unfinished hello dropped for a new connection");
		oldest->last_why = WHY_BUSY;
		link_close(oldest, WHY_BUSY);
	}
	struct link *l = calloc(1, sizeof *l);
	struct bufferevent *bev = l ? bufferevent_socket_new(n->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (!bev) {
		char a[136];
		addr_name(sa, (socklen_t)salen, a, sizeof a);
		net_log(n, "closed", NULL, link_why_names[WHY_NOMEM], a);
		free(l);
		evutil_closesocket(fd);
		return;
	}
	l->net = n;
	l->bev = bev;
	addr_name(sa, (socklen_t)salen, l->addr, sizeof l->addr);
	snprintf(l->expect, sizeof l->expect, "%s", n->cfg.chain->stages[n->cfg.index - 1].name);
	l->next = n->ups;
	n->ups = l;
	link_setup_bev(l);
	link_begin_hello(l);
}

/* The peer's Hello: same protocol, same chain file, the neighbour we expect. */
static enum link_why hello_check(const struct link *l, const struct wire_hello *h, char *detail, size_t len)
{
	const struct chain *c = l->net->cfg.chain;
	if (h->version != WIRE_VERSION) {
		snprintf(detail, len, "protocol version %u, want %u", h->version, WIRE_VERSION);
		return WHY_VERSION;
	}
	if (h->hash != c->hash || strcmp(h->chain, c->name) != 0) {
		snprintf(detail, len, "chain %s hash %016llx, want %s hash %016llx", h->chain,
			 (unsigned long long)h->hash, c->name, (unsigned long long)c->hash);
		return WHY_CHAIN;
	}
	if (strcmp(h->sender, l->expect) != 0) {
		snprintf(detail, len, "sender '%s', want '%s'", h->sender, l->expect);
		return WHY_SENDER;
	}
	/* A restarted upstream wins over a stale link, not over one that is alive: its frames (at
	 * least a Ping a second) still arrive, or it is paused because our inbox is full. */
	const struct link *up = l->net->up;
	double quiet = nk_now() - (up ? up->last_rx : 0), live_s = 3 * l->net->cfg.ping_s;
	if (!l->down && up && up != l && up->state == LINK_OPEN && (up->paused || quiet < live_s)) {
		snprintf(detail, len, "upstream %s is connected and alive (%s %.1f s ago)", up->expect,
			 up->paused ? "paused, last read" : "last frame", quiet);
		return WHY_BUSY;
	}
	return WHY_NONE;
}

void link_pump(struct net *n);
static void link_ping(struct link *l);

static void link_open(struct link *l)
{
	struct net *n = l->net;
	struct timeval rd = net_tv(n->cfg.timeout_s), wr = net_tv(n->cfg.timeout_s);
	bufferevent_set_timeouts(l->bev, &rd, &wr);
	if (l->hello_ev)
		evtimer_del(l->hello_ev);
	l->rd.max_frame = n->cfg.max_frame; /* proven: batch frames from now on */
	l->proven = 1;
	l->state = LINK_OPEN;
	l->attempts = 0;
	l->last_why = WHY_NONE;
	l->rtt_ms = 0;
	if (!l->down && n->up && n->up != l)
		link_close(n->up, WHY_REPLACED); /* a restarted upstream wins over a stale link */
	pthread_mutex_lock(&n->mu);
	if (l->down) {
		n->down_open = 1;
		n->down_rtt = 0;
	} else {
		n->up = l;
		n->up_open = 1;
		n->up_rtt = 0;
		n->up_offset_ok = 0;
	}
	pthread_mutex_unlock(&n->mu);
	net_log(n, "connected", l, NULL, NULL);
	link_ping(l); /* a first round trip (and clock offset) right away */
	if (l->down)
		link_pump(n);
}

/* ---- the state machine ---- */

/* A round trip, and (from the up link) the upstream clock's offset from ours: the peer read its
 * clock about half way through the round trip (NTP's estimate; no synchronised clocks needed). */
static void on_pong(struct link *l, const struct wire_msg *m)
{
	struct net *n = l->net;
	double now = nk_now(), ms = (now - m->sent) * 1e3;
	if (ms < 0 || ms > 1e6)
		return;
	l->rtt_ms = l->rtt_ms > 0 ? 0.8 * l->rtt_ms + 0.2 * ms : ms;
	double off = m->peer_now - 0.5 * (m->sent + now);
	pthread_mutex_lock(&n->mu);
	*(l->down ? &n->down_rtt : &n->up_rtt) = l->rtt_ms;
	if (!l->down && m->peer_now > 0) {
		n->up_offset = n->up_offset_ok ? 0.8 * n->up_offset + 0.2 * off : off;
		n->up_offset_ok = 1;
	}
	pthread_mutex_unlock(&n->mu);
}

static void link_ping(struct link *l)
{
	struct wire_msg m = {.kind = WIRE_PING, .nonce = ++l->nonce, .sent = nk_now()};
	link_send_msg(l, &m);
}

/* One decoded frame on l; takes ownership of m. */
static void link_dispatch(struct link *l, struct wire_msg *m)
{
	struct net *n = l->net;
	char detail[256];
	enum link_why why;
	switch (l->state) {
	case LINK_HELLO:
		if (m->kind != WIRE_HELLO) {
			net_log(n, "refused", l, link_why_names[WHY_PROTOCOL], "first frame is not a hello");
			l->last_why = WHY_PROTOCOL;
			link_close(l, WHY_PROTOCOL);
		} else if ((why = hello_check(l, &m->hello, detail, sizeof detail)) != WHY_NONE) {
			pthread_mutex_lock(&n->mu);
			n->refused++;
			pthread_mutex_unlock(&n->mu);
			net_log(n, "refused", l, link_why_names[why], detail);
			l->last_why = why;
			link_close(l, why);
		} else {
			link_open(l);
		}
		break;
	case LINK_OPEN:
		switch (m->kind) {
		case WIRE_PING: {
			struct wire_msg pong = {.kind = WIRE_PONG, .nonce = m->nonce, .sent = m->sent,
						.peer_now = nk_now()};
			link_send_msg(l, &pong);
			break;
		}
		case WIRE_PONG:
			on_pong(l, m);
			break;
		case WIRE_BATCH:
		case WIRE_STOP:
			if (l->down || !n->cfg.inbox) {
				net_log(n, "closed", l, link_why_names[WHY_PROTOCOL], "batch or stop from downstream");
				link_close(l, WHY_PROTOCOL);
				break;
			}
			int stop = m->kind == WIRE_STOP;
			if (inbox_push(n->cfg.inbox, m) && !stop) {
				l->paused = 1; /* backed up with frames that may not be dropped */
				bufferevent_disable(l->bev, EV_READ);
			}
			m = NULL;
			if (stop)
				link_close(l, WHY_STOP); /* the upstream sees us close: its Stop arrived */
			break;
		default:
			net_log(n, "closed", l, link_why_names[WHY_PROTOCOL], wire_kind_name(m->kind));
			link_close(l, WHY_PROTOCOL);
		}
		break;
	default:
		break;
	}
	wire_msg_free(m);
}

/* Inside a large frame, wake only once a good part of its rest is in: fewer, larger reads. */
static void set_lowat(struct link *l)
{
	size_t rest = wire_reader_remaining(&l->rd);
	int want = rest >= DIRECT_MIN ? (int)NK_MIN(rest, (size_t)1 << 20) : 1;
	if (want != l->lowat && l->bev) {
		setsockopt(bufferevent_getfd(l->bev), SOL_SOCKET, SO_RCVLOWAT, &want, sizeof want);
		l->lowat = want;
	}
}

/* libevent 2.1 reads at most 4096 bytes per call (EVBUFFER_MAX_READ): a 4 MiB batch would cost a
 * thousand wake-ups. Once the input buffer is drained and a large frame is under way, its rest is
 * read with recv() straight into its final place: fewer calls, and the kernel's copy is the only
 * one. Returns 0 to go on, -1 when l was closed. */
static int link_read_direct(struct link *l)
{
	char err[NK_ERR_LEN];
	while (wire_reader_remaining(&l->rd) >= DIRECT_MIN && !l->paused) {
		size_t room;
		uint8_t *p = wire_reader_dest(&l->rd, &room);
		ssize_t k = recv(bufferevent_getfd(l->bev), p, room, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (k <= 0) {
			net_log(l->net, "dropped", l, "truncated", k == 0 ? "connection closed inside a frame"
									: strerror(errno));
			link_close(l, k == 0 ? WHY_EOF : WHY_ERROR);
			return -1;
		}
		l->last_rx = nk_now();
		struct wire_msg *m = NULL;
		int rc = wire_reader_commit(&l->rd, (size_t)k, &m, err);
		if (rc) {
			net_log(l->net, "dropped", l, link_why_names[WHY_GARBAGE], err);
			link_close(l, WHY_GARBAGE);
			return -1;
		}
		if (m)
			link_dispatch(l, m);
		if (l->state != LINK_HELLO && l->state != LINK_OPEN)
			return -1;
	}
	return 0;
}

void link_read_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char err[NK_ERR_LEN];
	l->last_rx = nk_now();
	while ((l->state == LINK_HELLO || l->state == LINK_OPEN) && !l->paused &&
	       evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		struct wire_msg *m = NULL;
		long used = wire_reader_feed(&l->rd, v.iov_base, v.iov_len, &m, err);
		if (used < 0) {
			enum link_why why = used == NK_ERANGE ? WHY_OVERSIZED : used == NK_ENOMEM ? WHY_NOMEM : WHY_GARBAGE;
			net_log(l->net, "dropped", l, link_why_names[why], err);
			link_close(l, why);
			break;
		}
		evbuffer_drain(in, (size_t)used);
		if (m)
			link_dispatch(l, m);
		if (evbuffer_get_length(in) == 0 && (l->state == LINK_HELLO || l->state == LINK_OPEN) &&
		    link_read_direct(l) < 0)
			return;
	}
	if (l->state == LINK_HELLO || l->state == LINK_OPEN)
		set_lowat(l);
}

void link_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct link *l = arg;
	if (what & BEV_EVENT_CONNECTED) {
		link_begin_hello(l);
		return;
	}
	enum link_why why = WHY_ERROR;
	if (what & BEV_EVENT_TIMEOUT)
		why = WHY_TIMEOUT;
	else if (what & BEV_EVENT_EOF)
		why = WHY_EOF;
	else if (l->state == LINK_CONNECTING)
		why = WHY_CONNECT;
	if (wire_reader_pending(&l->rd) && why == WHY_EOF)
		net_log(l->net, "dropped", l, "truncated", "connection closed inside a frame");
	link_close(l, why);
}

/* ---- the outbox ---- */

static void free_ref(const void *data, size_t len, void *arg)
{
	wire_frame_free((void *)data);
}

/* Move frames from the outbox into the down link's socket buffer (no copy: by reference). */
void link_pump(struct net *n)
{
	struct link *l = &n->down;
	if (l->state != LINK_OPEN)
		return;
	struct evbuffer *out = bufferevent_get_output(l->bev);
	pthread_mutex_lock(&n->mu);
	while (n->oq_head && evbuffer_get_length(out) < OUT_HIGH) {
		struct outq *q = n->oq_head;
		n->oq_head = q->next;
		if (!n->oq_head)
			n->oq_tail = NULL;
		n->oq_len--;
		n->oq_train -= q->droppable;
		if (evbuffer_add_reference(out, q->frame, q->len, free_ref, NULL) != 0)
			wire_frame_free(q->frame);
		if (q->stop)
			n->stop_queued = 2; /* in the socket buffer */
		free(q);
	}
	n->down_drained = evbuffer_get_length(out) == 0 && !n->oq_head;
	if (n->down_drained && n->stop_queued == 2)
		n->stop_written = 1;
	pthread_cond_broadcast(&n->cv);
	/* a callback when the buffer runs low (more to move) or empty (flush waits for it) */
	bufferevent_setwatermark(l->bev, EV_WRITE, n->oq_head ? OUT_LOW : 0, 0);
	pthread_mutex_unlock(&n->mu);
}

void link_write_cb(struct bufferevent *bev, void *arg)
{
	struct link *l = arg;
	if (l->down)
		link_pump(l->net);
}

void link_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	link_pump(arg);
}

void link_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net *n = arg;
	struct link *l = n->up;
	if (l && l->paused && l->bev) {
		l->paused = 0;
		bufferevent_enable(l->bev, EV_READ);
		link_read_cb(l->bev, l); /* frames may already wait in the input buffer */
	}
}

void link_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net *n = arg;
	if (n->has_down && n->down.state == LINK_OPEN)
		link_ping(&n->down);
	if (n->up && n->up->state == LINK_OPEN)
		link_ping(n->up);
}
