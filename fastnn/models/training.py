"""The Keras-style training API: compile, fit, evaluate, predict and the per-batch forms.

:class:`TrainingMixin` is mixed into :class:`~fastnn.models.Sequential`; it uses
the model's structural methods (``forward``, ``_backward_from``, ``_check_input``,
``trainable_weights``, ``gradients``, ...).

One training step (:meth:`TrainingMixin._train_step`), as the seed describes it:

1. zero the gradients;
2. forward propagation with ``training=True`` (dropout active);
3. the loss and its gradient with respect to the output;
4. backpropagation through every layer (gradients accumulate);
5. the regularization penalties and their gradients are added;
6. the optimizer updates the weights in place (it clips the gradients first);
7. the weight constraints are applied.

Softmax/sigmoid + cross-entropy fusion: when the last layer ends in softmax
(sigmoid) and the loss is the categorical (binary) cross-entropy on
probabilities, steps 2-4 run the last layer up to its pre-activation z, take
the loss ``from_logits`` on z and backpropagate ``softmax(z) - t`` into the
layer as if it were linear. It is the same function, differentiated exactly
(PyTorch's ``cross_entropy`` gradient) and stable where probabilities would
underflow; ``predict`` still returns probabilities.

The fused-training seam (issue 4)
---------------------------------
``fit`` runs each epoch through one call, ``runner.train_epoch(x, y,
sample_weight, order, batch_size, callbacks) -> logs``. The default runner is
this module's Python loop (:meth:`TrainingMixin._train_epoch`). A backend may
offer a compiled one: if ``ops = fastnn.backends.get()`` has
``fused_fit_plan`` and the model qualifies (only Dense / Activation / Dropout /
Flatten layers with backend activations, a built-in loss and optimizer, no
``weighted_metrics``, no callback that must see every batch:
``callbacks.requires_per_batch_calls()`` is False), ``fit`` calls
``ops.fused_fit_plan(model, batch_size=...)``; a
non-None result is used as the runner for the whole ``fit``. The plan must give
the same numbers as the Python loop: the same step (above), the same order of
samples (``order``: the rows of the epoch in order, a permutation of all of
them unless ``steps_per_epoch`` cuts the pass into several epochs, or None for
all rows in storage order; the last batch is smaller), the same logs (loss =
batch-size-weighted mean of the batch losses including the penalties;
``model.compiled_metrics`` updated with every
batch), the same callbacks contract (batch hooks at least once per chunk; stop
when ``model.stop_training`` is set) and the same non-finite-loss warning
(:meth:`TrainingMixin._check_finite`).

Inference has the same kind of seam: if the backend has ``fused_predict_plan``,
``ops.fused_predict_plan(model)`` may return an object whose
``predict(x, check_finite=True)`` maps a batch (C-contiguous, the model's dtype
and input shape, values not yet tested) to the outputs of
``model.forward(x, training=False)``, or to None if ``x`` holds a NaN or an
infinity (the model then raises), or raises ``PlanDeclined`` when the model
changed into one it does not cover (the model then drops it and runs its
layers); or the plan is None. :meth:`predict`,
``predict_on_batch`` and ``model(x)`` then use it; :meth:`predict` hands it
many batches per call unless a callback must see every predict batch. The
predictor is asked for once per backend and layer stack (it must notice
itself when ``set_weights``-style in-place changes, rebuilt layers or a new
activation matter; the arrays stay the same objects unless a layer is rebuilt).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from fastnn import backends, utils
from fastnn._validation import (
    _all_finite, _to_array, as_float_array, check_bool, check_float, check_int,
)

__all__ = ["TrainingMixin"]

_BUILTIN_LAYER_NAMES = ("Dense", "Activation", "Dropout", "Flatten")

# Rows per call of a compiled predictor in predict (enough to keep both cores busy).
_PREDICT_ROWS_PER_CALL = 8192


def _resolve_verbose(verbose) -> int:
    """0, 1 or 2; 'auto' is 1 on a terminal (or in a notebook) and 2 otherwise, so that
    log files get one line per epoch instead of progress-bar redraws."""
    from fastnn.callbacks.progbar import resolve_verbose
    return resolve_verbose(verbose)


def _rename(exc, old, new):
    """The same exception with argument name ``old`` replaced by ``new`` in its message
    (and the loss's ``y_pred``, which the user never passed, called what it is)."""
    message = str(exc).replace(old, new)
    if old == "y_true":
        message = message.replace("y_pred", "the model's output")
    return type(exc)(message)


def _validation_schedule(validation_freq):
    """``fit``'s ``validation_freq`` as a predicate on the 0-based epoch index."""
    if isinstance(validation_freq, (list, tuple)):
        epochs = set()
        for i, e in enumerate(validation_freq):
            epochs.add(check_int(e, f"validation_freq[{i}]", minimum=1))
        return lambda epoch: epoch + 1 in epochs
    if isinstance(validation_freq, bool) or not isinstance(validation_freq, numbers.Integral):
        raise TypeError(f"validation_freq must be an int or a list of epoch numbers, "
                        f"got {validation_freq!r}")
    freq = check_int(validation_freq, "validation_freq", minimum=1)
    return lambda epoch: (epoch + 1) % freq == 0



def _raise_nonfinite(x, name):
    """Raise the ValueError of :func:`as_float_array` for an ``x`` holding NaN or inf."""
    as_float_array(x, name)
    raise ValueError(f"{name} contains NaN or infinite values")  # pragma: no cover


def _loss_weight(loss_weights):
    """``compile(loss_weights=)`` as one factor (a Sequential has one output)."""
    if loss_weights is None:
        return 1.0
    value = loss_weights
    if isinstance(loss_weights, dict) or isinstance(loss_weights, (list, tuple)):
        values = list(loss_weights.values() if isinstance(loss_weights, dict) else loss_weights)
        if len(values) != 1 or isinstance(values[0], str):
            hint = ""
            if all(isinstance(v, str) for v in values):
                hint = ("; in Keras 3's order metrics is compile's fourth argument: pass "
                        "metrics=[...] by name")
            raise ValueError(f"loss_weights must be one number (the model has one output), got "
                             f"{loss_weights!r}{hint}")
        value = values[0]
    return check_float(value, "loss_weights", minimum=0.0)


def _not_aliasing(y, x):
    """``y``, or a copy of it if it shares memory with the input ``x`` (a model of only
    Flatten / Dropout layers returns its input, or a view of it, at inference): the
    result must not let a write change the caller's array."""
    return y.copy() if np.may_share_memory(y, x) else y


def _activations_of(layers):
    """Each layer's activation and its change count (fastnn activations count them)."""
    out = []
    for layer in layers:
        act = getattr(layer, "activation", None)
        out.append((act, getattr(act, "version", None)))
    return out


def _same_activations(recorded, layers):
    current = _activations_of(layers)
    return len(recorded) == len(current) and all(
        a is b and va == vb for (a, va), (b, vb) in zip(recorded, current))

class _Targets:
    """Validated targets and weights of one data set (x, y, per-sample weights)."""

    __slots__ = ("x", "y", "weights")

    def __init__(self, x, y, weights):
        self.x, self.y, self.weights = x, y, weights

    def take(self, index):
        w = None if self.weights is None else self.weights[index]
        return _Targets(self.x[index], self.y[index], w)


class _Passes:
    """The rows of each epoch of ``fit``: one shuffled pass over the data per epoch,
    or, with ``steps_per_epoch``, ``steps_per_epoch`` batches of a pass that runs on
    across epochs (Keras's rule: a new pass, reshuffled, once one is used up)."""

    def __init__(self, n, batch_size, steps_per_epoch, shuffle):
        self.n, self.batch_size, self.steps, self.shuffle = n, batch_size, steps_per_epoch, shuffle
        self.batches = math.ceil(n / batch_size)
        self.order, self.used = None, 0   # the current pass and its batches used so far

    def next_epoch(self, epoch):
        """The row indices of ``epoch`` in order, or None for all rows unshuffled."""
        if self.steps is None:
            return utils.rng().permutation(self.n) if self.shuffle else None
        if self.order is None:
            self.order = utils.rng().permutation(self.n) if self.shuffle else np.arange(self.n)
            self.used = 0
        take = min(self.steps, self.batches - self.used)
        bs = self.batch_size
        rows = self.order[self.used * bs:(self.used + take) * bs]
        self.used += take
        if take < self.steps:
            warnings.warn(
                f"fit: the training data ran out after {take} of steps_per_epoch={self.steps} "
                f"batches in epoch {epoch + 1}; the epoch ends early and the next one starts a "
                f"new pass ({self.n} samples make {self.batches} batches of {bs})",
                UserWarning, stacklevel=3)
        if self.used >= self.batches:
            self.order = None
        return rows


class TrainingMixin:
    """compile / fit / evaluate / predict for a model with a layer stack."""

    loss_weight = 1.0  # the default, also for models pickled before compile took loss_weights

    # -- state ---------------------------------------------------------------------------
    def _init_training_state(self):
        self.optimizer = None
        self.loss = None
        self.loss_weight = 1.0
        self.compiled_metrics = []
        self.compiled_weighted_metrics = []
        self._weighted_metric_keys = []   # their keys in the logs (see compile)
        self.stop_training = False
        self.history = None
        self._compiled = False
        self._logits_cache = None     # (last layer, its activation, loss) -> from_logits loss
        # (backend ops, fused predictor or None, the activations it was decided on)
        self._predictor_cache = None

    def __getstate__(self):
        # pickle and copy.deepcopy: the compiled predictor (a cache, and not picklable)
        # is left behind and built again when needed
        state = self.__dict__.copy()
        state["_predictor_cache"] = None
        return state

    def _invalidate_training_plan(self):
        """Forget decisions that depend on the layer stack (called when it changes)."""
        self._logits_cache = None
        self._predictor_cache = None

    # -- compile ---------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None):
        """Configure the model for training (Keras 3's argument order).

        Parameters
        ----------
        optimizer : str or fastnn.optimizers.Optimizer, default 'rmsprop'
            Name (``'adam'``, ``'sgd'``, ...; Keras defaults) or an optimizer object.
        loss : str or fastnn.losses.Loss
            Name (``'sparse_categorical_crossentropy'``, ``'mse'``, ...) or a loss object.
        loss_weights : float, or a list or dict of one float, optional
            Factor on the loss (the model has one output): the loss trained on and
            reported is ``loss_weights * loss``, plus the weight penalties. A
            factor other than 1 trains on the per-op path.
        metrics : list of str or metric objects, optional
            Reported by fit and evaluate, e.g. ``['accuracy']``. Not weighted by
            ``sample_weight`` or ``class_weight`` (Keras).
        weighted_metrics : list of str or metric objects, optional
            Metrics weighted by ``sample_weight`` (and, in :meth:`fit`,
            ``class_weight``): each sample counts in proportion to its weight,
            as in the loss; without weights they equal their unweighted form.
            As in Keras, each is reported under its own name, or
            ``'weighted_' + name`` when a plain metric already has that name
            (``metrics=['accuracy'], weighted_metrics=['accuracy']`` gives
            ``'accuracy'`` and ``'weighted_accuracy'``). They are computed by
            the per-op training loop: a model with weighted metrics does not
            use the fast backend's fused training step.

        Raises
        ------
        ValueError, TypeError
            Unknown or repeated metric names, a metric named ``'loss'``, or one
            metric object passed in both lists (it would count every batch twice).
        """
        from fastnn import losses, metrics as metrics_module, optimizers
        loss_weight = _loss_weight(loss_weights)
        optimizer = optimizers.get(optimizer)
        loss = None if loss is None else losses.get(loss)
        compiled = self._metric_objects(metrics, "metrics", loss, metrics_module)
        weighted = self._metric_objects(weighted_metrics, "weighted_metrics", loss, metrics_module)
        shared = [m.name for m in weighted if any(m is p for p in compiled)]
        if shared:
            raise ValueError(
                f"weighted_metrics: {shared} are the same objects as in metrics; pass a separate "
                f"metric object (or a name) to each list")
        plain_names = {m.name for m in compiled}
        # Keras's naming: a weighted metric whose name a plain one already has is
        # reported as 'weighted_<name>'.
        keys = [f"weighted_{m.name}" if m.name in plain_names else m.name for m in weighted]
        clashes = sorted(k for k in keys if k in plain_names)
        if clashes:
            raise ValueError(f"weighted_metrics: the names {clashes} are taken by metrics; "
                             f"give the metrics distinct names")
        self.optimizer = optimizer
        self.loss = loss
        self.loss_weight = loss_weight
        self.compiled_metrics = compiled
        self.compiled_weighted_metrics = weighted
        self._weighted_metric_keys = keys
        self._compiled = True
        self._logits_cache = None
        self._warn_double_activation()

    @staticmethod
    def _metric_objects(metrics, argument, loss, metrics_module):
        """The metric objects of compile's ``metrics`` or ``weighted_metrics`` argument."""
        if metrics is None:
            metrics = []
        elif isinstance(metrics, (str, dict)) or not isinstance(metrics, (list, tuple)):
            if isinstance(metrics, dict):
                raise TypeError(f"{argument} must be a list; fastnn models have a single output")
            metrics = [metrics]
        compiled = []
        for i, m in enumerate(metrics):
            try:
                compiled.append(metrics_module.get(m, loss=loss))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{argument}[{i}]: {exc}") from None
        names = [m.name for m in compiled]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"{argument}: each metric must have a distinct name; repeated: {duplicates}")
        if "loss" in names:
            raise ValueError(f"{argument}: a metric cannot be named 'loss' (that key holds the loss)")
        return compiled

    def get_compile_config(self):
        """What :meth:`compile` was given, serialized (JSON-able), or None if not compiled.

        ``{'optimizer': ..., 'loss': ..., 'metrics': [...], 'weighted_metrics': [...]}``
        in the forms of :func:`fastnn.optimizers.serialize`, :func:`fastnn.losses.serialize`
        and :func:`fastnn.metrics.serialize`; :meth:`compile_from_config` takes it back.
        Each metric keeps the name it was compiled under, so History keys survive.
        """
        if not self._compiled or self.optimizer is None or self.loss is None:
            return None
        from fastnn import losses, metrics, optimizers
        config = {
            "optimizer": optimizers.serialize(self.optimizer),
            "loss": losses.serialize(self.loss),
            "metrics": [metrics.serialize(m) for m in self.compiled_metrics],
            "weighted_metrics": [metrics.serialize(m) for m in self.compiled_weighted_metrics],
        }
        if self.loss_weight != 1.0:  # only then: the configs of other models stay as they were
            config["loss_weights"] = self.loss_weight
        return config

    def compile_from_config(self, config, custom_objects=None):
        """:meth:`compile` with the output of :meth:`get_compile_config` (a fresh optimizer
        and fresh metric states; ``'weighted_metrics'`` may be absent)."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        missing = [k for k in ("optimizer", "loss") if k not in config]
        if missing:
            raise ValueError(f"config: missing {missing}")
        from fastnn import losses, metrics, optimizers

        def metric_list(key):
            entries = config.get(key) or []
            if not isinstance(entries, list):
                raise ValueError(f"config[{key!r}] must be a list")
            return [metrics.deserialize(e, custom_objects) if isinstance(e, dict) else e
                    for e in entries]

        self.compile(optimizer=optimizers.deserialize(config["optimizer"], custom_objects),
                     loss=losses.deserialize(config["loss"], custom_objects),
                     loss_weights=config.get("loss_weights"),
                     metrics=metric_list("metrics"), weighted_metrics=metric_list("weighted_metrics"))

    def _warn_double_activation(self):
        """Warn about a softmax/sigmoid output fed to a loss that applies it again."""
        if self.loss is None or not getattr(self.loss, "from_logits", False) or not self._layers:
            return
        act = getattr(self._layers[-1], "output_activation", None)
        if act is not None and act == getattr(self.loss, "fusable_activation", None):
            warnings.warn(
                f"the last layer applies {act} and the loss {self.loss.name!r} has "
                f"from_logits=True, so {act} is applied twice; remove the activation or use "
                f"from_logits=False", UserWarning, stacklevel=3,
            )

    def _require_compiled(self, what):
        if not self._compiled:
            raise RuntimeError(
                f"{what}: the model must be compiled first; call "
                "model.compile(optimizer=..., loss=...) before training or evaluating it"
            )
        if self.loss is None:
            raise ValueError(
                f"{what}: the model was compiled without a loss; call "
                "model.compile(optimizer=..., loss='mse' or another loss)"
            )

    # -- validation of data ----------------------------------------------------------------
    def _check_data(self, x, y, sample_weight=None, class_weight=None, names=("x", "y")):
        """Validate one data set for training or evaluation; returns a :class:`_Targets`."""
        x_name, y_name = names
        if x is None:
            raise ValueError(f"{x_name} is required (got None)")
        if y is None:
            raise ValueError(f"{y_name} is required (got None): the model needs targets to train on")
        x = self._check_input(x, x_name)
        n = x.shape[0]
        y_arr = _to_array(y, y_name)
        if y_arr.ndim == 0:
            raise ValueError(f"{y_name} must have one target per sample, got a scalar")
        if y_arr.shape[0] != n:
            raise ValueError(
                f"mismatched number of samples: {x_name} has {n}, {y_name} has {y_arr.shape[0]}"
            )
        # The loss checks targets against predictions; a placeholder of the output
        # shape, inside [0, 1], lets it check all targets once, before training.
        # Zeros from calloc are pages the kernel maps on demand to its shared zero
        # page: the check reads them without adding the placeholder to the RSS.
        placeholder = np.zeros((n,) + self._layers[-1]._out_shape, dtype=self.dtype)
        try:
            y_checked, _, _ = self.loss.validate(y_arr, placeholder, None)
        except (TypeError, ValueError) as exc:
            raise _rename(exc, "y_true", y_name) from None
        weights = self._sample_weights(y_checked, n, sample_weight, class_weight)
        return _Targets(x, y_checked, weights)

    def _sample_weights(self, y, n, sample_weight, class_weight):
        """sample_weight times the class weight of each sample's class (or None)."""
        weights = None
        if sample_weight is not None:
            sw = as_float_array(sample_weight, "sample_weight", dtype=self.dtype)
            if sw.ndim == 2 and sw.shape[1] == 1:
                sw = sw[:, 0]
            if sw.shape != (n,):
                raise ValueError(
                    f"sample_weight must have shape ({n},), one weight per sample, got shape {sw.shape}"
                )
            if np.any(sw < 0):
                raise ValueError("sample_weight must be >= 0")
            weights = np.ascontiguousarray(sw)
        if class_weight is not None:
            cw = self._class_weight_per_sample(y, class_weight)
            weights = cw if weights is None else weights * cw
        return weights

    def _class_indices(self, y):
        """The class index of each target (Keras: argmax of one-hot rows, else rounded)."""
        if y.dtype.kind in "iu":
            return y.reshape(-1)
        if y.ndim == 2 and y.shape[1] > 1:
            return np.argmax(y, axis=1)
        return np.round(y.reshape(y.shape[0], -1)[:, 0]).astype(np.int64)

    def _num_classes(self):
        units = math.prod(self._layers[-1]._out_shape)
        return max(units, 2)  # one sigmoid output separates two classes

    def _class_weight_per_sample(self, y, class_weight):
        if not isinstance(class_weight, dict):
            raise TypeError(
                f"class_weight must be a dict {{class index: weight}}, got {type(class_weight).__name__}"
            )
        n_classes = self._num_classes()
        table = np.ones(n_classes, dtype=self.dtype)
        for key, value in class_weight.items():
            if (isinstance(key, numbers.Real) and not isinstance(key, (bool, np.bool_))
                    and not isinstance(key, numbers.Integral) and float(key).is_integer()):
                key = int(key)  # 1.0 from np.unique of float labels: class 1, as Keras takes it
            if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral):
                raise TypeError(f"class_weight keys must be int class indices, got {key!r}")
            if not 0 <= key < n_classes:
                raise ValueError(
                    f"class_weight has class {key}, but the model has {n_classes} classes "
                    f"(indices 0..{n_classes - 1})"
                )
            table[int(key)] = check_float(value, f"class_weight[{key}]", minimum=0.0)
        classes = self._class_indices(y)
        if classes.min() < 0 or classes.max() >= n_classes:
            raise ValueError(
                f"class_weight needs class labels as targets, but y holds values that are not "
                f"classes 0..{n_classes - 1} (use sample_weight for regression targets)"
            )
        return np.ascontiguousarray(table[classes])

    def _stratify_labels(self, y):
        """Class labels for a stratified split, or None for regression targets."""
        from fastnn import losses
        if isinstance(self.loss, losses.SparseCategoricalCrossentropy):
            return y
        if isinstance(self.loss, (losses.CategoricalCrossentropy, losses.BinaryCrossentropy)):
            if np.all((y == 0) | (y == 1)):  # hard labels (soft ones cannot be stratified)
                return self._class_indices(y)
        return None

    def _split_validation(self, data, validation_split):
        """A seeded random split, stratified by class for classification targets."""
        n = data.x.shape[0]
        n_val = math.ceil(validation_split * n)
        if n_val < 1 or n - n_val < 1:
            raise ValueError(
                f"validation_split={validation_split} of {n} samples leaves "
                f"{n - n_val} for training and {n_val} for validation; both need at least one"
            )
        from fastnn.data import train_test_split
        index = np.arange(n)
        labels = self._stratify_labels(data.y)
        seed = int(utils.rng().integers(0, 2**63 - 1))
        train = val = None
        if labels is not None:
            try:
                train, val = train_test_split(index, test_size=n_val, stratify=labels, random_state=seed)
            except ValueError:
                train = None  # a class too small to split: fall back to a plain random split
        if train is None:
            train, val = train_test_split(index, test_size=n_val, random_state=seed)
        return data.take(np.sort(train)), data.take(np.sort(val))

    # -- the training step -------------------------------------------------------------------
    def _logits_loss(self):
        """The from_logits loss to fuse with the last activation, or None."""
        if not self._layers:
            return None
        last = self._layers[-1]
        act = getattr(last, "activation", None)
        # The loss's settings are part of the key: a callback may set label_smoothing
        # or from_logits on the compiled loss in place, as Keras reads them per step.
        key = (last, act, self.loss, getattr(self.loss, "label_smoothing", None),
               getattr(self.loss, "from_logits", None),
               getattr(last, "activity_regularizer", None))
        if self._logits_cache is not None and self._logits_cache[0] == key:
            return self._logits_cache[1]
        fused = None
        if (hasattr(last, "forward_logits") and act is not None and getattr(act, "fused", False)
                and getattr(last, "activity_regularizer", None) is None  # needs the output
                and getattr(act, "axis", -1) in (-1, len(last._out_shape))
                and hasattr(self.loss, "logits_variant_for")):
            fused = self.loss.logits_variant_for(act.name)
        self._logits_cache = (key, fused)
        return fused

    def _loss_and_gradients(self, x, y, weights, need_output=True):
        """Forward, loss and backward on one batch; returns (loss value, y_pred or None).

        Gradients are accumulated into the layers (zero them first).
        """
        logits_loss = self._logits_loss()
        last = len(self._layers) - 1
        scale = self.loss_weight
        if logits_loss is None:
            y_pred = self.forward(x, training=True)
            value, grad = self.loss.forward_backward(y, y_pred, weights, validate=False)
            if scale != 1.0:
                value, grad = value * scale, grad * grad.dtype.type(scale)
            self._backward_from(last, grad, need_input_grad=False)
            return value, y_pred
        h = x
        for layer in self._layers[:-1]:
            h = layer.forward(h, training=True)
        z = self._layers[-1].forward_logits(h, training=True)
        value, grad = logits_loss.forward_backward(y, z, weights, validate=False)
        if scale != 1.0:
            value, grad = value * scale, grad * grad.dtype.type(scale)
        self._backward_from(last, grad, need_input_grad=False, last_logits=True)
        y_pred = self._layers[-1].activation.forward(z) if need_output else None
        return value, y_pred

    def _compute_gradients(self, x, y, weights, need_output=False):
        """Zero the gradients, then fill them with d(loss + penalties)/d(weights) on a batch.

        Returns (loss including the penalties, y_pred or None).
        """
        self.zero_gradients()
        value, y_pred = self._loss_and_gradients(x, y, weights, need_output=need_output)
        value += self.regularization_loss() + self.activity_loss()
        self.add_regularization_gradients()
        return value, y_pred

    def _train_step(self, x, y, weights):
        """One gradient step on a batch; returns (loss incl. penalties, y_pred or None)."""
        # The penalties are those of the weights the gradients were taken at.
        value, y_pred = self._compute_gradients(x, y, weights, need_output=self._has_metrics())
        self.optimizer.apply(self.gradients, self.trainable_weights)
        self.apply_constraints()
        return value, y_pred

    def _test_step(self, x, y, weights):
        """Loss (incl. penalties) and y_pred on a batch, without training."""
        logits_loss = self._logits_loss()
        if logits_loss is None:
            y_pred = self.forward(x, training=False)
            value = self.loss.value(y, y_pred, weights)
        else:
            h = x
            for layer in self._layers[:-1]:
                h = layer.forward(h, training=False)
            z = self._layers[-1].forward_logits(h, training=False)
            value = logits_loss.value(y, z, weights)
            y_pred = self._layers[-1].activation.forward(z)
        return value * self.loss_weight + self.activity_loss(), y_pred

    # -- bookkeeping of running means -----------------------------------------------------
    def _has_metrics(self):
        return bool(self.compiled_metrics or self.compiled_weighted_metrics)

    def _reset_metrics(self):
        for m in self.compiled_metrics:
            m.reset_state()
        for m in self.compiled_weighted_metrics:
            m.reset_state()

    def _update_metrics(self, y, y_pred, weights=None):
        # As in Keras, compile(metrics=...) are not weighted by sample_weight or
        # class_weight: those shape the loss, the metrics report plain counts.
        # compile(weighted_metrics=...) take the same per-sample weights as the loss.
        for m in self.compiled_metrics:
            m.update_state(y, y_pred)
        for m in self.compiled_weighted_metrics:
            m.update_state(y, y_pred, sample_weight=weights)

    def _logs(self, loss_sum, count):
        logs = {"loss": loss_sum / count if count else float("nan")}
        for m in self.compiled_metrics:
            logs[m.name] = float(m.result())
        for key, m in zip(self._weighted_metric_keys, self.compiled_weighted_metrics):
            logs[key] = float(m.result())
        return logs

    def _check_finite(self, value, epoch, batch, state):
        """Warn once per fit about a non-finite loss, unless TerminateOnNaN will report it.

        ``epoch`` is 0-based (shown 1-based, as the progress display does); ``batch``
        is the 0-based batch index, or None when only the epoch is known.
        """
        if math.isfinite(value) or state.get("warned") or state.get("terminate_on_nan"):
            return
        state["warned"] = True
        where = f"epoch {epoch + 1}" + ("" if batch is None else f", batch {batch}")
        warnings.warn(
            f"fit: the loss became {value} at {where}; the weights are now probably "
            "non-finite too. Lower the learning rate, clip the gradients (e.g. clipnorm=1.0) "
            "or scale the inputs; pass callbacks=[fastnn.callbacks.TerminateOnNaN()] to stop "
            "at the first non-finite loss",
            RuntimeWarning, stacklevel=4,
        )

    # -- the epoch loop (the default runner; see the module docstring for the seam) -------
    def _train_epoch(self, data, order, batch_size, callbacks, epoch, state, resume=None):
        """One pass over ``data`` (or over the rows ``order`` lists) in mini-batches;
        returns the epoch logs. ``resume`` = ``(batch, start, loss_sum, seen)`` goes
        on with an epoch a compiled runner began (``PlanDeclined.progress``): from
        batch ``batch`` at position ``start`` (whose ``on_train_batch_begin`` the
        runner has called), the metrics as they are."""
        n = data.x.shape[0] if order is None else len(order)
        if resume is None:
            self._reset_metrics()
            first_batch, first, loss_sum, seen = 0, 0, 0.0, 0
        else:
            first_batch, first, loss_sum, seen = resume
        want_output = self._has_metrics()
        for batch, start in enumerate(range(first, n, batch_size), start=first_batch):
            index = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
            xb, yb = data.x[index], data.y[index]
            wb = None if data.weights is None else data.weights[index]
            if resume is None or batch != first_batch:
                callbacks.on_train_batch_begin(batch)
            value, y_pred = self._train_step(xb, yb, wb)
            self._check_finite(value, epoch, batch, state)
            size = xb.shape[0]
            loss_sum += value * size
            seen += size
            if want_output:
                self._update_metrics(yb, y_pred, wb)
            callbacks.on_train_batch_end(batch, self._logs(loss_sum, seen))
            if self.stop_training:
                break
        return self._logs(loss_sum, seen)

    def _fused_runner(self, batch_size, callbacks):
        """A compiled epoch runner from the backend, or None (see the module docstring)."""
        ops = backends.get()
        if not hasattr(ops, "fused_fit_plan"):
            return None
        from fastnn import losses, optimizers
        layers_ok = all(type(layer).__module__.startswith("fastnn.layers")
                        and type(layer).__name__ in _BUILTIN_LAYER_NAMES
                        and getattr(getattr(layer, "activation", None), "fused", True)
                        for layer in self._layers)
        loss_ok = type(self.loss).__module__ == losses.__name__
        opt_ok = type(self.optimizer).__module__.startswith(optimizers.__name__)
        if not (layers_ok and loss_ok and opt_ok) or callbacks.requires_per_batch_calls("train"):
            return None
        if self.compiled_weighted_metrics:
            # The compiled runner updates only compile(metrics=...), without weights.
            return None
        return ops.fused_fit_plan(self, batch_size=batch_size)

    # -- fit ---------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train the model by gradient descent for a fixed number of epochs.

        The three variants of gradient descent are chosen by ``batch_size``:
        ``batch_size=len(x)`` is (full-)batch gradient descent, one step per
        epoch on the exact gradient of the training loss; ``batch_size=1`` is
        stochastic gradient descent, one step per sample; anything in between
        is mini-batch gradient descent (the default, 32), the usual compromise
        between noisy, cheap steps and exact, expensive ones.

        Parameters
        ----------
        x : array-like of shape (samples, features...)
            Inputs.
        y : array-like
            Targets: class indices for ``sparse_categorical_crossentropy``,
            one-hot rows for ``categorical_crossentropy``, 0/1 (or
            probabilities) for ``binary_crossentropy``, values for regression.
        batch_size : int, default 32
            Samples per gradient step (see above); larger than ``len(x)`` means
            one batch.
        epochs : int, default 1
            Index of the last epoch: training runs epochs ``initial_epoch`` to
            ``epochs - 1``.
        verbose : {'auto', 0, 1, 2}, default 'auto'
            0 silent, 1 a progress bar per epoch, 2 one line per epoch; 'auto'
            is 1 on a terminal and 2 otherwise (logs do not fill up with bars).
        callbacks : list of fastnn.callbacks.Callback, optional
        validation_split : float in [0, 1), default 0.0
            Fraction of the data held out to compute ``val_`` metrics after each
            epoch. Unlike Keras, which takes the *last* fraction of the arrays
            as given (biased when the data are sorted, e.g. by class), fastnn
            draws a seeded random split, stratified by class for classification
            targets, so the held-out part has the class proportions of the
            whole (:func:`fastnn.data.train_test_split`; the seed comes from
            fastnn's generator, so :func:`fastnn.utils.set_random_seed` makes it
            reproducible). Ignored when ``validation_data`` is given.
        validation_data : tuple, optional
            ``(x_val, y_val)`` or ``(x_val, y_val, sample_weight_val)``.
        shuffle : bool, default True
            Visit the training samples in a new random order every epoch.
        class_weight : dict, optional
            ``{class index: weight}``; each sample's loss is multiplied by the
            weight of its class (classes not listed weigh 1), e.g. to balance
            rare classes.
        sample_weight : array-like of shape (samples,), optional
            Per-sample loss weights (multiplied with ``class_weight``). As in
            Keras, the weights shape the loss and the ``weighted_metrics`` of
            :meth:`compile`; the plain ``metrics`` stay unweighted.
        initial_epoch : int, default 0
            Epoch to start at (to resume a previous run).
        steps_per_epoch : int, optional
            Batches per epoch; default all of them, ``ceil(samples / batch_size)``.
            As in Keras, a pass over the data then continues across epochs: the
            next epoch takes the next batches of the same shuffled pass, and a
            new pass (reshuffled) starts once one is used up. An epoch that finds
            fewer batches left than ``steps_per_epoch`` ends early, with a warning.
        validation_steps : int, optional
            Batches of the validation data to evaluate each time (the first
            ones); default all.
        validation_batch_size : int, optional
            Samples per batch when computing the ``val_`` metrics; default
            ``batch_size``. Changes speed and memory, not the values.
        validation_freq : int or list of int, default 1
            Validate after the epochs whose 1-based number ``epoch + 1`` is a
            multiple of ``validation_freq`` (Keras's rule; ``epoch`` counts from
            0 whatever ``initial_epoch`` is, so ``validation_freq=2`` validates
            after epochs 2, 4, 6, ... in the progress display), or, given a
            list, after the 1-based epochs it names (``[1, 5, 10]``).

        Returns
        -------
        fastnn.callbacks.History
            ``history.history`` maps ``'loss'``, each metric and their ``'val_'``
            twins to lists with one value per epoch; as in Keras, the ``'val_'``
            lists only have values for the epochs that were validated (see
            ``validation_freq``), so they can be shorter than ``'loss'``. The
            epoch logs that callbacks receive have ``'val_'`` keys only on those
            epochs; callbacks that monitor one (EarlyStopping,
            ReduceLROnPlateau, ModelCheckpoint with ``save_best_only``) warn that
            it is missing and skip the other epochs.

        Raises
        ------
        RuntimeError
            The model was not compiled.
        ValueError, TypeError
            Invalid data or arguments (the message names the argument).
        """
        self._require_compiled("fit")
        batch_size = 32 if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
        epochs = check_int(epochs, "epochs", minimum=0)
        initial_epoch = check_int(initial_epoch, "initial_epoch", minimum=0)
        verbose = _resolve_verbose(verbose)
        shuffle = check_bool(shuffle, "shuffle")
        validation_split = check_float(validation_split, "validation_split", minimum=0.0,
                                       maximum=1.0, max_inclusive=False)
        validation_batch_size = check_int(validation_batch_size, "validation_batch_size",
                                          minimum=1, allow_none=True) or batch_size
        steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", minimum=1, allow_none=True)
        validation_steps = check_int(validation_steps, "validation_steps", minimum=1,
                                     allow_none=True)
        should_validate = _validation_schedule(validation_freq)
        data = self._check_data(x, y, sample_weight, class_weight)
        val = None
        if validation_data is not None:
            val = self._check_validation_data(validation_data)
        elif validation_split > 0:
            data, val = self._split_validation(data, validation_split)

        from fastnn.callbacks import CallbackList, TerminateOnNaN
        n = data.x.shape[0]
        batches = math.ceil(n / batch_size)
        steps = steps_per_epoch or batches
        cbks = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                            epochs=epochs, steps=steps, verbose=verbose)
        state = {"terminate_on_nan": any(isinstance(cb, TerminateOnNaN) for cb in cbks)}
        # a batch is at most all the rows: the compiled runner sizes its buffers by it
        runner_batch = min(batch_size, n)
        runner = self._fused_runner(runner_batch, cbks)

        self.stop_training = False
        cbks.on_train_begin()
        logs = {}
        passes = _Passes(n, batch_size, steps_per_epoch, shuffle)
        for epoch in range(initial_epoch, epochs):
            cbks.on_epoch_begin(epoch)
            order = passes.next_epoch(epoch)
            if runner is None:
                logs = self._train_epoch(data, order, batch_size, cbks, epoch, state)
            else:
                try:
                    logs = runner.train_epoch(data.x, data.y, data.weights, order,
                                              runner_batch, cbks)
                    self._check_finite(logs.get("loss", 0.0), epoch, None, state)
                except backends.PlanDeclined as declined:
                    if declined.progress is None:
                        raise
                    # a callback changed the model into one the runner does not cover:
                    # this epoch goes on, and the rest of the fit runs, on the Python loop
                    runner = None
                    _, _, loss_sum, seen = declined.progress
                    if seen:
                        self._check_finite(loss_sum / seen, epoch, None, state)
                    logs = self._train_epoch(data, order, batch_size, cbks, epoch, state,
                                             resume=declined.progress)
            if val is not None and should_validate(epoch):
                val_logs = self._evaluate_data(val, validation_batch_size, cbks,
                                               max_batches=validation_steps)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbks.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbks.on_train_end(logs)
        self.history = cbks.history
        return cbks.history

    def _check_validation_data(self, validation_data):
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise TypeError(
                "validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight_val), "
                f"got {type(validation_data).__name__}"
                + (f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else "")
            )
        xv, yv = validation_data[0], validation_data[1]
        swv = validation_data[2] if len(validation_data) == 3 else None
        try:
            return self._check_data(xv, yv, swv, None, names=("validation_data[0]", "validation_data[1]"))
        except (TypeError, ValueError) as exc:
            raise _rename(exc, "sample_weight", "validation_data[2]") from None

    # -- evaluate ---------------------------------------------------------------------------
    def _evaluate_data(self, data, batch_size, callbacks=None, max_batches=None):
        """Loss (incl. penalties) and metrics over ``data`` (its first ``max_batches``
        batches if given), in batches, as a logs dict."""
        self._reset_metrics()
        n = data.x.shape[0]
        if max_batches is not None:
            n = min(n, max_batches * batch_size)
        loss_sum = 0.0
        if callbacks is not None:
            callbacks.on_test_begin()
        for batch, start in enumerate(range(0, n, batch_size)):
            index = slice(start, start + batch_size)
            xb, yb = data.x[index], data.y[index]
            wb = None if data.weights is None else data.weights[index]
            if callbacks is not None:
                callbacks.on_test_batch_begin(batch)
            value, y_pred = self._test_step(xb, yb, wb)
            loss_sum += value * xb.shape[0]
            self._update_metrics(yb, y_pred, wb)
            if callbacks is not None:
                callbacks.on_test_batch_end(batch, self._logs(loss_sum, min(start + batch_size, n)))
        logs = self._logs(loss_sum, n)
        logs["loss"] += self.regularization_loss()
        if callbacks is not None:
            callbacks.on_test_end(logs)
        return logs

    def _return(self, logs, return_dict):
        if return_dict:
            return dict(logs)
        if not self._has_metrics():
            return logs["loss"]
        return ([logs["loss"]] + [logs[m.name] for m in self.compiled_metrics]
                + [logs[key] for key in self._weighted_metric_keys])

    def evaluate(self, x=None, y=None, batch_size=32, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss and metrics of the model on ``(x, y)``.

        Parameters
        ----------
        x, y : array-like
            Inputs and targets (as in :meth:`fit`).
        batch_size : int, default 32
            Samples per forward pass (does not change the result).
        verbose : {'auto', 0, 1, 2}, default 'auto'
        sample_weight : array-like of shape (samples,), optional
            Weights the loss and the ``weighted_metrics`` (not the plain ``metrics``).
        steps : int, optional
            Evaluate only the first ``steps`` batches; default all.
        callbacks : list of Callback, optional
            Receive the ``on_test_*`` hooks.
        return_dict : bool, default False
            Return ``{'loss': ..., metric name: ...}``.

        Returns
        -------
        float or list of float or dict
            The loss if the model has no metrics, else ``[loss, metric, ...,
            weighted metric, ...]`` in compile order (Keras's conventions). The loss includes the
            regularization penalties, as the training loss does.
        """
        self._require_compiled("evaluate")
        batch_size = 32 if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
        verbose = _resolve_verbose(verbose)
        return_dict = check_bool(return_dict, "return_dict")
        steps = check_int(steps, "steps", minimum=1, allow_none=True)
        data = self._check_data(x, y, sample_weight)
        from fastnn.callbacks import CallbackList
        batches = math.ceil(data.x.shape[0] / batch_size)
        cbks = CallbackList(callbacks, add_progbar=verbose != 0, model=self, epochs=1,
                            steps=batches if steps is None else min(steps, batches),
                            verbose=verbose)
        return self._return(self._evaluate_data(data, batch_size, cbks, max_batches=steps),
                            return_dict)

    # -- predict ---------------------------------------------------------------------------
    def _fused_predictor(self):
        """The backend's compiled predictor for this model, or None (see the module docstring)."""
        ops = backends.get()
        if not hasattr(ops, "fused_predict_plan") or not self.built:
            return None
        cache = self._predictor_cache
        if cache is None or cache[0] is not ops or (
                cache[1] is None and not _same_activations(cache[2], self._layers)):
            # a model that did not qualify is looked at again once an activation changes
            # (e.g. set back from a Python function to a built-in one)
            cache = self._predictor_cache = (ops, ops.fused_predict_plan(self),
                                             _activations_of(self._layers))
        return cache[1]

    def _infer(self, x, name="x", whole=None):
        """Outputs at inference for a batch whose shape and dtype are validated but
        whose values may not be finite: the compiled predictor if any (it tests
        them in the same pass over ``x``), else the layers' forward after a test.
        A NaN or infinity raises the usual ValueError, counted over ``whole``
        (the array ``x`` is part of) when given."""
        predictor = self._fused_predictor()
        if predictor is not None:
            try:
                y = predictor.predict(x, check_finite=True)
            except backends.PlanDeclined:
                # the model changed into one the predictor does not cover
                self._predictor_cache = (self._predictor_cache[0], None,
                                         _activations_of(self._layers))
                predictor = None
        if predictor is None:
            if not _all_finite(x):
                _raise_nonfinite(x if whole is None else whole, name)
            return _not_aliasing(self.forward(x, training=False), x)
        if y is None:
            _raise_nonfinite(x if whole is None else whole, name)
        return y

    def predict(self, x, batch_size=32, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for ``x``, computed in batches of ``batch_size``.

        ``batch_size`` changes memory use and speed, not the result. With
        ``steps``, only the first ``steps`` batches are predicted (as Keras).

        Returns
        -------
        numpy.ndarray of shape (samples,) + output shape
            Probabilities for a softmax/sigmoid output (the fused loss of
            training does not change what the model outputs).
        """
        batch_size = 32 if batch_size is None else check_int(batch_size, "batch_size", minimum=1)
        verbose = _resolve_verbose(verbose)
        x = self._check_input(x, "x", check_finite=False)  # tested as each chunk runs
        if steps is not None:
            steps = check_int(steps, "steps", minimum=1)
            x = x[:steps * batch_size]
        n = x.shape[0]
        from fastnn.callbacks import CallbackList
        steps = math.ceil(n / batch_size)
        cbks = CallbackList(callbacks, add_progbar=verbose != 0, model=self, epochs=1,
                            steps=steps, verbose=verbose)
        # A compiled predictor takes many batches per call (it splits rows between
        # threads itself) unless a callback must see every batch.
        per_call = 1
        compiled = (self._fused_predictor() is not None
                    and not cbks.requires_per_batch_calls("predict"))
        if compiled:
            per_call = max(1, _PREDICT_ROWS_PER_CALL // batch_size)
        cbks.on_predict_begin()
        if compiled and 1 <= steps <= per_call:
            # one call, whose new array is the result (no second one to fault in and fill)
            cbks.on_predict_batch_begin(0)
            out = self._infer(x, "x")
            cbks.on_predict_batch_end(steps - 1, {"outputs": out})
            cbks.on_predict_end()
            return out
        out = np.empty((n,) + self._layers[-1]._out_shape, dtype=self.dtype)
        for first in range(0, steps, per_call):
            last = min(first + per_call, steps) - 1
            rows = slice(first * batch_size, (last + 1) * batch_size)
            cbks.on_predict_batch_begin(first)
            out[rows] = self._infer(x[rows], "x", whole=x)
            cbks.on_predict_batch_end(last, {"outputs": out[rows]})
        cbks.on_predict_end()
        return out

    # -- single batches ---------------------------------------------------------------------
    def train_on_batch(self, x, y, sample_weight=None, class_weight=None, return_dict=False):
        """One gradient step on exactly this batch.

        Returns
        -------
        float or list or dict
            Loss (incl. penalties) and metrics on this batch, measured during
            the step (before the update), as :meth:`evaluate` returns them.
        """
        self._require_compiled("train_on_batch")
        return_dict = check_bool(return_dict, "return_dict")
        data = self._check_data(x, y, sample_weight, class_weight)
        self._reset_metrics()
        value, y_pred = self._train_step(data.x, data.y, data.weights)
        if not math.isfinite(value):
            warnings.warn(f"train_on_batch: the loss is {value}", RuntimeWarning, stacklevel=2)
        if self._has_metrics():
            self._update_metrics(data.y, y_pred, data.weights)
        return self._return(self._logs(value, 1), return_dict)

    def test_on_batch(self, x, y, sample_weight=None, return_dict=False):
        """Loss (incl. penalties) and metrics on one batch, without training."""
        self._require_compiled("test_on_batch")
        return_dict = check_bool(return_dict, "return_dict")
        data = self._check_data(x, y, sample_weight)
        return self._return(self._evaluate_data(data, data.x.shape[0]), return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for one batch ``x`` (no batching, no callbacks)."""
        return self._infer(self._check_input(x, "x", check_finite=False), "x")
