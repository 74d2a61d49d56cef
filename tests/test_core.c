/* Core helpers: seeded random streams and logfmt lines. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/logfmt.h"
#include "src/rng.h"

Test(rng, same_seed_same_stream)
{
	struct nk_rng a, b, c;
	rng_seed(&a, 42);
	rng_seed(&b, 42);
	rng_seed(&c, 43);
	int differ = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t x = rng_u64(&a);
		cr_assert_eq(x, rng_u64(&b), "draw %d", i);
		differ += x != rng_u64(&c);
	}
	cr_assert_gt(differ, 990);
	struct nk_rng saved = a; /* the state words are the whole stream */
	uint64_t next = rng_u64(&a);
	cr_assert_eq(rng_u64(&saved), next);
}

Test(rng, below_is_in_range_and_uniform)
{
	struct nk_rng r;
	long count[10] = {0};
	const int n = 100000;
	rng_seed(&r, 7);
	for (int i = 0; i < n; i++) {
		uint32_t x = rng_below(&r, 10);
		cr_assert_lt(x, 10u);
		count[x]++;
	}
	double chi2 = 0, expect = n / 10.0;
	for (int b = 0; b < 10; b++)
		chi2 += (count[b] - expect) * (count[b] - expect) / expect;
	cr_assert_lt(chi2, 40.0, "chi-square %g over 9 degrees of freedom", chi2);
	for (uint32_t m = 1; m < 50; m++)
		for (int i = 0; i < 100; i++)
			cr_assert_lt(rng_below(&r, m), m);
	cr_assert_eq(rng_below(&r, 1), 0u);
}

Test(rng, uniform_in_unit_interval)
{
	struct nk_rng r;
	const int n = 100000;
	double sum = 0;
	rng_seed(&r, 1);
	for (int i = 0; i < n; i++) {
		double u = rng_uniform(&r);
		cr_assert(u >= 0.0 && u < 1.0, "draw %d: %g", i, u);
		sum += u;
	}
	cr_assert_float_eq(sum / n, 0.5, 0.01);
}

Test(rng, normal_moments)
{
	struct nk_rng r;
	const int n = 200000;
	double sum = 0, sq = 0;
	rng_seed(&r, 3);
	for (int i = 0; i < n; i++) {
		double z = rng_normal(&r);
		cr_assert(isfinite(z));
		sum += z;
		sq += z * z;
	}
	double mean = sum / n, var = sq / n - mean * mean;
	cr_assert_float_eq(mean, 0.0, 0.02);
	cr_assert_float_eq(var, 1.0, 0.02);
}

Test(logfmt, strings_quoted_when_needed)
{
	struct logfmt l;
	lf_begin(&l);
	lf_str(&l, "stage", "p8");
	lf_str(&l, "msg", "two words");
	lf_str(&l, "q", "say \"hi\"");
	lf_str(&l, "empty", "");
	cr_assert_str_eq(l.buf, "stage=p8 msg=\"two words\" q=\"say \\\"hi\\\"\" empty=\"\"");
	cr_assert_eq(l.len, strlen(l.buf));
}

Test(logfmt, numbers)
{
	struct logfmt l;
	lf_begin(&l);
	lf_int(&l, "batch", 120);
	lf_int(&l, "neg", -5);
	lf_num(&l, "t", 12.50349, 3);
	lf_num(&l, "acc", 0.8125, 2);
	lf_gen(&l, "lr", 0.01);
	lf_gen(&l, "props_s", 41000.0);
	lf_gen(&l, "big", 1234567.0);
	cr_assert_str_eq(l.buf, "batch=120 neg=-5 t=12.503 acc=0.81 lr=0.01 props_s=4.1e+04 "
			 "big=1.235e+06");
}

Test(logfmt, write_appends_newline)
{
	struct logfmt l;
	char back[256];
	FILE *f = tmpfile();
	cr_assert_not_null(f);
	lf_begin(&l);
	lf_str(&l, "stage", "a");
	lf_int(&l, "n", 3);
	cr_assert_eq(lf_write(&l, f, NULL), 0);
	lf_begin(&l);
	lf_str(&l, "stage", "b");
	cr_assert_eq(lf_write(&l, NULL, f), 0);
	rewind(f);
	size_t n = fread(back, 1, sizeof back - 1, f);
	back[n] = '\0';
	fclose(f);
	cr_assert_str_eq(back, "stage=a n=3\nstage=b\n");
	cr_assert_str_eq(l.buf, "stage=b", "the line stays usable after writing");
}
