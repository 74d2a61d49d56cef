/* IDX reader: pixels and labels from plain and gzip files, one distinct error per kind of damage. */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <dirent.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/ds.h"
#include "tests/nk_test.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

static char tmp[PATH_MAX];

static void setup(void)
{
	cr_assert(nk_test_tmpdir(tmp, sizeof(tmp)), "cannot create a temp dir");
}

static void teardown(void)
{
	char path[PATH_MAX + 256];
	DIR *dir = opendir(tmp);
	struct dirent *e;

	if (!dir)
		return;
	while ((e = readdir(dir)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", tmp, e->d_name);
			unlink(path);
		}
	closedir(dir);
	rmdir(tmp);
}

TestSuite(idx, .init = setup, .fini = teardown);

/* Path of name inside this test's temp dir (a static buffer per call slot). */
static const char *tpath(const char *name)
{
	static char buf[4][PATH_MAX + 64];
	static int slot;
	char *p = buf[slot++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", tmp, name);
	return p;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Write len bytes to path, gzip-compressed when gz is set. */
static void write_file(const char *path, int gz, const uint8_t *buf, size_t len)
{
	if (!gz) {
		cr_assert_eq(nk_test_write(path, buf, len), 0, "cannot write %s", path);
		return;
	}
	gzFile f = gzopen(path, "wb");
	cr_assert(f, "cannot gzopen %s", path);
	cr_assert_eq(gzwrite(f, buf, (unsigned)len), (int)len, "gzwrite %s", path);
	cr_assert_eq(gzclose(f), Z_OK, "gzclose %s", path);
}

/* Images file: magic, n, h, w, then pixel (i, j) = (7 i + j) & 255; drop bytes cut off the end
 * (negative: that many zero bytes appended). */
static const char *write_images(const char *name, int gz, uint32_t magic, uint32_t n, uint32_t h,
				uint32_t w, long drop)
{
	size_t len = 16 + (size_t)n * h * w;
	uint8_t *buf = calloc(len + 64, 1);

	cr_assert(buf && drop >= -64);
	put32(buf, magic);
	put32(buf + 4, n);
	put32(buf + 8, h);
	put32(buf + 12, w);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < (size_t)h * w; j++)
			buf[16 + i * h * w + j] = (uint8_t)(7 * i + j);
	const char *path = tpath(name);
	write_file(path, gz, buf, (size_t)((long)len - drop));
	free(buf);
	return path;
}

/* Labels file: magic, n, then label i = i % 10 (bad replaces record bad_at if that is >= 0);
 * drop as for images. */
static const char *write_labels(const char *name, int gz, uint32_t magic, uint32_t n, long drop,
				int bad_at, int bad)
{
	size_t len = 8 + n;
	uint8_t *buf = calloc(len + 64, 1);

	cr_assert(buf && drop >= -64);
	put32(buf, magic);
	put32(buf + 4, n);
	for (size_t i = 0; i < n; i++)
		buf[8 + i] = (uint8_t)(i % 10);
	if (bad_at >= 0)
		buf[8 + bad_at] = (uint8_t)bad;
	const char *path = tpath(name);
	write_file(path, gz, buf, (size_t)((long)len - drop));
	free(buf);
	return path;
}

static void check_contents(const struct ds *d, int n, int h, int w)
{
	cr_assert_eq(d->n, n);
	cr_assert_eq(d->c, 1);
	cr_assert_eq(d->h, h);
	cr_assert_eq(d->w, w);
	for (int i = 0; i < n; i++) {
		for (int j = 0; j < h * w; j++)
			cr_assert_eq(d->x[(size_t)i * h * w + j], (uint8_t)(7 * i + j),
				     "pixel %d of image %d", j, i);
		cr_assert_eq(d->y[i], i % 10, "label %d", i);
	}
}

/* Expect code from a load and every given word (NULL-terminated) in the message. */
static void expect_err(const char *images, const char *labels, int classes, int code, ...)
{
	char err[NK_ERR_LEN] = "";
	struct ds *d = (struct ds *)1;
	int rc = ds_idx_load(&d, images, labels, classes, err);
	va_list ap;
	const char *word;

	cr_assert_eq(rc, code, "rc %d (%s), expected %d; err: %s", rc, nk_strerror(rc), code, err);
	cr_assert_null(d, "no dataset on failure");
	cr_assert_null(strchr(err, '\n'), "one line: %s", err);
	va_start(ap, code);
	while ((word = va_arg(ap, const char *)))
		cr_assert(strstr(err, word), "\"%s\" not in: %s", word, err);
	va_end(ap);
}

Test(idx, loads_plain)
{
	char err[NK_ERR_LEN] = "";
	struct ds *d;
	const char *im = write_images("im", 0, 0x803, 23, 5, 3, 0);
	const char *lb = write_labels("lb", 0, 0x801, 23, 0, -1, 0);

	cr_assert_eq(ds_idx_load(&d, im, lb, 0, err), 0, "%s", err);
	cr_assert_eq(d->classes, 10, "classes 0 means 10");
	check_contents(d, 23, 5, 3);
	ds_free(d);
}

Test(idx, loads_gzip)
{
	char err[NK_ERR_LEN] = "";
	struct ds *d;
	const char *im = write_images("im.gz", 1, 0x803, 300, 28, 28, 0);
	const char *lb = write_labels("lb.gz", 1, 0x801, 300, 0, -1, 0);

	cr_assert_eq(ds_idx_load(&d, im, lb, 0, err), 0, "%s", err);
	check_contents(d, 300, 28, 28);
	ds_free(d);
}

Test(idx, loads_mixed_and_explicit_classes)
{
	char err[NK_ERR_LEN] = "";
	struct ds *d;
	const char *im = write_images("im.gz", 1, 0x803, 10, 2, 2, 0);
	const char *lb = write_labels("lb", 0, 0x801, 10, 0, -1, 0);

	cr_assert_eq(ds_idx_load(&d, im, lb, 12, err), 0, "%s", err);
	cr_assert_eq(d->classes, 12);
	check_contents(d, 10, 2, 2);
	ds_free(d);
}

Test(idx, free_null)
{
	ds_free(NULL);
}

Test(idx, wrong_magic_images)
{
	const char *im = write_images("im", 0, 0x801, 4, 2, 2, 0);
	const char *lb = write_labels("lb", 0, 0x801, 4, 0, -1, 0);

	expect_err(im, lb, 0, NK_EFORMAT, im, "magic", "0x00000801", "expected 0x00000803", NULL);
}

Test(idx, wrong_magic_labels)
{
	const char *im = write_images("im", 0, 0x803, 4, 2, 2, 0);
	const char *lb = write_labels("lb.gz", 1, 0x12345678, 4, 0, -1, 0);

	expect_err(im, lb, 0, NK_EFORMAT, lb, "magic", "0x12345678", "expected 0x00000801", NULL);
}

Test(idx, truncated_images)
{
	const char *lb = write_labels("lb", 0, 0x801, 6, 0, -1, 0);
	const char *im = write_images("im", 0, 0x803, 6, 3, 3, 10);
	const char *gz = write_images("im.gz", 1, 0x803, 6, 3, 3, 10);

	/* 54 bytes of pixels expected, 44 present: 4 whole images */
	expect_err(im, lb, 0, NK_EFORMAT, im, "truncated", "expected 6 images", "54 bytes",
		   "found 44 bytes", "4 complete", NULL);
	expect_err(gz, lb, 0, NK_EFORMAT, gz, "truncated", "expected 6 images", "found 44 bytes",
		   NULL);
}

Test(idx, truncated_header)
{
	const char *im = write_images("im", 0, 0x803, 6, 3, 3, 16 + 54 - 7);
	const char *lb = write_labels("lb", 0, 0x801, 6, 0, -1, 0);

	expect_err(im, lb, 0, NK_EFORMAT, im, "truncated header", "expected 16 bytes", "found 7",
		   NULL);
}

Test(idx, truncated_labels)
{
	const char *im = write_images("im", 0, 0x803, 30, 2, 2, 0);
	const char *lb = write_labels("lb.gz", 1, 0x801, 30, 5, -1, 0);

	expect_err(im, lb, 0, NK_EFORMAT, lb, "truncated", "expected 30 labels", "found 25",
		   NULL);
}

Test(idx, trailing_data)
{
	const char *im = write_images("im", 0, 0x803, 5, 2, 2, -3);
	const char *lb = write_labels("lb", 0, 0x801, 5, 0, -1, 0);

	expect_err(im, lb, 0, NK_EFORMAT, im, "trailing data", "5 images", NULL);
}

Test(idx, label_out_of_range)
{
	const char *im = write_images("im", 0, 0x803, 8, 2, 2, 0);
	const char *lb = write_labels("lb", 0, 0x801, 8, 0, 3, 10);
	const char *lb3 = write_labels("lb3", 0, 0x801, 8, 0, -1, 0);

	expect_err(im, lb, 0, NK_ERANGE, lb, "out of range", "label 10", "record 3", NULL);
	/* labels 0..7 against 5 classes: record 5 is the first bad one */
	expect_err(im, lb3, 5, NK_ERANGE, lb3, "out of range", "label 5", "record 5", NULL);
}

Test(idx, count_mismatch)
{
	const char *im = write_images("im", 0, 0x803, 5, 2, 2, 0);
	const char *lb = write_labels("lb", 0, 0x801, 4, 0, -1, 0);

	expect_err(im, lb, 0, NK_EFORMAT, im, lb, "mismatch", "5 images", "4 labels", NULL);
}

Test(idx, zero_and_absurd_dimensions)
{
	const char *lb = write_labels("lb", 0, 0x801, 4, 0, -1, 0);
	const char *zero = write_images("zero", 0, 0x803, 4, 0, 2, 0);
	const char *huge = write_images("huge", 0, 0x803, 4, 2, 2, 0);
	uint8_t hdr[16];

	expect_err(zero, lb, 0, NK_EFORMAT, zero, "zero dimension", NULL);
	put32(hdr, 0x803);
	put32(hdr + 4, 4);
	put32(hdr + 8, 1u << 20);
	put32(hdr + 12, 1u << 20);
	write_file(huge, 0, hdr, sizeof(hdr));
	expect_err(huge, lb, 0, NK_EFORMAT, huge, "absurd dimensions", NULL);
}

Test(idx, missing_file)
{
	const char *im = write_images("im", 0, 0x803, 4, 2, 2, 0);
	const char *lb = write_labels("lb", 0, 0x801, 4, 0, -1, 0);
	const char *none = tpath("no-such-file.gz");

	expect_err(none, lb, 0, NK_ENOENT, none, "cannot open", NULL);
	expect_err(im, none, 0, NK_ENOENT, none, "cannot open", NULL);
	expect_err(im, tmp, 0, NK_EIO, tmp, "directory", NULL);
}

Test(idx, fashion_mnist)
{
	char err[NK_ERR_LEN] = "";
	struct ds *d;
	struct stat st;
	int counts[10] = {0};

	if (stat(FMNIST "/train-images-idx3-ubyte.gz", &st) != 0)
		cr_skip_test("Fashion-MNIST not installed (" FMNIST ")");
	double t0 = nk_now();
	int rc = ds_idx_load(&d, FMNIST "/train-images-idx3-ubyte.gz",
			     FMNIST "/train-labels-idx1-ubyte.gz", 0, err);
	double dt = nk_now() - t0;
	cr_assert_eq(rc, 0, "%s", err);
	cr_log_info("Fashion-MNIST train set loaded in %.3f s", dt);
	cr_assert_eq(d->n, 60000);
	cr_assert_eq(d->h, 28);
	cr_assert_eq(d->w, 28);
	for (int i = 0; i < d->n; i++) {
		cr_assert_lt(d->y[i], 10);
		counts[d->y[i]]++;
	}
	for (int k = 0; k < 10; k++)
		cr_assert_eq(counts[k], 6000, "class %d: %d samples", k, counts[k]);
	ds_free(d);
}

Test(idx, through_ds_load_with_limit)
{
	struct chain_data cd = {.classes = 10, .has_test = 1, .limit = 7};
	char err[NK_ERR_LEN] = "";
	struct ds *tr, *te;

	snprintf(cd.train[0], CHAIN_PATH_LEN, "%s", write_images("im", 0, 0x803, 23, 5, 3, 0));
	snprintf(cd.train[1], CHAIN_PATH_LEN, "%s", write_labels("lb", 0, 0x801, 23, 0, -1, 0));
	snprintf(cd.test[0], CHAIN_PATH_LEN, "%s", write_images("tim.gz", 1, 0x803, 9, 5, 3, 0));
	snprintf(cd.test[1], CHAIN_PATH_LEN, "%s", write_labels("tlb", 0, 0x801, 9, 0, -1, 0));
	/* an empty format is the default, idx */
	cr_assert_eq(ds_load_pair(&tr, &te, &cd, err), 0, "%s", err);
	check_contents(tr, 7, 5, 3);
	check_contents(te, 9, 5, 3);
	ds_free(tr);
	ds_free(te);
	snprintf(cd.format, sizeof cd.format, "idx");
	cr_assert_eq(ds_load(&tr, &cd, 0, err), 0, "%s", err);
	cr_assert_eq(tr->n, 7);
	ds_free(tr);
	cd.has_test = 0;
	te = (struct ds *)1;
	cr_assert_eq(ds_load(&te, &cd, 1, err), NK_EINVAL);
	cr_assert_null(te);
	cr_assert(strstr(err, "no \"test\" split"), "%s", err);
	snprintf(cd.format, sizeof cd.format, "parquet");
	cr_assert_eq(ds_load(&tr, &cd, 0, err), NK_EUNSUP);
	cr_assert(strstr(err, "data.format") && strstr(err, "parquet"), "%s", err);
}

Test(idx, pair_with_other_shape_refused)
{
	struct chain_data cd = {.format = "idx", .classes = 10, .has_test = 1};
	char err[NK_ERR_LEN] = "";
	struct ds *tr = (struct ds *)1, *te = (struct ds *)1;

	snprintf(cd.train[0], CHAIN_PATH_LEN, "%s", write_images("im", 0, 0x803, 4, 5, 3, 0));
	snprintf(cd.train[1], CHAIN_PATH_LEN, "%s", write_labels("lb", 0, 0x801, 4, 0, -1, 0));
	snprintf(cd.test[0], CHAIN_PATH_LEN, "%s", write_images("tim", 0, 0x803, 4, 3, 5, 0));
	snprintf(cd.test[1], CHAIN_PATH_LEN, "%s", cd.train[1]);
	cr_assert_eq(ds_load_pair(&tr, &te, &cd, err), NK_ESHAPE, "%s", err);
	cr_assert_null(tr);
	cr_assert_null(te);
	cr_assert(strstr(err, cd.test[0]) && strstr(err, "1 x 3 x 5") && strstr(err, "1 x 5 x 3"),
		  "%s", err);
}

Test(idx, a_header_declaring_more_than_the_file_holds_costs_little)
{
	/* Headers declaring 2 Mi images of 28 x 28 (1.6 GB) with 16 bytes of pixels: the first
	 * buffer was 64 MiB whatever the file; now it is at most what the file can hold (data/idx.c:
	 * idx_body). With 16 MiB to spare they are refused as truncated, not for memory. */
	uint8_t im[16 + 16] = {0}, lb[8 + 16] = {0};
	put32(im, 0x803);
	put32(im + 4, 1u << 21);
	put32(im + 8, 28);
	put32(im + 12, 28);
	put32(lb, 0x801);
	put32(lb + 4, 1u << 21);
	const char *plain = tpath("big"), *gz = tpath("big.gz"), *labels = tpath("big-labels");
	write_file(plain, 0, im, sizeof im);
	write_file(gz, 1, im, sizeof im);
	write_file(labels, 0, lb, sizeof lb);
	cr_assert_eq(nk_test_limit_address_space(16u << 20), 0);
	expect_err(plain, labels, 0, NK_EFORMAT, plain, "truncated", "found 16 bytes", NULL);
	expect_err(gz, labels, 0, NK_EFORMAT, gz, "truncated", "found 16 bytes", NULL);
}
