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
Keras's thresholded approximation. Passed to ``compile(metrics=[...])`` (or to
:func:`get`), one of these functions means the streaming metric of its name, so
that precision, recall, AUC and R^2 are taken over the whole epoch rather than
averaged over batches, and the model can be saved.
"""
from __future__ import annotations

import numpy as np

from fastnn._serialization import Registry
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

_CLASSES = (BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
            SparseTopKCategoricalAccuracy, Precision, Recall, AUC, MeanSquaredError,
            MeanAbsoluteError, R2Score, InferredAccuracy, Mean, MeanMetricWrapper)

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
_BY_NAME.update({cls.__name__.lower(): cls for cls in _CLASSES[:-3]})  # not the inferred or generic ones
_ACCURACY_NAMES = ("accuracy", "acc")
_REGISTRY = Registry("metric", Metric, _CLASSES, {**_BY_NAME, **dict.fromkeys(_ACCURACY_NAMES)})


def get(identifier, loss=None, custom_objects=None) -> Metric:
    """A metric object from a name, a config dict, a metric object or a function.

    Parameters
    ----------
    identifier : str, dict, Metric or callable
        A name from the table in :mod:`fastnn.metrics` (the name given becomes
        the metric's ``name``, as in Keras); a :func:`serialize` dict; a metric
        (returned as is); one of this module's functions (``fastnn.metrics.auc``,
        ``fastnn.metrics.precision``...), which means the metric of that name:
        the streaming object, so that ratios such as precision or AUC are taken
        over the whole epoch rather than averaged over batches; or a function
        ``fn(y_true, y_pred) -> per-sample values`` of your own, averaged under
        the name ``fn.__name__``.
    loss : str or loss object, optional
        The model's loss: decides what 'accuracy' means and whether predictions
        are logits.
    custom_objects : dict, optional
        ``{name: Metric subclass}`` of your own, for dicts and names (a name
        gives the class built without arguments).
    """
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects)
    if isinstance(identifier, str):
        kind, from_logits = loss_kind(loss)
        binary_logits = kind == "binary" and from_logits
        key = identifier.lower()
        if key in _ACCURACY_NAMES:
            threshold = 0.0 if binary_logits else 0.5
            if kind is None:
                return InferredAccuracy(name=identifier, threshold=threshold)
            return accuracy_for(kind, identifier, threshold)
        cls = _REGISTRY.class_for_name(identifier, custom_objects)
        if cls not in _BY_NAME.values():
            return cls()  # a class of the caller's (custom_objects)
        if binary_logits and cls is BinaryAccuracy:
            return cls(name=identifier, threshold=0.0)
        if binary_logits and cls in (Precision, Recall):
            return cls(name=identifier, thresholds=0.0)
        if binary_logits and cls is AUC:
            return cls(name=identifier, from_logits=True)
        return cls(name=identifier)
    if callable(identifier):
        name = _function_name(identifier)
        if name is not None:
            return get(name, loss=loss)
        return MeanMetricWrapper(identifier)
    raise TypeError(
        f"metric must be a name such as 'accuracy', a Metric or a function, got {type(identifier).__name__}")


def serialize(metric: Metric) -> dict:
    """``{"class_name": ..., "config": ...}`` (JSON-able) for a metric object.

    Built-in metrics deserialize by name; a custom ``Metric`` subclass needs
    ``custom_objects={"ClassName": cls}`` in :func:`deserialize` (and in
    :func:`fastnn.models.load_model`). A :class:`MeanMetricWrapper` of one of
    this module's functions is stored by the function's name. One of a function
    of your own cannot be stored (the function is code, and a saved file holds
    none): TypeError, saying how to make it a class instead.
    """
    if not isinstance(metric, Metric):
        raise TypeError(f"metric must be a fastnn.metrics.Metric, got {type(metric).__name__}")
    config = _REGISTRY.serialize(metric)
    if type(metric) is MeanMetricWrapper:
        fn = metric._fn
        fn_name = _function_name(fn)
        if fn_name is None:
            raise TypeError(
                f"metric {metric.name!r} wraps the Python function "
                f"{getattr(fn, '__name__', type(fn).__name__)!r}, which cannot be serialized (a "
                f"saved model holds no code); to save the model, compile it with a subclass of "
                f"fastnn.metrics.Metric (update_state, result, reset_state, get_config) and load it "
                f"with load_model(path, custom_objects={{'YourMetric': YourMetric}})")
        config["config"]["fn"] = fn_name
    return config


def deserialize(config: dict, custom_objects=None) -> Metric:
    """Rebuild a metric from :func:`serialize`'s output: the classes of this package,
    and Metric subclasses passed in ``custom_objects`` (``{name: class}``); nothing
    named in ``config`` is imported."""
    return _REGISTRY.deserialize(config, custom_objects, build=_build)


def _build(cls, config):
    if cls is MeanMetricWrapper:  # stored with the name of one of this module's functions
        fn_name = config.pop("fn", None)
        fn = _FUNCTIONS_BY_NAME.get(fn_name) if isinstance(fn_name, str) else None
        if fn is None:
            raise ValueError(f"MeanMetricWrapper: 'fn' must name one of fastnn.metrics' functions "
                             f"{sorted(_FUNCTIONS_BY_NAME)}, got {fn_name!r}")
        return MeanMetricWrapper(fn, **config)
    return cls.from_config(config)


def _function_name(fn):
    """The name of ``fn`` if it is one of this module's functional metrics, else None."""
    try:
        return _FUNCTION_NAMES.get(fn)
    except TypeError:  # an unhashable callable
        return None


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


# This module's functions, as names: get() turns one into the metric of that name.
_FUNCTION_NAMES = {fn: fn.__name__ for fn in (
    accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
    top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, precision, recall, auc,
    mean_squared_error, mean_absolute_error, r2_score)}
_FUNCTIONS_BY_NAME = {name: fn for fn, name in _FUNCTION_NAMES.items()}
