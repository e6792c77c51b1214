"""Activation functions: the nonlinearity a neuron applies to its weighted sum.

Keras names and defaults. Each function runs the active backend's
``activation`` op on a validated array::

    >>> from fastnn import activations
    >>> activations.relu([-1.0, 2.0])
    array([0., 2.], dtype=float32)
    >>> act = activations.get('leaky_relu')      # what layers hold
    >>> act.name, act.param
    ('leaky_relu', 0.2)

============  =====================================================  ==================
name          y = f(x)                                               f'(x)
============  =====================================================  ==================
linear        x                                                      1
relu          max(x, 0)                                              1 if x > 0 else 0
sigmoid       1 / (1 + e^-x)                                         y (1 - y)
tanh          tanh x                                                 1 - y^2
exponential   e^x                                                    y
leaky_relu    x if x > 0 else a x   (a = negative_slope, 0.2)       1 or a
elu           x if x > 0 else a (e^x - 1)   (a = alpha, 1.0)         1 or y + a
softplus      log(1 + e^x)                                           sigmoid(x)
gelu          x Phi(x)  (Phi: standard normal CDF, via erf)          Phi(x) + x phi(x)
gelu_tanh     x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))          (by the chain rule)
softmax       e^x_i / sum_j e^x_j   (along ``axis``)                 Jacobian diag(y) - y y^T
log_softmax   x_i - log sum_j e^x_j                                  I - softmax
============  =====================================================  ==================

Layers hold an :class:`Activation` (from :func:`get`): its ``name`` and
``param`` go straight into the backend's fused ops (``dense_forward`` takes
them). A plain Python callable can be used too (:class:`CallableActivation`);
it runs in NumPy, outside the fused kernels, and needs a ``derivative`` for
training.
"""
from __future__ import annotations

import numbers

import numpy as np

from fastnn import backends
from fastnn._validation import as_float_array, check_float, lookup

__all__ = [
    "Activation", "CallableActivation", "get", "serialize", "deserialize",
    "linear", "relu", "sigmoid", "tanh", "exponential", "leaky_relu", "elu", "softplus",
    "gelu", "softmax", "log_softmax",
]

# Names users may write, mapped to the backend's activation names.
_ALIASES = {name: name for name in backends.ACTIVATION_CODES}
_ALIASES.update({"identity": "linear", "exp": "exponential", "leakyrelu": "leaky_relu",
                 "gelu_approximate": "gelu_tanh"})

# The Keras name of each activation's parameter, for messages and configs.
_PARAM_NAMES = {"leaky_relu": "negative_slope", "elu": "alpha"}


def _as_input(x, name="x"):
    """Validate ``x``; float32/float64 input keeps its dtype, anything else becomes floatx."""
    dtype = None
    if isinstance(x, (np.ndarray, np.floating)) and x.dtype in (np.float32, np.float64):
        dtype = x.dtype
    arr = as_float_array(x, name, dtype=dtype, allow_empty=True)
    # as_float_array (np.ascontiguousarray) turns a scalar into shape (1,); keep it 0-d.
    return arr.reshape(()) if np.ndim(x) == 0 else arr


class Activation:
    """An activation the backends implement, with its parameter.

    Parameters
    ----------
    name : str
        One of the names in :data:`fastnn.backends.ACTIVATION_CODES` (or an alias).
    param : float, optional
        ``negative_slope`` of leaky_relu (default 0.2) or ``alpha`` of elu
        (default 1.0); must be None for the other activations.
    axis : int, default -1
        The axis softmax and log_softmax normalise over.

    Attributes
    ----------
    name, param, axis
        What the backend ops take (``param`` resolved to its default).
    needs_input : bool
        True when the derivative needs the activation's input (gelu,
        gelu_tanh, and leaky_relu/elu with a negative parameter), so a layer
        must keep the pre-activation for backward; the others are
        differentiated from their output alone.
    """

    fused = True  # the backend's ops (dense_forward, the fused training step) can run it

    def __init__(self, name, param=None, axis=-1):
        name = lookup("activation", name, _ALIASES)
        if name in backends.ACTIVATION_DEFAULT_PARAM:
            param_name = _PARAM_NAMES[name]
            if param is None:
                param = backends.ACTIVATION_DEFAULT_PARAM[name]
            param = check_float(param, param_name)
        elif param is not None:
            raise ValueError(f"activation {name!r} takes no parameter, got param={param!r}")
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"axis must be an int, got {axis!r}")
        self.name = name
        self.param = param
        self.axis = int(axis)

    # Counts changes to the attributes, so that a compiled plan holding them (the
    # fused predictor) can tell with one comparison per call that an object it
    # holds was changed in place.
    version = 0

    def __setattr__(self, attr, value):
        object.__setattr__(self, attr, value)
        object.__setattr__(self, "version", self.version + 1)

    @property
    def needs_input(self) -> bool:
        # With a negative slope/alpha the sign of y no longer tells the branch of x.
        negative = self.param is not None and self.param < 0
        return self.name in ("gelu", "gelu_tanh") or negative

    def forward(self, x, out=None):
        """y = f(x) on an already validated array (no checks; for layers)."""
        return backends.get().activation(x, self.name, self.param, axis=self.axis, out=out)

    def backward(self, grad_y, x, y, out=None):
        """grad_x = grad_y * f'(x) (softmax: the Jacobian product); ``x`` may be None
        unless :attr:`needs_input`."""
        return backends.get().activation_backward(grad_y, x, y, self.name, self.param,
                                                  axis=self.axis, out=out)

    def __call__(self, x):
        """y = f(x) for any array-like ``x`` (validated first)."""
        x = _as_input(x)
        if self.name in ("softmax", "log_softmax") and x.ndim == 0:
            raise ValueError(f"{self.name} needs at least a 1-D input, got a scalar")
        return self.forward(x)

    def get_config(self) -> dict:
        config = {"name": self.name}
        if self.param is not None:
            config[_PARAM_NAMES[self.name]] = self.param
        if self.axis != -1:
            config["axis"] = self.axis
        return config

    def __eq__(self, other):
        return (isinstance(other, Activation) and
                (self.name, self.param, self.axis) == (other.name, other.param, other.axis))

    def __hash__(self):
        return hash((self.name, self.param, self.axis))

    def __repr__(self):
        extra = f", {_PARAM_NAMES[self.name]}={self.param}" if self.param is not None else ""
        extra += f", axis={self.axis}" if self.axis != -1 else ""
        return f"Activation({self.name!r}{extra})"


class CallableActivation:
    """A user's activation function, run in NumPy outside the fused kernels.

    Parameters
    ----------
    fn : callable
        ``fn(x) -> y`` on a NumPy array.
    derivative : callable, optional
        ``derivative(x, y) -> f'(x)`` elementwise. Without it (and without an
        attribute ``fn.derivative``) the activation can predict but not train.
    name : str, optional
        Default: ``fn.__name__``.
    """

    fused = False
    param = None
    axis = -1
    needs_input = True

    def __init__(self, fn, derivative=None, name=None):
        if not callable(fn):
            raise TypeError(f"activation must be callable, got {type(fn).__name__}")
        if derivative is None:
            derivative = getattr(fn, "derivative", None)
        if derivative is not None and not callable(derivative):
            raise TypeError(f"derivative must be callable, got {type(derivative).__name__}")
        self.fn = fn
        self.derivative = derivative
        self.name = name if name is not None else getattr(fn, "__name__", type(fn).__name__)

    def forward(self, x, out=None):
        y = np.asarray(self.fn(x), dtype=x.dtype)
        if y.shape != x.shape:
            raise ValueError(f"activation {self.name!r} changed the shape {x.shape} to {y.shape}")
        if out is None:
            return np.ascontiguousarray(y)
        out[...] = y
        return out

    def backward(self, grad_y, x, y, out=None):
        if self.derivative is None:
            raise TypeError(
                f"custom activation {self.name!r} has no derivative, so it cannot be trained; "
                "pass fastnn.activations.CallableActivation(fn, derivative=lambda x, y: ...)"
            )
        grad_x = grad_y * np.asarray(self.derivative(x, y), dtype=grad_y.dtype)
        if out is None:
            return np.ascontiguousarray(grad_x)
        out[...] = grad_x
        return out

    def __call__(self, x):
        return self.forward(_as_input(x))

    def get_config(self) -> dict:
        raise ValueError(
            f"custom activation {self.name!r} cannot be serialized (fastnn never pickles code); "
            "use a named activation to save the model"
        )

    def __repr__(self):
        return f"CallableActivation({self.name!r})"


# ---------------------------------------------------------------------------
# Functional forms (Keras's fastnn.activations.relu(x), ...).
# ---------------------------------------------------------------------------

def linear(x):
    """f(x) = x."""
    return Activation("linear")(x)


def relu(x):
    """f(x) = max(x, 0)."""
    return Activation("relu")(x)


def sigmoid(x):
    """f(x) = 1 / (1 + e^-x), computed without overflow for any x."""
    return Activation("sigmoid")(x)


def tanh(x):
    """f(x) = tanh(x)."""
    return Activation("tanh")(x)


def exponential(x):
    """f(x) = e^x."""
    return Activation("exponential")(x)


def leaky_relu(x, negative_slope=0.2):
    """f(x) = x for x > 0, else ``negative_slope * x``."""
    return Activation("leaky_relu", negative_slope)(x)


def elu(x, alpha=1.0):
    """f(x) = x for x > 0, else ``alpha * (e^x - 1)``."""
    return Activation("elu", alpha)(x)


def softplus(x):
    """f(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|)."""
    return Activation("softplus")(x)


def gelu(x, approximate=False):
    """f(x) = x Phi(x) (exact, with erf), or its tanh approximation if ``approximate``."""
    if not isinstance(approximate, (bool, np.bool_)):
        raise TypeError(f"approximate must be a bool, got {approximate!r}")
    return Activation("gelu_tanh" if approximate else "gelu")(x)


def softmax(x, axis=-1):
    """e^x_i / sum_j e^x_j along ``axis`` (the maximum is subtracted first)."""
    return Activation("softmax", axis=axis)(x)


def log_softmax(x, axis=-1):
    """x_i - log sum_j e^x_j along ``axis`` (log-sum-exp, stable)."""
    return Activation("log_softmax", axis=axis)(x)


# A functional form passed where an activation is expected means its name.
_FUNCTIONS = {linear: "linear", relu: "relu", sigmoid: "sigmoid", tanh: "tanh",
              exponential: "exponential", leaky_relu: "leaky_relu", elu: "elu",
              softplus: "softplus", gelu: "gelu", softmax: "softmax", log_softmax: "log_softmax"}


def get(identifier):
    """The activation an identifier stands for.

    Parameters
    ----------
    identifier : None, str, dict, Activation or callable
        None means linear; a name such as ``'relu'`` (unknown names raise
        ValueError with a suggestion); a config dict from :func:`serialize`;
        an activation object is returned as is; a function of this module
        means its name; any other callable is wrapped in
        :class:`CallableActivation`.

    Returns
    -------
    Activation or CallableActivation
    """
    if identifier is None:
        return Activation("linear")
    if isinstance(identifier, (Activation, CallableActivation)):
        return identifier
    if isinstance(identifier, str):
        return Activation(identifier)
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        try:
            name = _FUNCTIONS.get(identifier)
        except TypeError:  # unhashable callable
            name = None
        return Activation(name) if name is not None else CallableActivation(identifier)
    raise TypeError(
        f"activation must be None, a name, a config dict or a callable, got {type(identifier).__name__}"
    )


def serialize(activation):
    """A JSON-able form: the name (``'relu'``) when the parameter is the default,
    else the config dict (``{'name': 'leaky_relu', 'negative_slope': 0.1}``)."""
    activation = get(activation)
    config = activation.get_config()
    default = backends.ACTIVATION_DEFAULT_PARAM.get(activation.name)
    if activation.param == default and activation.axis == -1:
        return activation.name
    return config


def deserialize(config):
    """Inverse of :func:`serialize` (a name or a config dict)."""
    if isinstance(config, str):
        return Activation(config)
    if not isinstance(config, dict):
        raise TypeError(f"activation config must be a str or dict, got {type(config).__name__}")
    config = dict(config)
    if "name" not in config:
        raise ValueError(f"activation config needs a 'name' entry, got keys {sorted(config)}")
    name = lookup("activation", config.pop("name"), _ALIASES)
    param_name = _PARAM_NAMES.get(name)
    param = config.pop(param_name, None) if param_name else None
    axis = config.pop("axis", -1)
    if config:
        raise ValueError(f"activation {name!r}: unexpected config entries {sorted(config)}")
    return Activation(name, param, axis)
