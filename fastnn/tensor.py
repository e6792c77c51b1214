"""``fastnn.Tensor``: an ndarray that remembers how it was computed.

Reverse-mode automatic differentiation, PyTorch style::

    >>> import fastnn
    >>> w = fastnn.tensor([1.0, 2.0], requires_grad=True)
    >>> loss = (w * w).sum()
    >>> loss.backward()
    >>> w.grad
    tensor([2., 4.])

How it works
------------
Every operation on tensors that require gradients records a *node* on its
result: the input tensors, a function that maps the gradient of the result
to the gradients of the inputs (the local chain rule), and the node's position
on the tape (operations are numbered as they run, so inputs always come before
the operations that use them). ``loss.backward()`` walks the nodes reachable
from ``loss`` backwards along the tape, handing each node ``d loss / d output``
and collecting ``d loss / d input``. Gradients reaching a tensor along several
paths are summed; leaves (tensors created by the user with
``requires_grad=True``) accumulate them in ``.grad``.

Numbers are computed by the active backend (:func:`fastnn.backends.get`)
wherever the backend has the op (matrix products, activations, the fused dense
layer, losses); the thin elementwise arithmetic (``+ - * / **``, ``exp``,
``log``, reductions, reshapes, indexing) is written directly in NumPy.

The per-op Python cost is kept small on purpose: ``__slots__``, no validation
of arrays produced inside the library, no copies a gradient does not need.
"""
from __future__ import annotations

import heapq
import itertools
import math
import numbers

import numpy as np

from fastnn import backends as _backends
from fastnn import config as _config
from fastnn import utils as _utils
from fastnn._validation import _to_array

__all__ = [
    "Tensor", "tensor", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "manual_seed", "from_numpy", "matmul", "float32", "float64", "int64",
]

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)

_FLOAT_DTYPES = (float32, float64)

# Whether operations record nodes for backward (``no_grad`` turns it off).
_grad_enabled = True


_active = [None, None]  # [backend name, its op object]: one lookup per backend switch


def _ops():
    """The active backend's op object (cached: called once per recorded op)."""
    name = _config.get_backend()
    if name != _active[0]:
        _active[1] = _backends.get(name)
        _active[0] = name
    return _active[1]


# ----------------------------------------------------------------------------
# Gradient mode
# ----------------------------------------------------------------------------

def is_grad_enabled() -> bool:
    """True if operations currently record nodes for ``backward``."""
    return _grad_enabled


class set_grad_enabled:
    """Context manager (and decorator) that turns gradient recording on or off.

    Parameters
    ----------
    mode : bool
        True to record, False not to.
    """

    def __init__(self, mode: bool):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False


class _GradMode:
    """Base of ``no_grad`` / ``enable_grad``: a context manager and a decorator."""

    _mode = True

    def __enter__(self):
        global _grad_enabled
        self._previous = _grad_enabled
        _grad_enabled = self._mode
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._previous
        return False

    def __call__(self, func):
        import functools

        mode = self._mode

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            global _grad_enabled
            previous = _grad_enabled
            _grad_enabled = mode
            try:
                return func(*args, **kwargs)
            finally:
                _grad_enabled = previous
        return wrapper


class no_grad(_GradMode):
    """Context manager (or decorator) in which operations record nothing.

    Use it for evaluation and for hand-written parameter updates::

        with fastnn.no_grad():
            prediction = model(x_test)
    """

    _mode = False


class enable_grad(_GradMode):
    """Context manager (or decorator) that turns recording back on inside ``no_grad``."""

    _mode = True


def manual_seed(seed: int) -> None:
    """Seed fastnn's random generator (initial weights, dropout masks, shuffles).

    The same as :func:`fastnn.utils.set_random_seed`; named as in PyTorch.
    """
    _utils.set_random_seed(seed)


# ----------------------------------------------------------------------------
# Helpers used by the chain rules
# ----------------------------------------------------------------------------

def _unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach its shape.

    If ``a`` of shape ``shape`` was broadcast to ``grad.shape`` in the forward
    pass, every copy of an element received part of the gradient; its total
    gradient is the sum over the copies.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


def _is_basic_index(index):
    """True if ``index`` selects a view (ints, slices, None, Ellipsis) and no element twice."""
    if isinstance(index, tuple):
        return all(_is_basic_index(i) for i in index)
    return index is None or index is Ellipsis or isinstance(index, (slice, numbers.Integral))


def _normalize_index(index):
    """Tensors used as indices become their arrays."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in index)
    return index


def _normalize_dim(dim, ndim, name="dim"):
    """``dim`` (None, int or tuple of ints, negatives allowed) as an axis argument for NumPy."""
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral):
            raise TypeError(f"{name} must be an int or a tuple of ints, got {dim!r}")
        d = int(d)
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise ValueError(f"{name}={d} is out of range for a tensor with {ndim} dimension(s)")
        axes.append(d % max(ndim, 1))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{name} repeats an axis: {dim!r}")
    return tuple(axes) if isinstance(dim, (tuple, list)) else axes[0]


def _gemm_operand(a, trans):
    """``(array, trans)`` with the array C-contiguous, flipping ``trans`` for F-order arrays.

    The transpose of a Fortran-ordered matrix is C-ordered, so asking the gemm
    for ``op(a.T)`` with the opposite flag costs nothing where a copy would.
    """
    if a.flags.c_contiguous:
        return a, trans
    if a.flags.f_contiguous:
        return a.T, not trans
    return np.ascontiguousarray(a), trans


def _gemm(a, b, trans_a=False, trans_b=False):
    """``op(a) @ op(b)`` for 2-D arrays through the backend's gemm."""
    a, trans_a = _gemm_operand(a, trans_a)
    b, trans_b = _gemm_operand(b, trans_b)
    return _ops().gemm(a, b, trans_a=trans_a, trans_b=trans_b)


def _as_operand(other, like):
    """A non-tensor operand of arithmetic with tensor ``like``, as a scalar or array.

    Python numbers stay Python numbers (NumPy then keeps the tensor's dtype);
    arrays of floats are cast to a float tensor's dtype so a float32 model is not
    silently promoted to float64 by a float64 constant.
    """
    if type(other) is float or type(other) is int:
        return other
    if isinstance(other, (numbers.Number, np.generic)):
        if isinstance(other, np.generic):
            other = other.item()
        return other
    arr = _to_array(other, "operand")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"cannot combine a Tensor with an array of dtype {arr.dtype}")
    if like.dtype in _FLOAT_DTYPES and arr.dtype != like.dtype:
        arr = arr.astype(like.dtype)
    return arr


# ----------------------------------------------------------------------------
# The Tensor
# ----------------------------------------------------------------------------

class Tensor:
    """A multi-dimensional array with optional gradient tracking.

    Parameters
    ----------
    data : array_like
        The values. Lists of floats become ``config.floatx()`` (float32 by
        default); NumPy float arrays keep their dtype; integers become int64.
    dtype : str or numpy dtype, optional
        ``'float32'``, ``'float64'``, ``'int64'``, ... (cast if given).
    requires_grad : bool
        Record operations on this tensor so ``backward`` can reach it. Only
        float tensors can require gradients.

    Attributes
    ----------
    data : numpy.ndarray
        The values (shared, not copied: in-place edits of ``t.data`` change ``t``).
    grad : Tensor or None
        The accumulated gradient of a leaf after ``backward``.
    requires_grad : bool
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "__weakref__")

    # NumPy must hand mixed expressions (ndarray + Tensor) to the Tensor's operators.
    __array_ufunc__ = None

    def __init__(self, data, dtype=None, requires_grad=False):
        self.data = _make_array(data, dtype)
        self.grad = None
        self.requires_grad = False
        self._ctx = None
        if requires_grad:
            self.requires_grad_(True)

    # -- construction from inside the library (no validation) ----------------
    @classmethod
    def _wrap(cls, data):
        """A constant tensor around ``data`` (no copy, no checks)."""
        t = object.__new__(cls)
        t.data = data
        t.grad = None
        t.requires_grad = False
        t._ctx = None
        return t

    # -- basic properties -----------------------------------------------------
    @property
    def shape(self):
        """The shape, as a tuple."""
        return self.data.shape

    @property
    def dtype(self):
        """The NumPy dtype of the values."""
        return self.data.dtype

    @property
    def ndim(self):
        """Number of dimensions."""
        return self.data.ndim

    @property
    def is_leaf(self):
        """True for tensors the user created (not results of recorded operations)."""
        return self._ctx is None

    def size(self, dim=None):
        """The shape, or its length along ``dim``."""
        if dim is None:
            return self.data.shape
        return self.data.shape[_normalize_dim(dim, self.data.ndim)]

    def dim(self):
        """Number of dimensions."""
        return self.data.ndim

    def numel(self):
        """Number of elements."""
        return self.data.size

    def numpy(self):
        """The values as a NumPy array (shared with the tensor, not a copy)."""
        return self.data

    def tolist(self):
        """The values as (nested) Python lists."""
        return self.data.tolist()

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(
                f"item() needs a tensor with exactly one element, got shape {self.data.shape}"
            )
        return self.data.item()

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            return self.data.astype(dtype)
        return self.data.copy() if copy else self.data

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                "the truth value of a tensor with more than one element is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data.item())

    __hash__ = object.__hash__  # identity: tensors are dict keys (optimizer state)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="tensor(", precision=4)
        extras = []
        if self.data.dtype not in (float32, int64) and self.data.dtype != np.bool_:
            extras.append(f"dtype={self.data.dtype.name}")
        if self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -- gradient bookkeeping ---------------------------------------------------
    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place (float tensors only); returns self."""
        if requires_grad and self.data.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"only float32/float64 tensors can require gradients, got dtype {self.data.dtype}"
            )
        if not requires_grad and self._ctx is not None:
            raise ValueError("requires_grad can only be turned off on leaf tensors; use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """A tensor with the same values (shared) that is cut off from the graph."""
        return Tensor._wrap(self.data)

    def clone(self):
        """A copy of the values; gradients flow back to ``self``."""
        return _record(self.data.copy(), (self,), lambda g: (g,))

    def zero_(self):
        """Set every element to 0, in place; returns self."""
        self.data[...] = 0
        return self

    def backward(self, gradient=None, retain_graph=False):
        """Compute the gradient of this tensor with respect to the leaves it depends on.

        Parameters
        ----------
        gradient : array_like or Tensor, optional
            ``d L / d self`` for some scalar ``L``; may be omitted when ``self``
            has one element (then it is 1).
        retain_graph : bool
            Keep the recorded nodes so that ``backward`` can run through them
            again (by default they are freed, as in PyTorch).

        Leaves accumulate (add) into their ``.grad``; call ``zero_grad`` on the
        optimizer or the module between steps.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of its computation "
                "has requires_grad=True (or it was computed under no_grad())"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element tensor, got shape "
                    f"{self.data.shape}; pass gradient= of the same shape"
                )
            seed = _UNIT_SEEDS.get(self.data.dtype) if self.data.ndim == 0 else None
            if seed is None:
                seed = np.ones_like(self.data)
        else:
            seed = np.asarray(gradient.data if isinstance(gradient, Tensor) else
                              _to_array(gradient, "gradient"))
            if seed.shape != self.data.shape:
                raise ValueError(
                    f"gradient has shape {seed.shape} but the tensor has shape {self.data.shape}"
                )
            if seed.dtype != self.data.dtype:
                seed = seed.astype(self.data.dtype)
        _run_backward(self, seed, retain_graph)

    # -- arithmetic -----------------------------------------------------------------
    def __add__(self, other):
        if not isinstance(other, Tensor):
            # the constant may broadcast self to a larger shape: sum the copies back
            return _record(self.data + _as_operand(other, self), (self,),
                           lambda g: (_unbroadcast(g, self.data.shape),))
        a, b = self, other
        return _record(a.data + b.data, (a, b),
                       lambda g: (_unbroadcast(g, a.data.shape), _unbroadcast(g, b.data.shape)))

    __radd__ = __add__

    def __sub__(self, other):
        if not isinstance(other, Tensor):
            return _record(self.data - _as_operand(other, self), (self,),
                           lambda g: (_unbroadcast(g, self.data.shape),))
        a, b = self, other
        return _record(a.data - b.data, (a, b),
                       lambda g: (_unbroadcast(g, a.data.shape), _unbroadcast(-g, b.data.shape)))

    def __rsub__(self, other):
        return _record(_as_operand(other, self) - self.data, (self,),
                       lambda g: (_unbroadcast(-g, self.data.shape),))

    def __mul__(self, other):
        if not isinstance(other, Tensor):
            c = _as_operand(other, self)
            return _record(self.data * c, (self,), lambda g: (_unbroadcast(g * c, self.data.shape),))
        a, b = self, other
        return _record(a.data * b.data, (a, b),
                       lambda g: (_unbroadcast(g * b.data, a.data.shape),
                                  _unbroadcast(g * a.data, b.data.shape)))

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not isinstance(other, Tensor):
            c = _as_operand(other, self)
            return _record(self.data / c, (self,), lambda g: (_unbroadcast(g / c, self.data.shape),))
        a, b = self, other
        out = a.data / b.data
        # d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2 = -out/b
        return _record(out, (a, b),
                       lambda g: (_unbroadcast(g / b.data, a.data.shape),
                                  _unbroadcast(-g * out / b.data, b.data.shape)))

    def __rtruediv__(self, other):
        c = _as_operand(other, self)
        out = c / self.data
        return _record(out, (self,),  # d(c/a)/da = -c/a^2
                       lambda g: (_unbroadcast(-g * out / self.data, self.data.shape),))

    def __pow__(self, exponent):
        a = self
        if not isinstance(exponent, Tensor):
            e = _as_operand(exponent, self)
            # d(a^e)/da = e a^(e-1)
            return _record(a.data ** e, (a,),
                           lambda g: (_unbroadcast(g * e * a.data ** (e - 1), a.data.shape),))
        b = exponent
        out = a.data ** b.data
        # d(a^b)/da = b a^(b-1) ; d(a^b)/db = a^b log a
        return _record(out, (a, b),
                       lambda g: (_unbroadcast(g * b.data * a.data ** (b.data - 1), a.data.shape),
                                  _unbroadcast(g * out * np.log(a.data), b.data.shape)))

    def __rpow__(self, base):
        c = _as_operand(base, self)
        out = c ** self.data
        return _record(out, (self,),  # d(c^a)/da = c^a log c
                       lambda g: (_unbroadcast(g * out * np.log(c), self.data.shape),))

    def __neg__(self):
        return _record(-self.data, (self,), lambda g: (-g,))

    def __pos__(self):
        return self

    def __matmul__(self, other):
        other = other if isinstance(other, Tensor) else Tensor._wrap(_as_operand(other, self))
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(Tensor._wrap(_as_operand(other, self)), self)

    # In-place arithmetic changes the values without recording (for updates under no_grad).
    def _inplace(self, ufunc, other):
        if _grad_enabled and self.requires_grad:
            raise RuntimeError(
                "in-place operation on a tensor that requires grad; wrap the update in "
                "`with fastnn.no_grad():`"
            )
        value = other.data if isinstance(other, Tensor) else _as_operand(other, self)
        ufunc(self.data, value, out=self.data, casting="same_kind")
        return self

    def __iadd__(self, other):
        return self._inplace(np.add, other)

    def __isub__(self, other):
        return self._inplace(np.subtract, other)

    def __imul__(self, other):
        return self._inplace(np.multiply, other)

    def __itruediv__(self, other):
        return self._inplace(np.divide, other)

    # Comparisons give bool tensors without gradient (for accuracies and masks).
    def _compare(self, ufunc, other):
        value = other.data if isinstance(other, Tensor) else _as_operand(other, self)
        return Tensor._wrap(ufunc(self.data, value))

    def __eq__(self, other):
        return self._compare(np.equal, other)

    def __ne__(self, other):
        return self._compare(np.not_equal, other)

    def __lt__(self, other):
        return self._compare(np.less, other)

    def __le__(self, other):
        return self._compare(np.less_equal, other)

    def __gt__(self, other):
        return self._compare(np.greater, other)

    def __ge__(self, other):
        return self._compare(np.greater_equal, other)

    # -- elementwise functions ------------------------------------------------------
    def exp(self):
        """e ** self, elementwise."""
        out = np.exp(self.data)
        return _record(out, (self,), lambda g: (g * out,))  # (e^x)' = e^x

    def log(self):
        """Natural logarithm, elementwise."""
        return _record(np.log(self.data), (self,), lambda g: (g / self.data,))  # (log x)' = 1/x

    def sqrt(self):
        """Square root, elementwise."""
        out = np.sqrt(self.data)
        return _record(out, (self,), lambda g: (g / (2 * out),))  # (sqrt x)' = 1/(2 sqrt x)

    def abs(self):
        """Absolute value, elementwise (gradient sign(x), 0 at 0)."""
        return _record(np.abs(self.data), (self,), lambda g: (g * np.sign(self.data),))

    __abs__ = abs

    def clamp(self, min=None, max=None):
        """Limit the values to ``[min, max]``; the gradient is 0 where a bound bites."""
        if min is None and max is None:
            raise ValueError("clamp: give at least one of min and max")
        X = self.data
        out = np.clip(X, min, max)
        keep = np.ones(X.shape, dtype=bool)
        if min is not None:
            keep &= X >= min
        if max is not None:
            keep &= X <= max
        return _record(out, (self,), lambda g: (g * keep,))

    clip = clamp

    def relu(self):
        """max(x, 0)."""
        return activation(self, "relu")

    def sigmoid(self):
        """1 / (1 + e^-x)."""
        return activation(self, "sigmoid")

    def tanh(self):
        """Hyperbolic tangent."""
        return activation(self, "tanh")

    def softmax(self, dim):
        """e^x / sum(e^x) along ``dim``."""
        return activation(self, "softmax", axis=_normalize_dim(dim, self.data.ndim))

    def log_softmax(self, dim):
        """x - logsumexp(x) along ``dim``."""
        return activation(self, "log_softmax", axis=_normalize_dim(dim, self.data.ndim))

    # -- reductions -------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        """Sum over ``dim`` (an int, a tuple, or None for all elements)."""
        axis = _normalize_dim(dim, self.data.ndim)
        shape = self.data.shape
        out = np.sum(self.data, axis=axis, keepdims=keepdim)
        if not isinstance(out, np.ndarray):
            out = np.asarray(out)
        # Every summed element gets the gradient of its sum.
        return _record(out, (self,), lambda g: (_expand(g, shape, axis, keepdim),))

    def mean(self, dim=None, keepdim=False):
        """Mean over ``dim`` (an int, a tuple, or None for all elements)."""
        if self.data.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"mean() needs a float tensor, got dtype {self.data.dtype}")
        axis = _normalize_dim(dim, self.data.ndim)
        shape = self.data.shape
        out = np.asarray(np.mean(self.data, axis=axis, keepdims=keepdim))
        count = self.data.size // max(out.size, 1) if self.data.size else 1
        return _record(out, (self,), lambda g: (_expand(g / count, shape, axis, keepdim),))

    def max(self, dim=None, keepdim=False):
        """The maximum (over all elements, or ``(values, indices)`` along ``dim``).

        The gradient goes to the first maximal element.
        """
        if dim is None:
            flat = self.data.reshape(-1)
            index = int(np.argmax(flat))
            shape = self.data.shape

            def backward(g):
                grad = np.zeros(flat.size, dtype=g.dtype)
                grad[index] = g
                return (grad.reshape(shape),)
            return _record(np.asarray(flat[index]), (self,), backward)
        axis = _normalize_dim(dim, self.data.ndim)
        where = np.expand_dims(np.argmax(self.data, axis=axis), axis)
        values = np.take_along_axis(self.data, where, axis=axis)
        shape = self.data.shape

        def backward(g):
            grad = np.zeros(shape, dtype=g.dtype)
            np.put_along_axis(grad, where, g if keepdim else np.expand_dims(g, axis), axis=axis)
            return (grad,)
        indices = where
        if not keepdim:
            values = np.squeeze(values, axis)
            indices = np.squeeze(where, axis)
        return _record(values, (self,), backward), Tensor._wrap(indices.astype(np.int64))

    def argmax(self, dim=None, keepdim=False):
        """Indices of the maxima (over the flattened tensor when ``dim`` is None)."""
        if dim is None:
            return Tensor._wrap(np.asarray(np.argmax(self.data), dtype=np.int64))
        axis = _normalize_dim(dim, self.data.ndim)
        return Tensor._wrap(np.argmax(self.data, axis=axis, keepdims=keepdim).astype(np.int64))

    # -- shapes -------------------------------------------------------------------------
    def reshape(self, *shape):
        """The same values in a new shape (one entry may be -1)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            out = self.data.reshape(shape)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot reshape a tensor of shape {self.data.shape} to {shape}: {exc}") from None
        old = self.data.shape
        return _record(out, (self,), lambda g: (g.reshape(old),))

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        """Merge dimensions ``start_dim..end_dim`` into one."""
        shape = self.data.shape
        if not shape:
            return self.reshape(1)
        start = _normalize_dim(start_dim, len(shape), "start_dim")
        end = _normalize_dim(end_dim, len(shape), "end_dim")
        if start > end:
            raise ValueError(f"flatten: start_dim ({start_dim}) comes after end_dim ({end_dim})")
        return self.reshape(shape[:start] + (-1,) + shape[end + 1:])

    def unsqueeze(self, dim):
        """Insert a dimension of length 1 at ``dim``."""
        d = _normalize_dim(dim, self.data.ndim + 1)
        shape = self.data.shape
        return self.reshape(shape[:d] + (1,) + shape[d:])

    def squeeze(self, dim=None):
        """Drop dimensions of length 1 (all of them, or ``dim`` if it has length 1)."""
        shape = self.data.shape
        if dim is None:
            return self.reshape(tuple(n for n in shape if n != 1))
        d = _normalize_dim(dim, self.data.ndim)
        if shape[d] != 1:
            return self
        return self.reshape(shape[:d] + shape[d + 1:])

    @property
    def T(self):
        """The tensor with its dimensions reversed (the matrix transpose for 2-D)."""
        return _record(self.data.T, (self,), lambda g: (g.T,))

    def t(self):
        """The transpose of a matrix (0-D and 1-D tensors are returned as they are)."""
        if self.data.ndim > 2:
            raise ValueError(f"t() expects a tensor with <= 2 dimensions, got {self.data.ndim}")
        return self.T

    def __getitem__(self, index):
        index = _normalize_index(index)
        try:
            out = self.data[index]
        except IndexError as exc:
            raise IndexError(f"tensor index {index!r} is out of range for shape {self.data.shape}: {exc}") from None
        shape = self.data.shape
        basic = _is_basic_index(index)
        if not isinstance(out, np.ndarray):
            out = np.asarray(out)

        def backward(g):
            grad = np.zeros(shape, dtype=g.dtype)
            if basic:
                grad[index] = g            # each element selected at most once
            else:
                np.add.at(grad, index, g)  # a row picked twice gets both gradients
            return (grad,)
        return _record(out, (self,), backward)

    # -- dtypes and the device -----------------------------------------------------------
    def to(self, *args, **kwargs):
        """A copy converted to a dtype (gradients flow back, converted to ours):
        ``t.to('float64')``, ``t.to(device)``, ``t.to(device, dtype)``, ``t.to(other)``.

        A CPU device (``'cpu'``, ``fastnn.device('cpu')``) is accepted and changes
        nothing: fastnn runs on the CPU; another device is a ValueError.
        """
        candidates = list(args) + [kwargs.pop("dtype", None), kwargs.pop("device", None)]
        kwargs.pop("non_blocking", None)
        kwargs.pop("copy", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword argument(s) {sorted(kwargs)}")
        dt = None
        for value in candidates:
            if value is None or _is_cpu_device(value):
                continue
            if isinstance(value, Tensor):
                dt = value.data.dtype
                continue
            try:
                dt = np.dtype(value)
            except TypeError:
                raise TypeError(f"to() expects a dtype, a device or a tensor, got {value!r}") from None
        if dt is None or dt == self.data.dtype:
            return self
        src = self.data.dtype
        return _record(self.data.astype(dt), (self,), lambda g: (g.astype(src),))

    def cpu(self):
        """This tensor (it is in main memory already)."""
        return self

    def cuda(self, *args, **kwargs):
        raise RuntimeError("fastnn runs on the CPU only: there is no CUDA device")

    @property
    def device(self):
        """Where the tensor lives: always the CPU."""
        from fastnn.tensor_functions import device
        return device("cpu")

    def float(self):
        """Converted to float32."""
        return self.to(float32)

    def double(self):
        """Converted to float64."""
        return self.to(float64)

    def long(self):
        """Converted to int64 (no gradient)."""
        return Tensor._wrap(self.data.astype(np.int64))


def _is_cpu_device(value):
    """Whether ``value`` names the CPU: ``'cpu'``, ``'cpu:0'`` or a device object (fastnn's
    or torch's) of type ``'cpu'``. Other devices raise ValueError: fastnn has no GPU code."""
    if isinstance(value, str):
        kind = value.lower().split(":")[0]
        if kind in ("cuda", "mps", "xpu", "hip", "meta"):
            raise ValueError(f"fastnn runs on the CPU only; device {value!r} is not available")
        return kind == "cpu"
    kind = getattr(value, "type", None)
    if isinstance(kind, str) and not isinstance(value, np.dtype):
        if kind != "cpu":
            raise ValueError(f"fastnn runs on the CPU only; device {value!r} is not available")
        return True
    return False


def _expand(g, shape, axis, keepdim):
    """Broadcast the gradient of a reduction back to the input's shape (a fresh array)."""
    if axis is not None and not keepdim:
        g = np.expand_dims(g, axis)
    out = np.empty(shape, dtype=g.dtype)
    out[...] = g
    return out


def _make_array(data, dtype):
    """The array a user-facing constructor wraps (validated, dtype resolved)."""
    if isinstance(data, Tensor):
        data = data.data
    arr = _to_array(data, "data")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"a tensor holds numbers (float, int or bool), got dtype {arr.dtype}")
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype must be a NumPy dtype or its name, got {dtype!r}") from None
        if dt.kind not in "biuf":
            raise TypeError(f"dtype must be a float, int or bool type, got {dt}")
        return np.ascontiguousarray(arr, dtype=dt) if arr.dtype != dt else arr
    if arr.dtype.kind == "f":
        if isinstance(data, np.ndarray) and arr.dtype in _FLOAT_DTYPES:
            return arr
        from fastnn import config
        return arr.astype(config.floatx())
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    return arr


def tensor(data, dtype=None, requires_grad=False):
    """Make a :class:`Tensor` holding a copy of ``data``.

    Parameters
    ----------
    data : array_like
        Numbers (nested lists, a NumPy array, a scalar, another Tensor).
    dtype : str or numpy dtype, optional
        Default: float arrays keep float32/float64, Python floats become
        ``config.floatx()``, integers become int64.
    requires_grad : bool
        Track operations on the tensor for ``backward``.
    """
    t = Tensor(data, dtype=dtype, requires_grad=False)
    source = data.data if isinstance(data, Tensor) else data
    if isinstance(source, np.ndarray) and np.may_share_memory(t.data, source):
        t.data = t.data.copy()
    return t.requires_grad_(bool(requires_grad))


def from_numpy(array):
    """A :class:`Tensor` sharing memory with the NumPy array ``array`` (no copy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: a tensor holds numbers, got dtype {array.dtype}")
    return Tensor._wrap(array)


# ----------------------------------------------------------------------------
# The tape: recording and the backward pass
# ----------------------------------------------------------------------------

def _record(data, parents, backward):
    """The result of an operation: a tensor holding ``data``, with a node if needed.

    ``backward(g)`` returns one gradient per parent (None where a parent needs none).
    The node is ``(parents, backward, position on the tape)``. No node is
    recorded under ``no_grad`` or when no parent requires a gradient.
    """
    t = object.__new__(Tensor)
    t.data = data
    t.grad = None
    if _grad_enabled:
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                t._ctx = (parents, backward, next(_tape_position))
                return t
    t.requires_grad = False
    t._ctx = None
    return t


# Every recorded node gets the next position: an input is always recorded
# before the operations that use it, so positions order the tape.
_tape_position = itertools.count()


def _freed_backward(g):
    raise RuntimeError(
        "backward through the graph a second time: its saved values were freed after the "
        "first backward; pass retain_graph=True to the first call if you need this"
    )


def _run_backward(root, seed, retain_graph):
    """Walk the tape from ``root`` backwards, applying each node's chain rule.

    Nodes are visited from the latest recorded to the earliest (a max-heap on
    the tape position). Every consumer of a tensor was recorded after it, so
    when a node is reached all the gradient that flows into it has arrived:
    ``grads`` holds the complete d root / d output, which the node's
    ``backward`` turns into gradients of its inputs. Leaves add theirs to
    ``.grad`` as they arrive.
    """
    if root._ctx is None:  # backward() on a leaf: d leaf / d leaf
        _accumulate_leaf(root, seed, {id(seed): seed})
        return
    grads = {id(root): seed}
    heap = [(-root._ctx[2], id(root), root)]
    # Arrays handed to a node (and their bases) may come back unchanged as an
    # input's gradient (``a + b`` passes g through to both); a leaf must then own
    # a copy, or in-place accumulation into one .grad would change another.
    # Keyed by id and holding the array, so no id is reused while we look.
    passed = {}
    while heap:
        t = heapq.heappop(heap)[2]
        g = grads.pop(id(t))
        parents, backward = t._ctx[0], t._ctx[1]
        passed[id(g)] = g
        if g.base is not None:
            passed[id(g.base)] = g.base
        for p, pg in zip(parents, backward(g)):
            if pg is None or not p.requires_grad:
                continue
            if type(pg) is not np.ndarray:
                pg = np.asarray(pg)
            if pg.dtype != p.data.dtype:
                pg = pg.astype(p.data.dtype)
            if p._ctx is None:
                _accumulate_leaf(p, pg, passed)
                continue
            key = id(p)
            previous = grads.get(key)
            if previous is None:
                grads[key] = pg
                heapq.heappush(heap, (-p._ctx[2], key, p))
            else:
                grads[key] = previous + pg
        if not retain_graph:
            t._ctx = _FREED


_FREED = ((), _freed_backward, -1)


def _unit_seed(dtype):
    one = np.ones((), dtype)
    one.flags.writeable = False  # shared by every backward() of a scalar loss
    return one


# d loss / d loss for the usual scalar loss; read-only, and a leaf handed it copies it.
_UNIT_SEEDS = {np.dtype(t): _unit_seed(t) for t in (np.float32, np.float64)}


def _accumulate_leaf(t, g, passed):
    """``t.grad += g`` for a leaf (creating ``t.grad`` on first use)."""
    if t.grad is None:
        if id(g) in passed or (g.base is not None and id(g.base) in passed):
            g = g.copy(order="K")
        passed[id(g)] = g
        t.grad = Tensor._wrap(g)
    else:
        t.grad.data += g


# ----------------------------------------------------------------------------
# Operations that call the backend
# ----------------------------------------------------------------------------

def matmul(a, b):
    """Matrix product of tensors ``a @ b`` (1-D and 2-D operands; ``a`` may have batch dims).

    Forward and both gradients are backend gemm calls:
    ``d(a@b)/da = g @ b.T`` and ``d(a@b)/db = a.T @ g``.
    """
    if not isinstance(a, Tensor):
        a = Tensor(a)
    if not isinstance(b, Tensor):
        b = Tensor._wrap(_as_operand(b, a))
    A, B = a.data, b.data
    if A.ndim == 0 or B.ndim == 0:
        raise ValueError("matmul: both operands need at least one dimension (use * for scalars)")
    if B.ndim > 2:
        raise ValueError(f"matmul: the right operand must be 1-D or 2-D, got shape {B.shape}")
    k = A.shape[-1]
    if B.shape[0] != k:
        raise ValueError(f"matmul: shapes {A.shape} and {B.shape} do not align ({k} != {B.shape[0]})")
    if A.dtype != B.dtype:
        dt = np.result_type(A.dtype, B.dtype)
        A, B = A.astype(dt), B.astype(dt)
    if A.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"matmul needs float32 or float64 operands, got {A.dtype}")
    a_shape, b_shape = A.shape, B.shape
    # explicit sizes, not -1: with k == 0 (an empty inner dimension) -1 is ambiguous
    A2 = A.reshape(math.prod(a_shape[:-1]), k) if A.ndim != 2 else A
    B2 = B.reshape(k, 1) if B.ndim == 1 else B
    out = _gemm(A2, B2)
    out_shape = a_shape[:-1] + b_shape[1:]
    if out.shape != out_shape:
        out = out.reshape(out_shape)

    def backward(g):
        g2 = g.reshape(A2.shape[0], B2.shape[1])
        ga = _gemm(g2, B2, trans_b=True).reshape(a_shape) if a.requires_grad else None
        gb = _gemm(A2, g2, trans_a=True).reshape(b_shape) if b.requires_grad else None
        return ga, gb
    return _record(out, (a, b), backward)


def activation(x, name, param=None, axis=-1):
    """``y = f(x)`` for a backend activation, with its backward by the backend.

    Parameters
    ----------
    x : Tensor
    name : str
        One of :data:`fastnn.backends.ACTIVATION_CODES`.
    param : float, optional
        leaky_relu's slope, elu's alpha.
    axis : int
        The axis of softmax / log_softmax.
    """
    ops = _ops()
    X = x.data
    if X.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} needs a float32 or float64 tensor, got dtype {X.dtype}")
    if not X.flags.c_contiguous:  # backend ops take C-contiguous arrays
        X = np.ascontiguousarray(X)
    y = ops.activation(X, name, param, axis)
    return _record(y, (x,), lambda g: (
        ops.activation_backward(np.ascontiguousarray(g), X, y, name, param, axis),))


class _CallableModule(type(np)):
    """This module, callable as :func:`tensor`.

    ``fastnn.tensor`` names both this module and the function :func:`tensor`
    (as in PyTorch). Importing the module makes Python bind ``fastnn.tensor``
    to the module, so the module itself answers ``fastnn.tensor(data)``.
    """

    def __call__(self, data, dtype=None, requires_grad=False):
        return tensor(data, dtype=dtype, requires_grad=requires_grad)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallableModule
