"""RMSprop (``torch.optim.RMSprop``), on the backend's ``rmsprop_update``."""
from __future__ import annotations

import numpy as np

from fastnn._validation import check_float
from fastnn.optim.optimizer import Optimizer, check_bool, check_lr

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """Divide each gradient by a running root mean square of its recent values.

    ``s = alpha s + (1 - alpha) g^2``, ``param -= lr * g / (sqrt(s) + eps)``;
    ``centered`` subtracts the square of the running mean of ``g`` from ``s``;
    ``momentum`` accumulates ``g / (sqrt(s) + eps)`` in a buffer first.

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float, default 1e-2
    alpha : float, default 0.99
    eps : float, default 1e-8
    weight_decay : float, default 0
    momentum : float, default 0
    centered : bool, default False
    """

    _buffer_names = ("square_avg", "momentum_buffer", "grad_avg")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def _check_group(self, group):
        group["lr"] = check_lr(group["lr"])
        # above 1 the average of g^2 goes negative and the step NaN (PyTorch takes it)
        group["alpha"] = check_float(group["alpha"], "alpha", minimum=0.0, maximum=1.0)
        group["eps"] = check_float(group["eps"], "eps", minimum=0.0)
        group["weight_decay"] = check_float(group["weight_decay"], "weight_decay", minimum=0.0)
        group["momentum"] = check_float(group["momentum"], "momentum", minimum=0.0)
        group["centered"] = check_bool(group["centered"], "centered")

    def _init_state(self, p, group):
        state = {"step": 0, "square_avg": np.zeros_like(p.data)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = np.zeros_like(p.data)
        if group["centered"]:
            state["grad_avg"] = np.zeros_like(p.data)
        return state

    def _step_group(self, ops, group):
        lr, alpha, eps, weight_decay = group["lr"], group["alpha"], group["eps"], group["weight_decay"]
        momentum, centered = group["momentum"], group["centered"]
        for p, grad, state, views in self._with_gradients(group):
            if (momentum > 0 and "momentum_buffer" not in views) or (centered and "grad_avg" not in views):
                # options switched on after some steps: their buffers start at zero, as in PyTorch
                if momentum > 0:
                    state.setdefault("momentum_buffer", np.zeros_like(p.data))
                if centered:
                    state.setdefault("grad_avg", np.zeros_like(p.data))
                self._views.pop(p, None)
                views = self._flat_views(p)
            state["step"] += 1
            ops.rmsprop_update(views["param"], grad, views["square_avg"], views.get("momentum_buffer"),
                               views.get("grad_avg"), lr, alpha, eps, momentum=momentum,
                               centered=centered, weight_decay=weight_decay)
