/*
 * Elementwise activations and their derivatives, one definition for all
 * compiled code: the GEMM epilogue (gemm.c), the Cython kernels and the fused
 * training loop include this header, so an activation is written once.
 *
 * Codes are shared with Python (fastnn/backends/__init__.py: ACTIVATION_CODES).
 * Softmax and log-softmax work on whole rows; they have codes so that plans can
 * name them, but the elementwise helpers below treat them as linear and the
 * row-wise pass is done by the caller.
 *
 * Derivatives take both the pre-activation z and the output y = f(z): most are
 * cheapest from y (relu, sigmoid, tanh, exponential, elu, leaky_relu, softplus),
 * gelu needs z. fnn_act_needs_preact(code) tells a caller whether z must be kept.
 */
#ifndef FASTNN_ACTIVATIONS_H
#define FASTNN_ACTIVATIONS_H

#include <math.h>

#define FNN_ACT_LINEAR 0
#define FNN_ACT_RELU 1
#define FNN_ACT_SIGMOID 2
#define FNN_ACT_TANH 3
#define FNN_ACT_EXPONENTIAL 4
#define FNN_ACT_LEAKY_RELU 5 /* param: negative slope */
#define FNN_ACT_ELU 6        /* param: alpha */
#define FNN_ACT_SOFTPLUS 7
#define FNN_ACT_GELU 8      /* exact: z * Phi(z) */
#define FNN_ACT_GELU_TANH 9 /* tanh approximation */
#define FNN_ACT_SOFTMAX 10
#define FNN_ACT_LOG_SOFTMAX 11

#define FNN_INV_SQRT2 0.70710678118654752440
#define FNN_INV_SQRT_2PI 0.39894228040143267794
#define FNN_SQRT_2_OVER_PI 0.79788456080286535588

static inline int fnn_act_needs_preact(int code) {
    return code == FNN_ACT_GELU || code == FNN_ACT_GELU_TANH;
}

static inline int fnn_act_is_rowwise(int code) {
    return code == FNN_ACT_SOFTMAX || code == FNN_ACT_LOG_SOFTMAX;
}

/* The body is written once as a macro over the floating type T and its math
 * functions (EXP, LOG1P, TANH, ERF), then stamped out for double and float. */
#define FNN_DEFINE_ACTIVATIONS(SUFFIX, T, EXP, EXPM1, LOG1P, TANH, ERF)           \
static inline T fnn_act_##SUFFIX(int code, T z, T param) {                       \
    switch (code) {                                                              \
    case FNN_ACT_RELU: return z > (T)0 ? z : (T)0;                               \
    case FNN_ACT_SIGMOID:                                                        \
        /* split by sign so exp never overflows */                               \
        if (z >= (T)0) return (T)1 / ((T)1 + EXP(-z));                           \
        else { T e = EXP(z); return e / ((T)1 + e); }                            \
    case FNN_ACT_TANH: return TANH(z);                                           \
    case FNN_ACT_EXPONENTIAL: return EXP(z);                                     \
    case FNN_ACT_LEAKY_RELU: return z > (T)0 ? z : param * z;                    \
    case FNN_ACT_ELU: return z > (T)0 ? z : param * EXPM1(z);                    \
    case FNN_ACT_SOFTPLUS:                                                       \
        /* log(1 + e^z) = max(z, 0) + log1p(e^-|z|) */                           \
        return (z > (T)0 ? z : (T)0) + LOG1P(EXP(z > (T)0 ? -z : z));            \
    case FNN_ACT_GELU: return (T)0.5 * z * ((T)1 + ERF(z * (T)FNN_INV_SQRT2));   \
    case FNN_ACT_GELU_TANH: {                                                    \
        T u = (T)FNN_SQRT_2_OVER_PI * (z + (T)0.044715 * z * z * z);             \
        return (T)0.5 * z * ((T)1 + TANH(u)); }                                  \
    default: return z; /* linear; row-wise codes are finished by the caller */  \
    }                                                                            \
}                                                                                \
                                                                                 \
/* dy/dz given z (pre-activation) and y = f(z). */                               \
static inline T fnn_act_deriv_##SUFFIX(int code, T z, T y, T param) {            \
    switch (code) {                                                              \
    case FNN_ACT_RELU: return y > (T)0 ? (T)1 : (T)0;                            \
    case FNN_ACT_SIGMOID: return y * ((T)1 - y);                                 \
    case FNN_ACT_TANH: return (T)1 - y * y;                                      \
    case FNN_ACT_EXPONENTIAL: return y;                                          \
    case FNN_ACT_LEAKY_RELU: return y > (T)0 ? (T)1 : param;                     \
    case FNN_ACT_ELU: return y > (T)0 ? (T)1 : y + param;                        \
    case FNN_ACT_SOFTPLUS: return -EXPM1(-y); /* = 1 - e^-y = sigmoid(z) */      \
    case FNN_ACT_GELU: {                                                         \
        T cdf = (T)0.5 * ((T)1 + ERF(z * (T)FNN_INV_SQRT2));                     \
        return cdf + z * (T)FNN_INV_SQRT_2PI * EXP((T)-0.5 * z * z); }           \
    case FNN_ACT_GELU_TANH: {                                                    \
        T u = (T)FNN_SQRT_2_OVER_PI * (z + (T)0.044715 * z * z * z);             \
        T t = TANH(u);                                                           \
        T du = (T)FNN_SQRT_2_OVER_PI * ((T)1 + (T)3 * (T)0.044715 * z * z);      \
        return (T)0.5 * ((T)1 + t) + (T)0.5 * z * ((T)1 - t * t) * du; }         \
    default: return (T)1;                                                        \
    }                                                                            \
}                                                                                \
                                                                                 \
/* y[i] = f(y[i] + bias[i]) in place over one row of n values; bias may be NULL. \
 * This is the GEMM epilogue and the plain elementwise forward. When preact is \
 * not NULL it receives z = y + bias before the activation. */                  \
static inline void fnn_bias_act_row_##SUFFIX(int code, T param, T *y,            \
                                            const T *bias, T *preact, long n) {  \
    long i;                                                                      \
    if (bias) for (i = 0; i < n; i++) y[i] += bias[i];                           \
    if (preact) for (i = 0; i < n; i++) preact[i] = y[i];                        \
    if (code == FNN_ACT_LINEAR || fnn_act_is_rowwise(code)) return;              \
    if (code == FNN_ACT_RELU) {                                                  \
        for (i = 0; i < n; i++) y[i] = y[i] > (T)0 ? y[i] : (T)0;                \
        return;                                                                  \
    }                                                                            \
    for (i = 0; i < n; i++) y[i] = fnn_act_##SUFFIX(code, y[i], param);          \
}

FNN_DEFINE_ACTIVATIONS(f64, double, exp, expm1, log1p, tanh, erf)
FNN_DEFINE_ACTIVATIONS(f32, float, expf, expm1f, log1pf, tanhf, erff)

#endif /* FASTNN_ACTIVATIONS_H */
