/* Chain-file parser: JSON text to a validated struct chain, or one message naming the bad spot. */
#include "src/chain_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- option tables ---- */

static const struct field top_fields[] = {
	SKIP_F("chain", REQ), {"seed", F_U64, OPT, 0, 0, 0, 0, 1, offsetof(struct chain, seed)},
	SKIP_F("data", REQ), SKIP_F("stages", REQ),
	SKIP_F("state_dir", OPT), INT_F("checkpoint_every", OPT, 0, 200, struct chain, checkpoint_every),
	INT_F("test_limit", OPT, 0, 0, struct chain, test_limit),
	NUM_F("checkpoint_s", R_GE0, 30, struct chain, checkpoint_s),
	BOOL_F("boost", 0, struct chain, boost), END_F,
};

static const struct field stage_fields[] = {
	SKIP_F("name", REQ), SKIP_F("listen", OPT), SKIP_F("layers", OPT), SKIP_F("head", REQ),
	SKIP_F("optimizer", REQ), SKIP_F("exit", OPT), SKIP_F("boost", OPT), END_F,
};

static const struct field exit_fields[] = {
	NUM_F("threshold", R_PROB, 0, struct chain_stage, exit_threshold),
	NUM_F("entropy", R_GT0, 0, struct chain_stage, exit_entropy),
	END_F,
};

static const struct field sgd_fields[] = {
	NUM_F("lr", R_GT0, 0.01, struct chain_optim, lr),
	NUM_F("momentum", R_FRAC, 0, struct chain_optim, momentum),
	NUM_F("weight_decay", R_GE0, 0, struct chain_optim, weight_decay),
	INT_F("iters", OPT, 1, 1, struct chain_optim, iters),
	SKIP_F("schedule", OPT),
	NUM_F("warmup", R_FRAC, 0, struct chain_optim, warmup),
	NUM_F("final", 0, 1, 0, 0, 0, struct chain_optim, final),
	NUM_F("gamma", R_PROB, 0.1, struct chain_optim, gamma),
	NUM_F("every", R_PROB, 0.5, struct chain_optim, every),
	END_F,
};

static const char *const schedule_names[] = {
	[SCHED_CONSTANT] = "constant", [SCHED_COSINE] = "cosine", [SCHED_STEP] = "step",
};

static const struct field mcmc_fields[] = {
	INT_F("iters", OPT, 1, 200, struct chain_optim, iters), SKIP_F("layers", REQ), END_F,
};

static const struct field mcmc_layer_fields[] = {
	NUM_F("share", R_GT0, 1, struct chain_mcmc_layer, share),
	SKIP_F("move", OPT), SKIP_F("proposal", REQ), SKIP_F("prior", OPT),
	NUM_F("lambda", R_GE0, 1, struct chain_mcmc_layer, lambda),
	END_F,
};

static const struct field move_k_field = INT_F("K", REQ, 1, 0, struct chain_mcmc_layer, k);
static const struct field dist_var_field = NUM_F("var", R_GT0, 0, struct chain_dist, var);
static const struct field dist_fields[] = {
	{"var", F_NUM, REQ, R_GT0, 0, offsetof(struct chain_dist, var)},
	NUM_F("df", R_GT0, 1, struct chain_dist, df),
	END_F,
};
/* ---- layers ---- */

enum {
	K_TRAINABLE = 1,        /* has weights: gets an entry in optimizer.mcmc.layers */
	K_UNITS = 2,            /* "units": required in the body, defaults to classes in the head */
	K_STRIDE_IS_SIZE = 4,   /* "stride" defaults to "size" */
	K_NO_MCMC = 8,          /* MCMC's incremental evaluation does not support it */
};

static const struct field conv_fields[] = {
	INT_F("filters", REQ, 1, 0, struct chain_layer, filters),
	INT_F("kernel", REQ, 1, 0, struct chain_layer, kernel),
	INT_F("stride", OPT, 1, 1, struct chain_layer, stride),
	INT_F("pad", OPT, 0, 0, struct chain_layer, pad),
	BOOL_F("binary", 0, struct chain_layer, binary),
	END_F,
};

static const struct field linear_fields[] = {
	/* 0 = absent; positivity and the head default are checked by layer_parse (K_UNITS) */
	INT_F("units", OPT, 0, 0, struct chain_layer, units),
	BOOL_F("binary", 0, struct chain_layer, binary),
	END_F,
};

static const struct field pool_fields[] = {
	INT_F("size", OPT, 1, 2, struct chain_layer, size),
	INT_F("stride", OPT, 1, 0, struct chain_layer, stride), /* 0: = size (K_STRIDE_IS_SIZE) */
	INT_RANGE_F("grid", 0, 1024, 0, struct chain_layer, grid),
	END_F,
};

static const struct field batchnorm_fields[] = {
	NUM_F("momentum", R_PROB, 0.1, struct chain_layer, momentum),
	NUM_F("eps", R_GT0, 1e-5, struct chain_layer, eps),
	END_F,
};

/* {"pooled": {"grid": G}}: the head that pools the body output to a G x G grid, then classifies. */
static const struct field pooled_fields[] = {
	INT_RANGE_F("grid", 1, 1024, 2, struct chain_layer, grid),
	END_F,
};

static const struct field no_fields[] = {END_F};

struct layer_kind {
	const char *name;
	const struct field *opts;   /* allowed options, which are required, defaults */
	int flags;
};

static const struct layer_kind layer_kinds[] = {
	{"conv", conv_fields, K_TRAINABLE},
	{"linear", linear_fields, K_TRAINABLE | K_UNITS},
	{"relu", no_fields, 0},
	{"maxpool", pool_fields, K_STRIDE_IS_SIZE},
	{"avgpool", pool_fields, K_STRIDE_IS_SIZE},
	{"gap", no_fields, 0},
	{"flatten", no_fields, 0},
	{"batchnorm", batchnorm_fields, K_NO_MCMC},
};
#define NKINDS (sizeof layer_kinds / sizeof layer_kinds[0])

static const struct layer_kind *kind_find(const char *name)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (strcmp(layer_kinds[i].name, name) == 0)
			return &layer_kinds[i];
	return NULL;
}

static int unknown_kind(struct pctx *c, const char *jp, const char *name)
{
	char known[128];
	size_t len = 0;
	for (size_t i = 0; i < NKINDS && len < sizeof known; i++)
		len += snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "",
				layer_kinds[i].name);
	return chain_bad(c, jp, "unknown layer kind '%s' (known: %s)", name, known);
}

/* "units" of a linear layer; head_last: the head's final classifier. */
static int layer_units(struct pctx *c, const char *jp, json_t *opts, struct chain_layer *l,
		       int head_last)
{
	char sub[JP_LEN];
	chain_jp_key(sub, jp, "units");
	if (head_last) {
		if (l->units == 0)
			l->units = c->classes;
		if (l->units != c->classes)
			return chain_bad(c, sub, "the head's last layer must have data.classes (%d) units, "
					 "got %d", c->classes, l->units);
	} else if (l->units == 0) {
		if (!opts || !json_object_get(opts, "units"))
			return chain_bad(c, jp, "missing required key 'units'");
		return chain_bad(c, sub, "expected a positive integer, got 0");
	}
	return 0;
}

/* One layer item at jp: "relu" or {"conv": {...}}. */
static int layer_parse(struct pctx *c, const char *jp, json_t *item, struct chain_layer *l,
		       int head_last)
{
	const char *name = "";
	json_t *opts = NULL;
	char sub[JP_LEN];
	int rc;
	if (json_is_string(item)) {
		name = json_string_value(item);
	} else if (json_is_object(item)) {
		if ((rc = chain_one_key(c, jp, item, "the layer kind", &name, &opts)))
			return rc;
	} else {
		return chain_bad(c, jp, "expected a layer such as \"relu\" or {\"conv\": {...}}, got %s",
				 chain_type_name(item));
	}
	const struct layer_kind *k = kind_find(name);
	if (!k)
		return unknown_kind(c, jp, name);
	memset(l, 0, sizeof *l);
	snprintf(l->kind, sizeof l->kind, "%s", k->name);
	chain_jp_key(sub, jp, k->name);
	if ((rc = chain_fields(c, sub, opts, k->opts, l)))
		return rc;
	if (l->grid && opts && (json_object_get(opts, "size") || json_object_get(opts, "stride")))
		return chain_bad(c, sub, "give either 'grid' or 'size'/'stride', not both");
	if ((k->flags & K_STRIDE_IS_SIZE) && l->stride == 0)
		l->stride = l->size;
	if (k->flags & K_UNITS)
		return layer_units(c, sub, opts, l, head_last);
	return 0;
}

/* "layers" (head 0: an array, absent = empty) or "head" (head 1: one item or a non-empty
 * array, ending in "linear") into *out, counting parsed items in *n. */
static int layers_parse(struct pctx *c, const char *jp, json_t *v, int head,
			struct chain_layer **out, int *n)
{
	char sub[JP_LEN];
	int arr = json_is_array(v);
	size_t len = arr ? json_array_size(v) : (size_t)head;
	if (!head && v && !arr)
		return chain_bad(c, jp, "expected an array of layers, got %s", chain_type_name(v));
	if (head && len == 0)
		return chain_bad(c, jp, "the head must have at least one layer (ending in \"linear\")");
	const char *kind;
	json_t *opts;
	if (head && !arr && chain_single_key(v, &kind, &opts) && strcmp(kind, "pooled") == 0) {
		/* The pooled head: [{"avgpool": {"grid": G}}, "linear"]. */
		if (!(*out = chain_zalloc(2, sizeof **out)))
			return chain_nomem(c);
		int rc = chain_fields(c, chain_jp_key(sub, jp, "pooled"), opts, pooled_fields, &(*out)[0]);
		if (rc)
			return rc;
		snprintf((*out)[0].kind, sizeof (*out)[0].kind, "avgpool");
		snprintf((*out)[1].kind, sizeof (*out)[1].kind, "linear");
		(*out)[1].units = c->classes;
		*n = 2;
		return 0;
	}
	if (!(*out = chain_zalloc(len, sizeof **out)))
		return chain_nomem(c);
	for (size_t i = 0; i < len; i++) {
		const char *ijp = arr ? chain_jp_idx(sub, jp, i) : jp;
		int last = head && i == len - 1;
		int rc = layer_parse(c, ijp, arr ? json_array_get(v, i) : v, &(*out)[i], last);
		if (rc)
			return rc;
		++*n;
		if (last && strcmp((*out)[i].kind, "linear") != 0)
			return chain_bad(c, ijp, "the last head layer must be \"linear\", got '%s'",
					 (*out)[i].kind);
	}
	return 0;
}

/* ---- optimizers ---- */

/* The i-th layer of s (body first, then head) whose kind has flag, or NULL; where: "layers[0]"
 * or "head[0]". */
static const struct chain_layer *nth_with(const struct chain_stage *s, int flag, int i, char *where,
					  size_t n)
{
	for (int j = 0; j < s->nlayers + s->nhead; j++) {
		int body = j < s->nlayers;
		const struct chain_layer *l = body ? &s->layers[j] : &s->head[j - s->nlayers];
		if ((kind_find(l->kind)->flags & flag) && i-- == 0) {
			snprintf(where, n, "%s[%d]", body ? "layers" : "head", body ? j : j - s->nlayers);
			return l;
		}
	}
	return NULL;
}

struct move_form {
	const char *name;
	int takes_k;                /* {"name": K} rather than "name" */
	enum chain_move_kind kind;
	const char *layer;          /* the layer kind it applies to */
};

static const struct move_form move_forms[] = {
	{"filter", 0, MOVE_FILTER, "conv"},
	{"filter", 1, MOVE_FILTER_K, "conv"},
	{"uniform", 1, MOVE_UNIFORM, "linear"},
	{"row", 0, MOVE_ROW, "linear"},
};

/* "move" at jp for layer l (named where); absent: "filter" on conv, "row" on linear. */
static int move_parse(struct pctx *c, const char *jp, json_t *v, const struct chain_layer *l,
		      const char *where, struct chain_mcmc_layer *m)
{
	const char *name = NULL;
	json_t *kv = NULL;
	char sub[JP_LEN];
	if (!v)
		name = strcmp(l->kind, "conv") == 0 ? "filter" : "row";
	else if (json_is_string(v))
		name = json_string_value(v);
	else
		chain_single_key(v, &name, &kv);
	const struct move_form *f = NULL;
	for (size_t i = 0; name && i < sizeof move_forms / sizeof move_forms[0]; i++)
		if (strcmp(move_forms[i].name, name) == 0 && move_forms[i].takes_k == (kv != NULL))
			f = &move_forms[i];
	if (!f)
		return chain_bad(c, jp, "expected \"filter\", {\"filter\": K}, {\"uniform\": K} or \"row\"");
	if (strcmp(f->layer, l->kind) != 0)
		return chain_bad(c, jp, "'%s' moves need a %s layer, but this entry is for %s (%s)",
				 f->name, f->layer, where, l->kind);
	m->move = f->kind;
	if (kv)
		return chain_field_store(c, chain_jp_key(sub, jp, f->name), kv, &move_k_field, m);
	return 0;
}

/* A proposal or prior at jp: {"student": VAR}, {"student": {"var": V, "df": D}},
 * {"gaussian": VAR}, or (allow_flip) "flip". */
static int dist_parse(struct pctx *c, const char *jp, json_t *v, int allow_flip,
		      struct chain_dist *d)
{
	const char *name = NULL;
	json_t *val = NULL;
	char sub[JP_LEN];
	memset(d, 0, sizeof *d);
	if (allow_flip && json_is_string(v) && strcmp(json_string_value(v), "flip") == 0) {
		d->kind = DIST_FLIP;
		return 0;
	}
	chain_single_key(v, &name, &val);
	if (name && strcmp(name, "student") == 0)
		d->kind = DIST_STUDENT;
	else if (name && strcmp(name, "gaussian") == 0)
		d->kind = DIST_GAUSSIAN;
	else
		return chain_bad(c, jp, "expected {\"student\": VAR}, {\"student\": {\"var\": V, \"df\": D}}"
				 ", {\"gaussian\": VAR}%s", allow_flip ? " or \"flip\"" : "");
	chain_jp_key(sub, jp, name);
	d->df = 1;
	if (d->kind == DIST_STUDENT && json_is_object(val))
		return chain_fields(c, sub, val, dist_fields, d);
	return chain_field_store(c, sub, val, &dist_var_field, d);
}

/* One entry of optimizer.mcmc.layers at jp, for the trainable layer l. */
static int mcmc_layer_parse(struct pctx *c, const char *jp, json_t *e, const struct chain_layer *l,
			    const char *where, struct chain_mcmc_layer *m)
{
	char sub[JP_LEN];
	json_t *prior;
	int rc;
	if ((rc = chain_fields(c, jp, e, mcmc_layer_fields, m)))
		return rc;
	if ((rc = move_parse(c, chain_jp_key(sub, jp, "move"), json_object_get(e, "move"), l, where, m)))
		return rc;
	chain_jp_key(sub, jp, "proposal");
	if ((rc = dist_parse(c, sub, json_object_get(e, "proposal"), 1, &m->proposal)))
		return rc;
	if (l->binary && m->proposal.kind != DIST_FLIP)
		return chain_bad(c, sub, "%s is a binary %s layer: it takes only the \"flip\" proposal",
				 where, l->kind);
	if (!l->binary && m->proposal.kind == DIST_FLIP)
		return chain_bad(c, sub, "\"flip\" proposals need a binary layer, but %s (%s) is not binary",
				 where, l->kind);
	if ((prior = json_object_get(e, "prior")))
		return dist_parse(c, chain_jp_key(sub, jp, "prior"), prior, 0, &m->prior);
	return 0;
}

static int mcmc_parse(struct pctx *c, const char *jp, json_t *o, struct chain_stage *s)
{
	char sub[JP_LEN], where[32];
	int rc, want = 0, body = 0;
	if ((rc = chain_fields(c, jp, o, mcmc_fields, &s->optim)))
		return rc;
	json_t *arr = json_object_get(o, "layers");
	chain_jp_key(sub, jp, "layers");
	if (!json_is_array(arr))
		return chain_bad(c, sub, "expected an array (one entry per conv/linear layer), got %s",
				 chain_type_name(arr));
	for (; nth_with(s, K_TRAINABLE, want, where, sizeof where); want++)
		body += where[0] == 'l'; /* "layers[i]", not "head[i]" */
	if (json_array_size(arr) != (size_t)want)
		return chain_bad(c, sub, "expected %d entries, one per trainable layer (%d in the body, %d in "
				 "the head), found %zu", want, body, want - body, json_array_size(arr));
	if (!(s->optim.mcmc = chain_zalloc((size_t)want, sizeof *s->optim.mcmc)))
		return chain_nomem(c);
	for (int i = 0; i < want; i++) {
		char ejp[JP_LEN];
		const struct chain_layer *l = nth_with(s, K_TRAINABLE, i, where, sizeof where);
		rc = mcmc_layer_parse(c, chain_jp_idx(ejp, sub, (size_t)i), json_array_get(arr, (size_t)i),
				      l, where, &s->optim.mcmc[i]);
		if (rc)
			return rc;
		s->optim.nmcmc++;
	}
	return 0;
}

/* sgd "schedule": "constant" (default), "cosine" or "step". */
static int schedule_parse(struct pctx *c, const char *jp, json_t *v, struct chain_optim *o)
{
	char sub[JP_LEN];
	chain_jp_key(sub, jp, "schedule");
	o->schedule = SCHED_CONSTANT;
	if (!v)
		return 0;
	for (size_t i = 0; json_is_string(v) && i < sizeof schedule_names / sizeof schedule_names[0]; i++)
		if (strcmp(json_string_value(v), schedule_names[i]) == 0) {
			o->schedule = (enum chain_schedule)i;
			return 0;
		}
	return chain_bad(c, sub, "expected \"constant\", \"cosine\" or \"step\"");
}

/* "optimizer": {"sgd": {...}} or {"mcmc": {...}}; needs the stage's layers parsed. */
static int optim_parse(struct pctx *c, const char *jp, json_t *v, struct chain_stage *s)
{
	const char *name = "";
	json_t *o = NULL;
	char sub[JP_LEN];
	int rc;
	if (!json_is_object(v))
		return chain_bad(c, jp, "expected {\"sgd\": {...}} or {\"mcmc\": {...}}, got %s",
				 chain_type_name(v));
	if ((rc = chain_one_key(c, jp, v, "sgd or mcmc", &name, &o)))
		return rc;
	chain_jp_key(sub, jp, name);
	if (strcmp(name, "sgd") == 0) {
		s->optim.kind = OPTIM_SGD;
		if ((rc = chain_fields(c, sub, o, sgd_fields, &s->optim)))
			return rc;
		return schedule_parse(c, sub, json_object_get(o, "schedule"), &s->optim);
	}
	if (strcmp(name, "mcmc") == 0) {
		s->optim.kind = OPTIM_MCMC;
		char where[32];
		const struct chain_layer *l = nth_with(s, K_NO_MCMC, 0, where, sizeof where);
		if (l)
			return chain_bad(c, sub, "mcmc cannot train a stage with a %s layer (%s): its "
					 "incremental evaluation does not support it; use sgd", l->kind, where);
		return mcmc_parse(c, sub, o, s);
	}
	return chain_bad(c, jp, "unknown optimizer '%s' (known: sgd, mcmc)", name);
}

/* ---- stages ---- */

static int name_ok(const char *s)
{
	return s[0] && !s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")];
}

/* "host:port" with a non-empty host and a port in 1..65535. */
static int listen_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;
	if (!colon || colon == s || digits == 0 || digits > 5 || colon[1 + digits])
		return 0;
	long port = strtol(colon + 1, NULL, 10);
	return port >= 1 && port <= 65535;
}

static int stage_parse(struct pctx *c, const char *jp, json_t *js, struct chain_stage *s)
{
	char sub[JP_LEN];
	json_t *v;
	int rc;
	if ((rc = chain_fields(c, jp, js, stage_fields, s)))
		return rc;
	if ((rc = chain_string(c, chain_jp_key(sub, jp, "name"), json_object_get(js, "name"), s->name,
			       sizeof s->name)))
		return rc;
	if (!name_ok(s->name))
		return chain_bad(c, sub, "stage names must be non-empty and use only A-Z a-z 0-9 _ . -, "
				 "got '%s'", s->name);
	if ((v = json_object_get(js, "listen"))) {
		if ((rc = chain_string(c, chain_jp_key(sub, jp, "listen"), v, s->listen, sizeof s->listen)))
			return rc;
		if (!listen_ok(s->listen))
			return chain_bad(c, sub, "expected \"host:port\" with a port in 1..65535, got '%s'",
					 s->listen);
	}
	v = json_object_get(js, "layers");
	if ((rc = layers_parse(c, chain_jp_key(sub, jp, "layers"), v, 0, &s->layers, &s->nlayers)))
		return rc;
	v = json_object_get(js, "head");
	if ((rc = layers_parse(c, chain_jp_key(sub, jp, "head"), v, 1, &s->head, &s->nhead)))
		return rc;
	v = json_object_get(js, "optimizer");
	if ((rc = optim_parse(c, chain_jp_key(sub, jp, "optimizer"), v, s)))
		return rc;
	v = json_object_get(js, "exit");
	if ((rc = chain_fields(c, chain_jp_key(sub, jp, "exit"), v, exit_fields, s)))
		return rc;
	if (s->exit_threshold > 0 && s->exit_entropy > 0)
		return chain_bad(c, sub, "give at most one of 'threshold' and 'entropy'");
	return 0;
}

static int stages_parse(struct pctx *c, json_t *arr, struct chain *ch)
{
	char jp[JP_LEN], sub[JP_LEN];
	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return chain_bad(c, "stages", "expected a non-empty array of stages, got %s",
				 json_is_array(arr) ? "an empty array" : chain_type_name(arr));
	if (!(ch->stages = chain_zalloc(json_array_size(arr), sizeof *ch->stages)))
		return chain_nomem(c);
	for (size_t i = 0; i < json_array_size(arr); i++) {
		int rc = stage_parse(c, chain_jp_idx(jp, "stages", i), json_array_get(arr, i), &ch->stages[i]);
		ch->nstages++;
		if (rc)
			return rc;
		json_t *b = json_object_get(json_array_get(arr, i), "boost");
		if (b && !json_is_boolean(b))
			return chain_bad(c, chain_jp_key(sub, jp, "boost"), "expected true or false, got %s",
					 chain_type_name(b));
		if (i == 0 && b && json_is_true(b))
			return chain_bad(c, chain_jp_key(sub, jp, "boost"), "the first stage has no upstream "
					 "logits to add to");
		ch->stages[i].boost = i > 0 && (b ? json_is_true(b) : ch->boost);
		for (size_t j = 0; j < i; j++)
			if (strcmp(ch->stages[j].name, ch->stages[i].name) == 0)
				return chain_bad(c, chain_jp_key(sub, jp, "name"),
						 "duplicate stage name '%s' (also stages[%zu])",
						 ch->stages[i].name, j);
	}
	return 0;
}

/* ---- entry points ---- */

static uint64_t fnv1a64(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

static int chain_build(struct pctx *c, json_t *root, struct chain *ch)
{
	int rc;
	if (!json_is_object(root))
		return chain_bad(c, "", "expected an object, got %s", chain_type_name(root));
	if ((rc = chain_fields(c, "", root, top_fields, ch)))
		return rc;
	if ((rc = chain_string(c, "chain", json_object_get(root, "chain"), ch->name, sizeof ch->name)))
		return rc;
	if (!ch->name[0])
		return chain_bad(c, "chain", "the chain name must not be empty");
	json_t *sd = json_object_get(root, "state_dir");
	/* by default one folder per chain: two chains with the same stage names do not collide */
	int n = snprintf(ch->state_dir, sizeof ch->state_dir, "state/");
	for (const char *p = ch->name; *p && n + 1 < (int)sizeof ch->state_dir; p++)
		ch->state_dir[n++] = (isalnum((unsigned char)*p) || strchr("._-", *p)) && !(p == ch->name && *p == '.')
					     ? *p : '_';
	ch->state_dir[n] = '\0';
	if (sd && (rc = chain_string(c, "state_dir", sd, ch->state_dir, sizeof ch->state_dir)))
		return rc;
	if (!ch->state_dir[0])
		return chain_bad(c, "state_dir", "the state directory must not be empty");
	json_t *data = json_object_get(root, "data");
	if (!json_is_object(data))
		return chain_bad(c, "data", "expected an object, got %s", chain_type_name(data));
	if ((rc = chain_data_parse(c, data, &ch->data)))
		return rc;
	return stages_parse(c, json_object_get(root, "stages"), ch);
}

int chain_parse(struct chain **out, const char *text, size_t len, const char *origin,
		const char *base_dir, char err[NK_ERR_LEN])
{
	struct pctx c = {origin ? origin : "chain", base_dir, err, 10};
	json_error_t je;
	*out = NULL;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return nk_errf(err, NK_EFORMAT, "%s:%d:%d: %s", c.origin, je.line, je.column, je.text);
	struct chain *ch = calloc(1, sizeof *ch);
	int rc = ch ? chain_build(&c, root, ch) : chain_nomem(&c);
	json_decref(root);
	if (rc) {
		chain_free(ch);
		return rc;
	}
	ch->hash = fnv1a64(text, len);
	*out = ch;
	return 0;
}

/* The whole file at path in a malloc'd buffer. */
static int slurp(const char *path, char **buf, size_t *len, char *err)
{
	FILE *f = fopen(path, "rb");
	size_t cap = 4096, n = 0;
	char *b = NULL;
	if (!f)
		return nk_errf(err, errno == ENOENT ? NK_ENOENT : NK_EIO, "%s: %s", path, strerror(errno));
	for (;;) {
		char *nb = realloc(b, cap);
		if (!nb) {
			free(b);
			fclose(f);
			return nk_errf(err, NK_ENOMEM, "%s: out of memory", path);
		}
		b = nb;
		n += fread(b + n, 1, cap - n, f);
		if (n < cap)
			break;
		cap *= 2;
	}
	int bad_read = ferror(f) ? errno : 0;
	fclose(f);
	if (bad_read) {
		free(b);
		return nk_errf(err, NK_EIO, "%s: read failed: %s", path, strerror(bad_read));
	}
	*buf = b;
	*len = n;
	return 0;
}

/* The folder of path, made absolute so data paths survive a chdir. */
static int dir_of(const char *path, char out[CHAIN_PATH_LEN])
{
	const char *slash = strrchr(path, '/');
	int keep = !slash ? 0 : slash == path ? 1 : (int)(slash - path); /* "/x" keeps "/" */
	char cwd[CHAIN_PATH_LEN];
	int n;
	if (path[0] == '/')
		n = snprintf(out, CHAIN_PATH_LEN, "%.*s", keep, path);
	else
		n = snprintf(out, CHAIN_PATH_LEN, "%s%s%.*s", getcwd(cwd, sizeof cwd) ? cwd : ".",
			     keep ? "/" : "", keep, path);
	return n < 0 || n >= CHAIN_PATH_LEN ? -1 : 0;
}

int chain_load(struct chain **out, const char *path, char err[NK_ERR_LEN])
{
	char dir[CHAIN_PATH_LEN], *text = NULL;
	size_t len = 0;
	*out = NULL;
	if (strlen(path) >= CHAIN_PATH_LEN || dir_of(path, dir) != 0)
		return nk_errf(err, NK_EINVAL, "%s: path too long (at most %d bytes)", path,
			       CHAIN_PATH_LEN - 1);
	int rc = slurp(path, &text, &len, err);
	if (rc)
		return rc;
	rc = chain_parse(out, text, len, path, dir, err);
	free(text);
	if (rc == 0)
		snprintf((*out)->path, sizeof (*out)->path, "%s", path);
	return rc;
}

void chain_free(struct chain *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nstages; i++) {
		free(c->stages[i].layers);
		free(c->stages[i].head);
		free(c->stages[i].optim.mcmc);
	}
	free(c->stages);
	free(c);
}

int chain_stage_index(const struct chain *c, const char *name)
{
	for (int i = 0; c && name && i < c->nstages; i++)
		if (strcmp(c->stages[i].name, name) == 0)
			return i;
	return -1;
}
