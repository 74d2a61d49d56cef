/* Private to stages/link.c and stages/net.c: the link and net objects and their shared helpers. */
#ifndef NK_LINK_INT_H
#define NK_LINK_INT_H

#include <pthread.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "src/rng.h"
#include "stages/link.h"

#define OUT_HIGH (16u << 20) /* stop moving outbox frames into the socket buffer above this */
#define OUT_LOW (4u << 20)   /* ... and resume below this */
#define READ_HIGH (1u << 20) /* libevent stops reading while this much input waits */
#define IO_CHUNK (4u << 20)  /* most bytes per write() call */
#define DIRECT_MIN (64u << 10) /* frame rest read straight from the socket (see link_read_direct) */
#define MAX_PENDING 64       /* accepted connections still in their Hello (the oldest goes for a new one) */

enum link_state {
	LINK_IDLE = 0,   /* down link before the first attempt */
	LINK_CONNECTING, /* TCP connect in progress */
	LINK_HELLO,      /* our Hello sent, waiting for the peer's */
	LINK_OPEN,       /* Hello accepted both ways: frames flow */
	LINK_BACKOFF,    /* down link waiting to reconnect */
	LINK_CLOSED,     /* up link done, waiting to be reaped */
};

enum link_why {
	WHY_NONE = 0, WHY_EOF, WHY_ERROR, WHY_TIMEOUT, WHY_CONNECT, WHY_OVERSIZED, WHY_GARBAGE,
	WHY_VERSION, WHY_CHAIN, WHY_SENDER, WHY_PROTOCOL, WHY_REPLACED, WHY_STOP, WHY_BUSY, WHY_NOMEM,
};
extern const char *const link_why_names[]; /* for logs: reason=... */

struct link {
	struct net *net;
	int down;                    /* 1: to the downstream; 0: accepted from the upstream */
	enum link_state state;
	struct bufferevent *bev;
	struct wire_reader rd;
	char addr[136];              /* peer "ip:port" */
	char expect[CHAIN_NAME_LEN]; /* the stage name the peer must prove with its Hello */
	int proven;                  /* its Hello passed: logs name it expect, else peer=? */
	struct event *hello_ev;      /* the Hello's absolute deadline (bytes do not extend it) */
	double born, last_rx;        /* connection start; last bytes read (nk_now) */
	double rtt_ms;
	uint64_t nonce;
	int paused;                  /* reading stopped: the inbox is backed up */
	int lowat;                   /* the socket's SO_RCVLOWAT */
	int attempts;                /* reconnects since the last open */
	enum link_why last_why;      /* the down link logs a repeated failure once */
	struct link *next;           /* net->ups */
};

struct outq {
	uint8_t *frame;
	size_t len;
	int droppable;
	int stop;
	struct outq *next;
};

struct net {
	struct net_cfg cfg;
	const char *name;
	struct event_base *base;
	pthread_t thread;
	int running;
	struct event *quit_ev;      /* activated by net_free: breaks the loop from inside it */
	struct evconnlistener *listener;
	struct link *ups;            /* accepted links; at most one open */
	struct link *up;             /* the open one */
	struct link down;
	int has_down;
	struct sockaddr_storage down_sa;
	int down_salen;
	struct event *wake_ev, *reap_ev, *ping_ev, *backoff_ev, *tick_ev, *resume_ev;
	struct bufferevent *reap_bev[MAX_PENDING * 2 + 4];
	int nreap;
	struct link *reap_links;
	volatile int *tick_flag;
	struct nk_rng rng;
	/* shared with the compute thread, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct outq *oq_head, *oq_tail;
	int oq_len, oq_train;
	long unsent, refused;
	int stop_queued, stop_written, stop_delivered, down_drained;
	double up_rtt, down_rtt;
	double up_offset;            /* upstream clock minus ours, seconds (Ping/Pong estimate) */
	int up_offset_ok;
	int up_open, down_open;
};

/* stages/link.c: one connection's state machine and callbacks (event thread) */
void link_read_cb(struct bufferevent *bev, void *arg);
void link_write_cb(struct bufferevent *bev, void *arg);
void link_event_cb(struct bufferevent *bev, short what, void *arg);
void link_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa, int salen,
		    void *arg);
void link_backoff_cb(evutil_socket_t fd, short what, void *arg);
void link_reap_cb(evutil_socket_t fd, short what, void *arg);
void link_wake_cb(evutil_socket_t fd, short what, void *arg);
void link_resume_cb(evutil_socket_t fd, short what, void *arg);
void link_ping_cb(evutil_socket_t fd, short what, void *arg);
void link_pump(struct net *n);

/* stages/net.c: helpers shared with stages/link.c */
void net_log(struct net *n, const char *event, const struct link *l, const char *reason,
	     const char *detail);
struct timeval net_tv(double s);
int net_outq_push(struct net *n, uint8_t *f, size_t len, int droppable, int stop);

#endif
