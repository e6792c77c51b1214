"""Callbacks that change the optimizer's learning rate between epochs."""
from __future__ import annotations

import inspect
import math
import numbers

from fastnn._validation import check_float, check_int
from fastnn.callbacks._monitor import (check_mode, check_monitor, is_better, monitor_value,
                                       resolve_mode)
from fastnn.callbacks.base import Callback

__all__ = ["LearningRateScheduler", "ReduceLROnPlateau", "get_learning_rate", "set_learning_rate"]


def _optimizer(model, who):
    opt = getattr(model, "optimizer", None)
    if opt is None or not hasattr(opt, "learning_rate"):
        raise ValueError(f"{who} needs a compiled model whose optimizer has a learning_rate")
    return opt


def get_learning_rate(model, who="callback") -> float:
    """The learning rate the model's optimizer uses next, as a float."""
    opt = _optimizer(model, who)
    if hasattr(opt, "current_learning_rate"):
        return float(opt.current_learning_rate())
    return float(opt.learning_rate)


def set_learning_rate(model, value, who="callback"):
    """Set the model's optimizer's learning rate to the float ``value``."""
    _optimizer(model, who).learning_rate = value


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch from ``schedule(epoch, lr)``.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> new lr``, with ``epoch`` 0-based and ``lr`` the
        current rate; a one-argument ``schedule(epoch)`` also works (Keras's older API).
    verbose : int, default 0
        1 prints the rate set at each epoch.

    The rate of each epoch is also added to the epoch logs as ``'learning_rate'``
    (so it appears in the History). Per-step schedules belong in the optimizer
    instead: ``SGD(learning_rate=schedules.ExponentialDecay(...))``.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable as schedule(epoch, lr), got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self._takes_lr = self._accepts_two_arguments(schedule)

    @staticmethod
    def _accepts_two_arguments(fn):
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):  # builtins without a signature: try the modern API
            return True
        params = list(sig.parameters.values())
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            return True
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return len(positional) >= 2

    def on_epoch_begin(self, epoch, logs=None):
        if self._takes_lr:
            lr = self.schedule(epoch, get_learning_rate(self.model, "LearningRateScheduler"))
        else:
            lr = self.schedule(epoch)
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not math.isfinite(float(lr)) or lr < 0:
            raise ValueError(f"LearningRateScheduler: schedule({epoch}, ...) must return a finite "
                             f"float >= 0, got {lr!r}")
        set_learning_rate(self.model, float(lr), "LearningRateScheduler")
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model, "LearningRateScheduler")


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving.

    Keras's algorithm: after each epoch, an improvement (by more than
    ``min_delta``) resets the wait counter; otherwise, outside cool-down, the
    counter grows and on reaching ``patience`` the rate becomes
    ``max(lr * factor, min_lr)`` and a cool-down of ``cooldown`` epochs starts
    (during which the counter stays at 0).

    Parameters
    ----------
    monitor : str, default 'val_loss'
    factor : float, default 0.1
        In ``(0, 1)``.
    patience : int, default 10
    verbose : int, default 0
    mode : {'auto', 'min', 'max'}, default 'auto'
    min_delta : float, default 1e-4
    cooldown : int, default 0
    min_lr : float, default 0.0

    The rate is added to the epoch logs as ``'learning_rate'``.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        self.monitor = check_monitor(monitor)
        self.factor = check_float(factor, "factor", minimum=0.0, maximum=1.0, min_inclusive=False,
                                  max_inclusive=False)
        self.patience = check_int(patience, "patience", minimum=0)
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.mode = check_mode(mode)
        self.min_delta = abs(check_float(min_delta, "min_delta"))
        self.cooldown = check_int(cooldown, "cooldown", minimum=0)
        self.min_lr = check_float(min_lr, "min_lr", minimum=0.0)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.cooldown_counter = 0
        self.best = None
        self._direction = None

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if self._direction is None:
            self._direction = resolve_mode(self.monitor, self.mode, self.model, "ReduceLROnPlateau")
        lr = get_learning_rate(self.model, "ReduceLROnPlateau")
        if logs is not None:
            logs["learning_rate"] = lr
        current = monitor_value(logs, self.monitor, "ReduceLROnPlateau")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if is_better(current, self.best, self._direction, self.min_delta):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and lr > self.min_lr:
                new_lr = max(lr * self.factor, self.min_lr)
                set_learning_rate(self.model, new_lr, "ReduceLROnPlateau")
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                self.cooldown_counter = self.cooldown
                self.wait = 0
