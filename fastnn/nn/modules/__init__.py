"""The PyTorch-style layers and losses (``fastnn.nn``), one small module each."""
from fastnn.nn.modules.activation import (ELU, GELU, SELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid,
                                          Softmax, Softplus, Tanh)
from fastnn.nn.modules.container import ModuleDict, ModuleList, Sequential
from fastnn.nn.modules.dropout import Dropout
from fastnn.nn.modules.flatten import Flatten
from fastnn.nn.modules.linear import Identity, Linear
from fastnn.nn.modules.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss,
                                    NLLLoss)
from fastnn.nn.modules.module import Module, Parameter

__all__ = [
    "Module", "Parameter", "Linear", "Identity", "Sequential", "ModuleList", "ModuleDict", "ReLU", "Sigmoid",
    "Tanh", "Softmax", "LogSoftmax", "GELU", "ELU", "LeakyReLU", "Softplus", "SELU", "Dropout", "Flatten",
    "MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
]
