"""Reduce the learning rate when a metric stops improving (``ReduceLROnPlateau``)."""
from __future__ import annotations

import math
import numbers
import warnings

from fastnn._validation import check_float, check_int, lookup
from fastnn.optim.lr_scheduler.base import LRScheduler, _check_optimizer


class ReduceLROnPlateau(LRScheduler):
    """Multiply the learning rate by ``factor`` when a metric stops improving.

    Call ``scheduler.step(metric)`` after each validation. (An LRScheduler, as in
    PyTorch, for its state dicts and ``get_last_lr``; it has no schedule of epochs,
    so it makes no step of its own when built.)

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
            self.default_min_lr = None
        else:
            self.default_min_lr = check_float(min_lr, "min_lr", minimum=0.0)
            self.min_lrs = [self.default_min_lr] * n
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

    def step(self, metrics, epoch=None):
        """Record this epoch's metric and reduce the learning rate if it has plateaued.

        ``epoch`` (deprecated in PyTorch, and warned about) sets the epoch counter.
        """
        if isinstance(metrics, bool) or not isinstance(metrics, numbers.Real):
            try:
                metrics = float(metrics)  # a one-element Tensor or array
            except (TypeError, ValueError):
                raise TypeError(f"metrics must be a number, got {type(metrics).__name__}") from None
        current = float(metrics)
        if math.isnan(current):
            raise ValueError("metrics is NaN")
        if epoch is None:
            self.last_epoch += 1
        else:
            self.last_epoch = check_int(epoch, "epoch", minimum=0)
            warnings.warn("the epoch parameter of scheduler.step() is deprecated (as in "
                          "PyTorch)", UserWarning, stacklevel=2)
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            groups = self.optimizer.param_groups
            if len(groups) != len(self.min_lrs):  # a group added since (e.g. an unfrozen part)
                default = getattr(self, "default_min_lr", None)  # absent in old pickles
                if default is None and "default_min_lr" not in self.__dict__ \
                        and len(set(self.min_lrs)) == 1:
                    default = self.min_lrs[0]
                if default is None:
                    raise ValueError(
                        f"the optimizer has {len(groups)} parameter groups but min_lr lists "
                        f"{len(self.min_lrs)}: set scheduler.min_lrs to one value per group")
                self.min_lrs = [default] * len(groups)
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
