/*
 * fastnn's own GEMM: C = act(alpha * op(A) @ op(B) + beta * C + bias), row-major.
 * The contract is in gemm.h; this file is the implementation.
 *
 * Design (BLIS, Van Zee & van de Geijn 2015). Five loops around a micro-kernel:
 *
 *   for jc in steps of NC:        columns of C and B            (B panel -> L3)
 *     for pc in steps of KC:      the k dimension; pack B[pc:pc+KC, jc:jc+NC]
 *       for ic in steps of MC:    rows of C and A; pack A[ic:ic+MC, pc:pc+KC] (-> L2)
 *         for jr in steps of NR:  one NR-wide micro-panel of packed B (-> L1)
 *           for ir in steps of MR:  micro-kernel: the MR x NR tile of C in registers
 *
 * Packing copies op(A) into MR-row micro-panels (for each p, MR consecutive
 * values) and op(B) into NR-column micro-panels (for each p, NR consecutive
 * values), zero-padded at the edges, so the micro-kernel streams both with unit
 * stride and both transposes are handled here once instead of in the kernel.
 *
 * Epilogue: after the last k-block a tile's values are final; bias and
 * activation are applied to it right away, while it is still in L1, so the dense
 * forward writes its output once.
 *
 * Threads: the team splits the packing of each B panel and each A block, then
 * the (jr, ir) tiles of the block. The tile grid and the k-blocking depend only
 * on the shape, never on the thread count, and every tile is computed by one
 * thread, so results are bit-identical for any number of threads.
 *
 * Workspace: packed panels live in a thread-local buffer that grows on demand
 * and is kept, so repeated small calls never allocate.
 *
 * The type-generic part is written once with T / FNN_S() and stamped out for
 * float and double by including this file into itself (FNN_GEMM_TEMPLATE).
 */
#ifndef FNN_GEMM_TEMPLATE

#include "gemm.h"
#include "activations.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define FNN_HAVE_X86_DISPATCH 1
#include <immintrin.h>
#define FNN_AVX2 __attribute__((target("avx2,fma")))
#else
#define FNN_HAVE_X86_DISPATCH 0
#endif

#if defined(_MSC_VER)
#define FNN_TLS __declspec(thread)
#include <malloc.h>
#else
#define FNN_TLS _Thread_local
#endif

#define FNN_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FNN_MAX(a, b) ((a) > (b) ? (a) : (b))
#define FNN_CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

/* Largest micro-tile of any kernel: sizes the stack tile used at the edges. */
#define FNN_MAX_MR 8
#define FNN_MAX_NR 16

/* A thread below this many multiply-adds costs more (wake-up, barriers) than it
 * saves. Measured on a 2-core EPYC (bench/gemm.py): at 32x784x64 (1.6 M) a
 * second thread still pays off, at 32x64x64 (131 k) it does not. */
#define FNN_MIN_WORK_PER_THREAD ((double)(1 << 19))

/* ---- workspace ---------------------------------------------------------- */

typedef struct {
    void *ptr;
    size_t bytes;
} fnn_workspace;

static FNN_TLS fnn_workspace fnn_tls_workspace = {NULL, 0};

static void fnn_aligned_free(void *p) {
#if defined(_MSC_VER)
    _aligned_free(p);
#else
    free(p);
#endif
}

static void *fnn_aligned_alloc64(size_t bytes) {
#if defined(_MSC_VER)
    return _aligned_malloc(bytes, 64);
#else
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
#endif
}

/* The calling thread's buffer, at least `bytes` long and 64-byte aligned; NULL
 * if it cannot be grown (the caller then falls back to the unpacked loop). */
static void *fnn_workspace_reserve(size_t bytes) {
    fnn_workspace *w = &fnn_tls_workspace;
    if (w->bytes < bytes) {
        /* Grow geometrically so a sequence of slightly larger calls does not
         * reallocate each time. */
        size_t want = FNN_MAX(bytes, w->bytes + w->bytes / 2);
        void *p = fnn_aligned_alloc64(want);
        if (p == NULL) {
            p = fnn_aligned_alloc64(bytes);
            want = bytes;
        }
        if (p == NULL) return NULL;
        fnn_aligned_free(w->ptr);
        w->ptr = p;
        w->bytes = want;
    }
    return w->ptr;
}

static size_t fnn_round_up64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* ---- threads ------------------------------------------------------------ */

#ifdef _OPENMP
/* Part [*lo, *hi) of 0..count that thread `tid` of `nt` owns (contiguous,
 * sizes differing by at most one). */
static void fnn_split(ptrdiff_t count, int tid, int nt, ptrdiff_t *lo, ptrdiff_t *hi) {
    ptrdiff_t base = count / nt, extra = count % nt;
    *lo = tid * base + FNN_MIN((ptrdiff_t)tid, extra);
    *hi = *lo + base + (tid < extra ? 1 : 0);
}
static int fnn_threads_for(int requested, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k) {
    double work = (double)m * (double)n * (double)k;
    int by_work = (int)FNN_MIN(work / FNN_MIN_WORK_PER_THREAD, 1024.0);
    int nt = FNN_MIN(requested, by_work);
    return nt < 1 ? 1 : nt;
}
#endif

/* ---- kernel selection ----------------------------------------------------- */

/* 0: not decided yet; 1: portable; 2: AVX2 + FMA. */
static int fnn_kernel_choice = 0;

static int fnn_detect_kernel(void) {
    const char *force = getenv("FASTNN_GEMM_KERNEL");
    if (force != NULL && strcmp(force, "portable") == 0) return 1;
#if FNN_HAVE_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 2;
#endif
    return 1;
}

static int fnn_kernel(void) {
    /* A benign race: every thread that gets here computes the same answer. */
    if (fnn_kernel_choice == 0) fnn_kernel_choice = fnn_detect_kernel();
    return fnn_kernel_choice;
}

const char *fnn_gemm_kernel_name(void) {
    return fnn_kernel() == 2 ? "avx2_fma" : "portable";
}

/* Not part of gemm.h: lets tests and benchmarks pin a kernel ("portable",
 * "avx2_fma", or "auto"). Returns 0 on success, -1 if that kernel cannot run
 * here. Not thread-safe with respect to concurrent GEMM calls. */
int fnn_gemm_set_kernel(const char *name) {
    if (strcmp(name, "portable") == 0) {
        fnn_kernel_choice = 1;
        return 0;
    }
    if (strcmp(name, "auto") == 0) {
        fnn_kernel_choice = 0;
        fnn_kernel();
        return 0;
    }
    if (strcmp(name, "avx2_fma") == 0) {
#if FNN_HAVE_X86_DISPATCH
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            fnn_kernel_choice = 2;
            return 0;
        }
#endif
    }
    return -1;
}

/* ---- AVX2/FMA micro-kernels ----------------------------------------------- */
/*
 * Each computes one MR x NR tile from a packed A micro-panel (MR values per p)
 * and a packed B micro-panel (NR values per p), holding the tile in 12 ymm
 * accumulators: per p, two loads of B, MR broadcasts of A, 2*MR FMAs. The tile
 * is then written as C = alpha*AB + beta*C, where beta == 0 never reads C.
 */
#if FNN_HAVE_X86_DISPATCH

/* One k step of the 6 x (2 vectors) tile: two loads of B, six broadcasts of A,
 * twelve FMAs. U is the step's offset inside an unrolled group. */
#define FNN_ROW_F32(i, U)                                                   \
    {                                                                       \
        __m256 ai = _mm256_broadcast_ss(a + 6 * (U) + (i));                 \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                         \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                         \
    }
#define FNN_STEP_F32(U)                                                          \
    {                                                                            \
        __m256 b0 = _mm256_load_ps(b + 16 * (U)), b1 = _mm256_load_ps(b + 16 * (U) + 8); \
        FNN_ROW_F32(0, U) FNN_ROW_F32(1, U) FNN_ROW_F32(2, U)                    \
        FNN_ROW_F32(3, U) FNN_ROW_F32(4, U) FNN_ROW_F32(5, U)                    \
    }
#define FNN_STORE_F32(i)                                                          \
    {                                                                             \
        float *ci = c + (i) * ldc;                                                \
        __m256 r0 = _mm256_mul_ps(va, c##i##0), r1 = _mm256_mul_ps(va, c##i##1); \
        if (beta != 0.0f) {                                                       \
            r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);                    \
            r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);                \
        }                                                                         \
        _mm256_storeu_ps(ci, r0);                                                 \
        _mm256_storeu_ps(ci + 8, r1);                                             \
    }

FNN_AVX2 static void fnn_ukr_avx2_f32(ptrdiff_t kc, const float *a, const float *b,
                                      float *c, ptrdiff_t ldc, float alpha, float beta) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    /* The C tile is needed only after the k loop, but it is usually far away in
     * the cache hierarchy: ask for it now so the final loads and stores do not stall. */
    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
    ptrdiff_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        _mm_prefetch((const char *)(a + 96), _MM_HINT_T0); /* A streams from L2 */
        FNN_STEP_F32(0) FNN_STEP_F32(1) FNN_STEP_F32(2) FNN_STEP_F32(3)
        a += 24;
        b += 64;
    }
    for (; p < kc; p++) {
        FNN_STEP_F32(0)
        a += 6;
        b += 16;
    }
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    FNN_STORE_F32(0) FNN_STORE_F32(1) FNN_STORE_F32(2)
    FNN_STORE_F32(3) FNN_STORE_F32(4) FNN_STORE_F32(5)
}

#define FNN_ROW_F64(i, U)                                                   \
    {                                                                       \
        __m256d ai = _mm256_broadcast_sd(a + 6 * (U) + (i));                \
        c##i##0 = _mm256_fmadd_pd(ai, b0, c##i##0);                         \
        c##i##1 = _mm256_fmadd_pd(ai, b1, c##i##1);                         \
    }
#define FNN_STEP_F64(U)                                                          \
    {                                                                            \
        __m256d b0 = _mm256_load_pd(b + 8 * (U)), b1 = _mm256_load_pd(b + 8 * (U) + 4); \
        FNN_ROW_F64(0, U) FNN_ROW_F64(1, U) FNN_ROW_F64(2, U)                    \
        FNN_ROW_F64(3, U) FNN_ROW_F64(4, U) FNN_ROW_F64(5, U)                    \
    }
#define FNN_STORE_F64(i)                                                          \
    {                                                                             \
        double *ci = c + (i) * ldc;                                               \
        __m256d r0 = _mm256_mul_pd(va, c##i##0), r1 = _mm256_mul_pd(va, c##i##1); \
        if (beta != 0.0) {                                                        \
            r0 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci), r0);                    \
            r1 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci + 4), r1);                \
        }                                                                         \
        _mm256_storeu_pd(ci, r0);                                                 \
        _mm256_storeu_pd(ci + 4, r1);                                             \
    }

FNN_AVX2 static void fnn_ukr_avx2_f64(ptrdiff_t kc, const double *a, const double *b,
                                      double *c, ptrdiff_t ldc, double alpha, double beta) {
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 7), _MM_HINT_T0);
    }
    ptrdiff_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        _mm_prefetch((const char *)(a + 48), _MM_HINT_T0);
        _mm_prefetch((const char *)(a + 56), _MM_HINT_T0);
        FNN_STEP_F64(0) FNN_STEP_F64(1) FNN_STEP_F64(2) FNN_STEP_F64(3)
        a += 24;
        b += 32;
    }
    for (; p < kc; p++) {
        FNN_STEP_F64(0)
        a += 6;
        b += 8;
    }
    __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
    FNN_STORE_F64(0) FNN_STORE_F64(1) FNN_STORE_F64(2)
    FNN_STORE_F64(3) FNN_STORE_F64(4) FNN_STORE_F64(5)
}

/* ---- AVX2/FMA kernels for small problems (no packing of A) -------------------
 *
 * For small products packing costs as much as it saves (BLIS's "sup" kernels
 * make the same trade): the kernel reads op(A) where it lies, element (i, p) at
 * a[i*rs_a + p*cs_a], and B either packed or straight from a row-major op(B)
 * (row p at b + p*rs_b). Rows past `mr` re-read the last valid row, so the
 * kernel never touches memory outside A; their results land in the caller's
 * scratch tile and are dropped. The whole k range is done in one pass. */

#define FNN_SUP_ROW_F32(i)                                                  \
    {                                                                       \
        __m256 ai = _mm256_broadcast_ss(a##i + off);                        \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                         \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                         \
    }
#define FNN_SUP_STEP_F32                                                    \
    {                                                                       \
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);        \
        FNN_SUP_ROW_F32(0) FNN_SUP_ROW_F32(1) FNN_SUP_ROW_F32(2)            \
        FNN_SUP_ROW_F32(3) FNN_SUP_ROW_F32(4) FNN_SUP_ROW_F32(5)            \
        off += cs_a;                                                        \
        b += rs_b;                                                          \
    }

/* cs_a is a parameter of an always-inlined body so that the cs_a == 1 copy
 * (op(A) not transposed: each row is contiguous) gets constant offsets. */
FNN_AVX2 static inline __attribute__((always_inline)) void
fnn_sup_body_f32(ptrdiff_t k, const float *a, ptrdiff_t rs_a, ptrdiff_t cs_a, ptrdiff_t mr,
                 const float *b, ptrdiff_t rs_b, float *c, ptrdiff_t ldc, float alpha,
                 float beta) {
    const float *a0 = a, *a1 = a0 + (mr > 1 ? rs_a : 0), *a2 = a1 + (mr > 2 ? rs_a : 0);
    const float *a3 = a2 + (mr > 3 ? rs_a : 0), *a4 = a3 + (mr > 4 ? rs_a : 0);
    const float *a5 = a4 + (mr > 5 ? rs_a : 0);
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    ptrdiff_t off = 0, p = 0;
    for (; p + 4 <= k; p += 4) {
        FNN_SUP_STEP_F32 FNN_SUP_STEP_F32 FNN_SUP_STEP_F32 FNN_SUP_STEP_F32
    }
    for (; p < k; p++) FNN_SUP_STEP_F32
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
    FNN_STORE_F32(0) FNN_STORE_F32(1) FNN_STORE_F32(2)
    FNN_STORE_F32(3) FNN_STORE_F32(4) FNN_STORE_F32(5)
}

FNN_AVX2 static void fnn_sup_avx2_f32(ptrdiff_t k, const float *a, ptrdiff_t rs_a,
                                      ptrdiff_t cs_a, ptrdiff_t mr, const float *b,
                                      ptrdiff_t rs_b, float *c, ptrdiff_t ldc, float alpha,
                                      float beta) {
    if (cs_a == 1)
        fnn_sup_body_f32(k, a, rs_a, 1, mr, b, rs_b, c, ldc, alpha, beta);
    else
        fnn_sup_body_f32(k, a, rs_a, cs_a, mr, b, rs_b, c, ldc, alpha, beta);
}

#define FNN_SUP_ROW_F64(i)                                                  \
    {                                                                       \
        __m256d ai = _mm256_broadcast_sd(a##i + off);                       \
        c##i##0 = _mm256_fmadd_pd(ai, b0, c##i##0);                         \
        c##i##1 = _mm256_fmadd_pd(ai, b1, c##i##1);                         \
    }
#define FNN_SUP_STEP_F64                                                    \
    {                                                                       \
        __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);       \
        FNN_SUP_ROW_F64(0) FNN_SUP_ROW_F64(1) FNN_SUP_ROW_F64(2)            \
        FNN_SUP_ROW_F64(3) FNN_SUP_ROW_F64(4) FNN_SUP_ROW_F64(5)            \
        off += cs_a;                                                        \
        b += rs_b;                                                          \
    }

FNN_AVX2 static inline __attribute__((always_inline)) void
fnn_sup_body_f64(ptrdiff_t k, const double *a, ptrdiff_t rs_a, ptrdiff_t cs_a, ptrdiff_t mr,
                 const double *b, ptrdiff_t rs_b, double *c, ptrdiff_t ldc, double alpha,
                 double beta) {
    const double *a0 = a, *a1 = a0 + (mr > 1 ? rs_a : 0), *a2 = a1 + (mr > 2 ? rs_a : 0);
    const double *a3 = a2 + (mr > 3 ? rs_a : 0), *a4 = a3 + (mr > 4 ? rs_a : 0);
    const double *a5 = a4 + (mr > 5 ? rs_a : 0);
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();
    ptrdiff_t off = 0, p = 0;
    for (; p + 4 <= k; p += 4) {
        FNN_SUP_STEP_F64 FNN_SUP_STEP_F64 FNN_SUP_STEP_F64 FNN_SUP_STEP_F64
    }
    for (; p < k; p++) FNN_SUP_STEP_F64
    __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);
    FNN_STORE_F64(0) FNN_STORE_F64(1) FNN_STORE_F64(2)
    FNN_STORE_F64(3) FNN_STORE_F64(4) FNN_STORE_F64(5)
}

FNN_AVX2 static void fnn_sup_avx2_f64(ptrdiff_t k, const double *a, ptrdiff_t rs_a,
                                      ptrdiff_t cs_a, ptrdiff_t mr, const double *b,
                                      ptrdiff_t rs_b, double *c, ptrdiff_t ldc, double alpha,
                                      double beta) {
    if (cs_a == 1)
        fnn_sup_body_f64(k, a, rs_a, 1, mr, b, rs_b, c, ldc, alpha, beta);
    else
        fnn_sup_body_f64(k, a, rs_a, cs_a, mr, b, rs_b, c, ldc, alpha, beta);
}

/* The epilogue compiled for AVX2 (the shared row helper inlines and vectorizes). */
FNN_AVX2 static void fnn_epilogue_avx2_f32(float *c, ptrdiff_t ldc, ptrdiff_t mr, ptrdiff_t nr,
                                           const float *bias, int act, float param,
                                           float *preact) {
    for (ptrdiff_t i = 0; i < mr; i++)
        fnn_bias_act_row_f32(act, param, c + i * ldc, bias, preact ? preact + i * ldc : NULL,
                             (long)nr);
}

FNN_AVX2 static void fnn_epilogue_avx2_f64(double *c, ptrdiff_t ldc, ptrdiff_t mr, ptrdiff_t nr,
                                           const double *bias, int act, double param,
                                           double *preact) {
    for (ptrdiff_t i = 0; i < mr; i++)
        fnn_bias_act_row_f64(act, param, c + i * ldc, bias, preact ? preact + i * ldc : NULL,
                             (long)nr);
}

#endif /* FNN_HAVE_X86_DISPATCH */

/* ---- the type-generic part, once per type -------------------------------- */

#define FNN_GEMM_TEMPLATE
#define T float
#define FNN_S(name) name##_f32
#define FNN_PUBLIC_NAME fnn_sgemm
#include "gemm.c"
#undef T
#undef FNN_S
#undef FNN_PUBLIC_NAME

#define T double
#define FNN_S(name) name##_f64
#define FNN_PUBLIC_NAME fnn_dgemm
#include "gemm.c"
#undef T
#undef FNN_S
#undef FNN_PUBLIC_NAME
#undef FNN_GEMM_TEMPLATE

#else /* FNN_GEMM_TEMPLATE: everything below is written once over the type T */

typedef void (*FNN_S(fnn_ukr_fn))(ptrdiff_t kc, const T *a, const T *b, T *c, ptrdiff_t ldc,
                                  T alpha, T beta);
typedef void (*FNN_S(fnn_sup_fn))(ptrdiff_t k, const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                                  ptrdiff_t mr, const T *b, ptrdiff_t rs_b, T *c, ptrdiff_t ldc,
                                  T alpha, T beta);
typedef void (*FNN_S(fnn_epilogue_fn))(T *c, ptrdiff_t ldc, ptrdiff_t mr, ptrdiff_t nr,
                                       const T *bias, int act, T param, T *preact);

/* A micro-kernel and the blocking that suits it. */
typedef struct {
    ptrdiff_t mr, nr;     /* register tile */
    ptrdiff_t mc, kc, nc; /* cache blocks: MC x KC of A in L2, KC x NR of B in L1 */
    FNN_S(fnn_ukr_fn) ukr;
    FNN_S(fnn_sup_fn) sup; /* small-problem kernel, or NULL: always pack */
    FNN_S(fnn_epilogue_fn) epilogue;
} FNN_S(fnn_kernel_desc);

/* One call's arguments, shared by the team. */
typedef struct {
    int trans_a, trans_b;
    ptrdiff_t m, n, k;
    T alpha, beta;
    const T *a, *b;
    ptrdiff_t lda, ldb, ldc;
    T *c;
    const T *bias;
    int act;
    T act_param;
    T *preact;
} FNN_S(fnn_gemm_args);

/* Portable micro-kernel: plain C the compiler can vectorize for any target. */
#define FNN_PORTABLE_MR 4
#define FNN_PORTABLE_NR 8

static void FNN_S(fnn_ukr_portable)(ptrdiff_t kc, const T *a, const T *b, T *c, ptrdiff_t ldc,
                                    T alpha, T beta) {
    T acc[FNN_PORTABLE_MR][FNN_PORTABLE_NR] = {{0}};
    for (ptrdiff_t p = 0; p < kc; p++) {
        for (int i = 0; i < FNN_PORTABLE_MR; i++)
            for (int j = 0; j < FNN_PORTABLE_NR; j++) acc[i][j] += a[i] * b[j];
        a += FNN_PORTABLE_MR;
        b += FNN_PORTABLE_NR;
    }
    for (int i = 0; i < FNN_PORTABLE_MR; i++) {
        T *ci = c + i * ldc;
        if (beta != (T)0)
            for (int j = 0; j < FNN_PORTABLE_NR; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
        else
            for (int j = 0; j < FNN_PORTABLE_NR; j++) ci[j] = alpha * acc[i][j];
    }
}

static void FNN_S(fnn_epilogue_portable)(T *c, ptrdiff_t ldc, ptrdiff_t mr, ptrdiff_t nr,
                                         const T *bias, int act, T param, T *preact) {
    for (ptrdiff_t i = 0; i < mr; i++)
        FNN_S(fnn_bias_act_row)(act, param, c + i * ldc, bias, preact ? preact + i * ldc : NULL,
                                (long)nr);
}

static FNN_S(fnn_kernel_desc) FNN_S(fnn_select_kernel)(void) {
    FNN_S(fnn_kernel_desc) d;
    d.mr = FNN_PORTABLE_MR;
    d.nr = FNN_PORTABLE_NR;
    d.mc = 128;
    d.kc = 256;
    d.nc = 4096;
    d.ukr = FNN_S(fnn_ukr_portable);
    d.sup = NULL;
    d.epilogue = FNN_S(fnn_epilogue_portable);
#if FNN_HAVE_X86_DISPATCH
    if (fnn_kernel() == 2) {
        /* 6 x (2 vectors): 12 accumulators + 2 B vectors + 1 broadcast of 16 ymm.
         * KC x NR of B (16 KiB) fits the 32 KiB L1d with room for A's stream;
         * MC x KC of A (f32: 144 KiB) sits in the 512 KiB L2. */
        d.mr = 6;
        d.nr = 32 / (ptrdiff_t)sizeof(T) * 2;
        d.kc = 256;
        d.mc = sizeof(T) == 4 ? 144 : 72;
        d.nc = 4080;
        d.ukr = FNN_S(fnn_ukr_avx2);
        d.sup = FNN_S(fnn_sup_avx2);
        d.epilogue = FNN_S(fnn_epilogue_avx2);
    }
#endif
    { /* DEV-ONLY tuning override */
        const char *e = getenv(sizeof(T) == 4 ? "FNN_BLK_F32" : "FNN_BLK_F64");
        long mc_, kc_, nc_;
        if (e && sscanf(e, "%ld,%ld,%ld", &mc_, &kc_, &nc_) == 3) { d.mc = mc_; d.kc = kc_; d.nc = nc_; }
    }
    return d;
}

/* ---- packing ---------------------------------------------------------------- */

/* op(A)[i0:i0+mr, p0:p0+kc] into one micro-panel: dst[p*MR + i], rows >= mr zero. */
static void FNN_S(fnn_pack_a)(const FNN_S(fnn_gemm_args) *g, ptrdiff_t MR, ptrdiff_t i0,
                              ptrdiff_t mr, ptrdiff_t p0, ptrdiff_t kc, T *dst) {
    if (g->trans_a) { /* A stored k x m: a run of MR values of op(A) per p is contiguous */
        for (ptrdiff_t p = 0; p < kc; p++) {
            const T *src = g->a + (p0 + p) * g->lda + i0;
            T *d = dst + p * MR;
            ptrdiff_t i = 0;
            for (; i < mr; i++) d[i] = src[i];
            for (; i < MR; i++) d[i] = (T)0;
        }
    } else { /* A stored m x k: read each row with unit stride, scatter by MR */
        for (ptrdiff_t i = 0; i < mr; i++) {
            const T *src = g->a + (i0 + i) * g->lda + p0;
            for (ptrdiff_t p = 0; p < kc; p++) dst[p * MR + i] = src[p];
        }
        for (ptrdiff_t i = mr; i < MR; i++)
            for (ptrdiff_t p = 0; p < kc; p++) dst[p * MR + i] = (T)0;
    }
}

/* op(B)[p0:p0+kc, j0:j0+nr] into one micro-panel: dst[p*NR + j], columns >= nr zero. */
static void FNN_S(fnn_pack_b)(const FNN_S(fnn_gemm_args) *g, ptrdiff_t NR, ptrdiff_t j0,
                              ptrdiff_t nr, ptrdiff_t p0, ptrdiff_t kc, T *dst) {
    if (!g->trans_b) { /* B stored k x n: NR values per p are contiguous */
        if (nr == NR && NR * sizeof(T) == 64) {
            /* The AVX2 tiles are one cache line wide: a fixed-size copy inlines. */
            for (ptrdiff_t p = 0; p < kc; p++)
                memcpy(dst + p * NR, g->b + (p0 + p) * g->ldb + j0, 64);
        } else {
            for (ptrdiff_t p = 0; p < kc; p++) {
                const T *src = g->b + (p0 + p) * g->ldb + j0;
                T *d = dst + p * NR;
                ptrdiff_t j = 0;
                for (; j < nr; j++) d[j] = src[j];
                for (; j < NR; j++) d[j] = (T)0;
            }
        }
    } else { /* B stored n x k: read each row of B (a column of op(B)) with unit stride */
        for (ptrdiff_t j = 0; j < nr; j++) {
            const T *src = g->b + (j0 + j) * g->ldb + p0;
            for (ptrdiff_t p = 0; p < kc; p++) dst[p * NR + j] = src[p];
        }
        for (ptrdiff_t j = nr; j < NR; j++)
            for (ptrdiff_t p = 0; p < kc; p++) dst[p * NR + j] = (T)0;
    }
}

/* ---- one tile ----------------------------------------------------------------- */

/* The valid mr x nr corner of a scratch tile (row stride ldt) into C:
 * C = alpha*tile + beta*C, not reading C when beta == 0. */
static void FNN_S(fnn_merge_tile)(const FNN_S(fnn_gemm_args) *g, T *c, const T *tile,
                                  ptrdiff_t ldt, ptrdiff_t mr, ptrdiff_t nr, T beta) {
    for (ptrdiff_t i = 0; i < mr; i++) {
        T *ci = c + i * g->ldc;
        const T *ti = tile + i * ldt;
        if (beta != (T)0)
            for (ptrdiff_t j = 0; j < nr; j++) ci[j] = g->alpha * ti[j] + beta * ci[j];
        else
            for (ptrdiff_t j = 0; j < nr; j++) ci[j] = g->alpha * ti[j];
    }
}

/* C[i0:i0+mr, j0:j0+nr] (+)= alpha * Apanel @ Bpanel, then the epilogue if `last`.
 * `first` selects beta (the caller's) versus 1 (accumulate later k-blocks). */
static void FNN_S(fnn_tile)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd,
                            ptrdiff_t i0, ptrdiff_t mr, ptrdiff_t j0, ptrdiff_t nr, ptrdiff_t kc,
                            const T *ap, const T *bp, int first, int last) {
    T beta = first ? g->beta : (T)1;
    T *c = g->c + i0 * g->ldc + j0;
    if (mr == kd->mr && nr == kd->nr) {
        kd->ukr(kc, ap, bp, c, g->ldc, g->alpha, beta);
    } else {
        /* Edge tile: compute the full padded tile on the stack, merge the valid part. */
        T tile[FNN_MAX_MR * FNN_MAX_NR];
        kd->ukr(kc, ap, bp, tile, kd->nr, (T)1, (T)0);
        FNN_S(fnn_merge_tile)(g, c, tile, kd->nr, mr, nr, beta);
    }
    if (last)
        kd->epilogue(c, g->ldc, mr, nr, g->bias ? g->bias + j0 : NULL, g->act, g->act_param,
                     g->preact ? g->preact + i0 * g->ldc + j0 : NULL);
}

/* ---- the blocked algorithm over one block of C ------------------------------------ */

/* Without a workspace: a plain triple loop over C[i0:i1, j0:j1] (slow, never fails). */
static void FNN_S(fnn_gemm_unpacked)(const FNN_S(fnn_gemm_args) *g,
                                     const FNN_S(fnn_kernel_desc) *kd, ptrdiff_t i0,
                                     ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1) {
    for (ptrdiff_t i = i0; i < i1; i++) {
        T *ci = g->c + i * g->ldc;
        for (ptrdiff_t j = j0; j < j1; j++) {
            T s = 0;
            for (ptrdiff_t p = 0; p < g->k; p++) {
                T av = g->trans_a ? g->a[p * g->lda + i] : g->a[i * g->lda + p];
                T bv = g->trans_b ? g->b[j * g->ldb + p] : g->b[p * g->ldb + j];
                s += av * bv;
            }
            ci[j] = g->alpha * s + (g->beta != (T)0 ? g->beta * ci[j] : (T)0);
        }
        kd->epilogue(ci + j0, g->ldc, 1, j1 - j0, g->bias ? g->bias + j0 : NULL, g->act,
                     g->act_param, g->preact ? g->preact + i * g->ldc + j0 : NULL);
    }
}

/* C[i0:i1, j0:j1] by the five loops, on the calling thread with its own workspace.
 * i0 and j0 lie on the global MR x NR tile grid, so a tile is the same tile (same
 * packed panels, same k-blocks) whichever thread computes it. */
static void FNN_S(fnn_gemm_block)(const FNN_S(fnn_gemm_args) *g,
                                  const FNN_S(fnn_kernel_desc) *kd, ptrdiff_t i0,
                                  ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1) {
    const ptrdiff_t MR = kd->mr, NR = kd->nr;
    const ptrdiff_t kc_max = FNN_MIN(kd->kc, g->k);
    const ptrdiff_t mc_max = FNN_MIN(kd->mc, FNN_CEIL_DIV(i1 - i0, MR) * MR);
    const ptrdiff_t nc_max = FNN_MIN(kd->nc, FNN_CEIL_DIV(j1 - j0, NR) * NR);
    const size_t a_bytes = fnn_round_up64((size_t)(mc_max * kc_max) * sizeof(T));
    const size_t b_bytes = fnn_round_up64((size_t)(nc_max * kc_max) * sizeof(T));
    char *ws = (char *)fnn_workspace_reserve(a_bytes + b_bytes);
    if (ws == NULL) {
        FNN_S(fnn_gemm_unpacked)(g, kd, i0, i1, j0, j1);
        return;
    }
    T *abuf = (T *)ws, *bbuf = (T *)(ws + a_bytes);

    for (ptrdiff_t jc = j0; jc < j1; jc += kd->nc) {
        const ptrdiff_t nc = FNN_MIN(kd->nc, j1 - jc);
        for (ptrdiff_t pc = 0; pc < g->k; pc += kd->kc) {
            const ptrdiff_t kc = FNN_MIN(kd->kc, g->k - pc);
            const int first = pc == 0, last = pc + kc == g->k;
            for (ptrdiff_t jr = 0; jr < nc; jr += NR)
                FNN_S(fnn_pack_b)(g, NR, jc + jr, FNN_MIN(NR, nc - jr), pc, kc, bbuf + jr * kc);
            for (ptrdiff_t ic = i0; ic < i1; ic += kd->mc) {
                const ptrdiff_t mc = FNN_MIN(kd->mc, i1 - ic);
                for (ptrdiff_t ir = 0; ir < mc; ir += MR)
                    FNN_S(fnn_pack_a)(g, MR, ic + ir, FNN_MIN(MR, mc - ir), pc, kc,
                                      abuf + ir * kc);
                for (ptrdiff_t jr = 0; jr < nc; jr += NR)
                    for (ptrdiff_t ir = 0; ir < mc; ir += MR)
                        FNN_S(fnn_tile)(g, kd, ic + ir, FNN_MIN(MR, mc - ir), jc + jr,
                                        FNN_MIN(NR, nc - jr), kc, abuf + ir * kc,
                                        bbuf + jr * kc, first, last);
            }
        }
    }
}

/* ---- small problems: no packing of A ------------------------------------------------- */

/* Small enough that packing does not pay: A stays in L2 while it is re-read for
 * every NR-wide column panel, and one full-k panel of B fits in L2 too. Decided by
 * the shape alone (never by the thread count), so results stay thread-independent. */
static int FNN_S(fnn_use_sup)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd) {
    const double a_bytes = (double)g->m * (double)g->k * sizeof(T);
    const double b_panel_bytes = (double)g->k * (double)kd->nr * sizeof(T);
    return kd->sup != NULL && a_bytes <= 256.0 * 1024 && b_panel_bytes <= 128.0 * 1024;
}

/* C[i0:i1, j0:j1] with the small-problem kernel. B panels are read in place when
 * op(B) rows are contiguous and the panel is full width, else packed (full k). */
static void FNN_S(fnn_gemm_sup_block)(const FNN_S(fnn_gemm_args) *g,
                                      const FNN_S(fnn_kernel_desc) *kd, ptrdiff_t i0,
                                      ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1) {
    const ptrdiff_t MR = kd->mr, NR = kd->nr, k = g->k;
    const ptrdiff_t rs_a = g->trans_a ? 1 : g->lda, cs_a = g->trans_a ? g->lda : 1;
    T *packed = NULL;
    for (ptrdiff_t j = j0; j < j1; j += NR) {
        const ptrdiff_t nr = FNN_MIN(NR, j1 - j);
        const T *bp;
        ptrdiff_t rs_b;
        if (!g->trans_b && nr == NR) {
            bp = g->b + j;
            rs_b = g->ldb;
        } else {
            if (packed == NULL) {
                packed = (T *)fnn_workspace_reserve((size_t)(k * NR) * sizeof(T));
                if (packed == NULL) {
                    FNN_S(fnn_gemm_unpacked)(g, kd, i0, i1, j, j1);
                    return;
                }
            }
            FNN_S(fnn_pack_b)(g, NR, j, nr, 0, k, packed);
            bp = packed;
            rs_b = NR;
        }
        for (ptrdiff_t i = i0; i < i1; i += MR) {
            const ptrdiff_t mr = FNN_MIN(MR, i1 - i);
            T *c = g->c + i * g->ldc + j;
            const T *ap = g->a + i * rs_a;
            if (mr == MR && nr == NR) {
                kd->sup(k, ap, rs_a, cs_a, mr, bp, rs_b, c, g->ldc, g->alpha, g->beta);
            } else {
                T tile[FNN_MAX_MR * FNN_MAX_NR];
                kd->sup(k, ap, rs_a, cs_a, mr, bp, rs_b, tile, NR, (T)1, (T)0);
                FNN_S(fnn_merge_tile)(g, c, tile, NR, mr, nr, g->beta);
            }
            kd->epilogue(c, g->ldc, mr, nr, g->bias ? g->bias + j : NULL, g->act, g->act_param,
                         g->preact ? g->preact + i * g->ldc + j : NULL);
        }
    }
}

/* One thread's block of C, by whichever algorithm suits the shape. */
static void FNN_S(fnn_gemm_any_block)(const FNN_S(fnn_gemm_args) *g,
                                      const FNN_S(fnn_kernel_desc) *kd, int sup,
                                      ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1) {
    if (sup)
        FNN_S(fnn_gemm_sup_block)(g, kd, i0, i1, j0, j1);
    else
        FNN_S(fnn_gemm_block)(g, kd, i0, i1, j0, j1);
}

/* ---- threads ------------------------------------------------------------------------- */

#ifdef _OPENMP
/* Thread `tid` of `nt` computes one contiguous slab of C, cut along the longer of m
 * and n on tile boundaries. Slabs are independent (each thread packs what it
 * needs), so the team never waits at a barrier: on a shared machine a thread
 * that gets descheduled delays only its own slab instead of stalling everyone. */
static void FNN_S(fnn_gemm_slab)(const FNN_S(fnn_gemm_args) *g,
                                 const FNN_S(fnn_kernel_desc) *kd, int sup, int tid, int nt) {
    ptrdiff_t lo, hi;
    if (g->n >= g->m) {
        fnn_split(FNN_CEIL_DIV(g->n, kd->nr), tid, nt, &lo, &hi);
        if (lo < hi)
            FNN_S(fnn_gemm_any_block)(g, kd, sup, 0, g->m, lo * kd->nr,
                                      FNN_MIN(hi * kd->nr, g->n));
    } else {
        fnn_split(FNN_CEIL_DIV(g->m, kd->mr), tid, nt, &lo, &hi);
        if (lo < hi)
            FNN_S(fnn_gemm_any_block)(g, kd, sup, lo * kd->mr, FNN_MIN(hi * kd->mr, g->m), 0,
                                      g->n);
    }
}
#endif

/* ---- entry point ------------------------------------------------------------------ */

void FNN_PUBLIC_NAME(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     T alpha, const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb,
                     T beta, T *c, ptrdiff_t ldc, const T *bias, int act, T act_param,
                     T *preact, int num_threads) {
    if (m <= 0 || n <= 0) return;
    FNN_S(fnn_gemm_args) g;
    g.trans_a = trans_a;
    g.trans_b = trans_b;
    g.m = m;
    g.n = n;
    g.k = k;
    g.alpha = alpha;
    g.beta = beta;
    g.a = a;
    g.b = b;
    g.lda = lda;
    g.ldb = ldb;
    g.c = c;
    g.ldc = ldc;
    g.bias = bias;
    g.act = act;
    g.act_param = act_param;
    g.preact = preact;

    const FNN_S(fnn_kernel_desc) kd = FNN_S(fnn_select_kernel)();
    if (k <= 0) { /* empty product: C = beta*C, then the epilogue */
        for (ptrdiff_t i = 0; i < m; i++) {
            T *ci = c + i * ldc;
            for (ptrdiff_t j = 0; j < n; j++) ci[j] = beta == (T)0 ? (T)0 : beta * ci[j];
        }
        kd.epilogue(c, ldc, m, n, bias, act, act_param, preact);
        return;
    }

    const int sup = FNN_S(fnn_use_sup)(&g, &kd);
#ifdef _OPENMP
    int nt = fnn_threads_for(num_threads, m, n, k);
    const ptrdiff_t slabs = n >= m ? FNN_CEIL_DIV(n, kd.nr) : FNN_CEIL_DIV(m, kd.mr);
    if (nt > slabs) nt = (int)slabs;
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        FNN_S(fnn_gemm_slab)(&g, &kd, sup, omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#else
    (void)num_threads;
#endif
    FNN_S(fnn_gemm_any_block)(&g, &kd, sup, 0, m, 0, n);
}

#endif /* FNN_GEMM_TEMPLATE */
