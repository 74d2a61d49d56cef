/* The stage runtime: one stage of a chain on this device, its role given by its position. The
 * source (first) reads the data set and trains; every other stage trains on the newest batch in
 * its inbox (anytime: until a newer one waits). Each forwards its body output downstream. Every
 * data.test_every train batches (else at epoch ends) and when training ends the source streams the
 * test set (phase=test) and each stage logs its head's test accuracy; then Stop, which every stage
 * passes on before it exits. Stages checkpoint to STATEDIR/NAME.ckpt and resume from it.
 * In predict mode the source streams the test set (phase=predict) through the trained chain and
 * samples leave it at the first stage confident enough (stages/exit.h); the last stage reached
 * writes the report. */
#ifndef NK_STAGE_H
#define NK_STAGE_H

#include <signal.h>
#include <stddef.h>

#include "layers/layer.h"
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
	const char *state_dir;     /* checkpoints; NULL: the chain's state_dir */
	int fresh;                 /* training: ignore an existing checkpoint (it is overwritten) */
	int predict;               /* predict mode: needs the checkpoint; no training */
	double threshold;          /* predict: >= 0 replaces every stage's exit rule; < 0: the chain's */
	double rate;               /* source: > 0 replaces data.rate (batches/s) */
	double wait_s;             /* how long a closed downstream is waited for before test frames
				    * are skipped, or predict answers given here (0: 3) */
	int data_c, data_h, data_w; /* the data set's sample shape, when the program found it
				    * (stage_data_dims); 0: stage_run finds it */
};

/* Read and check this stage's checkpoint before anything starts: NK_ENOENT when there is none
 * (in predict mode an error, with err filled; in training a fresh start), NK_EFORMAT/NK_EINVAL
 * for a corrupt or foreign one. *out may be NULL (only checking). */
struct ckpt;
int stage_read_ckpt(const struct chain *c, int index, const struct stage_opts *o, struct ckpt **out,
		    char err[NK_ERR_LEN]);

/* What a chain needs before anything starts: every stage but the first has a distinct "listen"
 * address that resolves; with the data set's sample shape known (in.c > 0), every stage's model
 * and optimizer build (the shapes chain up). Programs refuse a chain failing this (exit 2). */
int stage_check_chain(const struct chain *c, int in_c, int in_h, int in_w, char err[NK_ERR_LEN]);
/* Sample shape of the chain's data set, from its test (else training) files, else data.shape
 * when they cannot be read here; NK_ESHAPE when the two disagree. */
int stage_data_dims(const struct chain *c, int *in_c, int *in_h, int *in_w, char err[NK_ERR_LEN]);

/* The input shape of stage upto, from the data set's sample shape in: the shapes chain up. */
int stage_input_dims(const struct chain *c, int upto, struct layer_dims in, struct layer_dims *out,
		     char err[NK_ERR_LEN]);

/* Run stage `index` until the chain stops, a signal or the time limit. 0 on a clean end; a
 * negative enum nk_err with err filled otherwise (NK_EINVAL/NK_ENOENT/NK_EFORMAT: configuration). */
int stage_run(const struct chain *c, int index, const struct stage_opts *o, char err[NK_ERR_LEN]);

/* Whether an error of stage_run/stage_check_chain is the user's configuration (exit status 2). */
int stage_err_is_config(int rc);

#endif
