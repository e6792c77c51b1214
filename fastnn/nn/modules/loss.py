"""Loss modules: each holds its ``reduction`` and calls :mod:`fastnn.nn.functional`.

``criterion(input, target)``: ``input`` a Tensor (or array), ``target`` a
Tensor, NumPy array or list.
"""
from __future__ import annotations

from fastnn.nn import functional as F
from fastnn.nn.modules.module import Module
from fastnn.tensor import Tensor

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


class _WeightedLoss(_Loss):
    """A loss over class indices with a ``weight`` per class and an ``ignore_index``."""

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean"):
        super().__init__(reduction=reduction)
        w = F._as_class_weight(weight)
        #: The class weights (a constant Tensor, as PyTorch's buffer), or None.
        self.weight = None if w is None else Tensor._wrap(w)
        self.ignore_index = F._check_ignore_index(ignore_index)

    def forward(self, input, target):
        return type(self)._function(input, target, self.weight, ignore_index=self.ignore_index,
                                    reduction=self.reduction)

    def extra_repr(self):
        parts = [] if self.ignore_index == -100 else [f"ignore_index={self.ignore_index}"]
        if self.reduction != "mean":
            parts.append(f"reduction={self.reduction!r}")
        return ", ".join(parts)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy from **logits** and class indices (PyTorch's semantics).

    ``input`` is (batch, classes) raw scores; ``target`` is (batch,) class
    indices, or (batch, classes) class probabilities. The softmax is part of
    the loss (fused and numerically stable), so the model must *not* end in a
    softmax: if every row of ``input`` already sums to 1, a ``UserWarning``
    points out the double softmax.

    Parameters
    ----------
    weight : array_like or Tensor, shape (classes,), optional
        A weight per class (>= 0).
    ignore_index : int, default -100
        Targets equal to it add nothing to the loss or to the 'mean' denominator.
    reduction : {'mean', 'sum', 'none'}, default 'mean'
    label_smoothing : float in [0, 1], default 0.0
        Mixes the targets with the uniform distribution over the classes.

    See :func:`fastnn.nn.functional.cross_entropy` for the exact formulas.
    Everything after ``weight`` is keyword-only (PyTorch's positional order
    runs through the deprecated ``size_average`` and ``reduce``).
    """

    _function = staticmethod(F.cross_entropy)

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(weight, ignore_index=ignore_index, reduction=reduction)
        self.label_smoothing = F._check_label_smoothing(label_smoothing)

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self):
        parts = [super().extra_repr()]
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing!r}")
        return ", ".join(p for p in parts if p)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (after ``LogSoftmax``) and class indices.

    ``weight``, ``ignore_index`` and ``reduction`` as in :class:`CrossEntropyLoss`.
    """

    _function = staticmethod(F.nll_loss)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1] (after a ``Sigmoid``)."""

    _function = staticmethod(F.binary_cross_entropy)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of ``sigmoid(input)``, computed stably from the logits."""

    _function = staticmethod(F.binary_cross_entropy_with_logits)
