"""The Keras-style optimizer base class.

An optimizer turns gradients into in-place parameter updates::

    opt = fastnn.optimizers.Adam(learning_rate=1e-3)
    opt.apply(grads, params)                       # or opt.apply_gradients(zip(grads, params))

What happens in one :meth:`Optimizer.apply`, in order:

1. gradient clipping, if asked for (``clipvalue`` per element, ``clipnorm`` per
   tensor, ``global_clipnorm`` over all tensors together), on copies of the
   gradients so the caller's arrays are left alone;
2. the update rule of the subclass: one backend op (``sgd_update``,
   ``adam_update``, ``rmsprop_update``, ``adagrad_update``) per parameter, with
   Keras's decoupled ``weight_decay`` (``param -= lr * weight_decay * param``)
   passed to the op, which applies it before the step;
3. ``iterations += 1``.

The update formulas are torch.optim's (the papers' algorithms); the subclasses
only map Keras's argument names and defaults onto the backend ops, which the
PyTorch-style :mod:`fastnn.optim` calls too.

State ("slots": momentum buffers, moment estimates...) is allocated on the first
update of each parameter and keyed by the parameter's *position* in the list
passed to ``apply``, so always pass the parameters in the same order.
:meth:`Optimizer.get_state` / :meth:`Optimizer.set_state` export and restore it
as plain arrays and ints (no pickle), for saving.

For compiled training loops, :meth:`Optimizer.build` allocates every slot up
front, :attr:`Optimizer.update_rule` names the backend op and
:meth:`Optimizer.update_hyperparameters` gives its keyword arguments, so a
fused kernel can run the same update on the same state arrays.
"""
from __future__ import annotations

import numbers
import weakref

import numpy as np

from fastnn import backends
from fastnn._validation import check_float, check_int
from fastnn.optimizers import schedules as _schedules

# Far below a C long's limit, so a fused chunk's step + its batches never overflows.
_MAX_ITERATIONS = 2 ** 62

__all__ = ["Optimizer"]


def _check_learning_rate(value, name="learning_rate"):
    """A float learning rate (>= 0: a schedule or a callback may anneal it to 0, and
    a model saved then must load again; torch.optim takes 0 too) or a schedule."""
    if isinstance(value, _schedules.LearningRateSchedule):
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a float >= 0 or a LearningRateSchedule "
            f"(fastnn.optimizers.schedules), got {type(value).__name__}")
    return check_float(value, name, minimum=0.0)


def check_flag(value, name) -> bool:
    """A bool argument (``nesterov``, ``amsgrad``, ``centered``); 0/1 and strings are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _check_clip(value, name):
    return check_float(value, name, minimum=0.0, min_inclusive=False, allow_none=True)


class Optimizer:
    """Base class of the Keras-style optimizers.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule
        Step size, > 0; a schedule is called with :attr:`iterations`.
    weight_decay : float, optional
        Decoupled weight decay: before each step ``param -= lr * weight_decay * param``.
    clipnorm : float, optional
        Clip each gradient tensor to L2 norm at most ``clipnorm``.
    clipvalue : float, optional
        Clip each gradient element to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, optional
        Scale all gradients together so their joint L2 norm is at most this.
    name : str, optional
        Defaults to Keras's name for the optimizer ('SGD', 'adam', 'adamw',
        'rmsprop', 'adagrad'); the class name for other subclasses.

    At most one of ``clipnorm``, ``clipvalue`` and ``global_clipnorm`` may be set.
    """

    #: Backend op that performs the update ("sgd", "adam", "rmsprop" or "adagrad").
    update_rule: str = ""
    #: Names of the per-parameter state arrays, in the order the op takes them.
    slot_names: tuple = ()

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None):
        self._learning_rate = _check_learning_rate(learning_rate)
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0, allow_none=True)
        self.clipnorm = _check_clip(clipnorm, "clipnorm")
        self.clipvalue = _check_clip(clipvalue, "clipvalue")
        self.global_clipnorm = _check_clip(global_clipnorm, "global_clipnorm")
        given = [k for k in ("clipnorm", "clipvalue", "global_clipnorm") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                "only one of clipnorm, clipvalue and global_clipnorm can be set; got "
                + ", ".join(f"{k}={getattr(self, k)}" for k in given))
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.name = name or type(self).__name__
        self.iterations = 0
        # _slots[i] is {slot name: array} for the parameter at position i (None until its first update).
        self._slots: list = []
        # which parameter array each position's state belongs to (weak references; None
        # where not yet bound, e.g. after set_state), and the state of parameters not
        # passed lately (a frozen layer's), kept for when they come back: the state
        # follows the parameter, not its position (see _ensure_slots)
        self._slot_owners: list = []
        self._parked: dict = {}

    # -- steps ---------------------------------------------------------------------------
    @property
    def iterations(self) -> int:
        """Updates applied so far (a schedule's step; Adam's bias correction counts them)."""
        return self._iterations

    @iterations.setter
    def iterations(self, value):
        # the compiled updates count steps in a C long; a negative count makes Adam's
        # bias correction NaN
        self._iterations = check_int(value, "iterations", minimum=0, maximum=_MAX_ITERATIONS)

    # -- learning rate ------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate as given: a float or a schedule (see :meth:`current_learning_rate`).

        Assigning a float sets a new constant rate (callbacks such as
        ``ReduceLROnPlateau`` do this; 0 is allowed here so a schedule callback
        may anneal to zero); assigning a schedule replaces the schedule. As in
        Keras, a float cannot replace a schedule (TypeError): build the
        optimizer with a float learning rate if it must be settable.
        """
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        value = _check_learning_rate(value)
        if (isinstance(self._learning_rate, _schedules.LearningRateSchedule)
                and not isinstance(value, _schedules.LearningRateSchedule)):
            raise TypeError(
                f"this optimizer was created with a LearningRateSchedule "
                f"({type(self._learning_rate).__name__}) as learning_rate, so its learning rate "
                f"cannot be set to a float; create the optimizer with a float learning_rate "
                f"if it must be settable")
        self._learning_rate = value

    def current_learning_rate(self) -> float:
        """The rate the next update uses: the float, or ``schedule(iterations)``."""
        lr = self._learning_rate
        if isinstance(lr, _schedules.LearningRateSchedule):
            return float(lr(self.iterations))
        return lr

    # -- the update ---------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars):
        """Update each parameter in place from its gradient.

        Parameters
        ----------
        grads_and_vars : iterable of (grad, param) pairs of NumPy arrays
        """
        try:
            pairs = list(grads_and_vars)
        except TypeError:
            raise TypeError("grads_and_vars must be an iterable of (grad, param) pairs") from None
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"grads_and_vars[{i}] must be a (grad, param) pair, got {type(pair).__name__}")
        self.apply([g for g, _ in pairs], [p for _, p in pairs])

    def apply(self, grads, params):
        """Update ``params`` in place from ``grads`` (two lists aligned by position)."""
        grads, params = self._check_grads_and_params(grads, params)
        self._ensure_slots(params)
        grads = self._clip(grads)
        ops = backends.get()
        lr = self.current_learning_rate()
        step = self.iterations + 1
        for i, (g, p) in enumerate(zip(grads, params)):
            self._update(ops, p, g, self._slots[i], lr, step)
        self.iterations = step

    def _update(self, ops, param, grad, slots, lr, step):
        """One backend op call for one parameter (subclasses)."""
        raise NotImplementedError

    def update_hyperparameters(self) -> dict:
        """Keyword arguments of the backend op besides the arrays, ``lr`` and ``step``."""
        raise NotImplementedError

    def _decay_kwargs(self):
        return {"weight_decay": self.weight_decay or 0.0, "decoupled_weight_decay": True}

    # -- gradient clipping ---------------------------------------------------------------
    def _clip(self, grads):
        if self.clipvalue is None and self.clipnorm is None and self.global_clipnorm is None:
            return grads
        grads = [g.copy() for g in grads]  # clip copies: the caller's gradients stay as they were
        ops = backends.get()
        if self.clipvalue is not None:
            ops.clip_by_value(grads, self.clipvalue)
        elif self.clipnorm is not None:
            ops.clip_by_norm(grads, self.clipnorm)
        else:
            ops.clip_by_global_norm(grads, self.global_clipnorm)
        return grads

    # -- state ---------------------------------------------------------------------------
    def _new_slots(self, param) -> dict:
        """Fresh state arrays for ``param`` (subclasses: zeros, or an initial value)."""
        return {name: np.zeros_like(param) for name in self.slot_names}

    def build(self, params):
        """Allocate the state of every parameter now (otherwise done on the first update)."""
        params = list(params)
        self._check_params(params)
        self._ensure_slots(params)

    def _bind(self, params):
        """Line the state up with ``params``: each array gets the state it had, wherever
        it was in the list before (as in Keras, state belongs to a variable). When a
        layer is frozen or unfrozen, ``trainable_weights`` shifts; by position, the
        next layer would take over the frozen one's momentum (or fail on its shape)."""
        owners = self._slot_owners
        if len(owners) == len(params) and all(
                r is not None and r() is p for r, p in zip(owners, params)):
            return  # the usual case: the same arrays as last time
        if not any(r is not None and r() is not None for r in owners):
            # nothing bound yet (a fresh optimizer, set_state, or a copy made without
            # its model): by position
            self._slot_owners = [weakref.ref(p) for p in params]
            return
        known = {}
        for key, (ref, slots) in list(self._parked.items()):
            if ref() is not None:
                known[key] = (ref, slots)
        for ref, slots in zip(owners, self._slots):
            if ref is not None and ref() is not None and slots is not None:
                known[id(ref())] = (ref, slots)
        new = []
        for p in params:
            ref, slots = known.pop(id(p), (None, None))
            new.append(slots if ref is not None and ref() is p else None)
        self._parked = known
        self._slots = new
        self._slot_owners = [weakref.ref(p) for p in params]

    def _ensure_slots(self, params):
        """State for every parameter, for the current settings: a parameter seen before
        keeps its state (see :meth:`_bind`); a setting turned on after the state was
        made (SGD's or RMSprop's momentum, Adam's amsgrad, RMSprop's centered) gets its
        arrays then, fresh (zeros), as the state of every option starts."""
        self._bind(params)
        if len(self._slots) < len(params):
            self._slots.extend([None] * (len(params) - len(self._slots)))
        names = self.slot_names
        # every existing state has these names once checked; look again only when the
        # settings change them (this runs every step of the per-op loop)
        recheck = names != getattr(self, "_names_checked", None)
        for i, p in enumerate(params):
            slots = self._slots[i]
            if slots is None:
                self._slots[i] = self._new_slots(p)
                continue
            if recheck:
                missing = [name for name in names if slots.get(name) is None]
                if missing:
                    fresh = self._new_slots(p)
                    for name in missing:
                        slots[name] = fresh[name]
            for name, arr in slots.items():
                if arr is not None and (arr.shape != p.shape or arr.dtype != p.dtype):
                    raise ValueError(
                        f"params[{i}] has shape {p.shape} and dtype {p.dtype}, but this optimizer's "
                        f"state for position {i} ({name!r}) has shape {arr.shape} and dtype "
                        f"{arr.dtype}; pass the parameters in the same order every time, or use a "
                        f"new optimizer for a different model")
        self._names_checked = names

    @property
    def slots(self) -> list:
        """Per parameter position (of the parameters last passed), the dict
        ``{slot name: state array}`` (live arrays)."""
        return self._slots

    def state_for(self, params) -> dict:
        """:meth:`get_state` lined up with ``params`` (what a saved model's weights are):
        state made for them (zeros) if they never had any, the state of other
        parameters (a frozen layer's) kept aside; as is if nothing was updated yet."""
        if self._slots:
            self._ensure_slots(list(params))
        return self.get_state()

    def bind(self, params):
        """Tie the state's positions to ``params`` now (after :meth:`set_state` from a
        file saved with :meth:`state_for` of the same parameters), rather than to
        whatever is passed next: by then a layer may have been frozen or unfrozen."""
        params = list(params)
        if len(params) == len(self._slots):
            self._slot_owners = [weakref.ref(p) for p in params]
            self._parked = {}

    def __getstate__(self):
        # Weak references do not pickle or deepcopy: the arrays themselves go along, so
        # a copy of a model (its arrays copied once, in the same pass) keeps each
        # state with its weight, a frozen layer's too.
        state = self.__dict__.copy()
        state["_slot_owners"] = [r() if r is not None else None for r in self._slot_owners]
        state["_parked"] = [(ref(), slots) for ref, slots in self._parked.values()
                            if ref() is not None]
        return state

    def __setstate__(self, state):
        if "iterations" in state:  # pickled before iterations became a checked property
            state["_iterations"] = state.pop("iterations")
        owners = state.get("_slot_owners", [None] * len(state.get("_slots", [])))
        state["_slot_owners"] = [weakref.ref(a) if a is not None else None for a in owners]
        parked = state.get("_parked", [])
        state["_parked"] = {id(a): (weakref.ref(a), slots) for a, slots in parked}
        self.__dict__.update(state)

    def get_state(self) -> dict:
        """The optimizer's state as plain data: ``{"iterations": int, slot name: [arrays]}``.

        Each slot list holds one array (a copy) per parameter position, in the
        order of the parameters passed to :meth:`apply`.
        """
        if any(s is None for s in self._slots):
            raise ValueError("optimizer state is incomplete: some parameters were never updated")
        state = {"iterations": int(self.iterations)}
        for name in self.slot_names:
            state[name] = [np.array(s[name], copy=True) for s in self._slots]
        return state

    def set_state(self, state: dict):
        """Restore what :meth:`get_state` returned (arrays are copied)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        missing = [k for k in ("iterations",) + tuple(self.slot_names) if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing} for {type(self).__name__}")
        unknown = sorted(set(state) - {"iterations", *self.slot_names})
        if unknown:
            raise ValueError(f"state has unknown keys {unknown} for {type(self).__name__}")
        iterations = check_int(state["iterations"], "state['iterations']", minimum=0,
                               maximum=_MAX_ITERATIONS)
        lists = {}
        for name in self.slot_names:
            arrays = state[name]
            if not isinstance(arrays, (list, tuple)):
                raise TypeError(f"state[{name!r}] must be a list of arrays, got {type(arrays).__name__}")
            lists[name] = [np.array(a, copy=True, order="C") for a in arrays]
            for j, a in enumerate(lists[name]):
                if a.dtype not in (np.float32, np.float64):
                    raise TypeError(f"state[{name!r}][{j}] must be a float32/float64 array, got {a.dtype}")
        counts = {len(v) for v in lists.values()}
        if len(counts) > 1:
            raise ValueError(f"state slot lists have different lengths: { {k: len(v) for k, v in lists.items()} }")
        n = counts.pop() if counts else 0
        slots = [{name: lists[name][i] for name in self.slot_names} for i in range(n)]
        for i, s in enumerate(slots):
            shapes = {a.shape for a in s.values()}
            if len(shapes) > 1:
                raise ValueError(f"state arrays of parameter {i} have different shapes: {sorted(shapes)}")
        self._slots = slots
        self._slot_owners = [None] * len(slots)  # bound to the next parameters, in order
        self._parked = {}
        self.iterations = iterations

    # -- config --------------------------------------------------------------------------
    def get_config(self) -> dict:
        """JSON-able constructor arguments (a schedule is stored as its serialized dict)."""
        lr = self._learning_rate
        if isinstance(lr, _schedules.LearningRateSchedule):
            lr = _schedules.serialize(lr)
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config: dict, custom_objects=None):
        """Build an optimizer from :meth:`get_config`'s output."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = _schedules.deserialize(config["learning_rate"], custom_objects)
        return cls(**config)

    # -- validation ----------------------------------------------------------------------
    @staticmethod
    def _check_params(params):
        for i, p in enumerate(params):
            if not isinstance(p, np.ndarray):
                raise TypeError(f"params[{i}] must be a NumPy array (a live parameter), got {type(p).__name__}")
            if p.dtype not in (np.float32, np.float64):
                raise TypeError(f"params[{i}] must be float32 or float64, got {p.dtype}")
            if not p.flags.writeable or not p.flags.c_contiguous:
                raise ValueError(f"params[{i}] must be a writeable C-contiguous array (it is updated in place)")

    def _check_grads_and_params(self, grads, params):
        if isinstance(grads, np.ndarray) or isinstance(params, np.ndarray):
            raise TypeError("grads and params must be lists of arrays, not single arrays")
        try:
            grads, params = list(grads), list(params)
        except TypeError:
            raise TypeError("grads and params must be lists of arrays") from None
        if len(grads) != len(params):
            raise ValueError(f"got {len(grads)} gradients for {len(params)} params")
        self._check_params(params)
        out = []
        for i, (g, p) in enumerate(zip(grads, params)):
            if g is None:
                raise ValueError(f"grads[{i}] is None (no gradient for params[{i}])")
            if not isinstance(g, np.ndarray):
                g = np.asarray(g)
            if g.dtype.kind not in "biuf":
                raise TypeError(f"grads[{i}] must hold real numbers, got dtype {g.dtype}")
            if g.shape != p.shape:
                raise ValueError(f"grads[{i}] has shape {g.shape} but params[{i}] has shape {p.shape}")
            out.append(np.ascontiguousarray(g, dtype=p.dtype))
        return out, params

    def __repr__(self):
        return f"{type(self).__name__}(learning_rate={self._learning_rate!r}, name={self.name!r})"
