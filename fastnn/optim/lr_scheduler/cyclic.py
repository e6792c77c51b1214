"""Schedules that cycle: warm restarts, triangular cycles, the one-cycle policy.

These set each rate from the base rates (not recursively from the current
one), as PyTorch does; CyclicLR and OneCycleLR also cycle the momentum (SGD's
``momentum``, RMSprop's ``momentum``, Adam's ``beta1``) against the rate.
"""
from __future__ import annotations

import math

from fastnn._validation import check_float, check_int, lookup
from fastnn.optim.lr_scheduler.base import LRScheduler, _check_optimizer, _per_group


class CosineAnnealingWarmRestarts(LRScheduler):
    """Cosine annealing from the base rate to ``eta_min`` over ``T_i`` epochs, then
    a restart at the base rate, with ``T_i`` growing by ``T_mult`` after each restart
    (SGDR, Loshchilov & Hutter 2017).

    ``lr = eta_min + (base_lr - eta_min) (1 + cos(pi T_cur / T_i)) / 2``.

    Parameters
    ----------
    optimizer : Optimizer
    T_0 : int
        Epochs until the first restart.
    T_mult : int, default 1
        Factor by which the period grows after each restart.
    eta_min : float, default 0
    last_epoch : int, default -1

    Notes
    -----
    ``step(epoch)`` also takes a fractional epoch, to anneal within an epoch:
    ``scheduler.step(epoch + i / batches)`` after batch ``i``.
    """

    def __init__(self, optimizer, T_0, T_mult=1, eta_min=0.0, last_epoch=-1):
        self.T_0 = check_int(T_0, "T_0", minimum=1)
        self.T_i = self.T_0
        self.T_mult = check_int(T_mult, "T_mult", minimum=1)
        self.eta_min = check_float(eta_min, "eta_min")
        self.T_cur = check_int(last_epoch, "last_epoch", minimum=-1)
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [self.eta_min + (base - self.eta_min)
                * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2 for base in self.base_lrs]

    def step(self, epoch=None):
        """Advance one epoch, or go to ``epoch`` (a number >= 0, fractions allowed)."""
        if epoch is None and self.last_epoch < 0:
            epoch = 0
        if epoch is None:
            epoch = self.last_epoch + 1
            self.T_cur += 1
            if self.T_cur >= self.T_i:
                self.T_cur %= self.T_i
                self.T_i *= self.T_mult
        else:
            epoch = check_float(epoch, "epoch", minimum=0.0)
            if epoch >= self.T_0:
                if self.T_mult == 1:
                    self.T_cur = epoch % self.T_0
                else:
                    n = int(math.log(epoch / self.T_0 * (self.T_mult - 1) + 1, self.T_mult))
                    self.T_cur = epoch - self.T_0 * (self.T_mult ** n - 1) / (self.T_mult - 1)
                    self.T_i = self.T_0 * self.T_mult ** n
            else:
                self.T_i = self.T_0
                self.T_cur = epoch
        self.last_epoch = math.floor(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = self._current_lrs()


def _momentum_key(optimizer):
    """'momentum' or 'betas' (its first entry cycles), whichever the optimizer has."""
    if "betas" in optimizer.defaults:
        return "betas"
    if "momentum" in optimizer.defaults:
        return "momentum"
    raise ValueError(f"{type(optimizer).__name__} has no momentum or beta1 to cycle: "
                     "pass cycle_momentum=False")


def _set_momentum(group, key, value):
    if key == "betas":
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


class CyclicLR(LRScheduler):
    """Cycle the learning rate between ``base_lr`` and ``max_lr`` (Smith 2017), stepped
    once per batch.

    Parameters
    ----------
    optimizer : Optimizer
    base_lr, max_lr : float or list of float
        The cycle's bounds, per parameter group or for all.
    step_size_up : int, default 2000
        Steps from ``base_lr`` up to ``max_lr``.
    step_size_down : int, optional
        Steps back down; ``step_size_up`` if None.
    mode : {'triangular', 'triangular2', 'exp_range'}
        The amplitude: constant, halved every cycle, or ``gamma ** step``.
    gamma : float, default 1.0
        The ``'exp_range'`` factor.
    scale_fn : callable, optional
        A custom amplitude of one argument (overrides ``mode``), taken of the
        cycle number or of the step, per ``scale_mode``.
    scale_mode : {'cycle', 'iterations'}
    cycle_momentum : bool, default True
        Cycle the momentum inversely, between ``max_momentum`` and ``base_momentum``.
    base_momentum, max_momentum : float or list of float, default 0.8, 0.9
    last_epoch : int, default -1
        The index of the last batch done.
    """

    def __init__(self, optimizer, base_lr, max_lr, step_size_up=2000, step_size_down=None,
                 mode="triangular", gamma=1.0, scale_fn=None, scale_mode="cycle",
                 cycle_momentum=True, base_momentum=0.8, max_momentum=0.9, last_epoch=-1):
        _check_optimizer(optimizer)
        last_epoch = check_int(last_epoch, "last_epoch", minimum=-1)
        base_lrs = _per_group("base_lr", optimizer, base_lr, minimum=0.0)
        if last_epoch == -1:
            for lr, group in zip(base_lrs, optimizer.param_groups):
                group["lr"] = lr
        self.max_lrs = _per_group("max_lr", optimizer, max_lr, minimum=0.0)
        up = float(check_int(step_size_up, "step_size_up", minimum=1))
        down = up if step_size_down is None else float(
            check_int(step_size_down, "step_size_down", minimum=1))
        self.total_size = up + down
        self.step_ratio = up / self.total_size
        if scale_fn is not None and not callable(scale_fn):
            raise TypeError(f"scale_fn must be callable, got {type(scale_fn).__name__}")
        self.mode = mode if scale_fn is not None else lookup(
            "mode", mode, {m: m for m in ("triangular", "triangular2", "exp_range")})
        self.gamma = check_float(gamma, "gamma", minimum=0.0)
        self._scale_fn_custom = scale_fn
        self.scale_mode = lookup("scale_mode", scale_mode,
                                 {"cycle": "cycle", "iterations": "iterations"})
        if scale_fn is None:  # the built-in modes fix the scale mode
            self.scale_mode = "iterations" if self.mode == "exp_range" else "cycle"
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            self._momentum_key = _momentum_key(optimizer)
            self.base_momentums = _per_group("base_momentum", optimizer, base_momentum,
                                             minimum=0.0, maximum=1.0, max_inclusive=False)
            self.max_momentums = _per_group("max_momentum", optimizer, max_momentum,
                                            minimum=0.0, maximum=1.0, max_inclusive=False)
            if last_epoch == -1:
                for high, low, group in zip(self.max_momentums, self.base_momentums,
                                            optimizer.param_groups):
                    _set_momentum(group, self._momentum_key, high)
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)
        self.base_lrs = base_lrs

    def scale_fn(self, x):
        """The amplitude factor for cycle (or step) ``x``."""
        if self._scale_fn_custom is not None:
            return self._scale_fn_custom(x)
        if self.mode == "triangular":
            return 1.0
        if self.mode == "triangular2":
            return 1 / (2.0 ** (x - 1))
        return self.gamma ** x

    def get_lr(self):
        cycle = math.floor(1 + self.last_epoch / self.total_size)
        x = 1.0 + self.last_epoch / self.total_size - cycle
        if x <= self.step_ratio:
            scale_factor = x / self.step_ratio
        else:
            scale_factor = (x - 1) / (self.step_ratio - 1)
        at = cycle if self.scale_mode == "cycle" else self.last_epoch
        amplitude = self.scale_fn(at)
        lrs = [base + (high - base) * scale_factor * amplitude
               for base, high in zip(self.base_lrs, self.max_lrs)]
        if self.cycle_momentum:
            for low, high, group in zip(self.base_momentums, self.max_momentums,
                                        self.optimizer.param_groups):
                _set_momentum(group, self._momentum_key,
                              high - (high - low) * scale_factor * amplitude)
        return lrs

    def state_dict(self):
        state = super().state_dict()
        state["_scale_fn_custom"] = None  # a function is code, not state
        return state

    def load_state_dict(self, state_dict):
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}")
        custom = self._scale_fn_custom
        super().load_state_dict(state_dict)
        self._scale_fn_custom = custom


class OneCycleLR(LRScheduler):
    """The one-cycle policy (Smith & Topin 2018), stepped once per batch: the rate
    rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of
    the steps, then anneals to ``max_lr / (div_factor * final_div_factor)``; the
    momentum moves the opposite way.

    Parameters
    ----------
    optimizer : Optimizer
    max_lr : float or list of float
    total_steps : int, optional
        Or ``epochs`` and ``steps_per_epoch``, whose product it is.
    epochs, steps_per_epoch : int, optional
    pct_start : float, default 0.3
        Share of the steps spent rising.
    anneal_strategy : {'cos', 'linear'}
    cycle_momentum : bool, default True
    base_momentum, max_momentum : float or list of float, default 0.85, 0.95
    div_factor : float, default 25
        ``initial_lr = max_lr / div_factor``.
    final_div_factor : float, default 1e4
        ``min_lr = initial_lr / final_div_factor``.
    three_phase : bool, default False
        Rise, fall back to ``initial_lr`` symmetrically, then anneal to ``min_lr``.
    last_epoch : int, default -1
        The index of the last batch done.

    Raises
    ------
    ValueError
        From ``step()`` once it is called more than ``total_steps`` times.
    """

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        _check_optimizer(optimizer)
        last_epoch = check_int(last_epoch, "last_epoch", minimum=-1)
        if total_steps is not None:
            self.total_steps = check_int(total_steps, "total_steps", minimum=1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = (check_int(epochs, "epochs", minimum=1)
                                * check_int(steps_per_epoch, "steps_per_epoch", minimum=1))
        else:
            raise ValueError("OneCycleLR needs total_steps, or epochs and steps_per_epoch")
        pct_start = check_float(pct_start, "pct_start", minimum=0.0, maximum=1.0)
        self._anneal = lookup("anneal_strategy", anneal_strategy, {"cos": "cos", "linear": "linear"})
        div_factor = check_float(div_factor, "div_factor", minimum=0.0, min_inclusive=False)
        final_div_factor = check_float(final_div_factor, "final_div_factor", minimum=0.0,
                                       min_inclusive=False)
        total = self.total_steps
        if three_phase:
            self._phases = [
                (float(pct_start * total) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (float(2 * pct_start * total) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
                (total - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
            ]
        else:
            self._phases = [
                (float(pct_start * total) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                (total - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
            ]
        max_lrs = _per_group("max_lr", optimizer, max_lr, minimum=0.0)
        if last_epoch == -1:
            for high, group in zip(max_lrs, optimizer.param_groups):
                group["initial_lr"] = high / div_factor
                group["max_lr"] = high
                group["min_lr"] = group["initial_lr"] / final_div_factor
        self.cycle_momentum = bool(cycle_momentum)
        if self.cycle_momentum:
            self._momentum_key = _momentum_key(optimizer)
            highs = _per_group("max_momentum", optimizer, max_momentum,
                               minimum=0.0, maximum=1.0, max_inclusive=False)
            lows = _per_group("base_momentum", optimizer, base_momentum,
                              minimum=0.0, maximum=1.0, max_inclusive=False)
            if last_epoch == -1:
                for high, low, group in zip(highs, lows, optimizer.param_groups):
                    _set_momentum(group, self._momentum_key, high)
                    group["max_momentum"] = high
                    group["base_momentum"] = low
        super().__init__(optimizer, last_epoch)

    def _interpolate(self, start, end, pct):
        if self._anneal == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {step} times, beyond total_steps = "
                             f"{self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr_from, lr_to, m_from, m_to) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    # a phase of no steps (pct_start * total_steps <= 1) is over at once,
                    # where PyTorch divides by zero
                    pct = (step - start) / (end - start) if end > start else 1.0
                    lrs.append(self._interpolate(group[lr_from], group[lr_to], pct))
                    if self.cycle_momentum:
                        _set_momentum(group, self._momentum_key,
                                      self._interpolate(group[m_from], group[m_to], pct))
                    break
                start = end
        return lrs
