"""``fastnn.nn.functional``: the PyTorch-style functions, on the backend ops.

Every function takes :class:`fastnn.Tensor` inputs (NumPy arrays and lists are
accepted and converted) and records its backward on the tape:

* activations call the backend's ``activation`` / ``activation_backward``;
* :func:`linear` is the backend's fused ``dense_forward`` / ``dense_backward``;
* losses call the backend's ``loss`` op, which returns the mean loss over the
  batch and its gradient in one pass (softmax + cross-entropy fused and
  stable). ``reduction='sum'`` rescales both; ``reduction='none'`` is composed
  from tensor operations so that each element's loss keeps its own gradient.
  :func:`cross_entropy`'s ``weight`` / ``ignore_index`` become the op's sample
  weights, and ``label_smoothing`` (or weighted class probabilities) a target
  matrix for the op's categorical cross-entropy; 'mean' then rescales by
  PyTorch's denominator.

Loss formulas and their clipping are those of the backend (Keras's): the
probability inputs of :func:`binary_cross_entropy` are clipped to
``[1e-7, 1 - 1e-7]``, where PyTorch instead bounds ``log`` below by -100; the
two agree except for probabilities within 1e-7 of 0 or 1.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np


from fastnn._validation import _all_finite, as_float_array, as_label_array, check_float, lookup
from fastnn.tensor import Tensor, _ops, _record, activation

__all__ = [
    "relu", "sigmoid", "tanh", "softmax", "log_softmax", "gelu", "elu", "leaky_relu", "softplus",
    "selu", "one_hot", "linear", "dropout", "mse_loss", "l1_loss", "cross_entropy", "nll_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
]

_REDUCTIONS = {"mean": "mean", "sum": "sum", "none": "none"}

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# Keras's epsilon, the backend's clipping of probabilities (see fastnn.backends).
_PROB_EPSILON = 1e-7


# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------

def _as_input(x, name="input", dtype=None):
    """``x`` as a float Tensor: Tensors pass through, arrays and lists are validated.

    NumPy float arrays keep float32/float64 unless ``dtype`` asks for another
    type; ints, bools and uint8 become ``dtype`` (default ``config.floatx()``).
    """
    if isinstance(x, Tensor):
        if x.data.dtype.kind != "f":
            raise TypeError(f"{name} must be a float tensor, got dtype {x.data.dtype}")
        return x
    if type(x) is np.ndarray and x.dtype in _FLOAT_DTYPES:
        if dtype is None:
            dtype = x.dtype
        # The common case, a batch of the right dtype, needs only the NaN/inf check.
        if x.dtype == dtype and x.size and x.flags.c_contiguous and _all_finite(x):
            return Tensor._wrap(x)
    return Tensor._wrap(as_float_array(x, name, dtype=dtype))


def _softmax_dim(dim, ndim, fname):
    """PyTorch's implicit softmax dimension (with its warning) when ``dim`` is None."""
    if dim is not None:
        return dim
    warnings.warn(f"implicit dimension choice for {fname} is deprecated; pass dim=",
                  UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


# ----------------------------------------------------------------------------
# Activations
# ----------------------------------------------------------------------------

def relu(input):
    """max(x, 0), elementwise."""
    return activation(_as_input(input), "relu")


def sigmoid(input):
    """1 / (1 + e^-x), elementwise."""
    return activation(_as_input(input), "sigmoid")


def tanh(input):
    """Hyperbolic tangent, elementwise."""
    return activation(_as_input(input), "tanh")


def softmax(input, dim=None):
    """e^x_i / sum_j e^x_j along ``dim`` (rows of a batch: ``dim=1``)."""
    x = _as_input(input)
    dim = _softmax_dim(dim, x.ndim, "softmax")
    return x.softmax(dim)


def log_softmax(input, dim=None):
    """x_i - log sum_j e^x_j along ``dim``, computed without overflow."""
    x = _as_input(input)
    dim = _softmax_dim(dim, x.ndim, "log_softmax")
    return x.log_softmax(dim)


def gelu(input, approximate="none"):
    """x * Phi(x) (``approximate='tanh'``: the tanh approximation)."""
    name = lookup("approximate", approximate, {"none": "gelu", "tanh": "gelu_tanh"})
    return activation(_as_input(input), name)


def elu(input, alpha=1.0):
    """x for x > 0, alpha * (e^x - 1) otherwise."""
    alpha = check_float(alpha, "alpha")
    return activation(_as_input(input), "elu", param=alpha)


def leaky_relu(input, negative_slope=0.01):
    """x for x > 0, negative_slope * x otherwise (PyTorch's default slope 0.01)."""
    negative_slope = check_float(negative_slope, "negative_slope")
    return activation(_as_input(input), "leaky_relu", param=negative_slope)


def softplus(input, beta=1.0, threshold=20.0):
    """``log(1 + e^(beta x)) / beta``, elementwise; ``x`` itself where ``beta x > threshold``.

    With the defaults this is the backend's fused softplus, which stays exact
    beyond the threshold (PyTorch's returns ``x`` there, a relative difference
    below 1e-8).
    """
    beta = check_float(beta, "beta")
    threshold = check_float(threshold, "threshold")
    x = _as_input(input)
    if beta == 1.0 and threshold == 20.0:
        return activation(x, "softplus")
    if beta == 0.0:
        raise ValueError("beta must not be 0")
    z = beta * x.data
    linear = z > threshold
    with np.errstate(over="ignore"):
        value = np.where(linear, x.data, np.logaddexp(0.0, z) / beta).astype(x.data.dtype, copy=False)

    def backward(g):  # d/dx = sigmoid(beta x) on the curve, 1 where linear
        with np.errstate(over="ignore"):
            slope = np.where(linear, 1.0, 1.0 / (1.0 + np.exp(-z)))
        return ((g * slope).astype(x.data.dtype, copy=False),)
    return _record(value, (x,), backward)


# SELU's constants (Klambauer et al. 2017), as PyTorch spells them.
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input):
    """``scale * elu(x, alpha)`` with SELU's self-normalizing constants."""
    return activation(_as_input(input), "elu", param=_SELU_ALPHA) * _SELU_SCALE


def one_hot(tensor, num_classes=-1):
    """Class indices of any shape as one-hot rows: shape ``(..., num_classes)``, int64.

    ``num_classes=-1`` takes one more than the largest index.
    """
    data = tensor.data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if data.dtype.kind not in "iu":
        raise TypeError(f"one_hot expects integer class indices, got dtype {data.dtype}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        raise TypeError(f"num_classes must be an int, got {num_classes!r}")
    if data.size and data.min() < 0:
        raise ValueError("one_hot: class values must be non-negative")
    if num_classes == -1:
        if not data.size:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor")
        num_classes = int(data.max()) + 1
    elif num_classes < 1:
        raise ValueError(f"num_classes must be -1 or >= 1, got {num_classes}")
    elif data.size and data.max() >= num_classes:
        raise ValueError(f"one_hot: class value {int(data.max())} is not below num_classes = "
                         f"{num_classes}")
    out = np.zeros(data.shape + (int(num_classes),), dtype=np.int64)
    np.put_along_axis(out, data.astype(np.int64)[..., None], 1, axis=-1)
    return Tensor._wrap(out)


# ----------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------

def _as_param(w, name, dtype=None):
    if isinstance(w, Tensor):
        return w
    return Tensor._wrap(as_float_array(w, name, dtype=dtype))


def linear(input, weight, bias=None):
    """``y = x @ weight.T + bias``, one fused backend call each way.

    Parameters
    ----------
    input : Tensor or array_like, shape (..., in_features)
    weight : Tensor, shape (out_features, in_features)
    bias : Tensor, shape (out_features,), optional

    Notes
    -----
    The backend's dense op takes the kernel as an (in, out) C-contiguous matrix.
    ``weight.T`` is exactly that when the weight is stored column-major, which
    is how :class:`fastnn.nn.Linear` allocates it, so no copy is made; any other
    layout is copied for the call.
    """
    weight = _as_param(weight, "weight")
    W = weight.data
    if W.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {W.shape}")
    x = _as_input(input, "input", dtype=W.dtype)
    X = x.data
    in_features = W.shape[1]
    if X.ndim == 0 or X.shape[-1] != in_features:
        raise ValueError(
            f"linear: input has shape {X.shape} but the weight {W.shape} expects "
            f"{in_features} features in the last dimension"
        )
    if bias is not None:
        bias = _as_param(bias, "bias", dtype=W.dtype)
        if bias.data.shape != (W.shape[0],):
            raise ValueError(f"linear: bias must have shape ({W.shape[0]},), got {bias.data.shape}")
    if X.dtype != W.dtype:
        X = X.astype(W.dtype)
    in_shape = X.shape
    X2 = X if X.ndim == 2 else X.reshape(-1, in_features)
    if not X2.flags.c_contiguous:
        X2 = np.ascontiguousarray(X2)
    kernel = W.T
    if not kernel.flags.c_contiguous:
        kernel = np.ascontiguousarray(kernel)
    B = None if bias is None else bias.data
    ops = _ops()
    y = ops.dense_forward(X2, kernel, B)
    if X.ndim != 2:
        y = y.reshape(in_shape[:-1] + (W.shape[0],))

    def backward(g):
        # dW^T = x^T g (written as the (in, out) kernel gradient), db = sum g, dx = g W.
        g2 = np.ascontiguousarray(g.reshape(X2.shape[0], W.shape[0]))
        grad_kernel = np.empty_like(kernel) if weight.requires_grad else None
        grad_bias = np.empty_like(B) if bias is not None and bias.requires_grad else None
        grad_x = ops.dense_backward(g2, X2, kernel, g2, None, "linear",
                                    grad_kernel=grad_kernel, grad_bias=grad_bias,
                                    need_input_grad=x.requires_grad)
        if grad_x is not None and grad_x.shape != in_shape:
            grad_x = grad_x.reshape(in_shape)
        return grad_x, (None if grad_kernel is None else grad_kernel.T), grad_bias

    parents = (x, weight) if bias is None else (x, weight, bias)
    return _record(y, parents, backward)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (training only).

    ``inplace`` is accepted for compatibility; the result is always a new tensor.

    The mask comes from the backend's ``dropout_mask`` with fastnn's generator
    (:func:`fastnn.manual_seed` makes it reproducible).
    """
    p = check_float(p, "p", minimum=0.0, maximum=1.0)
    x = _as_input(input)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        mask = np.zeros(x.data.shape, dtype=x.data.dtype)
    else:
        from fastnn import utils
        mask = _ops().dropout_mask(x.data.shape, p, utils.rng(), x.data.dtype)
    return _record(x.data * mask, (x,), lambda g: (g * mask,))


# ----------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------

def _reduction(reduction):
    return lookup("reduction", reduction, _REDUCTIONS)


def _loss_result(x, value, grad, scale=1.0, target=None, target_grad_sign=0):
    """A scalar tensor ``scale * value`` whose backward hands ``scale * grad`` to ``x``.

    ``target_grad_sign = -1`` also gives a target that requires grad the
    gradient ``-scale * grad`` (losses of ``x - target``).
    """
    if scale != 1.0:
        value = value * scale
        grad = grad * scale
    out = np.asarray(value, dtype=x.data.dtype)

    if target is not None and target_grad_sign and target.requires_grad:
        def backward(g):
            gx = grad if g == 1 else grad * g
            return gx, (-gx).reshape(target.data.shape)
        return _record(out, (x, target), backward)
    return _record(out, (x,), lambda g: (grad if g == 1 else grad * g,))


def _float_target(target, x, fname):
    """(target tensor, its array) for elementwise losses: same shape as the input."""
    t = target if isinstance(target, Tensor) else Tensor._wrap(
        as_float_array(target, "target", dtype=x.data.dtype, allow_empty=True))
    T = t.data
    if T.shape != x.data.shape:
        raise ValueError(
            f"{fname}: target shape {T.shape} differs from input shape {x.data.shape}; "
            "reshape one of them (broadcasting here is almost always a bug)"
        )
    if T.dtype != x.data.dtype:
        T = T.astype(x.data.dtype)
    return t, T


def _rows(a):
    """``a`` as a 2-D (samples, elements) array for the backend's batch losses."""
    if a.ndim == 2:
        return a
    if a.ndim < 2:
        return a.reshape(-1, 1)
    return a.reshape(a.shape[0], -1)


def _elementwise_loss(name, input, target, reduction, fname, grad_to_target):
    x = _as_input(input)
    reduction = _reduction(reduction)
    t, T = _float_target(target, x, fname)
    if x.data.size == 0:
        raise ValueError(f"{fname}: input is empty")
    if reduction == "none":
        return None, x, t
    X = x.data
    value, grad = _ops().loss(name, _rows(np.ascontiguousarray(X)), _rows(np.ascontiguousarray(T)))
    grad = grad.reshape(X.shape)
    # The op's value is the mean over all elements; 'sum' is that times their count.
    scale = float(X.size) if reduction == "sum" else 1.0
    return _loss_result(x, value, grad, scale, t, -1 if grad_to_target else 0), x, t


def mse_loss(input, target, reduction="mean"):
    """Mean (or sum, or elementwise) squared error ``(input - target)^2``."""
    result, x, t = _elementwise_loss("mean_squared_error", input, target, reduction,
                                     "mse_loss", grad_to_target=True)
    if result is None:
        diff = x - t
        return diff * diff
    return result


def l1_loss(input, target, reduction="mean"):
    """Mean (or sum, or elementwise) absolute error ``|input - target|``."""
    result, x, t = _elementwise_loss("mean_absolute_error", input, target, reduction,
                                     "l1_loss", grad_to_target=True)
    if result is None:
        return (x - t).abs()
    return result


def binary_cross_entropy(input, target, reduction="mean"):
    """-[t log p + (1 - t) log(1 - p)] for probabilities ``p`` in [0, 1].

    Probabilities are clipped to [1e-7, 1 - 1e-7] (see the module notes).
    """
    x = _as_input(input)
    X = x.data
    if X.size and (X.min() < 0 or X.max() > 1):
        raise ValueError(
            "binary_cross_entropy: input must hold probabilities in [0, 1]; for raw scores "
            "use binary_cross_entropy_with_logits (nn.BCEWithLogitsLoss)"
        )
    result, x, t = _elementwise_loss("binary_crossentropy", x, target, reduction,
                                     "binary_cross_entropy", grad_to_target=False)
    if result is None:
        p = x.clamp(_PROB_EPSILON, 1 - _PROB_EPSILON)
        t = t.detach()
        return -(t * p.log() + (1 - t) * (1 - p).log())
    return result


def binary_cross_entropy_with_logits(input, target, reduction="mean"):
    """Binary cross-entropy of ``sigmoid(input)``, computed from the logits (stable)."""
    x = _as_input(input)
    reduction = _reduction(reduction)
    t, T = _float_target(target, x, "binary_cross_entropy_with_logits")
    if reduction == "none":
        # -[t log s(x) + (1-t) log(1 - s(x))] = softplus(x) - t x
        return activation(x, "softplus") - x * t.detach()
    X = x.data
    value, grad = _ops().loss("binary_crossentropy", _rows(np.ascontiguousarray(X)),
                                 _rows(np.ascontiguousarray(T)), from_logits=True)
    scale = float(X.size) if reduction == "sum" else 1.0
    return _loss_result(x, value, grad.reshape(X.shape), scale)


def _looks_like_probabilities(X):
    """True if every row of ``X`` is non-negative and sums to 1 (a softmax output).

    The first row is tested alone first, so logits cost two tiny reductions.
    """
    first = X[0]
    if abs(float(first.sum()) - 1.0) > 1e-3 or float(first.min()) < 0:
        return False
    return bool(X.min() >= 0 and np.all(np.abs(X.sum(axis=1) - 1.0) <= 1e-3))


def _class_indices(target, classes, ignore_index=None):
    """Validated class indices and the mask of the ignored ones.

    Returns
    -------
    (labels, ignored)
        ``labels`` an int array in [0, classes), where targets equal to
        ``ignore_index`` read 0 (their loss is masked out); ``ignored`` a bool
        array of those targets, or None when there are none.
    """
    if np.ndim(target) != 1:
        # PyTorch too: an (N, 1) column of labels is refused, not flattened
        raise ValueError(f"target must be a 1-D array of class indices (one per row), got "
                         f"shape {np.shape(target)}")
    if type(target) is np.ndarray and target.dtype.kind in "iu" \
            and target.size and target.min() >= 0 and target.max() < classes:
        labels = target  # the common case, checked with two reductions and no copy
    elif ignore_index is not None and not 0 <= ignore_index < classes:
        # An ignore_index outside the classes (PyTorch's -100) is no label:
        # validate the other targets, with the ignored ones read as class 0.
        try:
            arr = np.asarray(target)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.dtype.kind not in "iuf":
            return as_label_array(target, "target", num_classes=classes), None
        ignored = arr == ignore_index
        labels = as_label_array(np.where(ignored, 0, arr), "target", num_classes=classes)
        ignored = ignored.reshape(labels.shape)
        return labels, (ignored if ignored.any() else None)
    else:
        labels = as_label_array(target, "target", num_classes=classes)
    if ignore_index is None or not 0 <= ignore_index < classes:
        return labels, None
    ignored = labels == ignore_index
    return labels, (ignored if ignored.any() else None)


def _check_ignore_index(ignore_index):
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int, got {ignore_index!r}")
    return int(ignore_index)


def _check_label_smoothing(label_smoothing):
    return check_float(label_smoothing, "label_smoothing", minimum=0.0, maximum=1.0)


def _as_class_weight(weight):
    """``weight`` as a 1-D float array of non-negative class weights (or None).

    Float arrays keep float32/float64; the loss casts to the input's dtype.
    """
    if weight is None:
        return None
    w = weight.data if isinstance(weight, Tensor) else weight
    dtype = w.dtype if isinstance(w, np.ndarray) and w.dtype in _FLOAT_DTYPES else None
    w = as_float_array(w, "weight", dtype=dtype)
    if w.ndim != 1:
        raise ValueError(f"weight must be 1-D, one weight per class, got shape {w.shape}")
    if np.any(w < 0):
        raise ValueError("weight must hold class weights >= 0")
    return w


def _class_weight(weight, classes, dtype, fname):
    w = _as_class_weight(weight)
    if w is None:
        return None
    if w.shape[0] != classes:
        raise ValueError(
            f"{fname}: weight has {w.shape[0]} entries but the input has {classes} classes"
        )
    return w.astype(dtype, copy=False)


def _target_weights(labels, ignored, w, dtype):
    """Each sample's weight in the loss: its class's weight, 0 where ignored."""
    coef = np.ones(labels.shape[0], dtype) if w is None else w[labels]
    if ignored is not None:
        coef = np.where(ignored, 0, coef).astype(dtype, copy=False)
    return np.ascontiguousarray(coef)


def _weighted_result(x, value, grad, n, total, reduction):
    """The op's ``value = sum_i l_i / n`` (and gradient) as PyTorch's reduction.

    'mean' divides the sum by ``total``, the sum of the samples' weights; when
    that is 0 (every target ignored) the value is NaN and the gradient 0, as
    in PyTorch.
    """
    if reduction == "sum":
        return _loss_result(x, value, grad, float(n))
    if total == 0:
        return _loss_result(x, float("nan"), np.zeros_like(grad))
    return _loss_result(x, value, grad, n / total)


def _class_scores(input, fname):
    x = _as_input(input)
    if x.data.ndim == 1:
        x = x.reshape(1, -1)
    if x.data.ndim != 2:
        raise ValueError(
            f"{fname}: input must be (batch, classes) scores, got shape {x.data.shape}"
        )
    if x.data.shape[0] == 0:
        raise ValueError(f"{fname}: input is empty")
    return x


def _cross_entropy_default(input, target, reduction):
    """cross_entropy with its default options on a batch of class indices, or None
    for anything else (the general path then validates and reports).

    The training loop's case, once per step: the same checks as the general path
    (probability rows, label range) with fewer calls, then one fused loss op.
    """
    x = _class_scores(input, "cross_entropy")
    X = x.data
    n, classes = X.shape
    labels = target.data if isinstance(target, Tensor) else target
    if (classes < 2 or type(labels) is not np.ndarray or labels.ndim != 1
            or labels.dtype.kind not in "iu" or labels.shape[0] != n):
        return None
    if n <= 1024:  # a training batch: cheaper as Python ints than two NumPy reductions
        values = labels.tolist()
        low, high = min(values), max(values)
    else:
        low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        return None
    first = X[0].tolist()  # a few floats: cheaper in Python than two NumPy reductions
    if min(first) >= 0 and abs(sum(first) - 1.0) <= 1e-3 and _looks_like_probabilities(X):
        return None  # the general path warns
    value, grad = _ops().loss("sparse_categorical_crossentropy", np.ascontiguousarray(X),
                              labels, from_logits=True)
    return _loss_result(x, value, grad, float(n) if reduction == "sum" else 1.0)


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0):
    """Softmax cross-entropy from logits, as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    input : Tensor, shape (batch, classes)
        Raw, unnormalised scores (logits). Do not apply softmax first: this
        function applies log-softmax itself, and warns if the rows already
        look like probability distributions.
    target : array_like
        Class indices, shape (batch,) (ints); or class probabilities of the
        same shape as ``input`` (floats).
    weight : array_like or Tensor, shape (classes,), optional
        A weight per class (>= 0), a constant: no gradient flows to it.
    ignore_index : int, default -100
        Class-index targets equal to it add nothing to the loss, nor to the
        denominator of 'mean'. Not allowed (>= 0) with class probabilities.
    reduction : {'mean', 'sum', 'none'}
        'mean' over class indices is ``sum_i w[y_i] l_i / sum_i w[y_i]`` over
        the targets not ignored; over class probabilities, the sum / batch.
    label_smoothing : float in [0, 1], default 0.0
        Mixes the target with the uniform distribution over the K classes:
        ``(1 - ls) * target + ls / K``. With ``weight``, the uniform part is
        weighted per class and the denominator stays ``sum_i w[y_i]``.

    Notes
    -----
    The other arguments are keyword-only: PyTorch's positional order runs
    through the deprecated ``size_average`` and ``reduce``.
    """
    if (weight is None and type(ignore_index) is int and ignore_index == -100
            and type(label_smoothing) is float and label_smoothing == 0.0
            and (reduction == "mean" or reduction == "sum")):
        fast = _cross_entropy_default(input, target, reduction)
        if fast is not None:
            return fast
    x = _class_scores(input, "cross_entropy")
    reduction = _reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    label_smoothing = _check_label_smoothing(label_smoothing)
    X = x.data
    n, classes = X.shape
    w = _class_weight(weight, classes, X.dtype, "cross_entropy")
    if classes > 1 and _looks_like_probabilities(X):
        warnings.warn(
            "cross_entropy / CrossEntropyLoss expects raw logits and applies log-softmax itself, "
            "but every row of its input is already a probability distribution: softmax seems to "
            "be applied twice (e.g. torch.softmax at the end of forward). Return the logits "
            "instead; apply softmax only for predictions.",
            UserWarning, stacklevel=3,
        )
    target_array = target.data if isinstance(target, Tensor) else target
    soft = (isinstance(target_array, np.ndarray) and target_array.dtype.kind == "f"
            and target_array.shape == X.shape)
    if soft:
        if ignore_index >= 0:
            raise ValueError(
                f"cross_entropy: ignore_index={ignore_index} is not supported for class-probability "
                "targets (a float target of the input's shape); leave it at -100"
            )
        T = as_float_array(target_array, "target", dtype=X.dtype)
        if label_smoothing:
            T = T * (1 - label_smoothing) + label_smoothing / classes
        # -sum_c q_c log softmax(x)_c with q = t * w: PyTorch divides by the
        # batch size here, whatever the weights.
        Q = T if w is None else T * w
        total = float(n)
    else:
        labels, ignored = _class_indices(target_array, classes, ignore_index)
        if labels.shape[0] != n:
            raise ValueError(f"cross_entropy: input has {n} rows but target has {labels.shape[0]} labels")
        rows = np.arange(n)
        if w is None and ignored is None and not label_smoothing:
            if reduction == "none":
                return -x.log_softmax(1)[rows, labels]
            value, grad = _ops().loss("sparse_categorical_crossentropy", np.ascontiguousarray(X),
                                      labels, from_logits=True)
            return _loss_result(x, value, grad, float(n) if reduction == "sum" else 1.0)
        coef = _target_weights(labels, ignored, w, X.dtype)
        total = float(coef.sum())
        if not label_smoothing:
            if reduction == "none":
                return -(x.log_softmax(1)[rows, labels] * Tensor._wrap(coef))
            # The backend's sample weights are the target weights: sum_i c_i l_i / n.
            value, grad = _ops().loss("sparse_categorical_crossentropy", np.ascontiguousarray(X),
                                      labels, from_logits=True, sample_weight=coef)
            return _weighted_result(x, value, grad, n, total, reduction)
        # (1 - ls) w[y_i] nll_i + ls/K sum_c w_c (-log p_ic) is the cross-entropy
        # against q_i = (1 - ls) w[y_i] onehot(y_i) + ls/K w (0 for ignored rows).
        kept = np.ones(n, X.dtype) if ignored is None else (~ignored).astype(X.dtype)
        Q = np.outer(kept, np.ones(classes, X.dtype) if w is None else w) * (label_smoothing / classes)
        Q[rows, labels] += (1 - label_smoothing) * coef
    Q = np.ascontiguousarray(Q, dtype=X.dtype)
    if reduction == "none":
        return -(Tensor._wrap(Q) * x.log_softmax(1)).sum(1)
    # The op's gradient softmax(x) * sum_c q_c - q holds for q of any sum.
    value, grad = _ops().loss("categorical_crossentropy", np.ascontiguousarray(X), Q,
                              from_logits=True)
    return _weighted_result(x, value, grad, n, total, reduction)


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood ``-w[y_i] input[i, y_i]`` of log-probabilities (after log_softmax).

    ``weight``, ``ignore_index`` and ``reduction`` as in :func:`cross_entropy`
    ('mean' divides by the sum of the weights of the targets not ignored).
    """
    x = _class_scores(input, "nll_loss")
    reduction = _reduction(reduction)
    ignore_index = _check_ignore_index(ignore_index)
    n, classes = x.data.shape
    w = _class_weight(weight, classes, x.data.dtype, "nll_loss")
    labels, ignored = _class_indices(target.data if isinstance(target, Tensor) else target,
                                     classes, ignore_index)
    if labels.shape[0] != n:
        raise ValueError(f"nll_loss: input has {n} rows but target has {labels.shape[0]} labels")
    picked = -x[np.arange(n), labels]
    if w is None and ignored is None:
        if reduction == "none":
            return picked
        return picked.sum() if reduction == "sum" else picked.mean()
    coef = _target_weights(labels, ignored, w, x.data.dtype)
    picked = picked * Tensor._wrap(coef)
    if reduction == "none":
        return picked
    if reduction == "sum":
        return picked.sum()
    total = float(coef.sum())
    if total == 0:
        return _loss_result(x, float("nan"), np.zeros_like(x.data))
    return picked.sum() / total
