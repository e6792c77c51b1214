"""The Keras-style ``Layer``: parameters, their gradients, and the build protocol.

A layer decides *what* to compute; every numeric operation goes through the
active backend (:func:`fastnn.backends.get`). The contract (``docs/internals.md``)::

    build(input_shape)                 input_shape excludes the batch dimension
    compute_output_shape(input_shape)  -> tuple, without the batch dimension
    forward(x, training=False) -> y    caches what backward needs when training
    backward(grad_y) -> grad_x         ACCUMULATES parameter gradients (+=)
    trainable_weights / gradients      the live arrays, aligned
    regularization_loss() / add_regularization_gradients() / apply_constraints()
    get_weights() / set_weights(list)  copies, Keras order (kernel, bias)
    get_config() / from_config(dict)

Parameters are updated in place by the optimizers (and, on the fast backend, by
a compiled training step that holds pointers to them), so a parameter array is
created once, at build, and never replaced: ``set_weights`` copies into it.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import re
from collections import defaultdict

import numpy as np

from fastnn._validation import as_float_array, check_int, resolve_dtype

__all__ = ["Layer", "normalize_shape", "unique_name"]

_NAME_COUNTS: defaultdict = defaultdict(int)


def unique_name(base: str) -> str:
    """``base``, then ``base_1``, ``base_2``, ... (Keras's automatic layer names)."""
    count = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if count == 0 else f"{base}_{count}"


def _snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def normalize_shape(shape, name: str = "input_shape", *, strip_batch=False) -> tuple:
    """A per-sample shape as a tuple of positive ints (an int means a 1-tuple).

    With ``strip_batch`` a leading ``None`` (Keras's batch dimension, as in
    ``(None, 784)``) is dropped.
    """
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of ints such as (784,), got {shape!r}")
    if strip_batch and len(shape) > 1 and shape[0] is None:
        shape = shape[1:]
    dims = []
    for d in shape:
        if d is None:
            raise ValueError(
                f"{name} must give every dimension of one sample, got {tuple(shape)!r} "
                "(only a leading batch dimension may be None)"
            )
        dims.append(check_int(d, name, minimum=1))
    return tuple(dims)


# Parameters and gradients start on a cache-line boundary: the GEMM then reads a
# weight matrix whose rows are whole cache lines where it lies instead of
# copying it into a packed panel (csrc/gemm.c, fnn_sup_b_in_place).
_ALIGNMENT = 64
# No machine holds this (NumPy itself refuses arrays past 2**63 bytes, less clearly).
_MAX_ARRAY_BYTES = 2 ** 60


def _aligned_empty(shape, dtype):
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    count = math.prod(int(d) for d in shape)  # a Python int: np.prod wraps at 2**63
    if count * dtype.itemsize > _MAX_ARRAY_BYTES:
        raise MemoryError(f"an array of shape {tuple(shape)} and dtype {dtype} would take "
                          f"{count * dtype.itemsize / 2**30:.3g} GiB")
    raw = np.empty(count * dtype.itemsize + _ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % _ALIGNMENT
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def _aligned_copy(value):
    """``value`` copied into a 64-byte aligned array of the same shape and dtype."""
    out = _aligned_empty(value.shape, value.dtype)
    out[...] = value
    return out


class _Variable:
    """One parameter array with its gradient, regularizer and constraint."""

    __slots__ = ("name", "value", "grad", "regularizer", "constraint")

    def __init__(self, name, value, regularizer, constraint):
        self.name = name
        self.value = value
        self.grad = _aligned_empty(value.shape, value.dtype)
        self.grad.fill(0)
        self.regularizer = regularizer
        self.constraint = constraint


class Layer:
    """Base class of the Keras-style layers.

    Parameters
    ----------
    name : str, optional
        Unique name; by default the class name in snake case, numbered
        (``dense``, ``dense_1``, ...).
    trainable : bool, default True
        If False the layer's weights are frozen: they are not in
        ``trainable_weights`` and receive no gradient.
    dtype : {'float32', 'float64'}, optional
        Float type of the weights and computations; default
        :func:`fastnn.config.floatx` at build time.
    input_shape : tuple of int, optional
        Shape of one input sample (no batch dimension). Given on the first
        layer of a :class:`~fastnn.models.Sequential`, it lets the model build
        at once.

    Notes
    -----
    Subclasses implement ``build`` (creating parameters with :meth:`add_weight`),
    ``compute_output_shape``, ``forward`` and ``backward``. ``backward`` may take
    the keyword ``need_input_grad``: when False (the first layer of a model) the
    layer may skip computing the input gradient and return None.
    """

    def __init__(self, *, name=None, trainable=True, dtype=None, input_shape=None):
        if name is None:
            name = unique_name(_snake_case(type(self).__name__))
        elif not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        if not isinstance(trainable, (bool, np.bool_)):
            raise TypeError(f"trainable must be True or False, got {trainable!r}")
        self.name = name
        self.trainable = bool(trainable)
        self._dtype_arg = None if dtype is None else resolve_dtype(dtype).name
        self._declared_input_shape = None if input_shape is None else normalize_shape(input_shape)
        self._variables: list[_Variable] = []
        self.built = False
        self._in_shape = None       # per-sample shapes (no batch dimension), set by build
        self._out_shape = None
        self._dtype = None

    # -- building ----------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The layer's float type (fixed at build; before that, what build would use)."""
        return self._dtype if self._dtype is not None else resolve_dtype(self._dtype_arg)

    @property
    def input_shape(self):
        """Keras-style input shape, batch dimension first: ``(None, 784)`` (None before build)."""
        return None if self._in_shape is None else (None,) + self._in_shape

    @property
    def output_shape(self):
        """Keras-style output shape, batch dimension first: ``(None, 64)`` (None before build)."""
        return None if self._out_shape is None else (None,) + self._out_shape

    def __setstate__(self, state):
        # Layers pickled when `activation` was a plain attribute (before it became a
        # property of Dense and Activation) keep it in their __dict__.
        if "activation" in state and isinstance(getattr(type(self), "activation", None), property):
            state = dict(state)
            state["_activation"] = state.pop("activation")
        self.__dict__.update(state)

    def build(self, input_shape):
        """Create the layer's parameters for inputs of per-sample shape ``input_shape``.

        ``input_shape`` leaves out the batch dimension (``(784,)``); a leading
        None (``(None, 784)``) is accepted and dropped. Subclasses call
        ``super().build(input_shape)`` first and then :meth:`add_weight`.
        """
        input_shape = normalize_shape(input_shape, strip_batch=True)
        output_shape = tuple(self.compute_output_shape(input_shape))
        self._dtype = resolve_dtype(self._dtype_arg)
        self._variables = []
        self._in_shape = input_shape
        self._out_shape = output_shape
        self.built = True

    def compute_output_shape(self, input_shape) -> tuple:
        """Per-sample output shape for a per-sample input shape (identity by default)."""
        return tuple(input_shape)

    def add_weight(self, name, shape, initializer, regularizer=None, constraint=None):
        """Create a parameter with ``initializer(shape, dtype)`` and register it."""
        size = math.prod(int(n) for n in shape)
        if size * np.dtype(self.dtype).itemsize > _MAX_ARRAY_BYTES:  # before drawing its values
            raise MemoryError(f"layer {self.name!r}: {name!r} of shape {tuple(shape)} would take "
                              f"{size * np.dtype(self.dtype).itemsize / 2**30:.3g} GiB")
        budget = _WEIGHT_BUDGET.get()
        if budget is not None:
            if size > budget[0]:
                raise ValueError(
                    f"layer {self.name!r}: {name!r} of shape {tuple(shape)} would hold {size} "
                    f"values, more than the file's weights hold ({budget[0]} left)")
            budget[0] -= size
        value = np.asarray(initializer(tuple(shape), dtype=self.dtype), dtype=self.dtype)
        if value.shape != tuple(shape):
            raise ValueError(
                f"layer {self.name!r}: initializer for {name!r} returned shape {value.shape}, "
                f"expected {tuple(shape)}"
            )
        value = _aligned_copy(value)
        self._variables.append(_Variable(name, value, regularizer, constraint))
        return value

    # -- computing -----------------------------------------------------------------
    def forward(self, x, training=False):
        """y = layer(x) for a validated batch ``x``; caches for backward when training."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_y, need_input_grad=True):
        """Given dL/dy, accumulate dL/dparams into :attr:`gradients`; return dL/dx."""
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def _ensure_built_for(self, x):
        """Build from ``x`` (a batch) if needed; check its per-sample shape otherwise."""
        if not self.built:
            self.build(self._declared_input_shape or x.shape[1:])
        if x.shape[1:] != self._in_shape:
            raise ValueError(
                f"layer {self.name!r} expects x of shape {self.input_shape} "
                f"(None: any batch size), got shape {x.shape}"
            )

    def __call__(self, x, training=False):
        """The layer on ``x`` (validated; builds the layer on first use): inference, or
        ``training=True`` for the training behaviour (e.g. Dropout drops)."""
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False, got {training!r}")
        x = as_float_array(x, "x", dtype=self.dtype, min_ndim=2)
        self._ensure_built_for(x)
        y = self.forward(x, training=bool(training))
        # Flatten, and Dropout at inference, return their input or a view of it
        return y.copy() if np.may_share_memory(y, x) else y

    # -- parameters ------------------------------------------------------------------
    @property
    def weights(self) -> list:
        """All parameter arrays (live), trainable or not."""
        return [v.value for v in self._variables]

    @property
    def trainable_weights(self) -> list:
        """The live parameter arrays the optimizer updates (empty when frozen)."""
        return [v.value for v in self._variables] if self.trainable else []

    @property
    def non_trainable_weights(self) -> list:
        return [] if self.trainable else [v.value for v in self._variables]

    @property
    def gradients(self) -> list:
        """Gradient arrays aligned with :attr:`trainable_weights`."""
        return [v.grad for v in self._variables] if self.trainable else []

    def zero_gradients(self):
        """Reset every gradient to zero (backward accumulates)."""
        for v in self._variables:
            v.grad.fill(0)

    def count_params(self) -> int:
        """Number of scalar parameters (the layer must be built)."""
        if not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built yet, so its parameter count is unknown; "
                "call build(input_shape) or give input_shape"
            )
        return int(sum(v.value.size for v in self._variables))

    def get_weights(self) -> list:
        """Copies of the parameters, Keras order (kernel, bias)."""
        return [v.value.copy() for v in self._variables]

    def set_weights(self, weights):
        """Copy ``weights`` (same order and shapes as :meth:`get_weights`) into the layer."""
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of arrays, got {type(weights).__name__}")
        if len(weights) != len(self._variables):
            raise ValueError(
                f"layer {self.name!r} has {len(self._variables)} weight array(s) "
                f"({[v.name for v in self._variables]}), got {len(weights)}"
            )
        self._assign_weights(self._check_weights(weights, "weights", 0))

    def _check_weights(self, weights, argument, offset):
        """``weights`` as arrays of this layer's dtype and shapes, or a ValueError
        naming ``argument[offset + i]``."""
        arrays = []
        for i, (v, w) in enumerate(zip(self._variables, weights)):
            what = f"{argument}[{offset + i}] ({self.name}/{v.name})"
            arr = as_float_array(w, what, dtype=self.dtype, allow_empty=v.value.size == 0)
            if arr.shape != v.value.shape:
                raise ValueError(f"{what}: expected shape {v.value.shape}, got {arr.shape}")
            arrays.append(arr)
        return arrays

    def _assign_weights(self, arrays):
        # Copy in place: the optimizer (and a compiled training plan) hold
        # references to these very arrays.
        for v, arr in zip(self._variables, arrays):
            np.copyto(v.value, arr)

    # -- regularization and constraints ------------------------------------------
    def regularization_loss(self) -> float:
        """Sum of the penalties of this layer's weight regularizers."""
        total = 0.0
        for v in self._variables:
            if v.regularizer is not None and self.trainable:
                total += float(v.regularizer(v.value))
        return total

    def activity_loss(self) -> float:
        """Penalty on the outputs of the last forward pass (Dense's activity_regularizer)."""
        return 0.0

    def add_regularization_gradients(self):
        """gradients += d(penalty)/d(weight) for every regularized weight."""
        if not self.trainable:
            return
        for v in self._variables:
            if v.regularizer is not None:
                v.regularizer.add_gradient(v.value, v.grad)

    def apply_constraints(self):
        """Project constrained weights back onto their constraint, in place."""
        if not self.trainable:
            return
        for v in self._variables:
            if v.constraint is None:
                continue
            if hasattr(v.constraint, "apply_"):
                v.constraint.apply_(v.value)       # fastnn constraints project in place
            else:
                np.copyto(v.value, v.constraint(v.value))

    # -- configuration -------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor arguments, JSON-able (weights are not included)."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self._dtype_arg}
        if self._dtype is not None and self._dtype_arg is None:
            config["dtype"] = self._dtype.name  # built: record what it was built with
        if self._declared_input_shape is not None:
            config["input_shape"] = list(self._declared_input_shape)
        return config

    @classmethod
    def from_config(cls, config):
        """A new, unbuilt layer from :meth:`get_config`'s output."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        try:
            return cls(**config)
        except TypeError as exc:
            raise ValueError(f"invalid config for {cls.__name__}: {exc}") from None

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"


# ----------------------------------------------------------------------------
# Resolving the identifiers layers take (names, config dicts or objects) through
# the module that owns each kind, and serializing them back for get_config.
# ----------------------------------------------------------------------------

def _module(kind):
    import importlib
    return importlib.import_module(f"fastnn.{kind}")


# The custom_objects of the deserialize call in progress: a layer's from_config
# builds it through its constructor, which resolves initializer / regularizer /
# constraint configs; they must find the user's classes too.
_CUSTOM_OBJECTS = contextvars.ContextVar("fastnn_layer_custom_objects", default=None)


# While a saved model is rebuilt: [values its file's weights hold, not yet claimed].
# Building a layer allocates fresh weights before the saved ones replace them, so
# a doctored configuration (units=10**12) would otherwise allocate whatever it asks.
_WEIGHT_BUDGET = contextvars.ContextVar("fastnn_layer_weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(values):
    """Inside the block, layers may create at most ``values`` parameter values in all
    (ValueError beyond, before allocating)."""
    token = _WEIGHT_BUDGET.set([int(values)])
    try:
        yield
    finally:
        _WEIGHT_BUDGET.reset(token)


@contextlib.contextmanager
def custom_objects_scope(custom_objects):
    """Let identifiers resolved inside the block also name ``custom_objects``'s classes."""
    token = _CUSTOM_OBJECTS.set(custom_objects)
    try:
        yield
    finally:
        _CUSTOM_OBJECTS.reset(token)


def resolve_activation(identifier):
    """``fastnn.activations.get(identifier)`` (None means linear)."""
    return _module("activations").get(identifier)


def _get(kind, identifier, argument, allow_none):
    if identifier is None:
        if allow_none:
            return None
        raise TypeError(f"{argument} must not be None")
    try:
        custom = _CUSTOM_OBJECTS.get()
        if custom:
            return _module(kind).get(identifier, custom_objects=custom)
        return _module(kind).get(identifier)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{argument}: {exc}") from None


def resolve_initializer(identifier, argument):
    """``fastnn.initializers.get(identifier)``, errors naming ``argument``."""
    return _get("initializers", identifier, argument, allow_none=False)


def resolve_regularizer(identifier, argument):
    """``fastnn.regularizers.get(identifier)`` or None."""
    return _get("regularizers", identifier, argument, allow_none=True)


def resolve_constraint(identifier, argument):
    """``fastnn.constraints.get(identifier)`` or None."""
    return _get("constraints", identifier, argument, allow_none=True)


def serialize_activation(act):
    """A JSON-able form of an activation (its name, or a config dict)."""
    return _module("activations").serialize(act)


def serialize_object(obj, kind):
    """A JSON-able form of an initializer/regularizer/constraint (None stays None)."""
    if obj is None:
        return None
    module = _module(kind)
    if hasattr(module, "serialize"):
        return module.serialize(obj)
    return {"class_name": type(obj).__name__, "config": obj.get_config()}
