"""``Sequential``: a linear stack of layers, each feeding the next.

Forward propagation runs the layers in order; backpropagation runs them in
reverse, each layer turning dL/d(its output) into dL/d(its input) and
accumulating dL/d(its parameters). The training API (compile, fit, evaluate,
predict, ...) comes from :class:`fastnn.models.training.TrainingMixin`.
"""
from __future__ import annotations

import inspect
import numbers
import warnings

import numpy as np

from fastnn._validation import _all_finite, as_float_array
from fastnn.layers import InputLayer, Layer, deserialize, serialize
from fastnn.layers.base import normalize_shape, unique_name
from fastnn.models.training import TrainingMixin, _not_aliasing

__all__ = ["Sequential"]


def _takes_need_input_grad(layer) -> bool:
    try:
        return "need_input_grad" in inspect.signature(layer.backward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return False


class Sequential(TrainingMixin):
    """A stack of layers; the output of each is the input of the next.

    Parameters
    ----------
    layers : list of Layer, optional
        The layers, first to last. An :class:`~fastnn.layers.InputLayer`
        (``fastnn.layers.Input(shape)``) may come first to declare the input shape.
    name : str, optional
        Default ``'sequential'``, numbered if taken.

    Examples
    --------
    >>> import numpy as np, fastnn
    >>> model = fastnn.Sequential([
    ...     fastnn.layers.Dense(64, activation='relu', input_shape=(784,)),
    ...     fastnn.layers.Dense(10, activation='softmax'),
    ... ])
    >>> model(np.zeros((5, 784), np.float32)).shape
    (5, 10)

    Notes
    -----
    The model builds (creates its weights) as soon as the input shape is known:
    at construction if the first layer has ``input_shape``, else on
    :meth:`build` or the first call/fit.
    """

    def __init__(self, layers=None, name=None):
        if name is None:
            name = unique_name("sequential")
        elif not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self.name = name
        self._layers: list[Layer] = []
        self._input_layer: InputLayer | None = None
        self._declared_shape = None   # per-sample input shape given by the user
        self._in_shape = None         # per-sample input shape the model is built for
        self._first_takes_flag = False
        self.built = False
        self._init_training_state()
        if layers is not None:
            if isinstance(layers, Layer) or not isinstance(layers, (list, tuple)):
                raise TypeError(f"layers must be a list of Layer objects, got {type(layers).__name__}")
            for layer in layers:
                self.add(layer)

    # -- structure ---------------------------------------------------------------------
    @property
    def layers(self) -> list:
        """The layers (without the input layer), first to last."""
        return list(self._layers)

    def add(self, layer):
        """Append ``layer`` to the stack (built at once if the input shape is known)."""
        if not isinstance(layer, Layer):
            raise TypeError(
                f"Sequential.add expects a fastnn.layers.Layer, got {type(layer).__name__}"
            )
        if isinstance(layer, InputLayer):
            if self._layers or self._input_layer is not None:
                raise ValueError("an InputLayer (Input) can only be the first layer of a Sequential")
            self._input_layer = layer
            self._declared_shape = layer._declared_input_shape
            self._build_from_declared()
            return
        names = {existing.name for existing in self._layers}
        if self._input_layer is not None:
            names.add(self._input_layer.name)
        if layer.name in names:
            raise ValueError(
                f"layer names must be unique in a model; {layer.name!r} is already used "
                f"(pass name=... to the layer)"
            )
        if any(existing is layer for existing in self._layers):
            raise ValueError(f"layer {layer.name!r} is already in this model")
        if not self._layers and self._declared_shape is None:
            self._declared_shape = layer._declared_input_shape
        self._layers.append(layer)
        self._invalidate_training_plan()
        if self.built:
            try:
                self._build_layer(layer, self._layers[-2]._out_shape if len(self._layers) > 1
                                  else self._in_shape)
                self._check_dtypes()
            except Exception:
                self._layers.pop()
                raise
        else:
            self._build_from_declared()

    def pop(self):
        """Remove and return the last layer."""
        if not self._layers:
            raise ValueError("pop: the model has no layers")
        layer = self._layers.pop()
        self._invalidate_training_plan()
        if not self._layers:
            self.built = False
        return layer

    def _build_from_declared(self):
        if self._declared_shape is not None and self._layers:
            self.build(self._declared_shape)

    @staticmethod
    def _build_layer(layer, shape):
        if layer.built:
            if layer._in_shape != tuple(shape):
                raise ValueError(
                    f"layer {layer.name!r} was built for inputs of shape {layer.input_shape} "
                    f"but receives {(None,) + tuple(shape)} here"
                )
        else:
            layer.build(shape)

    def build(self, input_shape=None):
        """Create every layer's weights for samples of shape ``input_shape``.

        Parameters
        ----------
        input_shape : tuple of int, optional
            Shape of one sample, e.g. ``(784,)``; Keras's form with the batch
            dimension, ``(None, 784)``, is accepted too. Default: the shape
            declared by an ``Input`` or the first layer's ``input_shape``.
        """
        if input_shape is None:
            if self._declared_shape is None:
                raise ValueError(
                    "build needs input_shape: the model has no Input layer and its first layer "
                    "has no input_shape"
                )
            input_shape = self._declared_shape
        shape = normalize_shape(input_shape, "input_shape", strip_batch=True)
        if self._declared_shape is not None and shape != self._declared_shape:
            raise ValueError(
                f"input_shape {shape} differs from the model's declared input shape "
                f"{self._declared_shape}"
            )
        if not self._layers:
            raise ValueError("cannot build a Sequential model with no layers; add layers first")
        current = shape
        for layer in self._layers:
            self._build_layer(layer, current)
            current = layer._out_shape
        self._check_dtypes()
        self._in_shape = shape
        self._first_takes_flag = _takes_need_input_grad(self._layers[0])
        self.built = True
        self._invalidate_training_plan()

    def _check_dtypes(self):
        if len({layer.dtype for layer in self._layers}) > 1:
            detail = ", ".join(f"{layer.name}: {layer.dtype}" for layer in self._layers)
            raise ValueError(f"all layers of a model must have the same dtype; got {detail}")

    @property
    def input_shape(self):
        """``(None,) + shape of one sample`` (None until built)."""
        return None if self._in_shape is None else (None,) + self._in_shape

    @property
    def output_shape(self):
        """``(None,) + shape of one output`` (None until built)."""
        return self._layers[-1].output_shape if self.built else None

    @property
    def dtype(self) -> np.dtype:
        """The float type of the model's weights and computations."""
        return self._layers[0].dtype if self._layers else np.dtype(_floatx())

    # -- computing -----------------------------------------------------------------------
    def _check_input(self, x, name="x", check_finite=True):
        """``x`` validated as a float batch of this model's dtype and input shape.

        Builds the model from ``x`` if it is not built yet. ``check_finite=False``
        leaves the NaN/inf test of an array that needs no conversion to the caller
        (inference: the compiled predictor tests it in the same pass as it runs).
        """
        if (self.built and type(x) is np.ndarray and x.dtype == self.dtype and x.flags.c_contiguous
                and x.flags.aligned and x.shape[1:] == self._in_shape and x.shape[0] > 0 and x.ndim > 1
                and (not check_finite or _all_finite(x))):
            return x  # already what the kernels take: skip the general checks (latency)
        x = as_float_array(x, name, dtype=self.dtype)
        if x.ndim < 2:
            raise ValueError(
                f"{name} must be a batch of shape (samples, features...), got shape {x.shape}; "
                f"for one sample use {name}[None, :], for one feature {name}.reshape(-1, 1)"
            )
        if not self.built:
            if not self._layers:
                raise ValueError("the model has no layers; add layers before using it")
            self.build(x.shape[1:])
        if x.shape[1:] != self._in_shape:
            raise ValueError(
                f"{name} has shape {x.shape}, but the model expects {self.input_shape} "
                f"(None: any number of samples)"
            )
        return x

    def forward(self, x, training=False):
        """The output of the stack for a validated batch ``x``."""
        for layer in self._layers:
            x = layer.forward(x, training=training)
        return x

    def backward(self, grad_y, need_input_grad=True):
        """Backpropagate dL/d(output); accumulates every layer's gradients.

        Returns dL/dx, or None when ``need_input_grad`` is False (the first
        layer then skips its input gradient, one matrix product saved).
        """
        return self._backward_from(len(self._layers) - 1, grad_y, need_input_grad)

    def _backward_from(self, last, grad, need_input_grad, last_logits=False):
        """Backward through layers[last], ..., layers[0].

        With ``last_logits`` the last layer is differentiated up to its
        pre-activation (``backward_logits``): ``grad`` is then d loss / d logits.
        """
        for i in range(last, -1, -1):
            layer = self._layers[i]
            backward = layer.backward_logits if (i == last and last_logits) else layer.backward
            if i == 0 and not need_input_grad and self._first_takes_flag:
                grad = backward(grad, need_input_grad=False)
            else:
                grad = backward(grad)
        return grad

    def __call__(self, x, training=False):
        """The model's output for ``x`` (validated; builds on first use)."""
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False, got {training!r}")
        x = self._check_input(x, check_finite=bool(training))
        return _not_aliasing(self.forward(x, training=True), x) if training else self._infer(x)

    def get_layer(self, name=None, index=None):
        """The layer called ``name``, or at position ``index`` of :attr:`layers` (give one)."""
        if (name is None) == (index is None):
            raise ValueError("get_layer needs exactly one of name and index")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, numbers.Integral):
                raise TypeError(f"index must be an int, got {index!r}")
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"index {index} is out of range for a model of "
                                 f"{len(self.layers)} layers")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; the layers are "
                         f"{[layer.name for layer in self.layers]}")

    # -- parameters ------------------------------------------------------------------------
    @property
    def weights(self) -> list:
        """Every parameter array (live), in Keras order."""
        return [w for layer in self._layers for w in layer.weights]

    @property
    def trainable(self) -> bool:
        """Whether ``fit`` updates the model's weights. Setting it sets every layer's
        ``trainable`` (Keras's freezing of a whole model); while it is False, the
        model has no trainable weights even if a layer is unfrozen again."""
        return self.__dict__.get("_trainable", True)

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"trainable must be True or False, got {value!r}")
        self._trainable = bool(value)
        for layer in self._layers:
            layer.trainable = bool(value)

    @property
    def trainable_weights(self) -> list:
        """The live arrays the optimizer updates, in Keras order."""
        if not self.trainable:
            return []
        return [w for layer in self._layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list:
        if not self.trainable:
            return self.weights
        return [w for layer in self._layers for w in layer.non_trainable_weights]

    @property
    def gradients(self) -> list:
        """Gradient arrays aligned with :attr:`trainable_weights`."""
        if not self.trainable:
            return []
        return [g for layer in self._layers for g in layer.gradients]

    def zero_gradients(self):
        for layer in self._layers:
            layer.zero_gradients()

    def activity_loss(self) -> float:
        """Sum of the layers' penalties on their outputs in the last forward pass."""
        return float(sum(layer.activity_loss() for layer in self._layers))

    def regularization_loss(self) -> float:
        """Sum of every layer's weight penalties."""
        return float(sum(layer.regularization_loss() for layer in self._layers))

    def add_regularization_gradients(self):
        for layer in self._layers:
            layer.add_regularization_gradients()

    def apply_constraints(self):
        for layer in self._layers:
            layer.apply_constraints()

    def _require_built(self, what):
        if not self.built:
            raise ValueError(
                f"{what}: the model is not built yet; call build(input_shape), give the first "
                "layer input_shape, or call the model on data first"
            )

    def get_weights(self) -> list:
        """Copies of all weights, Keras order ``[W0, b0, W1, b1, ...]``."""
        self._require_built("get_weights")
        return [w for layer in self._layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Set all weights from a list in :meth:`get_weights` order (shapes must match)."""
        self._require_built("set_weights")
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of arrays, got {type(weights).__name__}")
        expected = sum(len(layer.weights) for layer in self._layers)
        if len(weights) != expected:
            raise ValueError(
                f"weights: the model has {expected} weight arrays, got {len(weights)} "
                f"(expected shapes {[w.shape for w in self.weights]})"
            )
        # Check every layer before changing any, so a bad list leaves the model intact.
        start, checked = 0, []
        for layer in self._layers:
            n = len(layer.weights)
            checked.append(layer._check_weights(weights[start:start + n], "weights", start))
            start += n
        for layer, arrays in zip(self._layers, checked):
            layer._assign_weights(arrays)

    def count_params(self) -> int:
        """Total number of scalar parameters."""
        self._require_built("count_params")
        return int(sum(layer.count_params() for layer in self._layers))

    # -- description -------------------------------------------------------------------------
    def summary(self, line_length=None, print_fn=None):
        """Print a table of the layers: name (type), output shape, parameter count.

        Parameters
        ----------
        line_length : int, optional
            Total width of the table (default 65).
        print_fn : callable, optional
            Called with each line instead of :func:`print` (e.g. ``lines.append``
            to capture the table).
        """
        if print_fn is None:
            print_fn = print
        elif not callable(print_fn):
            raise TypeError(f"print_fn must be callable, got {type(print_fn).__name__}")
        for line in self._summary_lines(line_length):
            print_fn(line)

    def _summary_lines(self, line_length=None):
        width = 65 if line_length is None else int(line_length)
        if width < 40:
            raise ValueError(f"line_length must be >= 40, got {line_length}")
        cols = [int(width * 0.45), int(width * 0.85)]

        def row(fields):
            text = ""
            for field, stop in zip(fields, cols + [width]):
                text = (text + str(field))[:stop - 1].ljust(stop)
            return text.rstrip()

        lines = [f'Model: "{self.name}"', "_" * width,
                 row([" Layer (type)", "Output Shape", "Param #"]), "=" * width]
        for i, layer in enumerate(self._layers):
            shape = str(layer.output_shape) if layer.built else "?"
            params = f"{layer.count_params():,}" if layer.built else "0 (unbuilt)"
            lines.append(row([f" {layer.name} ({type(layer).__name__})", shape, params]))
            if i < len(self._layers) - 1:
                lines.append("")
        lines.append("=" * width)
        if self.built:
            trainable = sum(w.size for w in self.trainable_weights)
            frozen = sum(w.size for w in self.non_trainable_weights)
            itemsize = self.dtype.itemsize
            lines += [f"Total params: {trainable + frozen:,} ({_bytes((trainable + frozen) * itemsize)})",
                      f"Trainable params: {trainable:,} ({_bytes(trainable * itemsize)})",
                      f"Non-trainable params: {frozen:,} ({_bytes(frozen * itemsize)})"]
        else:
            lines.append("Total params: unknown (the model is not built)")
        lines.append("_" * width)
        return lines

    def save(self, filepath, *args, **kwargs):
        """Save architecture, weights and optimizer state to ``filepath``
        (:func:`fastnn.models.save_model`; load with :func:`fastnn.models.load_model`)."""
        from fastnn.models import saving
        return saving.save_model(self, filepath, *args, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights alone (in :meth:`get_weights` order) to ``filepath``.

        The file is a :func:`fastnn.save` file (no pickle, checksummed, written
        atomically) holding ``{"weights": [...], "shapes": [...], "layers": [...]}``;
        Keras's ``.weights.h5`` is HDF5, which fastnn does not write, so any suffix
        is accepted. Load with :meth:`load_weights` into a model of the same
        architecture.
        """
        from fastnn import serialization
        from fastnn.models.saving import _as_path
        self._require_built("save_weights")
        path = _as_path(filepath)
        if not isinstance(overwrite, bool):
            raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} exists and overwrite=False")
        weights = self.get_weights()
        serialization.save({"weights": weights, "shapes": [list(w.shape) for w in weights],
                            "layers": [layer.name for layer in self._layers]}, path)

    def load_weights(self, filepath, skip_mismatch=False):
        """Set the weights from a :meth:`save_weights` file (same architecture).

        With ``skip_mismatch``, layers whose saved shapes differ keep their
        weights (with a warning) instead of raising ValueError.
        """
        from fastnn import serialization
        from fastnn.models.saving import _as_path
        self._require_built("load_weights")
        path = _as_path(filepath)
        if not isinstance(skip_mismatch, bool):
            raise TypeError(f"skip_mismatch must be True or False, got {skip_mismatch!r}")
        saved = serialization.load(path)
        if not isinstance(saved, dict) or not isinstance(saved.get("weights"), list):
            raise ValueError(f"{path}: not a weights file written by save_weights")
        weights = list(saved["weights"])
        if not skip_mismatch:
            self.set_weights(weights)
            return
        current = self.get_weights()
        start = 0
        for layer in self._layers:
            n = len(layer.weights)
            part = weights[start:start + n]
            if len(part) == n and all(np.shape(a) == np.shape(b)
                                      for a, b in zip(part, current[start:start + n])):
                current[start:start + n] = part
            elif n:
                warnings.warn(f"load_weights: skipping layer {layer.name!r}: the saved weights "
                              "do not match its shapes", UserWarning, stacklevel=2)
            start += n
        self.set_weights(current)

    def __repr__(self):
        return f"<Sequential name={self.name!r}, layers={len(self._layers)}, built={self.built}>"

    # -- configuration -----------------------------------------------------------------------
    def get_config(self) -> dict:
        """``{"name": ..., "layers": [serialized layers]}`` (JSON-able; no weights).

        The first entry is an ``InputLayer`` when the input shape is known.
        """
        layers = []
        shape = self._in_shape or self._declared_shape
        if self._input_layer is not None:
            layers.append(serialize(self._input_layer))
        elif shape is not None:
            layers.append({"class_name": "InputLayer",
                           "config": {"shape": list(shape), "dtype": self.dtype.name,
                                      "name": f"{self.name}_input"}})
        layers += [serialize(layer) for layer in self._layers]
        config = {"name": self.name, "layers": layers}
        if not self.trainable:  # only then: configs of trainable models stay as they were
            config["trainable"] = False
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """A new model with the architecture of :meth:`get_config`'s output (fresh weights)."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        layers = config.get("layers")
        if not isinstance(layers, list):
            raise ValueError("Sequential config needs a 'layers' list")
        unknown = set(config) - {"name", "layers", "trainable"}
        if unknown:
            raise ValueError(f"unexpected keys in Sequential config: {sorted(unknown)}")
        trainable = config.get("trainable", True)
        if not isinstance(trainable, bool):
            raise ValueError(f"Sequential config: trainable must be true or false, got {trainable!r}")
        model = cls(name=config.get("name"))
        for layer_config in layers:
            model.add(deserialize(layer_config, custom_objects=custom_objects))
        model._trainable = trainable  # the layers' own flags come from their configs
        return model


def _bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _floatx():
    from fastnn import config
    return config.floatx()
