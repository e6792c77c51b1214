/* PLACEHOLDER naive GEMM so the tree builds while the real one is written.
 * Correct but slow; replaced by the packed/blocked implementation. */
#include "gemm.h"
#include "activations.h"

#define NAIVE_GEMM(NAME, T, SUFFIX)                                                   \
void NAME(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,           \
          T alpha, const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb,             \
          T beta, T *c, ptrdiff_t ldc, const T *bias, int act, T act_param,          \
          T *preact, int num_threads) {                                              \
    (void)num_threads;                                                               \
    for (ptrdiff_t i = 0; i < m; i++) {                                              \
        for (ptrdiff_t j = 0; j < n; j++) {                                          \
            T s = 0;                                                                 \
            for (ptrdiff_t p = 0; p < k; p++) {                                      \
                T av = trans_a ? a[p * lda + i] : a[i * lda + p];                    \
                T bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];                    \
                s += av * bv;                                                        \
            }                                                                        \
            c[i * ldc + j] = alpha * s + (beta != 0 ? beta * c[i * ldc + j] : 0);    \
        }                                                                            \
        fnn_bias_act_row_##SUFFIX(act, act_param, c + i * ldc, bias,                 \
                                  preact ? preact + i * ldc : 0, (long)n);           \
    }                                                                                \
}

NAIVE_GEMM(fnn_sgemm, float, f32)
NAIVE_GEMM(fnn_dgemm, double, f64)

const char *fnn_gemm_kernel_name(void) { return "naive"; }
