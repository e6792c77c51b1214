"""Schedules made of schedules: one after another (``SequentialLR``) or all at once
(``ChainedScheduler``)."""
from __future__ import annotations

from bisect import bisect_right

from fastnn._validation import check_int
from fastnn.optim.lr_scheduler.base import LRScheduler, _check_optimizer
from fastnn.optim.lr_scheduler.plateau import ReduceLROnPlateau


def _check_schedulers(kind, schedulers, optimizer):
    """``schedulers`` as a non-empty list of LRSchedulers of ``optimizer``."""
    if isinstance(schedulers, LRScheduler) or not hasattr(schedulers, "__iter__"):
        raise TypeError(f"schedulers must be a list of schedulers, got {type(schedulers).__name__}")
    schedulers = list(schedulers)
    if not schedulers:
        raise ValueError(f"{kind} needs at least one scheduler")
    for i, s in enumerate(schedulers):
        if isinstance(s, ReduceLROnPlateau):
            raise ValueError(f"{kind} cannot hold a ReduceLROnPlateau (schedulers[{i}]): its "
                             "step() needs the metric")
        if not isinstance(s, LRScheduler):
            raise TypeError(f"schedulers[{i}] must be a learning-rate scheduler, got "
                            f"{type(s).__name__}")
        if s.optimizer is not optimizer:
            raise ValueError(f"schedulers[{i}] ({type(s).__name__}) belongs to another optimizer")
    return schedulers


class _Composite(LRScheduler):
    """State dicts that hold the state of each scheduler inside."""

    def state_dict(self):
        state = {key: value for key, value in self.__dict__.items()
                 if key not in ("optimizer", "_schedulers")}
        state["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return state

    def load_state_dict(self, state_dict):
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        inner = state_dict.get("_schedulers")
        if not isinstance(inner, list) or len(inner) != len(self._schedulers):
            raise ValueError(f"state_dict must hold the states of {len(self._schedulers)} "
                             "schedulers under '_schedulers'")
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "_schedulers"})
        for s, state in zip(self._schedulers, inner):
            s.load_state_dict(state)


class SequentialLR(_Composite):
    """Run ``schedulers[0]`` until ``milestones[0]``, then ``schedulers[1]`` (restarted at
    its epoch 0) until ``milestones[1]``, and so on: e.g. a linear warm-up followed
    by cosine annealing.

    Parameters
    ----------
    optimizer : Optimizer
    schedulers : list of LRScheduler
        Built on ``optimizer``, in order; each one's construction step is undone.
    milestones : list of int
        The epochs at which the next scheduler takes over; one fewer than the
        schedulers, increasing.
    last_epoch : int, default -1
    """

    def __init__(self, optimizer, schedulers, milestones, last_epoch=-1):
        self.optimizer = _check_optimizer(optimizer)
        self._schedulers = _check_schedulers("SequentialLR", schedulers, optimizer)
        try:
            milestones = [check_int(m, f"milestones[{i}]", minimum=0)
                          for i, m in enumerate(milestones)]
        except TypeError as e:
            if hasattr(milestones, "__iter__"):
                raise
            raise TypeError(f"milestones must be a list of ints, got {milestones!r}") from e
        if len(milestones) != len(self._schedulers) - 1:
            raise ValueError(f"SequentialLR needs one milestone fewer than schedulers: got "
                             f"{len(self._schedulers)} schedulers and {len(milestones)} milestones")
        if milestones != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {milestones}")
        self._milestones = milestones
        self.last_epoch = check_int(last_epoch, "last_epoch", minimum=-1) + 1
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"]
        # Undo the construction step of every scheduler, then redo the first one's.
        self._undo(self)
        first = self._schedulers[bisect_right(self._milestones, 0)]
        first._initial_step()
        self._last_lr = first.get_last_lr()

    @classmethod
    def _undo(cls, scheduler):
        if hasattr(scheduler, "_schedulers"):
            for s in scheduler._schedulers:
                cls._undo(s)
        else:
            scheduler.last_epoch -= 1

    def step(self):
        """Advance one epoch with the scheduler in charge of it."""
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            scheduler._update_lr(0)  # its schedule starts over, from the base rates
        else:
            scheduler.step()
        self._last_lr = scheduler.get_last_lr()


class ChainedScheduler(_Composite):
    """Step several schedulers together, each scaling the rate the ones before it
    set (for the recursive schedules: their factors multiply).

    Parameters
    ----------
    schedulers : list of LRScheduler
        Built on the same optimizer.
    optimizer : Optimizer, optional
        Their optimizer (the first scheduler's if None).
    """

    def __init__(self, schedulers, optimizer=None):
        if optimizer is None:
            first = next(iter(schedulers), None) if hasattr(schedulers, "__iter__") else None
            optimizer = getattr(first, "optimizer", None)
            if optimizer is None:
                _check_schedulers("ChainedScheduler", schedulers, None)
        self.optimizer = _check_optimizer(optimizer)
        self._schedulers = _check_schedulers("ChainedScheduler", schedulers, self.optimizer)
        self._last_lr = self._current_lrs()

    def step(self):
        """Step every scheduler, in order."""
        for s in self._schedulers:
            s.step()
        self._last_lr = self._current_lrs()
