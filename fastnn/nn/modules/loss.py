"""Loss modules: each holds its ``reduction`` and calls :mod:`fastnn.nn.functional`.

``criterion(input, target)``: ``input`` a Tensor (or array), ``target`` a
Tensor, NumPy array or list.
"""
from __future__ import annotations

from fastnn.nn import functional as F
from fastnn.nn.modules.module import Module

__all__ = ["MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss"]


class _Loss(Module):
    _function = None

    def __init__(self, *, reduction="mean"):
        super().__init__()
        self.reduction = F._reduction(reduction)

    def forward(self, input, target):
        return type(self)._function(input, target, reduction=self.reduction)

    def extra_repr(self):
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error ``mean((input - target)^2)`` (``reduction``: 'mean', 'sum', 'none')."""

    _function = staticmethod(F.mse_loss)


class L1Loss(_Loss):
    """Mean absolute error ``mean(|input - target|)``."""

    _function = staticmethod(F.l1_loss)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from **logits** and class indices (PyTorch's semantics).

    ``input`` is (batch, classes) raw scores; ``target`` is (batch,) class
    indices, or (batch, classes) class probabilities. The softmax is part of
    the loss (fused and numerically stable), so the model must *not* end in a
    softmax: if every row of ``input`` already sums to 1, a ``UserWarning``
    points out the double softmax.
    """

    _function = staticmethod(F.cross_entropy)


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (after ``LogSoftmax``) and class indices."""

    _function = staticmethod(F.nll_loss)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1] (after a ``Sigmoid``)."""

    _function = staticmethod(F.binary_cross_entropy)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of ``sigmoid(input)``, computed stably from the logits."""

    _function = staticmethod(F.binary_cross_entropy_with_logits)
