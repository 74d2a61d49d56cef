/* Bounded inbox: a mutex-guarded list of decoded frames, drop-oldest for train batches. */
#include "stages/inbox.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

static int droppable(const struct wire_msg *m)
{
	return m->kind == WIRE_BATCH && m->batch.phase == WIRE_TRAIN;
}

int inbox_new(struct inbox **out, int limit)
{
	struct inbox *b = calloc(1, sizeof *b);
	*out = NULL;
	if (!b)
		return NK_ENOMEM;
	b->limit = limit > 0 ? limit : 4;
	pthread_mutex_init(&b->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cv, &ca);
	pthread_condattr_destroy(&ca);
	*out = b;
	return 0;
}

void inbox_free(struct inbox *b)
{
	if (!b)
		return;
	while (b->head) {
		struct wire_msg *m = b->head;
		b->head = m->next;
		wire_msg_free(m);
	}
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/* Unlink m, whose predecessor is prev (NULL: m is the head). Lock held. */
static void unlink_msg(struct inbox *b, struct wire_msg *prev, struct wire_msg *m)
{
	if (prev)
		prev->next = m->next;
	else
		b->head = m->next;
	if (b->tail == m)
		b->tail = prev;
	m->next = NULL;
	b->count--;
	b->ntrain -= droppable(m);
}

int inbox_push(struct inbox *b, struct wire_msg *m)
{
	struct wire_msg *evicted = NULL;
	m->next = NULL;
	pthread_mutex_lock(&b->mu);
	if (droppable(m) && b->ntrain >= b->limit) {
		struct wire_msg *prev = NULL, *p = b->head;
		while (p && !droppable(p)) {
			prev = p;
			p = p->next;
		}
		unlink_msg(b, prev, p);
		evicted = p;
		b->dropped++;
	}
	if (b->tail)
		b->tail->next = m;
	else
		b->head = m;
	b->tail = m;
	b->count++;
	b->ntrain += droppable(m);
	b->newer = 1;
	int full = b->count - b->ntrain >= b->limit;
	if (full)
		b->want_space = 1;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	wire_msg_free(evicted);
	return full;
}

/* The message to hand out, unlinked; older train batches before it go to *stale. Lock held. */
static struct wire_msg *pick(struct inbox *b, struct wire_msg **stale)
{
	struct wire_msg *m = b->head;
	if (!droppable(m)) {
		unlink_msg(b, NULL, m);
		return m;
	}
	while (m->next && droppable(m->next)) {
		struct wire_msg *old = m;
		unlink_msg(b, NULL, old);
		old->next = *stale;
		*stale = old;
		m = b->head;
	}
	unlink_msg(b, NULL, m);
	return m;
}

struct wire_msg *inbox_take(struct inbox *b, double timeout_s, long *skipped)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	double end = ts.tv_sec + ts.tv_nsec * 1e-9 + (timeout_s > 0 ? timeout_s : 0);
	ts.tv_sec = (time_t)end;
	ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
	struct wire_msg *m = NULL, *stale = NULL;
	void (*space)(void *) = NULL;
	pthread_mutex_lock(&b->mu);
	while (!b->head) {
		if (pthread_cond_timedwait(&b->cv, &b->mu, &ts) == ETIMEDOUT)
			break;
	}
	if (b->head) {
		m = pick(b, &stale);
		b->newer = b->head != NULL;
		if (b->want_space && b->count - b->ntrain < b->limit) {
			b->want_space = 0;
			space = b->on_space;
		}
	}
	pthread_mutex_unlock(&b->mu);
	while (stale) {
		struct wire_msg *next = stale->next;
		wire_msg_free(stale);
		stale = next;
		if (skipped)
			(*skipped)++;
	}
	if (space)
		space(b->on_space_arg);
	return m;
}

int inbox_len(struct inbox *b)
{
	pthread_mutex_lock(&b->mu);
	int n = b->count;
	pthread_mutex_unlock(&b->mu);
	return n;
}

int inbox_train_len(struct inbox *b)
{
	pthread_mutex_lock(&b->mu);
	int n = b->ntrain;
	pthread_mutex_unlock(&b->mu);
	return n;
}

long inbox_dropped(struct inbox *b)
{
	pthread_mutex_lock(&b->mu);
	long n = b->dropped;
	pthread_mutex_unlock(&b->mu);
	return n;
}
