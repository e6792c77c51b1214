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
    """A '; did you mean ...?' suffix for an unknown ``name``, or ''.

    Names are compared without regard to case (``'dnse'`` finds ``'Dense'``); the
    suggestion is spelled as in ``choices``.
    """
    if not isinstance(name, str):
        return ""
    spelled = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(name.lower(), list(spelled), n=1, cutoff=0.6)
    return f"; did you mean {spelled[close[0]]!r}?" if close else ""


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


def _float_dtype(value, what: str) -> np.dtype:
    """``value`` (a dtype, a type or a name) as native float32 or float64.

    ``what`` starts the error messages (``"dtype"``, ``"set_floatx: value"``).
    """
    # np.dtype(None) is float64 and np.dtype(np.float32(1)) is float32: neither
    # is a way of naming a dtype, so refuse them before NumPy guesses.
    if value is None or not isinstance(value, (str, bytes, type, np.dtype)):
        raise TypeError(f"{what} must be 'float32' or 'float64', got {value!r}")
    try:
        dt = np.dtype(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be 'float32' or 'float64', got {value!r}") from None
    # '>f4' is float32 in the other byte order: the same numbers, so give the native type.
    if dt.kind != "f" or dt.itemsize not in (4, 8) or dt.fields is not None:
        raise ValueError(f"{what} must be 'float32' or 'float64', got {value!r} ({dt})")
    return np.dtype(np.float32 if dt.itemsize == 4 else np.float64)


def resolve_dtype(dtype=None) -> np.dtype:
    """``dtype`` as a float NumPy dtype (float32/float64), default ``config.floatx()``."""
    from fastnn import config
    if dtype is None:
        dtype = config.floatx()
    return _float_dtype(dtype, "dtype")


def _to_array(x, name):
    """``x`` as a NumPy array (any dtype), or a TypeError/ValueError naming ``name``."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)) or hasattr(x, "__array__") or (
            isinstance(x, numbers.Number) and not isinstance(x, bool)):
        try:
            return np.asarray(x)
        except ValueError as exc:
            hint = "; is it ragged?" if "inhomogeneous" in str(exc) else ""
            raise ValueError(f"{name}: could not make an array ({exc}){hint}") from None
        except (TypeError, RuntimeError, OverflowError) as exc:
            # e.g. a torch tensor that requires grad refuses __array__ with RuntimeError
            raise TypeError(f"{name}: could not make an array of {type(x).__name__} ({exc})") from None
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
    # A longdouble beyond float64's range overflows to inf: the finiteness check
    # below reports it, so NumPy's overflow warning would only repeat it.
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.array(arr, dtype=dt, order="C", copy=True) if copy else np.asarray(arr, dtype=dt, order="C")
    out = _aligned(out)
    if not allow_nonfinite and kind == "f" and not _all_finite(out):
        if np.isfinite(arr).all():  # finite in, infinite out: the cast overflowed
            raise ValueError(f"{name} has values too large for {dt.name} "
                             f"(largest magnitude {float(np.abs(arr).max()):g})")
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return out


def _aligned(a: np.ndarray) -> np.ndarray:
    """``a``, or an aligned copy of it. A contiguous array can still start at an
    address that is not a multiple of its item size (``np.frombuffer(buf,
    offset=4)``); compiled kernels take only aligned data."""
    return a if a.flags.aligned else a.copy()


def _all_finite(a) -> bool:
    """True if every value of the float array ``a`` is finite.

    A sum is NaN or infinite whenever one of its terms is, so a finite sum settles
    the question without the array-sized boolean temporary of ``np.isfinite(a)``
    (47 MB for MNIST's training set); only a non-finite sum, which finite terms can
    also reach by overflowing, needs the exact element-wise check. The compiled
    check, when built, reads the exponent bits instead (no sum, no temporary).
    """
    global _compiled_all_finite
    if _compiled_all_finite is None:
        try:
            from fastnn._kernels import all_finite as _compiled_all_finite
        except ImportError:  # reference-only installation
            _compiled_all_finite = False
    if _compiled_all_finite:
        threads = 1
        if np.size(a) >= _PARALLEL_SCAN_SIZE:
            from fastnn import config
            threads = config.threads_for(np.size(a))
        verdict = _compiled_all_finite(a, threads)
        if verdict is not None:
            return verdict
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(a)
    return bool(np.isfinite(total)) or bool(np.isfinite(a).all())


# fastnn._kernels.all_finite once looked up; False when the module is not built.
_compiled_all_finite = None
# Below this many values one thread scans faster than a team starts.
_PARALLEL_SCAN_SIZE = 1 << 18


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
    # Bounds are checked before the cast to int64: 1e20 or a uint64 >= 2**63 would
    # wrap around (to a "negative" label) instead of being reported as too large.
    lowest, highest = int(arr.min()), int(arr.max())
    if lowest < 0:
        raise ValueError(f"{name} has negative label {lowest}; labels must be >= 0")
    if num_classes is not None and highest >= num_classes:
        raise ValueError(
            f"{name} has label {highest} but the model has {num_classes} classes "
            f"(labels must be in [0, {num_classes - 1}])"
        )
    if highest > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has label {highest}, too large for a class index")
    return _aligned(np.ascontiguousarray(arr, dtype=np.int64))


def check_bool(value, name: str) -> bool:
    """``value`` as a bool (Python or NumPy), or a TypeError naming ``name``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


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
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range, e.g. 10**400
        raise ValueError(f"{name} must be finite, got an integer too large for a float") from None
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
    """Raise ValueError unless all given arrays have the same first dimension.

    ``None`` values are skipped; a scalar (or 0-d array) is a ValueError and a
    thing without a length a TypeError, each naming its argument.
    """
    lengths = {}
    for key, value in arrays.items():
        if value is None:
            continue
        shape = getattr(value, "shape", None)
        if isinstance(shape, tuple):
            if not shape:
                raise ValueError(f"{key} must have one entry per sample, got a scalar")
            lengths[key] = shape[0]
            continue
        try:
            lengths[key] = len(value)
        except TypeError:
            raise TypeError(
                f"{key} must be an array-like with one entry per sample, got {type(value).__name__}"
            ) from None
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise ValueError(f"mismatched number of samples: {desc}")
