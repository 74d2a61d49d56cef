/* Depth that pays: on a task that one conv stage cannot learn from its own loss, the second
 * stage of the chain can, so its test accuracy exceeds the first's. The task (made here): two
 * bars, each horizontal or vertical, side by side at a random place, 6 pixels apart; the label is
 * whether they have the same orientation. The first stage (conv 3x3, pool 2) sees at most one bar
 * in each of its features' 4x4 windows, and its linear head adds those features up, so it cannot
 * tell "same" from "different" (XNOR); the second stage's 5x5 conv over those features spans both
 * bars and can. Run with necklace-train (the whole chain, stage after stage: no network, so the
 * result counts batches, not seconds), plain and with the second stage boosting. */
#include "tests/run_test.h"

#define DSIDE 16

struct pairs {
	int n;
	uint64_t seed;
};

static void fill_pairs(uint8_t *img, uint8_t *lab, void *ctx)
{
	const struct pairs *c = ctx;
	struct nk_rng r;
	rng_seed(&r, c->seed);
	for (int i = 0; i < c->n; i++) {
		uint8_t *p = img + 16 + (size_t)i * DSIDE * DSIDE;
		for (int j = 0; j < DSIDE * DSIDE; j++)
			p[j] = (uint8_t)rng_below(&r, 40);
		int row = 1 + (int)rng_below(&r, DSIDE - 4), col = 1 + (int)rng_below(&r, DSIDE - 10);
		int o[2] = {(int)rng_below(&r, 2), (int)rng_below(&r, 2)};
		for (int b = 0; b < 2; b++) /* a 3x3 cell each, at col and col + 6 */
			for (int k = 0; k < 3; k++) {
				int y = o[b] ? row + k : row + 1, x = col + 6 * b + (o[b] ? 1 : k);
				p[y * DSIDE + x] = 255;
			}
		lab[8 + i] = (uint8_t)(o[0] == o[1]);
	}
}

static void write_pairs(const char *dir, const char *stem, int n, uint64_t seed)
{
	struct pairs c = {n, seed};
	write_idx_with(dir, stem, n, DSIDE, fill_pairs, &c);
}

/* The final test_acc of stages s0 and s1 after necklace-train on the task. */
static void train_pair(int boost, double acc[2])
{
	struct run r;
	char text[2048];
	cr_assert_not_null(nk_test_tmpdir(r.dir, sizeof r.dir));
	write_pairs(r.dir, "train", 4000, 1);
	write_pairs(r.dir, "test", 1000, 2);
	snprintf(text, sizeof text,
		 "{\"chain\": \"t-depth\", \"seed\": 5, \"boost\": %s,\n"
		 " \"data\": {\"format\": \"idx\", \"dir\": \"%s\", \"train\": [\"train-images\", \"train-labels\"],\n"
		 "          \"test\": [\"test-images\", \"test-labels\"], \"classes\": 2, \"batch\": 32, \"epochs\": 5},\n"
		 " \"stages\": [\n"
		 "  {\"name\": \"s0\", \"layers\": [{\"conv\": {\"filters\": 8, \"kernel\": 3, \"pad\": 1}}, \"relu\", \"maxpool\"],\n"
		 "   \"head\": \"linear\", \"optimizer\": {\"sgd\": {\"lr\": 0.02, \"momentum\": 0.9}}},\n"
		 "  {\"name\": \"s1\", \"layers\": [{\"conv\": {\"filters\": 16, \"kernel\": 5, \"pad\": 2}}, \"batchnorm\", \"relu\",\n"
		 "   \"maxpool\"], \"head\": {\"pooled\": {\"grid\": 2}},\n"
		 "   \"optimizer\": {\"sgd\": {\"lr\": 0.05, \"momentum\": 0.9, \"schedule\": \"cosine\", \"warmup\": 0.05}}}]}\n",
		 boost ? "true" : "false", r.dir);
	snprintf(r.chain, sizeof r.chain, "%s/chain.json", r.dir);
	cr_assert_eq(nk_test_write(r.chain, text, strlen(text)), 0);
	const char *args[] = {"-c", r.chain, "--log-dir", r.dir, NULL};
	cr_assert_eq(run_prog_out("necklace-train", args, NULL, 600), 0, "necklace-train failed (%s)", r.dir);
	const char *needles[] = {" phase=test ", NULL};
	for (int i = 0; i < 2; i++) {
		snprintf(r.log[i], sizeof r.log[i], "%s/%s.log", r.dir, names[i]);
		acc[i] = last_value(r.log[i], needles, "test_acc");
		cr_assert_geq(acc[i], 0, "no test line in %s", r.log[i]);
	}
	remove_run(&r);
}

Test(depth, the_second_stage_learns_what_the_first_cannot, .timeout = 900)
{
	double acc[2];
	train_pair(0, acc);
	cr_assert_lt(acc[0], 0.70, "the first stage should not solve the task alone: %.4f", acc[0]);
	cr_assert_gt(acc[1], acc[0] + 0.15, "the second stage adds too little: %.4f -> %.4f", acc[0], acc[1]);
}

Test(depth, a_boosting_second_stage_learns_it_too, .timeout = 900)
{
	double acc[2];
	train_pair(1, acc);
	cr_assert_lt(acc[0], 0.70, "the first stage should not solve the task alone: %.4f", acc[0]);
	cr_assert_gt(acc[1], acc[0] + 0.15, "the second stage adds too little: %.4f -> %.4f", acc[0], acc[1]);
}
