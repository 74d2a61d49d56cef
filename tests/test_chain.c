/* Chain-file parser: the shipped chains load with the expected values; bad files are refused
 * with the JSON path of the offending key. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/chain.h"
#include "tests/nk_test.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

/* Test chains are written with single quotes for readability; this swaps them for double. */
static int parse_sq(const char *sq, struct chain **c, char err[NK_ERR_LEN])
{
	char *text = strdup(sq);
	cr_assert_not_null(text);
	for (char *p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	int rc = chain_parse(c, text, strlen(text), "t.json", "/base", err);
	free(text);
	return rc;
}

static struct chain *parse_ok(const char *sq)
{
	struct chain *c = NULL;
	char err[NK_ERR_LEN] = "";
	int rc = parse_sq(sq, &c, err);
	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	cr_assert_not_null(c);
	return c;
}

/* Parsing sq fails with code and a message holding every needle. */
static void expect_err(const char *sq, int code, const char **needles)
{
	struct chain *c = NULL;
	char err[NK_ERR_LEN] = "";
	int rc = parse_sq(sq, &c, err);
	cr_assert_eq(rc, code, "rc %d, expected %d: %s", rc, code, err);
	cr_assert_null(c);
	cr_assert(strncmp(err, "t.json:", 7) == 0, "message does not name the file: %s", err);
	for (; *needles; needles++)
		cr_assert_not_null(strstr(err, *needles), "'%s' missing from: %s", *needles, err);
}
#define EXPECT_ERR(sq, code, ...) expect_err(sq, code, (const char *[]){__VA_ARGS__, NULL})

static struct chain *load_shipped(const char *name)
{
	const char *dir = getenv("srcdir");
	char path[CHAIN_PATH_LEN], err[NK_ERR_LEN] = "";
	struct chain *c = NULL;
	snprintf(path, sizeof path, "%s/data/chains/%s", dir ? dir : SRCDIR, name);
	int rc = chain_load(&c, path, err);
	cr_assert_eq(rc, 0, "%s: rc %d: %s", path, rc, err);
	cr_assert_str_eq(c->path, path);
	return c;
}

#define DATA "'data': {'train': ['a', 'b']}"
#define CHAIN(...) "{'chain': 't', " DATA ", 'stages': [" __VA_ARGS__ "]}"
#define SGD "'optimizer': {'sgd': {}}"
#define CONV "{'conv': {'filters': 4, 'kernel': 3}}"
#define PROP "'proposal': {'student': 1e-7}"
#define FMNIST "/usr/share/datasets/fashion-mnist/"

static void check_seed_model(const struct chain *c)
{
	cr_assert_eq(c->seed, 1);
	cr_assert_str_eq(c->data.format, "idx");
	cr_assert_str_eq(c->data.train[0], FMNIST "train-images-idx3-ubyte.gz");
	cr_assert_str_eq(c->data.train[1], FMNIST "train-labels-idx1-ubyte.gz");
	cr_assert_eq(c->data.has_test, 1);
	cr_assert_str_eq(c->data.test[0], FMNIST "t10k-images-idx3-ubyte.gz");
	cr_assert_str_eq(c->data.test[1], FMNIST "t10k-labels-idx1-ubyte.gz");
	cr_assert_eq(c->data.classes, 10);
	cr_assert_eq(c->nstages, 1);
	const struct chain_stage *s = &c->stages[0];
	cr_assert_str_eq(s->name, "seed");
	cr_assert_str_eq(s->listen, "127.0.0.1:7101");
	cr_assert_eq(s->nlayers, 2);
	cr_assert_str_eq(s->layers[0].kind, "conv");
	cr_assert_eq(s->layers[0].filters, 32);
	cr_assert_eq(s->layers[0].kernel, 7);
	cr_assert_eq(s->layers[0].stride, 3);
	cr_assert_eq(s->layers[0].pad, 0);
	cr_assert_eq(s->layers[0].binary, 0);
	cr_assert_str_eq(s->layers[1].kind, "relu");
	cr_assert_eq(s->nhead, 1);
	cr_assert_str_eq(s->head[0].kind, "linear");
	cr_assert_eq(s->head[0].units, 10);
	cr_assert_eq(s->exit_threshold, 0);
}

Test(chain, loads_seed_1)
{
	struct chain *c = load_shipped("seed-1.json");
	cr_assert_str_eq(c->name, "seed-1");
	check_seed_model(c);
	cr_assert_eq(c->data.batch, 64);
	cr_assert_eq(c->data.epochs, 3);
	cr_assert_eq(c->data.shuffle, 1);
	const struct chain_optim *o = &c->stages[0].optim;
	cr_assert_eq(o->kind, OPTIM_SGD);
	cr_assert_float_eq(o->lr, 0.01, 1e-12);
	cr_assert_float_eq(o->momentum, 0.9, 1e-12);
	cr_assert_eq(o->weight_decay, 0);
	cr_assert_eq(o->iters, 1);
	cr_assert_eq(o->nmcmc, 0);
	cr_assert_neq(c->hash, 0);
	chain_free(c);
}

/* The research code's settings; the shipped seed-1-mcmc differs only in its moves' df. */
static void check_seed_mcmc(const char *file, const char *name, double move_df)
{
	struct chain *c = load_shipped(file);
	cr_assert_str_eq(c->name, name);
	check_seed_model(c);
	cr_assert_eq(c->data.batch, 512);
	cr_assert_eq(c->data.epochs, 100);
	const struct chain_optim *o = &c->stages[0].optim;
	cr_assert_eq(o->kind, OPTIM_MCMC);
	cr_assert_eq(o->iters, 200);
	cr_assert_eq(o->nmcmc, 2);
	cr_assert_eq(o->mcmc[0].move, MOVE_FILTER);
	cr_assert_eq(o->mcmc[1].move, MOVE_UNIFORM);
	cr_assert_eq(o->mcmc[1].k, 363);
	for (int i = 0; i < 2; i++) {
		const struct chain_mcmc_layer *m = &o->mcmc[i];
		cr_assert_float_eq(m->share, 0.5, 1e-12);
		cr_assert_float_eq(m->lambda, 1e5, 1e-6);
		cr_assert_eq(m->proposal.kind, DIST_STUDENT);
		cr_assert_float_eq(m->proposal.var, 1e-7, 1e-20);
		cr_assert_float_eq(m->proposal.df, move_df, 1e-12, "%s: df %g", file, m->proposal.df);
		cr_assert_eq(m->prior.kind, DIST_STUDENT);
		cr_assert_float_eq(m->prior.var, 1e-3, 1e-15);
		cr_assert_float_eq(m->prior.df, 1, 1e-12);
	}
	chain_free(c);
}

Test(chain, loads_seed_1_mcmc)
{
	check_seed_mcmc("seed-1-mcmc.json", "seed-1-mcmc", 2);
	check_seed_mcmc("seed-1-mcmc-research.json", "seed-1-mcmc-research", 1);
}

Test(chain, shipped_hashes_differ)
{
	struct chain *a = load_shipped("seed-1.json"), *b = load_shipped("seed-1-mcmc.json");
	struct chain *a2 = load_shipped("seed-1.json");
	cr_assert_neq(a->hash, 0);
	cr_assert_neq(b->hash, 0);
	cr_assert_neq(a->hash, b->hash);
	cr_assert_eq(a->hash, a2->hash);
	chain_free(a);
	chain_free(b);
	chain_free(a2);
}

Test(chain, load_missing_file)
{
	struct chain *c = (struct chain *)1;
	char err[NK_ERR_LEN] = "";
	cr_assert_eq(chain_load(&c, "/nonexistent/necklace.json", err), NK_ENOENT);
	cr_assert_null(c);
	cr_assert_not_null(strstr(err, "/nonexistent/necklace.json"), "%s", err);
}

Test(chain, load_resolves_against_file_folder)
{
	char dir[256], path[512], err[NK_ERR_LEN] = "", want[600];
	const char *text = "{\"chain\": \"r\", \"data\": {\"train\": [\"i.gz\", \"/l.gz\"]},\n"
		"\"stages\": [{\"name\": \"s\", \"head\": \"linear\", \"optimizer\": {\"sgd\": {}}}]}\n";
	cr_assert_not_null(nk_test_tmpdir(dir, sizeof dir));
	snprintf(path, sizeof path, "%s/r.json", dir);
	cr_assert_eq(nk_test_write(path, text, strlen(text)), 0);
	struct chain *c = NULL;
	cr_assert_eq(chain_load(&c, path, err), 0, "%s", err);
	snprintf(want, sizeof want, "%s/i.gz", dir);
	cr_assert_str_eq(c->data.train[0], want);
	cr_assert_str_eq(c->data.train[1], "/l.gz");
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 of the file's bytes */
	for (const char *p = text; *p; p++)
		h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
	cr_assert_eq(c->hash, h);
	chain_free(c);
	unlink(path);
	rmdir(dir);
}

Test(chain, defaults)
{
	struct chain *c = parse_ok(CHAIN("{'name': 's', 'head': 'linear', " SGD "}"));
	cr_assert_eq(c->seed, 1);
	cr_assert_str_eq(c->data.format, "idx");
	cr_assert_str_eq(c->data.train[0], "/base/a");
	cr_assert_str_eq(c->data.train[1], "/base/b");
	cr_assert_eq(c->data.has_test, 0);
	cr_assert_eq(c->data.classes, 10);
	cr_assert_eq(c->data.batch, 64);
	cr_assert_eq(c->data.epochs, 1);
	cr_assert_eq(c->data.test_every, 0);
	cr_assert_eq(c->data.shuffle, 1);
	cr_assert_eq(c->data.mean, 0);
	cr_assert_eq(c->data.std, 1);
	cr_assert_eq(c->data.rate, 0);
	cr_assert_eq(c->data.limit, 0);
	const struct chain_stage *s = &c->stages[0];
	cr_assert_eq(s->listen[0], '\0');
	cr_assert_eq(s->nlayers, 0);
	cr_assert_eq(s->nhead, 1);
	cr_assert_eq(s->head[0].units, 10);
	cr_assert_float_eq(s->optim.lr, 0.01, 1e-12);
	cr_assert_eq(s->optim.momentum, 0);
	cr_assert_eq(s->optim.iters, 1);
	cr_assert_eq(s->exit_threshold, 0);
	cr_assert_eq(s->exit_entropy, 0);
	chain_free(c);
}

Test(chain, options_and_paths)
{
	struct chain *c = parse_ok("{'chain': 'x', 'seed': 42, 'data': {'dir': 'sub', "
		"'train': ['a', '/abs/b'], 'test': ['c', 'd'], 'classes': 3, 'batch': 8, 'epochs': 2, "
		"'test_every': 5, 'shuffle': false, 'normalize': {'mean': 0.5, 'std': 0.25}, "
		"'rate': 2.5, 'limit': 100}, 'stages': [{'name': 'a.b-c_1', 'listen': '[::1]:9', "
		"'layers': [{'conv': {'filters': 4, 'kernel': 3, 'pad': 1}}, 'relu', 'maxpool', "
		"{'avgpool': {'size': 3}}, {'maxpool': {'size': 3, 'stride': 1}}, 'gap', 'flatten', "
		"{'linear': {'units': 7, 'binary': true}}], "
		"'head': [{'linear': {'units': 5}}, 'relu', {'linear': {'units': 0}}], "
		"'optimizer': {'sgd': {'lr': 0.5, 'momentum': 0, 'weight_decay': 1e-4, 'iters': 3}}, "
		"'exit': {'entropy': 0.3}}]}");
	cr_assert_eq(c->seed, 42);
	cr_assert_str_eq(c->data.train[0], "/base/sub/a");
	cr_assert_str_eq(c->data.train[1], "/abs/b");
	cr_assert_str_eq(c->data.test[1], "/base/sub/d");
	cr_assert_eq(c->data.classes, 3);
	cr_assert_eq(c->data.test_every, 5);
	cr_assert_eq(c->data.shuffle, 0);
	cr_assert_float_eq(c->data.mean, 0.5, 1e-12);
	cr_assert_float_eq(c->data.std, 0.25, 1e-12);
	cr_assert_float_eq(c->data.rate, 2.5, 1e-12);
	cr_assert_eq(c->data.limit, 100);
	const struct chain_stage *s = &c->stages[0];
	cr_assert_eq(s->nlayers, 8);
	cr_assert_eq(s->layers[0].stride, 1);
	cr_assert_eq(s->layers[0].pad, 1);
	cr_assert_eq(s->layers[2].size, 2);
	cr_assert_eq(s->layers[2].stride, 2);
	cr_assert_eq(s->layers[3].size, 3);
	cr_assert_eq(s->layers[3].stride, 3);
	cr_assert_eq(s->layers[4].stride, 1);
	cr_assert_eq(s->layers[7].units, 7);
	cr_assert_eq(s->layers[7].binary, 1);
	cr_assert_eq(s->nhead, 3);
	cr_assert_eq(s->head[0].units, 5);
	cr_assert_eq(s->head[2].units, 3);
	cr_assert_eq(s->optim.iters, 3);
	cr_assert_float_eq(s->optim.weight_decay, 1e-4, 1e-15);
	cr_assert_float_eq(s->exit_entropy, 0.3, 1e-12);
	chain_free(c);
}

Test(chain, mcmc_forms)
{
	struct chain *c = parse_ok(CHAIN("{'name': 's', 'layers': [" CONV ", "
		"{'conv': {'filters': 2, 'kernel': 1, 'binary': true}}, {'linear': {'units': 4}}], "
		"'head': 'linear', 'optimizer': {'mcmc': {'layers': ["
		"{'move': {'filter': 5}, 'proposal': {'student': {'var': 0.1, 'df': 3}}}, "
		"{'proposal': 'flip'}, "
		"{'move': 'row', 'proposal': {'gaussian': 0.2}, 'prior': {'gaussian': 2}, 'lambda': 0}, "
		"{" PROP "}]}}}"));
	const struct chain_optim *o = &c->stages[0].optim;
	cr_assert_eq(o->iters, 200);
	cr_assert_eq(o->nmcmc, 4);
	cr_assert_eq(o->mcmc[0].move, MOVE_FILTER_K);
	cr_assert_eq(o->mcmc[0].k, 5);
	cr_assert_float_eq(o->mcmc[0].share, 1, 1e-12);
	cr_assert_float_eq(o->mcmc[0].lambda, 1, 1e-12);
	cr_assert_float_eq(o->mcmc[0].proposal.var, 0.1, 1e-12);
	cr_assert_float_eq(o->mcmc[0].proposal.df, 3, 1e-12);
	cr_assert_eq(o->mcmc[0].prior.kind, DIST_FLAT);
	cr_assert_eq(o->mcmc[1].move, MOVE_FILTER);
	cr_assert_eq(o->mcmc[1].proposal.kind, DIST_FLIP);
	cr_assert_eq(o->mcmc[2].move, MOVE_ROW);
	cr_assert_eq(o->mcmc[2].proposal.kind, DIST_GAUSSIAN);
	cr_assert_float_eq(o->mcmc[2].proposal.var, 0.2, 1e-12);
	cr_assert_eq(o->mcmc[2].prior.kind, DIST_GAUSSIAN);
	cr_assert_eq(o->mcmc[2].lambda, 0);
	cr_assert_eq(o->mcmc[3].move, MOVE_ROW);
	chain_free(c);
}

Test(chain, syntax_error)
{
	EXPECT_ERR("{\n  'chain': 't',\n  'seed': ,\n  'data': {}\n}", NK_EFORMAT, "t.json:3:");
	EXPECT_ERR("{'chain': 't', 'chain': 'u'}", NK_EFORMAT, "t.json:1:", "duplicate");
}

Test(chain, unknown_top_level_key)
{
	EXPECT_ERR("{'chain': 't', " DATA ", 'stages': [], 'stagse': 1}", NK_EINVAL,
		   "unknown key 'stagse'", "(top level)");
}

Test(chain, unknown_conv_option)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': ['relu', {'conv': {'filter': 4, 'kernel': 3}}], "
			 "'head': 'linear', " SGD "}"),
		   NK_EINVAL, "t.json: stages[0].layers[1].conv: ", "unknown key 'filter'", "filters");
}

Test(chain, unknown_layer_kind)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [" CONV ", 'relux'], 'head': 'linear', " SGD "}"),
		   NK_EINVAL, "stages[0].layers[1]: ", "unknown layer kind 'relux'",
		   "conv, linear, relu");
}

Test(chain, filters_wrong_type)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [{'conv': {'filters': '32', 'kernel': 3}}], "
			 "'head': 'linear', " SGD "}"),
		   NK_EINVAL, "stages[0].layers[0].conv.filters: ", "positive integer", "a string");
}

Test(chain, filters_not_positive)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [{'conv': {'filters': 0, 'kernel': 3}}], "
			 "'head': 'linear', " SGD "}"),
		   NK_EINVAL, "stages[0].layers[0].conv.filters: ", "positive integer", "got 0");
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [{'conv': {'filters': -3, 'kernel': 3}}], "
			 "'head': 'linear', " SGD "}"),
		   NK_EINVAL, "stages[0].layers[0].conv.filters: ", "positive integer", "got -3");
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': ['conv'], 'head': 'linear', " SGD "}"),
		   NK_EINVAL, "stages[0].layers[0].conv: ", "missing required key 'filters'");
}

Test(chain, missing_stage_name)
{
	EXPECT_ERR(CHAIN("{'head': 'linear', " SGD "}"), NK_EINVAL,
		   "t.json: stages[0]: ", "missing required key 'name'");
	EXPECT_ERR(CHAIN("{'name': 7, 'head': 'linear', " SGD "}"), NK_EINVAL,
		   "stages[0].name: ", "expected a string");
	EXPECT_ERR(CHAIN("{'name': 'a b', 'head': 'linear', " SGD "}"), NK_EINVAL,
		   "stages[0].name: ", "'a b'");
}

Test(chain, missing_head)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [" CONV "], " SGD "}"), NK_EINVAL,
		   "stages[0]: ", "missing required key 'head'");
}

Test(chain, duplicate_stage_names)
{
	EXPECT_ERR(CHAIN("{'name': 'a', 'head': 'linear', " SGD "}, "
			 "{'name': 'b', 'head': 'linear', " SGD "}, "
			 "{'name': 'a', 'head': 'linear', " SGD "}"),
		   NK_EINVAL, "stages[2].name: ", "duplicate stage name 'a'", "stages[0]");
}

Test(chain, mcmc_layer_count)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [" CONV ", 'relu'], 'head': 'linear', "
			 "'optimizer': {'mcmc': {'layers': [{" PROP "}]}}}"),
		   NK_EINVAL, "stages[0].optimizer.mcmc.layers: ", "expected 2 entries", "found 1");
}

Test(chain, uniform_move_on_conv)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [" CONV "], 'head': 'linear', "
			 "'optimizer': {'mcmc': {'layers': [{'move': {'uniform': 10}, " PROP "}, "
			 "{" PROP "}]}}}"),
		   NK_EINVAL, "stages[0].optimizer.mcmc.layers[0].move: ", "'uniform'",
		   "linear layer", "layers[0] (conv)");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', "
			 "'optimizer': {'mcmc': {'layers': [{'move': 'filter', " PROP "}]}}}"),
		   NK_EINVAL, "mcmc.layers[0].move: ", "conv layer", "head[0] (linear)");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', "
			 "'optimizer': {'mcmc': {'layers': [{'move': {'uniform': 0}, " PROP "}]}}}"),
		   NK_EINVAL, "mcmc.layers[0].move.uniform: ", "positive integer");
}

Test(chain, flip_on_real_layer)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', "
			 "'optimizer': {'mcmc': {'layers': [{'proposal': 'flip'}]}}}"),
		   NK_EINVAL, "mcmc.layers[0].proposal: ", "flip", "not binary");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': {'linear': {'binary': true}}, "
			 "'optimizer': {'mcmc': {'layers': [{" PROP "}]}}}"),
		   NK_EINVAL, "mcmc.layers[0].proposal: ", "binary", "only the \"flip\"");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', 'optimizer': {'mcmc': {'layers': "
			 "[{" PROP ", 'prior': 'flip'}]}}}"),
		   NK_EINVAL, "mcmc.layers[0].prior: ", "gaussian");
}

Test(chain, head_not_linear)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'head': [{'linear': {'units': 8}}, 'relu'], " SGD "}"), NK_EINVAL,
		   "stages[0].head[1]: ", "last head layer must be \"linear\"", "'relu'");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'gap', " SGD "}"), NK_EINVAL,
		   "stages[0].head: ", "last head layer");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': [], " SGD "}"), NK_EINVAL, "stages[0].head: ");
}

Test(chain, head_units_not_classes)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'head': {'linear': {'units': 5}}, " SGD "}"), NK_EINVAL,
		   "stages[0].head.linear.units: ", "data.classes (10)", "got 5");
}

Test(chain, bad_listen)
{
	const char *bad[] = {"'localhost'", "':7101'", "'h:0'", "'h:65536'", "'h:7x'", "'h:'", "7101"};
	char text[512];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(text, sizeof text, CHAIN("{'name': 's', 'listen': %s, 'head': 'linear', " SGD "}"),
			 bad[i]);
		EXPECT_ERR(text, NK_EINVAL, "stages[0].listen: ");
	}
	EXPECT_ERR(CHAIN("{'name': 's', 'listen': 'h:0', 'head': 'linear', " SGD "}"), NK_EINVAL,
		   "host:port", "'h:0'");
}

Test(chain, unsupported_data_format)
{
	EXPECT_ERR("{'chain': 't', 'data': {'format': 'parquet', 'train': ['a', 'b']}, 'stages': []}",
		   NK_EINVAL, "t.json: data.format: ",
		   "format 'parquet' is not supported (supported: idx, cifar, images or csv)");
}

Test(chain, missing_data_train)
{
	EXPECT_ERR("{'chain': 't', 'data': {'test': ['a', 'b']}, 'stages': []}", NK_EINVAL,
		   "t.json: data: ", "missing required key 'train'");
	EXPECT_ERR("{'chain': 't', 'data': {'train': ['a']}, 'stages': []}", NK_EINVAL,
		   "data.train: ", "2 file names");
}

Test(chain, other_refusals)
{
	EXPECT_ERR(CHAIN(), NK_EINVAL, "t.json: stages: ", "non-empty");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', " SGD ", 'exit': "
			 "{'threshold': 0.9, 'entropy': 1}}"), NK_EINVAL, "stages[0].exit: ", "at most one");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', " SGD ", 'exit': {'threshold': 1.5}}"),
		   NK_EINVAL, "stages[0].exit.threshold: ", "(0, 1]");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', 'optimizer': {'adam': {}}}"), NK_EINVAL,
		   "stages[0].optimizer: ", "unknown optimizer 'adam'");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', 'optimizer': {'sgd': {'momentum': 1}}}"),
		   NK_EINVAL, "stages[0].optimizer.sgd.momentum: ", "[0, 1)");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', 'optimizer': {'mcmc': {}}}"), NK_EINVAL,
		   "stages[0].optimizer.mcmc: ", "missing required key 'layers'");
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [{'linear': {}}], 'head': 'linear', " SGD "}"),
		   NK_EINVAL, "stages[0].layers[0].linear: ", "missing required key 'units'");
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': ['relu', {'relu': {'x': 1}}], 'head': 'linear', "
			 SGD "}"), NK_EINVAL, "stages[0].layers[1].relu: ", "unknown key 'x'");
	EXPECT_ERR("{'chain': 't', 'seed': -1, " DATA ", 'stages': []}", NK_EINVAL, "t.json: seed: ");
	EXPECT_ERR("[1]", NK_EINVAL, "(top level)", "expected an object");
}

Test(chain, local_learning_kinds)
{
	struct chain *c = parse_ok(CHAIN(
		"{'name': 's', 'layers': [" CONV ", {'batchnorm': {'momentum': 0.2}}, 'relu', "
		"{'avgpool': {'grid': 3}}], 'head': {'pooled': {'grid': 2}}, 'optimizer': {'sgd': "
		"{'lr': 0.1, 'weight_decay': 5e-4, 'schedule': 'cosine', 'warmup': 0.05, 'final': 0.01}}},"
		"{'name': 't', 'layers': ['batchnorm'], 'head': 'linear', 'optimizer': {'sgd': "
		"{'schedule': 'step', 'gamma': 0.5, 'every': 0.25}}}"));
	const struct chain_stage *s = &c->stages[0];
	cr_assert_str_eq(s->layers[1].kind, "batchnorm");
	cr_assert_float_eq(s->layers[1].momentum, 0.2, 1e-12);
	cr_assert_float_eq(s->layers[1].eps, 1e-5, 1e-12);
	cr_assert_eq(s->layers[3].grid, 3);
	/* The pooled head is an avgpool onto the grid, then the classifier. */
	cr_assert_eq(s->nhead, 2);
	cr_assert_str_eq(s->head[0].kind, "avgpool");
	cr_assert_eq(s->head[0].grid, 2);
	cr_assert_str_eq(s->head[1].kind, "linear");
	cr_assert_eq(s->head[1].units, 10);
	cr_assert_eq(s->optim.schedule, SCHED_COSINE);
	cr_assert_float_eq(s->optim.warmup, 0.05, 1e-12);
	cr_assert_float_eq(s->optim.final, 0.01, 1e-12);
	cr_assert_float_eq(s->optim.weight_decay, 5e-4, 1e-12);
	const struct chain_stage *t = &c->stages[1];
	cr_assert_float_eq(t->layers[0].momentum, 0.1, 1e-12);
	cr_assert_eq(t->optim.schedule, SCHED_STEP);
	cr_assert_float_eq(t->optim.gamma, 0.5, 1e-12);
	cr_assert_float_eq(t->optim.every, 0.25, 1e-12);
	cr_assert_float_eq(t->optim.warmup, 0, 0);
	chain_free(c);
}

Test(chain, local_learning_refusals)
{
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [" CONV ", 'batchnorm'], 'head': 'linear', "
			 "'optimizer': {'mcmc': {'layers': [{" PROP "}, {" PROP "}]}}}"),
		   NK_EINVAL, "stages[0].optimizer.mcmc: ", "batchnorm layer (layers[1])", "use sgd");
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [{'avgpool': {'grid': 2, 'size': 3}}], 'head': 'linear', "
			 SGD "}"), NK_EINVAL, "stages[0].layers[0].avgpool: ", "either 'grid'");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': {'pooled': {'grid': 0}}, " SGD "}"), NK_EINVAL,
		   "stages[0].head.pooled.grid: ");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': {'pooled': {'size': 2}}, " SGD "}"), NK_EINVAL,
		   "stages[0].head.pooled: ", "unknown key 'size'");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', 'optimizer': {'sgd': {'schedule': 'exp'}}}"),
		   NK_EINVAL, "stages[0].optimizer.sgd.schedule: ", "\"cosine\"");
	EXPECT_ERR(CHAIN("{'name': 's', 'head': 'linear', 'optimizer': {'sgd': {'warmup': 1}}}"),
		   NK_EINVAL, "stages[0].optimizer.sgd.warmup: ", "[0, 1)");
	EXPECT_ERR(CHAIN("{'name': 's', 'layers': [{'batchnorm': {'momentum': 0}}], 'head': 'linear', "
			 SGD "}"), NK_EINVAL, "stages[0].layers[0].batchnorm.momentum: ");
}

Test(chain, stage_index)
{
	struct chain *c = parse_ok(CHAIN("{'name': 'a', 'head': 'linear', " SGD "}, "
					 "{'name': 'b', 'head': 'linear', " SGD "}"));
	cr_assert_eq(chain_stage_index(c, "a"), 0);
	cr_assert_eq(chain_stage_index(c, "b"), 1);
	cr_assert_eq(chain_stage_index(c, "c"), -1);
	cr_assert_eq(chain_stage_index(c, ""), -1);
	chain_free(c);
	chain_free(NULL);
}

/* ---- data formats ---- */

#define ONE_STAGE "'stages': [{'name': 's', 'head': 'linear', " SGD "}]"
#define WITH_DATA(...) "{'chain': 't', 'data': {" __VA_ARGS__ "}, " ONE_STAGE "}"

Test(chain, loads_cifar_5)
{
	struct chain *c = load_shipped("cifar-5.json");
	const struct chain_data *d = &c->data;
	cr_assert_str_eq(c->name, "cifar-5");
	cr_assert_str_eq(d->format, "cifar");
	cr_assert_eq(d->ntrain, 5);
	cr_assert_str_eq(d->train[0], "/var/lib/necklace/cifar-10-batches-bin/data_batch_1.bin");
	cr_assert_str_eq(d->train[4], "/var/lib/necklace/cifar-10-batches-bin/data_batch_5.bin");
	cr_assert_eq(d->ntest, 1);
	cr_assert_str_eq(d->test[0], "/var/lib/necklace/cifar-10-batches-bin/test_batch.bin");
	cr_assert_eq(d->label_bytes, 1);
	cr_assert_eq(d->norm, NORM_AUTO);
	cr_assert_eq(d->crop, 4);
	cr_assert_eq(d->flip, 1);
	cr_assert_eq(c->nstages, 5);
	for (int i = 0; i < 5; i++) {
		char want[32];
		snprintf(want, sizeof want, "127.0.0.1:%d", 7201 + i);
		cr_assert_str_eq(c->stages[i].listen, want);
		cr_assert_eq(c->stages[i].optim.kind, OPTIM_SGD);
	}
	chain_free(c);
}

Test(chain, loads_images_2)
{
	struct chain *c = load_shipped("images-2.json");
	const struct chain_data *d = &c->data;
	cr_assert_str_eq(d->format, "images");
	cr_assert_eq(d->ntrain, 1);
	cr_assert_str_eq(d->train[0], "/var/lib/necklace/images/train");
	cr_assert_str_eq(d->test[0], "/var/lib/necklace/images/test");
	cr_assert_eq(d->shape[0], 3);
	cr_assert_eq(d->shape[1], 64);
	cr_assert_eq(d->shape[2], 64);
	cr_assert_eq(d->strict, 0);
	chain_free(c);
}

Test(chain, data_defaults_of_new_keys)
{
	struct chain *c = parse_ok(CHAIN("{'name': 's', 'head': 'linear', " SGD "}"));
	const struct chain_data *d = &c->data;
	cr_assert_eq(d->ntrain, 2);
	cr_assert_eq(d->norm, NORM_UNIT);
	cr_assert_eq(d->nmean, 0);
	cr_assert_eq(d->crop, 0);
	cr_assert_eq(d->flip, 0);
	cr_assert_eq(d->shape[0], 0);
	cr_assert_eq(d->label_col, -1);
	cr_assert_eq(d->label_bytes, 1);
	cr_assert_eq(d->features, FEAT_AUTO);
	chain_free(c);
}

Test(chain, data_cifar_forms)
{
	struct chain *c = parse_ok(WITH_DATA("'format': 'cifar', 'train': 'data_batch_1.bin', "
					     "'test': ['x.bin'], 'label_bytes': 2, 'label': 'coarse', "
					     "'classes': 20"));
	cr_assert_eq(c->data.ntrain, 1);
	cr_assert_str_eq(c->data.train[0], "/base/data_batch_1.bin");
	cr_assert_eq(c->data.label_bytes, 2);
	cr_assert_eq(c->data.coarse, 1);
	chain_free(c);
	c = parse_ok(WITH_DATA("'format': 'cifar', 'train': ['a', 'b', 'c'], 'label_bytes': 2"));
	cr_assert_eq(c->data.ntrain, 3);
	cr_assert_eq(c->data.coarse, 0, "fine labels by default");
	chain_free(c);
}

Test(chain, data_images_and_csv_forms)
{
	struct chain *c = parse_ok(WITH_DATA("'format': 'images', 'dir': '/d', 'train': 'tr', "
					     "'test': 'te', 'strict': true"));
	cr_assert_str_eq(c->data.train[0], "/d/tr");
	cr_assert_str_eq(c->data.test[0], "/d/te");
	cr_assert_eq(c->data.shape[0], 3, "images default to 3 x 32 x 32");
	cr_assert_eq(c->data.shape[1], 32);
	cr_assert_eq(c->data.strict, 1);
	chain_free(c);
	c = parse_ok(WITH_DATA("'format': 'csv', 'train': 'a.csv', 'header': true, "
			       "'label': 'y', 'shape': [1, 2, 3], 'features': 'float'"));
	cr_assert_str_eq(c->data.train[0], "/base/a.csv");
	cr_assert_str_eq(c->data.label_name, "y");
	cr_assert_eq(c->data.header, 1);
	cr_assert_eq(c->data.shape[2], 3);
	cr_assert_eq(c->data.features, FEAT_FLOAT);
	chain_free(c);
	c = parse_ok(WITH_DATA("'format': 'csv', 'train': 'a.csv', 'label': 0"));
	cr_assert_eq(c->data.label_col, 0);
	cr_assert_eq(c->data.label_name[0], '\0');
	chain_free(c);
}

Test(chain, data_normalize_and_augment)
{
	struct chain *c = parse_ok(WITH_DATA("'train': ['a', 'b'], 'normalize': 'auto', "
					     "'augment': {'crop': 2}"));
	cr_assert_eq(c->data.norm, NORM_AUTO);
	cr_assert_eq(c->data.crop, 2);
	cr_assert_eq(c->data.flip, 0);
	chain_free(c);
	c = parse_ok(WITH_DATA("'train': ['a', 'b'], 'normalize': '[0,1]'"));
	cr_assert_eq(c->data.norm, NORM_UNIT);
	cr_assert_eq(c->data.mean, 0);
	cr_assert_eq(c->data.std, 1);
	chain_free(c);
	c = parse_ok(WITH_DATA("'train': ['a', 'b'], 'normalize': {'mean': [0.1, 0.2, 0.3], "
			       "'std': 0.5}"));
	cr_assert_eq(c->data.norm, NORM_GIVEN);
	cr_assert_eq(c->data.nmean, 3);
	cr_assert_float_eq(c->data.mean_c[2], 0.3, 1e-12);
	cr_assert_float_eq(c->data.std_c[0], 0.5, 1e-12);
	cr_assert_float_eq(c->data.std_c[2], 0.5, 1e-12);
	chain_free(c);
}

Test(chain, data_refusals)
{
	EXPECT_ERR(WITH_DATA("'train': ['a', 'b'], 'strict': true"), NK_EINVAL,
		   "t.json: data.strict: ", "only format images", "'idx'");
	EXPECT_ERR(WITH_DATA("'format': 'images', 'train': 'd', 'header': true"), NK_EINVAL,
		   "data.header: ", "only format csv");
	EXPECT_ERR(WITH_DATA("'train': ['a', 'b'], 'label': 1"), NK_EINVAL,
		   "data.label: ", "only formats cifar or csv");
	EXPECT_ERR(WITH_DATA("'format': 'images', 'train': ['d']"), NK_EINVAL,
		   "data.train: ", "a folder name");
	EXPECT_ERR(WITH_DATA("'format': 'csv', 'train': 'a', 'test': ['b']"), NK_EINVAL,
		   "data.test: ", "a file name");
	EXPECT_ERR(WITH_DATA("'format': 'cifar', 'train': []"), NK_EINVAL, "data.train: ",
		   "1 to 16 file names");
	EXPECT_ERR(WITH_DATA("'format': 'cifar', 'train': 'a', 'label': 'fine'"), NK_EINVAL,
		   "data.label: ", "label_bytes");
	EXPECT_ERR(WITH_DATA("'format': 'cifar', 'train': 'a', 'label_bytes': 3"), NK_EINVAL,
		   "data.label_bytes: ", "[1, 2]", "got 3");
	EXPECT_ERR(WITH_DATA("'format': 'csv', 'train': 'a', 'label': 'y'"), NK_EINVAL,
		   "data.label: ", "needs \"header\": true");
	EXPECT_ERR(WITH_DATA("'format': 'csv', 'train': 'a', 'label': -1"), NK_EINVAL,
		   "data.label: ");
	EXPECT_ERR(WITH_DATA("'format': 'csv', 'train': 'a', 'features': 'ints'"), NK_EINVAL,
		   "data.features: ", "\"bytes\"");
	EXPECT_ERR(WITH_DATA("'format': 'csv', 'train': 'a', 'shape': [1, 2]"), NK_EINVAL,
		   "data.shape: ", "[C, H, W]");
	EXPECT_ERR(WITH_DATA("'format': 'csv', 'train': 'a', 'shape': [1, 0, 2]"), NK_EINVAL,
		   "data.shape[1]: ");
	EXPECT_ERR(WITH_DATA("'format': 'images', 'train': 'd', 'shape': [2, 8, 8]"), NK_EINVAL,
		   "data.shape[0]: ", "1 (grey) or 3 (RGB)");
	EXPECT_ERR(WITH_DATA("'train': ['a', 'b'], 'normalize': 'unit'"), NK_EINVAL,
		   "data.normalize: ", "\"auto\"");
	EXPECT_ERR(WITH_DATA("'train': ['a', 'b'], 'normalize': {'mean': [0, 0], 'std': [1]}"),
		   NK_EINVAL, "data.normalize: ", "'mean' has 2 values but 'std' has 1");
	EXPECT_ERR(WITH_DATA("'train': ['a', 'b'], 'normalize': {'std': [1, 0]}"), NK_EINVAL,
		   "data.normalize.std[1]: ", "> 0");
	EXPECT_ERR(WITH_DATA("'train': ['a', 'b'], 'augment': {'crop': -1}"), NK_EINVAL,
		   "data.augment.crop: ");
	EXPECT_ERR(WITH_DATA("'train': ['a', 'b'], 'augment': {'mirror': true}"), NK_EINVAL,
		   "data.augment: ", "unknown key 'mirror'");
}

Test(chain, every_shipped_chain_loads)
{
	const char *dir = getenv("srcdir");
	char path[CHAIN_PATH_LEN];
	snprintf(path, sizeof path, "%s/data/chains", dir ? dir : SRCDIR);
	DIR *d = opendir(path);
	cr_assert_not_null(d, "%s", path);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 5 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		chain_free(load_shipped(e->d_name));
		n++;
	}
	closedir(d);
	cr_assert_geq(n, 7, "only %d chain files in %s", n, path);
}
