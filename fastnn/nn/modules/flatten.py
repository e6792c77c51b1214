"""``nn.Flatten``: merge the dimensions after the batch dimension."""
from __future__ import annotations

from fastnn._validation import check_int
from fastnn.nn import functional as F
from fastnn.nn.modules.module import Module

__all__ = ["Flatten"]


class Flatten(Module):
    """Merge dimensions ``start_dim..end_dim`` (default: all but the batch dimension)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim = check_int(start_dim, "start_dim")
        self.end_dim = check_int(end_dim, "end_dim")

    def forward(self, input):
        return F._as_input(input).flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
