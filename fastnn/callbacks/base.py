"""The callback base class and the list that dispatches to callbacks.

How ``fit`` reports batches
===========================
``fit`` calls ``on_train_batch_begin(batch, logs)`` / ``on_train_batch_end(batch, logs)``
with ``batch`` the 0-based index of the batch within the epoch, and batch-end
``logs`` holding the running means of the loss and metrics over the epoch so far.

When no callback needs to see every batch, ``fit`` may run many batches in one
compiled call (a *chunk*) and report only once per chunk: ``on_train_batch_begin``
with the index of the chunk's first batch, ``on_train_batch_end`` with the index
of its last batch (so ``batch`` may jump, e.g. 0, 63, 127, ...). A callback that
copes with this sets the class attribute ``supports_chunked_batches = True``
(:class:`History`, :class:`ProgbarLogger` and :class:`TerminateOnNaN` do).

:meth:`CallbackList.requires_per_batch_calls` tells ``fit`` whether it must call
the hooks after every batch: true when some callback without
``supports_chunked_batches`` implements a batch hook of that mode. A callback
"implements" a hook when its class overrides it (or the legacy
``on_batch_begin``/``on_batch_end``); a callback whose need depends on its
arguments overrides ``_implements_train_batch_hooks()`` (as Keras's do), e.g.
``ModelCheckpoint`` needs batches only when ``save_freq`` is an int.
"""
from __future__ import annotations

__all__ = ["Callback", "CallbackList"]

_TRAIN_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")
_TEST_BATCH_HOOKS = ("on_test_batch_begin", "on_test_batch_end")
_PREDICT_BATCH_HOOKS = ("on_predict_batch_begin", "on_predict_batch_end")


class Callback:
    """Base class: override the hooks you need (Keras's hook names and arguments).

    Attributes
    ----------
    model
        The model being trained, set by :meth:`set_model`. Callbacks use
        ``model.stop_training``, ``model.get_weights()`` / ``set_weights()``,
        ``model.optimizer`` (``learning_rate``, ``current_learning_rate()``) and
        ``model.save(path)``.
    params : dict
        Set by :meth:`set_params`: ``{'epochs': int, 'steps': int, 'verbose': int}``
        (``steps`` = batches per epoch, or per evaluate / predict call).
    supports_chunked_batches : bool
        Whether the batch hooks tolerate being called once per chunk of batches
        (see the module docstring). Default False.
    """

    supports_chunked_batches = False

    def __init__(self):
        self.model = None
        self.params = {}

    def set_params(self, params):
        self.params = dict(params or {})

    def set_model(self, model):
        self.model = model

    # batch-level hooks (on_train_batch_* default to the legacy on_batch_*, as in Keras)
    def on_batch_begin(self, batch, logs=None):
        """Legacy alias of :meth:`on_train_batch_begin`."""

    def on_batch_end(self, batch, logs=None):
        """Legacy alias of :meth:`on_train_batch_end`."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        pass

    def on_test_batch_end(self, batch, logs=None):
        pass

    def on_predict_batch_begin(self, batch, logs=None):
        pass

    def on_predict_batch_end(self, batch, logs=None):
        pass

    # epoch- and run-level hooks
    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_test_begin(self, logs=None):
        pass

    def on_test_end(self, logs=None):
        pass

    def on_predict_begin(self, logs=None):
        pass

    def on_predict_end(self, logs=None):
        pass

    # which batch hooks this callback really uses
    def _overrides(self, names):
        cls = type(self)
        return any(getattr(cls, n) is not getattr(Callback, n) for n in names)

    def _implements_train_batch_hooks(self):
        return self._overrides(_TRAIN_BATCH_HOOKS)

    def _implements_test_batch_hooks(self):
        return self._overrides(_TEST_BATCH_HOOKS)

    def _implements_predict_batch_hooks(self):
        return self._overrides(_PREDICT_BATCH_HOOKS)


_MODES = ("train", "test", "predict")


class CallbackList:
    """Calls each hook on every callback, in order.

    Parameters
    ----------
    callbacks : list of Callback, optional
    add_history : bool
        Append a :class:`History` unless one is in ``callbacks``.
    add_progbar : bool
        Append a :class:`ProgbarLogger` unless one is in ``callbacks``.
    model : optional
        Passed to every callback's ``set_model``.
    **params
        Passed to every callback's ``set_params`` (``epochs``, ``steps``, ``verbose``).

    As in Keras, the default History and ProgbarLogger come after the user's
    callbacks, so they see what those add to the epoch logs (e.g. the
    ``learning_rate`` key of ``ReduceLROnPlateau``).
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        if callbacks is None:
            callbacks = []
        elif isinstance(callbacks, Callback):
            callbacks = [callbacks]
        try:
            callbacks = list(callbacks)
        except TypeError:
            raise TypeError(f"callbacks must be a list of Callback objects, got {type(callbacks).__name__}") from None
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks[{i}] must be a fastnn.callbacks.Callback, got {type(cb).__name__}")
        self.callbacks = callbacks
        from fastnn.callbacks.history import History
        from fastnn.callbacks.progbar import ProgbarLogger
        self.history = next((cb for cb in callbacks if isinstance(cb, History)), None)
        self.progbar = next((cb for cb in callbacks if isinstance(cb, ProgbarLogger)), None)
        if self.history is None and add_history:
            self.history = History()
            self.callbacks.append(self.history)
        if self.progbar is None and add_progbar:
            self.progbar = ProgbarLogger()
            self.callbacks.append(self.progbar)
        self.model = None
        self.params = {}
        if model is not None:
            self.set_model(model)
        if params:
            self.set_params(params)

    def append(self, callback):
        if not isinstance(callback, Callback):
            raise TypeError(f"callback must be a fastnn.callbacks.Callback, got {type(callback).__name__}")
        self.callbacks.append(callback)
        if self.model is not None:
            callback.set_model(self.model)
        if self.params:
            callback.set_params(self.params)

    def set_model(self, model):
        self.model = model
        for cb in self.callbacks:
            cb.set_model(model)

    def set_params(self, params):
        self.params = dict(params or {})
        for cb in self.callbacks:
            cb.set_params(self.params)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    # -- what fit needs to know ---------------------------------------------------------
    def _implementing(self, mode):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        return [cb for cb in self.callbacks if getattr(cb, f"_implements_{mode}_batch_hooks")()]

    def has_batch_hooks(self, mode="train") -> bool:
        """True if some callback wants batch-level calls of ``mode`` at all
        (per batch or per chunk)."""
        return bool(self._implementing(mode))

    def requires_per_batch_calls(self, mode="train") -> bool:
        """True if some callback must see *every* batch of ``mode`` ('train', 'test'
        or 'predict'); False means ``fit`` may run fused chunks and report per chunk."""
        return any(not cb.supports_chunked_batches for cb in self._implementing(mode))

    # -- dispatch ----------------------------------------------------------------------
    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs)
