"""Gradient clipping between ``backward()`` and ``step()`` (``torch.nn.utils``).

::

    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    optimizer.step()

A step of gradient descent is ``-lr * g``; when a batch produces an exploding
gradient, that one step can throw the weights far away. Clipping bounds it:
:func:`clip_grad_norm_` rescales all gradients together so that their joint norm
is at most ``max_norm`` (the direction is kept); :func:`clip_grad_value_` clamps
each element to ``[-clip_value, clip_value]`` (the direction may change).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastnn import backends
from fastnn._validation import check_bool, check_float
from fastnn.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]


def _tensors(parameters, name="parameters"):
    if isinstance(parameters, Tensor):
        return [parameters]
    try:
        tensors = list(parameters)
    except TypeError:
        raise TypeError(f"{name} must be a Tensor or an iterable of Tensors, "
                        f"got {type(parameters).__name__}") from None
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name}[{i}] must be a Tensor, got {type(t).__name__}")
    return tensors


def _grads(parameters):
    return [t.grad.data for t in _tensors(parameters) if t.grad is not None]


def _norm_type(norm_type):
    """``norm_type`` as a float: a number, inf / -inf, or 'inf' / '-inf' (as PyTorch)."""
    if isinstance(norm_type, str):
        table = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
        if norm_type.strip().lower() not in table:
            raise ValueError(f"norm_type must be a number, 'inf' or '-inf', got {norm_type!r}")
        return table[norm_type.strip().lower()]
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real):
        raise TypeError(f"norm_type must be a number, got {norm_type!r}")
    norm_type = float(norm_type)
    if math.isnan(norm_type) or norm_type < 0 and norm_type != -math.inf:
        raise ValueError(f"norm_type must be >= 0, inf or -inf, got {norm_type}")
    return norm_type


def _total_norm(grads, norm_type):
    """PyTorch's joint norm: the ``norm_type``-norm of the gradients' own norms."""
    if norm_type == math.inf:
        return max(float(np.max(np.abs(g))) if g.size else 0.0 for g in grads)
    if norm_type == -math.inf:
        return min(float(np.min(np.abs(g))) if g.size else math.inf for g in grads)
    if norm_type == 0.0:  # each gradient's count of non-zeros, then the count of non-zero counts
        return float(sum(1 for g in grads if np.count_nonzero(g)))
    if norm_type == 2.0:
        return backends.get().global_norm(grads)
    return sum(float(np.sum(np.abs(g) ** norm_type)) for g in grads) ** (1.0 / norm_type)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    """Scale the gradients of ``parameters`` in place so that their joint norm is at most
    ``max_norm``; returns the norm before clipping (a scalar Tensor).

    As PyTorch: the joint norm is the ``norm_type``-norm of the gradients' norms
    (``inf`` or ``'inf'``: the largest absolute value, ``-inf`` the smallest, 0 the
    count of non-zero gradients), and every gradient is multiplied by
    ``min(1, max_norm / (norm + 1e-6))`` (NaN if the norm is NaN: the gradients
    then become NaN rather than pass unclipped). ``foreach`` is accepted and ignored.
    """
    max_norm = check_float(max_norm, "max_norm", minimum=0.0)
    norm_type = _norm_type(norm_type)
    error_if_nonfinite = check_bool(error_if_nonfinite, "error_if_nonfinite")
    grads = _grads(parameters)
    if not grads:
        return Tensor._wrap(np.zeros((), np.float32))
    dtype = np.result_type(*grads)
    total = _total_norm(grads, norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite, "
            "so it cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`")
    coef = max_norm / (total + 1e-6)
    if not math.isnan(coef):  # min(1, nan) would be 1: PyTorch's clamp keeps the NaN
        coef = min(1.0, coef)
    for g in grads:
        g *= g.dtype.type(coef)
    return Tensor._wrap(np.asarray(total, dtype=dtype))


def clip_grad_value_(parameters, clip_value, foreach=None):
    """Clamp every gradient element of ``parameters`` to [-clip_value, clip_value], in place."""
    clip_value = check_float(clip_value, "clip_value", minimum=0.0)
    grads = _grads(parameters)
    if grads:
        backends.get().clip_by_value(grads, clip_value)


def parameters_to_vector(parameters):
    """All parameters flattened into one 1-D Tensor (a copy), in order."""
    tensors = _tensors(parameters)
    if not tensors:
        raise ValueError("parameters_to_vector needs at least one parameter")
    return Tensor._wrap(np.concatenate([t.data.reshape(-1) for t in tensors]))


def vector_to_parameters(vec, parameters):
    """Copy the 1-D ``vec`` back into ``parameters`` (the inverse of
    :func:`parameters_to_vector`), in place."""
    data = vec.data if isinstance(vec, Tensor) else np.asarray(vec)
    if data.ndim != 1:
        raise TypeError(f"expected vec to be a 1-D Tensor, got shape {data.shape}")
    tensors = _tensors(parameters)
    total = sum(t.data.size for t in tensors)
    if data.size != total:
        raise ValueError(f"vec has {data.size} values, the parameters hold {total}")
    offset = 0
    for t in tensors:
        t.data[...] = data[offset:offset + t.data.size].reshape(t.data.shape)
        offset += t.data.size
