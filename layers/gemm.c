/* Register-blocked GEMM variants. The nn kernel keeps a 4 x 16 block of C in registers while it
 * walks K; the compiler turns the fixed-width inner loops into SIMD code. On x86-64 each kernel
 * is also built for AVX2+FMA and AVX-512 and picked at load time, so the portable binary still
 * uses the wide units where the CPU has them. */
#include "layers/gemm.h"

#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MB 4  /* rows of C per block */
#define NB 16 /* columns of C per block: 4 x 16 keeps every accumulator in a register */

int nk_threads(void)
{
#ifdef _OPENMP
	return omp_get_max_threads();
#else
	return 1;
#endif
}

int nk_team_size(void)
{
#ifdef _OPENMP
	return omp_get_num_threads();
#else
	return 1;
#endif
}

void nk_split(int n, int *lo, int *hi)
{
	int t = nk_thread_id(), nt = nk_team_size();
	*lo = (int)((long long)n * t / nt);
	*hi = (int)((long long)n * (t + 1) / nt);
}

int nk_thread_id(void)
{
#ifdef _OPENMP
	return omp_get_thread_num();
#else
	return 0;
#endif
}

/* One full MB x NB block: acc lives in registers across the whole K loop. */
static inline void block_nn(int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
	float acc[MB][NB];
	memset(acc, 0, sizeof acc);
	for (int p = 0; p < K; p++) {
		const float *b = B + (size_t)p * ldb;
		for (int i = 0; i < MB; i++) {
			const float a = A[(size_t)i * lda + p];
#pragma omp simd
			for (int j = 0; j < NB; j++)
				acc[i][j] += a * b[j];
		}
	}
	for (int i = 0; i < MB; i++)
#pragma omp simd
		for (int j = 0; j < NB; j++)
			C[(size_t)i * ldc + j] += acc[i][j];
}

NK_CLONES
void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
	int M4 = M - M % MB, N4 = N - N % NB;
	for (int j0 = 0; j0 < N4; j0 += NB)
		for (int i0 = 0; i0 < M4; i0 += MB)
			block_nn(K, A + (size_t)i0 * lda, lda, B + j0, ldb, C + (size_t)i0 * ldc + j0, ldc);
	/* Edges: the rows below M4 over all columns, then the columns right of N4. */
	for (int i = M4; i < M; i++)
		for (int p = 0; p < K; p++) {
			const float a = A[(size_t)i * lda + p];
			const float *b = B + (size_t)p * ldb;
			float *c = C + (size_t)i * ldc;
#pragma omp simd
			for (int j = 0; j < N; j++)
				c[j] += a * b[j];
		}
	if (N4 == N)
		return;
	for (int i = 0; i < M4; i++)
		for (int p = 0; p < K; p++) {
			const float a = A[(size_t)i * lda + p];
			const float *b = B + (size_t)p * ldb;
			float *c = C + (size_t)i * ldc;
#pragma omp simd
			for (int j = N4; j < N; j++)
				c[j] += a * b[j];
		}
}

NK_CLONES
void gemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
	for (int i = 0; i < M; i++) {
		const float *a = A + (size_t)i * lda;
		for (int j = 0; j < N; j++) {
			const float *b = B + (size_t)j * ldb;
			float s = 0.0f;
#pragma omp simd reduction(+ : s)
			for (int p = 0; p < K; p++)
				s += a[p] * b[p];
			C[(size_t)i * ldc + j] += s;
		}
	}
}

NK_CLONES
void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
	for (int p = 0; p < K; p++) {
		const float *a = A + (size_t)p * lda;
		const float *b = B + (size_t)p * ldb;
		for (int i = 0; i < M; i++) {
			const float s = a[i];
			float *c = C + (size_t)i * ldc;
#pragma omp simd
			for (int j = 0; j < N; j++)
				c[j] += s * b[j];
		}
	}
}
