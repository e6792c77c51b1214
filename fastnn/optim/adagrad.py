"""Adagrad (``torch.optim.Adagrad``), on the backend's ``adagrad_update``."""
from __future__ import annotations

import numpy as np

from fastnn._validation import check_float
from fastnn.optim.optimizer import Optimizer, check_lr

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Per-element step sizes shrinking with the accumulated squared gradients.

    ``s += g^2``, ``param -= clr * g / (sqrt(s) + eps)`` with
    ``clr = lr / (1 + (t - 1) lr_decay)`` at step ``t``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float, default 1e-2
    lr_decay : float, default 0
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
        The starting value of ``s``.
    eps : float, default 1e-10
    """

    _buffer_names = ("sum",)

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def _check_group(self, group):
        group["lr"] = check_lr(group["lr"])
        group["lr_decay"] = check_float(group["lr_decay"], "lr_decay", minimum=0.0)
        group["weight_decay"] = check_float(group["weight_decay"], "weight_decay", minimum=0.0)
        group["initial_accumulator_value"] = check_float(
            group["initial_accumulator_value"], "initial_accumulator_value", minimum=0.0)
        group["eps"] = check_float(group["eps"], "eps", minimum=0.0)

    def _init_state(self, p, group):
        return {"step": 0, "sum": np.full_like(p.data, group["initial_accumulator_value"])}

    def _step_group(self, ops, group):
        lr, lr_decay, weight_decay, eps = (group["lr"], group["lr_decay"], group["weight_decay"],
                                           group["eps"])
        for p, grad, state, views in self._with_gradients(group):
            state["step"] = step = state["step"] + 1
            ops.adagrad_update(views["param"], grad, views["sum"], lr, eps, step,
                               lr_decay=lr_decay, weight_decay=weight_decay)
