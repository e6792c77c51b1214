"""Metrics: streaming objects for fit / evaluate, and functional forms.

Names accepted by ``compile(metrics=[...])`` (the name given is the key in
the History and in the logs, as in Keras):

===================================  ===========================================
name                                 metric
===================================  ===========================================
'accuracy', 'acc'                    binary / categorical / sparse accuracy, chosen
                                     from the loss (binary, categorical or sparse
                                     cross-entropy) or else from the data's shapes
'binary_accuracy'                    :class:`BinaryAccuracy` (threshold 0.5)
'categorical_accuracy'               :class:`CategoricalAccuracy`
'sparse_categorical_accuracy'        :class:`SparseCategoricalAccuracy`
'top_k_categorical_accuracy'         :class:`TopKCategoricalAccuracy` (k=5)
'sparse_top_k_categorical_accuracy'  :class:`SparseTopKCategoricalAccuracy` (k=5)
'precision', 'recall'                :class:`Precision`, :class:`Recall` (threshold 0.5)
'auc'                                :class:`AUC` (ROC, 200 thresholds, trapezoids)
'mse', 'mean_squared_error'          :class:`MeanSquaredError`
'mae', 'mean_absolute_error'         :class:`MeanAbsoluteError`
'r2_score'                           :class:`R2Score`
===================================  ===========================================

With a binary cross-entropy loss computed ``from_logits``, the thresholds of
'accuracy', 'binary_accuracy', 'precision' and 'recall' become 0 (a logit > 0
is a probability > 0.5) and 'auc' applies a sigmoid — Keras leaves these at 0.5,
a common source of wrong numbers.

Functional forms (``fastnn.metrics.accuracy(y_true, y_pred)``...) return the
weighted mean over the samples as a float (Keras's return per-sample arrays);
:func:`auc` is the *exact* ROC AUC, where the streaming :class:`AUC` is
Keras's thresholded approximation.
"""
from __future__ import annotations

import numpy as np

from fastnn._validation import lookup
from fastnn.metrics.accuracy import (
    BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, SparseTopKCategoricalAccuracy,
    TopKCategoricalAccuracy)
from fastnn.metrics.base import Mean, MeanMetricWrapper, Metric
from fastnn.metrics.confusion import AUC, Precision, Recall, roc_auc_exact
from fastnn.metrics.inferred import InferredAccuracy, infer_accuracy_kind, loss_kind, accuracy_for
from fastnn.metrics.regression import MeanAbsoluteError, MeanSquaredError, R2Score

__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy",
    "Precision", "Recall", "AUC", "MeanSquaredError", "MeanAbsoluteError", "R2Score",
    "InferredAccuracy", "get", "serialize", "deserialize",
    "accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "precision", "recall",
    "auc", "mean_squared_error", "mse", "mean_absolute_error", "mae", "r2_score",
]

_CLASSES = {cls.__name__: cls for cls in (
    BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
    SparseTopKCategoricalAccuracy, Precision, Recall, AUC, MeanSquaredError, MeanAbsoluteError,
    R2Score, InferredAccuracy)}

# string identifier -> class (accuracy/acc are handled separately)
_BY_NAME = {
    "binary_accuracy": BinaryAccuracy,
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "r2_score": R2Score,
}
_BY_NAME.update({name.lower(): cls for name, cls in _CLASSES.items() if cls is not InferredAccuracy})
_ACCURACY_NAMES = ("accuracy", "acc")


def get(identifier, loss=None) -> Metric:
    """A metric object from a name, a config dict, a metric object or a function.

    Parameters
    ----------
    identifier : str, dict, Metric or callable
        A name from the table in :mod:`fastnn.metrics` (the name given becomes
        the metric's ``name``, as in Keras); a :func:`serialize` dict; a metric
        (returned as is); or a function ``fn(y_true, y_pred) -> per-sample
        values``, averaged under the name ``fn.__name__``.
    loss : str or loss object, optional
        The model's loss: decides what 'accuracy' means and whether predictions
        are logits.
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        kind, from_logits = loss_kind(loss)
        binary_logits = kind == "binary" and from_logits
        key = identifier.lower()
        if key in _ACCURACY_NAMES:
            threshold = 0.0 if binary_logits else 0.5
            if kind is None:
                return InferredAccuracy(name=identifier, threshold=threshold)
            return accuracy_for(kind, identifier, threshold)
        cls = lookup("metric", identifier, {**_BY_NAME, **{n: None for n in _ACCURACY_NAMES}})
        if binary_logits and cls is BinaryAccuracy:
            return cls(name=identifier, threshold=0.0)
        if binary_logits and cls in (Precision, Recall):
            return cls(name=identifier, thresholds=0.0)
        if binary_logits and cls is AUC:
            return cls(name=identifier, from_logits=True)
        return cls(name=identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(
        f"metric must be a name such as 'accuracy', a Metric or a function, got {type(identifier).__name__}")


def serialize(metric: Metric) -> dict:
    """``{"class_name": ..., "config": ...}`` (JSON-able) for a metric object.

    Built-in metrics deserialize by name; a custom ``Metric`` subclass needs
    ``custom_objects={"ClassName": cls}`` in :func:`deserialize`. A metric made
    from a plain function cannot be stored (the function is code): TypeError.
    """
    if not isinstance(metric, Metric):
        raise TypeError(f"metric must be a fastnn.metrics.Metric, got {type(metric).__name__}")
    if type(metric) is MeanMetricWrapper:
        raise TypeError(
            f"metric {metric.name!r} wraps a Python function, which cannot be serialized; "
            "subclass fastnn.metrics.Metric (with get_config) and pass it in custom_objects when loading")
    return {"class_name": type(metric).__name__, "config": metric.get_config()}


def deserialize(config: dict, custom_objects=None) -> Metric:
    """Rebuild a metric from :func:`serialize`'s output (known classes only; nothing is imported)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise TypeError("config must be a dict with keys 'class_name' and 'config'")
    table = {k.lower(): v for k, v in _CLASSES.items()}
    table.update({k.lower(): v for k, v in (custom_objects or {}).items()})
    cls = lookup("metric", config["class_name"], table)
    return cls.from_config(dict(config.get("config", {})))


# -- functional forms: the weighted mean over the samples, as a float --------------------
def accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Binary, categorical or sparse accuracy, chosen from the shapes as 'accuracy' is."""
    kind = infer_accuracy_kind(np.shape(y_true), np.shape(y_pred))
    return accuracy_for(kind)(y_true, y_pred, sample_weight)


def binary_accuracy(y_true, y_pred, threshold=0.5, sample_weight=None) -> float:
    """Fraction of outputs with ``(y_pred > threshold) == y_true``."""
    return BinaryAccuracy(threshold=threshold)(y_true, y_pred, sample_weight)


def categorical_accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Fraction of samples with ``argmax(y_pred) == argmax(y_true)`` (one-hot labels)."""
    return CategoricalAccuracy()(y_true, y_pred, sample_weight)


def sparse_categorical_accuracy(y_true, y_pred, sample_weight=None) -> float:
    """Fraction of samples with ``argmax(y_pred) == y_true`` (class indices)."""
    return SparseCategoricalAccuracy()(y_true, y_pred, sample_weight)


def top_k_categorical_accuracy(y_true, y_pred, k=5, sample_weight=None) -> float:
    """Fraction of samples whose one-hot class is among the ``k`` top predictions."""
    return TopKCategoricalAccuracy(k=k)(y_true, y_pred, sample_weight)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, sample_weight=None) -> float:
    """Fraction of samples whose class index is among the ``k`` top predictions."""
    return SparseTopKCategoricalAccuracy(k=k)(y_true, y_pred, sample_weight)


def precision(y_true, y_pred, threshold=0.5, sample_weight=None) -> float:
    """``TP / (TP + FP)`` with ``y_pred > threshold`` predicted positive."""
    return Precision(thresholds=threshold)(y_true, y_pred, sample_weight)


def recall(y_true, y_pred, threshold=0.5, sample_weight=None) -> float:
    """``TP / (TP + FN)`` with ``y_pred > threshold`` predicted positive."""
    return Recall(thresholds=threshold)(y_true, y_pred, sample_weight)


def auc(y_true, y_pred, sample_weight=None) -> float:
    """The exact ROC AUC (see :func:`fastnn.metrics.confusion.roc_auc_exact`)."""
    return roc_auc_exact(y_true, y_pred, sample_weight)


def mean_squared_error(y_true, y_pred, sample_weight=None) -> float:
    """Weighted mean over samples of the mean squared difference over outputs."""
    return MeanSquaredError()(y_true, y_pred, sample_weight)


def mean_absolute_error(y_true, y_pred, sample_weight=None) -> float:
    """Weighted mean over samples of the mean absolute difference over outputs."""
    return MeanAbsoluteError()(y_true, y_pred, sample_weight)


mse = mean_squared_error
mae = mean_absolute_error


def r2_score(y_true, y_pred, sample_weight=None, class_aggregation="uniform_average") -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (scikit-learn's ``r2_score``)."""
    return R2Score(class_aggregation=class_aggregation)(y_true, y_pred, sample_weight)
