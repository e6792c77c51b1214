"""The fused training step and predictor (fastnn.backends.fused, csrc/fused.pyx).

The fused path must give the per-op path's numbers exactly: same seed, same
weights, bit for bit, in float32 and float64, for every optimizer, loss,
activation, dropout, regularization and clipping it accepts, and for any thread
count. The per-op reference is ``model.fit`` with a callback that must see every
batch (which always keeps fit on the per-op path); the fused side drives
:class:`FusedTrainer` the way ``fit`` drives its runner (one permutation from
fastnn's generator per epoch).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import fastnn
from fastnn import config, constraints, layers, losses, optimizers, regularizers, utils
from fastnn.callbacks import Callback, CallbackList

fused = pytest.importorskip("fastnn.backends.fused")
if fused._fused_module() is None:  # pragma: no cover - depends on the build
    pytest.skip("fastnn._fused is not compiled", allow_module_level=True)


class _EveryBatch(Callback):
    """Needs every batch, so fit keeps the per-op path."""

    def __init__(self):
        super().__init__()
        self.batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


class _Recorder(Callback):
    """Records the batch hooks a chunked runner makes."""

    supports_chunked_batches = True

    def __init__(self, stop_after=None):
        super().__init__()
        self.begins, self.ends, self.stop_after = [], [], stop_after

    def on_train_batch_begin(self, batch, logs=None):
        self.begins.append(batch)

    def on_train_batch_end(self, batch, logs=None):
        self.ends.append((batch, dict(logs)))
        if self.stop_after is not None and len(self.ends) >= self.stop_after:
            self.model.stop_training = True


def _data(n=67, d=6, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.integers(0, classes, n)
    return x, y


def _model(layer_list, optimizer, loss, dtype, metrics=("accuracy",), seed=0):
    """A compiled model whose initial weights depend only on ``seed``."""
    config.set_floatx(dtype)
    utils.set_random_seed(seed)
    model = fastnn.Sequential(layer_list())
    model.compile(optimizer=optimizer(), loss=loss(), metrics=list(metrics))
    return model


def _per_op_fit(model, x, y, epochs, batch_size, **kwargs):
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0,
                     callbacks=[_EveryBatch()], **kwargs).history


def _fused_fit(model, x, y, epochs, batch_size, shuffle=True, sample_weight=None,
               threads=None, callbacks=(), team=None):
    """What fit does with a runner: a permutation per epoch, then the epoch."""
    data = model._check_data(x, y, sample_weight)
    trainer = fused.FusedTrainer(model, batch_size, threads=threads, team=team)
    cbks = CallbackList(list(callbacks), model=model)
    history = {}
    for _ in range(epochs):
        order = utils.rng().permutation(len(data.x)) if shuffle else None
        logs = trainer.train_epoch(data.x, data.y, data.weights, order, batch_size, cbks)
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        if model.stop_training:
            break
    return history, trainer


# The fused runs every comparison makes: the serial chunk, and the team of threads
# (csrc/fused.pyx, _team_chunk) on one, two and three threads (uneven shares of the
# rows, more threads than this machine's cores), wherever it applies.
FUSED_RUNS = ({"team": False}, {"team": True, "threads": 1}, {"team": True, "threads": 2},
              {"team": True, "threads": 3})


def _assert_same_run(make, x, y, epochs=2, batch_size=8, **kwargs):
    # make() reseeds fastnn's generator: all runs draw the same weights, orders and masks
    a = make()
    h_ref = _per_op_fit(a, x, y, epochs, batch_size, **kwargs)
    config.set_num_threads(3)
    for run in FUSED_RUNS:
        b = make()
        h_fused, _ = _fused_fit(b, x, y, epochs, batch_size, **run, **kwargs)
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb, err_msg=str(run))
        assert a.optimizer.iterations == b.optimizer.iterations
        for (name, sa), sb in zip(a.optimizer.get_state().items(),
                                  b.optimizer.get_state().values()):
            if name != "iterations":
                for u, v in zip(sa, sb):
                    np.testing.assert_array_equal(u, v, err_msg=str(run))
        assert h_ref == h_fused, run
    return a, b


def _mlp(act="relu", out="softmax", classes=3, extra=lambda: ()):
    def build():
        return [layers.Dense(7, activation=act, input_shape=(6,)), *extra(),
                layers.Dense(5, activation=act), layers.Dense(classes, activation=out)]
    return build


OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.05),
    "momentum": lambda: optimizers.SGD(0.05, momentum=0.9),
    "nesterov": lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: optimizers.Adam(0.01),
    "amsgrad": lambda: optimizers.Adam(0.01, amsgrad=True),
    "adamw": lambda: optimizers.AdamW(0.01, weight_decay=0.05),
    "rmsprop": lambda: optimizers.RMSprop(0.01),
    "rmsprop_centered_momentum": lambda: optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    "adagrad": lambda: optimizers.Adagrad(0.05),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_every_optimizer_matches_per_op_bitwise(opt, float_dtype):
    x, y = _data()
    _assert_same_run(lambda: _model(_mlp(), OPTIMIZERS[opt],
                                    lambda: "sparse_categorical_crossentropy", float_dtype), x, y)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "elu", "softplus", "gelu", "gelu_tanh",
                                 "exponential", "linear"])
def test_activations_match_per_op_bitwise(act, float_dtype):
    x, y = _data()
    x = x * 0.3  # keeps 'exponential' tame
    _assert_same_run(lambda: _model(_mlp(act), OPTIMIZERS["adam"],
                                    lambda: "sparse_categorical_crossentropy", float_dtype), x, y)


def test_leaky_relu_with_negative_slope_keeps_the_preactivation(float_dtype):
    # With a negative slope the derivative needs x, not y: the plan must keep z.
    x, y = _data()
    act = fastnn.activations.Activation("leaky_relu", param=-0.3)
    _assert_same_run(lambda: _model(_mlp(act), OPTIMIZERS["adam"],
                                    lambda: "sparse_categorical_crossentropy", float_dtype), x, y)


@pytest.mark.parametrize("loss,out,kind", [
    ("categorical_crossentropy", "softmax", "onehot"),
    ("binary_crossentropy", "sigmoid", "binary"),
    ("mse", "linear", "onehot"),
    ("mae", "tanh", "onehot"),
    ("huber", "linear", "onehot"),
    ("mse", "softmax", "onehot"),                 # softmax not fused with mse: Jacobian backward
    ("categorical_crossentropy", "linear", "logits"),
    ("binary_crossentropy", "linear", "binary_logits"),
])
def test_losses_match_per_op_bitwise(loss, out, kind, float_dtype):
    x, labels = _data()
    classes = 1 if kind.startswith("binary") else 3
    if kind.startswith("binary"):
        y = (labels % 2).astype(float).reshape(-1, 1)
    else:
        y = np.eye(3)[labels]
    loss_fn = {
        "logits": lambda: losses.CategoricalCrossentropy(from_logits=True),
        "binary_logits": lambda: losses.BinaryCrossentropy(from_logits=True),
    }.get(kind, lambda: loss)
    metrics = ("accuracy",) if loss.endswith("crossentropy") else ("mae",)
    _assert_same_run(lambda: _model(_mlp("relu", out, classes), OPTIMIZERS["rmsprop"], loss_fn,
                                    float_dtype, metrics), x, y)


def test_activation_layers_and_softmax_activation_output(float_dtype):
    x, y = _data()

    def build():
        return [layers.Dense(7, input_shape=(6,)), layers.Activation("relu"),
                layers.Dense(3), layers.Activation("softmax")]
    _assert_same_run(lambda: _model(build, OPTIMIZERS["adam"],
                                    lambda: "sparse_categorical_crossentropy", float_dtype), x, y)


@pytest.mark.parametrize("first", ["dense", "activation", "dropout"])
def test_shuffled_batches_whatever_the_first_layer(first, float_dtype):
    # A first Dense layer reads the shuffled rows where they lie (its GEMMs take the
    # row numbers); any other first layer works on a gathered copy. Same bits either way.
    x, y = _data(n=70)
    head = {"dense": lambda: [layers.Dense(8, activation="relu", input_shape=(6,))],
            "activation": lambda: [layers.Activation("tanh", input_shape=(6,)),
                                   layers.Dense(8, activation="relu")],
            "dropout": lambda: [layers.Dropout(0.3, input_shape=(6,)),
                                layers.Dense(8, activation="relu")]}[first]

    def build():
        return [*head(), layers.Dense(3, activation="softmax")]
    _assert_same_run(lambda: _model(build, OPTIMIZERS["adam"],
                                    lambda: "sparse_categorical_crossentropy", float_dtype),
                     x, y, epochs=2, batch_size=16)


def test_one_chunk_mixing_rows_read_in_place_and_gathered(float_dtype):
    # 66 = 4 x 16 + 2: a batch of two rows goes through the one-row GEMM path,
    # which takes a gathered copy, after four batches read in place, all in one
    # compiled call (fit's chunks may cut elsewhere).
    x, y = _data(n=66)

    def make():
        return _model(_mlp(), OPTIMIZERS["adam"], lambda: "sparse_categorical_crossentropy",
                      float_dtype)
    a = make()
    _per_op_fit(a, x, y, epochs=1, batch_size=16)
    b = make()
    data = b._check_data(x, y, None)
    order = utils.rng().permutation(len(data.x))   # the draw fit makes after the seed
    _, steps = fused.FusedTrainer(b, 16).run_chunk(data.x, data.y, None, order, 0, len(order))
    assert steps == 5
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_wide_first_layer_gathers_its_batch():
    # 256 x 300 inputs into 260 units take the GEMM's blocked path, which does not
    # read picked rows in place: the trainer gathers the batch (once, in parallel).
    rng = np.random.default_rng(5)
    x = rng.standard_normal((600, 300))
    y = rng.integers(0, 4, 600)

    def build():
        return [layers.Dense(260, activation="relu", input_shape=(300,)),
                layers.Dense(4, activation="softmax")]
    _assert_same_run(lambda: _model(build, OPTIMIZERS["adam"],
                                    lambda: "sparse_categorical_crossentropy", "float64"),
                     x, y, epochs=1, batch_size=256)


def test_dropout_draws_the_same_masks(float_dtype):
    x, y = _data(n=90)

    def build():
        return [layers.Dense(9, activation="relu", input_shape=(6,)), layers.Dropout(0.4),
                layers.Dense(8, activation="relu"), layers.Dropout(0.25, seed=7),
                layers.Dense(3, activation="softmax")]
    _assert_same_run(lambda: _model(build, OPTIMIZERS["adam"],
                                    lambda: "sparse_categorical_crossentropy", float_dtype),
                     x, y, epochs=3, batch_size=16)


def test_regularization_clipping_and_schedules(float_dtype):
    x, y = _data()
    cases = [
        (regularizers.L1(0.01), regularizers.L2(0.02),
         lambda: optimizers.Adam(0.01, clipvalue=0.05)),
        (regularizers.L1L2(l1=0.01, l2=0.01), None,
         lambda: optimizers.SGD(0.1, momentum=0.9, clipnorm=0.1)),
        (regularizers.L2(0.05), regularizers.L1(0.01),
         lambda: optimizers.RMSprop(0.01, global_clipnorm=0.2)),
        (None, None,
         lambda: optimizers.Adam(optimizers.schedules.ExponentialDecay(0.02, 3, 0.5))),
    ]
    for kreg, breg, opt in cases:
        def build(kreg=kreg, breg=breg):
            return [layers.Dense(7, activation="relu", input_shape=(6,), kernel_regularizer=kreg,
                                 bias_regularizer=breg),
                    layers.Dense(3, activation="softmax", kernel_regularizer=kreg)]
        _assert_same_run(lambda: _model(build, opt, lambda: "sparse_categorical_crossentropy",
                                        float_dtype), x, y)


def test_weight_constraints_apply_after_every_step(float_dtype):
    x, y = _data()

    def build():
        return [layers.Dense(7, activation="relu", input_shape=(6,),
                             kernel_constraint=constraints.MaxNorm(0.5),
                             bias_constraint=constraints.NonNeg()),
                layers.Dropout(0.2),
                layers.Dense(3, activation="softmax",
                             kernel_constraint=constraints.ClipValue(-0.3, 0.3))]
    a, b = _assert_same_run(lambda: _model(build, lambda: optimizers.SGD(0.5, momentum=0.9),
                                           lambda: "sparse_categorical_crossentropy",
                                           float_dtype), x, y)
    assert np.all(b.layers[0].bias >= 0) and np.abs(b.layers[2].kernel).max() <= 0.3


def test_weights_order_and_partial_batches(float_dtype):
    x, y = _data(n=61)
    w = np.random.default_rng(3).uniform(0.1, 2.0, len(x))
    make = lambda: _model(_mlp(), OPTIMIZERS["momentum"],  # noqa: E731
                          lambda: "sparse_categorical_crossentropy", float_dtype)
    _assert_same_run(make, x, y, batch_size=7, sample_weight=w)
    _assert_same_run(make, x, y, batch_size=7, shuffle=False)
    _assert_same_run(make, x, y, batch_size=200)           # one full batch per epoch


def test_frozen_layer_gets_no_update(float_dtype):
    x, y = _data()

    def build():
        first = layers.Dense(7, activation="relu", input_shape=(6,))
        first.trainable = False
        return [first, layers.Dense(3, activation="softmax")]
    a, b = _assert_same_run(lambda: _model(build, OPTIMIZERS["adam"],
                                           lambda: "sparse_categorical_crossentropy",
                                           float_dtype), x, y)
    fresh = _model(build, OPTIMIZERS["adam"], lambda: "sparse_categorical_crossentropy", float_dtype)
    np.testing.assert_array_equal(b.layers[0].kernel, fresh.layers[0].kernel)


def test_thread_counts_give_identical_weights():
    # Large enough that the GEMMs, element-wise kernels and the update split between threads.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 150))
    y = rng.integers(0, 10, 300)

    def build():
        return [layers.Dense(200, activation="relu", input_shape=(150,)), layers.Dropout(0.2),
                layers.Dense(120, activation="tanh"), layers.Dense(10, activation="softmax")]
    results = []
    for threads in (1, 2):
        model = _model(build, lambda: optimizers.Adam(1e-3, global_clipnorm=1.0),
                       lambda: "sparse_categorical_crossentropy", "float32")
        config.set_num_threads(2)
        history, _ = _fused_fit(model, x, y, epochs=2, batch_size=64, threads=threads)
        results.append((model.get_weights(), history))
    for wa, wb in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(wa, wb)
    assert results[0][1] == results[1][1]


@pytest.mark.parametrize("batch_size", [64, 7])
def test_team_of_threads_matches_the_serial_chunk(batch_size, float_dtype):
    # Sizes where fit's default picks the team on two threads (csrc/fused.pyx,
    # _team_chunk): dropout, value clipping, sample weights and a short last batch.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 150))
    y = rng.integers(0, 10, 300)
    w = rng.uniform(0.5, 2.0, 300)

    def build():
        return [layers.Dense(200, activation="relu", input_shape=(150,)), layers.Dropout(0.2),
                layers.Dense(120, activation="tanh"), layers.Dense(10, activation="softmax")]
    results = []
    for threads, team in ((1, False), (2, None)):
        model = _model(build, lambda: optimizers.Adam(1e-3, clipvalue=0.01),
                       lambda: "sparse_categorical_crossentropy", float_dtype)
        config.set_num_threads(2)
        history, trainer = _fused_fit(model, x, y, epochs=2, batch_size=batch_size,
                                      sample_weight=w, threads=threads, team=team)
        assert trainer._trainer.uses_team == (team is None)
        results.append((model.get_weights(), history))
    for wa, wb in zip(results[0][0], results[1][0]):
        np.testing.assert_array_equal(wa, wb)
    assert results[0][1] == results[1][1]


def test_team_declines_penalties_and_norm_clipping():
    x, y = _data()
    for opt, reg in ((lambda: optimizers.Adam(0.01, clipnorm=1.0), None),
                     (lambda: optimizers.Adam(0.01, global_clipnorm=1.0), None),
                     (OPTIMIZERS["adam"], regularizers.L2(1e-3))):
        def build():
            return [layers.Dense(7, activation="relu", input_shape=(6,),
                                 kernel_regularizer=reg), layers.Dense(3)]
        model = _model(build, opt, lambda: losses.SparseCategoricalCrossentropy(from_logits=True),
                       "float64")
        _, trainer = _fused_fit(model, x, y, 1, 8, threads=2, team=True)
        assert not trainer._trainer.uses_team


def test_switching_between_paths_shares_the_optimizer_state(float_dtype):
    x, y = _data()
    make = lambda: _model(_mlp(), OPTIMIZERS["adam"],  # noqa: E731
                          lambda: "sparse_categorical_crossentropy", float_dtype)
    a = make()
    _per_op_fit(a, x, y, 3, 8)
    b = make()
    _fused_fit(b, x, y, 1, 8)
    _per_op_fit(b, x, y, 1, 8)
    # the state is replaced wholesale (as loading a saved model does): the plan follows it
    b.optimizer.set_state(b.optimizer.get_state())
    b.set_weights(b.get_weights())
    _fused_fit(b, x, y, 1, 8)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert b.optimizer.iterations == a.optimizer.iterations


def test_chunked_callbacks_and_stop_training():
    x, y = _data(n=400)
    model = _model(_mlp(), OPTIMIZERS["adam"], lambda: "sparse_categorical_crossentropy", "float32")
    rec = _Recorder()
    _fused_fit(model, x, y, 1, 8, callbacks=[rec])
    steps = 50
    assert rec.begins[0] == 0 and rec.ends[-1][0] == steps - 1
    assert len(rec.begins) == len(rec.ends)
    # each chunk begins right after the previous one ended
    assert rec.begins[1:] == [b + 1 for b, _ in rec.ends[:-1]]
    assert all(np.isfinite(logs["loss"]) and 0 <= logs["accuracy"] <= 1 for _, logs in rec.ends)

    model = _model(_mlp(), OPTIMIZERS["adam"], lambda: "sparse_categorical_crossentropy", "float32")
    _fused_fit(model, x, y, 3, 8, callbacks=[_Recorder(stop_after=1)])
    assert model.stop_training
    assert 0 < model.optimizer.iterations < steps


def test_terminate_on_nan_stops_a_chunk_after_the_bad_batch():
    # The per-op loop stops right after the batch whose running loss is not finite; a
    # chunk went on to its end (4 updates against 2, History nan against inf). Now
    # it stops after that step too, on the serial chunk and the team alike.
    import warnings
    from fastnn.callbacks import TerminateOnNaN
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 6)) * 1e3, rng.normal(size=(20, 2))   # diverges at once
    make = lambda: _model(lambda: [layers.Dense(8, activation="relu", input_shape=(6,)),  # noqa: E731
                                   layers.Dense(2)],
                          lambda: optimizers.SGD(1e3), lambda: "mse", "float32", metrics=())
    a = make()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the overflow is the point
        h_ref = a.fit(x, y, epochs=3, batch_size=4, verbose=0,
                      callbacks=[TerminateOnNaN(), _EveryBatch()]).history
    assert not np.isfinite(h_ref["loss"][-1]) and a.optimizer.iterations < 5
    config.set_num_threads(3)
    for run in FUSED_RUNS:
        b = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h, _ = _fused_fit(b, x, y, 3, 4, callbacks=[TerminateOnNaN()], **run)
        assert b.optimizer.iterations == a.optimizer.iterations, run
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb, err_msg=str(run))
        assert h == h_ref or (np.isnan(h["loss"]).all() and np.isnan(h_ref["loss"]).all())


def test_explain_names_what_is_not_fused():
    def make(build, loss="sparse_categorical_crossentropy"):
        return _model(build, OPTIMIZERS["adam"], lambda: loss, "float32")
    ok = make(_mlp())
    assert fused.explain(ok) is None
    assert isinstance(fused.fused_trainer_for(ok, 8), fused.FusedTrainer)

    python_act = make(lambda: [layers.Dense(3, activation=lambda z: z * 2, input_shape=(6,))], "mse")
    assert "Python function" in fused.explain(python_act)

    class Custom(layers.Layer):
        def forward(self, x, training=False):
            return x

        def backward(self, grad_y, need_input_grad=True):
            return grad_y

    custom = make(lambda: [layers.Dense(3, input_shape=(6,)), Custom()], "mse")
    assert "per-op path" in fused.explain(custom)


def test_run_chunk_checks_its_arguments():
    x, y = _data()
    model = _model(_mlp(), OPTIMIZERS["adam"], lambda: "sparse_categorical_crossentropy", "float32")
    trainer = fused.FusedTrainer(model, 8)
    xs, ys = x.astype(np.float32), y.astype(np.int64)
    with pytest.raises(TypeError, match="x must be"):
        trainer.run_chunk(x, ys, None, None, 0, 8)           # float64 for a float32 model
    with pytest.raises(ValueError, match="index holds row"):
        trainer.run_chunk(xs, ys, None, np.full(len(xs), 500, np.int64), 0, 8)
    with pytest.raises(ValueError, match="beyond"):
        trainer.run_chunk(xs, ys, None, None, 0, len(xs) + 8)
    loss_sum, steps = trainer.run_chunk(xs, ys, None, None, 0, 16)
    assert steps == 2 and model.optimizer.iterations == 2 and np.isfinite(loss_sum)


def test_fused_training_learns():
    # A real (small) problem: two Gaussian blobs per class in 2-D.
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [3, 3], [0, 3]])
    y = rng.integers(0, 3, 600)
    x = centers[y] + 0.6 * rng.standard_normal((600, 2))
    model = _model(lambda: [layers.Dense(16, activation="relu", input_shape=(2,)),
                            layers.Dense(3, activation="softmax")],
                   lambda: optimizers.Adam(0.02), lambda: "sparse_categorical_crossentropy",
                   "float32")
    history, _ = _fused_fit(model, x, y, 10, 32)
    assert history["loss"][-1] < history["loss"][0] / 2
    assert history["accuracy"][-1] > 0.95


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------

def _predict_model(dtype):
    config.set_floatx(dtype)
    utils.set_random_seed(0)
    return fastnn.Sequential([
        layers.Dense(40, activation="relu", input_shape=(30,)), layers.Dropout(0.5),
        layers.Dense(20, activation="gelu"), layers.Dense(20), layers.Activation("tanh"),
        layers.Dense(5, activation="softmax")])


def test_predictor_matches_the_layers(float_dtype):
    model = _predict_model(float_dtype)
    predictor = fused.fused_predictor_for(model)
    rtol = 1e-5 if float_dtype == np.float32 else 1e-12
    for n in (1, 3, 32, 257, 1500):
        x = np.random.default_rng(n).standard_normal((n, 30)).astype(float_dtype)
        got = predictor.predict(x)
        assert got.shape == (n, 5) and got.dtype == float_dtype
        np.testing.assert_allclose(got, model.forward(x, training=False), rtol=rtol, atol=rtol)


def test_predictor_rows_agree_whatever_the_batch_around_them():
    # Wide inputs (long dot products): a row's output agrees, to float32 rounding,
    # whatever rows share its call. (Not bitwise: the GEMM takes a different path,
    # with a different blocking of k, for a few rows than for many.)
    config.set_floatx("float32")
    utils.set_random_seed(0)
    model = fastnn.Sequential([layers.Dense(64, activation="relu", input_shape=(700,)),
                               layers.Dense(10, activation="softmax")])
    predictor = fused.fused_predictor_for(model)
    x = np.random.default_rng(0).random((1100, 700), dtype=np.float32)
    whole = predictor.predict(x)
    for rows in (slice(0, 1), slice(5, 37), slice(1000, 1100)):
        np.testing.assert_allclose(predictor.predict(x[rows]), whole[rows], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(whole[:32], model.forward(x[:32]), rtol=1e-5, atol=1e-7)


def test_predictor_threads_are_bitwise_identical_and_follow_weights():
    model = _predict_model("float32")
    predictor = fused.fused_predictor_for(model)
    x = np.random.default_rng(0).standard_normal((3000, 30)).astype(np.float32)
    config.set_num_threads(1)
    one = predictor.predict(x)
    config.set_num_threads(2)
    two = predictor.predict(x)
    np.testing.assert_array_equal(one, two)
    # set_weights copies in place; the predictor sees the new weights
    model.set_weights([w * 0.5 for w in model.get_weights()])
    np.testing.assert_allclose(predictor.predict(x[:10]), model.forward(x[:10]), rtol=1e-5)
    assert not np.allclose(predictor.predict(x[:10]), one[:10])


def test_predict_from_several_python_threads_at_once():
    # The compiled predictor runs without the GIL: calls from several threads (a web
    # server's, say) must not share buffers. They did, and 272 of 1200 outputs were
    # another call's or a mixture.
    import threading
    config.set_num_threads(2)
    model = _predict_model("float32")
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 30)).astype(np.float32) for n in (1, 7, 30, 100, 700)]
    expected = [model.predict(x, verbose=0) for x in xs]
    expected_one = [model.predict_on_batch(x) for x in xs]
    wrong = []

    def work(seed):
        r = np.random.default_rng(seed)
        for _ in range(100):
            i = int(r.integers(len(xs)))
            if r.random() < 0.5:
                ok = np.array_equal(model.predict(xs[i], verbose=0), expected[i])
            else:
                ok = np.array_equal(model.predict_on_batch(xs[i]), expected_one[i])
            if not ok:
                wrong.append(i)
    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


@pytest.mark.parametrize("sizes", [(784, 1024, 10), (300, 700, 513, 7)])
def test_predictor_threads_are_bitwise_identical_for_wide_layers(sizes):
    # Wide layers take the GEMM's blocked path (k cut in blocks) for many rows
    # and its small-problem path (one pass over k) for a block of rows: a
    # thread count must not decide which, so every input longer than a block
    # goes through the same blocks of rows on one thread as on two.
    config.set_floatx("float32")
    utils.set_random_seed(0)
    model = fastnn.Sequential(
        [layers.Dense(sizes[1], activation="relu", input_shape=(sizes[0],))]
        + [layers.Dense(s, activation="relu") for s in sizes[2:-1]]
        + [layers.Dense(sizes[-1], activation="softmax")])
    predictor = fused.fused_predictor_for(model)
    x = np.random.default_rng(1).random((1000, sizes[0]), dtype=np.float32)
    results = []
    for threads in (1, 2):
        config.set_num_threads(threads)
        results.append((predictor.predict(x), model.predict(x, verbose=0, batch_size=1000)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_allclose(results[0][0], model.forward(x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rows", [1, 40, 3000])  # one block, one call, blocks shared by threads
@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
def test_predictor_finiteness_is_judged_by_the_input_not_the_pre_activations(rows, float_dtype):
    # The first Dense layer tests its pre-activations and reads x again only if
    # one is not finite: an infinity meeting a zero weight (inf * 0 = NaN) must
    # still be caught, and finite inputs that overflow are not an input error.
    config.set_floatx(float_dtype)
    utils.set_random_seed(0)
    model = fastnn.Sequential([layers.Dense(8, activation="relu", input_shape=(5,)),
                               layers.Dense(3)])
    predictor = fused.fused_predictor_for(model)
    kernel, bias = model.layers[0].get_weights()
    kernel[2] = 0.0  # feature 2 reaches no unit
    model.layers[0].set_weights([kernel, bias])
    x = np.random.default_rng(1).standard_normal((rows, 5)).astype(float_dtype)
    assert predictor.predict(x, check_finite=True) is not None
    for bad_value in (np.inf, -np.inf, np.nan):
        bad = x.copy()
        bad[rows // 2, 2] = bad_value
        assert predictor.predict(bad, check_finite=True) is None
    huge = np.full_like(x, np.finfo(float_dtype).max)
    out = predictor.predict(huge, check_finite=True)
    assert out is not None and not np.isfinite(out).all()
    # an Activation first: x itself is tested
    first_act = fastnn.Sequential([layers.Activation("relu", input_shape=(5,)), layers.Dense(3)])
    first_act.predict(x, verbose=0)
    bad = x.copy()
    bad[-1, 0] = np.nan
    assert fused.fused_predictor_for(first_act).predict(bad, check_finite=True) is None


def test_predictor_declines_what_it_cannot_run():
    config.set_floatx("float32")
    model = fastnn.Sequential([layers.Dense(3, activation=lambda z: z, input_shape=(4,))])
    assert fused.fused_predictor_for(model) is None
    unbuilt = fastnn.Sequential([layers.Dense(3)])
    assert fused.fused_predictor_for(unbuilt) is None


def test_thread_tuner_keeps_the_faster_option_and_probes_less_often():
    tuner = fused._ThreadTuner(2, 1)
    cost = {2: 5e-4, 1: 1e-4}        # seconds per step: two threads 5x slower (a busy machine)
    steps = 300                      # a full chunk, ~CHUNK_SECONDS of the faster option
    tuner.record(2, 1.0, 1)          # the first chunk warms up and is not counted
    picks, clock, probe_times = [], 0.0, []
    for _ in range(400):
        threads, limit = tuner.choose()
        picks.append((threads, limit))
        n = limit or steps
        if threads == 2 and limit is not None and len(picks) > 4:
            probe_times.append(clock)
        tuner.record(threads, cost[threads], n)
        clock += cost[threads] * n
    # first both options are timed on short probes, then one thread wins ...
    probe = tuner.PROBE_STEPS
    assert picks[:4] == [(2, probe), (1, probe), (2, probe), (1, probe)]
    full = [t for t, limit in picks if limit is None]
    assert set(full) == {1}
    # ... and the loser is re-timed on short probes, ever more rarely, up to MAX_WAIT
    # seconds of training apart
    gaps = np.diff(probe_times)
    assert len(probe_times) >= 5 and np.all(gaps[1:] >= gaps[:-1] - 1e-9)
    assert gaps[-1] <= tuner.MAX_WAIT + cost[1] * steps + 1e-9
    # when the machine quietens, two threads win again
    cost[2] = 0.5e-4
    for _ in range(2000):
        threads, limit = tuner.choose()
        tuner.record(threads, cost[threads], limit or steps)
    assert tuner.choose()[0] == 2
    assert fused._ThreadTuner(1, 1).options == (1,)


def test_thread_tuner_spends_little_on_probing_a_slow_option():
    # a large model: one thread takes 40 ms a step, so a probe of it costs 160 ms
    tuner = fused._ThreadTuner(2, 1)
    cost = {2: 0.02, 1: 0.04}
    tuner.record(2, 1.0, 1)
    probing = total = 0.0
    for _ in range(5000):
        threads, limit = tuner.choose()
        n = limit or 2
        tuner.record(threads, cost[threads], n)
        total += cost[threads] * n
        if limit is not None:
            probing += cost[threads] * n
    assert probing / total < 2 * tuner.PROBE_SHARE


def test_thread_switches_keep_the_numbers(float_dtype, monkeypatch):
    # Every chunk changes the thread count, so every chunk first runs the untimed step
    # that wakes the threads (FusedTrainer._run): a call of its own, with its share of
    # the dropout uniforms, learning rates and outputs.
    x, y = _data()
    picks = itertools.cycle([(2, 3), (1, None), (2, None), (1, 2), (2, 1)])
    monkeypatch.setattr(fused._ThreadTuner, "choose", lambda self: next(picks))
    schedule = lambda: optimizers.schedules.ExponentialDecay(0.02, 3, 0.5)  # noqa: E731
    _assert_same_run(lambda: _model(_mlp(extra=lambda: (layers.Dropout(0.3),)),
                                    lambda: optimizers.Adam(schedule()),
                                    lambda: "sparse_categorical_crossentropy", float_dtype),
                     x, y, epochs=3)


def _count_runner_epochs(monkeypatch):
    """A list that gets an item per epoch fit runs through the fused runner (skips
    the test if the fast backend does not offer the runner)."""
    from fastnn import backends
    if not hasattr(backends.get("fast"), "fused_fit_plan"):
        pytest.skip("the fast backend does not offer the fused plans")
    calls = []
    real = fused.FusedTrainer.train_epoch

    def spy(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)
    monkeypatch.setattr(fused.FusedTrainer, "train_epoch", spy)
    return calls


def test_fit_and_predict_take_the_fused_path_with_the_same_numbers(float_dtype, monkeypatch):
    calls = _count_runner_epochs(monkeypatch)
    x, y = _data(n=90)

    def build():
        return [layers.Dense(9, activation="relu", input_shape=(6,)), layers.Dropout(0.3),
                layers.Dense(3, activation="softmax")]
    make = lambda: _model(build, OPTIMIZERS["adam"],  # noqa: E731
                          lambda: "sparse_categorical_crossentropy", float_dtype)
    a = make()
    h_ref = _per_op_fit(a, x, y, 3, 16)
    b = make()
    h = b.fit(x, y, epochs=3, batch_size=16, verbose=0).history
    assert len(calls) == 3                  # one runner call per epoch
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert h == h_ref
    rtol = 1e-5 if float_dtype == np.float32 else 1e-12
    xs = x.astype(float_dtype)
    np.testing.assert_allclose(b.predict(xs, verbose=0), b.forward(xs), rtol=rtol)
    np.testing.assert_allclose(b.predict_on_batch(xs[:1]), b.forward(xs[:1]), rtol=rtol)


class _ChangeAtEpoch(Callback):
    """Changes the model at the start of epoch 1, as schedules of hyper-parameters do."""

    def __init__(self, change):
        super().__init__()
        self.change = change

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.change(self.model)


# tanh computed by NumPy: an activation the compiled step does not run
_python_tanh = fastnn.activations.CallableActivation(np.tanh, derivative=lambda x, y: 1 - y * y)


def _set(obj, name, value):
    setattr(obj, name, value)


# What a callback may change between epochs, and the model it changes.
MODEL_CHANGES = {
    "adam beta_1": ("adam", lambda m: _set(m.optimizer, "beta_1", 0.5)),
    "adam epsilon": ("adam", lambda m: _set(m.optimizer, "epsilon", 0.1)),
    "sgd momentum": ("momentum", lambda m: _set(m.optimizer, "momentum", 0.2)),
    "clipnorm": ("adam", lambda m: _set(m.optimizer, "clipnorm", 0.01)),
    "clipvalue": ("rmsprop", lambda m: _set(m.optimizer, "clipvalue", 1e-3)),
    "dropout rate": ("adam", lambda m: _set(m.layers[1], "rate", 0.8)),
    "activation": ("adam", lambda m: _set(m.layers[0], "activation", "tanh")),
    "l2 factor": ("adam", lambda m: _set(m.layers[2].kernel_regularizer, "l2", 0.5)),
    # the layer's attributes after build: neither path takes them up (the variables
    # keep what they were built with, as in Keras)
    "regularizer replaced": ("adam", lambda m: _set(m.layers[2], "kernel_regularizer",
                                                    regularizers.L2(0.5))),
    "constraint set": ("adam", lambda m: _set(m.layers[2], "kernel_constraint",
                                              constraints.MaxNorm(0.3))),
    # options whose state did not exist yet: it is made then (the fused update read a
    # NULL state array and crashed the interpreter)
    "sgd momentum turned on": ("sgd", lambda m: _set(m.optimizer, "momentum", 0.9)),
    "amsgrad turned on": ("adam", lambda m: _set(m.optimizer, "amsgrad", True)),
    "rmsprop momentum turned on": ("rmsprop", lambda m: _set(m.optimizer, "momentum", 0.5)),
    "rmsprop centered turned on": ("rmsprop", lambda m: _set(m.optimizer, "centered", True)),
    # not fused any more: the rest of the fit runs on the per-op loop
    "python activation": ("adam", lambda m: _set(m.layers[0], "activation", _python_tanh)),
    "weighted metrics": ("adam", lambda m: m.compile(optimizer=m.optimizer, loss=m.loss,
                                                      metrics=["accuracy"],
                                                      weighted_metrics=["accuracy"])),
}
DECLINING_CHANGES = ("python activation", "weighted metrics")


@pytest.mark.parametrize("change", sorted(MODEL_CHANGES))
def test_fit_follows_callbacks_that_change_the_model(change, monkeypatch):
    # The compiled plan is read off the model before every chunk: a change made by an
    # epoch-level callback (no batch hooks, so fit takes the fused runner) shows in
    # the numbers exactly as on the per-op path.
    calls = _count_runner_epochs(monkeypatch)
    optimizer, edit = MODEL_CHANGES[change]
    x, y = _data(n=90)

    def build():
        return [layers.Dense(9, activation="relu", input_shape=(6,)), layers.Dropout(0.3),
                layers.Dense(5, activation="relu", kernel_regularizer=regularizers.L2(0.01)),
                layers.Dense(3, activation="softmax")]
    make = lambda: _model(build, OPTIMIZERS[optimizer],  # noqa: E731
                          lambda: "sparse_categorical_crossentropy", "float64")
    a = make()
    h_ref = a.fit(x, y, epochs=3, batch_size=16, verbose=0,
                  callbacks=[_ChangeAtEpoch(edit), _EveryBatch()]).history
    b = make()
    h = b.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[_ChangeAtEpoch(edit)]).history
    # the runner ran epoch 0, and epochs 1 and 2 unless the change made it decline
    assert len(calls) == (2 if change in DECLINING_CHANGES else 3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert h == h_ref


@pytest.mark.parametrize("hook", ["on_train_batch_begin", "on_train_batch_end"])
@pytest.mark.parametrize("change", ["python activation", "adam beta_1"])
def test_fit_follows_changes_made_halfway_through_an_epoch(change, hook):
    # A callback that accepts chunks changes the model in a batch hook of the first
    # epoch: from the batch that begins (or the one after the batch that ends), as on
    # the per-op loop with the change made in the same hook of the same batch. A
    # model the compiled step no longer covers makes the runner stop before its next
    # chunk, and fit goes on from that batch on the per-op loop (same loss sum,
    # metrics and order; that batch's begin hook not called twice).
    x, y = _data(n=200)
    edit = {"python activation": lambda m: _set(m.layers[0], "activation", _python_tanh),
            "adam beta_1": lambda m: _set(m.optimizer, "beta_1", 0.3)}[change]

    class Switch(Callback):
        supports_chunked_batches = True

        def __init__(self, at=None):
            super().__init__()
            self.at, self.done, self.begun, self.epoch = at, False, [], None

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def _maybe(self, batch):
            # the first call after batch 0 (mid-epoch), or batch `at`
            if not self.done and (batch == self.at if self.at is not None else batch > 0):
                edit(self.model)
                self.done, self.at = True, batch

        def on_train_batch_begin(self, batch, logs=None):
            self.begun.append((self.epoch, batch))
            if hook == "on_train_batch_begin":
                self._maybe(batch)

        def on_train_batch_end(self, batch, logs=None):
            if hook == "on_train_batch_end":
                self._maybe(batch)

    def build():
        return [layers.Dense(9, activation="relu", input_shape=(6,)), layers.Dropout(0.3),
                layers.Dense(3, activation="softmax")]
    make = lambda: _model(build, OPTIMIZERS["adam"],  # noqa: E731
                          lambda: "sparse_categorical_crossentropy", "float64")
    b = make()
    switch = Switch()
    h = b.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[switch]).history
    assert switch.done and 0 < switch.at < 24    # within the first of 25 batches
    assert len(switch.begun) == len(set(switch.begun))   # no batch begun twice
    a = make()
    h_ref = a.fit(x, y, epochs=2, batch_size=8, verbose=0,
                  callbacks=[Switch(at=switch.at), _EveryBatch()]).history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert h == h_ref


def test_predict_follows_activation_changes():
    # The predictor checks the activations per call: another fused activation is
    # built into a new plan; a Python one sends predict to the layers' forward.
    model = _predict_model("float64")
    x = np.random.default_rng(3).standard_normal((40, 30))
    before = model.predict(x, verbose=0)
    for activation in ("sigmoid", _python_tanh, "elu"):
        model.layers[0].activation = activation
        got = model.predict(x, verbose=0)
        assert not np.allclose(got, before)
        np.testing.assert_allclose(got, model.forward(x, training=False), rtol=1e-12)
        np.testing.assert_allclose(model.predict_on_batch(x[:1]), got[:1], rtol=1e-12)
        # compiled again once the Python activation is replaced by a built-in one
        assert (model._fused_predictor() is None) == (activation is _python_tanh)
    # an Activation layer's activation, and a parameter of an activation object
    model.layers[4].activation = "relu"
    np.testing.assert_allclose(model.predict(x, verbose=0), model.forward(x), rtol=1e-12)
    model = _predict_model("float64")
    model.layers[0].activation = "leaky_relu"
    model.predict(x, verbose=0)
    # an activation object changed in place: its parameter, its name, a softmax's axis
    model.layers[0].activation.param = 0.9
    np.testing.assert_allclose(model.predict(x, verbose=0), model.forward(x), rtol=1e-12)
    model.layers[0].activation.name = "tanh"
    np.testing.assert_allclose(model.predict(x, verbose=0), model.forward(x), rtol=1e-12)
    model.layers[-1].activation.axis = 0         # over the batch: not the compiled softmax
    np.testing.assert_allclose(model.predict(x, verbose=0), model.forward(x), rtol=1e-12)


def test_softmax_over_samples_of_several_dimensions_is_not_fused():
    # The compiled kernels see a sample as one flat row: a softmax over the last axis
    # of (3, 4) samples is four-wide, not twelve-wide, so the model declines.
    config.set_floatx("float64")
    utils.set_random_seed(0)
    model = fastnn.Sequential([layers.Input(shape=(3, 4)), layers.Activation("softmax"),
                               layers.Flatten(), layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert "softmax over the last axis" in fused.explain(model)
    assert fused.fused_predictor_for(model) is None
    x = np.random.default_rng(0).standard_normal((10, 3, 4))
    np.testing.assert_allclose(model.predict(x, verbose=0), model.forward(x), rtol=1e-12)


def test_trainer_refuses_missing_optimizer_state():
    # The compiled update would read a NULL array: the constructor says so instead.
    model = _model(_mlp(), OPTIMIZERS["momentum"], lambda: "sparse_categorical_crossentropy",
                   "float64")
    model.optimizer.build(model.trainable_weights)
    kwargs, _, _ = fused._build_spec(model, 8)
    kwargs["params"][0]["state"] = [None]
    with pytest.raises(ValueError, match=r"params\[0\].*state array 0"):
        fused._fused_module().Trainer(**kwargs)


def test_trainer_driven_directly_follows_set_state_between_epochs():
    # Without callbacks the plan is not read again, but a caller's set_state (which
    # replaces the optimizer's arrays) between epochs is still seen, by identity.
    x, y = _data(n=64)
    weights = []
    for direct in (True, False):
        model = _model(_mlp(), OPTIMIZERS["adam"], lambda: "sparse_categorical_crossentropy",
                       "float64")
        data = model._check_data(x, y, None)
        trainer = fused.FusedTrainer(model, 16) if direct else None
        for epoch in range(2):
            if direct:
                trainer.train_epoch(data.x, data.y, None, None, 16, CallbackList([], model=model))
            else:
                _per_op_fit(model, x, y, 1, 16, shuffle=False)
            if epoch == 0:
                state = model.optimizer.get_state()
                model.optimizer.set_state({k: v if k == "iterations" else [a * 0 + 0.01 for a in v]
                                           for k, v in state.items()})
        weights.append(model.get_weights())
    for wa, wb in zip(*weights):
        np.testing.assert_array_equal(wa, wb)


def test_fit_with_a_batch_larger_than_the_data(monkeypatch):
    # One batch of all the rows, as on the per-op loop; the compiled runner sized its
    # buffers by batch_size (2**31: a 48 GB MemoryError; 2**62: an OverflowError).
    calls = _count_runner_epochs(monkeypatch)
    x, y = _data(n=20)
    make = lambda: _model(_mlp(), OPTIMIZERS["adam"],  # noqa: E731
                          lambda: "sparse_categorical_crossentropy", "float64")
    a = make()
    h_ref = _per_op_fit(a, x, y, 2, 2 ** 62)
    b = make()
    h = b.fit(x, y, epochs=2, batch_size=2 ** 62, verbose=0).history
    assert len(calls) == 2
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert h == h_ref


def test_fit_and_predict_take_contiguous_arrays_that_are_not_aligned():
    # np.frombuffer(..., offset=4) gives C-contiguous float64 data at an address that is
    # not a multiple of 8; the compiled kernels refused it with an internal name.
    x, y = _data(n=30)

    def misaligned(a):
        return np.frombuffer(b"\0" * 4 + a.tobytes(), a.dtype, offset=4).reshape(a.shape)
    xu, yu, wu = misaligned(x), misaligned(y.astype(np.int64)), misaligned(np.linspace(0.5, 2, 30))
    assert not (xu.flags.aligned or yu.flags.aligned or wu.flags.aligned)
    make = lambda: _model(_mlp(), OPTIMIZERS["adam"],  # noqa: E731
                          lambda: "sparse_categorical_crossentropy", "float64")
    a = make()
    h_ref = _per_op_fit(a, x, y, 1, 8, sample_weight=np.linspace(0.5, 2, 30))
    b = make()
    h = b.fit(xu, yu, epochs=1, batch_size=8, verbose=0, sample_weight=wu).history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert h == h_ref
    np.testing.assert_array_equal(b.predict(xu, verbose=0), b.predict(x, verbose=0))


def test_plan_is_read_again_only_where_a_callback_may_have_changed_the_model(monkeypatch):
    # Reading the plan off the model costs about as much as an epoch of one small
    # batch: fit with fastnn's own callbacks only does it once, for the trainer.
    reads = []
    real = fused._build_spec

    def spy(*args, **kwargs):
        reads.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(fused, "_build_spec", spy)
    _count_runner_epochs(monkeypatch)
    x, y = _data(n=16)
    model = _model(_mlp(), OPTIMIZERS["adam"], lambda: "sparse_categorical_crossentropy",
                   "float64")
    model.fit(x, y, epochs=5, batch_size=16, verbose=1, callbacks=[
        fastnn.callbacks.TerminateOnNaN()])
    assert len(reads) == 1
    reads.clear()
    model.fit(x, y, epochs=5, batch_size=16, verbose=0,
              callbacks=[_ChangeAtEpoch(lambda m: None)])
    assert len(reads) == 1 + 5                  # and before every epoch


def test_input_flatten_and_one_dimensional_binary_targets(float_dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((50, 3, 4))
    y = (x.sum(axis=(1, 2)) > 0).astype(float)      # shape (50,) for a (50, 1) output

    def build():
        return [layers.Input(shape=(3, 4)), layers.Flatten(),
                layers.Dense(6, activation="elu"), layers.Dense(1, activation="sigmoid")]
    _assert_same_run(lambda: _model(build, OPTIMIZERS["nesterov"], lambda: "binary_crossentropy",
                                    float_dtype), x, y, batch_size=9)


def test_probability_categorical_crossentropy_without_softmax_takes_the_per_op_path():
    """Categorical CE on probabilities renormalises rows before the loss op; the
    kernels cannot, so a model whose output is not a softmax (no logits fusion)
    must not run fused, or the two paths would train differently."""
    import fastnn
    from fastnn.backends import fused

    model = fastnn.Sequential([fastnn.layers.Dense(3, activation="sigmoid", input_shape=(4,))])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert fused.fused_trainer_for(model, 8) is None
    assert "transforms y_pred" in fused.explain(model, 8)
    softmax_model = fastnn.Sequential([fastnn.layers.Dense(3, activation="softmax", input_shape=(4,))])
    softmax_model.compile(optimizer="sgd", loss="categorical_crossentropy")
    assert fused.fused_trainer_for(softmax_model, 8) is not None


def test_steps_per_epoch_runs_the_same_steps_fused_and_per_op():
    """fit hands the fused runner each epoch's part of the pass as its order
    (45 samples: 6 batches, the last of 5, so two epochs make a pass)."""
    x, y = _data(n=45)
    build = _mlp()

    def make():
        return _model(build, lambda: optimizers.Adam(0.01), losses.SparseCategoricalCrossentropy,
                      "float64")
    a = make()
    h_ref = a.fit(x, y, epochs=4, batch_size=8, steps_per_epoch=3, verbose=0,
                  callbacks=[_EveryBatch()]).history
    b = make()
    assert b._fused_runner(8, CallbackList([], model=b)) is not None
    h_fused = b.fit(x, y, epochs=4, batch_size=8, steps_per_epoch=3, verbose=0).history
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.optimizer.iterations == b.optimizer.iterations == 12
    assert h_ref == h_fused
