"""Metric base classes: streaming state, ``update_state / result / reset_state``.

A metric accumulates over batches (an epoch, an evaluate call) and reports
one float::

    m = fastnn.metrics.BinaryAccuracy()
    m.update_state(y_true, y_pred, sample_weight=None)
    m.result()        # weighted mean over everything seen since the last reset
    m.reset_state()

Sample weights weight each sample's contribution (Keras semantics).
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["Metric", "Mean", "MeanMetricWrapper"]


def as_arrays(y_true, y_pred, sample_weight=None, *, sparse=False):
    """``y_true``, ``y_pred`` (float64) and per-sample weights (float64 or None), checked.

    Predictions may hold NaN/inf (a diverged model must still be measurable).
    Unless ``sparse``, a ``y_true`` of one dimension less than ``y_pred`` gets a
    trailing axis (labels ``(n,)`` against predictions ``(n, 1)``), and 1-D
    ``y_true``/``y_pred`` are treated as ``(n, 1)``.
    """
    y_true = _numeric(y_true, "y_true")
    y_pred = _numeric(y_pred, "y_pred").astype(np.float64, copy=False)
    if y_true.ndim == 0 or y_pred.ndim == 0:
        raise ValueError(f"y_true and y_pred must have a sample axis, got shapes {y_true.shape} and {y_pred.shape}")
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} samples but y_pred has {len(y_pred)}")
    if not sparse:
        if y_pred.ndim == 1:
            y_pred = y_pred[:, None]
        if y_true.ndim == y_pred.ndim - 1:
            y_true = y_true[..., None]
        if y_true.shape != y_pred.shape:
            raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    weights = None
    if sample_weight is not None:
        weights = _numeric(sample_weight, "sample_weight").astype(np.float64, copy=False)
        if weights.ndim == 2 and weights.shape[1] == 1:
            weights = weights[:, 0]
        if weights.ndim == 0:
            weights = np.full(len(y_pred), float(weights))
        if weights.shape != (len(y_pred),):
            raise ValueError(f"sample_weight must have shape ({len(y_pred)},), got {weights.shape}")
        if not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError("sample_weight must be finite and >= 0")
    return y_true, y_pred, weights


def _numeric(x, name):
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got {type(x).__name__}")
    try:
        arr = np.asarray(x)
    except ValueError as exc:
        raise ValueError(f"{name}: could not make an array ({exc}); is it ragged?") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


class Metric:
    """Base class of streaming metrics.

    Attributes
    ----------
    name : str
        The key under which fit and evaluate report it (``'accuracy'``, ``'val_accuracy'``).
    direction : {'up', 'down'} or None
        Whether larger values are better; callbacks' ``mode='auto'`` reads it.
    """

    direction = None
    default_name = "metric"

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.name = name or self.default_name
        self.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """Update with one batch and return the result so far (as Keras does)."""
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


class Mean(Metric):
    """Weighted mean of values: ``sum(w * v) / sum(w)`` (0.0 before any update)."""

    default_name = "mean"

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None):
        values = _numeric(values, "values").astype(np.float64, copy=False)
        if sample_weight is None:
            self.total += float(values.sum())
            self.count += float(values.size)
            return
        weights = np.broadcast_to(_numeric(sample_weight, "sample_weight").astype(np.float64), values.shape)
        self.total += float((weights * values).sum())
        self.count += float(weights.sum())

    def update_state_from_totals(self, total, count):
        """Add precomputed sums: ``total`` = sum of weighted values, ``count`` = sum of weights.

        For compiled training loops that count, e.g., correct predictions
        themselves: ``acc.update_state_from_totals(n_correct, n_samples)``.
        """
        if isinstance(total, bool) or not isinstance(total, numbers.Real):
            raise TypeError(f"total must be a number, got {total!r}")
        if isinstance(count, bool) or not isinstance(count, numbers.Real) or count < 0:
            raise ValueError(f"count must be a number >= 0, got {count!r}")
        self.total += float(total)
        self.count += float(count)

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The weighted mean over samples of ``fn(y_true, y_pred)`` (one value per sample).

    ``fn`` returns an array of per-sample values (or anything whose mean over
    the trailing axes is per-sample). Built-in metrics such as the accuracies,
    ``mse`` and ``mae`` are this with a fixed ``fn``; :func:`fastnn.metrics.get`
    wraps a user function this way.
    """

    default_name = "mean_metric_wrapper"
    sparse_labels = False  # whether y_true holds class indices rather than y_pred's shape

    def __init__(self, fn=None, name=None, **kwargs):
        if fn is not None:
            if not callable(fn):
                raise TypeError(f"fn must be callable, got {type(fn).__name__}")
            self._fn = fn
        self._fn_kwargs = kwargs
        if name is None and fn is not None:
            name = getattr(fn, "__name__", None)
        super().__init__(name=name)

    def _fn(self, y_true, y_pred, **kwargs):  # overridden by the instance attribute or a subclass
        raise NotImplementedError

    def _per_sample(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self._fn_kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, weights = as_arrays(y_true, y_pred, sample_weight, sparse=self.sparse_labels)
        if len(y_pred) == 0:
            return  # an empty batch adds nothing (Keras: 0 to the total and the count)
        values = np.asarray(self._per_sample(y_true, y_pred), dtype=np.float64)
        if values.ndim == 0:
            values = np.full(len(y_pred), float(values))
        values = values.reshape(len(y_pred), -1).mean(axis=1)
        if weights is None:
            self.total += float(values.sum())
            self.count += float(len(values))
        else:
            self.total += float(weights @ values)
            self.count += float(weights.sum())

    def get_config(self):
        return {"name": self.name, **self._fn_kwargs}
