"""RMSprop (Tieleman & Hinton 2012; centered form: Graves 2013)."""
from __future__ import annotations

from fastnn._validation import check_float, check_positive
from fastnn.optimizers.base import Optimizer, check_flag

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop: divide each gradient by a running root mean square of its history.

    ``s = rho s + (1 - rho) g^2`` and ``d = sqrt(s) + epsilon`` (centered:
    ``a = rho a + (1 - rho) g``, ``d = sqrt(s - a^2) + epsilon``); then
    ``param -= lr * g / d``, or with momentum ``b = momentum b + g / d`` and
    ``param -= lr * b`` (torch.optim's formulas; torch calls ``rho`` ``alpha``).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
    rho : float, default 0.9
        Decay of the running averages, in ``[0, 1)``.
    momentum : float, default 0.0
        In ``[0, 1)``.
    epsilon : float, default 1e-7
    centered : bool, default False
        Normalise by the estimated variance instead of the uncentered second moment.
    weight_decay, clipnorm, clipvalue, global_clipnorm, name
        See :class:`~fastnn.optimizers.Optimizer`.
    """

    update_rule = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="rmsprop"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.rho = check_float(rho, "rho", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.epsilon = check_positive(epsilon, "epsilon")
        self.centered = check_flag(centered, "centered")

    @property
    def slot_names(self):
        """Keras's names: "velocity" (mean square), "momentum", "average_gradient";
        from the current settings (see Optimizer._ensure_slots)."""
        return (("velocity",) + (("momentum",) if self.momentum > 0 else ())
                + (("average_gradient",) if self.centered else ()))

    def update_hyperparameters(self):
        return {"rho": self.rho, "epsilon": self.epsilon, "momentum": self.momentum,
                "centered": self.centered, **self._decay_kwargs()}

    def _update(self, ops, param, grad, slots, lr, step):
        ops.rmsprop_update(param, grad, slots["velocity"], slots.get("momentum"),
                           slots.get("average_gradient"), lr, **self.update_hyperparameters())

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}
