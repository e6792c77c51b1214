"""Accuracy metrics: binary (threshold), categorical (argmax), sparse (argmax vs index), top-k."""
from __future__ import annotations

import numpy as np

from fastnn._validation import check_float, check_int
from fastnn.metrics.base import MeanMetricWrapper

__all__ = [
    "BinaryAccuracy", "CategoricalAccuracy", "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "binary_accuracy_per_sample", "categorical_accuracy_per_sample",
    "sparse_categorical_accuracy_per_sample", "top_k_categorical_accuracy_per_sample",
    "sparse_top_k_categorical_accuracy_per_sample",
]


def binary_accuracy_per_sample(y_true, y_pred, threshold=0.5):
    """Per sample, the fraction of outputs where ``(y_pred > threshold) == y_true``."""
    return np.mean(y_true == (y_pred > threshold), axis=-1)


def categorical_accuracy_per_sample(y_true, y_pred):
    """1.0 where ``argmax(y_pred) == argmax(y_true)`` (one-hot labels), else 0.0."""
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _sparse_labels(y_true, y_pred):
    y_true = np.asarray(y_true)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    if y_true.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"y_true must hold one class index per sample (shape {y_pred.shape[:-1]}) for "
            f"y_pred of shape {y_pred.shape}, got shape {y_true.shape}")
    return y_true


def sparse_categorical_accuracy_per_sample(y_true, y_pred):
    """1.0 where ``argmax(y_pred) == y_true`` (class indices), else 0.0."""
    y_true = _sparse_labels(y_true, y_pred)
    return (np.argmax(y_pred, axis=-1) == y_true).astype(np.float64)


def _in_top_k(target, y_pred, k):
    # Keras's in_top_k: the target counts when its score is >= the k-th largest,
    # i.e. fewer than k scores beat it (ties go in the target's favour).
    target = np.asarray(target, dtype=np.int64)
    if target.size and (target.min() < 0 or target.max() >= y_pred.shape[-1]):
        raise ValueError(f"y_true has class indices outside [0, {y_pred.shape[-1] - 1}]")
    score = np.take_along_axis(y_pred, target[..., None], axis=-1)
    beaten_by = np.sum(y_pred > score, axis=-1)
    return ((beaten_by < k) & np.isfinite(score[..., 0])).astype(np.float64)


def top_k_categorical_accuracy_per_sample(y_true, y_pred, k=5):
    """1.0 where the true class (argmax of one-hot ``y_true``) is among the ``k`` top scores."""
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy_per_sample(y_true, y_pred, k=5):
    """1.0 where the class index ``y_true`` is among the ``k`` top scores."""
    y_true = _sparse_labels(y_true, y_pred)
    if np.any(y_true != np.round(y_true)):
        raise ValueError("y_true must hold integer class indices")
    return _in_top_k(y_true, y_pred, k)


class BinaryAccuracy(MeanMetricWrapper):
    """How often ``(y_pred > threshold)`` equals the 0/1 label, averaged over outputs and samples.

    Parameters
    ----------
    name : str, default 'binary_accuracy'
    threshold : float, default 0.5
        Use 0.0 when the model outputs logits (``fastnn.metrics.get`` does that
        for a binary cross-entropy loss with ``from_logits=True``).
    """

    default_name = "binary_accuracy"
    direction = "up"

    def __init__(self, name=None, threshold=0.5):
        super().__init__(name=name, threshold=check_float(threshold, "threshold"))

    @property
    def threshold(self):
        return self._fn_kwargs["threshold"]

    def _fn(self, y_true, y_pred, threshold):
        return binary_accuracy_per_sample(y_true, y_pred, threshold)


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of the prediction is the arg-max of the one-hot label."""

    default_name = "categorical_accuracy"
    direction = "up"

    def __init__(self, name=None):
        super().__init__(name=name)

    def _fn(self, y_true, y_pred):
        return categorical_accuracy_per_sample(y_true, y_pred)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the arg-max of the prediction is the integer label."""

    default_name = "sparse_categorical_accuracy"
    direction = "up"
    sparse_labels = True

    def __init__(self, name=None):
        super().__init__(name=name)

    def _fn(self, y_true, y_pred):
        return sparse_categorical_accuracy_per_sample(y_true, y_pred)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot label's class is among the ``k`` highest predictions (k=5)."""

    default_name = "top_k_categorical_accuracy"
    direction = "up"

    def __init__(self, k=5, name=None):
        super().__init__(name=name, k=check_int(k, "k", minimum=1))

    def _fn(self, y_true, y_pred, k):
        return top_k_categorical_accuracy_per_sample(y_true, y_pred, k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the ``k`` highest predictions (k=5)."""

    default_name = "sparse_top_k_categorical_accuracy"
    direction = "up"
    sparse_labels = True

    def __init__(self, k=5, name=None):
        super().__init__(name=name, k=check_int(k, "k", minimum=1))

    def _fn(self, y_true, y_pred, k):
        return sparse_top_k_categorical_accuracy_per_sample(y_true, y_pred, k)
