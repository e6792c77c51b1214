"""ModelCheckpoint: save the model during training."""
from __future__ import annotations

import math
import os
import string

from fastnn._validation import check_float, check_int
from fastnn.callbacks._monitor import (check_mode, check_monitor, is_better, monitor_value,
                                       resolve_mode)
from fastnn.callbacks.base import Callback

__all__ = ["ModelCheckpoint"]


def _check_pattern(filepath):
    """Refuse, before training starts, a ``filepath`` whose fields cannot be filled:
    bad ``{}`` syntax, or a field that is not a plain name (``{val_loss[0]}``,
    ``{epoch.__class__}``); the names themselves are checked against the logs at the
    first save."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(filepath) if name is not None]
    except ValueError as exc:
        raise ValueError(f"filepath {filepath!r} is not a valid format string: {exc}") from None
    for name in fields:
        if not name.isidentifier():
            raise ValueError(f"filepath {filepath!r}: the field {{{name}}} must be a plain name "
                             "such as {epoch} or {val_loss}")


class ModelCheckpoint(Callback):
    """Call ``model.save(path)`` (or ``model.save_weights(path)``) after every epoch, or
    every ``save_freq`` batches.

    Parameters
    ----------
    filepath : str or os.PathLike
        May hold ``str.format`` fields filled from the epoch (1-based), the batch
        (1-based, with an int ``save_freq``) and the logs, e.g.
        ``'ckpt/model-{epoch:02d}-{val_loss:.2f}.fnn'``. Missing directories are created.
    monitor : str, default 'val_loss'
        Quantity that decides what "best" is, with ``save_best_only``.
    verbose : int, default 0
        1 prints a line for each save (and each skipped save with ``save_best_only``).
    save_best_only : bool, default False
        Save only when ``monitor`` improves on the best value so far.
    save_weights_only : bool, default False
        Save the weights alone (:meth:`Sequential.save_weights`; read back with
        ``load_weights``) rather than the whole model with its optimizer state.
    mode : {'auto', 'min', 'max'}, default 'auto'
    save_freq : 'epoch' or int, default 'epoch'
        An int saves every that many batches (``fit`` then reports every batch).
    initial_value_threshold : float, optional
        With ``save_best_only``, a value the first save must beat.
    """

    save_weights_only = False  # the default, also for callbacks pickled before it existed

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        try:
            self.filepath = os.fspath(filepath)
        except TypeError:
            raise TypeError(f"filepath must be a path, got {type(filepath).__name__}") from None
        if not isinstance(self.filepath, str) or not self.filepath:
            raise ValueError(f"filepath must be a non-empty path, got {filepath!r}")
        _check_pattern(self.filepath)
        self.monitor = check_monitor(monitor)
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.save_best_only = bool(save_best_only)
        if not isinstance(save_weights_only, bool):
            raise TypeError(f"save_weights_only must be True or False, got {save_weights_only!r}")
        self.save_weights_only = save_weights_only
        self.mode = check_mode(mode)
        if save_freq != "epoch":
            save_freq = check_int(save_freq, "save_freq", minimum=1)
        self.save_freq = save_freq
        self.initial_value_threshold = check_float(initial_value_threshold, "initial_value_threshold",
                                                   allow_none=True)
        self.best = self.initial_value_threshold
        self._direction = None
        self._current_epoch = 0
        self._batches_since_save = 0
        self._last_batch = -1
        self.saved = []  # paths written, in order

    def _implements_train_batch_hooks(self):
        return self.save_freq != "epoch"

    def on_train_begin(self, logs=None):
        self._batches_since_save = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch
        self._last_batch = -1

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches_since_save += batch - self._last_batch
        self._last_batch = batch
        if self._batches_since_save >= self.save_freq:
            self._batches_since_save = 0
            self._save(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _path(self, epoch, batch, logs):
        fields = dict(logs or {})
        fields["epoch"] = epoch + 1
        if batch is not None:
            fields["batch"] = batch + 1
        try:
            return self.filepath.format(**fields)
        except KeyError as exc:
            raise KeyError(
                f"ModelCheckpoint filepath {self.filepath!r} names {exc}, which is not in the logs; "
                f"available: {sorted(fields)}") from None

    def _save(self, epoch, batch, logs):
        path = self._path(epoch, batch, logs)
        if self.save_best_only:
            if self._direction is None:
                self._direction = resolve_mode(self.monitor, self.mode, self.model, "ModelCheckpoint")
            current = monitor_value(logs, self.monitor, "ModelCheckpoint")
            if current is None:
                return
            if not is_better(current, self.best, self._direction, 0.0):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self._fmt(self.best)}")
                return
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self._fmt(self.best)} to "
                      f"{current:.5f}, saving model to {path}")
            self.best = current
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.saved.append(path)

    def _fmt(self, best):
        if best is None:
            return "inf" if self._direction == "min" else "-inf"
        return f"{best:.5f}" if math.isfinite(best) else str(best)
