"""Sequential: structure, building, forward/backward, weights, summary, config."""
from __future__ import annotations

import json

import numpy as np
import pytest

import fastnn
from fastnn import config, layers, optimizers
from fastnn.layers import Dense, Dropout, Flatten, Input
from fastnn.models import Model, Sequential


@pytest.fixture
def f64():
    config.set_floatx("float64")


def seed_mlp():
    """The seed's 784-64-64-10 network."""
    return Sequential([
        Dense(64, activation="relu", input_shape=(784,)),
        Dense(64, activation="relu"),
        Dense(10, activation="softmax"),
    ])


def test_model_is_sequential_and_top_level_names():
    assert Model is Sequential and fastnn.Sequential is Sequential and fastnn.Model is Sequential


def test_builds_at_once_with_input_shape():
    model = seed_mlp()
    assert model.built and model.input_shape == (None, 784) and model.output_shape == (None, 10)
    assert [w.shape for w in model.get_weights()] == [(784, 64), (64,), (64, 64), (64,), (64, 10), (10,)]
    assert model.count_params() == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10 == 55050


def test_input_layer_declares_the_shape():
    model = Sequential([Input(shape=(5,)), Dense(3)])
    assert model.built and model.input_shape == (None, 5)
    assert len(model.layers) == 1 and isinstance(model.layers[0], Dense)


def test_builds_lazily_on_first_call(f64, rng):
    model = Sequential()
    model.add(Dense(4, activation="tanh"))
    model.add(Dense(2))
    assert not model.built and model.output_shape is None
    x = rng.normal(size=(3, 6))
    y = model(x)
    assert model.built and model.input_shape == (None, 6) and y.shape == (3, 2)


def test_build_accepts_keras_batch_dimension():
    model = Sequential([Dense(2)])
    model.build((None, 7))
    assert model.input_shape == (None, 7)
    model2 = Sequential([Dense(2)])
    model2.build((7,))
    assert model2.input_shape == (None, 7)


def test_build_errors():
    with pytest.raises(ValueError, match="no layers"):
        Sequential().build((3,))
    with pytest.raises(ValueError, match="input_shape"):
        Sequential([Dense(2)]).build()
    model = Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match="declared input shape"):
        model.build((4,))
    # (a Dense layer on samples of several dimensions maps their last axis, as Keras's)
    assert Sequential([Input(shape=(2, 3)), Dense(2)]).layers[-1].output_shape == (None, 2, 2)


def test_add_errors():
    model = Sequential([Dense(2, name="a")])
    with pytest.raises(TypeError, match="Layer"):
        model.add("dense")
    with pytest.raises(ValueError, match="unique"):
        model.add(Dense(3, name="a"))
    with pytest.raises(ValueError, match="first layer"):
        model.add(Input(shape=(3,)))
    with pytest.raises(TypeError, match="list"):
        Sequential(Dense(2))


def test_add_to_built_model_builds_the_new_layer():
    model = Sequential([Dense(4, input_shape=(3,))])
    model.add(Dense(2))
    assert model.layers[-1].built and model.output_shape == (None, 2)


class _TwoD(layers.Layer):
    """A layer producing 2-D samples, to provoke a shape error in the next Dense."""

    def compute_output_shape(self, input_shape):
        return (2, input_shape[0])

    def forward(self, x, training=False):
        return np.stack([x, x], axis=1)


class _NeedsFlat(layers.Layer):
    """A layer that takes only flat samples."""

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError("flat samples only: put a Flatten layer before it")
        return tuple(input_shape)

    def forward(self, x, training=False):
        return x


def test_add_to_built_model_rejects_incompatible_layer():
    model = Sequential([Dense(4, input_shape=(3,)), _TwoD()])
    with pytest.raises(ValueError, match="Flatten"):
        model.add(_NeedsFlat())
    assert len(model.layers) == 2  # the failed add left the model as it was
    model.add(Flatten())
    model.add(Dense(2))
    assert model.output_shape == (None, 2)


def test_pop():
    model = Sequential([Dense(4, input_shape=(3,)), Dense(2)])
    last = model.pop()
    assert isinstance(last, Dense) and model.output_shape == (None, 4)


def test_call_equals_the_formula(use_backend, f64, rng):
    model = Sequential([
        Dense(5, activation="relu", input_shape=(4,), bias_initializer="random_normal"),
        Dropout(0.5),
        Dense(3, activation="softmax", bias_initializer="random_normal"),
    ])
    w0, b0, w1, b1 = model.get_weights()
    x = rng.normal(size=(6, 4))
    h = np.maximum(x @ w0 + b0, 0)                       # dropout: identity at inference
    z = h @ w1 + b1
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model(x), expected, rtol=1e-13)
    np.testing.assert_allclose(model(x.tolist()), expected, rtol=1e-13)  # lists are accepted


def test_call_validates_input(f64):
    model = Sequential([Dense(2, input_shape=(3,))])
    with pytest.raises(ValueError, match=r"expects \(None, 3\)"):
        model(np.ones((4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        model(np.array([[0.0, np.inf, 1.0]]))
    with pytest.raises(ValueError, match=r"x\[None, :\]"):
        model(np.ones(3))
    with pytest.raises(TypeError, match="x"):
        model(np.array([["a", "b", "c"]]))
    with pytest.raises(ValueError, match="ragged"):
        model([[1.0, 2.0, 3.0], [1.0]])
    with pytest.raises(TypeError, match="training"):
        model(np.ones((1, 3)), training="no")


def test_input_dtype_follows_the_model(rng):
    model = Sequential([Dense(2, input_shape=(3,))])           # float32 (floatx)
    assert model(rng.normal(size=(2, 3))).dtype == np.float32
    assert model(np.ones((2, 3), dtype=np.int64)).dtype == np.float32
    config.set_floatx("float64")
    assert model(np.ones((2, 3))).dtype == np.float32           # built weights keep their dtype


def test_mixed_dtypes_are_refused():
    with pytest.raises(ValueError, match="same dtype"):
        Sequential([Dense(2, input_shape=(3,), dtype="float64"), Dense(2, dtype="float32")])


def test_backward_through_the_stack(use_backend, f64, rng):
    model = Sequential([Dense(4, activation="tanh", input_shape=(3,)), Dense(2)])
    x = rng.normal(size=(5, 3))
    model.zero_gradients()
    y = model.forward(x, training=True)
    g = rng.normal(size=y.shape)
    grad_x = model.backward(g)
    w0, b0, w1, b1 = model.get_weights()
    h = np.tanh(x @ w0 + b0)
    dh = g @ w1.T
    dz = dh * (1 - h ** 2)
    expected = [x.T @ dz, dz.sum(0), h.T @ g, g.sum(0)]
    for got, want in zip(model.gradients, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(grad_x, dz @ w0.T, rtol=1e-12)
    model.zero_gradients()
    model.forward(x, training=True)
    assert model.backward(g, need_input_grad=False) is None
    np.testing.assert_allclose(model.gradients[0], expected[0], rtol=1e-12)


def test_set_weights_checks_and_is_atomic(f64):
    model = Sequential([Dense(3, input_shape=(2,)), Dense(1)])
    before = model.get_weights()
    good = [np.full(w.shape, float(i)) for i, w in enumerate(before)]
    bad = list(good)
    bad[3] = np.ones(2)
    with pytest.raises(ValueError, match=r"weights\[3\].*expected shape \(1,\)"):
        model.set_weights(bad)
    for w, b in zip(model.get_weights(), before):       # nothing changed
        np.testing.assert_array_equal(w, b)
    with pytest.raises(ValueError, match="4 weight arrays, got 3"):
        model.set_weights(good[:3])
    with pytest.raises(TypeError):
        model.set_weights(good[0])
    live = model.trainable_weights
    model.set_weights(good)
    for w, g, l in zip(model.get_weights(), good, live):
        np.testing.assert_array_equal(w, g)
    assert all(a is b for a, b in zip(model.trainable_weights, live))  # updated in place


def test_weights_need_a_built_model():
    model = Sequential([Dense(2)])
    for call in (model.get_weights, model.count_params, lambda: model.set_weights([])):
        with pytest.raises(ValueError, match="not built"):
            call()


def test_frozen_layer_is_not_trained_but_counted():
    model = Sequential([Dense(3, input_shape=(2,), trainable=False), Dense(1)])
    assert len(model.trainable_weights) == 2 and len(model.weights) == 4
    lines = []
    model.summary(print_fn=lines.append)
    assert any(line.startswith("Trainable params: 4 ") for line in lines)
    assert any(line.startswith("Non-trainable params: 9") for line in lines)


def test_summary_table():
    model = seed_mlp()
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == f'Model: "{model.name}"'
    assert "Layer (type)" in text and "Output Shape" in text and "Param #" in text
    names = [layer.name for layer in model.layers]
    rows = [line for line in lines if line.startswith(" dense")]
    assert len(rows) == 3
    for row, name, shape, params in zip(rows, names, ["(None, 64)", "(None, 64)", "(None, 10)"],
                                        ["50,240", "4,160", "650"]):
        assert row.split()[0] == name and "(Dense)" in row
        assert shape in row and row.rstrip().endswith(params)
    assert "Total params: 55,050 (215.04 KB)" in text
    assert "Trainable params: 55,050" in text and "Non-trainable params: 0" in text


def test_summary_prints_by_default(capsys):
    Sequential([Dense(2, input_shape=(3,))]).summary()
    out = capsys.readouterr().out
    assert "Total params: 8" in out


def test_summary_of_unbuilt_model_and_bad_print_fn():
    lines = []
    Sequential([Dense(2)]).summary(print_fn=lines.append)
    assert any("not built" in line for line in lines)
    with pytest.raises(TypeError, match="print_fn"):
        Sequential([Dense(2)]).summary(print_fn="stdout")


def test_config_round_trip(use_backend, f64, rng):
    model = Sequential([
        Input(shape=(2, 3)), Flatten(), Dense(4, activation="elu"), Dropout(0.2, seed=1),
        Dense(2, activation="sigmoid", use_bias=False),
    ], name="net")
    cfg = json.loads(json.dumps(model.get_config()))
    assert cfg["name"] == "net" and cfg["layers"][0]["class_name"] == "InputLayer"
    clone = Sequential.from_config(cfg)
    assert clone.built and clone.input_shape == (None, 2, 3) and clone.name == "net"
    assert [type(l) for l in clone.layers] == [type(l) for l in model.layers]
    assert [l.get_config() for l in clone.layers] == [l.get_config() for l in model.layers]
    clone.set_weights(model.get_weights())
    x = rng.normal(size=(3, 2, 3))
    np.testing.assert_array_equal(clone(x), model(x))


def test_config_records_the_input_shape_of_a_lazily_built_model(f64):
    model = Sequential([Dense(2)])
    model(np.ones((1, 5)))
    clone = Sequential.from_config(model.get_config())
    assert clone.built and clone.input_shape == (None, 5) and clone.dtype == np.float64


def test_from_config_rejects_bad_configs():
    with pytest.raises(ValueError, match="layers"):
        Sequential.from_config({"name": "x"})
    with pytest.raises(ValueError, match="unknown layer class"):
        Sequential.from_config({"layers": [{"class_name": "Lambda", "config": {}}]})
    with pytest.raises(ValueError, match="unexpected keys"):
        Sequential.from_config({"layers": [], "code": "print(1)"})
    with pytest.raises(TypeError):
        Sequential.from_config("not a dict")


# ----------------------------------------------------------------------------- save_weights / load_weights

def _mlp(hidden=4, seed=0):
    fastnn.utils.set_random_seed(seed)
    return fastnn.Sequential([fastnn.layers.Dense(hidden, activation="relu", input_shape=(3,)),
                              fastnn.layers.Dense(2)])


def test_save_and_load_weights_round_trip(tmp_path):
    a, b = _mlp(seed=0), _mlp(seed=1)
    path = tmp_path / "mlp.weights.fnn"
    a.save_weights(path)
    b.load_weights(path)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(x, verbose=0))
    with pytest.raises(FileExistsError):
        a.save_weights(path, overwrite=False)


def test_load_weights_checks_the_architecture(tmp_path):
    path = tmp_path / "w.fnn"
    saved = _mlp(hidden=4, seed=0)
    saved.save_weights(path)
    other = _mlp(hidden=5)
    before = other.get_weights()
    with pytest.raises(ValueError, match="shape"):
        other.load_weights(path)
    for w, v in zip(other.get_weights(), before):               # left as it was
        np.testing.assert_array_equal(w, v)
    fastnn.utils.set_random_seed(3)
    wider_head = fastnn.Sequential([fastnn.layers.Dense(4, activation="relu", input_shape=(3,)),
                                    fastnn.layers.Dense(3)])
    head_before = wider_head.get_weights()[2:]
    with pytest.warns(UserWarning, match="skipping layer"):
        wider_head.load_weights(path, skip_mismatch=True)
    for w, v in zip(wider_head.get_weights()[:2], saved.get_weights()[:2]):  # loaded
        np.testing.assert_array_equal(w, v)
    for w, v in zip(wider_head.get_weights()[2:], head_before):             # kept
        np.testing.assert_array_equal(w, v)
    fastnn.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a weights file"):
        other.load_weights(tmp_path / "other.pt")
    (tmp_path / "junk.fnn").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="fastnn.save"):
        other.load_weights(tmp_path / "junk.fnn")


def test_copy_and_pickle_after_predict(rng):
    # predict caches a compiled predictor, which neither copies nor pickles: the
    # copies leave it behind and build their own.
    import copy
    import pickle
    model = Sequential([Dense(5, activation="relu", input_shape=(4,)), layers.Activation("tanh"),
                        Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = rng.normal(size=(6, 4))
    expected = model.predict(x, verbose=0)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        np.testing.assert_array_equal(twin.predict(x, verbose=0), expected)
        twin.fit(x, np.arange(6) % 2, epochs=1, verbose=0)
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)   # the original unchanged


def test_layers_pickled_with_activation_as_an_attribute_still_load():
    # Before Dense.activation and Activation.activation became properties, a pickled
    # layer held "activation" in its __dict__.
    for layer in (Dense(3, activation="tanh"), layers.Activation("elu")):
        state = dict(layer.__dict__)
        state["activation"] = state.pop("_activation")
        old = object.__new__(type(layer))
        old.__setstate__(state)
        assert old.activation.name == layer.activation.name



def test_freezing_the_whole_model():
    # Keras: model.trainable = False freezes every layer; fit then changes no weight
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 3)), rng.standard_normal((32, 2))
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(4, activation="relu"),
                        layers.Dense(2)])
    model.trainable = False
    model.compile(optimizers.SGD(0.1), "mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, y, epochs=2, verbose=0)
    assert [layer.trainable for layer in model.layers] == [False, False]
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 4
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    model.layers[0].trainable = True          # the model stays frozen as a whole
    assert model.trainable_weights == []
    model.trainable = True
    model.fit(x, y, epochs=1, verbose=0)
    assert not np.array_equal(model.get_weights()[2], before[2])
    with pytest.raises(TypeError, match="trainable must be True or False"):
        model.trainable = "no"


def test_get_layer_and_a_layer_called_for_training():
    model = Sequential([layers.Input(shape=(4,)), layers.Dense(3, name="hidden"),
                        layers.Dropout(0.5, name="drop")])
    assert model.get_layer("drop") is model.layers[1] is model.get_layer(index=-1)
    with pytest.raises(ValueError, match="no layer named 'out'"):
        model.get_layer("out")
    with pytest.raises(ValueError, match="exactly one"):
        model.get_layer()
    x = np.ones((200, 3), dtype=config.floatx())
    drop = model.get_layer("drop")
    np.testing.assert_array_equal(drop(x), x)              # inference: the identity
    dropped = drop(x, training=True)                       # Keras: drops and rescales
    assert set(np.unique(dropped)) == {0.0, 2.0}
    with pytest.raises(TypeError, match="training must be True or False"):
        drop(x, training="yes")


def test_keras_argument_order_of_evaluate_and_predict():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 1))
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(1)])
    model.compile("sgd", "mse")
    # evaluate(x, y, batch_size, verbose, sample_weight, steps, callbacks, return_dict)
    assert isinstance(model.evaluate(x, y, 4, 0, None, None, None, True), dict)
    # predict(x, batch_size, verbose, steps, callbacks): steps batches only
    assert model.predict(x, 4, 0, 2).shape == (8, 1)
    np.testing.assert_array_equal(model.predict(x, 4, 0, 2), model.predict(x, verbose=0)[:8])


def test_class_weight_keys_may_be_integral_floats():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((20, 3)), rng.integers(0, 2, 20).astype(float)
    model = Sequential([layers.Input(shape=(3,)), layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    weights = model.get_weights()
    model.fit(x, y, epochs=1, verbose=0, shuffle=False, class_weight={0.0: 2.0, 1.0: 0.5})
    after_float = model.get_weights()
    model.set_weights(weights)
    model.fit(x, y, epochs=1, verbose=0, shuffle=False, class_weight={0: 2.0, 1: 0.5})
    for a, b in zip(after_float, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match="class_weight keys"):
        model.fit(x, y, epochs=1, verbose=0, class_weight={0.5: 1.0})


def test_outputs_never_alias_the_callers_input():
    # a model (or layer) that passes its input through returned it, or a view of it:
    # writing to the result changed the caller's array
    x = np.ones((4, 2, 3), dtype=config.floatx())
    model = Sequential([Input(shape=(2, 3)), Flatten(), Dropout(0.5)])
    calls = [model.predict_on_batch, model, lambda v: model(v, training=True),
             lambda v: model.predict(v, verbose=0), Flatten(), Dropout(0.3)]
    for call in calls:
        y = call(x)
        assert not np.may_share_memory(y, x)
        y[...] = 7.0
        assert np.all(x == 1.0)
