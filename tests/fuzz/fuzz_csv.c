/* Fuzz target "csv": CSV files through ds_load.
 * Input: [flags][label column][c][h][w][classes][batcher options][train] FUZZ_SEP [test].
 * Flags: bit 0 header, bit 1 label by the name "label", bits 2-3 features (auto, bytes, float),
 * bit 4 shape given (c, h, w: 1..4 each), else 1 x 1 x features. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>

const char fuzz_name[] = "csv";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[2];
	if (size < 7)
		return 0;
	int n = fuzz_split(data + 7, size - 7, part, 2);
	struct chain_data *d = fuzz_data("csv", data[5], data[6]);
	d->header = data[0] & 1;
	if (data[0] & 2)
		snprintf(d->label_name, sizeof d->label_name, "label");
	d->features = (enum chain_features)((data[0] >> 2) & 3) % 3;
	d->label_col = (int8_t)data[1];
	if (data[0] & 16) {
		d->shape[0] = 1 + data[2] % 4;
		d->shape[1] = 1 + data[3] % 4;
		d->shape[2] = 1 + data[4] % 4;
	}
	for (int i = 0; i < n; i++) {
		char *f = i ? d->test[0] : d->train[0];
		snprintf(f, CHAIN_PATH_LEN, "%s", fuzz_path("%s.csv", i ? "test" : "train"));
		fuzz_write(f, part[i].p, part[i].n);
	}
	d->ntrain = 1;
	d->ntest = n - 1;
	d->has_test = n > 1;
	fuzz_load(d);
	return 0;
}
