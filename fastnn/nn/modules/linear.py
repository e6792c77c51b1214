"""``nn.Linear``: y = x W^T + b, with PyTorch's weight shape and initialisation."""
from __future__ import annotations

import math

import numpy as np

from fastnn import utils
from fastnn._validation import check_int, resolve_dtype
from fastnn.layers.base import _aligned_empty
from fastnn.nn import functional as F
from fastnn.nn.modules.module import Module, Parameter

__all__ = ["Linear", "Identity"]


class Linear(Module):
    """A fully connected layer: ``y = x @ weight.T + bias``.

    Parameters
    ----------
    in_features : int
        Size of each input sample.
    out_features : int
        Size of each output sample.
    bias : bool
        Learn an additive bias.
    dtype : str or numpy dtype, optional
        float32 or float64 (default ``config.floatx()``).

    Attributes
    ----------
    weight : Parameter, shape (out_features, in_features)
        Initialised from U(-1/sqrt(in_features), 1/sqrt(in_features)): PyTorch's
        ``kaiming_uniform_(a=sqrt(5))``, whose gain sqrt(2 / (1 + 5)) times
        sqrt(3 / fan_in) is exactly 1/sqrt(fan_in).
    bias : Parameter, shape (out_features,), or None
        Initialised from the same uniform distribution.

    Notes
    -----
    The weight is stored column-major, so ``weight.T`` is the C-contiguous
    (in, out) kernel the backend's fused dense op reads and writes: the forward
    and the backward are one backend call each, without a transposing copy.
    The shape, indexing and values are PyTorch's; only ``weight.data.flags``
    shows the layout.
    """

    def __init__(self, in_features, out_features, bias=True, dtype=None):
        super().__init__()
        self.in_features = check_int(in_features, "in_features", minimum=1)
        self.out_features = check_int(out_features, "out_features", minimum=1)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool, got {bias!r}")
        dtype = resolve_dtype(dtype)
        # (out, in) as PyTorch shapes it, stored as the (in, out) row-major matrix the
        # GEMM reads (a Fortran-order view), 64-byte aligned like Keras-style weights
        self.weight = Parameter(_aligned_empty((self.in_features, self.out_features), dtype).T)
        if bias:
            self.bias = Parameter(_aligned_empty((self.out_features,), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw new weights and bias from U(-1/sqrt(in), 1/sqrt(in)) with fastnn's generator."""
        bound = 1.0 / math.sqrt(self.in_features)
        rng = utils.rng()
        self.weight.data[...] = rng.uniform(-bound, bound, size=self.weight.data.shape)
        if self.bias is not None:
            self.bias.data[...] = rng.uniform(-bound, bound, size=self.bias.data.shape)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input
