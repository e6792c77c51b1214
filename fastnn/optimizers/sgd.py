"""Stochastic gradient descent, with optional (Nesterov) momentum."""
from __future__ import annotations

from fastnn._validation import check_float
from fastnn.optimizers.base import Optimizer, check_flag

__all__ = ["SGD"]


class SGD(Optimizer):
    """Gradient descent with momentum (Keras arguments, torch.optim formulas).

    Without momentum: ``param -= lr * g``. With momentum ``mu`` the velocity is
    ``v = mu * v + g`` (``v = g`` on the first step) and ``param -= lr * v``;
    with ``nesterov=True`` the step uses the look-ahead ``g + mu * v`` instead.
    For a constant learning rate this is exactly Keras's
    ``v = mu * v - lr * g; param += v`` (its velocity is ``-lr`` times ours).

    Plain, mini-batch and full-batch gradient descent are the same optimizer:
    what differs is how many samples each gradient averages (``fit``'s ``batch_size``).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.01
    momentum : float, default 0.0
        In ``[0, 1)``.
    nesterov : bool, default False
        Nesterov momentum (needs ``momentum > 0``).
    weight_decay, clipnorm, clipvalue, global_clipnorm, name
        See :class:`~fastnn.optimizers.Optimizer`.
    """

    update_rule = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="SGD"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.nesterov = check_flag(nesterov, "nesterov")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0")

    @property
    def slot_names(self):
        """``("momentum",)`` while ``momentum > 0`` (a buffer of zeros is added for each
        parameter if momentum is turned on later)."""
        return ("momentum",) if self.momentum > 0 else ()

    def update_hyperparameters(self):
        return {"momentum": self.momentum, "dampening": 0.0, "nesterov": self.nesterov,
                **self._decay_kwargs()}

    def _update(self, ops, param, grad, slots, lr, step):
        ops.sgd_update(param, grad, slots.get("momentum"), lr, first_step=(step == 1),
                       **self.update_hyperparameters())

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
