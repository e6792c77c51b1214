"""Containers: ``Sequential`` (a chain of modules) and ``ModuleList``."""
from __future__ import annotations

import numbers
from collections import OrderedDict

from fastnn.nn.modules.module import Module

__all__ = ["Sequential", "ModuleList"]


def _check_module(module, where):
    if not isinstance(module, Module):
        raise TypeError(f"{where}: {type(module).__name__} is not a fastnn.nn.Module")
    return module


class Sequential(Module):
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

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(modules[index]))
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"Sequential indices must be ints or slices, got {type(index).__name__}")
        if not -len(modules) <= index < len(modules):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(modules)} modules")
        return modules[index][1]

    def append(self, module):
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self._modules)), _check_module(module, "Sequential.append"))
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered (``'0.weight'``, ...)."""

    def __init__(self, modules=None):
        super().__init__()
        for module in modules or ():
            self.append(module)

    def append(self, module):
        """Add ``module`` at the end; returns self."""
        self.add_module(str(len(self._modules)), _check_module(module, "ModuleList"))
        return self

    def extend(self, modules):
        """Append every module of ``modules``; returns self."""
        for module in modules:
            self.append(module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(modules[index])
        return modules[index]
