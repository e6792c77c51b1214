/*
 * fastnn's own GEMM (row-major), BLIS-style: packed A and B panels, cache
 * blocking, a register-tiled micro-kernel (AVX2/FMA chosen at run time, a
 * portable C kernel otherwise), OpenMP across blocks, and a fused epilogue.
 *
 *   C = act(alpha * op(A) @ op(B) + beta * C + bias)
 *
 * op(A) is m x k, op(B) is k x n, C is m x n. All matrices are row-major with
 * unit inner stride; lda/ldb/ldc are the row strides (in elements) of A, B, C
 * as stored (A stored k x m when trans_a). bias has n entries or is NULL. act is
 * an FNN_ACT_* code from activations.h (row-wise codes act as linear here).
 * When preact is not NULL it receives alpha*op(A)@op(B) + beta*C + bias before
 * the activation (row stride ldc). beta == 0 means C is not read (it may hold
 * garbage or NaN).
 *
 * Determinism: every element of C is computed by one thread with a k-order that
 * does not depend on num_threads, so results are bit-identical for any thread
 * count. num_threads <= 0 means 1; small problems use fewer threads than asked.
 * Callable without the GIL; the functions never fail (workspace allocation
 * failure falls back to an unpacked loop).
 */
#ifndef FASTNN_GEMM_H
#define FASTNN_GEMM_H

#include <stddef.h>
#include <stdint.h>

void fnn_sgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
               float alpha, const float *a, ptrdiff_t lda,
               const float *b, ptrdiff_t ldb,
               float beta, float *c, ptrdiff_t ldc,
               const float *bias, int act, float act_param, float *preact,
               int num_threads);

void fnn_dgemm(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
               double alpha, const double *a, ptrdiff_t lda,
               const double *b, ptrdiff_t ldb,
               double beta, double *c, ptrdiff_t ldc,
               const double *bias, int act, double act_param, double *preact,
               int num_threads);

/* The same product with op(A)'s data picked from rows of a larger array: stored
 * row r of A is a + a_rows[r]*lda (r < m, or r < k when trans_a), e.g. a
 * shuffled batch read where it lies in the data set. a_rows == NULL is the plain
 * call. Results are bit-identical to the plain call on the gathered rows. */
void fnn_sgemm_rows(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                    float alpha, const float *a, ptrdiff_t lda, const int64_t *a_rows,
                    const float *b, ptrdiff_t ldb,
                    float beta, float *c, ptrdiff_t ldc,
                    const float *bias, int act, float act_param, float *preact,
                    int num_threads);

void fnn_dgemm_rows(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                    double alpha, const double *a, ptrdiff_t lda, const int64_t *a_rows,
                    const double *b, ptrdiff_t ldb,
                    double beta, double *c, ptrdiff_t ldc,
                    const double *bias, int act, double act_param, double *preact,
                    int num_threads);

/* Rows [r0, r1) of the fnn_?gemm_rows product (clipped to [0, m)), on the calling
 * thread and without a parallel region of its own: for a team of threads that
 * share out the rows of C inside their own region. The part takes the path the
 * whole m-row product takes, so its rows are bit-identical to that product's,
 * wherever the cut falls. a_rows may be NULL (the plain product). */
void fnn_sgemm_part(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                    float alpha, const float *a, ptrdiff_t lda, const int64_t *a_rows,
                    const float *b, ptrdiff_t ldb,
                    float beta, float *c, ptrdiff_t ldc,
                    const float *bias, int act, float act_param, float *preact,
                    ptrdiff_t r0, ptrdiff_t r1);

void fnn_dgemm_part(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                    double alpha, const double *a, ptrdiff_t lda, const int64_t *a_rows,
                    const double *b, ptrdiff_t ldb,
                    double beta, double *c, ptrdiff_t ldc,
                    const double *bias, int act, double act_param, double *preact,
                    ptrdiff_t r0, ptrdiff_t r1);

/* Whether fnn_?gemm_rows reads the picked rows where they lie for this shape (1)
 * or gathers a copy of them first (0): the caller may rather gather once itself
 * when several products read the same rows. Depends on the shape only. */
int fnn_sgemm_rows_in_place(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);
int fnn_dgemm_rows_in_place(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k);

/* Which micro-kernel the dispatcher picked: "avx2_fma" or "portable". */
const char *fnn_gemm_kernel_name(void);

#endif /* FASTNN_GEMM_H */
