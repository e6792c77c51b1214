# cython: language_level=3
"""The compiled kernels of the fast backend: nogil, fused float32/float64.

Every kernel is a ``cdef inline ... noexcept nogil`` function on raw pointers,
defined here in the .pxd so that it is compiled into each module that cimports
it -- ``fastnn._kernels`` (csrc/kernels.pyx, the Python-facing wrappers) and the
fused training step -- with no Python object, no GIL and no run-time import
between modules::

    from kernels cimport dense_forward, dense_backward, loss_rows, adam_update

Conventions
-----------
* ``floating`` is float or double; every array argument has that type, except
  class labels (int64) and the double accumulators of reductions.
* Arguments are marked ``# IN`` (read), ``# OUT`` (written) or ``# INOUT``.
  Vectors and element-wise arrays are contiguous; matrices handed to the GEMM
  are row-major with a row stride ``ld*`` and may be stored transposed
  (``*_trans``: the logical matrix is the transpose of the stored one).
* ``num_threads`` comes from ``fastnn.config.threads_for`` (Python) or from the
  fused step's plan; ``<= 1`` runs serially without entering a parallel region.
  Without OpenMP, ``prange`` runs serially.

Determinism
-----------
Parallel loops run over FIXED-size pieces of work (``CHUNK`` elements,
``COL_BLOCK`` columns, ``CHUNK // n`` rows) whose number depends only on the
problem shape. Element-wise results are independent of the split. Reductions
(loss sums, norms, penalties) keep one double partial per chunk and add the
partials serially in chunk order; column sums (the bias gradient) give each
column to exactly one task, which adds its rows in order. Hence results are
bit-identical for any thread count, and there are no atomics.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport (NAN, erf, erff, exp, expf, expm1, expm1f, fabs, fabsf, log, log1p,
                        log1pf, logf, sqrt, sqrtf, tanh, tanhf)
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from gemm cimport (FNN_ACT_ELU, FNN_ACT_EXPONENTIAL, FNN_ACT_GELU, FNN_ACT_GELU_TANH,
                   FNN_ACT_LEAKY_RELU, FNN_ACT_LINEAR, FNN_ACT_LOG_SOFTMAX, FNN_ACT_RELU,
                   FNN_ACT_SIGMOID, FNN_ACT_SOFTMAX, FNN_ACT_SOFTPLUS, FNN_ACT_TANH,
                   fnn_act_f32, fnn_act_f64, fnn_dgemm, fnn_dgemm_rows,
                   fnn_dgemm_part, fnn_dgemm_rows_in_place, fnn_sgemm, fnn_sgemm_part,
                   fnn_sgemm_rows, fnn_sgemm_rows_in_place)


cdef enum:
    # Elements per parallel task. Fixed (never derived from the thread count),
    # so that chunked reductions add the same partials in the same order.
    CHUNK = 8192
    # Columns per task of the bias-gradient column sums.
    COL_BLOCK = 64

# Loss codes (fastnn._kernels.LOSS_CODES maps the names).
cdef enum:
    LOSS_MSE = 0
    LOSS_MAE = 1
    LOSS_HUBER = 2
    LOSS_BCE = 3
    LOSS_CCE = 4
    LOSS_SPARSE_CCE = 5

cdef extern from *:
    """
    #ifndef FNN_KERNELS_CONSTANTS
    #define FNN_KERNELS_CONSTANTS
    #define FNN_EPSILON 1e-7 /* Keras: probabilities are clipped to [eps, 1 - eps] */
    #define FNN_SQRT_2 1.41421356237309504880
    #define FNN_GELU_TANH_C 0.044715
    #endif
    """
    const double EPSILON "FNN_EPSILON"
    const double SQRT_2 "FNN_SQRT_2"
    const double GELU_TANH_C "FNN_GELU_TANH_C"
    # from activations.h
    const double SQRT_2_OVER_PI "FNN_SQRT_2_OVER_PI"
    const double INV_SQRT_2PI "FNN_INV_SQRT_2PI"


# ---------------------------------------------------------------------------
# Scalar helpers: one name per math function for both float types.
# ---------------------------------------------------------------------------

cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef extern from "fast_exp.h" nogil:
    float fnn_expf(float x)
    void fnn_exp_shift_f32(const float *x, float shift, float *y, Py_ssize_t n)


cdef inline void _exp_shifted(const floating *x,  # IN (n,)
                              floating shift,
                              floating *y,        # OUT (n,), may be x
                              Py_ssize_t n) noexcept nogil:
    """y[j] = e^(x[j] - shift): the exponentials of softmax and of the categorical
    cross-entropies from logits. float32 goes eight at a time through
    csrc/fast_exp.h (libm's expf was 4.2% of a 10,000-row predict); float64
    keeps libm's exp."""
    cdef Py_ssize_t j
    if floating is float:
        fnn_exp_shift_f32(x, shift, y, n)
    else:
        for j in range(n):
            y[j] = exp(x[j] - shift)


cdef inline double _exp_shifted_sum(const floating *x,  # IN (n,)
                                   floating shift,
                                   floating *y,        # OUT (n,), or NULL
                                   Py_ssize_t n) noexcept nogil:
    """The sum, in order in double, of e^(x[j] - shift), which go to y (if not
    NULL; y may be x only when NULL is not needed) or through a small buffer."""
    cdef Py_ssize_t j, j0, w
    cdef floating buf[64]
    cdef floating *e
    cdef double s = 0
    for j0 in range(0, n, 64):
        w = min(<Py_ssize_t>64, n - j0)
        e = (y + j0) if y != NULL else buf
        _exp_shifted(x + j0, shift, e, w)
        for j in range(w):
            s += e[j]
    return s


cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef inline floating _fabs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _erf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)


cdef inline floating _sign(floating x) noexcept nogil:
    if x > 0:
        return 1
    if x < 0:
        return -1
    return x  # 0 stays 0 (and NaN stays NaN), as numpy.sign


cdef inline floating _sigmoid(floating x) noexcept nogil:
    """1 / (1 + e^-x) by the sign of x, so that only e^-|x| <= 1 is computed."""
    cdef floating e = _exp(-_fabs(x))
    if x >= 0:
        return 1 / (1 + e)
    return e / (1 + e)


cdef inline floating act_value(int code, floating z, floating param) noexcept nogil:
    """f(z) for an element-wise activation code (csrc/activations.h, shared with the
    GEMM epilogue so that the dense forward and the activation op agree)."""
    if floating is float:
        return fnn_act_f32(code, z, param)
    else:
        return fnn_act_f64(code, z, param)


cdef inline Py_ssize_t n_chunks(Py_ssize_t size, Py_ssize_t chunk) noexcept nogil:
    return (size + chunk - 1) // chunk


# A float is NaN or infinite exactly when its exponent bits are all ones. Testing
# the bits is integer work the compiler vectorizes (a float comparison reduction
# would not be, without -ffast-math), and blocks let a bad value stop the scan.
cdef enum:
    FINITE_SCAN_BLOCK = 4096


ctypedef fused float_bits:
    uint32_t
    uint64_t


cdef inline bint _finite_bits(const float_bits *u, Py_ssize_t n) noexcept nogil:
    """No element of the float32 (uint32_t) or float64 (uint64_t) bit patterns has
    all its exponent bits set."""
    cdef Py_ssize_t lo = 0, i, hi
    cdef float_bits bad, exponent
    if float_bits is uint32_t:
        exponent = 0x7f800000u
    else:
        exponent = 0x7ff0000000000000u
    while lo < n:
        hi = min(lo + FINITE_SCAN_BLOCK, n)
        bad = 0
        for i in range(lo, hi):
            bad |= <float_bits>((u[i] & exponent) == exponent)
        if bad:
            return False
        lo = hi
    return True


cdef inline bint all_finite_values(const floating *x,    # IN (n,)
                                   Py_ssize_t n) noexcept nogil:
    """Whether every one of the n values is finite (no NaN, no infinity)."""
    if floating is float:
        return _finite_bits(<const uint32_t *>x, n)
    else:
        return _finite_bits(<const uint64_t *>x, n)


cdef inline Py_ssize_t rows_per_chunk(Py_ssize_t n) noexcept nogil:
    """Rows of length n per task of a row-wise kernel: about CHUNK elements."""
    if n >= CHUNK:
        return 1
    if n < 1:
        return CHUNK
    return CHUNK // n


# ---------------------------------------------------------------------------
# GEMM (csrc/gemm.h) for either float type.
# ---------------------------------------------------------------------------

cdef inline void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                      floating alpha, const floating *a, Py_ssize_t lda,    # IN
                      const floating *b, Py_ssize_t ldb,                    # IN
                      floating beta, floating *c, Py_ssize_t ldc,           # INOUT
                      const floating *bias, int act, floating act_param,    # IN
                      floating *preact, int num_threads) noexcept nogil:    # OUT
    """C = act(alpha op(A) op(B) + beta C + bias); see csrc/gemm.h."""
    if floating is float:
        fnn_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                  bias, act, act_param, preact, num_threads)
    else:
        fnn_dgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc,
                  bias, act, act_param, preact, num_threads)


cdef inline void gemm_rows(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                           floating alpha, const floating *a, Py_ssize_t lda,    # IN
                           const int64_t *a_rows,                                 # IN or NULL
                           const floating *b, Py_ssize_t ldb,                    # IN
                           floating beta, floating *c, Py_ssize_t ldc,           # INOUT
                           const floating *bias, int act, floating act_param,    # IN
                           floating *preact, int num_threads) noexcept nogil:    # OUT
    """gemm with the stored rows of A picked by ``a_rows`` (row r at a + a_rows[r]*lda):
    a shuffled batch read where it lies. NULL: the plain product."""
    if floating is float:
        fnn_sgemm_rows(trans_a, trans_b, m, n, k, alpha, a, lda, a_rows, b, ldb, beta, c, ldc,
                       bias, act, act_param, preact, num_threads)
    else:
        fnn_dgemm_rows(trans_a, trans_b, m, n, k, alpha, a, lda, a_rows, b, ldb, beta, c, ldc,
                       bias, act, act_param, preact, num_threads)


cdef inline void gemm_part(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                           floating alpha, const floating *a, Py_ssize_t lda,    # IN
                           const int64_t *a_rows,                                 # IN or NULL
                           const floating *b, Py_ssize_t ldb,                    # IN
                           floating beta, floating *c, Py_ssize_t ldc,           # INOUT
                           const floating *bias, int act, floating act_param,    # IN
                           floating *preact,                                     # OUT
                           Py_ssize_t r0, Py_ssize_t r1) noexcept nogil:
    """Rows r0:r1 of the gemm_rows product on the calling thread, bit-identical to
    that product's rows (for a team that shares out the rows inside its own
    parallel region)."""
    if floating is float:
        fnn_sgemm_part(trans_a, trans_b, m, n, k, alpha, a, lda, a_rows, b, ldb, beta, c, ldc,
                       bias, act, act_param, preact, r0, r1)
    else:
        fnn_dgemm_part(trans_a, trans_b, m, n, k, alpha, a, lda, a_rows, b, ldb, beta, c, ldc,
                       bias, act, act_param, preact, r0, r1)


cdef inline bint gemm_rows_in_place(floating *dummy, bint trans_a, bint trans_b, Py_ssize_t m,
                                    Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    """Whether gemm_rows reads the picked rows in place at this shape (else it
    copies them first). ``dummy`` only selects the float type."""
    if floating is float:
        return fnn_sgemm_rows_in_place(trans_a, trans_b, m, n, k) != 0
    else:
        return fnn_dgemm_rows_in_place(trans_a, trans_b, m, n, k) != 0


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

cdef inline void _act_chunk(int code, floating param,
                            const floating *x,     # IN (n,)
                            floating *y,           # OUT (n,), may be x
                            Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if code == FNN_ACT_RELU:
        for i in range(n):
            y[i] = x[i] if x[i] > 0 else 0
    elif code == FNN_ACT_LINEAR:
        if y != x:
            memcpy(y, x, n * sizeof(floating))
    else:
        for i in range(n):
            y[i] = act_value(code, x[i], param)


cdef inline void act_forward(int code, floating param,
                             const floating *x,    # IN (size,)
                             floating *y,          # OUT (size,), may be x
                             Py_ssize_t size, int num_threads) noexcept nogil:
    """y = f(x) element-wise (row-wise codes: use softmax_rows)."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    if num_threads <= 1 or nc <= 1:
        _act_chunk(code, param, x, y, size)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _act_chunk(code, param, x + start, y + start, min(<Py_ssize_t>CHUNK, size - start))


cdef inline floating _row_max(const floating *x, Py_ssize_t n) noexcept nogil:
    """The largest of x[0..n-1] (n >= 1); a NaN is kept only in x[0]."""
    cdef Py_ssize_t j
    cdef floating mx = x[0]
    for j in range(1, n):
        if x[j] > mx:
            mx = x[j]
    return mx


cdef inline void _softmax_block(const floating *x, floating *y, Py_ssize_t m, Py_ssize_t n,
                                bint log_softmax) noexcept nogil:
    """Softmax (or log-softmax) of m rows, each shifted by its maximum (no overflow).

    Softmax takes three passes: x - max into y row by row, the exponentials of
    all m*n values in one call (independent vectors pipeline; one call per row
    of 10 classes waited on the latency of two), then each row over its sum,
    added in order in double. The values are those of one expression per
    element: x - max is rounded to the type either way.
    """
    cdef Py_ssize_t i, j
    cdef const floating *xi
    cdef floating *yi
    cdef floating mx, lse
    cdef double s
    if n <= 0 or m <= 0:
        return
    if log_softmax:
        for i in range(m):
            xi = x + i * n
            yi = y + i * n
            mx = _row_max(xi, n)
            # yi may be xi, which is read again below: the exponentials are not kept
            lse = <floating>log(_exp_shifted_sum(xi, mx, <floating *>NULL, n))
            for j in range(n):
                yi[j] = (xi[j] - mx) - lse
        return
    for i in range(m):
        xi = x + i * n
        yi = y + i * n
        mx = _row_max(xi, n)
        for j in range(n):
            yi[j] = xi[j] - mx
    _exp_shifted(y, <floating>0, y, m * n)
    for i in range(m):
        yi = y + i * n
        s = 0
        for j in range(n):
            s += yi[j]
        for j in range(n):
            yi[j] = <floating>(yi[j] / s)


cdef inline void _softmax_row(const floating *x, floating *y, Py_ssize_t n,
                              bint log_softmax) noexcept nogil:
    """Softmax (or log-softmax) of one row (see _softmax_block)."""
    _softmax_block(x, y, 1, n, log_softmax)


cdef inline void softmax_rows(const floating *x,   # IN (m, n)
                              floating *y,         # OUT (m, n), may be x
                              Py_ssize_t m, Py_ssize_t n, bint log_softmax,
                              int num_threads) noexcept nogil:
    """Row-wise softmax or log-softmax of a contiguous (m, n) matrix."""
    cdef Py_ssize_t c, r0, r1, rows = rows_per_chunk(n), nc = n_chunks(m, rows)
    if num_threads <= 1 or nc <= 1:
        _softmax_block(x, y, m, n, log_softmax)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        r0 = c * rows
        r1 = min(r0 + rows, m)
        _softmax_block(x + r0 * n, y + r0 * n, r1 - r0, n, log_softmax)


cdef inline void _act_backward_chunk(int code, floating param,
                                     const floating *g,    # IN grad_y (n,)
                                     const floating *z,    # IN input x (n,) or NULL
                                     const floating *y,    # IN output f(x) (n,)
                                     floating *out,        # OUT grad_x (n,), may be g
                                     Py_ssize_t n) noexcept nogil:
    """grad_x = grad_y * f'(x) element-wise, written as the reference backend does.

    The sign tests use x when it is given, else y (leaky_relu with a negative
    slope needs x); gelu and gelu_tanh need x.
    """
    cdef Py_ssize_t i
    cdef floating t, u, v, cdf, pdf
    cdef const floating *s = z if z != NULL else y
    # The piecewise derivatives load every operand before the select: a select of
    # two loaded values compiles to a vector blend, while `g[i] if s[i] > 0 else 0`
    # becomes a branch per element that mispredicts on about half the units of a
    # layer (4.6 ns per element instead of well under one).
    if code == FNN_ACT_LINEAR:
        if out != g:
            memcpy(out, g, n * sizeof(floating))
    elif code == FNN_ACT_RELU:
        for i in range(n):
            v = g[i]
            t = s[i]
            out[i] = v if t > 0 else 0
    elif code == FNN_ACT_SIGMOID:
        for i in range(n):
            out[i] = g[i] * y[i] * (1 - y[i])
    elif code == FNN_ACT_TANH:
        for i in range(n):
            out[i] = g[i] * (1 - y[i] * y[i])
    elif code == FNN_ACT_EXPONENTIAL:
        for i in range(n):
            out[i] = g[i] * y[i]
    elif code == FNN_ACT_LEAKY_RELU:
        for i in range(n):
            v = g[i]
            t = s[i]
            u = param * v
            out[i] = v if t > 0 else u
    elif code == FNN_ACT_ELU:
        for i in range(n):
            v = g[i]
            t = s[i]
            u = v * (y[i] + param)
            out[i] = v if t > 0 else u
    elif code == FNN_ACT_SOFTPLUS:
        # softplus' = sigmoid(x) = 1 - e^-y; expm1 keeps it accurate for small y
        if z != NULL:
            for i in range(n):
                out[i] = g[i] * _sigmoid(z[i])
        else:
            for i in range(n):
                out[i] = g[i] * -_expm1(-y[i])
    elif code == FNN_ACT_GELU:
        for i in range(n):
            cdf = <floating>0.5 * (1 + _erf(z[i] / <floating>SQRT_2))
            pdf = <floating>INV_SQRT_2PI * _exp(<floating>-0.5 * z[i] * z[i])
            out[i] = g[i] * (cdf + z[i] * pdf)
    elif code == FNN_ACT_GELU_TANH:
        for i in range(n):
            t = _tanh(<floating>SQRT_2_OVER_PI * (z[i] + <floating>GELU_TANH_C * z[i] * z[i] * z[i]))
            u = <floating>SQRT_2_OVER_PI * (1 + 3 * <floating>GELU_TANH_C * z[i] * z[i])
            out[i] = g[i] * (<floating>0.5 * (1 + t) + <floating>0.5 * z[i] * (1 - t * t) * u)


cdef inline void act_backward(int code, floating param,
                              const floating *grad_y,   # IN (size,)
                              const floating *x,        # IN (size,) or NULL
                              const floating *y,        # IN (size,)
                              floating *grad_x,         # OUT (size,), may be grad_y
                              Py_ssize_t size, int num_threads) noexcept nogil:
    """grad_x = grad_y * f'(x) element-wise (row-wise codes: softmax_backward_rows)."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    if num_threads <= 1 or nc <= 1:
        _act_backward_chunk(code, param, grad_y, x, y, grad_x, size)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _act_backward_chunk(code, param, grad_y + start, (x + start) if x != NULL else NULL,
                            y + start, grad_x + start, min(<Py_ssize_t>CHUNK, size - start))


cdef inline void _softmax_backward_row(const floating *g, const floating *y, floating *out,
                                       Py_ssize_t n, bint log_softmax) noexcept nogil:
    cdef Py_ssize_t j
    cdef double s = 0
    cdef floating sf
    if log_softmax:
        # d log_softmax_i / d x_j = delta_ij - softmax_j: grad_x = g - softmax * sum(g)
        for j in range(n):
            s += g[j]
        sf = <floating>s
        for j in range(n):
            out[j] = g[j] - _exp(y[j]) * sf
    else:
        # J = diag(y) - y y^T, so J^T g = y * (g - <g, y>)
        for j in range(n):
            s += g[j] * y[j]
        sf = <floating>s
        for j in range(n):
            out[j] = y[j] * (g[j] - sf)


cdef inline void softmax_backward_rows(const floating *grad_y,   # IN (m, n)
                                       const floating *y,        # IN (m, n) forward output
                                       floating *grad_x,         # OUT (m, n), may be grad_y
                                       Py_ssize_t m, Py_ssize_t n, bint log_softmax,
                                       int num_threads) noexcept nogil:
    """Row-wise Jacobian-vector product of softmax or log-softmax."""
    cdef Py_ssize_t c, i, r0, r1, rows = rows_per_chunk(n), nc = n_chunks(m, rows)
    if num_threads <= 1 or nc <= 1:
        for i in range(m):
            _softmax_backward_row(grad_y + i * n, y + i * n, grad_x + i * n, n, log_softmax)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        r0 = c * rows
        r1 = min(r0 + rows, m)
        for i in range(r0, r1):
            _softmax_backward_row(grad_y + i * n, y + i * n, grad_x + i * n, n, log_softmax)


# ---------------------------------------------------------------------------
# Dense layer: y = act(x @ W + b) and its backward pass
# ---------------------------------------------------------------------------

cdef inline void dense_forward(const floating *x, Py_ssize_t ldx, bint x_trans,   # IN (m, k)
                               const int64_t *x_rows,                             # IN (m,) or NULL
                               const floating *w, Py_ssize_t ldw, bint w_trans,   # IN (k, n)
                               const floating *bias,                              # IN (n,) or NULL
                               int code, floating param,
                               floating *y,                                       # OUT (m, n)
                               floating *preact,                                  # OUT (m, n) or NULL
                               Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                               int num_threads) noexcept nogil:
    """y = act(x @ W + b): one GEMM whose epilogue adds the bias and applies an
    element-wise activation (and stores x @ W + b into ``preact``); softmax and
    log-softmax are finished row by row afterwards.

    ``y`` and ``preact`` are contiguous (row stride n). With ``x_rows`` (x not
    transposed), row i of x is row x_rows[i] of the array at ``x``.
    """
    gemm_rows(x_trans, w_trans, m, n, k, <floating>1, x, ldx, x_rows, w, ldw, <floating>0, y, n,
              bias, code, param, preact, num_threads)
    if code == FNN_ACT_SOFTMAX or code == FNN_ACT_LOG_SOFTMAX:
        softmax_rows(y, y, m, n, code == FNN_ACT_LOG_SOFTMAX, num_threads)


cdef inline void _dz_colsum_block(int code, floating param,
                                  const floating *grad_y, const floating *z, const floating *y,
                                  floating *dz, floating *grad_bias,
                                  Py_ssize_t m, Py_ssize_t n, Py_ssize_t j0, Py_ssize_t j1,
                                  bint compute_dz, bint accumulate) noexcept nogil:
    """Columns j0:j1 of dz = grad_y * f'(z) (if compute_dz) and of its column sums.

    Each column's sum is added row by row in one task: the same order for any
    number of threads.
    """
    cdef double acc[COL_BLOCK]
    cdef Py_ssize_t i, j, w = j1 - j0, off
    cdef const floating *row
    for j in range(w):
        acc[j] = 0
    for i in range(m):
        off = i * n + j0
        if compute_dz:
            _act_backward_chunk(code, param, grad_y + off, (z + off) if z != NULL else NULL,
                                y + off, dz + off, w)
        row = dz + off
        for j in range(w):
            acc[j] += row[j]
    if grad_bias != NULL:
        if accumulate:
            for j in range(w):
                grad_bias[j0 + j] += <floating>acc[j]
        else:
            for j in range(w):
                grad_bias[j0 + j] = <floating>acc[j]


cdef inline void dz_and_bias_grad(int code, floating param,
                                  const floating *grad_y,   # IN (m, n)
                                  const floating *z,        # IN (m, n) pre-activation or NULL
                                  const floating *y,        # IN (m, n) activation output
                                  floating *dz,             # OUT (m, n); == grad_y for linear
                                  floating *grad_bias,      # OUT/INOUT (n,) or NULL
                                  Py_ssize_t m, Py_ssize_t n, bint accumulate,
                                  int num_threads) noexcept nogil:
    """dz = grad_y * act'(z, y) and grad_bias (= or +=) sum_i dz[i, :], in one pass
    for element-wise activations (over blocks of COL_BLOCK columns)."""
    cdef Py_ssize_t b, j0, nb = n_chunks(n, COL_BLOCK)
    cdef bint compute_dz = code != FNN_ACT_LINEAR
    if code == FNN_ACT_SOFTMAX or code == FNN_ACT_LOG_SOFTMAX:
        softmax_backward_rows(grad_y, y, dz, m, n, code == FNN_ACT_LOG_SOFTMAX, num_threads)
        compute_dz = False
    elif compute_dz and (grad_bias == NULL or (num_threads > 1 and nb < num_threads)):
        # Too few column blocks to share: compute dz in row chunks on all threads,
        # then sum the columns (cheap) in one task.
        act_backward(code, param, grad_y, z, y, dz, m * n, num_threads)
        compute_dz = False
    if grad_bias == NULL:
        return
    if num_threads <= 1 or nb <= 1:
        for b in range(nb):
            j0 = b * COL_BLOCK
            _dz_colsum_block(code, param, grad_y, z, y, dz, grad_bias, m, n, j0,
                             min(j0 + COL_BLOCK, n), compute_dz, accumulate)
        return
    for b in prange(nb, num_threads=num_threads, schedule='static'):
        j0 = b * COL_BLOCK
        _dz_colsum_block(code, param, grad_y, z, y, dz, grad_bias, m, n, j0,
                         min(j0 + COL_BLOCK, n), compute_dz, accumulate)


cdef inline void bias_grad_part(const floating *dz,   # IN (m, n)
                                floating *grad_bias,  # OUT grad_bias[j0:j1]
                                Py_ssize_t m, Py_ssize_t n, Py_ssize_t j0,
                                Py_ssize_t j1) noexcept nogil:
    """Columns j0:j1 of grad_bias = sum_i dz[i, :] on the calling thread, each
    column added row by row as dz_and_bias_grad adds it."""
    cdef Py_ssize_t j
    j = j0
    while j < j1:
        _dz_colsum_block(FNN_ACT_LINEAR, <floating>0, dz, NULL, dz, <floating *>dz, grad_bias, m, n,
                         j, min(j + COL_BLOCK, j1), False, False)
        j += COL_BLOCK


cdef inline void dense_backward(const floating *grad_y,                           # IN (m, n)
                                const floating *x, Py_ssize_t ldx, bint x_trans,  # IN (m, k)
                                const floating *w, Py_ssize_t ldw, bint w_trans,  # IN (k, n)
                                const floating *y,                                # IN (m, n)
                                const floating *preact,                           # IN (m, n) or NULL
                                int code, floating param,
                                floating *dz,                                     # OUT (m, n) workspace
                                floating *grad_w, Py_ssize_t ldgw, bint gw_trans, # INOUT (k, n) or NULL
                                floating *grad_bias,                              # INOUT (n,) or NULL
                                floating *grad_x,                                 # OUT (m, k) or NULL
                                Py_ssize_t m, Py_ssize_t k, Py_ssize_t n,
                                bint accumulate, int num_threads) noexcept nogil:
    """Back through y = act(x @ W + b).

    dz = grad_y * act'(preact, y) (softmax: the Jacobian product), fused with
    grad_bias (= or +=) sum_i dz; grad_w (= or +=) x^T dz by one GEMM (beta = 1
    when accumulating); grad_x = dz W^T by one GEMM. ``dz`` is not touched for a
    linear activation (grad_y is used in its place) and may then be NULL.
    ``y`` and ``grad_y``, ``dz``, ``grad_x`` are contiguous.
    """
    cdef const floating *d = grad_y
    if code != FNN_ACT_LINEAR:
        d = dz
    dz_and_bias_grad(code, param, grad_y, preact, y, dz if code != FNN_ACT_LINEAR else <floating *>grad_y,
                     grad_bias, m, n, accumulate, num_threads)
    if grad_w != NULL:
        if not gw_trans:
            # (k, n) = op(x)^T @ dz
            gemm(not x_trans, False, k, n, m, <floating>1, x, ldx, d, n,
                 <floating>(1 if accumulate else 0), grad_w, ldgw, NULL, FNN_ACT_LINEAR,
                 <floating>0, NULL, num_threads)
        else:
            # grad_w is the transpose of a stored (n, k) matrix G: G = dz^T @ op(x)
            gemm(True, x_trans, n, k, m, <floating>1, d, n, x, ldx,
                 <floating>(1 if accumulate else 0), grad_w, ldgw, NULL, FNN_ACT_LINEAR,
                 <floating>0, NULL, num_threads)
    if grad_x != NULL:
        # (m, k) = dz @ W^T
        gemm(False, not w_trans, m, k, n, <floating>1, d, n, w, ldw, <floating>0, grad_x, k,
             NULL, FNN_ACT_LINEAR, <floating>0, NULL, num_threads)


# ---------------------------------------------------------------------------
# Losses: value and gradient in one pass over the rows
# ---------------------------------------------------------------------------

cdef inline double _loss_row(int code, const floating *p, const floating *t, int64_t label,
                             floating *g, floating scale, Py_ssize_t n, bint from_logits,
                             floating delta, floating *probs) noexcept nogil:
    """The per-sample loss of one row (before weighting), and its gradient times
    ``scale`` into g (if g is not NULL). The categorical cross-entropies from
    logits also write softmax(p) into ``probs`` (if not NULL): the values
    _softmax_row gives, from the exponentials the loss computes anyway.

    Regression losses and binary cross-entropy average over the n elements;
    the categorical cross-entropies sum over the n classes.
    """
    cdef Py_ssize_t j
    cdef double s = 0, z_sum = 0, lse
    cdef floating e, a, mx, q, tot, lo = <floating>EPSILON, hi = <floating>(1 - EPSILON)
    if n <= 0:
        return <double>NAN
    if code == LOSS_MSE:
        for j in range(n):
            e = p[j] - t[j]
            s += e * e
            if g != NULL:
                g[j] = scale * (2 * e)
        return s / n
    if code == LOSS_MAE:
        for j in range(n):
            e = p[j] - t[j]
            s += _fabs(e)
            if g != NULL:
                g[j] = scale * _sign(e)
        return s / n
    if code == LOSS_HUBER:
        for j in range(n):
            e = p[j] - t[j]
            a = _fabs(e)
            if a <= delta:
                s += <floating>0.5 * e * e
                if g != NULL:
                    g[j] = scale * e
            else:
                s += delta * (a - <floating>0.5 * delta)
                if g != NULL:
                    g[j] = scale * (delta * _sign(e))
        return s / n
    if code == LOSS_BCE:
        if from_logits:
            # -[t log s(x) + (1-t) log(1-s(x))] = max(x, 0) - x t + log1p(e^-|x|)
            for j in range(n):
                s += (p[j] if p[j] > 0 else 0) - p[j] * t[j] + _log1p(_exp(-_fabs(p[j])))
                if g != NULL:
                    g[j] = scale * (_sigmoid(p[j]) - t[j])
        else:
            for j in range(n):
                q = min(max(p[j], lo), hi)
                s += -(t[j] * _log(q) + (1 - t[j]) * _log(1 - q))
                if g != NULL:
                    # where the clipping bites the loss is flat in p
                    if p[j] > lo and p[j] < hi:
                        g[j] = scale * -(t[j] / q - (1 - t[j]) / (1 - q))
                    else:
                        g[j] = 0
        return s / n
    if code == LOSS_SPARSE_CCE and (label < 0 or label >= n):
        # Out-of-range labels are refused by validation; never read past the row.
        if g != NULL:
            for j in range(n):
                g[j] = 0
        if probs != NULL and from_logits:
            _softmax_row(p, probs, n, False)
        return <double>NAN
    if from_logits:
        # loss = lse(x) - sum_j t_j x_j (sum_j t_j = 1 for one-hot); stable: shift by max
        mx = _row_max(p, n)
        # the exponentials as _softmax_row computes them, into g or probs if given
        z_sum = _exp_shifted_sum(p, mx, g if g != NULL else probs, n)
        if g != NULL and probs != NULL:
            memcpy(probs, g, n * sizeof(floating))
        if probs != NULL:
            # as _softmax_row: the float exponentials over their double sum
            for j in range(n):
                probs[j] = <floating>(probs[j] / z_sum)
        # lse - x_k as (max - x_k) + log(z_sum): max + log(z_sum) - x_k would cancel two
        # large numbers when every logit carries a big offset (1e17 gave a loss of 0)
        lse = log(z_sum)
        if code == LOSS_SPARSE_CCE:
            if g != NULL:
                # softmax - one_hot(label)
                for j in range(n):
                    q = <floating>(g[j] / z_sum)
                    if j == label:
                        q = q - 1
                    g[j] = scale * q
            return (<double>mx - p[label]) + lse
        # d/dx_j [sum_k t_k (lse - x_k)] = softmax_j * sum_k t_k - t_j
        tot = 0
        for j in range(n):
            s += t[j] * ((<double>mx - p[j]) + lse)
            tot += t[j]
        if g != NULL:
            for j in range(n):
                g[j] = scale * (<floating>(g[j] / z_sum) * tot - t[j])
        return s
    if code == LOSS_SPARSE_CCE:
        q = min(max(p[label], lo), hi)
        if g != NULL:
            for j in range(n):
                g[j] = 0
            if p[label] > lo and p[label] < hi:
                g[label] = scale * (-1 / q)
        return -_log(q)
    for j in range(n):
        q = min(max(p[j], lo), hi)
        s += -t[j] * _log(q)
        if g != NULL:
            g[j] = scale * (-t[j] / q) if (p[j] > lo and p[j] < hi) else 0
    return s


cdef inline double _loss_chunk(int code, const floating *y_pred, const floating *y_true,
                               const int64_t *labels, const floating *weight, floating *grad,
                               Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t m, Py_ssize_t n,
                               bint from_logits, floating delta, floating *probs,
                               double *values=NULL) noexcept nogil:
    """sum over rows r0:r1 of w_i * l_i, with the gradient rows (and, if ``values``
    is not NULL, each row's w_i * l_i in values[i])."""
    cdef Py_ssize_t i
    cdef double total = 0, l, w
    cdef bint per_class = code == LOSS_CCE or code == LOSS_SPARSE_CCE
    cdef double count = 1 if per_class else n
    cdef floating scale
    cdef int64_t label = 0
    for i in range(r0, r1):
        w = weight[i] if weight != NULL else 1
        # d value / d y_pred = w_i / (m * count) * d(element loss) / d y_pred
        scale = <floating>(w / (m * count))
        if labels != NULL:
            label = labels[i]
        l = _loss_row(code, y_pred + i * n, (y_true + i * n) if y_true != NULL else NULL, label,
                      (grad + i * n) if grad != NULL else NULL, scale, n, from_logits, delta,
                      (probs + i * n) if probs != NULL else NULL)
        total += w * l
        if values != NULL:
            values[i] = w * l
    return total


cdef inline void loss_rows_part(int code,
                                const floating *y_pred,   # IN (m, n)
                                const floating *y_true,   # IN (m, n) or NULL
                                const int64_t *labels,    # IN (m,) or NULL
                                const floating *weight,   # IN (m,) or NULL
                                floating *grad,           # OUT rows r0:r1 of (m, n), or NULL
                                Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t m, Py_ssize_t n,
                                bint from_logits, double param,
                                floating *probs,          # OUT rows r0:r1 of (m, n), or NULL
                                double *values) noexcept nogil:   # OUT values[r0:r1]
    """Rows r0:r1 of loss_rows on the calling thread: their gradient rows and
    probabilities, and each row's weighted loss in ``values`` for
    loss_rows_total, which adds them as loss_rows does. Every array is the whole
    batch's (row i at i * n)."""
    _loss_chunk(code, y_pred, y_true, labels, weight, grad, r0, r1, m, n, from_logits,
                <floating>param, probs, values)


cdef inline double loss_rows_total(const double *values,   # IN (m,) from loss_rows_part
                                   Py_ssize_t m, Py_ssize_t n) noexcept nogil:
    """loss_rows' value from the rows' weighted losses: the same chunks, each
    summed from zero in row order, added in chunk order, over m."""
    cdef Py_ssize_t c, i, r0, rows = rows_per_chunk(n), nc = n_chunks(m, rows)
    cdef double total = 0, chunk
    if m <= 0:
        return <double>NAN
    for c in range(nc):
        r0 = c * rows
        chunk = 0
        for i in range(r0, min(r0 + rows, m)):
            chunk += values[i]
        total += chunk
    return total / m


cdef inline double loss_rows(int code,
                             const floating *y_pred,   # IN (m, n)
                             const floating *y_true,   # IN (m, n); NULL for the sparse loss
                             const int64_t *labels,    # IN (m,) class indices, sparse loss only
                             const floating *weight,   # IN (m,) sample weights or NULL
                             floating *grad,           # OUT (m, n) d value / d y_pred, or NULL
                             Py_ssize_t m, Py_ssize_t n, bint from_logits, double param,
                             int num_threads,
                             floating *probs) noexcept nogil:      # OUT (m, n) or NULL
    """The batch loss sum_i w_i l_i / m, and (if grad) its gradient, in one pass.

    ``param`` is huber's delta. With ``from_logits`` the cross-entropies take
    logits and fuse the softmax / sigmoid (stable forms); probabilities are
    clipped to [1e-7, 1 - 1e-7] with a zero gradient where the clip bites.
    ``probs``, for the categorical cross-entropies from logits: receives
    softmax(y_pred), equal to softmax_rows' (the model's output for metrics).
    """
    cdef Py_ssize_t c, r0, rows = rows_per_chunk(n), nc = n_chunks(m, rows)
    cdef double total = 0
    cdef double *partial
    cdef floating delta = <floating>param
    if m <= 0:
        return <double>NAN
    if num_threads > 1 and nc > 1:
        partial = <double *>malloc(nc * sizeof(double))
        if partial != NULL:
            for c in prange(nc, num_threads=num_threads, schedule='static'):
                r0 = c * rows
                partial[c] = _loss_chunk(code, y_pred, y_true, labels, weight, grad, r0,
                                         min(r0 + rows, m), m, n, from_logits, delta, probs)
            for c in range(nc):
                total += partial[c]
            free(partial)
            return total / m
    # Serially: the same chunks, added in the same order.
    for c in range(nc):
        r0 = c * rows
        total += _loss_chunk(code, y_pred, y_true, labels, weight, grad, r0,
                             min(r0 + rows, m), m, n, from_logits, delta, probs)
    return total / m


# ---------------------------------------------------------------------------
# Reductions over whole arrays (norms, penalties)
# ---------------------------------------------------------------------------

cdef inline double _sum_sq_chunk(const floating *x, Py_ssize_t n) noexcept nogil:
    # Four running sums (a fixed order; breaks the add latency chain), then a tail.
    cdef Py_ssize_t i, n4 = n - n % 4
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    for i in range(0, n4, 4):
        s0 += <double>x[i] * x[i]
        s1 += <double>x[i + 1] * x[i + 1]
        s2 += <double>x[i + 2] * x[i + 2]
        s3 += <double>x[i + 3] * x[i + 3]
    for i in range(n4, n):
        s0 += <double>x[i] * x[i]
    return (s0 + s1) + (s2 + s3)


cdef inline double _sum_abs_chunk(const floating *x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i, n4 = n - n % 4
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    for i in range(0, n4, 4):
        s0 += fabs(<double>x[i])
        s1 += fabs(<double>x[i + 1])
        s2 += fabs(<double>x[i + 2])
        s3 += fabs(<double>x[i + 3])
    for i in range(n4, n):
        s0 += fabs(<double>x[i])
    return (s0 + s1) + (s2 + s3)


cdef inline double _reduce(const floating *x, Py_ssize_t size, bint absolute,
                           int num_threads) noexcept nogil:
    """sum x^2 (or sum |x| when ``absolute``) over CHUNK-sized pieces added in order."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    cdef double total = 0
    cdef double *partial
    if num_threads > 1 and nc > 1:
        partial = <double *>malloc(nc * sizeof(double))
        if partial != NULL:
            for c in prange(nc, num_threads=num_threads, schedule='static'):
                start = c * CHUNK
                if absolute:
                    partial[c] = _sum_abs_chunk(x + start, min(<Py_ssize_t>CHUNK, size - start))
                else:
                    partial[c] = _sum_sq_chunk(x + start, min(<Py_ssize_t>CHUNK, size - start))
            for c in range(nc):
                total += partial[c]
            free(partial)
            return total
    for c in range(nc):
        start = c * CHUNK
        if absolute:
            total += _sum_abs_chunk(x + start, min(<Py_ssize_t>CHUNK, size - start))
        else:
            total += _sum_sq_chunk(x + start, min(<Py_ssize_t>CHUNK, size - start))
    return total


cdef inline double sum_squares(const floating *x, Py_ssize_t size, int num_threads) noexcept nogil:
    """sum x_i^2 in double (fixed chunk order)."""
    return _reduce(x, size, False, num_threads)


cdef inline double sum_abs(const floating *x, Py_ssize_t size, int num_threads) noexcept nogil:
    """sum |x_i| in double (fixed chunk order)."""
    return _reduce(x, size, True, num_threads)


# ---------------------------------------------------------------------------
# In-place element-wise updates: clipping, scaling, penalty gradients
# ---------------------------------------------------------------------------

cdef inline void _clip_chunk(floating *x, floating lo, floating hi, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        # NaN passes through, as numpy.clip
        if x[i] > hi:
            x[i] = hi
        elif x[i] < lo:
            x[i] = lo


cdef inline void clip_values(floating *x,   # INOUT (size,)
                             floating lo, floating hi, Py_ssize_t size,
                             int num_threads) noexcept nogil:
    """x = clip(x, lo, hi) in place."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    if num_threads <= 1 or nc <= 1:
        _clip_chunk(x, lo, hi, size)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _clip_chunk(x + start, lo, hi, min(<Py_ssize_t>CHUNK, size - start))


cdef inline void _scale_chunk(floating *x, floating a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        x[i] *= a


cdef inline void scale(floating *x,   # INOUT (size,)
                       floating a, Py_ssize_t size, int num_threads) noexcept nogil:
    """x *= a in place."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    if num_threads <= 1 or nc <= 1:
        _scale_chunk(x, a, size)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _scale_chunk(x + start, a, min(<Py_ssize_t>CHUNK, size - start))


cdef inline void _l1l2_grad_chunk(const floating *w, floating l1, floating l2, floating *g,
                                  Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if l1 != 0:
        for i in range(n):
            g[i] += l1 * _sign(w[i])
    if l2 != 0:
        for i in range(n):
            g[i] += 2 * l2 * w[i]


cdef inline void l1l2_grad(const floating *w,   # IN (size,)
                           floating l1, floating l2,
                           floating *grad,      # INOUT (size,)
                           Py_ssize_t size, int num_threads) noexcept nogil:
    """grad += l1 sign(w) + 2 l2 w in place."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    if num_threads <= 1 or nc <= 1:
        _l1l2_grad_chunk(w, l1, l2, grad, size)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _l1l2_grad_chunk(w + start, l1, l2, grad + start, min(<Py_ssize_t>CHUNK, size - start))


# ---------------------------------------------------------------------------
# Optimizer updates (torch.optim's single-tensor formulas), in place, one pass
# ---------------------------------------------------------------------------
# The element loops live in updates.h, stamped out for baseline x86-64 and for
# AVX and chosen at run time (bit-identical results: same IEEE operations in
# the same order, no FMA contraction). ``_<name>_piece`` updates n consecutive
# parameters; the drivers split the parameter into CHUNK pieces. Scalars arrive
# as double and are rounded to the parameter's type once, as NumPy does with a
# Python float and a float32 array. Weight decay: coupled adds wd * param to the
# gradient (torch's weight_decay); decoupled multiplies param by
# decay = 1 - lr * wd first (AdamW, Keras).

cdef extern from "updates.h" nogil:
    void fnn_sgd_f32(float *p, const float *g, float *buf, Py_ssize_t n, float lr,
                     float momentum, float one_minus_damp, float wd, float decay,
                     int use_momentum, int nesterov, int coupled, int first_step)
    void fnn_sgd_f64(double *p, const double *g, double *buf, Py_ssize_t n, double lr,
                     double momentum, double one_minus_damp, double wd, double decay,
                     int use_momentum, int nesterov, int coupled, int first_step)
    void fnn_adam_f32(float *p, const float *g, float *m, float *v, float *v_max,
                      Py_ssize_t n, float beta_1, float beta_2, float one_minus_b1,
                      float one_minus_b2, float step_size, float bc2_sqrt, float eps,
                      float wd, float decay, int coupled, int amsgrad)
    void fnn_adam_f64(double *p, const double *g, double *m, double *v, double *v_max,
                      Py_ssize_t n, double beta_1, double beta_2, double one_minus_b1,
                      double one_minus_b2, double step_size, double bc2_sqrt, double eps,
                      double wd, double decay, int coupled, int amsgrad)
    void fnn_rmsprop_f32(float *p, const float *g, float *sq, float *buf, float *gavg,
                         Py_ssize_t n, float lr, float rho, float one_minus_rho, float eps,
                         float momentum, float wd, float decay, int coupled, int centered,
                         int use_momentum)
    void fnn_rmsprop_f64(double *p, const double *g, double *sq, double *buf, double *gavg,
                         Py_ssize_t n, double lr, double rho, double one_minus_rho,
                         double eps, double momentum, double wd, double decay, int coupled,
                         int centered, int use_momentum)
    void fnn_adagrad_f32(float *p, const float *g, float *ss, Py_ssize_t n, float clr,
                         float eps, float wd, float decay, int coupled)
    void fnn_adagrad_f64(double *p, const double *g, double *ss, Py_ssize_t n, double clr,
                         double eps, double wd, double decay, int coupled)


cdef inline void _sgd_piece(floating *p, const floating *g, floating *buf, Py_ssize_t n,
                            floating lr, floating momentum, floating one_minus_damp,
                            floating wd, floating decay, bint use_momentum, bint nesterov,
                            bint coupled, bint first_step) noexcept nogil:
    if floating is float:
        fnn_sgd_f32(p, g, buf, n, lr, momentum, one_minus_damp, wd, decay, use_momentum,
                    nesterov, coupled, first_step)
    else:
        fnn_sgd_f64(p, g, buf, n, lr, momentum, one_minus_damp, wd, decay, use_momentum,
                    nesterov, coupled, first_step)


cdef inline void sgd_update(floating *param,           # INOUT (size,)
                            const floating *grad,      # IN (size,)
                            floating *velocity,        # INOUT (size,); NULL if momentum == 0
                            Py_ssize_t size, double lr, double momentum, double dampening,
                            bint nesterov, double weight_decay, bint decoupled,
                            bint first_step, int num_threads) noexcept nogil:
    """SGD with (Nesterov) momentum: param -= lr * g."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    cdef floating wd = 0, decay = 1
    cdef bint coupled = weight_decay != 0 and not decoupled
    if weight_decay != 0:
        if decoupled:
            decay = <floating>(1 - lr * weight_decay)
        else:
            wd = <floating>weight_decay
    if num_threads <= 1 or nc <= 1:
        _sgd_piece(param, grad, velocity, size, <floating>lr, <floating>momentum,
                   <floating>(1 - dampening), wd, decay, momentum != 0, nesterov, coupled,
                   first_step)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _sgd_piece(param + start, grad + start, (velocity + start) if velocity != NULL else NULL,
                   min(<Py_ssize_t>CHUNK, size - start), <floating>lr, <floating>momentum,
                   <floating>(1 - dampening), wd, decay, momentum != 0, nesterov, coupled,
                   first_step)


cdef inline void _adam_piece(floating *p, const floating *g, floating *m, floating *v,
                             floating *v_max, Py_ssize_t n, floating beta_1, floating beta_2,
                             floating one_minus_b1, floating one_minus_b2, floating step_size,
                             floating bc2_sqrt, floating eps, floating wd, floating decay,
                             bint coupled, bint amsgrad) noexcept nogil:
    if floating is float:
        fnn_adam_f32(p, g, m, v, v_max, n, beta_1, beta_2, one_minus_b1, one_minus_b2,
                     step_size, bc2_sqrt, eps, wd, decay, coupled, amsgrad)
    else:
        fnn_adam_f64(p, g, m, v, v_max, n, beta_1, beta_2, one_minus_b1, one_minus_b2,
                     step_size, bc2_sqrt, eps, wd, decay, coupled, amsgrad)


cdef inline void adam_update(floating *param,        # INOUT (size,)
                             const floating *grad,   # IN (size,)
                             floating *m,            # INOUT (size,) first moment
                             floating *v,            # INOUT (size,) second moment
                             floating *v_max,        # INOUT (size,) amsgrad only, else NULL
                             Py_ssize_t size, double lr, double beta_1, double beta_2,
                             double epsilon, long step, double weight_decay, bint decoupled,
                             bint amsgrad, int num_threads) noexcept nogil:
    """Adam / AdamW / AMSGrad step number ``step`` (from 1)."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    cdef floating wd = 0, decay = 1
    cdef bint coupled = weight_decay != 0 and not decoupled
    cdef floating step_size = <floating>(lr / (1 - beta_1 ** step))
    cdef floating bc2_sqrt = <floating>sqrt(1 - beta_2 ** step)
    if weight_decay != 0:
        if decoupled:
            decay = <floating>(1 - lr * weight_decay)
        else:
            wd = <floating>weight_decay
    if num_threads <= 1 or nc <= 1:
        _adam_piece(param, grad, m, v, v_max, size, <floating>beta_1, <floating>beta_2,
                    <floating>(1 - beta_1), <floating>(1 - beta_2), step_size, bc2_sqrt,
                    <floating>epsilon, wd, decay, coupled, amsgrad)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _adam_piece(param + start, grad + start, m + start, v + start,
                    (v_max + start) if v_max != NULL else NULL,
                    min(<Py_ssize_t>CHUNK, size - start), <floating>beta_1, <floating>beta_2,
                    <floating>(1 - beta_1), <floating>(1 - beta_2), step_size, bc2_sqrt,
                    <floating>epsilon, wd, decay, coupled, amsgrad)


cdef inline void _rmsprop_piece(floating *p, const floating *g, floating *sq, floating *buf,
                                floating *gavg, Py_ssize_t n, floating lr, floating rho,
                                floating one_minus_rho, floating eps, floating momentum,
                                floating wd, floating decay, bint coupled, bint centered,
                                bint use_momentum) noexcept nogil:
    if floating is float:
        fnn_rmsprop_f32(p, g, sq, buf, gavg, n, lr, rho, one_minus_rho, eps, momentum, wd,
                        decay, coupled, centered, use_momentum)
    else:
        fnn_rmsprop_f64(p, g, sq, buf, gavg, n, lr, rho, one_minus_rho, eps, momentum, wd,
                        decay, coupled, centered, use_momentum)


cdef inline void rmsprop_update(floating *param,          # INOUT (size,)
                                const floating *grad,     # IN (size,)
                                floating *square_avg,     # INOUT (size,)
                                floating *momentum_buf,   # INOUT (size,) if momentum > 0, else NULL
                                floating *grad_avg,       # INOUT (size,) if centered, else NULL
                                Py_ssize_t size, double lr, double rho, double epsilon,
                                double momentum, bint centered, double weight_decay,
                                bint decoupled, int num_threads) noexcept nogil:
    """RMSprop: divide the gradient by a running root mean square of its history."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    cdef floating wd = 0, decay = 1
    cdef bint coupled = weight_decay != 0 and not decoupled
    if weight_decay != 0:
        if decoupled:
            decay = <floating>(1 - lr * weight_decay)
        else:
            wd = <floating>weight_decay
    if num_threads <= 1 or nc <= 1:
        _rmsprop_piece(param, grad, square_avg, momentum_buf, grad_avg, size, <floating>lr,
                       <floating>rho, <floating>(1 - rho), <floating>epsilon,
                       <floating>momentum, wd, decay, coupled, centered, momentum > 0)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _rmsprop_piece(param + start, grad + start, square_avg + start,
                       (momentum_buf + start) if momentum_buf != NULL else NULL,
                       (grad_avg + start) if grad_avg != NULL else NULL,
                       min(<Py_ssize_t>CHUNK, size - start), <floating>lr, <floating>rho,
                       <floating>(1 - rho), <floating>epsilon, <floating>momentum, wd, decay,
                       coupled, centered, momentum > 0)


cdef inline void _adagrad_piece(floating *p, const floating *g, floating *ss, Py_ssize_t n,
                                floating clr, floating eps, floating wd, floating decay,
                                bint coupled) noexcept nogil:
    if floating is float:
        fnn_adagrad_f32(p, g, ss, n, clr, eps, wd, decay, coupled)
    else:
        fnn_adagrad_f64(p, g, ss, n, clr, eps, wd, decay, coupled)


cdef inline void adagrad_update(floating *param,       # INOUT (size,)
                                const floating *grad,  # IN (size,)
                                floating *sum_sq,      # INOUT (size,)
                                Py_ssize_t size, double lr, double epsilon, long step,
                                double lr_decay, double weight_decay, bint decoupled,
                                int num_threads) noexcept nogil:
    """Adagrad: param -= clr g / (sqrt(sum g^2) + eps), clr = lr / (1 + (step - 1) lr_decay)."""
    cdef Py_ssize_t c, start, nc = n_chunks(size, CHUNK)
    cdef floating wd = 0, decay = 1
    cdef bint coupled = weight_decay != 0 and not decoupled
    cdef floating clr = <floating>(lr / (1 + (step - 1) * lr_decay))
    if weight_decay != 0:
        if decoupled:
            decay = <floating>(1 - lr * weight_decay)
        else:
            wd = <floating>weight_decay
    if num_threads <= 1 or nc <= 1:
        _adagrad_piece(param, grad, sum_sq, size, clr, <floating>epsilon, wd, decay, coupled)
        return
    for c in prange(nc, num_threads=num_threads, schedule='static'):
        start = c * CHUNK
        _adagrad_piece(param + start, grad + start, sum_sq + start,
                       min(<Py_ssize_t>CHUNK, size - start), clr, <floating>epsilon, wd, decay,
                       coupled)
