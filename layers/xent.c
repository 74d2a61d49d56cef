/* Softmax cross-entropy with the max-shift, accumulated in double so that a loss over a large
 * batch is exact enough for the MCMC acceptance test. */
#include "layers/xent.h"

#include <math.h>
#include <stddef.h>

double xent_one(const float *z, int32_t y, int k)
{
	float m = z[0];
	for (int j = 1; j < k; j++)
		m = z[j] > m ? z[j] : m;
	double s = 0.0;
	for (int j = 0; j < k; j++)
		s += exp((double)z[j] - m);
	return log(s) + m - z[y];
}

double xent(const float *logits, const int32_t *y, int n, int k, float *dlogits, int *correct)
{
	double loss = 0.0;
	int hits = 0;
	for (int i = 0; i < n; i++) {
		const float *z = logits + (size_t)i * k;
		int best = 0;
		for (int j = 1; j < k; j++)
			if (z[j] > z[best])
				best = j;
		hits += best == y[i];
		double lse = 0.0;
		for (int j = 0; j < k; j++)
			lse += exp((double)z[j] - z[best]);
		loss += log(lse) + z[best] - z[y[i]];
		if (dlogits) {
			float *d = dlogits + (size_t)i * k;
			for (int j = 0; j < k; j++)
				d[j] = (float)(exp((double)z[j] - z[best]) / lse / n) - (j == y[i] ? 1.0f / n : 0.0f);
		}
	}
	if (correct)
		*correct = hits;
	return n > 0 ? loss / n : 0.0;
}
