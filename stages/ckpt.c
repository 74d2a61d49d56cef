/* Checkpoint files: header + protobuf Checkpoint, written atomically, read and checked whole. */
#include "stages/ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stages/necklace.pb-c.h"

#define MAGIC "NKCKPT1\n"
#define HDR 24 /* magic, length, hash */
#define MAX_FILE (1ull << 34)

static uint64_t fnv1a64(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Floats travel little-endian: on a big-endian host, a swapped copy (else src itself). */
static const void *le_floats(const float *src, size_t n, void **tmp)
{
	*tmp = NULL;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	uint32_t *w = malloc(n * 4 + 1);
	if (!w)
		return NULL;
	memcpy(w, src, n * 4);
	for (size_t i = 0; i < n; i++)
		w[i] = __builtin_bswap32(w[i]);
	*tmp = w;
	return w;
#else
	return src;
#endif
}

static void floats_from_le(float *dst, const uint8_t *src, size_t n)
{
	if (n) /* an empty field's data may be NULL */
		memcpy(dst, src, n * 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	uint32_t *w = (uint32_t *)dst;
	for (size_t i = 0; i < n; i++)
		w[i] = __builtin_bswap32(w[i]);
#endif
}

int ckpt_path(char *out, size_t len, const char *dir, const char *stage)
{
	int n = snprintf(out, len, "%s/%s.ckpt", dir, stage);
	return n < 0 || (size_t)n >= len ? NK_ERANGE : 0;
}

void ckpt_of(struct ckpt *k, const struct chain *c, int index, const struct model *m,
	     struct optim *o)
{
	snprintf(k->chain, sizeof k->chain, "%s", c->name);
	k->hash = c->hash;
	snprintf(k->stage, sizeof k->stage, "%s", c->stages[index].name);
	k->in = m->in;
	k->nparams = m->nparams;
	k->params = m->params;
	k->nbufs = m->nbufs;
	k->bufs = m->bufs;
	k->nstate = 0;
	k->state = NULL;
	snprintf(k->optimizer, sizeof k->optimizer, "%s", o ? o->ops->name : "");
	if (o) {
		k->state = optim_state(o, &k->nstate);
		k->rng = o->rng;
	}
	k->own = NULL;
}

/* ---- writing ---- */

/* The whole file image of k in a malloc'd buffer. */
static int encode(const struct ckpt *k, uint8_t **out, size_t *len, char err[NK_ERR_LEN])
{
	Nk__Checkpoint pb = NK__CHECKPOINT__INIT;
	void *t1 = NULL, *t2 = NULL, *t3 = NULL;
	pb.version = CKPT_VERSION;
	pb.chain = (char *)k->chain;
	pb.chain_hash = k->hash;
	pb.stage = (char *)k->stage;
	pb.step = (uint64_t)k->step;
	pb.batch = (uint64_t)k->batch;
	pb.epoch = (uint32_t)k->epoch;
	pb.epoch_batch = (uint64_t)k->epoch_batch;
	pb.in_c = (uint32_t)k->in.c;
	pb.in_h = (uint32_t)k->in.h;
	pb.in_w = (uint32_t)k->in.w;
	pb.optimizer = (char *)k->optimizer;
	pb.params.data = (uint8_t *)le_floats(k->params, k->nparams, &t1);
	pb.params.len = k->nparams * 4;
	pb.optim_state.data = (uint8_t *)le_floats(k->state, k->nstate, &t2);
	pb.optim_state.len = k->nstate * 4;
	pb.buffers.data = (uint8_t *)le_floats(k->bufs, k->nbufs, &t3);
	pb.buffers.len = k->nbufs * 4;
	pb.n_rng = 4;
	pb.rng = (uint64_t *)k->rng.s;
	size_t size = nk__checkpoint__get_packed_size(&pb);
	uint8_t *b = malloc(HDR + size);
	if (b && (!k->nparams || pb.params.data) && (!k->nstate || pb.optim_state.data) &&
	    (!k->nbufs || pb.buffers.data)) {
		memcpy(b, MAGIC, 8);
		put_le64(b + 8, size);
		nk__checkpoint__pack(&pb, b + HDR);
		put_le64(b + 16, fnv1a64(b + HDR, size));
	} else {
		free(b);
		b = NULL;
	}
	free(t1);
	free(t2);
	free(t3);
	if (!b)
		return nk_errf(err, NK_ENOMEM, "out of memory for a checkpoint of %zu bytes", size);
	*out = b;
	*len = HDR + size;
	return 0;
}

int ckpt_write_temp(const char *tmp, const struct ckpt *k, char err[NK_ERR_LEN])
{
	uint8_t *b = NULL;
	size_t len = 0, done = 0;
	int rc = encode(k, &b, &len, err);
	if (rc)
		return rc;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		free(b);
		return nk_errf(err, NK_EIO, "%s: cannot create: %s", tmp, strerror(errno));
	}
	while (done < len) {
		ssize_t w = write(fd, b + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	int bad = done < len ? errno : 0;
	if (!bad && fsync(fd) != 0)
		bad = errno;
	if (close(fd) != 0 && !bad)
		bad = errno;
	free(b);
	if (bad) {
		unlink(tmp);
		return nk_errf(err, NK_EIO, "%s: write failed: %s", tmp, strerror(bad));
	}
	return 0;
}

/* fsync the directory holding path, so that a rename in it is durable. */
static int sync_dir_of(const char *path)
{
	char dir[CHAIN_PATH_LEN + 64];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else
		snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int ckpt_publish(const char *tmp, const char *path, char err[NK_ERR_LEN])
{
	if (rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		return nk_errf(err, NK_EIO, "%s: cannot rename to %s: %s", tmp, path, strerror(e));
	}
	if (sync_dir_of(path) != 0)
		return nk_errf(err, NK_EIO, "%s: cannot sync its directory: %s", path, strerror(errno));
	return 0;
}

static int make_dir(const char *dir, char err[NK_ERR_LEN])
{
	if (nk_mkdirs(dir) != 0)
		return nk_errf(err, NK_EIO, "%s: cannot create state directory: %s", dir, strerror(errno));
	return 0;
}

int ckpt_save(const char *dir, const struct ckpt *k, char err[NK_ERR_LEN])
{
	char path[CHAIN_PATH_LEN + 80], tmp[CHAIN_PATH_LEN + 90];
	if (ckpt_path(path, sizeof path, dir, k->stage))
		return nk_errf(err, NK_ERANGE, "%s: state directory path too long", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int rc = make_dir(dir, err);
	if (rc == 0)
		rc = ckpt_write_temp(tmp, k, err);
	if (rc == 0)
		rc = ckpt_publish(tmp, path, err);
	return rc;
}

/* ---- reading ---- */

static int slurp(const char *path, uint8_t **buf, size_t *len, char err[NK_ERR_LEN])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0)
		return nk_errf(err, errno == ENOENT ? NK_ENOENT : NK_EIO, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (unsigned long long)st.st_size > MAX_FILE) {
		close(fd);
		return nk_errf(err, NK_EFORMAT, "%s: not a checkpoint file", path);
	}
	size_t n = (size_t)st.st_size, got = 0;
	uint8_t *b = malloc(n + 1);
	if (!b) {
		close(fd);
		return nk_errf(err, NK_ENOMEM, "%s: out of memory", path);
	}
	while (got < n) {
		ssize_t r = read(fd, b + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*buf = b;
	*len = got;
	return 0;
}

/* The message of a whole file image, or NK_EFORMAT. */
static int unpack(const char *path, const uint8_t *b, size_t len, Nk__Checkpoint **pb,
		  char err[NK_ERR_LEN])
{
	if (len < 8 || memcmp(b, MAGIC, 8) != 0)
		return nk_errf(err, NK_EFORMAT, "%s: not a necklace checkpoint (bad magic)", path);
	if (len < HDR)
		return nk_errf(err, NK_EFORMAT, "%s: truncated checkpoint (%zu bytes)", path, len);
	uint64_t size = get_le64(b + 8);
	if (size != len - HDR)
		return nk_errf(err, NK_EFORMAT, "%s: truncated or padded checkpoint: %zu bytes, the "
			       "header says %llu", path, len, (unsigned long long)size + HDR);
	if (fnv1a64(b + HDR, size) != get_le64(b + 16))
		return nk_errf(err, NK_EFORMAT, "%s: corrupt checkpoint (its contents do not match "
			       "their hash)", path);
	if (!(*pb = nk__checkpoint__unpack(NULL, size, b + HDR)))
		return nk_errf(err, NK_EFORMAT, "%s: corrupt checkpoint (undecodable)", path);
	return 0;
}

/* Check the message against stage `index` of chain c. */
static int check(const char *path, const Nk__Checkpoint *pb, const struct chain *c, int index,
		 char err[NK_ERR_LEN])
{
	const char *name = c->stages[index].name;
	if (pb->version != CKPT_VERSION)
		return nk_errf(err, NK_EFORMAT, "%s: checkpoint version %u, this program reads %d", path,
			       pb->version, CKPT_VERSION);
	if (pb->chain_hash != c->hash || strcmp(pb->chain, c->name) != 0)
		return nk_errf(err, NK_EINVAL, "%s: checkpoint of chain '%s' (file hash %016llx), but "
			       "this is chain '%s' (hash %016llx): refusing to resume from it (move it "
			       "away, or start over with --fresh)", path, pb->chain,
			       (unsigned long long)pb->chain_hash, c->name, (unsigned long long)c->hash);
	if (strcmp(pb->stage, name) != 0)
		return nk_errf(err, NK_EINVAL, "%s: checkpoint of stage '%s', not of stage '%s'", path,
			       pb->stage, name);
	if (pb->params.len % 4 || pb->optim_state.len % 4 || pb->buffers.len % 4 || pb->n_rng != 4 ||
	    strlen(pb->chain) >= CHAIN_NAME_LEN || strlen(pb->optimizer) >= 16 ||
	    pb->in_c == 0 || pb->in_h == 0 || pb->in_w == 0 || pb->in_c > 1u << 20 ||
	    pb->in_h > 1u << 20 || pb->in_w > 1u << 20)
		return nk_errf(err, NK_EFORMAT, "%s: corrupt checkpoint (inconsistent sizes)", path);
	return 0;
}

/* k from a checked message, in one allocation. */
static int fill(struct ckpt *k, const Nk__Checkpoint *pb, char err[NK_ERR_LEN])
{
	k->nparams = pb->params.len / 4;
	k->nstate = pb->optim_state.len / 4;
	k->nbufs = pb->buffers.len / 4;
	if (!(k->own = malloc((k->nparams + k->nstate + k->nbufs) * 4 + 4)))
		return nk_errf(err, NK_ENOMEM, "out of memory for a checkpoint");
	k->params = k->own;
	k->state = k->params + k->nparams;
	k->bufs = k->state + k->nstate;
	floats_from_le(k->params, pb->params.data, k->nparams);
	floats_from_le(k->state, pb->optim_state.data, k->nstate);
	floats_from_le(k->bufs, pb->buffers.data, k->nbufs);
	snprintf(k->chain, sizeof k->chain, "%s", pb->chain);
	k->hash = pb->chain_hash;
	snprintf(k->stage, sizeof k->stage, "%s", pb->stage);
	snprintf(k->optimizer, sizeof k->optimizer, "%s", pb->optimizer);
	k->step = (long)pb->step;
	k->batch = (long)pb->batch;
	k->epoch = (int)pb->epoch;
	k->epoch_batch = (long)pb->epoch_batch;
	k->in = (struct layer_dims){(int)pb->in_c, (int)pb->in_h, (int)pb->in_w};
	memcpy(k->rng.s, pb->rng, sizeof k->rng.s);
	return 0;
}

int ckpt_read(struct ckpt **out, const char *path, const struct chain *c, int index,
	      char err[NK_ERR_LEN])
{
	uint8_t *b = NULL;
	size_t len = 0;
	Nk__Checkpoint *pb = NULL;
	struct ckpt *k = NULL;
	*out = NULL;
	int rc = slurp(path, &b, &len, err);
	if (rc == 0)
		rc = unpack(path, b, len, &pb, err);
	if (rc == 0)
		rc = check(path, pb, c, index, err);
	if (rc == 0 && !(k = calloc(1, sizeof *k)))
		rc = nk_errf(err, NK_ENOMEM, "out of memory");
	if (rc == 0)
		rc = fill(k, pb, err);
	if (pb)
		nk__checkpoint__free_unpacked(pb, NULL);
	free(b);
	if (rc) {
		ckpt_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

void ckpt_free(struct ckpt *k)
{
	if (!k)
		return;
	free(k->own);
	free(k);
}

int ckpt_apply(const struct ckpt *k, struct model *m, struct optim *o, char err[NK_ERR_LEN])
{
	size_t ns = 0;
	float *st = o ? optim_state(o, &ns) : NULL;
	if (k->nparams != m->nparams || k->in.c != m->in.c || k->in.h != m->in.h || k->in.w != m->in.w)
		return nk_errf(err, NK_ESHAPE, "checkpoint of stage %s: %zu parameters for %dx%dx%d "
			       "inputs, but the model has %zu for %dx%dx%d", k->stage, k->nparams,
			       k->in.c, k->in.h, k->in.w, m->nparams, m->in.c, m->in.h, m->in.w);
	if (k->nbufs != m->nbufs)
		return nk_errf(err, NK_ESHAPE, "checkpoint of stage %s: %zu buffer values (batchnorm "
			       "statistics), but the model has %zu", k->stage, k->nbufs, m->nbufs);
	if (o && (strcmp(k->optimizer, o->ops->name) != 0 || k->nstate != ns))
		return nk_errf(err, NK_ESHAPE, "checkpoint of stage %s: optimizer %s with %zu state "
			       "values, but the stage uses %s with %zu", k->stage, k->optimizer,
			       k->nstate, o->ops->name, ns);
	memcpy(m->params, k->params, k->nparams * sizeof *m->params);
	if (m->nbufs)
		memcpy(m->bufs, k->bufs, m->nbufs * sizeof *m->bufs);
	if (o) {
		if (ns)
			memcpy(st, k->state, ns * sizeof *st);
		o->rng = k->rng;
	}
	return 0;
}
