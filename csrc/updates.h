/*
 * Inner loops of the optimizer updates (csrc/kernels.pxd drives them).
 *
 * Each loop updates n consecutive parameters with torch.optim's single-tensor
 * formula. It is written once, in the template section at the end of this
 * file, and stamped out per element type (float, double) and per instruction
 * set: baseline x86-64 (SSE2: 4 floats per divide/sqrt) and, on x86 with GCC
 * or Clang, AVX (8 floats), chosen at run time like the GEMM kernels of gemm.c,
 * without any -march flag, so one wheel runs everywhere.
 *
 * Results are bit-identical between the two: both execute the same IEEE
 * operations in the same order, and division and square root are exactly
 * rounded on either unit. The AVX target deliberately excludes FMA, so the
 * compiler cannot contract a*b + c into one rounding.
 *
 * A loop's options are int arguments; each public entry calls its loop with
 * literal constants for the common cases, so that once inlined the element
 * loop has no branch and vectorizes (a loop testing run-time flags per
 * element does not).
 */
#ifndef FNN_UPDATES_TEMPLATE

#ifndef FNN_UPDATES_H
#define FNN_UPDATES_H

#include <math.h>
#include <stddef.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_UPD_X86_DISPATCH 1
#else
#define FNN_UPD_X86_DISPATCH 0
#endif

#if defined(__GNUC__)
#define FNN_UPD_INLINE static inline __attribute__((always_inline))
#else
#define FNN_UPD_INLINE static inline
#endif

#define FNN_UPDATES_TEMPLATE

#define FNN_T float
#define FNN_SQRT sqrtf
#define FNN_NAME(name) name##_f32_base
#define FNN_ATTR
#include "updates.h"
#undef FNN_T
#undef FNN_SQRT
#undef FNN_NAME
#undef FNN_ATTR

#define FNN_T double
#define FNN_SQRT sqrt
#define FNN_NAME(name) name##_f64_base
#define FNN_ATTR
#include "updates.h"
#undef FNN_T
#undef FNN_SQRT
#undef FNN_NAME
#undef FNN_ATTR

#if FNN_UPD_X86_DISPATCH
/* "avx" only, never "fma": see the note at the top. */
#define FNN_T float
#define FNN_SQRT sqrtf
#define FNN_NAME(name) name##_f32_avx
#define FNN_ATTR __attribute__((target("avx")))
#include "updates.h"
#undef FNN_T
#undef FNN_SQRT
#undef FNN_NAME
#undef FNN_ATTR

#define FNN_T double
#define FNN_SQRT sqrt
#define FNN_NAME(name) name##_f64_avx
#define FNN_ATTR __attribute__((target("avx")))
#include "updates.h"
#undef FNN_T
#undef FNN_SQRT
#undef FNN_NAME
#undef FNN_ATTR
#endif

#undef FNN_UPDATES_TEMPLATE

/* ---- run-time selection ---------------------------------------------------- */

/* 0: not decided yet; 1: baseline; 2: AVX. One copy per module that includes
 * this header; a benign race, as every thread computes the same answer. */
static int fnn_updates_isa = 0;

static inline int fnn_updates_use_avx(void) {
#if FNN_UPD_X86_DISPATCH
    if (fnn_updates_isa == 0) {
        __builtin_cpu_init();
        fnn_updates_isa = __builtin_cpu_supports("avx") ? 2 : 1;
    }
    return fnn_updates_isa == 2;
#else
    return 0;
#endif
}

#if FNN_UPD_X86_DISPATCH
#define FNN_UPD_DISPATCH(name, args) \
    do { if (fnn_updates_use_avx()) name##_avx args; else name##_base args; } while (0)
#else
#define FNN_UPD_DISPATCH(name, args) name##_base args
#endif

#define FNN_UPD_DEFINE_ENTRIES(T, SUF)                                                      \
static inline void fnn_sgd_##SUF(T *p, const T *g, T *buf, ptrdiff_t n, T lr, T momentum,        \
                          T one_minus_damp, T wd, T decay, int use_momentum, int nesterov,  \
                          int coupled, int first_step) {                                     \
    FNN_UPD_DISPATCH(fnn_sgd_##SUF, (p, g, buf, n, lr, momentum, one_minus_damp, wd, decay, \
                                     use_momentum, nesterov, coupled, first_step));          \
}                                                                                            \
static inline void fnn_adam_##SUF(T *p, const T *g, T *m, T *v, T *v_max, ptrdiff_t n, T beta_1,  \
                           T beta_2, T one_minus_b1, T one_minus_b2, T step_size,            \
                           T bc2_sqrt, T eps, T wd, T decay, int coupled, int amsgrad) {     \
    FNN_UPD_DISPATCH(fnn_adam_##SUF, (p, g, m, v, v_max, n, beta_1, beta_2, one_minus_b1,   \
                                      one_minus_b2, step_size, bc2_sqrt, eps, wd, decay,     \
                                      coupled, amsgrad));                                    \
}                                                                                            \
static inline void fnn_rmsprop_##SUF(T *p, const T *g, T *sq, T *buf, T *gavg, ptrdiff_t n, T lr, \
                              T rho, T one_minus_rho, T eps, T momentum, T wd, T decay,      \
                              int coupled, int centered, int use_momentum) {                 \
    FNN_UPD_DISPATCH(fnn_rmsprop_##SUF, (p, g, sq, buf, gavg, n, lr, rho, one_minus_rho,    \
                                         eps, momentum, wd, decay, coupled, centered,        \
                                         use_momentum));                                     \
}                                                                                            \
static inline void fnn_adagrad_##SUF(T *p, const T *g, T *ss, ptrdiff_t n, T clr, T eps, T wd,    \
                              T decay, int coupled) {                                        \
    FNN_UPD_DISPATCH(fnn_adagrad_##SUF, (p, g, ss, n, clr, eps, wd, decay, coupled));       \
}

FNN_UPD_DEFINE_ENTRIES(float, f32)
FNN_UPD_DEFINE_ENTRIES(double, f64)

#endif /* FNN_UPDATES_H */

#else /* FNN_UPDATES_TEMPLATE: one instantiation for FNN_T, FNN_SQRT, FNN_NAME, FNN_ATTR */

/* Weight decay: coupled adds wd * param to the gradient (torch's weight_decay);
 * decoupled multiplies param by decay = 1 - lr * wd first (AdamW, Keras); decay
 * is 1 when off, and multiplying by 1 is exact, so that product is unconditional. */

FNN_ATTR FNN_UPD_INLINE void
FNN_NAME(fnn_sgd_loop)(FNN_T *p, const FNN_T *g, FNN_T *buf, ptrdiff_t n, FNN_T lr,
                       FNN_T momentum, FNN_T one_minus_damp, FNN_T wd, FNN_T decay,
                       int use_momentum, int nesterov, int coupled, int first_step) {
    ptrdiff_t i;
    FNN_T d, b;
    for (i = 0; i < n; i++) {
        p[i] = p[i] * decay;
        d = g[i];
        if (coupled) d = d + wd * p[i];
        if (use_momentum) {
            if (first_step) b = d;                                    /* buf = g */
            else b = buf[i] * momentum + one_minus_damp * d;          /* buf = mu buf + (1 - dampening) g */
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] = p[i] - lr * d;
    }
}

FNN_ATTR static void
FNN_NAME(fnn_sgd)(FNN_T *p, const FNN_T *g, FNN_T *buf, ptrdiff_t n, FNN_T lr, FNN_T momentum,
                  FNN_T one_minus_damp, FNN_T wd, FNN_T decay, int use_momentum, int nesterov,
                  int coupled, int first_step) {
    if (!coupled && !nesterov && !first_step) {
        if (use_momentum)
            FNN_NAME(fnn_sgd_loop)(p, g, buf, n, lr, momentum, one_minus_damp, wd, decay,
                                   1, 0, 0, 0);
        else
            FNN_NAME(fnn_sgd_loop)(p, g, buf, n, lr, momentum, one_minus_damp, wd, decay,
                                   0, 0, 0, 0);
    } else {
        FNN_NAME(fnn_sgd_loop)(p, g, buf, n, lr, momentum, one_minus_damp, wd, decay,
                               use_momentum, nesterov, coupled, first_step);
    }
}

FNN_ATTR FNN_UPD_INLINE void
FNN_NAME(fnn_adam_loop)(FNN_T *p, const FNN_T *g, FNN_T *m, FNN_T *v, FNN_T *v_max,
                        ptrdiff_t n, FNN_T beta_1, FNN_T beta_2, FNN_T one_minus_b1,
                        FNN_T one_minus_b2, FNN_T step_size, FNN_T bc2_sqrt, FNN_T eps,
                        FNN_T wd, FNN_T decay, int coupled, int amsgrad) {
    ptrdiff_t i;
    FNN_T d, mi, vi, denom;
    /* sqrt(v_hat) = sqrt(v) / sqrt(1 - beta_2^t), by a reciprocal computed once:
     * one division per element instead of two (a vector division is the slowest
     * instruction of the loop), at a cost of at most an ulp in the denominator. */
    const FNN_T inv_bc2_sqrt = (FNN_T)1 / bc2_sqrt;
    for (i = 0; i < n; i++) {
        p[i] = p[i] * decay;
        d = g[i];
        if (coupled) d = d + wd * p[i];
        mi = m[i] * beta_1 + one_minus_b1 * d;                       /* m = b1 m + (1 - b1) g */
        vi = v[i] * beta_2 + one_minus_b2 * d * d;                   /* v = b2 v + (1 - b2) g^2 */
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {
            if (v_max[i] > vi) vi = v_max[i];
            v_max[i] = vi;
        }
        /* epsilon outside the bias-corrected square root, as torch.optim */
        denom = FNN_SQRT(vi) * inv_bc2_sqrt + eps;
        p[i] = p[i] - step_size * mi / denom;
    }
}

FNN_ATTR static void
FNN_NAME(fnn_adam)(FNN_T *p, const FNN_T *g, FNN_T *m, FNN_T *v, FNN_T *v_max, ptrdiff_t n,
                   FNN_T beta_1, FNN_T beta_2, FNN_T one_minus_b1, FNN_T one_minus_b2,
                   FNN_T step_size, FNN_T bc2_sqrt, FNN_T eps, FNN_T wd, FNN_T decay,
                   int coupled, int amsgrad) {
    if (!coupled && !amsgrad)
        FNN_NAME(fnn_adam_loop)(p, g, m, v, v_max, n, beta_1, beta_2, one_minus_b1,
                                one_minus_b2, step_size, bc2_sqrt, eps, wd, decay, 0, 0);
    else
        FNN_NAME(fnn_adam_loop)(p, g, m, v, v_max, n, beta_1, beta_2, one_minus_b1,
                                one_minus_b2, step_size, bc2_sqrt, eps, wd, decay,
                                coupled, amsgrad);
}

FNN_ATTR FNN_UPD_INLINE void
FNN_NAME(fnn_rmsprop_loop)(FNN_T *p, const FNN_T *g, FNN_T *sq, FNN_T *buf, FNN_T *gavg,
                           ptrdiff_t n, FNN_T lr, FNN_T rho, FNN_T one_minus_rho, FNN_T eps,
                           FNN_T momentum, FNN_T wd, FNN_T decay, int coupled, int centered,
                           int use_momentum) {
    ptrdiff_t i;
    FNN_T d, s, a, avg;
    for (i = 0; i < n; i++) {
        p[i] = p[i] * decay;
        d = g[i];
        if (coupled) d = d + wd * p[i];
        s = sq[i] * rho + one_minus_rho * d * d;                     /* E[g^2] = rho E[g^2] + (1 - rho) g^2 */
        sq[i] = s;
        if (centered) {
            a = gavg[i] * rho + one_minus_rho * d;                   /* E[g] = rho E[g] + (1 - rho) g */
            gavg[i] = a;
            avg = FNN_SQRT(s - a * a) + eps;
        } else {
            avg = FNN_SQRT(s) + eps;
        }
        if (use_momentum) {
            buf[i] = buf[i] * momentum + d / avg;                    /* buf = mu buf + g / avg */
            p[i] = p[i] - lr * buf[i];
        } else {
            p[i] = p[i] - lr * d / avg;
        }
    }
}

FNN_ATTR static void
FNN_NAME(fnn_rmsprop)(FNN_T *p, const FNN_T *g, FNN_T *sq, FNN_T *buf, FNN_T *gavg,
                      ptrdiff_t n, FNN_T lr, FNN_T rho, FNN_T one_minus_rho, FNN_T eps,
                      FNN_T momentum, FNN_T wd, FNN_T decay, int coupled, int centered,
                      int use_momentum) {
    if (!coupled && !centered) {
        if (use_momentum)
            FNN_NAME(fnn_rmsprop_loop)(p, g, sq, buf, gavg, n, lr, rho, one_minus_rho, eps,
                                       momentum, wd, decay, 0, 0, 1);
        else
            FNN_NAME(fnn_rmsprop_loop)(p, g, sq, buf, gavg, n, lr, rho, one_minus_rho, eps,
                                       momentum, wd, decay, 0, 0, 0);
    } else {
        FNN_NAME(fnn_rmsprop_loop)(p, g, sq, buf, gavg, n, lr, rho, one_minus_rho, eps,
                                   momentum, wd, decay, coupled, centered, use_momentum);
    }
}

FNN_ATTR FNN_UPD_INLINE void
FNN_NAME(fnn_adagrad_loop)(FNN_T *p, const FNN_T *g, FNN_T *ss, ptrdiff_t n, FNN_T clr,
                           FNN_T eps, FNN_T wd, FNN_T decay, int coupled) {
    ptrdiff_t i;
    FNN_T d, s;
    for (i = 0; i < n; i++) {
        p[i] = p[i] * decay;
        d = g[i];
        if (coupled) d = d + wd * p[i];
        s = ss[i] + d * d;                                           /* sum g^2 */
        ss[i] = s;
        p[i] = p[i] - clr * d / (FNN_SQRT(s) + eps);
    }
}

FNN_ATTR static void
FNN_NAME(fnn_adagrad)(FNN_T *p, const FNN_T *g, FNN_T *ss, ptrdiff_t n, FNN_T clr, FNN_T eps,
                      FNN_T wd, FNN_T decay, int coupled) {
    if (coupled)
        FNN_NAME(fnn_adagrad_loop)(p, g, ss, n, clr, eps, wd, decay, 1);
    else
        FNN_NAME(fnn_adagrad_loop)(p, g, ss, n, clr, eps, wd, decay, 0);
}

#endif /* FNN_UPDATES_TEMPLATE */
