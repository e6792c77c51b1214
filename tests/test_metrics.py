"""Metrics: hand-computed values, exact AUC / R^2 formulas, streaming equals one-shot."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fastnn import losses
from fastnn import metrics as M


# -- accuracies -------------------------------------------------------------------------------
def test_binary_accuracy_by_hand():
    y_true = np.array([[1], [0], [1], [0]])
    y_pred = np.array([[0.7], [0.2], [0.4], [0.6]])
    assert M.binary_accuracy(y_true, y_pred) == 0.5
    assert M.binary_accuracy(y_true, y_pred, threshold=0.3) == 0.75
    assert M.binary_accuracy(y_true[:, 0], y_pred) == 0.5          # labels (n,) vs (n, 1)
    assert M.binary_accuracy(y_true[:, 0], y_pred[:, 0]) == 0.5    # both 1-D


def test_binary_accuracy_multi_output_and_sample_weight():
    y_true = np.array([[1, 0], [0, 0]])
    y_pred = np.array([[0.9, 0.6], [0.1, 0.2]])
    assert M.binary_accuracy(y_true, y_pred) == 0.75                 # per sample 0.5 and 1
    assert M.binary_accuracy(y_true, y_pred, sample_weight=[1, 3]) == (0.5 + 3) / 4


def test_categorical_and_sparse_accuracy_by_hand():
    y_pred = np.array([[0.1, 0.8, 0.1], [0.3, 0.4, 0.3], [0.2, 0.2, 0.6]])
    onehot = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1]])
    assert M.categorical_accuracy(onehot, y_pred) == pytest.approx(2 / 3)
    assert M.sparse_categorical_accuracy([1, 0, 2], y_pred) == pytest.approx(2 / 3)
    assert M.sparse_categorical_accuracy([[1], [0], [2]], y_pred) == pytest.approx(2 / 3)
    assert M.sparse_categorical_accuracy([1, 0, 2], y_pred, sample_weight=[1, 2, 1]) == 0.5


def test_top_k_accuracy_by_hand_with_keras_tie_rule():
    y_pred = np.array([[0.1, 0.4, 0.3, 0.2], [0.5, 0.5, 0.0, 0.0]])
    labels = np.array([3, 1])
    # row 0: class 3 is beaten by two scores; row 1: class 1 ties with the best (counts)
    assert M.sparse_top_k_categorical_accuracy(labels, y_pred, k=1) == 0.5
    assert M.sparse_top_k_categorical_accuracy(labels, y_pred, k=2) == 0.5
    assert M.sparse_top_k_categorical_accuracy(labels, y_pred, k=3) == 1.0
    onehot = np.eye(4)[labels]
    assert M.top_k_categorical_accuracy(onehot, y_pred, k=3) == 1.0
    assert M.TopKCategoricalAccuracy()(onehot, y_pred) == 1.0         # default k = 5
    with pytest.raises(ValueError, match="class indices outside"):
        M.sparse_top_k_categorical_accuracy([4, 0], y_pred)


def test_accuracy_function_infers_the_kind_from_shapes():
    y_pred = np.array([[0.1, 0.9], [0.8, 0.2]])
    assert M.accuracy([1, 1], y_pred) == 0.5                          # sparse
    assert M.accuracy([[0, 1], [0, 1]], y_pred) == 0.5                # one-hot
    assert M.accuracy([1, 0], [0.9, 0.4]) == 1.0                      # binary


def test_streaming_equals_one_shot_and_reset():
    rng = np.random.default_rng(0)
    y_pred = rng.random((50, 4))
    labels = rng.integers(0, 4, 50)
    w = rng.random(50)
    m = M.SparseCategoricalAccuracy()
    for lo in range(0, 50, 16):
        m.update_state(labels[lo:lo + 16], y_pred[lo:lo + 16], sample_weight=w[lo:lo + 16])
    expected = np.sum(w * (y_pred.argmax(1) == labels)) / w.sum()
    assert m.result() == pytest.approx(expected, rel=1e-12)
    m.reset_state()
    assert m.result() == 0.0
    assert m([0], [[0.9, 0.1, 0.0, 0.0]]) == 1.0


def test_update_state_from_totals_for_compiled_loops():
    m = M.SparseCategoricalAccuracy()
    m.update_state_from_totals(30, 32)
    m.update_state([0, 1], [[0.9, 0.1], [0.8, 0.2]])
    assert m.result() == pytest.approx(31 / 34)
    with pytest.raises(ValueError, match="count"):
        m.update_state_from_totals(1, -1)


def test_nan_predictions_are_measured_not_rejected():
    assert M.binary_accuracy([1, 0], [np.nan, np.nan]) == 0.5
    assert np.isnan(M.mean_squared_error([1.0], [np.nan]))
    assert M.sparse_top_k_categorical_accuracy([0], [[np.nan, np.nan]], k=1) == 0.0


# -- precision / recall ------------------------------------------------------------------------
Y_TRUE = np.array([1, 0, 1, 1, 0])
Y_PRED = np.array([0.9, 0.8, 0.3, 0.6, 0.7])


def test_precision_recall_by_hand():
    # predicted positive: 1 1 0 1 1 -> TP 2, FP 2, FN 1
    assert M.precision(Y_TRUE, Y_PRED) == 0.5
    assert M.recall(Y_TRUE, Y_PRED) == pytest.approx(2 / 3)
    assert M.precision(Y_TRUE, Y_PRED, threshold=0.75) == 0.5       # TP 1 (0.9), FP 1 (0.8)
    assert M.recall(Y_TRUE, Y_PRED, threshold=0.75) == pytest.approx(1 / 3)
    w = [1, 1, 1, 1, 2]
    assert M.precision(Y_TRUE, Y_PRED, sample_weight=w) == pytest.approx(2 / 5)
    assert M.recall(Y_TRUE, Y_PRED, sample_weight=w) == pytest.approx(2 / 3)


def test_precision_recall_empty_cases_are_zero():
    assert M.precision([1, 0], [0.1, 0.2]) == 0.0      # nothing predicted positive
    assert M.recall([0, 0], [0.9, 0.2]) == 0.0         # no positives


def test_precision_class_id_top_k_and_sparse_labels():
    y_pred = np.array([[0.6, 0.3, 0.7], [0.2, 0.9, 0.1], [0.8, 0.1, 0.05]])
    labels = np.array([2, 1, 1])
    onehot = np.eye(3)[labels]
    # micro over all elements at 0.5: positives at (0,0) (0,2) (1,1) (2,0); TP (0,2) (1,1)
    assert M.Precision()(labels, y_pred) == 0.5
    assert M.Precision()(onehot, y_pred) == 0.5
    assert M.Recall()(labels, y_pred) == pytest.approx(2 / 3)
    # top_k=1 keeps (0,2) (1,1) (2,0): TP 2 of 3
    assert M.Precision(top_k=1)(labels, y_pred) == pytest.approx(2 / 3)
    # class 0 only: predicted positive rows 0 and 2, neither is class 0
    assert M.Precision(class_id=0)(labels, y_pred) == 0.0
    assert M.Recall(class_id=1)(labels, y_pred) == 0.5


def test_top_k_keeps_exactly_k_predictions_per_row_when_scores_tie():
    # Keras's top_k filter keeps k entries, the lower index first among equal scores;
    # keeping every score >= the k-th counted a tied row's extra entries as positives.
    precision = M.Precision(top_k=2)
    precision.update_state(np.array([[0, 0, 1, 1]]), np.array([[0.4, 0.4, 0.4, 0.1]]))
    assert (precision.true_positives, precision.false_positives) == (0.0, 2.0)
    assert M.Recall(top_k=1)(np.array([[0, 1, 0]]), np.array([[0.5, 0.5, 0.0]])) == 0.0


def test_streaming_auc_counts_a_nan_score_as_no_positive():
    # nan > t is False at every threshold (Keras); searchsorted put NaN above them all,
    # so a diverged model's NaN outputs scored a perfect AUC.
    assert M.AUC()(np.array([1, 0, 0]), np.array([np.nan, 0.2, 0.9])) == 0.0


# -- AUC ---------------------------------------------------------------------------------------
def _pairwise_auc(y, s, w=None):
    w = np.ones(len(y)) if w is None else np.asarray(w, float)
    pos, neg = y == 1, y == 0
    num = 0.0
    for i in np.flatnonzero(pos):
        for j in np.flatnonzero(neg):
            num += w[i] * w[j] * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return num / (w[pos].sum() * w[neg].sum())


def test_exact_auc_matches_the_pairwise_definition():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60) + 0.3 * y, 1)        # rounding makes ties
    w = rng.random(60) + 0.1
    assert M.auc(y, s) == pytest.approx(_pairwise_auc(y, s), rel=1e-12)
    assert M.auc(y, s, sample_weight=w) == pytest.approx(_pairwise_auc(y, s, w), rel=1e-12)
    assert M.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75


def test_exact_auc_undefined_with_one_class():
    with pytest.raises(ValueError, match="only one class"):
        M.auc([1, 1], [0.2, 0.3])


def test_auc_object_equals_exact_when_classes_never_share_a_bucket():
    rng = np.random.default_rng(5)
    k = rng.integers(0, 199, 300)
    s = (k + 0.5) / 199                              # one score per threshold bucket
    y = (rng.random(300) < s).astype(int)
    m = M.AUC()
    for lo in range(0, 300, 64):
        m.update_state(y[lo:lo + 64], s[lo:lo + 64])
    assert m.result() == pytest.approx(_pairwise_auc(y, s), abs=1e-12)


def test_auc_object_approximates_exact_on_continuous_scores():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 400)
    s = 1 / (1 + np.exp(-(rng.normal(size=400) + y)))
    assert M.AUC()(y, s) == pytest.approx(M.auc(y, s), abs=5e-3)


def test_auc_thresholds_by_hand():
    # thresholds [-1e-7, 0.5, 1 + 1e-7]: ROC points (1,1) (0.5,0.5) (0,0)
    y, s = [1, 0, 1, 0], [0.8, 0.7, 0.3, 0.2]
    assert M.AUC(num_thresholds=3)(y, s) == pytest.approx(0.5)
    assert M.auc(y, s) == 0.75                               # the exact value differs
    assert M.AUC(num_thresholds=3, curve="PR", summation_method="minoring")(y, s) == pytest.approx(0.25)
    assert M.AUC(num_thresholds=3, curve="PR", summation_method="majoring")(y, s) == pytest.approx(0.5)
    assert M.AUC(num_thresholds=3, curve="PR")(y, s) == pytest.approx(0.5)
    m = M.AUC(num_thresholds=3)
    m.update_state(y, s)
    np.testing.assert_array_equal(m.true_positives, [2, 1, 0])
    np.testing.assert_array_equal(m.false_positives, [2, 1, 0])
    np.testing.assert_array_equal(m.true_negatives, [0, 1, 2])
    np.testing.assert_array_equal(m.false_negatives, [0, 1, 2])


def test_pr_auc_of_perfect_separation_is_one_and_logits_work():
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.95, 0.1, 0.2, 0.05])
    assert M.AUC(curve="PR")(y, s) == pytest.approx(1.0)
    logits = np.log(s / (1 - s))
    assert M.AUC(from_logits=True)(y, logits) == pytest.approx(M.AUC()(y, s), abs=1e-12)


def test_auc_with_explicit_thresholds_and_weights():
    y, s = [1, 0, 1, 0], [0.8, 0.7, 0.3, 0.2]
    assert M.AUC(thresholds=[0.5])(y, s) == pytest.approx(0.5)
    # weight 3 on the positive at 0.3: ROC points (1,1) (0.5,0.25) (0,0)
    w = [1, 1, 3, 1]
    assert M.AUC(thresholds=[0.5])(y, s, sample_weight=w) == pytest.approx(0.5 * 0.625 + 0.5 * 0.125)


# -- regression ----------------------------------------------------------------------------------
def test_mse_mae_by_hand():
    y_true = np.array([[1.0, 2.0], [3.0, 4.0]])
    y_pred = np.ones((2, 2))
    assert M.mse(y_true, y_pred) == 3.5                      # per sample 0.5 and 6.5
    assert M.mean_squared_error(y_true, y_pred, sample_weight=[3, 1]) == 2.0
    assert M.mae(y_true, y_pred) == 1.5                      # per sample 0.5 and 2.5
    assert M.MeanAbsoluteError()([2.0], [[4.0]]) == 2.0


def _r2_direct(y, p, w=None):
    y, p = np.asarray(y, float).reshape(len(y), -1), np.asarray(p, float).reshape(len(p), -1)
    w = np.ones(len(y)) if w is None else np.asarray(w, float)
    mean = (w[:, None] * y).sum(0) / w.sum()
    ss_tot = (w[:, None] * (y - mean) ** 2).sum(0)
    ss_res = (w[:, None] * (y - p) ** 2).sum(0)
    return 1 - ss_res / ss_tot, ss_tot


def test_r2_score_sklearn_example():
    assert M.r2_score([3, -0.5, 2, 7], [2.5, 0.0, 2, 8]) == pytest.approx(0.948608137, rel=1e-9)


def test_r2_streaming_with_large_offset_and_weights_matches_exact_formula():
    rng = np.random.default_rng(7)
    y = 1e6 + rng.normal(size=(90, 3)) * [1.0, 5.0, 0.1]
    p = y + rng.normal(size=(90, 3)) * 0.3
    w = rng.random(90) + 0.5
    m = M.R2Score(class_aggregation=None)
    mv = M.R2Score(class_aggregation="variance_weighted_average")
    for lo in range(0, 90, 32):
        m.update_state(y[lo:lo + 32], p[lo:lo + 32], sample_weight=w[lo:lo + 32])
        mv.update_state(y[lo:lo + 32], p[lo:lo + 32], sample_weight=w[lo:lo + 32])
    r2, ss_tot = _r2_direct(y - 1e6, p - 1e6, w)   # exact formula on centred data
    np.testing.assert_allclose(m.result(), r2, rtol=1e-9)
    assert mv.result() == pytest.approx(np.sum(r2 * ss_tot) / np.sum(ss_tot), rel=1e-9)
    assert M.r2_score(y - 1e6, p - 1e6, sample_weight=w) == pytest.approx(np.mean(r2), rel=1e-9)


def test_r2_constant_target_and_adjusted():
    assert M.r2_score([2.0, 2.0], [2.0, 2.0]) == 1.0
    assert M.r2_score([2.0, 2.0], [2.0, 3.0]) == 0.0
    y, p = [1.0, 2.0, 3.0, 4.0, 6.0], [1.2, 1.9, 3.3, 3.8, 5.5]
    r2 = M.r2_score(y, p)
    assert M.R2Score(num_regressors=2)(y, p) == pytest.approx(1 - (1 - r2) * 4 / 2)
    with pytest.warns(RuntimeWarning, match="cannot adjust"):
        assert M.R2Score(num_regressors=4)(y, p) == pytest.approx(r2)


# -- get / names / config -------------------------------------------------------------------------
class BinaryCrossentropy:
    """Stand-in for a loss object: what get() reads is the class name and from_logits."""

    def __init__(self, from_logits=False):
        self.from_logits = from_logits


class SparseCategoricalCrossentropy:
    name = "sparse_categorical_crossentropy"
    from_logits = True


@pytest.mark.parametrize("loss,cls", [
    ("binary_crossentropy", M.BinaryAccuracy),
    ("categorical_crossentropy", M.CategoricalAccuracy),
    ("sparse_categorical_crossentropy", M.SparseCategoricalAccuracy),
    (SparseCategoricalCrossentropy(), M.SparseCategoricalAccuracy),
    (BinaryCrossentropy(), M.BinaryAccuracy),
    ("mse", M.InferredAccuracy),
    (None, M.InferredAccuracy),
])
def test_accuracy_kind_from_the_loss(loss, cls):
    m = M.get("accuracy", loss=loss)
    assert type(m) is cls and m.name == "accuracy"
    assert M.get("acc", loss=loss).name == "acc"


def test_binary_logits_loss_moves_thresholds_to_zero():
    loss = BinaryCrossentropy(from_logits=True)
    assert M.get("accuracy", loss=loss).threshold == 0.0
    assert M.get("binary_accuracy", loss=loss).threshold == 0.0
    assert M.get("precision", loss=loss).threshold == 0.0
    assert M.get("auc", loss=loss).from_logits
    assert M.get("accuracy", loss=BinaryCrossentropy()).threshold == 0.5
    logits = np.array([[2.0], [-1.0], [0.5]])
    assert M.get("accuracy", loss=loss)([1, 0, 0], logits) == pytest.approx(2 / 3)


def test_inferred_accuracy_decides_on_first_batch():
    m = M.get("accuracy", loss="mean_squared_error")
    assert m.kind is None and m.result() == 0.0
    m.update_state([[0, 1], [1, 0]], [[0.2, 0.8], [0.3, 0.7]])
    assert m.kind == "categorical" and m.result() == 0.5
    s = M.get("accuracy")
    s.update_state([1, 0], [[0.2, 0.8], [0.3, 0.7]])
    assert s.kind == "sparse"
    with pytest.raises(ValueError, match="not seen data"):
        M.get("accuracy").update_state_from_totals(1, 2)


@pytest.mark.parametrize("name,cls", [
    ("binary_accuracy", M.BinaryAccuracy), ("categorical_accuracy", M.CategoricalAccuracy),
    ("sparse_categorical_accuracy", M.SparseCategoricalAccuracy),
    ("top_k_categorical_accuracy", M.TopKCategoricalAccuracy),
    ("sparse_top_k_categorical_accuracy", M.SparseTopKCategoricalAccuracy),
    ("precision", M.Precision), ("recall", M.Recall), ("auc", M.AUC), ("mse", M.MeanSquaredError),
    ("mean_squared_error", M.MeanSquaredError), ("mae", M.MeanAbsoluteError),
    ("mean_absolute_error", M.MeanAbsoluteError), ("r2_score", M.R2Score), ("AUC", M.AUC),
])
def test_get_by_name_keeps_the_name_as_history_key(name, cls):
    m = M.get(name)
    assert type(m) is cls and m.name == name


def test_default_names_and_directions():
    assert [c().name for c in (M.Precision, M.Recall, M.AUC, M.R2Score, M.BinaryAccuracy)] == [
        "precision", "recall", "auc", "r2_score", "binary_accuracy"]
    assert M.MeanSquaredError().direction == "down" and M.AUC().direction == "up"


def test_get_objects_functions_and_errors():
    m = M.Recall()
    assert M.get(m) is m

    def abs_diff(y_true, y_pred):
        return np.abs(y_true - y_pred)
    f = M.get(abs_diff)
    assert f.name == "abs_diff" and f([[1.0], [2.0]], [[2.0], [2.0]], sample_weight=[3, 1]) == 0.75
    with pytest.raises(ValueError, match="did you mean 'precision'"):
        M.get("precison")
    with pytest.raises(TypeError, match="metric must be"):
        M.get(3)


@pytest.mark.parametrize("metric", [
    M.BinaryAccuracy(threshold=0.3), M.SparseTopKCategoricalAccuracy(k=2, name="top2"),
    M.Precision(thresholds=0.7, class_id=1), M.AUC(num_thresholds=50, curve="PR"),
    M.AUC(thresholds=[0.2, 0.6]), M.R2Score(class_aggregation=None, num_regressors=1),
    M.get("accuracy"),
], ids=lambda m: type(m).__name__)
def test_serialize_round_trip(metric):
    cfg = json.loads(json.dumps(M.serialize(metric)))
    back = M.deserialize(cfg)
    assert type(back) is type(metric) and back.get_config() == metric.get_config()


def test_this_modules_functions_mean_the_streaming_metrics():
    # fastnn.metrics.precision as a compiled metric used to be averaged batch by batch:
    # 1/2 and 1/1 here, 0.75 -- not the precision over both batches.
    m = M.get(M.precision)
    assert type(m) is M.Precision and m.name == "precision"
    m.update_state([1, 0], [0.9, 0.8])      # tp 1, fp 1
    m.update_state([1, 1], [0.9, 0.2])      # tp 1, fn 1
    assert m.result() == pytest.approx(2 / 3)
    # a batch of one class made the exact AUC raise in the middle of fit
    auc = M.get(M.auc)
    assert type(auc) is M.AUC
    auc.update_state([1, 1], [0.9, 0.6])
    auc.update_state([0, 0], [0.3, 0.7])
    assert auc.result() == pytest.approx(0.75)
    assert type(M.get(M.r2_score)) is M.R2Score
    assert type(M.get(M.mse)) is M.MeanSquaredError and M.get(M.mse).name == "mean_squared_error"
    assert type(M.get(M.accuracy, loss="sparse_categorical_crossentropy")) is \
        M.SparseCategoricalAccuracy
    logits = losses.BinaryCrossentropy(from_logits=True)
    assert M.get(M.binary_accuracy, loss=logits).threshold == 0.0


def test_wrappers_of_this_modules_functions_serialize_by_name():
    wrapper = M.MeanMetricWrapper(M.binary_accuracy, name="ba", threshold=0.3)
    cfg = json.loads(json.dumps(M.serialize(wrapper)))
    assert cfg == {"class_name": "MeanMetricWrapper",
                   "config": {"name": "ba", "threshold": 0.3, "fn": "binary_accuracy"}}
    back = M.deserialize(cfg)
    y, p = [[1.0], [0.0], [1.0]], [[0.4], [0.2], [0.1]]
    assert type(back) is M.MeanMetricWrapper and back(y, p) == wrapper(y, p) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="'fn' must name one of"):
        M.deserialize({"class_name": "MeanMetricWrapper", "config": {"name": "x", "fn": "eval"}})


def test_deserialize_errors_follow_one_rule():
    with pytest.raises(TypeError, match="must be a dict"):
        M.deserialize(["Precision"])
    with pytest.raises(ValueError, match="class_name"):
        M.deserialize({"config": {}})
    with pytest.raises(ValueError, match="invalid config for Precision"):
        M.deserialize({"class_name": "Precision", "config": {"bogus": 1}})


# -- validation --------------------------------------------------------------------------------------
def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="y_true has 2 samples but y_pred has 3"):
        M.binary_accuracy([1, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="y_true has shape"):
        M.categorical_accuracy([[0, 1, 0]], [[0.5, 0.5]])
    with pytest.raises(TypeError, match="y_pred must hold real numbers"):
        M.mse([1.0], ["a"])
    with pytest.raises(TypeError, match="y_true"):
        M.mse("abc", [1.0])
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        M.mse([1.0, 2.0], [1.0, 2.0], sample_weight=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="sample_weight must be finite and >= 0"):
        M.mse([1.0, 2.0], [1.0, 2.0], sample_weight=[1.0, -2.0])
    with pytest.raises(ValueError, match="one class index per sample"):
        M.sparse_categorical_accuracy([[0, 1]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="class indices in"):
        M.precision([0, 3], [[0.5, 0.5], [0.1, 0.9]])


@pytest.mark.parametrize("make,exc,word", [
    (lambda: M.AUC(num_thresholds=1), ValueError, "num_thresholds"),
    (lambda: M.AUC(curve="DET"), ValueError, "curve"),
    (lambda: M.AUC(summation_method="simpson"), ValueError, "summation_method"),
    (lambda: M.Precision(thresholds=1.5), ValueError, "thresholds"),
    (lambda: M.Precision(thresholds=[0.2, 0.4]), ValueError, "single threshold"),
    (lambda: M.TopKCategoricalAccuracy(k=0), ValueError, "k"),
    (lambda: M.R2Score(class_aggregation="median"), ValueError, "class_aggregation"),
    (lambda: M.BinaryAccuracy(threshold="half"), TypeError, "threshold"),
    (lambda: M.Recall(name=5), TypeError, "name"),
])
def test_bad_arguments_are_named(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


def test_serialize_custom_metric_classes_but_not_functions():
    class Count(M.Metric):
        def reset_state(self):
            self.n = 0

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.n += len(y_true)

        def result(self):
            return float(self.n)

    cfg = M.serialize(Count(name="count"))
    assert cfg == {"class_name": "Count", "config": {"name": "count"}}
    with pytest.raises(ValueError, match="unknown metric"):
        M.deserialize(cfg)
    assert M.deserialize(cfg, custom_objects={"Count": Count}).name == "count"
    with pytest.raises(TypeError, match="cannot be serialized"):
        M.serialize(M.get(lambda t, p: t - p))


def test_mean_weighted_and_from_totals():
    m = M.Mean()
    m.update_state([1.0, 2.0, 3.0])
    m.update_state([10.0], sample_weight=[3.0])
    assert m.result() == pytest.approx((6.0 + 30.0) / 6.0)
    m.update_state_from_totals(4.0, 2.0)
    assert m.result() == pytest.approx(40.0 / 8.0)
    with pytest.raises(TypeError, match="total"):
        m.update_state_from_totals("4", 2)
    m.reset_state()
    assert m.result() == 0.0


@pytest.mark.parametrize("make,y_true,y_pred", [
    (lambda: M.BinaryAccuracy(), [[1.0], [0.0]], [[0.9], [0.6]]),
    (lambda: M.CategoricalAccuracy(), np.eye(3)[:2], [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]),
    (lambda: M.SparseCategoricalAccuracy(), [0, 1], [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]),
    (lambda: M.TopKCategoricalAccuracy(k=2), np.eye(3)[:2], [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]),
    (lambda: M.MeanSquaredError(), [[1.0], [2.0]], [[1.5], [2.0]]),
    (lambda: M.R2Score(), [[1.0], [2.0], [4.0]], [[1.5], [2.0], [3.0]]),
    (lambda: M.Precision(), [[1.0], [0.0]], [[0.9], [0.6]]),
    (lambda: M.AUC(), [[1.0], [0.0]], [[0.9], [0.6]]),
])
def test_an_empty_batch_adds_nothing(make, y_true, y_pred):
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    m, ref = make(), make()
    m.update_state(y_true[:0], y_pred[:0])
    assert m.result() == 0.0
    m.update_state(y_true, y_pred)
    m.update_state(y_true[:0], y_pred[:0], sample_weight=np.zeros(0))
    ref.update_state(y_true, y_pred)
    assert m.result() == ref.result()


def test_auc_bounds_its_number_of_thresholds():
    with pytest.raises(ValueError, match="num_thresholds must be <= 10000000"):
        M.AUC(num_thresholds=10**9)
