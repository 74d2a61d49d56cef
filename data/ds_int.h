/* Helpers shared by the dataset readers (not part of the API). */
#ifndef NK_DS_INT_H
#define NK_DS_INT_H

#include "data/ds.h"

/* A dataset of n samples of c x h x w with its one pixel buffer (floats: xf instead of x) and
 * labels; what names the source in the out-of-memory message. NULL with err filled. */
struct ds *ds_alloc(int n, int c, int h, int w, int classes, int floats, const char *what,
		    char *err);
/* Count one skipped file and keep its "PATH: why" note while there is room. */
void ds_note(struct ds *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Replace uint8 storage by float storage holding the same values (not scaled). */
int ds_to_floats(struct ds *d, char *err);

#endif
