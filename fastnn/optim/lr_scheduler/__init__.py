"""Learning-rate schedules for the PyTorch-style optimizers (``torch.optim.lr_scheduler``).

A scheduler rewrites ``optimizer.param_groups[i]['lr']``; call its ``step()``
once per epoch (or per batch, for warm-up), after ``optimizer.step()``::

    scheduler = StepLR(optimizer, step_size=10, gamma=0.1)
    for epoch in range(epochs):
        train(...)              # optimizer.step() for each batch
        scheduler.step()

The semantics are PyTorch's, including its recursive ("chainable") forms:
most schedulers multiply the *current* group learning rate by a factor, so
they compose with each other and with manual edits of ``'lr'``, exactly as in
PyTorch (the same floating-point values, step for step). Constructing a
scheduler sets each group's ``'initial_lr'`` and applies the schedule's value
for epoch 0.

Modules: ``base`` (LRScheduler), ``decay`` (rules of the epoch: LambdaLR,
MultiplicativeLR, StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR,
PolynomialLR, CosineAnnealingLR), ``cyclic`` (CosineAnnealingWarmRestarts,
CyclicLR, OneCycleLR), ``composite`` (SequentialLR, ChainedScheduler) and
``plateau`` (ReduceLROnPlateau). Everything is importable from here.
"""
from fastnn.optim.lr_scheduler.base import LRScheduler
from fastnn.optim.lr_scheduler.composite import ChainedScheduler, SequentialLR
from fastnn.optim.lr_scheduler.cyclic import CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR
from fastnn.optim.lr_scheduler.decay import (
    ConstantLR, CosineAnnealingLR, ExponentialLR, LambdaLR, LinearLR, MultiplicativeLR,
    MultiStepLR, PolynomialLR, StepLR,
)
from fastnn.optim.lr_scheduler.plateau import ReduceLROnPlateau

__all__ = [
    "LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR",
    "LinearLR", "ExponentialLR", "PolynomialLR", "CosineAnnealingLR",
    "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR", "SequentialLR", "ChainedScheduler",
    "ReduceLROnPlateau",
]

# Objects pickled before this module became a package name their classes here.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
