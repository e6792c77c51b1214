"""Weight initialization in place (``torch.nn.init``).

::

    from fastnn import nn
    layer = nn.Linear(784, 64)
    nn.init.kaiming_uniform_(layer.weight, nonlinearity='relu')
    nn.init.zeros_(layer.bias)

Why the spread matters: with ``n`` inputs of unit variance, a unit's
pre-activation ``sum_i w_i x_i`` has variance ``n Var(w)``. Xavier/Glorot keeps
the variance of activations and of gradients alike across a layer with
``Var(w) = 2 / (fan_in + fan_out)``; Kaiming/He keeps it through ReLUs (which
zero half the signal) with ``Var(w) = 2 / fan_in``. ``gain`` scales the standard
deviation for the nonlinearity that follows (:func:`calculate_gain`).

Fans follow PyTorch's layout: a weight of shape ``(out_features, in_features,
*kernel)`` has ``fan_in = in_features * prod(kernel)`` and ``fan_out =
out_features * prod(kernel)``. Every function writes into the tensor (or NumPy
array) it is given, keeps its dtype and memory layout, records nothing on the
autograd tape, and returns it. Random draws come from fastnn's generator
(:func:`fastnn.manual_seed`) unless ``generator=`` gives a generator (``fastnn.Generator`` or ``numpy.random.Generator``).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from fastnn._validation import check_float
from fastnn.tensor import Tensor
from fastnn.utils import resolve_generator as _generator

__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
    "eye_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
    "orthogonal_",
]

_LINEAR = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d", "sigmoid"}


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's values).

    linear, conv*, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu:
    sqrt(2 / (1 + slope^2)) with ``param`` the slope (default 0.01); selu: 3/4.
    """
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param!r} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity!r}")


def _array(tensor):
    """The array to write into (a Tensor's data, or a writable ndarray)."""
    data = tensor.data if isinstance(tensor, Tensor) else tensor
    if not isinstance(data, np.ndarray):
        raise TypeError(f"tensor must be a fastnn Tensor or a NumPy array, got {type(tensor).__name__}")
    if data.dtype.kind != "f":
        raise TypeError(f"tensor must hold floats to be initialized, got dtype {data.dtype}")
    if not data.flags.writeable:
        raise ValueError("tensor is read-only")
    return data


def _fill(tensor, values):
    _array(tensor)[...] = values  # in place: the dtype and memory layout stay
    return tensor


def _fans(data):
    if data.ndim < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than "
                         f"2 dimensions (got shape {data.shape})")
    receptive = math.prod(data.shape[2:])
    return data.shape[1] * receptive, data.shape[0] * receptive


def _fan(data, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode!r} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _fans(data)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fill with U(a, b)."""
    a, b = check_float(a, "a"), check_float(b, "b")
    if a > b:
        raise ValueError(f"uniform_ expects a <= b, got a={a}, b={b}")
    data = _array(tensor)
    return _fill(tensor, _generator(generator).uniform(a, b, data.shape))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fill with N(mean, std^2)."""
    mean, std = check_float(mean, "mean"), check_float(std, "std", minimum=0.0)
    data = _array(tensor)
    return _fill(tensor, _generator(generator).normal(mean, std, data.shape))


def _normal_cdf(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fill with N(mean, std^2) restricted to [a, b] (absolute bounds, as PyTorch):
    values outside are drawn again."""
    mean, std = check_float(mean, "mean"), check_float(std, "std", minimum=0.0)
    a, b = check_float(a, "a"), check_float(b, "b")
    if a > b:
        raise ValueError(f"trunc_normal_ expects a <= b, got a={a}, b={b}")
    data = _array(tensor)
    rng = _generator(generator)
    if std == 0:
        if not a <= mean <= b:
            raise ValueError(f"trunc_normal_: std=0 puts every value at mean={mean}, outside [{a}, {b}]")
        return _fill(tensor, np.full(data.shape, mean))
    if _normal_cdf((b - mean) / std) - _normal_cdf((a - mean) / std) < 1e-6:
        raise ValueError(f"trunc_normal_: [{a}, {b}] holds almost none of N({mean}, {std}^2); "
                         "move the bounds or the mean")
    values = rng.normal(mean, std, data.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = rng.normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _fill(tensor, values)


def constant_(tensor, val):
    """Fill with ``val``."""
    return _fill(tensor, check_float(val, "val"))


def ones_(tensor):
    """Fill with 1."""
    return _fill(tensor, 1.0)


def zeros_(tensor):
    """Fill with 0."""
    return _fill(tensor, 0.0)


def eye_(tensor):
    """The identity matrix (ones on the diagonal of a 2-D tensor)."""
    data = _array(tensor)
    if data.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported, got shape {data.shape}")
    return _fill(tensor, np.eye(*data.shape))


def _empty_no_op(tensor):
    # PyTorch: a warning, and the tensor as it is (its fan may be 0: no division by it)
    warnings.warn("Initializing zero-element tensors is a no-op", UserWarning, stacklevel=3)
    return tensor


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010)."""
    data = _array(tensor)
    fan_in, fan_out = _fans(data)
    bound = check_float(gain, "gain") * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(tensor, _generator(generator).uniform(-bound, bound, data.shape))


def xavier_normal_(tensor, gain=1.0, generator=None):
    """N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    data = _array(tensor)
    fan_in, fan_out = _fans(data)
    std = check_float(gain, "gain") * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, _generator(generator).normal(0.0, std, data.shape))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """U(-bound, bound), bound = gain * sqrt(3 / fan) (He et al., 2015); ``a`` is the
    leaky_relu slope that sets the gain."""
    data = _array(tensor)
    if data.size == 0:
        return _empty_no_op(tensor)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(data, mode))
    bound = math.sqrt(3.0) * std
    return _fill(tensor, _generator(generator).uniform(-bound, bound, data.shape))


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """N(0, std^2), std = gain / sqrt(fan)."""
    data = _array(tensor)
    if data.size == 0:
        return _empty_no_op(tensor)
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(data, mode))
    return _fill(tensor, _generator(generator).normal(0.0, std, data.shape))


def orthogonal_(tensor, gain=1.0, generator=None):
    """A (semi-)orthogonal matrix times ``gain``: the tensor seen as (shape[0], rest)
    has orthonormal rows or columns (Saxe et al., 2014)."""
    from fastnn.initializers import Orthogonal
    data = _array(tensor)
    if data.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    rows = data.shape[0]
    matrix = Orthogonal(gain=check_float(gain, "gain"), seed=_generator(generator)).sample(
        (rows, data.size // rows if rows else 0))
    return _fill(tensor, matrix.reshape(data.shape))
