/* One stage's training state as every program drives it: model, optimizer, the window behind
 * each phase=train log line, the accumulators behind each phase=test line, and its log file.
 * necklace-train strings trainers together in one process; the stage runtime drives one. */
#ifndef NK_TRAINER_H
#define NK_TRAINER_H

#include <stdio.h>

#include "data/ds.h"
#include "layers/model.h"
#include "optim/optim.h"
#include "src/chain.h"

/* Keys the network runtime adds to train lines (have = 0: none). */
struct trainer_net {
	int have;
	int inbox;
	long dropped;
	double rtt_ms;
	long unsent;             /* frames this stage could not hand downstream (0: key left out) */
	long refused;            /* batches refused: they did not fit the model (0: key left out) */
	long sent, taken;        /* train batches sent downstream, trained on (this run, so far) */
	double chain_ms;         /* in-chain time of the last batch forwarded (0: key left out) */
};

struct trainer {
	const struct chain *chain;
	const struct chain_stage *cs;
	int index;               /* position in the chain */
	struct model *m;
	struct optim *o;         /* NULL: this stage only forwards */
	FILE *log;               /* LOGDIR/NAME.log, or NULL */
	FILE *echo;              /* also write lines here (stdout), or NULL */
	double t0;               /* start of the run: t= is seconds since */
	int epoch;               /* for log lines; set by the driver */
	long batch;              /* last batch id trained on */
	long total;              /* batches the run will train on, when known: train lines then
				  * show of= and eta_s= (seconds left at the pace so far) */
	double deadline;         /* or the run's end on the nk_now() clock (0: none), for eta_s= */
	double progress;         /* fraction of the run done, set by a driver that is told it (a
				  * stage downstream of the source); < 0: derived from total or
				  * deadline. SGD's learning-rate schedule follows it. */
	long first;              /* batch id this run started from (a resumed run's is not 0) */
	long steps;              /* batches trained on (checkpointed: survives restarts) */
	long skipped;            /* batches whose loss was not finite or an outlier, or whose gradient
				  * was not finite: no step made (optim_loss_ok) */
	struct trainer_net net;
	double w_t0, w_loss;     /* current train-line window */
	long w_correct, w_n, w_steps, w_batches;
	double t_loss;           /* current test pass */
	long t_correct, t_n;
};

/* Open (append) LOGDIR/NAME.log, creating LOGDIR; NULL with err filled on failure. A driver that
 * opens the log itself sets t->log and clears it again before trainer_free. */
FILE *trainer_open_log(const char *dir, const char *name, char err[NK_ERR_LEN]);

/* Seed of stage idx's weights, derived from the chain's seed. */
uint64_t trainer_seed(uint64_t chain_seed, int idx);

/* Build stage `index` of chain for inputs of shape in; with_optim = 0 builds a forward-only
 * stage. logdir may be NULL. */
int trainer_new(struct trainer **out, const struct chain *c, int index, struct layer_dims in,
		int with_optim, const char *logdir, char err[NK_ERR_LEN]);
void trainer_free(struct trainer *t);

/* Fraction of the run done: t->progress when set, else from total (batches) or deadline. */
double trainer_progress(const struct trainer *t);
/* Train on one batch (anytime: stops once *newer is set), account it in the window and log a
 * phase=train line when the window is a second old. */
int trainer_train(struct trainer *t, const float *x, const int32_t *y, int n, long batch,
		  const volatile int *newer, char err[NK_ERR_LEN]);
/* Log what the data turned out to be: one line for the set (format, sizes, files skipped), one
 * per class name, one per skipped file and one for the normalisation in use. */
void trainer_log_data(struct trainer *t, const struct chain_data *dc, const struct ds *train,
		      const struct ds *test, const struct batcher_cfg *bc);
/* Log the pending train window now (no-op when empty). */
void trainer_flush(struct trainer *t);
/* The upstream stage's logits [n][classes] for the batch about to be trained, tested or
 * forwarded (NULL: none came). A stage that boosts adds them to its head's output; others ignore
 * them. */
void trainer_upstream(struct trainer *t, const float *logits);
/* Whether the next stage boosts, so that this one sends its logits with its body output. */
int trainer_sends_logits(const struct trainer *t);
/* Forward what goes downstream: returns the body output [n][body dims]; when logits is not NULL,
 * also the logits [n][classes] the next stage needs (NULL when it does not boost). */
const float *trainer_body(struct trainer *t, const float *x, int n, const float **logits);
/* Evaluate the head on a test batch (no training); the body output is then available from
 * model_body_out(t->m). */
void trainer_test_batch(struct trainer *t, const float *x, const int32_t *y, int n);
/* Log the phase=test line of the pass and reset its accumulators; returns its accuracy. */
double trainer_test_end(struct trainer *t);

#endif
