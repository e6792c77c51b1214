"""TerminateOnNaN: stop as soon as the loss is NaN or infinite."""
from __future__ import annotations

import math

from fastnn.callbacks.base import Callback

__all__ = ["TerminateOnNaN"]


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite, saying where.

    Checks ``logs['loss']`` after each batch; the message names the epoch
    (1-based) and the batch (0-based, as passed to the hook) and is printed and
    kept in :attr:`message`. When ``fit`` reports per chunk of batches (see
    :mod:`fastnn.callbacks.base`), the loss in the logs is the running mean of
    the epoch, which stays non-finite once one batch was: the batch named is
    then the last of the chunk in which it happened.
    """

    supports_chunked_batches = True

    def __init__(self):
        super().__init__()
        self.message = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.message = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        # Also at the epoch's end, in case batch hooks were not reported.
        if self.message is None:
            self._check(None, logs)

    def _check(self, batch, logs):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        try:
            loss = float(loss)
        except (TypeError, ValueError):
            return
        if math.isfinite(loss):
            return
        where = f"Epoch {self._epoch + 1}" + (f", batch {batch}" if batch is not None else "")
        self.message = f"{where}: invalid loss {loss}, terminating training"
        print(self.message)
        self.model.stop_training = True
