/* Small dense kernels shared by conv2d and linear: row-major, single-threaded (callers
 * parallelise over samples or rows), written so that the compiler vectorises the inner loops. */
#ifndef NK_GEMM_H
#define NK_GEMM_H

#include <string.h>

/* Hot kernels marked NK_CLONES are built for AVX-512, AVX2+FMA and the portable baseline on
 * x86-64 and the best one is picked at load time, so a portable build still uses wide units. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define NK_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef NK_CLONES
#define NK_CLONES
#endif

/* Eight floats as one vector value (GCC/Clang vector extension: one AVX register, or two SSE
 * ones), for kernels whose accumulators must stay in registers. Loads and stores are unaligned. */
typedef float nk_v8f __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) nk_v8f nk_load8(const float *p)
{
	nk_v8f v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* C[M][N] (ldc) += A[M][K] (lda) * B[K][N] (ldb) */
void gemm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);
/* C[M][N] (ldc) += A[M][K] (lda) * B[N][K]^T (ldb): dot products along K */
void gemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);
/* C[M][N] (ldc) += A[K][M]^T (lda) * B[K][N] (ldb) */
void gemm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc);

/* Below this many multiply-adds (or elements) a loop runs on one thread: waking the team costs
 * more than it saves, and on a loaded machine every parallel region waits for the slowest core. */
#define NK_PAR_WORK (1L << 21)

/* Threads the OpenMP kernels use (1 without OpenMP). */
int nk_threads(void);
int nk_thread_id(void);
int nk_team_size(void); /* threads in the current parallel region */
/* The calling thread's share [lo, hi) of n items, inside a parallel region. */
void nk_split(int n, int *lo, int *hi);

#endif
