"""fastnn.losses and the backends' loss ops.

Gradients by central finite differences in float64 on every available backend,
values and gradients against PyTorch, stability of the logits forms at 1e4,
the softmax + cross-entropy fusion, validation and configuration.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from fastnn import losses
from gradcheck import assert_gradient_close, numerical_gradient

STRICT = dict(over="raise", invalid="raise", divide="raise", under="ignore")

N, C = 5, 4


def make_case(name, from_logits, rng, dtype=np.float64):
    """(y_pred, y_true) for a loss, away from kinks and clipping bounds."""
    if name in ("mean_squared_error", "mean_absolute_error", "huber"):
        y_true = rng.standard_normal((N, C))
        # errors of magnitude 0.1..2.5: away from 0 (mae) and from delta = 1 (huber)
        error = rng.uniform(0.1, 2.5, (N, C)) * rng.choice([-1.0, 1.0], (N, C))
        error[np.abs(np.abs(error) - 1.0) < 0.05] += 0.2
        y_pred = y_true + error
    elif name == "binary_crossentropy":
        y_true = rng.uniform(0, 1, (N, C)).round(1)
        y_pred = rng.standard_normal((N, C)) * 2 if from_logits else rng.uniform(0.05, 0.95, (N, C))
    elif name == "categorical_crossentropy":
        y_true = rng.dirichlet(np.ones(C), N)
        logits = rng.standard_normal((N, C)) * 2
        y_pred = logits if from_logits else rng.dirichlet(np.ones(C) * 3, N)
    else:  # sparse
        y_true = rng.integers(0, C, N)
        y_pred = rng.standard_normal((N, C)) * 2 if from_logits else rng.dirichlet(np.ones(C) * 3, N)
    y_true = y_true if name == "sparse_categorical_crossentropy" else y_true.astype(dtype)
    return y_pred.astype(dtype), y_true


LOSS_CASES = [
    ("mean_squared_error", False, None), ("mean_absolute_error", False, None),
    ("huber", False, None), ("huber", False, 0.5),
    ("binary_crossentropy", False, None), ("binary_crossentropy", True, None),
    ("categorical_crossentropy", False, None), ("categorical_crossentropy", True, None),
    ("sparse_categorical_crossentropy", False, None),
    ("sparse_categorical_crossentropy", True, None),
]
LOSS_IDS = [f"{n}{'-logits' if lg else ''}{'' if p is None else f'-{p}'}" for n, lg, p in LOSS_CASES]


# ---------------------------------------------------------------- gradients

@pytest.mark.parametrize("name,from_logits,param", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_gradient_matches_finite_differences(ops, name, from_logits, param, weighted, rng):
    y_pred, y_true = make_case(name, from_logits, rng)
    w = rng.uniform(0.0, 2.0, N) if weighted else None
    value, grad = ops.loss(name, y_pred, y_true, from_logits, w, param)
    assert value == pytest.approx(ops.loss_value(name, y_pred, y_true, from_logits, w, param),
                                  rel=1e-14)
    numeric = numerical_gradient(
        lambda p: ops.loss_value(name, p, y_true, from_logits, w, param), y_pred)
    assert_gradient_close(grad, numeric, what=f"{name} on {ops.name}")


@pytest.mark.parametrize("name,from_logits,param", LOSS_CASES, ids=LOSS_IDS)
def test_float32_close_to_float64(ops, name, from_logits, param, rng):
    y_pred, y_true = make_case(name, from_logits, rng)
    v64, g64 = ops.loss(name, y_pred, y_true, from_logits, None, param)
    y_true32 = y_true if name == "sparse_categorical_crossentropy" else y_true.astype(np.float32)
    v32, g32 = ops.loss(name, y_pred.astype(np.float32), y_true32, from_logits, None, param)
    assert isinstance(v32, float) and g32.dtype == np.float32
    assert v32 == pytest.approx(v64, rel=1e-5)
    np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------- PyTorch

def _torch_loss(torch, name, from_logits, param, y_pred, y_true, w):
    """Per-sample losses in torch, reduced the Keras way: sum(w * l) / N."""
    F = torch.nn.functional
    if name == "mean_squared_error":
        per = F.mse_loss(y_pred, y_true, reduction="none").mean(-1)
    elif name == "mean_absolute_error":
        per = F.l1_loss(y_pred, y_true, reduction="none").mean(-1)
    elif name == "huber":
        per = F.huber_loss(y_pred, y_true, reduction="none", delta=param or 1.0).mean(-1)
    elif name == "binary_crossentropy":
        fn = F.binary_cross_entropy_with_logits if from_logits else F.binary_cross_entropy
        per = fn(y_pred, y_true, reduction="none").mean(-1)
    elif name == "categorical_crossentropy":
        log_p = F.log_softmax(y_pred, -1) if from_logits else torch.log(y_pred)
        per = -(y_true * log_p).sum(-1)
    else:
        log_p = F.log_softmax(y_pred, -1) if from_logits else torch.log(y_pred)
        per = F.nll_loss(log_p, y_true, reduction="none")
    if w is not None:
        per = per * w
    return per.sum() / per.shape[0]


@pytest.mark.parametrize("name,from_logits,param", LOSS_CASES, ids=LOSS_IDS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_value_and_gradient_match_torch(ops, name, from_logits, param, weighted, rng):
    torch = pytest.importorskip("torch")
    y_pred, y_true = make_case(name, from_logits, rng)
    w = rng.uniform(0.0, 2.0, N) if weighted else None
    value, grad = ops.loss(name, y_pred, y_true, from_logits, w, param)
    tp = torch.tensor(y_pred, requires_grad=True)
    tl = _torch_loss(torch, name, from_logits, param, tp, torch.tensor(y_true),
                     None if w is None else torch.tensor(w))
    tl.backward()
    assert value == pytest.approx(tl.item(), rel=1e-13)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-12, atol=1e-15)


# ------------------------------------------ categorical losses renormalise rows (Keras)

def test_categorical_losses_renormalise_rows_as_keras_does(use_backend):
    # Keras divides y_pred by its row sum before clipping: [0.5, 0.5, 0.5] is thirds.
    # The op-level formula alone would give -log(0.5).
    p = np.array([[0.5, 0.5, 0.5], [0.2, 0.2, 0.6]])
    third = -math.log(1 / 3)
    assert losses.CategoricalCrossentropy()([[0, 1, 0], [0, 0, 1]], p) == \
        pytest.approx((third - math.log(0.6)) / 2, rel=1e-14)
    assert losses.SparseCategoricalCrossentropy()([1, 2], p) == \
        pytest.approx((third - math.log(0.6)) / 2, rel=1e-14)
    # clipping happens after the division: a row [0.9, 0] is [1, 0] -> -log(1e-7) for class 1
    assert losses.SparseCategoricalCrossentropy()([1], np.array([[0.9, 0.0]])) == \
        pytest.approx(-math.log(1e-7), rel=1e-12)


@pytest.mark.parametrize("cls", [losses.CategoricalCrossentropy,
                                 losses.SparseCategoricalCrossentropy])
def test_renormalised_gradient_matches_finite_differences_and_torch(use_backend, cls, rng):
    torch = pytest.importorskip("torch")
    p = rng.uniform(0.05, 0.9, (N, C))          # rows that do not sum to 1
    labels = rng.integers(0, C, N)
    t = labels if cls is losses.SparseCategoricalCrossentropy else np.eye(C)[labels]
    w = rng.uniform(0.0, 2.0, N)
    loss = cls()
    value, grad = loss.forward_backward(t, p, w)
    assert value == pytest.approx(loss(t, p, w), rel=1e-15)
    numeric = numerical_gradient(lambda q: loss(t, q, w), p)
    assert_gradient_close(grad, numeric, what=f"{cls.__name__} on {use_backend}")

    tp = torch.tensor(p, requires_grad=True)
    log_q = torch.log(tp / tp.sum(-1, keepdim=True))
    per = -(torch.tensor(np.eye(C)[labels]) * log_q).sum(-1)
    (per * torch.tensor(w)).mean().backward()
    assert value == pytest.approx((per * torch.tensor(w)).mean().item(), rel=1e-13)
    np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_renormalising_leaves_softmax_outputs_and_zero_rows_alone(use_backend, rng):
    logits = rng.standard_normal((N, C)) * 2
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, C, N)
    value = losses.SparseCategoricalCrossentropy()(labels, p)
    fused = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert value == pytest.approx(fused, rel=1e-12)
    # a row of zeros has no distribution: it is clipped as it is, finite, no NaN
    value, grad = losses.CategoricalCrossentropy().forward_backward(np.array([[1.0, 0.0]]),
                                                                    np.zeros((1, 2)))
    assert value == pytest.approx(-math.log(1e-7)) and np.all(grad == 0)


def test_categorical_crossentropy_needs_a_class_axis():
    # a 1-D y_pred used to reach the op and fail with NumPy's reshape error
    with pytest.raises(ValueError, match="class axis"):
        losses.CategoricalCrossentropy()([0.0, 1.0, 0.0], [0.05, 0.95, 0.0])


def test_softmax_then_sparse_ce_gives_torch_cross_entropy_gradient(ops, rng):
    # The criterion: a softmax output trained with sparse CE gets, through the
    # softmax Jacobian, the same logit gradient as torch's cross_entropy on the logits.
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((6, 5)) * 3
    labels = rng.integers(0, 5, 6)
    probs = ops.activation(logits, "softmax")
    _, grad_probs = ops.loss("sparse_categorical_crossentropy", probs, labels)
    grad_logits = ops.activation_backward(grad_probs, logits, probs, "softmax")
    _, fused = ops.loss("sparse_categorical_crossentropy", logits, labels, from_logits=True)

    t = torch.tensor(logits, requires_grad=True)
    torch.nn.functional.cross_entropy(t, torch.tensor(labels)).backward()
    np.testing.assert_allclose(grad_logits, t.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(fused, t.grad.numpy(), rtol=1e-12, atol=1e-16)


# ---------------------------------------------------------------- stability

def test_logits_forms_are_stable_at_large_magnitudes(ops, float_dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=float_dtype)
    labels = np.array([0, 1])
    with np.errstate(**STRICT):
        value, grad = ops.loss("sparse_categorical_crossentropy", logits, labels, True)
        assert value == pytest.approx((0 + 2e4) / 2)
        np.testing.assert_allclose(grad, [[0, 0, 0], [0, -0.5, 0.5]], atol=1e-7)
        one_hot = np.eye(3, dtype=float_dtype)[labels]
        assert ops.loss_value("categorical_crossentropy", logits, one_hot, True) == \
            pytest.approx(1e4)
        z = np.array([1e4, -1e4, 1e4, -1e4], dtype=float_dtype)
        t = np.array([1.0, 0.0, 0.0, 1.0], dtype=float_dtype)
        value, grad = ops.loss("binary_crossentropy", z, t, True)
        assert value == pytest.approx(2e4 / 4)
        np.testing.assert_allclose(grad, [0, 0, 0.25, -0.25])
        # saturated probabilities are clipped, not log(0)
        p = np.array([1.0, 0.0], dtype=float_dtype)
        value, grad = ops.loss("binary_crossentropy", p, np.array([0.0, 1.0], float_dtype))
        assert np.isfinite(value) and np.isfinite(grad).all()


# --------------------------------------------------------- the Loss classes

def test_classes_hand_values(use_backend):
    y_true = [[0.0, 1.0], [1.0, 0.0]]
    y_pred = [[0.5, 1.0], [1.0, 2.0]]
    assert losses.MeanSquaredError()(y_true, y_pred) == pytest.approx((0.125 + 2.0) / 2)
    assert losses.MeanAbsoluteError()(y_true, y_pred) == pytest.approx((0.25 + 1.0) / 2)
    assert losses.Huber()(y_true, y_pred) == pytest.approx((0.0625 + 0.75) / 2)
    assert losses.Huber(delta=2.0)(y_true, y_pred) == pytest.approx((0.0625 + 1.0) / 2)
    p = [[0.25, 0.75], [0.6, 0.4]]
    assert losses.CategoricalCrossentropy()(y_true, p) == \
        pytest.approx(-(math.log(0.75) + math.log(0.6)) / 2)
    assert losses.SparseCategoricalCrossentropy()([1, 0], p) == \
        pytest.approx(-(math.log(0.75) + math.log(0.6)) / 2)
    assert losses.BinaryCrossentropy()([1.0, 0.0], [0.75, 0.25]) == pytest.approx(-math.log(0.75))
    assert losses.BinaryCrossentropy(from_logits=True)([1.0], [0.0]) == pytest.approx(math.log(2))
    assert losses.SparseCategoricalCrossentropy(from_logits=True)([0], [[0.0, 0.0]]) == \
        pytest.approx(math.log(2))


def test_sample_weight(use_backend):
    mse = losses.MeanSquaredError()
    assert mse([[0.0], [0.0]], [[1.0], [2.0]], sample_weight=[3.0, 0.5]) == \
        pytest.approx((3 * 1 + 0.5 * 4) / 2)
    assert mse([[0.0], [0.0]], [[1.0], [2.0]], sample_weight=[[3.0], [0.5]]) == \
        pytest.approx((3 * 1 + 0.5 * 4) / 2)
    with pytest.raises(ValueError, match="sample_weight must have shape"):
        mse([[0.0], [0.0]], [[1.0], [2.0]], sample_weight=[1.0])
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        mse([[0.0], [0.0]], [[1.0], [2.0]], sample_weight=[1.0, -1.0])


def test_forward_backward(use_backend, rng):
    loss = losses.CategoricalCrossentropy(from_logits=True)
    logits = rng.standard_normal((3, 4))
    y = np.eye(4)[[0, 3, 1]]
    value, grad = loss.forward_backward(y, logits)
    assert value == pytest.approx(loss(y, logits))
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(grad, (softmax - y) / 3, rtol=1e-12)
    yv, pv, _ = loss.validate(y, logits)
    value2, grad2 = loss.forward_backward(yv, pv, validate=False)
    assert value2 == value
    np.testing.assert_array_equal(grad2, grad)


def test_dtype_follows_y_pred(use_backend):
    loss = losses.MeanSquaredError()
    _, g = loss.forward_backward(np.zeros((2, 2)), np.ones((2, 2), np.float32))
    assert g.dtype == np.float32
    _, g = loss.forward_backward(np.zeros((2, 2), np.float32), np.ones((2, 2)))
    assert g.dtype == np.float64


def test_target_shapes(use_backend):
    bce = losses.BinaryCrossentropy()
    # (N,) targets for an (N, 1) output, as Keras allows
    assert bce([1.0, 0.0], [[0.75], [0.25]]) == pytest.approx(-math.log(0.75))
    with pytest.raises(ValueError, match="y_true has shape"):
        losses.MeanSquaredError()(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        losses.CategoricalCrossentropy()([0, 1, 2], np.full((3, 3), 1 / 3))


def test_validation_errors(use_backend):
    scce = losses.SparseCategoricalCrossentropy()
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="label 3"):
        scce([0, 3], p)
    with pytest.raises(ValueError, match="fractional"):
        scce([0, 1.5], p)
    with pytest.raises(ValueError, match="negative label"):
        scce([0, -1], p)
    with pytest.raises(ValueError, match="2 rows"):
        scce([0, 1, 2], p)
    with pytest.raises(ValueError, match="y_pred must be 2-D"):
        scce([0], [0.5])
    with pytest.raises(ValueError, match="y_pred contains"):
        losses.MeanSquaredError()([1.0], [np.nan])
    with pytest.raises(ValueError, match="y_true is empty"):
        losses.MeanSquaredError()(np.zeros((0, 2)), np.zeros((1, 2)))
    with pytest.raises(TypeError, match="y_true must hold real numbers"):
        losses.MeanSquaredError()(["a"], [1.0])
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        losses.BinaryCrossentropy()([2.0], [0.5])
    with pytest.raises(TypeError, match="from_logits must be a bool"):
        losses.BinaryCrossentropy(from_logits="yes")
    with pytest.raises(ValueError, match="delta must be >"):
        losses.Huber(delta=0.0)


def test_probability_loss_on_logits_warns(use_backend):
    with pytest.warns(RuntimeWarning, match="from_logits=True"):
        losses.CategoricalCrossentropy()([[0.0, 1.0]], [[-2.0, 3.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses.CategoricalCrossentropy(from_logits=True)([[0.0, 1.0]], [[-2.0, 3.0]])


def test_logits_variant_for():
    scce = losses.SparseCategoricalCrossentropy()
    fused = scce.logits_variant_for("softmax")
    assert isinstance(fused, losses.SparseCategoricalCrossentropy) and fused.from_logits
    assert losses.CategoricalCrossentropy().logits_variant_for("softmax").from_logits
    assert losses.BinaryCrossentropy().logits_variant_for("sigmoid").from_logits
    assert losses.BinaryCrossentropy().logits_variant_for("softmax") is None
    assert scce.logits_variant_for("relu") is None
    assert losses.SparseCategoricalCrossentropy(from_logits=True).logits_variant_for("softmax") \
        is None
    assert losses.MeanSquaredError().logits_variant_for("sigmoid") is None


def test_logits_variant_computes_the_same_loss(use_backend, rng):
    logits = rng.standard_normal((4, 3))
    labels = [0, 2, 1, 1]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scce = losses.SparseCategoricalCrossentropy()
    assert scce.logits_variant_for("softmax")(labels, logits) == \
        pytest.approx(scce(labels, probs), rel=1e-12)
    bce = losses.BinaryCrossentropy()
    t = rng.uniform(0, 1, (4, 3))
    assert bce.logits_variant_for("sigmoid")(t, logits) == \
        pytest.approx(bce(t, 1 / (1 + np.exp(-logits))), rel=1e-12)


def test_get_names_aliases_and_errors():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get("mean_squared_error"), losses.MeanSquaredError)
    assert isinstance(losses.get("MAE"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("mean_absolute_error"), losses.MeanAbsoluteError)
    assert isinstance(losses.get("huber"), losses.Huber)
    assert isinstance(losses.get("binary_crossentropy"), losses.BinaryCrossentropy)
    assert isinstance(losses.get("categorical_crossentropy"), losses.CategoricalCrossentropy)
    scce = losses.get("sparse_categorical_crossentropy")
    assert isinstance(scce, losses.SparseCategoricalCrossentropy) and not scce.from_logits
    assert isinstance(losses.get(losses.Huber), losses.Huber)
    obj = losses.Huber(2.0)
    assert losses.get(obj) is obj
    with pytest.raises(ValueError, match="did you mean 'categorical_crossentropy'"):
        losses.get("categorical_crossentropi")
    with pytest.raises(TypeError, match="loss must be"):
        losses.get(3)


def test_config_round_trip():
    for loss in [losses.MeanSquaredError(), losses.Huber(0.3), losses.BinaryCrossentropy(True),
                 losses.SparseCategoricalCrossentropy(from_logits=True, name="xent")]:
        config = losses.serialize(loss)
        back = losses.deserialize(config)
        assert back == loss and back.get_config() == loss.get_config()
    assert losses.Huber(0.3).get_config() == {"name": "huber", "delta": 0.3}
    assert losses.BinaryCrossentropy().get_config() == {"name": "binary_crossentropy",
                                                        "from_logits": False,
                                                        "label_smoothing": 0.0}
    with pytest.raises(ValueError, match="unknown loss class"):
        losses.deserialize({"class_name": "os.system", "config": {}})
    with pytest.raises(ValueError, match="invalid config"):
        losses.deserialize({"class_name": "Huber", "config": {"bogus": 1}})
    with pytest.raises(TypeError, match="must be a dict"):
        losses.deserialize(["Huber"])
    with pytest.raises(ValueError, match="class_name"):
        losses.deserialize({"config": {}})


class _Scaled(losses.MeanSquaredError):
    """A loss class of the user's, with an argument of its own."""

    def __init__(self, scale=1.0, name=None):
        super().__init__(name)
        self.scale = scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def test_custom_losses_deserialize_through_custom_objects():
    config = losses.serialize(_Scaled(3.0))
    assert config == {"class_name": "_Scaled",
                      "config": {"name": "mean_squared_error", "scale": 3.0}}
    with pytest.raises(ValueError, match="unknown loss class '_Scaled'.*custom_objects"):
        losses.deserialize(config)
    back = losses.deserialize(config, custom_objects={"_Scaled": _Scaled})
    assert type(back) is _Scaled and back == _Scaled(3.0)
    assert losses.get(config, custom_objects={"_Scaled": _Scaled}) == back
    assert type(losses.get("_scaled", custom_objects={"_Scaled": _Scaled})) is _Scaled
    # only Loss subclasses are taken from custom_objects (one dict serves a whole model)
    with pytest.raises(ValueError, match="unknown loss class"):
        losses.deserialize({"class_name": "Thing", "config": {}}, custom_objects={"Thing": dict})
    with pytest.raises(TypeError, match="custom_objects must be a dict"):
        losses.deserialize(config, custom_objects=[_Scaled])


# ----------------------------------------------------------------------------
# label_smoothing (Keras): softened targets, exact gradients, configuration
# ----------------------------------------------------------------------------

def _smoothed_case(cls, from_logits, rng):
    """(loss(y_true, y_pred) by hand in float64, y_true, y_pred) with hard targets."""
    if cls is losses.BinaryCrossentropy:
        y_true = rng.integers(0, 2, (N, C)).astype(np.float64)
        y_pred = rng.standard_normal((N, C)) * 2 if from_logits else rng.uniform(0.05, 0.95, (N, C))

        def formula(t, p):
            if from_logits:
                p = 1 / (1 + np.exp(-p))
            return np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)), axis=-1)
        return formula, y_true, y_pred, 2
    y_true = np.eye(C)[rng.integers(0, C, N)]
    y_pred = rng.standard_normal((N, C)) * 2 if from_logits else rng.dirichlet(np.ones(C) * 3, N)

    def formula(t, p):
        if from_logits:
            p = np.exp(p - p.max(-1, keepdims=True))
        p = p / p.sum(-1, keepdims=True)
        return -np.sum(t * np.log(p), axis=-1)
    return formula, y_true, y_pred, C


@pytest.mark.parametrize("cls", [losses.BinaryCrossentropy, losses.CategoricalCrossentropy])
@pytest.mark.parametrize("from_logits", [False, True], ids=["probs", "logits"])
def test_label_smoothing_value_and_gradient(use_backend, cls, from_logits, rng):
    formula, y_true, y_pred, k = _smoothed_case(cls, from_logits, rng)
    ls = 0.2
    loss = cls(from_logits=from_logits, label_smoothing=ls)
    weights = rng.uniform(0.5, 2.0, N)
    target = y_true * (1 - ls) + ls / k          # Keras: 0.5 * ls for binary, ls / K over K classes
    expected = np.sum(weights * formula(target, y_pred)) / N
    value, grad = loss.forward_backward(y_true, y_pred, weights)
    assert value == pytest.approx(expected, rel=1e-12)
    assert loss(y_true, y_pred, weights) == pytest.approx(expected, rel=1e-12)
    assert value != pytest.approx(cls(from_logits=from_logits)(y_true, y_pred, weights), rel=1e-3)
    numeric = numerical_gradient(lambda p: loss(y_true, p, weights), y_pred.copy())
    assert_gradient_close(grad, numeric)
    # the softmax / sigmoid fusion keeps the smoothing
    variant = cls(label_smoothing=ls).logits_variant_for("softmax" if k == C else "sigmoid")
    assert variant.label_smoothing == ls and variant.from_logits


def test_label_smoothing_one_gives_the_uniform_target(use_backend):
    y_pred = np.array([[0.2, 0.3, 0.5]])
    got = losses.CategoricalCrossentropy(label_smoothing=1.0)(np.array([[0.0, 0.0, 1.0]]), y_pred)
    assert got == pytest.approx(-np.mean(np.log(y_pred)), rel=1e-12)
    got = losses.BinaryCrossentropy(label_smoothing=1.0)(np.array([[1.0]]), np.array([[0.8]]))
    assert got == pytest.approx(-0.5 * (np.log(0.8) + np.log(0.2)), rel=1e-12)


def test_label_smoothing_validation_and_config():
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing"):
            losses.CategoricalCrossentropy(label_smoothing=bad)
    with pytest.raises(TypeError, match="label_smoothing"):
        losses.BinaryCrossentropy(label_smoothing="0.1")
    loss = losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)
    assert loss.get_config() == {"name": "categorical_crossentropy", "from_logits": True,
                                 "label_smoothing": 0.1}
    back = losses.deserialize(losses.serialize(loss))
    assert back == loss and back.label_smoothing == 0.1
    assert back != losses.CategoricalCrossentropy(from_logits=True)
    # configs written before label_smoothing existed still load, without smoothing
    old = losses.deserialize({"class_name": "BinaryCrossentropy",
                              "config": {"name": "binary_crossentropy", "from_logits": False}})
    assert old.label_smoothing == 0.0
    assert "label_smoothing" not in losses.SparseCategoricalCrossentropy().get_config()


def test_label_smoothed_model_trains_on_the_per_op_path_with_the_formula_loss(use_backend):
    """The compiled training step reads targets as given, so a smoothed loss must
    not run fused; on the per-op path the loss fit reports is the smoothed one."""
    import fastnn
    from fastnn import utils

    fused = pytest.importorskip("fastnn.backends.fused")
    fastnn.config.set_floatx("float64")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 4))
    y = np.eye(3)[(x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)]

    def model_with(loss):
        utils.set_random_seed(0)
        model = fastnn.Sequential([fastnn.layers.Dense(8, activation="tanh", input_shape=(4,)),
                                   fastnn.layers.Dense(3, activation="softmax")])
        model.compile(optimizer=fastnn.optimizers.SGD(0.5), loss=loss)
        return model

    model = model_with(losses.CategoricalCrossentropy(label_smoothing=0.3))
    if fused._fused_module() is not None:
        assert fused.fused_trainer_for(model, 64) is None
        assert "smooths the labels" in fused.explain(model, 64)
        assert fused.fused_trainer_for(model_with("categorical_crossentropy"), 64) is not None
    before = model.predict(x, verbose=0)
    target = y * 0.7 + 0.1
    expected = np.mean(-np.sum(target * np.log(before), axis=1))
    history = model.fit(x, y, batch_size=64, epochs=40, shuffle=False, verbose=0)
    # one batch per epoch: the first epoch's loss is that of the initial weights
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-10)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    after = model.predict(x, verbose=0)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(
        np.mean(-np.sum(target * np.log(after), axis=1)), rel=1e-10)
