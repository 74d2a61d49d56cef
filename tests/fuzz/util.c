/* Fuzzing helpers: input parts, scratch files, the invariants every harness checks, and the
 * chain and stage models the hello and checkpoint harnesses share with their seeds. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, nftw */
#endif
#include "tests/fuzz/fuzz.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fuzz_accepted;

const char *const fuzz_targets[] = {"wire", "reader", "hello", "chain", "idx", "cifar", "csv",
				    "images", "ckpt", NULL};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz %s: ", fuzz_name);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

int fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts, int max)
{
	int n = 0;
	while (n < max - 1) {
		const uint8_t *s = memmem(data, size, FUZZ_SEP, FUZZ_SEP_LEN);
		if (!s)
			break;
		parts[n++] = (struct fuzz_part){data, (size_t)(s - data)};
		size -= (size_t)(s - data) + FUZZ_SEP_LEN;
		data = s + FUZZ_SEP_LEN;
	}
	parts[n++] = (struct fuzz_part){data, size};
	return n;
}

/* ---- scratch files ---- */

static char scratch[PATH_MAX];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

void fuzz_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void scratch_remove(void)
{
	if (scratch[0])
		fuzz_rmtree(scratch);
}

const char *fuzz_dir(void)
{
	if (!scratch[0]) {
		const char *base = getenv("TMPDIR");
		snprintf(scratch, sizeof scratch, "%s/nk-fuzz-XXXXXX", base && *base ? base : "/tmp");
		if (!mkdtemp(scratch))
			die("cannot make a scratch folder %s: %s", scratch, strerror(errno));
		atexit(scratch_remove);
	}
	return scratch;
}

const char *fuzz_path(const char *fmt, ...)
{
	static char buf[8][PATH_MAX];
	static int slot;
	char *p = buf[slot++ % 8];
	int k = snprintf(p, PATH_MAX, "%s/", fuzz_dir());
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p + k, PATH_MAX - (size_t)k, fmt, ap);
	va_end(ap);
	return p;
}

void fuzz_write(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0)
		die("cannot write %s: %s", path, strerror(errno));
}

void fuzz_mkdirs(const char *path)
{
	if (nk_mkdirs(path) != 0)
		die("cannot make %s: %s", path, strerror(errno));
}

/* ---- invariants ---- */

void fuzz_check_rc(int rc, const char *err, const char *what)
{
	if (rc > 0 || rc < NK_ESTATE)
		die("%s returned %d, not 0 or an enum nk_err", what, rc);
	if (rc && !err[0])
		die("%s failed (%s) with an empty message", what, nk_strerror(rc));
	if (rc && !memchr(err, '\0', NK_ERR_LEN))
		die("%s: message not terminated", what);
}

/* A volatile sink the reads below feed, so that they are not optimised away. */
static volatile uint32_t sink;

static void touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s = 0;
	for (size_t i = 0; i < n; i++)
		s = s * 31 + b[i];
	sink += s;
}

void fuzz_touch_msg(const struct wire_msg *m)
{
	const struct wire_batch *b = &m->batch;
	switch (m->kind) {
	case WIRE_HELLO:
		if (!memchr(m->hello.chain, '\0', sizeof m->hello.chain) ||
		    !memchr(m->hello.sender, '\0', sizeof m->hello.sender))
			die("hello names not terminated");
		break;
	case WIRE_BATCH: {
		if (b->n < 0 || b->c < 0 || b->h < 0 || b->w < 0 || (unsigned)b->phase > WIRE_PREDICT)
			die("batch %dx%dx%dx%d phase %d", b->n, b->c, b->h, b->w, (int)b->phase);
		size_t e = (size_t)b->n * b->c * b->h * b->w;
		if (e && !b->x)
			die("batch of %zu values without data", e);
		if (e)
			touch(b->x, e * sizeof *b->x);
		if (b->y)
			touch(b->y, (size_t)b->n * sizeof *b->y);
		if (b->exits)
			touch(b->exits, (size_t)b->n);
		if (b->logits) {
			if (b->nlogits <= 0 || b->nlogits > WIRE_MAX_LOGITS)
				die("batch with %d logits per sample", b->nlogits);
			touch(b->logits, (size_t)b->n * b->nlogits * sizeof *b->logits);
		}
		if (!(b->progress >= 0 && b->progress <= 1))
			die("progress %g outside [0, 1]", b->progress);
		if (b->tally) {
			const struct wire_tally *t = b->tally;
			if (t->nst < 0 || t->nst > WIRE_MAX_TALLY || t->nlat < 0)
				die("tally of %d stages, %d latencies", t->nst, t->nlat);
			touch(t->st, (size_t)t->nst * sizeof *t->st);
			touch(t->lat_ms, (size_t)t->nlat * sizeof *t->lat_ms);
		}
		break;
	}
	case WIRE_PING:
	case WIRE_PONG:
		break;
	case WIRE_STOP:
		if (!memchr(m->reason, '\0', sizeof m->reason))
			die("stop reason not terminated");
		break;
	default:
		die("decoded a message of kind %d", (int)m->kind);
	}
}

void fuzz_touch_ds(const struct ds *d)
{
	if (!d)
		die("success without a dataset");
	if (d->n < 1 || d->c < 1 || d->h < 1 || d->w < 1 || d->classes < 1 ||
	    d->classes > DS_MAX_CLASSES || !d->y || !d->x == !d->xf)
		die("dataset %d x %d x %d x %d, %d classes, x %p xf %p", d->n, d->c, d->h, d->w,
		    d->classes, (void *)d->x, (void *)d->xf);
	size_t e = (size_t)d->n * d->c * d->h * d->w;
	if (d->x)
		touch(d->x, e);
	else
		touch(d->xf, e * sizeof *d->xf);
	for (int i = 0; i < d->n; i++)
		if (d->y[i] >= d->classes)
			die("sample %d: label %u of %d classes", i, d->y[i], d->classes);
	for (int i = 0; d->names && i < d->classes; i++)
		touch(d->names[i], strlen(d->names[i]));
	for (int i = 0; i < d->nnotes; i++)
		touch(d->notes[i], strlen(d->notes[i]));
}

void fuzz_check_reencode(const struct wire_msg *m, size_t max_frame)
{
	char err[NK_ERR_LEN] = "";
	uint8_t *f1 = NULL, *f2 = NULL;
	size_t n1 = 0, n2 = 0;
	struct wire_msg *m2 = NULL;
	/* the canonical form may be longer than what came (fields in another order or repeated) */
	size_t big = 4 * max_frame + 1024;
	int rc = wire_encode(m, big, &f1, &n1, err);
	if (rc)
		die("a decoded %s does not encode: %s", wire_kind_name(m->kind), err);
	if ((rc = wire_decode(f1, n1, big, &m2, err)))
		die("a re-encoded %s does not decode: %s", wire_kind_name(m->kind), err);
	if ((rc = wire_encode(m2, big, &f2, &n2, err)))
		die("a twice-decoded %s does not encode: %s", wire_kind_name(m->kind), err);
	if (n1 != n2 || memcmp(f1, f2, n1) != 0)
		die("a %s encodes to %zu bytes, and decoded and encoded again to %zu other bytes",
		    wire_kind_name(m->kind), n1, n2);
	wire_msg_free(m2);
	wire_frame_free(f1);
	wire_frame_free(f2);
}

/* ---- the shared chain ---- */

static const char chain_text[] =
	"{\"chain\": \"fz\", \"seed\": 3, \"data\": {\"train\": [\"a\", \"b\"], \"batch\": 4},\n"
	" \"stages\": [{\"name\": \"s0\", \"layers\": [{\"conv\": {\"filters\": 2, \"kernel\": 3}},"
	" \"batchnorm\", \"relu\"],\n"
	"   \"head\": \"linear\", \"optimizer\": {\"sgd\": {\"lr\": 0.05, \"momentum\": 0.9}}},\n"
	"  {\"name\": \"s1\", \"head\": \"linear\",\n"
	"   \"optimizer\": {\"mcmc\": {\"layers\": [{\"proposal\": {\"gaussian\": 0.01}}]}}}]}\n";

static struct chain *chain;
static struct model *models[2];
static struct optim *optims[2];

static void chain_drop(void)
{
	for (int i = 0; i < 2; i++) {
		optim_free(optims[i]);
		model_free(models[i]);
	}
	chain_free(chain);
}

struct chain *fuzz_chain(void)
{
	char err[NK_ERR_LEN] = "";
	if (!chain) {
		if (chain_parse(&chain, chain_text, strlen(chain_text), "fz.json", NULL, err))
			die("the harness chain does not parse: %s", err);
		atexit(chain_drop);
	}
	return chain;
}

const char *fuzz_chain_text(void)
{
	return chain_text;
}

void fuzz_stage(int i, struct model **m, struct optim **o)
{
	static const struct layer_dims in[2] = {{1, 8, 8}, {2, 6, 6}};
	char err[NK_ERR_LEN] = "";
	struct chain *c = fuzz_chain();
	if (!models[i]) {
		if (model_new(&models[i], &c->stages[i], in[i], 10, 4, 5 + (uint64_t)i, err) ||
		    optim_new(&optims[i], models[i], &c->stages[i].optim, 9, err))
			die("the harness model of stage %d: %s", i, err);
	}
	*m = models[i];
	*o = optims[i];
}

/* ---- byte order ---- */

void fuzz_be32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

void fuzz_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t fuzz_fnv1a64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

/* ---- datasets ---- */

struct chain_data *fuzz_data(const char *format, int classes, uint8_t opts)
{
	struct chain_data *d = calloc(1, sizeof *d);
	if (!d)
		die("out of memory");
	snprintf(d->format, sizeof d->format, "%s", format);
	d->classes = classes;
	d->batch = 1 + (opts & 7);
	d->shuffle = !!(opts & 8);
	d->flip = !!(opts & 16);
	d->crop = !!(opts & 32);
	d->limit = opts & 64 ? 2 : 0;
	d->norm = opts & 128 ? NORM_AUTO : NORM_UNIT;
	d->std = 1;
	d->label_col = -1;
	d->label_bytes = 1;
	return d;
}

/* The first three batches of d as the source would take them. */
static void batches(const struct chain_data *cd, const struct ds *d)
{
	struct batcher_cfg cfg;
	char err[NK_ERR_LEN] = "";
	int rc = ds_batcher_cfg(&cfg, cd, d, 7, err);
	fuzz_check_rc(rc, err, "ds_batcher_cfg");
	if (rc)
		return;
	struct batcher *b = batcher_new(d, &cfg);
	size_t sample = (size_t)d->c * d->h * d->w;
	float *x = malloc((size_t)cfg.batch * sample * sizeof *x);
	int32_t *y = malloc((size_t)cfg.batch * sizeof *y);
	for (int i = 0; b && x && y && i < 3; i++) {
		int n = batcher_next(b, x, y);
		if (n < 0 || n > cfg.batch)
			die("a batch of %d samples, batch size %d", n, cfg.batch);
		touch(x, (size_t)n * sample * sizeof *x);
		for (int k = 0; k < n; k++)
			if (y[k] < 0 || y[k] >= d->classes)
				die("batch label %d of %d classes", y[k], d->classes);
	}
	free(x);
	free(y);
	batcher_free(b);
}

void fuzz_load(struct chain_data *d)
{
	struct ds *train = (struct ds *)1, *test = (struct ds *)1;
	char err[NK_ERR_LEN] = "";
	int rc = ds_load_pair(&train, &test, d, err);

	fuzz_check_rc(rc, err, "ds_load_pair");
	if (rc && (train || test))
		die("ds_load_pair failed and left a dataset");
	if (rc == 0) {
		float mean[DS_MAX_CHANNELS], std[DS_MAX_CHANNELS];
		fuzz_touch_ds(train);
		if (d->limit && train->n > d->limit)
			die("%d training samples, limit %d", train->n, d->limit);
		if (d->has_test)
			fuzz_touch_ds(test);
		else if (test)
			die("a test split where none was asked for");
		ds_stats(train, mean, std);
		fuzz_accepted++;
		batches(d, train);
	}
	ds_free(train);
	ds_free(test);
	free(d);
}
