"""Stochastic gradient descent, with momentum and Nesterov momentum (``torch.optim.SGD``)."""
from __future__ import annotations

import numpy as np

from fastnn._validation import check_float
from fastnn.optim.optimizer import Optimizer, check_bool, check_lr

__all__ = ["SGD"]


class SGD(Optimizer):
    """Gradient descent: ``param -= lr * g``.

    With momentum ``mu``, ``g`` is the buffer ``b = mu b + (1 - dampening) g``
    (``b = g`` on the first step); Nesterov uses ``g + mu b`` instead. The
    update is the backend's ``sgd_update``.

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float, default 1e-3
    momentum : float, default 0
    dampening : float, default 0
    weight_decay : float, default 0
        L2 penalty added to the gradient (``g + weight_decay * param``).
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0``.
    """

    _buffer_names = ("momentum_buffer",)

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _check_group(self, group):
        group["lr"] = check_lr(group["lr"])
        group["momentum"] = check_float(group["momentum"], "momentum", minimum=0.0)
        group["dampening"] = check_float(group["dampening"], "dampening")
        group["weight_decay"] = check_float(group["weight_decay"], "weight_decay", minimum=0.0)
        group["nesterov"] = check_bool(group["nesterov"], "nesterov")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0")

    def _init_state(self, p, group):
        return {"momentum_buffer": None}

    def _step_group(self, ops, group):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        nesterov, weight_decay = group["nesterov"], group["weight_decay"]
        for p, grad, state, views in self._with_gradients(group):
            first_step = False
            if momentum != 0 and state["momentum_buffer"] is None:
                state["momentum_buffer"] = np.zeros_like(p.data)
                self._views.pop(p, None)
                views = self._flat_views(p)
                first_step = True  # the buffer starts as the gradient itself
            ops.sgd_update(views["param"], grad, views.get("momentum_buffer"), lr,
                           momentum=momentum, dampening=dampening, nesterov=nesterov,
                           weight_decay=weight_decay, first_step=first_step)
