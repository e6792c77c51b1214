"""ProgbarLogger: the progress display of ``fit``, ``evaluate`` and ``predict``.

``verbose=1``: a live tqdm bar per epoch with the running loss and metrics,
left on screen at the end of the epoch with the final values (validation
included). ``verbose=2``: one line per epoch, no bar::

    Epoch 3/5 - 1.2s - loss: 0.1234 - accuracy: 0.9612 - val_loss: 0.1502 - val_accuracy: 0.9550

``verbose='auto'`` (see :func:`resolve_verbose`) is 1 on a terminal or in a
notebook and 2 otherwise, so log files get lines rather than bar redraws.

How fit reports progress: ``on_train_batch_end(batch, logs)`` with ``batch``
the 0-based index of the last batch done in this epoch and ``logs`` the
running means. It may be called once per batch or once per chunk of batches
(``batch`` then jumps); the bar advances to ``batch + 1`` either way. The bar is
redrawn at most every ``mininterval`` seconds and otherwise the call costs one
clock read, so reporting every batch does not slow training.
``set_params({'epochs': E, 'steps': S, 'verbose': v})`` gives the bar its length.
"""
from __future__ import annotations

import numbers
import sys
import time

import numpy as np

from fastnn.callbacks.base import Callback

__all__ = ["ProgbarLogger", "resolve_verbose", "format_logs"]


def resolve_verbose(verbose, file=None) -> int:
    """``verbose`` as 0, 1 or 2; ``'auto'`` is 1 on a terminal or in a notebook, else 2.

    Parameters
    ----------
    verbose : {'auto', 0, 1, 2} or bool
    file : text stream, optional
        Where output goes (default ``sys.stdout``), checked for being a terminal.
    """
    if verbose == "auto" and isinstance(verbose, str):
        stream = sys.stdout if file is None else file
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return 1 if tty or "ipykernel" in sys.modules else 2
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    if isinstance(verbose, numbers.Integral) and verbose in (0, 1, 2):
        return int(verbose)
    raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")


def format_value(value) -> str:
    """Keras's number format: 4 decimals, or scientific notation below 1e-3."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_logs(logs) -> str:
    """``'loss: 0.1234 - accuracy: 0.9612'`` (keys in the order of ``logs``)."""
    return " - ".join(f"{k}: {format_value(v)}" for k, v in (logs or {}).items())


class ProgbarLogger(Callback):
    """Progress display for fit / evaluate / predict (added by ``fit`` when verbose > 0).

    Parameters
    ----------
    verbose : {0, 1, 2}, optional
        Default: ``params['verbose']`` set by ``fit``.
    file : text stream, optional
        Default: ``sys.stdout`` at the time of writing.
    mininterval : float, default 0.1
        Minimum seconds between redraws of the bar.
    """

    supports_chunked_batches = True

    def __init__(self, verbose=None, file=None, mininterval=0.1):
        super().__init__()
        self._verbose_arg = None if verbose is None else resolve_verbose(verbose, file)
        self.verbose = 1 if self._verbose_arg is None else self._verbose_arg
        self.file = file
        self.mininterval = float(mininterval)
        self.epochs = None
        self.steps = None
        self._bar = None
        self._in_fit = False
        self._seen = 0
        self._next_draw = 0.0
        self._start = 0.0
        self._epoch = 0

    def set_params(self, params):
        super().set_params(params)
        if self._verbose_arg is None:
            self.verbose = resolve_verbose(self.params.get("verbose", 1), self.file)
        self.epochs = self.params.get("epochs")
        self.steps = self.params.get("steps")

    def _out(self):
        return sys.stdout if self.file is None else self.file

    # -- the bar ------------------------------------------------------------------------
    def _open_bar(self, desc):
        from tqdm import tqdm
        self._close_bar()
        self._seen = 0
        self._bar = tqdm(total=self.steps, desc=desc, unit="step", file=self._out(), leave=True,
                         mininterval=self.mininterval, dynamic_ncols=True)
        self._next_draw = time.monotonic() + self.mininterval

    def _advance(self, batch, logs, force=False):
        self._seen = max(self._seen, batch + 1)
        if self._bar is None:
            return
        now = time.monotonic()
        if not force and now < self._next_draw:
            return
        self._next_draw = now + self.mininterval
        if logs:
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
        delta = self._seen - self._bar.n
        if delta > 0:
            self._bar.update(delta)
        else:
            self._bar.refresh()

    def _close_bar(self, logs=None):
        if self._bar is None:
            return
        if logs:
            self._bar.set_postfix_str(format_logs(logs), refresh=False)
        delta = self._seen - self._bar.n
        if delta > 0:
            self._bar.update(delta)
        self._bar.close()
        self._bar = None

    def _line(self, head, logs):
        elapsed = time.monotonic() - self._start
        parts = [head, f"{elapsed:.1f}s"] if head else [f"{elapsed:.1f}s"]
        text = format_logs(logs)
        if text:
            parts.append(text)
        print(" - ".join(parts), file=self._out(), flush=True)

    # -- fit ----------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._start = time.monotonic()
        self._seen = 0
        if self.verbose == 1:
            self._open_bar(f"Epoch {epoch + 1}/{self.epochs}" if self.epochs else f"Epoch {epoch + 1}")

    def on_train_batch_end(self, batch, logs=None):
        if self.verbose == 1:
            self._advance(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.verbose == 1:
            self._close_bar(logs or {})
        elif self.verbose == 2:
            head = f"Epoch {epoch + 1}/{self.epochs}" if self.epochs else f"Epoch {epoch + 1}"
            self._line(head, logs)

    def on_train_end(self, logs=None):
        self._close_bar()
        self._in_fit = False

    # -- evaluate / predict (outside fit: validation inside fit stays quiet) --------------
    def _begin(self, desc):
        if self._in_fit:
            return
        self._start = time.monotonic()
        self._seen = 0
        if self.verbose == 1:
            self._open_bar(desc)

    def _end(self, logs):
        if self._in_fit:
            return
        if self.verbose == 1:
            self._close_bar(logs or {})
        elif self.verbose == 2:
            steps = self.steps if self.steps is not None else self._seen
            self._line(f"{steps}/{steps}", logs)

    def on_test_begin(self, logs=None):
        self._begin("Evaluate")

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit and self.verbose == 1:
            self._advance(batch, logs)

    def on_test_end(self, logs=None):
        self._end(logs)

    def on_predict_begin(self, logs=None):
        self._begin("Predict")

    def on_predict_batch_end(self, batch, logs=None):
        if not self._in_fit and self.verbose == 1:
            self._advance(batch, None)

    def on_predict_end(self, logs=None):
        self._end(None)
