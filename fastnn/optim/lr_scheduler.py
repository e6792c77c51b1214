"""Learning-rate schedules for the PyTorch-style optimizers (``torch.optim.lr_scheduler``).

A scheduler rewrites ``optimizer.param_groups[i]['lr']``; call its ``step()``
once per epoch (or per batch, for warm-up), after ``optimizer.step()``::

    scheduler = StepLR(optimizer, step_size=10, gamma=0.1)
    for epoch in range(epochs):
        train(...)              # optimizer.step() for each batch
        scheduler.step()

The semantics are PyTorch's, including its recursive ("chainable") forms:
most schedulers multiply the *current* group learning rate by a factor, so
they compose with each other and with manual edits of ``'lr'``, exactly as in
PyTorch (the same floating-point values, step for step). Constructing a
scheduler sets each group's ``'initial_lr'`` and applies the schedule's value
for epoch 0.
"""
from __future__ import annotations

import math
import numbers
import warnings
from collections import Counter

from fastnn._validation import check_float, check_int, lookup
from fastnn.optim.optimizer import Optimizer

__all__ = [
    "LRScheduler", "LambdaLR", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
    "LinearLR", "ReduceLROnPlateau",
]


def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not a fastnn.optim Optimizer")
    return optimizer


class LRScheduler:
    """Base class: ``last_epoch``, ``base_lrs``, ``step()``, ``get_last_lr()``, state dicts.

    Subclasses define ``get_lr()``: the learning rates for epoch
    ``self.last_epoch``, usually from the current ``group['lr']``.

    Parameters
    ----------
    optimizer : Optimizer
    last_epoch : int, default -1
        The index of the last epoch done; -1 starts a new schedule. Resuming
        (``>= 0``) needs ``'initial_lr'`` in every parameter group.
    """

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = _check_optimizer(optimizer)
        last_epoch = check_int(last_epoch, "last_epoch", minimum=-1)
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] "
                                   "when resuming a scheduler with last_epoch >= 0")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self):
        """The learning rates for epoch ``last_epoch`` (one per parameter group)."""
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rates the last ``step()`` set."""
        return list(self._last_lr)

    def _current_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self):
        """Advance one epoch and write the new learning rates into the optimizer."""
        if self._step_count == 1 and self.optimizer._steps_taken == 0:
            warnings.warn(
                "lr_scheduler.step() was called before optimizer.step(): call them in the "
                "opposite order, or the first value of the schedule is skipped",
                UserWarning, stacklevel=2)
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    def state_dict(self):
        """The scheduler's state (everything but the optimizer) as a dict."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore a state from :meth:`state_dict`."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        self.__dict__.update(state_dict)


class LambdaLR(LRScheduler):
    """``lr = base_lr * lr_lambda(epoch)``.

    Parameters
    ----------
    optimizer : Optimizer
    lr_lambda : callable or list of callables
        A function of the epoch index (one per parameter group, or one for all).
    last_epoch : int, default -1
    """

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        _check_optimizer(optimizer)
        n = len(optimizer.param_groups)
        if isinstance(lr_lambda, (list, tuple)):
            if len(lr_lambda) != n:
                raise ValueError(f"expected {n} lr_lambdas (one per parameter group), got {len(lr_lambda)}")
            self.lr_lambdas = list(lr_lambda)
        else:
            self.lr_lambdas = [lr_lambda] * n
        for fn in self.lr_lambdas:
            if not callable(fn):
                raise TypeError(f"lr_lambda must be callable, got {type(fn).__name__}")
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]

    def state_dict(self):
        state = super().state_dict()
        state.pop("lr_lambdas")  # functions are code, not state
        return state


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        self.step_size = check_int(step_size, "step_size", minimum=1)
        self.gamma = check_float(gamma, "gamma", minimum=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]


class MultiStepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` at each epoch listed in ``milestones``."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        try:
            milestones = list(milestones)
        except TypeError:
            raise TypeError(f"milestones must be a list of ints, got {milestones!r}") from None
        for m in milestones:
            check_int(m, "milestones[i]", minimum=0)
        if milestones != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {milestones}")
        self.milestones = Counter(milestones)
        self.gamma = check_float(gamma, "gamma", minimum=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch not in self.milestones:
            return self._current_lrs()
        factor = self.gamma ** self.milestones[self.last_epoch]
        return [lr * factor for lr in self._current_lrs()]


class ExponentialLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every epoch."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = check_float(gamma, "gamma", minimum=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self._is_initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]


class CosineAnnealingLR(LRScheduler):
    """Anneal from the base rate to ``eta_min`` along half a cosine over ``T_max`` epochs.

    ``lr_t = eta_min + (base_lr - eta_min) (1 + cos(pi t / T_max)) / 2``, computed
    recursively as PyTorch does (and continuing periodically past ``T_max``).
    """

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        self.T_max = check_int(T_max, "T_max", minimum=1)
        self.eta_min = check_float(eta_min, "eta_min", minimum=0.0)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current_lrs()
        if self._step_count == 1 and t > 0:  # resumed: the closed form
            return [eta_min + (base - eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [lr + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, lr in zip(self.base_lrs, self._current_lrs())]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - eta_min) + eta_min for lr in self._current_lrs()]


class LinearLR(LRScheduler):
    """Warm-up: scale the learning rate linearly from ``start_factor`` to ``end_factor``
    over ``total_iters`` steps, then keep it."""

    def __init__(self, optimizer, start_factor=1.0 / 3, end_factor=1.0, total_iters=5, last_epoch=-1):
        self.start_factor = check_float(start_factor, "start_factor", minimum=0.0,
                                        min_inclusive=False, maximum=1.0)
        self.end_factor = check_float(end_factor, "end_factor", minimum=0.0, maximum=1.0)
        self.total_iters = check_int(total_iters, "total_iters", minimum=1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t = self.last_epoch
        if t == 0:
            return [lr * self.start_factor for lr in self._current_lrs()]
        if self._is_initial or t > self.total_iters:
            return self._current_lrs()
        start, end = self.start_factor, self.end_factor
        factor = 1.0 + (end - start) / (self.total_iters * start + (t - 1) * (end - start))
        return [lr * factor for lr in self._current_lrs()]


class ReduceLROnPlateau:
    """Multiply the learning rate by ``factor`` when a metric stops improving.

    Call ``scheduler.step(metric)`` after each validation.

    Parameters
    ----------
    optimizer : Optimizer
    mode : {'min', 'max'}
        Whether the metric should decrease (a loss) or increase (an accuracy).
    factor : float, default 0.1
        ``new_lr = lr * factor``, in [0, 1).
    patience : int, default 10
        Epochs without improvement tolerated before reducing.
    threshold : float, default 1e-4
        What counts as an improvement (see ``threshold_mode``).
    threshold_mode : {'rel', 'abs'}
        ``'rel'``: better than ``best * (1 -/+ threshold)``; ``'abs'``: than ``best -/+ threshold``.
    cooldown : int, default 0
        Epochs to wait after a reduction before counting again.
    min_lr : float or list of float, default 0
    eps : float, default 1e-8
        Reductions smaller than this are skipped.
    """

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        self.optimizer = _check_optimizer(optimizer)
        self.mode = lookup("mode", mode, {"min": "min", "max": "max"})
        self.factor = check_float(factor, "factor", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.patience = check_int(patience, "patience", minimum=0)
        self.threshold = check_float(threshold, "threshold", minimum=0.0)
        self.threshold_mode = lookup("threshold_mode", threshold_mode, {"rel": "rel", "abs": "abs"})
        self.cooldown = check_int(cooldown, "cooldown", minimum=0)
        self.eps = check_float(eps, "eps", minimum=0.0)
        n = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            if len(min_lr) != n:
                raise ValueError(f"expected {n} min_lrs (one per parameter group), got {len(min_lr)}")
            self.min_lrs = [check_float(v, "min_lr", minimum=0.0) for v in min_lr]
        else:
            self.min_lrs = [check_float(min_lr, "min_lr", minimum=0.0)] * n
        self.last_epoch = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self._last_lr = [group["lr"] for group in optimizer.param_groups]

    def _is_better(self, value):
        if self.mode == "min":
            bound = self.best * (1 - self.threshold) if self.threshold_mode == "rel" \
                else self.best - self.threshold
            return value < bound
        bound = self.best * (1 + self.threshold) if self.threshold_mode == "rel" \
            else self.best + self.threshold
        return value > bound

    def step(self, metrics):
        """Record this epoch's metric and reduce the learning rate if it has plateaued."""
        if isinstance(metrics, bool) or not isinstance(metrics, numbers.Real):
            try:
                metrics = float(metrics)  # a one-element Tensor or array
            except (TypeError, ValueError):
                raise TypeError(f"metrics must be a number, got {type(metrics).__name__}") from None
        current = float(metrics)
        if math.isnan(current):
            raise ValueError("metrics is NaN")
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    @property
    def in_cooldown(self):
        """True while waiting after a reduction."""
        return self.cooldown_counter > 0

    def get_last_lr(self):
        """The current learning rates."""
        return list(self._last_lr)

    def state_dict(self):
        """The scheduler's state (everything but the optimizer)."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict):
        """Restore a state from :meth:`state_dict`."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        self.__dict__.update(state_dict)
