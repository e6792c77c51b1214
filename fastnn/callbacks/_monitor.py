"""Shared by the callbacks that watch a logged quantity: is bigger better?"""
from __future__ import annotations

import math
import numbers
import warnings

__all__ = ["check_monitor", "check_mode", "resolve_mode", "monitor_value", "is_better"]

# Quantities where larger is better, by their name without the 'val_' prefix.
_MAXIMIZED = ("acc", "accuracy", "auc", "precision", "recall", "r2", "f1")
_MINIMIZED = ("loss", "error", "mse", "mae", "mape", "msle", "crossentropy", "hinge", "divergence")


def check_monitor(monitor) -> str:
    """The ``monitor`` argument: the key of the epoch logs to watch."""
    if not isinstance(monitor, str):
        raise TypeError(f"monitor must be a string, got {monitor!r}")
    return monitor


def check_mode(mode) -> str:
    """The ``mode`` argument: 'auto', 'min' or 'max'."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    return mode


def resolve_mode(monitor: str, mode: str, model=None, who: str = "callback") -> str:
    """``'min'`` or ``'max'`` for ``monitor``.

    ``mode='auto'`` asks the model's compiled metric (or weighted metric) of
    that name for its ``direction`` (``'up'``/``'down'``), then falls back on the name: losses and
    errors are minimised; accuracies, AUC, precision, recall and r2 maximised.
    A name that says neither is an error: pass ``mode='min'`` or ``'max'``.
    """
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    name = monitor[4:] if monitor.startswith("val_") else monitor
    # Weighted metrics are logged under their own name or, when a plain metric
    # has it, as 'weighted_<name>' (compile's _weighted_metric_keys).
    candidates = [(getattr(m, "name", None), m) for m in getattr(model, "compiled_metrics", None) or ()]
    candidates += zip(getattr(model, "_weighted_metric_keys", None) or (),
                      getattr(model, "compiled_weighted_metrics", None) or ())
    for key, metric in candidates:
        if key == name and getattr(metric, "direction", None) in ("up", "down"):
            return "max" if metric.direction == "up" else "min"
    lowered = name.lower()
    if "loss" in lowered:
        return "min"
    if any(word in lowered for word in _MAXIMIZED):
        return "max"
    if any(word in lowered for word in _MINIMIZED):
        return "min"
    raise ValueError(
        f"{who}: cannot tell whether {monitor!r} should be minimised or maximised; "
        f"pass mode='min' or mode='max'")


def monitor_value(logs, monitor: str, who: str):
    """``logs[monitor]`` as a float, or None with a warning naming the available keys."""
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(
            f"{who} is monitoring {monitor!r}, which is not in the logs; available: "
            f"{', '.join(sorted(logs or {})) or '(none)'}", RuntimeWarning, stacklevel=3)
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: logs[{monitor!r}] must be a number, got {value!r}") from None


def is_better(current: float, best, mode: str, min_delta: float) -> bool:
    """``current`` beats ``best`` by more than ``min_delta`` in direction ``mode``
    (``best`` None: anything beats it; NaN never does)."""
    if math.isnan(current):
        return False
    if best is None:
        return True
    if mode == "min":
        return current < best - min_delta
    return current > best + min_delta
