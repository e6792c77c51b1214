"""Keras-style layers.

>>> from fastnn import layers
>>> layers.Dense(64, activation='relu', input_shape=(784,))
<Dense name='dense...', built=False>

``serialize(layer)`` gives ``{"class_name": ..., "config": {...}}`` (JSON-able);
``deserialize`` rebuilds a layer from it, for the classes of this package and
those passed explicitly in ``custom_objects`` only: a saved file names a class,
it never makes fastnn import code.
"""
from __future__ import annotations

from fastnn.layers.base import Layer, custom_objects_scope
from fastnn.layers.core import Activation, Dropout, Flatten, Input, InputLayer
from fastnn.layers.dense import Dense

__all__ = [
    "Layer", "Dense", "Activation", "Dropout", "Flatten", "Input", "InputLayer",
    "serialize", "deserialize", "get",
]

# The classes deserialize may instantiate.
_KNOWN = {cls.__name__: cls for cls in (Dense, Activation, Dropout, Flatten, InputLayer)}


def serialize(layer) -> dict:
    """``{"class_name": type name, "config": layer.get_config()}``."""
    if not isinstance(layer, Layer):
        raise TypeError(f"serialize expects a Layer, got {type(layer).__name__}")
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config, custom_objects=None) -> Layer:
    """A new (unbuilt) layer from :func:`serialize`'s output.

    Parameters
    ----------
    config : dict
        ``{"class_name": str, "config": dict}``.
    custom_objects : dict, optional
        Extra ``{class name: Layer subclass}`` entries the caller trusts.
    """
    if not isinstance(config, dict):
        raise TypeError(f"layer config must be a dict, got {type(config).__name__}")
    if set(config) - {"class_name", "config", "module", "registered_name"} or "class_name" not in config:
        raise ValueError(
            f"layer config must have the keys 'class_name' and 'config', got {sorted(config)}"
        )
    known = dict(_KNOWN)
    if custom_objects:
        if not isinstance(custom_objects, dict):
            raise TypeError("custom_objects must be a dict of {name: Layer subclass}")
        for name, cls in custom_objects.items():
            if isinstance(cls, type) and issubclass(cls, Layer):
                known[name] = cls
    class_name = config["class_name"]
    if not isinstance(class_name, str) or class_name not in known:
        from fastnn._validation import suggest
        raise ValueError(
            f"unknown layer class {class_name!r}; expected one of {sorted(known)}"
            f"{suggest(class_name, known)} (pass custom layers in custom_objects)"
        )
    layer_config = config.get("config", {})
    if not isinstance(layer_config, dict):
        raise TypeError(f"layer config['config'] must be a dict, got {type(layer_config).__name__}")
    with custom_objects_scope(custom_objects):
        return known[class_name].from_config(layer_config)


def get(identifier) -> Layer:
    """A layer from a Layer (returned as is), a config dict, or a class name
    whose constructor needs no arguments (``'flatten'``)."""
    if isinstance(identifier, Layer):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        from fastnn._validation import lookup
        cls = lookup("layer", identifier, {name.lower(): c for name, c in _KNOWN.items()})
        try:
            return cls()
        except TypeError:
            raise ValueError(
                f"layer {cls.__name__} needs arguments; create it as fastnn.layers.{cls.__name__}(...)"
            ) from None
    raise TypeError(f"expected a Layer, a config dict or a layer name, got {type(identifier).__name__}")
