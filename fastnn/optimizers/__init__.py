"""Keras-style optimizers: ``fastnn.optimizers.Adam(learning_rate=1e-3)`` or the name ``'adam'``.

=========  ====================================================================
name       class (Keras defaults)
=========  ====================================================================
'sgd'      ``SGD(learning_rate=0.01, momentum=0.0, nesterov=False)``
'adam'     ``Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False)``
'adamw'    ``AdamW(learning_rate=0.001, weight_decay=0.004, ...)``
'rmsprop'  ``RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False)``
'adagrad'  ``Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7)``
=========  ====================================================================

Every optimizer also takes ``weight_decay`` (decoupled), ``clipnorm``,
``clipvalue`` and ``global_clipnorm``; a learning rate may be a float or a
schedule from :mod:`fastnn.optimizers.schedules`. Each update rule is a
single backend op shared with the PyTorch-style :mod:`fastnn.optim`.
"""
from __future__ import annotations

from fastnn._serialization import Registry
from fastnn.optimizers import schedules
from fastnn.optimizers.adagrad import Adagrad
from fastnn.optimizers.adam import Adam, AdamW
from fastnn.optimizers.base import Optimizer
from fastnn.optimizers.rmsprop import RMSprop
from fastnn.optimizers.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "schedules",
           "get", "serialize", "deserialize"]

# Lower-case names ('sgd', 'adam', ...) and class names ('SGD', 'Adam', ...) both work.
_REGISTRY = Registry("optimizer", Optimizer, (SGD, Adam, AdamW, RMSprop, Adagrad),
                     {cls.__name__.lower(): cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad)})


def serialize(optimizer: Optimizer) -> dict:
    """``{"class_name": ..., "config": ...}`` (JSON-able) for an optimizer."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastnn.optimizers.Optimizer, got {type(optimizer).__name__}")
    return _REGISTRY.serialize(optimizer)


def deserialize(config: dict, custom_objects=None) -> Optimizer:
    """Rebuild an optimizer from :func:`serialize`'s output.

    Only the optimizers of this package (and Optimizer subclasses passed in
    ``custom_objects``, a dict ``name -> class``) can be built; nothing named in
    ``config`` is imported. ``custom_objects`` also serves a learning-rate
    schedule of your own stored in the config.
    """
    return _REGISTRY.deserialize(config, custom_objects,
                                 build=lambda cls, inner: cls.from_config(inner, custom_objects))


def get(identifier, custom_objects=None) -> Optimizer:
    """An optimizer from a name (``'adam'``), a :func:`serialize` dict or an optimizer object.

    A name gives a new optimizer with Keras's default arguments; an object is
    returned as is. ``custom_objects`` (``{name: Optimizer subclass}``) adds
    classes of your own for names and dicts.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects)
    if isinstance(identifier, str):
        return _REGISTRY.class_for_name(identifier, custom_objects)()
    hint = ""
    if hasattr(identifier, "step") and hasattr(identifier, "zero_grad"):
        hint = ("; this looks like a PyTorch-style fastnn.optim optimizer, which drives "
                "fastnn.nn modules — Keras-style models take fastnn.optimizers")
    raise TypeError(
        f"optimizer must be a name such as 'adam', a config dict or a fastnn.optimizers.Optimizer, "
        f"got {type(identifier).__name__}{hint}")
