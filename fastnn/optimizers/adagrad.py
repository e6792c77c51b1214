"""Adagrad (Duchi, Hazan & Singer 2011): per-coordinate rates from accumulated squared gradients."""
from __future__ import annotations

import numpy as np

from fastnn._validation import check_float, check_positive
from fastnn.optimizers.base import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad: ``s += g^2; param -= lr * g / (sqrt(s) + epsilon)``.

    The accumulator ``s`` starts at ``initial_accumulator_value``. This is
    torch.optim's formula (``epsilon`` outside the square root; Keras puts it
    inside, which differs by O(epsilon)). Equivalent torch arguments:
    ``torch.optim.Adagrad(lr=learning_rate, initial_accumulator_value=...,
    eps=epsilon, lr_decay=0)``.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
    initial_accumulator_value : float, default 0.1
        Starting value of the accumulator, >= 0.
    epsilon : float, default 1e-7
    weight_decay, clipnorm, clipvalue, global_clipnorm, name
        See :class:`~fastnn.optimizers.Optimizer`.
    """

    update_rule = "adagrad"
    slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="adagrad"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.initial_accumulator_value = check_float(
            initial_accumulator_value, "initial_accumulator_value", minimum=0.0)
        self.epsilon = check_positive(epsilon, "epsilon")

    def _new_slots(self, param):
        return {"accumulator": np.full_like(param, self.initial_accumulator_value)}

    def update_hyperparameters(self):
        return {"epsilon": self.epsilon, "lr_decay": 0.0, **self._decay_kwargs()}

    def _update(self, ops, param, grad, slots, lr, step):
        ops.adagrad_update(param, grad, slots["accumulator"], lr, step=step,
                           **self.update_hyperparameters())

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
