/* Image-folder reader: DIR/<class>/<image> decoded with stb_image, converted to the configured
 * channels and resized into one buffer; classes are the sorted subfolder names. */
#include "data/ds_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <stb/stb_image.h>

static const char *const image_exts[] = {"png", "jpg", "jpeg", "bmp", "gif", "tga", "pgm", "ppm"};
#define IMAGE_EXTS ".png, .jpg, .jpeg, .bmp, .gif, .tga, .pgm, .ppm"
/* Memory bound: stb_image allocates what a header declares, and fills what a truncated file
 * lacks (TGA, BMP, PNM) or a small file expands to (RLE, GIF canvases) with zeros. An image is
 * decoded only if it has at most IMAGES_MAX_PIXELS pixels, and at most IMAGES_FREE_PIXELS plus
 * IMAGES_PIXELS_PER_BYTE per byte of its file: no format packs more (deflate gives at most 1032
 * bytes per byte, LZW 4096 bytes per 12-bit code, a JPEG block of 64 pixels at least 2 bits).
 * So one image costs at most about 4 (decoding) + 4 (converting) bytes per pixel at once: a
 * 100-byte file about 12 MB, never more than 270 MB. stb_image also reserves a PNG chunk's
 * declared length before reading it, so a PNG whose chunk runs past the end of its file is
 * refused first (no good PNG has one). */
#define IMAGES_MAX_PIXELS (1ll << 25)      /* 32 Mi pixels: 8192 x 4096 */
#define IMAGES_FREE_PIXELS (1ll << 20)
#define IMAGES_PIXELS_PER_BYTE 4096ll

struct names {
	char **v;
	int n, cap;
};

struct item {
	char *path;
	int label;
};

static void names_free(struct names *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

static int names_add(struct names *s, const char *name)
{
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 16;
		char **v = realloc(s->v, (size_t)cap * sizeof *v);
		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	if (!(s->v[s->n] = strdup(name)))
		return -1;
	s->n++;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *path_cat(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);
	if (p)
		snprintf(p, a + b + 2, "%s%s%s", dir, a && dir[a - 1] == '/' ? "" : "/", name);
	return p;
}

static int image_ext(const char *name)
{
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof image_exts / sizeof image_exts[0]; i++)
		if (strcasecmp(dot + 1, image_exts[i]) == 0)
			return 1;
	return 0;
}

/* The sorted names in dir of subfolders (dirs 1) or of image files (dirs 0); hidden ones and
 * other files are left out. */
static int list_dir(const char *dir, int dirs, struct names *out, char *err)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (!dp)
		return nk_errf(err, errno == ENOENT ? NK_ENOENT : NK_EIO, "%s: cannot open folder: %s",
			       dir, strerror(errno));
	while (rc == 0 && (e = readdir(dp))) {
		struct stat st;
		char *p;
		if (e->d_name[0] == '.' || (!dirs && !image_ext(e->d_name)))
			continue;
		if (!(p = path_cat(dir, e->d_name)))
			rc = nk_errf(err, NK_ENOMEM, "%s: out of memory", dir);
		else if (stat(p, &st) == 0 && (dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) &&
			 names_add(out, e->d_name) != 0)
			rc = nk_errf(err, NK_ENOMEM, "%s: out of memory", dir);
		free(p);
	}
	closedir(dp);
	if (rc == 0 && out->n > 1)
		qsort(out->v, (size_t)out->n, sizeof *out->v, cmp_name);
	return rc;
}

/* "a, b, c" (cut short to fit) for messages. */
static const char *name_list(const struct names *s, char *buf, size_t n)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < s->n && len < n; i++)
		len += snprintf(buf + len, n - len, "%s%s", i ? ", " : "", s->v[i]);
	if (len >= n && n > 4)
		memcpy(buf + n - 4, "...", 4);
	return buf;
}

/* The classes: subfolders of the folder that defines them, as many as the chain declares. */
static int images_classes(const char *dir, int classes, struct names *cls, char *err)
{
	char list[256];
	int rc = list_dir(dir, 1, cls, err);

	if (rc)
		return rc;
	if (cls->n == 0)
		return nk_errf(err, NK_ENOENT, "%s: no class folders (expected %s/<class>/<image>)",
			       dir, dir);
	if (cls->n != classes)
		return nk_errf(err, NK_EINVAL, "%s: %d class folder%s (%s) but data.classes is %d: set "
			       "\"classes\": %d", dir, cls->n, cls->n == 1 ? "" : "s",
			       name_list(cls, list, sizeof list), classes, cls->n);
	return 0;
}

/* Image files of one class folder appended to items, with label. */
static int images_of_class(const char *folder, int label, struct item **items, int *n, int *cap,
			   char *err)
{
	struct names files = {0};
	int rc = list_dir(folder, 0, &files, err);

	if (rc == 0 && files.n == 0)
		rc = nk_errf(err, NK_ENOENT, "%s: no images (" IMAGE_EXTS ")", folder);
	for (int i = 0; rc == 0 && i < files.n; i++) {
		if (*n == *cap) {
			int nc = *cap ? 2 * *cap : 256;
			struct item *v = realloc(*items, (size_t)nc * sizeof *v);
			if (!v) {
				rc = nk_errf(err, NK_ENOMEM, "%s: out of memory", folder);
				break;
			}
			*items = v;
			*cap = nc;
		}
		if (!((*items)[*n].path = path_cat(folder, files.v[i]))) {
			rc = nk_errf(err, NK_ENOMEM, "%s: out of memory", folder);
			break;
		}
		(*items)[(*n)++].label = label;
	}
	names_free(&files);
	return rc;
}

/* Every image of dir's class folders; each folder must be one of the classes cls. */
static int images_list(const char *dir, const char *class_dir, const struct names *cls,
		       struct item **items, int *n, char *err)
{
	struct names sub = {0};
	char list[256];
	int rc = list_dir(dir, 1, &sub, err), cap = 0;

	if (rc == 0 && sub.n == 0)
		rc = nk_errf(err, NK_ENOENT, "%s: no class folders (expected %s/<class>/<image>)", dir,
			     dir);
	for (int i = 0; rc == 0 && i < sub.n; i++) {
		char **hit = bsearch(&sub.v[i], cls->v, (size_t)cls->n, sizeof *cls->v, cmp_name);
		char *folder = path_cat(dir, sub.v[i]);
		if (!hit)
			rc = nk_errf(err, NK_EINVAL, "%s/%s: class '%s' is not among the training "
				     "folder's (%s: %s)", dir, sub.v[i], sub.v[i], class_dir,
				     name_list(cls, list, sizeof list));
		else if (!folder)
			rc = nk_errf(err, NK_ENOMEM, "%s: out of memory", dir);
		else
			rc = images_of_class(folder, (int)(hit - cls->v), items, n, &cap, err);
		free(folder);
	}
	names_free(&sub);
	return rc;
}

/* 1 when f (size bytes) is a PNG with a chunk that runs past its end (length, type, data, CRC). */
static int png_overlong(FILE *f, long long size)
{
	static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	uint8_t h[8];
	long long at = 8;

	if (fread(h, 1, 8, f) != 8 || memcmp(h, sig, 8) != 0)
		return 0;
	while (at + 8 <= size && fseek(f, at, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8) {
		long long len = (long long)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		if (at + 12 + len > size)
			return 1;
		if (memcmp(h + 4, "IEND", 4) == 0)
			break;
		at += 12 + len;
	}
	return 0;
}

/* NULL when the image at path may be decoded (see IMAGES_MAX_PIXELS), else why not. A header
 * that stb_image cannot read is left to stbi_load to refuse. */
static const char *images_size_check(const char *path)
{
	struct stat st;
	int w, h, comp, bad;
	FILE *f = fopen(path, "rb");

	if (!f)
		return NULL;
	if (fstat(fileno(f), &st) != 0) {
		fclose(f);
		return NULL;
	}
	bad = png_overlong(f, (long long)st.st_size);
	fclose(f);
	if (bad)
		return "a PNG chunk runs past the end of the file";
	if (!stbi_info(path, &w, &h, &comp))
		return NULL;
	/* stbi_info gives a top-down BMP's height negative, as its header has it */
	long long px = llabs((long long)w) * llabs((long long)h);
	if (px > IMAGES_MAX_PIXELS)
		return "larger than 32 Mi pixels (8192 x 4096)";
	if (px > IMAGES_FREE_PIXELS + IMAGES_PIXELS_PER_BYTE * (long long)st.st_size)
		return "the header declares more pixels than the file can hold";
	return NULL;
}

/* Decode item i into slot i of d; NULL or the reason it failed. */
static const char *images_decode_one(struct ds *d, const struct item *it, size_t slot)
{
	size_t sample = (size_t)d->c * d->h * d->w;
	int w, h, comp;
	const char *big = images_size_check(it->path);
	if (big)
		return big;
	uint8_t *px = stbi_load(it->path, &w, &h, &comp, d->c);

	if (!px) {
		const char *why = stbi_failure_reason();
		return why ? why : "unknown reason";
	}
	int rc = ds_resize(px, h, w, d->c, d->x + slot * sample, d->h, d->w);
	stbi_image_free(px);
	return rc ? "out of memory while resizing" : NULL;
}

/* Slide the decoded samples together over the gaps the failed ones left; note each failure. */
static int images_compact(struct ds *d, const struct item *items, const char **why, int n)
{
	size_t sample = (size_t)d->c * d->h * d->w;
	int k = 0;

	for (int i = 0; i < n; i++) {
		if (why[i]) {
			ds_note(d, "%s: cannot decode (%s): skipped", items[i].path, why[i]);
			continue;
		}
		if (k != i)
			memcpy(d->x + (size_t)k * sample, d->x + (size_t)i * sample, sample);
		d->y[k++] = (uint8_t)items[i].label;
	}
	if (k > 0 && k < n) { /* give back the room of the skipped files */
		uint8_t *x = realloc(d->x, (size_t)k * sample);
		d->x = x ? x : d->x;
	}
	return k;
}

/* Decode items into d, in parallel (decoding dominates); what does not decode is skipped and
 * noted, or, if strict, refused. */
static int images_decode(struct ds *d, const struct item *items, int n, int strict,
			 const char *dir, char *err)
{
	const char **why = calloc((size_t)n, sizeof *why);
	int k, first = -1;

	if (!why)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory", dir);
#pragma omp parallel for schedule(dynamic, 8)
	for (int i = 0; i < n; i++)
		why[i] = images_decode_one(d, &items[i], (size_t)i);
	for (int i = n - 1; i >= 0; i--)
		first = why[i] ? i : first;
	if (first >= 0 && strict) {
		nk_errf(err, NK_EFORMAT, "%s: cannot decode (%s) and data.strict is set",
			items[first].path, why[first]);
		free(why);
		return NK_EFORMAT;
	}
	k = images_compact(d, items, why, n);
	if (k == 0)
		nk_errf(err, NK_EFORMAT, "%s: none of the %d images could be decoded (first: %.300s: "
			"%s)", dir, n, items[first].path, why[first]);
	free(why);
	if (k == 0)
		return NK_EFORMAT;
	d->n = k;
	return 0;
}

/* Hand the class names over to d. */
static void images_names(struct ds *d, struct names *cls)
{
	d->names = cls->v;
	cls->v = NULL;
	cls->n = cls->cap = 0;
}

int ds_images_load(struct ds **out, const char *dir, const struct ds_images_cfg *cfg,
		   char err[NK_ERR_LEN])
{
	const char *cdir = cfg->class_dir ? cfg->class_dir : dir;
	struct names cls = {0};
	struct item *items = NULL;
	struct ds *d = NULL;
	int n = 0, rc;

	*out = NULL;
	if ((cfg->c != 1 && cfg->c != 3) || cfg->h < 1 || cfg->w < 1)
		return nk_errf(err, NK_EINVAL, "%s: images convert to 1 or 3 channels of at least "
			       "1 x 1 pixels, not %d x %d x %d", dir, cfg->c, cfg->h, cfg->w);
	if (cfg->classes < 1 || cfg->classes > DS_MAX_CLASSES)
		return nk_errf(err, NK_EINVAL, "%s: %d classes cannot be held in u8 labels (1..256)",
			       dir, cfg->classes);
	rc = images_classes(cdir, cfg->classes, &cls, err);
	if (rc == 0)
		rc = images_list(dir, cdir, &cls, &items, &n, err);
	if (rc == 0 && !(d = ds_alloc(n, cfg->c, cfg->h, cfg->w, cfg->classes, 0, dir, err)))
		rc = NK_ENOMEM;
	if (rc == 0)
		rc = images_decode(d, items, n, cfg->strict, dir, err);
	for (int i = 0; i < n; i++)
		free(items[i].path);
	free(items);
	if (rc == 0)
		images_names(d, &cls);
	names_free(&cls);
	if (rc) {
		ds_free(d);
		return rc;
	}
	*out = d;
	return 0;
}
