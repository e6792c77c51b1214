"""Weight regularizers: penalties on the size of the weights, added to the loss.

The seed's "weight regularization": training minimises ``loss + penalty(W)``,
which pulls weights towards zero and so limits over-fitting.

===========  ===========================  ==============================
class        penalty(W)                   d penalty / d W
===========  ===========================  ==============================
L1(l1)       l1 * sum |w|                 l1 * sign(w)
L2(l2)       l2 * sum w^2                 2 * l2 * w
L1L2         l1 * sum |w| + l2 * sum w^2  l1 * sign(w) + 2 * l2 * w
===========  ===========================  ==============================

(Keras's convention: no factor 1/2 in the L2 penalty, so its gradient is
``2 * l2 * w``.) The arithmetic runs in the active backend
(``l1l2_penalty`` / ``l1l2_grad``).
"""
from __future__ import annotations

import numpy as np

from fastnn import backends
from fastnn._serialization import Configurable, Registry
from fastnn._validation import as_float_array, check_float

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get", "serialize", "deserialize"]


def _as_weights(w):
    # Float arrays (a layer's own weights, every training step) pass unchecked;
    # anything else is validated and converted.
    if isinstance(w, np.ndarray) and w.dtype in (np.float32, np.float64):
        return w
    return as_float_array(w, "w")


class Regularizer(Configurable):
    """The L1/L2 family: ``l1 * sum|w| + l2 * sum w^2``.

    Subclasses only choose which coefficients they expose; every penalty is
    computed by the same two backend ops.
    """

    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = check_float(l1, "l1", minimum=0.0)
        self.l2 = check_float(l2, "l2", minimum=0.0)

    def __call__(self, w) -> float:
        """The penalty of weight array ``w``."""
        return backends.get().l1l2_penalty(_as_weights(w), self.l1, self.l2)

    def gradient(self, w):
        """d penalty / d w, as a new array of w's shape and dtype."""
        w = _as_weights(w)
        return backends.get().l1l2_grad(w, self.l1, self.l2, np.zeros_like(w))

    def add_gradient(self, w, grad):
        """grad += d penalty / d w, in place (what a layer does after backward); returns grad."""
        return backends.get().l1l2_grad(w, self.l1, self.l2, grad)

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1L2(Regularizer):
    """penalty = l1 * sum|w| + l2 * sum w^2 (Keras defaults: both 0)."""

    def __init__(self, l1=0.0, l2=0.0):
        super().__init__(l1, l2)


class L1(Regularizer):
    """penalty = l1 * sum|w| (drives weights to exactly zero: sparse weights)."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """penalty = l2 * sum w^2 ("weight decay": shrinks all weights smoothly)."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


_REGISTRY = Registry("regularizer", Regularizer, (L1, L2, L1L2),
                     {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2})


def get(identifier, custom_objects=None):
    """The regularizer an identifier stands for.

    Parameters
    ----------
    identifier : None, str, Regularizer, Regularizer subclass or dict
        None gives None (no regularization); ``'l1'``, ``'l2'``, ``'l1_l2'``
        give the class with Keras's default coefficients; a regularizer is
        returned as is; a dict comes from :func:`serialize`.
    custom_objects : dict, optional
        ``{name: Regularizer subclass}`` of your own, for names and dicts.
    """
    if identifier is None:
        return None
    regularizer = _REGISTRY.resolve(identifier, custom_objects)
    if regularizer is not None:
        return regularizer
    raise TypeError(
        f"regularizer must be None, 'l1', 'l2', 'l1_l2', a fastnn.regularizers object or a "
        f"config dict, got {type(identifier).__name__}"
    )


def serialize(regularizer):
    """``{'class_name': ..., 'config': {...}}``, or None for None."""
    regularizer = get(regularizer)
    return None if regularizer is None else _REGISTRY.serialize(regularizer)


def deserialize(config, custom_objects=None):
    """Inverse of :func:`serialize`: the classes of this module, and Regularizer
    subclasses passed in ``custom_objects`` (``{name: class}``); None gives None."""
    if config is None:
        return None
    return _REGISTRY.deserialize(config, custom_objects)
