/* CSV reader: values, labels and storage (bytes or floats), header and label columns, shape; one
 * distinct error per kind of bad row, each naming the file and the line. */
#include "tests/ds_test.h"

#include <math.h>
#include <stdlib.h>
#include <sys/resource.h>

TestSuite(csv, .init = ds_test_setup, .fini = ds_test_teardown);

static const char *write_csv(const char *name, const char *text)
{
	const char *path = tpath("%s", name);
	twrite(path, text, strlen(text));
	return path;
}

static struct ds *load(const char *path, const struct ds_csv_cfg *cfg)
{
	char err[NK_ERR_LEN] = "";
	struct ds *d = NULL;
	int rc = ds_csv_load(&d, path, cfg, err);

	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	return d;
}

static void expect_err(const char *path, const struct ds_csv_cfg *cfg, int code, ...)
{
	char err[NK_ERR_LEN] = "";
	struct ds *d = (struct ds *)1;
	int rc = ds_csv_load(&d, path, cfg, err);
	va_list ap;

	cr_assert_eq(rc, code, "rc %d (%s), expected %d; err: %s", rc, nk_strerror(rc), code, err);
	cr_assert_null(d);
	va_start(ap, code);
	check_words(err, ap);
	va_end(ap);
}

static const struct ds_csv_cfg plain = {.classes = 3, .label_col = -1};

Test(csv, bytes_then_label)
{
	const char *p = write_csv("a.csv", "0,1,255,2\n7, 8 ,9,0\r\n\n  \n10,11,12,1");
	struct ds *d = load(p, &plain);
	const uint8_t want[] = {0, 1, 255, 7, 8, 9, 10, 11, 12};

	cr_assert_eq(d->n, 3);
	cr_assert_eq(d->c, 1);
	cr_assert_eq(d->h, 1);
	cr_assert_eq(d->w, 3);
	cr_assert_not_null(d->x, "integers 0..255 are kept as bytes");
	cr_assert_null(d->xf);
	for (int i = 0; i < 9; i++)
		cr_assert_eq(d->x[i], want[i]);
	cr_assert_eq(d->y[0], 2);
	cr_assert_eq(d->y[1], 0);
	cr_assert_eq(d->y[2], 1);
	ds_free(d);
}

Test(csv, floats_when_not_bytes)
{
	/* the third row turns storage to floats; earlier values keep their value (not / 255) */
	const char *p = write_csv("f.csv", "1,2,0\n3,4,1\n-0.5,1e3,2\n256,\"7\",0\n");
	struct ds *d = load(p, &plain);
	const float want[] = {1, 2, 3, 4, -0.5f, 1000, 256, 7};

	cr_assert_eq(d->n, 4);
	cr_assert_null(d->x);
	cr_assert_not_null(d->xf);
	for (int i = 0; i < 8; i++)
		cr_assert_float_eq(d->xf[i], want[i], 1e-6, "value %d: %g", i, d->xf[i]);
	cr_assert_eq(d->y[2], 2);
	ds_free(d);
	struct ds_csv_cfg fl = plain;
	fl.features = FEAT_FLOAT;
	p = write_csv("g.csv", "1,2,0\n3,4,1\n");
	d = load(p, &fl);
	cr_assert_not_null(d->xf, "features \"float\" keeps bytes as floats");
	cr_assert_float_eq(d->xf[3], 4, 1e-6);
	ds_free(d);
}

Test(csv, header_and_label_columns)
{
	const char *p = write_csv("h.csv", "a, \"label\" ,b,c\n5,1,6,7\n8,2,9,10\n");
	struct ds_csv_cfg cfg = {.classes = 3, .header = 1, .label_col = -1, .label_name = "label"};
	struct ds *d = load(p, &cfg);

	cr_assert_eq(d->n, 2);
	cr_assert_eq(d->w, 3);
	cr_assert_eq(d->x[0], 5);
	cr_assert_eq(d->x[1], 6);
	cr_assert_eq(d->x[5], 10);
	cr_assert_eq(d->y[0], 1);
	cr_assert_eq(d->y[1], 2);
	ds_free(d);
	cfg.label_name = NULL;
	cfg.label_col = 0;
	p = write_csv("h0.csv", "y,a,b\n2,5,6\n");
	d = load(p, &cfg);
	cr_assert_eq(d->y[0], 2);
	cr_assert_eq(d->x[0], 5);
	cr_assert_eq(d->x[1], 6);
	ds_free(d);
}

Test(csv, shape)
{
	char text[512];
	size_t len = 0;

	for (int r = 0; r < 2; r++) {
		for (int j = 0; j < 12; j++)
			len += snprintf(text + len, sizeof text - len, "%d,", 20 * r + j);
		len += snprintf(text + len, sizeof text - len, "%d\n", r);
	}
	struct ds_csv_cfg cfg = {.c = 3, .h = 2, .w = 2, .classes = 2, .label_col = -1};
	struct ds *d = load(write_csv("s.csv", text), &cfg);
	cr_assert_eq(d->n, 2);
	cr_assert_eq(d->c, 3);
	cr_assert_eq(d->h, 2);
	cr_assert_eq(d->w, 2);
	cr_assert_eq(d->x[12 + 11], 31);
	cr_assert_eq(d->y[1], 1);
	ds_free(d);
	cfg.c = 2;
	expect_err(write_csv("s2.csv", text), &cfg, NK_ESHAPE, "s2.csv:1:", "12 features",
		   "[2, 2, 2]", "needs 8", NULL);
}

Test(csv, bad_rows_by_line)
{
	const char *p = write_csv("r.csv", "1,2,0\n\n3,4\n");
	expect_err(p, &plain, NK_EFORMAT, p, ":3:", "expected 3 fields, found 2", NULL);
	p = write_csv("n.csv", "1,2,0\n1,x2,0\n");
	expect_err(p, &plain, NK_EFORMAT, ":2:", "field 2 ('x2') is not a number", NULL);
	p = write_csv("e.csv", "1,,0\n");
	expect_err(p, &plain, NK_EFORMAT, ":1:", "field 2 ('') is not a number", NULL);
	p = write_csv("nan.csv", "1,nan,0\n");
	expect_err(p, &plain, NK_EFORMAT, ":1:", "field 2", "not a number", NULL);
	p = write_csv("hd.csv", "a,b,label\n1,2,0\n");
	expect_err(p, &plain, NK_EFORMAT, ":1:", "field 1 ('a')", "data.header", NULL);
}

Test(csv, bad_labels)
{
	const char *p = write_csv("l.csv", "1,2,0\n1,2,2.5\n");
	expect_err(p, &plain, NK_EFORMAT, p, ":2:", "label '2.5'", "not a whole number", NULL);
	p = write_csv("r.csv", "1,2,0\n\n1,2,1\n1,2,3\n");
	expect_err(p, &plain, NK_ERANGE, ":4:", "label 3 out of range [0, 3)", NULL);
	p = write_csv("m.csv", "1,2,-1\n");
	expect_err(p, &plain, NK_ERANGE, ":1:", "label -1 out of range", NULL);
}

Test(csv, bytes_required)
{
	struct ds_csv_cfg cfg = plain;
	cfg.features = FEAT_BYTES;
	const char *p = write_csv("b.csv", "1,2,0\n1,300,0\n");
	expect_err(p, &cfg, NK_ERANGE, ":2:", "field 2 ('300') is not a byte", "\"bytes\"", NULL);
}

Test(csv, file_level_mistakes)
{
	struct ds_csv_cfg hdr = {.classes = 3, .header = 1, .label_col = -1, .label_name = "y"};
	const char *p = write_csv("empty.csv", "\n \n");
	expect_err(p, &plain, NK_EFORMAT, p, "no data rows", NULL);
	p = write_csv("only.csv", "a,y\n");
	expect_err(p, &hdr, NK_EFORMAT, p, "no data rows after the header", NULL);
	p = write_csv("noy.csv", "a,b\n1,2\n");
	expect_err(p, &hdr, NK_ENOENT, ":1:", "no column named 'y'", "columns: a, b", NULL);
	p = write_csv("one.csv", "1\n2\n");
	expect_err(p, &plain, NK_EFORMAT, ":1:", "at least 2 fields", NULL);
	struct ds_csv_cfg far = plain;
	far.label_col = 5;
	p = write_csv("far.csv", "1,2\n");
	expect_err(p, &far, NK_EINVAL, ":1:", "label column 5", "2 fields", NULL);
	p = tpath("missing.csv");
	expect_err(p, &plain, NK_ENOENT, p, "cannot open", NULL);
}

Test(csv, through_ds_load_pair_same_storage)
{
	/* training rows are all bytes, a test row is not: both end up as floats, values kept */
	struct chain_data cd = {.format = "csv", .ntrain = 1, .ntest = 1, .has_test = 1,
				.classes = 2, .label_col = -1, .limit = 2};
	char err[NK_ERR_LEN] = "";
	struct ds *tr, *te;

	snprintf(cd.train[0], CHAIN_PATH_LEN, "%s", write_csv("tr.csv", "1,2,0\n3,4,1\n5,6,0\n"));
	snprintf(cd.test[0], CHAIN_PATH_LEN, "%s", write_csv("te.csv", "0.5,2,1\n"));
	cr_assert_eq(ds_load_pair(&tr, &te, &cd, err), 0, "%s", err);
	cr_assert_eq(tr->n, 2, "limit");
	cr_assert_not_null(tr->xf);
	cr_assert_not_null(te->xf);
	cr_assert_float_eq(tr->xf[3], 4, 1e-6);
	cr_assert_float_eq(te->xf[0], 0.5, 1e-6);
	ds_free(tr);
	ds_free(te);
	/* a test file with another feature count is refused, naming it */
	snprintf(cd.test[0], CHAIN_PATH_LEN, "%s", write_csv("te3.csv", "1,2,3,1\n"));
	cr_assert_eq(ds_load_pair(&tr, &te, &cd, err), NK_ESHAPE, "%s", err);
	cr_assert(strstr(err, cd.test[0]) && strstr(err, "1 x 1 x 3"), "%s", err);
	cr_assert_null(tr);
	cr_assert_null(te);
}

/* One line of `fields` values (the last is the label) and then `more` lines of `tail`. */
static const char *write_wide(const char *name, int fields, const char *value, int more,
			      const char *tail)
{
	size_t cap = (size_t)fields * (strlen(value) + 1) + (size_t)more * (strlen(tail) + 1) + 8;
	char *text = malloc(cap), *p = text;

	cr_assert_not_null(text);
	for (int i = 0; i < fields; i++)
		p += sprintf(p, "%s%s", i ? "," : "", i < fields - 1 ? value : "1");
	for (int i = 0; i < more; i++)
		p += sprintf(p, "\n%s", tail);
	*p++ = '\n';
	const char *path = tpath("%s", name);
	twrite(path, text, (size_t)(p - text));
	free(text);
	return path;
}

Test(csv, reserves_a_small_multiple_of_the_file)
{
	/* One line of 50,000 fields and 49,999 blank lines is a 150 KB file that once reserved
	 * 50,000 rows of 50,000 bytes (2.5 GB). Room now follows the bytes a row needs (data/csv.c:
	 * csv_bound, at most 3 x the file): with 64 MiB to spare it loads, or fails on its bad line,
	 * never for memory. */
	const int fields = 50000, more = 49999;
	const char *blank = write_wide("blank.csv", fields, "0", more, "");
	const char *shortl = write_wide("short.csv", fields, "0", more, "0");
	const char *floats = write_wide("floats.csv", fields, "0.5", more, "");
	struct ds_csv_cfg cfg = {.classes = 2, .label_col = -1};

	cr_assert_eq(nk_test_limit_address_space(64u << 20), 0);
	struct ds *d = load(blank, &cfg);
	cr_assert_eq(d->n, 1);
	cr_assert_eq(d->w, fields - 1);
	cr_assert_eq(d->x[fields - 2], 0);
	cr_assert_eq(d->y[0], 1);
	ds_free(d);
	expect_err(shortl, &cfg, NK_EFORMAT, ":2:", "expected 50000 fields, found 1", NULL);
	d = load(floats, &cfg);
	cr_assert_eq(d->n, 1);
	cr_assert_not_null(d->xf);
	cr_assert_float_eq(d->xf[fields - 2], 0.5, 1e-6);
	ds_free(d);
}

Test(csv, a_bad_line_past_the_room_is_named)
{
	/* Three rows of 3 fields fill the room of an 18 + 4 byte file; the fourth line, shorter
	 * for its empty fields, is past it and must be refused for what it is, not stored. */
	const char *p = write_csv("past.csv", "0,0,0\n1,1,1\n2,2,2\n0,,");
	expect_err(p, &plain, NK_EFORMAT, ":4:", "field 2", "is not a number", NULL);
	p = write_csv("pastlabel.csv", "0,0,0\n1,1,1\n2,2,2\n0,1,");
	expect_err(p, &plain, NK_EFORMAT, ":4:", "field 3", "is not a number", NULL);
}
