/* Early-exit decisions on hand-made logits: the threshold applies to softmax probabilities (not
 * to logits), the entropy rule, every sample or none exiting, and which rule a stage gets. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "stages/exit.h"

#define K 10

static const struct exit_rule thr90 = {EXIT_THRESHOLD, 0.9};

Test(exit, threshold_is_on_probabilities_not_logits)
{
	/* top logit 3.0 is above 0.9, but ten near-equal logits give it p ~ 0.14 */
	float flat[K] = {3.0f, 2.9f, 2.8f, 2.7f, 2.6f, 2.5f, 2.4f, 2.3f, 2.2f, 2.1f};
	/* top logit 0.5 is below 0.9, but the others are far below: p ~ 0.965 */
	float peaked[K] = {-5, -5, -5, 0.5f, -5, -5, -5, -5, -5, -5};
	int pred = -1;
	double p, h;
	exit_softmax(flat, K, &p, &pred, &h);
	cr_assert_lt(p, 0.2, "p = %g", p);
	cr_assert_eq(exit_decide(&thr90, flat, K, &pred), 0, "a logit of 3 is not a probability");
	cr_assert_eq(pred, 0);
	exit_softmax(peaked, K, &p, &pred, &h);
	double want = exp(0.5) / (exp(0.5) + 9 * exp(-5.0));
	cr_assert_float_eq(p, want, 1e-9);
	cr_assert_eq(exit_decide(&thr90, peaked, K, &pred), 1);
	cr_assert_eq(pred, 3);
	struct exit_rule thr97 = {EXIT_THRESHOLD, 0.97};
	cr_assert_eq(exit_decide(&thr97, peaked, K, &pred), 0, "p %.4f is below 0.97", want);
}

Test(exit, entropy_rule)
{
	float uniform[K] = {0}, peaked[K] = {-4, -4, -4, -4, -4, -4, 4, -4, -4, -4};
	double p, h, direct = 0, z = 0;
	int pred;
	exit_softmax(uniform, K, &p, &pred, &h);
	cr_assert_float_eq(h, log((double)K), 1e-9, "uniform entropy %g", h);
	cr_assert_float_eq(p, 0.1, 1e-12);
	for (int j = 0; j < K; j++)
		z += exp(peaked[j]);
	for (int j = 0; j < K; j++)
		direct -= exp(peaked[j]) / z * log(exp(peaked[j]) / z);
	exit_softmax(peaked, K, &p, &pred, &h);
	cr_assert_float_eq(h, direct, 1e-9, "entropy %g, direct %g", h, direct);
	struct exit_rule ent = {EXIT_ENTROPY, 0.5};
	cr_assert_gt(direct, 0.01);
	cr_assert_lt(direct, 0.5);
	cr_assert_eq(exit_decide(&ent, peaked, K, &pred), 1);
	cr_assert_eq(pred, 6);
	cr_assert_eq(exit_decide(&ent, uniform, K, &pred), 0, "log 10 = 2.3 nats is not below 0.5");
	struct exit_rule tight = {EXIT_ENTROPY, direct * 0.99};
	cr_assert_eq(exit_decide(&tight, peaked, K, &pred), 0, "strictly below the limit");
}

Test(exit, all_exit_and_none_exit)
{
	enum { N = 6 };
	float lg[N][K];
	uint8_t out[N];
	int32_t pred[N];
	for (int i = 0; i < N; i++)
		for (int j = 0; j < K; j++)
			lg[i][j] = i == 0 ? 0.0f : (j == i ? 60.0f * i : -1.0f); /* sample 0: uniform */
	struct exit_rule all = {EXIT_THRESHOLD, 0}, none = {EXIT_THRESHOLD, 1.0}, off = {EXIT_NONE, 0};
	cr_assert_eq(exit_batch(&all, &lg[0][0], N, K, out, pred), N, "threshold 0: every sample");
	for (int i = 0; i < N; i++)
		cr_assert_eq(out[i], 1);
	cr_assert_eq(pred[3], 3);
	/* logits 300 apart round the top probability to exactly 1, yet threshold 1 exits none */
	cr_assert_eq(exit_batch(&none, &lg[0][0], N, K, out, pred), 0, "threshold 1: no sample");
	for (int i = 0; i < N; i++)
		cr_assert_eq(out[i], 0);
	cr_assert_eq(pred[5], 5, "predictions are given even when nothing exits");
	cr_assert_eq(exit_batch(&off, &lg[0][0], N, K, out, pred), 0);
	cr_assert_eq(exit_rule_active(&all), 1);
	cr_assert_eq(exit_rule_active(&none), 0);
	cr_assert_eq(exit_rule_active(&off), 0);
}

Test(exit, rule_of_a_stage)
{
	struct chain_stage cs;
	memset(&cs, 0, sizeof cs);
	struct exit_rule r = exit_rule_of(&cs, -1);
	cr_assert_eq(r.kind, EXIT_NONE);
	cs.exit_threshold = 0.8;
	r = exit_rule_of(&cs, -1);
	cr_assert(r.kind == EXIT_THRESHOLD && r.value == 0.8);
	r = exit_rule_of(&cs, 0.5); /* --threshold replaces the chain's rule */
	cr_assert(r.kind == EXIT_THRESHOLD && r.value == 0.5);
	r = exit_rule_of(&cs, 0);
	cr_assert(r.kind == EXIT_THRESHOLD && r.value == 0 && exit_rule_active(&r));
	cs.exit_threshold = 0;
	cs.exit_entropy = 0.3;
	r = exit_rule_of(&cs, -1);
	cr_assert(r.kind == EXIT_ENTROPY && r.value == 0.3);
	char buf[32];
	cr_assert_str_eq(exit_rule_str(&r, buf, sizeof buf), "entropy:0.3");
}
