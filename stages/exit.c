/* Early-exit decisions on probabilities: softmax in double, then the stage's rule. */
#include "stages/exit.h"

#include <math.h>
#include <stdio.h>

struct exit_rule exit_rule_of(const struct chain_stage *cs, double override)
{
	struct exit_rule r = {EXIT_NONE, 0};
	if (override >= 0)
		r = (struct exit_rule){EXIT_THRESHOLD, override};
	else if (cs->exit_threshold > 0)
		r = (struct exit_rule){EXIT_THRESHOLD, cs->exit_threshold};
	else if (cs->exit_entropy > 0)
		r = (struct exit_rule){EXIT_ENTROPY, cs->exit_entropy};
	return r;
}

int exit_rule_active(const struct exit_rule *r)
{
	return (r->kind == EXIT_THRESHOLD && r->value < 1) || (r->kind == EXIT_ENTROPY && r->value > 0);
}

void exit_softmax(const float *logits, int k, double *pmax, int *argmax, double *entropy)
{
	int best = 0;
	for (int j = 1; j < k; j++)
		if (logits[j] > logits[best])
			best = j;
	double top = logits[best], s = 0, sz = 0;
	for (int j = 0; j < k; j++) {
		double z = (double)logits[j] - top, e = exp(z);
		s += e;
		sz += e * z;
	}
	/* p_j = e_j / s; H = -sum p_j log p_j = log s - sum p_j z_j */
	*argmax = best;
	*pmax = 1.0 / s;
	*entropy = log(s) - sz / s;
}

int exit_decide(const struct exit_rule *r, const float *logits, int k, int *pred)
{
	double p, h;
	exit_softmax(logits, k, &p, pred, &h);
	switch (r->kind) {
	case EXIT_THRESHOLD:
		return r->value < 1 && p >= r->value;
	case EXIT_ENTROPY:
		return h < r->value;
	default:
		return 0;
	}
}

int exit_batch(const struct exit_rule *r, const float *logits, int n, int k, uint8_t *out,
	       int32_t *pred)
{
	int count = 0;
	for (int i = 0; i < n; i++) {
		int c;
		out[i] = (uint8_t)exit_decide(r, logits + (size_t)i * k, k, &c);
		pred[i] = c;
		count += out[i];
	}
	return count;
}

const char *exit_rule_str(const struct exit_rule *r, char *buf, int len)
{
	if (r->kind == EXIT_THRESHOLD)
		snprintf(buf, (size_t)len, "threshold:%g", r->value);
	else if (r->kind == EXIT_ENTROPY)
		snprintf(buf, (size_t)len, "entropy:%g", r->value);
	else
		snprintf(buf, (size_t)len, "none");
	return buf;
}
