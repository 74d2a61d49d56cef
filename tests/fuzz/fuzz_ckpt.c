/* Fuzz target "ckpt": checkpoint files through ckpt_read for a stage of fuzz_chain(), and what
 * it accepts through ckpt_apply onto that stage's model.
 * Input: [mode][file]. Mode bit 0: the file is the message only; the harness puts the header
 * (magic, length, hash) before it, so that mutations get past the hash. Bit 1: stage s1, else
 * s0. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "stages/ckpt.h"

const char fuzz_name[] = "ckpt";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *body = data + 1;
	size_t n = size - 1;
	int index = data[0] & 2 ? 1 : 0;
	const char *path = fuzz_path("s.ckpt");
	if (data[0] & 1) {
		uint8_t *f = malloc(24 + n);
		if (!f)
			abort();
		memcpy(f, "NKCKPT1\n", 8);
		fuzz_le64(f + 8, n);
		fuzz_le64(f + 16, fuzz_fnv1a64(body, n));
		if (n)
			memcpy(f + 24, body, n);
		fuzz_write(path, f, 24 + n);
		free(f);
	} else {
		fuzz_write(path, body, n);
	}
	struct chain *c = fuzz_chain();
	struct ckpt *k = (struct ckpt *)1;
	char err[NK_ERR_LEN] = "";
	int rc = ckpt_read(&k, path, c, index, err);
	fuzz_check_rc(rc, err, "ckpt_read");
	if (rc && k)
		abort();
	if (rc == 0) {
		struct model *m;
		struct optim *o;
		if (!memchr(k->chain, '\0', sizeof k->chain) || !memchr(k->optimizer, '\0',
									 sizeof k->optimizer))
			abort();
		volatile float s = 0;
		for (size_t i = 0; i < k->nparams; i++)
			s += k->params[i];
		for (size_t i = 0; i < k->nstate; i++)
			s += k->state[i];
		for (size_t i = 0; i < k->nbufs; i++)
			s += k->bufs[i];
		fuzz_stage(index, &m, &o);
		err[0] = '\0';
		rc = ckpt_apply(k, m, o, err);
		fuzz_check_rc(rc, err, "ckpt_apply");
		fuzz_accepted += rc == 0;
	}
	ckpt_free(k);
	return 0;
}
