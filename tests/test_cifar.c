/* CIFAR binary reader: pixels, labels and several files per split; one distinct error per kind of
 * damage, each naming the file and the record. */
#include "tests/ds_test.h"

#define REC10 3073
#define REC100 3074

TestSuite(cifar, .init = ds_test_setup, .fini = ds_test_teardown);

/* Pixel j (0..3071, planar R, G, B) of global record r. */
static uint8_t px(int r, int j)
{
	return (uint8_t)(r * 31 + j * 7 + (j >> 10));
}

/* n records from global record first on; label bytes: CIFAR-10 r % 10, CIFAR-100 coarse r % 20
 * and fine (r * 3) % 100; cut bytes dropped from the end. */
static const char *write_cifar(const char *name, int label_bytes, int first, int n, int cut)
{
	size_t rec = 3072 + (size_t)label_bytes, len = rec * n - cut;
	uint8_t *buf = malloc(rec * n);
	const char *path = tpath("%s", name);

	cr_assert(buf);
	for (int i = 0; i < n; i++) {
		uint8_t *p = buf + i * rec;
		int r = first + i;
		if (label_bytes == 1) {
			p[0] = (uint8_t)(r % 10);
		} else {
			p[0] = (uint8_t)(r % 20);
			p[1] = (uint8_t)((r * 3) % 100);
		}
		for (int j = 0; j < 3072; j++)
			p[label_bytes + j] = px(r, j);
	}
	twrite(path, buf, len);
	free(buf);
	return path;
}

static void check_records(const struct ds *d, int n, int label_bytes, int coarse)
{
	cr_assert_eq(d->n, n);
	cr_assert_eq(d->c, 3);
	cr_assert_eq(d->h, 32);
	cr_assert_eq(d->w, 32);
	cr_assert_not_null(d->x);
	cr_assert_null(d->xf);
	for (int r = 0; r < n; r++) {
		int want = label_bytes == 1 ? r % 10 : coarse ? r % 20 : (r * 3) % 100;
		cr_assert_eq(d->y[r], want, "label of record %d", r);
		for (int j = 0; j < 3072; j++)
			cr_assert_eq(d->x[(size_t)r * 3072 + j], px(r, j), "pixel %d of record %d", j, r);
	}
}

static void expect_err(const char *const *files, int nfiles, int label_bytes, int classes,
		       int code, ...)
{
	char err[NK_ERR_LEN] = "";
	struct ds *d = (struct ds *)1;
	int rc = ds_cifar_load(&d, files, nfiles, label_bytes, 0, classes, err);
	va_list ap;

	cr_assert_eq(rc, code, "rc %d (%s), expected %d; err: %s", rc, nk_strerror(rc), code, err);
	cr_assert_null(d, "no dataset on failure");
	va_start(ap, code);
	check_words(err, ap);
	va_end(ap);
}

Test(cifar, two_files_in_order)
{
	const char *files[] = {write_cifar("data_batch_1.bin", 1, 0, 30, 0),
			       write_cifar("data_batch_2.bin", 1, 30, 17, 0)};
	char err[NK_ERR_LEN] = "";
	struct ds *d;

	cr_assert_eq(ds_cifar_load(&d, files, 2, 1, 0, 10, err), 0, "%s", err);
	check_records(d, 47, 1, 0);
	cr_assert_eq(d->classes, 10);
	ds_free(d);
}

Test(cifar, cifar100_fine_and_coarse)
{
	const char *files[] = {write_cifar("train.bin", 2, 0, 40, 0)};
	char err[NK_ERR_LEN] = "";
	struct ds *d;

	cr_assert_eq(ds_cifar_load(&d, files, 1, 2, 0, 100, err), 0, "%s", err);
	check_records(d, 40, 2, 0);
	ds_free(d);
	cr_assert_eq(ds_cifar_load(&d, files, 1, 2, 1, 20, err), 0, "%s", err);
	check_records(d, 40, 2, 1);
	ds_free(d);
}

Test(cifar, through_ds_load_with_limit)
{
	struct chain_data cd = {.format = "cifar", .ntrain = 2, .ntest = 1, .has_test = 1,
				.classes = 10, .label_bytes = 1, .limit = 25};
	char err[NK_ERR_LEN] = "";
	struct ds *tr, *te;

	snprintf(cd.train[0], CHAIN_PATH_LEN, "%s", write_cifar("a.bin", 1, 0, 20, 0));
	snprintf(cd.train[1], CHAIN_PATH_LEN, "%s", write_cifar("b.bin", 1, 20, 20, 0));
	snprintf(cd.test[0], CHAIN_PATH_LEN, "%s", write_cifar("t.bin", 1, 0, 9, 0));
	cr_assert_eq(ds_load_pair(&tr, &te, &cd, err), 0, "%s", err);
	check_records(tr, 25, 1, 0);
	check_records(te, 9, 1, 0);
	ds_free(tr);
	ds_free(te);
}

Test(cifar, partial_record)
{
	const char *files[] = {write_cifar("good.bin", 1, 0, 3, 0),
			       write_cifar("cut.bin", 1, 3, 5, 100)};

	/* 5 records less 100 bytes: records 0..3 whole, record 4 has 2973 of 3073 bytes */
	expect_err(files, 2, 1, 10, NK_EFORMAT, files[1], "not a whole number of 3073-byte records",
		   "record 4 has only 2973 bytes", NULL);
}

Test(cifar, wrong_variant_hint)
{
	const char *c100[] = {write_cifar("c100.bin", 2, 0, 7, 0)};
	const char *c10[] = {write_cifar("c10.bin", 1, 0, 7, 0)};

	expect_err(c100, 1, 1, 10, NK_EFORMAT, c100[0], "3073-byte records",
		   "set \"label_bytes\": 2", NULL);
	expect_err(c10, 1, 2, 100, NK_EFORMAT, c10[0], "3074-byte records",
		   "set \"label_bytes\": 1", NULL);
}

Test(cifar, empty_file)
{
	const char *files[] = {write_cifar("empty.bin", 1, 0, 0, 0)};

	expect_err(files, 1, 1, 10, NK_EFORMAT, files[0], "empty file", NULL);
}

Test(cifar, missing_file)
{
	const char *files[] = {write_cifar("a.bin", 1, 0, 2, 0), tpath("nope.bin")};

	expect_err(files, 2, 1, 10, NK_ENOENT, files[1], "cannot open", NULL);
}

Test(cifar, label_out_of_range)
{
	const char *files[] = {write_cifar("a.bin", 1, 0, 4, 0), write_cifar("b.bin", 1, 4, 12, 0)};
	const char *c100[] = {write_cifar("c.bin", 2, 0, 40, 0)};

	/* labels r % 10 against 8 classes: global record 8 is record 4 of b.bin */
	expect_err(files, 2, 1, 8, NK_ERANGE, files[1], "record 4:", "label 8",
		   "out of range [0, 8)", NULL);
	/* fine labels (3 r) % 100 against 50 classes: record 17 has 51 */
	expect_err(c100, 1, 2, 50, NK_ERANGE, c100[0], "record 17:", "fine label 51", NULL);
}

Test(cifar, bad_arguments)
{
	const char *files[] = {write_cifar("a.bin", 1, 0, 2, 0)};

	expect_err(files, 1, 3, 10, NK_EINVAL, files[0], "label bytes", NULL);
	expect_err(files, 0, 1, 10, NK_EINVAL, "0 files", NULL);
	expect_err(files, 1, 1, 300, NK_EINVAL, files[0], "300 classes", NULL);
}
