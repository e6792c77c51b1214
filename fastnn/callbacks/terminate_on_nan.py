"""TerminateOnNaN: stop as soon as the loss is NaN or infinite."""
from __future__ import annotations

import math

from fastnn.callbacks.base import Callback

__all__ = ["TerminateOnNaN"]


class TerminateOnNaN(Callback):
    """Stop training when the loss becomes NaN or infinite, saying where.

    Checks ``logs['loss']`` after each batch; the message names the epoch
    (1-based) and the batch (0-based, as passed to the hook) and is printed and
    kept in :attr:`message`. When ``fit`` runs chunks of batches in one compiled
    call (see :mod:`fastnn.callbacks.base`), a chunk ends right after the batch
    that makes the epoch's running loss non-finite, so training stops after the
    same batch, with the same weights, as on the per-op loop.
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
