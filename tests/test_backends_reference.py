"""The reference backend's ops against hand-computed values, formulas and PyTorch.

The reference backend is the truth the fast backend is tested against, so its
own numbers are pinned here independently: by hand, by finite differences and
by torch.optim. (Activation and loss gradients on every backend are checked in
test_activations.py and test_losses.py.)
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from fastnn import backends
from fastnn.backends.reference import EPSILON, ReferenceOps, erf
from gradcheck import assert_gradient_close, numerical_gradient

ops = ReferenceOps()


def test_registry_returns_the_reference_ops():
    assert isinstance(backends.get("reference"), ReferenceOps)
    assert backends.get("reference").name == "reference"


def test_every_documented_op_exists():
    doc = backends.__doc__
    names = ["gemm", "activation", "activation_backward", "dense_forward", "dense_backward",
             "loss", "loss_value", "sgd_update", "adam_update", "rmsprop_update",
             "adagrad_update", "clip_by_value", "clip_by_norm", "global_norm",
             "clip_by_global_norm", "l1l2_penalty", "l1l2_grad", "dropout_mask"]
    for name in names:
        assert f"{name}(" in doc, name
        assert callable(getattr(ops, name)), name


# --------------------------------------------------------------------------- gemm

@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_transposes_alpha_beta(trans_a, trans_b, rng, float_dtype):
    m, k, n = 3, 5, 4
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(float_dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(float_dtype)
    c0 = rng.standard_normal((m, n)).astype(float_dtype)
    op_a = a.T if trans_a else a
    op_b = b.T if trans_b else b
    expected = 2.0 * (op_a.astype(np.float64) @ op_b.astype(np.float64)) - 0.5 * c0

    out = c0.copy()
    result = ops.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=2.0, beta=-0.5, out=out)
    assert result is out
    assert result.dtype == float_dtype
    tol = 1e-5 if float_dtype == np.float32 else 1e-13
    np.testing.assert_allclose(result, expected, rtol=tol, atol=tol)


def test_gemm_hand_values_and_beta_zero_ignores_out():
    a = np.array([[1.0, 2.0], [3.0, 4.0]])
    b = np.array([[5.0, 6.0], [7.0, 8.0]])
    out = np.full((2, 2), np.nan)  # beta = 0: out must not be read (NaN would leak)
    np.testing.assert_array_equal(ops.gemm(a, b, out=out), [[19.0, 22.0], [43.0, 50.0]])
    np.testing.assert_array_equal(ops.gemm(a, b, trans_a=True), [[26.0, 30.0], [38.0, 44.0]])


def test_gemm_empty_inner_dimension_gives_zeros():
    c = ops.gemm(np.ones((3, 0)), np.ones((0, 2)))
    np.testing.assert_array_equal(c, np.zeros((3, 2)))


def test_gemm_noncontiguous_input_gives_contiguous_output(rng):
    a = rng.standard_normal((6, 8))[:, ::2]
    b = rng.standard_normal((4, 3))
    c = ops.gemm(a, b)
    assert c.flags.c_contiguous
    np.testing.assert_allclose(c, a @ b, rtol=1e-14)


# -------------------------------------------------------------------- activations

def test_erf_matches_math_erf_exactly():
    xs = np.array([-30.0, -3.0, -0.5, -1e-9, 0.0, 1e-300, 0.5, 1.0, 2.5, 6.0])
    np.testing.assert_array_equal(erf(xs), [math.erf(v) for v in xs])
    assert erf(np.float32([0.5])).dtype == np.float32
    assert erf(np.array([0.5]))[0] == 0.5204998778130465
    # a 0-d array (a scalar through activations.gelu) used to raise AttributeError
    assert erf(np.array(0.5)) == 0.5204998778130465 and erf(np.float32(0.5)).dtype == np.float32


def test_activation_hand_values():
    x = np.array([-1.0, 0.0, 2.0])
    e = math.e
    cases = {
        "linear": [-1.0, 0.0, 2.0],
        "relu": [0.0, 0.0, 2.0],
        "sigmoid": [1 / (1 + e), 0.5, 1 / (1 + e ** -2)],
        "tanh": [math.tanh(-1), 0.0, math.tanh(2)],
        "exponential": [1 / e, 1.0, e * e],
        "leaky_relu": [-0.2, 0.0, 2.0],           # Keras default slope 0.2
        "elu": [1 / e - 1, 0.0, 2.0],             # alpha 1
        "softplus": [math.log(1 + 1 / e), math.log(2), math.log(1 + e * e)],
        "gelu": [-0.5 * math.erfc(1 / math.sqrt(2)), 0.0, 1.9544997361036416],
        "gelu_tanh": [-0.15880800939172324, 0.0, 1.954597694087775],
    }
    for name, expected in cases.items():
        np.testing.assert_allclose(ops.activation(x, name), expected, rtol=1e-14, err_msg=name)
    z = e ** -1 + 1 + e ** 2
    np.testing.assert_allclose(ops.activation(x, "softmax"), [e ** -1 / z, 1 / z, e ** 2 / z],
                               rtol=1e-14)
    np.testing.assert_allclose(ops.activation(x, "log_softmax"), x - math.log(z), rtol=1e-14)


def test_activation_param_overrides_default():
    x = np.array([-2.0, 3.0])
    np.testing.assert_allclose(ops.activation(x, "leaky_relu", 0.01), [-0.02, 3.0])
    np.testing.assert_allclose(ops.activation(x, "elu", 0.5), [0.5 * math.expm1(-2), 3.0])


def test_softmax_along_axis_zero():
    x = np.array([[0.0, 1.0], [2.0, 3.0]])
    y = ops.activation(x, "softmax", axis=0)
    np.testing.assert_allclose(y.sum(axis=0), [1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(y[0, 0], 1 / (1 + math.e ** 2), rtol=1e-15)


def test_activation_out_is_written_and_may_alias_input(rng):
    x = rng.standard_normal((4, 3))
    expected = np.maximum(x, 0)
    out = np.empty_like(x)
    assert ops.activation(x, "relu", out=out) is out
    np.testing.assert_array_equal(out, expected)
    assert ops.activation(x, "relu", out=x) is x
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("name", ["linear", "relu", "sigmoid", "tanh", "exponential",
                                  "leaky_relu", "elu", "softplus", "softmax", "log_softmax"])
def test_activation_backward_from_output_alone(name, rng):
    # Layers that keep only y (dense_backward with preact=None) get the same gradient.
    x = rng.standard_normal((5, 4))
    g = rng.standard_normal((5, 4))
    y = ops.activation(x, name)
    np.testing.assert_allclose(ops.activation_backward(g, None, y, name),
                               ops.activation_backward(g, x, y, name), rtol=1e-12, atol=1e-15)


def test_unknown_activation_name_fails_loudly():
    with pytest.raises(ValueError, match="unknown activation"):
        ops.activation(np.zeros(2), "relux")


# -------------------------------------------------------------------------- dense

@pytest.mark.parametrize("activation", ["linear", "relu", "tanh", "gelu", "softmax"])
def test_dense_forward_is_gemm_bias_activation(activation, rng):
    x = rng.standard_normal((5, 3))
    kernel = rng.standard_normal((3, 4))
    bias = rng.standard_normal(4)
    preact = np.empty((5, 4))
    y = ops.dense_forward(x, kernel, bias, activation, preact_out=preact)
    np.testing.assert_allclose(preact, x @ kernel + bias, rtol=1e-14)
    np.testing.assert_allclose(y, ops.activation(x @ kernel + bias, activation), rtol=1e-13)
    np.testing.assert_allclose(ops.dense_forward(x, kernel, None, activation),
                               ops.activation(x @ kernel, activation), rtol=1e-13)


@pytest.mark.parametrize("activation", ["linear", "sigmoid", "elu", "gelu", "gelu_tanh",
                                        "softmax", "log_softmax"])
def test_dense_backward_matches_finite_differences(activation, rng):
    x = rng.standard_normal((4, 3))
    kernel = rng.standard_normal((3, 5))
    bias = rng.standard_normal(5)
    g = rng.standard_normal((4, 5))

    def objective(x_, k_, b_):
        return float(np.sum(g * ops.dense_forward(x_, k_, b_, activation)))

    preact = np.empty((4, 5))
    y = ops.dense_forward(x, kernel, bias, activation, preact_out=preact)
    grad_kernel = np.empty_like(kernel)
    grad_bias = np.empty_like(bias)
    grad_x = ops.dense_backward(g, x, kernel, y, preact, activation,
                                grad_kernel=grad_kernel, grad_bias=grad_bias)
    assert_gradient_close(grad_x, numerical_gradient(lambda v: objective(v, kernel, bias), x))
    assert_gradient_close(grad_kernel,
                          numerical_gradient(lambda v: objective(x, v, bias), kernel))
    assert_gradient_close(grad_bias, numerical_gradient(lambda v: objective(x, kernel, v), bias))


def test_dense_backward_accumulates_and_skips_input_grad(rng):
    x = rng.standard_normal((4, 3))
    kernel = rng.standard_normal((3, 2))
    g = rng.standard_normal((4, 2))
    y = ops.dense_forward(x, kernel, None, "relu")
    grad_kernel = np.ones_like(kernel)
    grad_bias = np.ones(2)
    result = ops.dense_backward(g, x, kernel, y, None, "relu", grad_kernel=grad_kernel,
                                grad_bias=grad_bias, need_input_grad=False, accumulate=True)
    assert result is None
    dz = g * (y > 0)
    np.testing.assert_allclose(grad_kernel, 1 + x.T @ dz, rtol=1e-14)
    np.testing.assert_allclose(grad_bias, 1 + dz.sum(axis=0), rtol=1e-14)


# ------------------------------------------------------------------------- losses

def test_mse_mae_huber_hand_values():
    y_pred = np.array([[1.0, 2.0], [0.0, 4.0]])
    y_true = np.array([[1.0, 0.0], [0.5, 1.0]])
    # per-sample means over the last axis: mse (0 + 4)/2, (0.25 + 9)/2
    assert ops.loss_value("mean_squared_error", y_pred, y_true) == pytest.approx((2 + 4.625) / 2)
    assert ops.loss_value("mean_absolute_error", y_pred, y_true) == pytest.approx((1 + 1.75) / 2)
    # huber, delta 1: errors 0, 2, -0.5, 3 -> 0, 1.5, 0.125, 2.5
    assert ops.loss_value("huber", y_pred, y_true) == pytest.approx((0.75 + 1.3125) / 2)
    # delta 2: 0, 2, 0.125, 4
    assert ops.loss_value("huber", y_pred, y_true, param=2.0) == pytest.approx((1 + 2.0625) / 2)
    value, grad = ops.loss("mean_squared_error", y_pred, y_true)
    np.testing.assert_allclose(grad, 2 * (y_pred - y_true) / 4)


def test_sample_weight_is_sum_of_weighted_losses_over_batch_size():
    y_pred = np.array([[1.0], [3.0], [0.0]])
    y_true = np.zeros((3, 1))
    w = np.array([2.0, 0.0, 1.0])
    value, grad = ops.loss("mean_squared_error", y_pred, y_true, sample_weight=w)
    assert value == pytest.approx((2 * 1 + 0 * 9 + 1 * 0) / 3)
    np.testing.assert_allclose(grad[:, 0], w * 2 * y_pred[:, 0] / 3)


def test_crossentropy_hand_values():
    p = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    t = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    expected = -(math.log(0.7) + math.log(0.5)) / 2
    assert ops.loss_value("categorical_crossentropy", p, t) == pytest.approx(expected, rel=1e-14)
    assert ops.loss_value("sparse_categorical_crossentropy", p, np.array([1, 0])) == \
        pytest.approx(expected, rel=1e-14)
    pb = np.array([0.9, 0.2])
    tb = np.array([1.0, 0.0])
    assert ops.loss_value("binary_crossentropy", pb, tb) == \
        pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, rel=1e-14)
    logits = np.array([[2.0, -1.0, 0.5]])
    lse = math.log(math.exp(2.0) + math.exp(-1.0) + math.exp(0.5))
    assert ops.loss_value("sparse_categorical_crossentropy", logits, np.array([2]),
                          from_logits=True) == pytest.approx(lse - 0.5, rel=1e-14)


def test_probabilities_are_clipped_with_zero_gradient_where_clipped():
    p = np.array([0.0, 1.0, 0.5])
    t = np.array([1.0, 0.0, 1.0])
    value, grad = ops.loss("binary_crossentropy", p, t)
    log_eps = math.log(EPSILON)
    assert value == pytest.approx((-log_eps - log_eps - math.log(0.5)) / 3, rel=1e-9)
    np.testing.assert_array_equal(grad[:2], [0.0, 0.0])
    assert grad[2] == pytest.approx(-1 / 0.5 / 3)
    value = ops.loss_value("sparse_categorical_crossentropy", np.array([[1.0, 0.0]]),
                           np.array([1]))
    assert value == pytest.approx(-log_eps, rel=1e-9)


# --------------------------------------------------------------- optimizer updates

def test_sgd_momentum_hand_values():
    param = np.array([1.0, -2.0])
    velocity = np.zeros(2)
    ops.sgd_update(param, np.array([0.5, 1.0]), velocity, lr=0.1, momentum=0.9, first_step=True)
    np.testing.assert_allclose(velocity, [0.5, 1.0])           # buf = g on the first step
    np.testing.assert_allclose(param, [0.95, -2.1])
    ops.sgd_update(param, np.array([1.0, 0.0]), velocity, lr=0.1, momentum=0.9)
    np.testing.assert_allclose(velocity, [1.45, 0.9])           # 0.9 buf + g
    np.testing.assert_allclose(param, [0.805, -2.19])


def test_adam_first_step_moves_each_weight_by_lr():
    # Step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps) ~ lr * sign(g).
    param = np.array([1.0, 1.0, 1.0])
    m, v = np.zeros(3), np.zeros(3)
    ops.adam_update(param, np.array([3.0, -0.2, 0.0]), m, v, None, lr=0.01, beta_1=0.9,
                    beta_2=0.999, epsilon=1e-8, step=1)
    np.testing.assert_allclose(param, [1 - 0.01 * 3 / (3 + 1e-8), 1 + 0.01 * 0.2 / (0.2 + 1e-8),
                                       1.0], rtol=1e-15)


def test_decoupled_weight_decay_scales_param_first():
    param = np.array([2.0])
    ops.sgd_update(param, np.array([0.0]), None, lr=0.1, weight_decay=0.5,
                   decoupled_weight_decay=True)
    np.testing.assert_allclose(param, [2.0 * (1 - 0.05)])
    param = np.array([2.0])
    ops.sgd_update(param, np.array([0.0]), None, lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(param, [2.0 - 0.1 * 0.5 * 2.0])


def test_updates_do_not_modify_the_gradient(rng):
    grad = rng.standard_normal(5)
    saved = grad.copy()
    param = rng.standard_normal(5)
    ops.adam_update(param, grad, np.zeros(5), np.zeros(5), np.zeros(5), 1e-3, 0.9, 0.999, 1e-8, 1,
                    weight_decay=0.1, amsgrad=True)
    ops.sgd_update(param, grad, np.zeros(5), 0.1, momentum=0.9, nesterov=True, weight_decay=0.1,
                   first_step=True)
    np.testing.assert_array_equal(grad, saved)


def test_updates_keep_float32():
    param = np.ones(3, np.float32)
    grad = np.full(3, 0.5, np.float32)
    m, v = np.zeros(3, np.float32), np.zeros(3, np.float32)
    ops.adam_update(param, grad, m, v, None, np.float64(1e-3), 0.9, 0.999, 1e-7, 1)
    assert param.dtype == m.dtype == v.dtype == np.float32


# Each case: (torch optimizer class name, torch kwargs, function running our op for one step).
def _run_ours(kind, kwargs, param, grads):
    p = param.copy()
    state = {k: np.zeros_like(p) for k in ("a", "b", "c")}
    for step, g in enumerate(grads, start=1):
        if kind == "SGD":
            ops.sgd_update(p, g, state["a"], kwargs["lr"], momentum=kwargs.get("momentum", 0.0),
                           dampening=kwargs.get("dampening", 0.0),
                           nesterov=kwargs.get("nesterov", False),
                           weight_decay=kwargs.get("weight_decay", 0.0), first_step=step == 1)
        elif kind in ("Adam", "AdamW"):
            ops.adam_update(p, g, state["a"], state["b"], state["c"], kwargs["lr"],
                            kwargs["betas"][0], kwargs["betas"][1], kwargs["eps"], step,
                            weight_decay=kwargs.get("weight_decay", 0.0),
                            decoupled_weight_decay=kind == "AdamW",
                            amsgrad=kwargs.get("amsgrad", False))
        elif kind == "RMSprop":
            ops.rmsprop_update(p, g, state["a"], state["b"], state["c"], kwargs["lr"],
                               kwargs["alpha"], kwargs["eps"], momentum=kwargs.get("momentum", 0.0),
                               centered=kwargs.get("centered", False),
                               weight_decay=kwargs.get("weight_decay", 0.0))
        elif kind == "Adagrad":
            ops.adagrad_update(p, g, state["a"], kwargs["lr"], kwargs["eps"], step,
                               lr_decay=kwargs.get("lr_decay", 0.0),
                               weight_decay=kwargs.get("weight_decay", 0.0))
    return p


OPTIMIZER_CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("Adam", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8}),
    ("Adam", {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True}),
    ("AdamW", {"lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.05}),
    ("RMSprop", {"lr": 1e-2, "alpha": 0.9, "eps": 1e-7}),
    ("RMSprop", {"lr": 1e-2, "alpha": 0.95, "eps": 1e-7, "momentum": 0.8, "centered": True,
                 "weight_decay": 0.01}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-10}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-10, "lr_decay": 0.05, "weight_decay": 0.02}),
]


@pytest.mark.parametrize("kind,kwargs", OPTIMIZER_CASES,
                         ids=[f"{k}-{i}" for i, (k, _) in enumerate(OPTIMIZER_CASES)])
def test_update_ops_match_torch_optim(kind, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    param = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(25)]

    tp = torch.tensor(param, dtype=torch.float64, requires_grad=True)
    opt = getattr(torch.optim, kind)([tp], **kwargs)
    for g in grads:
        tp.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    np.testing.assert_allclose(_run_ours(kind, kwargs, param, grads), tp.detach().numpy(),
                               rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------ clipping, penalties

def test_clip_by_value_in_place():
    g = np.array([-3.0, 0.5, 2.0])
    ops.clip_by_value([g], 1.0)
    np.testing.assert_array_equal(g, [-1.0, 0.5, 1.0])


def test_clip_by_norm_per_tensor():
    big, small = np.array([3.0, 4.0]), np.array([0.3, 0.4])
    ops.clip_by_norm([big, small], 1.0)
    np.testing.assert_allclose(big, [0.6, 0.8])
    np.testing.assert_array_equal(small, [0.3, 0.4])


def test_clip_by_global_norm_returns_norm_before_clipping():
    a, b = np.array([3.0, 0.0]), np.array([[0.0], [4.0]])
    assert ops.global_norm([a, b]) == 5.0
    assert ops.clip_by_global_norm([a, b], 2.5) == 5.0
    np.testing.assert_allclose(a, [1.5, 0.0])
    np.testing.assert_allclose(b, [[0.0], [2.0]])
    assert ops.clip_by_global_norm([a, b], 10.0) == pytest.approx(2.5)
    np.testing.assert_allclose(a, [1.5, 0.0])


def test_l1l2_penalty_and_gradient():
    w = np.array([[1.0, -2.0], [0.0, 3.0]])
    assert ops.l1l2_penalty(w, 0.1, 0.01) == pytest.approx(0.1 * 6 + 0.01 * 14)
    grad = np.ones_like(w)
    assert ops.l1l2_grad(w, 0.1, 0.01, grad) is grad
    np.testing.assert_allclose(grad, 1 + 0.1 * np.sign(w) + 0.02 * w)


# --------------------------------------------------------------------- dropout

def test_dropout_mask_values_and_rate():
    mask = ops.dropout_mask((200, 500), 0.25, np.random.default_rng(0), np.float32)
    assert mask.dtype == np.float32 and mask.shape == (200, 500)
    assert set(np.unique(mask).tolist()) == {0.0, np.float32(1 / 0.75)}
    assert abs(np.mean(mask == 0) - 0.25) < 0.01      # 100k draws: sd of the rate ~ 0.0014
    assert abs(mask.mean() - 1.0) < 0.02               # inverted dropout keeps the mean


def test_dropout_mask_same_seed_same_mask_and_rate_zero_is_ones():
    a = ops.dropout_mask((7, 3), 0.5, np.random.default_rng(3), np.float64)
    b = ops.dropout_mask((7, 3), 0.5, np.random.default_rng(3), np.float64)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ops.dropout_mask((2, 2), 0.0, None, np.float64), np.ones((2, 2)))
