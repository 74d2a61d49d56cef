/* Image resampling for the image-folder reader: separable triangle filter, interleaved in,
 * planar out. */
#include "data/ds.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Output i of a 1-D resampling reads inputs first[i] .. first[i] + taps - 1 with weights
 * w[i * taps ...] (zero past the last real one). */
struct taps {
	int taps;
	int *first;   /* [out] */
	float *w;     /* [out][taps] */
};

/* Triangle filter whose support is one input pixel when enlarging (bilinear, edges clamped) and
 * one output pixel (in input units) when shrinking, so every input pixel counts. */
static int taps_make(struct taps *t, int in, int out)
{
	double scale = (double)in / out, support = scale > 1 ? scale : 1;

	t->taps = (int)ceil(2 * support) + 2;
	t->first = malloc((size_t)out * sizeof *t->first);
	t->w = calloc((size_t)out * t->taps, sizeof *t->w);
	if (!t->first || !t->w)
		return NK_ENOMEM;
	for (int i = 0; i < out; i++) {
		double center = (i + 0.5) * scale, sum = 0;
		int lo = NK_MAX((int)floor(center - support), 0);
		int hi = NK_MIN((int)ceil(center + support), in);
		float *w = t->w + (size_t)i * t->taps;
		t->first[i] = lo;
		for (int j = lo; j < hi && j - lo < t->taps; j++) {
			double x = fabs((j + 0.5 - center) / support);
			w[j - lo] = (float)(x < 1 ? 1 - x : 0);
			sum += w[j - lo];
		}
		for (int j = 0; j < t->taps; j++)
			w[j] = sum > 0 ? (float)(w[j] / sum) : 0;
	}
	return 0;
}

static void taps_free(struct taps *t)
{
	free(t->first);
	free(t->w);
}

static uint8_t to_byte(float v)
{
	return v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)(v + 0.5f);
}

/* Rows of src [sh][sw][c] resampled across to tmp [sh][dw][c]. */
static void pass_across(const uint8_t *src, int sh, int sw, int c, const struct taps *tx, int dw,
			float *tmp)
{
	for (int y = 0; y < sh; y++)
		for (int x = 0; x < dw; x++) {
			const float *w = tx->w + (size_t)x * tx->taps;
			const uint8_t *s = src + ((size_t)y * sw + tx->first[x]) * c;
			int n = NK_MIN(tx->taps, sw - tx->first[x]);
			for (int ch = 0; ch < c; ch++) {
				float acc = 0;
				for (int k = 0; k < n; k++)
					acc += w[k] * s[k * c + ch];
				tmp[((size_t)y * dw + x) * c + ch] = acc;
			}
		}
}

/* Columns of tmp [sh][dw][c] resampled down to dst [c][dh][dw]. */
static void pass_down(const float *tmp, int sh, int dw, int c, const struct taps *ty, int dh,
		      uint8_t *dst)
{
	for (int y = 0; y < dh; y++) {
		const float *w = ty->w + (size_t)y * ty->taps;
		int n = NK_MIN(ty->taps, sh - ty->first[y]);
		for (int x = 0; x < dw; x++)
			for (int ch = 0; ch < c; ch++) {
				const float *s = tmp + ((size_t)ty->first[y] * dw + x) * c + ch;
				float acc = 0;
				for (int k = 0; k < n; k++)
					acc += w[k] * s[(size_t)k * dw * c];
				dst[((size_t)ch * dh + y) * dw + x] = to_byte(acc);
			}
	}
}

int ds_resize(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw)
{
	struct taps tx = {0}, ty = {0};
	float *tmp;
	int rc;

	if (sh == dh && sw == dw) { /* interleaved to planar only */
		for (int ch = 0; ch < c; ch++)
			for (size_t i = 0; i < (size_t)sh * sw; i++)
				dst[ch * (size_t)sh * sw + i] = src[i * c + ch];
		return 0;
	}
	tmp = malloc((size_t)sh * dw * c * sizeof *tmp);
	rc = tmp ? taps_make(&tx, sw, dw) : NK_ENOMEM;
	if (rc == 0)
		rc = taps_make(&ty, sh, dh);
	if (rc == 0) {
		pass_across(src, sh, sw, c, &tx, dw, tmp);
		pass_down(tmp, sh, dw, c, &ty, dh, dst);
	}
	taps_free(&tx);
	taps_free(&ty);
	free(tmp);
	return rc;
}
