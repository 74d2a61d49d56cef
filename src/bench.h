/* necklace-bench figures kept outside src/bench.c, one file each. src/bench.c includes this after
 * its struct bench_opts, which the table adapters below read. */
#ifndef NK_BENCH_H
#define NK_BENCH_H

/* Frames/s and MB/s of 512x32x8x8 float batches between two stages' links over loopback, through
 * the real path (encode, outbox, libevent, reader, inbox); prints bench=link mb_s= frames_s=.
 * Returns 0, or an exit status for necklace-bench. */
int bench_link_run(double seconds);

static inline int bench_link(const struct bench_opts *o)
{
	return bench_link_run(o->seconds);
}

#endif
