/* Private to the stage runtime (stages/stage.c, source.c, predict.c): one running stage. */
#ifndef NK_STAGE_INT_H
#define NK_STAGE_INT_H

#include <stdio.h>

#include "stages/ckpt.h"
#include "stages/inbox.h"
#include "stages/link.h"
#include "stages/stage.h"
#include "stages/trainer.h"

#define ORDERED_BACKLOG 2 /* test/predict frames queued for the downstream before the stage waits */

struct predict;

struct stage {
	const struct chain *c;
	int index;
	const struct stage_opts *o;
	const char *state_dir;
	struct trainer *t;          /* built at start, for the input shape fixed then */
	struct ckpt *ck;            /* read at start; applied (and freed) when t is built */
	struct predict *pr;         /* predict-mode state, once a predict batch comes */
	struct inbox *in;           /* NULL at the source */
	struct net *net;
	int has_down;
	FILE *log, *echo;
	double t0;
	long dropped;               /* train batches taken stale from the inbox */
	long unsent;                /* test batches not sent: the downstream was unreachable */
	long refused;               /* batches that did not fit the model (bad_batch) */
	long refused_train;         /* ... of them train batches */
	long sent;                  /* train batches handed to the downstream link */
	long taken;                 /* train batches trained on (a non-finite loss included) */
	int down_lost;              /* the downstream was found unreachable (no waiting for it now) */
	long epoch_batch;           /* source: batches taken in the current epoch */
	double ckpt_at;             /* when the last checkpoint was written (or the stage started) */
	volatile int tick;          /* the source's pace (set by the event thread) */
};

/* stages/stage.c */
void stage_log(struct stage *s, const char *phase, const char *event, const char *k, const char *v);
int stage_stopped(const struct stage *s);
/* Build the trainer for inputs of shape in and apply the checkpoint read at start. */
int stage_build(struct stage *s, struct layer_dims in, char err[NK_ERR_LEN]);
/* Checkpoint now (training only; failures are logged). */
void stage_checkpoint(struct stage *s);
/* After a trained batch: checkpoint when checkpoint_every batches have passed. */
void stage_trained(struct stage *s);
void stage_note_net(struct stage *s);
/* Whether the downstream can take a test/predict frame now: open with fewer than max frames
 * queued. Waits while it is open but busy; while it is closed, at most opts.wait_s (not at all
 * once it was found unreachable, until it is back). Logs the changes. */
int stage_down_ready(struct stage *s, int max);
/* Send the body output x for the batch b (shape from the model, sent/chain_ms stamped). */
/* After a full forward: the logits the downstream needs (it boosts), or NULL. */
const float *stage_logits(const struct stage *s);
/* logits: [n][classes] for a downstream that boosts, or NULL. */
int stage_forward(struct stage *s, const struct wire_batch *b, const float *x, const float *logits, double arrived,
		  char err[NK_ERR_LEN]);
/* Pass the Stop on (bounded wait). */
void stage_send_stop(struct stage *s, const char *reason);

/* stages/source.c: the first stage's loop (training, test passes, or predict streaming). */
int source_run(struct stage *s, char err[NK_ERR_LEN]);

/* stages/predict.c */
int predict_new(struct predict **out, struct stage *s, char err[NK_ERR_LEN]);
void predict_free(struct predict *p);
/* One predict batch at this stage (n may be 0: only answers to pass on); the source passes its
 * own batches with arrived = when it began. */
int predict_batch(struct stage *s, const struct wire_batch *b, double arrived, double link_ms,
		  char err[NK_ERR_LEN]);
/* Write the report now if answers are held and none was written (the pass was cut short). */
void predict_finish(struct stage *s);

#endif
