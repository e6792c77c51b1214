"""Validation of everything that enters a public entry point.

One module, so that every API answers bad input the same way: a ``TypeError``
for the wrong kind of thing, a ``ValueError`` for the wrong value, each naming
the argument, what was expected and what was given. Nothing unvalidated
reaches a kernel.
"""
from __future__ import annotations

import difflib
import numbers

import numpy as np

__all__ = [
    "suggest", "lookup", "as_float_array", "as_label_array", "check_positive",
    "check_int", "check_float", "check_probability", "check_same_length", "resolve_dtype",
]


def suggest(name, choices) -> str:
    """A '; did you mean ...?' suffix for an unknown ``name``, or ''."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name.lower(), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def lookup(kind: str, name, table: dict):
    """``table[name]`` for a string identifier, or a ValueError with a suggestion."""
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a string or an object, got {type(name).__name__}")
    key = name.lower()
    if key not in table:
        raise ValueError(
            f"unknown {kind} {name!r}; expected one of {sorted(table)}{suggest(key, table)}"
        )
    return table[key]


def resolve_dtype(dtype=None) -> np.dtype:
    """``dtype`` as a float NumPy dtype (float32/float64), default ``config.floatx()``."""
    from fastnn import config
    if dtype is None:
        dtype = config.floatx()
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dt.name}")
    return dt


def _to_array(x, name):
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__array__") and not isinstance(x, (list, tuple)):
        return np.asarray(x)
    if isinstance(x, (list, tuple)):
        try:
            return np.asarray(x)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"{name}: could not make an array ({exc}); is it ragged?") from None
    if isinstance(x, numbers.Number) and not isinstance(x, bool):
        return np.asarray(x)
    raise TypeError(f"{name} must be an array-like of numbers, got {type(x).__name__}")


def as_float_array(x, name: str, *, dtype=None, ndim=None, min_ndim=None, allow_empty=False,
                   allow_nonfinite=False, copy=False) -> np.ndarray:
    """Validate ``x`` and return it as a C-contiguous float array.

    Ints, bools and uint8 are converted to ``dtype`` (default floatx); object,
    string, complex and datetime data are refused with ``TypeError``; NaN/inf,
    empty arrays and wrong ranks with ``ValueError``.
    """
    arr = _to_array(x, name)
    kind = arr.dtype.kind
    if kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (float, int or bool), got dtype {arr.dtype}"
        )
    dt = resolve_dtype(dtype)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions, got shape {arr.shape}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); expected at least one sample")
    # np.asarray(order="C") keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
    out = np.array(arr, dtype=dt, order="C", copy=True) if copy else np.asarray(arr, dtype=dt, order="C")
    if not allow_nonfinite and kind == "f" and not np.isfinite(out).all():
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return out


def as_label_array(y, name: str, *, num_classes=None) -> np.ndarray:
    """Validate integer class labels (ints, or floats with integral values)."""
    arr = _to_array(y, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one label")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite labels")
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class labels, got fractional values")
    labels = arr.astype(np.int64)
    if labels.min() < 0:
        raise ValueError(f"{name} has negative label {int(labels.min())}; labels must be >= 0")
    if num_classes is not None and labels.max() >= num_classes:
        raise ValueError(
            f"{name} has label {int(labels.max())} but the model has {num_classes} classes "
            f"(labels must be in [0, {num_classes - 1}])"
        )
    return np.ascontiguousarray(labels)


def check_int(value, name: str, *, minimum=None, maximum=None, allow_none=False):
    """``value`` as an int within bounds, or a TypeError/ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_float(value, name: str, *, minimum=None, maximum=None, min_inclusive=True,
                max_inclusive=True, allow_none=False):
    """``value`` as a finite float within bounds, or a TypeError/ValueError naming ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (not min_inclusive and value == minimum)):
        raise ValueError(f"{name} must be {'>=' if min_inclusive else '>'} {minimum}, got {value}")
    if maximum is not None and (value > maximum or (not max_inclusive and value == maximum)):
        raise ValueError(f"{name} must be {'<=' if max_inclusive else '<'} {maximum}, got {value}")
    return value


def check_positive(value, name: str):
    """A float > 0."""
    return check_float(value, name, minimum=0.0, min_inclusive=False)


def check_probability(value, name: str, *, allow_one=False):
    """A float in [0, 1) (or [0, 1] with ``allow_one``)."""
    return check_float(value, name, minimum=0.0, maximum=1.0, max_inclusive=allow_one)


def check_same_length(**arrays):
    """Raise ValueError unless all given arrays have the same first dimension."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"mismatched number of samples: {desc}")
