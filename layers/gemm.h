/* Small dense kernels shared by conv2d and linear: row-major, single-threaded (callers
 * parallelise over samples or rows), written so that the compiler vectorises the inner loops. */
#ifndef NK_GEMM_H
#define NK_GEMM_H

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

#endif
