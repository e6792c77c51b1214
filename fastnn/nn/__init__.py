"""``fastnn.nn``: PyTorch-style modules (``Module``, ``Linear``, ``Sequential``, losses...).

>>> import fastnn
>>> from fastnn import nn
>>> net = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
>>> x, y = fastnn.randn(8, 784), fastnn.randint(0, 10, (8,))
>>> loss = nn.CrossEntropyLoss()(net(x), y)
>>> loss.backward()

``fastnn.nn.functional`` holds the same operations as functions, ``fastnn.nn.init``
the weight initializations and ``fastnn.nn.utils`` gradient clipping.
"""
from fastnn.nn import functional, init, utils
from fastnn.nn.modules import *  # noqa: F401,F403
from fastnn.nn.modules import __all__ as _modules_all

__all__ = ["functional", "init", "utils"] + list(_modules_all)
