/* Image-folder reader: resize and channel conversion against hand-computed values, class mapping,
 * pixels from PNG/BMP/JPEG written here, skipped and refused files, and each folder mistake. */
#include "tests/ds_test.h"

#include <stdlib.h>
#include <strings.h>

#include <stb/stb_image_write.h>

TestSuite(images, .init = ds_test_setup, .fini = ds_test_teardown);

/* ---- resize ---- */

static void resize_check(const uint8_t *src, int sh, int sw, int c, int dh, int dw,
			 const uint8_t *want)
{
	uint8_t out[256];

	cr_assert_leq(c * dh * dw, 256);
	cr_assert_eq(ds_resize(src, sh, sw, c, out, dh, dw), 0);
	for (int i = 0; i < c * dh * dw; i++)
		cr_assert_eq(out[i], want[i], "%dx%dx%d -> %dx%d: element %d is %d, want %d", sh, sw,
			     c, dh, dw, i, out[i], want[i]);
}

Test(images, resize_enlarge_is_bilinear)
{
	/* centres of 4 outputs over 2 inputs at 0.25, 0.75, 1.25, 1.75 input pixels: the ends
	 * clamp, the middle ones are 3:1 and 1:3 blends */
	resize_check((uint8_t[]){0, 100}, 1, 2, 1, 1, 4, (uint8_t[]){0, 25, 75, 100});
	resize_check((uint8_t[]){0, 100}, 2, 1, 1, 4, 1, (uint8_t[]){0, 25, 75, 100});
	/* both ways: rows as above, then each column the same */
	resize_check((uint8_t[]){0, 100, 100, 200}, 2, 2, 1, 4, 4, (uint8_t[]){
		0, 25, 75, 100,  25, 50, 100, 125,  75, 100, 150, 175,  100, 125, 175, 200});
	/* rounding to nearest: 0.25 -> 0, 0.75 -> 1 */
	resize_check((uint8_t[]){0, 1}, 1, 2, 1, 1, 4, (uint8_t[]){0, 0, 1, 1});
}

Test(images, resize_shrink_covers_every_pixel)
{
	/* 4 -> 2: output 0 centred at input 1.0 with half-width 2: weights 3/4, 3/4, 1/4 (input
	 * centres 0.5, 1.5, 2.5) normalised by 7/4, i.e. 3/7, 3/7, 1/7 */
	resize_check((uint8_t[]){0, 70, 140, 210}, 1, 4, 1, 1, 2, (uint8_t[]){50, 160});
	/* 3 -> 1: weights 2/3, 1, 2/3 -> 2/7, 3/7, 2/7 */
	resize_check((uint8_t[]){0, 70, 140}, 1, 3, 1, 1, 1, (uint8_t[]){70});
	resize_check((uint8_t[]){70, 0, 140}, 3, 1, 1, 1, 1, (uint8_t[]){60});
}

Test(images, resize_interleaved_to_planar)
{
	/* 1 x 2 RGB: same size copies planes out; enlarged, each channel on its own */
	resize_check((uint8_t[]){1, 2, 3, 4, 5, 6}, 1, 2, 3, 1, 2, (uint8_t[]){1, 4, 2, 5, 3, 6});
	resize_check((uint8_t[]){0, 200, 8, 100, 0, 8}, 1, 2, 3, 1, 4, (uint8_t[]){
		0, 25, 75, 100,  200, 150, 50, 0,  8, 8, 8, 8});
}

/* ---- folders ---- */

/* A w x h image with comp channels, pixel (x, y) channel k = base + 10 y + 3 x + 40 k. */
static void image(uint8_t *px, int w, int h, int comp, int base)
{
	for (int y = 0; y < h; y++)
		for (int x = 0; x < w; x++)
			for (int k = 0; k < comp; k++)
				px[(y * w + x) * comp + k] = (uint8_t)(base + 10 * y + 3 * x + 40 * k);
}

/* Write an image file (kind by extension) with the pattern above. */
static void write_image(const char *rel, int w, int h, int comp, int base)
{
	uint8_t px[64 * 64 * 4];
	const char *path = tpath("%s", rel), *ext = strrchr(rel, '.') + 1;
	int ok;

	image(px, w, h, comp, base);
	if (strcasecmp(ext, "png") == 0)
		ok = stbi_write_png(path, w, h, comp, px, w * comp);
	else if (strcasecmp(ext, "bmp") == 0)
		ok = stbi_write_bmp(path, w, h, comp, px);
	else if (strcasecmp(ext, "tga") == 0)
		ok = stbi_write_tga(path, w, h, comp, px);
	else
		ok = stbi_write_jpg(path, w, h, comp, px, 100);
	cr_assert(ok, "cannot write %s", path);
}

static struct ds *load(const char *dir, int c, int h, int w, int classes, int strict)
{
	struct ds_images_cfg cfg = {.c = c, .h = h, .w = w, .classes = classes, .strict = strict};
	char err[NK_ERR_LEN] = "";
	struct ds *d = NULL;
	int rc = ds_images_load(&d, tpath("%s", dir), &cfg, err);

	cr_assert_eq(rc, 0, "rc %d: %s", rc, err);
	return d;
}

static void expect_err(const char *dir, const char *class_dir, int classes, int strict, int code,
		       ...)
{
	struct ds_images_cfg cfg = {.c = 3, .h = 4, .w = 4, .classes = classes, .strict = strict,
				    .class_dir = class_dir ? tpath("%s", class_dir) : NULL};
	char err[NK_ERR_LEN] = "";
	struct ds *d = (struct ds *)1;
	int rc = ds_images_load(&d, tpath("%s", dir), &cfg, err);
	va_list ap;

	cr_assert_eq(rc, code, "rc %d (%s), expected %d; err: %s", rc, nk_strerror(rc), code, err);
	cr_assert_null(d);
	va_start(ap, code);
	check_words(err, ap);
	va_end(ap);
}

/* Plane k of sample i equals the pattern (comp channels, same size) exactly. */
static void check_pattern(const struct ds *d, int i, int k, int base, int tol)
{
	for (int y = 0; y < d->h; y++)
		for (int x = 0; x < d->w; x++) {
			int got = d->x[(((size_t)i * d->c + k) * d->h + y) * d->w + x];
			int want = (uint8_t)(base + 10 * y + 3 * x + 40 * k);
			cr_assert(abs(got - want) <= tol, "sample %d channel %d (%d, %d): %d, want %d",
				  i, k, x, y, got, want);
		}
}

Test(images, classes_sorted_and_pixels_exact)
{
	tmkdir("tr/dog");
	tmkdir("tr/ant");
	tmkdir("tr/cat");
	tmkdir("tr/.thumbs");
	write_image("tr/dog/b.png", 6, 5, 3, 1);
	write_image("tr/dog/a.BMP", 6, 5, 3, 2);
	write_image("tr/ant/x.png", 6, 5, 3, 3);
	write_image("tr/cat/q.jpg", 6, 5, 3, 4);
	write_image("tr/cat/r.tga", 6, 5, 3, 5);
	write_image("tr/.thumbs/z.png", 6, 5, 3, 6);
	twrite(tpath("tr/cat/notes.txt"), "hello", 5);
	struct ds *d = load("tr", 3, 5, 6, 3, 0);
	cr_assert_eq(d->n, 5);
	cr_assert_str_eq(d->names[0], "ant");
	cr_assert_str_eq(d->names[1], "cat");
	cr_assert_str_eq(d->names[2], "dog");
	/* ant/x, cat/q (jpeg), cat/r, dog/a, dog/b: by class, then by file name */
	const int labels[] = {0, 1, 1, 2, 2}, bases[] = {3, 4, 5, 2, 1}, tol[] = {0, 8, 0, 0, 0};
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(d->y[i], labels[i], "label of sample %d", i);
		for (int k = 0; k < 3; k++)
			check_pattern(d, i, k, bases[i], tol[i]);
	}
	cr_assert_eq(d->skipped, 0);
	ds_free(d);
}

Test(images, channel_conversion)
{
	const uint8_t rgb[] = {200, 100, 50, 10, 20, 30}, grey[] = {7, 250};

	tmkdir("c/a");
	tmkdir("c/b");
	cr_assert(stbi_write_png(tpath("c/a/rgb.png"), 2, 1, 3, rgb, 6));
	cr_assert(stbi_write_png(tpath("c/b/grey.png"), 2, 1, 1, grey, 2));
	struct ds *d = load("c", 1, 1, 2, 2, 0);
	/* RGB to grey: (77 r + 150 g + 29 b) >> 8 */
	cr_assert_eq(d->x[0], (200 * 77 + 100 * 150 + 50 * 29) >> 8);
	cr_assert_eq(d->x[0], 124);
	cr_assert_eq(d->x[1], 18);
	cr_assert_eq(d->x[2], 7);
	cr_assert_eq(d->x[3], 250);
	ds_free(d);
	d = load("c", 3, 1, 2, 2, 0);
	/* planar R, G, B; grey copied into all three */
	const uint8_t want[] = {200, 10, 100, 20, 50, 30, 7, 250, 7, 250, 7, 250};
	for (int i = 0; i < 12; i++)
		cr_assert_eq(d->x[i], want[i], "element %d: %d, want %d", i, d->x[i], want[i]);
	ds_free(d);
}

Test(images, resized_to_the_configured_size)
{
	uint8_t src[2 * 2] = {0, 100, 100, 200}, flat[64 * 48];

	tmkdir("r/a");
	tmkdir("r/b");
	cr_assert(stbi_write_png(tpath("r/a/s.png"), 2, 2, 1, src, 2));
	memset(flat, 77, sizeof flat);
	cr_assert(stbi_write_png(tpath("r/b/big.png"), 64, 48, 1, flat, 64));
	struct ds *d = load("r", 1, 4, 4, 2, 0);
	const uint8_t want[] = {0, 25, 75, 100, 25, 50, 100, 125, 75, 100, 150, 175, 100, 125,
				175, 200};
	for (int i = 0; i < 16; i++)
		cr_assert_eq(d->x[i], want[i], "pixel %d: %d, want %d", i, d->x[i], want[i]);
	for (int i = 16; i < 32; i++)
		cr_assert_eq(d->x[i], 77, "shrunk pixel %d: %d", i - 16, d->x[i]);
	ds_free(d);
}

Test(images, undecodable_skipped_and_noted)
{
	tmkdir("u/a");
	tmkdir("u/b");
	write_image("u/a/1.png", 4, 4, 3, 0);
	write_image("u/b/2.png", 4, 4, 3, 9);
	twrite(tpath("u/a/broken.png"), "\x89PNG\r\n\x1a\nnot really", 18);
	twrite(tpath("u/b/empty.jpg"), "", 0);
	struct ds *d = load("u", 3, 4, 4, 2, 0);
	cr_assert_eq(d->n, 2);
	cr_assert_eq(d->skipped, 2);
	cr_assert_eq(d->nnotes, 2);
	cr_assert(strstr(d->notes[0], tpath("u/a/broken.png")), "%s", d->notes[0]);
	cr_assert(strstr(d->notes[0], "cannot decode"), "%s", d->notes[0]);
	cr_assert(strstr(d->notes[1], tpath("u/b/empty.jpg")), "%s", d->notes[2]);
	cr_assert_eq(d->y[0], 0);
	cr_assert_eq(d->y[1], 1);
	check_pattern(d, 1, 2, 9, 0);
	ds_free(d);
	expect_err("u", NULL, 2, 1, NK_EFORMAT, tpath("u/a/broken.png"), "cannot decode", "strict",
		   NULL);
}

Test(images, nothing_decodes)
{
	tmkdir("n/a");
	tmkdir("n/b");
	twrite(tpath("n/a/x.png"), "junk", 4);
	twrite(tpath("n/b/y.gif"), "junk", 4);
	expect_err("n", NULL, 2, 0, NK_EFORMAT, tpath("n"), "none of the 2 images", "x.png", NULL);
}

Test(images, folder_mistakes)
{
	tmkdir("e/a");
	tmkdir("e/b");
	write_image("e/a/1.png", 4, 4, 3, 0);
	twrite(tpath("e/b/readme.txt"), "x", 1);
	expect_err("e", NULL, 2, 0, NK_ENOENT, tpath("e/b"), "no images", ".png", NULL);
	tmkdir("flat");
	write_image("flat/1.png", 4, 4, 3, 0);
	expect_err("flat", NULL, 2, 0, NK_ENOENT, tpath("flat"), "no class folders", NULL);
	expect_err("missing", NULL, 2, 0, NK_ENOENT, tpath("missing"), "cannot open folder", NULL);
	write_image("e/b/2.png", 4, 4, 3, 0);
	expect_err("e", NULL, 10, 0, NK_EINVAL, tpath("e"), "2 class folders (a, b)",
		   "data.classes is 10", "\"classes\": 2", NULL);
}

Test(images, test_split_uses_training_classes)
{
	tmkdir("tr/a");
	tmkdir("tr/b");
	tmkdir("tr/c");
	tmkdir("te/c");
	write_image("tr/a/1.png", 4, 4, 3, 0);
	write_image("tr/b/1.png", 4, 4, 3, 0);
	write_image("tr/c/1.png", 4, 4, 3, 0);
	write_image("te/c/1.png", 4, 4, 3, 0);
	struct ds_images_cfg cfg = {.c = 3, .h = 4, .w = 4, .classes = 3,
				    .class_dir = tpath("tr")};
	char err[NK_ERR_LEN] = "";
	struct ds *d;
	cr_assert_eq(ds_images_load(&d, tpath("te"), &cfg, err), 0, "%s", err);
	cr_assert_eq(d->n, 1);
	cr_assert_eq(d->y[0], 2, "class c keeps its training index");
	cr_assert_str_eq(d->names[2], "c");
	ds_free(d);
	tmkdir("te/zebra");
	write_image("te/zebra/1.png", 4, 4, 3, 0);
	expect_err("te", "tr", 3, 0, NK_EINVAL, tpath("te/zebra"), "class 'zebra'",
		   "training folder", "a, b, c", NULL);
}

Test(images, through_ds_load_pair)
{
	struct chain_data cd = {.format = "images", .ntrain = 1, .ntest = 1, .has_test = 1,
				.classes = 2, .shape = {1, 3, 3}};
	char err[NK_ERR_LEN] = "";
	struct ds *tr, *te;

	tmkdir("p/tr/x");
	tmkdir("p/tr/y");
	tmkdir("p/te/y");
	for (int i = 0; i < 5; i++) {
		char name[64];
		snprintf(name, sizeof name, "p/tr/%s/%d.png", i % 2 ? "y" : "x", i);
		write_image(name, 3, 3, 1, 10 * i);
	}
	write_image("p/te/y/0.bmp", 3, 3, 1, 0);
	snprintf(cd.train[0], CHAIN_PATH_LEN, "%s", tpath("p/tr"));
	snprintf(cd.test[0], CHAIN_PATH_LEN, "%s", tpath("p/te"));
	cr_assert_eq(ds_load_pair(&tr, &te, &cd, err), 0, "%s", err);
	cr_assert_eq(tr->n, 5);
	cr_assert_eq(te->n, 1);
	cr_assert_eq(te->y[0], 1);
	cr_assert_eq(tr->c, 1);
	cr_assert_eq(tr->h, 3);
	ds_free(tr);
	ds_free(te);
}

/* An RLE TGA header of w x h with one run packet: stb_image would allocate w x h pixels and fill
 * what the file lacks with zeros. */
static void write_tga_bomb(const char *rel, int w, int h)
{
	uint8_t t[22] = {0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, (uint8_t)w, (uint8_t)(w >> 8),
			 (uint8_t)h, (uint8_t)(h >> 8), 24, 0, 0xff, 1, 2, 3};
	twrite(tpath("%s", rel), t, sizeof t);
}

/* A 24-bit BMP header of w x h (h < 0: top-down rows) and a few pixel bytes. */
static void write_bmp_bomb(const char *rel, int32_t w, int32_t h)
{
	uint8_t b[54 + 6] = {'B', 'M', 60, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0};
	for (int i = 0; i < 4; i++) {
		b[18 + i] = (uint8_t)((uint32_t)w >> (8 * i));
		b[22 + i] = (uint8_t)((uint32_t)h >> (8 * i));
	}
	b[26] = 1;  /* planes */
	b[28] = 24; /* bits per pixel */
	twrite(tpath("%s", rel), b, sizeof b);
}

/* A 2 x 2 PNG header whose next chunk declares len bytes (and holds 4). */
static void write_png_overlong(const char *rel, uint32_t len)
{
	uint8_t p[8 + 25 + 16] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H',
				  'D', 'R', 0, 0, 0, 2, 0, 0, 0, 2, 8, 2, 0, 0, 0, 0, 0, 0, 0};
	for (int i = 0; i < 4; i++)
		p[33 + i] = (uint8_t)(len >> (24 - 8 * i));
	memcpy(p + 37, "IDAT", 4);
	twrite(tpath("%s", rel), p, sizeof p);
}

Test(images, headers_declaring_more_than_the_file_holds_are_skipped)
{
	/* TGA and BMP files of 22 and 60 bytes declaring over 32 Mi pixels, or more than 1 Mi +
	 * 4096 per byte of file (data/images.c: IMAGES_MAX_PIXELS), once cost up to 300 MB and
	 * seconds each (stb_image fills what they lack with zeros), and a PNG chunk declaring
	 * 1.9 GB had stb_image reserve them; they are skipped and noted before anything is
	 * decoded. The BMPs' heights are negative: top-down rows. */
	static const struct {
		const char *file, *why;
	} bad[] = { /* in name order, as noted */
		{"chunk.png", "a PNG chunk runs past the end"},
		{"huge.tga", "larger than 32 Mi pixels"},
		{"tall.bmp", "larger than 32 Mi pixels"},
		{"tall2.bmp", "more pixels than the file can hold"},
		{"wide.tga", "more pixels than the file can hold"},
	};
	tmkdir("big/a");
	write_image("big/a/1.png", 4, 4, 3, 0);
	write_png_overlong("big/a/chunk.png", 0x73760012);
	write_tga_bomb("big/a/huge.tga", 60000, 1000);
	write_bmp_bomb("big/a/tall.bmp", 6, -16646149); /* 100 Mi pixels */
	write_bmp_bomb("big/a/tall2.bmp", 6, -700000);  /* 4 Mi pixels in 60 bytes */
	write_tga_bomb("big/a/wide.tga", 4000, 1000);
	struct ds *d = load("big", 3, 4, 4, 1, 0);
	cr_assert_eq(d->n, 1);
	cr_assert_eq(d->skipped, 5);
	for (int i = 0; i < 5; i++) {
		char rel[64];
		snprintf(rel, sizeof rel, "big/a/%s", bad[i].file);
		cr_assert(strstr(d->notes[i], tpath("%s", rel)) && strstr(d->notes[i], bad[i].why),
			  "%s", d->notes[i]);
	}
	check_pattern(d, 0, 1, 0, 0);
	ds_free(d);
	/* a real image that large still decodes: a black 1200 x 1000 PNG holds 1.2 Mi pixels in a
	 * few KB */
	uint8_t *px = calloc(1200 * 1000, 3);
	cr_assert_not_null(px);
	cr_assert(stbi_write_png(tpath("big/a/real.png"), 1200, 1000, 3, px, 1200 * 3));
	free(px);
	for (int i = 0; i < 5; i++)
		remove(tpath("big/a/%s", bad[i].file));
	d = load("big", 3, 4, 4, 1, 0);
	cr_assert_eq(d->n, 2);
	cr_assert_eq(d->skipped, 0);
	ds_free(d);
}
