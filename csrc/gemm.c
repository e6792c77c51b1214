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
 * Small problems (A small enough to stay in L2) skip the packing of A: a second
 * kernel reads op(A) in place and B in place or packed per column panel, over
 * the whole k range at once (BLIS's "sup" path). One or two rows of C (one
 * sample at inference) skip packing altogether: a row kernel streams B where
 * it lies, up to 64 columns of the row at a time. Which path runs depends on
 * the shape only; the sup and row kernels compute an element by the same
 * chain of FMAs, so a sample alone gets exactly its row of a small batch.
 *
 * Threads: C is cut into one slab per thread along its longer side, on tile
 * boundaries; each thread packs what its slab needs and never waits for the
 * others (no barriers: on a shared machine a descheduled thread then delays
 * only its own slab). The tile grid and the k-blocking depend only on the
 * shape, and every tile is computed by one thread, so results are
 * bit-identical for any number of threads.
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
#include <intrin.h>
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
/* A second buffer per thread, for what must outlive the packing done in the
 * first (the rows of A gathered by fnn_?gemm_rows for the packed path). */
static FNN_TLS fnn_workspace fnn_tls_workspace_a = {NULL, 0};

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

/* Buffer w of the calling thread, at least `bytes` long and 64-byte aligned;
 * NULL if it cannot be grown. */
static void *fnn_buffer_reserve(fnn_workspace *w, size_t bytes) {
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

/* The calling thread's packing buffer; NULL if it cannot be grown (the caller
 * then falls back to the unpacked loop). */
static void *fnn_workspace_reserve(size_t bytes) {
    return fnn_buffer_reserve(&fnn_tls_workspace, bytes);
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

/* Atomic helpers written with compiler builtins rather than OpenMP 3.1 atomics,
 * which MSVC's OpenMP 2.0 does not have. The join at the end of a parallel
 * region orders everything, so relaxed atomics suffice. */
static long fnn_fetch_inc(long *p) {
#if defined(_MSC_VER)
    return _InterlockedExchangeAdd((volatile long *)p, 1);
#else
    return __atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
#endif
}

static int fnn_load(const int *p) {
#if defined(_MSC_VER)
    return *(volatile const int *)p; /* MSVC: aligned volatile accesses are atomic */
#else
    return __atomic_load_n(p, __ATOMIC_RELAXED);
#endif
}

static void fnn_store(int *p, int value) {
#if defined(_MSC_VER)
    *(volatile int *)p = value;
#else
    __atomic_store_n(p, value, __ATOMIC_RELAXED);
#endif
}

static double fnn_load_double(const double *p) {
#if defined(_MSC_VER)
    return *(volatile const double *)p;
#else
    double v;
    __atomic_load(p, &v, __ATOMIC_RELAXED);
    return v;
#endif
}

static void fnn_store_double(double *p, double value) {
#if defined(_MSC_VER)
    *(volatile double *)p = value;
#else
    __atomic_store(p, &value, __ATOMIC_RELAXED);
#endif
}

/* Small products on a busy machine. A parallel region ends only when every
 * thread has finished its part; when another process holds the other core, a
 * worker thread may not run for a whole scheduler slice (milliseconds), and a
 * product worth 30 microseconds then takes 4-8 ms. So after a small product the
 * calling thread notes how long it waited at the end of the region for the
 * others; after two such stalls in a row it runs the next small products alone,
 * for a span that doubles while the stalls persist (up to 4096 calls) and
 * shrinks once the team finishes together again. Only regions that begin soon
 * after the previous one ended count: a worker that has gone to sleep takes
 * 0.1-2 ms to wake here (measured), which says nothing about the load. Results
 * do not depend on the thread count, so this only moves time. The counters are
 * shared by all callers (relaxed atomics); a lost update between racing callers
 * only shortens or lengthens one span. */
#define FNN_STALL 2e-4 /* seconds of waiting at the join: far above a clean finish */
/* Products below this many multiply-adds (a few ms on one core) are "small" here:
 * a scheduler slice lost at their join would at least double their time. */
#define FNN_STALL_WORK ((double)(1 << 27))
/* Workers still spin (libgomp's default wait policy) this soon after a region. */
#define FNN_SPIN_WINDOW 1e-3 /* seconds */
#define FNN_SOLO_SPAN_MIN 16
#define FNN_SOLO_SPAN_MAX 4096
static int fnn_solo_calls = 0;
static int fnn_solo_span = FNN_SOLO_SPAN_MIN;
static int fnn_last_stalled = 0;
static double fnn_last_end = -1.0; /* omp_get_wtime() when the last region ended */

static int fnn_small_threads(int nt) {
    const int solo = fnn_load(&fnn_solo_calls);
    if (nt > 1 && solo > 0) {
        fnn_store(&fnn_solo_calls, solo - 1);
        return 1;
    }
    return nt;
}

/* Not part of gemm.h: forget any back-off (tests use it to make sure their
 * multi-threaded calls do run on several threads). */
void fnn_gemm_reset_backoff(void) {
    fnn_store(&fnn_solo_calls, 0);
    fnn_store(&fnn_solo_span, FNN_SOLO_SPAN_MIN);
    fnn_store(&fnn_last_stalled, 0);
    fnn_store_double(&fnn_last_end, -1.0);
}

/* Not part of gemm.h: the back-off state, for diagnostics: calls left to run on
 * one thread, length of the next span, whether the last counted region stalled. */
void fnn_gemm_backoff_state(int *solo_calls, int *span, int *last_stalled) {
    *solo_calls = fnn_load(&fnn_solo_calls);
    *span = fnn_load(&fnn_solo_span);
    *last_stalled = fnn_load(&fnn_last_stalled);
}

/* After a small product's region, which began at `start`, and in which the
 * calling thread (thread 0) ran out of work at `caller_done`. */
static void fnn_note_region(double start, double caller_done) {
    const double end = omp_get_wtime(), previous_end = fnn_load_double(&fnn_last_end);
    fnn_store_double(&fnn_last_end, end);
    const int stalled = end - caller_done > FNN_STALL && start - previous_end < FNN_SPIN_WINDOW;
    const int span = fnn_load(&fnn_solo_span), twice = stalled && fnn_load(&fnn_last_stalled);
    fnn_store(&fnn_last_stalled, stalled);
    if (twice) {
        fnn_store(&fnn_solo_calls, span);
        if (span < FNN_SOLO_SPAN_MAX) fnn_store(&fnn_solo_span, 2 * span);
    } else if (!stalled && span > FNN_SOLO_SPAN_MIN) {
        fnn_store(&fnn_solo_span, span / 2);
    }
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
/* Write row i of the tile: C = alpha*AB (+ beta*C), then the fused epilogue of
 * the common dense layers (bias, preact, relu) while the row is in registers. */
#define FNN_STORE_F32(i)                                                          \
    {                                                                             \
        float *ci = c + (i) * ldc;                                                \
        __m256 r0 = _mm256_mul_ps(va, c##i##0), r1 = _mm256_mul_ps(va, c##i##1); \
        if (beta != 0.0f) {                                                       \
            r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);                    \
            r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);                \
        }                                                                         \
        if (bias != NULL) {                                                       \
            r0 = _mm256_add_ps(r0, vbias0);                                          \
            r1 = _mm256_add_ps(r1, vbias1);                                          \
        }                                                                         \
        if (preact != NULL) {                                                     \
            _mm256_storeu_ps(preact + (i) * ldc, r0);                                 \
            _mm256_storeu_ps(preact + (i) * ldc + 8, r1);                             \
        }                                                                         \
        if (relu) { /* max(r, 0): NaN -> 0 and -0 -> +0, as the scalar relu */    \
            r0 = _mm256_max_ps(r0, _mm256_setzero_ps());                              \
            r1 = _mm256_max_ps(r1, _mm256_setzero_ps());                              \
        }                                                                         \
        _mm256_storeu_ps(ci, r0);                                                 \
        _mm256_storeu_ps(ci + 8, r1);                                             \
    }
#define FNN_STORE_PROLOGUE_F32                                                    \
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);                   \
    __m256 vbias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();                 \
    __m256 vbias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();

FNN_AVX2 static void fnn_ukr_avx2_f32(ptrdiff_t kc, const float *a, const float *b,
                                      float *c, ptrdiff_t ldc, float alpha, float beta,
                                      const float *bias, float *preact, int relu) {
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
    FNN_STORE_PROLOGUE_F32
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
/* Write row i of the tile: C = alpha*AB (+ beta*C), then the fused epilogue of
 * the common dense layers (bias, preact, relu) while the row is in registers. */
#define FNN_STORE_F64(i)                                                          \
    {                                                                             \
        double *ci = c + (i) * ldc;                                                \
        __m256d r0 = _mm256_mul_pd(va, c##i##0), r1 = _mm256_mul_pd(va, c##i##1); \
        if (beta != 0.0) {                                                       \
            r0 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci), r0);                    \
            r1 = _mm256_fmadd_pd(vb, _mm256_loadu_pd(ci + 4), r1);                \
        }                                                                         \
        if (bias != NULL) {                                                       \
            r0 = _mm256_add_pd(r0, vbias0);                                          \
            r1 = _mm256_add_pd(r1, vbias1);                                          \
        }                                                                         \
        if (preact != NULL) {                                                     \
            _mm256_storeu_pd(preact + (i) * ldc, r0);                                 \
            _mm256_storeu_pd(preact + (i) * ldc + 4, r1);                             \
        }                                                                         \
        if (relu) { /* max(r, 0): NaN -> 0 and -0 -> +0, as the scalar relu */    \
            r0 = _mm256_max_pd(r0, _mm256_setzero_pd());                              \
            r1 = _mm256_max_pd(r1, _mm256_setzero_pd());                              \
        }                                                                         \
        _mm256_storeu_pd(ci, r0);                                                 \
        _mm256_storeu_pd(ci + 4, r1);                                             \
    }
#define FNN_STORE_PROLOGUE_F64                                                    \
    __m256d va = _mm256_set1_pd(alpha), vb = _mm256_set1_pd(beta);                   \
    __m256d vbias0 = bias ? _mm256_loadu_pd(bias) : _mm256_setzero_pd();                 \
    __m256d vbias1 = bias ? _mm256_loadu_pd(bias + 4) : _mm256_setzero_pd();

FNN_AVX2 static void fnn_ukr_avx2_f64(ptrdiff_t kc, const double *a, const double *b,
                                      double *c, ptrdiff_t ldc, double alpha, double beta,
                                      const double *bias, double *preact, int relu) {
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
    FNN_STORE_PROLOGUE_F64
    FNN_STORE_F64(0) FNN_STORE_F64(1) FNN_STORE_F64(2)
    FNN_STORE_F64(3) FNN_STORE_F64(4) FNN_STORE_F64(5)
}

/* ---- AVX2 packing of transposed panels ---------------------------------------
 *
 * Packing a panel of op(B) = B^T (or of op(A) = A with rows along k) is a
 * transpose: the source has the panel's NR columns as rows. Scalar code does it
 * one element at a time with scattered stores; these do it in register blocks
 * (8 x 8 floats, 4 x 4 doubles) so loads and stores are full vectors. */

/* dst[p*16 + j] = src[j*lds + p] for j < 16, p < kc: a full 16-wide f32 panel. */
FNN_AVX2 static void fnn_pack_t16_avx2_f32(const float *src, ptrdiff_t lds, ptrdiff_t kc,
                                           float *dst) {
    ptrdiff_t p = 0;
    for (; p + 8 <= kc; p += 8) {
        for (int half = 0; half < 2; half++) {
            const float *s = src + half * 8 * lds + p;
            __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds);
            __m256 r2 = _mm256_loadu_ps(s + 2 * lds), r3 = _mm256_loadu_ps(s + 3 * lds);
            __m256 r4 = _mm256_loadu_ps(s + 4 * lds), r5 = _mm256_loadu_ps(s + 5 * lds);
            __m256 r6 = _mm256_loadu_ps(s + 6 * lds), r7 = _mm256_loadu_ps(s + 7 * lds);
            __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
            __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
            __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
            __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + p * 16 + half * 8;
            _mm256_store_ps(d + 0 * 16, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_store_ps(d + 1 * 16, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_store_ps(d + 2 * 16, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_store_ps(d + 3 * 16, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_store_ps(d + 4 * 16, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_store_ps(d + 5 * 16, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_store_ps(d + 6 * 16, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_store_ps(d + 7 * 16, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
    }
    for (; p < kc; p++)
        for (int j = 0; j < 16; j++) dst[p * 16 + j] = src[j * lds + p];
}

/* dst[p*8 + j] = src[j*lds + p] for j < 8, p < kc: a full 8-wide f64 panel. */
FNN_AVX2 static void fnn_pack_t8_avx2_f64(const double *src, ptrdiff_t lds, ptrdiff_t kc,
                                          double *dst) {
    ptrdiff_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        for (int half = 0; half < 2; half++) {
            const double *s = src + half * 4 * lds + p;
            __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lds);
            __m256d r2 = _mm256_loadu_pd(s + 2 * lds), r3 = _mm256_loadu_pd(s + 3 * lds);
            __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
            __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
            double *d = dst + p * 8 + half * 4;
            _mm256_store_pd(d + 0 * 8, _mm256_permute2f128_pd(t0, t2, 0x20));
            _mm256_store_pd(d + 1 * 8, _mm256_permute2f128_pd(t1, t3, 0x20));
            _mm256_store_pd(d + 2 * 8, _mm256_permute2f128_pd(t0, t2, 0x31));
            _mm256_store_pd(d + 3 * 8, _mm256_permute2f128_pd(t1, t3, 0x31));
        }
    }
    for (; p < kc; p++)
        for (int j = 0; j < 8; j++) dst[p * 8 + j] = src[j * lds + p];
}

/* dst[p*6 + i] = src[i*lds + p] for i < 6, p < kc: a full 6-row f32 panel of A.
 * Blocks of 8 k-values from the six rows go through an 8 x 8 transpose (rows 6
 * and 7 zero); each column then leaves as a 4-float and a 2-float store. */
FNN_AVX2 static void fnn_pack_t6_avx2_f32(const float *src, ptrdiff_t lds, ptrdiff_t kc,
                                          float *dst) {
    ptrdiff_t p = 0;
    const __m256 z = _mm256_setzero_ps();
    for (; p + 8 <= kc; p += 8) {
        const float *s = src + p;
        __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + lds);
        __m256 r2 = _mm256_loadu_ps(s + 2 * lds), r3 = _mm256_loadu_ps(s + 3 * lds);
        __m256 r4 = _mm256_loadu_ps(s + 4 * lds), r5 = _mm256_loadu_ps(s + 5 * lds);
        __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
        __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
        __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
        __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        __m256 u4 = _mm256_shuffle_ps(t4, z, 0x44), u5 = _mm256_shuffle_ps(t4, z, 0xEE);
        __m256 u6 = _mm256_shuffle_ps(t5, z, 0x44), u7 = _mm256_shuffle_ps(t5, z, 0xEE);
        /* column q (k-value p+q): rows 0-3 in the low lane of u_q / u_(q-4) pairs */
        __m256 col[8];
        col[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
        col[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
        col[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
        col[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
        col[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
        col[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
        col[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
        col[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
        float *d = dst + p * 6;
        for (int q = 0; q < 8; q++) {
            _mm_storeu_ps(d + q * 6, _mm256_castps256_ps128(col[q]));
            _mm_storel_pi((__m64 *)(d + q * 6 + 4), _mm256_extractf128_ps(col[q], 1));
        }
    }
    for (; p < kc; p++)
        for (int i = 0; i < 6; i++) dst[p * 6 + i] = src[i * lds + p];
}

/* dst[p*6 + i] = src[i*lds + p] for i < 6, p < kc: a full 6-row f64 panel of A
 * (rows 0-3 by a 4 x 4 transpose, rows 4-5 by pairs). */
FNN_AVX2 static void fnn_pack_t6_avx2_f64(const double *src, ptrdiff_t lds, ptrdiff_t kc,
                                          double *dst) {
    ptrdiff_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        const double *s = src + p;
        __m256d r0 = _mm256_loadu_pd(s), r1 = _mm256_loadu_pd(s + lds);
        __m256d r2 = _mm256_loadu_pd(s + 2 * lds), r3 = _mm256_loadu_pd(s + 3 * lds);
        __m256d r4 = _mm256_loadu_pd(s + 4 * lds), r5 = _mm256_loadu_pd(s + 5 * lds);
        __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
        __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
        __m256d t4 = _mm256_unpacklo_pd(r4, r5), t5 = _mm256_unpackhi_pd(r4, r5);
        double *d = dst + p * 6;
        _mm256_storeu_pd(d + 0, _mm256_permute2f128_pd(t0, t2, 0x20));
        _mm256_storeu_pd(d + 6, _mm256_permute2f128_pd(t1, t3, 0x20));
        _mm256_storeu_pd(d + 12, _mm256_permute2f128_pd(t0, t2, 0x31));
        _mm256_storeu_pd(d + 18, _mm256_permute2f128_pd(t1, t3, 0x31));
        _mm_storeu_pd(d + 4, _mm256_castpd256_pd128(t4));
        _mm_storeu_pd(d + 10, _mm256_castpd256_pd128(t5));
        _mm_storeu_pd(d + 16, _mm256_extractf128_pd(t4, 1));
        _mm_storeu_pd(d + 22, _mm256_extractf128_pd(t5, 1));
    }
    for (; p < kc; p++)
        for (int i = 0; i < 6; i++) dst[p * 6 + i] = src[i * lds + p];
}

/* ---- AVX2/FMA kernels for small problems (no packing of A) -------------------
 *
 * For small products packing A costs as much as it saves (BLIS's "sup" kernels
 * make the same trade): the kernel reads op(A) where it lies, element (i, p) at
 * a[i*rs_a + p*cs_a], and B's NR values for each p at b[p*bs]: a packed panel
 * (bs == NR) or, when B is not transposed and the panel is full, B itself
 * (bs == ldb: no packing at all). It runs over the whole k range in one pass and
 * writes the mr x nr tile straight into C with the dense epilogue (bias, preact,
 * relu) fused. Edges need no scratch tile: rows past mr re-read the last valid
 * row of A and are not stored; columns past nr are zero in the packed B (edge
 * panels are always packed) and masked out of the stores (and of the loads of C
 * and bias), so nothing outside the operands is touched. */

#define FNN_SUP_STEP(V, HALF, BCAST, FMADD, LOAD, U)                                        \
    {                                                                                       \
        const V b0 = LOAD(b + bs * (U)), b1 = LOAD(b + bs * (U) + HALF);                    \
        V ai;                                                                               \
        ai = BCAST(a0 + (U) * cs_a); c00 = FMADD(ai, b0, c00); c01 = FMADD(ai, b1, c01);    \
        ai = BCAST(a1 + (U) * cs_a); c10 = FMADD(ai, b0, c10); c11 = FMADD(ai, b1, c11);    \
        ai = BCAST(a2 + (U) * cs_a); c20 = FMADD(ai, b0, c20); c21 = FMADD(ai, b1, c21);    \
        ai = BCAST(a3 + (U) * cs_a); c30 = FMADD(ai, b0, c30); c31 = FMADD(ai, b1, c31);    \
        if (ROWS > 4) {                                                                     \
            ai = BCAST(a4 + (U) * cs_a); c40 = FMADD(ai, b0, c40); c41 = FMADD(ai, b1, c41);\
            ai = BCAST(a5 + (U) * cs_a); c50 = FMADD(ai, b0, c50); c51 = FMADD(ai, b1, c51);\
        }                                                                                   \
    }

/* Row i of the tile: C = alpha*AB (+ beta*C) (+ bias) -> preact -> relu -> C.
 * LD/ST are full-vector or masked by the lane masks m0, m1. */
#define FNN_SUP_STORE(i, V, HALF, SETZERO, MUL, ADD, MAX, FMADD, LD, ST)                    \
    if ((i) < ROWS && (i) < mr) {                                                           \
        V r0 = MUL(va, c##i##0), r1 = MUL(va, c##i##1);                                     \
        if (beta != 0) {                                                                    \
            r0 = FMADD(vb, LD(c + (i) * ldc, m0), r0);                                      \
            r1 = FMADD(vb, LD(c + (i) * ldc + HALF, m1), r1);                               \
        }                                                                                   \
        if (bias != NULL) {                                                                 \
            r0 = ADD(r0, vbias0);                                                           \
            r1 = ADD(r1, vbias1);                                                           \
        }                                                                                   \
        if (preact != NULL) {                                                               \
            ST(preact + (i) * ldc, m0, r0);                                                 \
            ST(preact + (i) * ldc + HALF, m1, r1);                                          \
        }                                                                                   \
        if (relu) { /* max(r, 0): NaN -> 0 and -0 -> +0, as the scalar relu */              \
            r0 = MAX(r0, SETZERO());                                                        \
            r1 = MAX(r1, SETZERO());                                                        \
        }                                                                                   \
        ST(c + (i) * ldc, m0, r0);                                                          \
        ST(c + (i) * ldc + HALF, m1, r1);                                                   \
    }

/* How the kernel finds op(A) (a compile-time constant IND of each specialisation):
 * FNN_SUP_STRIDED: element (i, p) at a[i*rs_a + p*cs_a];
 * FNN_SUP_BY_ROW: op(A) not transposed, row i of the tile at a + rows[i]*rs_a
 * (rows: a batch's row numbers, rs_a: the data set's row stride), so the
 * forward product reads a shuffled batch where it lies. Both compute the same
 * chain of FMAs per element. A transposed op(A) is not read this way: each k
 * step would take a line of a different random row, which no prefetcher
 * follows (784x64x256 on 2 threads: 317 us, against 219 on a gathered copy). */
enum { FNN_SUP_STRIDED = 0, FNN_SUP_BY_ROW = 1 };

#define FNN_SUP_BODY(V, W, HALF, SETZERO, SET1, MUL, ADD, MAX, FMADD, BCAST, LOAD, LD, ST,  \
                     MASK0, MASK1)                                                          \
    const W *a0, *a1, *a2, *a3, *a4, *a5;                                                   \
    if (IND == FNN_SUP_BY_ROW) {                                                            \
        a0 = a + rows[0] * rs_a; a1 = a + rows[mr > 1 ? 1 : mr - 1] * rs_a;                 \
        a2 = a + rows[mr > 2 ? 2 : mr - 1] * rs_a; a3 = a + rows[mr > 3 ? 3 : mr - 1] * rs_a;\
        a4 = a + rows[mr > 4 ? 4 : mr - 1] * rs_a; a5 = a + rows[mr > 5 ? 5 : mr - 1] * rs_a;\
    } else {                                                                                \
        a0 = a; a1 = a0 + (mr > 1 ? rs_a : 0); a2 = a1 + (mr > 2 ? rs_a : 0);               \
        a3 = a2 + (mr > 3 ? rs_a : 0); a4 = a3 + (mr > 4 ? rs_a : 0);                       \
        a5 = a4 + (mr > 5 ? rs_a : 0);                                                      \
    }                                                                                       \
    V c00 = SETZERO(), c01 = SETZERO(), c10 = SETZERO(), c11 = SETZERO();                   \
    V c20 = SETZERO(), c21 = SETZERO(), c30 = SETZERO(), c31 = SETZERO();                   \
    V c40 = SETZERO(), c41 = SETZERO(), c50 = SETZERO(), c51 = SETZERO();                   \
    ptrdiff_t p = 0;                                                                        \
    for (; p + 4 <= k; p += 4) {                                                            \
        FNN_SUP_STEP(V, HALF, BCAST, FMADD, LOAD, 0)                                        \
        FNN_SUP_STEP(V, HALF, BCAST, FMADD, LOAD, 1)                                        \
        FNN_SUP_STEP(V, HALF, BCAST, FMADD, LOAD, 2)                                        \
        FNN_SUP_STEP(V, HALF, BCAST, FMADD, LOAD, 3)                                        \
        a0 += 4 * cs_a; a1 += 4 * cs_a; a2 += 4 * cs_a;                                     \
        a3 += 4 * cs_a; a4 += 4 * cs_a; a5 += 4 * cs_a; /* dead when ROWS == 4 */        \
        b += 4 * bs;                                                                        \
    }                                                                                       \
    for (; p < k; p++) {                                                                    \
        FNN_SUP_STEP(V, HALF, BCAST, FMADD, LOAD, 0)                                        \
        a0 += cs_a; a1 += cs_a; a2 += cs_a; a3 += cs_a; a4 += cs_a; a5 += cs_a;             \
        b += bs;                                                                            \
    }                                                                                       \
    const __m256i m0 = MASK0, m1 = MASK1;                                                   \
    const V va = SET1(alpha), vb = SET1(beta);                                              \
    const V vbias0 = bias ? LD(bias, m0) : SETZERO();                                       \
    const V vbias1 = bias ? LD(bias + HALF, m1) : SETZERO();                                \
    FNN_SUP_STORE(0, V, HALF, SETZERO, MUL, ADD, MAX, FMADD, LD, ST)                        \
    FNN_SUP_STORE(1, V, HALF, SETZERO, MUL, ADD, MAX, FMADD, LD, ST)                        \
    FNN_SUP_STORE(2, V, HALF, SETZERO, MUL, ADD, MAX, FMADD, LD, ST)                        \
    FNN_SUP_STORE(3, V, HALF, SETZERO, MUL, ADD, MAX, FMADD, LD, ST)                        \
    FNN_SUP_STORE(4, V, HALF, SETZERO, MUL, ADD, MAX, FMADD, LD, ST)                        \
    FNN_SUP_STORE(5, V, HALF, SETZERO, MUL, ADD, MAX, FMADD, LD, ST)

/* Loads and stores of C and bias: full vectors, or masked to the nr live columns
 * (`full` is a compile-time constant in each specialisation). */
#define FNN_SUP_LD_F32(p, m) (full ? _mm256_loadu_ps(p) : _mm256_maskload_ps((p), (m)))
#define FNN_SUP_ST_F32(p, m, v) \
    (full ? _mm256_storeu_ps((p), (v)) : _mm256_maskstore_ps((p), (m), (v)))
#define FNN_SUP_LD_F64(p, m) (full ? _mm256_loadu_pd(p) : _mm256_maskload_pd((p), (m)))
#define FNN_SUP_ST_F64(p, m, v) \
    (full ? _mm256_storeu_pd((p), (v)) : _mm256_maskstore_pd((p), (m), (v)))
/* Lane l of vector v is live when v*HALF + l < nr. */
#define FNN_SUP_MASK_F32(v) \
    _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nr - 8 * (v)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define FNN_SUP_MASK_F64(v) \
    _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)nr - 4 * (v)), _mm256_setr_epi64x(0, 1, 2, 3))

/* ROWS (6, or 4 for short tails), cs_a and full are parameters of always-inlined
 * bodies so that each copy below is specialised: a 4-row tile keeps 8
 * accumulators (still enough to hide the FMA latency), cs_a == 1 (rows of op(A)
 * contiguous) gets constant offsets, full == 1 drops the masks. */
FNN_AVX2 static inline __attribute__((always_inline)) void
fnn_sup_body_f32(const int ROWS, const int IND, ptrdiff_t k, const float *a, ptrdiff_t rs_a,
                 ptrdiff_t cs_a, const int64_t *rows,
                 ptrdiff_t mr, ptrdiff_t nr, const int full, const float *b, ptrdiff_t bs,
                 float *c, ptrdiff_t ldc,
                 float alpha, float beta, const float *bias, float *preact, int relu) {
    typedef float W;
    FNN_SUP_BODY(__m256, float, 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_mul_ps,
                 _mm256_add_ps, _mm256_max_ps, _mm256_fmadd_ps, _mm256_broadcast_ss,
                 _mm256_loadu_ps, FNN_SUP_LD_F32, FNN_SUP_ST_F32, FNN_SUP_MASK_F32(0),
                 FNN_SUP_MASK_F32(1))
}

FNN_AVX2 static inline __attribute__((always_inline)) void
fnn_sup_body_f64(const int ROWS, const int IND, ptrdiff_t k, const double *a, ptrdiff_t rs_a,
                 ptrdiff_t cs_a, const int64_t *rows,
                 ptrdiff_t mr, ptrdiff_t nr, const int full, const double *b, ptrdiff_t bs,
                 double *c, ptrdiff_t ldc,
                 double alpha, double beta, const double *bias, double *preact, int relu) {
    typedef double W;
    FNN_SUP_BODY(__m256d, double, 4, _mm256_setzero_pd, _mm256_set1_pd, _mm256_mul_pd,
                 _mm256_add_pd, _mm256_max_pd, _mm256_fmadd_pd, _mm256_broadcast_sd,
                 _mm256_loadu_pd, FNN_SUP_LD_F64, FNN_SUP_ST_F64, FNN_SUP_MASK_F64(0),
                 FNN_SUP_MASK_F64(1))
}

/* The specialisations of each body, and the entry that picks one. BS is the
 * packed panel's constant stride (2 vectors) or the run-time ldb of B in place. */
#define FNN_SUP_VARIANT(SFX, W, NAME, ROWS, IND, CS_A, FULL, BS)                            \
    FNN_AVX2 static void NAME(ptrdiff_t k, const W *a, ptrdiff_t rs_a, ptrdiff_t cs_a,      \
                              const int64_t *rows,                                         \
                              ptrdiff_t mr, ptrdiff_t nr, const W *b, ptrdiff_t bs, W *c,   \
                              ptrdiff_t ldc, W alpha, W beta, const W *bias, W *preact,     \
                              int relu) {                                                   \
        (void)cs_a;                                                                         \
        (void)bs;                                                                           \
        fnn_sup_body_##SFX(ROWS, IND, k, a, rs_a, CS_A, rows, mr, nr, FULL, b, BS, c,       \
                           ldc, alpha, beta, bias, preact, relu);                           \
    }
/* The six forms (6 or 4 rows; full or edge panel, or B in place) of one way of
 * reading op(A); PRE names them. */
#define FNN_SUP_FORMS(SFX, W, PRE, IND, CS_A)                                               \
    FNN_SUP_VARIANT(SFX, W, fnn_sup6_##PRE##_full_##SFX, 6, IND, CS_A, 1, fnn_sup_nr_##SFX) \
    FNN_SUP_VARIANT(SFX, W, fnn_sup6_##PRE##_edge_##SFX, 6, IND, CS_A, 0, fnn_sup_nr_##SFX) \
    FNN_SUP_VARIANT(SFX, W, fnn_sup4_##PRE##_full_##SFX, 4, IND, CS_A, 1, fnn_sup_nr_##SFX) \
    FNN_SUP_VARIANT(SFX, W, fnn_sup4_##PRE##_edge_##SFX, 4, IND, CS_A, 0, fnn_sup_nr_##SFX) \
    FNN_SUP_VARIANT(SFX, W, fnn_sup6_##PRE##_inplace_##SFX, 6, IND, CS_A, 1, bs)            \
    FNN_SUP_VARIANT(SFX, W, fnn_sup4_##PRE##_inplace_##SFX, 4, IND, CS_A, 1, bs)
#define FNN_SUP_PICK(SFX, PRE)                                                              \
    (bs != fnn_sup_nr_##SFX /* B in place: always a full panel */                           \
         ? (six ? fnn_sup6_##PRE##_inplace_##SFX : fnn_sup4_##PRE##_inplace_##SFX)          \
         : six ? (full ? fnn_sup6_##PRE##_full_##SFX : fnn_sup6_##PRE##_edge_##SFX)         \
               : (full ? fnn_sup4_##PRE##_full_##SFX : fnn_sup4_##PRE##_edge_##SFX))
#define FNN_SUP_DISPATCH(SFX, W)                                                            \
    enum { fnn_sup_nr_##SFX = 32 / sizeof(W) * 2 };                                         \
    FNN_SUP_FORMS(SFX, W, rows, FNN_SUP_STRIDED, 1)                                         \
    FNN_SUP_FORMS(SFX, W, cols, FNN_SUP_STRIDED, cs_a)                                      \
    FNN_SUP_FORMS(SFX, W, byrow, FNN_SUP_BY_ROW, 1)                                         \
    typedef void (*fnn_sup_form_##SFX)(ptrdiff_t, const W *, ptrdiff_t, ptrdiff_t,          \
                                       const int64_t *, ptrdiff_t, ptrdiff_t, const W *,     \
                                       ptrdiff_t, W *, ptrdiff_t, W, W, const W *, W *, int);\
    static fnn_sup_form_##SFX fnn_sup_pick_avx2_##SFX(int ind, ptrdiff_t cs_a, ptrdiff_t nr, \
                                                      ptrdiff_t bs, int six) {              \
        const int full = nr == fnn_sup_nr_##SFX;                                            \
        if (ind == FNN_SUP_BY_ROW) return FNN_SUP_PICK(SFX, byrow);                         \
        if (cs_a == 1) return FNN_SUP_PICK(SFX, rows);                                      \
        return FNN_SUP_PICK(SFX, cols);                                                     \
    }
FNN_SUP_DISPATCH(f32, float)
FNN_SUP_DISPATCH(f64, double)

/* ---- one row of C from B in place (m <= FNN_ROW_MAX_M, B not transposed) ----------
 *
 * One sample at inference: the 4-row sup tile would compute four rows to keep
 * one, and packing B only pays when the packed panel is re-read by several row
 * tiles. This kernel streams the rows of B where they lie instead, NV vectors
 * (up to 64 floats or 32 doubles) of one row of C at a time, so NV independent
 * FMA chains hide the FMA latency. Each element is the same chain as in the
 * other kernels (FMAs from zero in p order, then alpha, beta*C, bias, preact,
 * relu), so a row computed here equals the row computed in a batch by the sup
 * kernel, bit for bit. Columns past `cols` are masked out of every load and
 * store: nothing outside the operands is touched. */
/* The body is written once over the intrinsics' suffix X (ps or pd, with B the
 * broadcast's ss or sd) and the vector type V; MASK is the lane mask of the last
 * vector: lane l is live when (NV-1)*HALF + l < cols. */
#define FNN_ROW_LOADB(X, HALF, v) \
    ((FULL || (v) < NV - 1) ? _mm256_loadu_##X(bp + (v) * HALF) \
                            : _mm256_maskload_##X(bp + (v) * HALF, mlast))
#define FNN_ROW_FMA(X, HALF, v) \
    if (NV > (v)) acc##v = _mm256_fmadd_##X(ai, FNN_ROW_LOADB(X, HALF, v), acc##v);
#define FNN_ROW_STORE(X, V, W, HALF, v)                                                     \
    if (NV > (v)) {                                                                         \
        const int edge = !FULL && (v) == NV - 1;                                            \
        W *cv = c + (v) * HALF;                                                             \
        V r = _mm256_mul_##X(va, acc##v);                                                   \
        if (beta != 0)                                                                      \
            r = _mm256_fmadd_##X(vb, edge ? _mm256_maskload_##X(cv, mlast)                  \
                                          : _mm256_loadu_##X(cv), r);                       \
        if (bias != NULL) {                                                                 \
            const W *bv = bias + (v) * HALF;                                                \
            r = _mm256_add_##X(r, edge ? _mm256_maskload_##X(bv, mlast)                     \
                                       : _mm256_loadu_##X(bv));                             \
        }                                                                                   \
        if (preact != NULL) {                                                               \
            if (edge) _mm256_maskstore_##X(preact + (v) * HALF, mlast, r);                  \
            else _mm256_storeu_##X(preact + (v) * HALF, r);                                 \
        }                                                                                   \
        if (relu) r = _mm256_max_##X(r, _mm256_setzero_##X());                              \
        if (edge) _mm256_maskstore_##X(cv, mlast, r);                                       \
        else _mm256_storeu_##X(cv, r);                                                      \
    }
#define FNN_ROW_BODY(X, B, V, W, HALF, MASK)                                                \
    V acc0 = _mm256_setzero_##X(), acc1 = acc0, acc2 = acc0, acc3 = acc0;                   \
    V acc4 = acc0, acc5 = acc0, acc6 = acc0, acc7 = acc0;                                   \
    const __m256i mlast = MASK;                                                             \
    const W *bp = b, *ap = a;                                                               \
    for (ptrdiff_t p = 0; p < k; p++, bp += ldb, ap += cs_a) {                              \
        const V ai = _mm256_broadcast_##B(ap);                                              \
        FNN_ROW_FMA(X, HALF, 0) FNN_ROW_FMA(X, HALF, 1) FNN_ROW_FMA(X, HALF, 2)             \
        FNN_ROW_FMA(X, HALF, 3) FNN_ROW_FMA(X, HALF, 4) FNN_ROW_FMA(X, HALF, 5)             \
        FNN_ROW_FMA(X, HALF, 6) FNN_ROW_FMA(X, HALF, 7)                                     \
    }                                                                                       \
    const V va = _mm256_set1_##X(alpha), vb = _mm256_set1_##X(beta);                       \
    FNN_ROW_STORE(X, V, W, HALF, 0) FNN_ROW_STORE(X, V, W, HALF, 1)                         \
    FNN_ROW_STORE(X, V, W, HALF, 2) FNN_ROW_STORE(X, V, W, HALF, 3)                         \
    FNN_ROW_STORE(X, V, W, HALF, 4) FNN_ROW_STORE(X, V, W, HALF, 5)                         \
    FNN_ROW_STORE(X, V, W, HALF, 6) FNN_ROW_STORE(X, V, W, HALF, 7)

FNN_AVX2 static inline __attribute__((always_inline)) void
fnn_row_body_f32(const int NV, const int FULL, ptrdiff_t k, const float *a, ptrdiff_t cs_a,
                 const float *b, ptrdiff_t ldb, ptrdiff_t cols, float *c, float alpha, float beta,
                 const float *bias, float *preact, int relu) {
    FNN_ROW_BODY(ps, ss, __m256, float, 8,
                 _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(cols - (NV - 1) * 8)),
                                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)))
}

FNN_AVX2 static inline __attribute__((always_inline)) void
fnn_row_body_f64(const int NV, const int FULL, ptrdiff_t k, const double *a, ptrdiff_t cs_a,
                 const double *b, ptrdiff_t ldb, ptrdiff_t cols, double *c, double alpha,
                 double beta, const double *bias, double *preact, int relu) {
    FNN_ROW_BODY(pd, sd, __m256d, double, 4,
                 _mm256_cmpgt_epi64(_mm256_set1_epi64x((long long)(cols - (NV - 1) * 4)),
                                    _mm256_setr_epi64x(0, 1, 2, 3)))
}

/* Specialisations for NV = 1..8 vectors, full or with a masked last vector. */
#define FNN_ROW_VARIANT(SFX, W, NV, FULL)                                                   \
    FNN_AVX2 static void fnn_row##NV##_##FULL##_##SFX(                                      \
        ptrdiff_t k, const W *a, ptrdiff_t cs_a, const W *b, ptrdiff_t ldb, ptrdiff_t cols, \
        W *c, W alpha, W beta, const W *bias, W *preact, int relu) {                        \
        fnn_row_body_##SFX(NV, FULL, k, a, cs_a, b, ldb, cols, c, alpha, beta, bias, preact,\
                           relu);                                                           \
    }
#define FNN_ROW_VARIANTS(SFX, W, NV) FNN_ROW_VARIANT(SFX, W, NV, 0) FNN_ROW_VARIANT(SFX, W, NV, 1)
#define FNN_ROW_DISPATCH(SFX, W, HALF)                                                      \
    FNN_ROW_VARIANTS(SFX, W, 1) FNN_ROW_VARIANTS(SFX, W, 2) FNN_ROW_VARIANTS(SFX, W, 3)     \
    FNN_ROW_VARIANTS(SFX, W, 4) FNN_ROW_VARIANTS(SFX, W, 5) FNN_ROW_VARIANTS(SFX, W, 6)     \
    FNN_ROW_VARIANTS(SFX, W, 7) FNN_ROW_VARIANTS(SFX, W, 8)                                 \
    typedef void (*fnn_row_variant_##SFX)(ptrdiff_t, const W *, ptrdiff_t, const W *,       \
                                          ptrdiff_t, ptrdiff_t, W *, W, W, const W *, W *, int); \
    static const fnn_row_variant_##SFX fnn_row_table_##SFX[8][2] = {                        \
        {fnn_row1_0_##SFX, fnn_row1_1_##SFX}, {fnn_row2_0_##SFX, fnn_row2_1_##SFX},         \
        {fnn_row3_0_##SFX, fnn_row3_1_##SFX}, {fnn_row4_0_##SFX, fnn_row4_1_##SFX},         \
        {fnn_row5_0_##SFX, fnn_row5_1_##SFX}, {fnn_row6_0_##SFX, fnn_row6_1_##SFX},         \
        {fnn_row7_0_##SFX, fnn_row7_1_##SFX}, {fnn_row8_0_##SFX, fnn_row8_1_##SFX}};        \
    /* Columns [0, n) of one row of C, 8*HALF at a time. */                                 \
    static void fnn_row_avx2_##SFX(ptrdiff_t k, const W *a, ptrdiff_t cs_a, const W *b,     \
                                   ptrdiff_t ldb, ptrdiff_t n, W *c, W alpha, W beta,       \
                                   const W *bias, W *preact, int relu) {                    \
        for (ptrdiff_t j = 0; j < n; j += 8 * HALF) {                                       \
            const ptrdiff_t cols = FNN_MIN(8 * HALF, n - j);                                \
            const ptrdiff_t nv = FNN_CEIL_DIV(cols, HALF);                                  \
            fnn_row_table_##SFX[nv - 1][cols == nv * HALF](                                 \
                k, a, cs_a, b + j, ldb, cols, c + j, alpha, beta, bias ? bias + j : NULL,   \
                preact ? preact + j : NULL, relu);                                          \
        }                                                                                   \
    }
FNN_ROW_DISPATCH(f32, float, 8)
FNN_ROW_DISPATCH(f64, double, 4)

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
#define FNN_PUBLIC_ROWS_NAME fnn_sgemm_rows
#define FNN_PUBLIC_IN_PLACE_NAME fnn_sgemm_rows_in_place
#define FNN_PUBLIC_PART_NAME fnn_sgemm_part
#include "gemm.c"
#undef T
#undef FNN_S
#undef FNN_PUBLIC_NAME
#undef FNN_PUBLIC_ROWS_NAME
#undef FNN_PUBLIC_IN_PLACE_NAME
#undef FNN_PUBLIC_PART_NAME

#define T double
#define FNN_S(name) name##_f64
#define FNN_PUBLIC_NAME fnn_dgemm
#define FNN_PUBLIC_ROWS_NAME fnn_dgemm_rows
#define FNN_PUBLIC_IN_PLACE_NAME fnn_dgemm_rows_in_place
#define FNN_PUBLIC_PART_NAME fnn_dgemm_part
#include "gemm.c"
#undef T
#undef FNN_S
#undef FNN_PUBLIC_NAME
#undef FNN_PUBLIC_ROWS_NAME
#undef FNN_PUBLIC_IN_PLACE_NAME
#undef FNN_PUBLIC_PART_NAME
#undef FNN_GEMM_TEMPLATE

#else /* FNN_GEMM_TEMPLATE: everything below is written once over the type T */

/* Kernels write C = alpha*AB + beta*C for a full tile; with bias/preact/relu
 * they also apply the fused epilogue of linear and relu layers (NULL/0: none). */
typedef void (*FNN_S(fnn_ukr_fn))(ptrdiff_t kc, const T *a, const T *b, T *c, ptrdiff_t ldc,
                                  T alpha, T beta, const T *bias, T *preact, int relu);
/* A small-problem kernel: one form (6 or 4 rows; full, edge or in-place panel; how
 * op(A) is read), and the picker that returns the form for a panel. */
typedef void (*FNN_S(fnn_sup_form_fn))(ptrdiff_t k, const T *a, ptrdiff_t rs_a, ptrdiff_t cs_a,
                                       const int64_t *rows, ptrdiff_t mr, ptrdiff_t nr,
                                       const T *b, ptrdiff_t bs, T *c, ptrdiff_t ldc, T alpha,
                                       T beta, const T *bias, T *preact, int relu);
typedef FNN_S(fnn_sup_form_fn) (*FNN_S(fnn_sup_pick_fn))(int ind, ptrdiff_t cs_a, ptrdiff_t nr,
                                                         ptrdiff_t bs, int six);
typedef void (*FNN_S(fnn_row_fn))(ptrdiff_t k, const T *a, ptrdiff_t cs_a, const T *b,
                                  ptrdiff_t ldb, ptrdiff_t n, T *c, T alpha, T beta,
                                  const T *bias, T *preact, int relu);
typedef void (*FNN_S(fnn_pack_t_fn))(const T *src, ptrdiff_t lds, ptrdiff_t kc, T *dst);
typedef void (*FNN_S(fnn_epilogue_fn))(T *c, ptrdiff_t ldc, ptrdiff_t mr, ptrdiff_t nr,
                                       const T *bias, int act, T param, T *preact);

/* A micro-kernel and the blocking that suits it. */
typedef struct {
    ptrdiff_t mr, nr;     /* register tile */
    ptrdiff_t mc, kc, nc; /* cache blocks: MC x KC of A in L2, KC x NR of B in L1 */
    FNN_S(fnn_ukr_fn) ukr;
    FNN_S(fnn_sup_pick_fn) sup; /* small-problem kernels, or NULL: always pack */
    FNN_S(fnn_row_fn) row; /* one row of C from B in place, or NULL */
    FNN_S(fnn_pack_t_fn) pack_t; /* transposing pack of a full NR panel, or NULL */
    FNN_S(fnn_pack_t_fn) pack_ta; /* same for a full MR panel of A (not transposed) */
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
    /* Linear and relu (and the row-wise codes, linear here) are applied by the
     * kernels as they store a full tile; other activations by the epilogue. */
    int epilogue_in_kernel;
    /* NULL, or which rows of the stored A to use: stored row r is
     * a + a_rows[r]*lda. Read in place by the small-problem path and the
     * unpacked loop; the entry gathers a copy for the other paths. */
    const int64_t *a_rows;
} FNN_S(fnn_gemm_args);

/* Portable micro-kernel: plain C the compiler can vectorize for any target. */
#define FNN_PORTABLE_MR 4
#define FNN_PORTABLE_NR 8

static void FNN_S(fnn_ukr_portable)(ptrdiff_t kc, const T *a, const T *b, T *c, ptrdiff_t ldc,
                                    T alpha, T beta, const T *bias, T *preact, int relu) {
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
        if (bias != NULL)
            for (int j = 0; j < FNN_PORTABLE_NR; j++) ci[j] += bias[j];
        if (preact != NULL)
            for (int j = 0; j < FNN_PORTABLE_NR; j++) preact[i * ldc + j] = ci[j];
        if (relu)
            for (int j = 0; j < FNN_PORTABLE_NR; j++) ci[j] = ci[j] > (T)0 ? ci[j] : (T)0;
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
    d.row = NULL;
    d.pack_t = NULL;
    d.pack_ta = NULL;
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
        d.sup = FNN_S(fnn_sup_pick_avx2);
        d.row = FNN_S(fnn_row_avx2);
        d.pack_t = sizeof(T) == 4 ? (FNN_S(fnn_pack_t_fn))fnn_pack_t16_avx2_f32
                                  : (FNN_S(fnn_pack_t_fn))fnn_pack_t8_avx2_f64;
        d.pack_ta = sizeof(T) == 4 ? (FNN_S(fnn_pack_t_fn))fnn_pack_t6_avx2_f32
                                   : (FNN_S(fnn_pack_t_fn))fnn_pack_t6_avx2_f64;
        d.epilogue = FNN_S(fnn_epilogue_avx2);
    }
#endif
    return d;
}

/* ---- packing ---------------------------------------------------------------- */

/* op(A)[i0:i0+mr, p0:p0+kc] into one micro-panel: dst[p*MR + i], rows >= mr zero. */
static void FNN_S(fnn_pack_a)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd,
                              ptrdiff_t i0, ptrdiff_t mr, ptrdiff_t p0, ptrdiff_t kc, T *dst) {
    const ptrdiff_t MR = kd->mr;
    if (!g->trans_a && mr == MR && kd->pack_ta != NULL) {
        kd->pack_ta(g->a + i0 * g->lda + p0, g->lda, kc, dst);
    } else if (g->trans_a) { /* A stored k x m: a run of MR values of op(A) per p is contiguous */
        if (mr == MR && MR == 6) {
            /* A fixed-size copy inlines (two moves); the general loop below does not. */
            for (ptrdiff_t p = 0; p < kc; p++)
                memcpy(dst + p * 6, g->a + (p0 + p) * g->lda + i0, 6 * sizeof(T));
            return;
        }
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
static void FNN_S(fnn_pack_b)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd,
                              ptrdiff_t j0, ptrdiff_t nr, ptrdiff_t p0, ptrdiff_t kc, T *dst) {
    const ptrdiff_t NR = kd->nr;
    if (g->trans_b && nr == NR && kd->pack_t != NULL) {
        kd->pack_t(g->b + j0 * g->ldb + p0, g->ldb, kc, dst);
    } else if (!g->trans_b) { /* B stored k x n: NR values per p are contiguous */
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

/* op(B)[p0:p0+kc, j0:j0+nc] into consecutive micro-panels (panel jr at dst + jr*kc).
 * B not transposed: walk B row by row, scattering each row's NR-wide pieces to
 * their panels, rather than panel by panel. Panel by panel, a panel reads one
 * 64-byte piece from each of kc rows that lie ldb apart (a page apart for
 * 1024 columns), which neither the prefetcher nor the TLB follows: 12% of a
 * 256x1024x1024 product on one thread went to packing B that way. Row by row
 * the reads are sequential and the writes go to the panels, which sit in L2.
 * Rows go FNN_PACK_B_ROWS at a time, so each panel receives a contiguous run
 * of that many 64-byte pieces rather than one: one row at a time, the pieces
 * written in turn lie kc*NR values apart (16 KB for kc = 256), all in the same
 * L1 set. Measured at 256x1024x1024 and 256x784x1024, interleaved, 15 repeats:
 * 8 rows beat 1, 4 and 16 by 1-4% (two runs). Same packed values either way. */
#define FNN_PACK_B_ROWS 8
static void FNN_S(fnn_pack_b_panels)(const FNN_S(fnn_gemm_args) *g,
                                     const FNN_S(fnn_kernel_desc) *kd, ptrdiff_t j0,
                                     ptrdiff_t nc, ptrdiff_t p0, ptrdiff_t kc, T *dst) {
    const ptrdiff_t NR = kd->nr, full = nc / NR * NR;
    if (!g->trans_b && NR * sizeof(T) == 64 && full > 0) {
        for (ptrdiff_t pb = 0; pb < kc; pb += FNN_PACK_B_ROWS) {
            const ptrdiff_t rows = FNN_MIN(FNN_PACK_B_ROWS, kc - pb);
            const T *src = g->b + (p0 + pb) * g->ldb + j0;
            for (ptrdiff_t jr = 0; jr < full; jr += NR) {
                T *d = dst + jr * kc + pb * NR;
                for (ptrdiff_t p = 0; p < rows; p++) memcpy(d + p * NR, src + p * g->ldb + jr, 64);
            }
        }
        if (full < nc) FNN_S(fnn_pack_b)(g, kd, j0 + full, nc - full, p0, kc, dst + full * kc);
        return;
    }
    for (ptrdiff_t jr = 0; jr < nc; jr += NR)
        FNN_S(fnn_pack_b)(g, kd, j0 + jr, FNN_MIN(NR, nc - jr), p0, kc, dst + jr * kc);
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
        if (last && g->epilogue_in_kernel) {
            kd->ukr(kc, ap, bp, c, g->ldc, g->alpha, beta, g->bias ? g->bias + j0 : NULL,
                    g->preact ? g->preact + i0 * g->ldc + j0 : NULL, g->act == FNN_ACT_RELU);
            return;
        }
        kd->ukr(kc, ap, bp, c, g->ldc, g->alpha, beta, NULL, NULL, 0);
    } else {
        /* Edge tile: compute the full padded tile on the stack, merge the valid part. */
        T tile[FNN_MAX_MR * FNN_MAX_NR];
        kd->ukr(kc, ap, bp, tile, kd->nr, (T)1, (T)0, NULL, NULL, 0);
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
                const ptrdiff_t r = g->trans_a ? p : i, col = g->trans_a ? i : p;
                T av = g->a[(g->a_rows ? (ptrdiff_t)g->a_rows[r] : r) * g->lda + col];
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
            FNN_S(fnn_pack_b_panels)(g, kd, jc, nc, pc, kc, bbuf);
            for (ptrdiff_t ic = i0; ic < i1; ic += kd->mc) {
                const ptrdiff_t mc = FNN_MIN(kd->mc, i1 - ic);
                for (ptrdiff_t ir = 0; ir < mc; ir += MR)
                    FNN_S(fnn_pack_a)(g, kd, ic + ir, FNN_MIN(MR, mc - ir), pc, kc,
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

/* All of B in L2 next to a unit of rows of A (the L2 is 512 KB). */
#define FNN_SUP_TALL_B_BYTES (256.0 * 1024)

/* Small enough that packing does not pay: A stays in L2 while it is re-read for
 * every NR-wide column panel, and one full-k panel of B fits in L2 too. Or tall
 * and narrow (n < m, as the seed MLP's 256x784 @ 784x64 and its weight gradient
 * 784x256 @ 256x64): then C is done in units of rows, each through every panel
 * of B while its rows of A are in L2, so A's size does not matter as long as all
 * of B stays in L2 (packing 256x784 of A took a quarter of the packed path's
 * time at that shape). Decided by the shape alone (never by the thread count),
 * so results stay thread-independent. */
static int FNN_S(fnn_use_sup)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd) {
    const double a_bytes = (double)g->m * (double)g->k * sizeof(T);
    const double b_bytes = (double)g->k * (double)g->n * sizeof(T);
    const double b_panel_bytes = (double)g->k * (double)kd->nr * sizeof(T);
    if (kd->sup == NULL || b_panel_bytes > 128.0 * 1024) return 0;
    return a_bytes <= 256.0 * 1024 || (g->n < g->m && b_bytes <= FNN_SUP_TALL_B_BYTES);
}

/* Rows of the next tile when `left` rows remain. The kernel also has a 4-row
 * form, as fast per row as the 6-row one, so a tail of 7 or 8 rows is cut 4 + 3
 * or 4 + 4 rather than 6 + 1 or 6 + 2 (a 1- or 2-row tile costs a full one):
 * m = 32 runs as 6+6+6+6+4+4. Results do not depend on the cut: every element
 * is the same k-ordered sum whichever tile computes it. */
static ptrdiff_t FNN_S(fnn_sup_rows)(ptrdiff_t MR, ptrdiff_t left) {
    if (MR == 6 && (left == 7 || left == 8)) return 4;
    return FNN_MIN(MR, left);
}

/* C[i0:i1, j:j+nr] with the small-problem kernel, from a panel of op(B) whose
 * NR values for each p lie at bp[p*bs] (packed: bs == NR; B in place: bs == ldb). */
static void FNN_S(fnn_sup_panel)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd,
                                 ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j, ptrdiff_t nr,
                                 const T *bp, ptrdiff_t bs) {
    const ptrdiff_t rs_a = g->trans_a ? 1 : g->lda, cs_a = g->trans_a ? g->lda : 1;
    const int ind = g->a_rows == NULL ? FNN_SUP_STRIDED : FNN_SUP_BY_ROW; /* never trans_a */
    const T *bias = g->bias ? g->bias + j : NULL;
    /* The form depends on the panel, and on the rows only for a short last tile:
     * picked once here rather than by a dispatcher per tile (a 16-argument call
     * re-marshalled per tile: 4.9% of workload B's samples sat in it). */
    const FNN_S(fnn_sup_form_fn) six = kd->sup(ind, cs_a, nr, bs, 1);
    const FNN_S(fnn_sup_form_fn) four = kd->sup(ind, cs_a, nr, bs, 0);
    for (ptrdiff_t i = i0, mr; i < i1; i += mr) {
        mr = FNN_S(fnn_sup_rows)(kd->mr, i1 - i);
        T *c = g->c + i * g->ldc + j;
        T *preact = g->preact ? g->preact + i * g->ldc + j : NULL;
        const T *ap = g->a + i * rs_a;
        const int64_t *rows = ind == FNN_SUP_BY_ROW ? g->a_rows + i : NULL; /* the tile's */
        const T *abase = ind == FNN_SUP_STRIDED ? ap : g->a;
        const ptrdiff_t rs = ind == FNN_SUP_STRIDED ? rs_a : g->lda;
        const FNN_S(fnn_sup_form_fn) f = mr > 4 ? six : four;
        if (g->epilogue_in_kernel) {
            f(g->k, abase, rs, cs_a, rows, mr, nr, bp, bs, c, g->ldc, g->alpha, g->beta, bias,
              preact, g->act == FNN_ACT_RELU);
        } else {
            f(g->k, abase, rs, cs_a, rows, mr, nr, bp, bs, c, g->ldc, g->alpha, g->beta, NULL,
              NULL, 0);
            kd->epilogue(c, g->ldc, mr, nr, bias, g->act, g->act_param, preact);
        }
    }
}

/* Whether the full panels of op(B) are read where they lie rather than packed.
 * When B is not transposed each p's NR values (one 64-byte line) are contiguous
 * in B already, and for a few row tiles packing is most of the cost: one thread
 * does 32x784x64 in 39 us in place against 43 packed, 5x784x64 in 7 against
 * 17. But only if every row of the panel starts a cache line: a row that
 * straddles two lines doubles the panel's footprint and makes it slower than
 * packing (55 us). fastnn allocates parameters 64-byte aligned, so its weights
 * qualify. When many row tiles re-read a column panel from L1, the packed one
 * wins (80x784x64: in place 13% slower) unless the in-place one fits L1 too
 * (k <= 128). Tall C (n < m) goes through B in units of rows that re-read
 * every panel from L2 anyway, where in place costs nothing and saves the
 * serial packing before the team starts (256x784x64, two threads: 155-170 us
 * against 196-246 packed; 784x256x64 unchanged). Results are the same either
 * way: this only moves time. */
#define FNN_SUP_IN_PLACE_MAX_M 32
#define FNN_SUP_IN_PLACE_MAX_K 128
static int FNN_S(fnn_sup_b_in_place)(const FNN_S(fnn_gemm_args) *g) {
    return !g->trans_b && ((uintptr_t)g->b % 64) == 0 && (g->ldb * sizeof(T)) % 64 == 0
           && (g->m <= FNN_SUP_IN_PLACE_MAX_M || g->k <= FNN_SUP_IN_PLACE_MAX_K || g->n < g->m);
}

/* Column panel u (NR wide) of C: compute all its rows, packing the panel into
 * the calling thread's workspace unless B is read in place. */
static void FNN_S(fnn_sup_column)(const FNN_S(fnn_gemm_args) *g,
                                  const FNN_S(fnn_kernel_desc) *kd, ptrdiff_t u) {
    const ptrdiff_t j = u * kd->nr, nr = FNN_MIN(kd->nr, g->n - j);
    if (nr == kd->nr && FNN_S(fnn_sup_b_in_place)(g)) {
        FNN_S(fnn_sup_panel)(g, kd, 0, g->m, j, nr, g->b + j, g->ldb);
        return;
    }
    T *bp = (T *)fnn_workspace_reserve((size_t)(g->k * kd->nr) * sizeof(T));
    if (bp == NULL) {
        FNN_S(fnn_gemm_unpacked)(g, kd, 0, g->m, j, j + nr);
        return;
    }
    FNN_S(fnn_pack_b)(g, kd, j, nr, 0, g->k, bp);
    FNN_S(fnn_sup_panel)(g, kd, 0, g->m, j, nr, bp, kd->nr);
}

/* Rows per unit of work when the rows of a tall product are shared out. */
#define FNN_SUP_ROWS_PER_UNIT 48

/* Rows [i0, i1) of C through every panel of B: panels before `first_packed` are
 * read in place, the others from `ball` (packed, k x NR each). */
static void FNN_S(fnn_sup_rows_unit)(const FNN_S(fnn_gemm_args) *g,
                                     const FNN_S(fnn_kernel_desc) *kd, ptrdiff_t i0,
                                     ptrdiff_t i1, ptrdiff_t first_packed, const T *ball) {
    const ptrdiff_t NR = kd->nr, n_panels = FNN_CEIL_DIV(g->n, NR);
    for (ptrdiff_t v = 0; v < n_panels; v++) {
        if (v < first_packed)
            FNN_S(fnn_sup_panel)(g, kd, i0, i1, v * NR, NR, g->b + v * NR, g->ldb);
        else
            FNN_S(fnn_sup_panel)(g, kd, i0, i1, v * NR, FNN_MIN(NR, g->n - v * NR),
                                 ball + (v - first_packed) * g->k * NR, NR);
    }
}

/* Tall C (n < m) on nt threads (1: no team). All of B fits L2 (fnn_use_sup): its
 * panels are packed once up front, or only the edge panel when B is read in
 * place; then units of FNN_SUP_ROWS_PER_UNIT rows go through every panel while
 * their rows of A are in L2. Units are handed out from a shared counter (see
 * fnn_gemm_sup_parallel). */
static void FNN_S(fnn_sup_tall)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd,
                                int nt) {
    const ptrdiff_t NR = kd->nr, k = g->k, n_panels = FNN_CEIL_DIV(g->n, NR);
    const int in_place = FNN_S(fnn_sup_b_in_place)(g);
    const ptrdiff_t first_packed = in_place ? g->n / NR : 0;
    T *ball = NULL;
    if (first_packed < n_panels) {
        ball = (T *)fnn_workspace_reserve((size_t)((n_panels - first_packed) * k * NR) * sizeof(T));
        if (ball == NULL) {
            FNN_S(fnn_gemm_unpacked)(g, kd, 0, g->m, 0, g->n);
            return;
        }
        FNN_S(fnn_pack_b_panels)(g, kd, first_packed * NR, g->n - first_packed * NR, 0, k, ball);
    }
    const ptrdiff_t units = FNN_CEIL_DIV(g->m, FNN_SUP_ROWS_PER_UNIT);
#ifdef _OPENMP
    if (nt > 1) {
        long next = 0;
        double caller_done = 0.0;
        const double start = omp_get_wtime();
#pragma omp parallel num_threads(nt)
        {
            for (;;) {
                const ptrdiff_t u = fnn_fetch_inc(&next);
                if (u >= units) break;
                FNN_S(fnn_sup_rows_unit)(g, kd, u * FNN_SUP_ROWS_PER_UNIT,
                                         FNN_MIN(g->m, (u + 1) * FNN_SUP_ROWS_PER_UNIT),
                                         first_packed, ball);
            }
            if (omp_get_thread_num() == 0) caller_done = omp_get_wtime();
        }
        fnn_note_region(start, caller_done);
        return;
    }
#else
    (void)nt;
#endif
    for (ptrdiff_t u = 0; u < units; u++)
        FNN_S(fnn_sup_rows_unit)(g, kd, u * FNN_SUP_ROWS_PER_UNIT,
                                 FNN_MIN(g->m, (u + 1) * FNN_SUP_ROWS_PER_UNIT), first_packed,
                                 ball);
}

#ifdef _OPENMP

/* The small-problem path on nt threads. Work is handed out in units from a
 * shared counter rather than split in advance: if the machine is busy and a
 * thread starts late, the others take its units, so a late thread costs at most
 * its own start-up instead of its share of the work. Units are column panels
 * (each packs its own B panel) or, when C is tall, groups of rows that share a
 * B packed once up front. Any unit is the same tiles computed the same way, so
 * which thread takes it does not change the results. */
static void FNN_S(fnn_gemm_sup_parallel)(const FNN_S(fnn_gemm_args) *g,
                                         const FNN_S(fnn_kernel_desc) *kd, int nt) {
    const ptrdiff_t n_panels = FNN_CEIL_DIV(g->n, kd->nr);
    long next = 0;
    double caller_done = 0.0;
    const double start = omp_get_wtime();
    if (g->n >= g->m) {
#pragma omp parallel num_threads(nt)
        {
            for (;;) {
                const ptrdiff_t u = fnn_fetch_inc(&next);
                if (u >= n_panels) break;
                FNN_S(fnn_sup_column)(g, kd, u);
            }
            if (omp_get_thread_num() == 0) caller_done = omp_get_wtime();
        }
        fnn_note_region(start, caller_done);
        return;
    }
    FNN_S(fnn_sup_tall)(g, kd, nt);
}

/* The packed path on nt threads: thread `tid` computes one contiguous slab of C,
 * cut along the longer of m and n on tile boundaries. Slabs are independent (each
 * thread packs what it needs), so the team never meets at a barrier; at these
 * sizes each share is long enough that an even static split is the best plan. */
static void FNN_S(fnn_gemm_slab)(const FNN_S(fnn_gemm_args) *g,
                                 const FNN_S(fnn_kernel_desc) *kd, int tid, int nt) {
    ptrdiff_t lo, hi;
    if (g->n >= g->m) {
        fnn_split(FNN_CEIL_DIV(g->n, kd->nr), tid, nt, &lo, &hi);
        if (lo < hi)
            FNN_S(fnn_gemm_block)(g, kd, 0, g->m, lo * kd->nr, FNN_MIN(hi * kd->nr, g->n));
    } else {
        fnn_split(FNN_CEIL_DIV(g->m, kd->mr), tid, nt, &lo, &hi);
        if (lo < hi)
            FNN_S(fnn_gemm_block)(g, kd, lo * kd->mr, FNN_MIN(hi * kd->mr, g->m), 0, g->n);
    }
}
#endif

/* ---- a few rows: B in place, no packing ------------------------------------------ */

/* Rows of C up to which the row kernel beats the packed sup tile: at one row it
 * does a quarter of the sup tile's FMAs and no packing. */
#define FNN_ROW_MAX_M 2

/* C[:, j0:j1] row by row with the row kernel (B not transposed). */
static void FNN_S(fnn_rows_block)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd,
                                  ptrdiff_t j0, ptrdiff_t j1) {
    const ptrdiff_t rs_a = g->trans_a ? 1 : g->lda, cs_a = g->trans_a ? g->lda : 1;
    for (ptrdiff_t i = 0; i < g->m; i++) {
        T *c = g->c + i * g->ldc + j0;
        T *preact = g->preact ? g->preact + i * g->ldc + j0 : NULL;
        const T *bias = g->bias ? g->bias + j0 : NULL;
        if (g->epilogue_in_kernel) {
            kd->row(g->k, g->a + i * rs_a, cs_a, g->b + j0, g->ldb, j1 - j0, c, g->alpha, g->beta,
                    bias, preact, g->act == FNN_ACT_RELU);
        } else {
            kd->row(g->k, g->a + i * rs_a, cs_a, g->b + j0, g->ldb, j1 - j0, c, g->alpha, g->beta,
                    NULL, NULL, 0);
            kd->epilogue(c, g->ldc, 1, j1 - j0, bias, g->act, g->act_param, preact);
        }
    }
}

/* The row path on nt threads: columns cut into one slab per thread on multiples
 * of 64 (every element is computed the same way whoever computes it). Pays only
 * when B is large: the row path is bound by streaming B from memory. */
static void FNN_S(fnn_gemm_rows)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd,
                                 int nt) {
#ifdef _OPENMP
    const ptrdiff_t chunks = FNN_CEIL_DIV(g->n, 64);
    if (nt > chunks) nt = (int)chunks;
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
        {
            ptrdiff_t lo, hi;
            fnn_split(chunks, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
            if (lo < hi) FNN_S(fnn_rows_block)(g, kd, lo * 64, FNN_MIN(hi * 64, g->n));
        }
        return;
    }
#else
    (void)nt;
#endif
    FNN_S(fnn_rows_block)(g, kd, 0, g->n);
}

/* ---- entry point ------------------------------------------------------------------ */

/* Whether picked rows of A are read where they lie: the product goes through the
 * small-problem path (with fnn_gemm_run's choice of path: the row path first)
 * and op(A) is not transposed (see FNN_SUP_BY_ROW). */
static int FNN_S(fnn_rows_in_place)(const FNN_S(fnn_gemm_args) *g,
                                    const FNN_S(fnn_kernel_desc) *kd) {
    if (g->trans_a || g->k <= 0 || (g->m <= FNN_ROW_MAX_M && !g->trans_b && kd->row != NULL))
        return 0;
    return FNN_S(fnn_use_sup)(g, kd);
}

static void FNN_S(fnn_gemm_run)(const FNN_S(fnn_gemm_args) *gp, int num_threads);

/* The three paths. Which one a product takes depends on its shape alone, and the
 * k-order of an element depends on the path (the packed path adds k-blocks of KC
 * into C; the others run one chain over all of k): a part of C computed on its
 * own (fnn_?gemm_part) takes the path of the whole product. */
#define FNN_PATH_ROW 0
#define FNN_PATH_SUP 1
#define FNN_PATH_PACKED 2
static int FNN_S(fnn_path)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd) {
    if (g->m <= FNN_ROW_MAX_M && !g->trans_b && kd->row != NULL) return FNN_PATH_ROW;
    return FNN_S(fnn_use_sup)(g, kd) ? FNN_PATH_SUP : FNN_PATH_PACKED;
}

/* All of C on the calling thread by the given path. */
static void FNN_S(fnn_run_serial)(const FNN_S(fnn_gemm_args) *g, const FNN_S(fnn_kernel_desc) *kd,
                                  int path) {
    if (path == FNN_PATH_ROW) {
        FNN_S(fnn_rows_block)(g, kd, 0, g->n);
    } else if (path == FNN_PATH_SUP && g->n < g->m) {
        FNN_S(fnn_sup_tall)(g, kd, 1);
    } else if (path == FNN_PATH_SUP) {
        for (ptrdiff_t u = 0; u < FNN_CEIL_DIV(g->n, kd->nr); u++) FNN_S(fnn_sup_column)(g, kd, u);
    } else {
        FNN_S(fnn_gemm_block)(g, kd, 0, g->m, 0, g->n);
    }
}

/* k == 0: C = beta*C, then the epilogue. */
static void FNN_S(fnn_empty_product)(const FNN_S(fnn_gemm_args) *g,
                                     const FNN_S(fnn_kernel_desc) *kd) {
    for (ptrdiff_t i = 0; i < g->m; i++) {
        T *ci = g->c + i * g->ldc;
        for (ptrdiff_t j = 0; j < g->n; j++) ci[j] = g->beta == (T)0 ? (T)0 : g->beta * ci[j];
    }
    kd->epilogue(g->c, g->ldc, g->m, g->n, g->bias, g->act, g->act_param, g->preact);
}

int FNN_PUBLIC_IN_PLACE_NAME(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k) {
    FNN_S(fnn_gemm_args) g;
    memset(&g, 0, sizeof g);
    g.trans_a = trans_a;
    g.trans_b = trans_b;
    g.m = m;
    g.n = n;
    g.k = k;
    const FNN_S(fnn_kernel_desc) kd = FNN_S(fnn_select_kernel)();
    return m > 0 && n > 0 && FNN_S(fnn_rows_in_place)(&g, &kd);
}

static void FNN_S(fnn_gemm_fill)(FNN_S(fnn_gemm_args) *g, int trans_a, int trans_b, ptrdiff_t m,
                                 ptrdiff_t n, ptrdiff_t k, T alpha, const T *a, ptrdiff_t lda,
                                 const int64_t *a_rows, const T *b, ptrdiff_t ldb, T beta,
                                 T *c, ptrdiff_t ldc, const T *bias, int act, T act_param,
                                 T *preact) {
    g->trans_a = trans_a;
    g->trans_b = trans_b;
    g->m = m;
    g->n = n;
    g->k = k;
    g->alpha = alpha;
    g->beta = beta;
    g->a = a;
    g->b = b;
    g->lda = lda;
    g->ldb = ldb;
    g->c = c;
    g->ldc = ldc;
    g->bias = bias;
    g->act = act;
    g->act_param = act_param;
    g->preact = preact;
    g->epilogue_in_kernel =
        act == FNN_ACT_LINEAR || act == FNN_ACT_RELU || fnn_act_is_rowwise(act);
    g->a_rows = a_rows;
}

void FNN_PUBLIC_NAME(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                     T alpha, const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb,
                     T beta, T *c, ptrdiff_t ldc, const T *bias, int act, T act_param,
                     T *preact, int num_threads) {
    if (m <= 0 || n <= 0) return;
    FNN_S(fnn_gemm_args) g;
    FNN_S(fnn_gemm_fill)(&g, trans_a, trans_b, m, n, k, alpha, a, lda, NULL, b, ldb, beta, c, ldc,
                         bias, act, act_param, preact);
    FNN_S(fnn_gemm_run)(&g, num_threads);
}

void FNN_PUBLIC_ROWS_NAME(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                          T alpha, const T *a, ptrdiff_t lda, const int64_t *a_rows,
                          const T *b, ptrdiff_t ldb, T beta, T *c, ptrdiff_t ldc,
                          const T *bias, int act, T act_param, T *preact, int num_threads) {
    if (m <= 0 || n <= 0) return;
    FNN_S(fnn_gemm_args) g;
    FNN_S(fnn_gemm_fill)(&g, trans_a, trans_b, m, n, k, alpha, a, lda, a_rows, b, ldb, beta, c,
                         ldc, bias, act, act_param, preact);
    if (a_rows != NULL && k > 0) {
        const FNN_S(fnn_kernel_desc) kd = FNN_S(fnn_select_kernel)();
        if (!FNN_S(fnn_rows_in_place)(&g, &kd)) {
            /* the packed and row paths read A densely: gather the rows once (in
             * the second buffer: packing uses the first) */
            const ptrdiff_t stored = trans_a ? k : m, width = trans_a ? m : k;
            T *copy = (T *)fnn_buffer_reserve(&fnn_tls_workspace_a,
                                             (size_t)(stored * width) * sizeof(T));
            if (copy != NULL) {
                for (ptrdiff_t r = 0; r < stored; r++)
                    memcpy(copy + r * width, a + a_rows[r] * lda, (size_t)width * sizeof(T));
                g.a = copy;
                g.lda = width;
                g.a_rows = NULL;
            } /* else the packed path falls back to the unpacked loop, which reads rows */
        }
    }
    FNN_S(fnn_gemm_run)(&g, num_threads);
}

/* The product for arguments filled by fnn_gemm_fill. */
static void FNN_S(fnn_gemm_run)(const FNN_S(fnn_gemm_args) *gp, int num_threads) {
    const FNN_S(fnn_gemm_args) g = *gp;
    const ptrdiff_t m = g.m, n = g.n, k = g.k;
    const FNN_S(fnn_kernel_desc) kd = FNN_S(fnn_select_kernel)();
    if (k <= 0) {
        FNN_S(fnn_empty_product)(&g, &kd);
        return;
    }
    if (g.a_rows != NULL && !FNN_S(fnn_rows_in_place)(&g, &kd)) {
        /* picked rows, but no memory for their gathered copy: the plain loop */
        FNN_S(fnn_gemm_unpacked)(&g, &kd, 0, m, 0, n);
        return;
    }

    const int path = FNN_S(fnn_path)(&g, &kd);
    if (path == FNN_PATH_ROW) {
#ifdef _OPENMP
        FNN_S(fnn_gemm_rows)(&g, &kd, fnn_threads_for(num_threads, m, n, k));
#else
        FNN_S(fnn_gemm_rows)(&g, &kd, 1);
#endif
        return;
    }

    const int sup = path == FNN_PATH_SUP;
#ifdef _OPENMP
    int nt = fnn_threads_for(num_threads, m, n, k);
    const int small = sup || (double)m * (double)n * (double)k < FNN_STALL_WORK;
    if (small) nt = fnn_small_threads(nt);
    if (nt > 1 && sup) {
        FNN_S(fnn_gemm_sup_parallel)(&g, &kd, nt);
        return;
    }
    const ptrdiff_t slabs = n >= m ? FNN_CEIL_DIV(n, kd.nr) : FNN_CEIL_DIV(m, kd.mr);
    if (nt > slabs) nt = (int)slabs;
    if (nt > 1) {
        double caller_done = 0.0;
        const double start = omp_get_wtime();
#pragma omp parallel num_threads(nt)
        {
            FNN_S(fnn_gemm_slab)(&g, &kd, omp_get_thread_num(), omp_get_num_threads());
            if (omp_get_thread_num() == 0) caller_done = omp_get_wtime();
        }
        if (small) fnn_note_region(start, caller_done);
        return;
    }
#else
    (void)num_threads;
#endif
    FNN_S(fnn_run_serial)(&g, &kd, path);
}

void FNN_PUBLIC_PART_NAME(int trans_a, int trans_b, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                          T alpha, const T *a, ptrdiff_t lda, const int64_t *a_rows,
                          const T *b, ptrdiff_t ldb, T beta, T *c, ptrdiff_t ldc,
                          const T *bias, int act, T act_param, T *preact, ptrdiff_t r0,
                          ptrdiff_t r1) {
    if (r0 < 0) r0 = 0;
    if (r1 > m) r1 = m;
    if (r0 >= r1 || n <= 0) return;
    FNN_S(fnn_gemm_args) g, part;
    FNN_S(fnn_gemm_fill)(&g, trans_a, trans_b, m, n, k, alpha, a, lda, a_rows, b, ldb, beta, c,
                         ldc, bias, act, act_param, preact);
    const FNN_S(fnn_kernel_desc) kd = FNN_S(fnn_select_kernel)();
    /* the part is a product of its own, r1 - r0 rows of the whole one */
    part = g;
    part.m = r1 - r0;
    part.c = c + r0 * ldc;
    part.preact = preact != NULL ? preact + r0 * ldc : NULL;
    if (trans_a) part.a = a + r0; /* op(A)'s rows are stored columns */
    else if (a_rows != NULL) part.a_rows = a_rows + r0;
    else part.a = a + r0 * lda;
    if (k <= 0) {
        FNN_S(fnn_empty_product)(&part, &kd);
        return;
    }
    const int path = FNN_S(fnn_path)(&g, &kd);
    if (a_rows != NULL && !FNN_S(fnn_rows_in_place)(&g, &kd)) {
        /* gather what the part reads, as fnn_?gemm_rows gathers the whole of A */
        const ptrdiff_t stored = trans_a ? k : part.m, width = trans_a ? part.m : k;
        T *copy = (T *)fnn_buffer_reserve(&fnn_tls_workspace_a,
                                         (size_t)(stored * width) * sizeof(T));
        if (copy == NULL) { /* the plain loop reads rows where they lie */
            FNN_S(fnn_gemm_unpacked)(&part, &kd, 0, part.m, 0, n);
            return;
        }
        for (ptrdiff_t r = 0; r < stored; r++) {
            const T *src = trans_a ? a + a_rows[r] * lda + r0 : a + part.a_rows[r] * lda;
            memcpy(copy + r * width, src, (size_t)width * sizeof(T));
        }
        part.a = copy;
        part.lda = width;
        part.a_rows = NULL;
    }
    FNN_S(fnn_run_serial)(&part, &kd, path);
}

#endif /* FNN_GEMM_TEMPLATE */
