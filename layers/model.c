/* Sequential model: builds the layers of one stage from its chain-file description, lays their
 * parameters out in one array, wires each layer's input to the previous layer's output. */
#include "layers/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers/xent.h"

static int model_add(struct model *m, const struct chain_layer *spec, int idx, int in_head,
		     struct layer_dims in, char err[NK_ERR_LEN])
{
	struct layer *l = &m->layers[idx];
	l->ops = layer_find(spec->kind);
	if (!l->ops)
		return nk_errf(err, NK_EINVAL, "unknown layer kind '%s'", spec->kind);
	int last = idx == m->nlayers - 1;
	if (in_head && last)
		snprintf(l->name, sizeof l->name, "head");
	else
		snprintf(l->name, sizeof l->name, "%s%s%d", in_head ? "head_" : "", spec->kind,
			 in_head ? idx - m->nbody + 1 : idx + 1);
	l->in = in;
	l->max_batch = m->max_batch;
	struct chain_layer s = *spec;
	if (in_head && last && s.units == 0)
		s.units = m->classes;
	int rc = l->ops->init(l, &s, err);
	if (rc)
		return rc;
	if (dims_values(l->out) <= 0)
		return nk_errf(err, NK_ESHAPE, "%s: %s output (%d x %d x %d)", l->name,
			       dims_values(l->out) < 0 ? "too large an" : "an empty", l->out.c, l->out.h, l->out.w);
	return 0;
}

/* Activation buffers are often a power of two long; a stagger of 16 floats (one cache line)
 * between them keeps a layer's x and y from mapping to the same cache sets and 4 KiB aliases. */
#define STAGGER 16

/* Give every layer its parameter views, activations and input/gradient links. */
static int model_wire(struct model *m, char err[NK_ERR_LEN])
{
	size_t acts = 0;
	m->nparams = m->nbufs = 0;
	for (int i = 0; i < m->nlayers; i++) {
		m->nparams += m->layers[i].nparams;
		m->nbufs += m->layers[i].nbuf;
		acts += 2 * ((size_t)m->max_batch * dims_size(m->layers[i].out) + STAGGER);
	}
	m->params = nk_floats(m->nparams);
	m->grads = nk_floats(m->nparams);
	m->arena = nk_floats(acts);
	m->bufs = nk_floats(m->nbufs);
	if (!m->params || !m->grads || !m->arena || !m->bufs)
		return nk_errf(err, NK_ENOMEM, "out of memory for %zu parameters and %zu activations",
			       m->nparams, acts);
	size_t p = 0, a = 0, bu = 0;
	int trainable_before = 0;
	for (int i = 0; i < m->nlayers; i++) {
		struct layer *l = &m->layers[i];
		size_t len = (size_t)m->max_batch * dims_size(l->out) + STAGGER;
		l->w = m->params + p;
		l->g = m->grads + p;
		p += l->nparams;
		l->buf = m->bufs + bu;
		bu += l->nbuf;
		l->y = m->arena + a;
		l->dy = m->arena + a + len;
		a += 2 * len;
		if (i > 0) {
			l->x = m->layers[i - 1].y;
			/* Gradients below the first trainable layer are never used. */
			l->dx = trainable_before ? m->layers[i - 1].dy : NULL;
		}
		trainable_before |= l->nparams > 0;
	}
	return 0;
}

int model_new(struct model **out, const struct chain_stage *st, struct layer_dims in, int classes,
	      int max_batch, uint64_t seed, char err[NK_ERR_LEN])
{
	*out = NULL;
	if (st->nhead <= 0 || max_batch <= 0 || max_batch > (1 << 20) || classes <= 0 || dims_values(in) <= 0)
		return nk_errf(err, NK_EINVAL, "stage %s: needs a head, a batch size and an input shape",
			       st->name);
	struct model *m = calloc(1, sizeof *m);
	if (!m)
		return nk_errf(err, NK_ENOMEM, "out of memory");
	m->nbody = st->nlayers;
	m->nlayers = st->nlayers + st->nhead;
	m->in = in;
	m->classes = classes;
	m->max_batch = max_batch;
	m->layers = calloc(m->nlayers, sizeof *m->layers);
	int rc = m->layers ? 0 : nk_errf(err, NK_ENOMEM, "out of memory");
	struct layer_dims d = in;
	for (int i = 0; rc == 0 && i < m->nlayers; i++) {
		int in_head = i >= m->nbody;
		rc = model_add(m, in_head ? &st->head[i - m->nbody] : &st->layers[i], i, in_head, d, err);
		if (rc == 0)
			d = m->layers[i].out;
	}
	if (rc == 0 && dims_size(d) != classes)
		rc = nk_errf(err, NK_ESHAPE, "stage %s: head gives %d outputs for %d classes", st->name,
			     dims_size(d), classes);
	if (rc == 0)
		rc = model_wire(m, err);
	if (rc) {
		model_free(m);
		return rc;
	}
	struct nk_rng r;
	rng_seed(&r, seed);
	for (int i = 0; i < m->nlayers; i++)
		if (m->layers[i].ops->init_params)
			m->layers[i].ops->init_params(&m->layers[i], &r);
	/* A boosting stage starts as the identity on its upstream's answer: its classifier's
	 * weights are 0 (a random one would add noise to logits that are already good). */
	if (st->boost && !m->layers[m->nlayers - 1].binary)
		memset(m->layers[m->nlayers - 1].w, 0, sizeof(float) * m->layers[m->nlayers - 1].nparams);
	*out = m;
	return 0;
}

void model_free(struct model *m)
{
	if (!m)
		return;
	for (int i = 0; m->layers && i < m->nlayers; i++)
		if (m->layers[i].ops && m->layers[i].ops->free)
			m->layers[i].ops->free(&m->layers[i]);
	free(m->layers);
	free(m->params);
	free(m->grads);
	free(m->arena);
	free(m->bufs);
	free(m);
}

void model_set_training(struct model *m, int on)
{
	for (int i = 0; i < m->nlayers; i++)
		m->layers[i].training = on;
}

void model_forward_from(struct model *m, int from, int n)
{
	for (int i = from; i < m->nlayers; i++)
		m->layers[i].ops->forward(&m->layers[i], n);
	if (m->offset) {
		float *z = m->layers[m->nlayers - 1].y;
		for (size_t j = 0; j < (size_t)n * m->classes; j++)
			z[j] += m->offset[j];
	}
}

void model_forward(struct model *m, const float *x, int n)
{
	m->layers[0].x = x;
	model_forward_from(m, 0, n);
}

void model_forward_to(struct model *m, const float *x, int to, int n)
{
	m->layers[0].x = x;
	for (int i = 0; i < to; i++)
		m->layers[i].ops->forward(&m->layers[i], n);
}

void model_forward_body(struct model *m, const float *x, int n)
{
	model_forward_to(m, x, m->nbody, n);
}

double model_loss(struct model *m, const int32_t *y, int n, int *correct, int grad)
{
	struct layer *h = &m->layers[m->nlayers - 1];
	return xent(h->y, y, n, m->classes, grad ? h->dy : NULL, correct);
}

void model_backward(struct model *m, int n)
{
	for (int i = m->nlayers - 1; i >= 0; i--)
		m->layers[i].ops->backward(&m->layers[i], n);
}

const float *model_logits(const struct model *m)
{
	return m->layers[m->nlayers - 1].y;
}

const float *model_body_out(const struct model *m)
{
	return m->nbody ? m->layers[m->nbody - 1].y : m->layers[0].x;
}

struct layer_dims model_body_dims(const struct model *m)
{
	return m->nbody ? m->layers[m->nbody - 1].out : m->in;
}

long long model_macs(const struct model *m, int from, int to)
{
	long long s = 0;
	for (int i = from; i < to && i < m->nlayers; i++)
		if (m->layers[i].ops->macs)
			s += m->layers[i].ops->macs(&m->layers[i]);
	return s;
}
