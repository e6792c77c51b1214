"""Weight constraints: projections applied to a weight after every optimizer update.

The seed's "weight clipping" (:class:`ClipValue`) and Keras's norm constraints.
Norms are taken along ``axis``; for a Dense kernel (inputs, units) the default
``axis=0`` constrains each unit's vector of incoming weights.

===================================  ===========================================
constraint                           w after the projection
===================================  ===========================================
MaxNorm(max_value=2, axis=0)         w * min(||w||, max) / (eps + ||w||)
MinMaxNorm(min, max, rate, axis=0)   w * (rate * clip(||w||, min, max)
                                     + (1 - rate) * ||w||) / (eps + ||w||)
NonNeg()                             w * (w >= 0)
UnitNorm(axis=0)                     w / (eps + ||w||)
ClipValue(min_value, max_value)      clip(w, min_value, max_value)
===================================  ===========================================

``eps = 1e-7`` (Keras's epsilon) keeps the division finite for a zero vector.
``constraint(w)`` returns a new array; ``constraint.apply_(w)`` writes in place.
"""
from __future__ import annotations

import numbers

import numpy as np

from fastnn._serialization import Configurable, Registry
from fastnn._validation import as_float_array, check_float

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "ClipValue", "get",
           "serialize", "deserialize"]

EPSILON = 1e-7


def _as_weights(w):
    if isinstance(w, np.ndarray) and w.dtype in (np.float32, np.float64):
        return w
    return as_float_array(w, "w")


def _check_axis(axis):
    if isinstance(axis, (list, tuple)):
        return tuple(_check_axis(a) for a in axis)
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
    return int(axis)


class Constraint(Configurable):
    """Base class: ``project(w)`` is the formula; ``__call__`` and ``apply_`` wrap it.

    Subclasses implement ``project`` and ``get_config`` (the constructor's
    arguments); equality, ``repr`` and ``from_config`` follow from the config.
    """

    def project(self, w):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, w):
        """The projected weights, as a new array of w's dtype."""
        w = _as_weights(w)
        return np.ascontiguousarray(self.project(w), dtype=w.dtype)

    def apply_(self, w):
        """Project ``w`` (a float ndarray) in place; returns ``w``."""
        if not isinstance(w, np.ndarray) or w.dtype not in (np.float32, np.float64):
            raise TypeError("apply_ needs a float32 or float64 numpy array")
        w[...] = self.project(w)
        return w

    def _norms(self, w):
        """||w|| along self.axis, keeping dims so it broadcasts against w."""
        return np.sqrt(np.sum(w * w, axis=self.axis, keepdims=True))


class MaxNorm(Constraint):
    """Rescale each weight vector whose L2 norm exceeds ``max_value`` down to it."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = check_float(max_value, "max_value", minimum=0.0)
        self.axis = _check_axis(axis)

    def project(self, w):
        norms = self._norms(w)
        desired = np.clip(norms, 0, self.max_value)
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


class MinMaxNorm(Constraint):
    """Move each weight vector's norm into [min_value, max_value] (a fraction ``rate`` of the way)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = check_float(min_value, "min_value", minimum=0.0)
        self.max_value = check_float(max_value, "max_value", minimum=self.min_value)
        self.rate = check_float(rate, "rate", minimum=0.0, maximum=1.0)
        self.axis = _check_axis(axis)

    def project(self, w):
        norms = self._norms(w)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) \
            + (1 - self.rate) * norms
        return w * (desired / (EPSILON + norms))

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


class NonNeg(Constraint):
    """Set negative weights to zero."""

    def project(self, w):
        return w * (w >= 0)


class UnitNorm(Constraint):
    """Scale each weight vector to unit L2 norm."""

    def __init__(self, axis=0):
        self.axis = _check_axis(axis)

    def project(self, w):
        return w / (EPSILON + self._norms(w))

    def get_config(self):
        return {"axis": self.axis}


class ClipValue(Constraint):
    """Clip every weight to [min_value, max_value] (weight clipping).

    Parameters
    ----------
    min_value, max_value : float
        The bounds, ``min_value <= max_value``. ``ClipValue(-c, c)`` is the
        classic symmetric clipping.
    """

    def __init__(self, min_value, max_value):
        self.min_value = check_float(min_value, "min_value")
        self.max_value = check_float(max_value, "max_value", minimum=self.min_value)

    def project(self, w):
        return np.clip(w, self.min_value, self.max_value)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value}


# ClipValue has no defaults, so it has no string name: build it with its bounds.
_REGISTRY = Registry("constraint", Constraint, (MaxNorm, MinMaxNorm, NonNeg, UnitNorm, ClipValue), {
    "max_norm": MaxNorm, "maxnorm": MaxNorm, "min_max_norm": MinMaxNorm,
    "minmaxnorm": MinMaxNorm, "non_neg": NonNeg, "nonneg": NonNeg,
    "unit_norm": UnitNorm, "unitnorm": UnitNorm})


def get(identifier, custom_objects=None):
    """The constraint an identifier stands for.

    Parameters
    ----------
    identifier : None, str, Constraint, Constraint subclass, dict or callable
        None gives None; ``'max_norm'``, ``'min_max_norm'``, ``'non_neg'``,
        ``'unit_norm'`` give the class with Keras's defaults; a constraint is
        returned as is; a class is instantiated with its defaults; a dict comes
        from :func:`serialize`; any other callable ``f(w) -> w'`` is used as is.
    custom_objects : dict, optional
        ``{name: Constraint subclass}`` of your own, for names and dicts.
    """
    if identifier is None:
        return None
    constraint = _REGISTRY.resolve(identifier, custom_objects)
    if constraint is not None:
        return constraint
    if callable(identifier):
        return identifier
    raise TypeError(
        f"constraint must be None, a name such as 'max_norm', a fastnn.constraints object, a "
        f"config dict or a callable, got {type(identifier).__name__}"
    )


def serialize(constraint):
    """``{'class_name': ..., 'config': {...}}``, or None for None."""
    constraint = get(constraint)
    if constraint is None:
        return None
    if not isinstance(constraint, Constraint):
        raise ValueError(f"a custom constraint ({constraint!r}) cannot be serialized; subclass "
                         "fastnn.constraints.Constraint (with get_config) to save it")
    config = _REGISTRY.serialize(constraint)
    if isinstance(config["config"].get("axis"), tuple):
        config["config"]["axis"] = list(config["config"]["axis"])  # JSON has no tuples
    return config


def deserialize(config, custom_objects=None):
    """Inverse of :func:`serialize`: the classes of this module, and Constraint
    subclasses passed in ``custom_objects`` (``{name: class}``); None gives None."""
    if config is None:
        return None
    return _REGISTRY.deserialize(config, custom_objects)
