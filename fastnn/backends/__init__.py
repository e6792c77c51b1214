"""Backends: one op interface, two implementations.

``reference`` (:mod:`fastnn.backends.reference`) is NumPy written as the formulas
read; it is the truth for tests and the fallback when nothing was compiled.
``fast`` (:mod:`fastnn.backends.fast`) subclasses it and overrides the hot ops
with the compiled kernels from ``csrc/`` (thinc's ``Ops``/``NumpyOps`` split):
an op the fast backend does not override runs the reference code.

>>> import numpy as np
>>> from fastnn import backends
>>> ops = backends.get('fast')              # or backends.get() for the active one
>>> a, b = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
>>> ops.gemm(a, b, trans_b=True).shape      # a @ b.T
(2, 4)

The op interface
================
All array arguments are NumPy arrays of one float dtype (float32 or float64),
already validated (the public API validates; ops do not re-check). Outputs are
C-contiguous. ``out=`` arguments, when given, are written and returned. Names of
activations are the strings in :data:`ACTIVATION_CODES`; ``param`` is the
activation's parameter (leaky_relu negative slope, elu alpha; ``None`` -> default).

Linear algebra
    gemm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None)
        ``alpha * op(a) @ op(b) + beta * out`` (``out`` read only if beta != 0).
Activations
    activation(x, name, param=None, axis=-1, out=None) -> y
    activation_backward(grad_y, x, y, name, param=None, axis=-1, out=None) -> grad_x
        chain rule through the activation: x is its input, y its output. ``x`` may be
        None except for gelu/gelu_tanh (and leaky_relu/elu with a negative parameter).
Dense layer (fused)
    dense_forward(x, kernel, bias, activation='linear', param=None, out=None,
                  preact_out=None) -> y
        y = act(x @ kernel + bias); kernel is (inputs, units), bias (units,) or None;
        ``preact_out`` (same shape as y) receives x @ kernel + bias if given.
    dense_backward(grad_y, x, kernel, y, preact, activation='linear', param=None,
                   grad_kernel=None, grad_bias=None, need_input_grad=True,
                   accumulate=False) -> grad_x or None
        dz = grad_y * act'(preact, y) (softmax: the Jacobian product);
        grad_kernel (=, or += when accumulate) x.T @ dz; grad_bias (= or +=) dz.sum(0);
        returns dz @ kernel.T when need_input_grad. ``preact`` may be None unless the
        activation needs it (gelu).
Losses (mean over the batch; weighted: sum(w_i * l_i) / batch_size, as Keras)
    loss(name, y_pred, y_true, from_logits=False, sample_weight=None, param=None)
        -> (value: float, grad_y_pred)
        names: mean_squared_error, mean_absolute_error, huber (param = delta, 1.0),
        binary_crossentropy, categorical_crossentropy, sparse_categorical_crossentropy.
        With from_logits the gradient is with respect to the logits (fused, stable).
        y_true for the sparse loss is an integer array of class indices. The per-sample
        loss is the mean over the non-batch axes (the cross-entropies sum the class
        axis first).
        Probability inputs are clipped to [eps, 1 - eps], eps = 1e-7 (Keras).
    loss_value(name, y_pred, y_true, from_logits=False, sample_weight=None, param=None)
        -> float (no gradient; for evaluate)
Optimizer updates (in place on param and state; formulas of torch.optim)
    sgd_update(param, grad, velocity, lr, momentum=0.0, dampening=0.0, nesterov=False,
               weight_decay=0.0, decoupled_weight_decay=False, first_step=False)
    adam_update(param, grad, m, v, v_max, lr, beta_1, beta_2, epsilon, step,
                weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False)
    rmsprop_update(param, grad, square_avg, momentum_buf, grad_avg, lr, rho, epsilon,
                   momentum=0.0, centered=False, weight_decay=0.0,
                   decoupled_weight_decay=False)
    adagrad_update(param, grad, sum_sq, lr, epsilon, step, lr_decay=0.0,
                   weight_decay=0.0, decoupled_weight_decay=False)
        ``step`` counts from 1. Coupled weight decay adds wd*param to the gradient
        (torch's ``weight_decay``); decoupled multiplies param by (1 - lr*wd) first
        (AdamW, and Keras's ``weight_decay`` on every optimizer). State arrays not
        used by the chosen options may be None.
Clipping and penalties
    clip_by_value(grads: list, clip_value)            in place
    clip_by_norm(grads: list, clip_norm)              each tensor to norm <= clip_norm, in place
    global_norm(grads: list) -> float
    clip_by_global_norm(grads: list, clip_norm) -> float (the norm before clipping)
    l1l2_penalty(w, l1, l2) -> float                  l1*sum|w| + l2*sum(w^2)
    l1l2_grad(w, l1, l2, grad)                        grad += l1*sign(w) + 2*l2*w
Randomness
    dropout_mask(shape, rate, rng, dtype) -> mask     0 or 1/(1-rate)

The fast backend may add ops of its own (the fused training step); callers
check with ``hasattr`` and fall back to the per-op path. A compiled plan that
finds the model changed into one it does not cover (a callback or the user set
a Python activation, say) raises :class:`PlanDeclined`; the model then drops the
plan and goes on with the per-op path.
"""
from __future__ import annotations

__all__ = ["get", "available", "ACTIVATION_CODES", "fast_import_error", "PlanDeclined"]


class PlanDeclined(Exception):
    """A compiled plan (fused trainer or predictor) cannot run the model as it now is.

    Raised between steps, never halfway through one. ``progress`` is None, or, for
    an epoch of ``fit`` that the plan had begun, ``(batch, start, loss_sum, seen)``:
    the index of the next batch, its first position in the epoch's order, and the
    running loss sum (batch loss times batch size) over the ``seen`` samples so far,
    from which the per-op loop finishes the epoch.
    """

    def __init__(self, reason, progress=None):
        super().__init__(reason)
        self.progress = progress

# Shared with csrc/activations.h (FNN_ACT_*): change both together.
ACTIVATION_CODES = {
    "linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "exponential": 4,
    "leaky_relu": 5, "elu": 6, "softplus": 7, "gelu": 8, "gelu_tanh": 9,
    "softmax": 10, "log_softmax": 11,
}
# Default parameter of the parameterised activations (Keras's defaults).
ACTIVATION_DEFAULT_PARAM = {"leaky_relu": 0.2, "elu": 1.0}

_INSTANCES = {}
_FAST_ERROR = None
_FAST_CHECKED = False


def fast_import_error():
    """The ImportError met while loading the compiled kernels, or None if they load."""
    global _FAST_ERROR, _FAST_CHECKED
    if not _FAST_CHECKED:
        _FAST_CHECKED = True
        try:
            from fastnn.backends import fast  # noqa: F401
        except ImportError as exc:
            _FAST_ERROR = exc
    return _FAST_ERROR


def available():
    """Names of the backends that can be used in this installation."""
    return ["fast", "reference"] if fast_import_error() is None else ["reference"]


def get(name=None):
    """Return the backend object called ``name`` (default: the active backend).

    Raises
    ------
    ValueError
        Unknown name, or ``'fast'`` when the compiled kernels are not available.
    """
    if name is None:
        from fastnn import config
        name = config.get_backend()
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string, got {type(name).__name__}")
    ops = _INSTANCES.get(name)
    if ops is not None:
        return ops
    if name == "reference":
        from fastnn.backends.reference import ReferenceOps
        ops = ReferenceOps()
    elif name == "fast":
        err = fast_import_error()
        if err is not None:
            raise ValueError(f"backend 'fast' is not available: compiled kernels failed to import ({err})")
        from fastnn.backends.fast import FastOps
        ops = FastOps()
    else:
        from fastnn._validation import suggest
        raise ValueError(f"unknown backend {name!r}; expected one of ['fast', 'reference']{suggest(name, ['fast', 'reference'])}")
    _INSTANCES[name] = ops
    return ops
