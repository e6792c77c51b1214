"""fastnn.nn.functional: activations, linear, dropout and losses (values and gradients)."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from fastnn import config, nn
from fastnn.nn import functional as F
from fastnn.tensor import Tensor, no_grad, tensor
from gradcheck import assert_gradient_close, numerical_gradient


def grad_check(f, *arrays, wrt=None):
    """backward() of scalar f(*tensors) against central differences, for inputs ``wrt``."""
    wrt = range(len(arrays)) if wrt is None else wrt
    leaves = [tensor(a, dtype="float64", requires_grad=i in wrt) for i, a in enumerate(arrays)]
    f(*leaves).backward()
    for i in wrt:
        def scalar(values, i=i):
            with no_grad():
                return f(*[Tensor(values) if j == i else Tensor(np.asarray(a, np.float64))
                           for j, a in enumerate(arrays)]).item()
        assert_gradient_close(leaves[i].grad.data,
                              numerical_gradient(scalar, np.array(arrays[i], np.float64)),
                              what=f"input {i}")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@pytest.fixture
def x(rng):
    values = rng.normal(size=(4, 5))
    values[np.abs(values) < 1e-3] = 0.3  # away from the kinks of relu & co.
    return values


# ----------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": (F.relu, lambda v: np.maximum(v, 0)),
    "sigmoid": (F.sigmoid, sigmoid),
    "tanh": (F.tanh, np.tanh),
    "softmax1": (lambda t: F.softmax(t, dim=1), lambda v: np.exp(log_softmax(v, 1))),
    "softmax0": (lambda t: F.softmax(t, dim=0), lambda v: np.exp(log_softmax(v, 0))),
    "log_softmax": (lambda t: F.log_softmax(t, dim=1), lambda v: log_softmax(v, 1)),
    "gelu": (F.gelu, lambda v: 0.5 * v * (1 + np.vectorize(math.erf)(v / math.sqrt(2)))),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                  lambda v: 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))),
    "elu": (lambda t: F.elu(t, alpha=0.7), lambda v: np.where(v > 0, v, 0.7 * np.expm1(v))),
    "leaky_relu": (F.leaky_relu, lambda v: np.where(v > 0, v, 0.01 * v)),  # PyTorch's slope
    "softplus": (F.softplus, lambda v: np.log1p(np.exp(v))),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_values_and_gradients(name, x, use_backend, rng):
    f, formula = ACTIVATIONS[name]
    np.testing.assert_allclose(f(tensor(x)).numpy(), formula(x), rtol=1e-12, atol=1e-15)
    weights = rng.normal(size=x.shape)
    grad_check(lambda t: (f(t) * Tensor(weights)).sum(), x)


def test_top_level_functions_are_the_functional_ones():
    for name in ["relu", "sigmoid", "tanh", "softmax", "log_softmax"]:
        assert getattr(fastnn, name) is getattr(F, name)
    assert fastnn.softmax(np.zeros((2, 4)), dim=1).numpy().tolist() == [[0.25] * 4] * 2


def test_softmax_without_dim_warns_and_uses_pytorchs_choice():
    with pytest.warns(UserWarning, match="dim"):
        out = F.softmax(tensor(np.zeros((2, 3))))
    np.testing.assert_allclose(out.numpy(), 1 / 3)


def test_activation_input_errors():
    with pytest.raises(TypeError, match="float"):
        F.relu(tensor([1, 2]))
    with pytest.raises(ValueError, match="NaN"):
        F.relu(np.array([np.inf]))
    with pytest.raises(TypeError, match="alpha"):
        F.elu(tensor([1.0]), alpha="big")
    with pytest.raises(ValueError, match="out of range"):
        F.softmax(tensor(np.zeros((2, 3))), dim=2)


# ----------------------------------------------------------------------------
# linear and dropout
# ----------------------------------------------------------------------------

def test_linear_function_values_and_gradients(use_backend, rng):
    x, w, b = rng.normal(size=(3, 4)), rng.normal(size=(2, 4)), rng.normal(size=2)
    np.testing.assert_allclose(F.linear(tensor(x), tensor(w), tensor(b)).numpy(), x @ w.T + b,
                               rtol=1e-13)
    np.testing.assert_allclose(F.linear(tensor(x), tensor(w)).numpy(), x @ w.T, rtol=1e-13)
    r = rng.normal(size=(3, 2))
    grad_check(lambda x_, w_, b_: (F.linear(x_, w_, b_) * Tensor(r)).sum(), x, w, b)
    with pytest.raises(ValueError, match="bias must have shape"):
        F.linear(tensor(x), tensor(w), tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="2-D"):
        F.linear(tensor(x), tensor(np.zeros(4)))


def test_dropout(rng):
    x = tensor(np.ones((200, 50)), requires_grad=True)
    fastnn.manual_seed(5)
    y = F.dropout(x, p=0.3)
    values = np.unique(y.numpy())
    np.testing.assert_allclose(values, [0.0, 1 / 0.7])
    assert abs(np.mean(y.numpy() == 0) - 0.3) < 0.02
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.numpy())  # d(x * mask)/dx = mask
    fastnn.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(x, p=0.3).numpy(), y.numpy())
    assert F.dropout(x, p=0.3, training=False) is x
    assert F.dropout(x, p=0.0) is x
    assert np.all(F.dropout(x, p=1.0).numpy() == 0)
    with pytest.raises(ValueError, match="p must be >= 0"):
        F.dropout(x, p=-0.1)


# ----------------------------------------------------------------------------
# Losses: values (hand formulas) and gradients (finite differences), every reduction
# ----------------------------------------------------------------------------

REDUCE = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}


@pytest.mark.parametrize("reduction", sorted(REDUCE))
def test_regression_losses(reduction, use_backend, rng):
    pred, target = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    cases = [(F.mse_loss, (pred - target) ** 2), (F.l1_loss, np.abs(pred - target))]
    weights = rng.normal(size=(4, 3)) if reduction == "none" else 1.0
    for fn, elementwise in cases:
        out = fn(tensor(pred), target, reduction=reduction)
        np.testing.assert_allclose(out.numpy(), REDUCE[reduction](elementwise), rtol=1e-13)
        # Gradients with respect to both the prediction and the target.
        grad_check(lambda p, t: (fn(p, t, reduction=reduction) * Tensor(np.asarray(weights))).sum(),
                   pred, target)


def test_regression_losses_on_1d_and_list_targets():
    assert F.mse_loss(tensor([1.0, 2.0, 3.0]), [1.0, 0.0, 0.0]).item() == pytest.approx(13 / 3)
    assert F.l1_loss(tensor([[1.0], [2.0]]), np.array([[0.0], [0.0]]), reduction="sum").item() == 3.0
    with pytest.raises(ValueError, match="target shape"):
        F.mse_loss(tensor(np.zeros((4, 1))), np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        F.mse_loss(tensor([1.0]), [np.nan])


@pytest.mark.parametrize("reduction", sorted(REDUCE))
def test_cross_entropy_with_class_indices(reduction, use_backend, rng):
    logits, labels = rng.normal(size=(5, 4)), np.array([0, 3, 1, 1, 2])
    expected = -log_softmax(logits, 1)[np.arange(5), labels]
    out = F.cross_entropy(tensor(logits), labels, reduction=reduction)
    np.testing.assert_allclose(out.numpy(), REDUCE[reduction](expected), rtol=1e-13)
    weights = rng.normal(size=5) if reduction == "none" else 1.0
    grad_check(lambda z: (F.cross_entropy(z, labels, reduction=reduction) * Tensor(np.asarray(weights))).sum(),
               logits)
    # labels as a list or a Tensor give the same
    assert F.cross_entropy(tensor(logits), labels.tolist()).item() == \
        pytest.approx(F.cross_entropy(tensor(logits), tensor(labels)).item(), rel=1e-15)


def test_cross_entropy_with_class_probabilities(use_backend, rng):
    logits = rng.normal(size=(3, 4))
    probs = rng.dirichlet(np.ones(4), size=3)
    expected = -(probs * log_softmax(logits, 1)).sum(1)
    np.testing.assert_allclose(F.cross_entropy(tensor(logits), probs).item(), expected.mean(), rtol=1e-13)
    np.testing.assert_allclose(F.cross_entropy(tensor(logits), probs, reduction="none").numpy(),
                               expected, rtol=1e-13)
    grad_check(lambda z: F.cross_entropy(z, probs), logits)


def test_cross_entropy_errors():
    logits = tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="label 4"):
        F.cross_entropy(logits, [0, 1, 4])
    with pytest.raises(ValueError, match="negative label"):
        F.cross_entropy(logits, [0, -1, 2])
    with pytest.raises(ValueError, match="3 rows but target has 2"):
        F.cross_entropy(logits, [0, 1])
    with pytest.raises(ValueError, match="fractional"):
        F.cross_entropy(logits, [0.5, 1, 2])
    with pytest.raises(ValueError, match=r"\(batch, classes\)"):
        F.cross_entropy(tensor(np.zeros((2, 3, 4))), [0, 1])
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, [0, 1, 2], reduction="avg")
    # a column of labels is refused, as by PyTorch (not flattened)
    for loss in (F.cross_entropy, lambda x, t: F.nll_loss(F.log_softmax(x, dim=1), t)):
        with pytest.raises(ValueError, match=r"1-D array of class indices.*\(3, 1\)"):
            loss(logits, np.array([[0], [1], [2]]))


def _weighted_smoothed_ce(logits, labels, weight, ignore_index, ls):
    """PyTorch's formula, by hand: per-sample losses and the 'mean' denominator."""
    n, k = logits.shape
    log_p = log_softmax(logits, 1)
    w = np.ones(k) if weight is None else np.asarray(weight)
    kept = labels != ignore_index
    safe = np.where(kept, labels, 0)
    nll = -w[safe] * log_p[np.arange(n), safe] * kept
    smooth = -(log_p * w).sum(1) * kept
    return (1 - ls) * nll + ls / k * smooth, np.sum(w[safe] * kept)


@pytest.mark.parametrize("reduction", sorted(REDUCE))
def test_cross_entropy_weight_ignore_index_and_label_smoothing(reduction, use_backend, rng):
    logits = rng.normal(size=(6, 4))
    labels = np.array([0, 3, -1, 1, 3, 2])
    weight = np.array([1.0, 0.5, 2.0, 0.25])
    per_sample, total = _weighted_smoothed_ce(logits, labels, weight, -1, 0.2)
    expected = {"mean": per_sample.sum() / total, "sum": per_sample.sum(), "none": per_sample}
    kwargs = dict(weight=weight, ignore_index=-1, reduction=reduction, label_smoothing=0.2)
    out = F.cross_entropy(tensor(logits), labels, **kwargs)
    np.testing.assert_allclose(out.numpy(), expected[reduction], rtol=1e-12)
    upstream = rng.normal(size=6) if reduction == "none" else 1.0
    grad_check(lambda z: (F.cross_entropy(z, labels, **kwargs) * Tensor(np.asarray(upstream))).sum(),
               logits)
    # without smoothing: the backend's sample-weighted path; nll_loss agrees with it
    kwargs["label_smoothing"] = 0.0
    per_sample, total = _weighted_smoothed_ce(logits, labels, weight, -1, 0.0)
    expected = {"mean": per_sample.sum() / total, "sum": per_sample.sum(), "none": per_sample}
    np.testing.assert_allclose(F.cross_entropy(tensor(logits), labels, **kwargs).numpy(),
                               expected[reduction], rtol=1e-12)
    grad_check(lambda z: (F.cross_entropy(z, labels, **kwargs) * Tensor(np.asarray(upstream))).sum(),
               logits)
    del kwargs["label_smoothing"]
    np.testing.assert_allclose(
        F.nll_loss(tensor(log_softmax(logits, 1)), labels, **kwargs).numpy(),
        expected[reduction], rtol=1e-12)
    grad_check(lambda z: (F.nll_loss(z, labels, **kwargs) * Tensor(np.asarray(upstream))).sum(),
               log_softmax(logits, 1))


def test_cross_entropy_label_smoothing_of_class_probabilities(use_backend, rng):
    logits = rng.normal(size=(3, 4))
    probs = rng.dirichlet(np.ones(4), size=3)
    weight = np.array([1.0, 0.5, 2.0, 0.25])
    smoothed = probs * 0.6 + 0.4 / 4
    expected = -(smoothed * weight * log_softmax(logits, 1)).sum(1)
    out = F.cross_entropy(tensor(logits), probs, weight, label_smoothing=0.4)
    np.testing.assert_allclose(out.item(), expected.mean(), rtol=1e-12)  # divided by the batch
    grad_check(lambda z: F.cross_entropy(z, probs, weight, label_smoothing=0.4), logits)


def test_cross_entropy_option_errors():
    logits = tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="weight has 3 entries but the input has 4 classes"):
        F.cross_entropy(logits, [0, 1, 2], weight=[1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="weight must be 1-D"):
        F.cross_entropy(logits, [0, 1, 2], weight=np.ones((2, 2)))
    with pytest.raises(ValueError, match="weight must hold class weights >= 0"):
        F.nll_loss(logits, [0, 1, 2], weight=[1.0, -1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        F.cross_entropy(logits, [0, 1, 2], ignore_index=1.5)
    with pytest.raises(ValueError, match="label_smoothing must be <= 1"):
        F.cross_entropy(logits, [0, 1, 2], label_smoothing=1.1)
    with pytest.raises(ValueError, match="ignore_index=0 is not supported for class-probability"):
        F.cross_entropy(logits, np.full((3, 4), 0.25), ignore_index=0)
    # targets other than the ignore_index are still checked
    with pytest.raises(ValueError, match="negative label -2"):
        F.cross_entropy(logits, [0, -1, -2], ignore_index=-1)
    with pytest.raises(ValueError, match="label 4"):
        F.nll_loss(logits, [-100, 4, 0])
    with pytest.raises(TypeError):
        F.cross_entropy(logits, [0, 1, 2], "sum")  # weight, not reduction, is third


def test_nll_loss_after_log_softmax_equals_cross_entropy(rng):
    logits, labels = tensor(rng.normal(size=(6, 3))), rng.integers(0, 3, 6)
    for reduction in ("mean", "sum"):
        np.testing.assert_allclose(
            F.nll_loss(F.log_softmax(logits, 1), labels, reduction=reduction).item(),
            F.cross_entropy(logits, labels, reduction=reduction).item(), rtol=1e-6)


@pytest.mark.parametrize("reduction", sorted(REDUCE))
def test_binary_cross_entropies(reduction, use_backend, rng):
    logits = rng.normal(size=(4, 2))
    p = sigmoid(logits)
    t = rng.integers(0, 2, size=(4, 2)).astype(np.float64)
    expected = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    weights = rng.normal(size=(4, 2)) if reduction == "none" else 1.0
    np.testing.assert_allclose(F.binary_cross_entropy(tensor(p), t, reduction=reduction).numpy(),
                               REDUCE[reduction](expected), rtol=1e-12)
    np.testing.assert_allclose(
        F.binary_cross_entropy_with_logits(tensor(logits), t, reduction=reduction).numpy(),
        REDUCE[reduction](expected), rtol=1e-12)
    grad_check(lambda q: (F.binary_cross_entropy(q, t, reduction=reduction)
                          * Tensor(np.asarray(weights))).sum(), p)
    grad_check(lambda z: (F.binary_cross_entropy_with_logits(z, t, reduction=reduction)
                          * Tensor(np.asarray(weights))).sum(), logits)


def test_binary_cross_entropy_input_checks():
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        F.binary_cross_entropy(tensor([0.5, 1.5]), [0.0, 1.0])
    # logits as large as 1000 stay finite: the loss is computed from the logits
    value = F.binary_cross_entropy_with_logits(tensor([1000.0, -1000.0], dtype="float64"), [0.0, 1.0])
    assert value.item() == pytest.approx(1000.0)


def test_loss_dtype_follows_the_input():
    config.set_floatx("float32")
    out = F.cross_entropy(tensor(np.zeros((2, 3), np.float32), requires_grad=True), [0, 1])
    assert out.dtype == np.float32
    out.backward()


@pytest.mark.parametrize("beta,threshold", [(2.0, 20.0), (0.5, 3.0), (-1.0, 20.0), (1.0, 5.0)])
def test_softplus_beta_and_threshold_match_torch(beta, threshold):
    torch = pytest.importorskip("torch")
    x = np.linspace(-30, 30, 41)
    ours = tensor(x.copy(), requires_grad=True)
    F.softplus(ours, beta, threshold).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    torch.nn.functional.softplus(theirs, beta, threshold).sum().backward()
    np.testing.assert_allclose(F.softplus(tensor(x), beta, threshold).numpy(),
                               torch.nn.functional.softplus(torch.tensor(x), beta, threshold),
                               rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-15)
    assert "beta=" in repr(nn.Softplus(beta, threshold))


def test_selu_and_one_hot_match_torch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-4, 4, 17)
    ours = tensor(x.copy(), requires_grad=True)
    nn.SELU()(ours).sum().backward()
    theirs = torch.tensor(x, requires_grad=True)
    torch.nn.SELU()(theirs).sum().backward()
    np.testing.assert_allclose(F.selu(tensor(x)).numpy(), torch.selu(torch.tensor(x)), rtol=1e-15)
    np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-14)
    labels = np.array([[0, 3], [2, 2]])
    assert (F.one_hot(labels).numpy().tolist()
            == torch.nn.functional.one_hot(torch.tensor(labels)).tolist())
    assert F.one_hot(tensor(np.array([1])), num_classes=3).numpy().tolist() == [[0, 1, 0]]
    with pytest.raises(ValueError, match="non-negative"):
        F.one_hot(np.array([-1, 0]))
    with pytest.raises(ValueError, match="not below num_classes"):
        F.one_hot(np.array([3]), num_classes=3)
    with pytest.raises(TypeError, match="integer class indices"):
        F.one_hot(np.array([0.5]))


def test_dropout_takes_inplace_positionally():
    x = tensor(np.ones(4))
    np.testing.assert_array_equal(F.dropout(x, 0.5, False, False).numpy(), x.numpy())
