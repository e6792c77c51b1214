"""The training API: compile / fit / evaluate / predict / *_on_batch.

Values are checked by hand (gradient-descent steps of a linear model), against
PyTorch where installed, across backends, and for determinism; bad input must
raise ValueError/TypeError naming the argument.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastnn
from fastnn import backends, callbacks, config, layers, optimizers, regularizers
from fastnn.layers import Dense, Dropout
from fastnn.models import Sequential


@pytest.fixture
def f64():
    config.set_floatx("float64")


def linear_model(w, b):
    """Dense(1) with given weights: y = x @ w + b."""
    model = Sequential([Dense(1, input_shape=(w.shape[0],))])
    model.set_weights([w.reshape(-1, 1), np.array([b])])
    return model


def regression_data(n=8, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, 1))


def blobs(n=120, classes=3, d=4, seed=0, spread=0.6):
    """Well separated Gaussian blobs: an easy classification problem."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(classes, d))
    y = np.arange(n) % classes
    x = centers[y] + spread * rng.normal(size=(n, d))
    return x, y


def classifier(d=4, classes=3, hidden=8, dropout=0.0):
    stack = [Dense(hidden, activation="relu", input_shape=(d,))]
    if dropout:
        stack.append(Dropout(dropout))
    stack.append(Dense(classes, activation="softmax"))
    return Sequential(stack)


# ----------------------------------------------------------------------------- compile

def test_compile_resolves_names_and_objects():
    model = classifier()
    model.compile()                                           # Keras's default: rmsprop
    assert isinstance(model.optimizer, optimizers.RMSprop) and model.loss is None
    opt = optimizers.Adam(learning_rate=0.01)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert model.optimizer is opt
    assert isinstance(model.loss, fastnn.losses.SparseCategoricalCrossentropy)
    assert [m.name for m in model.compiled_metrics] == ["accuracy"]


@pytest.mark.parametrize("kwargs, error, match", [
    ({"optimizer": "adamm", "loss": "mse"}, ValueError, "did you mean 'adam'"),
    ({"optimizer": 3, "loss": "mse"}, TypeError, "optimizer"),
    ({"loss": "mean_sqared_error"}, ValueError, "did you mean 'mean_squared_error'"),
    ({"loss": 5}, TypeError, "loss"),
    ({"loss": "mse", "metrics": ["acuracy"]}, ValueError, r"metrics\[0\]"),
    ({"loss": "mse", "metrics": ["mae", "mae"]}, ValueError, "distinct"),
    ({"loss": "mse", "metrics": {"out": "mae"}}, TypeError, "single output"),
    ({"loss": "mse", "weighted_metrics": ["maee"]}, ValueError, r"weighted_metrics\[0\]"),
    ({"loss": "mse", "weighted_metrics": ["mae", "mae"]}, ValueError, "weighted_metrics: .*distinct"),
    ({"loss": "mse", "weighted_metrics": {"out": "mae"}}, TypeError, "weighted_metrics must be a list"),
    ({"loss": "mse", "weighted_metrics": [fastnn.metrics.MeanAbsoluteError(name="loss")]},
     ValueError, "weighted_metrics: a metric cannot be named 'loss'"),
    ({"loss": "mse", "metrics": [fastnn.metrics.MeanAbsoluteError(name="weighted_mae"), "mae"],
      "weighted_metrics": ["mae"]}, ValueError, r"weighted_metrics: the names \['weighted_mae'\]"),
])
def test_compile_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        classifier().compile(**kwargs)


def test_compile_warns_about_double_softmax():
    model = classifier()
    with pytest.warns(UserWarning, match="applied twice"):
        model.compile(loss=fastnn.losses.SparseCategoricalCrossentropy(from_logits=True))


@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "test_on_batch"])
def test_uncompiled_model_says_to_compile(method):
    model = classifier()
    x, y = blobs(n=6)
    with pytest.raises(RuntimeError, match=r"compile\("):
        getattr(model, method)(x, y)
    model.compile(optimizer="sgd")                           # still no loss
    with pytest.raises(ValueError, match="without a loss"):
        getattr(model, method)(x, y)


# ----------------------------------------------------------------------------- gradient descent by hand

def test_full_batch_gradient_descent_is_one_exact_step_per_epoch(use_backend, f64):
    x, y = regression_data()
    w, b, lr = np.array([0.5, -1.0, 2.0]), 0.3, 0.1
    model = linear_model(w, b)
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    history = model.fit(x, y, batch_size=len(x), epochs=2, verbose=0, shuffle=False)
    losses_by_hand = []
    for _ in range(2):
        r = x @ w + b - y[:, 0]                               # residuals
        losses_by_hand.append(np.mean(r ** 2))
        w = w - lr * 2 / len(x) * x.T @ r                     # dL/dw = 2/N X^T r
        b = b - lr * 2 / len(x) * r.sum()
    np.testing.assert_allclose(model.get_weights()[0][:, 0], w, rtol=1e-13)
    np.testing.assert_allclose(model.get_weights()[1][0], b, rtol=1e-13)
    np.testing.assert_allclose(history.history["loss"], losses_by_hand, rtol=1e-13)
    assert model.optimizer.iterations == 2


def test_stochastic_gradient_descent_is_one_step_per_sample(use_backend, f64):
    x, y = regression_data(n=5)
    w, b, lr = np.array([0.1, 0.2, -0.3]), -0.2, 0.05
    model = linear_model(w, b)
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    history = model.fit(x, y, batch_size=1, epochs=1, verbose=0, shuffle=False)
    losses = []
    for i in range(len(x)):
        r = x[i] @ w + b - y[i, 0]
        losses.append(r ** 2)
        w = w - lr * 2 * r * x[i]
        b = b - lr * 2 * r
    np.testing.assert_allclose(model.get_weights()[0][:, 0], w, rtol=1e-13)
    # The epoch loss is the mean of the batch losses, each measured before its step.
    np.testing.assert_allclose(history.history["loss"][0], np.mean(losses), rtol=1e-13)


def test_mini_batch_steps_and_loss_weighting(use_backend, f64):
    x, y = regression_data(n=10)
    w, b, lr = np.zeros(3), 0.0, 0.01
    model = linear_model(w, b)
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False)
    assert model.optimizer.iterations == 3 * math.ceil(10 / 4)
    total, w_, b_ = [], w.copy(), b
    for _ in range(3):
        epoch_sum = 0.0
        for start in range(0, 10, 4):                         # batches of 4, 4, 2
            xb, yb = x[start:start + 4], y[start:start + 4, 0]
            r = xb @ w_ + b_ - yb
            epoch_sum += np.mean(r ** 2) * len(xb)            # weighted by batch size
            w_ = w_ - lr * 2 / len(xb) * xb.T @ r
            b_ = b_ - lr * 2 / len(xb) * r.sum()
        total.append(epoch_sum / 10)
    np.testing.assert_allclose(history.history["loss"], total, rtol=1e-12)
    np.testing.assert_allclose(model.get_weights()[0][:, 0], w_, rtol=1e-12)


def test_steps_per_epoch_continues_the_pass_across_epochs(use_backend, f64):
    """Keras's rule: 5 batches, 2 per epoch -> epochs take batches (0, 1), (2, 3), (4)
    with a warning that the data ran out, then a new pass: (0, 1)."""
    x, y = regression_data(n=10)
    w, b, lr = np.array([0.3, -0.2, 0.1]), 0.05, 0.05
    model = linear_model(w, b)
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    with pytest.warns(UserWarning, match=r"ran out after 1 of steps_per_epoch=2 batches in epoch 3") as rec:
        history = model.fit(x, y, batch_size=2, epochs=4, steps_per_epoch=2, shuffle=False,
                            verbose=0)
    assert rec[0].filename == __file__
    assert model.optimizer.iterations == 7
    by_hand = linear_model(w, b)
    by_hand.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    losses = [by_hand.train_on_batch(x[2 * k:2 * k + 2], y[2 * k:2 * k + 2])
              for k in (0, 1, 2, 3, 4, 0, 1)]
    for a, e in zip(model.get_weights(), by_hand.get_weights()):
        np.testing.assert_allclose(a, e, rtol=1e-13)
    expected = [np.mean(losses[0:2]), np.mean(losses[2:4]), losses[4], np.mean(losses[5:7])]
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-12)


def test_steps_per_epoch_shuffles_each_new_pass(f64):
    """A pass is one permutation: 3 epochs of 2 batches cover 6 distinct batches of
    12 samples exactly once, and the next pass draws a new permutation."""
    seen = []

    class EveryBatch(callbacks.Callback):  # keeps fit on the per-op loop, where the spy sits
        def on_train_batch_begin(self, batch, logs=None):
            pass

    model = linear_model(np.zeros(1), 0.0)
    model.compile(optimizer=optimizers.SGD(learning_rate=1e-3), loss="mse")
    original = model._train_step

    def spy(xb, yb, wb):
        seen.append(xb[:, 0].astype(int).tolist())
        return original(xb, yb, wb)
    model._train_step = spy
    x = np.arange(12.0).reshape(-1, 1)
    model.fit(x, np.zeros((12, 1)), batch_size=2, epochs=6, steps_per_epoch=2, verbose=0,
              callbacks=[EveryBatch()])
    first, second = sum(seen[:6], []), sum(seen[6:], [])
    assert sorted(first) == list(range(12)) and sorted(second) == list(range(12))
    assert first != second


def test_validation_steps_and_evaluate_steps_use_the_first_batches(use_backend, f64):
    x, y = blobs(n=30)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False,
                        validation_data=(x, y), validation_steps=3, validation_batch_size=5)
    expected = model.evaluate(x[:15], y[:15], verbose=0, return_dict=True)
    assert history.history["val_loss"][0] == pytest.approx(expected["loss"], rel=1e-12)
    assert history.history["val_accuracy"][0] == pytest.approx(expected["accuracy"])
    np.testing.assert_allclose(model.evaluate(x, y, batch_size=4, steps=2, verbose=0),
                               model.evaluate(x[:8], y[:8], batch_size=4, verbose=0), rtol=1e-12)
    # more steps than batches: all of them
    np.testing.assert_allclose(model.evaluate(x, y, steps=99, verbose=0),
                               model.evaluate(x, y, verbose=0), rtol=1e-12)
    with pytest.raises(ValueError, match="steps"):
        model.evaluate(x, y, steps=0, verbose=0)


def test_batch_larger_than_data_is_full_batch(f64):
    x, y = regression_data(n=5)
    model = linear_model(np.zeros(3), 0.0)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=1000, epochs=2, verbose=0)
    assert model.optimizer.iterations == 2


def test_regularization_enters_loss_and_step(use_backend, f64):
    x, y = regression_data()
    lr, l2 = 0.1, 0.05
    model = Sequential([Dense(1, input_shape=(3,), kernel_regularizer=regularizers.L2(l2))])
    w = np.array([0.5, -1.0, 2.0])
    model.set_weights([w.reshape(-1, 1), np.array([0.0])])
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse")
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    r = x @ w - y[:, 0]
    assert history.history["loss"][0] == pytest.approx(np.mean(r ** 2) + l2 * np.sum(w ** 2), rel=1e-13)
    w_new = w - lr * (2 / len(x) * x.T @ r + 2 * l2 * w)
    np.testing.assert_allclose(model.get_weights()[0][:, 0], w_new, rtol=1e-13)
    # evaluate includes the penalty too (of the current weights)
    r = x @ w_new + model.get_weights()[1][0] - y[:, 0]
    assert model.evaluate(x, y, verbose=0) == pytest.approx(np.mean(r ** 2) + l2 * np.sum(w_new ** 2), rel=1e-12)


def test_constraints_applied_after_each_update(f64):
    x, y = regression_data()
    model = Sequential([Dense(1, input_shape=(3,), kernel_constraint=fastnn.constraints.NonNeg())])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.5), loss="mse")
    model.fit(x, -10 * np.abs(y), epochs=3, batch_size=4, verbose=0)  # pushes weights down
    assert np.all(model.get_weights()[0] >= 0)


def test_frozen_layer_keeps_its_weights(f64):
    x, y = blobs(n=30)
    model = Sequential([Dense(8, activation="relu", input_shape=(4,), trainable=False),
                        Dense(3, activation="softmax")])
    frozen = model.layers[0].get_weights()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    for a, b in zip(model.layers[0].get_weights(), frozen):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- softmax + cross-entropy fusion

def test_fused_softmax_gradient_equals_torch_cross_entropy(f64):
    torch = pytest.importorskip("torch")
    x, y = blobs(n=16, classes=4, d=5, seed=3)
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(4, activation="softmax", input_shape=(5,), bias_initializer="random_normal")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    value, _ = model._compute_gradients(x, y.astype(np.int64), None)
    w, b = model.get_weights()
    tw = torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(torch.tensor(x) @ tw + tb, torch.tensor(y))
    loss.backward()
    assert value == pytest.approx(loss.item(), rel=1e-13)
    np.testing.assert_allclose(model.gradients[0], tw.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.gradients[1], tb.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_fused_loss_is_stable_where_probabilities_underflow(f64):
    """A confident wrong prediction: softmax underflows to 0, the logits loss does not clip."""
    model = Sequential([Dense(2, activation="softmax", input_shape=(1,))])
    model.set_weights([np.array([[800.0, -800.0]]), np.zeros(2)])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    value, _ = model._compute_gradients(np.array([[1.0]]), np.array([1]), None)
    assert value == pytest.approx(1600.0, rel=1e-12)          # logsumexp(z) - z_1 = 800 + 800
    np.testing.assert_allclose(model.gradients[0], [[1.0, -1.0]], rtol=1e-12)  # softmax(z) - t
    np.testing.assert_allclose(model.predict(np.array([[1.0]]), verbose=0).sum(), 1.0)


# ----------------------------------------------------------------------------- evaluate / predict

def test_evaluate_return_conventions(use_backend, f64):
    x, y = regression_data()
    w, b = np.array([0.5, -1.0, 2.0]), 0.3
    model = linear_model(w, b)
    r = x @ w + b - y[:, 0]
    model.compile(optimizer="sgd", loss="mse")
    assert model.evaluate(x, y, verbose=0) == pytest.approx(np.mean(r ** 2), rel=1e-13)
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    loss, mae = model.evaluate(x, y, batch_size=3, verbose=0)   # batching does not change it
    assert loss == pytest.approx(np.mean(r ** 2), rel=1e-13)
    assert mae == pytest.approx(np.mean(np.abs(r)), rel=1e-13)
    assert model.evaluate(x, y, verbose=0, return_dict=True) == pytest.approx({"loss": loss, "mae": mae})
    sw = np.arange(len(x), dtype=float)
    weighted, plain_mae = model.evaluate(x, y, sample_weight=sw, verbose=0)
    assert weighted == pytest.approx(np.sum(sw * r ** 2) / len(x), rel=1e-13)  # Keras: sum(w l) / N
    assert plain_mae == pytest.approx(mae, rel=1e-13)          # metrics are not weighted (Keras)


def test_predict_matches_call_and_ignores_batch_size(use_backend, f64):
    x, y = blobs(n=50)
    model = classifier()
    out = model.predict(x, batch_size=7, verbose=0)
    np.testing.assert_allclose(out, model(x), rtol=1e-14)
    np.testing.assert_allclose(out, model.predict(x, batch_size=64, verbose=0), rtol=1e-14)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-12)   # probabilities
    np.testing.assert_allclose(model.predict_on_batch(x), out, rtol=1e-14)


def test_train_and_test_on_batch(use_backend, f64):
    x, y = regression_data()
    w, b, lr = np.array([0.5, -1.0, 2.0]), 0.3, 0.1
    model = linear_model(w, b)
    model.compile(optimizer=optimizers.SGD(learning_rate=lr), loss="mse", metrics=["mae"])
    r = x @ w + b - y[:, 0]
    assert model.test_on_batch(x, y) == pytest.approx([np.mean(r ** 2), np.mean(np.abs(r))])
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs == pytest.approx({"loss": np.mean(r ** 2), "mae": np.mean(np.abs(r))}, rel=1e-13)
    np.testing.assert_allclose(model.get_weights()[0][:, 0], w - lr * 2 / len(x) * x.T @ r, rtol=1e-13)


def test_sample_and_class_weights_combine(use_backend, f64):
    x, y = blobs(n=12, classes=3)
    model = classifier()
    initial = model.get_weights()
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy")
    sw = np.linspace(0.5, 2.0, len(x))
    cw = {0: 2.0, 2: 0.5}                                      # class 1 weighs 1
    model.train_on_batch(x, y, sample_weight=sw, class_weight=cw)
    with_weights = model.get_weights()
    model.set_weights(initial)
    per_class = np.array([2.0, 1.0, 0.5])[y]
    model.train_on_batch(x, y, sample_weight=sw * per_class)
    for a, b in zip(model.get_weights(), with_weights):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    assert not np.allclose(with_weights[0], initial[0])


def test_class_weight_from_one_hot_and_binary_targets(f64):
    x, y = blobs(n=12, classes=3)
    one_hot = np.eye(3)[y]
    model = classifier()
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    data = model._check_data(x, one_hot, class_weight={1: 3.0})
    np.testing.assert_array_equal(data.weights, np.where(y == 1, 3.0, 1.0))
    binary = Sequential([Dense(1, activation="sigmoid", input_shape=(4,))])
    binary.compile(optimizer="sgd", loss="binary_crossentropy")
    yb = (y == 0).astype(float)
    data = binary._check_data(x, yb, class_weight={1: 4.0})
    np.testing.assert_array_equal(data.weights, np.where(yb == 1, 4.0, 1.0))


# ----------------------------------------------------------------------------- validation sets

def test_validation_split_is_random_stratified_and_seeded(f64):
    x = np.arange(200, dtype=float).reshape(100, 2)
    y = np.repeat([0, 1], [80, 20])                           # sorted by class, 80/20
    model = Sequential([Dense(2, activation="softmax", input_shape=(2,))])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    data = model._check_data(x, y)
    fastnn.utils.set_random_seed(1)
    train, val = model._split_validation(data, 0.25)
    assert len(val.y) == 25 and len(train.y) == 75
    assert np.bincount(val.y).tolist() == [20, 5]              # class proportions kept
    assert not np.all(val.x[:, 0] >= 150)                      # not Keras's "last 25%"
    assert set(train.x[:, 0]).isdisjoint(val.x[:, 0])
    fastnn.utils.set_random_seed(1)
    _, val2 = model._split_validation(data, 0.25)
    np.testing.assert_array_equal(val.x, val2.x)


def test_validation_split_for_regression_and_tiny_classes(f64):
    x, y = regression_data(n=10)
    model = linear_model(np.zeros(3), 0.0)
    model.compile(optimizer="sgd", loss="mse")
    train, val = model._split_validation(model._check_data(x, y), 0.3)
    assert len(val.x) == 3 and len(train.x) == 7
    clf = Sequential([Dense(3, activation="softmax", input_shape=(3,))])
    clf.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    # class 2 has a single member: stratification is impossible, a plain split is used
    train, val = clf._split_validation(clf._check_data(x, [0, 1] * 4 + [0, 2]), 0.2)
    assert len(val.x) == 2


def test_fit_reports_validation_metrics(use_backend, f64):
    x, y = blobs(n=90)
    xv, yv = blobs(n=30, seed=0)
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=3, validation_data=(xv, yv), verbose=0)
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in history.history.values()) and history.epoch == [0, 1, 2]
    final = model.evaluate(xv, yv, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(final[0], rel=1e-12)
    assert history.history["val_accuracy"][-1] == pytest.approx(final[1])
    assert model.history is history
    h2 = model.fit(x, y, epochs=1, validation_split=0.2, verbose=0)
    assert "val_loss" in h2.history and len(h2.history["loss"]) == 1


def test_initial_epoch_and_zero_epochs(f64):
    x, y = blobs(n=30)
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0)
    assert history.epoch == [3, 4]
    assert model.fit(x, y, epochs=0, verbose=0).history == {}


# ----------------------------------------------------------------------------- callbacks and progress

class Recorder(callbacks.Callback):
    def __init__(self, stop_at_epoch=None):
        super().__init__()
        self.events = []
        self.stop_at_epoch = stop_at_epoch

    def on_train_begin(self, logs=None):
        self.events.append(("train_begin",))

    def on_epoch_begin(self, epoch, logs=None):
        self.events.append(("epoch_begin", epoch))

    def on_train_batch_end(self, batch, logs=None):
        self.events.append(("batch_end", batch, sorted(logs)))

    def on_test_begin(self, logs=None):
        self.events.append(("test_begin",))

    def on_epoch_end(self, epoch, logs=None):
        self.events.append(("epoch_end", epoch, sorted(logs)))
        if epoch == self.stop_at_epoch:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.events.append(("train_end",))


def test_callback_hooks_in_keras_order(f64):
    x, y = blobs(n=10)
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rec = Recorder(stop_at_epoch=1)
    history = model.fit(x, y, batch_size=4, epochs=5, callbacks=[rec], verbose=0,
                        validation_data=(x, y))
    assert rec.model is model and rec.params["steps"] == 3 and rec.params["epochs"] == 5
    batch = ["accuracy", "loss"]
    epoch = ["accuracy", "loss", "val_accuracy", "val_loss"]
    expected = [("train_begin",)]
    for e in range(2):                                          # stopped after epoch 1
        expected += [("epoch_begin", e)] + [("batch_end", b, batch) for b in range(3)]
        expected += [("test_begin",), ("epoch_end", e, epoch)]
    expected += [("train_end",)]
    assert rec.events == expected
    assert len(history.history["loss"]) == 2


def test_verbose_2_prints_one_line_per_epoch(capsys, f64):
    x, y = blobs(n=20)
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=2, verbose=2)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2") and "accuracy:" in lines[1]
    model.fit(x, y, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_verbose_auto_depends_on_the_terminal(monkeypatch, capsys, f64):
    from fastnn.models.training import _resolve_verbose
    monkeypatch.setattr("sys.stdout.isatty", lambda: False, raising=False)
    assert _resolve_verbose("auto") == 2
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    assert _resolve_verbose("auto") == 1
    for bad in (3, "loud", -1):
        with pytest.raises(ValueError, match="verbose"):
            _resolve_verbose(bad)


def test_non_finite_loss_warns(f64):
    x, y = regression_data(n=16)
    model = linear_model(np.ones(3), 0.0)
    model.compile(optimizer=optimizers.SGD(learning_rate=1e30), loss="mse")
    with pytest.warns(RuntimeWarning, match="TerminateOnNaN") as record:
        model.fit(x, 1e3 * y, batch_size=4, epochs=2, verbose=0)
    assert sum("the loss became" in str(w.message) for w in record) == 1  # once per fit


def test_terminate_on_nan_stops_without_a_warning(f64, capsys):
    x, y = regression_data(n=16)
    model = linear_model(np.ones(3), 0.0)
    model.compile(optimizer=optimizers.SGD(learning_rate=1e30), loss="mse")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(x, 1e3 * y, batch_size=4, epochs=20, verbose=0,
                            callbacks=[callbacks.TerminateOnNaN()])
    assert not any("the loss became" in str(w.message) for w in record)
    losses = history.history["loss"]
    assert len(losses) < 20 and not math.isfinite(losses[-1]) and all(map(math.isfinite, losses[:-1]))
    assert "invalid loss" in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad input

def _compiled_classifier():
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


X_OK, Y_OK = blobs(n=12)

BAD_FIT_INPUTS = [
    ({"x": np.where(np.eye(12, 4) > 0, np.nan, X_OK)}, ValueError, "x contains"),
    ({"x": X_OK[:, :3]}, ValueError, r"x has shape \(12, 3\).*\(None, 4\)"),
    ({"x": X_OK[:0], "y": Y_OK[:0]}, ValueError, "x is empty"),
    ({"x": X_OK.astype(str)}, TypeError, "x must hold real numbers"),
    ({"x": [[1.0, 2.0, 3.0, 4.0], [1.0]], "y": [0, 1]}, ValueError, "ragged"),
    ({"y": Y_OK[:10]}, ValueError, "x has 12, y has 10"),
    ({"y": Y_OK + 3}, ValueError, "y has label 5.*3 classes"),
    ({"y": Y_OK - 1}, ValueError, "y has negative label"),
    ({"y": Y_OK + 0.5}, ValueError, "y must hold integer class labels"),
    ({"y": [[0, 1]] * 6 + [[1]] * 6}, ValueError, "ragged"),
    ({"y": None}, ValueError, "y is required"),
    ({"sample_weight": np.ones(11)}, ValueError, r"sample_weight must have shape \(12,\)"),
    ({"sample_weight": -np.ones(12)}, ValueError, "sample_weight must be >= 0"),
    ({"sample_weight": np.full(12, np.nan)}, ValueError, "sample_weight contains"),
    ({"class_weight": [1.0, 2.0, 3.0]}, TypeError, "class_weight must be a dict"),
    ({"class_weight": {5: 1.0}}, ValueError, "class_weight has class 5"),
    ({"class_weight": {"a": 1.0}}, TypeError, "class_weight keys"),
    ({"class_weight": {0: -1.0}}, ValueError, r"class_weight\[0\]"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"epochs": -1}, ValueError, "epochs"),
    ({"verbose": 7}, ValueError, "verbose"),
    ({"shuffle": "yes"}, TypeError, "shuffle"),
    ({"validation_split": 1.0}, ValueError, "validation_split"),
    ({"x": X_OK[:1], "y": Y_OK[:1], "validation_split": 0.5}, ValueError, "validation_split"),
    ({"validation_data": (X_OK,)}, TypeError, "validation_data"),
    ({"validation_data": (X_OK[:, :2], Y_OK)}, ValueError, r"validation_data\[0\]"),
    ({"validation_data": (X_OK, Y_OK + 9)}, ValueError, r"validation_data\[1\] has label"),
    ({"validation_data": (X_OK, Y_OK, np.ones(3))}, ValueError, r"validation_data\[2\]"),
    ({"callbacks": ["progbar"]}, TypeError, "callbacks"),
    ({"validation_batch_size": 0}, ValueError, "validation_batch_size"),
    ({"validation_batch_size": 2.0}, TypeError, "validation_batch_size"),
    ({"validation_freq": 0}, ValueError, "validation_freq"),
    ({"validation_freq": 1.5}, TypeError, "validation_freq"),
    ({"validation_freq": True}, TypeError, "validation_freq"),
    ({"validation_freq": "2"}, TypeError, "validation_freq"),
    ({"validation_freq": [2, 0]}, ValueError, r"validation_freq\[1\]"),
    ({"steps_per_epoch": 0}, ValueError, "steps_per_epoch"),
    ({"steps_per_epoch": 1.5}, TypeError, "steps_per_epoch"),
    ({"validation_steps": 0}, ValueError, "validation_steps"),
]


@pytest.mark.parametrize("override, error, match", BAD_FIT_INPUTS)
def test_fit_rejects_bad_input(override, error, match):
    kwargs = {"x": X_OK, "y": Y_OK, "verbose": 0, **override}
    model = _compiled_classifier()
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(**kwargs)
    for a, b in zip(model.get_weights(), before):             # nothing was trained
        np.testing.assert_array_equal(a, b)


def test_targets_checked_against_the_loss():
    x = X_OK
    one_hot = Sequential([Dense(3, activation="softmax", input_shape=(4,))])
    one_hot.compile(optimizer="sgd", loss="categorical_crossentropy")
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        one_hot.fit(x, Y_OK, verbose=0)                          # labels given to a one-hot loss
    binary = Sequential([Dense(1, activation="sigmoid", input_shape=(4,))])
    binary.compile(optimizer="sgd", loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"y must hold probabilities in \[0, 1\]"):
        binary.fit(x, Y_OK, verbose=0)
    reg = Sequential([Dense(2, input_shape=(4,))])
    reg.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="y has shape .* the model's output has shape"):
        reg.fit(x, np.ones((12, 3)), verbose=0)
    reg1 = Sequential([Dense(1, input_shape=(4,))])
    reg1.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="class_weight needs class labels"):
        reg1.fit(x, np.full(12, 7.3), class_weight={0: 2.0}, verbose=0)


@pytest.mark.parametrize("method", ["evaluate", "predict", "predict_on_batch", "test_on_batch"])
def test_evaluate_and_predict_reject_bad_x(method):
    model = _compiled_classifier()
    args = (X_OK[:, :3],) if method.startswith("predict") else (X_OK[:, :3], Y_OK)
    with pytest.raises(ValueError, match=r"x has shape"):
        getattr(model, method)(*args)
    args = (np.full((2, 4), np.inf),) if method.startswith("predict") else (np.full((2, 4), np.inf), Y_OK[:2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        getattr(model, method)(*args)


_bad_x = st.one_of(
    st.builds(lambda r, c: np.full((r, c), np.nan), st.integers(1, 5), st.just(4)),
    st.builds(lambda r, c: np.ones((r, c)), st.integers(1, 5), st.integers(1, 3) | st.integers(5, 8)),
    st.builds(lambda r: np.ones(r), st.integers(1, 5)),
    st.builds(lambda r: np.ones((0, 4)), st.just(0)),
    st.builds(lambda r: np.array([["a"] * 4] * r), st.integers(1, 3)),
    st.builds(lambda r: np.ones((r, 4), dtype=complex), st.integers(1, 3)),
    st.builds(lambda r: [[1.0] * 4, [1.0] * 3] * r, st.integers(1, 3)),
    st.sampled_from([None, "data", 3.0, {"x": 1}]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=_bad_x, method=st.sampled_from(["fit", "evaluate", "predict"]))
def test_hypothesis_bad_x_raises_value_or_type_error(x, method):
    model = _compiled_classifier()
    n = len(x) if isinstance(x, list) or (isinstance(x, np.ndarray) and x.ndim > 0) else 3
    y = np.zeros(max(n, 1), dtype=int)
    call = {"fit": lambda: model.fit(x, y, verbose=0),
            "evaluate": lambda: model.evaluate(x, y, verbose=0),
            "predict": lambda: model.predict(x, verbose=0)}[method]
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert "x" in str(info.value) or "model" in str(info.value)


_bad_y = st.one_of(
    st.builds(lambda v: np.full(12, v), st.sampled_from([3, 7, -1, 0.5, np.nan, np.inf])),
    st.builds(lambda n: np.zeros(n, dtype=int), st.integers(0, 11) | st.integers(13, 20)),
    st.builds(lambda: np.array(["cat"] * 12)),
    st.builds(lambda c: np.zeros((12, c)), st.integers(2, 4)),
)
_bad_weights = st.one_of(
    st.builds(lambda n: np.ones(n), st.integers(1, 11) | st.integers(13, 15)),
    st.builds(lambda v: np.full(12, v), st.sampled_from([-1.0, np.nan, np.inf])),
    st.builds(lambda: np.ones((12, 2))),
    st.builds(lambda: "heavy"),
)
_bad_class_weight = st.one_of(
    st.builds(lambda k: {k: 1.0}, st.integers(3, 100) | st.integers(-100, -1)),
    st.builds(lambda v: {0: v}, st.sampled_from([-2.0, float("nan"), "big"])),
    st.sampled_from([[1.0, 2.0], "balanced", 3, {1.5: 2.0}]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), which=st.sampled_from(["y", "sample_weight", "class_weight"]),
       method=st.sampled_from(["fit", "evaluate", "train_on_batch"]))
def test_hypothesis_bad_targets_and_weights(data, which, method):
    if which == "class_weight" and method == "evaluate":
        method = "fit"
    strategy = {"y": _bad_y, "sample_weight": _bad_weights, "class_weight": _bad_class_weight}[which]
    bad = data.draw(strategy)
    kwargs = {"y": Y_OK}
    kwargs[which] = bad
    model = _compiled_classifier()
    before = model.get_weights()
    extra = {} if method == "train_on_batch" else {"verbose": 0}
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(model, method)(X_OK, **kwargs, **extra)
    assert which.split("_")[0] in str(info.value)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------------- determinism, backends, convergence

def _train_once(seed, backend="reference"):
    with config.use_backend(backend):
        fastnn.utils.set_random_seed(seed)
        x, y = blobs(n=60)
        model = classifier(dropout=0.3)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.2, verbose=0)
        return model.get_weights(), history.history


@pytest.mark.parametrize("floatx", ["float32", "float64"])
def test_same_seed_gives_bit_identical_training(backend_name, floatx):
    config.set_floatx(floatx)
    w1, h1 = _train_once(7, backend_name)
    w2, h2 = _train_once(7, backend_name)
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    assert h1 == h2
    w3, _ = _train_once(8, backend_name)
    assert not np.array_equal(w1[0], w3[0])


@pytest.mark.skipif("fast" not in backends.available(), reason="compiled kernels not built")
def test_fast_and_reference_backends_agree_after_training(f64):
    w_ref, h_ref = _train_once(3, "reference")
    w_fast, h_fast = _train_once(3, "fast")
    for a, b in zip(w_fast, w_ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h_fast["loss"], h_ref["loss"], rtol=1e-9)
    assert h_fast["accuracy"] == h_ref["accuracy"]


def test_mlp_learns_digits():
    """The seed's network shape (64-64-10 here) on the embedded digits set."""
    digits = pytest.importorskip("fastnn.datasets.digits")
    (x, y), (xt, yt) = digits.load_data()
    fastnn.utils.set_random_seed(0)
    model = Sequential([Dense(64, activation="relu", input_shape=(64,)),
                        Dense(64, activation="relu"),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=15, batch_size=32, verbose=0)
    loss, accuracy = model.evaluate(xt, yt, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    assert accuracy >= 0.95, accuracy


def test_binary_classifier_with_sigmoid_learns(use_backend):
    x, y = blobs(n=100, classes=2, seed=5)
    fastnn.utils.set_random_seed(1)
    model = Sequential([Dense(8, activation="tanh", input_shape=(4,)), Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] >= 0.97
    p = model.predict(x, verbose=0)
    assert p.shape == (100, 1) and np.all((p > 0) & (p < 1))


# ----------------------------------------------------------------------------- the fused-training seam

class _Plan:
    def __init__(self, model):
        self.model = model
        self.calls = []

    def train_epoch(self, x, y, weights, order, batch_size, cbks):
        self.calls.append((x.shape, y.shape, None if order is None else len(order), batch_size))
        return {"loss": 0.5}


class _FusedOps:
    """The reference backend plus a fused_fit_plan op, as the fast backend may provide."""

    def __init__(self, base):
        self._base = base
        self.plans = []

    def __getattr__(self, name):
        return getattr(self._base, name)

    def fused_fit_plan(self, model, batch_size):
        plan = _Plan(model)
        self.plans.append((batch_size, plan))
        return plan


def test_fit_delegates_epochs_to_a_fused_plan(monkeypatch):
    ops = _FusedOps(backends.get("reference"))
    monkeypatch.setattr(backends, "get", lambda name=None: ops)
    x, y = blobs(n=20)
    model = classifier(dropout=0.1)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=5, epochs=2, verbose=0)
    (batch_size, plan), = ops.plans
    assert batch_size == 5 and plan.model is model
    assert plan.calls == [((20, 4), (20,), 20, 5)] * 2
    assert history.history["loss"] == [0.5, 0.5]

    # A callback that must see every batch keeps the Python loop.
    class PerBatch(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass
    ops.plans.clear()
    model.fit(x, y, batch_size=5, epochs=1, verbose=0, callbacks=[PerBatch()])
    assert ops.plans == []
    # So does a layer the fused kernels do not know.
    model = Sequential([Dense(3, input_shape=(4,)), Recorderless()])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.zeros((20, 3)), epochs=1, verbose=0)
    assert ops.plans == []


class Recorderless(layers.Layer):
    """An identity layer defined outside fastnn."""

    def forward(self, x, training=False):
        return x

    def backward(self, grad_y, need_input_grad=True):
        return grad_y


class _Predictor:
    def __init__(self, model):
        self.model = model
        self.rows = []

    def predict(self, x, check_finite=False):
        self.rows.append(x.shape[0])
        if check_finite and not np.isfinite(x).all():
            return None
        return self.model.forward(x, training=False) + 1.0   # recognisably not the per-op path


class _PredictOps(_FusedOps):
    def fused_predict_plan(self, model):
        self.predictor = _Predictor(model)
        return self.predictor


def test_inference_uses_a_fused_predictor(monkeypatch, f64):
    x, _ = blobs(n=100)
    model = classifier()
    expected = model.predict(x, verbose=0) + 1.0
    ops = _PredictOps(backends.get("reference"))
    monkeypatch.setattr(backends, "get", lambda name=None: ops)
    np.testing.assert_allclose(model.predict(x, batch_size=8, verbose=0), expected, rtol=1e-14)
    assert ops.predictor.rows == [100]                     # all batches in one call
    np.testing.assert_allclose(model.predict_on_batch(x[:1]), expected[:1], rtol=1e-14)
    np.testing.assert_allclose(model(x[:3]), expected[:3], rtol=1e-14)
    assert not np.allclose(model(x[:3], training=True), expected[:3])  # training: per-op path

    class PerBatch(callbacks.Callback):
        def on_predict_batch_end(self, batch, logs=None):
            self.last = batch
    ops.predictor.rows.clear()
    cb = PerBatch()
    model.predict(x, batch_size=40, verbose=0, callbacks=[cb])
    assert ops.predictor.rows == [40, 40, 20] and cb.last == 2
    first = ops.predictor
    model.add(Dense(2))                                     # a new stack asks for a new predictor
    model.predict(x, verbose=0)
    assert ops.predictor is not first


# ----------------------------------------------------------------------------- validation_freq, validation_batch_size

class _ValRecorder(callbacks.Callback):
    """Records which epochs had val_ logs, the val_loss, and the test batches run."""

    def __init__(self, xv, yv):
        super().__init__()
        self.xv, self.yv = xv, yv
        self.validated, self.expected, self.seen, self.test_batches = [], [], [], 0

    def on_test_batch_end(self, batch, logs=None):
        self.test_batches += 1

    def on_epoch_end(self, epoch, logs=None):
        if "val_loss" in logs:
            self.validated.append(epoch)
            self.seen.append(logs["val_loss"])
            # evaluate() of the weights at the end of this epoch: what val_loss must be
            self.expected.append(self.model.evaluate(self.xv, self.yv, batch_size=1000, verbose=0)[0])


@pytest.mark.parametrize("freq, initial_epoch, validated", [
    (1, 0, [0, 1, 2, 3, 4]),
    (2, 0, [1, 3]),
    (2, 1, [1, 3]),            # Keras counts epochs from 0, not from initial_epoch
    (3, 0, [2]),
    (9, 0, []),
    ([1, 4, 7], 0, [0, 3]),    # a list names 1-based epochs
])
def test_validation_freq_follows_keras(use_backend, f64, freq, initial_epoch, validated):
    x, y = blobs(n=40)
    xv, yv = blobs(n=15, seed=3)
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rec = _ValRecorder(xv, yv)
    history = model.fit(x, y, batch_size=8, epochs=5, initial_epoch=initial_epoch, verbose=0,
                        validation_data=(xv, yv), validation_freq=freq, callbacks=[rec])
    assert rec.validated == validated
    assert history.epoch == list(range(initial_epoch, 5))
    assert len(history.history["loss"]) == 5 - initial_epoch
    if validated:
        # As in Keras, the val_ lists hold the validated epochs only.
        assert len(history.history["val_loss"]) == len(history.history["val_accuracy"]) == len(validated)
        np.testing.assert_allclose(history.history["val_loss"], rec.expected, rtol=1e-12)
    else:
        assert not any(k.startswith("val_") for k in history.history)


def test_validation_batch_size_batches_only_the_validation(use_backend, f64):
    x, y = blobs(n=30)
    xv, yv = blobs(n=30, seed=4)
    runs = {}
    for vbs in (None, 7, 30):
        fastnn.utils.set_random_seed(2)
        model = classifier()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        rec = _ValRecorder(xv, yv)
        history = model.fit(x, y, batch_size=4, epochs=2, verbose=0, validation_data=(xv, yv),
                            validation_batch_size=vbs, callbacks=[rec])
        runs[vbs] = (rec.test_batches, history.history)
    # (rec's own evaluate() does not call rec back)
    assert runs[None][0] == 2 * math.ceil(30 / 4)            # default: batch_size
    assert runs[7][0] == 2 * math.ceil(30 / 7)
    assert runs[30][0] == 2
    for vbs in (7, 30):                                      # same training, same values
        assert runs[vbs][1]["loss"] == runs[None][1]["loss"]
        np.testing.assert_allclose(runs[vbs][1]["val_loss"], runs[None][1]["val_loss"], rtol=1e-12)
        assert runs[vbs][1]["val_accuracy"] == runs[None][1]["val_accuracy"]


def _frozen(model):
    for layer in model.layers:
        layer.trainable = False
    return model


def _stalled_model():
    """A model whose validation loss does not move (every layer frozen)."""
    model = _frozen(classifier())
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def _missing_warnings(record, monitor="val_loss"):
    return [w for w in record if issubclass(w.category, RuntimeWarning)
            and f"monitoring {monitor!r}, which is not in the logs" in str(w.message)]


def test_early_stopping_counts_only_validated_epochs(f64):
    x, y = blobs(n=20)
    es = callbacks.EarlyStopping(monitor="val_loss", patience=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = _stalled_model().fit(x, y, epochs=10, verbose=0, validation_data=(x, y),
                                       validation_freq=2, callbacks=[es])
    # validated epochs 1 (best), 3 (wait 1), 5 (wait 2: stop); the epochs without
    # validation warn and are skipped, not counted as epochs without improvement
    assert history.epoch == [0, 1, 2, 3, 4, 5]
    assert len(history.history["val_loss"]) == 3
    assert es.stopped_epoch == 5
    assert len(_missing_warnings(record)) == 3                # epochs 0, 2, 4


def test_reduce_lr_on_plateau_counts_only_validated_epochs(f64):
    x, y = blobs(n=20)
    model = classifier()
    model.compile(optimizer=optimizers.SGD(learning_rate=1e-12), loss="sparse_categorical_crossentropy")
    lr = callbacks.ReduceLROnPlateau(monitor="val_loss", patience=2, factor=0.5)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        history = model.fit(x, y, epochs=6, verbose=0, validation_data=(x, y),
                            validation_freq=2, callbacks=[lr])
    # val_loss moves by far less than min_delta: no improvement after epoch 1; the
    # patience of 2 runs out at epoch 5 (3 and 5 without improvement), not at epoch 2
    assert history.history["learning_rate"] == [1e-12] * 6
    assert model.optimizer.current_learning_rate() == pytest.approx(0.5e-12, rel=1e-12)
    assert len(_missing_warnings(record)) == 3


def test_model_checkpoint_best_only_skips_unvalidated_epochs(tmp_path, f64):
    x, y = blobs(n=20)
    ckpt = callbacks.ModelCheckpoint(str(tmp_path / "m{epoch}.fnn"), monitor="val_loss",
                                     save_best_only=True)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _stalled_model().fit(x, y, epochs=4, verbose=0, validation_data=(x, y), validation_freq=2,
                             callbacks=[ckpt])
    # epoch 2 (1-based) is the first validated one; at epoch 4 val_loss did not improve
    assert ckpt.saved == [str(tmp_path / "m2.fnn")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m2.fnn"]
    assert len(_missing_warnings(record)) == 2


# ----------------------------------------------------------------------------- weighted_metrics

def _weighted_accuracy(model, x, y, w):
    correct = np.argmax(model.predict(x, verbose=0), axis=1) == y
    return float(np.sum(w * correct) / np.sum(w)), float(np.mean(correct))


def test_weighted_metrics_in_evaluate_and_test_on_batch(use_backend, f64):
    x, y = blobs(n=25, spread=3.0)                           # overlapping: some mistakes
    fastnn.utils.set_random_seed(0)
    model = classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy", "sparse_categorical_accuracy"])
    assert [m.name for m in model.compiled_weighted_metrics] == ["accuracy", "sparse_categorical_accuracy"]
    sw = np.linspace(0.1, 3.0, len(x))
    weighted, plain = _weighted_accuracy(model, x, y, sw)
    assert 0 < plain < 1 and weighted != pytest.approx(plain)
    logs = model.evaluate(x, y, sample_weight=sw, batch_size=6, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy", "weighted_accuracy", "sparse_categorical_accuracy"]
    assert logs["accuracy"] == pytest.approx(plain, rel=1e-14)
    assert logs["weighted_accuracy"] == pytest.approx(weighted, rel=1e-14)
    assert logs["sparse_categorical_accuracy"] == pytest.approx(weighted, rel=1e-14)
    as_list = model.evaluate(x, y, sample_weight=sw, verbose=0)
    assert as_list == pytest.approx([logs["loss"], plain, weighted, weighted], rel=1e-14)
    assert model.test_on_batch(x, y, sample_weight=sw, return_dict=True) == pytest.approx(logs, rel=1e-13)
    # without weights, the weighted metrics are the plain ones
    unweighted = model.evaluate(x, y, verbose=0, return_dict=True)
    assert unweighted["weighted_accuracy"] == pytest.approx(plain, rel=1e-14)


def test_weighted_regression_metric_by_hand(use_backend, f64):
    x, y = regression_data(n=10)
    w, b = np.array([0.5, -1.0, 2.0]), 0.3
    model = linear_model(w, b)
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse", metrics=["mae"],
                  weighted_metrics=["mae", "mse"])
    r = x @ w + b - y[:, 0]
    sw = np.arange(1.0, 11.0)
    logs = model.train_on_batch(x, y, sample_weight=sw, return_dict=True)   # measured before the step
    assert logs["mae"] == pytest.approx(np.mean(np.abs(r)), rel=1e-13)
    assert logs["weighted_mae"] == pytest.approx(np.sum(sw * np.abs(r)) / np.sum(sw), rel=1e-13)
    assert logs["mse"] == pytest.approx(np.sum(sw * r ** 2) / np.sum(sw), rel=1e-13)
    assert logs["loss"] == pytest.approx(np.sum(sw * r ** 2) / len(x), rel=1e-13)  # Keras: / N


def test_fit_weights_metrics_by_sample_and_class_weight(use_backend, f64):
    x, y = blobs(n=23, spread=3.0)
    xv, yv = blobs(n=17, seed=6, spread=3.0)
    fastnn.utils.set_random_seed(1)
    # frozen: every batch sees the same weights, so the epoch's metrics are those of
    # model.predict over the whole set, whatever the batches and their order
    model = _frozen(classifier())
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    sw = np.linspace(0.2, 2.0, len(x))
    cw = {0: 3.0, 2: 0.25}
    swv = np.linspace(2.0, 0.5, len(xv))
    history = model.fit(x, y, batch_size=5, epochs=2, verbose=0, sample_weight=sw, class_weight=cw,
                        validation_data=(xv, yv, swv))
    weighted, plain = _weighted_accuracy(model, x, y, sw * np.array([3.0, 1.0, 0.25])[y])
    val_weighted, val_plain = _weighted_accuracy(model, xv, yv, swv)
    h = history.history
    assert list(h) == ["loss", "accuracy", "weighted_accuracy",
                       "val_loss", "val_accuracy", "val_weighted_accuracy"]
    np.testing.assert_allclose(h["accuracy"], [plain] * 2, rtol=1e-14)
    np.testing.assert_allclose(h["weighted_accuracy"], [weighted] * 2, rtol=1e-14)
    np.testing.assert_allclose(h["val_accuracy"], [val_plain] * 2, rtol=1e-14)
    np.testing.assert_allclose(h["val_weighted_accuracy"], [val_weighted] * 2, rtol=1e-14)
    assert weighted != pytest.approx(plain)


def _train_weighted(backend):
    with config.use_backend(backend):
        fastnn.utils.set_random_seed(5)
        x, y = blobs(n=60, spread=2.0)
        model = classifier(dropout=0.2)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"], weighted_metrics=["accuracy"])
        history = model.fit(x, y, batch_size=8, epochs=3, validation_split=0.25, verbose=0,
                            sample_weight=np.linspace(0.5, 1.5, 60), class_weight={1: 2.0},
                            validation_freq=2, validation_batch_size=5)
        return model.get_weights(), history.history


@pytest.mark.skipif("fast" not in backends.available(), reason="compiled kernels not built")
def test_weighted_metrics_agree_across_backends(f64):
    w_ref, h_ref = _train_weighted("reference")
    w_fast, h_fast = _train_weighted("fast")
    for a, b in zip(w_fast, w_ref):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert list(h_fast) == list(h_ref) == ["loss", "accuracy", "weighted_accuracy",
                                           "val_loss", "val_accuracy", "val_weighted_accuracy"]
    assert len(h_ref["val_loss"]) == 1 and len(h_ref["loss"]) == 3
    for key in h_ref:
        np.testing.assert_allclose(h_fast[key], h_ref[key], rtol=1e-9)


def test_weighted_metrics_keep_the_per_op_loop(monkeypatch):
    ops = _FusedOps(backends.get("reference"))
    monkeypatch.setattr(backends, "get", lambda name=None: ops)
    x, y = blobs(n=20)
    model = classifier()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    history = model.fit(x, y, batch_size=5, epochs=1, verbose=0)
    assert ops.plans == []                                   # the fused plan cannot weight them
    assert list(history.history) == ["loss", "accuracy"]     # its own name: no plain one
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=5, epochs=1, verbose=0)
    assert len(ops.plans) == 1


def test_weighted_metrics_need_their_own_objects():
    acc = fastnn.metrics.SparseCategoricalAccuracy()
    with pytest.raises(ValueError, match="same objects"):
        classifier().compile(loss="sparse_categorical_crossentropy", metrics=[acc], weighted_metrics=[acc])


def test_compile_config_round_trip_keeps_weighted_metrics(f64):
    model = classifier()
    assert model.get_compile_config() is None
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy", fastnn.metrics.Recall(name="rec")])
    config_ = model.get_compile_config()
    import json
    config_ = json.loads(json.dumps(config_))                 # JSON-able
    other = classifier()
    other.compile_from_config(config_)
    assert isinstance(other.optimizer, optimizers.Adam)
    assert other.optimizer.get_config() == model.optimizer.get_config()
    assert [m.name for m in other.compiled_metrics] == ["accuracy"]
    assert [m.name for m in other.compiled_weighted_metrics] == ["accuracy", "rec"]
    assert other._weighted_metric_keys == ["weighted_accuracy", "rec"]
    x, y = blobs(n=12)
    other.set_weights(model.get_weights())
    sw = np.linspace(1, 2, 12)
    assert (other.evaluate(x, y, sample_weight=sw, verbose=0)
            == pytest.approx(model.evaluate(x, y, sample_weight=sw, verbose=0), rel=1e-14))
    del config_["weighted_metrics"]                          # configs from before weighted_metrics
    other.compile_from_config(config_)
    assert other.compiled_weighted_metrics == []
    with pytest.raises(ValueError, match="missing"):
        other.compile_from_config({"loss": "mse"})
    with pytest.raises(TypeError, match="config"):
        other.compile_from_config([1])


@pytest.mark.parametrize("rows", [1, 20, 700])  # one block, one call, blocks shared by threads
@pytest.mark.parametrize("where", ["first", "last"])
def test_inference_rejects_nan_and_inf_on_every_path(use_backend, rows, where):
    """The compiled predictor tests finiteness as it runs; the error is the same
    as everywhere else and counts the bad values of the whole input."""
    import fastnn
    from fastnn import layers
    fastnn.utils.set_random_seed(0)
    # 64 wide: 700 rows are enough work for the predictor to share blocks between threads
    model = fastnn.Sequential([layers.Dense(64, activation="relu", input_shape=(64,)),
                               layers.Dense(3, activation="softmax")])
    x = np.random.default_rng(0).standard_normal((rows, 64)).astype(np.float32)
    model.predict(x, verbose=0)  # builds the predictor
    bad = x.copy()
    bad[0 if where == "first" else -1, 2] = np.nan
    bad[0 if where == "first" else -1, 4] = np.inf
    for call in (lambda a: model.predict(a, verbose=0, batch_size=7),
                 model.predict_on_batch, model):
        with pytest.raises(ValueError, match=r"x contains 2 NaN or infinite"):
            call(bad)
        np.testing.assert_allclose(call(x), model.predict(x, verbose=0), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("setting,value", [("label_smoothing", 0.3), ("from_logits", True)])
def test_loss_settings_changed_in_place_take_effect(setting, value, f64):
    # Keras reads a loss's settings at each step; the per-op step caches the loss it
    # fuses with the softmax, which must follow them (it kept the old ones).
    from fastnn import losses
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 5))
    y = np.eye(3)[rng.integers(0, 3, 32)]

    def model(**loss_args):
        m = Sequential([Dense(3, activation="softmax", input_shape=(5,))])
        with warnings.catch_warnings():  # from_logits after a softmax: warned, meant here
            warnings.simplefilter("ignore", UserWarning)
            m.compile(optimizer="sgd", loss=losses.CategoricalCrossentropy(**loss_args))
        m.set_weights([np.full((5, 3), 0.1), np.zeros(3)])
        return m
    changed = model()
    changed.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
    setattr(changed.loss, setting, value)
    reference = model(**{setting: value})
    reference.set_weights(changed.get_weights())
    got = changed.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False).history["loss"]
    want = reference.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False).history["loss"]
    assert got == want
    for a, b in zip(changed.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("optimizer", ["sgd_momentum", "adam"])
@pytest.mark.parametrize("recompile", [False, True])
def test_optimizer_state_follows_the_weights_when_layers_are_frozen(optimizer, recompile):
    # The state belongs to a weight, not to its position in trainable_weights, which
    # shifts when a layer is frozen: the next layer took over the frozen one's momentum
    # (or, with other shapes, fit failed).
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)), rng.integers(0, 3, 64)
    model = Sequential([Dense(8, activation="relu", input_shape=(4,)), Dense(5, activation="relu"),
                        Dense(3, activation="softmax")])
    opt = (optimizers.SGD(0.05, momentum=0.9) if optimizer == "sgd_momentum"
           else optimizers.Adam(1e-2))
    model.compile(opt, "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    state = {id(w): slots for w, slots in zip(model.trainable_weights, opt.slots)}
    frozen = model.layers[0]
    before = [w.copy() for w in frozen.get_weights()]
    frozen.trainable = False
    if recompile:
        model.compile(opt, "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for w, slots in zip(model.trainable_weights, opt.slots):
        assert slots is state[id(w)]          # each weight kept its own state
    for a, b in zip(frozen.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    frozen.trainable = True                   # and gets its own back when unfrozen
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for w, slots in zip(model.trainable_weights, opt.slots):
        assert slots is state[id(w)]


@pytest.mark.parametrize("copy_how", ["deepcopy", "pickle", "save"])
def test_optimizer_state_follows_the_weights_through_copies_and_files(copy_how, tmp_path):
    # A copy (or a saved and loaded model) bound its state by position at its next
    # update: freezing or unfreezing a layer then handed one layer's state to another
    # (or failed on the shapes).
    import copy
    import pickle
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 4)), rng.integers(0, 3, 64)
    model = Sequential([Dense(6, activation="relu", input_shape=(4,)), Dense(5, activation="relu"),
                        Dense(3, activation="softmax")])
    model.compile(optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.layers[0].trainable = False
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    if copy_how == "deepcopy":
        twin = copy.deepcopy(model)
    elif copy_how == "pickle":
        twin = pickle.loads(pickle.dumps(model))
    else:
        model.save(tmp_path / "m.fnn")
        twin = fastnn.models.load_model(tmp_path / "m.fnn")
    moments = {name: [s[name].copy() for s in model.optimizer.slots]
               for name in model.optimizer.slot_names}
    twin.layers[0].trainable = True                      # unfreeze in the copy
    twin.optimizer._ensure_slots(twin.trainable_weights)
    # the unfrozen layer's state: its own (kept in a copy) or fresh zeros (a file holds
    # the state of the weights it trains); the others' state: exactly theirs
    for name, saved in moments.items():
        got = [s[name] for s in twin.optimizer.slots]
        assert len(got) == 6
        for a, b in zip(got[2:], saved):
            np.testing.assert_array_equal(a, b)
        if copy_how == "save":
            assert not np.any(got[0]) and not np.any(got[1])
        else:
            assert np.any(got[0])
    twin.fit(x, y, epochs=1, batch_size=16, verbose=0)  # and it trains (it raised before)


def test_loss_weights_scale_the_loss_and_its_gradient(f64):
    # compile(optimizer, loss, loss_weights, metrics, ...) in Keras 3's order; one output:
    # one factor, on the loss reported and trained on (not on the penalties)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 3)), rng.standard_normal((32, 1))

    def model(**compile_args):
        m = Sequential([Dense(4, activation="relu", input_shape=(3,)), Dense(1)])
        m.compile(optimizers.SGD(0.1), "mse", **compile_args)
        m.set_weights([np.full((3, 4), 0.2), np.zeros(4), np.full((4, 1), 0.3), np.zeros(1)])
        return m
    weighted, plain, halved = model(loss_weights=[2.0]), model(), model()
    halved.optimizer.learning_rate = 0.2               # 2 x loss with lr 0.1 = loss with lr 0.2
    from fastnn.backends import fused
    if config.fast_available():  # (without the compiled modules every model declines)
        assert "loss_weights" in fused.explain(weighted) and fused.explain(plain) is None
    assert weighted.evaluate(x, y, verbose=0) == pytest.approx(2 * plain.evaluate(x, y, verbose=0))
    got = weighted.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False).history["loss"]
    same = halved.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False).history["loss"]
    for a, b in zip(weighted.get_weights(), halved.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert got == pytest.approx([2 * v for v in same], rel=1e-12)
    saved = weighted.get_compile_config()
    assert saved["loss_weights"] == 2.0 and "loss_weights" not in plain.get_compile_config()
    with pytest.raises(ValueError, match="metrics is compile's fourth argument"):
        plain.compile("sgd", "mse", ["mae"])
    with pytest.raises(ValueError, match="loss_weights must be >= 0"):
        plain.compile("sgd", "mse", -1.0)


def test_loss_weights_survive_save_and_load(tmp_path):
    model = Sequential([Dense(1, input_shape=(3,))])
    model.compile("sgd", "mse", loss_weights={"output": 0.5})
    model.save(tmp_path / "m.fnn")
    assert fastnn.models.load_model(tmp_path / "m.fnn").loss_weight == 0.5
