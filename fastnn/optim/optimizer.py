"""The base of the PyTorch-style optimizers (``torch.optim.Optimizer``'s interface).

An optimizer holds ``param_groups`` (a list of dicts: the parameters and their
hyper-parameters, editable between steps, which is how schedulers change
``'lr'``) and ``state`` (per-parameter buffers such as Adam's moment estimates).
``step()`` hands each parameter, its gradient and its buffers to one backend
update op (``sgd_update``, ``adam_update``, ...), the same ops the Keras-style
optimizers call: the update rules exist once, in the backends.

The ops work in place on flat, contiguous arrays. A parameter's buffers are
allocated in the parameter's own memory layout (``nn.Linear`` keeps its weight
column-major), so the flat views of parameter, gradient and buffers line up
element for element without copies.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping

import numpy as np

from fastnn import backends
from fastnn._validation import check_float
from fastnn.tensor import Tensor, enable_grad

__all__ = ["Optimizer"]


def _like(array, ref):
    """``array``'s values in a new array with ``ref``'s dtype, shape and memory layout."""
    out = np.empty_like(ref)  # order='K': the layout of ref
    out[...] = array
    return out


def _flat(array):
    """A 1-D view of a C- or F-contiguous array, in memory order (never a copy)."""
    return array.ravel(order="K")


def _to_numpy(value, name):
    """A state value (ndarray, Tensor, torch tensor, number) as an ndarray or number;
    None (a buffer not made yet: SGD without momentum keeps one) stays None."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value.data
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold numbers, got dtype {value.dtype}")
        return value
    if isinstance(value, numbers.Number):
        return value
    raise TypeError(f"{name} must be an array or a number, got {type(value).__name__}")


class Optimizer:
    """Base class: parameter groups, state, ``zero_grad``, ``step``, ``state_dict``.

    Parameters
    ----------
    params : iterable of Tensor, or iterable of dict
        The parameters to optimise (``model.parameters()``), or parameter
        groups: dicts with a ``'params'`` entry and optional per-group
        hyper-parameters overriding ``defaults``.
    defaults : dict
        The hyper-parameters of the subclass, with their values.

    Subclasses define ``_check_group(group)`` (validate hyper-parameters),
    ``_init_state(param, group)`` (allocate buffers) and ``_step_group(ops,
    group)``, which reads the group's hyper-parameters once and calls the
    backend op for each ``(param, grad, state, views)`` of :meth:`_with_gradients`.
    """

    #: Names of the state entries that are arrays shaped like the parameter.
    _buffer_names: tuple = ()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}
        self.param_groups = []
        self._views = {}  # param -> (param array, {name: flat view}) for the current arrays
        self._steps_taken = 0
        if isinstance(params, (Tensor, np.ndarray)):
            raise TypeError(
                "params must be an iterable of Tensors or of dicts (e.g. model.parameters()), "
                f"got a single {type(params).__name__}")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(
                f"params must be an iterable of Tensors or dicts, got {type(params).__name__}") from None
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], Mapping):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    # -- groups -----------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a dict ``{'params': [...], hyper-parameter: value, ...}`` to :attr:`param_groups`."""
        if not isinstance(param_group, Mapping):
            raise TypeError(f"a parameter group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but params[{i}] is a "
                                f"{type(p).__name__}")
            if p.data.dtype not in (np.float32, np.float64):
                raise TypeError(f"params[{i}] has dtype {p.data.dtype}; only float32/float64 "
                                "tensors can be optimized")
            if not p.is_leaf:
                raise ValueError(f"params[{i}] is the result of an operation (not a leaf); "
                                 "optimize the tensors it was computed from")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears twice in the same parameter group")
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in existing for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ValueError(f"unknown hyper-parameter(s) {sorted(unknown)} for "
                             f"{type(self).__name__}; expected some of {sorted(self.defaults)}")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        group["params"] = params
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):  # pragma: no cover - every subclass overrides it
        pass

    # -- gradients and steps ----------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of every parameter: to None (default) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given.

        Parameters
        ----------
        closure : callable, optional
            Re-evaluates the model and returns the loss (zero_grad, forward,
            backward); called once, with gradients enabled, before the update.
        """
        loss = None
        if closure is not None:
            if not callable(closure):
                raise TypeError(f"closure must be callable, got {type(closure).__name__}")
            with enable_grad():
                loss = closure()
        ops = backends.get()
        for group in self.param_groups:
            self._step_group(ops, group)
        self._steps_taken += 1
        return loss

    def _step_group(self, ops, group):  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def _with_gradients(self, group):
        """Yield ``(param, flat grad, state, flat views)`` for the group's parameters with a gradient.

        State is allocated on a parameter's first update.
        """
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = self._init_state(p, group)
            views = self._flat_views(p)
            yield p, self._flat_grad(grad, p.data), state, views

    def _flat_views(self, p):
        """Flat views of ``p``'s values and buffers, rebuilt when ``p.data`` was replaced."""
        cached = self._views.get(p)
        data = p.data
        if cached is not None and cached[0] is data:
            return cached[1]
        if not (data.flags.c_contiguous or data.flags.f_contiguous):
            p.data = data = np.ascontiguousarray(data)
        state = self.state[p]
        views = {"param": _flat(data)}
        for name in self._buffer_names:
            buf = state.get(name)
            if buf is None:
                continue
            if buf.dtype != data.dtype or buf.strides != data.strides:
                state[name] = buf = _like(buf, data)  # follow a parameter converted by .to()
            views[name] = _flat(buf)
        self._views[p] = (data, views)
        return views

    @staticmethod
    def _flat_grad(grad, data):
        """The gradient as a flat array in the element order of ``_flat(data)``."""
        g = grad.data if isinstance(grad, Tensor) else grad
        if not isinstance(g, np.ndarray):
            raise TypeError(f"a parameter's .grad must be a Tensor or a numpy array, got "
                            f"{type(grad).__name__}")
        if g.shape != data.shape:
            raise ValueError(f"a gradient has shape {g.shape} but its parameter has shape {data.shape}")
        if g.strides != data.strides or g.dtype != data.dtype:
            g = _like(g, data)
        return _flat(g)

    # -- saving -------------------------------------------------------------------------
    def state_dict(self):
        """The optimizer's state as plain data (PyTorch's layout).

        ``{'state': {index: {name: array or int}}, 'param_groups': [{..., 'params': [index, ...]}]}``
        with parameters numbered across groups in order; arrays are copies.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {}
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[p].items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore a state saved by :meth:`state_dict` (PyTorch's optimizer state dicts load too).

        Raises
        ------
        ValueError
            The groups or parameter counts differ, or a buffer's shape does not
            match its parameter. Nothing changes unless every check passes.
        """
        if not isinstance(state_dict, Mapping) or "param_groups" not in state_dict \
                or "state" not in state_dict:
            raise TypeError("state_dict must be a dict with 'state' and 'param_groups' "
                            "(as returned by Optimizer.state_dict())")
        if not isinstance(state_dict["param_groups"], (list, tuple)):
            raise TypeError(f"state_dict['param_groups'] must be a list of dicts, got "
                            f"{type(state_dict['param_groups']).__name__}")
        if not isinstance(state_dict["state"], Mapping):
            raise TypeError(f"state_dict['state'] must be a dict, got "
                            f"{type(state_dict['state']).__name__}")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        by_index = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f"param_groups[{i}] must be a dict with 'params', got "
                                 f"{type(saved).__name__}")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {i} has {len(group['params'])} parameters but "
                                 f"the loaded one has {len(saved['params'])}")
            by_index.update(zip(saved["params"], group["params"]))
        new_state = {}
        for key, entries in dict(state_dict["state"]).items():
            if key not in by_index:
                raise ValueError(f"loaded state refers to parameter {key!r}, which no group holds")
            p = by_index[key]
            restored = {}
            for name, value in dict(entries).items():
                value = _to_numpy(value, f"state[{key!r}][{name!r}]")
                if name in self._buffer_names and isinstance(value, np.ndarray):
                    if value.shape != p.data.shape:
                        raise ValueError(f"state[{key!r}][{name!r}] has shape {value.shape} but "
                                         f"its parameter has shape {p.data.shape}")
                    value = _like(value, p.data)
                elif name == "step":
                    value = int(np.asarray(value).item())
                restored[name] = value
            new_state[p] = restored
        # every group's settings checked before any is changed
        updated = []
        for saved, group in zip(saved_groups, self.param_groups):
            candidate = dict(group)
            candidate.update((name, value) for name, value in saved.items() if name != "params")
            self._check_group(candidate)
            updated.append(candidate)
        for group, candidate in zip(self.param_groups, updated):
            group.update(candidate)   # in place: schedulers hold the group dicts
        self.state = new_state
        self._views = {}

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def check_lr(value, name="lr"):
    """A learning rate: a float >= 0."""
    return check_float(value, name, minimum=0.0)


def check_bool(value, name):
    """A bool argument (``amsgrad``, ``nesterov``, ``centered``)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)
