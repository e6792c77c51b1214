"""AdamW: Adam with decoupled weight decay (``torch.optim.AdamW``)."""
from __future__ import annotations

from fastnn.optim.adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    """Adam whose weight decay shrinks the parameters directly: ``param *= 1 - lr * weight_decay``
    before each Adam step (Loshchilov & Hutter), instead of adding an L2 term to the gradient.

    Parameters are those of :class:`Adam`; ``weight_decay`` defaults to 1e-2 (PyTorch's).
    """

    _decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad)
