"""Learning-rate schedules (Keras semantics): ``lr = schedule(step)``.

A schedule maps the optimizer's step counter (``optimizer.iterations``, the
number of updates already applied, starting at 0) to a learning rate. It is
accepted anywhere a learning rate is::

    lr = fastnn.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1000, decay_rate=0.96)
    opt = fastnn.optimizers.SGD(learning_rate=lr)

The schedules cover the seed's three kinds of learning rate: fixed (a float),
decaying (``ExponentialDecay``, ``InverseTimeDecay``, ``PolynomialDecay``,
``PiecewiseConstantDecay``, ``CosineDecay``, ``CosineDecayRestarts``) and
increasing (the linear warm-up of ``CosineDecay(warmup_target=..., warmup_steps=...)``).

``__call__`` takes an int, a float or a NumPy array of steps: a scalar step
gives a Python float, an array gives an array of learning rates (handy to
precompute the rates of a chunk of steps).
"""
from __future__ import annotations

import math

import numpy as np

from fastnn._serialization import Registry
from fastnn._validation import check_float

__all__ = [
    "LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "InverseTimeDecay",
    "PolynomialDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize", "get",
]


def _as_steps(step):
    if isinstance(step, (bool, str, bytes)):
        raise TypeError(f"step must be a number or an array of numbers, got {step!r}")
    try:
        steps = np.asarray(step, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"step must be a number or an array of numbers, got {step!r}") from None
    if not np.isfinite(steps).all() or (steps < 0).any():
        raise ValueError(f"step must be finite and >= 0, got {step!r}")
    return steps


def _result(value):
    """A Python float for a scalar step, else the array."""
    return float(value) if np.ndim(value) == 0 else value


class LearningRateSchedule:
    """Base class: subclasses implement :meth:`decay` on a float64 array of steps.

    Custom schedules may instead override ``__call__(step) -> float`` directly
    (and ``get_config``); the optimizers only call ``schedule(step)``.
    """

    def __call__(self, step):
        rate = self.decay(_as_steps(step))
        if not np.all(np.isfinite(rate)):
            raise ValueError(f"{type(self).__name__} gave a non-finite learning rate at step {step!r}")
        return _result(rate)

    def decay(self, step: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement decay(step) or __call__(step)")

    def get_config(self) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement get_config()")

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self):
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


def _check_lr(value, name):
    return check_float(value, name, minimum=0.0)


class _StepDecay(LearningRateSchedule):
    """A rate that falls with ``p = step / decay_steps`` (``floor(p)`` with ``staircase``):
    the shared arguments of :class:`ExponentialDecay` and :class:`InverseTimeDecay`."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = _check_lr(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = check_float(decay_steps, "decay_steps", minimum=0.0, min_inclusive=False)
        self.decay_rate = check_float(decay_rate, "decay_rate", minimum=0.0)
        self.staircase = bool(staircase)
        self.name = name

    def _progress(self, step):
        p = step / self.decay_steps
        return np.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``.

    With ``staircase=True`` the exponent is ``floor(step / decay_steps)``: the
    rate drops by the factor ``decay_rate`` once every ``decay_steps`` steps.
    """

    def decay(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, ``values[-1]`` after the last boundary.
    """

    def __init__(self, boundaries, values, name=None):
        if not isinstance(boundaries, (list, tuple, np.ndarray)) or not isinstance(values, (list, tuple, np.ndarray)):
            raise TypeError("boundaries and values must be lists of numbers")
        if len(values) != len(boundaries) + 1:
            raise ValueError(
                f"values must have exactly one more element than boundaries; got "
                f"{len(boundaries)} boundaries and {len(values)} values")
        self.boundaries = [check_float(b, f"boundaries[{i}]") for i, b in enumerate(boundaries)]
        if any(b1 >= b2 for b1, b2 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing, got {self.boundaries}")
        self.values = [_check_lr(v, f"values[{i}]") for i, v in enumerate(values)]
        self.name = name

    def decay(self, step):
        # searchsorted(side='left') counts the boundaries strictly below step,
        # which is the index of the interval (b[i-1], b[i]] holding it.
        index = np.searchsorted(np.asarray(self.boundaries), step, side="left")
        return np.asarray(self.values, dtype=np.float64)[index]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``
    (``floor(step / decay_steps)`` with ``staircase=True``)."""

    def decay(self, step):
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step))


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``.

    Without ``cycle`` the step is capped at ``decay_steps`` (the rate then stays
    at ``end_learning_rate``); with ``cycle`` the horizon grows to the first
    multiple of ``decay_steps`` that is >= step, so the rate decays again
    from a lower peak.
    """

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name=None):
        self.initial_learning_rate = _check_lr(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = check_float(decay_steps, "decay_steps", minimum=0.0, min_inclusive=False)
        self.end_learning_rate = _check_lr(end_learning_rate, "end_learning_rate")
        self.power = check_float(power, "power")
        self.cycle = bool(cycle)
        self.name = name

    def decay(self, step):
        decay_steps = self.decay_steps
        if self.cycle:
            # Keras: the multiplier is 1 at step 0, otherwise ceil(step / decay_steps).
            decay_steps = decay_steps * np.where(step == 0, 1.0, np.ceil(step / decay_steps))
        else:
            step = np.minimum(step, decay_steps)
        fraction = 1.0 - step / decay_steps
        return (self.initial_learning_rate - self.end_learning_rate) * fraction ** self.power + self.end_learning_rate

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power,
                "cycle": self.cycle, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay, optionally after a linear warm-up (SGDR without restarts).

    Without ``warmup_target``: ``lr = initial * ((1 - alpha) * c + alpha)`` with
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``.

    With ``warmup_target``: the rate rises linearly from ``initial_learning_rate``
    to ``warmup_target`` over ``warmup_steps`` steps (the seed's "increasing"
    learning rate), then decays from ``warmup_target`` as above over
    ``decay_steps`` further steps. ``warmup_steps`` is ignored without
    ``warmup_target``, as in Keras.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name=None, warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = _check_lr(initial_learning_rate, "initial_learning_rate")
        self.decay_steps = check_float(decay_steps, "decay_steps", minimum=0.0, min_inclusive=False)
        self.alpha = check_float(alpha, "alpha", minimum=0.0, maximum=1.0)
        self.name = name
        self.warmup_target = check_float(warmup_target, "warmup_target", minimum=0.0, allow_none=True)
        self.warmup_steps = check_float(warmup_steps, "warmup_steps", minimum=0.0)

    def _cosine(self, step, peak):
        c = 0.5 * (1.0 + np.cos(math.pi * step / self.decay_steps))
        return peak * ((1.0 - self.alpha) * c + self.alpha)

    def decay(self, step):
        if self.warmup_target is None:
            return self._cosine(np.minimum(step, self.decay_steps), self.initial_learning_rate)
        step = np.minimum(step, self.decay_steps + self.warmup_steps)
        # np.where evaluates both branches; keep the warm-up branch finite at warmup_steps == 0.
        warm_fraction = step / max(self.warmup_steps, 1e-300)
        warm = self.initial_learning_rate + (self.warmup_target - self.initial_learning_rate) * warm_fraction
        decayed = self._cosine(step - self.warmup_steps, self.warmup_target)
        return np.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter 2017).

    Period ``i`` (from 0) lasts ``first_decay_steps * t_mul ** i`` steps and
    starts from ``initial_learning_rate * m_mul ** i``; within a period the rate
    follows ``(1 - alpha) * 0.5 * (1 + cos(pi * f)) + alpha`` times the initial
    rate, with the cosine part scaled by ``m_mul ** i`` (Keras's formula) and
    ``f`` the fraction of the period done.

    With ``t_mul < 1`` the periods shrink and all of them together last
    ``first_decay_steps / (1 - t_mul)`` steps; from there on the rate stays at
    its floor ``alpha * initial_learning_rate`` (Keras's formula gives NaN).
    """

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name=None):
        self.initial_learning_rate = _check_lr(initial_learning_rate, "initial_learning_rate")
        self.first_decay_steps = check_float(first_decay_steps, "first_decay_steps", minimum=0.0,
                                             min_inclusive=False)
        self.t_mul = check_float(t_mul, "t_mul", minimum=0.0, min_inclusive=False)
        self.m_mul = check_float(m_mul, "m_mul", minimum=0.0)
        self.alpha = check_float(alpha, "alpha", minimum=0.0, maximum=1.0)
        self.name = name

    def decay(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            i_restart = np.floor(fraction)
            fraction = fraction - i_restart
        else:
            # Periods grow (or shrink) geometrically: the start of period i is
            # (1 - t_mul**i) / (1 - t_mul) first periods in.
            ended = fraction * (1.0 - self.t_mul) >= 1.0  # only when t_mul < 1
            fraction = np.where(ended, 0.0, fraction)
            i_restart = np.floor(np.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
            sum_r = (1.0 - self.t_mul ** i_restart) / (1.0 - self.t_mul)
            fraction = np.where(ended, 1.0, (fraction - sum_r) / self.t_mul ** i_restart)
        cosine = 0.5 * self.m_mul ** i_restart * (1.0 + np.cos(math.pi * fraction))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_REGISTRY = Registry("learning rate schedule", LearningRateSchedule, (
    ExponentialDecay, PiecewiseConstantDecay, InverseTimeDecay, PolynomialDecay, CosineDecay,
    CosineDecayRestarts))


def serialize(schedule: LearningRateSchedule) -> dict:
    """``{"class_name": ..., "config": ...}`` (JSON-able) for a schedule."""
    if not isinstance(schedule, LearningRateSchedule):
        raise TypeError(f"schedule must be a LearningRateSchedule, got {type(schedule).__name__}")
    return _REGISTRY.serialize(schedule)


def deserialize(config: dict, custom_objects=None) -> LearningRateSchedule:
    """Rebuild a schedule from :func:`serialize`'s output.

    Only the schedules of this module (and LearningRateSchedule subclasses passed
    in ``custom_objects``, a dict ``name -> class``) can be built; nothing named in
    ``config`` is imported.
    """
    return _REGISTRY.deserialize(config, custom_objects)


def get(identifier, custom_objects=None):
    """A schedule from a schedule object or a :func:`serialize` dict."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects)
    raise TypeError(f"cannot interpret {identifier!r} as a learning rate schedule")
