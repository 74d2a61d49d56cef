/* The stage runtime: one stage of a chain on this device, its role given by its position. The
 * source (first) reads the data set and trains; every other stage trains on the newest batch in
 * its inbox (anytime: until a newer one waits). Each forwards its body output downstream. When
 * training ends the source streams the test set once (phase=test), then Stop, which every stage
 * passes on before it exits. */
#ifndef NK_STAGE_H
#define NK_STAGE_H

#include <signal.h>
#include <stddef.h>

#include "src/chain.h"

struct stage_opts {
	const char *logdir;        /* LOGDIR/NAME.log; NULL: no log file */
	int echo;                  /* also print the lines on stdout */
	double seconds;            /* source: train this long, then test and stop (0: data.epochs);
				    * others: stop after this long (0: when the Stop comes) */
	int inbox;                 /* train batches the inbox holds (0: 4) */
	size_t max_frame;          /* 0: WIRE_MAX_FRAME_DEFAULT */
	double flush_s;            /* how long the end waits for the downstream to take the last
				    * frames and the Stop (0: 60) */
	const volatile sig_atomic_t *stop; /* set by the program on SIGINT/SIGTERM: stop now */
};

/* What a chain needs before anything starts: every stage but the first has a distinct "listen"
 * address that resolves; with the data set's sample shape known (in.c > 0), every stage's model
 * and optimizer build (the shapes chain up). Programs refuse a chain failing this (exit 2). */
int stage_check_chain(const struct chain *c, int in_c, int in_h, int in_w, char err[NK_ERR_LEN]);
/* Sample shape of the chain's data set, from its test (else training) files. */
int stage_data_dims(const struct chain *c, int *in_c, int *in_h, int *in_w, char err[NK_ERR_LEN]);

/* Run stage `index` until the chain stops, a signal or the time limit. 0 on a clean end; a
 * negative enum nk_err with err filled otherwise (NK_EINVAL/NK_ENOENT/NK_EFORMAT: configuration). */
int stage_run(const struct chain *c, int index, const struct stage_opts *o, char err[NK_ERR_LEN]);

/* Whether an error of stage_run/stage_check_chain is the user's configuration (exit status 2). */
int stage_err_is_config(int rc);

#endif
