/* Fuzz target "reader": a byte stream through the streaming reader in pseudo-random pieces, as a
 * socket delivers them, through wire_reader_feed or (inside a frame) wire_reader_dest/commit as
 * the link's direct reads do. Each frame it yields must be what wire_decode makes of the same
 * bytes, and a stream it refuses must be refused by wire_decode too.
 * Input: [max-frame and mode byte][chunking seed byte][stream...]. */
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char fuzz_name[] = "reader";

/* The same message: encoded alike. */
static void same(const struct wire_msg *a, const struct wire_msg *b, size_t max_frame)
{
	char err[NK_ERR_LEN] = "";
	uint8_t *fa = NULL, *fb = NULL;
	size_t na = 0, nb = 0;
	size_t big = 4 * max_frame + 1024;
	if (wire_encode(a, big, &fa, &na, err) || wire_encode(b, big, &fb, &nb, err) || na != nb ||
	    memcmp(fa, fb, na) != 0) {
		fprintf(stderr, "fuzz reader: the streamed %s differs from the one-shot one (%s)\n",
			wire_kind_name(a->kind), err);
		abort();
	}
	wire_frame_free(fa);
	wire_frame_free(fb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t max_frame = (size_t)16 << (data[0] & 15); /* 16 B .. 512 KiB */
	int direct = data[0] & 16, big = data[0] & 32;
	uint32_t rs = 0x9e3779b9u ^ data[1] * 0x01000193u;
	const uint8_t *s = data + 2;
	size_t n = size - 2, pos = 0, start = 0;
	struct wire_reader r;
	char err[NK_ERR_LEN] = "";

	wire_reader_init(&r, max_frame);
	while (pos < n) {
		struct wire_msg *m = (struct wire_msg *)1;
		rs ^= rs << 13, rs ^= rs >> 17, rs ^= rs << 5;
		size_t piece = NK_MIN(n - pos, 1 + (size_t)(rs % (big ? 4096 : 17)));
		long used;
		err[0] = '\0';
		if (direct && wire_reader_remaining(&r) > 0) {
			size_t room;
			uint8_t *d = wire_reader_dest(&r, &room);
			if (!d || room != wire_reader_remaining(&r))
				abort();
			piece = NK_MIN(piece, room);
			memcpy(d, s + pos, piece);
			int rc = wire_reader_commit(&r, piece, &m, err);
			used = rc ? rc : (long)piece;
		} else {
			used = wire_reader_feed(&r, s + pos, piece, &m, err);
		}
		fuzz_check_rc(used < 0 ? (int)used : 0, err, "wire_reader_feed");
		if (used < 0) {
			struct wire_msg *one = NULL;
			err[0] = '\0';
			int rc = wire_decode(s + start, n - start, max_frame, &one, err);
			if (rc == 0) {
				fprintf(stderr, "fuzz reader: streamed frame at %zu refused, one-shot decoded\n",
					start);
				abort();
			}
			break;
		}
		if (used == 0 || (size_t)used > piece)
			abort(); /* no progress would spin the link's read loop */
		pos += (size_t)used;
		if (m) {
			struct wire_msg *one = NULL;
			fuzz_touch_msg(m);
			err[0] = '\0';
			int rc = wire_decode(s + start, pos - start, max_frame, &one, err);
			if (rc) {
				fprintf(stderr, "fuzz reader: streamed frame [%zu, %zu) decoded, one-shot "
					"refused: %s\n", start, pos, err);
				abort();
			}
			same(m, one, max_frame);
			wire_msg_free(one);
			wire_msg_free(m);
			start = pos;
		}
		if (wire_reader_pending(&r) != pos - start)
			abort();
	}
	if (pos == n && start == n)
		fuzz_accepted++; /* every byte in whole frames */
	wire_reader_reset(&r);
	if (wire_reader_pending(&r) || wire_reader_remaining(&r))
		abort();
	return 0;
}
