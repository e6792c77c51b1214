"""Python entry to fastnn's own GEMM (csrc/gemm.c), built as ``fastnn._gemm_binding``.

A thin layer: it checks what would otherwise crash the C code (dtype, rank,
shapes, strides, writability), makes unit-stride copies where needed, releases
the GIL and calls ``fnn_sgemm`` / ``fnn_dgemm``. Callers (the fast backend,
benchmarks) have validated user input already, so the checks here are the cheap
ones that keep a wrong call from reading or writing out of bounds.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t, uintptr_t

from gemm cimport (fnn_dgemm_part, fnn_dgemm_rows, fnn_gemm_kernel_name, fnn_sgemm_part,
                   fnn_sgemm_rows)

cdef extern from *:
    """
    /* Defined in gemm.c; private (not in gemm.h), for tests: pin a micro-kernel,
     * and forget the busy-machine back-off (a no-op without OpenMP). */
    int fnn_gemm_set_kernel(const char *name);
    #ifdef _OPENMP
    void fnn_gemm_reset_backoff(void);
    void fnn_gemm_backoff_state(int *solo_calls, int *span, int *last_stalled);
    #else
    static void fnn_gemm_reset_backoff(void) {}
    static void fnn_gemm_backoff_state(int *solo_calls, int *span, int *last_stalled) {
        *solo_calls = 0; *span = 0; *last_stalled = 0;
    }
    #endif
    """
    int fnn_gemm_set_kernel(const char *name)
    void fnn_gemm_reset_backoff()
    void fnn_gemm_backoff_state(int *solo_calls, int *span, int *last_stalled)

cnp.import_array()

# Activation codes accepted by the epilogue: fastnn.backends.ACTIVATION_CODES.
cdef enum:
    _MAX_ACT_CODE = 11


cdef inline bint _rows_usable(cnp.ndarray x):
    """True if x is a 2-D array the C code can read as (pointer, row stride)."""
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(x)
    cdef cnp.npy_intp *st = cnp.PyArray_STRIDES(x)
    cdef cnp.npy_intp *sh = cnp.PyArray_DIMS(x)
    if not cnp.PyArray_ISALIGNED(x):
        return False
    if sh[1] > 1 and st[1] != item:
        return False
    return sh[0] <= 1 or st[0] % item == 0


cdef inline Py_ssize_t _row_stride(cnp.ndarray x):
    """Row stride in elements (any value when there is a single row)."""
    if cnp.PyArray_DIMS(x)[0] <= 1:
        return cnp.PyArray_DIMS(x)[1]
    return cnp.PyArray_STRIDES(x)[0] // cnp.PyArray_ITEMSIZE(x)


cdef inline void _extent(cnp.ndarray x, uintptr_t *lo, uintptr_t *hi):
    """Byte range [lo, hi) that x's elements can occupy (np.may_share_memory's bound)."""
    cdef uintptr_t start = <uintptr_t>cnp.PyArray_DATA(x)
    cdef Py_ssize_t low = 0, high = cnp.PyArray_ITEMSIZE(x), d, step
    cdef int ax
    for ax in range(cnp.PyArray_NDIM(x)):
        d = cnp.PyArray_DIMS(x)[ax]
        if d == 0:
            lo[0] = hi[0] = start
            return
        step = cnp.PyArray_STRIDES(x)[ax] * (d - 1)
        if step < 0:
            low += step
        else:
            high += step
    lo[0] = start + low
    hi[0] = start + high


cdef inline bint _may_overlap(cnp.ndarray x, cnp.ndarray y):
    cdef uintptr_t xl, xh, yl, yh
    _extent(x, &xl, &xh)
    _extent(y, &yl, &yh)
    return xl < yh and yl < xh and xl < xh and yl < yh


cdef inline object typenum_to_dtype(int typenum):
    return np.float32 if typenum == cnp.NPY_FLOAT32 else np.float64


cdef inline cnp.ndarray _check_matrix(object x, str name, int typenum):
    if not isinstance(x, cnp.ndarray):
        raise TypeError(f"gemm: {name} must be a numpy.ndarray, got {type(x).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>x
    if cnp.PyArray_NDIM(arr) != 2:
        raise ValueError(f"gemm: {name} must be 2-D, got shape {(<object>arr).shape}")
    if cnp.PyArray_TYPE(arr) != typenum:
        raise ValueError(f"gemm: {name} must have dtype {np.dtype(typenum_to_dtype(typenum))}, "
                         f"got {arr.dtype}")
    return arr


cdef cnp.ndarray _check_rows(rows, Py_ssize_t count):
    """``rows`` as a contiguous int64 vector of row numbers below ``count``."""
    if not isinstance(rows, cnp.ndarray):
        raise TypeError(f"gemm: a_rows must be a numpy.ndarray, got {type(rows).__name__}")
    if rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise ValueError(f"gemm: a_rows must be a 1-D integer array, got {rows.dtype} "
                         f"of shape {rows.shape}")
    cdef cnp.ndarray r = np.ascontiguousarray(rows, dtype=np.int64)
    if r.shape[0] and (r.min() < 0 or r.max() >= count):
        raise ValueError(f"gemm: a_rows must lie in [0, {count}) (the rows of a)")
    return r


def gemm(a, b, bint trans_a=False, bint trans_b=False, double alpha=1.0, double beta=0.0,
         out=None, bias=None, int activation=0, double param=0.0, preact=None,
         int num_threads=1, a_rows=None, part=None):
    """``out = act(alpha * op(a) @ op(b) + beta * out + bias)`` with fastnn's GEMM.

    Parameters
    ----------
    a, b : ndarray, 2-D, both float32 or both float64
        ``op(a)`` is ``a.T`` when ``trans_a`` (shape (m, k)), ``op(b)`` is ``b.T``
        when ``trans_b`` (shape (k, n)).
    trans_a, trans_b : bool
    alpha, beta : float
        ``out`` is read only when ``beta != 0`` and ``out`` is given.
    out : ndarray (m, n), optional
        Written and returned; allocated (C order) when None.
    bias : ndarray (n,), optional
        Added to every row before the activation.
    activation : int
        Code from ``fastnn.backends.ACTIVATION_CODES``; softmax codes act as linear.
    param : float
        The activation's parameter (leaky_relu slope, elu alpha).
    preact : ndarray (m, n), optional
        Receives the values before the activation.
    num_threads : int
        Upper bound on the threads used (small products use fewer).
    a_rows : array of int, 1-D, optional
        Use ``a[a_rows]`` in place of ``a`` (read where the rows lie, without a
        gathered copy, when ``a`` is not transposed and the product is small);
        the result is bit-identical to passing ``a[a_rows]``.
    part : (int, int), optional
        Compute only rows ``part[0]:part[1]`` of the result, on the calling
        thread, bit-identical to those rows of the whole product (the part a
        thread of a team computes; ``fnn_?gemm_part`` in csrc/gemm.h). The other
        rows of ``out`` are left as they are (zeros when ``out`` is None).

    Returns
    -------
    ndarray
        ``out``.
    """
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"gemm: a must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray A = <cnp.ndarray>a
    cdef int typenum = cnp.PyArray_TYPE(A)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise ValueError(f"gemm: a must have dtype float32 or float64, got {A.dtype}")
    if cnp.PyArray_NDIM(A) != 2:
        raise ValueError(f"gemm: a must be 2-D, got shape {(<object>A).shape}")
    cdef cnp.ndarray B = _check_matrix(b, "b", typenum)
    if activation < 0 or activation > _MAX_ACT_CODE:
        raise ValueError(f"gemm: activation must be a code in 0..{_MAX_ACT_CODE}, got {activation}")

    cdef Py_ssize_t m, k, kb, n
    if trans_a:
        k, m = cnp.PyArray_DIMS(A)[0], cnp.PyArray_DIMS(A)[1]
    else:
        m, k = cnp.PyArray_DIMS(A)[0], cnp.PyArray_DIMS(A)[1]
    cdef cnp.ndarray Rows = None
    if a_rows is not None:
        Rows = _check_rows(a_rows, cnp.PyArray_DIMS(A)[0])
        if trans_a:
            k = cnp.PyArray_DIMS(Rows)[0]
        else:
            m = cnp.PyArray_DIMS(Rows)[0]
    if trans_b:
        n, kb = cnp.PyArray_DIMS(B)[0], cnp.PyArray_DIMS(B)[1]
    else:
        kb, n = cnp.PyArray_DIMS(B)[0], cnp.PyArray_DIMS(B)[1]
    if k != kb:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is ({m}, {k}), "
                         f"op(b) is ({kb}, {n})")

    cdef Py_ssize_t r0 = 0, r1 = m
    if part is not None:
        try:
            r0, r1 = part
        except (TypeError, ValueError):
            raise TypeError(f"gemm: part must be a pair of ints (r0, r1), got {part!r}") from None
        if not 0 <= r0 <= r1 <= m:
            raise ValueError(f"gemm: part must satisfy 0 <= r0 <= r1 <= {m}, got {part!r}")

    cdef cnp.npy_intp dims[2]
    dims[0] = m
    dims[1] = n
    cdef cnp.ndarray C, Cuser = None, Bias = None, P = None, Puser = None
    if out is None:
        C = cnp.PyArray_ZEROS(2, dims, typenum, 0) if part is not None else cnp.PyArray_EMPTY(2, dims, typenum, 0)
        beta = 0.0  # nothing to read
    else:
        C = _check_matrix(out, "out", typenum)
        if cnp.PyArray_DIMS(C)[0] != m or cnp.PyArray_DIMS(C)[1] != n:
            raise ValueError(f"gemm: out must have shape ({m}, {n}), got {(<object>C).shape}")
        if not cnp.PyArray_ISWRITEABLE(C):
            raise ValueError("gemm: out is read-only")
        if not _rows_usable(C) or (m > 1 and _row_stride(C) < n):
            # Compute into a C-ordered buffer and copy back (rare: strided views).
            Cuser = C
            C = np.array(Cuser, order="C") if beta != 0.0 else cnp.PyArray_EMPTY(2, dims, typenum, 0)
    if m == 0 or n == 0:
        return out if out is not None else C

    if bias is not None:
        if not isinstance(bias, cnp.ndarray):
            raise TypeError(f"gemm: bias must be a numpy.ndarray, got {type(bias).__name__}")
        Bias = <cnp.ndarray>bias
        if cnp.PyArray_NDIM(Bias) != 1 or cnp.PyArray_DIMS(Bias)[0] != n:
            raise ValueError(f"gemm: bias must have shape ({n},), got {(<object>Bias).shape}")
        if cnp.PyArray_TYPE(Bias) != typenum:
            raise ValueError(f"gemm: bias must have dtype {A.dtype}, got {Bias.dtype}")
        if not (cnp.PyArray_IS_C_CONTIGUOUS(Bias) and cnp.PyArray_ISALIGNED(Bias)):
            Bias = np.ascontiguousarray(Bias)
    if preact is not None:
        P = _check_matrix(preact, "preact", typenum)
        if cnp.PyArray_DIMS(P)[0] != m or cnp.PyArray_DIMS(P)[1] != n:
            raise ValueError(f"gemm: preact must have shape ({m}, {n}), got {(<object>P).shape}")
        if not cnp.PyArray_ISWRITEABLE(P):
            raise ValueError("gemm: preact is read-only")
        # The C code writes preact with C's row stride.
        if not _rows_usable(P) or (m > 1 and _row_stride(P) != _row_stride(C)):
            Puser = P
            P = cnp.PyArray_EMPTY(2, dims, typenum, 0)
            if m > 1 and _row_stride(P) != _row_stride(C):
                # C itself is a user array with padded rows: use a C-ordered result too.
                if Cuser is None:
                    Cuser = C
                    C = np.array(Cuser, order="C") if beta != 0.0 else cnp.PyArray_EMPTY(2, dims, typenum, 0)

    # Inputs: unit inner stride, and never the memory being written.
    if not _rows_usable(A) or _may_overlap(A, C) or (P is not None and _may_overlap(A, P)):
        A = np.array(A, order="C")
    if not _rows_usable(B) or _may_overlap(B, C) or (P is not None and _may_overlap(B, P)):
        B = np.array(B, order="C")
    if Bias is not None and (_may_overlap(Bias, C) or (P is not None and _may_overlap(Bias, P))):
        Bias = np.array(Bias)

    cdef Py_ssize_t lda = _row_stride(A), ldb = _row_stride(B), ldc = _row_stride(C)
    cdef void *pa = cnp.PyArray_DATA(A)
    cdef void *pb = cnp.PyArray_DATA(B)
    cdef void *pc = cnp.PyArray_DATA(C)
    cdef void *pbias = cnp.PyArray_DATA(Bias) if Bias is not None else NULL
    cdef void *pp = cnp.PyArray_DATA(P) if P is not None else NULL
    cdef const int64_t *prows = NULL
    if Rows is not None:
        prows = <const int64_t *>cnp.PyArray_DATA(Rows)
    if part is not None:
        if typenum == cnp.NPY_FLOAT32:
            with nogil:
                fnn_sgemm_part(trans_a, trans_b, m, n, k, <float>alpha, <const float *>pa, lda,
                               prows, <const float *>pb, ldb, <float>beta, <float *>pc, ldc,
                               <const float *>pbias, activation, <float>param, <float *>pp, r0, r1)
        else:
            with nogil:
                fnn_dgemm_part(trans_a, trans_b, m, n, k, alpha, <const double *>pa, lda, prows,
                               <const double *>pb, ldb, beta, <double *>pc, ldc,
                               <const double *>pbias, activation, param, <double *>pp, r0, r1)
    elif typenum == cnp.NPY_FLOAT32:
        with nogil:
            fnn_sgemm_rows(trans_a, trans_b, m, n, k, <float>alpha, <const float *>pa, lda, prows,
                           <const float *>pb, ldb, <float>beta, <float *>pc, ldc,
                           <const float *>pbias, activation, <float>param, <float *>pp,
                           num_threads)
    else:
        with nogil:
            fnn_dgemm_rows(trans_a, trans_b, m, n, k, alpha, <const double *>pa, lda, prows,
                           <const double *>pb, ldb, beta, <double *>pc, ldc,
                           <const double *>pbias, activation, param, <double *>pp, num_threads)

    if Puser is not None:
        Puser[...] = P
    if Cuser is not None:
        Cuser[...] = C
        return Cuser
    return C


def kernel_name():
    """Name of the micro-kernel in use: ``'avx2_fma'`` or ``'portable'``."""
    return fnn_gemm_kernel_name().decode("ascii")


def _set_kernel(name):
    """Pin the micro-kernel (``'portable'``, ``'avx2_fma'`` or ``'auto'``); for tests.

    Raises
    ------
    ValueError
        If that kernel cannot run on this CPU or the name is unknown.
    """
    if fnn_gemm_set_kernel(name.encode("ascii")) != 0:
        raise ValueError(f"_set_kernel: kernel {name!r} is unknown or unsupported here")


def _reset_thread_backoff():
    """Let the next small products use several threads again; for tests.

    After the threads of small products repeatedly fail to finish together
    (another process holds a CPU), they run on one thread for a while (see
    csrc/gemm.c). Results never
    depend on it; tests of the multi-threaded code call this first.
    """
    fnn_gemm_reset_backoff()


def _thread_backoff_state():
    """``(solo_calls, span, last_stalled)`` of the busy-machine back-off; for diagnostics."""
    cdef int solo_calls, span, last_stalled
    fnn_gemm_backoff_state(&solo_calls, &span, &last_stalled)
    return solo_calls, span, bool(last_stalled)
