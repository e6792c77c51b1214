/*
 * e^x for float32, eight at a time: the exponentials of softmax.
 *
 * A softmax over 10 classes spends most of its time in exp, and libm's expf is
 * scalar: 4.2% of the 10,000-row predict of the seed MLP (perf) went to it,
 * one call per class per row. This is Cephes' expf (Moshier), written with
 * AVX2 integer and float operations and, identically, in portable C:
 *
 *   n = round(x / ln 2),  r = x - n*ln2   (ln 2 split in two: n*C1 is exact)
 *   e^r ~ 1 + r + r^2 * P(r)              (P of degree 5, |r| <= ln(2)/2)
 *   e^x = e^r * 2^(n>>1) * 2^(n - (n>>1))  (two factors: both stay normal)
 *
 * At most 1 ulp from the correctly rounded e^x over the normal range (2
 * million points from -110 to 95: 90% exact; tests/test_kernels_ops.py).
 * Results in the denormal range are rounded twice (after each scaling), so
 * they may differ from libm's in their last bit; e^x overflows to +inf and
 * underflows to 0 where libm's does; e^NaN is NaN, e^-inf is 0.
 *
 * Both versions run the same IEEE operations in the same order (no FMA: the
 * AVX2 target leaves it out, and contraction is switched off for this file so
 * a build with -mfma does not fuse a*b + c in the portable one either), so a
 * machine without AVX2 computes the same bits, and so does every caller: the
 * softmax kernel, the categorical cross-entropies from logits and the fused
 * training step all get their exponentials here.
 */
#ifndef FASTNN_FAST_EXP_H
#define FASTNN_FAST_EXP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FNN_EXP_X86_DISPATCH 1
#include <immintrin.h>
#else
#define FNN_EXP_X86_DISPATCH 0
#endif

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif

/* Inputs are clamped to [LO, HI] so that n stays in [-150, 129]: both halves of
 * the scaling are then normal floats, and the result under- or overflows in
 * the last multiplication exactly when e^x is out of range. */
#define FNN_EXP_HI 89.0f
#define FNN_EXP_LO -104.0f
#define FNN_EXP_LOG2E 1.44269504088896341f
#define FNN_EXP_C1 0.693359375f   /* ln 2 to 9 bits: n*C1 is exact */
#define FNN_EXP_C2 -2.12194440e-4f /* ln 2 - C1 */
#define FNN_EXP_ROUND 12582912.0f /* 1.5 * 2^23: adding it rounds to an integer */
#define FNN_EXP_P0 1.9875691500e-4f
#define FNN_EXP_P1 1.3981999507e-3f
#define FNN_EXP_P2 8.3334519073e-3f
#define FNN_EXP_P3 4.1665795894e-2f
#define FNN_EXP_P4 1.6666665459e-1f
#define FNN_EXP_P5 5.0000001201e-1f

static inline float fnn_exp_pow2f(int32_t n) { /* 2^n for -126 <= n <= 127 */
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The portable version: the operations of fnn_exp8_avx2 one lane at a time. */
static inline float fnn_expf(float x) {
    if (x != x) return x;
    float xc = x > FNN_EXP_HI ? FNN_EXP_HI : x;
    xc = xc < FNN_EXP_LO ? FNN_EXP_LO : xc;
    const float t = xc * FNN_EXP_LOG2E + FNN_EXP_ROUND;
    const float fn = t - FNN_EXP_ROUND;
    float r = xc - fn * FNN_EXP_C1;
    r = r - fn * FNN_EXP_C2;
    const float z = r * r;
    float y = FNN_EXP_P0;
    y = y * r + FNN_EXP_P1;
    y = y * r + FNN_EXP_P2;
    y = y * r + FNN_EXP_P3;
    y = y * r + FNN_EXP_P4;
    y = y * r + FNN_EXP_P5;
    y = y * z + r;
    y = y + 1.0f;
    const int32_t n = (int32_t)fn, n1 = n >> 1;
    return (y * fnn_exp_pow2f(n1)) * fnn_exp_pow2f(n - n1);
}

#if FNN_EXP_X86_DISPATCH
__attribute__((target("avx2"))) static inline __m256 fnn_exp8_avx2(__m256 x) {
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 xc = _mm256_min_ps(x, _mm256_set1_ps(FNN_EXP_HI));
    xc = _mm256_max_ps(xc, _mm256_set1_ps(FNN_EXP_LO));
    const __m256 t = _mm256_add_ps(_mm256_mul_ps(xc, _mm256_set1_ps(FNN_EXP_LOG2E)),
                                   _mm256_set1_ps(FNN_EXP_ROUND));
    const __m256 fn = _mm256_sub_ps(t, _mm256_set1_ps(FNN_EXP_ROUND));
    __m256 r = _mm256_sub_ps(xc, _mm256_mul_ps(fn, _mm256_set1_ps(FNN_EXP_C1)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(fn, _mm256_set1_ps(FNN_EXP_C2)));
    const __m256 z = _mm256_mul_ps(r, r);
    __m256 y = _mm256_set1_ps(FNN_EXP_P0);
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(FNN_EXP_P1));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(FNN_EXP_P2));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(FNN_EXP_P3));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(FNN_EXP_P4));
    y = _mm256_add_ps(_mm256_mul_ps(y, r), _mm256_set1_ps(FNN_EXP_P5));
    y = _mm256_add_ps(_mm256_mul_ps(y, z), r);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    const __m256i n = _mm256_cvttps_epi32(fn); /* fn is an integer: exact */
    const __m256i n1 = _mm256_srai_epi32(n, 1), n2 = _mm256_sub_epi32(n, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
    return _mm256_blendv_ps(y, x, nan);
}

/* y[j] = e^(x[j] - shift); the lanes past n of the last vector are masked out of
 * its load and store (a padded copy on the stack stalled the load that read it
 * back: 13% of this function's samples). */
__attribute__((target("avx2"))) static void fnn_exp_shift_avx2(const float *x, float shift,
                                                               float *y, ptrdiff_t n) {
    const __m256 s = _mm256_set1_ps(shift);
    ptrdiff_t j = 0;
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(y + j, fnn_exp8_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + j), s)));
    if (j < n) {
        const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n - j)),
                                                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256 v = _mm256_sub_ps(_mm256_maskload_ps(x + j, live), s);
        _mm256_maskstore_ps(y + j, live, fnn_exp8_avx2(v));
    }
}

/* 0: not decided yet; 1: portable; 2: AVX2. A benign race: every thread
 * computes the same answer. */
static int fnn_exp_isa = 0;
#endif

/* y[j] = e^(x[j] - shift) for j < n (y may be x). x[j] - shift is rounded to
 * float first, as the scalar expression would be. */
static inline void fnn_exp_shift_f32(const float *x, float shift, float *y, ptrdiff_t n) {
#if FNN_EXP_X86_DISPATCH
    if (fnn_exp_isa == 0) {
        __builtin_cpu_init();
        fnn_exp_isa = __builtin_cpu_supports("avx2") ? 2 : 1;
    }
    if (fnn_exp_isa == 2) {
        fnn_exp_shift_avx2(x, shift, y, n);
        return;
    }
#endif
    for (ptrdiff_t j = 0; j < n; j++) y[j] = fnn_expf(x[j] - shift);
}

#if defined(__clang__)
#pragma STDC FP_CONTRACT DEFAULT
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif

#endif /* FASTNN_FAST_EXP_H */
