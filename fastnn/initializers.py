"""Weight initializers: the starting point of gradient descent.

Keras names, defaults and fan rules. Each initializer is called as
``init(shape, dtype=None)`` and returns a new array (dtype default:
:func:`fastnn.config.floatx`).

Randomness: ``seed=None`` draws from fastnn's generator
(:func:`fastnn.utils.rng`), so :func:`fastnn.utils.set_random_seed` makes every
initialization reproducible; an int seed makes the initializer return the
same values on every call with the same shape (as in Keras 3: two layers
sharing a seeded initializer get identical weights).

Variance scaling (the Glorot/He/LeCun family) sets the spread from the fans of
the weight: for a Dense kernel (inputs, units), ``fan_in = inputs``, ``fan_out =
units``. With ``n`` the chosen fan (``fan_in``, ``fan_out`` or their mean) and
``s`` the scale, the weights are drawn from

* ``uniform``: U(-limit, limit), ``limit = sqrt(3 s / n)``, variance ``s / n``;
* ``truncated_normal``: N(0, sigma^2) cut at 2 sigma and redrawn,
  ``sigma = sqrt(s / n) / 0.8796...`` (the cut shrinks the standard deviation
  by that factor, so the result has variance ``s / n`` again);
* ``untruncated_normal``: N(0, s / n).

========================  =======  ========  ==================
initializer               scale    mode      distribution
========================  =======  ========  ==================
GlorotUniform (default)   1        fan_avg   uniform
GlorotNormal              1        fan_avg   truncated_normal
HeUniform                 2        fan_in    uniform
HeNormal                  2        fan_in    truncated_normal
LecunUniform              1        fan_in    uniform
LecunNormal               1        fan_in    truncated_normal
========================  =======  ========  ==================
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastnn import utils
from fastnn._serialization import Configurable, Registry
from fastnn._validation import check_float, check_int, lookup, resolve_dtype

__all__ = [
    "Initializer", "Zeros", "Ones", "Constant", "RandomUniform", "RandomNormal",
    "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
    "HeNormal", "LecunUniform", "LecunNormal", "Orthogonal", "compute_fans", "get",
    "serialize", "deserialize",
]

# Standard deviation of a standard normal truncated to [-2, 2].
_TRUNCATED_STD = 0.87962566103423978


def compute_fans(shape):
    """(fan_in, fan_out) of a weight of ``shape``, by Keras's rule.

    A vector has fan_in = fan_out = its length; a matrix (inputs, units) has
    fan_in = inputs, fan_out = units; for more dimensions the leading ones form
    a receptive field that multiplies both (convolution kernels).
    """
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _check_shape(shape):
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}")
    return tuple(check_int(d, "shape entries", minimum=0) for d in shape)


def _check_seed(seed):
    if seed is None or utils.is_generator(seed):
        return seed
    return check_int(seed, "seed", minimum=0)


def _truncated_standard_normal(rng, shape):
    """Standard normal samples, each outside [-2, 2] redrawn until it falls inside."""
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(int(outside.sum()))
        outside = np.abs(values) > 2
    return values


class Initializer(Configurable):
    """Base class: ``__call__(shape, dtype=None)`` validates and calls :meth:`sample`.

    Subclasses implement ``sample`` and ``get_config``; equality, ``repr`` and
    ``from_config`` follow from the config.
    """

    def __call__(self, shape, dtype=None):
        shape = _check_shape(shape)
        dtype = resolve_dtype(dtype)
        return np.ascontiguousarray(self.sample(shape), dtype=dtype)

    def sample(self, shape):  # pragma: no cover - abstract
        """The values for ``shape`` (any float dtype; __call__ casts)."""
        raise NotImplementedError


class _Random(Initializer):
    """An initializer that draws random numbers (holds ``seed``)."""

    def __init__(self, seed=None):
        self.seed = _check_seed(seed)

    def _rng(self):
        # An int seed starts afresh on each call: same shape, same values.
        return utils.rng() if self.seed is None else utils.make_rng(self.seed)

    def get_config(self):
        # A Generator is not JSON-able; record it as None (fresh randomness on reload).
        return {"seed": self.seed if not utils.is_generator(self.seed) else None}


class Zeros(Initializer):
    """All weights 0 (the default for biases)."""

    def sample(self, shape):
        return np.zeros(shape)


class Ones(Initializer):
    """All weights 1."""

    def sample(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    """All weights equal to ``value``."""

    def __init__(self, value=0.0):
        self.value = check_float(value, "value")

    def sample(self, shape):
        return np.full(shape, self.value)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(_Random):
    """U(minval, maxval)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval = check_float(minval, "minval")
        self.maxval = check_float(maxval, "maxval")
        if self.maxval < self.minval:
            raise ValueError(f"maxval must be >= minval, got minval={minval}, maxval={maxval}")

    def sample(self, shape):
        return self._rng().uniform(self.minval, self.maxval, shape)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class RandomNormal(_Random):
    """N(mean, stddev^2)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = check_float(mean, "mean")
        self.stddev = check_float(stddev, "stddev", minimum=0.0)

    def sample(self, shape):
        return self.mean + self.stddev * self._rng().standard_normal(shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class TruncatedNormal(_Random):
    """N(mean, stddev^2) with values beyond two standard deviations redrawn."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean = check_float(mean, "mean")
        self.stddev = check_float(stddev, "stddev", minimum=0.0)

    def sample(self, shape):
        return self.mean + self.stddev * _truncated_standard_normal(self._rng(), shape)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


_MODES = {"fan_in": "fan_in", "fan_out": "fan_out", "fan_avg": "fan_avg"}
_DISTRIBUTIONS = {"uniform": "uniform", "truncated_normal": "truncated_normal",
                  "untruncated_normal": "untruncated_normal", "normal": "truncated_normal"}


class VarianceScaling(_Random):
    """Weights with variance ``scale / n``, n a fan of the weight (see the module doc).

    Parameters
    ----------
    scale : float, default 1.0
    mode : {'fan_in', 'fan_out', 'fan_avg'}, default 'fan_in'
    distribution : {'truncated_normal', 'untruncated_normal', 'uniform'}, default 'truncated_normal'
    seed : int, optional
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        self.scale = check_float(scale, "scale", minimum=0.0, min_inclusive=False)
        self.mode = lookup("mode", mode, _MODES)
        self.distribution = lookup("distribution", distribution, _DISTRIBUTIONS)

    def variance(self, shape):
        """scale / n for a weight of ``shape``."""
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        return self.scale / max(1.0, n)

    def sample(self, shape):
        variance = self.variance(shape)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3 * variance)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "untruncated_normal":
            return math.sqrt(variance) * rng.standard_normal(shape)
        stddev = math.sqrt(variance) / _TRUNCATED_STD
        return stddev * _truncated_standard_normal(rng, shape)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                **super().get_config()}


class _Preset(VarianceScaling):
    """A VarianceScaling with fixed (scale, mode, distribution); only ``seed`` is free."""

    _preset = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed=None):
        super().__init__(*self._preset, seed=seed)

    def get_config(self):
        return _Random.get_config(self)


class GlorotUniform(_Preset):
    """U(-limit, limit), limit = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio, 2010).
    The default kernel initializer of Dense."""

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Truncated normal with variance 2 / (fan_in + fan_out)."""

    _preset = (1.0, "fan_avg", "truncated_normal")


class HeUniform(_Preset):
    """U(-limit, limit), limit = sqrt(6 / fan_in) (He et al., 2015; for ReLU)."""

    _preset = (2.0, "fan_in", "uniform")


class HeNormal(_Preset):
    """Truncated normal with variance 2 / fan_in."""

    _preset = (2.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """U(-limit, limit), limit = sqrt(3 / fan_in)."""

    _preset = (1.0, "fan_in", "uniform")


class LecunNormal(_Preset):
    """Truncated normal with variance 1 / fan_in."""

    _preset = (1.0, "fan_in", "truncated_normal")


class Orthogonal(_Random):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2014).

    The weight is viewed as a matrix (prod(shape[:-1]), shape[-1]); its rows
    (if fewer) or columns are orthonormal. Made from the QR decomposition of a
    Gaussian matrix, with the signs of R's diagonal folded into Q so that the
    result is uniformly distributed over orthogonal matrices.
    """

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = check_float(gain, "gain")

    def sample(self, shape):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of at least 2 dimensions, got {shape}")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._rng().standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


_CLASSES = (Zeros, Ones, Constant, RandomUniform, RandomNormal, TruncatedNormal, VarianceScaling,
            GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal, Orthogonal)
_NAMES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform,
    "uniform": RandomUniform, "random_normal": RandomNormal, "normal": RandomNormal,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
    "he_normal": HeNormal, "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
    "orthogonal": Orthogonal,
}
_NAMES.update({cls.__name__.lower(): cls for cls in _CLASSES})
_REGISTRY = Registry("initializer", Initializer, _CLASSES, _NAMES)


def get(identifier, custom_objects=None):
    """The initializer an identifier stands for.

    Parameters
    ----------
    identifier : str, Initializer, Initializer subclass, dict or callable
        A Keras name (``'glorot_uniform'``, ``'he_normal'``, ``'GlorotUniform'``;
        unknown names raise ValueError with a suggestion), an initializer
        (returned as is), a class (instantiated with defaults), a dict from
        :func:`serialize`, or any callable ``f(shape, dtype=None)``.
    custom_objects : dict, optional
        ``{name: Initializer subclass}`` of your own, for names and dicts.
    """
    initializer = _REGISTRY.resolve(identifier, custom_objects)
    if initializer is not None:
        return initializer
    if callable(identifier):
        return identifier
    raise TypeError(
        f"initializer must be a name such as 'glorot_uniform', an Initializer, a config dict "
        f"or a callable, got {type(identifier).__name__}"
    )


def serialize(initializer) -> dict:
    """``{'class_name': ..., 'config': {...}}`` (JSON-able)."""
    initializer = get(initializer)
    if not isinstance(initializer, Initializer):
        raise ValueError(
            f"a custom initializer ({initializer!r}) cannot be serialized; use a fastnn initializer "
            "or subclass fastnn.initializers.Initializer (with get_config)"
        )
    return _REGISTRY.serialize(initializer)


def deserialize(config, custom_objects=None):
    """Inverse of :func:`serialize`: the classes of this module, and Initializer
    subclasses passed in ``custom_objects`` (``{name: class}``)."""
    return _REGISTRY.deserialize(config, custom_objects)
