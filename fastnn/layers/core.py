"""Parameter-free layers: ``Activation``, ``Dropout``, ``Flatten`` and the input layer."""
from __future__ import annotations

import math

import numpy as np

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
        self.activation = activation
        self._cache = None

    @property
    def activation(self):
        """The activation object; settable with a name or a callable, as in Keras."""
        return self._activation

    @activation.setter
    def activation(self, identifier):
        if identifier is None:
            raise TypeError("activation must be an activation name or callable, got None")
        self._activation = resolve_activation(identifier)

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
    noise_shape : tuple of int or None, optional
        Shape of the dropout mask, batch dimension first, as in Keras: one entry
        per axis of the input, each ``None`` (the input's size on that axis),
        the input's size, or 1 (one draw shared along that axis). For inputs of
        shape ``(batch, timesteps, features)``, ``noise_shape=(None, 1, None)``
        drops the same features at every timestep. Default: the input's shape
        (an independent draw per element). A model with a ``noise_shape``
        trains on the per-op path (see :func:`fastnn.backends.fused.explain`).
    seed : int, optional
        Seed of this layer's own generator, made once here: its masks are then
        reproducible whatever else draws random numbers, and
        :func:`fastnn.utils.set_random_seed` neither reseeds nor rewinds it
        (two layers built with the same ``seed`` draw the same masks). By
        default the masks come from fastnn's generator, which
        :func:`~fastnn.utils.set_random_seed` seeds.
    **kwargs
        ``name``, ``trainable``, ``dtype``, ``input_shape``.
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_probability(rate, "rate")
        self.noise_shape = _check_noise_shape(noise_shape)
        self.seed = check_int(seed, "seed", minimum=0, allow_none=True)
        self._rng = None if seed is None else utils.make_rng(self.seed)
        self._mask = None

    def build(self, input_shape):
        super().build(input_shape)
        if self.noise_shape is not None:
            # Fail at build rather than at the first training step.
            self._mask_shape((None,) + self._in_shape)

    def _mask_shape(self, shape):
        """The concrete mask shape for a batch of shape ``shape`` (Keras's rule)."""
        if self.noise_shape is None:
            return tuple(shape)
        if len(self.noise_shape) != len(shape):
            raise ValueError(
                f"layer {self.name!r}: noise_shape {self.noise_shape} has {len(self.noise_shape)} "
                f"entries but the input has {len(shape)} axes (batch axis included), "
                f"input shape {tuple(shape)}")
        mask_shape = []
        for axis, (n, d) in enumerate(zip(self.noise_shape, shape)):
            if n is None:
                mask_shape.append(d)
            elif n == 1 or d is None or n == d:
                mask_shape.append(n)
            else:
                raise ValueError(
                    f"layer {self.name!r}: noise_shape {self.noise_shape} does not broadcast "
                    f"to the input shape {tuple(shape)} (axis {axis}: {n} is neither 1, "
                    f"None nor {d})")
        return tuple(mask_shape)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._mask = None
            return x
        rng = self._rng if self._rng is not None else utils.rng()
        self._mask = backends.get().dropout_mask(self._mask_shape(x.shape), self.rate, rng,
                                                 x.dtype)
        return x * self._mask

    def backward(self, grad_y, need_input_grad=True):
        # y = x * mask (broadcast), so dL/dx = dL/dy * mask (identity when no mask was drawn).
        return grad_y if self._mask is None else grad_y * self._mask

    def get_config(self):
        config = super().get_config()
        noise_shape = None if self.noise_shape is None else list(self.noise_shape)
        config.update(rate=self.rate, noise_shape=noise_shape, seed=self.seed)
        return config


def _check_noise_shape(noise_shape):
    """``Dropout``'s ``noise_shape`` as a tuple of positive ints and Nones (or None)."""
    if noise_shape is None:
        return None
    if not isinstance(noise_shape, (tuple, list)):
        raise TypeError(f"noise_shape must be None or a tuple such as (None, 1), "
                        f"got {noise_shape!r}")
    if not noise_shape:
        raise ValueError("noise_shape must have one entry per input axis, batch axis "
                         "first, e.g. (None, 1); got ()")
    return tuple(None if d is None else check_int(d, "noise_shape", minimum=1)
                 for d in noise_shape)


class Flatten(Layer):
    """Flattens each sample to one dimension: (batch, d1, d2, ...) -> (batch, d1*d2*...).

    Parameters
    ----------
    data_format : {'channels_last', 'channels_first'}, optional
        Default ``'channels_last'``. With ``'channels_first'`` a sample
        (channels, d1, d2, ...) is read as (d1, d2, ..., channels) first, as
        Keras does, so the flat order is the channels-last one; such a model
        trains and predicts on the per-op path.
    **kwargs
        ``name``, ``trainable``, ``dtype``, ``input_shape`` (see :class:`~fastnn.layers.Layer`).
    """

    # the default, also for layers pickled before data_format existed
    data_format = "channels_last"

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format is not None:
            if data_format not in ("channels_last", "channels_first"):
                raise ValueError(f"data_format must be 'channels_last' or 'channels_first', "
                                 f"got {data_format!r}")
            self.data_format = data_format

    def _moves_channels(self, ndim):
        return self.data_format == "channels_first" and ndim > 2

    def compute_output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        if training:
            self._input_batch_shape = x.shape
        if self._moves_channels(x.ndim):
            x = np.moveaxis(x, 1, -1)
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_y, need_input_grad=True):
        shape = self._input_batch_shape
        if self._moves_channels(len(shape)):
            moved = (shape[0],) + tuple(shape[2:]) + (shape[1],)
            return np.ascontiguousarray(np.moveaxis(grad_y.reshape(moved), -1, 1))
        return grad_y.reshape(shape)

    def get_config(self):
        config = super().get_config()
        if self.data_format != "channels_last":
            config["data_format"] = self.data_format
        return config


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
