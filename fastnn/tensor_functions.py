"""The ``torch.*`` functions PyTorch-style code calls at the top level, over :class:`Tensor`.

::

    import fastnn as torch
    x = torch.randn(32, 784)
    batch = torch.cat([x, x], dim=0)
    _, predicted = torch.max(outputs, 1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

Creation (``zeros``, ``ones``, ``full``, ``empty``, ``eye``, ``arange``, ``linspace``,
``rand``, ``randn``, ``randint``, ``randperm`` and the ``*_like`` forms) makes new
leaf tensors; random ones draw from fastnn's generator (:func:`fastnn.manual_seed`)
unless ``generator=`` gives a generator (``fastnn.Generator`` or ``numpy.random.Generator``). ``cat`` and ``stack`` join
tensors and send each piece its slice of the gradient. ``sum``, ``mean``, ``max``,
``argmax``, ``exp``, ``log``, ``sqrt``, ``abs``, ``clamp``, ``reshape``,
``flatten`` and ``transpose`` are the Tensor methods as functions. fastnn runs
on the CPU: ``device`` names it, ``cuda.is_available()`` is False.
"""
from __future__ import annotations

import numbers
import types

import numpy as np

from fastnn import config
from fastnn._validation import check_int
from fastnn.tensor import Tensor, _normalize_dim, _record, tensor
from fastnn.utils import resolve_generator as _generator

__all__ = [
    "zeros", "ones", "full", "empty", "eye", "arange", "linspace", "rand", "randn", "randint",
    "randperm", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like",
    "cat", "concat", "stack", "sum", "mean", "max", "argmax", "exp", "log", "sqrt", "abs",
    "clamp", "reshape", "flatten", "transpose", "device", "cuda", "float", "double", "long",
    "int", "bool",
]

# dtype names of torch (torch.float is float32, torch.long int64, ...)
float = np.dtype(np.float32)  # noqa: A001 - torch's name
double = np.dtype(np.float64)
long = np.dtype(np.int64)
int = np.dtype(np.int32)  # noqa: A001
bool = np.dtype(np.bool_)  # noqa: A001


# ----------------------------------------------------------------------------
# Creation
# ----------------------------------------------------------------------------

def _size(size, name="size"):
    """A shape from ``f(2, 3)``, ``f((2, 3))`` or ``f([2, 3])``."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    return tuple(check_int(d, name, minimum=0) for d in size)


def _dtype(dtype, default=None, floating=False):
    """A numeric dtype (a floating one with ``floating``), or TypeError: tensors hold numbers."""
    if dtype is None:
        return np.dtype(default if default is not None else config.floatx())
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy dtype or its name, got {dtype!r}") from None
    if dt.kind not in ("f" if floating else "biuf"):
        kind = "floating" if floating else "numeric (bool, int or float)"
        raise TypeError(f"dtype must be {kind}, got {dt}")
    return dt


def _leaf(data, requires_grad):
    t = Tensor._wrap(np.asarray(data, order="C"))  # (ascontiguousarray makes 0-d arrays 1-d)
    return t.requires_grad_(requires_grad) if requires_grad else t


def zeros(*size, dtype=None, requires_grad=False):
    """A tensor of zeros (``config.floatx()`` unless ``dtype``)."""
    return _leaf(np.zeros(_size(size), _dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    """A tensor of ones."""
    return _leaf(np.ones(_size(size), _dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    """A tensor of ``fill_value`` (ints give int64, as PyTorch, unless ``dtype``)."""
    default = np.int64 if isinstance(fill_value, numbers.Integral) else None
    return _leaf(np.full(_size((size,)), fill_value, _dtype(dtype, default)), requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    """A tensor to be filled in (its values are zeros here, never garbage)."""
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    """The identity matrix (n x m)."""
    n = check_int(n, "n", minimum=0)
    m = n if m is None else check_int(m, "m", minimum=0)
    return _leaf(np.eye(n, m, dtype=_dtype(dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Evenly spaced values in [start, end): int64 for int arguments, else floatx."""
    if end is None:
        start, end = 0, start
    values = (start, end, step)
    for name, v in zip(("start", "end", "step"), values):
        if isinstance(v, type(True)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} must be a number, got {v!r}")
    if step == 0:
        raise ValueError("step must be nonzero")
    default = np.int64 if all(isinstance(v, numbers.Integral) for v in values) else None
    return _leaf(np.arange(start, end, step, dtype=_dtype(dtype, default)), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    """``steps`` evenly spaced values from start to end, both included."""
    steps = check_int(steps, "steps", minimum=0)
    return _leaf(np.linspace(start, end, steps, dtype=_dtype(dtype)), requires_grad)


def rand(*size, generator=None, dtype=None, requires_grad=False):
    """Uniform samples in [0, 1)."""
    return _leaf(_generator(generator).random(_size(size)).astype(_dtype(dtype, floating=True)),
                 requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad=False):
    """Standard normal samples."""
    return _leaf(_generator(generator).standard_normal(_size(size)).astype(
        _dtype(dtype, floating=True)), requires_grad)


def randint(low=0, high=None, size=None, generator=None, dtype=None, requires_grad=False):
    """Integers in [low, high) (``randint(high, size)`` as PyTorch allows)."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint needs size=, a tuple of dimensions")
    low = check_int(low, "low")
    high = check_int(high, "high")
    if high <= low:
        raise ValueError(f"randint needs low < high, got low={low}, high={high}")
    values = _generator(generator).integers(low, high, _size((size,)))
    return _leaf(values.astype(_dtype(dtype, np.int64)), requires_grad)


def randperm(n, generator=None, dtype=None):
    """A random permutation of 0 .. n-1 (int64)."""
    n = check_int(n, "n", minimum=0)
    return _leaf(_generator(generator).permutation(n).astype(_dtype(dtype, np.int64)), False)


def _like(t, name):
    if isinstance(t, Tensor):
        return t.data
    if isinstance(t, np.ndarray):
        return t
    raise TypeError(f"{name} expects a Tensor or an array, got {type(t).__name__}")


def zeros_like(input, dtype=None, requires_grad=False):
    """Zeros of ``input``'s shape (and dtype unless ``dtype``)."""
    a = _like(input, "zeros_like")
    return _leaf(np.zeros(a.shape, _dtype(dtype, a.dtype)), requires_grad)


def ones_like(input, dtype=None, requires_grad=False):
    """Ones of ``input``'s shape and dtype."""
    a = _like(input, "ones_like")
    return _leaf(np.ones(a.shape, _dtype(dtype, a.dtype)), requires_grad)


def full_like(input, fill_value, dtype=None, requires_grad=False):
    """``fill_value`` in ``input``'s shape and dtype."""
    a = _like(input, "full_like")
    return _leaf(np.full(a.shape, fill_value, _dtype(dtype, a.dtype)), requires_grad)


def rand_like(input, generator=None, dtype=None, requires_grad=False):
    """Uniform samples in [0, 1) of ``input``'s shape."""
    a = _like(input, "rand_like")
    return rand(a.shape, generator=generator, dtype=_dtype(dtype, a.dtype),
                requires_grad=requires_grad)


def randn_like(input, generator=None, dtype=None, requires_grad=False):
    """Standard normal samples of ``input``'s shape."""
    a = _like(input, "randn_like")
    return randn(a.shape, generator=generator, dtype=_dtype(dtype, a.dtype),
                 requires_grad=requires_grad)


# ----------------------------------------------------------------------------
# Joining, with gradients
# ----------------------------------------------------------------------------

def _as_tensors(tensors, name):
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"{name} expects a non-empty list or tuple of tensors")
    out = [t if isinstance(t, Tensor) else tensor(t) for t in tensors]
    dtype = np.result_type(*[t.data.dtype for t in out])
    return out, [t.data if t.data.dtype == dtype else t.data.astype(dtype) for t in out]


def cat(tensors, dim=0):
    """Join tensors along an existing dimension; each gets its slice of the gradient."""
    ts, arrays = _as_tensors(tensors, "cat")
    axis = _normalize_dim(dim, arrays[0].ndim)
    try:
        out = np.concatenate(arrays, axis=axis)
    except ValueError as exc:
        raise ValueError(f"cat: {exc}") from None
    cuts = np.cumsum([a.shape[axis] for a in arrays])[:-1]
    return _record(out, tuple(ts), lambda g: tuple(np.split(g, cuts, axis=axis)))


concat = cat


def stack(tensors, dim=0):
    """Join same-shape tensors along a new dimension."""
    ts, arrays = _as_tensors(tensors, "stack")
    axis = _normalize_dim(dim, arrays[0].ndim + 1)
    try:
        out = np.stack(arrays, axis=axis)
    except ValueError as exc:
        raise ValueError(f"stack: {exc}") from None
    return _record(out, tuple(ts), lambda g: tuple(np.moveaxis(g, axis, 0)))


# ----------------------------------------------------------------------------
# The Tensor methods as functions
# ----------------------------------------------------------------------------

def _t(input, name):
    if isinstance(input, Tensor):
        return input
    if isinstance(input, (np.ndarray, list, tuple, numbers.Number)):
        return tensor(input)
    raise TypeError(f"{name} expects a Tensor, got {type(input).__name__}")


def sum(input, dim=None, keepdim=False):  # noqa: A001 - torch's name
    """Sum over ``dim`` (None: all elements)."""
    return _t(input, "sum").sum(dim, keepdim)


def mean(input, dim=None, keepdim=False):
    """Mean over ``dim`` (None: all elements)."""
    return _t(input, "mean").mean(dim, keepdim)


def max(input, dim=None, keepdim=False):  # noqa: A001
    """The largest element, or ``(values, indices)`` along ``dim``
    (``_, predicted = fastnn.max(outputs, 1)``)."""
    return _t(input, "max").max(dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    """Indices of the maxima (of the flattened tensor when ``dim`` is None)."""
    return _t(input, "argmax").argmax(dim, keepdim)


def exp(input):
    """e^x, elementwise."""
    return _t(input, "exp").exp()


def log(input):
    """Natural logarithm, elementwise."""
    return _t(input, "log").log()


def sqrt(input):
    """Square root, elementwise."""
    return _t(input, "sqrt").sqrt()


def abs(input):  # noqa: A001
    """|x|, elementwise."""
    return _t(input, "abs").abs()


def clamp(input, min=None, max=None):  # noqa: A002
    """Values limited to [min, max]."""
    return _t(input, "clamp").clamp(min, max)


def reshape(input, shape):
    """The same values in a new shape."""
    return _t(input, "reshape").reshape(shape)


def flatten(input, start_dim=0, end_dim=-1):
    """Dimensions start_dim..end_dim merged into one."""
    return _t(input, "flatten").flatten(start_dim, end_dim)


def transpose(input, dim0, dim1):
    """Dimensions ``dim0`` and ``dim1`` swapped (a 2-D transpose for (0, 1))."""
    t = _t(input, "transpose")
    a = _normalize_dim(dim0, t.data.ndim, "dim0")
    b = _normalize_dim(dim1, t.data.ndim, "dim1")
    return _record(np.swapaxes(t.data, a, b), (t,), lambda g: (np.swapaxes(g, a, b),))


# ----------------------------------------------------------------------------
# Devices: the CPU only
# ----------------------------------------------------------------------------

class device:  # noqa: N801 - torch's name
    """Where tensors live: ``device('cpu')``. fastnn has no GPU code, so any other
    device is refused with a clear message instead of failing later."""

    def __init__(self, type="cpu", index=None):  # noqa: A002
        if isinstance(type, device):
            type, index = type.type, type.index
        if not isinstance(type, str):
            raise TypeError(f"device expects a string such as 'cpu', got {type!r}")
        kind = type.split(":")[0]
        if kind != "cpu":
            raise ValueError(f"fastnn runs on the CPU only; device {type!r} is not available")
        self.type, self.index = "cpu", index

    def __repr__(self):
        return "device(type='cpu')"

    def __str__(self):
        return "cpu"

    def __eq__(self, other):
        return isinstance(other, device) or other == "cpu"

    def __hash__(self):
        return hash("cpu")


cuda = types.SimpleNamespace(
    is_available=lambda: False,
    device_count=lambda: 0,
    manual_seed=lambda seed: None,
    manual_seed_all=lambda seed: None,
)
cuda.__doc__ = "No GPU here: ``cuda.is_available()`` is False, as on a CPU-only PyTorch."
