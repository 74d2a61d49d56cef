/* The four data formats side by side: one small dataset written as IDX, CIFAR binary, an image
 * folder and CSV reads back as the same samples, and the same chain file with only its data
 * block switched trains end to end through the built necklace-train in every format. */
#include "tests/ds_test.h"

#include <stb/stb_image_write.h>
#include <sys/wait.h>

#define SIDE 32
#define CLASSES 4
#define NTRAIN 200
#define NTEST 100
#define PIX (SIDE * SIDE)

TestSuite(formats, .init = ds_test_setup, .fini = ds_test_teardown, .timeout = 300);

static const char *const formats[] = {"idx", "cifar", "images", "csv"};

/* The data block of each format (paths relative to the chain file's folder). */
static const char *const blocks[] = {
	"\"format\": \"idx\", \"dir\": \"idx\", \"train\": [\"train-images\", \"train-labels\"], "
	"\"test\": [\"test-images\", \"test-labels\"]",
	"\"format\": \"cifar\", \"dir\": \"cifar\", \"train\": [\"train_1.bin\", \"train_2.bin\"], "
	"\"test\": \"test.bin\"",
	"\"format\": \"images\", \"dir\": \"img\", \"train\": \"train\", \"test\": \"test\", "
	"\"shape\": [1, 32, 32]",
	"\"format\": \"csv\", \"dir\": \"csv\", \"train\": \"train.csv\", \"test\": \"test.csv\", "
	"\"shape\": [1, 32, 32], \"header\": true, \"label\": \"label\"",
};

/* Everything else is the same for every format. */
#define CHAIN_TEXT "{\"chain\": \"formats\", \"seed\": 1,\n" \
	"\"data\": {%s, \"classes\": 4, \"batch\": 20, \"epochs\": 6},\n" \
	"\"stages\": [\n" \
	" {\"name\": \"a\", \"layers\": [{\"conv\": {\"filters\": 8, \"kernel\": 3, \"stride\": 2, " \
	"\"pad\": 1}}, \"relu\"], \"head\": \"linear\", \"optimizer\": {\"sgd\": {\"lr\": 0.05, " \
	"\"momentum\": 0.9}}},\n" \
	" {\"name\": \"b\", \"layers\": [{\"conv\": {\"filters\": 8, \"kernel\": 3, \"stride\": 2, " \
	"\"pad\": 1}}, \"relu\"], \"head\": \"linear\", \"optimizer\": {\"sgd\": {\"lr\": 0.05, " \
	"\"momentum\": 0.9}}}]}\n"

struct split {
	int n;
	uint8_t x[NTRAIN][PIX];
	uint8_t y[NTRAIN];
};
static struct split train, test;

/* Sample s of n, class-major (the order an image folder lists them in): a noisy dark frame with a
 * bright 12 x 12 square in the quadrant of its class. */
static void make_split(struct split *sp, int n, uint32_t seed)
{
	uint32_t r = seed;

	sp->n = n;
	for (int s = 0; s < n; s++) {
		int label = s * CLASSES / n, oy = label / 2 ? 18 : 2, ox = label % 2 ? 18 : 2;
		sp->y[s] = (uint8_t)label;
		for (int i = 0; i < SIDE; i++)
			for (int j = 0; j < SIDE; j++) {
				r = r * 1664525u + 1013904223u;
				int in = i >= oy && i < oy + 12 && j >= ox && j < ox + 12;
				sp->x[s][i * SIDE + j] = (uint8_t)((in ? 180 : 0) + (r >> 24) % 50);
			}
	}
}

static void put32(FILE *f, uint32_t v)
{
	uint8_t b[4] = {v >> 24, v >> 16, v >> 8, v};
	cr_assert_eq(fwrite(b, 1, 4, f), 4);
}

static void write_idx(const struct split *sp, const char *which)
{
	FILE *im = fopen(tpath("idx/%s-images", which), "wb");
	FILE *lb = fopen(tpath("idx/%s-labels", which), "wb");

	cr_assert(im && lb);
	put32(im, 0x803);
	put32(im, (uint32_t)sp->n);
	put32(im, SIDE);
	put32(im, SIDE);
	put32(lb, 0x801);
	put32(lb, (uint32_t)sp->n);
	fwrite(sp->x, PIX, (size_t)sp->n, im);
	fwrite(sp->y, 1, (size_t)sp->n, lb);
	cr_assert_eq(fclose(im) | fclose(lb), 0);
}

/* Records [from, to) of sp as CIFAR-10: label, then the grey plane as red, green and blue. */
static void write_cifar(const struct split *sp, const char *name, int from, int to)
{
	FILE *f = fopen(tpath("cifar/%s", name), "wb");

	cr_assert(f);
	for (int s = from; s < to; s++) {
		fputc(sp->y[s], f);
		for (int k = 0; k < 3; k++)
			fwrite(sp->x[s], 1, PIX, f);
	}
	cr_assert_eq(fclose(f), 0);
}

static void write_images(const struct split *sp, const char *which)
{
	for (int k = 0; k < CLASSES; k++) {
		char dir[64];
		snprintf(dir, sizeof dir, "img/%s/c%d", which, k);
		tmkdir(dir);
	}
	for (int s = 0; s < sp->n; s++)
		cr_assert(stbi_write_png(tpath("img/%s/c%d/%03d.png", which, sp->y[s], s), SIDE, SIDE,
					 1, sp->x[s], SIDE));
}

static void write_csv(const struct split *sp, const char *which)
{
	FILE *f = fopen(tpath("csv/%s.csv", which), "wb");

	cr_assert(f);
	for (int j = 0; j < PIX; j++)
		fprintf(f, "p%d,", j);
	fprintf(f, "label\n");
	for (int s = 0; s < sp->n; s++) {
		for (int j = 0; j < PIX; j++)
			fprintf(f, "%d,", sp->x[s][j]);
		fprintf(f, "%d\n", sp->y[s]);
	}
	cr_assert_eq(fclose(f), 0);
}

/* The dataset in every format and one chain file per format: chain-FORMAT.json. */
static void write_all(void)
{
	make_split(&train, NTRAIN, 1);
	make_split(&test, NTEST, 2);
	tmkdir("idx");
	tmkdir("cifar");
	tmkdir("csv");
	write_idx(&train, "train");
	write_idx(&test, "test");
	write_cifar(&train, "train_1.bin", 0, 120);
	write_cifar(&train, "train_2.bin", 120, NTRAIN);
	write_cifar(&test, "test.bin", 0, NTEST);
	write_images(&train, "train");
	write_images(&test, "test");
	write_csv(&train, "train");
	write_csv(&test, "test");
	for (int i = 0; i < 4; i++) {
		char text[2048];
		int len = snprintf(text, sizeof text, CHAIN_TEXT, blocks[i]);
		cr_assert(len > 0 && len < (int)sizeof text);
		twrite(tpath("chain-%s.json", formats[i]), text, (size_t)len);
	}
}

static void check_split(const struct ds *d, const struct split *sp, const char *fmt)
{
	cr_assert_eq(d->n, sp->n, "%s: %d samples", fmt, d->n);
	cr_assert_eq(d->h, SIDE);
	cr_assert_eq(d->w, SIDE);
	cr_assert_eq(d->classes, CLASSES);
	cr_assert_not_null(d->x, "%s: stored as bytes", fmt);
	for (int s = 0; s < sp->n; s++) {
		cr_assert_eq(d->y[s], sp->y[s], "%s: label of sample %d", fmt, s);
		for (int k = 0; k < d->c; k++)
			cr_assert_eq(memcmp(d->x + ((size_t)s * d->c + k) * PIX, sp->x[s], PIX), 0,
				     "%s: sample %d channel %d differs", fmt, s, k);
	}
}

Test(formats, same_samples_in_every_format)
{
	write_all();
	for (int i = 0; i < 4; i++) {
		char err[NK_ERR_LEN] = "";
		struct chain *c;
		struct ds *tr, *te;
		cr_assert_eq(chain_load(&c, tpath("chain-%s.json", formats[i]), err), 0, "%s", err);
		cr_assert_str_eq(c->data.format, formats[i]);
		cr_assert_eq(ds_load_pair(&tr, &te, &c->data, err), 0, "%s: %s", formats[i], err);
		cr_assert_eq(tr->c, strcmp(formats[i], "cifar") == 0 ? 3 : 1);
		check_split(tr, &train, formats[i]);
		check_split(te, &test, formats[i]);
		if (strcmp(formats[i], "images") == 0)
			cr_assert_str_eq(tr->names[3], "c3");
		ds_free(tr);
		ds_free(te);
		chain_free(c);
	}
}

/* Run necklace-train on a chain with a log folder; its stdout goes to out. Exit status. */
static int run_train(const char *chain, const char *logdir, const char *out)
{
	const char *dir = getenv("NK_BUILDDIR");
	char prog[PATH_MAX];
	pid_t pid;
	int status;

	snprintf(prog, sizeof prog, "%s/necklace-train", dir ? dir : ".");
	cr_assert_eq(access(prog, X_OK), 0, "%s not built (NK_BUILDDIR=%s)", prog, dir ? dir : "");
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		FILE *f = freopen(out, "w", stdout);
		if (!f || !freopen(out, "a", stderr))
			_exit(126);
		execl(prog, "necklace-train", "-c", chain, "--log-dir", logdir, (char *)NULL);
		_exit(127);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* test_acc of the last phase=test line of stage in the file at path (-1: none). */
static double last_test_acc(const char *path, const char *stage)
{
	char line[1024], key[64];
	double acc = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	snprintf(key, sizeof key, "stage=%s ", stage);
	while (fgets(line, sizeof line, f)) {
		const char *a = strstr(line, "test_acc=");
		if (strstr(line, key) && strstr(line, "phase=test") && a)
			acc = strtod(a + 9, NULL);
	}
	fclose(f);
	return acc;
}

Test(formats, same_chain_trains_in_every_format)
{
	write_all();
	for (int i = 0; i < 4; i++) {
		const char *out = tpath("out-%s.txt", formats[i]), *logs = tpath("logs-%s", formats[i]);
		int rc = run_train(tpath("chain-%s.json", formats[i]), logs, out);
		char msg[512] = "";
		FILE *f = fopen(out, "r");
		if (f) {
			size_t n = fread(msg, 1, sizeof msg - 1, f);
			msg[n] = '\0';
			fclose(f);
		}
		cr_assert_eq(rc, 0, "%s: necklace-train exited %d: %s", formats[i], rc, msg);
		for (int s = 0; s < 2; s++) {
			const char *stage = s ? "b" : "a";
			double acc = last_test_acc(out, stage);
			double logged = last_test_acc(tpath("logs-%s/%s.log", formats[i], stage), stage);
			cr_log_info("format=%s stage=%s test_acc=%.3f", formats[i], stage, acc);
			cr_assert_gt(acc, 0.5, "%s: stage %s test_acc %.3f (chance 0.25)", formats[i],
				     stage, acc);
			cr_assert_eq(logged, acc, "%s: %s.log has no matching phase=test line",
				     formats[i], stage);
		}
	}
}
