"""Keras-style layers: shapes, values, gradients bookkeeping, weights, configs, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

import fastnn
from fastnn import activations, config, layers
from fastnn.layers import Activation, Dense, Dropout, Flatten, Input, InputLayer, Layer
from gradcheck import numerical_gradient


@pytest.fixture
def f64():
    config.set_floatx("float64")


def relu(z):
    return np.maximum(z, 0)


# ----------------------------------------------------------------------------- Dense

def test_dense_forward_is_act_of_x_w_plus_b(use_backend, f64):
    layer = Dense(3, activation="relu")
    layer.build((2,))
    assert layer.kernel.shape == (2, 3) and layer.bias.shape == (3,)
    layer.set_weights([np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]]), np.array([0.5, 0.0, -4.0])])
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    # By hand: x @ W + b = [[7.5, 0, -5.5], [1.0, 2.5, -5.0]], relu -> [[7.5, 0, 0], [1, 2.5, 0]]
    np.testing.assert_allclose(layer(x), [[7.5, 0.0, 0.0], [1.0, 2.5, 0.0]], rtol=1e-15)


@pytest.mark.parametrize("activation", sorted(activations._ALIASES))
def test_dense_matches_formula_for_every_activation(use_backend, f64, activation, rng):
    layer = Dense(4, activation=activation, bias_initializer="random_normal")
    x = rng.normal(size=(5, 3))
    y = layer(x)
    z = x @ layer.kernel + layer.bias
    expected = activations.get(activation)(z)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)


def test_dense_without_bias(use_backend, f64, rng):
    layer = Dense(2, use_bias=False, input_shape=(3,))
    layer.build((3,))
    assert layer.bias is None and len(layer.get_weights()) == 1
    x = rng.normal(size=(4, 3))
    np.testing.assert_allclose(layer(x), x @ layer.kernel, rtol=1e-14)
    assert layer.count_params() == 6


def test_dense_defaults_follow_keras(f64):
    fastnn.utils.set_random_seed(0)
    layer = Dense(50)
    layer.build((200,))
    assert layer.activation.name == "linear"
    assert np.all(layer.bias == 0)                             # zeros
    limit = np.sqrt(6 / (200 + 50))                            # glorot_uniform
    assert np.abs(layer.kernel).max() <= limit
    assert np.abs(layer.kernel).max() > 0.9 * limit
    assert layer.dtype == np.float64 and layer.kernel.dtype == np.float64


def test_dense_dtype_is_floatx_at_build():
    layer = Dense(2)
    layer.build((3,))
    assert layer.kernel.dtype == np.float32
    config.set_floatx("float64")
    assert layer.kernel.dtype == np.float32  # built layers keep their dtype
    assert Dense(2, dtype="float64").dtype == np.float64


def test_dense_backward_accumulates_and_returns_input_gradient(use_backend, f64, rng):
    layer = Dense(3, activation="tanh", bias_initializer="random_normal")
    x = rng.normal(size=(4, 2))
    layer.build((2,))
    y = layer.forward(x, training=True)
    g = rng.normal(size=y.shape)
    grad_x = layer.backward(g)
    dz = g * (1 - y ** 2)
    np.testing.assert_allclose(layer.gradients[0], x.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(layer.gradients[1], dz.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(grad_x, dz @ layer.kernel.T, rtol=1e-12)
    layer.backward(g)                                   # accumulates (+=)
    np.testing.assert_allclose(layer.gradients[0], 2 * x.T @ dz, rtol=1e-12)
    assert layer.backward(g, need_input_grad=False) is None
    layer.zero_gradients()
    assert all(np.all(gr == 0) for gr in layer.gradients)


def test_dense_backward_needs_training_forward(f64):
    layer = Dense(2, input_shape=(2,))
    layer.build((2,))
    layer.forward(np.ones((1, 2)))                      # inference: nothing cached
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.ones((1, 2)))


def test_frozen_dense_has_no_trainable_weights(use_backend, f64, rng):
    layer = Dense(2, trainable=False)
    layer.build((3,))
    assert layer.trainable_weights == [] and layer.gradients == []
    assert len(layer.non_trainable_weights) == 2 and layer.count_params() == 8
    y = layer.forward(rng.normal(size=(2, 3)), training=True)
    grad_x = layer.backward(np.ones_like(y))            # still passes the gradient on
    np.testing.assert_allclose(grad_x, np.ones_like(y) @ layer.kernel.T, rtol=1e-14)


def test_dense_with_python_activation(use_backend, f64, rng):
    act = activations.CallableActivation(np.sin, derivative=lambda x, y: np.cos(x))
    layer = Dense(2, activation=act)
    x = rng.normal(size=(3, 2))
    layer.build((2,))
    y = layer.forward(x, training=True)
    z = x @ layer.kernel + layer.bias
    np.testing.assert_allclose(y, np.sin(z), rtol=1e-14)
    grad_x = layer.backward(np.ones_like(y))
    np.testing.assert_allclose(grad_x, np.cos(z) @ layer.kernel.T, rtol=1e-13)
    np.testing.assert_allclose(layer.gradients[0], x.T @ np.cos(z), rtol=1e-13)


def test_dense_activation_can_be_set_after_building(use_backend, f64, rng):
    # As in Keras: the attribute takes a name, a callable or None (linear), and the
    # layer computes with the new activation from then on.
    layer = Dense(2, activation="relu")
    layer.build((3,))
    x = rng.normal(size=(4, 3))
    z = x @ layer.kernel + layer.bias
    layer.activation = "tanh"
    assert isinstance(layer.activation, activations.Activation) and layer.activation.name == "tanh"
    np.testing.assert_allclose(layer.forward(x), np.tanh(z), rtol=1e-14)
    layer.activation = None
    np.testing.assert_allclose(layer.forward(x), z, rtol=1e-14)
    layer.activation = np.sin
    assert isinstance(layer.activation, activations.CallableActivation)
    np.testing.assert_allclose(layer.forward(x), np.sin(z), rtol=1e-14)
    with pytest.raises(ValueError, match="units axis"):
        layer.activation = activations.Activation("softmax", axis=0)
    with pytest.raises(ValueError, match="did you mean 'sigmoid'"):
        layer.activation = "sigmoind"
    assert isinstance(layer.activation, activations.CallableActivation)  # unchanged


def test_dense_forward_logits_skips_the_activation(use_backend, f64, rng):
    layer = Dense(3, activation="softmax", bias_initializer="random_normal")
    x = rng.normal(size=(2, 4))
    layer.build((4,))
    z = layer.forward_logits(x, training=True)
    np.testing.assert_allclose(z, x @ layer.kernel + layer.bias, rtol=1e-14)
    g = rng.normal(size=z.shape)
    layer.backward_logits(g)                            # linear: dW = x^T g
    np.testing.assert_allclose(layer.gradients[0], x.T @ g, rtol=1e-13)
    assert layer.output_activation == "softmax"


@pytest.mark.parametrize("kwargs, error, match", [
    ({"units": 0}, ValueError, "units"),
    ({"units": 2.5}, TypeError, "units"),
    ({"units": 2, "activation": "rleu"}, ValueError, "did you mean 'relu'"),
    ({"units": 2, "activation": 3}, TypeError, "activation"),
    ({"units": 2, "activation": activations.Activation("softmax", axis=0)}, ValueError, "axis"),
    ({"units": 2, "kernel_initializer": "glorot_unifrom"}, ValueError, "kernel_initializer"),
    ({"units": 2, "use_bias": "yes"}, TypeError, "use_bias"),
    ({"units": 2, "input_shape": (None,)}, ValueError, "input_shape"),
    ({"units": 2, "name": ""}, TypeError, "name"),
    ({"units": 2, "dtype": "int32"}, ValueError, "dtype"),
    ({"units": 2, "kernel_regularizer": "l3"}, ValueError, "kernel_regularizer"),
    ({"units": 2, "kernel_constraint": "max_nrom"}, ValueError, "kernel_constraint"),
])
def test_dense_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Dense(**kwargs)


def test_dense_on_samples_of_several_dimensions_maps_the_last_axis():
    layer = Dense(2)
    layer.build((3, 4))
    assert layer.kernel.shape == (4, 2) and layer.compute_output_shape((3, 4)) == (3, 2)


def test_layer_call_validates_input(f64):
    layer = Dense(2, input_shape=(3,))
    with pytest.raises(ValueError, match="NaN"):
        layer(np.array([[1.0, np.nan, 0.0]]))
    layer(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"\(None, 3\)"):
        layer(np.ones((2, 4)))
    with pytest.raises(TypeError, match="x"):
        layer(np.array([["a", "b", "c"]]))
    with pytest.raises(ValueError, match="empty"):
        layer(np.ones((0, 3)))


def test_layer_call_builds_from_the_input(f64):
    layer = Dense(2)
    assert not layer.built and layer.input_shape is None
    layer(np.ones((4, 5)))
    assert layer.built and layer.input_shape == (None, 5) and layer.output_shape == (None, 2)
    assert layer.count_params() == 12


def test_set_weights_copies_in_place_and_checks(f64):
    layer = Dense(2)
    layer.build((3,))
    kernel = layer.kernel
    new = [np.arange(6.0).reshape(3, 2), np.array([1.0, 2.0])]
    layer.set_weights(new)
    assert layer.kernel is kernel                      # the same live array
    np.testing.assert_array_equal(layer.kernel, new[0])
    got = layer.get_weights()
    got[0][0, 0] = 99                                  # get_weights returns copies
    assert layer.kernel[0, 0] == 0
    with pytest.raises(ValueError, match=r"weights\[0\].*expected shape \(3, 2\)"):
        layer.set_weights([np.ones((2, 3)), np.ones(2)])
    with pytest.raises(ValueError, match="2 weight array"):
        layer.set_weights([np.ones((3, 2))])
    with pytest.raises(ValueError, match="NaN"):
        layer.set_weights([np.full((3, 2), np.nan), np.ones(2)])
    with pytest.raises(TypeError):
        layer.set_weights(np.ones((3, 2)))
    np.testing.assert_array_equal(layer.kernel, new[0])  # failed calls changed nothing


def test_count_params_requires_build():
    with pytest.raises(ValueError, match="not built"):
        Dense(3).count_params()


def test_automatic_names_are_unique():
    a, b = Dense(1), Dense(1)
    assert a.name != b.name and a.name.startswith("dense") and b.name.startswith("dense")
    assert Dense(1, name="head").name == "head"
    assert Dropout(0.1).name.startswith("dropout")


def test_regularization_and_constraints(use_backend, f64):
    regularizers = pytest.importorskip("fastnn.regularizers")
    constraints = pytest.importorskip("fastnn.constraints")
    layer = Dense(2, kernel_regularizer=regularizers.L1L2(l1=0.1, l2=0.2),
                  bias_regularizer="l2", kernel_constraint=constraints.NonNeg(),
                  bias_constraint=constraints.ClipValue(-0.5, 0.5))
    layer.build((2,))
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    b = np.array([1.0, -1.0])
    layer.set_weights([w, b])
    # 0.1 * 6.5 + 0.2 * 14.25 for the kernel, 0.01 * 2 (Keras's default l2) for the bias
    assert layer.regularization_loss() == pytest.approx(0.65 + 2.85 + 0.02, rel=1e-12)
    layer.add_regularization_gradients()
    np.testing.assert_allclose(layer.gradients[0], 0.1 * np.sign(w) + 0.4 * w, rtol=1e-14)
    np.testing.assert_allclose(layer.gradients[1], 0.02 * b, rtol=1e-14)
    layer.apply_constraints()
    np.testing.assert_array_equal(layer.kernel, [[1.0, 0.0], [0.5, 3.0]])
    np.testing.assert_array_equal(layer.bias, [0.5, -0.5])
    layer.trainable = False                          # frozen weights: no penalty, no projection
    assert layer.regularization_loss() == 0.0


# ----------------------------------------------------------------------------- Activation

@pytest.mark.parametrize("name", ["relu", "softmax", "gelu", "leaky_relu"])
def test_activation_layer(use_backend, f64, name, rng):
    layer = Activation(name)
    x = rng.normal(size=(3, 4))
    layer.build((4,))
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y, activations.get(name)(x), rtol=1e-14)
    assert layer.count_params() == 0 and layer.output_shape == (None, 4)
    g = rng.normal(size=y.shape)
    expected = activations.get(name).backward(g, x, y)
    np.testing.assert_allclose(layer.backward(g), expected, rtol=1e-14)


def test_activation_layer_needs_an_activation():
    with pytest.raises(TypeError, match="activation"):
        Activation(None)
    with pytest.raises(ValueError, match="did you mean 'sigmoid'"):
        Activation("sigmoind")
    layer = Activation("relu")
    layer.activation = "elu"
    assert layer.activation.name == "elu" and layer.output_activation == "elu"
    with pytest.raises(TypeError, match="activation"):
        layer.activation = None


# ----------------------------------------------------------------------------- Dropout

def test_dropout_is_identity_at_inference(f64, rng):
    x = rng.normal(size=(4, 5))
    layer = Dropout(0.5)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_dropout_inverted_scaling(use_backend, f64):
    fastnn.utils.set_random_seed(0)
    layer = Dropout(0.25)
    x = np.ones((200, 100))
    y = layer.forward(x, training=True)
    values = set(np.unique(y))
    assert values == {0.0, 1 / 0.75}                     # dropped, or scaled by 1/(1 - rate)
    dropped = np.mean(y == 0)
    assert abs(dropped - 0.25) < 0.01                    # 20000 draws: 4 sigma ~ 0.012
    assert abs(y.mean() - 1.0) < 0.02                    # expectation preserved
    g = np.full_like(x, 2.0)
    np.testing.assert_array_equal(layer.backward(g), 2.0 * y)  # dL/dx = dL/dy * mask


def test_dropout_is_reproducible(f64):
    x = np.ones((10, 10))
    fastnn.utils.set_random_seed(5)
    a = Dropout(0.5).forward(x, training=True)
    fastnn.utils.set_random_seed(5)
    b = Dropout(0.5).forward(x, training=True)
    np.testing.assert_array_equal(a, b)
    c = Dropout(0.5, seed=1).forward(x, training=True)
    d = Dropout(0.5, seed=1).forward(x, training=True)
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a, c)


def test_dropout_rate_zero_and_bad_rates(f64):
    x = np.ones((3, 3))
    assert Dropout(0.0).forward(x, training=True) is x
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match="rate"):
            Dropout(bad)
    with pytest.raises(TypeError, match="rate"):
        Dropout("0.5")
    with pytest.raises(ValueError, match="seed"):
        Dropout(0.5, seed=-1)


def test_dropout_noise_shape_broadcasts_the_mask(use_backend, f64, rng):
    x = rng.normal(size=(6, 5, 4)) + 3.0               # no zeros: y / x recovers the mask
    layer = Dropout(0.5, noise_shape=(None, 1, None), seed=0)
    y = layer.forward(x, training=True)
    assert layer._mask.shape == (6, 1, 4)
    mask = y / x
    np.testing.assert_allclose(mask, np.broadcast_to(mask[:, :1, :], x.shape), rtol=1e-15)
    assert set(np.unique(np.round(mask, 12))) <= {0.0, 2.0}
    # A fixed size on the batch axis (equal to the input's) and 1 elsewhere: one draw per sample.
    layer = Dropout(0.5, noise_shape=(6, 1, 1), seed=1)
    mask = layer.forward(x, training=True) / x
    assert layer._mask.shape == (6, 1, 1)
    np.testing.assert_allclose(mask, np.broadcast_to(mask[:, :1, :1], x.shape), rtol=1e-15)
    # And the mask is what the layer's generator draws, by Keras's rule (keep where u >= rate).
    u = fastnn.utils.Generator(1).random((6, 1, 1))
    np.testing.assert_array_equal(layer._mask, (u >= 0.5) / 0.5)


def test_dropout_noise_shape_kept_fraction_scaling_and_gradient(use_backend, f64, rng):
    layer = Dropout(0.25, noise_shape=(None, 1), seed=3)
    x = np.ones((4000, 8))
    y = layer.forward(x, training=True)
    rows = np.unique(y, axis=1)                         # whole rows dropped or kept
    assert rows.shape == (4000, 1) and set(np.unique(rows)) == {0.0, 1 / 0.75}
    assert abs(np.mean(rows == 0) - 0.25) < 0.03       # 4000 rows: 4 sigma ~ 0.027
    g = rng.normal(size=x.shape)
    np.testing.assert_array_equal(layer.backward(g), g * y)   # the same (broadcast) mask
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer(x), x)


def test_dropout_seed_is_independent_of_the_global_generator(f64):
    x = np.ones((8, 10))
    fastnn.utils.set_random_seed(0)
    a = Dropout(0.5, seed=4)
    state = fastnn.utils.rng().state
    first = a.forward(x, training=True)
    assert fastnn.utils.rng().state == state   # the global stream is untouched
    fastnn.utils.set_random_seed(0)
    second = a.forward(x, training=True)                     # ... and does not rewind this one
    assert not np.array_equal(first, second)
    fastnn.utils.set_random_seed(99)
    np.testing.assert_array_equal(Dropout(0.5, seed=4).forward(x, training=True), first)
    draws = fastnn.utils.Generator(4)
    for got in (first, second):
        np.testing.assert_array_equal(got, (draws.random(x.shape) >= 0.5) / 0.5)


def test_dropout_bad_noise_shape(f64):
    for bad, error in (("rows", TypeError), (3, TypeError), ((None, 1.5), TypeError),
                       ((None, 0), ValueError), ((), ValueError)):
        with pytest.raises(error, match="noise_shape"):
            Dropout(0.5, noise_shape=bad)
    with pytest.raises(ValueError, match="noise_shape .* 3 entries but the input has 2 axes"):
        Dropout(0.5, noise_shape=(None, 1, 1), input_shape=(4,)).build((4,))
    layer = Dropout(0.5, noise_shape=(None, 3))
    with pytest.raises(ValueError, match="does not broadcast"):
        layer.forward(np.ones((2, 4)), training=True)
    with pytest.raises(ValueError, match="does not broadcast"):
        layer.build((4,))


def test_dropout_noise_shape_trains_on_the_per_op_path(f64, rng):
    from fastnn.backends import fused
    if fused._fused_module() is None:
        pytest.skip("fastnn._fused is not built")

    def make(noise_shape):
        fastnn.utils.set_random_seed(0)
        model = fastnn.Sequential([Dense(5, activation="relu", input_shape=(4,)),
                                   Dropout(0.5, noise_shape=noise_shape),
                                   Dense(2, activation="softmax")])
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        return model
    assert fused.explain(make(None)) is None
    model = make((None, 1))
    assert "noise_shape" in fused.explain(model)
    assert fused.fused_trainer_for(model, 8) is None
    x, y = rng.normal(size=(16, 4)), rng.integers(0, 2, size=16)
    with config.use_backend("fast"):
        loss = model.fit(x, y, epochs=2, batch_size=8, verbose=0).history["loss"]
    assert len(loss) == 2 and np.all(np.isfinite(loss))


# ----------------------------------------------------------------------------- Flatten, Input

def test_flatten(f64, rng):
    layer = Flatten()
    x = rng.normal(size=(2, 3, 4))
    y = layer.forward(x, training=True)
    assert y.shape == (2, 12) and layer.compute_output_shape((3, 4)) == (12,)
    np.testing.assert_array_equal(y[1], x[1].ravel())
    np.testing.assert_array_equal(layer.backward(y), x)


def test_input_layer():
    inp = Input(shape=(784,))
    assert isinstance(inp, InputLayer) and inp.shape == (784,)
    assert Input(batch_shape=(None, 5)).shape == (5,)
    with pytest.raises(ValueError, match="exactly one"):
        InputLayer()
    with pytest.raises(ValueError, match="shape"):
        Input(shape=(0,))
    with pytest.raises(TypeError, match="shape"):
        Input(shape="784")


# ----------------------------------------------------------------------------- configs

def test_dense_config_round_trip_is_json(f64):
    regularizers = pytest.importorskip("fastnn.regularizers")
    layer = Dense(7, activation=activations.Activation("leaky_relu", 0.1), use_bias=False,
                  kernel_initializer="he_normal", kernel_regularizer=regularizers.L2(0.5),
                  kernel_constraint="non_neg", input_shape=(3,), name="hidden")
    cfg = layers.serialize(layer)
    text = json.dumps(cfg)
    clone = layers.deserialize(json.loads(text))
    assert isinstance(clone, Dense) and not clone.built
    assert clone.get_config() == layer.get_config()
    assert clone.units == 7 and clone.activation == layer.activation and clone.use_bias is False
    assert clone.name == "hidden" and clone.kernel_regularizer == layer.kernel_regularizer


@pytest.mark.parametrize("layer", [
    Activation("tanh"), Dropout(0.3, seed=2), Dropout(0.2, noise_shape=(None, 1)), Flatten(),
    InputLayer(shape=(2, 3)),
])
def test_parameter_free_layers_round_trip(layer):
    clone = layers.deserialize(json.loads(json.dumps(layers.serialize(layer))))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()
    if isinstance(layer, Dropout):
        assert (clone.rate, clone.noise_shape, clone.seed) == (layer.rate, layer.noise_shape,
                                                               layer.seed)


def test_deserialize_only_known_classes():
    with pytest.raises(ValueError, match="unknown layer class 'os.system'"):
        layers.deserialize({"class_name": "os.system", "config": {}})
    with pytest.raises(ValueError, match="did you mean 'Dense'"):
        layers.deserialize({"class_name": "Dens", "config": {"units": 1}})
    with pytest.raises(ValueError, match="invalid config"):
        layers.deserialize({"class_name": "Dense", "config": {"units": 1, "evil": 1}})
    with pytest.raises(TypeError):
        layers.deserialize(["Dense"])

    class Twice(Layer):
        def forward(self, x, training=False):
            return 2 * x
    clone = layers.deserialize({"class_name": "Twice", "config": {"name": "t"}},
                               custom_objects={"Twice": Twice})
    assert isinstance(clone, Twice) and clone.name == "t"


def test_get():
    assert isinstance(layers.get("flatten"), Flatten)
    d = Dense(2)
    assert layers.get(d) is d
    assert isinstance(layers.get({"class_name": "Dropout", "config": {"rate": 0.1}}), Dropout)
    with pytest.raises(ValueError, match="needs arguments"):
        layers.get("dense")
    with pytest.raises(TypeError):
        layers.get(3)


def test_a_weight_no_machine_could_hold_is_refused_before_its_values_are_drawn():
    # the initializer ran first and reported "random stream exhausted"
    with pytest.raises(MemoryError, match="'kernel' of shape \\(16777216, 1099511627776\\)"):
        fastnn.Sequential([layers.Input(shape=(2**24,)), layers.Dense(2**40)])


def test_dense_applies_to_the_last_axis_of_samples_of_several_dimensions(use_backend):
    # as Keras's Dense: (batch, steps, features) -> (batch, steps, units); it said
    # "put a Flatten layer before it"
    config.set_floatx("float64")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 1))
    model = fastnn.Sequential([layers.Input(shape=(2, 3)), layers.Dense(5, activation="tanh"),
                               layers.Flatten(), layers.Dense(1)])
    model.compile("sgd", "mse")
    assert model.layers[0].output_shape == (None, 2, 5)
    (w, b), (w2, b2) = model.layers[0].get_weights(), model.layers[2].get_weights()
    hidden = np.tanh(x @ w + b).reshape(4, -1)
    np.testing.assert_allclose(model.predict(x, verbose=0), hidden @ w2 + b2, rtol=1e-13)
    from fastnn.backends import fused
    if config.fast_available():  # (without the compiled modules every model declines)
        assert "Dense over the last axis" in fused.explain(model)

    def loss(kernel):
        model.layers[0].set_weights([kernel, b])
        model.layers[2].set_weights([w2, b2])
        return float(model.evaluate(x, y, verbose=0))
    numeric = numerical_gradient(loss, w)
    loss(w)
    model.train_on_batch(x, y)  # SGD(0.01): w -= 0.01 * dL/dw
    np.testing.assert_allclose((w - model.layers[0].get_weights()[0]) / 0.01, numeric,
                               rtol=1e-6, atol=1e-8)


def test_flatten_channels_first_reads_samples_channels_last(use_backend):
    # Keras: Flatten(data_format='channels_first') moves the channels last, then flattens
    config.set_floatx("float64")
    x = np.arange(2 * 3 * 2 * 2, dtype=np.float64).reshape(2, 3, 2, 2)   # (batch, C, H, W)
    layer = layers.Flatten(data_format="channels_first")
    np.testing.assert_array_equal(layer(x), np.moveaxis(x, 1, -1).reshape(2, -1))
    model = fastnn.Sequential([layers.Input(shape=(3, 2, 2)), layers.Flatten("channels_first"),
                               layers.Dense(2)])
    model.compile("sgd", "mse")
    from fastnn.backends import fused
    if config.fast_available():
        assert "channels_first" in fused.explain(model)
    w, b = model.layers[-1].get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               np.moveaxis(x, 1, -1).reshape(2, -1) @ w + b, rtol=1e-13)
    # the gradient goes back to each value's own place
    out = layer.forward(x, training=True)
    grad = np.arange(out.size, dtype=np.float64).reshape(out.shape)
    back = layer.backward(grad)
    np.testing.assert_array_equal(np.moveaxis(back, 1, -1).reshape(2, -1), grad)
    assert layers.Flatten.from_config(layer.get_config()).data_format == "channels_first"
    with pytest.raises(ValueError, match="data_format"):
        layers.Flatten(data_format="NCHW")


def test_dense_activity_regularizer_penalises_the_outputs(use_backend):
    # Keras 3 (3.15): the regularizer of each batch's outputs, over the batch size, joins
    # the loss
    from fastnn import regularizers
    config.set_floatx("float64")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 1))
    model = fastnn.Sequential([
        layers.Input(shape=(3,)),
        layers.Dense(4, activation="tanh", activity_regularizer=regularizers.L1L2(0.01, 0.02)),
        layers.Dense(1)])
    model.compile(fastnn.optimizers.SGD(0.01), "mse")
    from fastnn.backends import fused
    if config.fast_available():
        assert "activity regularizer" in fused.explain(model)
    (w, b), (w2, b2) = model.layers[0].get_weights(), model.layers[1].get_weights()

    def loss(kernel):
        h = np.tanh(x @ kernel + b)
        penalty = 0.01 * np.abs(h).sum() + 0.02 * (h ** 2).sum()
        return np.mean((h @ w2 + b2 - y) ** 2) + penalty / len(x)
    assert model.evaluate(x, y, verbose=0) == pytest.approx(loss(w), rel=1e-12)
    numeric = numerical_gradient(loss, w)
    reported = model.train_on_batch(x, y)
    assert reported == pytest.approx(loss(w), rel=1e-12)
    np.testing.assert_allclose((w - model.layers[0].get_weights()[0]) / 0.01, numeric,
                               rtol=1e-6, atol=1e-9)
    config_ = model.layers[0].get_config()
    assert layers.Dense.from_config(config_).activity_regularizer.get_config() == \
        {"l1": 0.01, "l2": 0.02}
