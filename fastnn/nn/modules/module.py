"""``Module`` and ``Parameter``: the building blocks of PyTorch-style models.

A :class:`Module` holds :class:`Parameter` tensors and child modules as
attributes; assigning one registers it, so ``parameters()``,
``named_parameters()`` (keys such as ``'fc1.weight'``), ``state_dict()`` and
``zero_grad()`` find them without any further bookkeeping::

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 64)
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc2(fastnn.relu(self.fc1(x)))

Registered objects also live in the instance ``__dict__``, so reading
``self.fc1`` in ``forward`` is a plain attribute lookup.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from fastnn._validation import _to_array
from fastnn.tensor import Tensor, _is_cpu_device, _make_array

__all__ = ["Module", "Parameter"]



def _converted(array, dtype):
    """``array`` as ``dtype`` with the same memory layout (a Fortran-order weight
    stays Fortran-order) and, like a fresh parameter, 64-byte aligned."""
    from fastnn.layers.base import _aligned_empty
    if array.flags.f_contiguous and not array.flags.c_contiguous:
        out = _aligned_empty(array.shape[::-1], dtype).T
    else:
        out = _aligned_empty(array.shape, dtype)
    out[...] = array
    return out

class Parameter(Tensor):
    """A tensor that is a model parameter: ``requires_grad=True`` and registered by modules.

    Parameters
    ----------
    data : array_like or Tensor
        The initial values (float32 or float64). Shared, not copied, when it
        is already an array of a float type.
    requires_grad : bool
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            from fastnn import config
            data = np.empty(0, dtype=config.floatx())
        arr = _make_array(data, None)
        if arr.dtype not in (np.float32, np.float64):
            raise TypeError(f"a Parameter must hold float32 or float64 values, got dtype {arr.dtype}")
        super().__init__(arr, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _resolve_to_dtype(args, kwargs):
    """The dtype asked for by ``Module.to(...)`` (None for a device-only call)."""
    candidates = list(args) + [kwargs.pop("dtype", None), kwargs.pop("device", None)]
    if kwargs:
        raise TypeError(f"to() got unexpected keyword argument(s) {sorted(kwargs)}")
    dtype = None
    for value in candidates:
        if value is None:
            continue
        if _is_cpu_device(value):
            continue  # fastnn runs on the CPU: nothing to move
        try:
            dt = np.dtype(value)
        except TypeError:
            raise TypeError(f"to() expects a dtype ('float32', 'float64') or 'cpu', got {value!r}") from None
        if dt not in (np.float32, np.float64):
            raise ValueError(f"to(): parameters can be float32 or float64, got {dt}")
        dtype = dt
    return dtype


class Module:
    """Base class of every layer and model (PyTorch's ``nn.Module``).

    Subclasses call ``super().__init__()`` first, assign parameters and
    sub-modules as attributes, and define :meth:`forward`. Calling the module
    calls ``forward``.

    Attributes
    ----------
    training : bool
        True in training mode (dropout active); see :meth:`train`, :meth:`eval`.
    """

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setstate__(self, state):
        # modules pickled before buffers existed
        state.setdefault("_buffers", OrderedDict())
        state.setdefault("_non_persistent_buffers", set())
        self.__dict__.update(state)

    # -- registration -----------------------------------------------------------------
    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, keep="_parameters")
            params[name] = value
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, keep="_modules")
            self._modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} "
                    "(fastnn.nn.Parameter or None expected)")
            params[name] = None
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} "
                    "(fastnn.nn.Module or None expected)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(fastnn.Tensor or None expected)")
            self._buffers[name] = value
        object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        """Unregister ``name`` as a parameter, buffer or module (it is being replaced);
        in the registry ``keep`` it stays, where it is in the order."""
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry != keep:
                self.__dict__.get(registry, {}).pop(name, None)
        self.__dict__.get("_non_persistent_buffers", set()).discard(name)

    def __delattr__(self, name):
        self._forget(name)
        object.__delattr__(self, name)

    def _check_new_name(self, name, kind, registry):
        """``name`` may name a new parameter, buffer or module (PyTorch's rules)."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"{kind} name must be a non-empty string without '.', got {name!r}")
        if registry not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if hasattr(self, name) and name not in self.__dict__[registry]:
            # as PyTorch: a method or another kind of attribute is not silently replaced
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under attribute ``name``."""
        self._check_new_name(name, "parameter", "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter {name!r} "
                            "(fastnn.nn.Parameter or None expected)")
        self._parameters[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name, tensor, persistent=True):
        """Register ``tensor`` (a Tensor or None) as buffer ``name``: state that is not a
        parameter (no gradient, not optimized), such as running statistics or a mask.

        Persistent buffers are saved in :meth:`state_dict` and loaded by
        :meth:`load_state_dict`; ``to(dtype)`` converts the floating ones.
        """
        self._check_new_name(name, "buffer", "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot register {type(tensor).__name__} as buffer {name!r} "
                            "(fastnn.Tensor or None expected)")
        persistent = _check_bool(persistent, "persistent")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name, module):
        """Register child ``module`` (a Module or None) under attribute ``name``."""
        self._check_new_name(name, "module", "_modules")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a fastnn.nn.Module")
        self._modules[name] = module
        object.__setattr__(self, name, module)

    register_module = add_module

    # -- calling --------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        """The computation of the module; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- traversal ------------------------------------------------------------------------
    def named_children(self):
        """Yield ``(name, module)`` for the direct children (a module held twice, once)."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        """Yield the direct child modules."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo=None, prefix=""):
        """Yield ``(qualified name, module)`` for this module and all below it (each once)."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self.named_children():
            yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self):
        """Yield this module and every module below it."""
        for _, module in self.named_modules():
            yield module

    def _named_members(self, registry, prefix, recurse):
        """``(dotted name, tensor)`` of one registry (parameters or buffers) of this module
        and, with ``recurse``, of every module below it; a tensor held twice, once."""
        seen = set()
        modules = self.named_modules(prefix=prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, tensor in module.__dict__[registry].items():
                if tensor is None or id(tensor) in seen:
                    continue
                seen.add(id(tensor))
                yield (f"{module_prefix}.{name}" if module_prefix else name), tensor

    def named_parameters(self, prefix="", recurse=True):
        """Yield ``(name, parameter)`` with PyTorch's dotted names (``'fc1.weight'``); each once."""
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse=True):
        """Yield every parameter (what an optimizer needs)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix="", recurse=True):
        """Yield ``(name, buffer)`` with dotted names, as :meth:`named_parameters`; each once."""
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse=True):
        """Yield every buffer."""
        for _, buffer in self.named_buffers(recurse=recurse):
            yield buffer

    def apply(self, fn):
        """Call ``fn(module)`` on every child (recursively) and then on self; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- state ------------------------------------------------------------------------------
    def _state_items(self, prefix=""):
        for name, param in self._parameters.items():
            if param is not None:
                yield prefix + name, param
        for name, buffer in self._buffers.items():
            if buffer is not None and name not in self._non_persistent_buffers:
                yield prefix + name, buffer
        for name, module in self._modules.items():
            if module is not None:
                yield from module._state_items(f"{prefix}{name}.")

    def state_dict(self, prefix="", keep_vars=False):
        """The parameters and persistent buffers by name, as in PyTorch (``'fc1.weight'``, ...).

        Values are tensors sharing memory with the parameters (detached unless
        ``keep_vars``); ``{k: v.numpy().copy() ...}`` makes a snapshot.
        """
        return OrderedDict(
            (name, param if keep_vars else param.detach()) for name, param in self._state_items(prefix)
        )

    def load_state_dict(self, state_dict, strict=True):
        """Copy parameters from ``state_dict`` (name -> NumPy array, Tensor or torch tensor).

        Parameters
        ----------
        state_dict : mapping
            As returned by :meth:`state_dict`, or by PyTorch's ``state_dict()``
            for the same architecture.
        strict : bool
            Require exactly this module's keys.

        Returns
        -------
        namedtuple ``(missing_keys, unexpected_keys)``

        Raises
        ------
        ValueError
            Missing or unexpected keys (when strict), or a shape mismatch. Nothing
            is copied unless every check passes.
        TypeError
            ``state_dict`` is not a mapping, or a value is not numeric.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}")
        strict = _check_bool(strict, "strict")
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(repr(k) for k in unexpected))
        if strict and missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(repr(k) for k in missing))
        updates = []
        for name, param in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if isinstance(value, Tensor):
                value = value.data
            elif hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
                value = value.detach().cpu().numpy()
            array = _to_array(value, f"state_dict[{name!r}]")
            if array.dtype.kind not in "biuf":
                raise TypeError(f"state_dict[{name!r}] must hold numbers, got dtype {array.dtype}")
            if array.shape != param.data.shape:
                errors.append(
                    f"size mismatch for {name}: copying a param with shape {array.shape} from "
                    f"the state_dict, the shape in the current model is {param.data.shape}")
                continue
            updates.append((param, array))
        if errors:
            raise ValueError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                             + "\n\t".join(errors))
        for param, array in updates:
            param.data[...] = array  # in place: keeps the parameter's memory layout and dtype
        return _IncompatibleKeys(missing, unexpected)

    # -- modes and housekeeping -------------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (``mode=False``: evaluation mode) on this module and, through
        their own ``train``, its children (so a child may override it); returns self."""
        mode = _check_bool(mode, "mode")
        object.__setattr__(self, "training", mode)
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        """Set evaluation mode (dropout off); returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        """Turn gradient tracking of every parameter on or off; returns self."""
        requires_grad = _check_bool(requires_grad, "requires_grad")
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        """Reset the gradients of every parameter (to None, or to zeros)."""
        for param in self.parameters():
            if set_to_none:
                param.grad = None
            elif param.grad is not None:
                param.grad.zero_()

    def to(self, *args, **kwargs):
        """Convert every parameter (and gradient) to a dtype, in place; returns self.

        ``model.to('float64')``, ``model.to(dtype=np.float64)``; a device
        (``'cpu'``) is accepted and ignored.
        """
        dtype = _resolve_to_dtype(args, kwargs)
        if dtype is None:
            return self
        for param in self.parameters():
            if param.data.dtype != dtype:
                param.data = _converted(param.data, dtype)
                if param.grad is not None:
                    param.grad.data = param.grad.data.astype(dtype, order="K")
        for buffer in self.buffers():  # floating buffers follow; integer ones keep their type
            if buffer.data.dtype.kind == "f" and buffer.data.dtype != dtype:
                buffer.data = _converted(buffer.data, dtype)
        return self

    def float(self):
        """Parameters to float32; returns self."""
        return self.to(np.float32)

    def double(self):
        """Parameters to float64; returns self."""
        return self.to(np.float64)

    # -- printing -------------------------------------------------------------------------
    def extra_repr(self):
        """Arguments shown in the module's repr (subclasses override)."""
        return ""

    def __repr__(self):
        lines = []
        for name, module in self._modules.items():
            child = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {child}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"
