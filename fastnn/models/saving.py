"""Saving and loading models: one versioned, documented file, no pickle.

``model.save(path)`` calls :func:`save_model`; ``fastnn.models.load_model(path)``
calls :func:`load_model`. The file (``docs/file_format.md`` has the full
specification) is a zip archive with four members:

``manifest.json``
    format name ``"fastnn"``, ``format_version`` (1), the library version, and the
    size and SHA-256 of every other member.
``config.json``
    the architecture (``model.get_config()``), the compile settings (optimizer,
    loss, metrics) and the layout of the tensors below.
``weights.tensors``, ``optimizer.tensors``
    the weights and the optimizer state as raw little-endian arrays behind a JSON
    header (safetensors' layout: an 8-byte header length, a JSON table of name ->
    dtype, shape, byte offsets, SHA-256, then the bytes).

Safety: loading parses JSON and raw bytes only. Class names in the file are
looked up in the tables of known layers, optimizers and losses (plus the
``custom_objects`` the caller passes); nothing named in a file is imported or
executed. Truncated, corrupt or tampered files (a checksum mismatch), files of
another format and files of a newer format version raise ``ValueError`` naming
the path.

Atomicity: the archive is written to a temporary file in the target's
directory, flushed to disk, then moved over the target with ``os.replace``; a
failure at any point leaves an existing file untouched.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from fastnn._io import write_atomic
from fastnn.utils.random import generator_state, is_generator, restore_generator

__all__ = ["save_model", "load_model", "encode_tensors", "decode_tensors",
           "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "fastnn"
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
CONFIG = "config.json"
WEIGHTS = "weights.tensors"
OPTIMIZER = "optimizer.tensors"

# Upper bounds that keep a hostile file from making the loader allocate wildly:
# the JSON members are small, and a tensor header is a table, not data.
_MAX_JSON_BYTES = 64 << 20
_MAX_TENSOR_HEADER = 16 << 20

# Element types in the tensor files (safetensors' codes) <-> little-endian NumPy dtypes.
_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "|i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "|u1", "BOOL": "|b1",
}
_CODES = {(np.dtype(v).kind, np.dtype(v).itemsize): k for k, v in _DTYPES.items()}

# Fixed zip timestamps: saving the same model twice gives the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# =========================================================================== tensor files

def encode_tensors(tensors: dict, metadata: dict | None = None) -> bytes:
    """Serialize named arrays: 8-byte little-endian header length, JSON header, data.

    Parameters
    ----------
    tensors : dict of str -> numpy.ndarray
        Arrays of a numeric or bool dtype. Stored in insertion order, C order,
        little-endian.
    metadata : dict of str -> str, optional
        Free text stored under ``"__metadata__"`` in the header.

    Returns
    -------
    bytes
        The header entries are ``{"dtype": "F32", "shape": [...], "data_offsets":
        [begin, end], "sha256": hex}``; offsets are relative to the end of the
        header, which is padded with spaces to a multiple of 8 bytes.
    """
    header, chunks, offset = {}, [], 0
    for name, value in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise ValueError(f"tensor names must be non-empty strings other than '__metadata__', got {name!r}")
        arr = np.asarray(value)
        code = _CODES.get((arr.dtype.kind, arr.dtype.itemsize))
        if code is None:
            raise TypeError(f"tensor {name!r}: cannot store dtype {arr.dtype}")
        data = np.ascontiguousarray(arr, dtype=np.dtype(_DTYPES[code])).tobytes()
        header[name] = {"dtype": code, "shape": [int(d) for d in arr.shape],
                        "data_offsets": [offset, offset + len(data)],
                        "sha256": hashlib.sha256(data).hexdigest()}
        chunks.append(data)
        offset += len(data)
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # aligns the data for readers that map it
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def decode_tensors(data: bytes, where: str = "tensors") -> dict:
    """Parse :func:`encode_tensors` output, checking its structure and checksums.

    Parameters
    ----------
    data : bytes
    where : str
        Names the source in error messages (a path and member name).

    Returns
    -------
    dict of str -> numpy.ndarray
        Writable arrays in native byte order, in the header's order. The
        ``"__metadata__"`` entry, if any, is returned under that key as a dict.

    Raises
    ------
    ValueError
        A truncated or malformed header, unknown dtypes, offsets that overlap, leave
        gaps or overrun the data, sizes that disagree with shapes, or a SHA-256
        mismatch (the message names the tensor).
    """
    if len(data) < 8:
        raise ValueError(f"{where}: truncated tensor data ({len(data)} bytes, no header)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_TENSOR_HEADER or 8 + n > len(data):
        raise ValueError(f"{where}: truncated or corrupt tensor header (declares {n} bytes, "
                         f"{len(data) - 8} available)")
    try:
        header = json.loads(data[8: 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where}: corrupt tensor header ({type(exc).__name__})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where}: tensor header must be a JSON object")
    buffer = memoryview(data)[8 + n:]
    metadata, entries = None, []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise ValueError(f"{where}: __metadata__ must map strings to strings")
            metadata = dict(entry)
        else:
            entries.append(_check_entry(name, entry, len(buffer), where))
    # The data must be exactly the tensors, back to back: no gaps, no overlaps,
    # nothing after them (safetensors' rule; it also catches appended bytes).
    position = 0
    for _, begin, end, _, _ in sorted(entries, key=lambda e: (e[1], e[2])):
        if begin != position:
            raise ValueError(f"{where}: tensor data starts at byte {begin}, expected {position} "
                             "(overlapping or non-contiguous data)")
        position = end
    if position != len(buffer):
        raise ValueError(f"{where}: {len(buffer) - position} unexpected bytes after the tensors")
    out = {}
    for name, begin, end, dtype, shape in entries:
        raw = buffer[begin:end]
        if hashlib.sha256(raw).hexdigest() != header[name]["sha256"]:
            raise ValueError(f"{where}: checksum mismatch for tensor {name!r}: the file is corrupt "
                             "or was modified")
        native = dtype.newbyteorder("=") if dtype.byteorder != "|" else dtype
        out[name] = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(native)  # writable copy
    if metadata is not None:
        out["__metadata__"] = metadata
    return out


def _check_entry(name, entry, buffer_size, where):
    """(name, begin, end, dtype, shape) of a header entry whose fields are consistent."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets", "sha256"}:
        raise ValueError(f"{where}: malformed header entry for tensor {name!r}")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if code not in _DTYPES:
        raise ValueError(f"{where}: tensor {name!r} has unknown dtype {code!r}")
    if (not isinstance(shape, list) or len(shape) > 32
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise ValueError(f"{where}: tensor {name!r} has an invalid shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        raise ValueError(f"{where}: tensor {name!r} has invalid data_offsets {offsets!r}")
    if not isinstance(entry["sha256"], str):
        raise ValueError(f"{where}: tensor {name!r} has an invalid sha256")
    begin, end = offsets
    dtype = np.dtype(_DTYPES[code])
    expected = math.prod(shape) * dtype.itemsize
    if not 0 <= begin <= end or end - begin != expected:
        raise ValueError(f"{where}: tensor {name!r}: data_offsets {offsets} do not match shape "
                         f"{shape} of {code} ({expected} bytes)")
    if end > buffer_size:
        raise ValueError(f"{where}: tensor {name!r} is truncated (needs bytes up to {end}, "
                         f"{buffer_size} present)")
    return name, begin, end, dtype, shape


# =========================================================================== the archive

def _json_bytes(obj) -> bytes:
    try:
        return json.dumps(obj, indent=1, sort_keys=False, allow_nan=True).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"model configuration is not JSON-serializable: {exc}") from None


def _manifest(members: dict, format_name: str = FORMAT_NAME) -> dict:
    from fastnn import __version__
    return {
        "format": format_name,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "created_by": (f"fastnn {__version__} (Python {platform.python_version()}, "
                       f"NumPy {np.__version__})"),
        "members": {name: {"size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
                    for name, blob in members.items()},
    }


def _write_archive(path, members: dict, format_name: str = FORMAT_NAME) -> None:
    """Write ``members`` (name -> bytes) plus the manifest into ``path``, atomically
    (or into ``path`` itself when it is a writable binary file object)."""
    def write(f):
        with zipfile.ZipFile(f, "w") as zf:
            manifest = _json_bytes(_manifest(members, format_name))
            for name, blob in [(MANIFEST, manifest)] + list(members.items()):
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                # Tensor data is stored raw (floats barely compress); JSON is deflated.
                info.compress_type = zipfile.ZIP_DEFLATED if name.endswith(".json") else zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                zf.writestr(info, blob)
    if hasattr(path, "write"):
        write(path)
    else:
        write_atomic(path, write, suffix=".tmp")


def _read_archive(path, format_name: str = FORMAT_NAME,
                  what: str = "fastnn model file") -> tuple[dict, dict]:
    """(manifest, {member: bytes}) with every check of the container done; ``path``
    may also be a readable binary file object."""
    where = "<file object>" if hasattr(path, "read") else str(path)
    try:
        zf = zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{where}: not a {what} (not a zip archive, or truncated: {exc})") from None
    with zf:
        names = zf.namelist()
        if len(names) != len(set(names)):
            raise ValueError(f"{where}: corrupt model file (duplicate archive members)")
        if MANIFEST not in names:
            raise ValueError(f"{where}: not a {what} (no {MANIFEST})")
        manifest = _parse_json(_read_member(zf, MANIFEST, where), f"{where}:{MANIFEST}")
        if not isinstance(manifest, dict) or manifest.get("format") != format_name:
            found = manifest.get("format") if isinstance(manifest, dict) else None
            raise ValueError(f"{where}: not a {what} (format {found!r}, expected {format_name!r})")
        version = manifest.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"{where}: invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{where}: written in fastnn file format version {version} (by "
                f"{manifest.get('created_by', 'a newer fastnn')}); this fastnn reads version "
                f"{FORMAT_VERSION}: upgrade fastnn to load it")
        listed = manifest.get("members")
        if not isinstance(listed, dict):
            raise ValueError(f"{where}: corrupt manifest (no member list)")
        extra = sorted(set(names) - set(listed) - {MANIFEST})
        if extra:
            raise ValueError(f"{where}: unexpected members {extra} (not listed in the manifest)")
        members = {}
        for name, info in listed.items():
            if name not in names:
                raise ValueError(f"{where}: member {name!r} listed in the manifest is missing (truncated file?)")
            if not isinstance(info, dict) or not isinstance(info.get("size"), int):
                raise ValueError(f"{where}: corrupt manifest entry for {name!r}")
            if zf.getinfo(name).file_size != info["size"]:
                raise ValueError(f"{where}: member {name!r} has the wrong size (corrupt or modified)")
            blob = _read_member(zf, name, where, limit=None)
            if hashlib.sha256(blob).hexdigest() != info.get("sha256"):
                raise ValueError(f"{where}: checksum mismatch for {name!r}: the file is corrupt or was modified")
            members[name] = blob
    return manifest, members


def _read_member(zf, name, where, limit=_MAX_JSON_BYTES) -> bytes:
    info = zf.getinfo(name)
    if limit is not None and info.file_size > limit:
        raise ValueError(f"{where}: member {name!r} is implausibly large ({info.file_size} bytes)")
    allowed = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) if name.endswith(".json") else (zipfile.ZIP_STORED,)
    if info.compress_type not in allowed:
        # Tensor members are stored uncompressed, so their size is bounded by the file's.
        raise ValueError(f"{where}: member {name!r} uses an unsupported compression method")
    if info.flag_bits & 0x1:
        raise ValueError(f"{where}: member {name!r} is marked encrypted (fastnn never encrypts)")
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error, RuntimeError,
            NotImplementedError) as exc:
        # zipfile checks each member's CRC-32 while reading; a flipped byte lands here
        # (or in the inflater, for a compressed member).
        raise ValueError(f"{where}: corrupt model file: cannot read {name!r} ({exc})") from None


def _parse_json(blob: bytes, where: str):
    try:
        return json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: corrupt JSON ({exc})") from None
    except RecursionError:  # [[[[...]]]] nested deeper than the parser's stack
        raise ValueError(f"{where}: corrupt JSON (nested too deeply)") from None


# =========================================================================== models

def _as_path(path, argument="filepath") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{argument} must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(os.fspath(path)).expanduser()
    if str(p) == "" or p.is_dir():
        raise ValueError(f"{argument}: {path!r} is a directory; expected a file path such as 'model.fnn'")
    return p


def _compile_config(model) -> dict | None:
    """The optimizer, loss and metrics ``compile`` was given, serialized; None if not compiled."""
    optimizer = getattr(model, "optimizer", None)
    loss = getattr(model, "loss", None)
    if optimizer is None or loss is None:
        return None
    from fastnn import losses, metrics, optimizers
    config = {
        "optimizer": optimizers.serialize(optimizer),
        "loss": losses.serialize(loss),
        # Each metric keeps the name it was compiled under (History keys survive a reload).
        "metrics": [metrics.serialize(m) for m in getattr(model, "compiled_metrics", None) or []],
        "weighted_metrics": [metrics.serialize(m)
                             for m in getattr(model, "compiled_weighted_metrics", None) or []],
    }
    if getattr(model, "loss_weight", 1.0) != 1.0:  # only then (older files do not have it)
        config["loss_weights"] = model.loss_weight
    return config


def _state_layout(state: dict, prefix: str, tensors: dict) -> dict:
    """JSON layout of an optimizer state dict; its arrays go into ``tensors``."""
    layout = {}
    for key, value in state.items():
        if isinstance(value, (list, tuple)):
            names = []
            for i, arr in enumerate(value):
                if arr is None:
                    names.append(None)
                    continue
                tname = f"{prefix}{key}/{i}"
                tensors[tname] = np.asarray(arr)
                names.append(tname)
            layout[key] = {"tensors": names}
        elif isinstance(value, np.ndarray):
            tname = f"{prefix}{key}"
            tensors[tname] = value
            layout[key] = {"tensor": tname}
        elif value is None or isinstance(value, (bool, int, float, str)):
            layout[key] = {"value": value}
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            layout[key] = {"value": value.item()}
        else:
            raise TypeError(f"cannot save optimizer state {key!r} of type {type(value).__name__}")
    return layout


def _state_from_layout(layout: dict, tensors: dict, where: str) -> dict:
    state = {}
    if not isinstance(layout, dict):
        raise ValueError(f"{where}: optimizer state layout must be an object")
    for key, entry in layout.items():
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"{where}: malformed optimizer state entry {key!r}")
        kind, value = next(iter(entry.items()))
        if kind == "value":
            state[key] = value
        elif kind == "tensor":
            state[key] = _tensor(tensors, value, where)
        elif kind == "tensors" and isinstance(value, list):
            state[key] = [None if t is None else _tensor(tensors, t, where) for t in value]
        else:
            raise ValueError(f"{where}: malformed optimizer state entry {key!r}")
    return state


def _tensor(tensors, name, where):
    if not isinstance(name, str) or name not in tensors:
        raise ValueError(f"{where}: config refers to a missing tensor {name!r}")
    return tensors[name]


def save_model(model, filepath, overwrite=True, include_optimizer=True) -> None:
    """Save the architecture, weights, compile settings and optimizer state of ``model``.

    Parameters
    ----------
    model : fastnn.models.Sequential
    filepath : str or os.PathLike
        The file to write (the suffix is free; ``.fnn`` is customary).
    overwrite : bool, default True
        Replace an existing file. If False and the file exists, ``FileExistsError``.
    include_optimizer : bool, default True
        Also store the optimizer state (slots and iteration count), so that
        training resumes exactly where it stopped.

    Notes
    -----
    The write is atomic: an existing file at ``filepath`` is replaced only once
    the new one is completely on disk. See ``docs/file_format.md`` for the format.
    """
    path = _as_path(filepath)
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if not isinstance(include_optimizer, bool):
        raise TypeError(f"include_optimizer must be True or False, got {include_optimizer!r}")
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists and overwrite=False")
    if not hasattr(model, "get_config") or not hasattr(model, "layers"):
        raise TypeError(f"model must be a fastnn model (Sequential), got {type(model).__name__}")

    weight_tensors, weight_layout = {}, []
    for i, layer in enumerate(model.layers):
        names = []
        for j, w in enumerate(layer.get_weights() if getattr(layer, "built", True) else []):
            name = f"layers/{i}/{j}"
            weight_tensors[name] = np.asarray(w)
            names.append(name)
        entry = {"name": layer.name, "tensors": names}
        generator = _layer_generator(layer)
        if generator is not None:
            entry["rng_state"] = generator_state(generator)
        weight_layout.append(entry)

    config = {
        "model": {"class_name": type(model).__name__, "config": model.get_config()},
        "build_input_shape": (list(model.input_shape[1:])
                              if getattr(model, "built", False) and model.input_shape else None),
        "compile": _compile_config(model),
        "weights": weight_layout,
        "optimizer_state": None,
    }
    members = {}
    optimizer_tensors = {}
    if include_optimizer and config["compile"] is not None:
        # lined up with the weights the file holds, as load_model binds it to them
        state = model.optimizer.state_for(model.trainable_weights)
        config["optimizer_state"] = _state_layout(state, "optimizer/", optimizer_tensors)
    members[CONFIG] = _json_bytes(config)
    members[WEIGHTS] = encode_tensors(weight_tensors)
    if config["optimizer_state"] is not None:
        members[OPTIMIZER] = encode_tensors(optimizer_tensors)
    _write_archive(path, members)


def _layer_generator(layer):
    """The private generator of a layer seeded on its own (Dropout(seed=...)), or None.

    Its position in the random stream is part of the training state: saving it
    makes a resumed run draw the same dropout masks as an uninterrupted one.
    """
    generator = getattr(layer, "_rng", None)
    return generator if is_generator(generator) else None


def _restore_generator(layer, state, where):
    """Move the layer's generator to the saved state. A state of the other kind
    (NumPy's PCG64 in files saved before fastnn had its own generator) gives the
    layer a generator of that kind, so a resumed run still draws the same masks."""
    if _layer_generator(layer) is None:
        raise ValueError(f"{where}: layer {layer.name!r} has a saved random state but no generator")
    try:
        layer._rng = restore_generator(layer._rng, state)
    except (TypeError, ValueError, KeyError, OverflowError, IndexError) as exc:
        raise ValueError(f"{where}: layer {layer.name!r}: invalid random state ({exc})") from None


def _model_classes():
    from fastnn.models.sequential import Sequential
    return {"Sequential": Sequential}


def load_model(filepath, custom_objects=None, compile=True):
    """Load a model saved by :func:`save_model` (``model.save``).

    Parameters
    ----------
    filepath : str or os.PathLike
    custom_objects : dict, optional
        ``{class name: class}`` for classes of your own: layers, losses, metrics,
        optimizers, learning-rate schedules (each is looked up among the
        subclasses of its kind, so one dict serves them all). Only these and
        fastnn's own classes can be instantiated from a file.
    compile : bool, default True
        Compile the model with the saved optimizer (and its state), loss and metrics.

    Returns
    -------
    fastnn.models.Sequential
        With identical weights: its predictions are bit-identical to the saved
        model's, and training continues exactly where it stopped.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is not a fastnn model, is truncated, corrupt or modified (checksum
        mismatch), or was written by a newer fastnn (format version); the message
        names the path.

    Notes
    -----
    Loading does not draw from fastnn's random generator (the fresh weights that
    building the layers creates are replaced by the saved ones), so a seeded
    session continues with the same random numbers as if the model had never
    been saved and loaded.
    """
    path = _as_path(filepath)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path}")
    if custom_objects is not None and not isinstance(custom_objects, dict):
        raise TypeError(f"custom_objects must be a dict or None, got {type(custom_objects).__name__}")
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False, got {compile!r}")
    where = str(path)
    _, members = _read_archive(path)
    if CONFIG not in members or WEIGHTS not in members:
        raise ValueError(f"{where}: not a complete fastnn model file (missing {CONFIG} or {WEIGHTS})")
    config = _parse_json(members[CONFIG], f"{where}:{CONFIG}")
    weights = decode_tensors(members[WEIGHTS], f"{where}:{WEIGHTS}")
    optimizer_tensors = (decode_tensors(members[OPTIMIZER], f"{where}:{OPTIMIZER}")
                         if OPTIMIZER in members else {})

    from fastnn import utils
    generator = utils.rng()
    saved_state = generator.state
    try:
        return _rebuild(config, weights, optimizer_tensors, custom_objects, compile, where)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(where):
            raise
        raise ValueError(f"{where}: invalid model configuration: {exc}") from exc
    finally:
        generator.state = saved_state


def _rebuild(config, weights, optimizer_tensors, custom_objects, compile, where):
    if not isinstance(config, dict):
        raise ValueError(f"{where}: {CONFIG} must be a JSON object")
    model_config = config["model"]
    classes = _model_classes()
    class_name = model_config.get("class_name")
    if class_name not in classes:
        raise ValueError(f"{where}: unknown model class {class_name!r}; expected one of {sorted(classes)}")
    from fastnn.layers.base import weight_budget
    with weight_budget(sum(int(a.size) for a in weights.values())):
        model = classes[class_name].from_config(model_config["config"],
                                                custom_objects=custom_objects)
        shape = config.get("build_input_shape")
        if shape is not None and not model.built:
            model.build(tuple(shape))

    layout = config["weights"]
    if not isinstance(layout, list) or len(layout) != len(model.layers):
        raise ValueError(f"{where}: the weights are laid out for {len(layout)} layers, "
                         f"the model has {len(model.layers)}")
    for layer, entry in zip(model.layers, layout):
        arrays = [_tensor(weights, name, where) for name in entry["tensors"]]
        if arrays:
            layer.set_weights(arrays)
        if "rng_state" in entry:
            _restore_generator(layer, entry["rng_state"], where)

    compile_config = config.get("compile")
    if compile and compile_config is not None:
        from fastnn import losses, optimizers
        optimizer = optimizers.deserialize(compile_config["optimizer"], custom_objects)
        loss = losses.deserialize(compile_config["loss"], custom_objects)
        model.compile(optimizer=optimizer, loss=loss,
                      loss_weights=compile_config.get("loss_weights"),
                      metrics=_metrics_from(compile_config["metrics"], custom_objects),
                      weighted_metrics=_metrics_from(compile_config.get("weighted_metrics", []),
                                                     custom_objects))
        state_layout = config.get("optimizer_state")
        if state_layout is not None:
            optimizer.set_state(_state_from_layout(state_layout, optimizer_tensors, where))
            optimizer.bind(model.trainable_weights)
    return model


def _metrics_from(entries, custom_objects=None):
    if not isinstance(entries, list):
        raise ValueError("compile metrics must be a list")
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            from fastnn import metrics as metrics_module
            out.append(metrics_module.deserialize(entry, custom_objects))
        elif isinstance(entry, str):
            out.append(entry)
        else:
            raise ValueError(f"invalid metric entry {entry!r}")
    return out
