/* Fuzz target "chain": chain file text through chain_parse, and the same bytes as a file through
 * chain_load: both agree, and a parsed chain is consistent (stage names unique and found). */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char fuzz_name[] = "chain";

static void check(const struct chain *c)
{
	if (!c->name[0] || c->nstages < 1 || !c->stages)
		abort();
	for (int i = 0; i < c->nstages; i++) {
		const struct chain_stage *s = &c->stages[i];
		if (!memchr(s->name, '\0', sizeof s->name) || chain_stage_index(c, s->name) != i)
			abort();
		if (s->nlayers < 0 || s->nhead < 0 || (s->nlayers && !s->layers) || (s->nhead && !s->head))
			abort();
		if (s->optim.nmcmc < 0 || (s->optim.nmcmc && !s->optim.mcmc))
			abort();
	}
	if (c->data.ntrain < 0 || c->data.ntrain > CHAIN_MAX_FILES || c->data.ntest < 0 ||
	    c->data.ntest > CHAIN_MAX_FILES)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chain *a = NULL, *b = NULL;
	char err[NK_ERR_LEN] = "", err2[NK_ERR_LEN] = "";
	const char *path = fuzz_path("chain.json");
	int rc = chain_parse(&a, (const char *)data, size, "fuzz.json", fuzz_dir(), err);

	fuzz_check_rc(rc, err, "chain_parse");
	if (rc == 0) {
		check(a);
		fuzz_accepted++;
	}
	fuzz_write(path, data, size);
	int rc2 = chain_load(&b, path, err2);
	fuzz_check_rc(rc2, err2, "chain_load");
	if (rc != rc2 || (rc == 0 && (a->hash != b->hash || a->nstages != b->nstages))) {
		fprintf(stderr, "fuzz chain: chain_parse %d (%s), chain_load %d (%s)\n", rc, err, rc2,
			err2);
		abort();
	}
	chain_free(a);
	chain_free(b);
	return 0;
}
