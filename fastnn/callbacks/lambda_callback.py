"""LambdaCallback: a callback made of functions."""
from __future__ import annotations

from fastnn.callbacks.base import (_PREDICT_BATCH_HOOKS, _TEST_BATCH_HOOKS, _TRAIN_BATCH_HOOKS,
                                   Callback)

__all__ = ["LambdaCallback"]

_HOOKS = frozenset(name for name in vars(Callback) if name.startswith("on_"))


class LambdaCallback(Callback):
    """A callback whose hooks are the functions passed, with the hooks' arguments::

        LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))

    Parameters
    ----------
    on_epoch_begin, on_epoch_end : callable, optional
        ``f(epoch, logs)``.
    on_train_begin, on_train_end : callable, optional
        ``f(logs)``.
    on_train_batch_begin, on_train_batch_end : callable, optional
        ``f(batch, logs)``. Either makes ``fit`` report every batch (see
        :mod:`fastnn.callbacks.base`), which costs throughput on the compiled path.
    **hooks : callable
        Any other hook by its name (``on_test_begin``, ``on_predict_batch_end``, ...).
        Unknown names are a TypeError rather than a hook that is never called.
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None, **hooks):
        super().__init__()
        hooks.update(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end)
        unknown = sorted(set(hooks) - _HOOKS)
        if unknown:
            raise TypeError(f"LambdaCallback got unknown hook(s) {unknown}; hooks are "
                            f"{sorted(_HOOKS)}")
        self._given = set()
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"{name} must be callable, got {type(fn).__name__}")
            setattr(self, name, fn)
            self._given.add(name)

    def _implements_train_batch_hooks(self):
        return not self._given.isdisjoint(_TRAIN_BATCH_HOOKS)

    def _implements_test_batch_hooks(self):
        return not self._given.isdisjoint(_TEST_BATCH_HOOKS)

    def _implements_predict_batch_hooks(self):
        return not self._given.isdisjoint(_PREDICT_BATCH_HOOKS)
