"""The reference backend: every op of the interface, written as the formula reads.

NumPy only, float32 and float64 (each op computes in the dtype of its inputs).
This is the truth the ``fast`` backend is tested against, and the fallback when
nothing was compiled, so clarity comes first and speed second. The op
signatures and their meaning are documented in :mod:`fastnn.backends`.

Numerical stability is part of the formulas, not an afterthought:

* ``sigmoid(x)`` is evaluated as ``1 / (1 + e^-|x|)`` or ``e^-|x| / (1 + e^-|x|)``
  by the sign of ``x``, so no exponential ever overflows;
* ``softplus(x) = max(x, 0) + log1p(e^-|x|)``;
* ``softmax`` and ``log_softmax`` subtract the row maximum first (log-sum-exp);
* cross-entropies ``from_logits`` never form a probability: softmax + CE is
  ``logsumexp(x) - x_y``, sigmoid + BCE is ``max(x, 0) - x*y + log1p(e^-|x|)``.

Exponentials of large positive numbers are only taken where the function
itself overflows (``exponential``); elsewhere the argument is clamped to the
branch where it is used (``elu`` takes ``expm1(min(x, 0))``).
"""
from __future__ import annotations

import math

import numpy as np

from fastnn.backends import ACTIVATION_CODES, ACTIVATION_DEFAULT_PARAM

__all__ = ["ReferenceOps", "erf"]

# Keras's epsilon: probabilities are clipped to [EPSILON, 1 - EPSILON].
EPSILON = 1e-7

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_C = 0.044715

_erf_elementwise = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in the dtype of ``x``.

    NumPy has no ``erf``; this applies the C library's ``erf`` (through
    :func:`math.erf`) to every element, so float64 results are exactly those
    of the compiled kernels, which call the same function. It is slow (a Python
    call per element) but exact, which is what a reference is for.
    """
    x = np.asarray(x)
    # np.asarray: on a 0-d array the ufunc returns a bare Python float.
    return np.asarray(_erf_elementwise(x.astype(np.float64)), dtype=x.dtype)


def _into(out, value):
    """Return ``value`` as a C-contiguous array, written into ``out`` if given."""
    if out is None:
        value = np.asarray(value)  # a 0-d result stays 0-d (ascontiguousarray would make it 1-d)
        return value if value.flags.c_contiguous else np.ascontiguousarray(value)
    out[...] = value
    return out


def _param(name, param):
    """The activation parameter, or its Keras default when ``param`` is None."""
    if param is None:
        return ACTIVATION_DEFAULT_PARAM.get(name)
    return float(param)


def _check_activation(name):
    # Ops do not validate user input, but a misspelt name from inside the library
    # must still fail loudly rather than fall through to a wrong formula.
    if name not in ACTIVATION_CODES:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATION_CODES)}")


def _sigmoid(x):
    """1 / (1 + e^-x), without overflow: only e^-|x| <= 1 is ever computed."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|)."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _log_softmax(x, axis):
    """x - logsumexp(x): shifting by the maximum keeps every exponent <= 0."""
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def _softmax(x, axis):
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


# ----------------------------------------------------------------------------
# Activations: forward y = f(x) and the derivative used by the chain rule.
# ----------------------------------------------------------------------------

def _activation_forward(x, name, param, axis):
    if name == "linear":
        return x.copy()
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return _sigmoid(x)
    if name == "tanh":
        return np.tanh(x)
    if name == "exponential":
        return np.exp(x)
    if name == "leaky_relu":
        return np.where(x > 0, x, param * x)
    if name == "elu":
        # expm1 of min(x, 0): the negative branch never sees a large positive x.
        return np.where(x > 0, x, param * np.expm1(np.minimum(x, 0)))
    if name == "softplus":
        return _softplus(x)
    if name == "gelu":
        # x * Phi(x), Phi the standard normal CDF (the exact form).
        return 0.5 * x * (1 + erf(x / _SQRT_2))
    if name == "gelu_tanh":
        inner = _SQRT_2_OVER_PI * (x + _GELU_TANH_C * x ** 3)
        return 0.5 * x * (1 + np.tanh(inner))
    if name == "softmax":
        return _softmax(x, axis)
    if name == "log_softmax":
        return _log_softmax(x, axis)
    raise AssertionError(name)  # pragma: no cover - _check_activation ran first


def _activation_backward(grad_y, x, y, name, param, axis):
    """grad_x = grad_y * f'(x), or the Jacobian-vector product for softmax.

    Derivatives are written in terms of the output ``y`` where the function
    allows it, so callers that did not keep the input can pass ``x=None``;
    only gelu and gelu_tanh need ``x``. When ``x`` is given the sign tests use
    it (leaky_relu with a negative slope cannot be inverted from ``y``).
    """
    if name == "linear":
        return grad_y.copy()
    positive = (x > 0) if x is not None else (y > 0)
    if name == "relu":
        return np.where(positive, grad_y, 0)
    if name == "sigmoid":                  # s' = s (1 - s)
        return grad_y * y * (1 - y)
    if name == "tanh":                     # tanh' = 1 - tanh^2
        return grad_y * (1 - y * y)
    if name == "exponential":              # (e^x)' = e^x
        return grad_y * y
    if name == "leaky_relu":
        return np.where(positive, grad_y, param * grad_y)
    if name == "elu":                      # x <= 0: (a (e^x - 1))' = a e^x = y + a
        return np.where(positive, grad_y, grad_y * (y + param))
    if name == "softplus":                 # softplus' = sigmoid(x) = 1 - e^-y
        slope = _sigmoid(x) if x is not None else -np.expm1(-y)
        return grad_y * slope
    if name == "gelu":                     # (x Phi(x))' = Phi(x) + x phi(x)
        cdf = 0.5 * (1 + erf(x / _SQRT_2))
        pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
        return grad_y * (cdf + x * pdf)
    if name == "gelu_tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_TANH_C * x ** 3))
        dinner = _SQRT_2_OVER_PI * (1 + 3 * _GELU_TANH_C * x * x)
        return grad_y * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dinner)
    if name == "softmax":
        # J = diag(y) - y y^T, so J^T g = y * (g - <g, y>).
        return y * (grad_y - np.sum(grad_y * y, axis=axis, keepdims=True))
    if name == "log_softmax":
        # d log_softmax_i / dx_j = delta_ij - softmax_j, so grad_x = g - softmax * sum(g).
        return grad_y - np.exp(y) * np.sum(grad_y, axis=axis, keepdims=True)
    raise AssertionError(name)  # pragma: no cover


# ----------------------------------------------------------------------------
# Losses. Each returns per-element losses and d(per-element loss)/d(y_pred);
# _reduce turns them into the batch mean (Keras's sum_over_batch_size).
# ----------------------------------------------------------------------------

def _mse(y_pred, y_true, param, from_logits):
    error = y_pred - y_true
    return error * error, 2 * error


def _mae(y_pred, y_true, param, from_logits):
    error = y_pred - y_true
    return np.abs(error), np.sign(error)


def _huber(y_pred, y_true, param, from_logits):
    delta = 1.0 if param is None else float(param)
    error = y_pred - y_true
    small = np.abs(error) <= delta
    loss = np.where(small, 0.5 * error * error, delta * (np.abs(error) - 0.5 * delta))
    grad = np.where(small, error, delta * np.sign(error))
    return loss, grad


def _binary_crossentropy(y_pred, y_true, param, from_logits):
    if from_logits:
        # -[y log s(x) + (1-y) log(1-s(x))] = max(x, 0) - x y + log1p(e^-|x|)
        x = y_pred
        loss = np.maximum(x, 0) - x * y_true + np.log1p(np.exp(-np.abs(x)))
        return loss, _sigmoid(x) - y_true
    # Clipping keeps log finite; where it bites, the loss is flat in p (zero gradient).
    p = np.clip(y_pred, EPSILON, 1 - EPSILON)
    loss = -(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))
    inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
    grad = np.where(inside, -(y_true / p - (1 - y_true) / (1 - p)), 0)
    return loss, grad


def _categorical_crossentropy(y_pred, y_true, param, from_logits):
    # Per-sample loss -sum_k t_k log p_k; returned with the class axis kept
    # (summed in _reduce through `class_axis`).
    if from_logits:
        log_p = _log_softmax(y_pred, axis=-1)
        # d/dx_j [-sum_k t_k (x_k - lse(x))] = softmax_j * sum_k t_k - t_j
        grad = np.exp(log_p) * np.sum(y_true, axis=-1, keepdims=True) - y_true
        return -y_true * log_p, grad
    p = np.clip(y_pred, EPSILON, 1 - EPSILON)
    inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
    return -y_true * np.log(p), np.where(inside, -y_true / p, 0)


def _sparse_categorical_crossentropy(y_pred, y_true, param, from_logits):
    # y_true holds class indices; the loss is the categorical one with a one-hot
    # target, so build the one-hot and reuse its formula.
    one_hot = np.zeros_like(y_pred)
    np.put_along_axis(one_hot, np.expand_dims(y_true.astype(np.intp), -1), 1, axis=-1)
    return _categorical_crossentropy(y_pred, one_hot, param, from_logits)


_LOSSES = {
    "mean_squared_error": (_mse, False),
    "mean_absolute_error": (_mae, False),
    "huber": (_huber, False),
    "binary_crossentropy": (_binary_crossentropy, False),
    "categorical_crossentropy": (_categorical_crossentropy, True),
    "sparse_categorical_crossentropy": (_sparse_categorical_crossentropy, True),
}


def _loss(name, y_pred, y_true, from_logits, sample_weight, param, need_grad):
    """Batch loss sum_i w_i l_i / N and its gradient with respect to y_pred.

    The per-sample loss l_i is, for a sample of several elements, the mean over
    its elements (Keras: mean over the last axis); for the cross-entropies the
    class (last) axis is summed first. A 1-D y_pred is N samples of one element.
    """
    if name not in _LOSSES:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(_LOSSES)}")
    fn, sums_class_axis = _LOSSES[name]
    dtype = y_pred.dtype
    if name != "sparse_categorical_crossentropy":
        y_true = y_true.astype(dtype, copy=False)
    elements, d_elements = fn(y_pred, y_true, param, from_logits)

    n = y_pred.shape[0]
    per_sample_shape = elements.shape[1:-1] if sums_class_axis else elements.shape[1:]
    count = math.prod(per_sample_shape)  # elements averaged into one sample's loss
    if sums_class_axis:
        elements = np.sum(elements, axis=-1)
    per_sample = elements.reshape(n, -1).sum(axis=1) / count

    weights = np.ones(n, dtype) if sample_weight is None else sample_weight.astype(dtype, copy=False)
    value = float(np.sum(weights * per_sample) / n)
    if not need_grad:
        return value, None
    # d value / d y_pred = w_i / (N * count) * d(element loss)/d y_pred
    scale = (weights / (n * count)).reshape((n,) + (1,) * (y_pred.ndim - 1))
    grad = np.ascontiguousarray(scale * d_elements, dtype=dtype)
    return value, grad


# ----------------------------------------------------------------------------
# The backend object.
# ----------------------------------------------------------------------------


def _sum_of_squares(a):
    """sum a^2 in float64 (a float32 |a| above 1.8e19 squares to inf in float32; the
    norm itself is finite, and the compiled kernels add in double too)."""
    return float(np.sum(np.square(a, dtype=np.float64)))

class ReferenceOps:
    """NumPy implementation of every backend op (see :mod:`fastnn.backends`)."""

    name = "reference"

    # -- linear algebra ------------------------------------------------------
    def gemm(self, a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
        """``alpha * op(a) @ op(b) + beta * out``; ``out`` is read only if beta != 0."""
        op_a = a.T if trans_a else a
        op_b = b.T if trans_b else b
        product = op_a @ op_b
        if alpha != 1.0:
            product = alpha * product
        if beta != 0.0 and out is not None:
            product = product + beta * out
        return _into(out, product.astype(a.dtype, copy=False))

    # -- activations -----------------------------------------------------------
    def activation(self, x, name, param=None, axis=-1, out=None):
        """y = f(x) for the activation called ``name``."""
        _check_activation(name)
        y = _activation_forward(x, name, _param(name, param), axis)
        return _into(out, y.astype(x.dtype, copy=False))

    def activation_backward(self, grad_y, x, y, name, param=None, axis=-1, out=None):
        """grad_x = grad_y * f'(x) (softmax: y * (grad_y - sum(grad_y * y)))."""
        _check_activation(name)
        grad_x = _activation_backward(grad_y, x, y, name, _param(name, param), axis)
        return _into(out, grad_x.astype(grad_y.dtype, copy=False))

    # -- dense layer -------------------------------------------------------------
    def dense_forward(self, x, kernel, bias, activation="linear", param=None, out=None,
                      preact_out=None):
        """y = act(x @ kernel + bias)."""
        z = self.gemm(x, kernel)
        if bias is not None:
            z += bias
        if preact_out is not None:
            preact_out[...] = z
        return self.activation(z, activation, param, axis=-1, out=out)

    def dense_backward(self, grad_y, x, kernel, y, preact, activation="linear", param=None,
                       grad_kernel=None, grad_bias=None, need_input_grad=True, accumulate=False):
        """Back through y = act(x @ W + b): dz, then dW = x^T dz, db = sum dz, dx = dz W^T."""
        dz = self.activation_backward(grad_y, preact, y, activation, param, axis=-1)
        if grad_kernel is not None:
            self.gemm(x, dz, trans_a=True, beta=1.0 if accumulate else 0.0, out=grad_kernel)
        if grad_bias is not None:
            if accumulate:
                grad_bias += dz.sum(axis=0)
            else:
                grad_bias[...] = dz.sum(axis=0)
        if not need_input_grad:
            return None
        return self.gemm(dz, kernel, trans_b=True)

    # -- losses ------------------------------------------------------------------
    def loss(self, name, y_pred, y_true, from_logits=False, sample_weight=None, param=None):
        """(mean loss over the batch, gradient with respect to y_pred)."""
        return _loss(name, y_pred, y_true, from_logits, sample_weight, param, need_grad=True)

    def loss_value(self, name, y_pred, y_true, from_logits=False, sample_weight=None, param=None):
        """The mean loss over the batch, without its gradient."""
        return _loss(name, y_pred, y_true, from_logits, sample_weight, param, need_grad=False)[0]

    # -- optimizer updates (torch.optim's single-tensor formulas) -------------------
    @staticmethod
    def _decay(param, grad, lr, weight_decay, decoupled):
        """Apply weight decay; return the gradient the update should use.

        Coupled (L2, torch's ``weight_decay``): g <- g + wd * param.
        Decoupled (AdamW, Keras's ``weight_decay``): param <- param * (1 - lr * wd).
        """
        weight_decay = float(weight_decay)
        if weight_decay == 0:
            return grad
        if decoupled:
            param *= 1 - lr * weight_decay
            return grad
        return grad + weight_decay * param

    def sgd_update(self, param, grad, velocity, lr, momentum=0.0, dampening=0.0, nesterov=False,
                   weight_decay=0.0, decoupled_weight_decay=False, first_step=False):
        """param -= lr * g, with g the (Nesterov) momentum buffer when momentum != 0."""
        lr, momentum, dampening = float(lr), float(momentum), float(dampening)
        g = self._decay(param, grad, lr, weight_decay, decoupled_weight_decay)
        if momentum != 0:
            if first_step:
                velocity[...] = g                                # buf = g
            else:
                velocity *= momentum                             # buf = m buf + (1 - d) g
                velocity += (1 - dampening) * g
            g = g + momentum * velocity if nesterov else velocity
        param -= lr * g

    def adam_update(self, param, grad, m, v, v_max, lr, beta_1, beta_2, epsilon, step,
                    weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False):
        """Adam / AdamW / AMSGrad step ``step`` (counted from 1)."""
        lr, beta_1, beta_2, epsilon = float(lr), float(beta_1), float(beta_2), float(epsilon)
        g = self._decay(param, grad, lr, weight_decay, decoupled_weight_decay)
        m *= beta_1                                              # m = b1 m + (1 - b1) g
        m += (1 - beta_1) * g
        v *= beta_2                                              # v = b2 v + (1 - b2) g^2
        v += (1 - beta_2) * g * g
        if amsgrad:
            np.maximum(v_max, v, out=v_max)
            second = v_max
        else:
            second = v
        bias_correction1 = 1 - beta_1 ** step
        bias_correction2 = 1 - beta_2 ** step
        # epsilon outside the bias-corrected square root, as torch.optim does
        denom = np.sqrt(second) / math.sqrt(bias_correction2) + epsilon
        param -= (lr / bias_correction1) * m / denom

    def rmsprop_update(self, param, grad, square_avg, momentum_buf, grad_avg, lr, rho, epsilon,
                       momentum=0.0, centered=False, weight_decay=0.0,
                       decoupled_weight_decay=False):
        """RMSprop: divide the gradient by a running root mean square of its history."""
        lr, rho, epsilon, momentum = float(lr), float(rho), float(epsilon), float(momentum)
        g = self._decay(param, grad, lr, weight_decay, decoupled_weight_decay)
        square_avg *= rho                                        # E[g^2] = rho E[g^2] + (1-rho) g^2
        square_avg += (1 - rho) * g * g
        if centered:
            grad_avg *= rho                                      # E[g] = rho E[g] + (1-rho) g
            grad_avg += (1 - rho) * g
            avg = np.sqrt(square_avg - grad_avg * grad_avg) + epsilon
        else:
            avg = np.sqrt(square_avg) + epsilon
        if momentum > 0:
            momentum_buf *= momentum                             # buf = mu buf + g / avg
            momentum_buf += g / avg
            param -= lr * momentum_buf
        else:
            param -= lr * g / avg

    def adagrad_update(self, param, grad, sum_sq, lr, epsilon, step, lr_decay=0.0,
                       weight_decay=0.0, decoupled_weight_decay=False):
        """Adagrad: param -= clr * g / (sqrt(sum g^2) + eps), clr = lr / (1 + (step-1) decay)."""
        lr, epsilon, lr_decay = float(lr), float(epsilon), float(lr_decay)
        g = self._decay(param, grad, lr, weight_decay, decoupled_weight_decay)
        clr = lr / (1 + (step - 1) * lr_decay)
        sum_sq += g * g
        param -= clr * g / (np.sqrt(sum_sq) + epsilon)

    # -- clipping and penalties --------------------------------------------------
    def clip_by_value(self, grads, clip_value):
        """Clip every gradient elementwise to [-clip_value, clip_value], in place."""
        for g in grads:
            np.clip(g, -clip_value, clip_value, out=g)

    def clip_by_norm(self, grads, clip_norm):
        """Scale each gradient whose L2 norm exceeds ``clip_norm`` down to that norm."""
        for g in grads:
            norm = math.sqrt(_sum_of_squares(g))
            if norm > clip_norm:
                g *= clip_norm / norm

    def global_norm(self, grads):
        """sqrt(sum over all gradients of sum g^2)."""
        return math.sqrt(sum(_sum_of_squares(g) for g in grads))

    def clip_by_global_norm(self, grads, clip_norm):
        """Scale all gradients by clip_norm / max(global_norm, clip_norm); return the norm."""
        norm = self.global_norm(grads)
        if norm > clip_norm:
            for g in grads:
                g *= clip_norm / norm
        return norm

    def l1l2_penalty(self, w, l1, l2):
        """l1 * sum|w| + l2 * sum w^2."""
        penalty = 0.0
        if l1:
            penalty += l1 * float(np.sum(np.abs(w), dtype=np.float64))
        if l2:
            penalty += l2 * _sum_of_squares(w)
        return penalty

    def l1l2_grad(self, w, l1, l2, grad):
        """grad += l1 * sign(w) + 2 * l2 * w, in place; returns grad."""
        if l1:
            grad += l1 * np.sign(w)
        if l2:
            grad += 2 * l2 * w
        return grad

    # -- randomness ----------------------------------------------------------------
    def dropout_mask(self, shape, rate, rng, dtype):
        """Inverted-dropout mask: 0 with probability ``rate``, else 1 / (1 - rate)."""
        dtype = np.dtype(dtype)
        if rate == 0:
            return np.ones(shape, dtype)
        keep = rng.random(shape) >= rate
        return (keep / (1 - rate)).astype(dtype)
