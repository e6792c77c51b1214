# Cython declarations of the C GEMM (csrc/gemm.h) and the shared activation
# helpers (csrc/activations.h), cimported by every compiled module.
from libc.stdint cimport int64_t

cdef extern from "gemm.h" nogil:
    void fnn_sgemm(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   float alpha, const float *a, Py_ssize_t lda,
                   const float *b, Py_ssize_t ldb,
                   float beta, float *c, Py_ssize_t ldc,
                   const float *bias, int act, float act_param, float *preact,
                   int num_threads)
    void fnn_dgemm(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                   double alpha, const double *a, Py_ssize_t lda,
                   const double *b, Py_ssize_t ldb,
                   double beta, double *c, Py_ssize_t ldc,
                   const double *bias, int act, double act_param, double *preact,
                   int num_threads)
    void fnn_sgemm_rows(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        float alpha, const float *a, Py_ssize_t lda, const int64_t *a_rows,
                        const float *b, Py_ssize_t ldb,
                        float beta, float *c, Py_ssize_t ldc,
                        const float *bias, int act, float act_param, float *preact,
                        int num_threads)
    void fnn_dgemm_rows(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        double alpha, const double *a, Py_ssize_t lda, const int64_t *a_rows,
                        const double *b, Py_ssize_t ldb,
                        double beta, double *c, Py_ssize_t ldc,
                        const double *bias, int act, double act_param, double *preact,
                        int num_threads)
    void fnn_sgemm_part(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        float alpha, const float *a, Py_ssize_t lda, const int64_t *a_rows,
                        const float *b, Py_ssize_t ldb,
                        float beta, float *c, Py_ssize_t ldc,
                        const float *bias, int act, float act_param, float *preact,
                        Py_ssize_t r0, Py_ssize_t r1)
    void fnn_dgemm_part(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                        double alpha, const double *a, Py_ssize_t lda, const int64_t *a_rows,
                        const double *b, Py_ssize_t ldb,
                        double beta, double *c, Py_ssize_t ldc,
                        const double *bias, int act, double act_param, double *preact,
                        Py_ssize_t r0, Py_ssize_t r1)
    int fnn_sgemm_rows_in_place(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n,
                                Py_ssize_t k)
    int fnn_dgemm_rows_in_place(int trans_a, int trans_b, Py_ssize_t m, Py_ssize_t n,
                                Py_ssize_t k)
    const char *fnn_gemm_kernel_name()

cdef extern from "activations.h" nogil:
    int FNN_ACT_LINEAR, FNN_ACT_RELU, FNN_ACT_SIGMOID, FNN_ACT_TANH
    int FNN_ACT_EXPONENTIAL, FNN_ACT_LEAKY_RELU, FNN_ACT_ELU, FNN_ACT_SOFTPLUS
    int FNN_ACT_GELU, FNN_ACT_GELU_TANH, FNN_ACT_SOFTMAX, FNN_ACT_LOG_SOFTMAX
    int fnn_act_needs_preact(int code)
    int fnn_act_is_rowwise(int code)
    double fnn_act_f64(int code, double z, double param)
    float fnn_act_f32(int code, float z, float param)
    double fnn_act_deriv_f64(int code, double z, double y, double param)
    float fnn_act_deriv_f32(int code, float z, float y, float param)
    void fnn_bias_act_row_f64(int code, double param, double *y, const double *bias,
                              double *preact, long n)
    void fnn_bias_act_row_f32(int code, float param, float *y, const float *bias,
                              float *preact, long n)
