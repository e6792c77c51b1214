"""``fastnn.save`` / ``fastnn.load``: state dicts to a file and back, as ``torch.save`` /
``torch.load`` are used, without pickle.

::

    fastnn.save(model.state_dict(), "net.pt")
    model.load_state_dict(fastnn.load("net.pt"))
    fastnn.save({"model": model.state_dict(), "optim": optimizer.state_dict(), "epoch": 3},
                "checkpoint.pt")

What can be saved: nested dicts (any keys of the kinds below), lists, tuples,
strings, ints, floats, bools, None, NumPy arrays and scalars, and Tensors (a
``Parameter`` comes back as a plain Tensor holding the same values). That covers
``Module.state_dict()``, ``Optimizer.state_dict()`` and scheduler state dicts.

The file is the zip container of :mod:`fastnn.models.saving` (format
``"fastnn-object"``): a manifest with the SHA-256 of every member, the structure
as JSON with each array replaced by a reference, and the arrays in the raw tensor
format. Loading parses JSON and raw bytes only, so a file can never run code
(``weights_only`` is accepted and always effectively True). Saving to a path is
atomic; a file object is written as it is given.
"""
from __future__ import annotations

import json
import math
import numbers
import os

import numpy as np

from fastnn.models import saving
from fastnn.tensor import Tensor

__all__ = ["save", "load"]

FORMAT_NAME = "fastnn-object"
_STRUCTURE = "object.json"
_TENSORS = "arrays.tensors"
_KEY = "__fastnn__"  # marks the encoded containers and arrays in the JSON


def _encode(obj, arrays, where):
    """``obj`` as JSON-able data; arrays go into ``arrays`` under their reference."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, numbers.Integral) and not isinstance(obj, np.generic):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {_KEY: "float", "value": repr(obj)}
    if isinstance(obj, (Tensor, np.ndarray, np.generic)):
        kind = "tensor" if isinstance(obj, Tensor) else ("array" if isinstance(obj, np.ndarray)
                                                          else "scalar")
        data = obj.data if isinstance(obj, Tensor) else np.asarray(obj)
        name = f"a{len(arrays)}"
        arrays[name] = data
        return {_KEY: kind, "name": name}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if type(obj) is list else {_KEY: "tuple", "items": items}
    if isinstance(obj, dict):
        return {_KEY: "dict", "items": [[_encode(k, arrays, f"{where} key {k!r}"),
                                         _encode(v, arrays, f"{where}[{k!r}]")]
                                        for k, v in obj.items()]}
    raise TypeError(f"save: cannot store {where} of type {type(obj).__name__} (state dicts hold "
                    "dicts, lists, tuples, numbers, strings, None, arrays and Tensors)")


def _decode(data, arrays, where):
    if isinstance(data, list):
        return [_decode(v, arrays, where) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(_KEY)
    if kind in ("tensor", "array", "scalar"):
        name = data.get("name")
        if name not in arrays:
            raise ValueError(f"{where}: the structure refers to a missing array {name!r}")
        value = arrays[name]
        return Tensor._wrap(value) if kind == "tensor" else value if kind == "array" else value[()]
    if kind == "float":
        return float(data["value"])
    if kind == "tuple":
        return tuple(_decode(v, arrays, where) for v in data["items"])
    if kind == "dict":
        out = {}
        for pair in data["items"]:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError(f"{where}: corrupt structure (a dict entry is not a pair)")
            key = _decode(pair[0], arrays, where)
            try:
                out[key] = _decode(pair[1], arrays, where)
            except TypeError:  # an unhashable key
                raise ValueError(f"{where}: corrupt structure (unhashable dict key)") from None
        return out
    raise ValueError(f"{where}: corrupt structure (unknown entry {kind!r})")


def _file(f, argument="f"):
    if isinstance(f, (str, os.PathLike)):
        return saving._as_path(f, argument)
    if hasattr(f, "write") or hasattr(f, "read"):
        return f
    raise TypeError(f"{argument} must be a path or a binary file object, got {type(f).__name__}")


def save(obj, f) -> None:
    """Save ``obj`` (a state dict, or any nesting of the types listed in the module
    docstring) to ``f``, a path or a writable binary file object."""
    target = _file(f)
    arrays = {}
    structure = _encode(obj, arrays, "obj")
    members = {_STRUCTURE: json.dumps(structure).encode("utf-8"),
               _TENSORS: saving.encode_tensors(arrays)}
    saving._write_archive(target, members, FORMAT_NAME)


def load(f, map_location=None, weights_only=True, **kwargs):
    """Load what :func:`save` wrote to ``f`` (a path or a readable binary file object).

    ``map_location`` may be None or ``'cpu'`` (arrays live in main memory);
    ``weights_only`` is accepted for PyTorch code: nothing in a file is ever executed.
    Raises ValueError for a file that is not one, corrupt or modified.
    """
    source = _file(f)
    if map_location not in (None, "cpu"):
        raise ValueError(f"map_location must be None or 'cpu' (fastnn runs on the CPU), "
                         f"got {map_location!r}")
    if not isinstance(weights_only, bool):
        raise TypeError(f"weights_only must be True or False, got {weights_only!r}")
    if kwargs:
        raise TypeError(f"load() got unexpected keyword arguments {sorted(kwargs)}")
    where = "<file object>" if hasattr(source, "read") else str(source)
    _, members = saving._read_archive(source, FORMAT_NAME, "file written by fastnn.save")
    if set(members) != {_STRUCTURE, _TENSORS}:
        raise ValueError(f"{where}: expected members {[_STRUCTURE, _TENSORS]}, got {sorted(members)}")
    arrays = saving.decode_tensors(members[_TENSORS], f"{where}:{_TENSORS}")
    arrays.pop("__metadata__", None)
    structure = saving._parse_json(members[_STRUCTURE], f"{where}:{_STRUCTURE}")
    return _decode(structure, arrays, where)
