"""The 'accuracy' of compile(): binary, categorical or sparse, chosen as Keras does."""
from __future__ import annotations

import re

import numpy as np

from fastnn.metrics.accuracy import BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy
from fastnn.metrics.base import Metric

__all__ = ["loss_kind", "infer_accuracy_kind", "accuracy_for", "InferredAccuracy"]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def loss_kind(loss):
    """``(kind, from_logits)`` for a loss name or object.

    ``kind`` is ``'binary'``, ``'categorical'`` or ``'sparse'`` for the
    cross-entropies (by name: a string, the object's ``name`` or its class
    name), None for anything else.
    """
    if loss is None:
        return None, False
    names = []
    if isinstance(loss, str):
        names.append(loss.lower())
    else:
        for attr in ("name", "fn_name"):
            value = getattr(loss, attr, None)
            if isinstance(value, str):
                names.append(value.lower())
        names.append(_snake(type(loss).__name__))
        if callable(loss) and getattr(loss, "__name__", None):
            names.append(loss.__name__.lower())
    from_logits = bool(getattr(loss, "from_logits", False)) if not isinstance(loss, str) else False
    for name in names:
        if "sparse_categorical" in name:
            return "sparse", from_logits
        if "categorical" in name:
            return "categorical", from_logits
        if "binary" in name:
            return "binary", from_logits
    return None, from_logits


def infer_accuracy_kind(y_true_shape, y_pred_shape) -> str:
    """Keras's rule: one output column -> binary; labels with one value per sample
    against several columns -> sparse; otherwise categorical (one-hot)."""
    y_true_shape, y_pred_shape = tuple(y_true_shape), tuple(y_pred_shape)
    if len(y_pred_shape) <= 1 or y_pred_shape[-1] == 1:
        return "binary"
    if len(y_true_shape) < len(y_pred_shape) or y_true_shape[-1] == 1:
        return "sparse"
    return "categorical"


def accuracy_for(kind, name="accuracy", threshold=0.5):
    """The accuracy metric object of ``kind``, reported under ``name``."""
    if kind == "binary":
        return BinaryAccuracy(name=name, threshold=threshold)
    if kind == "sparse":
        return SparseCategoricalAccuracy(name=name)
    if kind == "categorical":
        return CategoricalAccuracy(name=name)
    raise ValueError(f"kind must be 'binary', 'categorical' or 'sparse', got {kind!r}")


class InferredAccuracy(Metric):
    """'accuracy' whose kind is decided from the shapes of the first batch it sees.

    :func:`fastnn.metrics.get` returns this only when the loss does not settle
    the kind (e.g. a mean squared error loss); :attr:`inner` is the concrete
    metric once chosen.
    """

    default_name = "accuracy"
    direction = "up"

    def __init__(self, name=None, threshold=0.5):
        self.threshold = threshold
        self.inner = None
        super().__init__(name=name)

    @property
    def kind(self):
        return None if self.inner is None else {
            BinaryAccuracy: "binary", SparseCategoricalAccuracy: "sparse",
            CategoricalAccuracy: "categorical"}[type(self.inner)]

    def reset_state(self):
        if self.inner is not None:
            self.inner.reset_state()

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.inner is None:
            kind = infer_accuracy_kind(np.shape(y_true), np.shape(y_pred))
            self.inner = accuracy_for(kind, self.name, self.threshold)
        self.inner.update_state(y_true, y_pred, sample_weight)

    def update_state_from_totals(self, total, count):
        if self.inner is None:
            raise ValueError("InferredAccuracy has not seen data yet, so its kind is not known")
        self.inner.update_state_from_totals(total, count)

    def result(self):
        return 0.0 if self.inner is None else self.inner.result()

    def get_config(self):
        return {"name": self.name, "threshold": self.threshold}
