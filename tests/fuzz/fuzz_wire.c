/* Fuzz target "wire": one whole frame through wire_decode. A frame that decodes must encode again,
 * and decoding and encoding that must give the same bytes. */
#include "tests/fuzz/fuzz.h"

#include <stdlib.h>

const char fuzz_name[] = "wire";

#define MAX_FRAME (1u << 20) /* a per-input bound on what a frame may make the decoder allocate */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_msg *m = (struct wire_msg *)1;
	char err[NK_ERR_LEN] = "";
	int rc = wire_decode(data, size, MAX_FRAME, &m, err);

	fuzz_check_rc(rc, err, "wire_decode");
	if (rc != 0 && m)
		abort(); /* a failed decode leaves *out NULL */
	if (rc == 0) {
		fuzz_touch_msg(m);
		fuzz_check_reencode(m, MAX_FRAME);
		fuzz_accepted++;
	}
	wire_msg_free(m);
	return 0;
}
