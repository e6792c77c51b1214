"""fastnn: small neural networks, as clear as the math and fast on a CPU.

Two API styles over one core:

Keras style::

    model = fastnn.Sequential([fastnn.layers.Dense(64, activation='relu', input_shape=(784,)),
                               fastnn.layers.Dense(10, activation='softmax')])
    model.compile(optimizer='adam', loss='sparse_categorical_crossentropy', metrics=['accuracy'])
    model.fit(x, y, epochs=5)

PyTorch style::

    net = fastnn.nn.Sequential(fastnn.nn.Linear(784, 64), fastnn.nn.ReLU(), fastnn.nn.Linear(64, 10))
    opt = fastnn.optim.Adam(net.parameters(), lr=1e-3)
    loss = fastnn.nn.CrossEntropyLoss()(net(x), y); opt.zero_grad(); loss.backward(); opt.step()

Submodules and top-level names are imported on first use, so ``import fastnn``
costs little more than ``import numpy``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from fastnn import config  # noqa: E402  (small, no heavy imports)

_SUBMODULES = {
    "activations", "backends", "callbacks", "constraints", "data", "datasets", "initializers",
    "layers", "losses", "metrics", "models", "nn", "optim", "optimizers", "regularizers",
    "serialization", "tensor", "tensor_functions", "utils",
}

# Top-level name -> module that defines it.
_LAZY_NAMES = {
    "Sequential": "fastnn.models",
    "Model": "fastnn.models",
    "Input": "fastnn.layers",
    # fastnn.tensor is both the module and (the module being callable) tensor().
    "Tensor": "fastnn.tensor",
    "no_grad": "fastnn.tensor",
    "enable_grad": "fastnn.tensor",
    "set_grad_enabled": "fastnn.tensor",
    "is_grad_enabled": "fastnn.tensor",
    "manual_seed": "fastnn.tensor",
    "from_numpy": "fastnn.tensor",
    "matmul": "fastnn.tensor",
    "float32": "fastnn.tensor",
    "float64": "fastnn.tensor",
    "int64": "fastnn.tensor",
    "relu": "fastnn.nn.functional",
    "sigmoid": "fastnn.nn.functional",
    "tanh": "fastnn.nn.functional",
    "softmax": "fastnn.nn.functional",
    "log_softmax": "fastnn.nn.functional",
    "set_random_seed": "fastnn.utils",
    "Generator": "fastnn.utils",
    "save": "fastnn.serialization",
    "load": "fastnn.serialization",
}
# torch.* functions over tensors (creation, cat/stack, reductions, device, dtype names).
_LAZY_NAMES.update({name: "fastnn.tensor_functions" for name in (
    "zeros", "ones", "full", "empty", "eye", "arange", "linspace", "rand", "randn", "randint",
    "randperm", "zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "cat",
    "concat", "stack", "sum", "mean", "max", "argmax", "exp", "log", "sqrt", "abs", "clamp",
    "reshape", "flatten", "transpose", "device", "cuda", "float", "double", "long", "int",
    "bool")})

# Names that would shadow Python builtins are attributes only: `from fastnn import *`
# must not replace the user's float, int, bool, sum, max or abs.
_BUILTIN_NAMES = {"float", "int", "bool", "sum", "max", "abs"}
__all__ = sorted((_SUBMODULES | set(_LAZY_NAMES) | {"config", "__version__"}) - _BUILTIN_NAMES)


def __getattr__(name):
    if name in _SUBMODULES:
        module = importlib.import_module(f"fastnn.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | _BUILTIN_NAMES)
