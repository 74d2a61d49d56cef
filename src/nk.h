/* necklace core: error codes, error buffers and small helpers shared by every module. */
#ifndef NK_H
#define NK_H

#include <stddef.h>
#include <stdint.h>

/* Library functions return 0 or one of these (negative); only a program's main picks exit codes. */
enum nk_err {
	NK_OK = 0,
	NK_ENOMEM = -1,   /* out of memory */
	NK_EINVAL = -2,   /* invalid argument or configuration */
	NK_EIO = -3,      /* read/write failed */
	NK_EFORMAT = -4,  /* malformed file or frame */
	NK_ERANGE = -5,   /* value out of range */
	NK_ENOENT = -6,   /* no such file, stage or key */
	NK_ESHAPE = -7,   /* tensor shapes do not fit together */
	NK_EUNSUP = -8,   /* not supported by this layer or optimizer */
	NK_ESTATE = -9,   /* operation invalid in the current state */
};
#define NK_ERR_LEN 512

/* Name of an enum nk_err value, e.g. "malformed input". */
const char *nk_strerror(int err);

/* Fill err (NK_ERR_LEN bytes, may be NULL) with a printf-style message; returns code. */
int nk_errf(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* mkdir -p: create dir and its missing parents; 0, or -1 with errno set. */
int nk_mkdirs(const char *dir);

/* Monotonic seconds. */
double nk_now(void);

/* Allocation that the hot loops may rely on for vector alignment (64 bytes); free with free(). */
void *nk_alloc(size_t bytes);
float *nk_floats(size_t n); /* zeroed, aligned */

#define NK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define NK_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
