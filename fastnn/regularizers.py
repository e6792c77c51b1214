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
from fastnn._validation import as_float_array, check_float, lookup

__all__ = ["Regularizer", "L1", "L2", "L1L2", "get", "serialize", "deserialize"]


def _as_weights(w):
    # Float arrays (a layer's own weights, every training step) pass unchecked;
    # anything else is validated and converted.
    if isinstance(w, np.ndarray) and w.dtype in (np.float32, np.float64):
        return w
    return as_float_array(w, "w")


class Regularizer:
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

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, self.l1, self.l2))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


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


_CLASSES = {"L1": L1, "L2": L2, "L1L2": L1L2}
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier):
    """The regularizer an identifier stands for.

    Parameters
    ----------
    identifier : None, str, Regularizer, Regularizer subclass or dict
        None gives None (no regularization); ``'l1'``, ``'l2'``, ``'l1_l2'``
        give the class with Keras's default coefficients; a regularizer is
        returned as is; a dict comes from :func:`serialize`.
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        return lookup("regularizer", identifier, _NAMES)()
    if isinstance(identifier, type) and issubclass(identifier, Regularizer):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(
        f"regularizer must be None, 'l1', 'l2', 'l1_l2', a fastnn.regularizers object or a "
        f"config dict, got {type(identifier).__name__}"
    )


def serialize(regularizer):
    """``{'class_name': ..., 'config': {...}}``, or None for None."""
    regularizer = get(regularizer)
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}


def deserialize(config):
    """Inverse of :func:`serialize`; only the classes of this module are accepted."""
    if config is None:
        return None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"regularizer config must be a dict with 'class_name' and 'config', got {config!r}"
        )
    cls = lookup("regularizer class", config["class_name"],
                 {k.lower(): v for k, v in _CLASSES.items()})
    try:
        return cls.from_config(dict(config.get("config") or {}))
    except TypeError as exc:
        raise ValueError(f"invalid config for {cls.__name__}: {exc}") from None
