"""Central finite differences in float64, for checking analytic gradients.

>>> from gradcheck import numerical_gradient, assert_gradient_close
>>> num = numerical_gradient(lambda x: float(np.sum(x ** 3)), x)
>>> assert_gradient_close(3 * x ** 2, num)

The central difference (f(x + h e_i) - f(x - h e_i)) / 2h has truncation error
O(h^2 f''') and rounding error O(eps |f| / h); h = 1e-6 balances them at about
1e-10 in float64, four orders below the rtol of 1e-6 the tests ask for.
Points must stay at least h away from kinks (relu at 0, clipping bounds).
"""
from __future__ import annotations

import numpy as np

__all__ = ["numerical_gradient", "assert_gradient_close", "rounding_error", "RTOL", "ATOL"]

RTOL = 1e-6
ATOL = 1e-9


def numerical_gradient(f, x, h=1e-6):
    """d f / d x by central differences; ``f`` maps a float64 array to a float.

    ``x`` is perturbed in place one element at a time and restored exactly.
    """
    x = np.asarray(x)
    if x.dtype != np.float64:
        raise TypeError(f"finite differences need float64 input, got {x.dtype}")
    grad = np.zeros_like(x)
    flat_x = x.reshape(-1)  # a view: x is contiguous
    flat_g = grad.reshape(-1)
    for i in range(flat_x.size):
        original = flat_x[i]
        flat_x[i] = original + h
        f_plus = float(f(x))
        flat_x[i] = original - h
        f_minus = float(f(x))
        flat_x[i] = original
        flat_g[i] = (f_plus - f_minus) / (2 * h)
    return grad


def rounding_error(value, h=1e-6, ulps=16):
    """Bound on the rounding error of a central difference of a function whose
    value is about ``value``: each evaluation is off by a few ulps of |f| (a
    float64 sum of many terms), divided by 2h. It matters when |f| is large and
    the gradient small: |f| = 11.7 with entries of 1e-4 put the numeric gradient
    2e-9 off an analytic one that larger steps confirm."""
    return ulps * np.finfo(np.float64).eps * max(abs(float(value)), 1.0) / (2 * h)


def assert_gradient_close(analytic, numeric, rtol=RTOL, atol=ATOL, what="gradient"):
    """Assert analytic == numeric within ``rtol`` (relative to the largest entry) and ``atol``."""
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    assert analytic.shape == numeric.shape, f"{what}: shape {analytic.shape} != {numeric.shape}"
    scale = max(float(np.max(np.abs(numeric), initial=0.0)), 1e-3)
    err = float(np.max(np.abs(analytic - numeric), initial=0.0))
    assert err <= atol + rtol * scale, (
        f"{what}: max |analytic - numeric| = {err:.3e} > {atol:.0e} + {rtol:.0e} * {scale:.3e}"
    )
