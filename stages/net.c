/* The links of one stage as a whole: set-up, the event thread, the outbox, the API the compute
 * thread calls. */
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

/* ---- helpers ---- */

void net_log(struct net *n, const char *event, const struct link *l, const char *reason,
		    const char *detail)
{
	struct logfmt lf;
	lf_begin(&lf);
	lf_num(&lf, "t", nk_now() - n->cfg.t0, 3);
	lf_str(&lf, "stage", n->name);
	lf_str(&lf, "phase", "net");
	lf_str(&lf, "event", event);
	if (l) {
		lf_str(&lf, "link", l->down ? "down" : "up");
		lf_str(&lf, "peer", l->proven ? l->expect : "?");
		if (!l->proven && l->expect[0])
			lf_str(&lf, "want", l->expect);
		lf_str(&lf, "addr", l->addr[0] ? l->addr : "?");
	}
	if (reason)
		lf_str(&lf, "reason", reason);
	if (detail)
		lf_str(&lf, "detail", detail);
	lf_write(&lf, n->cfg.echo, n->cfg.log);
}

struct timeval net_tv(double s)
{
	struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};
	return tv;
}

int net_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr || (size_t)(colon - addr) >= hostlen || strlen(colon + 1) >= portlen ||
	    !colon[1])
		return NK_EINVAL;
	const char *h = addr;
	size_t hl = (size_t)(colon - addr);
	if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') { /* [v6]:port */
		h++;
		hl -= 2;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, portlen, "%s", colon + 1);
	return 0;
}

static int resolve(const char *addr, int passive, struct sockaddr_storage *sa, int *salen,
		   char err[NK_ERR_LEN])
{
	char host[128], port[16];
	if (net_split_addr(addr, host, sizeof host, port, sizeof port))
		return nk_errf(err, NK_EINVAL, "bad address '%s': expected host:port", addr);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
	struct addrinfo *ai = NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc || !ai)
		return nk_errf(err, NK_EINVAL, "cannot resolve '%s': %s", addr, gai_strerror(rc));
	memcpy(sa, ai->ai_addr, ai->ai_addrlen);
	*salen = (int)ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void net_on_space(void *arg)
{
	struct net *n = arg;
	event_active(n->resume_ev, EV_TIMEOUT, 0);
}

static void net_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net *n = arg;
	if (n->tick_flag)
		*n->tick_flag = 1;
}

/* ---- the API (compute thread) ---- */

static void threads_init(void)
{
	evthread_use_pthreads();
}

/* net_free's stop, run by the loop itself: a loopbreak called before the thread entered
 * event_base_loop would be lost (the loop clears the flag when it starts), an active event is
 * not. */
static void net_quit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct net *n = arg;
	event_base_loopbreak(n->base);
}

static int net_events(struct net *n)
{
	n->quit_ev = event_new(n->base, -1, 0, net_quit_cb, n);
	n->wake_ev = event_new(n->base, -1, 0, link_wake_cb, n);
	n->reap_ev = event_new(n->base, -1, 0, link_reap_cb, n);
	n->resume_ev = event_new(n->base, -1, 0, link_resume_cb, n);
	n->ping_ev = event_new(n->base, -1, EV_PERSIST, link_ping_cb, n);
	n->tick_ev = event_new(n->base, -1, EV_PERSIST, net_tick_cb, n);
	n->backoff_ev = evtimer_new(n->base, link_backoff_cb, n);
	return n->quit_ev && n->wake_ev && n->reap_ev && n->resume_ev && n->ping_ev && n->tick_ev && n->backoff_ev;
}

static int net_listen(struct net *n, char err[NK_ERR_LEN])
{
	const char *addr = n->cfg.chain->stages[n->cfg.index].listen;
	struct sockaddr_storage sa;
	int salen, rc;
	if (!addr[0])
		return nk_errf(err, NK_EINVAL, "stage %s has no \"listen\" address for its upstream", n->name);
	if ((rc = resolve(addr, 1, &sa, &salen, err)))
		return rc;
	n->listener = evconnlistener_new_bind(n->base, link_accept_cb, n, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
					      16, (struct sockaddr *)&sa, salen);
	if (!n->listener)
		return nk_errf(err, NK_EIO, "stage %s: cannot listen on %s: %s", n->name, addr, strerror(errno));
	return 0;
}

int net_new(struct net **out, const struct net_cfg *cfg, char err[NK_ERR_LEN])
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, threads_init);
	*out = NULL;
	struct net *n = calloc(1, sizeof *n);
	if (!n)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	n->cfg = *cfg;
	struct net_cfg *c = &n->cfg;
	c->max_frame = c->max_frame ? c->max_frame : WIRE_MAX_FRAME_DEFAULT;
	c->outbox = c->outbox > 0 ? c->outbox : 4;
	c->ping_s = c->ping_s > 0 ? c->ping_s : 1.0;
	c->timeout_s = c->timeout_s > 0 ? c->timeout_s : 10.0;
	c->hello_s = c->hello_s > 0 ? c->hello_s : 5.0;
	c->backoff_min_s = c->backoff_min_s > 0 ? c->backoff_min_s : 0.05;
	c->backoff_max_s = c->backoff_max_s > 0 ? c->backoff_max_s : 2.0;
	n->name = c->chain->stages[c->index].name;
	rng_seed(&n->rng, (uint64_t)(nk_now() * 1e9) ^ ((uint64_t)getpid() << 32));
	pthread_mutex_init(&n->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cv, &ca);
	pthread_condattr_destroy(&ca);
	int rc = 0;
	n->base = event_base_new();
	if (!n->base || !net_events(n))
		rc = nk_errf(err, NK_ENOMEM, "cannot set up libevent");
	if (rc == 0 && c->index + 1 < c->chain->nstages) {
		const struct chain_stage *next = &c->chain->stages[c->index + 1];
		n->has_down = 1;
		n->down.net = n;
		n->down.down = 1;
		snprintf(n->down.expect, sizeof n->down.expect, "%s", next->name);
		snprintf(n->down.addr, sizeof n->down.addr, "%s", next->listen);
		if (!next->listen[0])
			rc = nk_errf(err, NK_EINVAL, "stage %s has no \"listen\" address", next->name);
		else
			rc = resolve(next->listen, 0, &n->down_sa, &n->down_salen, err);
	}
	if (rc == 0 && c->index > 0)
		rc = net_listen(n, err);
	if (rc) {
		net_free(n);
		return rc;
	}
	if (c->inbox) {
		c->inbox->on_space_arg = n;
		c->inbox->on_space = net_on_space;
	}
	*out = n;
	return 0;
}

static void *net_thread(void *arg)
{
	struct net *n = arg;
	event_base_loop(n->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int net_start(struct net *n, char err[NK_ERR_LEN])
{
	struct timeval ping = net_tv(n->cfg.ping_s), now = {0, 0};
	event_add(n->ping_ev, &ping);
	if (n->has_down)
		evtimer_add(n->backoff_ev, &now);
	if (n->listener)
		net_log(n, "listening", NULL, NULL, n->cfg.chain->stages[n->cfg.index].listen);
	/* signals go to the compute thread; a write to a closed socket is an error, not SIGPIPE */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	int rc = pthread_create(&n->thread, NULL, net_thread, n);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return nk_errf(err, NK_ENOMEM, "cannot start the event thread: %s", strerror(rc));
	n->running = 1;
	return 0;
}

void net_free(struct net *n)
{
	if (!n)
		return;
	if (n->running) {
		event_active(n->quit_ev, EV_READ, 0);
		pthread_join(n->thread, NULL);
	}
	if (n->cfg.inbox && n->cfg.inbox->on_space_arg == n)
		n->cfg.inbox->on_space = NULL;
	if (n->down.bev)
		bufferevent_free(n->down.bev);
	if (n->down.hello_ev)
		event_free(n->down.hello_ev);
	wire_reader_reset(&n->down.rd);
	while (n->ups) {
		struct link *l = n->ups;
		n->ups = l->next;
		bufferevent_free(l->bev);
		l->next = n->reap_links;
		n->reap_links = l;
	}
	link_reap_cb(-1, 0, n);
	if (n->listener)
		evconnlistener_free(n->listener);
	struct event *evs[] = {n->quit_ev, n->wake_ev, n->reap_ev, n->resume_ev, n->ping_ev, n->tick_ev, n->backoff_ev};
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (evs[i])
			event_free(evs[i]);
	while (n->oq_head) {
		struct outq *q = n->oq_head;
		n->oq_head = q->next;
		wire_frame_free(q->frame);
		free(q);
	}
	if (n->base)
		event_base_free(n->base);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

/* Append a frame to the outbox, dropping the oldest train frame when they reach the limit. */
int net_outq_push(struct net *n, uint8_t *f, size_t len, int droppable, int stop)
{
	struct outq *q = malloc(sizeof *q), *evicted = NULL;
	if (!q) {
		wire_frame_free(f);
		return NK_ENOMEM;
	}
	*q = (struct outq){f, len, droppable, stop, NULL};
	pthread_mutex_lock(&n->mu);
	if (droppable && n->oq_train >= n->cfg.outbox) {
		struct outq **pp = &n->oq_head, *prev = NULL;
		while (!(*pp)->droppable) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		evicted = *pp;
		*pp = evicted->next;
		if (n->oq_tail == evicted)
			n->oq_tail = prev;
		n->oq_len--;
		n->oq_train--;
		n->unsent++;
	}
	if (n->oq_tail)
		n->oq_tail->next = q;
	else
		n->oq_head = q;
	n->oq_tail = q;
	n->oq_len++;
	n->oq_train += droppable;
	if (stop)
		n->stop_queued = 1;
	pthread_mutex_unlock(&n->mu);
	if (evicted) {
		wire_frame_free(evicted->frame);
		free(evicted);
	}
	event_active(n->wake_ev, EV_TIMEOUT, 0);
	return 0;
}

int net_send(struct net *n, const struct wire_msg *m, char err[NK_ERR_LEN])
{
	if (!n->has_down)
		return nk_errf(err, NK_ENOENT, "stage %s has no downstream", n->name);
	uint8_t *f;
	size_t len;
	int rc = wire_encode(m, n->cfg.max_frame, &f, &len, err);
	if (rc)
		return rc;
	int droppable = m->kind == WIRE_BATCH && m->batch.phase == WIRE_TRAIN;
	if ((rc = net_outq_push(n, f, len, droppable, m->kind == WIRE_STOP)))
		return nk_errf(err, rc, "out of memory");
	return 0;
}

int net_wait_backlog(struct net *n, int max, double timeout_s)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double end = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + timeout_s;
	ts.tv_sec = (time_t)end;
	ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
	pthread_mutex_lock(&n->mu);
	int rc = 0;
	while (n->oq_len >= max && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&n->cv, &n->mu, &ts);
	int ok = n->oq_len < max;
	pthread_mutex_unlock(&n->mu);
	return ok ? 0 : NK_ESTATE;
}

static int flushed(const struct net *n)
{
	return !n->has_down || (n->oq_len == 0 && (n->down_drained || !n->down_open) &&
				(!n->stop_queued || n->stop_delivered));
}

int net_flush(struct net *n, double timeout_s)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double end = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + timeout_s;
	ts.tv_sec = (time_t)end;
	ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
	pthread_mutex_lock(&n->mu);
	int rc = 0;
	while (!flushed(n) && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&n->cv, &n->mu, &ts);
	int done = flushed(n);
	pthread_mutex_unlock(&n->mu);
	return done ? 0 : NK_ESTATE;
}

void net_ticker(struct net *n, double period_s, volatile int *flag)
{
	n->tick_flag = flag;
	if (period_s > 0) {
		struct timeval tv = net_tv(period_s);
		event_add(n->tick_ev, &tv);
	} else {
		event_del(n->tick_ev);
	}
}

void net_get_stats(struct net *n, struct net_stats *s)
{
	pthread_mutex_lock(&n->mu);
	s->up_open = n->up_open;
	s->down_open = n->down_open;
	s->unsent = n->unsent;
	s->refused = n->refused;
	s->up_rtt_ms = n->up_rtt;
	s->down_rtt_ms = n->down_rtt;
	s->up_offset_s = n->up_offset;
	s->up_offset_ok = n->up_offset_ok;
	s->backlog = n->oq_len;
	s->backlog_train = n->oq_train;
	pthread_mutex_unlock(&n->mu);
}

int net_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}
