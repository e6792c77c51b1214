"""Loss functions: how far the predictions are from the targets.

Keras names, defaults and call order ``loss(y_true, y_pred, sample_weight=None)``.
The value is the mean over the batch of the per-sample losses l_i (for a sample
of several outputs, l_i is the mean over them, as Keras does); with sample
weights it is ``sum_i w_i l_i / N``.

=================================  ============================================
class (string names)               per-sample loss
=================================  ============================================
MeanSquaredError (mse)             mean_j (p_j - t_j)^2
MeanAbsoluteError (mae)            mean_j |p_j - t_j|
Huber(delta=1.0)                   mean_j [e^2/2 if |e| <= delta else delta (|e| - delta/2)]
BinaryCrossentropy                 mean_j -[t_j log p_j + (1 - t_j) log(1 - p_j)]
CategoricalCrossentropy            -sum_k t_k log p_k   (t one-hot or probabilities)
SparseCategoricalCrossentropy      -log p_y             (y an integer class index)
=================================  ============================================

Probabilities are clipped to [1e-7, 1 - 1e-7] (Keras); the categorical
cross-entropies first divide each row of y_pred by its sum, as Keras does, so
that rows which do not sum to 1 are read as distributions (the backend op itself
only clips: the loss classes scale the rows and carry the gradient back through
the scaling). With ``from_logits=True`` the cross-entropies take the raw scores
and fold the sigmoid/softmax in, stably: ``logsumexp(z) - z_y`` and ``max(z, 0) - z t + log1p(e^-|z|)``, and the
gradient with respect to the logits is simply ``softmax(z) - t`` (``sigmoid(z) - t``).
A model whose last layer is softmax (sigmoid) trained with the probability
form of the loss uses :meth:`Loss.logits_variant_for` to run the fused form.

Every number comes from the active backend's ``loss`` op.
"""
from __future__ import annotations

import warnings

import numpy as np

from fastnn import backends
from fastnn._serialization import Configurable, Registry
from fastnn._validation import as_float_array, as_label_array, check_float

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "Huber", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "get", "serialize",
    "deserialize",
]


def _as_predictions(y_pred):
    """y_pred as a float array; float32/float64 keep their dtype."""
    dtype = None
    if isinstance(y_pred, np.ndarray) and y_pred.dtype in (np.float32, np.float64):
        dtype = y_pred.dtype
    return as_float_array(y_pred, "y_pred", dtype=dtype, min_ndim=1)


class Loss(Configurable):
    """Base class of the losses: validation, the backend call and configuration.

    Subclasses set ``op_name`` (the backend's name of the loss) and, for the
    cross-entropies, accept ``from_logits``.

    Parameters
    ----------
    name : str, optional
        Display name (default: the snake_case Keras name).
    """

    op_name: str = ""
    #: The activation whose output this loss can take as logits instead ('softmax'/'sigmoid').
    fusable_activation: str | None = None

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self.name = name if name is not None else self.op_name
        self.from_logits = False

    # -- what the backend op takes -------------------------------------------------
    @property
    def param(self):
        """The op's ``param`` (Huber's delta), or None."""
        return None

    # -- validation ----------------------------------------------------------------
    def validate(self, y_true, y_pred, sample_weight=None):
        """Check and convert the arguments of a call.

        Returns
        -------
        (y_true, y_pred, sample_weight)
            Arrays as the backend op takes them: y_pred float (its own float
            dtype, else floatx), y_true of the same dtype and shape (integer
            class indices for the sparse loss), sample_weight float of shape
            (batch,) or None.

        Raises
        ------
        ValueError, TypeError
            Naming the argument: NaN/inf, empty input, mismatched shapes or
            batch sizes, labels out of range, negative sample weights.
        """
        y_pred = _as_predictions(y_pred)
        y_true = self._validate_targets(y_true, y_pred)
        if sample_weight is not None:
            sample_weight = as_float_array(sample_weight, "sample_weight", dtype=y_pred.dtype)
            if sample_weight.ndim == 2 and sample_weight.shape[1] == 1:
                sample_weight = sample_weight[:, 0]
            if sample_weight.shape != (y_pred.shape[0],):
                raise ValueError(
                    f"sample_weight must have shape ({y_pred.shape[0]},), one weight per sample, "
                    f"got shape {sample_weight.shape}"
                )
            if np.any(sample_weight < 0):
                raise ValueError("sample_weight must be >= 0")
            sample_weight = np.ascontiguousarray(sample_weight)
        return y_true, y_pred, sample_weight

    def _validate_targets(self, y_true, y_pred):
        y_true = as_float_array(y_true, "y_true", dtype=y_pred.dtype, min_ndim=1)
        if y_true.shape != y_pred.shape:
            # Keras accepts (N,) targets for (N, 1) outputs and the reverse.
            if y_true.size == y_pred.size and y_pred.shape[0] == y_true.shape[0] and \
                    1 in (y_true.shape[-1], y_pred.shape[-1]):
                y_true = y_true.reshape(y_pred.shape)
            else:
                raise ValueError(
                    f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}; "
                    f"{self.name} needs them equal{self._shape_hint(y_true, y_pred)}"
                )
        return y_true

    def _shape_hint(self, y_true, y_pred):
        return ""

    # -- evaluation ----------------------------------------------------------------
    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """The loss value (a float): mean over the batch of the per-sample losses."""
        y_true, y_pred, sample_weight = self.validate(y_true, y_pred, sample_weight)
        return self.value(y_true, y_pred, sample_weight)

    def value(self, y_true, y_pred, sample_weight=None) -> float:
        """The loss value on already validated arrays (see :meth:`validate`)."""
        y_pred, _ = self._op_input(y_pred)
        return backends.get().loss_value(self.op_name, y_pred, self._op_targets(y_true, y_pred),
                                         self.from_logits, sample_weight, self.param)

    def forward_backward(self, y_true, y_pred, sample_weight=None, *, validate=True):
        """The loss value and its gradient with respect to ``y_pred``.

        Parameters
        ----------
        y_true, y_pred, sample_weight
            As in :meth:`__call__`.
        validate : bool, default True
            False skips the checks, for callers (the training loop) that
            validated the targets once with :meth:`validate`.

        Returns
        -------
        (float, numpy.ndarray)
            With ``from_logits`` the gradient is with respect to the logits.
        """
        if validate:
            y_true, y_pred, sample_weight = self.validate(y_true, y_pred, sample_weight)
        op_input, back = self._op_input(y_pred)
        value, grad = backends.get().loss(self.op_name, op_input, self._op_targets(y_true, y_pred),
                                          self.from_logits, sample_weight, self.param)
        return value, grad if back is None else back(grad)

    def _op_input(self, y_pred):
        """What the backend op takes instead of ``y_pred``, and the map that carries
        the op's gradient back to ``y_pred`` (None: the identity)."""
        return y_pred, None

    def _op_targets(self, y_true, y_pred):
        """The targets the backend op takes instead of the validated ``y_true``.

        Applied at each evaluation rather than in :meth:`validate`: the model
        validates targets once and also reads them as labels (stratified
        splits, metrics), which must see the targets as given.
        """
        return y_true

    # -- fusion with the output activation --------------------------------------------
    def logits_variant_for(self, activation_name):
        """An equivalent loss taking the pre-activation, or None.

        When the model's last activation is ``softmax`` (for the categorical
        cross-entropies) or ``sigmoid`` (binary cross-entropy) and this loss
        takes probabilities, the returned loss with ``from_logits=True``
        computes the same value on the logits, stably and with the simple
        gradient ``softmax(z) - t``. (It differs only where clipping at 1e-7
        would have flattened the probability form.)
        """
        if self.from_logits or self.fusable_activation is None:
            return None
        if getattr(activation_name, "name", activation_name) != self.fusable_activation:
            return None
        config = self.get_config()
        config["from_logits"] = True
        return type(self)(**config)

    # -- configuration --------------------------------------------------------------
    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class MeanSquaredError(Loss):
    """Mean of (y_pred - y_true)^2 over the outputs of a sample, then over the batch."""

    op_name = "mean_squared_error"


class MeanAbsoluteError(Loss):
    """Mean of |y_pred - y_true| (its gradient at an exact fit is 0)."""

    op_name = "mean_absolute_error"


class Huber(Loss):
    """Quadratic for small errors, linear for large: robust to outliers.

    Parameters
    ----------
    delta : float, default 1.0
        Where the loss turns from e^2/2 to delta (|e| - delta/2).
    """

    op_name = "huber"

    def __init__(self, delta=1.0, name=None):
        super().__init__(name)
        self.delta = check_float(delta, "delta", minimum=0.0, min_inclusive=False)

    @property
    def param(self):
        return self.delta

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class _Crossentropy(Loss):
    """Shared ``from_logits`` handling and target checks of the cross-entropies."""

    def __init__(self, from_logits=False, name=None):
        super().__init__(name)
        if not isinstance(from_logits, (bool, np.bool_)):
            raise TypeError(f"from_logits must be a bool, got {from_logits!r}")
        self.from_logits = bool(from_logits)
        self.label_smoothing = 0.0

    def validate(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = super().validate(y_true, y_pred, sample_weight)
        if not self.from_logits and (y_pred.min() < 0 or y_pred.max() > 1):
            warnings.warn(
                f"{self.name}: y_pred has values outside [0, 1] but from_logits=False; if the "
                "model outputs raw scores (logits), pass from_logits=True",
                RuntimeWarning, stacklevel=3,
            )
        return y_true, y_pred, sample_weight

    def _validate_targets(self, y_true, y_pred):
        y_true = super()._validate_targets(y_true, y_pred)
        if y_true.min() < 0 or y_true.max() > 1:
            raise ValueError(
                f"{self.name}: y_true must hold probabilities in [0, 1], got values in "
                f"[{y_true.min():g}, {y_true.max():g}]"
            )
        return y_true

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class _LabelSmoothing:
    """``label_smoothing`` of the binary and categorical cross-entropies (Keras).

    The targets move towards the uniform distribution over the ``k`` outcomes
    of each prediction: ``t (1 - ls) + ls / k``. Only the targets change, so the
    backend op's gradient with respect to ``y_pred`` stays exact.
    """

    def _set_label_smoothing(self, label_smoothing):
        self.label_smoothing = check_float(label_smoothing, "label_smoothing",
                                           minimum=0.0, maximum=1.0)

    def _outcomes(self, y_pred):
        raise NotImplementedError

    def _op_targets(self, y_true, y_pred):
        ls = self.label_smoothing
        if not ls:
            return y_true
        smoothed = y_true * (1.0 - ls) + ls / self._outcomes(y_pred)
        return np.ascontiguousarray(smoothed, dtype=y_true.dtype)

    def get_config(self):
        config = super().get_config()
        config["label_smoothing"] = self.label_smoothing
        return config


class BinaryCrossentropy(_LabelSmoothing, _Crossentropy):
    """Cross-entropy of independent yes/no outputs (sigmoid outputs, or logits).

    Parameters
    ----------
    from_logits : bool, default False
        True when y_pred are raw scores z (the loss applies the sigmoid).
    label_smoothing : float in [0, 1], default 0.0
        Squeezes the targets towards 0.5: ``y_true * (1 - label_smoothing) +
        0.5 * label_smoothing``.
    name : str, optional
    """

    op_name = "binary_crossentropy"
    fusable_activation = "sigmoid"

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None):
        super().__init__(from_logits, name)
        self._set_label_smoothing(label_smoothing)

    def _outcomes(self, y_pred):
        return 2


class _OverClasses(_Crossentropy):
    """The categorical cross-entropies: y_pred holds a distribution over the last axis.

    As Keras does, probabilities are divided by their row sum before they are
    clipped, so a row that does not sum to 1 is read as the distribution it is
    proportional to (``[0.5, 0.5, 0.5]`` as thirds). A row summing to 0 (or less)
    has no such distribution and is used as it is.
    """

    def _validate_targets(self, y_true, y_pred):
        if y_pred.ndim < 2:
            raise ValueError(
                f"{self.name}: y_pred must have a class axis, shape (batch, classes), "
                f"got shape {y_pred.shape}")
        return super()._validate_targets(y_true, y_pred)

    def _op_input(self, y_pred):
        if self.from_logits:
            return y_pred, None
        sums = np.sum(y_pred, axis=-1, keepdims=True)
        scaled = sums > 0
        sums = np.where(scaled, sums, 1).astype(y_pred.dtype, copy=False)
        q = y_pred / sums

        def back(grad_q):
            # q = p / S with S = sum_k p_k: dq_k/dp_j = (delta_kj - q_k) / S, so
            # grad_p = (grad_q - <grad_q, q>) / S on the rows that were scaled.
            projected = (grad_q - np.sum(grad_q * q, axis=-1, keepdims=True)) / sums
            return np.ascontiguousarray(np.where(scaled, projected, grad_q), dtype=grad_q.dtype)
        return q, back


class CategoricalCrossentropy(_LabelSmoothing, _OverClasses):
    """Cross-entropy against one-hot (or probability) targets over the last axis.

    Parameters
    ----------
    from_logits : bool, default False
        True when y_pred are raw scores (the loss applies the softmax); else
        y_pred are probabilities, renormalised per row as in Keras.
    label_smoothing : float in [0, 1], default 0.0
        Mixes the targets with the uniform distribution over the K classes:
        ``y_true * (1 - label_smoothing) + label_smoothing / K``.
    name : str, optional
    """

    op_name = "categorical_crossentropy"
    fusable_activation = "softmax"

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None):
        super().__init__(from_logits, name)
        self._set_label_smoothing(label_smoothing)

    def _outcomes(self, y_pred):
        return y_pred.shape[-1]

    def _shape_hint(self, y_true, y_pred):
        if y_true.ndim == 1 and y_pred.ndim == 2:
            return ("; y_true looks like integer class labels: use "
                    "'sparse_categorical_crossentropy' (or one-hot encode y_true)")
        return ""


class SparseCategoricalCrossentropy(_OverClasses):
    """Cross-entropy against integer class labels: -log p[label].

    Parameters
    ----------
    from_logits : bool, default False
        True when y_pred are raw scores (the loss applies the softmax); else
        y_pred are probabilities, renormalised per row as in Keras.
    """

    op_name = "sparse_categorical_crossentropy"
    fusable_activation = "softmax"

    def _validate_targets(self, y_true, y_pred):
        if y_pred.ndim != 2:
            raise ValueError(
                f"{self.name}: y_pred must be 2-D (batch, classes), got shape {y_pred.shape}"
            )
        y_true = as_label_array(y_true, "y_true", num_classes=y_pred.shape[1])
        if y_true.shape[0] != y_pred.shape[0]:
            raise ValueError(
                f"y_true has {y_true.shape[0]} labels but y_pred has {y_pred.shape[0]} rows"
            )
        return y_true


_CLASSES = (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy,
            CategoricalCrossentropy, SparseCategoricalCrossentropy)
_NAMES = {
    "mean_squared_error": MeanSquaredError, "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError, "mae": MeanAbsoluteError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy, "bce": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}
_NAMES.update({cls.__name__.lower(): cls for cls in _CLASSES})
# A class given to get() is built only if it names a backend loss (not Loss itself).
_REGISTRY = Registry("loss", Loss, _CLASSES, _NAMES, can_build=lambda cls: bool(cls.op_name))


def get(identifier, custom_objects=None):
    """The loss an identifier stands for.

    Parameters
    ----------
    identifier : str, Loss, Loss subclass or dict
        A Keras name or alias (``'mse'``, ``'sparse_categorical_crossentropy'``,
        ``'Huber'``; unknown names raise ValueError with a suggestion), a loss
        object (returned as is), a loss class (instantiated with its defaults),
        or a dict from :func:`serialize`.
    custom_objects : dict, optional
        ``{name: Loss subclass}`` of your own, for names and dicts.
    """
    loss = _REGISTRY.resolve(identifier, custom_objects)
    if loss is not None:
        return loss
    raise TypeError(
        f"loss must be a name such as 'mse', a fastnn.losses.Loss or a config dict, "
        f"got {type(identifier).__name__}"
    )


def serialize(loss) -> dict:
    """``{'class_name': ..., 'config': {...}}`` (JSON-able)."""
    return _REGISTRY.serialize(get(loss))


def deserialize(config, custom_objects=None):
    """Inverse of :func:`serialize`: the classes of this module, and Loss subclasses
    passed in ``custom_objects`` (``{name: class}``, e.g. by
    :func:`fastnn.models.load_model`)."""
    return _REGISTRY.deserialize(config, custom_objects)
