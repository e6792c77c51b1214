"""EarlyStopping: stop when a monitored quantity stops improving."""
from __future__ import annotations

from fastnn._validation import check_float, check_int
from fastnn.callbacks._monitor import (check_mode, check_monitor, is_better, monitor_value,
                                       resolve_mode)
from fastnn.callbacks.base import Callback

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved for ``patience`` epochs.

    Follows Keras 3's algorithm: after each epoch (from ``start_from_epoch`` on)
    the wait counter grows by one, and resets to 0 when the value beats the best
    so far by more than ``min_delta`` (and beats ``baseline``, if given);
    training stops when the counter reaches ``patience`` (never after the first
    epoch). ``model.stop_training`` is set; ``fit`` finishes the epoch and stops.

    ``restore_best_weights=True`` sets the model back to the weights of the best
    epoch when training ends, *whether or not it stopped early* — so a run that
    uses all its epochs still ends on its best epoch. (Keras 3 does the same;
    tf.keras 2 restored only on an early stop.)

    Parameters
    ----------
    monitor : str, default 'val_loss'
        Key of the epoch logs to watch.
    min_delta : float, default 0
        Improvements smaller than this (in absolute value) do not count.
    patience : int, default 0
        Epochs without improvement before stopping.
    verbose : int, default 0
        1 prints a line when stopping and when restoring weights.
    mode : {'auto', 'min', 'max'}, default 'auto'
        Whether smaller or larger is better; 'auto' infers it from the name.
    baseline : float, optional
        The wait counter only resets on values that also beat this.
    restore_best_weights : bool, default False
    start_from_epoch : int, default 0
        Epochs of warm-up during which the quantity is not watched.

    Attributes
    ----------
    stopped_epoch : int
        The epoch (0-based) at which training was stopped; 0 if it was not.
    best : float or None
    best_epoch : int
    wait : int
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = check_monitor(monitor)
        self.min_delta = abs(check_float(min_delta, "min_delta"))
        self.patience = check_int(patience, "patience", minimum=0)
        self.verbose = check_int(verbose, "verbose", minimum=0)
        self.mode = check_mode(mode)
        self.baseline = check_float(baseline, "baseline", allow_none=True)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = check_int(start_from_epoch, "start_from_epoch", minimum=0)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None
        self._direction = None

    def on_train_begin(self, logs=None):
        self._reset()  # an instance may be reused across fits

    def on_epoch_end(self, epoch, logs=None):
        if self._direction is None:
            self._direction = resolve_mode(self.monitor, self.mode, self.model, "EarlyStopping")
        current = monitor_value(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Until something improves, the first watched epoch is the best one.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if is_better(current, self.best, self._direction, self.min_delta):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or is_better(current, self.baseline, self._direction, self.min_delta):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)
