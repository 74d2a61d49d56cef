/* A hostile peer's moves against a stage's listen port, for tests/test_hostile.c and the replay
 * program tests/attack.c: a Hello that anyone with the chain file can send, batches of any
 * shape and values, one byte at a time of a frame that never ends. Each returns 0 or -1 (the
 * stage closed the connection, or it could not be made). */
#ifndef NK_ATTACK_H
#define NK_ATTACK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "src/chain.h"
#include "stages/wire.h"

static inline int attack_send(int fd, const struct wire_msg *m)
{
	uint8_t *fr;
	size_t len;
	char err[NK_ERR_LEN];
	if (wire_encode(m, WIRE_MAX_FRAME_DEFAULT, &fr, &len, err))
		return -1;
	ssize_t k = send(fd, fr, len, MSG_NOSIGNAL);
	wire_frame_free(fr);
	return k == (ssize_t)len ? 0 : -1;
}

/* The Hello of stage `sender` of chain c. */
static inline int attack_hello(int fd, const struct chain *c, const char *sender)
{
	struct wire_msg m = {.kind = WIRE_HELLO};
	m.hello.version = WIRE_VERSION;
	snprintf(m.hello.chain, sizeof m.hello.chain, "%s", c->name);
	m.hello.hash = c->hash;
	snprintf(m.hello.sender, sizeof m.hello.sender, "%s", sender);
	return attack_send(fd, &m);
}

/* A batch of n x c x h x w values v, labels 0 (none when n is 0). */
static inline int attack_batch(int fd, uint64_t id, enum wire_phase ph, int n, int c, int h, int w, float v)
{
	size_t len = (size_t)n * c * h * w;
	float *x = malloc(sizeof(float) * (len ? len : 1));
	int32_t *y = calloc((size_t)(n ? n : 1), sizeof *y);
	if (!x || !y) {
		free(x);
		free(y);
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		x[i] = v;
	struct wire_msg m = {.kind = WIRE_BATCH};
	m.batch = (struct wire_batch){.id = id, .phase = ph, .n = n, .c = c, .h = h, .w = w, .x = x,
				      .y = n ? y : NULL, .last = ph == WIRE_TEST};
	int rc = attack_send(fd, &m);
	free(x);
	free(y);
	return rc;
}

static inline int attack_stop(int fd, const char *reason)
{
	struct wire_msg m = {.kind = WIRE_STOP};
	snprintf(m.reason, sizeof m.reason, "%s", reason);
	return attack_send(fd, &m);
}

/* Byte k of a 200-byte frame: a Hello that is never complete in any reasonable time. */
static inline int attack_dribble(int fd, int k)
{
	static const uint8_t prefix[4] = {0, 0, 0, 200};
	return send(fd, k < 4 ? &prefix[k] : (const uint8_t *)"A", 1, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* The bad first batches (issue cases 6 and 8) for a stage whose input is c x h x w, in the
 * order sent; refused says which the stage must refuse (the others are finite but absurd: it
 * takes them and must not let them change its model). */
struct attack_case {
	enum wire_phase ph;
	int n, c, h, w;
	float v;
	int refused;
};

static inline int attack_cases(struct attack_case *out, int c, int h, int w)
{
	const float inf = __builtin_inff(), nan = __builtin_nanf("");
	const struct attack_case k[] = {
		{WIRE_TRAIN, 1, 1, 1, 1, 0.5f, 1},       {WIRE_TRAIN, 0, 0, 0, 0, 0, 1},
		{WIRE_TRAIN, 0, 1, 30000, 30000, 0, 1},  {WIRE_TRAIN, 0, 65537, 65536, 1, 0, 1},
		{WIRE_TRAIN, 4, 1, 28, 28, 0.5f, 1},     {WIRE_TRAIN, 32, c, h, w, inf, 1},
		{WIRE_TEST, 32, c, h, w, nan, 1},        {WIRE_TRAIN, 32, c, h, w, 1e30f, 0},
		{WIRE_TRAIN, 32, c, h, w, -3e38f, 0},
	};
	int n = (int)(sizeof k / sizeof k[0]);
	for (int i = 0; i < n; i++)
		out[i] = k[i];
	return n;
}
#define ATTACK_MAX_CASES 16

#endif
