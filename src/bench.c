/* necklace-bench: kernel and optimizer throughput, one logfmt line per figure, for comparing
 * against the PyTorch peers in the same run (scripts/bench). Figures are medians over repeats. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/model.h"
#include "optim/optim.h"
#include "src/chain.h"
#include "src/logfmt.h"

#ifndef NK_DATADIR
#define NK_DATADIR "/usr/local/share/necklace"
#endif

struct bench_opts {
	const char *chains;   /* folder with seed-1.json, seed-1-mcmc.json, seed-1-mcmc-research.json */
	double seconds;       /* per figure */
};

#include "src/bench.h" /* the benchmarks in their own files; they read struct bench_opts */

static void usage(FILE *f)
{
	fprintf(f, "usage: necklace-bench [--chains DIR] [--seconds S] [conv|sgd|mcmc ...]\n"
		   "\n"
		   "Measure throughput; prints one logfmt line per figure (default: all benchmarks).\n"
		   "  conv   conv2d forward GFLOP/s on the reference shapes (bench=conv shape= ms= gflops=)\n"
		   "  sgd    SGD training samples/s on the seed-1 chain (bench=sgd samples_s=)\n"
		   "  mcmc   MCMC proposals/s on seed-1-mcmc and seed-1-mcmc-research, batch set-up included\n"
		   "         (bench=mcmc chain= props_s=)\n"
		   "  link   512x32x8x8 batches over a loopback link, encode to decode (bench=link mb_s= frames_s=)\n"
		   "  --chains DIR   folder holding seed-1.json, seed-1-mcmc.json and seed-1-mcmc-research.json\n"
		   "                 (default %s/data/chains)\n"
		   "  --seconds S    time spent on each figure (default 2)\n"
		   "  -h, --help     this text\n",
		   NK_DATADIR);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median seconds per call of fn(arg), repeated for about `seconds`. */
static double median_time(void (*fn)(void *), void *arg, double seconds)
{
	enum { MAXREP = 4096 };
	static double t[MAXREP];
	int reps = 0;
	fn(arg); /* warm-up */
	double start = nk_now();
	while (reps < MAXREP && (reps < 5 || nk_now() - start < seconds)) {
		double t0 = nk_now();
		fn(arg);
		t[reps++] = nk_now() - t0;
	}
	qsort(t, reps, sizeof t[0], cmp_double);
	return t[reps / 2];
}

static void conv_call(void *arg)
{
	struct layer *l = arg;
	l->ops->forward(l, l->max_batch);
}

static int bench_conv(const struct bench_opts *o)
{
	static const int shapes[][8] = { /* N, C, H, W, K, kernel, stride, pad: as the peer */
		{512, 1, 28, 28, 32, 7, 3, 0},
		{512, 1, 28, 28, 32, 5, 1, 2},
		{512, 32, 14, 14, 64, 3, 1, 1},
		{512, 32, 8, 8, 32, 11, 1, 5},
	};
	for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
		const int *v = shapes[s];
		struct layer l = {.ops = &conv2d_ops, .in = {v[1], v[2], v[3]}, .max_batch = v[0]};
		struct chain_layer spec = {.kind = "conv", .filters = v[4], .kernel = v[5], .stride = v[6], .pad = v[7]};
		char err[NK_ERR_LEN], shape[96];
		snprintf(l.name, sizeof l.name, "conv");
		if (conv2d_ops.init(&l, &spec, err)) {
			fprintf(stderr, "necklace-bench: %s\n", err);
			return 1;
		}
		size_t nin = (size_t)v[0] * dims_size(l.in), nout = (size_t)v[0] * dims_size(l.out);
		float *x = nk_floats(nin);
		l.w = nk_floats(l.nparams);
		l.y = nk_floats(nout);
		struct nk_rng r;
		rng_seed(&r, 1);
		for (size_t i = 0; i < nin; i++)
			x[i] = (float)rng_normal(&r);
		layer_fill_uniform(l.w, l.nparams, 0.1f, &r);
		l.x = x;
		double t = median_time(conv_call, &l, o->seconds);
		double flops = 2.0 * v[0] * conv2d_ops.macs(&l);
		struct logfmt lf;
		snprintf(shape, sizeof shape, "N%dxC%dx%dx%d/K%dk%ds%dp%d", v[0], v[1], v[2], v[3], v[4], v[5],
			 v[6], v[7]);
		lf_begin(&lf);
		lf_str(&lf, "bench", "conv");
		lf_str(&lf, "shape", shape);
		lf_num(&lf, "ms", t * 1e3, 3);
		lf_num(&lf, "gflops", flops / t / 1e9, 2);
		lf_write(&lf, stdout, NULL);
		conv2d_ops.free(&l);
		free(x);
		free(l.w);
		free(l.y);
	}
	return 0;
}

struct train_arg {
	struct optim *o;
	const float *x;
	const int32_t *y;
	int n;
};

static void train_call(void *arg)
{
	struct train_arg *a = arg;
	struct optim_stats st;
	optim_train(a->o, a->x, a->y, a->n, NULL, &st);
}

/* A chain's first stage with its optimizer, fed random inputs of Fashion-MNIST's shape (the
 * cost does not depend on pixel values). Returns median seconds per optim_train call. */
static int time_stage(const struct bench_opts *o, const char *file, double *secs, int *batch,
		      int *iters)
{
	char path[2048], err[NK_ERR_LEN];
	struct chain *c;
	snprintf(path, sizeof path, "%s/%s", o->chains, file);
	if (chain_load(&c, path, err)) {
		fprintf(stderr, "necklace-bench: %s\n", err);
		return 2;
	}
	int B = c->data.batch, rc = 0;
	struct model *m = NULL;
	struct optim *opt = NULL;
	float *x = nk_floats((size_t)B * 784);
	int32_t *y = calloc(B, sizeof *y);
	struct nk_rng r;
	rng_seed(&r, 2);
	for (int i = 0; i < B * 784; i++)
		x[i] = (float)rng_uniform(&r);
	for (int i = 0; i < B; i++)
		y[i] = (int32_t)rng_below(&r, c->data.classes);
	if (model_new(&m, &c->stages[0], (struct layer_dims){1, 28, 28}, c->data.classes, B, 1, err) ||
	    optim_new(&opt, m, &c->stages[0].optim, 1, err)) {
		fprintf(stderr, "necklace-bench: %s: %s\n", path, err);
		rc = 1;
	} else {
		struct train_arg a = {opt, x, y, B};
		*secs = median_time(train_call, &a, o->seconds);
		*batch = B;
		*iters = opt->cfg.iters > 0 ? opt->cfg.iters : 1;
	}
	optim_free(opt);
	model_free(m);
	free(x);
	free(y);
	chain_free(c);
	return rc;
}

/* One line for a chain's first stage: SGD as samples/s, MCMC as proposals/s (each per
 * optim_train call, batch set-up included). */
static int bench_chain(const struct bench_opts *o, const char *bench, const char *chain)
{
	char file[128];
	double t;
	int B, iters;
	snprintf(file, sizeof file, "%s.json", chain);
	int rc = time_stage(o, file, &t, &B, &iters);
	if (rc)
		return rc;
	struct logfmt lf;
	lf_begin(&lf);
	lf_str(&lf, "bench", bench);
	lf_str(&lf, "chain", chain);
	lf_int(&lf, "batch", B);
	lf_int(&lf, "iters", iters);
	if (strcmp(bench, "mcmc") == 0) {
		lf_num(&lf, "us_prop", t * 1e6 / iters, 2);
		lf_int(&lf, "props_s", (long long)(iters / t));
	} else {
		lf_num(&lf, "ms_batch", t * 1e3 / iters, 3);
		lf_int(&lf, "samples_s", (long long)(B * iters / t));
	}
	lf_write(&lf, stdout, NULL);
	return 0;
}

static int bench_sgd(const struct bench_opts *o)
{
	return bench_chain(o, "sgd", "seed-1");
}

/* The shipped MCMC chain, and the research code's exact settings that the peer runs. */
static int bench_mcmc(const struct bench_opts *o)
{
	int rc = bench_chain(o, "mcmc", "seed-1-mcmc");
	return rc ? rc : bench_chain(o, "mcmc", "seed-1-mcmc-research");
}

static const struct {
	const char *name;
	int (*run)(const struct bench_opts *o);
} benches[] = {
	{"conv", bench_conv},
	{"sgd", bench_sgd},
	{"mcmc", bench_mcmc},
	{"link", bench_link},
};
#define NBENCH (sizeof benches / sizeof benches[0])

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"chains", required_argument, 0, 'C'}, {"seconds", required_argument, 0, 't'},
		{"help", no_argument, 0, 'h'}, {0, 0, 0, 0},
	};
	struct bench_opts o = {NK_DATADIR "/data/chains", 2.0};
	int c;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'C': o.chains = optarg; break;
		case 't':
			o.seconds = atof(optarg);
			if (!(o.seconds > 0)) {
				fprintf(stderr, "necklace-bench: --seconds wants a positive number, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	for (int i = optind; i < argc; i++) {
		size_t j = 0;
		while (j < NBENCH && strcmp(benches[j].name, argv[i]) != 0)
			j++;
		if (j == NBENCH) {
			fprintf(stderr, "necklace-bench: unknown benchmark '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	for (size_t j = 0; j < NBENCH; j++) {
		int wanted = optind == argc;
		for (int i = optind; i < argc; i++)
			wanted |= strcmp(benches[j].name, argv[i]) == 0;
		if (wanted) {
			int rc = benches[j].run(&o);
			if (rc)
				return rc;
		}
	}
	return 0;
}
