"""Backpropagation through the Keras-style layers against central finite differences.

For every layer x activation x loss, on every available backend, in float64:
the analytic gradients (of the loss with respect to every weight and to the
input) must match central differences to rtol 1e-6 (see gradcheck.py). The
networks are tiny and the points random, so no pre-activation sits within the
finite-difference step of a kink (relu at 0, mae at a perfect fit).
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import fastnn
from fastnn import backends, config, layers, losses
from gradcheck import assert_gradient_close, numerical_gradient

ACTIVATIONS = sorted(backends.ACTIVATION_CODES)
REGRESSION = ["mean_squared_error", "mean_absolute_error", "huber"]
PROBABILITY = ["binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy"]
LOSSES = REGRESSION + PROBABILITY + [f"{name}+logits" for name in PROBABILITY]

N, IN, HIDDEN, OUT = 6, 4, 5, 3


@pytest.fixture(autouse=True)
def _float64():
    config.set_floatx("float64")


def seed_of(*parts):
    """A stable seed per test case (Python's hash() of strings changes between runs)."""
    return zlib.crc32("/".join(parts).encode())


def make_loss(spec):
    name, _, logits = spec.partition("+")
    if name in REGRESSION:
        return losses.get(name)
    return type(losses.get(name))(from_logits=bool(logits))


def output_activation(loss, hidden_activation):
    """The output activation that suits the loss (probabilities for the probability losses)."""
    if isinstance(loss, losses.BinaryCrossentropy) and not loss.from_logits:
        return "sigmoid"
    if isinstance(loss, (losses.CategoricalCrossentropy, losses.SparseCategoricalCrossentropy)):
        return "linear" if loss.from_logits else "softmax"
    if isinstance(loss, losses.BinaryCrossentropy):
        return "linear"
    return hidden_activation  # regression: every activation also serves as an output


def make_targets(loss, rng, n=N, out=OUT):
    if isinstance(loss, losses.SparseCategoricalCrossentropy):
        return rng.integers(0, out, size=n)
    if isinstance(loss, losses.CategoricalCrossentropy):
        p = rng.random((n, out)) + 0.1          # soft targets exercise sum(t) != 1 terms too
        return p / p.sum(axis=1, keepdims=True)
    if isinstance(loss, losses.BinaryCrossentropy):
        return rng.random((n, out))
    return rng.normal(size=(n, out))


def analytic(model, loss, x, y, training_step=False):
    """(loss value, weight gradients, input gradient) by backpropagation."""
    model.zero_gradients()
    if training_step:
        value, _ = model._compute_gradients(x, y, None)
        return value, [g.copy() for g in model.gradients], None
    y_pred = model.forward(x, training=True)
    value, grad = loss.forward_backward(y, y_pred)
    grad_x = model.backward(grad)
    return value, [g.copy() for g in model.gradients], grad_x


def check_model(model, loss, x, y, objective=None, training_step=False):
    """Every weight gradient (and the input gradient) against finite differences."""
    if objective is None:
        def objective(inputs):
            return loss(y, model.forward(inputs, training=False))
    value, grads, grad_x = analytic(model, loss, x, y, training_step)
    assert np.isclose(value, objective(x), rtol=1e-12, atol=0)
    assert len(grads) == len(model.trainable_weights) > 0
    for layer_weight, grad in zip(model.trainable_weights, grads):
        numeric = numerical_gradient(lambda _: objective(x), layer_weight)
        assert_gradient_close(grad, numeric, what=f"weight of shape {layer_weight.shape}")
    if grad_x is not None:
        assert_gradient_close(grad_x, numerical_gradient(objective, x.copy()), what="input")


@pytest.mark.parametrize("loss_spec", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_activation_loss(use_backend, activation, loss_spec):
    """Dense(act) -> Dense(output act) with each loss."""
    rng = np.random.default_rng(seed_of("dense", activation, loss_spec))
    fastnn.utils.set_random_seed(3)
    loss = make_loss(loss_spec)
    model = fastnn.Sequential([
        layers.Dense(HIDDEN, activation=activation, input_shape=(IN,), bias_initializer="random_normal"),
        layers.Dense(OUT, activation=output_activation(loss, activation), bias_initializer="random_normal"),
    ])
    x = 0.5 * rng.normal(size=(N, IN))  # moderate pre-activations: e^x and softmax stay smooth
    check_model(model, loss, x, make_targets(loss, rng))


@pytest.mark.parametrize("loss_spec", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_layer_loss(use_backend, activation, loss_spec):
    """Dense -> Activation(act) -> Dense -> Activation(output act) with each loss."""
    rng = np.random.default_rng(seed_of("activation", activation, loss_spec))
    fastnn.utils.set_random_seed(4)
    loss = make_loss(loss_spec)
    model = fastnn.Sequential([
        layers.Dense(HIDDEN, input_shape=(IN,), bias_initializer="random_normal"),
        layers.Activation(activation),
        layers.Dense(OUT, bias_initializer="random_normal"),
        layers.Activation(output_activation(loss, activation)),
    ])
    x = 0.5 * rng.normal(size=(N, IN))  # moderate pre-activations: e^x and softmax stay smooth
    check_model(model, loss, x, make_targets(loss, rng))


@pytest.mark.parametrize("loss_spec", LOSSES)
def test_flatten_loss(use_backend, loss_spec):
    """Flatten of (2, 3) samples -> Dense(tanh) -> Dense(output act); input gradient keeps the shape."""
    rng = np.random.default_rng(11)
    fastnn.utils.set_random_seed(5)
    loss = make_loss(loss_spec)
    model = fastnn.Sequential([
        layers.Input(shape=(2, 3)),
        layers.Flatten(),
        layers.Dense(HIDDEN, activation="tanh"),
        layers.Dense(OUT, activation=output_activation(loss, "tanh")),
    ])
    x = rng.normal(size=(N, 2, 3))
    _, _, grad_x = analytic(model, loss, x, make_targets(loss, rng))
    assert grad_x.shape == x.shape
    check_model(model, loss, x, make_targets(loss, np.random.default_rng(11)))


@pytest.mark.parametrize("loss_spec", LOSSES)
def test_dropout_loss(use_backend, loss_spec):
    """Dense -> Dropout(0.4) -> Dense; the mask is held fixed by reseeding before each pass."""
    rng = np.random.default_rng(12)
    fastnn.utils.set_random_seed(6)
    loss = make_loss(loss_spec)
    model = fastnn.Sequential([
        layers.Dense(HIDDEN, activation="elu", input_shape=(IN,)),
        layers.Dropout(0.4),
        layers.Dense(OUT, activation=output_activation(loss, "elu")),
    ])
    x = rng.normal(size=(N, IN))
    y = make_targets(loss, rng)

    def objective(inputs):
        fastnn.utils.set_random_seed(99)     # the same mask on every evaluation
        return loss(y, model.forward(inputs, training=True))

    fastnn.utils.set_random_seed(99)
    model.zero_gradients()
    value, grad = loss.forward_backward(y, model.forward(x, training=True))
    grad_x = model.backward(grad)
    grads = [g.copy() for g in model.gradients]
    mask = model.layers[1]._mask
    assert mask is not None and 0 < np.count_nonzero(mask) < mask.size  # some units dropped
    assert np.isclose(value, objective(x), rtol=1e-12)
    for weight, g in zip(model.trainable_weights, grads):
        assert_gradient_close(g, numerical_gradient(lambda _: objective(x), weight))
    assert_gradient_close(grad_x, numerical_gradient(objective, x.copy()), what="input")


@pytest.mark.parametrize("loss_name, activation", [
    ("binary_crossentropy", "sigmoid"),
    ("categorical_crossentropy", "softmax"),
    ("sparse_categorical_crossentropy", "softmax"),
])
@pytest.mark.parametrize("last", ["dense", "activation_layer"])
def test_fused_logits_training_gradient(use_backend, loss_name, activation, last):
    """The training step folds softmax/sigmoid into the loss; it must differentiate
    the same function: the probability-form loss of the model's output."""
    rng = np.random.default_rng(13)
    fastnn.utils.set_random_seed(7)
    loss = losses.get(loss_name)
    tail = ([layers.Dense(OUT, activation=activation)] if last == "dense"
            else [layers.Dense(OUT), layers.Activation(activation)])
    model = fastnn.Sequential([layers.Dense(HIDDEN, activation="relu", input_shape=(IN,))] + tail)
    model.compile(optimizer="sgd", loss=loss)
    assert model._logits_loss() is not None and model._logits_loss().from_logits
    x = rng.normal(size=(N, IN))
    y = make_targets(loss, rng)
    check_model(model, loss, x, y, training_step=True)


def test_regularized_training_gradient(use_backend):
    """d(loss + L1/L2 penalties)/dW from the training step against finite differences."""
    regularizers = pytest.importorskip("fastnn.regularizers")
    rng = np.random.default_rng(14)
    fastnn.utils.set_random_seed(8)
    model = fastnn.Sequential([
        layers.Dense(HIDDEN, activation="tanh", input_shape=(IN,),
                     kernel_regularizer=regularizers.L1L2(l1=0.01, l2=0.02),
                     bias_regularizer=regularizers.L2(0.03), bias_initializer="random_normal"),
        layers.Dense(OUT, kernel_regularizer=regularizers.L1(0.05)),
    ])
    model.compile(optimizer="sgd", loss="mse")
    loss = model.loss
    x = rng.normal(size=(N, IN))
    y = rng.normal(size=(N, OUT))

    def objective(_):
        return loss(y, model.forward(x)) + model.regularization_loss()

    assert model.regularization_loss() > 0
    check_model(model, loss, x, y, objective=objective, training_step=True)
