/* CSV reader: one sample per line (features and a label column), optional header; bytes stored
 * as bytes, anything else as floats; every error names the file and the line. */
#include "data/ds_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define CSV_NUM_LEN 64  /* longest number text handed to strtod */

struct csv {
	const char *path;
	const struct ds_csv_cfg *cfg;
	FILE *f;
	char *line;
	size_t cap;
	long lineno;
	long first;      /* line number of the first non-blank line */
	int ncols;       /* fields per row */
	int label;       /* label column */
	size_t feats;    /* features per row */
	long long bytes; /* file size */
	long rows_max;   /* rows the file can hold: the room reserved (csv_bound) */
	long n;          /* rows stored */
	struct ds *d;
	char *err;
};

/* Lines in f (a last line without its newline counts), then back to the start. */
static int csv_count(struct csv *c)
{
	char buf[1 << 16];
	size_t got;
	long lines = 0;
	int last = '\n';

	while ((got = fread(buf, 1, sizeof buf, c->f)) > 0) {
		for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))); p++)
			lines++;
		last = buf[got - 1];
		c->bytes += (long long)got;
	}
	if (ferror(c->f))
		return nk_errf(c->err, NK_EIO, "%s: read failed: %s", c->path, strerror(errno));
	c->rows_max = lines + (last != '\n');
	rewind(c->f);
	return 0;
}

/* Memory bound: a CSV never reserves more than 3 x (its size + 1) bytes for samples and labels
 * (plus getline's buffer, under twice its longest line). A good row has ncols fields of at least
 * one character (csv_number refuses empty ones), ncols - 1 commas and, but on the last line, a
 * line end: 2 * ncols bytes. So a file of size bytes holds at most R = (size + 1) / (2 * ncols)
 * rows, and room is reserved for those (or for its lines, if fewer): R * (ncols - 1) floats take
 * under 2 x (size + 1) bytes, as bytes a quarter of that (both are held while csv_floats
 * converts: 2.5 x), and R labels under (size + 1) / 4. A line past that room cannot be a good
 * row: csv_row only checks it, to say what is wrong with it. */
static void csv_bound(struct csv *c)
{
	long long fit = (c->bytes + 1) / (2 * (long long)c->ncols);

	if (fit < c->rows_max)
		c->rows_max = (long)fit;
}

/* The next line that holds more than blanks, without its line end; 0 at end of file. */
static int csv_line(struct csv *c)
{
	ssize_t len;

	while ((len = getline(&c->line, &c->cap, c->f)) >= 0) {
		c->lineno++;
		while (len > 0 && (c->line[len - 1] == '\n' || c->line[len - 1] == '\r'))
			c->line[--len] = '\0';
		if (c->line[strspn(c->line, " \t")]) {
			if (!c->first)
				c->first = c->lineno;
			return 1;
		}
	}
	if (ferror(c->f))
		return nk_errf(c->err, NK_EIO, "%s:%ld: read failed: %s", c->path, c->lineno + 1,
			       strerror(errno));
	return 0;
}

/* Field [*s, *e) trimmed of blanks and of surrounding double quotes. */
static void csv_trim(const char **s, const char **e)
{
	while (*s < *e && (**s == ' ' || **s == '\t'))
		++*s;
	while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
		--*e;
	if (*e - *s >= 2 && **s == '"' && (*e)[-1] == '"') {
		++*s;
		--*e;
	}
}

/* The number in [s, e): plain digits fast, anything else through strtod. 0 or -1. */
static int csv_number(const char *s, const char *e, double *v)
{
	char buf[CSV_NUM_LEN], *end;
	const char *p = s;
	long acc = 0;

	csv_trim(&s, &e);
	for (p = s; p < e && p - s < 9 && *p >= '0' && *p <= '9'; p++)
		acc = acc * 10 + (*p - '0');
	if (p == e && p > s) {
		*v = (double)acc;
		return 0;
	}
	if (e - s <= 0 || e - s >= CSV_NUM_LEN)
		return -1;
	memcpy(buf, s, (size_t)(e - s));
	buf[e - s] = '\0';
	*v = strtod(buf, &end);
	return *end == '\0' && isfinite(*v) ? 0 : -1;
}

/* Fields on the current line (a comma separates them). */
static int csv_fields(const char *line)
{
	int n = 1;
	for (const char *p = line; (p = strchr(p, ',')); p++)
		n++;
	return n;
}

/* Header line: the label column found by name when one is given. */
static int csv_header(struct csv *c)
{
	const char *want = c->cfg->label_name, *s = c->line;
	char cols[256];
	size_t len = 0;

	c->ncols = csv_fields(c->line);
	if (!want || !want[0])
		return 0;
	cols[0] = '\0';
	for (int i = 0; i < c->ncols; i++) {
		const char *e = strchr(s, ',');
		if (!e)
			e = s + strlen(s);
		const char *a = s, *b = e;
		csv_trim(&a, &b);
		if ((size_t)(b - a) == strlen(want) && memcmp(a, want, (size_t)(b - a)) == 0) {
			c->label = i;
			return 1;
		}
		if (len < sizeof cols)
			len += snprintf(cols + len, sizeof cols - len, "%s%.*s", i ? ", " : "",
					(int)(b - a), a);
		s = e + 1;
	}
	return nk_errf(c->err, NK_ENOENT, "%s:%ld: no column named '%s' in the header (columns: "
		       "%.200s)", c->path, c->lineno, want, cols);
}

/* Columns, label column and feature count from the header or the first row; the shape. */
static int csv_layout(struct csv *c)
{
	const struct ds_csv_cfg *g = c->cfg;
	int rc = csv_line(c);

	if (rc <= 0)
		return rc < 0 ? rc : nk_errf(c->err, NK_EFORMAT, "%s: no data rows", c->path);
	c->label = g->label_col;
	if (g->header) {
		if ((rc = csv_header(c)) < 0)
			return rc;
	} else {
		c->ncols = csv_fields(c->line);
	}
	if (c->ncols < 2)
		return nk_errf(c->err, NK_EFORMAT, "%s:%ld: expected at least 2 fields (features, "
			       "then the label), found 1", c->path, c->lineno);
	if (c->label < 0)
		c->label = c->ncols - 1;
	if (c->label >= c->ncols)
		return nk_errf(c->err, NK_EINVAL, "%s:%ld: label column %d, but rows have %d fields "
			       "(0 is the first)", c->path, c->lineno, c->label, c->ncols);
	c->feats = (size_t)c->ncols - 1;
	if (g->c > 0 && (size_t)g->c * g->h * g->w != c->feats)
		return nk_errf(c->err, NK_ESHAPE, "%s:%ld: rows hold %zu features but data.shape "
			       "[%d, %d, %d] needs %lld", c->path, c->lineno, c->feats, g->c, g->h,
			       g->w, (long long)g->c * g->h * g->w);
	return 0;
}

/* Switch storage to floats (features "auto" met a value that is not a byte), keeping the values
 * stored so far (up to `upto`) and room for every row. */
static int csv_floats(struct csv *c, size_t upto)
{
	float *xf = malloc((size_t)c->rows_max * c->feats * sizeof *xf);

	if (!xf)
		return nk_errf(c->err, NK_ENOMEM, "%s: cannot allocate %zu bytes for float features",
			       c->path, (size_t)c->rows_max * c->feats * sizeof *xf);
	for (size_t i = 0; i < upto; i++)
		xf[i] = c->d->x[i];
	free(c->d->x);
	c->d->x = NULL;
	c->d->xf = xf;
	return 0;
}

/* Store feature value v at element at, as a byte while every value is one. */
static int csv_store(struct csv *c, size_t at, double v, int col, const char *s, const char *e)
{
	int byte = v >= 0 && v <= 255 && v == floor(v);
	int rc;

	if (c->d->x && !byte) {
		if (c->cfg->features == FEAT_BYTES)
			return nk_errf(c->err, NK_ERANGE, "%s:%ld: field %d ('%.*s') is not a byte "
				       "0..255, and data.features is \"bytes\"", c->path, c->lineno,
				       col + 1, (int)NK_MIN(e - s, 40), s);
		if ((rc = csv_floats(c, at)))
			return rc;
	}
	if (c->d->x)
		c->d->x[at] = (uint8_t)v;
	else
		c->d->xf[at] = (float)v;
	return 0;
}

static int csv_label(struct csv *c, double v, const char *s, const char *e)
{
	if (v != floor(v))
		return nk_errf(c->err, NK_EFORMAT, "%s:%ld: label '%.*s' (field %d) is not a whole "
			       "number", c->path, c->lineno, (int)NK_MIN(e - s, 40), s, c->label + 1);
	if (v < 0 || v >= c->cfg->classes)
		return nk_errf(c->err, NK_ERANGE, "%s:%ld: label %g out of range [0, %d)", c->path,
			       c->lineno, v, c->cfg->classes);
	c->d->y[c->n] = (uint8_t)v;
	return 0;
}

/* The current line as row c->n; past the room reserved (which no good row is, csv_bound), only
 * checked, for the error. */
static int csv_row(struct csv *c)
{
	const char *s = c->line;
	size_t at = (size_t)c->n * c->feats;
	int found = csv_fields(c->line), rc, store = c->n < c->rows_max;

	if (found != c->ncols)
		return nk_errf(c->err, NK_EFORMAT, "%s:%ld: expected %d fields, found %d", c->path,
			       c->lineno, c->ncols, found);
	for (int col = 0; col < c->ncols; col++) {
		const char *e = strchr(s, ',');
		double v;
		if (!e)
			e = s + strlen(s);
		if (csv_number(s, e, &v) != 0)
			return nk_errf(c->err, NK_EFORMAT, "%s:%ld: field %d ('%.*s') is not a number%s",
				       c->path, c->lineno, col + 1, (int)NK_MIN(e - s, 40), s,
				       c->lineno == c->first && !c->cfg->header ? " (if the first line "
				       "names the columns, set data.header to true)" : "");
		rc = !store ? 0 : col == c->label ? csv_label(c, v, s, e) :
		     csv_store(c, at++, v, col, s, e);
		if (rc)
			return rc;
		s = e + 1;
	}
	if (!store) /* a bug in csv_bound */
		return nk_errf(c->err, NK_EFORMAT, "%s:%ld: more rows than %lld bytes can hold", c->path,
			       c->lineno, c->bytes);
	c->n++;
	return 0;
}

static int csv_read(struct csv *c)
{
	const struct ds_csv_cfg *g = c->cfg;
	int rc, more;

	if ((rc = csv_count(c)) || (rc = csv_layout(c)))
		return rc;
	csv_bound(c);
	if (c->rows_max > INT_MAX)
		return nk_errf(c->err, NK_EFORMAT, "%s: %ld lines is too many", c->path, c->rows_max);
	c->d = ds_alloc((int)c->rows_max, g->c > 0 ? g->c : 1, g->c > 0 ? g->h : 1,
			g->c > 0 ? g->w : (int)c->feats, g->classes, g->features == FEAT_FLOAT,
			c->path, c->err);
	if (!c->d)
		return NK_ENOMEM;
	more = g->header ? csv_line(c) : 1;
	while (more > 0 && (rc = csv_row(c)) == 0)
		more = csv_line(c);
	if (rc || more < 0)
		return rc ? rc : more;
	if (c->n == 0)
		return nk_errf(c->err, NK_EFORMAT, "%s: no data rows after the header", c->path);
	c->d->n = (int)c->n;
	if (c->n < c->rows_max) { /* give back the room of the header and blank lines */
		size_t len = (size_t)c->n * c->feats;
		void *p = c->d->x ? realloc(c->d->x, len) : realloc(c->d->xf, len * sizeof(float));
		if (p && c->d->x)
			c->d->x = p;
		else if (p)
			c->d->xf = p;
	}
	return 0;
}

int ds_csv_load(struct ds **out, const char *path, const struct ds_csv_cfg *cfg,
		char err[NK_ERR_LEN])
{
	struct csv c = {.path = path, .cfg = cfg, .err = err};
	int rc;

	*out = NULL;
	if (cfg->classes < 1 || cfg->classes > DS_MAX_CLASSES)
		return nk_errf(err, NK_EINVAL, "%s: %d classes cannot be held in u8 labels (1..256)",
			       path, cfg->classes);
	if (cfg->c < 0 || (cfg->c > 0 && (cfg->h < 1 || cfg->w < 1)))
		return nk_errf(err, NK_EINVAL, "%s: bad shape %d x %d x %d", path, cfg->c, cfg->h,
			       cfg->w);
	if (!(c.f = fopen(path, "rb")))
		return nk_errf(err, errno == ENOENT ? NK_ENOENT : NK_EIO, "%s: cannot open: %s", path,
			       strerror(errno));
	rc = csv_read(&c);
	fclose(c.f);
	free(c.line);
	if (rc) {
		ds_free(c.d);
		return rc;
	}
	*out = c.d;
	return 0;
}
