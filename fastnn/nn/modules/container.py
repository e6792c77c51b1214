"""Containers: ``Sequential`` (a chain of modules), ``ModuleList`` and ``ModuleDict``."""
from __future__ import annotations

import numbers
from collections import OrderedDict
from collections.abc import Mapping

from fastnn.nn.modules.module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _check_module(module, where):
    if not isinstance(module, Module):
        raise TypeError(f"{where}: {type(module).__name__} is not a fastnn.nn.Module")
    return module


def _check_index(index, length, kind, allow_end=False):
    """``index`` (an int, negative from the end) as a position in 0..length-1
    (0..length with ``allow_end``), or TypeError / IndexError."""
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"{kind} indices must be ints or slices, got {type(index).__name__}")
    index = int(index)
    end = length + 1 if allow_end else length
    if not -length <= index < end:
        raise IndexError(f"index {index} is out of range for a {kind} of {length} modules")
    return index + length if index < 0 else index


class _Numbered(Module):
    """Children named '0', '1', ...: what Sequential and ModuleList share."""

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def _renumber(self, modules):
        """Make ``modules`` the children, named '0', '1', ... in order."""
        for name in list(self._modules):
            delattr(self, name)
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def __setitem__(self, index, module):
        i = _check_index(index, len(self), type(self).__name__)
        setattr(self, list(self._modules)[i], _check_module(module, type(self).__name__))

    def __delitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            del modules[index]
        else:
            del modules[_check_index(index, len(modules), type(self).__name__)]
        self._renumber(modules)  # as PyTorch: the names stay 0..n-1

    def insert(self, index, module):
        """Insert ``module`` before position ``index``; returns self."""
        modules = list(self._modules.values())
        i = _check_index(index, len(modules), type(self).__name__, allow_end=True)
        modules.insert(i, _check_module(module, f"{type(self).__name__}.insert"))
        self._renumber(modules)
        return self

    def append(self, module):
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self._modules)), _check_module(module, type(self).__name__))
        return self

    def extend(self, modules):
        """Append every module of ``modules``; returns self."""
        for module in modules:
            self.append(module)
        return self

    def pop(self, index=-1):
        """Remove the module at ``index`` and return it."""
        module = self[index]
        del self[index]
        return module


class Sequential(_Numbered):
    """Modules applied one after the other: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    Children are named ``'0'``, ``'1'``, ... (so parameters are ``'0.weight'``...),
    or by the keys of an ``OrderedDict`` passed as the only argument.
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, _check_module(module, "Sequential"))
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), _check_module(module, f"Sequential argument {i}"))

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input

    def __getitem__(self, index):
        modules = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(modules[index]))
        return modules[_check_index(index, len(modules), "Sequential")][1]


class ModuleList(_Numbered):
    """A list of modules whose parameters are registered (``'0.weight'``, ...)."""

    def __init__(self, modules=None):
        super().__init__()
        for module in modules or ():
            self.append(module)

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[_check_index(index, len(modules), "ModuleList")]


class ModuleDict(Module):
    """A dict of modules whose parameters are registered under their keys
    (``'encoder.weight'``, ...), in insertion order.

    Parameters
    ----------
    modules : mapping or iterable of (str, Module) pairs, optional
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, _check_module(module, f"ModuleDict[{key!r}]"))

    def __delitem__(self, key):
        if key not in self._modules:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key):
        """Remove the module under ``key`` and return it."""
        module = self[key]
        del self[key]
        return module

    def clear(self):
        """Remove every module."""
        for key in list(self._modules):
            del self[key]

    def update(self, modules):
        """Add (or replace) the modules of a mapping or of (key, module) pairs."""
        if isinstance(modules, Mapping):
            pairs = modules.items()
        else:
            try:
                pairs = [tuple(pair) for pair in modules]
            except TypeError:
                raise TypeError("ModuleDict.update expects a mapping or (key, module) pairs, "
                                f"got {type(modules).__name__}") from None
        for i, pair in enumerate(pairs):
            if len(pair) != 2:
                raise ValueError(f"ModuleDict.update: element {i} is not a (key, module) pair")
            self[pair[0]] = pair[1]
