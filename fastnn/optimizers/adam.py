"""Adam (Kingma & Ba 2015), AMSGrad (Reddi et al. 2018) and AdamW (Loshchilov & Hutter 2019)."""
from __future__ import annotations

from fastnn._validation import check_float, check_positive
from fastnn.optimizers.base import Optimizer, check_flag

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam: steps scaled by running estimates of the gradient's first and second moments.

    With ``m = b1 m + (1 - b1) g`` and ``v = b2 v + (1 - b2) g^2`` at step ``t``::

        param -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + epsilon)

    (torch.optim's form, the paper's algorithm: ``epsilon`` is added outside the
    bias-corrected square root). ``amsgrad=True`` uses the running maximum of
    ``v`` instead of ``v``.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
    beta_1 : float, default 0.9
        Decay of the first-moment estimate, in ``[0, 1)``.
    beta_2 : float, default 0.999
        Decay of the second-moment estimate, in ``[0, 1)``.
    epsilon : float, default 1e-7
        Keras's default (torch's ``eps`` defaults to 1e-8).
    amsgrad : bool, default False
    weight_decay, clipnorm, clipvalue, global_clipnorm, name
        See :class:`~fastnn.optimizers.Optimizer`; ``weight_decay`` here is
        decoupled, which makes ``Adam(weight_decay=w)`` the same as ``AdamW(weight_decay=w)``.
    """

    update_rule = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, name="adam"):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm, name)
        self.beta_1 = check_float(beta_1, "beta_1", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.beta_2 = check_float(beta_2, "beta_2", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.epsilon = check_positive(epsilon, "epsilon")
        self.amsgrad = check_flag(amsgrad, "amsgrad")

    @property
    def slot_names(self):
        """Keras's names: m is "momentum", v is "velocity", max v (amsgrad) is
        "velocity_hat"; from the current settings (see Optimizer._ensure_slots)."""
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def update_hyperparameters(self):
        return {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon,
                "amsgrad": self.amsgrad, **self._decay_kwargs()}

    def _update(self, ops, param, grad, slots, lr, step):
        ops.adam_update(param, grad, slots["momentum"], slots["velocity"], slots.get("velocity_hat"),
                        lr, step=step, **self.update_hyperparameters())

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay: ``param *= 1 - lr * weight_decay`` before each step.

    Parameters are those of :class:`Adam`, with ``weight_decay`` (default
    0.004, Keras's) required to be a float.
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="adamw"):
        weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay, clipnorm,
                         clipvalue, global_clipnorm, name)
