/* The wire: frames of a 4-byte big-endian length and one protobuf Envelope (stages/necklace.proto:
 * Hello, Batch, Ping, Pong, Stop), and a streaming reader that takes a frame's bytes as they
 * arrive. Tensor data is copied once each way: into the frame when encoding, out of the socket
 * buffer into its final (64-byte aligned) place when reading. No libevent here. */
#ifndef NK_WIRE_H
#define NK_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "src/chain.h"
#include "src/nk.h"

#define WIRE_VERSION 1
#define WIRE_HDR 4                        /* length prefix */
#define WIRE_MAX_FRAME_DEFAULT (64u << 20) /* bytes after the prefix */
#define WIRE_HELLO_MAX 1024               /* the largest frame read before a Hello is complete */
#define WIRE_PEEK 24                      /* message bytes the reader looks at before placing it */

enum wire_kind { WIRE_NONE = 0, WIRE_HELLO, WIRE_BATCH, WIRE_PING, WIRE_PONG, WIRE_STOP };
enum wire_phase { WIRE_TRAIN = 0, WIRE_TEST, WIRE_PREDICT };

const char *wire_kind_name(enum wire_kind k);
const char *wire_phase_name(enum wire_phase p);

struct wire_hello {
	uint32_t version;
	char chain[CHAIN_NAME_LEN];
	uint64_t hash;              /* chain->hash */
	char sender[CHAIN_NAME_LEN];
};

/* Predict mode: the answers one stage gave (stages/necklace.proto: StageTally). */
struct wire_stage_tally {
	int stage;                  /* position in the chain */
	uint64_t arrived;           /* samples whose body ran here */
	uint64_t evaluated;         /* samples whose head ran here */
	uint64_t answered, correct; /* answered by the exit rule (the last stage: all) and right */
	uint64_t degraded, degraded_correct; /* answered because the downstream was unreachable */
	uint64_t body_macs, head_macs; /* multiply-adds per sample */
};

/* Answers not yet reported; travels with predict batches. */
struct wire_tally {
	int nst;
	struct wire_stage_tally *st; /* [nst] */
	int nlat;
	double *lat_ms;             /* [nlat] end-to-end latencies of the batches completed */
};

#define WIRE_MAX_TALLY 1024         /* stage entries a decoded tally may have */
#define WIRE_MAX_LOGITS 65536        /* logits per sample a batch may carry */

struct wire_batch {
	uint64_t id;
	enum wire_phase phase;
	int epoch;
	int last;                   /* last batch of a test pass */
	int n, c, h, w;
	const float *x;             /* [n][c][h][w] */
	const int32_t *y;           /* [n] labels, or NULL */
	const uint8_t *exits;       /* [n] exit marks, or NULL */
	double chain_ms;            /* residence time summed over the stages so far */
	double sent;                /* sender's nk_now() when it queued the frame */
	double link_ms;             /* one-way link times summed over the links so far */
	int pass_n;                 /* predict: samples in the whole pass */
	const struct wire_tally *tally; /* predict: answers so far, or NULL */
	double progress;            /* train: fraction of the run done at the source, [0, 1] */
	const float *logits;        /* [n][nlogits] the sender's logits (the next stage boosts), or NULL */
	int nlogits;                /* per sample: the classes */
};

/* One message. Encoders fill the part of its kind; decoded messages own their memory. */
struct wire_msg {
	enum wire_kind kind;
	struct wire_hello hello;
	struct wire_batch batch;
	uint64_t nonce;             /* ping, pong */
	double sent;                /* ping, pong: the pinger's clock */
	double peer_now;            /* pong: the responder's clock */
	char reason[128];           /* stop */
	double arrived;             /* receiver's nk_now() when the frame completed */
	void *frame;                /* private: owned buffers of a decoded message */
	void *labels, *exits, *xcopy, *tally, *logits;
	struct wire_msg *next;      /* private: queue link (stages/inbox.c) */
};

/* Encode m into a new frame (prefix included, free it with wire_frame_free) of *len bytes; NK_ERANGE when it would
 * exceed max_frame, NK_EINVAL for an inconsistent batch. */
int wire_encode(const struct wire_msg *m, size_t max_frame, uint8_t **frame, size_t *len,
		char err[NK_ERR_LEN]);
void wire_msg_free(struct wire_msg *m);
/* Free a frame from wire_encode (large ones are kept for reuse). NULL is a no-op. */
void wire_frame_free(void *frame);
/* Bytes the pool of freed frame buffers holds (at most 48 MiB, no buffer over 16 MiB). */
size_t wire_pool_bytes(void);

/* Streaming reader: one per connection. */
struct wire_reader {
	size_t max_frame;
	uint8_t head[WIRE_HDR + WIRE_PEEK]; /* the frame's first bytes */
	size_t nhead;
	size_t len;                 /* message length, once the prefix is in */
	uint8_t *buf;               /* aligned storage, once placed; message at buf + off */
	size_t off, got;
	long data_off;              /* offset of Batch.data in the message, or -1 */
	size_t data_len;
};

void wire_reader_init(struct wire_reader *r, size_t max_frame);
/* Drop a partial frame (frees it); the reader can then start over. */
void wire_reader_reset(struct wire_reader *r);
/* Bytes of a frame received and not yet decoded. */
size_t wire_reader_pending(const struct wire_reader *r);
/* Bytes still missing from the frame being read (0 between frames or while in its first bytes). */
size_t wire_reader_remaining(const struct wire_reader *r);
/* For reading straight from a socket into the frame (no intermediate buffer): where the frame's
 * next bytes go and how many it still misses (NULL before the frame is placed); then commit the
 * k bytes written there, which decodes the frame into *out once complete (as wire_reader_feed). */
uint8_t *wire_reader_dest(struct wire_reader *r, size_t *room);
int wire_reader_commit(struct wire_reader *r, size_t k, struct wire_msg **out, char err[NK_ERR_LEN]);
/* Take up to n bytes; returns how many were used, stopping after a complete frame, which is then
 * decoded into *out (else *out stays NULL). A negative enum nk_err means a bad frame (oversized:
 * NK_ERANGE, before anything is allocated; garbage: NK_EFORMAT): drop the connection. */
long wire_reader_feed(struct wire_reader *r, const uint8_t *p, size_t n, struct wire_msg **out,
		      char err[NK_ERR_LEN]);

/* Decode exactly one whole frame (prefix included); truncated or trailing bytes are NK_EFORMAT. */
int wire_decode(const uint8_t *frame, size_t len, size_t max_frame, struct wire_msg **out,
		char err[NK_ERR_LEN]);

#endif
