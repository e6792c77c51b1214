"""Python entry to the fast backend's kernels (csrc/kernels.pxd), built as ``fastnn._kernels``.

Each function takes NumPy arrays, picks the float32 or float64 kernel, releases
the GIL and runs it with ``num_threads`` threads (the caller decides, through
``fastnn.config.threads_for``). ``fastnn.backends.fast.FastOps`` is the only
intended caller; the kernels themselves are ``cdef ... nogil`` functions in
kernels.pxd, which the fused training step cimports directly.

The wrappers are kept thin because they run per layer per training step:
arrays that are already C-contiguous, aligned and of the right dtype are used
as they are (checked with C macros, not NumPy attribute lookups); anything else
is copied once. What a wrong call could turn into an out-of-bounds access
(dtype, shape, size) is checked cheaply here; everything else is the caller's
contract (see fastnn/backends/__init__.py).

The in-place functions (optimizer updates, clipping, penalties' gradients)
return False without touching anything when an array cannot be updated in
place by a kernel (non-contiguous, wrong dtype, read-only); the caller then
runs the reference op.
"""
import numpy as np

cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint64_t

from kernels cimport (
    LOSS_BCE, LOSS_CCE, LOSS_HUBER, LOSS_MAE, LOSS_MSE, LOSS_SPARSE_CCE,
    act_backward, act_forward, adagrad_update as _adagrad, adam_update as _adam, all_finite_values,
    clip_values, dense_backward as _dense_backward, dense_forward as _dense_forward,
    fnn_exp_shift_f32, fnn_expf,
    l1l2_grad as _l1l2_grad, loss_rows, n_chunks, rmsprop_update as _rmsprop, scale as _scale,
    sgd_update as _sgd, softmax_backward_rows, softmax_rows, sum_abs, sum_squares as _sum_squares,
)
from gemm cimport FNN_ACT_LINEAR, FNN_ACT_LOG_SOFTMAX, FNN_ACT_SOFTMAX

cdef extern from "philox.h" nogil:
    void fnn_philox_words(uint64_t k0, uint64_t k1, uint64_t start, size_t n, uint64_t *out)
    void fnn_philox_uniform(uint64_t k0, uint64_t k1, uint64_t start, size_t n, double *out)
    void fnn_philox_permutation(uint64_t k0, uint64_t k1, uint64_t start, int64_t n, int64_t *out)

cnp.import_array()

__all__ = [
    "LOSS_CODES", "activation", "activation_backward", "dense_forward", "dense_backward",
    "loss", "sgd_update", "adam_update", "rmsprop_update", "adagrad_update",
    "clip_by_value", "scale", "sum_squares", "l1l2_penalty", "l1l2_grad", "all_finite",
    "philox_words", "philox_uniform", "philox_permutation", "exp_float32",
]

#: Loss names of the backend interface -> codes of kernels.pxd's ``loss_rows``.
LOSS_CODES = {
    "mean_squared_error": LOSS_MSE,
    "mean_absolute_error": LOSS_MAE,
    "huber": LOSS_HUBER,
    "binary_crossentropy": LOSS_BCE,
    "categorical_crossentropy": LOSS_CCE,
    "sparse_categorical_crossentropy": LOSS_SPARSE_CCE,
}

cdef int _MAX_ACT_CODE = 11


# ---------------------------------------------------------------------------
# Array helpers (C-level checks, copies only when needed)
# ---------------------------------------------------------------------------

cdef inline int _float_typenum(object x, str name) except -1:
    """NPY_FLOAT32 or NPY_FLOAT64 for x, or TypeError."""
    cdef int t
    if isinstance(x, cnp.ndarray):
        t = cnp.PyArray_TYPE(<cnp.ndarray>x)
        if t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64:
            return t
    raise TypeError(f"{name} must be a float32 or float64 numpy array, "
                    f"got {getattr(x, 'dtype', type(x).__name__)}")


cdef inline object _dtype(int typenum):
    return np.float32 if typenum == cnp.NPY_FLOAT32 else np.float64


cdef inline bint _is_direct(object a, int typenum):
    """True if a can be read by a kernel as is: ndarray, dtype, C order, aligned."""
    cdef cnp.ndarray arr
    if not isinstance(a, cnp.ndarray):
        return False
    arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_IS_C_CONTIGUOUS(arr)
            and cnp.PyArray_ISALIGNED(arr))


cdef inline cnp.ndarray _c(object a, int typenum):
    """a as a C-contiguous aligned array of ``typenum`` (a itself when it already is)."""
    if _is_direct(a, typenum):
        return <cnp.ndarray>a
    return np.ascontiguousarray(a, dtype=_dtype(typenum))


cdef inline bint _is_writable_direct(object a, int typenum, Py_ssize_t size):
    """True if a kernel can write a's ``size`` elements in place."""
    return (_is_direct(a, typenum) and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a)
            and cnp.PyArray_SIZE(<cnp.ndarray>a) == size)


cdef inline cnp.ndarray _empty_like_shape(cnp.ndarray x, int typenum):
    return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), typenum, 0)


cdef inline cnp.ndarray _empty2(Py_ssize_t m, Py_ssize_t n, int typenum):
    cdef cnp.npy_intp dims[2]
    dims[0] = m
    dims[1] = n
    return cnp.PyArray_EMPTY(2, dims, typenum, 0)


cdef inline void _check_size(cnp.ndarray a, Py_ssize_t size, str name) except *:
    if cnp.PyArray_SIZE(a) != size:
        raise ValueError(f"{name} must have {size} elements, got shape {(<object>a).shape}")


cdef inline cnp.ndarray _target(object out, cnp.ndarray like, int typenum, str name):
    """The array a kernel should write: ``out`` itself when it is directly usable,
    else a fresh array (copied into ``out`` afterwards by the caller)."""
    if out is None:
        return _empty_like_shape(like, typenum)
    if not isinstance(out, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    _check_size(<cnp.ndarray>out, cnp.PyArray_SIZE(like), name)
    if _is_writable_direct(out, typenum, cnp.PyArray_SIZE(like)):
        return <cnp.ndarray>out
    return _empty_like_shape(like, typenum)


cdef inline cnp.ndarray _target2(object out, Py_ssize_t m, Py_ssize_t n, int typenum, str name):
    """As :func:`_target`, for an (m, n) result."""
    if out is None:
        return _empty2(m, n, typenum)
    if not isinstance(out, cnp.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    _check_size(<cnp.ndarray>out, m * n, name)
    if _is_writable_direct(out, typenum, m * n):
        return <cnp.ndarray>out
    return _empty2(m, n, typenum)


cdef inline bint _needs_y(int code):
    """True if the derivative of activation ``code`` is computed from its output y
    (the others use the input x: relu, leaky_relu, softplus, gelu, gelu_tanh)."""
    return code == 2 or code == 3 or code == 4 or code == 6 or code == 10 or code == 11


cdef inline bint _needs_x(int code):
    """True if the derivative of activation ``code`` needs its input (gelu, gelu_tanh)."""
    return code == 8 or code == 9


cdef inline object _deliver(object out, cnp.ndarray result):
    """Return ``result``, copying it into ``out`` when the kernel could not write there."""
    if out is None or out is result:
        return result
    out[...] = result.reshape((<object>out).shape)
    return out


cdef struct Mat:
    # A 2-D operand as the GEMM reads it: row-major storage with row stride
    # ``ld``; ``trans`` when the logical matrix is the transpose of that storage.
    void *data
    Py_ssize_t ld
    bint trans


cdef cnp.ndarray _matrix(object a, int typenum, str name, Mat *mat):
    """Describe 2-D array ``a`` for the GEMM without copying when its layout
    allows (C order, row-strided views, transposed views); returns the array
    that owns the memory (a copy if one was needed)."""
    if not isinstance(a, cnp.ndarray) or cnp.PyArray_NDIM(<cnp.ndarray>a) != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {np.shape(a)}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_ISALIGNED(arr):
        arr = np.ascontiguousarray(arr, dtype=_dtype(typenum))
    cdef Py_ssize_t item = cnp.PyArray_ITEMSIZE(arr)
    cdef Py_ssize_t rows = cnp.PyArray_DIMS(arr)[0], cols = cnp.PyArray_DIMS(arr)[1]
    cdef Py_ssize_t s0 = cnp.PyArray_STRIDES(arr)[0], s1 = cnp.PyArray_STRIDES(arr)[1]
    mat.data = cnp.PyArray_DATA(arr)
    if (cols <= 1 or s1 == item) and (rows <= 1 or (s0 > 0 and s0 % item == 0 and s0 // item >= cols)):
        mat.trans = False
        mat.ld = s0 // item if rows > 1 else max(cols, 1)
        return arr
    if (rows <= 1 or s0 == item) and (cols <= 1 or (s1 > 0 and s1 % item == 0 and s1 // item >= rows)):
        mat.trans = True
        mat.ld = s1 // item if cols > 1 else max(rows, 1)
        return arr
    arr = np.ascontiguousarray(arr)
    mat.data = cnp.PyArray_DATA(arr)
    mat.trans = False
    mat.ld = max(cols, 1)
    return arr


cdef inline bint _rowwise(int code):
    return code == FNN_ACT_SOFTMAX or code == FNN_ACT_LOG_SOFTMAX


cdef inline void _check_code(int code) except *:
    if code < 0 or code > _MAX_ACT_CODE:
        raise ValueError(f"activation code must be in 0..{_MAX_ACT_CODE}, got {code}")


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

def activation(x, int code, double param=0.0, out=None, int num_threads=1):
    """y = f(x) for activation ``code``; softmax codes work along the last axis.

    Parameters
    ----------
    x : ndarray of float32 or float64                     # IN
    code : int
        ``fastnn.backends.ACTIVATION_CODES`` value.
    param : float
        leaky_relu slope or elu alpha.
    out : ndarray, optional                               # OUT
    num_threads : int

    Returns
    -------
    ndarray
        ``out`` if given, else a new C-contiguous array.
    """
    cdef int t = _float_typenum(x, "x")
    _check_code(code)
    cdef cnp.ndarray X = _c(x, t)
    cdef cnp.ndarray Y = _target(out, X, t, "out")
    cdef Py_ssize_t size = cnp.PyArray_SIZE(X), n, m
    cdef void *px = cnp.PyArray_DATA(X)
    cdef void *py = cnp.PyArray_DATA(Y)
    if _rowwise(code):
        n = cnp.PyArray_DIMS(X)[cnp.PyArray_NDIM(X) - 1] if cnp.PyArray_NDIM(X) > 0 else 1
        m = size // n if n > 0 else 0
        with nogil:
            if t == cnp.NPY_FLOAT32:
                softmax_rows(<float *>px, <float *>py, m, n, code == FNN_ACT_LOG_SOFTMAX, num_threads)
            else:
                softmax_rows(<double *>px, <double *>py, m, n, code == FNN_ACT_LOG_SOFTMAX, num_threads)
    else:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                act_forward(code, <float>param, <float *>px, <float *>py, size, num_threads)
            else:
                act_forward(code, param, <double *>px, <double *>py, size, num_threads)
    return _deliver(out, Y)


def activation_backward(grad_y, x, y, int code, double param=0.0, out=None, int num_threads=1):
    """grad_x = grad_y * f'(x) (softmax codes: the row-wise Jacobian product).

    Parameters
    ----------
    grad_y : ndarray                                      # IN
    x : ndarray or None                                   # IN, the activation's input
        Needed by gelu and gelu_tanh only; when given, sign tests use it.
    y : ndarray or None                                   # IN, the activation's output
        Needed by all but linear, relu, leaky_relu, gelu, gelu_tanh (computed from
        x when None).
    code, param, num_threads
        As for :func:`activation`.
    out : ndarray, optional                               # OUT

    Returns
    -------
    ndarray
    """
    cdef int t = _float_typenum(grad_y, "grad_y")
    _check_code(code)
    cdef cnp.ndarray G = _c(grad_y, t)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(G), n, m
    cdef cnp.ndarray X = None, Y = None
    if x is not None:
        X = _c(x, t)
        _check_size(X, size, "x")
    if _needs_x(code) and X is None:
        raise ValueError("activation_backward: gelu needs the input x")
    if y is None and X is not None and _needs_y(code):
        y = activation(X, code, param, None, num_threads)
    if y is not None:
        Y = _c(y, t)
        _check_size(Y, size, "y")
    elif X is not None:
        Y = X  # not read: the derivative uses x
    elif code == FNN_ACT_LINEAR:
        Y = G  # not read
    else:
        raise ValueError("activation_backward: needs y or x")
    cdef cnp.ndarray R = _target(out, G, t, "out")
    cdef void *pg = cnp.PyArray_DATA(G)
    cdef void *px = cnp.PyArray_DATA(X) if X is not None else NULL
    cdef void *py = cnp.PyArray_DATA(Y)
    cdef void *pr = cnp.PyArray_DATA(R)
    if _rowwise(code):
        n = cnp.PyArray_DIMS(G)[cnp.PyArray_NDIM(G) - 1] if cnp.PyArray_NDIM(G) > 0 else 1
        m = size // n if n > 0 else 0
        with nogil:
            if t == cnp.NPY_FLOAT32:
                softmax_backward_rows(<float *>pg, <float *>py, <float *>pr, m, n,
                                      code == FNN_ACT_LOG_SOFTMAX, num_threads)
            else:
                softmax_backward_rows(<double *>pg, <double *>py, <double *>pr, m, n,
                                      code == FNN_ACT_LOG_SOFTMAX, num_threads)
    else:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                act_backward(code, <float>param, <float *>pg, <float *>px, <float *>py,
                             <float *>pr, size, num_threads)
            else:
                act_backward(code, param, <double *>pg, <double *>px, <double *>py,
                             <double *>pr, size, num_threads)
    return _deliver(out, R)


# ---------------------------------------------------------------------------
# Dense layer
# ---------------------------------------------------------------------------

def dense_forward(x, kernel, bias, int code, double param=0.0, out=None, preact_out=None,
                  int num_threads=1):
    """y = act(x @ kernel + bias) by one GEMM with a bias + activation epilogue.

    Parameters
    ----------
    x : ndarray (m, k)                                    # IN
    kernel : ndarray (k, n)                               # IN (transposed views are read in place)
    bias : ndarray (n,) or None                           # IN
    code, param
        Activation code and parameter.
    out : ndarray (m, n), optional                        # OUT
    preact_out : ndarray (m, n), optional                 # OUT, x @ kernel + bias
    num_threads : int

    Returns
    -------
    ndarray (m, n)
    """
    cdef int t = _float_typenum(x, "x")
    _check_code(code)
    cdef Mat mx, mw
    cdef cnp.ndarray X = _matrix(x, t, "x", &mx)
    cdef cnp.ndarray W = _matrix(kernel, t, "kernel", &mw)
    cdef Py_ssize_t m = cnp.PyArray_DIMS(X)[0], k = cnp.PyArray_DIMS(X)[1]
    cdef Py_ssize_t n = cnp.PyArray_DIMS(W)[1]
    if cnp.PyArray_DIMS(W)[0] != k:
        raise ValueError(f"dense_forward: x is ({m}, {k}) but kernel is {(<object>W).shape}")
    cdef cnp.ndarray B = None
    if bias is not None:
        B = _c(bias, t)
        _check_size(B, n, "bias")
    cdef cnp.ndarray Y = _target2(out, m, n, t, "out")
    cdef cnp.ndarray P = None
    if preact_out is not None:
        P = _target2(preact_out, m, n, t, "preact_out")
    cdef void *pb = cnp.PyArray_DATA(B) if B is not None else NULL
    cdef void *pp = cnp.PyArray_DATA(P) if P is not None else NULL
    cdef void *py = cnp.PyArray_DATA(Y)
    if m > 0 and n > 0:
        with nogil:
            if t == cnp.NPY_FLOAT32:
                _dense_forward(<float *>mx.data, mx.ld, mx.trans, NULL, <float *>mw.data, mw.ld,
                               mw.trans, <float *>pb, code, <float>param, <float *>py,
                               <float *>pp, m, k, n, num_threads)
            else:
                _dense_forward(<double *>mx.data, mx.ld, mx.trans, NULL, <double *>mw.data, mw.ld,
                               mw.trans, <double *>pb, code, param, <double *>py, <double *>pp,
                               m, k, n, num_threads)
    if P is not None and P is not preact_out:
        preact_out[...] = P.reshape((<object>preact_out).shape)
    return _deliver(out, Y)


def dense_backward(grad_y, x, kernel, y, preact, int code, double param=0.0, grad_kernel=None,
                   grad_bias=None, bint need_input_grad=True, bint accumulate=False,
                   int num_threads=1):
    """Back through y = act(x @ kernel + bias).

    dz = grad_y * act'(preact, y) (softmax: the Jacobian product) and
    grad_bias (= or +=) dz.sum(0) in one pass; grad_kernel (= or +=) x.T @ dz and
    grad_x = dz @ kernel.T by the GEMM.

    Parameters
    ----------
    grad_y : ndarray (m, n)                               # IN
    x : ndarray (m, k)                                    # IN
    kernel : ndarray (k, n)                               # IN
    y : ndarray (m, n)                                    # IN, the forward output
    preact : ndarray (m, n) or None                       # IN, needed by gelu only
    code, param
        Activation code and parameter.
    grad_kernel : ndarray (k, n), optional                # OUT (INOUT if accumulate)
    grad_bias : ndarray (n,), optional                    # OUT (INOUT if accumulate)
    need_input_grad : bool
    accumulate : bool
    num_threads : int

    Returns
    -------
    ndarray (m, k) or None
        grad_x when ``need_input_grad``.
    """
    cdef int t = _float_typenum(grad_y, "grad_y")
    _check_code(code)
    cdef Mat mx, mw, mgw
    cdef cnp.ndarray G = _c(grad_y, t)
    if cnp.PyArray_NDIM(G) != 2:
        raise ValueError(f"grad_y must be 2-D, got shape {(<object>G).shape}")
    cdef Py_ssize_t m = cnp.PyArray_DIMS(G)[0], n = cnp.PyArray_DIMS(G)[1]
    cdef cnp.ndarray X = _matrix(x, t, "x", &mx)
    cdef Py_ssize_t k = cnp.PyArray_DIMS(X)[1]
    if cnp.PyArray_DIMS(X)[0] != m:
        raise ValueError(f"dense_backward: grad_y has {m} rows but x has {cnp.PyArray_DIMS(X)[0]}")
    cdef cnp.ndarray W = _matrix(kernel, t, "kernel", &mw)
    if cnp.PyArray_DIMS(W)[0] != k or cnp.PyArray_DIMS(W)[1] != n:
        raise ValueError(f"dense_backward: kernel must be ({k}, {n}), got {(<object>W).shape}")
    cdef cnp.ndarray Y = None, Z = None, DZ = None, GW = None, GB = None, GX = None
    if y is not None:
        Y = _c(y, t)
        _check_size(Y, m * n, "y")
    if preact is not None:
        Z = _c(preact, t)
        _check_size(Z, m * n, "preact")
    if (Y is None and (_needs_y(code) or (Z is None and code != FNN_ACT_LINEAR))) or \
            (Z is None and _needs_x(code)):
        raise ValueError("dense_backward: this activation needs "
                         + ("preact" if _needs_x(code) else "y"))
    if Y is None:
        Y = Z if Z is not None else G  # not read
    if code != FNN_ACT_LINEAR:
        DZ = _empty2(m, n, t)
    mgw.data = NULL
    mgw.ld = n
    mgw.trans = False
    if grad_kernel is not None:
        GW = _matrix(grad_kernel, t, "grad_kernel", &mgw)
        if cnp.PyArray_DIMS(GW)[0] != k or cnp.PyArray_DIMS(GW)[1] != n:
            raise ValueError(f"grad_kernel must be ({k}, {n}), got {(<object>GW).shape}")
        if GW is not grad_kernel or not cnp.PyArray_ISWRITEABLE(GW):
            # Not writable in place: accumulate into a copy, then copy back.
            GW = np.array(grad_kernel, dtype=_dtype(t), order="C")
            GW = _matrix(GW, t, "grad_kernel", &mgw)
    if grad_bias is not None:
        if not isinstance(grad_bias, cnp.ndarray):
            raise TypeError("grad_bias must be a numpy array")
        _check_size(<cnp.ndarray>grad_bias, n, "grad_bias")
        if _is_writable_direct(grad_bias, t, n):
            GB = <cnp.ndarray>grad_bias
        else:
            GB = np.array(grad_bias, dtype=_dtype(t), order="C").reshape(n)
    if need_input_grad:
        GX = _empty2(m, k, t)
    cdef void *pg = cnp.PyArray_DATA(G)
    cdef void *py = cnp.PyArray_DATA(Y)
    cdef void *pz = cnp.PyArray_DATA(Z) if Z is not None else NULL
    cdef void *pdz = cnp.PyArray_DATA(DZ) if DZ is not None else NULL
    cdef void *pgb = cnp.PyArray_DATA(GB) if GB is not None else NULL
    cdef void *pgx = cnp.PyArray_DATA(GX) if GX is not None else NULL
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _dense_backward(<float *>pg, <float *>mx.data, mx.ld, mx.trans, <float *>mw.data, mw.ld,
                            mw.trans, <float *>py, <float *>pz, code, <float>param, <float *>pdz,
                            <float *>mgw.data, mgw.ld, mgw.trans, <float *>pgb, <float *>pgx,
                            m, k, n, accumulate, num_threads)
        else:
            _dense_backward(<double *>pg, <double *>mx.data, mx.ld, mx.trans, <double *>mw.data,
                            mw.ld, mw.trans, <double *>py, <double *>pz, code, param,
                            <double *>pdz, <double *>mgw.data, mgw.ld, mgw.trans, <double *>pgb,
                            <double *>pgx, m, k, n, accumulate, num_threads)
    if GW is not None and GW is not grad_kernel:
        grad_kernel[...] = GW
    if GB is not None and GB is not grad_bias:
        grad_bias[...] = GB.reshape((<object>grad_bias).shape)
    return GX


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def loss(int code, y_pred, y_true, bint from_logits=False, sample_weight=None, double param=1.0,
         bint need_grad=True, int num_threads=1, probs_out=None):
    """The batch loss sum_i w_i l_i / m and its gradient, fused in one pass.

    Parameters
    ----------
    code : int
        A value of :data:`LOSS_CODES`.
    y_pred : ndarray (m, ...)                             # IN
        Rows are samples; all trailing axes are one sample's elements (for the
        categorical losses, the classes).
    y_true : ndarray                                      # IN
        Same size as y_pred; for the sparse loss, m integer class indices.
    from_logits : bool
    sample_weight : ndarray (m,) or None                  # IN
    param : float
        huber's delta.
    need_grad : bool
    num_threads : int
    probs_out : ndarray like y_pred, optional             # OUT
        For the categorical cross-entropies from logits: receives softmax(y_pred)
        from the exponentials the loss computes, equal to :func:`activation`'s
        softmax (the fused trainer's model output for the metrics).

    Returns
    -------
    (float, ndarray or None)
        The loss and, if ``need_grad``, d loss / d y_pred shaped like y_pred.
    """
    cdef int t = _float_typenum(y_pred, "y_pred")
    if code < LOSS_MSE or code > LOSS_SPARSE_CCE:
        raise ValueError(f"loss code must be in 0..{<int>LOSS_SPARSE_CCE}, got {code}")
    cdef cnp.ndarray P = _c(y_pred, t)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(P)
    cdef Py_ssize_t m = cnp.PyArray_DIMS(P)[0] if cnp.PyArray_NDIM(P) > 0 else 1
    cdef Py_ssize_t n = size // m if m > 0 else 0
    cdef cnp.ndarray T = None, L = None, Wt = None, Gr = None
    if code == LOSS_SPARSE_CCE:
        if (isinstance(y_true, cnp.ndarray) and cnp.PyArray_TYPE(<cnp.ndarray>y_true) == cnp.NPY_INT64
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>y_true)):
            L = <cnp.ndarray>y_true
        else:
            L = np.ascontiguousarray(y_true, dtype=np.int64)
        _check_size(L, m, "y_true")
    else:
        T = _c(y_true, t)
        _check_size(T, size, "y_true")
    if sample_weight is not None:
        Wt = _c(sample_weight, t)
        _check_size(Wt, m, "sample_weight")
    if need_grad:
        Gr = _empty_like_shape(P, t)
    cdef cnp.ndarray Pr = None
    if probs_out is not None:
        if not from_logits or (code != LOSS_CCE and code != LOSS_SPARSE_CCE):
            raise ValueError("probs_out is given only by the categorical cross-entropies "
                             "from logits")
        if not isinstance(probs_out, cnp.ndarray):
            raise TypeError(f"probs_out must be a numpy.ndarray, got {type(probs_out).__name__}")
        Pr = <cnp.ndarray>probs_out
        if (cnp.PyArray_TYPE(Pr) != t or not cnp.PyArray_IS_C_CONTIGUOUS(Pr)
                or not cnp.PyArray_ISWRITEABLE(Pr) or cnp.PyArray_SIZE(Pr) != size):
            raise ValueError(f"probs_out must be a writable C-contiguous array of y_pred's "
                             f"dtype and size {size}")
        if np.shares_memory(Pr, P):
            raise ValueError("probs_out must not overlap y_pred")
    cdef void *ppr = cnp.PyArray_DATA(Pr) if Pr is not None else NULL
    cdef void *pp = cnp.PyArray_DATA(P)
    cdef void *pt = cnp.PyArray_DATA(T) if T is not None else NULL
    cdef int64_t *pl = <int64_t *>cnp.PyArray_DATA(L) if L is not None else NULL
    cdef void *pw = cnp.PyArray_DATA(Wt) if Wt is not None else NULL
    cdef void *pgr = cnp.PyArray_DATA(Gr) if Gr is not None else NULL
    cdef double value
    with nogil:
        if t == cnp.NPY_FLOAT32:
            value = loss_rows(code, <float *>pp, <float *>pt, pl, <float *>pw, <float *>pgr,
                              m, n, from_logits, param, num_threads, <float *>ppr)
        else:
            value = loss_rows(code, <double *>pp, <double *>pt, pl, <double *>pw, <double *>pgr,
                              m, n, from_logits, param, num_threads, <double *>ppr)
    return value, Gr


# ---------------------------------------------------------------------------
# Optimizer updates (in place; False = not done, use the reference op)
# ---------------------------------------------------------------------------

cdef inline bint _state_ok(object a, int typenum, Py_ssize_t size):
    return _is_writable_direct(a, typenum, size)


def sgd_update(param, grad, velocity, double lr, double momentum=0.0, double dampening=0.0,
               bint nesterov=False, double weight_decay=0.0, bint decoupled_weight_decay=False,
               bint first_step=False, int num_threads=1):
    """SGD (momentum, Nesterov) in place; see ``fastnn.backends``. Returns False
    (and changes nothing) if an array cannot be updated in place."""
    if not isinstance(param, cnp.ndarray):
        return False
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>param)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(<cnp.ndarray>param)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not _state_ok(param, t, size) \
            or not _is_direct(grad, t) or cnp.PyArray_SIZE(<cnp.ndarray>grad) != size:
        return False
    if momentum != 0 and not _state_ok(velocity, t, size):
        return False
    cdef void *pp = cnp.PyArray_DATA(<cnp.ndarray>param)
    cdef void *pg = cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef void *pv = cnp.PyArray_DATA(<cnp.ndarray>velocity) if momentum != 0 else NULL
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _sgd(<float *>pp, <float *>pg, <float *>pv, size, lr, momentum, dampening, nesterov,
                 weight_decay, decoupled_weight_decay, first_step, num_threads)
        else:
            _sgd(<double *>pp, <double *>pg, <double *>pv, size, lr, momentum, dampening, nesterov,
                 weight_decay, decoupled_weight_decay, first_step, num_threads)
    return True


def adam_update(param, grad, m, v, v_max, double lr, double beta_1, double beta_2,
                double epsilon, long step, double weight_decay=0.0,
                bint decoupled_weight_decay=False, bint amsgrad=False, int num_threads=1):
    """Adam / AdamW / AMSGrad in place; see ``fastnn.backends``. Returns False
    (and changes nothing) if an array cannot be updated in place."""
    if not isinstance(param, cnp.ndarray):
        return False
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>param)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(<cnp.ndarray>param)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not _state_ok(param, t, size) \
            or not _is_direct(grad, t) or cnp.PyArray_SIZE(<cnp.ndarray>grad) != size \
            or not _state_ok(m, t, size) or not _state_ok(v, t, size):
        return False
    if amsgrad and not _state_ok(v_max, t, size):
        return False
    cdef void *pp = cnp.PyArray_DATA(<cnp.ndarray>param)
    cdef void *pg = cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef void *pm = cnp.PyArray_DATA(<cnp.ndarray>m)
    cdef void *pv = cnp.PyArray_DATA(<cnp.ndarray>v)
    cdef void *pvm = cnp.PyArray_DATA(<cnp.ndarray>v_max) if amsgrad else NULL
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _adam(<float *>pp, <float *>pg, <float *>pm, <float *>pv, <float *>pvm, size, lr,
                  beta_1, beta_2, epsilon, step, weight_decay, decoupled_weight_decay, amsgrad,
                  num_threads)
        else:
            _adam(<double *>pp, <double *>pg, <double *>pm, <double *>pv, <double *>pvm, size, lr,
                  beta_1, beta_2, epsilon, step, weight_decay, decoupled_weight_decay, amsgrad,
                  num_threads)
    return True


def rmsprop_update(param, grad, square_avg, momentum_buf, grad_avg, double lr, double rho,
                   double epsilon, double momentum=0.0, bint centered=False,
                   double weight_decay=0.0, bint decoupled_weight_decay=False, int num_threads=1):
    """RMSprop in place; see ``fastnn.backends``. Returns False (and changes
    nothing) if an array cannot be updated in place."""
    if not isinstance(param, cnp.ndarray):
        return False
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>param)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(<cnp.ndarray>param)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not _state_ok(param, t, size) \
            or not _is_direct(grad, t) or cnp.PyArray_SIZE(<cnp.ndarray>grad) != size \
            or not _state_ok(square_avg, t, size):
        return False
    if (momentum > 0 and not _state_ok(momentum_buf, t, size)) or \
            (centered and not _state_ok(grad_avg, t, size)):
        return False
    cdef void *pp = cnp.PyArray_DATA(<cnp.ndarray>param)
    cdef void *pg = cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef void *ps = cnp.PyArray_DATA(<cnp.ndarray>square_avg)
    cdef void *pb = cnp.PyArray_DATA(<cnp.ndarray>momentum_buf) if momentum > 0 else NULL
    cdef void *pa = cnp.PyArray_DATA(<cnp.ndarray>grad_avg) if centered else NULL
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _rmsprop(<float *>pp, <float *>pg, <float *>ps, <float *>pb, <float *>pa, size, lr, rho,
                     epsilon, momentum, centered, weight_decay, decoupled_weight_decay, num_threads)
        else:
            _rmsprop(<double *>pp, <double *>pg, <double *>ps, <double *>pb, <double *>pa, size, lr,
                     rho, epsilon, momentum, centered, weight_decay, decoupled_weight_decay,
                     num_threads)
    return True


def adagrad_update(param, grad, sum_sq, double lr, double epsilon, long step,
                   double lr_decay=0.0, double weight_decay=0.0,
                   bint decoupled_weight_decay=False, int num_threads=1):
    """Adagrad in place; see ``fastnn.backends``. Returns False (and changes
    nothing) if an array cannot be updated in place."""
    if not isinstance(param, cnp.ndarray):
        return False
    cdef int t = cnp.PyArray_TYPE(<cnp.ndarray>param)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(<cnp.ndarray>param)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not _state_ok(param, t, size) \
            or not _is_direct(grad, t) or cnp.PyArray_SIZE(<cnp.ndarray>grad) != size \
            or not _state_ok(sum_sq, t, size):
        return False
    cdef void *pp = cnp.PyArray_DATA(<cnp.ndarray>param)
    cdef void *pg = cnp.PyArray_DATA(<cnp.ndarray>grad)
    cdef void *ps = cnp.PyArray_DATA(<cnp.ndarray>sum_sq)
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _adagrad(<float *>pp, <float *>pg, <float *>ps, size, lr, epsilon, step, lr_decay,
                     weight_decay, decoupled_weight_decay, num_threads)
        else:
            _adagrad(<double *>pp, <double *>pg, <double *>ps, size, lr, epsilon, step, lr_decay,
                     weight_decay, decoupled_weight_decay, num_threads)
    return True


# ---------------------------------------------------------------------------
# Clipping, norms and penalties
# ---------------------------------------------------------------------------

cdef inline int _inplace_typenum(object a):
    """The float typenum of an array a kernel may update in place, else -1."""
    cdef int t
    if not isinstance(a, cnp.ndarray):
        return -1
    t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or \
            not _state_ok(a, t, cnp.PyArray_SIZE(<cnp.ndarray>a)):
        return -1
    return t


def clip_by_value(g, double clip_value, int num_threads=1):
    """g = clip(g, -clip_value, clip_value) in place; False if g is not updatable in place."""
    cdef int t = _inplace_typenum(g)
    if t < 0:
        return False
    cdef void *p = cnp.PyArray_DATA(<cnp.ndarray>g)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(<cnp.ndarray>g)
    with nogil:
        if t == cnp.NPY_FLOAT32:
            clip_values(<float *>p, <float>-clip_value, <float>clip_value, size, num_threads)
        else:
            clip_values(<double *>p, -clip_value, clip_value, size, num_threads)
    return True


def scale(g, double factor, int num_threads=1):
    """g *= factor in place (factor rounded to g's dtype); False if not updatable in place."""
    cdef int t = _inplace_typenum(g)
    if t < 0:
        return False
    cdef void *p = cnp.PyArray_DATA(<cnp.ndarray>g)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(<cnp.ndarray>g)
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _scale(<float *>p, <float>factor, size, num_threads)
        else:
            _scale(<double *>p, factor, size, num_threads)
    return True


def sum_squares(g, int num_threads=1):
    """sum g^2 as a Python float (accumulated in double, fixed chunk order)."""
    cdef int t = _float_typenum(g, "g")
    cdef cnp.ndarray G = _c(g, t)
    cdef void *p = cnp.PyArray_DATA(G)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(G)
    cdef double s
    with nogil:
        if t == cnp.NPY_FLOAT32:
            s = _sum_squares(<float *>p, size, num_threads)
        else:
            s = _sum_squares(<double *>p, size, num_threads)
    return s


def l1l2_penalty(w, double l1, double l2, int num_threads=1):
    """l1 * sum|w| + l2 * sum w^2 as a Python float."""
    cdef int t = _float_typenum(w, "w")
    cdef cnp.ndarray Wa = _c(w, t)
    cdef void *p = cnp.PyArray_DATA(Wa)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(Wa)
    cdef double a = 0, s = 0
    with nogil:
        if t == cnp.NPY_FLOAT32:
            if l1 != 0:
                a = sum_abs(<float *>p, size, num_threads)
            if l2 != 0:
                s = _sum_squares(<float *>p, size, num_threads)
        else:
            if l1 != 0:
                a = sum_abs(<double *>p, size, num_threads)
            if l2 != 0:
                s = _sum_squares(<double *>p, size, num_threads)
    cdef double penalty = 0.0
    if l1 != 0:
        penalty += l1 * a
    if l2 != 0:
        penalty += l2 * s
    return penalty


def l1l2_grad(w, double l1, double l2, grad, int num_threads=1):
    """grad += l1 sign(w) + 2 l2 w in place; False if grad is not updatable in place."""
    cdef int t = _inplace_typenum(grad)
    if t < 0:
        return False
    cdef Py_ssize_t size = cnp.PyArray_SIZE(<cnp.ndarray>grad)
    if not _is_direct(w, t) or cnp.PyArray_SIZE(<cnp.ndarray>w) != size:
        return False
    cdef void *pw = cnp.PyArray_DATA(<cnp.ndarray>w)
    cdef void *pg = cnp.PyArray_DATA(<cnp.ndarray>grad)
    with nogil:
        if t == cnp.NPY_FLOAT32:
            _l1l2_grad(<float *>pw, <float>l1, <float>l2, <float *>pg, size, num_threads)
        else:
            _l1l2_grad(<double *>pw, l1, l2, <double *>pg, size, num_threads)
    return True


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

cdef enum:
    _FINITE_PARALLEL_BLOCK = 1 << 16


def all_finite(x, int num_threads=1):
    """Whether every value of ``x`` is finite, or None when ``x`` is not a
    C-contiguous float32/float64 array (the caller then checks with NumPy).

    No temporary array, a few hundred nanoseconds for one sample: this is the
    check on every batch that reaches the compiled predictor. Large arrays are
    scanned by ``num_threads`` threads in fixed blocks (memory-bound: the check
    of a 10,000-sample MNIST batch otherwise costs the predictor a millisecond
    on one core while the other waits).
    """
    if not isinstance(x, cnp.ndarray):
        return None
    cdef cnp.ndarray X = <cnp.ndarray>x
    cdef int t = cnp.PyArray_TYPE(X)
    if (t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64) or not cnp.PyArray_IS_C_CONTIGUOUS(X) \
            or not cnp.PyArray_ISALIGNED(X):
        return None
    cdef const char *p = <const char *>cnp.PyArray_DATA(X)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(X), nb = n_chunks(n, _FINITE_PARALLEL_BLOCK), c, lo
    cdef Py_ssize_t itemsize = 4 if t == cnp.NPY_FLOAT32 else 8
    cdef int bad = 0
    with nogil:
        if num_threads <= 1 or nb <= 1:
            if t == cnp.NPY_FLOAT32:
                bad = not all_finite_values(<const float *>p, n)
            else:
                bad = not all_finite_values(<const double *>p, n)
        else:
            for c in prange(nb, num_threads=num_threads, schedule='static'):
                lo = c * _FINITE_PARALLEL_BLOCK
                if t == cnp.NPY_FLOAT32:
                    bad |= not all_finite_values(<const float *>(p + lo * itemsize),
                                                 min(<Py_ssize_t>_FINITE_PARALLEL_BLOCK, n - lo))
                else:
                    bad |= not all_finite_values(<const double *>(p + lo * itemsize),
                                                 min(<Py_ssize_t>_FINITE_PARALLEL_BLOCK, n - lo))
    return not bad


# ---------------------------------------------------------------------------
# The float32 exponential of softmax (csrc/fast_exp.h)
# ---------------------------------------------------------------------------

def exp_float32(x, float shift=0.0, bint portable=False):
    """``e^(x - shift)`` in float32 with the exponential the softmax kernels use.

    Parameters
    ----------
    x : array_like                                         # IN
        Converted to a C-contiguous float32 array.
    shift : float
        Subtracted (in float32) before the exponential, as softmax subtracts
        each row's maximum.
    portable : bool
        Use the scalar C version instead of the AVX2 one the kernels pick on
        this machine (the two give the same bits).

    Returns
    -------
    ndarray of float32, the shape of ``x``.
    """
    cdef cnp.ndarray X = np.ascontiguousarray(x, dtype=np.float32)
    cdef cnp.ndarray Y = np.empty_like(X)
    cdef const float *px = <const float *>cnp.PyArray_DATA(X)
    cdef float *py = <float *>cnp.PyArray_DATA(Y)
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(X)
    with nogil:
        if portable:
            for i in range(n):
                py[i] = fnn_expf(px[i] - shift)
        else:
            fnn_exp_shift_f32(px, shift, py, n)
    return Y


# ---------------------------------------------------------------------------
# Random numbers (csrc/philox.h; twins in fastnn/utils/random.py)
# ---------------------------------------------------------------------------

cdef cnp.ndarray _stream_out(Py_ssize_t n, object dtype):
    """The (n,) array a stream function fills; n is the caller's count."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return np.empty(n, dtype)


def philox_words(uint64_t key0, uint64_t key1, uint64_t start, Py_ssize_t n):
    """Words start .. start + n - 1 of the Philox4x64-10 stream of (key0, key1): uint64 (n,)."""
    cdef cnp.ndarray out = _stream_out(n, np.uint64)
    cdef uint64_t *o = <uint64_t *>cnp.PyArray_DATA(out)
    with nogil:
        fnn_philox_words(key0, key1, start, <size_t>n, o)
    return out


# Words per thread chunk of philox_uniform: a word is a pure function of its index,
# so the chunks can go to any thread and the values do not depend on the count.
cdef Py_ssize_t _PHILOX_CHUNK = 1 << 15


def philox_uniform(uint64_t key0, uint64_t key1, uint64_t start, Py_ssize_t n,
                   int num_threads=1):
    """Uniform float64 in [0, 1) from words start .. start + n - 1: (word >> 11) * 2**-53.

    The same values for any ``num_threads``.
    """
    cdef cnp.ndarray out = _stream_out(n, np.float64)
    cdef double *o = <double *>cnp.PyArray_DATA(out)
    cdef Py_ssize_t nb = (n + _PHILOX_CHUNK - 1) // _PHILOX_CHUNK, c, lo
    with nogil:
        if num_threads <= 1 or nb <= 1:
            fnn_philox_uniform(key0, key1, start, <size_t>n, o)
        else:
            for c in prange(nb, num_threads=num_threads, schedule='static'):
                lo = c * _PHILOX_CHUNK
                fnn_philox_uniform(key0, key1, start + <uint64_t>lo,
                                   <size_t>min(_PHILOX_CHUNK, n - lo), o + lo)
    return out


def philox_permutation(uint64_t key0, uint64_t key1, uint64_t start, Py_ssize_t n):
    """A Fisher-Yates order of 0 .. n-1 drawn from words start .. start + n - 2: int64 (n,)."""
    cdef cnp.ndarray out = _stream_out(n, np.int64)
    cdef int64_t *o = <int64_t *>cnp.PyArray_DATA(out)
    with nogil:
        fnn_philox_permutation(key0, key1, start, <int64_t>n, o)
    return out
