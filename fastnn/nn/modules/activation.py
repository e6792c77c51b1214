"""Activation layers: each calls the matching :mod:`fastnn.nn.functional` function."""
from __future__ import annotations

from fastnn._validation import check_float, lookup
from fastnn.nn import functional as F
from fastnn.nn.modules.module import Module

__all__ = ["ReLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "GELU", "ELU", "LeakyReLU", "Softplus",
           "SELU"]


class ReLU(Module):
    """max(x, 0). ``inplace`` is accepted for compatibility and has no effect."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input):
        return F.relu(input)


class Sigmoid(Module):
    """1 / (1 + e^-x)."""

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    """Hyperbolic tangent."""

    def forward(self, input):
        return F.tanh(input)


def _check_dim(dim):
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
        raise TypeError(f"dim must be an int or None, got {dim!r}")
    return dim


class Softmax(Module):
    """Softmax along ``dim`` (for a batch of rows: ``dim=1``)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = _check_dim(dim)

    def forward(self, input):
        return F.softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """Log-softmax along ``dim``."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = _check_dim(dim)

    def forward(self, input):
        return F.log_softmax(input, self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class GELU(Module):
    """x * Phi(x); ``approximate='tanh'`` for the tanh approximation."""

    def __init__(self, approximate="none"):
        super().__init__()
        lookup("approximate", approximate, {"none": 0, "tanh": 1})
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class ELU(Module):
    """x for x > 0, alpha (e^x - 1) otherwise."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha = check_float(alpha, "alpha")

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class LeakyReLU(Module):
    """x for x > 0, negative_slope x otherwise (default slope 0.01, PyTorch's)."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope = check_float(negative_slope, "negative_slope")

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}"


class Softplus(Module):
    """``log(1 + e^(beta x)) / beta``; ``x`` where ``beta x > threshold``."""

    # the defaults, also for modules pickled before Softplus took arguments
    beta = 1.0
    threshold = 20.0

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = check_float(beta, "beta")
        self.threshold = check_float(threshold, "threshold")

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class SELU(Module):
    """``scale * elu(x, alpha)`` with SELU's constants. ``inplace`` has no effect."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = bool(inplace)

    def forward(self, input):
        return F.selu(input)
