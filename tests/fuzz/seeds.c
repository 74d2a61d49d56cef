/* Seed corpora, made at run time by the project's own encoders (wire_encode, ckpt_save,
 * stb_image_write, zlib) and by hand-written files in the formats' own layouts, plus a few
 * hand-made malformed inputs per target. scripts/fuzz writes them with tests/fuzz/fuzz-seeds;
 * the replay tests of make check write them to a scratch folder and run each harness over them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include "tests/fuzz/fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <stb/stb_image_write.h>

#include "stages/ckpt.h"

#define MAX_FRAME (1u << 20)

/* A growing byte buffer; out of memory aborts (seeds are small). */
struct buf {
	uint8_t *p;
	size_t n, cap;
};

static void add(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		if (!(b->p = realloc(b->p, cap)))
			abort();
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void add_byte(struct buf *b, uint8_t v)
{
	add(b, &v, 1);
}

static void add_str(struct buf *b, const char *s)
{
	add(b, s, strlen(s));
}

static void add_sep(struct buf *b)
{
	add(b, FUZZ_SEP, FUZZ_SEP_LEN);
}

static void add_varint(struct buf *b, uint64_t v)
{
	while (v >= 0x80) {
		add_byte(b, (uint8_t)(v | 0x80));
		v >>= 7;
	}
	add_byte(b, (uint8_t)v);
}

struct out {
	const char *dir;
	int n;
	int failed;
};

static void put(struct out *o, const char *name, const void *p, size_t n)
{
	char *path;
	FILE *f;
	if (asprintf(&path, "%s/%s", o->dir, name) < 0)
		abort();
	if (!(f = fopen(path, "wb")) || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		fprintf(stderr, "fuzz-seeds: cannot write %s\n", path);
		o->failed = 1;
	}
	free(path);
	o->n++;
}

static void put_buf(struct out *o, const char *name, struct buf *b)
{
	put(o, name, b->p, b->n);
	free(b->p);
	*b = (struct buf){0};
}

/* ---- wire frames ---- */

static void frame(struct buf *b, const struct wire_msg *m)
{
	char err[NK_ERR_LEN] = "";
	uint8_t *f;
	size_t n;
	if (wire_encode(m, MAX_FRAME, &f, &n, err)) {
		fprintf(stderr, "fuzz-seeds: wire_encode: %s\n", err);
		abort();
	}
	add(b, f, n);
	wire_frame_free(f);
}

static const float px[8] = {0.5f, -1, 2, 3.25f, 0, 1e-3f, -7, 8};
static const int32_t labels[2] = {1, 3};
static const uint8_t exits[2] = {0, 1};
static const float logits[6] = {0.1f, 0.2f, 0.7f, -1, 0, 1};
static struct wire_stage_tally tallies[2] = {{0, 8, 8, 3, 2, 0, 0, 1000, 50},
					     {1, 5, 5, 5, 4, 1, 1, 2000, 60}};
static double lat[3] = {1.5, 2.25, 0.75};
static const struct wire_tally tally = {2, tallies, 3, lat};

/* The messages a chain exchanges, one of each shape. */
static struct wire_msg msg(int i)
{
	struct wire_msg m = {0};
	struct wire_batch b = {.id = 42, .n = 2, .c = 1, .h = 2, .w = 2, .x = px, .y = labels,
			       .epoch = 1, .chain_ms = 3.5, .sent = 10.25, .link_ms = 0.5,
			       .progress = 0.25};
	switch (i) {
	case 0:
		m.kind = WIRE_HELLO;
		m.hello.version = WIRE_VERSION;
		snprintf(m.hello.chain, sizeof m.hello.chain, "%s", fuzz_chain()->name);
		m.hello.hash = fuzz_chain()->hash;
		snprintf(m.hello.sender, sizeof m.hello.sender, "s0");
		break;
	case 1:
		m = (struct wire_msg){.kind = WIRE_PING, .nonce = 7, .sent = 1.25};
		break;
	case 2:
		m = (struct wire_msg){.kind = WIRE_PONG, .nonce = 7, .sent = 1.25, .peer_now = 2.5};
		break;
	case 3:
		m.kind = WIRE_BATCH;
		m.batch = b;
		break;
	case 4: /* test pass end, no labels */
		b.phase = WIRE_TEST;
		b.last = 1;
		b.y = NULL;
		m.kind = WIRE_BATCH;
		m.batch = b;
		break;
	case 5: /* predict, with exits and a tally */
		b.phase = WIRE_PREDICT;
		b.exits = exits;
		b.tally = &tally;
		b.pass_n = 100;
		m.kind = WIRE_BATCH;
		m.batch = b;
		break;
	case 6: /* boosting: logits travel along */
		b.logits = logits;
		b.nlogits = 3;
		m.kind = WIRE_BATCH;
		m.batch = b;
		break;
	case 7: /* an empty batch */
		b.n = 0;
		b.x = NULL;
		b.y = NULL;
		m.kind = WIRE_BATCH;
		m.batch = b;
		break;
	default:
		m.kind = WIRE_STOP;
		snprintf(m.reason, sizeof m.reason, "source done");
	}
	return m;
}
#define NMSG 9

/* A batch frame (msg 3) with extra bytes appended inside its Batch message. */
static void batch_with(struct buf *out, const void *extra, size_t n)
{
	struct buf f = {0}, bb = {0}, env = {0};
	struct wire_msg m = msg(3);
	size_t pos = WIRE_HDR + 1, len = 0;
	int s = 0;
	frame(&f, &m);
	while (f.p[pos] & 0x80) /* the Batch's length varint */
		len |= (size_t)(f.p[pos++] & 0x7f) << (7 * s++);
	len |= (size_t)f.p[pos++] << (7 * s);
	add(&bb, f.p + pos, len);
	add(&bb, extra, n);
	add_byte(&env, 0x12); /* Envelope.batch */
	add_varint(&env, bb.n);
	add(&env, bb.p, bb.n);
	uint8_t hdr[4];
	fuzz_be32(hdr, (uint32_t)env.n);
	add(out, hdr, 4);
	add(out, env.p, env.n);
	free(f.p);
	free(bb.p);
	free(env.p);
}

static void seeds_wire(struct out *o)
{
	static const char *const names[NMSG] = {"hello", "ping", "pong", "batch-train",
						"batch-test-last", "batch-predict-tally",
						"batch-logits", "batch-empty", "stop"};
	struct buf b = {0};
	char name[64];
	for (int i = 0; i < NMSG; i++) {
		struct wire_msg m = msg(i);
		frame(&b, &m);
		snprintf(name, sizeof name, "ok-%s", names[i]);
		put_buf(o, name, &b);
	}
	/* a second data field overrides the first: the general decoding path */
	uint8_t data2[2 + 32] = {0x0a, 32};
	memcpy(data2 + 2, px, sizeof px);
	batch_with(&b, data2, sizeof data2);
	put_buf(o, "ok-batch-second-data", &b);
	data2[1] = 12; /* a second data field of 12 bytes: no longer 2 x 1 x 2 x 2 floats */
	batch_with(&b, data2, 2 + 12);
	put_buf(o, "bad-batch-data-size", &b);
	static const uint8_t label3[] = {0x42, 1, 5}; /* a third label for two samples */
	batch_with(&b, label3, sizeof label3);
	put_buf(o, "bad-batch-labels", &b);
	static const uint8_t zero[4] = {0}, huge[8] = {0xff, 0xff, 0xff, 0xff, 0x12, 0};
	put(o, "bad-zero-length", zero, sizeof zero);
	put(o, "bad-huge-length", huge, sizeof huge);
	static const uint8_t nothing[] = {0, 0, 0, 2, 0x30, 0x01}; /* only an unknown field */
	put(o, "bad-no-message", nothing, sizeof nothing);
	struct wire_msg m = msg(3);
	frame(&b, &m);
	b.n -= 3;
	put_buf(o, "bad-truncated", &b);
	frame(&b, &m);
	add_byte(&b, 0);
	put_buf(o, "bad-trailing", &b);
	/* a hello whose chain name is longer than any chain's */
	add(&b, "\0\0\0\x4a\x0a\x48\x12\x46", 8);
	for (int i = 0; i < 70; i++)
		add_byte(&b, 'a');
	put_buf(o, "bad-hello-long-name", &b);
}

/* Every message, one after another: what one connection carries. */
static void stream(struct buf *b, int from)
{
	for (int i = from; i < NMSG; i++) {
		struct wire_msg m = msg(i);
		frame(b, &m);
	}
}

static void seeds_reader(struct out *o)
{
	static const uint8_t ctl[][2] = {{0x10 | 0x06, 1}, {0x20 | 0x0f, 2}, {0x0f, 3},
					 {0x30 | 0x0f, 4}, {0x04, 5}};
	struct buf b = {0};
	char name[64];
	for (size_t i = 0; i < sizeof ctl / sizeof ctl[0]; i++) {
		add(&b, ctl[i], 2);
		stream(&b, 0);
		snprintf(name, sizeof name, "ok-stream-%02x-%u", ctl[i][0], ctl[i][1]);
		put_buf(o, name, &b);
	}
	add(&b, "\x0f\x09", 2);
	stream(&b, 0);
	add(&b, "\0\0\0\x03\xff\xff\xff", 7);
	put_buf(o, "bad-stream-then-garbage", &b);
}

static void seeds_hello(struct out *o)
{
	struct buf b = {0};
	struct wire_msg h = msg(0);
	static const uint8_t pieces[] = {0, 6, 63};
	char name[64];
	for (size_t i = 0; i < sizeof pieces; i++) {
		add_byte(&b, pieces[i]);
		stream(&b, 0);
		snprintf(name, sizeof name, "ok-%u", pieces[i]);
		put_buf(o, name, &b);
	}
	struct wire_msg bad[4] = {h, h, h, h};
	bad[0].hello.version = 2;
	bad[1].hello.hash ^= 1;
	snprintf(bad[2].hello.sender, sizeof bad[2].hello.sender, "s1");
	snprintf(bad[3].hello.chain, sizeof bad[3].hello.chain, "other");
	static const char *const why[4] = {"version", "hash", "sender", "chain"};
	for (int i = 0; i < 4; i++) {
		add_byte(&b, 5);
		frame(&b, &bad[i]);
		stream(&b, 1);
		snprintf(name, sizeof name, "bad-%s", why[i]);
		put_buf(o, name, &b);
	}
	add_byte(&b, 9);
	stream(&b, 1); /* no hello first */
	put_buf(o, "bad-batch-first", &b);
	add_byte(&b, 9);
	add(&b, "\0\0\x08\0\x12", 5); /* 2 KiB before any hello */
	put_buf(o, "bad-big-before-hello", &b);
}

/* ---- chain files ---- */

static void seeds_chain(struct out *o, const char *srcdir)
{
	char *dir;
	DIR *dp;
	struct dirent *e;
	if (asprintf(&dir, "%s/data/chains", srcdir) < 0)
		abort();
	if ((dp = opendir(dir))) {
		while ((e = readdir(dp))) {
			size_t len = strlen(e->d_name);
			char *path;
			FILE *f;
			struct buf b = {0};
			char chunk[4096];
			size_t got;
			if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
				continue;
			if (asprintf(&path, "%s/%s", dir, e->d_name) < 0)
				abort();
			if ((f = fopen(path, "rb"))) {
				while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
					add(&b, chunk, got);
				fclose(f);
				char name[300];
				snprintf(name, sizeof name, "ok-%s", e->d_name);
				put_buf(o, name, &b);
			}
			free(path);
		}
		closedir(dp);
	} else {
		fprintf(stderr, "fuzz-seeds: no shipped chains in %s (srcdir?)\n", dir);
		o->failed = 1;
	}
	free(dir);
	put(o, "ok-fz.json", fuzz_chain_text(), strlen(fuzz_chain_text()));
	static const char *const bad[] = {
		"{", "[]", "{\"chain\": \"x\"}", "{\"chain\": \"x\", \"chain\": \"y\"}",
		"{\"chain\": \"x\", \"data\": {\"format\": \"csv\", \"train\": \"a.csv\"}, \"stages\": "
		"[{\"name\": \"a\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}}, {\"name\": "
		"\"a\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}}]}",
	};
	char name[32];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(name, sizeof name, "bad-%zu.json", i);
		put(o, name, bad[i], strlen(bad[i]));
	}
}

/* ---- dataset files ---- */

/* b += gzip of p[n]. */
static void add_gzip(struct buf *b, const uint8_t *p, size_t n)
{
	z_stream z = {0};
	uint8_t out[1 << 14];
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	z.next_in = (uint8_t *)p;
	z.avail_in = (uInt)n;
	int rc;
	do {
		z.next_out = out;
		z.avail_out = sizeof out;
		rc = deflate(&z, Z_FINISH);
		add(b, out, sizeof out - z.avail_out);
	} while (rc == Z_OK);
	deflateEnd(&z);
}

/* IDX files: n images of h x w (or labels when h is 0), magic and sizes as declared. */
static void idx_file(struct buf *b, uint32_t magic, uint32_t n, uint32_t h, uint32_t w,
		     size_t data, int gz)
{
	struct buf f = {0};
	uint8_t v[4];
	fuzz_be32(v, magic);
	add(&f, v, 4);
	fuzz_be32(v, n);
	add(&f, v, 4);
	if (h) {
		fuzz_be32(v, h);
		add(&f, v, 4);
		fuzz_be32(v, w);
		add(&f, v, 4);
	}
	for (size_t i = 0; i < data; i++)
		add_byte(&f, (uint8_t)(h ? i * 37 : i % 10));
	if (gz)
		add_gzip(b, f.p, f.n);
	else
		add(b, f.p, f.n);
	free(f.p);
}

static void idx_pair(struct buf *b, uint32_t n, uint32_t nl, size_t data, size_t ldata, int gz)
{
	idx_file(b, 0x803, n, 4, 4, data, gz);
	add_sep(b);
	idx_file(b, 0x801, nl, 0, 0, ldata, gz);
}

static void seeds_idx(struct out *o)
{
	struct buf b = {0};
	add(&b, "\x0a\x03", 2);
	idx_pair(&b, 3, 3, 48, 3, 0);
	put_buf(o, "ok-plain", &b);
	add(&b, "\x0a\xc9", 2);
	idx_pair(&b, 3, 3, 48, 3, 1);
	put_buf(o, "ok-gzip", &b);
	add(&b, "\x0a\x3a", 2);
	idx_pair(&b, 3, 3, 48, 3, 0);
	add_sep(&b);
	idx_pair(&b, 2, 2, 32, 2, 1);
	put_buf(o, "ok-with-test", &b);
	add(&b, "\x0a\x01", 2);
	idx_pair(&b, 3, 2, 48, 2, 0);
	put_buf(o, "bad-count-mismatch", &b);
	add(&b, "\x0a\x01", 2);
	idx_pair(&b, 3, 3, 40, 3, 0);
	put_buf(o, "bad-truncated", &b);
	add(&b, "\x0a\x01", 2);
	idx_pair(&b, 3, 3, 49, 3, 0);
	put_buf(o, "bad-trailing", &b);
	add(&b, "\x02\x01", 2);
	idx_pair(&b, 3, 3, 48, 3, 0);
	put_buf(o, "bad-label-range", &b);
	add(&b, "\x0a\x01", 2); /* a header claiming 1.6 GB, 16 bytes of data, gzip */
	idx_file(&b, 0x803, 1u << 21, 28, 28, 16, 1);
	add_sep(&b);
	idx_file(&b, 0x801, 1u << 21, 0, 0, 16, 1);
	put_buf(o, "bad-huge-header", &b);
}

#define CIFAR_REC 3072

static void cifar_file(struct buf *b, int records, int label_bytes, int label)
{
	for (int r = 0; r < records; r++) {
		add_byte(b, (uint8_t)(label + r) % 10);
		if (label_bytes == 2)
			add_byte(b, (uint8_t)(label * 7 + r) % 100);
		for (int i = 0; i < CIFAR_REC; i++)
			add_byte(b, (uint8_t)(i * 13 + r));
	}
}

static void seeds_cifar(struct out *o)
{
	struct buf b = {0};
	add(&b, "\x00\x0a\x03", 3);
	cifar_file(&b, 2, 1, 0);
	put_buf(o, "ok-cifar10", &b);
	add(&b, "\x01\x64\x3b", 3); /* CIFAR-100 fine labels */
	cifar_file(&b, 2, 2, 3);
	put_buf(o, "ok-cifar100-fine", &b);
	add(&b, "\x03\x14\x01", 3); /* coarse */
	cifar_file(&b, 1, 2, 1);
	put_buf(o, "ok-cifar100-coarse", &b);
	add(&b, "\x04\x0a\x9f", 3); /* two training files and a test file */
	cifar_file(&b, 1, 1, 0);
	add_sep(&b);
	cifar_file(&b, 1, 1, 5);
	add_sep(&b);
	cifar_file(&b, 1, 1, 2);
	put_buf(o, "ok-two-files-and-test", &b);
	add(&b, "\x01\x64\x01", 3); /* CIFAR-10 records read with two label bytes */
	cifar_file(&b, 2, 1, 0);
	put_buf(o, "bad-record-size", &b);
	add(&b, "\x00\x02\x01", 3);
	cifar_file(&b, 2, 1, 4);
	put_buf(o, "bad-label-range", &b);
}

/* [flags][label column][c][h][w][classes][batcher options] then the text. */
static void csv_seed(struct out *o, const char *name, const char *ctl, const char *text)
{
	struct buf b = {0};
	add(&b, ctl, 7);
	add_str(&b, text);
	put_buf(o, name, &b);
}

static void seeds_csv(struct out *o)
{
	csv_seed(o, "ok-bytes", "\x00\xff\0\0\0\x03\x03", "0,1,255,2\n7, 8 ,9,0\r\n\n  \n10,11,12,1");
	csv_seed(o, "ok-floats", "\x00\xff\0\0\0\x03\x81", "1,2,0\n3,4,1\n-0.5,1e3,2\n256,\"7\",0\n");
	csv_seed(o, "ok-header-name", "\x03\xff\0\0\0\x02\x02", "a,label,b\n1,0,2\n3,1,4\n");
	csv_seed(o, "ok-label-first", "\x01\x00\0\0\0\x02\x02", "y,a,b\n1,5,6\n0,7,8\n");
	csv_seed(o, "ok-shape", "\x10\xff\0\x01\x01\x02\x39", "1,2,3,4,0\n5,6,7,8,1\n");
	csv_seed(o, "ok-float-features", "\x08\xff\0\0\0\x02\x01", "1,2,0\n3,4,1\n");
	csv_seed(o, "ok-with-test", "\x00\xff\0\0\0\x03\x82", "1,2,0\n3,4,1\n" FUZZ_SEP "0.5,2,2\n");
	csv_seed(o, "bad-bytes-required", "\x04\xff\0\0\0\x03\x01", "1,2,0\n300,4,1\n");
	csv_seed(o, "bad-fields", "\x00\xff\0\0\0\x03\x01", "1,2,0\n3,1\n,,\n");
	csv_seed(o, "bad-no-column", "\x03\xff\0\0\0\x03\x01", "a,b,c\n1,2,0\n");
	csv_seed(o, "bad-label", "\x00\xff\0\0\0\x03\x01", "1,2,0.5\n1,2,7\n");
	/* the reservation bomb, small: one wide line, then many short ones */
	struct buf b = {0};
	add(&b, "\x00\xff\0\0\0\x02\x01", 7);
	for (int i = 0; i < 400; i++)
		add_str(&b, i ? ",0" : "0");
	for (int i = 0; i < 399; i++)
		add_byte(&b, '\n');
	put_buf(o, "bomb-blank-lines", &b);
	add(&b, "\x00\xff\0\0\0\x02\x01", 7);
	for (int i = 0; i < 400; i++)
		add_str(&b, i ? ",0" : "0");
	for (int i = 0; i < 399; i++)
		add_str(&b, "\n0");
	put_buf(o, "bomb-short-lines", &b);
}

static void to_buf(void *ctx, void *data, int size)
{
	add(ctx, data, (size_t)size);
}

/* An image of w x h x comp in the format named by kind. */
static void image(struct buf *b, const char *kind, int w, int h, int comp)
{
	uint8_t p[16 * 16 * 4];
	for (int i = 0; i < w * h * comp; i++)
		p[i] = (uint8_t)(i * 29 + 7);
	if (!strcmp(kind, "png"))
		stbi_write_png_to_func(to_buf, b, w, h, comp, p, w * comp);
	else if (!strcmp(kind, "bmp"))
		stbi_write_bmp_to_func(to_buf, b, w, h, comp, p);
	else if (!strcmp(kind, "tga"))
		stbi_write_tga_to_func(to_buf, b, w, h, comp, p);
	else if (!strcmp(kind, "jpg"))
		stbi_write_jpg_to_func(to_buf, b, w, h, comp, p, 90);
	else { /* pgm (comp 1) or ppm (comp 3), by hand */
		char hdr[32];
		snprintf(hdr, sizeof hdr, "P%c\n%d %d\n255\n", comp == 1 ? '5' : '6', w, h);
		add_str(b, hdr);
		add(b, p, (size_t)w * h * comp);
	}
}

static const uint8_t gif1x1[] = "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9"
				"\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02"
				"\x02\x44\x01\x00;";

static void seeds_images(struct out *o)
{
	struct buf b = {0};
	add(&b, "\x00\x03\x03\x01", 4);
	image(&b, "png", 4, 4, 1);
	add_sep(&b);
	image(&b, "png", 5, 3, 3);
	put_buf(o, "ok-png", &b);
	add(&b, "\x01\x07\x05\x82", 4);
	image(&b, "bmp", 6, 6, 3);
	add_sep(&b);
	image(&b, "tga", 3, 7, 4);
	put_buf(o, "ok-bmp-tga", &b);
	add(&b, "\x01\x0f\x0f\x03", 4);
	image(&b, "jpg", 8, 8, 3);
	add_sep(&b);
	image(&b, "pgm", 4, 4, 1);
	put_buf(o, "ok-jpg-pgm", &b);
	add(&b, "\x05\x02\x02\x01", 4); /* with a test split of the third */
	image(&b, "ppm", 3, 3, 3);
	add_sep(&b);
	add(&b, gif1x1, sizeof gif1x1 - 1);
	add_sep(&b);
	image(&b, "png", 2, 2, 2);
	put_buf(o, "ok-ppm-gif-test", &b);
	add(&b, "\x00\x03\x03\x01", 4); /* one undecodable file: skipped and noted */
	image(&b, "png", 4, 4, 1);
	add_sep(&b);
	image(&b, "png", 4, 4, 1);
	add_sep(&b);
	add_str(&b, "not an image");
	put_buf(o, "ok-one-skipped", &b);
	/* headers declaring far more pixels than their files hold (data/images.c refuses them):
	 * an RLE TGA of 54272 x 248 and a top-down BMP of 6 x 16646149 */
	static const uint8_t tga[] = {0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xd4, 248, 0, 32, 8,
				      0xff, 1, 2, 3, 4};
	uint8_t bmp[60] = {'B', 'M', 60, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 6, 0, 0, 0,
			   0xfb, 0xff, 0x01, 0xff, 1, 0, 24};
	add(&b, "\x00\x03\x03\x01", 4);
	image(&b, "png", 4, 4, 1);
	add_sep(&b);
	add(&b, tga, sizeof tga);
	add_sep(&b);
	add(&b, bmp, sizeof bmp);
	put_buf(o, "ok-bombs-skipped", &b);
	add(&b, "\x02\x03\x03\x01", 4); /* the same, strict */
	image(&b, "png", 4, 4, 1);
	add_sep(&b);
	add_str(&b, "not an image");
	put_buf(o, "bad-strict", &b);
}

/* ---- checkpoints ---- */

static void seeds_ckpt(struct out *o)
{
	char err[NK_ERR_LEN] = "";
	const char *dir = fuzz_path("ckpt-seeds");
	struct chain *c = fuzz_chain();
	for (int i = 0; i < 2; i++) {
		struct model *m;
		struct optim *op;
		struct ckpt k;
		char path[4096], name[64];
		fuzz_stage(i, &m, &op);
		ckpt_of(&k, c, i, m, op);
		k.step = 40 + i;
		k.batch = 140;
		k.epoch = 3;
		k.epoch_batch = 7;
		if (ckpt_save(dir, &k, err) || ckpt_path(path, sizeof path, dir, k.stage)) {
			fprintf(stderr, "fuzz-seeds: ckpt_save: %s\n", err);
			o->failed = 1;
			return;
		}
		struct buf f = {0}, b = {0};
		FILE *fp = fopen(path, "rb");
		char chunk[4096];
		size_t got;
		while (fp && (got = fread(chunk, 1, sizeof chunk, fp)) > 0)
			add(&f, chunk, got);
		if (fp)
			fclose(fp);
		if (f.n < 24)
			abort();
		uint8_t mode = i ? 2 : 0;
		add_byte(&b, mode);
		add(&b, f.p, f.n);
		snprintf(name, sizeof name, "ok-s%d-file", i);
		put_buf(o, name, &b);
		add_byte(&b, mode | 1);
		add(&b, f.p + 24, f.n - 24);
		snprintf(name, sizeof name, "ok-s%d-message", i);
		put_buf(o, name, &b);
		add_byte(&b, mode);
		add(&b, f.p, f.n - 5);
		snprintf(name, sizeof name, "bad-s%d-truncated", i);
		put_buf(o, name, &b);
		add_byte(&b, mode);
		add(&b, f.p, f.n);
		b.p[1 + 30] ^= 1;
		snprintf(name, sizeof name, "bad-s%d-hash", i);
		put_buf(o, name, &b);
		add_byte(&b, (uint8_t)((mode ^ 2) | 1)); /* the other stage's */
		add(&b, f.p + 24, f.n - 24);
		snprintf(name, sizeof name, "bad-s%d-other-stage", i);
		put_buf(o, name, &b);
		free(f.p);
	}
	fuzz_rmtree(dir);
	put(o, "bad-magic", "\x00NKCKPT2\n", 9);
}

int fuzz_seeds(const char *name, const char *dir, const char *srcdir)
{
	struct out o = {dir, 0, 0};
	if (!strcmp(name, "wire"))
		seeds_wire(&o);
	else if (!strcmp(name, "reader"))
		seeds_reader(&o);
	else if (!strcmp(name, "hello"))
		seeds_hello(&o);
	else if (!strcmp(name, "chain"))
		seeds_chain(&o, srcdir);
	else if (!strcmp(name, "idx"))
		seeds_idx(&o);
	else if (!strcmp(name, "cifar"))
		seeds_cifar(&o);
	else if (!strcmp(name, "csv"))
		seeds_csv(&o);
	else if (!strcmp(name, "images"))
		seeds_images(&o);
	else if (!strcmp(name, "ckpt"))
		seeds_ckpt(&o);
	else
		return -1;
	return o.failed ? -1 : o.n;
}
