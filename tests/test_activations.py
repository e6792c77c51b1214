"""fastnn.activations and the backends' activation ops.

Gradients by central finite differences in float64 on every available backend,
forward and backward against PyTorch, stability at |x| = 1e4, and the
user-facing ``get`` / functional forms / serialization.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from fastnn import activations, backends
from gradcheck import assert_gradient_close, numerical_gradient

ALL = list(backends.ACTIVATION_CODES)
ELEMENTWISE = [n for n in ALL if n not in ("softmax", "log_softmax")]

# (backend name, param) cases: defaults plus a non-default parameter for each
# parameterised activation.
CASES = [(name, None) for name in ALL] + [("leaky_relu", 0.05), ("elu", 0.5), ("leaky_relu", -0.3)]
CASE_IDS = [f"{n}" if p is None else f"{n}-{p}" for n, p in CASES]

# Errors that mean a formula is unstable; underflow to 0 (e^-10000) is harmless.
STRICT = dict(over="raise", invalid="raise", divide="raise", under="ignore")


def away_from_kinks(rng, shape, low=0.1, high=3.0):
    """Random values with |x| in [low, high]: central differences are exact to O(h^2)
    only away from the kink of relu-like functions at 0."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


# ------------------------------------------------------------------- gradients

@pytest.mark.parametrize("name,param", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("axis", [-1, 0])
def test_backward_matches_finite_differences(ops, name, param, axis, rng):
    if axis == 0 and name not in ("softmax", "log_softmax"):
        pytest.skip("axis only matters for softmax/log_softmax")
    x = away_from_kinks(rng, (3, 5))
    g = rng.standard_normal((3, 5))

    def objective(v):
        return float(np.sum(g * ops.activation(v, name, param, axis=axis)))

    y = ops.activation(x, name, param, axis=axis)
    grad = ops.activation_backward(g, x, y, name, param, axis=axis)
    assert_gradient_close(grad, numerical_gradient(objective, x), what=f"{name} on {ops.name}")


@pytest.mark.parametrize("name", ALL)
def test_float32_close_to_float64(ops, name, rng):
    x = away_from_kinks(rng, (4, 6))
    g = rng.standard_normal((4, 6))
    y64 = ops.activation(x, name)
    y32 = ops.activation(x.astype(np.float32), name)
    gx64 = ops.activation_backward(g, x, y64, name)
    gx32 = ops.activation_backward(g.astype(np.float32), x.astype(np.float32), y32, name)
    assert y32.dtype == np.float32 and gx32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(gx32, gx64, rtol=2e-5, atol=2e-5)


# ------------------------------------------------------------------- PyTorch

def _torch_activation(torch, name, param, axis):
    F = torch.nn.functional
    return {
        "linear": lambda t: t * 1,
        "relu": F.relu,
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "exponential": torch.exp,
        "leaky_relu": lambda t: F.leaky_relu(t, 0.2 if param is None else param),
        "elu": lambda t: F.elu(t, 1.0 if param is None else param),
        # torch switches to the identity above `threshold`; keep it out of the way
        "softplus": lambda t: F.softplus(t, threshold=1e4),
        "gelu": lambda t: F.gelu(t),
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "softmax": lambda t: F.softmax(t, dim=axis),
        "log_softmax": lambda t: F.log_softmax(t, dim=axis),
    }[name]


@pytest.mark.parametrize("name,param", CASES, ids=CASE_IDS)
def test_forward_and_backward_match_torch(ops, name, param, rng):
    torch = pytest.importorskip("torch")
    x = rng.uniform(-6, 6, (7, 9))
    g = rng.standard_normal((7, 9))
    for axis in ([-1, 0] if name in ("softmax", "log_softmax") else [-1]):
        xt = torch.tensor(x, requires_grad=True)
        yt = _torch_activation(torch, name, param, axis)(xt)
        yt.backward(torch.tensor(g))
        y = ops.activation(x, name, param, axis=axis)
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
        # atol: derivatives such as gelu_tanh's 0.5 (1 + tanh u) cancel in the far tail,
        # where either evaluation order is only good to ~1e-15 absolute.
        np.testing.assert_allclose(ops.activation_backward(g, x, y, name, param, axis=axis),
                                   xt.grad.numpy(), rtol=1e-12, atol=5e-14)


# ------------------------------------------------------------------ stability

@pytest.mark.parametrize("name", [n for n in ALL if n != "exponential"])
def test_no_overflow_at_large_magnitudes(ops, name, float_dtype):
    x = np.array([[-1e4, -50.0, -1.0, 0.0, 1.0, 50.0, 1e4]], dtype=float_dtype)
    g = np.ones_like(x)
    with np.errstate(**STRICT):
        y = ops.activation(x, name)
        grad = ops.activation_backward(g, x, y, name)
    assert np.isfinite(y).all(), y
    assert np.isfinite(grad).all(), grad


def test_limits_at_large_magnitudes(ops):
    x = np.array([-1e4, 1e4])
    with np.errstate(**STRICT):
        np.testing.assert_array_equal(ops.activation(x, "sigmoid"), [0.0, 1.0])
        np.testing.assert_array_equal(ops.activation(x, "softplus"), [0.0, 1e4])
        np.testing.assert_array_equal(ops.activation(x, "elu"), [-1.0, 1e4])
        np.testing.assert_array_equal(ops.activation(x, "gelu"), [0.0, 1e4])
        np.testing.assert_array_equal(ops.activation(x, "softmax"), [0.0, 1.0])
        np.testing.assert_array_equal(ops.activation(x, "log_softmax"), [-2e4, 0.0])
        y = ops.activation(x, "softplus")
        np.testing.assert_array_equal(ops.activation_backward(np.ones(2), x, y, "softplus"),
                                      [0.0, 1.0])


def test_softplus_keeps_precision_in_the_tails(ops):
    # log(1 + e^x) for x = -40 is e^-40 (relative precision kept), for x = 40 it is 40 + e^-40.
    y = ops.activation(np.array([-40.0, 40.0]), "softplus")
    assert y[0] == pytest.approx(math.exp(-40), rel=1e-14)
    assert y[1] == 40.0


# ----------------------------------------------------- user-facing functions

def test_functional_forms_hand_values(use_backend):
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(activations.relu(x), [0.0, 0.0, 2.0])
    np.testing.assert_allclose(activations.sigmoid(x)[1], 0.5)
    np.testing.assert_allclose(activations.tanh(x), np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(activations.exponential(x), np.exp(x), rtol=1e-15)
    np.testing.assert_allclose(activations.linear(x), x)
    np.testing.assert_allclose(activations.leaky_relu(x), [-0.2, 0.0, 2.0])
    np.testing.assert_allclose(activations.leaky_relu(x, negative_slope=0.5), [-0.5, 0.0, 2.0])
    np.testing.assert_allclose(activations.elu(x, alpha=2.0), [2 * math.expm1(-1), 0.0, 2.0])
    np.testing.assert_allclose(activations.softplus(x)[1], math.log(2))
    np.testing.assert_allclose(activations.gelu(x)[2], 2 * 0.5 * (1 + math.erf(2 / math.sqrt(2))))
    assert activations.gelu(x, approximate=True)[2] == pytest.approx(1.954597694087775, rel=1e-14)
    np.testing.assert_allclose(activations.softmax(x).sum(), 1.0)
    np.testing.assert_allclose(activations.log_softmax(x), np.log(activations.softmax(x)),
                               rtol=1e-14)


def test_functional_softmax_axis():
    x = np.array([[1.0, 2.0], [3.0, 5.0]])
    np.testing.assert_allclose(activations.softmax(x, axis=0).sum(axis=0), [1.0, 1.0])
    np.testing.assert_allclose(activations.softmax(x).sum(axis=1), [1.0, 1.0])


def test_dtypes(use_backend):
    from fastnn import config
    assert activations.relu(np.ones(3, np.float64)).dtype == np.float64
    assert activations.relu(np.ones(3, np.float32)).dtype == np.float32
    assert activations.relu([1, 2]).dtype == np.float32            # ints -> floatx
    config.set_floatx("float64")
    assert activations.relu([True, False]).dtype == np.float64
    assert activations.sigmoid(3.0).shape == ()
    # NumPy float scalars keep their dtype, as arrays do
    assert activations.relu(np.float64(2.0)).dtype == np.float64
    assert activations.relu(np.float32(2.0)).dtype == np.float32
    # a scalar through gelu: the reference's erf failed on 0-d arrays
    assert activations.gelu(np.float64(1.0)) == pytest.approx(0.5 * (1 + math.erf(2 ** -0.5)),
                                                             rel=1e-15)


def test_functional_forms_validate_input():
    with pytest.raises(ValueError, match="NaN"):
        activations.relu(np.array([1.0, np.nan]))
    with pytest.raises(TypeError, match="x must hold real numbers"):
        activations.relu(np.array(["a"]))
    with pytest.raises(TypeError, match="approximate"):
        activations.gelu([1.0], approximate="yes")
    with pytest.raises(ValueError, match="at least a 1-D"):
        activations.softmax(1.0)


def test_get_names_and_defaults():
    assert activations.get(None) == activations.Activation("linear")
    assert activations.get("ReLU").name == "relu"
    leaky = activations.get("leaky_relu")
    assert (leaky.name, leaky.param) == ("leaky_relu", 0.2)
    assert activations.get("elu").param == 1.0
    assert activations.get("gelu").name == "gelu"
    assert activations.get("sigmoid").param is None
    assert activations.get(activations.softmax) == activations.Activation("softmax")
    act = activations.Activation("tanh")
    assert activations.get(act) is act


def test_get_unknown_name_suggests():
    with pytest.raises(ValueError, match="did you mean 'sigmoid'"):
        activations.get("sigmoud")
    with pytest.raises(TypeError, match="activation must be"):
        activations.get(3)


def test_parameter_validation():
    with pytest.raises(ValueError, match="takes no parameter"):
        activations.Activation("relu", 0.1)
    with pytest.raises(TypeError, match="negative_slope"):
        activations.Activation("leaky_relu", "big")
    with pytest.raises(ValueError, match="alpha must be finite"):
        activations.Activation("elu", float("inf"))


def test_needs_input():
    assert activations.get("gelu").needs_input
    assert not activations.get("relu").needs_input
    assert activations.Activation("leaky_relu", -0.5).needs_input


def test_descriptor_forward_backward_use_active_backend(use_backend, rng):
    act = activations.get("softplus")
    x = rng.standard_normal((2, 3))
    y = act.forward(x)
    np.testing.assert_allclose(y, np.log1p(np.exp(x)), rtol=1e-14)
    np.testing.assert_allclose(act.backward(np.ones_like(x), x, y), 1 / (1 + np.exp(-x)),
                               rtol=1e-14)


def test_serialize_round_trip():
    for act in [activations.get("relu"), activations.Activation("leaky_relu", 0.1),
                activations.Activation("elu"), activations.Activation("softmax", axis=0)]:
        config = activations.serialize(act)
        assert activations.deserialize(config) == act
        assert activations.get(config) == act
    assert activations.serialize("leaky_relu") == "leaky_relu"
    assert activations.serialize(activations.Activation("leaky_relu", 0.1)) == \
        {"name": "leaky_relu", "negative_slope": 0.1}
    with pytest.raises(ValueError, match="unexpected config entries"):
        activations.deserialize({"name": "relu", "alpha": 1.0})


def test_callable_activation():
    def cube(x):
        return x ** 3

    act = activations.get(cube)
    assert isinstance(act, activations.CallableActivation) and not act.fused
    x = np.array([1.0, -2.0])
    np.testing.assert_array_equal(act(x), [1.0, -8.0])
    with pytest.raises(TypeError, match="no derivative"):
        act.backward(np.ones(2), x, act(x))
    with pytest.raises(ValueError, match="cannot be serialized"):
        activations.serialize(act)
    trainable = activations.CallableActivation(cube, derivative=lambda x, y: 3 * x ** 2)
    np.testing.assert_array_equal(trainable.backward(np.ones(2), x, None), [3.0, 12.0])
