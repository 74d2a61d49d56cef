/* The links of one stage, on libevent 2.x running on its own thread: a listener for the upstream
 * stage (its frames go to the inbox) and a connection to the downstream stage (fed from an
 * outbox), each with a Hello check both ways, Ping/Pong round trips, read/write timeouts,
 * watermarks, and reconnection with capped exponential backoff and jitter. Event lines
 * (phase=net event=connected/refused/lost/...) go to the stage's log. */
#ifndef NK_LINK_H
#define NK_LINK_H

#include <stdio.h>

#include "src/chain.h"
#include "stages/inbox.h"
#include "stages/wire.h"

struct net_cfg {
	const struct chain *chain;
	int index;              /* this stage's position */
	struct inbox *inbox;    /* frames from upstream; may be NULL for the first stage */
	FILE *log, *echo;       /* event lines (either may be NULL) */
	double t0;              /* t= is seconds since */
	size_t max_frame;       /* 0: WIRE_MAX_FRAME_DEFAULT */
	int outbox;             /* train frames waiting for the downstream before the oldest is dropped (0: 4) */
	double ping_s;          /* 0: 1 */
	double timeout_s;       /* read/write timeout of an open link (0: 10) */
	double hello_s;         /* time allowed for the peer's Hello (0: 5) */
	double backoff_min_s, backoff_max_s; /* reconnect delays (0: 0.05 and 2) */
};

struct net_stats {
	int up_open, down_open; /* 1 when that link has passed the Hello */
	long unsent;            /* train frames dropped from the outbox */
	long refused;           /* connections refused at the Hello */
	double up_rtt_ms, down_rtt_ms; /* smoothed Ping/Pong round trip; 0 until measured */
	double up_offset_s;     /* the upstream's clock minus ours (estimated from round trips) */
	int up_offset_ok;       /* 0 until measured */
	int backlog;            /* frames in the outbox */
	int backlog_train;      /* ... of them train frames */
};

struct net;

/* Resolve the addresses and bind the listener (stages after the first); nothing runs yet. */
int net_new(struct net **out, const struct net_cfg *cfg, char err[NK_ERR_LEN]);
/* A loopback port nobody listens on now (bind port 0 and read it back), or -1: for tests and
 * benchmarks that run a chain on this machine. */
int net_free_port(void);
/* Start the event thread: accept the upstream, connect to the downstream. */
int net_start(struct net *n, char err[NK_ERR_LEN]);
/* Stop the thread, close the links, free everything. NULL is a no-op. */
void net_free(struct net *n);

/* Queue a frame for the downstream (encoded here, on the caller's thread: the one copy). Train
 * batches may be dropped if the downstream lags; everything else waits for it. NK_ENOENT when this
 * stage has no downstream. */
int net_send(struct net *n, const struct wire_msg *m, char err[NK_ERR_LEN]);
/* Wait up to timeout_s until every queued frame is written; after a Stop, also until the
 * downstream has closed the link (it then holds the Stop). 0 when done, NK_ESTATE on timeout. */
int net_flush(struct net *n, double timeout_s);
/* Wait up to timeout_s until fewer than max frames wait in the outbox; 0, or NK_ESTATE. */
int net_wait_backlog(struct net *n, int max, double timeout_s);
/* Set *flag to 1 every period_s seconds (the source's pace); 0 stops it. */
void net_ticker(struct net *n, double period_s, volatile int *flag);
void net_get_stats(struct net *n, struct net_stats *s);

/* Split "host:port"; 0 or NK_EINVAL. */
int net_split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen);

#endif
