/* IDX reader (MNIST layout), plain or gzip, one buffer per file; every error names its file. */
#include "data/ds.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u  /* u8, 3 dimensions: N x H x W */
#define IDX_MAGIC_LABELS 0x00000801u  /* u8, 1 dimension: N */
#define IDX_MAX_SIDE 32768u           /* larger image sides mean a corrupt header */
#define IDX_MAX_BYTES (1ull << 36)    /* 64 GiB of pixels: same */
#define IDX_CHUNK (1u << 22)          /* bytes per gzread call */
#define IDX_FIRST_ALLOC (1ull << 26)  /* grow past this only as data actually arrives */
#define IDX_GZ_RATIO 1032ull          /* deflate's most output bytes per input byte */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *idx_kind(uint32_t magic)
{
	switch (magic) {
	case IDX_MAGIC_IMAGES: return "an IDX image file";
	case IDX_MAGIC_LABELS: return "an IDX label file";
	}
	return "not an IDX u8 file";
}

/* Open path for reading; gzip is detected by content, plain files pass through. *hold: the
 * most bytes the file can give (IDX_GZ_RATIO per byte, a little more for an empty file). */
static int idx_open(gzFile *out, const char *path, size_t *hold, char *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return nk_errf(err, errno == ENOENT ? NK_ENOENT : NK_EIO,
			       "%s: cannot open: %s", path, strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return nk_errf(err, NK_EIO, "%s: cannot read: is a directory", path);
	}
	*hold = S_ISREG(st.st_mode) && (unsigned long long)st.st_size < (1ull << 40) ?
		(size_t)(IDX_GZ_RATIO * (unsigned long long)st.st_size + 4096) : SIZE_MAX;
	*out = gzdopen(fd, "rb");
	if (!*out) {
		close(fd);
		return nk_errf(err, NK_ENOMEM, "%s: cannot open: out of memory", path);
	}
	gzbuffer(*out, 1u << 18);
	return 0;
}

/* Read up to len bytes; returns the count read (short only at end of data) or a negative code. */
static long long idx_read(gzFile f, const char *path, void *buf, size_t len, char *err)
{
	size_t got = 0;

	while (got < len) {
		unsigned want = (unsigned)NK_MIN(len - got, (size_t)IDX_CHUNK);
		int n = gzread(f, (char *)buf + got, want);
		if (n < 0) {
			int zerr;
			const char *msg = gzerror(f, &zerr);
			return nk_errf(err, zerr == Z_ERRNO ? NK_EIO : NK_EFORMAT,
				       "%s: read failed after %zu bytes: %s", path, got,
				       zerr == Z_ERRNO ? strerror(errno) : msg);
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (long long)got;
}

/* Read the header: magic, then ndims big-endian u32 sizes. */
static int idx_header(gzFile f, const char *path, uint32_t magic, int ndims, uint32_t *dims, char *err)
{
	unsigned char h[16];
	size_t len = 4 + 4 * (size_t)ndims;
	long long got = idx_read(f, path, h, len, err);

	if (got < 0)
		return (int)got;
	if ((size_t)got < len)
		return nk_errf(err, NK_EFORMAT, "%s: truncated header: expected %zu bytes, found %lld",
			       path, len, got);
	if (be32(h) != magic)
		return nk_errf(err, NK_EFORMAT, "%s: wrong magic 0x%08x (%s), expected 0x%08x (%s)",
			       path, be32(h), idx_kind(be32(h)), magic, idx_kind(magic));
	for (int i = 0; i < ndims; i++)
		dims[i] = be32(h + 4 + 4 * i);
	return 0;
}

/* Read n records of rec bytes into one new buffer; short data and trailing bytes are errors.
 * Memory bound: the first allocation is at most what the file can hold (hold bytes), so a
 * header that declares more than a small file has costs little; it then doubles only when full,
 * so the buffer never exceeds twice the data that actually arrived. */
static int idx_body(gzFile f, const char *path, uint32_t n, size_t rec, const char *what,
		    size_t hold, uint8_t **out, char *err)
{
	size_t want = (size_t)n * rec, have = 0;
	size_t cap = NK_MIN(NK_MIN(want, (size_t)IDX_FIRST_ALLOC), hold);
	uint8_t *buf = malloc(cap), *nb;
	unsigned char extra;
	long long got;

	for (;;) {
		if (!buf)
			return nk_errf(err, NK_ENOMEM, "%s: cannot allocate %zu bytes for %s",
				       path, cap, what);
		got = idx_read(f, path, buf + have, cap - have, err);
		if (got < 0)
			goto fail;
		have += (size_t)got;
		if (have < cap || cap == want)
			break;
		cap = NK_MIN(want, 2 * cap);
		nb = realloc(buf, cap);
		if (!nb)
			free(buf);
		buf = nb;
	}
	if (have < want) {
		got = nk_errf(err, NK_EFORMAT, "%s: truncated: expected %u %s (%zu bytes of data), "
			      "found %zu bytes (%zu complete %s)", path, n, what, want, have,
			      have / rec, what);
		goto fail;
	}
	got = idx_read(f, path, &extra, 1, err);
	if (got != 0) {
		if (got > 0)
			got = nk_errf(err, NK_EFORMAT, "%s: trailing data after the %u %s the header "
				      "declares", path, n, what);
		goto fail;
	}
	*out = buf;
	return 0;
fail:
	free(buf);
	return (int)got;
}

/* Images header: n x h x w, each nonzero and within sane bounds. */
static int idx_images_header(struct ds *d, gzFile f, const char *path, char *err)
{
	uint32_t dim[3] = {0};
	int rc = idx_header(f, path, IDX_MAGIC_IMAGES, 3, dim, err);

	if (rc)
		return rc;
	if (!dim[0] || !dim[1] || !dim[2])
		return nk_errf(err, NK_EFORMAT, "%s: zero dimension in header: %u images of %u x %u",
			       path, dim[0], dim[1], dim[2]);
	if (dim[0] > INT_MAX || dim[1] > IDX_MAX_SIDE || dim[2] > IDX_MAX_SIDE ||
	    (unsigned long long)dim[0] * dim[1] * dim[2] > IDX_MAX_BYTES)
		return nk_errf(err, NK_EFORMAT, "%s: absurd dimensions in header: %u images of %u x %u",
			       path, dim[0], dim[1], dim[2]);
	d->n = (int)dim[0];
	d->c = 1;
	d->h = (int)dim[1];
	d->w = (int)dim[2];
	return 0;
}

/* Labels header: the count must be nonzero and match the images'. */
static int idx_labels_header(const struct ds *d, gzFile f, const char *images, const char *path,
			     char *err)
{
	uint32_t n = 0;
	int rc = idx_header(f, path, IDX_MAGIC_LABELS, 1, &n, err);

	if (rc)
		return rc;
	if (n == 0)
		return nk_errf(err, NK_EFORMAT, "%s: zero dimension in header: 0 labels", path);
	if (n != (uint32_t)d->n)
		return nk_errf(err, NK_EFORMAT, "count mismatch: %s has %d images but %s has %u labels",
			       images, d->n, path, n);
	return 0;
}

/* Both headers are checked before either body is read, so a bad pair fails fast. */
static int idx_load(struct ds *d, const char *images, const char *labels, char *err)
{
	gzFile fi = NULL, fl = NULL;
	size_t hi = 0, hl = 0;
	int rc = idx_open(&fi, images, &hi, err);

	if (!rc)
		rc = idx_images_header(d, fi, images, err);
	if (!rc)
		rc = idx_open(&fl, labels, &hl, err);
	if (!rc)
		rc = idx_labels_header(d, fl, images, labels, err);
	if (!rc)
		rc = idx_body(fi, images, (uint32_t)d->n, (size_t)d->h * d->w, "images", hi, &d->x, err);
	if (!rc)
		rc = idx_body(fl, labels, (uint32_t)d->n, 1, "labels", hl, &d->y, err);
	if (fi)
		gzclose_r(fi);
	if (fl)
		gzclose_r(fl);
	for (int i = 0; !rc && i < d->n; i++)
		if (d->y[i] >= d->classes)
			rc = nk_errf(err, NK_ERANGE, "%s: label %u of record %d out of range [0, %d)",
				     labels, d->y[i], i, d->classes);
	return rc;
}

int ds_idx_load(struct ds **out, const char *images, const char *labels, int classes, char err[NK_ERR_LEN])
{
	struct ds *d;
	int rc;

	*out = NULL;
	if (classes == 0)
		classes = 10;
	if (classes < 0 || classes > 256)
		return nk_errf(err, NK_EINVAL, "%s: %d classes cannot be held in u8 labels (1..256)",
			       labels, classes);
	d = calloc(1, sizeof(*d));
	if (!d)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	d->classes = classes;
	rc = idx_load(d, images, labels, err);
	if (rc) {
		ds_free(d);
		return rc;
	}
	*out = d;
	return 0;
}
