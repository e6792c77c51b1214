"""Adam and AMSGrad (``torch.optim.Adam``), on the backend's ``adam_update``."""
from __future__ import annotations

import numpy as np

from fastnn._validation import check_float
from fastnn.optim.optimizer import Optimizer, check_bool, check_lr

__all__ = ["Adam"]


def _check_betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    return (check_float(betas[0], "betas[0]", minimum=0.0, maximum=1.0, max_inclusive=False),
            check_float(betas[1], "betas[1]", minimum=0.0, maximum=1.0, max_inclusive=False))


class Adam(Optimizer):
    """Adam: steps scaled by running estimates of the gradient's first and second moments.

    At step ``t``, with ``m = b1 m + (1 - b1) g`` and ``v = b2 v + (1 - b2) g^2``::

        param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    Parameters
    ----------
    params : iterable of Tensor or of dict
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    weight_decay : float, default 0
        L2 penalty added to the gradient (see :class:`AdamW` for decoupled decay).
    amsgrad : bool, default False
        Use the running maximum of ``v``.
    """

    _buffer_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad))

    def _check_group(self, group):
        group["lr"] = check_lr(group["lr"])
        group["betas"] = _check_betas(group["betas"])
        group["eps"] = check_float(group["eps"], "eps", minimum=0.0)
        group["weight_decay"] = check_float(group["weight_decay"], "weight_decay", minimum=0.0)
        group["amsgrad"] = check_bool(group["amsgrad"], "amsgrad")

    def _init_state(self, p, group):
        state = {"step": 0, "exp_avg": np.zeros_like(p.data), "exp_avg_sq": np.zeros_like(p.data)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = np.zeros_like(p.data)
        return state

    def _step_group(self, ops, group):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        decoupled = self._decoupled_weight_decay
        for p, grad, state, views in self._with_gradients(group):
            if amsgrad and "max_exp_avg_sq" not in views:  # amsgrad switched on after some steps
                state["max_exp_avg_sq"] = np.zeros_like(p.data)
                self._views.pop(p, None)
                views = self._flat_views(p)
            state["step"] = step = state["step"] + 1
            ops.adam_update(views["param"], grad, views["exp_avg"], views["exp_avg_sq"],
                            views.get("max_exp_avg_sq"), lr, beta1, beta2, eps, step,
                            weight_decay=weight_decay, decoupled_weight_decay=decoupled,
                            amsgrad=amsgrad)
