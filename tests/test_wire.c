/* Wire codec: frames round-trip bit-exactly, whole or fed a byte at a time; truncated, oversized
 * and garbage frames are refused with an error (run under valgrind for leaks). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/rng.h"
#include "stages/wire.h"

#define MAXF (1u << 20)

static uint8_t *encode(const struct wire_msg *m, size_t *len)
{
	uint8_t *f = NULL;
	char err[NK_ERR_LEN] = "";
	int rc = wire_encode(m, MAXF, &f, len, err);
	cr_assert_eq(rc, 0, "encode: %s", err);
	return f;
}

/* A batch of n x 3 x 4 x 5 with awkward float bit patterns, labels and exit marks. */
static struct wire_msg make_batch(int n, float *x, int32_t *y, uint8_t *ex)
{
	struct nk_rng r;
	rng_seed(&r, 7);
	static const uint32_t odd[] = {0x7fc00001u, 0x80000000u, 0x00000001u, 0x7f800000u, 0xff7fffffu};
	for (int i = 0; i < n * 60; i++) {
		uint32_t u = i < 5 ? odd[i] : (uint32_t)rng_below(&r, 1u << 31) * 2u + (uint32_t)(i & 1);
		memcpy(&x[i], &u, 4);
	}
	for (int i = 0; i < n; i++) {
		y[i] = i % 2 ? i % 10 : -i;
		ex[i] = (uint8_t)(i % 3);
	}
	struct wire_msg m = {.kind = WIRE_BATCH};
	m.batch = (struct wire_batch){.id = 0x123456789ULL, .phase = WIRE_TEST, .epoch = 3, .last = 1,
				      .n = n, .c = 3, .h = 4, .w = 5, .x = x, .y = y, .exits = ex,
				      .chain_ms = 12.25};
	return m;
}

static void check_batch(const struct wire_msg *a, const struct wire_msg *b)
{
	const struct wire_batch *p = &a->batch, *q = &b->batch;
	cr_assert_eq(b->kind, WIRE_BATCH);
	cr_assert_eq(q->id, p->id);
	cr_assert_eq(q->phase, p->phase);
	cr_assert_eq(q->epoch, p->epoch);
	cr_assert_eq(q->last, p->last);
	cr_assert(q->n == p->n && q->c == p->c && q->h == p->h && q->w == p->w, "shape %dx%dx%dx%d",
		  q->n, q->c, q->h, q->w);
	cr_assert_eq(q->chain_ms, p->chain_ms);
	size_t e = (size_t)p->n * p->c * p->h * p->w;
	cr_assert_eq(((uintptr_t)q->x) % 64, 0, "tensor not 64-byte aligned");
	cr_assert_eq(memcmp(q->x, p->x, e * 4), 0, "floats differ");
	cr_assert_eq(memcmp(q->y, p->y, (size_t)p->n * 4), 0, "labels differ");
	cr_assert_eq(memcmp(q->exits, p->exits, (size_t)p->n), 0, "exit marks differ");
}

Test(wire, batch_round_trip_bit_exact)
{
	static float x[37 * 60];
	static int32_t y[37];
	static uint8_t ex[37];
	struct wire_msg m = make_batch(37, x, y, ex), *d = NULL;
	size_t len;
	uint8_t *f = encode(&m, &len);
	char err[NK_ERR_LEN] = "";
	cr_assert_eq(wire_decode(f, len, MAXF, &d, err), 0, "%s", err);
	check_batch(&m, d);
	wire_msg_free(d);
	wire_frame_free(f);
}

Test(wire, progress_and_logits_round_trip)
{
	/* What boosting and the schedules need: the source's progress, the sender's logits. */
	static float x[9 * 60], lg[9 * 10];
	static int32_t y[9];
	static uint8_t ex[9];
	struct wire_msg m = make_batch(9, x, y, ex), *d = NULL;
	for (int i = 0; i < 90; i++)
		lg[i] = (float)i * 0.37f - 11.0f;
	m.batch.phase = WIRE_TRAIN;
	m.batch.progress = 0.625;
	m.batch.logits = lg;
	m.batch.nlogits = 10;
	size_t len;
	uint8_t *f = encode(&m, &len);
	char err[NK_ERR_LEN] = "";
	cr_assert_eq(wire_decode(f, len, MAXF, &d, err), 0, "%s", err);
	check_batch(&m, d);
	cr_assert_float_eq(d->batch.progress, 0.625, 1e-7);
	cr_assert_eq(d->batch.nlogits, 10);
	cr_assert_arr_eq(d->batch.logits, lg, sizeof lg);
	wire_msg_free(d);
	wire_frame_free(f);
	/* Without logits: none decoded. A progress out of [0, 1] from a peer is clamped. */
	m.batch.logits = NULL;
	m.batch.nlogits = 0;
	m.batch.progress = 7.5;
	f = encode(&m, &len);
	cr_assert_eq(wire_decode(f, len, MAXF, &d, err), 0, "%s", err);
	cr_assert_null(d->batch.logits);
	cr_assert_float_eq(d->batch.progress, 1.0, 0);
	wire_msg_free(d);
	wire_frame_free(f);
}

Test(wire, fed_one_byte_at_a_time)
{
	static float x[9 * 60];
	static int32_t y[9];
	static uint8_t ex[9];
	struct wire_msg m = make_batch(9, x, y, ex), *d = NULL;
	size_t len;
	uint8_t *f = encode(&m, &len);
	struct wire_reader r;
	char err[NK_ERR_LEN] = "";
	wire_reader_init(&r, MAXF);
	for (size_t i = 0; i < len; i++) {
		cr_assert_null(d, "frame complete after %zu of %zu bytes", i, len);
		cr_assert_eq(wire_reader_feed(&r, f + i, 1, &d, err), 1, "%s", err);
	}
	cr_assert_not_null(d);
	check_batch(&m, d);
	wire_msg_free(d);
	wire_frame_free(f);
}

Test(wire, control_frames_round_trip)
{
	struct wire_msg ms[4] = {{.kind = WIRE_HELLO}, {.kind = WIRE_PING, .nonce = 99, .sent = 1.5},
				 {.kind = WIRE_PONG, .nonce = 7, .sent = 2.25}, {.kind = WIRE_STOP}};
	ms[0].hello = (struct wire_hello){.version = WIRE_VERSION, .chain = "fmnist-5", .hash = ~0ULL - 5,
					  .sender = "p8"};
	snprintf(ms[3].reason, sizeof ms[3].reason, "training done");
	/* two frames back to back: the reader stops after the first */
	for (int i = 0; i < 4; i++) {
		size_t l1, l2;
		uint8_t *f1 = encode(&ms[i], &l1), *f2 = encode(&ms[(i + 1) % 4], &l2);
		uint8_t *both = malloc(l1 + l2);
		memcpy(both, f1, l1);
		memcpy(both + l1, f2, l2);
		struct wire_reader r;
		struct wire_msg *d = NULL;
		char err[NK_ERR_LEN] = "";
		wire_reader_init(&r, MAXF);
		cr_assert_eq(wire_reader_feed(&r, both, l1 + l2, &d, err), (long)l1, "%s", err);
		cr_assert_not_null(d);
		cr_assert_eq(d->kind, ms[i].kind);
		cr_assert_eq(d->nonce, ms[i].nonce);
		cr_assert_eq(d->sent, ms[i].sent);
		cr_assert_str_eq(d->reason, ms[i].reason);
		cr_assert_eq(d->hello.version, ms[i].hello.version);
		cr_assert_eq(d->hello.hash, ms[i].hello.hash);
		cr_assert_str_eq(d->hello.chain, ms[i].hello.chain);
		cr_assert_str_eq(d->hello.sender, ms[i].hello.sender);
		wire_msg_free(d);
		wire_reader_reset(&r);
		free(both);
		wire_frame_free(f1);
		wire_frame_free(f2);
	}
}

Test(wire, every_truncation_refused)
{
	static float x[4 * 60];
	static int32_t y[4];
	static uint8_t ex[4];
	struct wire_msg m = make_batch(4, x, y, ex);
	size_t len;
	uint8_t *f = encode(&m, &len);
	for (size_t cut = 0; cut < len; cut++) {
		struct wire_msg *d = (void *)1;
		char err[NK_ERR_LEN] = "";
		cr_assert_eq(wire_decode(f, cut, MAXF, &d, err), NK_EFORMAT, "cut at %zu", cut);
		cr_assert_null(d);
		cr_assert(strstr(err, "truncated"), "cut at %zu: %s", cut, err);
	}
	wire_frame_free(f);
}

Test(wire, oversized_refused_before_allocating)
{
	uint8_t head[8] = {0x00, 0x10, 0x00, 0x01, 0x12, 0x00, 0x00, 0x00}; /* 1 MiB + 1 */
	struct wire_reader r;
	struct wire_msg *d = NULL;
	char err[NK_ERR_LEN] = "";
	wire_reader_init(&r, MAXF);
	cr_assert_eq(wire_reader_feed(&r, head, sizeof head, &d, err), NK_ERANGE);
	cr_assert_null(r.buf, "a buffer was allocated for an oversized frame");
	cr_assert(strstr(err, "oversized"), "%s", err);
	wire_reader_reset(&r);
	/* and the encoder will not make one */
	static float x[512 * 32 * 8 * 8];
	struct wire_msg m = {.kind = WIRE_BATCH};
	m.batch = (struct wire_batch){.n = 512, .c = 32, .h = 8, .w = 8, .x = x};
	uint8_t *f = NULL;
	size_t len;
	cr_assert_eq(wire_encode(&m, MAXF, &f, &len, err), NK_ERANGE);
	cr_assert_null(f);
	m.batch.n = -1;
	cr_assert_eq(wire_encode(&m, MAXF, &f, &len, err), NK_ERANGE);
}

/* A frame around a hand-made message body. */
static size_t frame_of(uint8_t *out, const uint8_t *msg, size_t n)
{
	out[0] = (uint8_t)(n >> 24);
	out[1] = (uint8_t)(n >> 16);
	out[2] = (uint8_t)(n >> 8);
	out[3] = (uint8_t)n;
	memcpy(out + 4, msg, n);
	return n + 4;
}

Test(wire, garbage_refused)
{
	uint8_t f[300], msg[256];
	char err[NK_ERR_LEN];
	struct wire_msg *d = NULL;
	memset(msg, 0xff, sizeof msg); /* an endless varint */
	cr_assert_eq(wire_decode(f, frame_of(f, msg, 40), MAXF, &d, err), NK_EFORMAT);
	cr_assert_eq(wire_decode(f, frame_of(f, msg, 0), MAXF, &d, err), NK_EFORMAT, "zero length");
	/* a well-formed batch whose shape disagrees with its data: 2x1x1x1 with 4 bytes */
	const uint8_t bad_shape[] = {0x12, 14, 0x0a, 4, 1, 2, 3, 4, 0x20, 2, 0x28, 1, 0x30, 1, 0x38, 1};
	cr_assert_eq(wire_decode(f, frame_of(f, bad_shape, sizeof bad_shape), MAXF, &d, err), NK_EFORMAT);
	cr_assert(strstr(err, "does not match"), "%s", err);
	/* an envelope with no message */
	const uint8_t empty[] = {0x30, 0x01}; /* an unknown varint field only */
	cr_assert_eq(wire_decode(f, frame_of(f, empty, sizeof empty), MAXF, &d, err), NK_EFORMAT);
	/* trailing bytes after a complete frame */
	const uint8_t stop[] = {0x2a, 0x00};
	size_t n = frame_of(f, stop, sizeof stop);
	f[n] = 0;
	cr_assert_eq(wire_decode(f, n, MAXF, &d, err), 0, "%s", err);
	cr_assert_eq(d->kind, WIRE_STOP);
	wire_msg_free(d);
	cr_assert_eq(wire_decode(f, n + 1, MAXF, &d, err), NK_EFORMAT);
	cr_assert_null(d);
}

Test(wire, random_bytes_never_crash)
{
	struct nk_rng r;
	uint8_t f[260];
	rng_seed(&r, 11);
	int refused = 0;
	for (int i = 0; i < 5000; i++) {
		uint8_t msg[256];
		size_t n = 1 + rng_below(&r, sizeof msg);
		for (size_t k = 0; k < n; k++)
			msg[k] = (uint8_t)rng_below(&r, 256);
		if (i % 2)
			msg[0] = 0x12; /* claims to be a batch */
		struct wire_msg *d = NULL;
		char err[NK_ERR_LEN];
		int rc = wire_decode(f, frame_of(f, msg, n), MAXF, &d, err);
		cr_assert(rc == 0 || rc == NK_EFORMAT, "rc %d", rc);
		cr_assert((rc == 0) == (d != NULL));
		refused += rc != 0;
		wire_msg_free(d);
	}
	cr_assert_gt(refused, 4000, "only %d of 5000 random frames refused", refused);
}

Test(wire, other_field_order_decodes)
{
	/* data after the other fields (a valid encoding protobuf-c does not produce): the general
	 * path decodes it, still aligned */
	const uint8_t body[] = {0x10, 42, 0x20, 1, 0x28, 1, 0x30, 1, 0x38, 2, 0x40, 7,
				0x0a, 8, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0};
	uint8_t msg[64], f[80];
	msg[0] = 0x12;
	msg[1] = sizeof body;
	memcpy(msg + 2, body, sizeof body);
	struct wire_msg *d = NULL;
	char err[NK_ERR_LEN] = "";
	cr_assert_eq(wire_decode(f, frame_of(f, msg, 2 + sizeof body), MAXF, &d, err), 0, "%s", err);
	cr_assert_eq(d->batch.id, 42);
	cr_assert_eq(d->batch.n * d->batch.c * d->batch.h * d->batch.w, 2);
	cr_assert_eq(((uintptr_t)d->batch.x) % 64, 0);
	cr_assert(d->batch.x[0] == 1.0f && d->batch.x[1] == -2.0f);
	cr_assert_eq(d->batch.y[0], 7);
	wire_msg_free(d);
}

Test(wire, empty_batch_round_trips)
{
	struct wire_msg m = {.kind = WIRE_BATCH}, *d = NULL;
	m.batch = (struct wire_batch){.id = 5, .phase = WIRE_PREDICT, .n = 0, .c = 3, .h = 2, .w = 2};
	size_t len;
	uint8_t *f = encode(&m, &len);
	char err[NK_ERR_LEN] = "";
	cr_assert_eq(wire_decode(f, len, MAXF, &d, err), 0, "%s", err);
	cr_assert_eq(d->batch.n, 0);
	cr_assert_eq(d->batch.phase, WIRE_PREDICT);
	cr_assert_null(d->batch.y);
	wire_msg_free(d);
	wire_frame_free(f);
}

/* Freed frames are kept for reuse, but the pool never holds more than 48 MiB, nor a buffer over
 * 16 MiB: large frames from a peer do not pin memory for ever. */
Test(wire, frame_pool_is_bounded)
{
	enum { N = 12 };
	uint8_t *f[N], *big;
	size_t len;
	char err[NK_ERR_LEN] = "";
	float *x = calloc((size_t)6 << 20, sizeof *x); /* up to 24 MiB of data */
	cr_assert_not_null(x);
	struct wire_msg m = {.kind = WIRE_BATCH};
	m.batch = (struct wire_batch){.id = 1, .phase = WIRE_PREDICT, .n = 1, .c = 1, .h = 1024, .x = x};
	for (int i = 0; i < N; i++) { /* 12 frames of 7 MiB: more than the pool may keep */
		m.batch.w = 7 * 256;
		cr_assert_eq(wire_encode(&m, 64u << 20, &f[i], &len, err), 0, "%s", err);
	}
	for (int i = 0; i < N; i++)
		wire_frame_free(f[i]);
	size_t kept = wire_pool_bytes();
	cr_assert_gt(kept, 0, "nothing kept for reuse");
	cr_assert_leq(kept, (size_t)48 << 20, "the pool holds %zu bytes", kept);
	m.batch.w = 6 * 1024; /* one frame of 24 MiB: used once, then given back */
	cr_assert_eq(wire_encode(&m, 64u << 20, &big, &len, err), 0, "%s", err);
	wire_frame_free(big);
	cr_assert_eq(wire_pool_bytes(), kept, "a 24 MiB buffer went into the pool");
	free(x);
}
