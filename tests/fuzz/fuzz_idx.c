/* Fuzz target "idx": an IDX image file and its label file (each plain or gzip) through ds_load.
 * Input: [classes byte][batcher options byte][images] FUZZ_SEP [labels]; a second separator
 * starts the test split's images, a third its labels. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>

const char fuzz_name[] = "idx";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[4] = {{0}};
	if (size < 2)
		return 0;
	int n = fuzz_split(data + 2, size - 2, part, 4);
	struct chain_data *d = fuzz_data("idx", data[0], data[1]);
	for (int i = 0; i < 4; i++) {
		char (*f)[CHAIN_PATH_LEN] = i < 2 ? d->train : d->test;
		snprintf(f[i % 2], CHAIN_PATH_LEN, "%s", fuzz_path("%d.idx", i));
		fuzz_write(f[i % 2], part[i].p, part[i].n);
	}
	d->ntrain = 2;
	d->ntest = n > 2 ? 2 : 0;
	d->has_test = n > 2;
	fuzz_load(d);
	return 0;
}
