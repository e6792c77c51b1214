"""The fused training step and the fused predictor (the Python side of ``fastnn._fused``).

For the common model -- a :class:`~fastnn.models.Sequential` of Dense,
Activation, Dropout and Flatten layers with a built-in loss and optimizer --
``fit`` need not go through Python for every layer of every step.
:func:`fused_trainer_for` describes such a model once as a *plan* for the
compiled loop of ``csrc/fused.pyx``: layer sizes, activation codes, the loss
(with the softmax/sigmoid + cross-entropy fusion the model itself uses),
the optimizer's rule and hyper-parameters, and the very arrays the per-op path
works on -- the layers' parameters and gradients and the optimizer's state
slots -- so no copy is ever synchronised: switching between the fused and the
per-op path, saving, and resuming all see the same arrays. A chunk of steps
(tens of milliseconds of work) then runs in one call without the GIL; Python
only draws the dropout uniforms, evaluates the learning-rate schedule and
reports progress, once per chunk.

The numbers are those of the per-op path, bit for bit: the compiled loop calls
the same kernels (csrc/kernels.pxd) with the same arguments in the same order,
draws dropout masks from the same generators in the same order, and adds the
loss the way ``fit`` does. Weight constraints (``kernel_constraint``, ...) are
NumPy code applied after every update: a model with constraints runs one step
per compiled call, with ``model.apply_constraints()`` after each -- still far
cheaper than the per-layer Python loop. What the fused path declines
(:func:`explain` says why, and ``fit`` then runs the per-op path):

* layers other than Dense, Activation, Dropout, Flatten and the input layer,
  and activations given as Python callables;
* custom losses, optimizers or regularizers (subclasses that override the
  computation);
* callbacks that must see every batch (the model's training loop checks this
  before asking for a trainer).

Threads: a chunk runs either on ``fastnn.config.get_num_threads()`` threads
(kernels split above the work threshold of :func:`fastnn.config.threads_for`)
or on one; the trainer times both and keeps the faster (on a busy machine a
parallel region per kernel costs more than it saves). Results do not depend on
the thread count.
"""
from __future__ import annotations

import math
import time
import weakref

import numpy as np

from fastnn import config, utils
from fastnn.backends import ACTIVATION_CODES, ACTIVATION_DEFAULT_PARAM, PlanDeclined

__all__ = ["explain", "fused_trainer_for", "FusedTrainer", "fused_predictor_for",
           "FusedPredictor"]

#: Bytes of layer input per block of rows in the predictor (see FusedPredictor).
BLOCK_BYTES = 256 * 1024
_PREDICT_BLOCK_ROWS = 30

#: Seconds of work per compiled call: long enough that Python's share is negligible,
#: short enough that the progress bar moves and Ctrl-C is honoured promptly.
CHUNK_SECONDS = 0.03

_SOFTMAX_NAMES = ("softmax", "log_softmax")


def _fused_module():
    """``fastnn._fused``, or None when it was not compiled."""
    try:
        from fastnn import _fused
    except ImportError:
        return None
    return _fused


_OPENMP = None


# Work above which a kernel of a compiled chunk uses all threads. Lower than the
# per-op threshold (config.PARALLEL_WORK_THRESHOLD): a chunk's thread count is
# chosen by timing (_ThreadTuner), so a second thread that does not pay on a busy
# machine is dropped for the whole chunk, and on a quiet one it takes the seed
# MLP's first-layer GEMMs and Adam update at batch 32 (0.37 -> 0.34 s per epoch).
_CHUNK_PARALLEL_WORK = 1 << 18


def _threads():
    """(max threads, parallel threshold) of a compiled chunk, from fastnn.config now."""
    global _OPENMP
    if _OPENMP is None:  # a property of the build: ask once
        _OPENMP = config.openmp_enabled()
    threshold = min(config.PARALLEL_WORK_THRESHOLD, _CHUNK_PARALLEL_WORK)
    return (config.get_num_threads() if _OPENMP else 1), threshold


# ---------------------------------------------------------------------------
# What qualifies: layers, activations, loss, optimizer
# ---------------------------------------------------------------------------

def _activation_code(act, where, in_shape=None):
    """(code, param) of a backend activation object, or raise _Decline.

    ``in_shape``: the layer's per-sample input shape. The compiled kernels see a
    sample as one flat row, which is the softmax's axis only for a 1-D sample.
    """
    from fastnn import activations
    if not isinstance(act, activations.Activation) or not getattr(act, "fused", False):
        raise _Decline(f"{where}: the activation {act!r} is a Python function")
    if act.name in _SOFTMAX_NAMES and act.axis not in (-1, 1):
        raise _Decline(f"{where}: {act.name} over axis {act.axis}")
    if act.name in _SOFTMAX_NAMES and in_shape is not None and len(in_shape) > 1:
        raise _Decline(f"{where}: {act.name} over the last axis of samples of shape "
                       f"{tuple(in_shape)}")
    param = act.param
    if param is None:
        param = ACTIVATION_DEFAULT_PARAM.get(act.name, 0.0)
    return ACTIVATION_CODES[act.name], float(param)


class _Decline(PlanDeclined):
    """Why a model cannot run fused (becomes explain()'s answer; raised as
    :class:`fastnn.backends.PlanDeclined` when the model changes under a plan)."""


def _check_regularizer(reg, where):
    """(l1, l2) of a built-in L1/L2 regularizer, or None."""
    if reg is None:
        return None
    from fastnn import regularizers
    base = regularizers.Regularizer
    if (not isinstance(reg, base) or type(reg).__call__ is not base.__call__
            or type(reg).add_gradient is not base.add_gradient):
        raise _Decline(f"{where}: custom regularizer {type(reg).__name__}")
    return float(reg.l1), float(reg.l2)


def _logits_loss(model):
    """The from_logits loss the model fuses with its last activation, or None.

    Asks the model (so both paths take the same decision) when it can.
    """
    if hasattr(model, "_logits_loss"):
        return model._logits_loss()
    return None  # pragma: no cover - every fastnn model has it


def _loss_spec(model):
    """The loss part of the plan: the loss the model's training step evaluates."""
    from fastnn import losses
    from fastnn._kernels import LOSS_CODES
    loss = model.loss
    base = losses.Loss
    if (not isinstance(loss, base) or type(loss).__module__ != losses.__name__
            or type(loss).forward_backward is not base.forward_backward
            or loss.op_name not in LOSS_CODES):
        raise _Decline(f"loss {loss!r} is not a built-in loss")
    if getattr(model, "loss_weight", 1.0) != 1.0:
        raise _Decline(f"compile(loss_weights={model.loss_weight}) scales the loss")
    if getattr(loss, "label_smoothing", 0):
        # The kernels read the targets as given; the smoothing happens in Python.
        raise _Decline(f"loss {loss!r} smooths the labels")
    fused = _logits_loss(model)
    if fused is None and not loss.from_logits and type(loss)._op_input is not base._op_input:
        # e.g. categorical cross-entropy on probabilities renormalises each row in
        # Python before the op (as Keras does); the kernels have no such step.
        raise _Decline(f"loss {loss!r} transforms y_pred before the loss op")
    used = fused if fused is not None else loss
    param = used.param
    return {
        "code": LOSS_CODES[used.op_name],
        "from_logits": bool(used.from_logits),
        "param": 1.0 if param is None else float(param),
        "sparse": used.op_name == "sparse_categorical_crossentropy",
        "logits_fused": fused is not None,
    }


def _optimizer_spec(opt):
    """The optimizer part of the plan: update rule, hyper-parameters, clipping."""
    from fastnn import optimizers as O
    from fastnn import _fused
    rules = {"sgd": (O.SGD, _fused.OPT_SGD), "adam": (O.Adam, _fused.OPT_ADAM),
             "rmsprop": (O.RMSprop, _fused.OPT_RMSPROP), "adagrad": (O.Adagrad, _fused.OPT_ADAGRAD)}
    rule = getattr(opt, "update_rule", None)
    if not isinstance(opt, O.Optimizer) or rule not in rules:
        raise _Decline(f"optimizer {type(opt).__name__} is not a built-in optimizer")
    cls, code = rules[rule]
    base = O.Optimizer
    if (not isinstance(opt, cls) or type(opt)._update is not cls._update
            or type(opt).apply is not base.apply or type(opt)._clip is not base._clip
            or type(opt).current_learning_rate is not base.current_learning_rate
            or type(opt).update_hyperparameters is not cls.update_hyperparameters):
        raise _Decline(f"optimizer {type(opt).__name__} overrides the update")
    hp = opt.update_hyperparameters()
    if rule == "sgd":
        h, flags = (hp["momentum"], hp["dampening"]), (hp["nesterov"],)
    elif rule == "adam":
        h, flags = (hp["beta_1"], hp["beta_2"], hp["epsilon"]), (hp["amsgrad"],)
    elif rule == "rmsprop":
        h, flags = (hp["rho"], hp["epsilon"], hp["momentum"]), (hp["centered"],)
    else:
        h, flags = (hp["epsilon"], hp["lr_decay"]), ()
    if opt.clipvalue is not None:
        clip = (_fused.CLIP_VALUE, opt.clipvalue)
    elif opt.clipnorm is not None:
        clip = (_fused.CLIP_NORM, opt.clipnorm)
    elif opt.global_clipnorm is not None:
        clip = (_fused.CLIP_GLOBAL_NORM, opt.global_clipnorm)
    else:
        clip = (_fused.CLIP_NONE, 0.0)
    return {"code": code, "h": [float(v) for v in h], "flags": [bool(f) for f in flags],
            "weight_decay": float(hp["weight_decay"]), "decoupled": bool(hp["decoupled_weight_decay"]),
            "clip_kind": clip[0], "clip_value": float(clip[1])}


def _state_arrays(rule, slots):
    """The optimizer's state arrays in the order the fused update takes them."""
    if rule == "sgd":
        return [slots.get("momentum")]
    if rule == "adam":
        return [slots["momentum"], slots["velocity"], slots.get("velocity_hat")]
    if rule == "rmsprop":
        return [slots["velocity"], slots.get("momentum"), slots.get("average_gradient")]
    return [slots["accumulator"]]


def _layer_kinds():
    from fastnn import layers as L
    return L.Dense, L.Activation, L.Dropout, L.Flatten, L.InputLayer


def _dense_nodes_common(model, where_prefix="layer"):
    """Yield (index, layer, layer class, description) of each layer, declining unknown kinds."""
    Dense, Activation, Dropout, Flatten, InputLayer = _layer_kinds()
    for i, layer in enumerate(model.layers):
        where = f"{where_prefix} {i} ({layer.name})"
        t = type(layer)
        if t not in (Dense, Activation, Dropout, Flatten, InputLayer):
            raise _Decline(f"{where}: {t.__name__} layers run on the per-op path")
        if t is Flatten and layer.data_format != "channels_last" and len(layer._in_shape) > 1:
            raise _Decline(f"{where}: Flatten(data_format='channels_first') reorders the values")
        if t is Dense and layer.activity_regularizer is not None:
            raise _Decline(f"{where}: an activity regularizer (a penalty on the outputs)")
        if t is Dense and len(layer._in_shape) != 1:
            # the compiled plans see a sample as one flat row; a Dense layer applies
            # to the last axis of samples of several dimensions
            raise _Decline(f"{where}: Dense over the last axis of samples of shape "
                           f"{tuple(layer._in_shape)}")
        yield i, layer, t, where


# ---------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------

def explain(model, batch_size=32):
    """Why ``model`` cannot train on the fused path, or None if it can.

    Parameters
    ----------
    model : fastnn.models.Sequential
        A compiled, built model.
    batch_size : int
    """
    try:
        _build_spec(model, batch_size)
    except _Decline as exc:
        return str(exc)
    return None


# Fields of the spec that the trainer adapts to without a new plan (see _refresh).
_SPEC_THREAD_FIELDS = ("max_threads", "parallel_threshold")


def _same_plan(a, b, top=True):
    """True if two results of :func:`_build_spec` describe the same plan: numbers,
    flags, codes and dtypes equal, arrays and other objects (layers) the same ones."""
    if isinstance(a, dict):
        if not isinstance(b, dict) or a.keys() != b.keys():
            return False
        return all(_same_plan(a[k], b[k], False) for k in a
                   if not (top and k in _SPEC_THREAD_FIELDS))
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(_same_plan(x, y, top and isinstance(a, tuple)) for x, y in zip(a, b)))
    if isinstance(a, (bool, int, float, str, np.dtype, np.generic)):
        return type(a) is type(b) and a == b
    return a is b


def _build_spec(model, batch_size):
    """The plan of ``model`` as the arguments of ``fastnn._fused.Trainer``."""
    _fused = _fused_module()
    if _fused is None:
        raise _Decline("the compiled module fastnn._fused is not available")
    if not getattr(model, "built", False) or not model.layers:
        raise _Decline("the model is not built")
    if getattr(model, "optimizer", None) is None or getattr(model, "loss", None) is None:
        raise _Decline("the model is not compiled with an optimizer and a loss")
    Dense, Activation, Dropout, Flatten, InputLayer = _layer_kinds()
    dtype = np.dtype(model.dtype)
    if dtype not in (np.float32, np.float64):
        raise _Decline(f"dtype {dtype}")
    if getattr(model, "compiled_weighted_metrics", None):
        # the compiled runner updates only compile(metrics=...), without weights
        raise _Decline("compile(weighted_metrics=...) are updated on the per-op path")
    loss = _loss_spec(model)
    opt = _optimizer_spec(model.optimizer)
    layers = model.layers
    n_in = int(np.prod(model._in_shape))
    last = len(layers) - 1
    out_act = getattr(layers[-1], "activation", None)

    nodes, dense_params, width = [], [], n_in
    trainable_before = constrained = False
    streams = {}          # generator key -> stream index
    stream_layers = []    # per stream: the layer whose generator it draws from (None: global)
    for i, layer, t, where in _dense_nodes_common(model):
        if t in (Flatten, InputLayer):
            continue
        if getattr(layer, "dtype", dtype) != dtype:
            raise _Decline(f"{where}: dtype {layer.dtype} differs from the model's {dtype}")
        fuse_here = loss["logits_fused"] and i == last
        if t is Dense:
            code, param = _activation_code(layer.activation, where)
            # the penalties and constraints the per-op step applies: those the layer's
            # variables got when it was built (as in Keras, setting the layer's
            # kernel_regularizer afterwards changes neither path)
            variables = {v.name: v for v in layer._variables}
            kvar, bvar = variables["kernel"], variables.get("bias")
            if kvar.constraint is not None or (bvar is not None and bvar.constraint is not None):
                constrained = True
            kreg = _check_regularizer(kvar.regularizer, where)
            breg = _check_regularizer(bvar.regularizer if bvar is not None else None, where)
            trainable = bool(layer.trainable)
            grads = layer.gradients if trainable else []
            node = {"kind": _fused.NODE_DENSE, "n_in": width, "n_out": layer.units,
                    "code": code, "bwd_code": code, "param": param,
                    "keep_preact": bool(layer.activation.needs_input),
                    "needs_input_grad": trainable_before,
                    "kernel": layer.kernel, "bias": layer.bias,
                    "grad_kernel": grads[0] if trainable else None,
                    "grad_bias": grads[1] if trainable and layer.use_bias else None}
            if fuse_here:
                # forward_logits / backward_logits: the layer as if linear
                node.update(code=ACTIVATION_CODES["linear"], bwd_code=ACTIVATION_CODES["linear"],
                            keep_preact=False)
            nodes.append(node)
            if trainable:
                regs = [kreg, breg] if layer.use_bias else [kreg]
                for value, grad, reg in zip(layer.trainable_weights, grads, regs):
                    dense_params.append((value, grad, reg, i))
                trainable_before = True
            width = layer.units
        elif t is Activation:
            code, param = _activation_code(layer.activation, where, layer._in_shape)
            if fuse_here:
                continue  # forward_logits passes z through; the loss takes it
            nodes.append({"kind": _fused.NODE_ACTIVATION, "n_in": width, "n_out": width,
                          "code": code, "bwd_code": code, "param": param,
                          "needs_input_grad": trainable_before})
        else:  # Dropout
            if layer.rate == 0:
                continue  # the identity, and no mask is drawn
            if getattr(layer, "noise_shape", None) is not None:
                raise _Decline(f"{where}: Dropout with a noise_shape runs on the per-op path")
            own = getattr(layer, "_rng", None)
            key = id(layer) if own is not None else "global"
            if key not in streams:
                streams[key] = len(streams)
                stream_layers.append(layer if own is not None else None)
            nodes.append({"kind": _fused.NODE_DROPOUT, "n_in": width, "n_out": width,
                          "rate": float(layer.rate), "stream": streams[key],
                          "needs_input_grad": trainable_before})
    if not nodes:
        raise _Decline("the model has no Dense, Activation or Dropout layer")
    if len(streams) > 16:
        raise _Decline("more than 16 dropout generators")
    if loss["logits_fused"]:
        loss["out_code"], loss["out_param"] = _activation_code(out_act, "output activation")

    # parameters in the optimizer's order (model.trainable_weights), with its state
    model_params = model.trainable_weights
    if [id(p) for p, _, _, _ in dense_params] != [id(p) for p in model_params]:
        raise _Decline("the trainable weights are not those of the Dense layers")
    optimizer = model.optimizer
    try:
        optimizer.build(model_params)
    except (TypeError, ValueError) as exc:
        raise _Decline(f"optimizer state does not fit the model ({exc})") from None
    params = []
    for k, (value, grad, reg, layer_index) in enumerate(dense_params):
        state = _state_arrays(optimizer.update_rule, optimizer.slots[k])
        for s in state:
            if s is not None and (s.dtype != dtype or s.shape != value.shape
                                  or not s.flags.c_contiguous or not s.flags.writeable):
                raise _Decline(f"optimizer state of parameter {k} is not a writeable "
                               f"C-contiguous {dtype} array of its shape")
        params.append({"value": value, "grad": grad, "state": state,
                       "regularized": reg is not None,
                       "l1": reg[0] if reg else 0.0, "l2": reg[1] if reg else 0.0,
                       "layer": layer_index})
    max_threads, threshold = _threads()
    kwargs = dict(dtype=dtype, batch_size=int(batch_size), n_in=n_in, n_out=width,
                  nodes=nodes, params=params, loss=loss, optimizer=opt,
                  max_threads=max_threads, parallel_threshold=threshold)
    return kwargs, stream_layers, constrained


def fused_trainer_for(model, batch_size):
    """A :class:`FusedTrainer` for ``model``, or None when it does not qualify.

    :func:`explain` gives the reason for None.
    """
    try:
        return FusedTrainer(model, batch_size)
    except _Decline:
        return None


# model -> ((batch size, pinned threads), steps per chunk, thread tuner) of its last trainer
_MEMORY = weakref.WeakKeyDictionary()


class _ThreadTuner:
    """Chooses, from measured seconds per step, whether chunks use all threads or one.

    On a quiet machine a second thread pays for the larger GEMMs and the
    optimizer update; on a busy one every parallel region waits for its slowest
    thread (tens of times slower than one thread when the cores are
    oversubscribed). Results do not depend on the choice, so the trainer times
    both on short probe chunks, keeps the faster, and re-times the other now and
    then: after FIRST_WAIT seconds of training, then twice as long after each loss,
    up to MAX_WAIT (a shared machine's load comes and goes in spells of seconds to
    minutes), and never so often that probes take more than PROBE_SHARE of the
    time (a probe of a large model's slow option can take a tenth of a second).
    """

    PROBE_STEPS = 4     # steps of a probe chunk (cheap even when the option is bad; the
                        # first, which wakes the threads, is not timed: FusedTrainer._run)
    KEEP = 3            # recent timings kept per option (their median decides)
    FIRST_WAIT = 0.25   # seconds of training before the first re-timing
    MAX_WAIT = 2.0
    PROBE_SHARE = 0.01

    def __init__(self, *options):
        self.options = tuple(dict.fromkeys(options))   # distinct, in order of preference
        self.times = {o: [] for o in self.options}
        self.wait = self.FIRST_WAIT
        self.elapsed = 0.0  # seconds of training since the last re-timing
        self.best = self.options[0]
        self.warm = False   # the first chunk pays for first touches of workspaces: not timed

    def _score(self, option):
        # the lower median: one slow outlier (a burst of load) does not condemn an option
        t = sorted(self.times[option])
        return t[(len(t) - 1) // 2] if t else float("inf")

    def choose(self):
        """(threads, step limit or None) for the next chunk: a short probe or a full chunk."""
        fewest = min(self.options, key=lambda o: len(self.times[o]))
        if len(self.times[fewest]) < 2:
            return fewest, self.PROBE_STEPS
        best = min(self.options, key=self._score)
        if best != self.best:
            self.best, self.wait, self.elapsed = best, self.FIRST_WAIT, 0.0
        if len(self.options) > 1:
            other = next(o for o in self.options if o != best)
            probe_cost = self.PROBE_STEPS * self._score(other)
            if self.elapsed >= max(self.wait, probe_cost / self.PROBE_SHARE):
                self.wait = min(2 * self.wait, self.MAX_WAIT)
                self.elapsed = 0.0
                return other, self.PROBE_STEPS
        return best, None

    def record(self, option, seconds_per_step, steps=1):
        self.elapsed += seconds_per_step * steps
        if not self.warm:
            self.warm = True
            return
        t = self.times.setdefault(option, [])
        t.append(seconds_per_step)
        del t[:-self.KEEP]


def _exact_in_chunks(metric, n_out):
    """True if updating ``metric`` once per chunk gives exactly the per-batch state.

    Means of per-sample values in {0, 1} add exactly, in any grouping; anything
    else is updated batch by batch, as the per-op path does.
    """
    from fastnn import metrics as M
    names = ("SparseCategoricalAccuracy", "CategoricalAccuracy", "TopKCategoricalAccuracy",
             "SparseTopKCategoricalAccuracy", "InferredAccuracy")
    t = type(metric)
    if t.__module__.startswith(M.__name__) and t.__name__ in names:
        return n_out > 1 or t.__name__ != "InferredAccuracy"
    if t.__module__.startswith(M.__name__) and t.__name__ == "BinaryAccuracy":
        return n_out == 1
    return False


def _callbacks_may_change_model(callbacks):
    """(between epochs, between chunks): whether some callback may change the model
    there. fit runs no code of the user's but callbacks; fastnn's own chunked
    callbacks only read the logs (History, ProgbarLogger, TerminateOnNaN, which sets
    ``stop_training``, read by the loop itself). Any other callback may change the
    model between epochs, and between chunks if it has a train batch hook."""
    from fastnn.callbacks import History, ProgbarLogger, TerminateOnNaN
    readers = (History, ProgbarLogger, TerminateOnNaN)
    return (any(type(cb) not in readers for cb in callbacks),
            any(type(cb) not in readers for cb in callbacks._implementing("train")))


class FusedTrainer:
    """Runs ``fit``'s epochs for one model through the compiled training loop.

    Parameters
    ----------
    model : fastnn.models.Sequential
        Compiled and built; see the module docstring for what qualifies.
    batch_size : int
    threads : int, optional
        Run every chunk on this many threads instead of choosing between
        ``fastnn.config.get_num_threads()`` and one by timing both.
    team : bool, optional
        True runs every chunk's steps by one team of threads wherever the model
        allows it (on one thread too), False never; None (default) where that
        pays (see ``_team_chunk`` in csrc/fused.pyx). Results do not depend on it.

    Raises
    ------
    _Decline
        (internal) when the model does not qualify; use :func:`fused_trainer_for`.

    Notes
    -----
    The plan points at the model's live arrays and holds its settings (codes of
    the activations, dropout rates, hyper-parameters, clipping, penalties).
    Wherever a callback may have changed the model (before an epoch, and before
    every chunk if a callback has batch hooks; see ``train_epoch``) the trainer
    reads them off the model again and rebuilds the plan if anything differs: an
    array replaced (``set_weights`` and ``set_state`` may do it) or a setting
    changed. See ``_refresh``.
    """

    def __init__(self, model, batch_size, threads=None, team=None):
        self.model = model
        self.batch_size = int(batch_size)
        self._team = team
        self._pinned = None if threads is None else max(1, int(threads))
        self._steps_per_chunk = 4      # first guess; adapted to CHUNK_SECONDS
        self._tuner = None
        # fit builds a trainer per call: what the last one learnt about chunk sizes and
        # threads for this model and batch size carries over (fit(epochs=1) in a loop)
        memory = _MEMORY.get(model)
        if memory is not None and memory[0] == (self.batch_size, self._pinned):
            self._steps_per_chunk, self._tuner = memory[1], memory[2]
        self._build()
        _MEMORY[model] = ((self.batch_size, self._pinned), self._steps_per_chunk, self._tuner)

    # -- plan ---------------------------------------------------------------------
    def _build(self, spec=None):
        from fastnn import _fused
        if spec is None:
            spec = _build_spec(self.model, self.batch_size)
        self._spec = spec
        kwargs, self._stream_layers, self._constrained = spec
        self._trainer = _fused.Trainer(**kwargs)
        self._trainer.set_team(self._team)
        self._dtype = kwargs["dtype"]
        self._n_out = kwargs["n_out"]
        self._sparse = kwargs["loss"]["sparse"]
        self._active_threads = kwargs["max_threads"]
        self._threshold = kwargs["parallel_threshold"]
        self._new_tuner(kwargs["max_threads"])
        # per dropout generator, the values one sample draws (sum of its layers' widths)
        self._stream_widths = [0] * len(self._stream_layers)
        for spec in kwargs["nodes"]:
            if spec["kind"] == _fused.NODE_DROPOUT:
                self._stream_widths[spec["stream"]] += spec["n_out"]
        self._arrays = self._live_arrays()

    def _live_arrays(self):
        """The arrays the plan points into (weights, gradients, optimizer state), to
        compare by identity: a cheap check for a caller's ``set_state`` between epochs."""
        model = self.model
        arrays = list(model.trainable_weights) + list(model.gradients)
        for slots in model.optimizer.slots[:len(model.trainable_weights)]:
            if slots is not None:
                arrays.extend(slots.values())
        for layer in model.layers:
            arrays.extend(layer.weights)
        return arrays

    def _arrays_replaced(self):
        live = self._live_arrays()
        return len(live) != len(self._arrays) or any(a is not b for a, b in zip(live, self._arrays))

    def _refresh(self):
        """Rebuild the plan if the model is no longer what it was built from.

        Callbacks may change the model (``on_epoch_begin`` setting
        ``optimizer.beta_1``, a dropout rate, a clip norm, an activation...), and
        ``set_state`` may replace arrays. The plan is whatever :func:`_build_spec`
        reads off the model, so it is read again (about 0.3 ms for the seed MLP;
        ``train_epoch`` says when) and compared: the numbers, flags and codes by
        value, the arrays and layers by identity.
        Raises ``_Decline`` (a :class:`PlanDeclined`) if the model no longer
        qualifies.
        """
        spec = _build_spec(self.model, self.batch_size)
        if not _same_plan(spec, self._spec):
            self._build(spec)
        max_threads, self._threshold = _threads()
        self._new_tuner(max_threads)

    def _new_tuner(self, max_threads):
        """A thread tuner for ``max_threads`` (kept while the budget does not change)."""
        options = (self._pinned,) if self._pinned is not None else (max_threads, 1)
        if getattr(self, "_tuner", None) is None or self._tuner.options != tuple(dict.fromkeys(options)):
            self._tuner = _ThreadTuner(*options)

    # -- one chunk ------------------------------------------------------------------
    def _learning_rates(self, steps):
        """The learning rate of each step of the chunk, as the optimizer would use it."""
        from fastnn.optimizers import schedules
        opt = self.model.optimizer
        lr = opt.learning_rate
        it = opt.iterations
        if isinstance(lr, schedules.LearningRateSchedule):
            # one scalar call per step, exactly as current_learning_rate() makes it
            return np.array([float(lr(it + s)) for s in range(steps)], dtype=np.float64)
        return np.full(steps, float(lr), dtype=np.float64)

    def _uniforms(self, start, stop):
        """Per dropout generator, the uniforms the chunk's masks consume, in draw order."""
        widths = self._stream_widths
        out = []
        for k, layer in enumerate(self._stream_layers):
            rng = utils.rng() if layer is None else layer._rng
            # per step, per layer: rng.random((n_b, width)); consecutive draws of
            # float64 uniforms concatenate, so one call gives the same numbers
            out.append(rng.random((stop - start) * widths[k]))
        return out

    def run_chunk(self, x, y, sample_weight, order, start, stop, loss_sum=0.0, pred_out=None):
        """Train on the batches ``[start, stop)`` of the epoch's order, in one compiled call.

        Parameters
        ----------
        x : ndarray (samples, features...)
            Validated inputs of the model's dtype.
        y : ndarray
            Validated targets (int64 labels for the sparse loss, else the output shape).
        sample_weight : ndarray (samples,) or None
        order : int64 ndarray (samples,) or None
            The epoch's permutation (None: in order).
        start, stop : int
            Sample positions in the order; ``start`` is a multiple of the batch
            size, ``stop`` too or the number of samples.
        loss_sum : float
            Running sum of (loss + penalties) * batch size, updated and returned.
        pred_out : ndarray (stop - start, outputs) or None
            Receives the model's outputs, for the metrics.

        Returns
        -------
        (float, int)
            The updated loss sum and the number of steps done.
        """
        self._refresh()
        threads, _ = self._tuner.choose()
        return self._run(x, y, sample_weight, order, start, stop, loss_sum, pred_out, threads, False)

    def _run(self, x, y, sample_weight, order, start, stop, loss_sum, pred_out, threads, probe,
             stop_nonfinite=False):
        steps = -(-(stop - start) // self.batch_size)
        n = x.shape[0]
        xs = x.reshape(n, -1)
        ys = y.reshape(n) if self._sparse else y.reshape(n, -1)
        lrs = self._learning_rates(steps)
        uniforms = self._uniforms(start, stop)
        opt = self.model.optimizer
        warm = 0
        if threads != self._active_threads:
            self._trainer.set_threads(threads, self._threshold)
            self._active_threads = threads
            if steps > 1 and not self._constrained:
                # The first step after a change of thread count also wakes the threads
                # (asleep through a one-thread spell, a worker took ~0.3 ms to join, so
                # a 2-step probe of two threads timed twice their steady step): it runs
                # untimed, and the timing starts with the threads awake.
                b1 = start + self.batch_size
                loss_sum, warm = self._trainer.run(
                    xs, ys, sample_weight, order, start, b1, lrs, opt.iterations,
                    [u[:(b1 - start) * w] for u, w in zip(uniforms, self._stream_widths)],
                    None if pred_out is None else pred_out[:b1 - start], loss_sum)
                uniforms = [u[(b1 - start) * w:] for u, w in zip(uniforms, self._stream_widths)]
                pred_out = None if pred_out is None else pred_out[b1 - start:]
                lrs, start = lrs[warm:], b1
                opt.iterations += warm
                if stop_nonfinite and not math.isfinite(loss_sum):
                    return loss_sum, warm
        t0 = time.perf_counter()
        if not self._constrained:
            loss_sum, done = self._trainer.run(xs, ys, sample_weight, order, start, stop, lrs,
                                               opt.iterations, uniforms, pred_out, loss_sum,
                                               stop_nonfinite)
        else:
            # constraints are projections in NumPy after every update: one step per call
            done, bs = 0, self.batch_size
            offsets = [0] * len(uniforms)
            for b0 in range(start, stop, bs):
                b1 = min(b0 + bs, stop)
                step_uniforms = []
                for k, u in enumerate(uniforms):
                    size = (b1 - b0) * self._stream_widths[k]
                    step_uniforms.append(u[offsets[k]:offsets[k] + size])
                    offsets[k] += size
                loss_sum, one = self._trainer.run(
                    xs, ys, sample_weight, order, b0, b1, lrs[done:], opt.iterations + done,
                    step_uniforms, None if pred_out is None else pred_out[b0 - start:b1 - start],
                    loss_sum)
                self.model.apply_constraints()
                done += one
                if stop_nonfinite and not math.isfinite(loss_sum):
                    break
        seconds = time.perf_counter() - t0
        opt.iterations += done
        if done:
            self._tuner.record(threads, seconds / done, done)
            if not probe:
                self._adapt(seconds, done)
        return loss_sum, done + warm

    # -- fit's runner interface -----------------------------------------------------------
    def train_epoch(self, x, y, sample_weight, order, batch_size, callbacks):
        """One epoch of ``fit`` (the runner interface of fastnn.models.training).

        Batch hooks are called once per chunk (``on_train_batch_begin`` with its first
        batch, ``on_train_batch_end`` with its last and the running logs); the loop
        stops after the chunk in which ``model.stop_training`` was set. Changes to
        the model take effect from the next chunk (see ``_refresh``).

        Raises
        ------
        PlanDeclined
            Before a chunk, if the model changed into one the compiled step does not
            cover; ``progress`` says where the epoch stands (the hook
            ``on_train_batch_begin`` of its next batch has been called).

        Returns
        -------
        dict
            ``{'loss': mean of (loss + penalties) weighted by batch size, metric: value}``.
        """
        if int(batch_size) != self.batch_size:
            raise ValueError(f"this trainer was built for batch_size={self.batch_size}, got {batch_size}")
        model = self.model
        n = x.shape[0] if order is None else len(order)  # order may list a part of the rows
        metrics = list(model.compiled_metrics)
        for m in metrics:
            m.reset_state()
        if order is not None:
            order = np.ascontiguousarray(order, dtype=np.int64)
        chunked = [_exact_in_chunks(m, self._n_out) for m in metrics]
        # The plan is read off the model again (~0.3 ms: 1% of a 30 ms chunk, but as
        # much as a whole epoch of one small batch) wherever a callback may have
        # changed it: before the epoch's first chunk if any callback may, and before
        # every chunk if a batch hook may.
        watch_epoch, watch_chunks = _callbacks_may_change_model(callbacks)
        # with TerminateOnNaN, a chunk ends after the step whose loss is not finite, as
        # the per-op loop stops after that batch
        from fastnn.callbacks import TerminateOnNaN
        stop_nonfinite = any(isinstance(cb, TerminateOnNaN) for cb in callbacks)
        loss_sum, seen, start, batch = 0.0, 0, 0, 0
        logs = {"loss": float("nan")}
        bs = self.batch_size
        while start < n:
            # the hook first: what it changes holds for this chunk, as for the per-op
            # loop's batch
            callbacks.on_train_batch_begin(batch)
            try:
                if watch_chunks or (start == 0 and (watch_epoch or self._arrays_replaced())):
                    # (a caller driving train_epoch itself may replace arrays between
                    # epochs: set_state; the identity check costs a few microseconds)
                    self._refresh()
            except _Decline as exc:
                # the model changed into one the plan does not cover: fit finishes
                # the epoch (and the rest) on the per-op loop from this batch, whose
                # on_train_batch_begin has been called
                raise PlanDeclined(str(exc), (batch, start, loss_sum, seen)) from exc
            threads, limit = self._tuner.choose()
            steps = limit if limit is not None else max(1, self._steps_per_chunk)
            stop = min(n, start + steps * bs)
            steps = -(-(stop - start) // bs)
            pred = np.empty((stop - start, self._n_out), self._dtype) if metrics else None
            loss_sum, done = self._run(x, y, sample_weight, order, start, stop, loss_sum, pred,
                                       threads, limit is not None, stop_nonfinite)
            if done < steps:    # stopped early, after a non-finite loss
                stop, steps = min(n, start + done * bs), done
                pred = None if pred is None else pred[:stop - start]
            if metrics:
                # compile(metrics=...) are not weighted by sample_weight (Keras; the model's
                # _update_metrics): the per-op loop calls update_state(y_batch, y_pred_batch)
                rows = slice(start, stop) if order is None else order[start:stop]
                yc = y[rows]
                for m, whole in zip(metrics, chunked):
                    if whole:
                        m.update_state(yc, pred)
                    else:
                        for b0 in range(0, stop - start, bs):
                            m.update_state(yc[b0:b0 + bs], pred[b0:b0 + bs])
            seen += stop - start
            batch += steps
            logs = {"loss": loss_sum / seen if seen else float("nan")}
            for m in metrics:
                logs[m.name] = float(m.result())
            callbacks.on_train_batch_end(batch - 1, logs)
            start = stop
            if model.stop_training:
                break
        return logs

    def _adapt(self, seconds, steps):
        """Size the next chunk to about CHUNK_SECONDS of work."""
        if steps <= 0:
            return
        per_step = max(seconds / steps, 1e-7)
        target = int(CHUNK_SECONDS / per_step)
        # grow gently (timings of tiny chunks are noisy), shrink at once
        self._steps_per_chunk = max(1, min(target, 4 * self._steps_per_chunk))
        _MEMORY[self.model] = ((self.batch_size, self._pinned), self._steps_per_chunk, self._tuner)


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------

def fused_predictor_for(model):
    """A :class:`FusedPredictor` for ``model``'s inference, or None when it does not qualify
    (layers other than Dense / Activation / Dropout / Flatten / input, Python activations,
    mixed dtypes, an unbuilt model, or no compiled module)."""
    try:
        return FusedPredictor(model)
    except _Decline:
        return None


class FusedPredictor:
    """``model``'s forward pass at inference, the whole stack in one compiled call.

    Dropout is the identity at inference and Flatten a reshape, so only Dense
    layers (GEMM with the bias + activation epilogue) and Activation layers
    remain. Up to ``block`` rows run through the stack at once in a
    preallocated workspace (one-sample latency is a few microseconds); larger
    inputs are cut into blocks of rows shared between the threads, each block
    going through the whole stack while it is in cache.

    Parameters
    ----------
    model : fastnn.models.Sequential
        Built.
    """

    def __init__(self, model):
        self.model = model
        self._build()

    def _build(self):
        _fused = _fused_module()
        if _fused is None:
            raise _Decline("the compiled module fastnn._fused is not available")
        model = self.model
        if not getattr(model, "built", False) or not model.layers:
            raise _Decline("the model is not built")
        Dense, Activation, Dropout, Flatten, InputLayer = _layer_kinds()
        dtype = np.dtype(model.dtype)
        n_in = int(np.prod(model._in_shape))
        nodes, width = [], n_in
        for i, layer, t, where in _dense_nodes_common(model):
            if t in (Flatten, InputLayer, Dropout):
                continue
            if layer.dtype != dtype:
                raise _Decline(f"{where}: dtype {layer.dtype} differs from the model's {dtype}")
            code, param = _activation_code(layer.activation, where,
                                           layer._in_shape if t is Activation else None)
            if t is Dense:
                nodes.append({"kind": _fused.NODE_DENSE, "n_in": width, "n_out": layer.units,
                              "code": code, "param": param, "kernel": layer.kernel,
                              "bias": layer.bias})
                width = layer.units
            else:
                nodes.append({"kind": _fused.NODE_ACTIVATION, "n_in": width, "n_out": width,
                              "code": code, "param": param})
        if not nodes:
            raise _Decline("the model has no Dense or Activation layer")
        self._threads = _threads()
        # Rows per block: 30, five of the GEMM's 6-row tiles. Up to 32 rows it reads
        # (aligned) weights in place instead of packing them for every block (10,000
        # MNIST rows through the seed MLP: 9.4 ms against 10.3 with 80-row blocks), and
        # 32 would end in two slower 4-row tiles (30 rows: 1.3-3% faster, interleaved,
        # and bitwise the same). Fewer, in whole tiles, if 30 rows of the widest layer
        # input would not stay in L2 (BLOCK_BYTES).
        widest = max(node["n_in"] for node in nodes) * dtype.itemsize
        block = int(min(_PREDICT_BLOCK_ROWS, max(12, (BLOCK_BYTES // widest) // 6 * 6)))
        self._impl = _fused.Predictor(dtype, n_in, nodes, self._threads[0], self._threads[1],
                                      block)
        # what predict checks per call: (layer, kernel, bias) of every Dense layer (a
        # rebuilt layer has new arrays), and every layer's activation object with its
        # change count (another may be set, or this one changed in place)
        self._dense = [(layer, layer.kernel, layer.bias, layer.activation,
                        layer.activation.version)
                       for layer in model.layers if type(layer) is Dense]
        self._activations = [(layer, layer.activation, layer.activation.version)
                             for layer in model.layers if type(layer) is Activation]
        self._flat_output = len(model.layers[-1]._out_shape) == 1
        self._out_shape = tuple(model.layers[-1]._out_shape)

    def predict(self, x, check_finite=False):
        """The model's outputs for a validated batch ``x`` (samples, features...).

        ``x`` should be a C-contiguous array of the model's dtype (anything else
        is converted first). Returns a new array of shape (samples,) + output shape,
        or, with ``check_finite``, None if ``x`` holds a NaN or an infinity (tested
        block by block as the stack runs, not in a pass of its own).
        """
        # per call: a few identity checks and change counts (Activation.version), so
        # one-sample latency stays a few microseconds; a changed model is built again,
        # and if it no longer qualifies, _Decline is the PlanDeclined the model expects
        for layer, kernel, bias, act, version in self._dense:
            if (layer.kernel is not kernel or layer.bias is not bias
                    or layer.activation is not act or act.version != version):
                self._build()
                break
        else:
            for layer, act, version in self._activations:
                if layer.activation is not act or act.version != version:
                    self._build()
                    break
        threads = _threads()
        if threads != self._threads:
            self._impl.set_threads(*threads)
            self._threads = threads
        y = self._impl.predict(x if x.ndim == 2 else x.reshape(x.shape[0], -1), check_finite)
        if y is None or self._flat_output:
            return y
        return y.reshape((x.shape[0],) + self._out_shape)
