"""The fast backend: the reference backend with its hot ops compiled.

``FastOps`` subclasses :class:`~fastnn.backends.reference.ReferenceOps` (thinc's
``Ops``/``NumpyOps`` split) and overrides the ops a training step spends its
time in with the kernels of ``csrc/``: the GEMM (``fastnn._gemm_binding``) and
the fused activation, dense, loss, optimizer, clipping and penalty kernels
(``fastnn._kernels``, defined in csrc/kernels.pxd). Every other op, and every
case a kernel does not cover (softmax along a non-last axis, a cross-entropy
over a 3-D batch, a parameter that is not contiguous, ...), runs the reference
code, so the two backends answer the same calls.

Each method decides its thread count once with :func:`fastnn.config.threads_for`
from a rough count of the work and passes it down; the kernels give the same
bits for any thread count. Importing this module fails with ImportError when
the compiled modules are missing, which ``fastnn.backends`` turns into the
fallback to the reference backend.
"""
from __future__ import annotations

import math

import numpy as np

from fastnn import _kernels
from fastnn import config
from fastnn._gemm_binding import gemm as _gemm
from fastnn.backends import ACTIVATION_CODES, ACTIVATION_DEFAULT_PARAM
from fastnn.backends.reference import ReferenceOps

__all__ = ["FastOps"]

_LOSS_CODES = _kernels.LOSS_CODES
_CATEGORICAL = (_LOSS_CODES["categorical_crossentropy"],
                _LOSS_CODES["sparse_categorical_crossentropy"])
_SOFTMAX_CODES = (ACTIVATION_CODES["softmax"], ACTIVATION_CODES["log_softmax"])
# Rough scalar operations per element, for threads_for: a compare or a copy for
# linear/relu, a transcendental function (about ten operations) for the rest.
_CHEAP_ACTIVATIONS = (ACTIVATION_CODES["linear"], ACTIVATION_CODES["relu"])
_TRANSCENDENTAL_COST = 10
# Optimizer updates: a dozen flops and a square root per parameter.
_UPDATE_COST = 12


def _param(name, param):
    """The activation parameter as a float (its Keras default when None)."""
    if param is None:
        return ACTIVATION_DEFAULT_PARAM.get(name, 0.0)
    return float(param)


def _activation_cost(code):
    return 1 if code in _CHEAP_ACTIVATIONS else _TRANSCENDENTAL_COST


class FastOps(ReferenceOps):
    """The compiled backend: :class:`ReferenceOps` with the hot ops overridden."""

    name = "fast"

    # -- whole-model plans (the fused paths of fit and predict) ----------------
    def fused_fit_plan(self, model, batch_size):
        """A compiled trainer running whole chunks of ``fit`` steps per call, or
        None when the model, loss, optimizer or callbacks need the per-op path
        (``fastnn.backends.fused.explain(model)`` says why)."""
        from fastnn.backends import fused
        return fused.fused_trainer_for(model, batch_size)

    def fused_predict_plan(self, model):
        """A compiled predictor running the whole layer stack per call, or None."""
        from fastnn.backends import fused
        return fused.fused_predictor_for(model)

    # -- linear algebra ------------------------------------------------------
    def gemm(self, a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
        """``alpha * op(a) @ op(b) + beta * out`` by fastnn's own GEMM."""
        n = b.shape[0] if trans_b else b.shape[1]
        return _gemm(a, b, trans_a, trans_b, alpha, beta, out,
                     num_threads=config.threads_for(a.size * n))

    # -- activations -----------------------------------------------------------
    def activation(self, x, name, param=None, axis=-1, out=None):
        """y = f(x); softmax and log-softmax along the last axis."""
        code = ACTIVATION_CODES.get(name)
        if code is None or (code in _SOFTMAX_CODES and (x.ndim == 0 or (axis != -1 and axis != x.ndim - 1))):
            return super().activation(x, name, param, axis, out)
        return _kernels.activation(x, code, _param(name, param), out,
                                   config.threads_for(x.size * _activation_cost(code)))

    def activation_backward(self, grad_y, x, y, name, param=None, axis=-1, out=None):
        """grad_x = grad_y * f'(x) (softmax: the Jacobian-vector product)."""
        code = ACTIVATION_CODES.get(name)
        if code is None or (code in _SOFTMAX_CODES and (grad_y.ndim == 0 or (axis != -1 and axis != grad_y.ndim - 1))):
            return super().activation_backward(grad_y, x, y, name, param, axis, out)
        return _kernels.activation_backward(grad_y, x, y, code, _param(name, param), out,
                                            config.threads_for(grad_y.size * _activation_cost(code)))

    # -- dense layer -------------------------------------------------------------
    def dense_forward(self, x, kernel, bias, activation="linear", param=None, out=None,
                      preact_out=None):
        """y = act(x @ kernel + bias): one GEMM with the bias and activation fused."""
        code = ACTIVATION_CODES.get(activation)
        if code is None:
            return super().dense_forward(x, kernel, bias, activation, param, out, preact_out)
        # The GEMM writes rows of its output while still reading its inputs: an output
        # that shares memory with an input gets a copy of that input (as the gemm op does).
        for target in (out, preact_out):
            if target is not None:
                if np.may_share_memory(target, x):
                    x = x.copy()
                if np.may_share_memory(target, kernel):
                    kernel = kernel.copy()
                if bias is not None and np.may_share_memory(target, bias):
                    bias = bias.copy()
        return _kernels.dense_forward(x, kernel, bias, code, _param(activation, param), out,
                                      preact_out, config.threads_for(x.size * kernel.shape[-1]))

    def dense_backward(self, grad_y, x, kernel, y, preact, activation="linear", param=None,
                       grad_kernel=None, grad_bias=None, need_input_grad=True, accumulate=False):
        """dz (fused with grad_bias), grad_kernel = x^T dz and grad_x = dz W^T by the GEMM."""
        code = ACTIVATION_CODES.get(activation)
        if code is None:
            return super().dense_backward(grad_y, x, kernel, y, preact, activation, param,
                                          grad_kernel, grad_bias, need_input_grad, accumulate)
        return _kernels.dense_backward(grad_y, x, kernel, y, preact, code,
                                       _param(activation, param), grad_kernel, grad_bias,
                                       need_input_grad, accumulate,
                                       config.threads_for(x.size * kernel.shape[-1]))

    # -- losses ------------------------------------------------------------------
    def _loss_code(self, name, y_pred, y_true, sample_weight):
        """The kernel's loss code, or None where the reference must run (unknown name,
        a cross-entropy over more than 2 axes, labels or weights not one per row)."""
        code = _LOSS_CODES.get(name)
        if code is None or y_pred.ndim == 0 or y_pred.size == 0:
            return None
        if code in _CATEGORICAL:
            if y_pred.ndim != 2:
                return None
            if y_true.size != (y_pred.shape[0] if code == _CATEGORICAL[1] else y_pred.size):
                return None
        elif y_true.size != y_pred.size:
            return None
        if sample_weight is not None and sample_weight.size != y_pred.shape[0]:
            return None
        return code

    def loss(self, name, y_pred, y_true, from_logits=False, sample_weight=None, param=None):
        """(mean loss over the batch, gradient w.r.t. y_pred), fused in one pass."""
        code = self._loss_code(name, y_pred, y_true, sample_weight)
        if code is None:
            return super().loss(name, y_pred, y_true, from_logits, sample_weight, param)
        return _kernels.loss(code, y_pred, y_true, from_logits, sample_weight,
                             1.0 if param is None else float(param), True,
                             config.threads_for(y_pred.size * _TRANSCENDENTAL_COST))

    def loss_value(self, name, y_pred, y_true, from_logits=False, sample_weight=None, param=None):
        """The mean loss over the batch, without its gradient."""
        code = self._loss_code(name, y_pred, y_true, sample_weight)
        if code is None:
            return super().loss_value(name, y_pred, y_true, from_logits, sample_weight, param)
        return _kernels.loss(code, y_pred, y_true, from_logits, sample_weight,
                             1.0 if param is None else float(param), False,
                             config.threads_for(y_pred.size * _TRANSCENDENTAL_COST))[0]

    # -- optimizer updates: one pass over the parameter; the reference runs when an
    # -- array cannot be updated in place by a kernel (the kernel then changed nothing)
    def sgd_update(self, param, grad, velocity, lr, momentum=0.0, dampening=0.0, nesterov=False,
                   weight_decay=0.0, decoupled_weight_decay=False, first_step=False):
        """SGD with (Nesterov) momentum, in place (torch.optim.SGD)."""
        if not _kernels.sgd_update(param, grad, velocity, lr, momentum, dampening, nesterov,
                                   weight_decay, decoupled_weight_decay, first_step,
                                   config.threads_for(param.size * _UPDATE_COST)):
            super().sgd_update(param, grad, velocity, lr, momentum, dampening, nesterov,
                               weight_decay, decoupled_weight_decay, first_step)

    def adam_update(self, param, grad, m, v, v_max, lr, beta_1, beta_2, epsilon, step,
                    weight_decay=0.0, decoupled_weight_decay=False, amsgrad=False):
        """Adam / AdamW / AMSGrad, in place (torch.optim.Adam)."""
        if not _kernels.adam_update(param, grad, m, v, v_max, lr, beta_1, beta_2, epsilon, step,
                                    weight_decay, decoupled_weight_decay, amsgrad,
                                    config.threads_for(param.size * _UPDATE_COST)):
            super().adam_update(param, grad, m, v, v_max, lr, beta_1, beta_2, epsilon, step,
                                weight_decay, decoupled_weight_decay, amsgrad)

    def rmsprop_update(self, param, grad, square_avg, momentum_buf, grad_avg, lr, rho, epsilon,
                       momentum=0.0, centered=False, weight_decay=0.0,
                       decoupled_weight_decay=False):
        """RMSprop, in place (torch.optim.RMSprop)."""
        if not _kernels.rmsprop_update(param, grad, square_avg, momentum_buf, grad_avg, lr, rho,
                                       epsilon, momentum, centered, weight_decay,
                                       decoupled_weight_decay,
                                       config.threads_for(param.size * _UPDATE_COST)):
            super().rmsprop_update(param, grad, square_avg, momentum_buf, grad_avg, lr, rho,
                                   epsilon, momentum, centered, weight_decay,
                                   decoupled_weight_decay)

    def adagrad_update(self, param, grad, sum_sq, lr, epsilon, step, lr_decay=0.0,
                       weight_decay=0.0, decoupled_weight_decay=False):
        """Adagrad, in place (torch.optim.Adagrad)."""
        if not _kernels.adagrad_update(param, grad, sum_sq, lr, epsilon, step, lr_decay,
                                       weight_decay, decoupled_weight_decay,
                                       config.threads_for(param.size * _UPDATE_COST)):
            super().adagrad_update(param, grad, sum_sq, lr, epsilon, step, lr_decay,
                                   weight_decay, decoupled_weight_decay)

    # -- clipping and penalties --------------------------------------------------
    def clip_by_value(self, grads, clip_value):
        """Clip every gradient elementwise to [-clip_value, clip_value], in place."""
        clip_value = float(clip_value)
        for g in grads:
            if not _kernels.clip_by_value(g, clip_value, config.threads_for(g.size)):
                super().clip_by_value([g], clip_value)

    def _scale(self, g, factor):
        if not _kernels.scale(g, factor, config.threads_for(g.size)):
            g *= factor

    def clip_by_norm(self, grads, clip_norm):
        """Scale each gradient whose L2 norm exceeds ``clip_norm`` down to that norm."""
        for g in grads:
            norm = math.sqrt(_kernels.sum_squares(g, config.threads_for(g.size)))
            if norm > clip_norm:
                self._scale(g, clip_norm / norm)

    def global_norm(self, grads):
        """sqrt(sum over all gradients of sum g^2), tensors added in list order."""
        total = 0.0
        for g in grads:
            total += _kernels.sum_squares(g, config.threads_for(g.size))
        return math.sqrt(total)

    def clip_by_global_norm(self, grads, clip_norm):
        """Scale all gradients by clip_norm / max(global_norm, clip_norm); return the norm."""
        norm = self.global_norm(grads)
        if norm > clip_norm:
            for g in grads:
                self._scale(g, clip_norm / norm)
        return norm

    def l1l2_penalty(self, w, l1, l2):
        """l1 * sum|w| + l2 * sum w^2."""
        return _kernels.l1l2_penalty(w, float(l1 or 0.0), float(l2 or 0.0),
                                     config.threads_for(w.size))

    def l1l2_grad(self, w, l1, l2, grad):
        """grad += l1 * sign(w) + 2 * l2 * w, in place; returns grad."""
        if not _kernels.l1l2_grad(w, float(l1 or 0.0), float(l2 or 0.0), grad,
                                  config.threads_for(w.size)):
            super().l1l2_grad(w, l1, l2, grad)
        return grad
