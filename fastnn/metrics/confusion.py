"""Confusion-matrix metrics: Precision, Recall, AUC (Keras semantics), and the exact ROC AUC."""
from __future__ import annotations

import numpy as np

from fastnn._validation import check_float, check_int
from fastnn.metrics.base import Metric, as_arrays

__all__ = ["Precision", "Recall", "AUC", "roc_auc_exact"]


def _one_hot_if_sparse(y_true, y_pred):
    """Labels ``(n,)`` / ``(n, 1)`` against ``(n, C>1)`` predictions become one-hot."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 2 and y_pred.shape[1] > 1:
        labels = y_true[:, 0] if (y_true.ndim == 2 and y_true.shape[1] == 1) else y_true
        if labels.ndim == 1:
            if labels.size and (np.any(labels != np.round(labels)) or labels.min() < 0
                                or labels.max() >= y_pred.shape[1]):
                raise ValueError(
                    f"y_true holds one value per sample but y_pred has {y_pred.shape[1]} columns; "
                    f"it must then be class indices in [0, {y_pred.shape[1] - 1}]")
            return np.eye(y_pred.shape[1])[labels.astype(np.int64)]
    return y_true


class _Confusion(Metric):
    """Weighted true/false positive counts at one threshold, over every output element."""

    direction = "up"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None):
        self.top_k = check_int(top_k, "top_k", minimum=1, allow_none=True)
        self.class_id = check_int(class_id, "class_id", minimum=0, allow_none=True)
        if thresholds is None:
            # Keras: with top_k, every top-k prediction is a positive one.
            thresholds = 0.5 if self.top_k is None else -np.inf
            self._thresholds_arg = None
        else:
            if isinstance(thresholds, (list, tuple)):
                if len(thresholds) != 1:
                    raise ValueError("thresholds: fastnn's Precision/Recall take a single threshold")
                thresholds = thresholds[0]
            thresholds = check_float(thresholds, "thresholds", minimum=0.0, maximum=1.0)
            self._thresholds_arg = thresholds
        self.threshold = thresholds
        super().__init__(name=name)

    def reset_state(self):
        self.true_positives = 0.0
        self.false_positives = 0.0
        self.false_negatives = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = _one_hot_if_sparse(y_true, y_pred)
        y_true, y_pred, weights = as_arrays(y_true, y_pred, sample_weight)
        if self.top_k is not None:
            # Only each row's k largest predictions may count as positive: exactly k, the
            # lower index first among equal scores (Keras's top_k filter; keeping every
            # score >= the k-th made tied rows count more than k positives).
            k = min(self.top_k, y_pred.shape[-1])
            top = np.argsort(-y_pred, axis=-1, kind="stable")[..., :k]
            keep = np.zeros(y_pred.shape, dtype=bool)
            np.put_along_axis(keep, top, True, axis=-1)
            y_pred = np.where(keep, y_pred, -np.inf)
        if self.class_id is not None:
            if self.class_id >= y_pred.shape[-1]:
                raise ValueError(f"class_id {self.class_id} is out of range for y_pred of shape {y_pred.shape}")
            y_true, y_pred = y_true[..., self.class_id:self.class_id + 1], y_pred[..., self.class_id:self.class_id + 1]
        is_true = y_true.astype(bool)
        predicted = y_pred > self.threshold
        w = np.ones(len(y_pred)) if weights is None else weights
        w = w.reshape((-1,) + (1,) * (y_pred.ndim - 1))
        self.true_positives += float(np.sum(w * (is_true & predicted)))
        self.false_positives += float(np.sum(w * (~is_true & predicted)))
        self.false_negatives += float(np.sum(w * (is_true & ~predicted)))

    def get_config(self):
        return {"thresholds": self._thresholds_arg, "top_k": self.top_k, "class_id": self.class_id,
                "name": self.name}


class Precision(_Confusion):
    """``TP / (TP + FP)`` at a threshold (0.0 when nothing was predicted positive).

    Every output element counts (micro-average over classes); integer labels
    against multi-class predictions are one-hot encoded first.

    Parameters
    ----------
    thresholds : float, default 0.5
        A prediction ``> thresholds`` is a positive one. (Keras also takes a list;
        fastnn takes one value.)
    top_k : int, optional
        Only each sample's ``top_k`` largest predictions can be positive.
    class_id : int, optional
        Measure only this output column.
    name : str, default 'precision'
    """

    default_name = "precision"

    def result(self):
        denom = self.true_positives + self.false_positives
        return self.true_positives / denom if denom else 0.0


class Recall(_Confusion):
    """``TP / (TP + FN)`` at a threshold (0.0 when there were no positives).

    Arguments as :class:`Precision`; default name ``'recall'``.
    """

    default_name = "recall"

    def result(self):
        denom = self.true_positives + self.false_negatives
        return self.true_positives / denom if denom else 0.0


class AUC(Metric):
    """Area under the ROC (or precision-recall) curve, streamed over fixed thresholds (Keras).

    Predictions are counted in ``num_thresholds`` buckets: thresholds
    ``-1e-7, 1/(n-1), 2/(n-1), ..., (n-2)/(n-1), 1 + 1e-7``; a prediction
    ``> t`` is positive at threshold ``t``. The area is a Riemann sum over the
    resulting curve — with ``summation_method='interpolation'`` the trapezoid rule
    on ROC points (Keras's default). It equals the exact ROC AUC when no two
    predictions of different classes share a bucket, and is within about
    ``1/num_thresholds`` of it otherwise. :func:`fastnn.metrics.auc` gives the
    exact value (Mann–Whitney statistic, ties counted half).

    Every output element counts (``multi_label=False`` in Keras terms); integer
    labels against multi-class predictions are one-hot encoded first.

    Parameters
    ----------
    num_thresholds : int, default 200
    curve : {'ROC', 'PR'}, default 'ROC'
    summation_method : {'interpolation', 'minoring', 'majoring'}, default 'interpolation'
        For 'PR', 'interpolation' is Davis & Goadrich's precision interpolation (as Keras).
    name : str, default 'auc'
    thresholds : list of float, optional
        Explicit thresholds in [0, 1] instead of ``num_thresholds`` evenly spaced ones
        (``-1e-7`` and ``1 + 1e-7`` are added).
    from_logits : bool, default False
        Apply a sigmoid to the predictions first.
    """

    default_name = "auc"
    direction = "up"
    _EPS = 1e-7

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None,
                 thresholds=None, from_logits=False):
        if thresholds is not None:
            values = sorted(check_float(t, "thresholds", minimum=0.0, maximum=1.0) for t in thresholds)
            self._thresholds_arg = values
            inner = values
        else:
            # bounded: each threshold is a bucket of state (10**9 took 26 s and GBs to refuse)
            num_thresholds = check_int(num_thresholds, "num_thresholds", minimum=2,
                                       maximum=10**7)
            self._thresholds_arg = None
            inner = (np.arange(1, num_thresholds - 1) / (num_thresholds - 1)).tolist()
        self.thresholds = np.array([-self._EPS] + list(inner) + [1.0 + self._EPS])
        self.num_thresholds = len(self.thresholds)
        if not isinstance(curve, str) or curve.upper() not in ("ROC", "PR"):
            raise ValueError(f"curve must be 'ROC' or 'PR', got {curve!r}")
        self.curve = curve.upper()
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ValueError(
                f"summation_method must be 'interpolation', 'minoring' or 'majoring', got {summation_method!r}")
        self.summation_method = summation_method
        self.from_logits = bool(from_logits)
        super().__init__(name=name)

    def reset_state(self):
        n = len(self.thresholds)
        self.true_positives = np.zeros(n)
        self.false_positives = np.zeros(n)
        self.true_negatives = np.zeros(n)
        self.false_negatives = np.zeros(n)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = _one_hot_if_sparse(y_true, y_pred)
        y_true, y_pred, weights = as_arrays(y_true, y_pred, sample_weight)
        if self.from_logits:
            y_pred = 0.5 * (1.0 + np.tanh(0.5 * y_pred))  # the sigmoid, without overflow
        w = np.ones(len(y_pred)) if weights is None else weights
        w = np.broadcast_to(w.reshape((-1,) + (1,) * (y_pred.ndim - 1)), y_pred.shape).ravel()
        is_true = y_true.astype(bool).ravel()
        pred = y_pred.ravel()
        # bucket[i] = how many thresholds lie below pred[i]; pred > t_j exactly for j < bucket.
        # A NaN is above no threshold (nan > t is False, as in Keras): bucket 0, where
        # searchsorted would put it above them all (a diverged model scored AUC 1).
        bucket = np.searchsorted(self.thresholds, pred, side="left")
        bucket[np.isnan(pred)] = 0
        n = len(self.thresholds)
        pos = np.bincount(bucket, weights=w * is_true, minlength=n + 1)
        neg = np.bincount(bucket, weights=w * ~is_true, minlength=n + 1)
        # predicted positive at t_j: the buckets above j
        tp = np.cumsum(pos[::-1])[::-1][1:]
        fp = np.cumsum(neg[::-1])[::-1][1:]
        self.true_positives += tp
        self.false_positives += fp
        self.false_negatives += pos.sum() - tp
        self.true_negatives += neg.sum() - fp

    @staticmethod
    def _ratio(a, b):
        out = np.zeros_like(a)
        np.divide(a, b, out=out, where=b > 0)
        return out

    def _interpolate_pr_auc(self):
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        prec_slope = self._ratio(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        safe_p_ratio = np.where(both, self._ratio(p[:-1], np.maximum(p[1:], 0)), 1.0)
        increments = self._ratio(prec_slope * (dtp + intercept * np.log(safe_p_ratio)),
                                 np.maximum(tp[1:] + fn[1:], 0))
        return float(np.sum(increments))

    def result(self):
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc()
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        recall = self._ratio(tp, tp + fn)
        if self.curve == "ROC":
            x, y = self._ratio(fp, fp + tn), recall
        else:
            x, y = recall, self._ratio(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(np.sum((x[:-1] - x[1:]) * heights))

    def get_config(self):
        cfg = {"num_thresholds": self.num_thresholds, "curve": self.curve,
               "summation_method": self.summation_method, "name": self.name,
               "thresholds": self._thresholds_arg, "from_logits": self.from_logits}
        return cfg


def roc_auc_exact(y_true, y_pred, sample_weight=None) -> float:
    """The exact area under the ROC curve of binary labels and scores.

    The probability that a random positive scores higher than a random
    negative, ties counting one half (the Mann–Whitney U statistic over
    ``n_pos * n_neg``), weighted by ``sample_weight``. Multi-column inputs are
    flattened (every element a label/score pair), integer labels against
    multi-class scores one-hot encoded first.

    Raises
    ------
    ValueError
        If ``y_true`` has only positives or only negatives (the area is undefined).
    """
    y_true = _one_hot_if_sparse(y_true, y_pred)
    y_true, y_pred, weights = as_arrays(y_true, y_pred, sample_weight)
    w = np.ones(len(y_pred)) if weights is None else weights
    w = np.broadcast_to(w.reshape((-1,) + (1,) * (y_pred.ndim - 1)), y_pred.shape).ravel()
    is_true = y_true.astype(bool).ravel()
    score = y_pred.ravel()
    if np.isnan(score).any():
        raise ValueError("y_pred contains NaN; the ROC AUC is undefined")
    w_pos, w_neg = float(np.sum(w * is_true)), float(np.sum(w * ~is_true))
    if w_pos == 0 or w_neg == 0:
        raise ValueError("the ROC AUC is undefined when y_true holds only one class")
    unique, group = np.unique(score, return_inverse=True)
    pos = np.bincount(group, weights=w * is_true, minlength=len(unique))
    neg = np.bincount(group, weights=w * ~is_true, minlength=len(unique))
    neg_below = np.cumsum(neg) - neg
    return float(np.sum(pos * (neg_below + 0.5 * neg)) / (w_pos * w_neg))
