"""The get / serialize / deserialize pattern shared by the Keras-style modules.

:mod:`fastnn.initializers`, :mod:`~fastnn.regularizers`, :mod:`~fastnn.constraints`,
:mod:`~fastnn.losses`, :mod:`~fastnn.metrics`, :mod:`~fastnn.optimizers` and
:mod:`fastnn.optimizers.schedules` each keep a :class:`Registry` of their classes.
An object is stored as ``{"class_name": type name, "config": obj.get_config()}``
(JSON-able) and rebuilt by looking the class name up in the registry and in the
classes the caller passes as ``custom_objects``; nothing named in a config is
ever imported.

Errors follow one rule, the layers' too: a config that is not a dict (or whose
``"config"`` entry is not one) is a ``TypeError``; a missing or unknown class
name, or arguments the class does not take, a ``ValueError``.
"""
from __future__ import annotations

from fastnn._validation import suggest

__all__ = ["Registry", "Configurable"]


def _freeze(value):
    """``value`` with lists and dicts turned into tuples, so that it can be hashed."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


class Configurable:
    """Equality, hashing, ``repr`` and ``from_config`` derived from ``get_config()``.

    Two objects are equal when they are of the same class with the same config,
    which is what a round trip through serialize / deserialize preserves.
    """

    def get_config(self) -> dict:
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self).__name__, _freeze(self.get_config())))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class Registry:
    """The classes a module can build from a name or a config, and how.

    Parameters
    ----------
    kind : str
        What the objects are, for messages: ``'loss'``, ``'constraint'``...
    base : type
        The base class; only its subclasses are taken from ``custom_objects``
        (one dict may then serve a whole model: layers, losses, metrics...).
    classes : iterable of type
        The classes a config may name (by ``__name__``, in any case).
    names : dict, optional
        Lower-case string identifiers for :meth:`class_for_name` (``'mse'``,
        ``'max_norm'``...), each mapped to a class built with its defaults.
    can_build : callable, optional
        ``can_build(cls)``: whether :meth:`resolve` may instantiate a class it is
        given (default: any subclass of ``base``); False for abstract ones.
    """

    def __init__(self, kind: str, base: type, classes, names=None, can_build=None):
        self.kind = kind
        self.base = base
        self.classes = {cls.__name__: cls for cls in classes}
        self.names = dict(names or {})
        self.can_build = can_build or (lambda cls: True)

    def custom_classes(self, custom_objects) -> dict:
        """The subclasses of ``base`` in ``custom_objects``, by lower-case name."""
        if custom_objects is None:
            return {}
        if not isinstance(custom_objects, dict):
            raise TypeError(
                f"custom_objects must be a dict {{name: class}} or None, "
                f"got {type(custom_objects).__name__}")
        return {name.lower(): obj for name, obj in custom_objects.items()
                if isinstance(name, str) and isinstance(obj, type) and issubclass(obj, self.base)}

    @staticmethod
    def _find(what: str, name, table: dict, hint: str = ""):
        if not isinstance(name, str):
            raise TypeError(f"{what} must be a string, got {type(name).__name__}")
        cls = table.get(name.lower())
        if cls is None:
            raise ValueError(
                f"unknown {what} {name!r}; expected one of {sorted(table)}{suggest(name, table)}{hint}")
        return cls

    def class_for_name(self, name: str, custom_objects=None) -> type:
        """The class a string identifier (``'mse'``, ``'Huber'``...) stands for."""
        return self._find(self.kind, name, {**self.names, **self.custom_classes(custom_objects)})

    def resolve(self, identifier, custom_objects=None):
        """The object an identifier stands for, or None if it is none of these forms:

        an instance of ``base`` (returned as is), a name (its class built with
        defaults), a subclass of ``base`` (built with defaults) or a config dict.
        The module's ``get`` handles None, callables and the error.
        """
        if isinstance(identifier, self.base):
            return identifier
        if isinstance(identifier, str):
            return self.class_for_name(identifier, custom_objects)()
        if isinstance(identifier, type) and issubclass(identifier, self.base) \
                and self.can_build(identifier):
            return identifier()
        if isinstance(identifier, dict):
            return self.deserialize(identifier, custom_objects)
        return None

    def serialize(self, obj) -> dict:
        """``{'class_name': type name, 'config': obj.get_config()}``."""
        return {"class_name": type(obj).__name__, "config": obj.get_config()}

    def deserialize(self, config, custom_objects=None, build=None):
        """Rebuild an object from :meth:`serialize`'s output.

        Parameters
        ----------
        config : dict
            ``{'class_name': str, 'config': dict}`` (other keys are ignored).
        custom_objects : dict, optional
            ``{class name: class}`` the caller trusts, besides the registry's classes.
        build : callable, optional
            ``build(cls, config_dict)``; default ``cls.from_config(config_dict)``.
        """
        if not isinstance(config, dict):
            raise TypeError(f"{self.kind} config must be a dict with 'class_name' and 'config', "
                            f"got {type(config).__name__}")
        if "class_name" not in config:
            raise ValueError(f"{self.kind} config must have a 'class_name' entry, "
                             f"got keys {sorted(config)}")
        table = {name.lower(): cls for name, cls in self.classes.items()}
        table.update(self.custom_classes(custom_objects))
        cls = self._find(f"{self.kind} class", config["class_name"], table,
                         " (pass classes of your own in custom_objects)")
        inner = config.get("config")
        if inner is None:
            inner = {}
        if not isinstance(inner, dict):
            raise TypeError(f"{self.kind} config['config'] must be a dict, got {type(inner).__name__}")
        try:
            return cls.from_config(dict(inner)) if build is None else build(cls, dict(inner))
        except TypeError as exc:  # an argument the class does not take, or of the wrong type
            raise ValueError(f"invalid config for {cls.__name__}: {exc}") from None
