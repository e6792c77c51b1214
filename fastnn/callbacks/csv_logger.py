"""CSVLogger: one CSV row per epoch."""
from __future__ import annotations

import csv
import os

from fastnn.callbacks.base import Callback

__all__ = ["CSVLogger"]


class CSVLogger(Callback):
    """Write the epoch logs to a CSV file: a header, then ``epoch`` (0-based) and
    the logged values, one row per epoch.

    Columns are ``epoch`` then the keys of the first epoch's logs, sorted (a key
    missing from a later epoch is written as ``NA``). Floats are written with
    full precision (``repr``). The file is flushed after every row and closed
    when training ends.

    Parameters
    ----------
    filename : str or os.PathLike
    separator : str, default ','
    append : bool, default False
        Append to an existing file (no second header if it already has one).
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        try:
            self.filename = os.fspath(filename)
        except TypeError:
            raise TypeError(f"filename must be a path, got {type(filename).__name__}") from None
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"separator must be a single character, got {separator!r}")
        self.sep = separator
        self.append = bool(append)
        self.keys = None
        self._file = None
        self._writer = None
        self._write_header = True

    def on_train_begin(self, logs=None):
        self.keys = None
        self._writer = None
        self._write_header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename, encoding="utf-8") as f:
                self._write_header = not f.readline()
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._file is None:  # used outside fit's on_train_begin
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
        if self._writer is None:
            self._writer = csv.writer(self._file, delimiter=self.sep, lineterminator="\n")
            if self._write_header:
                self._writer.writerow(["epoch", *self.keys])
        self._writer.writerow([epoch, *(self._value(logs.get(k, "NA")) for k in self.keys)])
        self._file.flush()

    @staticmethod
    def _value(v):
        # NumPy scalars first: np.float64 is a float whose repr is 'np.float64(0.5)'.
        if hasattr(v, "item") and getattr(v, "ndim", None) == 0:
            v = v.item()
        if isinstance(v, float):
            return repr(v)
        return v

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
        self._file = None
        self._writer = None
