/* Wire codec: protobuf-c Envelope frames, with the tensor copied once each way. */
#include "stages/wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stages/necklace.pb-c.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define WIRE_SWAP 1 /* floats travel little-endian */
#else
#define WIRE_SWAP 0
#endif

static const char *const kind_names[] = {"none", "hello", "batch", "ping", "pong", "stop"};
static const char *const phase_names[] = {"train", "test", "predict"};

const char *wire_kind_name(enum wire_kind k)
{
	return (unsigned)k < sizeof kind_names / sizeof kind_names[0] ? kind_names[k] : "?";
}

const char *wire_phase_name(enum wire_phase p)
{
	return (unsigned)p < sizeof phase_names / sizeof phase_names[0] ? phase_names[p] : "?";
}

static void swap32(void *p, size_t words)
{
	uint32_t *w = p;
	for (size_t i = 0; i < words; i++)
		w[i] = __builtin_bswap32(w[i]);
}

/* Elements of an n x c x h x w tensor, or -1 when any is negative or it exceeds limit bytes. */
static long long tensor_elems(long long n, long long c, long long h, long long w, size_t limit)
{
	long long e = 1, d[4] = {n, c, h, w};
	for (int i = 0; i < 4; i++) {
		if (d[i] < 0 || (d[i] > 0 && e > (long long)(limit / 4) / d[i]))
			return -1;
		e *= d[i];
	}
	return e;
}

/* ---- frame buffers ----
 * Batch frames are megabytes; fresh ones cost a page fault per 4 KiB on first touch, about as much
 * as the copy itself. Freed large buffers are kept in a small pool for the next frames. Each
 * buffer has a 64-byte header holding its capacity; the data after it is 64-byte aligned. */

#define POOL_MAX 8
#define POOL_MIN (256u << 10)
#define POOL_BUF_MAX (16u << 20)   /* larger buffers go back to the system */
#define POOL_BYTES_MAX (48u << 20) /* what the pool may hold in all */

static struct {
	pthread_mutex_t mu;
	void *buf[POOL_MAX];
	int n;
	size_t bytes;
} pool = {PTHREAD_MUTEX_INITIALIZER, {0}, 0, 0};

static uint8_t *frame_alloc(size_t size)
{
	uint8_t *b = NULL;
	if (size >= POOL_MIN / 2) {
		pthread_mutex_lock(&pool.mu);
		for (int i = 0; i < pool.n; i++) {
			size_t cap = *(size_t *)pool.buf[i];
			if (cap >= size && cap / 2 <= size) {
				b = pool.buf[i];
				pool.buf[i] = pool.buf[--pool.n];
				pool.bytes -= cap;
				break;
			}
		}
		pthread_mutex_unlock(&pool.mu);
	}
	if (!b && (b = nk_alloc(64 + size)))
		*(size_t *)b = size;
	return b ? b + 64 : NULL;
}

void wire_frame_free(void *frame)
{
	if (!frame)
		return;
	uint8_t *b = (uint8_t *)frame - 64;
	size_t cap = *(size_t *)b;
	if (cap >= POOL_MIN && cap <= POOL_BUF_MAX) {
		pthread_mutex_lock(&pool.mu);
		if (pool.n < POOL_MAX && pool.bytes + cap <= POOL_BYTES_MAX) {
			pool.buf[pool.n++] = b;
			pool.bytes += cap;
			b = NULL;
		}
		pthread_mutex_unlock(&pool.mu);
	}
	free(b);
}

size_t wire_pool_bytes(void)
{
	pthread_mutex_lock(&pool.mu);
	size_t n = pool.bytes;
	pthread_mutex_unlock(&pool.mu);
	return n;
}

/* ---- layout ---- */

/* Varint at p[*pos..n); 0 when it is cut off or longer than 10 bytes. */
static int varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v)
{
	*v = 0;
	for (int s = 0; s < 64 && *pos < n; s += 7) {
		uint8_t b = p[(*pos)++];
		*v |= (uint64_t)(b & 0x7f) << s;
		if (!(b & 0x80))
			return 1;
	}
	return 0;
}

/* Offset of Batch.data in a message of len bytes whose first n bytes are p, when the message is
 * [tag batch][len][tag data][len][data ...] with the batch running to the end; else -1. */
static long locate_data(const uint8_t *p, size_t n, size_t len, size_t *dlen)
{
	size_t pos = 0;
	uint64_t v;
	if (!varint(p, n, &pos, &v) || v != ((NK__ENVELOPE__MSG_BATCH << 3) | 2))
		return -1;
	if (!varint(p, n, &pos, &v) || v != len - pos)
		return -1;
	if (!varint(p, n, &pos, &v) || v != ((1 << 3) | 2))
		return -1;
	if (!varint(p, n, &pos, &v) || v > len - pos)
		return -1;
	*dlen = (size_t)v;
	return (long)pos;
}

/* ---- encoding ---- */

/* pt: the protobuf form of t, pointing into sts[t->nst] and pp[t->nst] (the caller's). */
static void encode_tally(const struct wire_tally *t, Nk__Tally *pt, Nk__StageTally *sts,
			 Nk__StageTally **pp)
{
	for (int i = 0; i < t->nst; i++) {
		const struct wire_stage_tally *a = &t->st[i];
		Nk__StageTally *b = &sts[i];
		nk__stage_tally__init(b);
		b->stage = (uint32_t)a->stage;
		b->arrived = a->arrived;
		b->evaluated = a->evaluated;
		b->answered = a->answered;
		b->correct = a->correct;
		b->degraded = a->degraded;
		b->degraded_correct = a->degraded_correct;
		b->body_macs = a->body_macs;
		b->head_macs = a->head_macs;
		pp[i] = b;
	}
	pt->n_stages = (size_t)t->nst;
	pt->stages = pp;
	pt->n_latency_ms = (size_t)t->nlat;
	pt->latency_ms = t->lat_ms;
}

static int encode_batch(const struct wire_batch *b, Nk__Batch *pb, size_t max_frame, char err[NK_ERR_LEN])
{
	long long e = tensor_elems(b->n, b->c, b->h, b->w, max_frame);
	if (e < 0)
		return nk_errf(err, NK_ERANGE, "batch %dx%dx%dx%d exceeds the %zu-byte frame limit",
			       b->n, b->c, b->h, b->w, max_frame);
	if (e > 0 && !b->x)
		return nk_errf(err, NK_EINVAL, "batch without data");
	pb->data.data = (uint8_t *)b->x; /* packed (copied) once, straight into the frame */
	pb->data.len = (size_t)e * 4;
	pb->id = b->id;
	pb->phase = (Nk__Phase)b->phase;
	pb->n = (uint32_t)b->n;
	pb->c = (uint32_t)b->c;
	pb->h = (uint32_t)b->h;
	pb->w = (uint32_t)b->w;
	pb->n_labels = b->y ? (size_t)b->n : 0;
	pb->labels = (int32_t *)b->y;
	pb->exits.data = (uint8_t *)b->exits;
	pb->exits.len = b->exits ? (size_t)b->n : 0;
	pb->chain_ms = b->chain_ms;
	pb->last = b->last != 0;
	pb->epoch = (uint32_t)b->epoch;
	pb->sent = b->sent;
	pb->link_ms = b->link_ms;
	pb->pass_n = (uint32_t)b->pass_n;
	pb->progress = (float)b->progress;
	if (b->logits && (b->nlogits <= 0 || b->nlogits > WIRE_MAX_LOGITS))
		return nk_errf(err, NK_EINVAL, "batch with %d logits per sample", b->nlogits);
	pb->logits.data = (uint8_t *)b->logits;
	pb->logits.len = b->logits ? (size_t)b->n * b->nlogits * 4 : 0;
	return 0;
}

int wire_encode(const struct wire_msg *m, size_t max_frame, uint8_t **frame, size_t *len,
		char err[NK_ERR_LEN])
{
	Nk__Envelope env = NK__ENVELOPE__INIT;
	Nk__Hello hello = NK__HELLO__INIT;
	Nk__Batch batch = NK__BATCH__INIT;
	Nk__Ping ping = NK__PING__INIT;
	Nk__Stop stop = NK__STOP__INIT;
	Nk__Tally tally = NK__TALLY__INIT;
	Nk__StageTally *sts = NULL, **pp = NULL;
	uint8_t *lswap = NULL; /* the logits, swapped to little-endian on a big-endian host */
	*frame = NULL;
	*len = 0;
	switch (m->kind) {
	case WIRE_HELLO:
		hello.version = m->hello.version;
		hello.chain = (char *)m->hello.chain;
		hello.chain_hash = m->hello.hash;
		hello.sender = (char *)m->hello.sender;
		env.msg_case = NK__ENVELOPE__MSG_HELLO;
		env.hello = &hello;
		break;
	case WIRE_BATCH: {
		int rc = encode_batch(&m->batch, &batch, max_frame, err);
		if (rc)
			return rc;
		if (WIRE_SWAP && batch.logits.len) {
			if (!(lswap = malloc(batch.logits.len)))
				return nk_errf(err, NK_ENOMEM, "out of memory");
			memcpy(lswap, batch.logits.data, batch.logits.len);
			swap32(lswap, batch.logits.len / 4);
			batch.logits.data = lswap;
		}
		const struct wire_tally *t = m->batch.tally;
		if (t && t->nst > 0) {
			sts = calloc((size_t)t->nst, sizeof *sts);
			pp = calloc((size_t)t->nst, sizeof *pp);
			if (!sts || !pp) {
				free(sts);
				free(pp);
				free(lswap);
				return nk_errf(err, NK_ENOMEM, "out of memory");
			}
		}
		if (t) {
			encode_tally(t, &tally, sts, pp);
			batch.tally = &tally;
		}
		env.msg_case = NK__ENVELOPE__MSG_BATCH;
		env.batch = &batch;
		break;
	}
	case WIRE_PING:
	case WIRE_PONG:
		ping.nonce = m->nonce;
		ping.sent = m->sent;
		ping.now = m->peer_now;
		env.msg_case = m->kind == WIRE_PING ? NK__ENVELOPE__MSG_PING : NK__ENVELOPE__MSG_PONG;
		env.ping = &ping;
		break;
	case WIRE_STOP:
		stop.reason = (char *)m->reason;
		env.msg_case = NK__ENVELOPE__MSG_STOP;
		env.stop = &stop;
		break;
	default:
		return nk_errf(err, NK_EINVAL, "cannot encode a message of kind %d", (int)m->kind);
	}
	size_t size = nk__envelope__get_packed_size(&env);
	uint8_t *f = size > max_frame ? NULL : frame_alloc(WIRE_HDR + size);
	if (!f) {
		free(sts);
		free(pp);
		free(lswap);
		if (size > max_frame)
			return nk_errf(err, NK_ERANGE, "%s frame of %zu bytes exceeds the limit of %zu",
				       wire_kind_name(m->kind), size, max_frame);
		return nk_errf(err, NK_ENOMEM, "out of memory for a %zu-byte frame", size);
	}
	f[0] = (uint8_t)(size >> 24);
	f[1] = (uint8_t)(size >> 16);
	f[2] = (uint8_t)(size >> 8);
	f[3] = (uint8_t)size;
	nk__envelope__pack(&env, f + WIRE_HDR);
	free(sts);
	free(pp);
	free(lswap);
	if (WIRE_SWAP && m->kind == WIRE_BATCH && batch.data.len) {
		size_t dlen;
		long off = locate_data(f + WIRE_HDR, size, size, &dlen);
		if (off >= 0)
			swap32(f + WIRE_HDR + off, dlen / 4);
	}
	*frame = f;
	*len = WIRE_HDR + size;
	return 0;
}

void wire_msg_free(struct wire_msg *m)
{
	if (!m)
		return;
	wire_frame_free(m->frame);
	free(m->labels);
	free(m->exits);
	free(m->xcopy);
	free(m->tally);
	free(m->logits);
	free(m);
}

/* ---- decoding ---- */

static int fill_hello(struct wire_msg *m, const Nk__Hello *h, char err[NK_ERR_LEN])
{
	if (strlen(h->chain) >= sizeof m->hello.chain || strlen(h->sender) >= sizeof m->hello.sender)
		return nk_errf(err, NK_EFORMAT, "hello with an over-long chain or sender name");
	m->hello.version = h->version;
	strcpy(m->hello.chain, h->chain);
	m->hello.hash = h->chain_hash;
	strcpy(m->hello.sender, h->sender);
	return 0;
}

/* The tally of a decoded batch, in one allocation owned by m. */
static int fill_tally(struct wire_msg *m, const Nk__Tally *pt, char err[NK_ERR_LEN])
{
	if (pt->n_stages > WIRE_MAX_TALLY || pt->n_latency_ms > (1u << 20))
		return nk_errf(err, NK_EFORMAT, "tally of %zu stages and %zu latencies", pt->n_stages,
			       pt->n_latency_ms);
	struct wire_tally *t = calloc(1, sizeof *t + pt->n_stages * sizeof *t->st +
				      pt->n_latency_ms * sizeof *t->lat_ms);
	if (!t)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	t->st = (struct wire_stage_tally *)(t + 1);
	t->lat_ms = (double *)(t->st + pt->n_stages);
	t->nst = (int)pt->n_stages;
	t->nlat = (int)pt->n_latency_ms;
	for (size_t i = 0; i < pt->n_stages; i++) {
		const Nk__StageTally *b = pt->stages[i];
		t->st[i] = (struct wire_stage_tally){(int)NK_MIN(b->stage, (uint32_t)INT32_MAX),
			b->arrived, b->evaluated, b->answered, b->correct, b->degraded,
			b->degraded_correct, b->body_macs, b->head_macs};
	}
	if (t->nlat)
		memcpy(t->lat_ms, pt->latency_ms, pt->n_latency_ms * sizeof *t->lat_ms);
	m->tally = t;
	m->batch.tally = t;
	return 0;
}

/* Batch fields but data; data (len bytes) is placed by the caller. */
static int fill_batch(struct wire_msg *m, const Nk__Batch *b, size_t len, size_t max_frame,
		      char err[NK_ERR_LEN])
{
	struct wire_batch *w = &m->batch;
	if ((unsigned)b->phase > NK__PHASE__PREDICT)
		return nk_errf(err, NK_EFORMAT, "batch with unknown phase %d", (int)b->phase);
	long long e = tensor_elems(b->n, b->c, b->h, b->w, max_frame);
	/* each dimension must be an int even when another is 0 (then e is 0 whatever they are) */
	if (e < 0 || b->n > (1u << 24) || b->c > INT32_MAX || b->h > INT32_MAX || b->w > INT32_MAX ||
	    (size_t)e * 4 != len)
		return nk_errf(err, NK_EFORMAT, "batch %ux%ux%ux%u does not match its %zu data bytes",
			       b->n, b->c, b->h, b->w, len);
	if ((b->n_labels && b->n_labels != b->n) || (b->exits.len && b->exits.len != b->n))
		return nk_errf(err, NK_EFORMAT, "batch of %u samples with %zu labels and %zu exit marks",
			       b->n, b->n_labels, b->exits.len);
	w->id = b->id;
	w->phase = (enum wire_phase)b->phase;
	w->epoch = (int)b->epoch;
	w->last = b->last != 0;
	w->n = (int)b->n;
	w->c = (int)b->c;
	w->h = (int)b->h;
	w->w = (int)b->w;
	w->chain_ms = b->chain_ms;
	w->sent = b->sent;
	w->link_ms = b->link_ms;
	w->pass_n = (int)NK_MIN(b->pass_n, (uint32_t)INT32_MAX);
	/* A peer's number: NaN and values outside [0, 1] are clamped (NaN to 0). */
	w->progress = b->progress > 0 ? NK_MIN(b->progress, 1.0f) : 0.0;
	if (b->tally) {
		int rc = fill_tally(m, b->tally, err);
		if (rc)
			return rc;
	}
	if (b->n_labels) {
		if (!(m->labels = malloc(b->n_labels * sizeof(int32_t))))
			return nk_errf(err, NK_ENOMEM, "out of memory");
		memcpy(m->labels, b->labels, b->n_labels * sizeof(int32_t));
		w->y = m->labels;
	}
	if (b->logits.len) {
		size_t k = b->n ? b->logits.len / 4 / b->n : 0;
		if (k == 0 || k > WIRE_MAX_LOGITS || k * 4 * b->n != b->logits.len)
			return nk_errf(err, NK_EFORMAT, "batch of %u samples with %zu bytes of logits", b->n,
				       b->logits.len);
		if (!(m->logits = malloc(b->logits.len)))
			return nk_errf(err, NK_ENOMEM, "out of memory");
		memcpy(m->logits, b->logits.data, b->logits.len);
		if (WIRE_SWAP)
			swap32(m->logits, b->logits.len / 4);
		w->logits = m->logits;
		w->nlogits = (int)k;
	}
	if (b->exits.len) {
		if (!(m->exits = malloc(b->exits.len)))
			return nk_errf(err, NK_ENOMEM, "out of memory");
		memcpy(m->exits, b->exits.data, b->exits.len);
		w->exits = m->exits;
	}
	return 0;
}

/* Any layout: protobuf-c unpacks the whole envelope; a batch's data is copied to aligned memory. */
static int decode_general(struct wire_msg *m, const uint8_t *msg, size_t len, size_t max_frame,
			  char err[NK_ERR_LEN])
{
	Nk__Envelope *env = nk__envelope__unpack(NULL, len, msg);
	int rc = 0;
	if (!env)
		return nk_errf(err, NK_EFORMAT, "garbage frame: not a necklace envelope (%zu bytes)", len);
	switch (env->msg_case) {
	case NK__ENVELOPE__MSG_HELLO:
		m->kind = WIRE_HELLO;
		rc = fill_hello(m, env->hello, err);
		break;
	case NK__ENVELOPE__MSG_BATCH:
		m->kind = WIRE_BATCH;
		rc = fill_batch(m, env->batch, env->batch->data.len, max_frame, err);
		if (rc == 0 && env->batch->data.len) {
			if (!(m->xcopy = nk_alloc(env->batch->data.len)))
				rc = nk_errf(err, NK_ENOMEM, "out of memory");
			else
				memcpy(m->xcopy, env->batch->data.data, env->batch->data.len);
			m->batch.x = m->xcopy;
		}
		break;
	case NK__ENVELOPE__MSG_PING:
	case NK__ENVELOPE__MSG_PONG:
		m->kind = env->msg_case == NK__ENVELOPE__MSG_PING ? WIRE_PING : WIRE_PONG;
		m->nonce = env->ping->nonce;
		m->sent = env->ping->sent;
		m->peer_now = env->ping->now;
		break;
	case NK__ENVELOPE__MSG_STOP:
		m->kind = WIRE_STOP;
		snprintf(m->reason, sizeof m->reason, "%s", env->stop->reason);
		break;
	default:
		rc = nk_errf(err, NK_EFORMAT, "frame without a message");
	}
	nk__envelope__free_unpacked(env, NULL);
	return rc;
}

/* The reader's layout: the batch's data (dlen bytes) already sits aligned in the frame; unpack
 * the fields after it. Returns 1 to ask for the general path. */
static int decode_placed(struct wire_msg *m, const uint8_t *msg, size_t len, long data_off,
			 size_t dlen, size_t max_frame, char err[NK_ERR_LEN])
{
	size_t rest = (size_t)data_off + dlen;
	Nk__Batch *b = nk__batch__unpack(NULL, len - rest, msg + rest);
	if (!b)
		return nk_errf(err, NK_EFORMAT, "garbage frame: not a necklace batch (%zu bytes)", len);
	int rc = 1;
	if (b->data.len == 0) { /* else a second data field overrides: take the general path */
		m->kind = WIRE_BATCH;
		rc = fill_batch(m, b, dlen, max_frame, err);
		m->batch.x = (const float *)(msg + data_off);
	}
	nk__batch__free_unpacked(b, NULL);
	return rc;
}

static int decode(struct wire_reader *r, struct wire_msg **out, char err[NK_ERR_LEN])
{
	struct wire_msg *m = calloc(1, sizeof *m);
	if (!m)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	uint8_t *msg = r->buf + r->off;
	m->frame = r->buf;
	m->arrived = nk_now();
	r->buf = NULL;
	int rc = 1;
	if (r->data_off >= 0)
		rc = decode_placed(m, msg, r->len, r->data_off, r->data_len, r->max_frame, err);
	if (rc == 1)
		rc = decode_general(m, msg, r->len, r->max_frame, err);
	if (rc == 0 && WIRE_SWAP && m->kind == WIRE_BATCH)
		swap32((void *)m->batch.x, (size_t)m->batch.n * m->batch.c * m->batch.h * m->batch.w);
	wire_reader_reset(r);
	if (rc) {
		wire_msg_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void wire_reader_init(struct wire_reader *r, size_t max_frame)
{
	memset(r, 0, sizeof *r);
	r->max_frame = max_frame ? max_frame : WIRE_MAX_FRAME_DEFAULT;
	r->data_off = -1;
}

void wire_reader_reset(struct wire_reader *r)
{
	wire_frame_free(r->buf);
	wire_reader_init(r, r->max_frame);
}

size_t wire_reader_pending(const struct wire_reader *r)
{
	return r->buf ? WIRE_HDR + r->got : r->nhead;
}

size_t wire_reader_remaining(const struct wire_reader *r)
{
	return r->buf ? r->len - r->got : 0;
}

/* Collect the prefix and the first message bytes; once there, place the message so that a
 * batch's data lands 64-byte aligned. Returns bytes used or a negative error. */
static long take_head(struct wire_reader *r, const uint8_t *p, size_t n, char err[NK_ERR_LEN])
{
	size_t want = WIRE_HDR, used = 0;
	if (r->nhead >= WIRE_HDR)
		want += NK_MIN(r->len, (size_t)WIRE_PEEK);
	while (r->nhead < want && used < n) {
		r->head[r->nhead++] = p[used++];
		if (r->nhead == WIRE_HDR) {
			const uint8_t *h = r->head;
			r->len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
			if (r->len == 0)
				return nk_errf(err, NK_EFORMAT, "garbage frame: zero length");
			if (r->len > r->max_frame)
				return nk_errf(err, NK_ERANGE, "oversized frame: %zu bytes, limit %zu",
					       r->len, r->max_frame);
			want += NK_MIN(r->len, (size_t)WIRE_PEEK);
		}
	}
	if (r->nhead < want)
		return (long)used;
	size_t peek = r->nhead - WIRE_HDR;
	r->data_off = locate_data(r->head + WIRE_HDR, peek, r->len, &r->data_len);
	r->off = r->data_off >= 0 ? (64 - (size_t)r->data_off % 64) % 64 : 0;
	if (!(r->buf = frame_alloc(r->off + r->len)))
		return nk_errf(err, NK_ENOMEM, "out of memory for a %zu-byte frame", r->len);
	memcpy(r->buf + r->off, r->head + WIRE_HDR, peek);
	r->got = peek;
	return (long)used;
}

long wire_reader_feed(struct wire_reader *r, const uint8_t *p, size_t n, struct wire_msg **out,
		      char err[NK_ERR_LEN])
{
	*out = NULL;
	long used = 0;
	if (!r->buf) {
		used = take_head(r, p, n, err);
		if (used < 0 || !r->buf)
			return used;
	}
	size_t k = NK_MIN(n - (size_t)used, r->len - r->got);
	memcpy(r->buf + r->off + r->got, p + used, k); /* the one copy of the tensor */
	r->got += k;
	used += (long)k;
	if (r->got == r->len) {
		int rc = decode(r, out, err);
		if (rc)
			return rc;
	}
	return used;
}

uint8_t *wire_reader_dest(struct wire_reader *r, size_t *room)
{
	*room = r->buf ? r->len - r->got : 0;
	return r->buf ? r->buf + r->off + r->got : NULL;
}

int wire_reader_commit(struct wire_reader *r, size_t k, struct wire_msg **out, char err[NK_ERR_LEN])
{
	*out = NULL;
	r->got += NK_MIN(k, r->len - r->got);
	return r->got == r->len ? decode(r, out, err) : 0;
}

int wire_decode(const uint8_t *frame, size_t len, size_t max_frame, struct wire_msg **out,
		char err[NK_ERR_LEN])
{
	struct wire_reader r;
	wire_reader_init(&r, max_frame);
	*out = NULL;
	long used = wire_reader_feed(&r, frame, len, out, err);
	int rc = used < 0 ? (int)used : 0;
	if (rc == 0 && !*out)
		rc = nk_errf(err, NK_EFORMAT, "truncated frame: %zu of %zu bytes", len,
			     r.nhead >= WIRE_HDR ? WIRE_HDR + r.len : (size_t)WIRE_HDR);
	else if (rc == 0 && (size_t)used != len)
		rc = nk_errf(err, NK_EFORMAT, "%zu bytes after the frame", len - (size_t)used);
	if (rc) {
		wire_msg_free(*out);
		*out = NULL;
	}
	wire_reader_reset(&r);
	return rc;
}
