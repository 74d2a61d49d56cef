/* Fuzzing: what the harnesses (tests/fuzz/fuzz_*.c, one LLVMFuzzerTestOneInput each), the seed
 * generator (seeds.c) and the replay driver (replay.c) share. A harness must free everything it
 * allocates and may abort() only on a broken invariant: both are findings. */
#ifndef NK_FUZZ_H
#define NK_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "data/ds.h"
#include "layers/model.h"
#include "optim/optim.h"
#include "src/chain.h"
#include "stages/wire.h"

/* The harness entry point (libFuzzer's, or replay.c's main calls it). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* The harness's target, as scripts/fuzz and seeds.c name it ("wire", "csv", ...). */
extern const char fuzz_name[];

/* Inputs the harness accepted whole (decoded, parsed, loaded): replay.c checks that every "ok-"
 * seed is. */
extern int fuzz_accepted;

/* Targets in the order scripts/fuzz runs them. */
extern const char *const fuzz_targets[];

/* Multi-file inputs (IDX images and labels, CIFAR files, CSV splits, images) are cut into parts
 * at this separator; a mutated separator just merges two parts. */
#define FUZZ_SEP "\n--nk-part--\n"
#define FUZZ_SEP_LEN (sizeof FUZZ_SEP - 1)
#define FUZZ_MAX_PARTS 8

struct fuzz_part {
	const uint8_t *p;
	size_t n;
};
/* Split data[size] into at most max parts (the last one keeps any further separators). */
int fuzz_split(const uint8_t *data, size_t size, struct fuzz_part *parts, int max);

/* This process's scratch folder (made on first use under $TMPDIR, removed at exit). */
const char *fuzz_dir(void);
/* dir/name (printf-style) in one of eight rotating static buffers. */
const char *fuzz_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Write n bytes to path, replacing it; aborts when it cannot (the harness is then useless). */
void fuzz_write(const char *path, const void *p, size_t n);
/* mkdir -p; rm -rf. */
void fuzz_mkdirs(const char *path);
void fuzz_rmtree(const char *path);

/* A library call's result: 0, or a negative enum nk_err with err filled (err[0] was cleared
 * before the call). Aborts otherwise. */
void fuzz_check_rc(int rc, const char *err, const char *what);
/* Read every byte a decoded message points at, so that a wrong length shows under ASan. */
void fuzz_touch_msg(const struct wire_msg *m);
/* Read every sample and label of a loaded dataset and check labels and shape. */
void fuzz_touch_ds(const struct ds *d);
/* Re-encode a decoded message, decode that and encode again: both encodings must be the same
 * bytes (decode and encode agree). */
void fuzz_check_reencode(const struct wire_msg *m, size_t max_frame);

/* A data block for format with the classes given and batcher options from one control byte:
 * bits 0-2 batch - 1, 3 shuffle, 4 flip, 5 crop 1, 6 limit 2, 7 "normalize": "auto". Free it
 * with free(). Then fuzz_load: ds_load_pair (the test split when d->has_test), each dataset
 * checked and read whole, statistics, and the first batches of the training split. */
struct chain_data *fuzz_data(const char *format, int classes, uint8_t opts);
void fuzz_load(struct chain_data *d);

/* The chain the hello and checkpoint harnesses (and their seeds) use: stage s0 (conv,
 * batchnorm, relu; SGD with momentum) feeding s1 (linear head; MCMC). Parsed once. */
struct chain *fuzz_chain(void);
const char *fuzz_chain_text(void);
/* The model and optimizer of stage i of fuzz_chain(), built once (inputs 1x8x8 for s0). */
void fuzz_stage(int i, struct model **m, struct optim **o);

/* Little-endian and big-endian stores for hand-made files. */
void fuzz_be32(uint8_t *p, uint32_t v);
void fuzz_le64(uint8_t *p, uint64_t v);
uint64_t fuzz_fnv1a64(const uint8_t *p, size_t n);

/* Write every seed of target name into dir (which exists); srcdir is the source tree (the
 * chain files shipped in its data/chains/ seed the chain target). Returns the number written,
 * or -1. */
int fuzz_seeds(const char *name, const char *dir, const char *srcdir);

#endif
