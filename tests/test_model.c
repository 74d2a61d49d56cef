/* The sequential model: one parameter array with aliasing views, seeded initialisation, forward
 * equal to the layers composed by hand, end-to-end gradient by finite differences. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "layers/model.h"

static struct chain_layer seed_body[] = {
	{.kind = "conv", .filters = 4, .kernel = 3, .stride = 2, .pad = 1},
	{.kind = "relu"},
	{.kind = "maxpool", .size = 2},
};
static struct chain_layer seed_head[] = {{.kind = "linear", .units = 0}};

static struct model *build(uint64_t seed, int nbody)
{
	struct chain_stage st = {.name = "t", .layers = seed_body, .nlayers = nbody, .head = seed_head,
				 .nhead = 1};
	struct model *m;
	char err[NK_ERR_LEN];
	cr_assert_eq(model_new(&m, &st, (struct layer_dims){2, 9, 9}, 3, 5, seed, err), 0, "%s", err);
	return m;
}

Test(model, views_alias_one_array)
{
	struct model *m = build(1, 3);
	size_t off = 0;
	for (int i = 0; i < m->nlayers; i++) {
		struct layer *l = &m->layers[i];
		cr_assert_eq(l->w, m->params + off, "layer %s", l->name);
		cr_assert_eq(l->g, m->grads + off, "layer %s", l->name);
		off += l->nparams;
	}
	cr_assert_eq(off, m->nparams);
	cr_assert_eq(m->nparams, (size_t)(4 * 2 * 9 + 4) + (3 * 4 * 2 * 2 + 3));
	/* A write through the array is seen through the view, and the other way round. */
	m->params[0] = 42.0f;
	cr_assert_eq(m->layers[0].w[0], 42.0f);
	m->layers[3].w[1] = -7.0f;
	cr_assert_eq(m->params[m->layers[0].nparams + 1], -7.0f);
	cr_assert_str_eq(m->layers[0].name, "conv1");
	cr_assert_str_eq(m->layers[3].name, "head");
	model_free(m);
}

Test(model, same_seed_same_weights)
{
	struct model *a = build(5, 3), *b = build(5, 3), *c = build(6, 3);
	cr_assert_eq(memcmp(a->params, b->params, sizeof(float) * a->nparams), 0);
	cr_assert_neq(memcmp(a->params, c->params, sizeof(float) * a->nparams), 0);
	model_free(a);
	model_free(b);
	model_free(c);
	model_free(NULL);
}

Test(model, forward_composes_layers)
{
	struct model *m = build(2, 3);
	float x[5 * 162];
	for (int i = 0; i < 5 * 162; i++)
		x[i] = sinf(i * 0.37f);
	model_forward(m, x, 5);
	/* conv 2x9x9 -> 4x5x5, relu, maxpool 2 -> 4x2x2, linear 16 -> 3, computed directly. */
	const float *w = m->layers[0].w, *b = w + 72, *hw = m->layers[3].w, *hb = hw + 48;
	for (int n = 0; n < 5; n++) {
		float conv[4][5][5], pooled[16];
		for (int q = 0; q < 4; q++)
			for (int oh = 0; oh < 5; oh++)
				for (int ow = 0; ow < 5; ow++) {
					float s = b[q];
					for (int c = 0; c < 2; c++)
						for (int i = 0; i < 3; i++)
							for (int j = 0; j < 3; j++) {
								int ih = oh * 2 - 1 + i, iw = ow * 2 - 1 + j;
								if (ih >= 0 && iw >= 0 && ih < 9 && iw < 9)
									s += w[((q * 2 + c) * 3 + i) * 3 + j] *
									     x[n * 162 + c * 81 + ih * 9 + iw];
							}
					conv[q][oh][ow] = s > 0 ? s : 0;
				}
		for (int q = 0; q < 4; q++)
			for (int ph = 0; ph < 2; ph++)
				for (int pw = 0; pw < 2; pw++)
					pooled[q * 4 + ph * 2 + pw] = fmaxf(
						fmaxf(conv[q][2 * ph][2 * pw], conv[q][2 * ph][2 * pw + 1]),
						fmaxf(conv[q][2 * ph + 1][2 * pw], conv[q][2 * ph + 1][2 * pw + 1]));
		for (int o = 0; o < 3; o++) {
			float s = hb[o];
			for (int i = 0; i < 16; i++)
				s += hw[o * 16 + i] * pooled[i];
			cr_assert_float_eq(model_logits(m)[n * 3 + o], s, 1e-5, "sample %d logit %d", n, o);
		}
	}
	cr_assert_eq(model_body_out(m), m->layers[2].y);
	cr_assert_eq(model_body_dims(m).c, 4);
	cr_assert_eq(model_macs(m, 0, 4), 4 * 25 * 18 + 3 * 16);
	model_free(m);
}

Test(model, gradient_matches_finite_differences)
{
	struct model *m = build(3, 3);
	float x[5 * 162];
	int32_t y[5] = {0, 1, 2, 1, 0};
	for (int i = 0; i < 5 * 162; i++)
		x[i] = cosf(i * 0.91f);
	model_forward(m, x, 5);
	model_loss(m, y, 5, NULL, 1);
	model_backward(m, 5);
	float *g = malloc(sizeof(float) * m->nparams);
	memcpy(g, m->grads, sizeof(float) * m->nparams);
	for (size_t i = 0; i < m->nparams; i += 3) {
		float keep = m->params[i];
		m->params[i] = keep + 1e-3f;
		model_forward(m, x, 5);
		double lp = model_loss(m, y, 5, NULL, 0);
		m->params[i] = keep - 1e-3f;
		model_forward(m, x, 5);
		double lm = model_loss(m, y, 5, NULL, 0);
		m->params[i] = keep;
		double num = (lp - lm) / 2e-3;
		cr_expect(fabs(num - g[i]) <= 2e-3 + 2e-2 * fabs(num), "param %zu: fd %g backward %g", i, num, g[i]);
	}
	free(g);
	model_free(m);
}

Test(model, refuses_head_that_does_not_give_classes)
{
	struct chain_layer head[] = {{.kind = "linear", .units = 4}};
	struct chain_stage st = {.name = "t", .head = head, .nhead = 1};
	struct model *m;
	char err[NK_ERR_LEN];
	cr_assert_eq(model_new(&m, &st, (struct layer_dims){1, 4, 4}, 3, 2, 1, err), NK_ESHAPE);
	cr_assert(strstr(err, "4 outputs for 3 classes"), "%s", err);
	cr_assert_null(m);
	struct chain_layer bad[] = {{.kind = "lstm"}};
	st.layers = bad;
	st.nlayers = 1;
	cr_assert_eq(model_new(&m, &st, (struct layer_dims){1, 4, 4}, 4, 2, 1, err), NK_EINVAL);
	cr_assert(strstr(err, "lstm"), "%s", err);
}

Test(model, empty_body_passes_input_downstream)
{
	struct model *m = build(4, 0);
	float x[5 * 162] = {0};
	model_forward(m, x, 5);
	cr_assert_eq(model_body_out(m), x);
	cr_assert_eq(model_body_dims(m).h, 9);
	model_free(m);
}

Test(model, offset_adds_upstream_logits_to_the_head)
{
	/* A boosting stage: its logits are its head's plus the upstream's, and its loss is the
	 * cross-entropy of the sum (so that its head learns a correction to the upstream's). */
	struct model *m = build(3, 2);
	const int n = 4, K = m->classes;
	float *x = nk_floats((size_t)n * dims_size(m->in)), *off = nk_floats((size_t)n * K);
	float *plain = nk_floats((size_t)n * K);
	struct nk_rng r;
	rng_seed(&r, 5);
	for (int i = 0; i < n * dims_size(m->in); i++)
		x[i] = (float)rng_normal(&r);
	for (int i = 0; i < n * K; i++)
		off[i] = (float)(3 * rng_normal(&r));
	int32_t y[4] = {1, 0, 2, 2};
	model_forward(m, x, n);
	memcpy(plain, model_logits(m), sizeof(float) * n * K);
	m->offset = off;
	model_forward(m, x, n);
	for (int i = 0; i < n * K; i++)
		cr_assert_float_eq(model_logits(m)[i], plain[i] + off[i], 1e-5);
	/* The loss is the cross-entropy of the sum. */
	double want = 0;
	for (int i = 0; i < n; i++) {
		double mx = -INFINITY, s = 0;
		for (int k = 0; k < K; k++)
			mx = fmax(mx, plain[i * K + k] + off[i * K + k]);
		for (int k = 0; k < K; k++)
			s += exp(plain[i * K + k] + off[i * K + k] - mx);
		want += log(s) + mx - (plain[i * K + y[i]] + off[i * K + y[i]]);
	}
	cr_assert_float_eq(model_loss(m, y, n, NULL, 0), want / n, 1e-5);
	free(x);
	free(off);
	free(plain);
	model_free(m);
}

Test(model, a_boosting_stage_starts_at_its_upstreams_answer)
{
	struct chain_stage st = {.name = "t", .layers = seed_body, .nlayers = 3, .head = seed_head,
				 .nhead = 1, .boost = 1};
	struct model *m;
	char err[NK_ERR_LEN];
	cr_assert_eq(model_new(&m, &st, (struct layer_dims){2, 9, 9}, 3, 5, 1, err), 0, "%s", err);
	float x[2 * 2 * 81], off[6] = {1, -2, 0.5f, 3, 0, -1};
	for (int i = 0; i < 2 * 2 * 81; i++)
		x[i] = (float)(i % 7) - 3;
	m->offset = off;
	model_forward(m, x, 2);
	cr_assert_arr_eq(model_logits(m), off, sizeof off, "the head adds nothing at first");
	cr_assert(m->layers[0].w[0] != 0.0f, "the body is initialised as usual");
	model_free(m);
}
