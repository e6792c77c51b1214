"""Regression metrics: mean squared error, mean absolute error, R^2."""
from __future__ import annotations

import warnings

import numpy as np

from fastnn._validation import check_int
from fastnn.metrics.base import MeanMetricWrapper, Metric, as_arrays

__all__ = ["MeanSquaredError", "MeanAbsoluteError", "R2Score"]


class MeanSquaredError(MeanMetricWrapper):
    """Weighted mean over samples of ``mean((y_true - y_pred)^2)`` over the outputs."""

    default_name = "mean_squared_error"
    direction = "down"

    def __init__(self, name=None):
        super().__init__(name=name)

    def _fn(self, y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2, axis=-1)


class MeanAbsoluteError(MeanMetricWrapper):
    """Weighted mean over samples of ``mean(|y_true - y_pred|)`` over the outputs."""

    default_name = "mean_absolute_error"
    direction = "down"

    def __init__(self, name=None):
        super().__init__(name=name)

    def _fn(self, y_true, y_pred):
        return np.mean(np.abs(y_true - y_pred), axis=-1)


class R2Score(Metric):
    """Coefficient of determination, ``1 - SS_res / SS_tot`` per output, streamed.

    ``SS_tot`` is the (weighted) sum of squared deviations of ``y_true`` from
    its mean over everything seen, accumulated with Chan et al.'s pairwise
    update so a large mean does not cancel precision away. A constant target
    (``SS_tot = 0``) scores 1.0 if predicted exactly, else 0.0 (scikit-learn's
    convention; Keras gives 0.0 or NaN).

    Parameters
    ----------
    class_aggregation : {'uniform_average', 'variance_weighted_average', None}
        How to combine the outputs' scores; None returns the array of per-output scores.
    num_regressors : int, default 0
        ``p`` > 0 gives the adjusted R^2, ``1 - (1 - R^2) (n - 1) / (n - p - 1)``
        with ``n`` the number of samples (unadjusted, with a warning, when ``n - p - 1 <= 0``).
    name : str, default 'r2_score'
    """

    default_name = "r2_score"
    direction = "up"

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name=None):
        if class_aggregation not in ("uniform_average", "variance_weighted_average", None):
            raise ValueError(
                "class_aggregation must be 'uniform_average', 'variance_weighted_average' or None, "
                f"got {class_aggregation!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = check_int(num_regressors, "num_regressors", minimum=0)
        super().__init__(name=name)

    def reset_state(self):
        self.weight = None      # per output: sum of weights
        self.mean = None        # weighted mean of y_true
        self.m2 = None          # weighted sum of squared deviations from the mean (SS_tot)
        self.ss_res = None
        self.num_samples = 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, weights = as_arrays(y_true, y_pred, sample_weight)
        if len(y_pred) == 0:
            return  # an empty batch adds nothing
        y_true = y_true.astype(np.float64).reshape(len(y_true), -1)
        y_pred = y_pred.reshape(len(y_pred), -1)
        if self.weight is not None and y_true.shape[1] != self.weight.shape[0]:
            raise ValueError(f"y_true has {y_true.shape[1]} outputs but earlier batches had {self.weight.shape[0]}")
        w = (np.ones(len(y_true)) if weights is None else weights)[:, None]
        w_b = np.broadcast_to(w.sum(axis=0), (y_true.shape[1],)).astype(np.float64)
        if not np.all(w_b > 0):
            self.num_samples += len(y_true)
            return
        mean_b = (w * y_true).sum(axis=0) / w_b
        m2_b = (w * (y_true - mean_b) ** 2).sum(axis=0)
        res_b = (w * (y_true - y_pred) ** 2).sum(axis=0)
        if self.weight is None:
            self.weight, self.mean, self.m2, self.ss_res = w_b.copy(), mean_b, m2_b, res_b
        else:
            total = self.weight + w_b
            delta = mean_b - self.mean
            self.mean = self.mean + delta * w_b / total
            self.m2 = self.m2 + m2_b + delta ** 2 * self.weight * w_b / total
            self.ss_res = self.ss_res + res_b
            self.weight = total
        self.num_samples += len(y_true)

    def result(self):
        if self.weight is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = np.where(self.m2 > 0, 1.0 - self.ss_res / np.where(self.m2 > 0, self.m2, 1.0),
                           np.where(self.ss_res == 0, 1.0, 0.0))
        if self.class_aggregation is None:
            score = raw
        elif self.class_aggregation == "variance_weighted_average" and np.sum(self.m2) > 0:
            score = float(np.sum(raw * self.m2) / np.sum(self.m2))
        else:
            score = float(np.mean(raw))
        p, n = self.num_regressors, self.num_samples
        if p:
            if n - p - 1 <= 0:
                warnings.warn(f"R2Score: cannot adjust for {p} regressors with {n} samples; "
                              "returning the unadjusted score", RuntimeWarning, stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1) / (n - p - 1)
        return score

    def get_config(self):
        return {"class_aggregation": self.class_aggregation, "num_regressors": self.num_regressors,
                "name": self.name}
