/* The bounded inbox between a stage's event thread (which pushes decoded frames) and its compute
 * thread (which takes them). When the train batches in it reach the limit the oldest is dropped
 * and counted; test, predict and stop frames are never dropped. */
#ifndef NK_INBOX_H
#define NK_INBOX_H

#include <pthread.h>

#include "stages/wire.h"

struct inbox {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct wire_msg *head, *tail;
	int count;                /* messages queued */
	int ntrain;               /* of which droppable (phase=train batches) */
	int limit;                /* train batches kept; also the backlog above which reading pauses */
	long dropped;             /* train batches evicted because the inbox was full */
	volatile int newer;       /* set on every push, cleared by inbox_take: the anytime flag */
	int want_space;           /* the pusher paused and waits for on_space */
	void (*on_space)(void *arg); /* called (by the taker, unlocked) once the backlog shrinks */
	void *on_space_arg;
};

int inbox_new(struct inbox **out, int limit);
/* Frees the messages still queued. */
void inbox_free(struct inbox *b);

/* Queue m (ownership passes). Returns 1 when the backlog of undroppable messages reached the
 * limit: the caller should stop reading until on_space is called. */
int inbox_push(struct inbox *b, struct wire_msg *m);
/* Wait up to timeout_s for a message. A non-train message at the head is returned first (FIFO);
 * otherwise the newest train batch before the next non-train message, the older ones being freed
 * and counted in *skipped. NULL when nothing came. */
struct wire_msg *inbox_take(struct inbox *b, double timeout_s, long *skipped);
int inbox_len(struct inbox *b);
long inbox_dropped(struct inbox *b);
/* Train batches waiting now. */
int inbox_train_len(struct inbox *b);

#endif
