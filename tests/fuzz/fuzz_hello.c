/* Fuzz target "hello": what a stage does with the bytes a peer sends on a new connection, as
 * stages/link.c does it: a reader limited to WIRE_HELLO_MAX until a Hello arrives; the Hello
 * checked (version, chain name and hash, sender); then, with the stage's frame limit, pings
 * answered and batches and stops taken; anything else closes the connection.
 * Input: [piece-size byte][stream...]; we are stage s1 of fuzz_chain(), expecting s0. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

const char fuzz_name[] = "hello";

#ifndef WIRE_HELLO_MAX
#define WIRE_HELLO_MAX 1024 /* older wire.h: the same bound the link uses */
#endif
#define OPEN_MAX_FRAME (1u << 20)

enum state { HELLO, OPEN, CLOSED };

/* link.c's hello_check. */
static int hello_ok(const struct wire_hello *h, const struct chain *c)
{
	return h->version == WIRE_VERSION && h->hash == c->hash && strcmp(h->chain, c->name) == 0 &&
	       strcmp(h->sender, c->stages[0].name) == 0;
}

static enum state dispatch(enum state st, struct wire_reader *r, const struct wire_msg *m)
{
	const struct chain *c = fuzz_chain();
	fuzz_touch_msg(m);
	if (st == HELLO) {
		if (m->kind != WIRE_HELLO || !hello_ok(&m->hello, c))
			return CLOSED;
		r->max_frame = OPEN_MAX_FRAME; /* proven: batch frames from now on */
		return OPEN;
	}
	switch (m->kind) {
	case WIRE_PING: {
		struct wire_msg pong = {.kind = WIRE_PONG, .nonce = m->nonce, .sent = m->sent,
					.peer_now = 1.5};
		char err[NK_ERR_LEN] = "";
		uint8_t *f = NULL;
		size_t len = 0;
		if (wire_encode(&pong, OPEN_MAX_FRAME, &f, &len, err))
			abort();
		wire_frame_free(f);
		return OPEN;
	}
	case WIRE_PONG:
		return OPEN;
	case WIRE_BATCH:
		return OPEN;
	default: /* a stop closes; a hello again is a protocol error */
		return CLOSED;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t piece = 1 + data[0] % 64, pos = 0;
	const uint8_t *s = data + 1;
	size_t n = size - 1;
	struct wire_reader r;
	enum state st = HELLO;
	char err[NK_ERR_LEN] = "";

	wire_reader_init(&r, WIRE_HELLO_MAX);
	while (pos < n && st != CLOSED) {
		struct wire_msg *m = NULL;
		err[0] = '\0';
		long used = wire_reader_feed(&r, s + pos, NK_MIN(piece, n - pos), &m, err);
		fuzz_check_rc(used < 0 ? (int)used : 0, err, "wire_reader_feed");
		if (used < 0)
			break;
		if (used == 0)
			abort();
		if (st == HELLO && r.max_frame == WIRE_HELLO_MAX && wire_reader_pending(&r) > WIRE_HDR &&
		    r.len > WIRE_HELLO_MAX)
			abort(); /* a frame over the hello limit was taken before any Hello */
		pos += (size_t)used;
		if (m && (st = dispatch(st, &r, m)) == OPEN && m->kind == WIRE_HELLO)
			fuzz_accepted++;
		wire_msg_free(m);
	}
	wire_reader_reset(&r);
	return 0;
}
