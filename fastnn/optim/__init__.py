"""``fastnn.optim``: PyTorch-style optimizers over the backend's update ops.

>>> import fastnn
>>> model = fastnn.nn.Linear(3, 1)
>>> opt = fastnn.optim.Adam(model.parameters(), lr=1e-3)
>>> loss = model(fastnn.ones(4, 3)).sum()
>>> opt.zero_grad(); loss.backward(); opt.step()

Argument names and defaults are PyTorch's. The update rules are the
backend's ``sgd_update`` / ``adam_update`` / ``rmsprop_update`` /
``adagrad_update``, which the Keras-style :mod:`fastnn.optimizers` share.
"""
from fastnn.optim import lr_scheduler
from fastnn.optim.adagrad import Adagrad
from fastnn.optim.adam import Adam
from fastnn.optim.adamw import AdamW
from fastnn.optim.optimizer import Optimizer
from fastnn.optim.rmsprop import RMSprop
from fastnn.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
