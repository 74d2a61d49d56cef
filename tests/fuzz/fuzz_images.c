/* Fuzz target "images": image files (any format stb_image reads) in class folders through
 * ds_load. Input: [flags: bit 0 three channels, bit 1 strict, bit 2 a test split of the last
 * file][h][w][batcher options][image] FUZZ_SEP [image] ...; image i goes to class i % 2 (one
 * class when there is one image), converted and resized to 1..16 x 1..16. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>

const char fuzz_name[] = "images";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[FUZZ_MAX_PARTS];
	if (size < 4)
		return 0;
	int n = fuzz_split(data + 4, size - 4, part, FUZZ_MAX_PARTS);
	int test = (data[0] & 4) && n > 2, ntrain = n - test, classes = NK_MIN(ntrain, 2);
	struct chain_data *d = fuzz_data("images", classes, data[3]);
	const char *root = fuzz_path("img");
	fuzz_rmtree(root);
	d->shape[0] = data[0] & 1 ? 3 : 1;
	d->shape[1] = 1 + data[1] % 16;
	d->shape[2] = 1 + data[2] % 16;
	d->strict = !!(data[0] & 2);
	snprintf(d->train[0], CHAIN_PATH_LEN, "%s", fuzz_path("img/train"));
	snprintf(d->test[0], CHAIN_PATH_LEN, "%s", fuzz_path("img/test"));
	for (int i = 0; i < n; i++) {
		const char *split = i < ntrain ? "train" : "test";
		fuzz_mkdirs(fuzz_path("img/%s/c%d", split, i % 2));
		fuzz_write(fuzz_path("img/%s/c%d/%d.png", split, i % 2, i), part[i].p, part[i].n);
	}
	d->ntrain = 1;
	d->ntest = test;
	d->has_test = test;
	fuzz_load(d);
	return 0;
}
