"""Keras-style callbacks: hooks ``fit`` calls around epochs and batches.

``History`` (returned by ``fit``), ``ProgbarLogger`` (the progress display),
``EarlyStopping``, ``ModelCheckpoint``, ``TerminateOnNaN``, ``CSVLogger``,
``LearningRateScheduler``, ``ReduceLROnPlateau``; ``LambdaCallback`` makes one
of plain functions, or subclass ``Callback`` for your own. ``CallbackList`` is what ``fit`` uses to call them all; see
:mod:`fastnn.callbacks.base` for how ``fit`` reports batches when it runs
them in compiled chunks.

A model used with these callbacks provides ``stop_training``,
``get_weights()`` / ``set_weights()``, ``optimizer`` (with a settable
``learning_rate``) and ``save(path)``.
"""
from __future__ import annotations

from fastnn.callbacks.base import Callback, CallbackList
from fastnn.callbacks.csv_logger import CSVLogger
from fastnn.callbacks.early_stopping import EarlyStopping
from fastnn.callbacks.history import History
from fastnn.callbacks.lambda_callback import LambdaCallback
from fastnn.callbacks.learning_rate import LearningRateScheduler, ReduceLROnPlateau
from fastnn.callbacks.model_checkpoint import ModelCheckpoint
from fastnn.callbacks.progbar import ProgbarLogger, resolve_verbose
from fastnn.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = [
    "Callback", "CallbackList", "History", "ProgbarLogger", "EarlyStopping", "ModelCheckpoint",
    "TerminateOnNaN", "CSVLogger", "LearningRateScheduler", "ReduceLROnPlateau", "LambdaCallback",
    "resolve_verbose",
]
