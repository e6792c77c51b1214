"""Callbacks driven by a small fake model and a minimal fit loop; values checked."""
from __future__ import annotations

import io
import os
import re
import sys
import time

import numpy as np
import pytest

from fastnn import callbacks as C
from fastnn.optimizers import SGD, schedules


class FakeModel:
    """What callbacks use of a model: weights, optimizer, stop_training, save."""

    def __init__(self, lr=0.1):
        self.stop_training = False
        self.weights = [np.zeros(2), np.zeros(1)]
        self.optimizer = SGD(learning_rate=lr)
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w, copy=True) for w in weights]

    def save(self, path):
        with open(path, "w") as f:
            f.write("model")
        self.saved.append(path)


def run_fit(model, callbacks, epoch_logs, steps=4, batch_logs=None, report=None, verbose=0):
    """A minimal fit loop: epoch ``e`` sets every weight to ``e`` and logs ``epoch_logs[e]``.

    ``report`` lists the batch indices at which on_train_batch_end is called
    (default: every batch); ``batch_logs(epoch, batch)`` gives their logs.
    """
    cbs = C.CallbackList(callbacks, add_history=True, model=model, epochs=len(epoch_logs),
                         steps=steps, verbose=verbose)
    model.stop_training = False
    cbs.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        cbs.on_epoch_begin(epoch)
        for batch in (range(steps) if report is None else report):
            cbs.on_train_batch_begin(batch)
            cbs.on_train_batch_end(batch, batch_logs(epoch, batch) if batch_logs else {"loss": 1.0})
            if model.stop_training:
                break
        model.weights = [np.full_like(w, float(epoch)) for w in model.weights]
        logs = dict(logs)
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end()
    return cbs.history


# -- CallbackList ---------------------------------------------------------------------------
class Recorder(C.Callback):
    def __init__(self, name, calls):
        super().__init__()
        self.name, self.calls = name, calls

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append((self.name, epoch, dict(logs)))


class PerBatch(C.Callback):
    def on_train_batch_end(self, batch, logs=None):
        pass


class LegacyPerBatch(C.Callback):
    def on_batch_end(self, batch, logs=None):
        self.seen = batch


class ValidationBatchHook(C.Callback):
    def on_test_batch_end(self, batch, logs=None):
        pass


def test_callback_list_dispatches_in_order_and_history_comes_last():
    calls = []
    model = FakeModel()
    history = run_fit(model, [Recorder("a", calls), Recorder("b", calls)], [{"loss": 1.0}, {"loss": 0.5}])
    assert [c[:2] for c in calls] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert history.history == {"loss": [1.0, 0.5]}
    assert history.epoch == [0, 1]
    assert model.history is history


def test_callback_list_sets_model_and_params():
    cb = C.Callback()
    model = FakeModel()
    cbs = C.CallbackList([cb], model=model, epochs=3, steps=7, verbose=2)
    assert cb.model is model and cb.params == {"epochs": 3, "steps": 7, "verbose": 2}
    late = C.Callback()
    cbs.append(late)
    assert late.model is model and late.params["steps"] == 7
    assert len(cbs) == 2 and list(cbs) == [cb, late]


def test_per_batch_requirements():
    assert not C.CallbackList([]).requires_per_batch_calls("train")
    assert not C.CallbackList([], add_history=True, add_progbar=True).requires_per_batch_calls()
    chunk_ok = C.CallbackList([C.TerminateOnNaN(), C.ProgbarLogger()])
    assert chunk_ok.has_batch_hooks("train") and not chunk_ok.requires_per_batch_calls("train")
    assert C.CallbackList([PerBatch()]).requires_per_batch_calls("train")
    assert C.CallbackList([LegacyPerBatch()]).requires_per_batch_calls("train")
    assert not C.CallbackList([C.ModelCheckpoint("m.fnn")]).has_batch_hooks("train")
    assert C.CallbackList([C.ModelCheckpoint("m.fnn", save_freq=10)]).requires_per_batch_calls("train")
    tb = C.CallbackList([ValidationBatchHook()])
    assert tb.requires_per_batch_calls("test") and not tb.requires_per_batch_calls("train")
    assert not tb.has_batch_hooks("predict")
    with pytest.raises(ValueError, match="mode"):
        tb.requires_per_batch_calls("validate")


def test_legacy_on_batch_end_receives_train_batches():
    cb = LegacyPerBatch()
    run_fit(FakeModel(), [cb], [{"loss": 1.0}], steps=3)
    assert cb.seen == 2


def test_callback_list_rejects_non_callbacks():
    with pytest.raises(TypeError, match="callbacks\\[1\\]"):
        C.CallbackList([C.History(), "early_stopping"])
    with pytest.raises(TypeError, match="callbacks must be a list"):
        C.CallbackList(3)


def test_default_history_and_progbar_are_not_duplicated():
    h, p = C.History(), C.ProgbarLogger()
    cbs = C.CallbackList([h, p], add_history=True, add_progbar=True)
    assert cbs.history is h and cbs.progbar is p and len(cbs) == 2


# -- History ---------------------------------------------------------------------------------
def test_history_plot_draws_training_and_validation_curves():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    history = run_fit(FakeModel(), [], [
        {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4},
        {"loss": 0.6, "accuracy": 0.7, "val_loss": 0.8, "val_accuracy": 0.6},
        {"loss": 0.4, "accuracy": 0.8, "val_loss": 0.7, "val_accuracy": 0.65},
    ])
    fig = history.plot()
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["loss", "accuracy"]
    lines = axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["training", "validation"]
    np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(lines[1].get_ydata(), [1.1, 0.8, 0.7])
    assert [ax.get_title() for ax in history.plot(keys="accuracy").get_axes()] == ["accuracy"]
    with pytest.raises(ValueError, match="not recorded"):
        history.plot(keys=["auc"])
    import matplotlib.pyplot as plt
    plt.close("all")


def test_history_plot_draws_validation_at_the_validated_epochs():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    logs = [{"loss": 1.0 / (e + 1)} for e in range(5)]
    for e in (1, 3):                                     # validation_freq=2: epochs 2 and 4
        logs[e]["val_loss"] = 2.0 / (e + 1)
    history = run_fit(FakeModel(), [], logs)
    assert history.epochs_by_key == {"loss": [0, 1, 2, 3, 4], "val_loss": [1, 3]}
    training, validation = history.plot().get_axes()[0].get_lines()
    np.testing.assert_array_equal(training.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(validation.get_xdata(), [2, 4])
    np.testing.assert_array_equal(validation.get_ydata(), [1.0, 0.5])

    # A History filled by hand, without epochs_by_key, still plots at 1..n.
    h = C.History()
    h.history = {"loss": [3.0, 2.0, 1.0], "val_loss": [2.5]}
    training, validation = h.plot().get_axes()[0].get_lines()
    np.testing.assert_array_equal(training.get_xdata(), [1, 2, 3])
    np.testing.assert_array_equal(validation.get_xdata(), [1])
    plt.close("all")


def test_history_of_fit_with_validation_freq_plots_at_validated_epochs():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import fastnn
    fastnn.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 3)), rng.normal(size=(20, 1))
    model = fastnn.Sequential([fastnn.layers.Dense(1, input_shape=(3,))])
    model.compile(optimizer="sgd", loss="mse")
    history = model.fit(x, y, epochs=5, batch_size=10, verbose=0, validation_split=0.2,
                        validation_freq=[1, 4, 5])
    assert len(history.history["val_loss"]) == 3
    assert history.epochs_by_key["val_loss"] == [0, 3, 4]
    validation = history.plot(keys="loss").get_axes()[0].get_lines()[1]
    np.testing.assert_array_equal(validation.get_xdata(), [1, 4, 5])
    np.testing.assert_array_equal(validation.get_ydata(), history.history["val_loss"])
    plt.close("all")


def test_history_reused_by_a_second_fit_keeps_epochs_and_values_aligned():
    h = C.History()
    run_fit(FakeModel(), [h], [{"loss": 1.0}, {"loss": 0.5}])
    run_fit(FakeModel(), [h], [{"loss": 0.25}])
    assert h.epoch == [0, 1, 0] and h.history == {"loss": [1.0, 0.5, 0.25]}


def test_history_plot_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    h = C.History()
    h.history = {"loss": [1.0]}
    with pytest.raises(ImportError, match=re.escape("pip install fastnn[plot]")):
        h.plot()


def test_empty_history_plot_is_an_error():
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="empty"):
        C.History().plot()


# -- EarlyStopping ---------------------------------------------------------------------------
def _val(*values, key="val_loss"):
    return [{"loss": 1.0, key: v} for v in values]


def test_early_stopping_stops_after_patience_and_restores_best_weights():
    model = FakeModel()
    es = C.EarlyStopping(patience=2, restore_best_weights=True)
    history = run_fit(model, [es], _val(1.0, 0.8, 0.9, 0.85, 0.95, 0.7))
    assert es.stopped_epoch == 3 and len(history.history["loss"]) == 4
    assert es.best == 0.8 and es.best_epoch == 1
    np.testing.assert_array_equal(model.weights[0], [1.0, 1.0])  # the weights after epoch 1


def test_early_stopping_restores_best_weights_even_without_stopping():
    model = FakeModel()
    es = C.EarlyStopping(patience=5, restore_best_weights=True)
    history = run_fit(model, [es], _val(1.0, 0.5, 0.6))
    assert es.stopped_epoch == 0 and len(history.history["loss"]) == 3
    np.testing.assert_array_equal(model.weights[1], [1.0])


def test_early_stopping_without_restore_keeps_last_weights():
    model = FakeModel()
    run_fit(model, [C.EarlyStopping(patience=1)], _val(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(model.weights[1], [1.0])  # stopped after epoch 1, not restored


def test_early_stopping_min_delta():
    es = C.EarlyStopping(monitor="loss", min_delta=0.1, patience=1)
    history = run_fit(FakeModel(), [es], _val(1.0, 0.95, 0.5, key="unused"))
    # 0.95 is not an improvement of more than 0.1: stop at epoch 1
    assert es.stopped_epoch == 1 and len(history.history["loss"]) == 2


def test_early_stopping_mode_max_inferred_from_accuracy():
    es = C.EarlyStopping(monitor="val_accuracy", patience=1)
    run_fit(FakeModel(), [es], _val(0.5, 0.6, 0.55, 0.9, key="val_accuracy"))
    assert es.stopped_epoch == 2 and es.best == 0.6


def test_early_stopping_baseline_must_be_beaten_to_reset_patience():
    with_baseline = C.EarlyStopping(patience=2, baseline=0.5)
    run_fit(FakeModel(), [with_baseline], _val(0.9, 0.95, 0.96, 0.97))
    without = C.EarlyStopping(patience=2)
    run_fit(FakeModel(), [without], _val(0.9, 0.95, 0.96, 0.97))
    assert with_baseline.stopped_epoch == 1 and without.stopped_epoch == 2


def test_early_stopping_start_from_epoch():
    es = C.EarlyStopping(patience=1, start_from_epoch=2)
    history = run_fit(FakeModel(), [es], _val(0.1, 0.9, 0.8, 0.85, 0.95))
    # epochs 0 and 1 are ignored; best is 0.8 at epoch 2, no improvement at 3 -> stop
    assert es.best == 0.8 and es.stopped_epoch == 3 and len(history.history["loss"]) == 4


def test_early_stopping_is_reusable():
    es = C.EarlyStopping(patience=0)
    run_fit(FakeModel(), [es], _val(1.0, 2.0, 3.0))
    assert es.stopped_epoch == 1
    run_fit(FakeModel(), [es], _val(3.0, 2.0, 1.0))
    assert es.stopped_epoch == 0 and es.best == 1.0


def test_early_stopping_verbose_messages(capsys):
    run_fit(FakeModel(), [C.EarlyStopping(patience=0, verbose=1, restore_best_weights=True)],
            _val(1.0, 2.0))
    out = capsys.readouterr().out
    assert "Epoch 2: early stopping" in out
    assert "Restoring model weights from the end of the best epoch: 1." in out


def test_early_stopping_missing_monitor_warns_and_never_stops():
    es = C.EarlyStopping(patience=0)
    with pytest.warns(RuntimeWarning, match="'val_loss', which is not in the logs; available: loss"):
        history = run_fit(FakeModel(), [es], [{"loss": 1.0}] * 3)
    assert len(history.history["loss"]) == 3


def test_early_stopping_nan_is_not_an_improvement():
    es = C.EarlyStopping(patience=1)
    run_fit(FakeModel(), [es], _val(1.0, float("nan"), 0.5))
    assert es.stopped_epoch == 1


def test_unknown_direction_needs_a_mode():
    with pytest.raises(ValueError, match="mode='min' or mode='max'"):
        run_fit(FakeModel(), [C.EarlyStopping(monitor="val_widgets")], _val(1.0, key="val_widgets"))
    es = C.EarlyStopping(monitor="val_widgets", mode="max", patience=0)
    run_fit(FakeModel(), [es], _val(1.0, 0.5, key="val_widgets"))
    assert es.stopped_epoch == 1


def test_direction_comes_from_the_model_metric_when_it_says():
    class Metric:
        name, direction = "score", "down"
    model = FakeModel()
    model.compiled_metrics = [Metric()]
    es = C.EarlyStopping(monitor="val_score", patience=0)
    run_fit(model, [es], _val(1.0, 2.0, key="val_score"))
    assert es.stopped_epoch == 1


@pytest.mark.parametrize("key", ["score", "weighted_score"])
def test_direction_comes_from_a_weighted_metric_under_its_logged_name(key):
    class Metric:
        name, direction = "score", "up"
    model = FakeModel()
    model.compiled_weighted_metrics = [Metric()]
    model._weighted_metric_keys = [key]   # 'weighted_score' when a plain 'score' exists
    es = C.EarlyStopping(monitor=f"val_{key}", patience=0)
    run_fit(model, [es], _val(2.0, 1.0, key=f"val_{key}"))   # 'up': the drop is no improvement
    assert es.stopped_epoch == 1


@pytest.mark.parametrize("kwargs,exc", [
    ({"patience": -1}, ValueError), ({"patience": 1.5}, TypeError), ({"mode": "up"}, ValueError),
    ({"monitor": 3}, TypeError), ({"baseline": "low"}, TypeError), ({"start_from_epoch": -2}, ValueError),
])
def test_early_stopping_bad_arguments(kwargs, exc):
    with pytest.raises(exc, match=next(iter(kwargs))):
        C.EarlyStopping(**kwargs)


# -- ReduceLROnPlateau / LearningRateScheduler --------------------------------------------
def test_reduce_lr_on_plateau_sequence_with_cooldown_and_min_lr():
    model = FakeModel(lr=0.1)
    cb = C.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    history = run_fit(model, [cb], _val(1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5))
    expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02, 0.02, 0.02]
    assert history.history["learning_rate"] == pytest.approx(expected)
    assert model.optimizer.learning_rate == pytest.approx(0.02)


def test_reduce_lr_on_plateau_min_delta_and_max_mode(capsys):
    model = FakeModel(lr=1.0)
    cb = C.ReduceLROnPlateau(monitor="val_accuracy", factor=0.1, patience=1, min_delta=0.05, verbose=1)
    history = run_fit(model, [cb], _val(0.5, 0.52, 0.7, 0.71, key="val_accuracy"))
    # 0.52 and 0.71 are within min_delta of the best: each reduces the rate once
    assert history.history["learning_rate"] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert "Epoch 2: ReduceLROnPlateau reducing learning rate to 0.1" in capsys.readouterr().out


def test_reduced_learning_rate_is_used_by_the_optimizer():
    model = FakeModel(lr=0.1)
    run_fit(model, [C.ReduceLROnPlateau(monitor="loss", patience=0, factor=0.5)],
            [{"loss": 1.0}, {"loss": 1.0}])
    p = np.array([0.0])
    model.optimizer.apply([np.array([1.0])], [p])
    np.testing.assert_allclose(p, [-0.05])


def test_reduce_lr_factor_must_be_below_one():
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.0)


def test_learning_rate_scheduler_two_argument_schedule(capsys):
    model = FakeModel(lr=0.1)
    seen = []

    def schedule(epoch, lr):
        seen.append((epoch, lr))
        return lr if epoch == 0 else lr * 0.5

    history = run_fit(model, [C.LearningRateScheduler(schedule, verbose=1)], [{"loss": 1.0}] * 3)
    assert seen == [(0, 0.1), (1, 0.1), (2, 0.05)]
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    assert "Epoch 3: LearningRateScheduler setting learning rate to 0.025." in capsys.readouterr().out


def test_learning_rate_scheduler_one_argument_schedule():
    model = FakeModel(lr=0.1)
    history = run_fit(model, [C.LearningRateScheduler(lambda epoch: 1.0 / (epoch + 1))], [{"loss": 1.0}] * 3)
    assert history.history["learning_rate"] == pytest.approx([1.0, 0.5, 1 / 3])


def test_learning_rate_scheduler_bad_output_and_schedule_optimizer():
    with pytest.raises(ValueError, match="finite float >= 0"):
        run_fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: "fast")], [{"loss": 1.0}])
    with pytest.raises(ValueError, match="finite float >= 0"):
        run_fit(FakeModel(), [C.LearningRateScheduler(lambda e, lr: float("nan"))], [{"loss": 1.0}])
    model = FakeModel()
    model.optimizer = SGD(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        run_fit(model, [C.LearningRateScheduler(lambda e, lr: lr)], [{"loss": 1.0}])
    with pytest.raises(TypeError, match="schedule must be callable"):
        C.LearningRateScheduler(0.1)


def test_learning_rate_scheduler_can_anneal_to_zero():
    model = FakeModel()
    run_fit(model, [C.LearningRateScheduler(lambda e, lr: 0.0)], [{"loss": 1.0}])
    assert model.optimizer.learning_rate == 0.0


# -- TerminateOnNaN -----------------------------------------------------------------------------
def test_terminate_on_nan_names_epoch_and_batch(capsys):
    model = FakeModel()
    cb = C.TerminateOnNaN()
    logs = lambda e, b: {"loss": float("nan") if (e, b) == (1, 2) else 0.5}  # noqa: E731
    history = run_fit(model, [cb], [{"loss": 0.5}] * 4, batch_logs=logs)
    assert model.stop_training
    assert cb.message == "Epoch 2, batch 2: invalid loss nan, terminating training"
    assert cb.message in capsys.readouterr().out
    assert len(history.history["loss"]) == 2


def test_terminate_on_nan_catches_inf_at_epoch_end():
    model = FakeModel()
    cb = C.TerminateOnNaN()
    cbs = C.CallbackList([cb], model=model)
    cbs.on_train_begin()
    cbs.on_epoch_begin(0)
    cbs.on_epoch_end(0, {"loss": float("inf")})
    assert model.stop_training and cb.message.startswith("Epoch 1: invalid loss inf")


def test_terminate_on_nan_leaves_finite_losses_alone():
    model = FakeModel()
    run_fit(model, [C.TerminateOnNaN()], [{"loss": 0.5}] * 2)
    assert not model.stop_training


# -- CSVLogger --------------------------------------------------------------------------------
def test_csv_logger_contents(tmp_path):
    path = tmp_path / "log.csv"
    run_fit(FakeModel(), [C.CSVLogger(path)], [{"loss": 0.5, "accuracy": 0.25},
                                               {"loss": 0.125, "accuracy": 1 / 3}])
    assert path.read_text().splitlines() == [
        "epoch,accuracy,loss", "0,0.25,0.5", f"1,{1 / 3!r},0.125"]


def test_csv_logger_append_and_separator(tmp_path):
    path = tmp_path / "log.csv"
    run_fit(FakeModel(), [C.CSVLogger(str(path), separator=";")], [{"loss": 1.0}])
    run_fit(FakeModel(), [C.CSVLogger(str(path), separator=";", append=True)], [{"loss": 2.0}])
    assert path.read_text().splitlines() == ["epoch;loss", "0;1.0", "0;2.0"]
    run_fit(FakeModel(), [C.CSVLogger(str(path))], [{"loss": 3.0}])
    assert path.read_text().splitlines() == ["epoch,loss", "0,3.0"]


def test_csv_logger_missing_key_is_na(tmp_path):
    path = tmp_path / "log.csv"
    run_fit(FakeModel(), [C.CSVLogger(path)], [{"loss": 1.0, "val_loss": 2.0}, {"loss": 0.5}])
    assert path.read_text().splitlines()[-1] == "1,0.5,NA"


def test_csv_logger_writes_numpy_scalars_as_numbers(tmp_path):
    # np.float64 is a float subclass whose repr is 'np.float64(0.5)' (NumPy 2): that went
    # into the file, which no CSV reader can parse as a number.
    path = tmp_path / "log.csv"
    run_fit(FakeModel(), [C.CSVLogger(path)],
            [{"loss": np.float64(0.5), "acc": np.float32(0.25), "n": np.int64(3)}])
    assert path.read_text().splitlines() == ["epoch,acc,loss,n", "0,0.25,0.5,3"]


def test_csv_logger_bad_separator():
    with pytest.raises(ValueError, match="separator"):
        C.CSVLogger("x.csv", separator="::")


# -- LambdaCallback ----------------------------------------------------------------------------
def _small_model():
    import fastnn
    from fastnn import layers
    model = fastnn.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_lambda_callback_calls_the_functions_with_the_hooks_arguments():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 1))
    calls = []
    cb = C.LambdaCallback(
        on_train_begin=lambda logs: calls.append(("train_begin",)),
        on_epoch_begin=lambda epoch, logs: calls.append(("epoch_begin", epoch)),
        on_epoch_end=lambda epoch, logs: calls.append(("epoch_end", epoch, sorted(logs))),
        on_train_end=lambda logs: calls.append(("train_end",)),
        on_test_begin=lambda logs: calls.append(("test_begin",)))
    assert not C.CallbackList([cb]).requires_per_batch_calls("train")
    model = _small_model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb], validation_split=0.2)
    assert calls == [("train_begin",), ("epoch_begin", 0), ("test_begin",),
                     ("epoch_end", 0, ["loss", "val_loss"]), ("epoch_begin", 1), ("test_begin",),
                     ("epoch_end", 1, ["loss", "val_loss"]), ("train_end",)]


def test_lambda_callback_batch_functions_see_every_batch():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((40, 3)), rng.standard_normal((40, 1))
    seen = []
    cb = C.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
    assert C.CallbackList([cb]).requires_per_batch_calls("train")
    _small_model().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb])
    assert seen == [0, 1, 2, 3, 4] * 2
    legacy = []
    cb = C.LambdaCallback(on_batch_begin=lambda batch, logs: legacy.append(batch))
    assert C.CallbackList([cb]).requires_per_batch_calls("train")
    _small_model().fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[cb])
    assert legacy == [0, 1, 2, 3, 4]


def test_lambda_callback_refuses_unknown_hooks_and_non_functions():
    with pytest.raises(TypeError, match="unknown hook.*on_epoch_ends"):
        C.LambdaCallback(on_epoch_ends=print)
    with pytest.raises(TypeError, match="on_epoch_end must be callable"):
        C.LambdaCallback(on_epoch_end="print")


# -- ModelCheckpoint ---------------------------------------------------------------------------
def test_model_checkpoint_every_epoch_with_formatted_names(tmp_path):
    model = FakeModel()
    pattern = str(tmp_path / "ckpt" / "m-{epoch:02d}-{val_loss:.2f}.fnn")
    cb = C.ModelCheckpoint(pattern)
    run_fit(model, [cb], _val(0.5, 0.25))
    expected = [str(tmp_path / "ckpt" / "m-01-0.50.fnn"), str(tmp_path / "ckpt" / "m-02-0.25.fnn")]
    assert model.saved == expected == cb.saved
    assert all(os.path.exists(p) for p in expected)


def test_model_checkpoint_save_best_only(tmp_path, capsys):
    model = FakeModel()
    cb = C.ModelCheckpoint(str(tmp_path / "m-{epoch}.fnn"), save_best_only=True, verbose=1)
    run_fit(model, [cb], _val(0.5, 0.7, 0.4, 0.4))
    assert [os.path.basename(p) for p in model.saved] == ["m-1.fnn", "m-3.fnn"]
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from inf to 0.50000" in out
    assert "Epoch 2: val_loss did not improve from 0.50000" in out


def test_model_checkpoint_initial_value_threshold(tmp_path):
    model = FakeModel()
    cb = C.ModelCheckpoint(str(tmp_path / "m-{epoch}.fnn"), monitor="val_accuracy",
                           save_best_only=True, initial_value_threshold=0.8)
    run_fit(model, [cb], _val(0.5, 0.9, 0.85, key="val_accuracy"))
    assert [os.path.basename(p) for p in model.saved] == ["m-2.fnn"]


def test_model_checkpoint_save_freq_in_batches_counts_across_epochs(tmp_path):
    model = FakeModel()
    cb = C.ModelCheckpoint(str(tmp_path / "m-{epoch}-{batch}.fnn"), save_freq=3)
    run_fit(model, [cb], [{"loss": 1.0}] * 2, steps=4)
    # batches 1..8 overall: saves after the 3rd (epoch 1, batch 3) and 6th (epoch 2, batch 2)
    assert [os.path.basename(p) for p in model.saved] == ["m-1-3.fnn", "m-2-2.fnn"]


def test_model_checkpoint_save_weights_only(tmp_path):
    import fastnn
    build = _small_model
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    model = build()
    path = str(tmp_path / "w-{epoch}.weights")
    ends = []
    remember = C.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(model.get_weights()))
    cb = C.ModelCheckpoint(path, monitor="loss", save_weights_only=True)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[cb, remember])
    assert cb.saved == [str(tmp_path / "w-1.weights"), str(tmp_path / "w-2.weights")]
    for saved, expected in zip(cb.saved, ends):
        fresh = build()
        fresh.build((None, 3))
        fresh.load_weights(saved)
        for got, want in zip(fresh.get_weights(), expected):
            np.testing.assert_array_equal(got, want)
    # a weights file is not a model file
    with pytest.raises(ValueError):
        fastnn.models.load_model(cb.saved[0])
    with pytest.raises(TypeError, match="save_weights_only"):
        C.ModelCheckpoint("m.fnn", save_weights_only="yes")


def test_model_checkpoint_unknown_field(tmp_path):
    with pytest.raises(KeyError, match="val_auc"):
        run_fit(FakeModel(), [C.ModelCheckpoint(str(tmp_path / "{val_auc}.fnn"))], _val(1.0))


def test_model_checkpoint_bad_arguments():
    with pytest.raises(ValueError, match="save_freq"):
        C.ModelCheckpoint("m.fnn", save_freq=0)
    with pytest.raises(TypeError, match="save_freq"):
        C.ModelCheckpoint("m.fnn", save_freq="batch")
    with pytest.raises(TypeError, match="filepath"):
        C.ModelCheckpoint(None)
    # refused when made, not after the first epoch of training
    with pytest.raises(ValueError, match="not a valid format string"):
        C.ModelCheckpoint("m-{epoch.fnn")
    for pattern in ("m-{val_loss[0]}.fnn", "m-{epoch.__class__}.fnn", "m-{}.fnn"):
        with pytest.raises(ValueError, match="plain name"):
            C.ModelCheckpoint(pattern)


# -- ProgbarLogger ------------------------------------------------------------------------------
EPOCHS = [{"loss": 0.5, "accuracy": 0.25, "val_loss": 0.75, "val_accuracy": 0.0001},
          {"loss": 0.25, "accuracy": 0.5, "val_loss": 0.5, "val_accuracy": 0.125}]


def test_progbar_verbose_2_prints_one_line_per_epoch(capsys):
    run_fit(FakeModel(), [C.ProgbarLogger()], EPOCHS, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert re.fullmatch(r"Epoch 1/2 - \d+\.\ds - loss: 0\.5000 - accuracy: 0\.2500 - "
                        r"val_loss: 0\.7500 - val_accuracy: 1\.0000e-04", lines[0])
    assert lines[1].startswith("Epoch 2/2 - ")


def test_progbar_verbose_1_bar_reaches_the_end_with_final_logs():
    out = io.StringIO()
    run_fit(FakeModel(), [C.ProgbarLogger(file=out)], EPOCHS, steps=5, verbose=1,
            batch_logs=lambda e, b: {"loss": 0.1234})
    text = out.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "5/5" in text
    final = text.rstrip().split("\r")[-1]
    assert "Epoch 2/2" in final and "5/5" in final and "val_loss: 0.5000" in final


def test_progbar_chunked_reports_jump_to_the_last_batch():
    out = io.StringIO()
    bar = C.ProgbarLogger(file=out, mininterval=0.0)
    run_fit(FakeModel(), [bar], EPOCHS[:1], steps=100, verbose=1, report=[39, 79, 99])
    text = out.getvalue()
    assert "40/100" in text and "80/100" in text and "100/100" in text


def test_progbar_verbose_0_is_silent(capsys):
    run_fit(FakeModel(), [C.ProgbarLogger()], EPOCHS, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progbar_per_batch_calls_are_cheap():
    out = io.StringIO()
    bar = C.ProgbarLogger(file=out, mininterval=10.0)
    bar.set_params({"epochs": 1, "steps": 50_000, "verbose": 1})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    logs = {"loss": 0.5, "accuracy": 0.9}
    t0 = time.perf_counter()
    for b in range(50_000):
        bar.on_train_batch_end(b, logs)
    per_call = (time.perf_counter() - t0) / 50_000
    bar.on_epoch_end(0, logs)
    assert per_call < 5e-6, f"{per_call * 1e6:.2f} us per batch report"
    assert "50000/50000" in out.getvalue()


def test_progbar_evaluate_line_and_quiet_validation_inside_fit(capsys):
    bar = C.ProgbarLogger()
    cbs = C.CallbackList([bar], steps=3, verbose=2)
    cbs.on_test_begin()
    for b in range(3):
        cbs.on_test_batch_end(b, {"loss": 0.25})
    cbs.on_test_end({"loss": 0.25, "accuracy": 0.75})
    line = capsys.readouterr().out.strip()
    assert re.fullmatch(r"3/3 - \d+\.\ds - loss: 0\.2500 - accuracy: 0\.7500", line)
    cbs.on_train_begin()
    cbs.on_test_begin()
    cbs.on_test_end({"loss": 0.25})
    assert capsys.readouterr().out == ""


def test_resolve_verbose():
    class Tty(io.StringIO):
        def isatty(self):
            return True
    if "ipykernel" not in sys.modules:
        assert C.resolve_verbose("auto", io.StringIO()) == 2
    assert C.resolve_verbose("auto", Tty()) == 1
    assert [C.resolve_verbose(v) for v in (0, 1, 2, True, False)] == [0, 1, 2, 1, 0]
    assert C.resolve_verbose(np.int64(2)) == 2 and C.resolve_verbose(np.bool_(True)) == 1
    with pytest.raises(ValueError, match="verbose"):
        C.resolve_verbose(3)
    with pytest.raises(ValueError, match="verbose"):
        C.resolve_verbose("loud")
