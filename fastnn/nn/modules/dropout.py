"""``nn.Dropout``: inverted dropout, active only in training mode."""
from __future__ import annotations

from fastnn._validation import check_float
from fastnn.nn import functional as F
from fastnn.nn.modules.module import Module

__all__ = ["Dropout"]


class Dropout(Module):
    """Zero each element with probability ``p`` while training; scale the rest by 1/(1-p).

    In evaluation mode (``model.eval()``) it passes its input through.
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = check_float(p, "p", minimum=0.0, maximum=1.0)
        self.inplace = bool(inplace)

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
