/* Fuzz target "cifar": CIFAR binary record files through ds_load.
 * Input: [flags byte: bit 0 two label bytes (CIFAR-100), bit 1 coarse, bits 2-3 training files
 * - 1][classes byte][batcher options byte][file] FUZZ_SEP [file] ...; the parts after the
 * training files are the test split's. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>

const char fuzz_name[] = "cifar";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[FUZZ_MAX_PARTS];
	if (size < 3)
		return 0;
	int n = fuzz_split(data + 3, size - 3, part, FUZZ_MAX_PARTS);
	int ntrain = NK_MIN(n, 1 + ((data[0] >> 2) & 3));
	struct chain_data *d = fuzz_data("cifar", data[1], data[2]);
	d->label_bytes = data[0] & 1 ? 2 : 1;
	d->coarse = !!(data[0] & 2);
	for (int i = 0; i < n; i++) {
		char *f = i < ntrain ? d->train[i] : d->test[i - ntrain];
		snprintf(f, CHAIN_PATH_LEN, "%s", fuzz_path("data_batch_%d.bin", i));
		fuzz_write(f, part[i].p, part[i].n);
	}
	d->ntrain = ntrain;
	d->ntest = n - ntrain;
	d->has_test = n > ntrain;
	fuzz_load(d);
	return 0;
}
