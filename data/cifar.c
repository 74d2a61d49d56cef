/* CIFAR-10/100 binary reader: fixed-size records from several files into one buffer; every error
 * names the file and the record. */
#include "data/ds_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_PIXELS (3 * 32 * 32) /* red, green, blue planes of 32 x 32 */
#define CIFAR_CHUNK 1024           /* records per fread */

/* Records in path (rec bytes each): the size must be a nonzero whole number of them. */
static int cifar_count(const char *path, int label_bytes, long long *n, char *err)
{
	long long rec = CIFAR_PIXELS + label_bytes, other = CIFAR_PIXELS + 3 - label_bytes;
	struct stat st;

	if (stat(path, &st) != 0)
		return nk_errf(err, errno == ENOENT ? NK_ENOENT : NK_EIO, "%s: cannot open: %s",
			       path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return nk_errf(err, NK_EIO, "%s: not a regular file", path);
	if (st.st_size == 0)
		return nk_errf(err, NK_EFORMAT, "%s: empty file: no records", path);
	if (st.st_size % rec != 0)
		return nk_errf(err, NK_EFORMAT, "%s: %lld bytes is not a whole number of %lld-byte "
			       "records (%d label byte%s + %d pixel bytes): record %lld has only %lld "
			       "bytes%s", path, (long long)st.st_size, rec, label_bytes,
			       label_bytes == 1 ? "" : "s", CIFAR_PIXELS, (long long)st.st_size / rec,
			       (long long)st.st_size % rec, st.st_size % other ? "" : label_bytes == 1 ?
			       " (CIFAR-100 files hold 3074-byte records: set \"label_bytes\": 2)" :
			       " (CIFAR-10 files hold 3073-byte records: set \"label_bytes\": 1)");
	*n = (long long)(st.st_size / rec);
	return 0;
}

/* Copy n records of f (path) into x, y from sample `first` on, checking each label. */
static int cifar_read(FILE *f, const char *path, long long n, int label_bytes, int coarse,
		      struct ds *d, long long first, uint8_t *buf, char *err)
{
	size_t rec = CIFAR_PIXELS + (size_t)label_bytes;
	int which = label_bytes == 2 && !coarse; /* byte 0: the label or coarse; byte 1: fine */

	for (long long r = 0; r < n; r += CIFAR_CHUNK) {
		size_t want = (size_t)NK_MIN(n - r, CIFAR_CHUNK);
		if (fread(buf, rec, want, f) != want)
			return nk_errf(err, NK_EIO, "%s: read failed at record %lld: %s", path, r,
				       ferror(f) ? strerror(errno) : "file shrank while reading");
		for (size_t i = 0; i < want; i++) {
			const uint8_t *p = buf + i * rec;
			size_t k = (size_t)(first + r) + i;
			if (p[which] >= d->classes)
				return nk_errf(err, NK_ERANGE, "%s: record %lld: %slabel %u out of "
					       "range [0, %d)", path, r + (long long)i, label_bytes == 1 ?
					       "" : which ? "fine " : "coarse ", p[which], d->classes);
			d->y[k] = p[which];
			memcpy(d->x + k * CIFAR_PIXELS, p + label_bytes, CIFAR_PIXELS);
		}
	}
	return 0;
}

static int cifar_fill(struct ds *d, const char *const *files, int nfiles, const long long *counts,
		      int label_bytes, int coarse, char *err)
{
	uint8_t *buf = malloc((size_t)CIFAR_CHUNK * (CIFAR_PIXELS + label_bytes));
	long long first = 0;
	int rc = 0;

	if (!buf)
		return nk_errf(err, NK_ENOMEM, "%s: out of memory for the read buffer", files[0]);
	for (int i = 0; rc == 0 && i < nfiles; i++) {
		FILE *f = fopen(files[i], "rb");
		if (!f) {
			rc = nk_errf(err, NK_EIO, "%s: cannot open: %s", files[i], strerror(errno));
			break;
		}
		rc = cifar_read(f, files[i], counts[i], label_bytes, coarse, d, first, buf, err);
		fclose(f);
		first += counts[i];
	}
	free(buf);
	return rc;
}

int ds_cifar_load(struct ds **out, const char *const *files, int nfiles, int label_bytes,
		  int coarse, int classes, char err[NK_ERR_LEN])
{
	long long counts[CHAIN_MAX_FILES], total = 0;
	struct ds *d;
	int rc;

	*out = NULL;
	if (nfiles < 1 || nfiles > CHAIN_MAX_FILES)
		return nk_errf(err, NK_EINVAL, "CIFAR: %d files given, expected 1 to %d", nfiles,
			       CHAIN_MAX_FILES);
	if (label_bytes != 1 && label_bytes != 2)
		return nk_errf(err, NK_EINVAL, "%s: %d label bytes per record, expected 1 (CIFAR-10) "
			       "or 2 (CIFAR-100)", files[0], label_bytes);
	if (classes < 1 || classes > DS_MAX_CLASSES)
		return nk_errf(err, NK_EINVAL, "%s: %d classes cannot be held in u8 labels (1..256)",
			       files[0], classes);
	for (int i = 0; i < nfiles; i++) {
		if ((rc = cifar_count(files[i], label_bytes, &counts[i], err)))
			return rc;
		total += counts[i];
	}
	if (total > INT_MAX)
		return nk_errf(err, NK_EFORMAT, "%s: %lld records in all is too many", files[0], total);
	if (!(d = ds_alloc((int)total, 3, 32, 32, classes, 0, files[0], err)))
		return NK_ENOMEM;
	if ((rc = cifar_fill(d, files, nfiles, counts, label_bytes, coarse, err))) {
		ds_free(d);
		return rc;
	}
	*out = d;
	return 0;
}
