/* Checkpoints: a round trip restores bit-identical parameters, batchnorm statistics and optimizer
 * state and continues the same RNG stream; truncated, corrupt, foreign and mismatched files are refused and nothing is
 * loaded; a crash between writing and renaming leaves the old checkpoint whole. Also the chain
 * file keys behind them (state_dir, checkpoint_every, test_limit). */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stages/ckpt.h"
#include "tests/nk_test.h"

#define SIDE 8
#define BATCH 16

static const char *chain_text(int filters, int seed)
{
	static char buf[1024];
	snprintf(buf, sizeof buf,
		 "{\"chain\": \"ck\", \"seed\": %d, \"data\": {\"train\": [\"a\", \"b\"], \"batch\": %d},\n"
		 " \"stages\": [{\"name\": \"s0\", \"layers\": [{\"conv\": {\"filters\": %d, \"kernel\": 3}}, \"batchnorm\", \"relu\"],\n"
		 "   \"head\": \"linear\", \"optimizer\": {\"sgd\": {\"lr\": 0.05, \"momentum\": 0.9}}},\n"
		 "  {\"name\": \"s1\", \"head\": \"linear\",\n"
		 "   \"optimizer\": {\"mcmc\": {\"layers\": [{\"proposal\": {\"gaussian\": 0.01}}]}}}]}\n",
		 seed, BATCH, filters);
	return buf;
}

static struct chain *load_chain(int filters, int seed)
{
	struct chain *c = NULL;
	char err[NK_ERR_LEN] = "";
	const char *t = chain_text(filters, seed);
	int rc = chain_parse(&c, t, strlen(t), "ck.json", NULL, err);
	cr_assert_eq(rc, 0, "%s", err);
	return c;
}

struct st {
	struct model *m;
	struct optim *o;
};

static struct st build(const struct chain *c, int index, uint64_t seed)
{
	struct st s;
	char err[NK_ERR_LEN] = "";
	struct layer_dims in = {1, SIDE, SIDE};
	cr_assert_eq(model_new(&s.m, &c->stages[index], in, 10, BATCH, seed, err), 0, "%s", err);
	cr_assert_eq(optim_new(&s.o, s.m, &c->stages[index].optim, seed ^ 7, err), 0, "%s", err);
	return s;
}

static void drop(struct st *s)
{
	optim_free(s->o);
	model_free(s->m);
}

/* A few SGD steps on random data so that parameters and momentum are non-trivial. */
static void train(struct st *s, uint64_t seed, int steps)
{
	float x[BATCH * SIDE * SIDE];
	int32_t y[BATCH];
	struct nk_rng r;
	struct optim_stats os;
	rng_seed(&r, seed);
	for (int k = 0; k < steps; k++) {
		for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
			x[i] = (float)rng_normal(&r);
		for (int i = 0; i < BATCH; i++)
			y[i] = (int32_t)rng_below(&r, 10);
		cr_assert_eq(optim_train(s->o, x, y, BATCH, NULL, &os), 0);
	}
}

static char ck_dir[256]; /* the test's folder, removed by rm_tmpdir */

static void tmpdir(char *dir)
{
	cr_assert_not_null(nk_test_tmpdir(dir, 256));
	snprintf(ck_dir, sizeof ck_dir, "%s", dir);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	return remove(path);
}

/* .fini of the tests that make a folder: it goes, whether they passed or not. */
static void rm_tmpdir(void)
{
	if (ck_dir[0])
		nftw(ck_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void save(const char *dir, const struct chain *c, int index, struct st *s, long step)
{
	struct ckpt k;
	char err[NK_ERR_LEN] = "";
	ckpt_of(&k, c, index, s->m, s->o);
	k.step = step;
	k.batch = step + 100;
	k.epoch = 3;
	k.epoch_batch = 7;
	cr_assert_eq(ckpt_save(dir, &k, err), 0, "%s", err);
}

static int read_ck(const char *dir, const struct chain *c, int index, struct ckpt **k, char *err)
{
	char path[400];
	ckpt_path(path, sizeof path, dir, c->stages[index].name);
	return ckpt_read(k, path, c, index, err);
}

Test(ckpt, round_trip_is_bit_identical_and_continues_the_stream, .fini = rm_tmpdir)
{
	char dir[256], err[NK_ERR_LEN] = "";
	struct chain *c = load_chain(4, 1);
	struct st a = build(c, 0, 11), b = build(c, 0, 22);
	tmpdir(dir);
	train(&a, 5, 4);
	rng_u64(&a.o->rng); /* move the stream off its seed */
	save(dir, c, 0, &a, 40);
	struct ckpt *k = NULL;
	cr_assert_eq(read_ck(dir, c, 0, &k, err), 0, "%s", err);
	cr_assert_eq(k->step, 40);
	cr_assert_eq(k->batch, 140);
	cr_assert_eq(k->epoch, 3);
	cr_assert_eq(k->epoch_batch, 7);
	cr_assert_str_eq(k->optimizer, "sgd");
	cr_assert(memcmp(a.m->params, b.m->params, a.m->nparams * 4) != 0, "differently seeded models");
	cr_assert_eq(ckpt_apply(k, b.m, b.o, err), 0, "%s", err);
	ckpt_free(k);
	cr_assert_eq(memcmp(a.m->params, b.m->params, a.m->nparams * 4), 0, "parameters differ");
	/* The batchnorm running statistics (mean and variance of 4 channels) come back too. */
	cr_assert_eq(a.m->nbufs, 8u);
	cr_assert(a.m->bufs[0] != 0.0f && a.m->bufs[4] != 1.0f, "training moved the statistics");
	cr_assert_eq(memcmp(a.m->bufs, b.m->bufs, a.m->nbufs * 4), 0, "batchnorm statistics differ");
	size_t na, nb;
	float *va = optim_state(a.o, &na), *vb = optim_state(b.o, &nb);
	cr_assert(na == a.m->nparams && nb == na && memcmp(va, vb, na * 4) == 0, "momentum differs");
	for (int i = 0; i < 100; i++)
		cr_assert_eq(rng_u64(&a.o->rng), rng_u64(&b.o->rng), "the RNG streams part at draw %d", i);
	train(&a, 9, 3); /* the same steps from the restored state: the same result */
	train(&b, 9, 3);
	cr_assert_eq(memcmp(a.m->params, b.m->params, a.m->nparams * 4), 0, "training diverged");
	drop(&a);
	drop(&b);
	chain_free(c);
}

Test(ckpt, mcmc_stage_keeps_its_rng, .fini = rm_tmpdir)
{
	char dir[256], err[NK_ERR_LEN] = "";
	struct chain *c = load_chain(4, 1);
	struct layer_dims in = {1, SIDE, SIDE};
	struct model *m1, *m2;
	struct optim *o1, *o2;
	cr_assert_eq(model_new(&m1, &c->stages[1], in, 10, BATCH, 1, err), 0, "%s", err);
	cr_assert_eq(model_new(&m2, &c->stages[1], in, 10, BATCH, 2, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o1, m1, &c->stages[1].optim, 3, err), 0, "%s", err);
	cr_assert_eq(optim_new(&o2, m2, &c->stages[1].optim, 4, err), 0, "%s", err);
	tmpdir(dir);
	struct ckpt k, *r = NULL;
	ckpt_of(&k, c, 1, m1, o1);
	k.step = 1;
	cr_assert_eq(ckpt_save(dir, &k, err), 0, "%s", err);
	cr_assert_eq(read_ck(dir, c, 1, &r, err), 0, "%s", err);
	cr_assert_eq(r->nstate, 0);
	cr_assert_eq(ckpt_apply(r, m2, o2, err), 0, "%s", err);
	cr_assert_eq(memcmp(m1->params, m2->params, m1->nparams * 4), 0);
	cr_assert_eq(rng_u64(&o1->rng), rng_u64(&o2->rng));
	ckpt_free(r);
	optim_free(o1);
	optim_free(o2);
	model_free(m1);
	model_free(m2);
	chain_free(c);
}

/* The file's bytes. */
static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	uint8_t *b = malloc(*len + 1);
	cr_assert_eq(fread(b, 1, *len, f), *len);
	fclose(f);
	return b;
}

/* path holds bytes; reading it must fail with code and a message containing needle, and the model
 * is never touched (there is nothing to apply). */
static void expect_refused(const char *path, const void *bytes, size_t len, const struct chain *c,
			   int code, const char *needle)
{
	char err[NK_ERR_LEN] = "";
	struct ckpt *k = (struct ckpt *)1;
	cr_assert_eq(nk_test_write(path, bytes, len), 0);
	int rc = ckpt_read(&k, path, c, 0, err);
	cr_assert_eq(rc, code, "%zu bytes: rc %d, want %d (%s)", len, rc, code, err);
	cr_assert_null(k);
	cr_assert_not_null(strstr(err, needle), "'%s' not in: %s", needle, err);
	cr_assert_not_null(strstr(err, path), "the message does not name the file: %s", err);
}

Test(ckpt, truncated_corrupt_and_foreign_files_refused, .fini = rm_tmpdir)
{
	char dir[256], path[400], err[NK_ERR_LEN] = "";
	struct chain *c = load_chain(4, 1), *other = load_chain(4, 2), *bigger = load_chain(6, 1);
	struct st a = build(c, 0, 1);
	tmpdir(dir);
	train(&a, 1, 2);
	save(dir, c, 0, &a, 5);
	ckpt_path(path, sizeof path, dir, "s0");
	size_t len;
	uint8_t *good = slurp(path, &len);
	char bad[420];
	snprintf(bad, sizeof bad, "%s/bad.ckpt", dir);
	size_t cuts[] = {0, 5, 20, 24, 30, len / 2, len - 4, len - 1};
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
		expect_refused(bad, good, cuts[i], c, NK_EFORMAT, cuts[i] < 8 ? "not a necklace" : "truncated");
	uint8_t *evil = malloc(len + 8);
	memcpy(evil, good, len);
	memset(evil + len, 0, 8);
	expect_refused(bad, evil, len + 8, c, NK_EFORMAT, "padded");
	evil[len / 2] ^= 0x10; /* one flipped bit in the parameters */
	expect_refused(bad, evil, len, c, NK_EFORMAT, "corrupt");
	memcpy(evil, good, len);
	evil[0] = 'X';
	expect_refused(bad, evil, len, c, NK_EFORMAT, "not a necklace");
	/* another chain file (different seed: different hash); another stage */
	struct ckpt *k = NULL;
	cr_assert_eq(ckpt_read(&k, path, other, 0, err), NK_EINVAL);
	cr_assert_null(k);
	cr_assert_not_null(strstr(err, "refusing"), "%s", err);
	cr_assert_eq(ckpt_read(&k, path, c, 1, err), NK_EINVAL);
	cr_assert_not_null(strstr(err, "stage 's0'"), "%s", err);
	snprintf(bad, sizeof bad, "%s/none.ckpt", dir);
	cr_assert_eq(ckpt_read(&k, bad, c, 0, err), NK_ENOENT);
	/* a checkpoint whose sizes do not fit the model: refused whole, the model untouched */
	cr_assert_eq(ckpt_read(&k, path, c, 0, err), 0, "%s", err);
	struct st big = build(bigger, 0, 3);
	float *before = malloc(big.m->nparams * 4);
	memcpy(before, big.m->params, big.m->nparams * 4);
	cr_assert_eq(ckpt_apply(k, big.m, big.o, err), NK_ESHAPE);
	cr_assert_eq(memcmp(before, big.m->params, big.m->nparams * 4), 0, "half-loaded");
	ckpt_free(k);
	free(before);
	free(good);
	free(evil);
	drop(&a);
	drop(&big);
	chain_free(c);
	chain_free(other);
	chain_free(bigger);
}

Test(ckpt, crash_between_write_and_rename_keeps_the_old_one, .fini = rm_tmpdir)
{
	char dir[256], path[400], tmp[420], err[NK_ERR_LEN] = "";
	struct chain *c = load_chain(4, 1);
	struct st a = build(c, 0, 1), b = build(c, 0, 2);
	tmpdir(dir);
	save(dir, c, 0, &a, 10);
	float *old = malloc(a.m->nparams * 4);
	memcpy(old, a.m->params, a.m->nparams * 4);
	train(&a, 3, 2);
	/* the next checkpoint gets as far as its temporary file, then the process dies */
	struct ckpt k;
	ckpt_of(&k, c, 0, a.m, a.o);
	k.step = 20;
	ckpt_path(path, sizeof path, dir, "s0");
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	cr_assert_eq(ckpt_write_temp(tmp, &k, err), 0, "%s", err);
	struct ckpt *r = NULL;
	cr_assert_eq(ckpt_read(&r, path, c, 0, err), 0, "%s", err);
	cr_assert_eq(r->step, 10, "the old checkpoint is gone");
	cr_assert_eq(ckpt_apply(r, b.m, b.o, err), 0, "%s", err);
	cr_assert_eq(memcmp(old, b.m->params, a.m->nparams * 4), 0);
	ckpt_free(r);
	/* a half-written temporary file is harmless too, and the next save replaces both */
	cr_assert_eq(truncate(tmp, 10), 0);
	cr_assert_eq(ckpt_read(&r, path, c, 0, err), 0, "%s", err);
	ckpt_free(r);
	save(dir, c, 0, &a, 30);
	cr_assert_eq(ckpt_read(&r, path, c, 0, err), 0, "%s", err);
	cr_assert_eq(r->step, 30);
	cr_assert_eq(memcmp(r->params, a.m->params, a.m->nparams * 4), 0);
	cr_assert_neq(access(tmp, F_OK), 0, "the temporary file was left behind");
	ckpt_free(r);
	free(old);
	drop(&a);
	drop(&b);
	chain_free(c);
}

/* ---- the chain file's keys ---- */

static int parse(const char *extra, struct chain **c, char *err)
{
	char text[1024];
	snprintf(text, sizeof text, "{\"chain\": \"k\", %s \"data\": {\"train\": [\"a\", \"b\"]}, "
		 "\"stages\": [{\"name\": \"s\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}}]}", extra);
	return chain_parse(c, text, strlen(text), "k.json", NULL, err);
}

Test(chain_keys, state_keys_defaults_and_values)
{
	struct chain *c = NULL;
	char err[NK_ERR_LEN] = "";
	cr_assert_eq(parse("", &c, err), 0, "%s", err);
	cr_assert_str_eq(c->state_dir, "state/k"); /* one folder per chain */
	cr_assert_eq(c->checkpoint_every, 200);
	cr_assert_float_eq(c->checkpoint_s, 30.0, 1e-12);
	cr_assert_eq(c->test_limit, 0);
	chain_free(c);
	cr_assert_eq(parse("\"state_dir\": \"/var/nk\", \"checkpoint_every\": 0, \"test_limit\": 2000, "
			   "\"checkpoint_s\": 0,", &c, err), 0, "%s", err);
	cr_assert_str_eq(c->state_dir, "/var/nk");
	cr_assert_eq(c->checkpoint_every, 0);
	cr_assert_float_eq(c->checkpoint_s, 0.0, 1e-12);
	cr_assert_eq(c->test_limit, 2000);
	chain_free(c);
}

Test(chain_keys, default_state_dir_is_one_safe_folder_per_chain)
{
	const char *text = "{\"chain\": \"../fm nist/5\", \"data\": {\"train\": [\"a\", \"b\"]}, "
			   "\"stages\": [{\"name\": \"s\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}}]}";
	struct chain *c = NULL;
	char err[NK_ERR_LEN] = "";
	cr_assert_eq(chain_parse(&c, text, strlen(text), "k.json", NULL, err), 0, "%s", err);
	cr_assert_str_eq(c->state_dir, "state/_._fm_nist_5"); /* no '/' and no leading '.' from the name */
	chain_free(c);
}

Test(chain_keys, bad_state_keys_refused_with_their_path)
{
	const struct {
		const char *extra, *needle;
	} bad[] = {
		{"\"checkpoint_every\": -1,", "checkpoint_every"},
		{"\"checkpoint_every\": 1.5,", "checkpoint_every"},
		{"\"checkpoint_s\": -1,", "checkpoint_s"},
		{"\"test_limit\": \"all\",", "test_limit"},
		{"\"state_dir\": 5,", "state_dir"},
		{"\"state_dir\": \"\",", "state_dir"},
		{"\"checkpoint\": 5,", "unknown key 'checkpoint'"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct chain *c = NULL;
		char err[NK_ERR_LEN] = "";
		int rc = parse(bad[i].extra, &c, err);
		cr_assert_eq(rc, NK_EINVAL, "%s: rc %d", bad[i].extra, rc);
		cr_assert_null(c);
		cr_assert_not_null(strstr(err, bad[i].needle), "'%s' not in: %s", bad[i].needle, err);
		cr_assert(strncmp(err, "k.json: ", 8) == 0, "%s", err);
	}
}
