"""Parameter-free layers: ``Activation``, ``Dropout``, ``Flatten`` and the input layer."""
from __future__ import annotations

import math

from fastnn import backends, utils
from fastnn._validation import check_int, check_probability
from fastnn.layers.base import Layer, normalize_shape, resolve_activation, serialize_activation

__all__ = ["Activation", "Dropout", "Flatten", "InputLayer", "Input"]


class Activation(Layer):
    """Applies an activation function elementwise (softmax: over the last axis).

    Parameters
    ----------
    activation : str or callable
        Name such as ``'relu'`` or ``'softmax'`` (see :mod:`fastnn.activations`).
    **kwargs
        ``name``, ``trainable``, ``dtype``, ``input_shape``.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        if activation is None:
            raise TypeError("activation must be an activation name or callable, got None")
        self.activation = resolve_activation(activation)
        self._cache = None

    @property
    def output_activation(self) -> str:
        return self.activation.name

    def forward(self, x, training=False):
        y = self.activation.forward(x)
        if training:
            self._cache = (x, y)
        return y

    def backward(self, grad_y, need_input_grad=True):
        if self._cache is None:
            raise RuntimeError(
                f"layer {self.name!r}: backward needs a preceding forward(x, training=True)"
            )
        x, y = self._cache
        return self.activation.backward(grad_y, x, y)

    # With a loss that takes logits, the activation is folded into the loss.
    def forward_logits(self, x, training=False):
        """The activation's input unchanged (see :meth:`Dense.forward_logits`)."""
        return x

    def backward_logits(self, grad_z, need_input_grad=True):
        return grad_z

    def get_config(self):
        config = super().get_config()
        config["activation"] = serialize_activation(self.activation)
        return config


class Dropout(Layer):
    """Inverted dropout: in training, zero each input with probability ``rate``.

    The kept inputs are scaled by ``1 / (1 - rate)`` so that the expected output
    equals the input; at inference the layer is the identity.

    Parameters
    ----------
    rate : float in [0, 1)
        Fraction of the inputs to drop.
    seed : int, optional
        Seed of this layer's own generator. By default the masks come from
        fastnn's generator (:func:`fastnn.utils.set_random_seed`).
    **kwargs
        ``name``, ``trainable``, ``dtype``, ``input_shape``.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_probability(rate, "rate")
        self.seed = check_int(seed, "seed", minimum=0, allow_none=True)
        self._rng = None if seed is None else utils.make_rng(self.seed)
        self._mask = None

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._mask = None
            return x
        rng = self._rng if self._rng is not None else utils.rng()
        self._mask = backends.get().dropout_mask(x.shape, self.rate, rng, x.dtype)
        return x * self._mask

    def backward(self, grad_y, need_input_grad=True):
        # y = x * mask, so dL/dx = dL/dy * mask (identity when no mask was drawn).
        return grad_y if self._mask is None else grad_y * self._mask

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


class Flatten(Layer):
    """Flattens each sample to one dimension: (batch, d1, d2, ...) -> (batch, d1*d2*...)."""

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        if training:
            self._input_batch_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y, need_input_grad=True):
        return grad_y.reshape(self._input_batch_shape)


class InputLayer(Layer):
    """Declares the shape of one input sample; the identity on data.

    ``Sequential([Input(shape=(784,)), Dense(64), ...])`` is the same model as
    ``Sequential([Dense(64, input_shape=(784,)), ...])``.

    Parameters
    ----------
    shape : tuple of int
        Shape of one sample, without the batch dimension.
    batch_size : int, optional
        Accepted for Keras compatibility; fastnn models take any batch size.
    dtype : {'float32', 'float64'}, optional
    name : str, optional
    """

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, input_shape=None,
                 batch_shape=None):
        given = [s for s in (shape, input_shape, batch_shape) if s is not None]
        if len(given) != 1:
            raise ValueError("InputLayer needs exactly one of shape, input_shape or batch_shape")
        if batch_shape is not None:
            batch_shape = tuple(batch_shape)
            if not batch_shape:
                raise ValueError("batch_shape must include the batch dimension, e.g. (None, 784)")
            shape = batch_shape[1:]
        shape = normalize_shape(shape if shape is not None else input_shape, "shape")
        super().__init__(name=name, dtype=dtype, input_shape=shape)
        self.batch_size = check_int(batch_size, "batch_size", minimum=1, allow_none=True)
        self.shape = shape

    def forward(self, x, training=False):
        return x

    def backward(self, grad_y, need_input_grad=True):
        return grad_y

    def get_config(self):
        config = {"name": self.name, "dtype": self._dtype_arg, "shape": list(self.shape)}
        if self.batch_size is not None:
            config["batch_size"] = self.batch_size
        return config


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None):
    """The input of a model: ``Input(shape=(784,))`` (an :class:`InputLayer`).

    fastnn has no functional API, so unlike Keras this returns the layer, for use
    as the first entry of a :class:`~fastnn.models.Sequential`.
    """
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name,
                      batch_shape=batch_shape)
