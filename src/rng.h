/* Seeded pseudo-random numbers (xoshiro256**): same seed, same stream, on every machine. */
#ifndef NK_RNG_H
#define NK_RNG_H

#include <stdint.h>

struct nk_rng {
	uint64_t s[4]; /* whole state: copy it to save or restore a stream */
};

void rng_seed(struct nk_rng *r, uint64_t seed);
uint64_t rng_u64(struct nk_rng *r);
uint32_t rng_below(struct nk_rng *r, uint32_t n); /* uniform in [0, n), n > 0 */
double rng_uniform(struct nk_rng *r);             /* uniform in [0, 1) */
double rng_normal(struct nk_rng *r);              /* standard normal */

#endif
