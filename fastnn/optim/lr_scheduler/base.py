"""The scheduler base class: epochs, base rates, stepping, state dicts."""
from __future__ import annotations

import warnings

from fastnn._validation import check_float, check_int
from fastnn.optim.optimizer import Optimizer


def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{type(optimizer).__name__} is not a fastnn.optim Optimizer")
    return optimizer


def _per_group(name, optimizer, value, **bounds):
    """One float per parameter group: ``value`` repeated, or a list of that length."""
    n = len(optimizer.param_groups)
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} must have one value per parameter group ({n}), "
                             f"got {len(value)}")
        return [check_float(v, f"{name}[{i}]", **bounds) for i, v in enumerate(value)]
    return [check_float(value, name, **bounds)] * n


class LRScheduler:
    """Base class: ``last_epoch``, ``base_lrs``, ``step()``, ``get_last_lr()``, state dicts.

    Subclasses define ``get_lr()``: the learning rates for epoch
    ``self.last_epoch``, usually from the current ``group['lr']``; those with a
    closed form (the rate as a function of the epoch and ``base_lrs`` alone)
    also define ``_get_closed_form_lr()``, which :class:`SequentialLR` uses to
    restart a schedule at a milestone.

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
        self._initial_step()

    def _initial_step(self):
        """The step that applies the schedule's value for the first epoch."""
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        """The learning rates for epoch ``last_epoch`` (one per parameter group)."""
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rates the last ``step()`` set."""
        return list(self._last_lr)

    def _current_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self, epoch=None):
        """Advance one epoch and write the new learning rates into the optimizer.

        ``step(epoch)`` (deprecated in PyTorch, and warned about as there) jumps to
        ``epoch``, by the schedule's closed form where it has one.
        """
        if self._step_count == 1 and self.optimizer._steps_taken == 0:
            warnings.warn(
                "lr_scheduler.step() was called before optimizer.step(): call them in the "
                "opposite order, or the first value of the schedule is skipped",
                UserWarning, stacklevel=2)
        self._step_count += 1
        if epoch is not None:
            epoch = check_int(epoch, "epoch", minimum=0)
            warnings.warn("the epoch parameter of scheduler.step() is deprecated (as in "
                          "PyTorch): call step() once per epoch", UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        """Move to the next epoch, or to ``epoch`` (by the closed form where there is one)."""
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
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
