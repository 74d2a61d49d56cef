/* Early exits: whether a stage's head answers a sample itself, from the softmax of its logits
 * (probabilities, never raw logits): the top probability reaches a threshold, or the entropy of
 * the distribution is below a limit. */
#ifndef NK_EXIT_H
#define NK_EXIT_H

#include <stdint.h>

#include "src/chain.h"

enum exit_kind {
	EXIT_NONE = 0,      /* never exits early (the last stage answers everything anyway) */
	EXIT_THRESHOLD,     /* top softmax probability >= value; value >= 1 never exits */
	EXIT_ENTROPY,       /* entropy (nats) of the softmax < value */
};

struct exit_rule {
	enum exit_kind kind;
	double value;
};

/* Stage cs's rule from its "exit" block; override >= 0 replaces it by that threshold. */
struct exit_rule exit_rule_of(const struct chain_stage *cs, double override);
/* Whether any sample can exit by this rule (else the head need not run for it). */
int exit_rule_active(const struct exit_rule *r);
/* Softmax statistics of logits [k], in double: top probability, its class, entropy in nats. */
void exit_softmax(const float *logits, int k, double *pmax, int *argmax, double *entropy);
/* Whether one sample with these logits [k] exits; *pred gets its class. */
int exit_decide(const struct exit_rule *r, const float *logits, int k, int *pred);
/* The same for n samples of logits [n][k]: out[i] = 1 for those exiting, pred[i] every class;
 * returns how many exit. */
int exit_batch(const struct exit_rule *r, const float *logits, int n, int k, uint8_t *out,
	       int32_t *pred);
/* "threshold:0.9", "entropy:0.5" or "none" into buf. */
const char *exit_rule_str(const struct exit_rule *r, char *buf, int len);

#endif
