"""``Dense``: the fully connected layer, y = act(x @ W + b).

Each of the ``units`` neurons computes a weighted sum of all inputs plus its
bias and applies the activation. The kernel W is shaped (inputs, units), as in
Keras, so a batch x of shape (batch, inputs) maps to (batch, units) with one
matrix product; the backend fuses product, bias and activation into one pass
(``dense_forward``) and the three gradients into another (``dense_backward``):

    dz = dL/dy * act'(z)      (for softmax, the Jacobian-vector product)
    dL/dW += x^T dz,   dL/db += sum over the batch of dz,   dL/dx = dz W^T
"""
from __future__ import annotations

import numpy as np

from fastnn import backends
from fastnn._validation import check_int
from fastnn.layers.base import (Layer, resolve_activation, resolve_constraint, resolve_initializer,
                                resolve_regularizer, serialize_activation, serialize_object)

__all__ = ["Dense"]

class Dense(Layer):
    """Densely connected layer: ``output = activation(x @ kernel + bias)``.

    Parameters
    ----------
    units : int
        Number of neurons (output features).
    activation : str, callable or None, default None
        Activation applied to the weighted sums (None: linear).
    use_bias : bool, default True
        Whether the layer adds a bias vector.
    kernel_initializer, bias_initializer : str or initializer, default 'glorot_uniform', 'zeros'
        How the kernel and bias are initialized (see :mod:`fastnn.initializers`).
    kernel_regularizer, bias_regularizer : str or regularizer, optional
        Penalties added to the loss (see :mod:`fastnn.regularizers`).
    activity_regularizer : str or regularizer, optional
        A penalty on the layer's output, added to the loss of each batch and divided
        by the batch size (as Keras 3.15 does); such a model trains on the per-op path.
    kernel_constraint, bias_constraint : str or constraint, optional
        Projections applied after each optimizer update (see :mod:`fastnn.constraints`).
    input_shape : tuple of int, optional
        Shape of one input sample, e.g. ``(784,)``, for the first layer of a model.
    **kwargs
        ``name``, ``trainable``, ``dtype`` (see :class:`~fastnn.layers.Layer`).

    Attributes
    ----------
    kernel : ndarray of shape (inputs, units)
    bias : ndarray of shape (units,) or None

    Notes
    -----
    On samples of several dimensions, e.g. (steps, features), the layer applies
    to the last axis (as Keras's): the output has shape (steps, units). Such a
    model trains on the per-op path.
    """

    # defaults, also for layers pickled before these attributes existed
    activity_regularizer = None
    _activity_penalty = 0.0

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None,
                 input_shape=None, **kwargs):
        super().__init__(input_shape=input_shape, **kwargs)
        self.units = check_int(units, "units", minimum=1)
        self.activation = activation
        if not isinstance(use_bias, bool):
            raise TypeError(f"use_bias must be True or False, got {use_bias!r}")
        self.use_bias = use_bias
        self.kernel_initializer = resolve_initializer(kernel_initializer, "kernel_initializer")
        self.bias_initializer = resolve_initializer(bias_initializer, "bias_initializer")
        self.kernel_regularizer = resolve_regularizer(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = resolve_regularizer(bias_regularizer, "bias_regularizer")
        self.activity_regularizer = resolve_regularizer(activity_regularizer, "activity_regularizer")
        self._activity_penalty = 0.0
        self.kernel_constraint = resolve_constraint(kernel_constraint, "kernel_constraint")
        self.bias_constraint = resolve_constraint(bias_constraint, "bias_constraint")
        self.kernel = None
        self.bias = None
        self._cache = None

    # -- building --------------------------------------------------------------------
    def compute_output_shape(self, input_shape):
        # samples of several dimensions: applied to the last axis, as in Keras
        return tuple(input_shape[:-1]) + (self.units,)

    def build(self, input_shape):
        super().build(input_shape)
        inputs = self._in_shape[-1]
        self.kernel = self.add_weight("kernel", (inputs, self.units), self.kernel_initializer,
                                      self.kernel_regularizer, self.kernel_constraint)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                        self.bias_regularizer, self.bias_constraint)
        self._cache = None

    @property
    def activation(self):
        """The activation object; set it with anything ``activation=`` accepts (a name, a
        callable, None for linear), before or after the layer is built, as in Keras."""
        return self._activation

    @activation.setter
    def activation(self, identifier):
        act = resolve_activation(identifier)
        if getattr(act, "axis", -1) not in (-1, 1):
            raise ValueError(
                f"Dense applies its activation over the units axis (-1); got "
                f"{act!r}; use an Activation layer for another axis"
            )
        self._activation = act

    # -- forward and backward ------------------------------------------------------------
    @property
    def output_activation(self) -> str:
        """Name of the activation that ends this layer (for softmax/sigmoid loss fusion)."""
        return self.activation.name

    def _forward(self, x, training, act):
        """act(x @ W + b); ``act`` None means linear (the logits)."""
        lead = x.shape[:-1]
        if x.ndim > 2:  # (batch, ..., inputs): every leading index is a row of the product
            x = np.ascontiguousarray(x.reshape(-1, x.shape[-1]))
        y = self._forward_rows(x, training, act)
        reg = self.activity_regularizer
        if reg is not None and act is self.activation:  # on the output, not the logits
            # per sample of the batch, as Keras: the penalty of the outputs / batch size
            self._activity_penalty = float(reg(y)) / lead[0] if lead[0] else 0.0
        return y if len(lead) == 1 else y.reshape(lead + (self.units,))

    def activity_loss(self) -> float:
        """The activity penalty of the last forward pass (0 without a regularizer)."""
        return self._activity_penalty if self.activity_regularizer is not None else 0.0

    def _forward_rows(self, x, training, act):
        ops = backends.get()
        if act is None or act.fused:
            name, param = ("linear", None) if act is None else (act.name, act.param)
            preact = None
            if training and act is not None and act.needs_input:
                preact = np.empty((x.shape[0], self.units), dtype=x.dtype)
            y = ops.dense_forward(x, self.kernel, self.bias, name, param, preact_out=preact)
        else:
            # A Python activation: the backend computes z, NumPy applies f.
            preact = ops.dense_forward(x, self.kernel, self.bias, "linear")
            y = act.forward(preact)
        if training:
            self._cache = (x, y, preact, act)
        return y

    def forward(self, x, training=False):
        return self._forward(x, training, self.activation)

    def forward_logits(self, x, training=False):
        """The pre-activation z = x @ W + b (the logits when the activation is softmax).

        After it, :meth:`backward_logits` differentiates the layer as if it were
        linear, so that a loss taking logits (fused softmax + cross-entropy) can
        stand in for activation + loss.
        """
        return self._forward(x, training, None)

    def backward(self, grad_y, need_input_grad=True):
        if self._cache is None:
            raise RuntimeError(
                f"layer {self.name!r}: backward needs a preceding forward(x, training=True)"
            )
        x, y, preact, act = self._cache
        shape = grad_y.shape
        if grad_y.ndim > 2:  # samples of several dimensions (see _forward)
            grad_y = np.ascontiguousarray(grad_y.reshape(-1, self.units))
        reg = self.activity_regularizer
        if reg is not None and act is not None:  # d(penalty / batch)/dy joins the loss's
            batch = shape[0]
            grad_y = grad_y + (reg.gradient(y) / batch).astype(grad_y.dtype, copy=False)
        if act is None:
            name, param = "linear", None
        elif act.fused:
            name, param = act.name, act.param
        else:
            grad_y = act.backward(grad_y, preact, y)  # dz, then the linear part below
            name, param = "linear", None
        grad_kernel = grad_bias = None
        if self.trainable:
            grad_kernel = self._variables[0].grad
            grad_bias = self._variables[1].grad if self.use_bias else None
        grad_x = backends.get().dense_backward(
            grad_y, x, self.kernel, y, preact, name, param,
            grad_kernel=grad_kernel, grad_bias=grad_bias,
            need_input_grad=need_input_grad, accumulate=True,
        )
        if grad_x is None or len(shape) == 2:
            return grad_x
        return grad_x.reshape(shape[:-1] + (x.shape[1],))

    backward_logits = backward  # forward_logits cached act=None: the linear case

    # -- configuration -------------------------------------------------------------------
    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            activation=serialize_activation(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=serialize_object(self.kernel_initializer, "initializers"),
            bias_initializer=serialize_object(self.bias_initializer, "initializers"),
            kernel_regularizer=serialize_object(self.kernel_regularizer, "regularizers"),
            bias_regularizer=serialize_object(self.bias_regularizer, "regularizers"),
            activity_regularizer=serialize_object(self.activity_regularizer, "regularizers"),
            kernel_constraint=serialize_object(self.kernel_constraint, "constraints"),
            bias_constraint=serialize_object(self.bias_constraint, "constraints"),
        )
        return config
