"""fastnn.models.saving: the tensor files, the archive, and model round trips.

The container tests (tensor encoding, archive checks, atomic writes) do not need
a model; the model tests check bit-identical predictions and resumable training.
"""
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastnn.models import saving
from fastnn.models.saving import decode_tensors, encode_tensors

FAST = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.function_scoped_fixture])


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# =========================================================================== tensor files

DTYPES = ["float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool"]


@FAST
@given(arrays=st.lists(st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(np.dtype(dt), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5))),
    max_size=5))
def test_property_tensor_round_trip_is_bit_identical(arrays):
    tensors = {f"t{i}": a for i, a in enumerate(arrays)}
    out = decode_tensors(encode_tensors(tensors))
    assert list(out) == list(tensors)
    for name, a in tensors.items():
        assert _same_bits(out[name], a), name  # NaN payloads and -0.0 included
        assert out[name].flags.writeable and out[name].dtype.isnative


def test_layout_is_little_endian_with_json_header():
    blob = encode_tensors({"w": np.array([1.0, -2.0], dtype=">f4")}, {"note": "x"})
    (n,) = struct.unpack("<Q", blob[:8])
    assert n % 8 == 0
    header = json.loads(blob[8: 8 + n])
    assert header["w"]["dtype"] == "F32" and header["w"]["shape"] == [2]
    assert header["w"]["data_offsets"] == [0, 8]
    assert header["__metadata__"] == {"note": "x"}
    assert blob[8 + n:] == np.array([1.0, -2.0], dtype="<f4").tobytes()
    out = decode_tensors(blob)
    assert out["w"].dtype == np.float32 and out["w"].tolist() == [1.0, -2.0]


def test_encode_refuses_what_it_cannot_store():
    with pytest.raises(TypeError, match="dtype"):
        encode_tensors({"o": np.array(["a"], dtype=object)})
    with pytest.raises(TypeError, match="dtype"):
        encode_tensors({"c": np.array([1j])})
    with pytest.raises(ValueError, match="names"):
        encode_tensors({"__metadata__": np.zeros(1)})
    with pytest.raises(TypeError, match="metadata"):
        encode_tensors({"a": np.zeros(1)}, {"k": 1})


def _sample_blob():
    return encode_tensors({"a": np.arange(6, dtype=np.float64).reshape(2, 3),
                           "b": np.arange(4, dtype=np.float32)})


def _edit_header(blob, edit):
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8: 8 + n])
    edit(header)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + blob[8 + n:]


def test_every_truncation_is_detected():
    blob = _sample_blob()
    for cut in range(0, len(blob), 7):
        with pytest.raises(ValueError, match="where-it-is"):
            decode_tensors(blob[:cut], "where-it-is")


def test_flipped_data_byte_names_the_tensor():
    blob = bytearray(_sample_blob())
    blob[-3] ^= 0x01  # inside tensor "b"
    with pytest.raises(ValueError, match="checksum mismatch for tensor 'b'"):
        decode_tensors(bytes(blob))


@pytest.mark.parametrize("edit, word", [
    (lambda h: h["a"].update(dtype="F128"), "unknown dtype"),
    (lambda h: h["a"].update(shape=[2, -3]), "invalid shape"),
    (lambda h: h["a"].update(shape=[3, 3]), "do not match"),
    (lambda h: h["b"].update(data_offsets=[40, 56]), "non-contiguous"),
    (lambda h: h["a"].update(data_offsets=[0, 48], shape=[6]) or h.pop("b"), "unexpected bytes"),
    (lambda h: h["a"].pop("sha256"), "malformed"),
    (lambda h: h.update(__metadata__={"k": 3}), "__metadata__"),
])
def test_malformed_headers_are_refused(edit, word):
    with pytest.raises(ValueError, match=word):
        decode_tensors(_edit_header(_sample_blob(), edit))


def test_header_length_and_json_garbage():
    with pytest.raises(ValueError, match="header"):
        decode_tensors(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ValueError, match="corrupt tensor header"):
        decode_tensors(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ValueError, match="JSON object"):
        decode_tensors(struct.pack("<Q", 2) + b"[]")


# =========================================================================== the archive

MEMBERS = {saving.CONFIG: b'{"hello": 1}',
           saving.WEIGHTS: encode_tensors({"w": np.arange(1000, dtype=np.float32)})}


def _write(path, members=MEMBERS):
    saving._write_archive(Path(path), dict(members))


def test_archive_round_trip_and_manifest(tmp_path):
    path = tmp_path / "m.fnn"
    _write(path)
    manifest, members = saving._read_archive(path)
    assert members == MEMBERS
    assert manifest["format"] == "fastnn" and manifest["format_version"] == 1
    import fastnn
    assert manifest["library_version"] == fastnn.__version__
    assert manifest["created_by"].startswith(f"fastnn {fastnn.__version__}")
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist()[0] == "manifest.json"
        assert zf.getinfo(saving.WEIGHTS).compress_type == zipfile.ZIP_STORED


def test_archive_bytes_are_reproducible(tmp_path):
    _write(tmp_path / "a")
    _write(tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_truncated_archive_names_the_path(tmp_path):
    path = tmp_path / "m.fnn"
    _write(path)
    blob = path.read_bytes()
    for cut in (0, 10, len(blob) // 3, len(blob) // 2, len(blob) - 30, len(blob) - 1):
        bad = tmp_path / f"cut{cut}.fnn"
        bad.write_bytes(blob[:cut])
        with pytest.raises(ValueError, match=f"cut{cut}.fnn"):
            saving._read_archive(bad)


def test_flipped_byte_in_stored_data_is_detected(tmp_path):
    path = tmp_path / "m.fnn"
    _write(path)
    blob = bytearray(path.read_bytes())
    start = blob.find(np.arange(1000, dtype=np.float32)[500:504].tobytes())
    blob[start] ^= 0x40
    path.write_bytes(bytes(blob))
    with pytest.raises(ValueError, match="m.fnn.*corrupt"):
        saving._read_archive(path)


def _rezip(src, dst, replace=None, add=None, manifest_edit=None):
    """Copy an archive, replacing member contents (with valid zip CRCs)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "manifest.json" and manifest_edit:
                m = json.loads(data)
                manifest_edit(m)
                data = json.dumps(m).encode()
            if replace and name in replace:
                data = replace[name]
            zout.writestr(name, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)


def test_tampered_member_with_valid_crc_fails_the_sha256(tmp_path):
    path = tmp_path / "m.fnn"
    _write(path)
    _rezip(path, tmp_path / "t.fnn", replace={saving.CONFIG: b'{"hello": 2}'})
    with pytest.raises(ValueError, match="t.fnn.*checksum mismatch for 'config.json'"):
        saving._read_archive(tmp_path / "t.fnn")


@pytest.mark.parametrize("edit, word", [
    (lambda m: m.update(format="keras"), "not a fastnn model file"),
    (lambda m: m.update(format_version=2), "version 2.*upgrade"),
    (lambda m: m.update(format_version="1"), "format_version"),
    (lambda m: m.update(format_version=0), "format_version"),
    (lambda m: m.pop("members"), "member list"),
    (lambda m: m["members"].pop(saving.CONFIG), "unexpected members"),
    (lambda m: m["members"].update({"extra.json": {"size": 1, "sha256": "0"}}), "missing"),
])
def test_manifest_checks(tmp_path, edit, word):
    path = tmp_path / "m.fnn"
    _write(path)
    _rezip(path, tmp_path / "e.fnn", manifest_edit=edit)
    with pytest.raises(ValueError, match=word) as info:
        saving._read_archive(tmp_path / "e.fnn")
    assert "e.fnn" in str(info.value)


def test_not_a_model_file(tmp_path):
    (tmp_path / "text.fnn").write_text("hello")
    with pytest.raises(ValueError, match="text.fnn.*not a fastnn model file"):
        saving._read_archive(tmp_path / "text.fnn")
    (tmp_path / "empty.fnn").write_bytes(b"")
    with pytest.raises(ValueError, match="not a fastnn model file"):
        saving._read_archive(tmp_path / "empty.fnn")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("something.txt", "x")
    with pytest.raises(ValueError, match="no manifest.json"):
        saving._read_archive(tmp_path / "other.zip")


def test_compressed_tensor_member_is_refused(tmp_path):
    # Tensor members must be stored: a deflated one could expand without bound.
    path = tmp_path / "m.fnn"
    _write(path)
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp_path / "z.fnn", "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="compression"):
        saving._read_archive(tmp_path / "z.fnn")


# --------------------------------------------------------------------------- atomic writes

def _leftovers(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".tmp"))


def test_failure_while_writing_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.fnn"
    _write(path)
    before = path.read_bytes()
    real = zipfile.ZipFile.writestr
    calls = []

    def failing_writestr(self, info, data, *args, **kwargs):
        calls.append(info)
        if len(calls) == 2:  # the manifest is in, the next member fails half-way
            raise OSError("No space left on device")
        return real(self, info, data, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    new = dict(MEMBERS, **{saving.CONFIG: b'{"hello": 99}'})
    with pytest.raises(OSError, match="No space"):
        _write(path, new)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_failure_at_fsync_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.fnn"
    _write(path)
    before = path.read_bytes()

    def failing_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(saving.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="I/O error"):
        _write(path, dict(MEMBERS, **{saving.CONFIG: b"{}"}))
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_new_file_gets_normal_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        _write(tmp_path / "m.fnn")
    finally:
        os.umask(old)
    assert (tmp_path / "m.fnn").stat().st_mode & 0o777 == 0o644


# =========================================================================== models

import fastnn  # noqa: E402
from fastnn import config as fconfig  # noqa: E402
from fastnn import utils  # noqa: E402
from fastnn.models import load_model  # noqa: E402


@pytest.fixture
def floatx():
    """Set the float type for one test and restore it afterwards."""
    old = fconfig.floatx()
    yield fconfig.set_floatx
    fconfig.set_floatx(old)


def _data(n=60, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = (np.abs(x[:, 0]) * 2).astype(np.int64) % k
    return x, y


def _model(d=6, k=3, optimizer="adam", metrics=None, dropout=False):
    layers = [fastnn.layers.Dense(16, activation="relu", input_shape=(d,))]
    if dropout:
        layers.append(fastnn.layers.Dropout(0.25, seed=3))
    layers += [fastnn.layers.Dense(8, activation="tanh"), fastnn.layers.Dense(k, activation="softmax")]
    model = fastnn.Sequential(layers)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=metrics)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_predictions_are_bit_identical(tmp_path, floatx, dtype):
    floatx(dtype)
    utils.set_random_seed(0)
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "model.fnn"
    model.save(path)
    restored = load_model(path)
    assert restored.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), restored.get_weights()):
        assert _same_bits(a, b)
    assert restored.get_weights()[0].dtype == np.dtype(dtype)
    assert _same_bits(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_dropout_noise_shape_and_seed_round_trip(tmp_path):
    utils.set_random_seed(0)
    x, y = _data()
    model = fastnn.Sequential([fastnn.layers.Dense(8, activation="relu", input_shape=(6,)),
                               fastnn.layers.Dropout(0.5, noise_shape=(None, 1), seed=5),
                               fastnn.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "model.fnn"
    model.save(path)
    restored = load_model(path)
    dropout = restored.layers[1]
    assert (dropout.rate, dropout.noise_shape, dropout.seed) == (0.5, (None, 1), 5)
    assert restored.get_config() == model.get_config()
    # The saved generator position: the next masks are the ones the original draws.
    h = np.ones((4, 8))
    np.testing.assert_array_equal(dropout.forward(h, training=True),
                                  model.layers[1].forward(h, training=True))


def test_compile_settings_and_optimizer_state_are_restored(tmp_path):
    utils.set_random_seed(1)
    x, y = _data()
    opt = fastnn.optimizers.Adam(learning_rate=fastnn.optimizers.schedules.ExponentialDecay(
        0.01, decay_steps=3, decay_rate=0.5), amsgrad=True, clipnorm=1.0)
    model = _model(optimizer=opt)
    model.fit(x, y, epochs=1, batch_size=10, verbose=0)
    model.save(tmp_path / "m.fnn")
    restored = load_model(tmp_path / "m.fnn")
    assert type(restored.optimizer) is fastnn.optimizers.Adam
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert restored.optimizer.iterations == model.optimizer.iterations == 6
    assert restored.optimizer.current_learning_rate() == model.optimizer.current_learning_rate()
    saved_state, loaded_state = model.optimizer.get_state(), restored.optimizer.get_state()
    assert sorted(saved_state) == sorted(loaded_state) == ["iterations", "momentum", "velocity",
                                                            "velocity_hat"]
    for key in ("momentum", "velocity", "velocity_hat"):
        for a, b in zip(saved_state[key], loaded_state[key]):
            assert _same_bits(a, b)
    assert type(restored.loss) is type(model.loss)
    assert restored.loss.get_config() == model.loss.get_config()


def test_metrics_are_restored(tmp_path):
    utils.set_random_seed(9)
    x, y = _data()
    model = _model(metrics=["accuracy", "sparse_categorical_accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn")
    restored = load_model(tmp_path / "m.fnn")
    assert [m.name for m in restored.compiled_metrics] == ["accuracy", "sparse_categorical_accuracy"]
    assert ([type(m) for m in restored.compiled_metrics]
            == [type(m) for m in model.compiled_metrics])
    assert (restored.evaluate(x, y, verbose=0, return_dict=True)
            == model.evaluate(x, y, verbose=0, return_dict=True))


def test_training_resumes_bit_identically(tmp_path):
    # Same seed: fit 3 epochs straight == fit 2, save, load, fit 1 more.
    x, y = _data(n=70)
    utils.set_random_seed(7)
    straight = _model(optimizer="rmsprop", dropout=True)
    history = straight.fit(x, y, epochs=3, batch_size=16, verbose=0)

    utils.set_random_seed(7)
    first = _model(optimizer="rmsprop", dropout=True)
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "ckpt.fnn")
    del first
    resumed = load_model(tmp_path / "ckpt.fnn")
    last = resumed.fit(x, y, epochs=1, batch_size=16, verbose=0)

    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        assert _same_bits(a, b)
    assert last.history["loss"][0] == history.history["loss"][2]
    assert resumed.optimizer.iterations == straight.optimizer.iterations == 15


def test_loading_does_not_draw_random_numbers(tmp_path):
    utils.set_random_seed(3)
    _model().save(tmp_path / "m.fnn")
    utils.set_random_seed(11)
    expected = utils.rng().random(4)
    utils.set_random_seed(11)
    load_model(tmp_path / "m.fnn")
    np.testing.assert_array_equal(utils.rng().random(4), expected)


def test_without_optimizer_state_and_without_compiling(tmp_path):
    utils.set_random_seed(2)
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.fnn", include_optimizer=False)
    with zipfile.ZipFile(tmp_path / "m.fnn") as zf:
        assert saving.OPTIMIZER not in zf.namelist()
    restored = load_model(tmp_path / "m.fnn")
    assert restored.optimizer.iterations == 0
    assert _same_bits(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    plain = load_model(tmp_path / "m.fnn", compile=False)
    assert plain.optimizer is None and plain.loss is None
    assert _same_bits(plain.predict(x, verbose=0), model.predict(x, verbose=0))


def test_uncompiled_and_unbuilt_models(tmp_path):
    utils.set_random_seed(4)
    built = fastnn.Sequential([fastnn.layers.Dense(5, input_shape=(3,)), fastnn.layers.Dense(2)])
    built.save(tmp_path / "built.fnn")
    restored = load_model(tmp_path / "built.fnn")
    x = np.random.default_rng(0).standard_normal((4, 3))
    assert restored.optimizer is None
    assert _same_bits(restored.predict(x, verbose=0), built.predict(x, verbose=0))

    unbuilt = fastnn.Sequential([fastnn.layers.Dense(5), fastnn.layers.Dense(2)])
    unbuilt.save(tmp_path / "unbuilt.fnn")
    again = load_model(tmp_path / "unbuilt.fnn")
    assert not again.built and len(again.layers) == 2
    assert again.get_config() == unbuilt.get_config()


def test_file_is_readable_with_the_documented_recipe(tmp_path):
    # docs/file_format.md: zip + JSON + the tensor layout, no fastnn code needed.
    utils.set_random_seed(5)
    model = _model()
    model.save(tmp_path / "m.fnn")
    with zipfile.ZipFile(tmp_path / "m.fnn") as zf:
        manifest = json.loads(zf.read("manifest.json"))
        cfg = json.loads(zf.read("config.json"))
        blob = zf.read("weights.tensors")
    assert manifest["format"] == "fastnn" and manifest["format_version"] == 1
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8: 8 + n])
    data = blob[8 + n:]
    names = [t for entry in cfg["weights"] for t in entry["tensors"]]
    arrays = [np.frombuffer(data[header[t]["data_offsets"][0]: header[t]["data_offsets"][1]],
                            dtype="<f4").reshape(header[t]["shape"]) for t in names]
    for a, b in zip(arrays, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert cfg["compile"]["optimizer"]["class_name"] == "Adam"
    assert cfg["optimizer_state"]["iterations"] == {"value": 0}


def _resave_config(src, dst, edit):
    """Rewrite config.json and fix the manifest checksum: a careful forger."""
    import hashlib
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    cfg = json.loads(members["config.json"])
    edit(cfg)
    members["config.json"] = json.dumps(cfg).encode()
    manifest = json.loads(members["manifest.json"])
    manifest["members"]["config.json"] = {"size": len(members["config.json"]),
                                          "sha256": hashlib.sha256(members["config.json"]).hexdigest()}
    members["manifest.json"] = json.dumps(manifest).encode()
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("edit, word", [
    (lambda c: c["model"]["config"]["layers"][1].update(class_name="os.system"), "unknown layer class"),
    (lambda c: c["model"].update(class_name="subprocess.Popen"), "unknown model class"),
    (lambda c: c["compile"]["optimizer"].update(class_name="builtins.eval"), "optimizer"),
    (lambda c: c["compile"]["loss"].update(class_name="posix.system"), "loss"),
    (lambda c: c["weights"].pop(), "layers"),
    (lambda c: c["weights"][0]["tensors"].reverse(), "shape"),
    (lambda c: c["weights"][0]["tensors"].append("nope"), "missing tensor|expects|weights"),
    (lambda c: c.pop("model"), "invalid model configuration"),
    # sizes the file's weights cannot back: refused before building allocates them
    (lambda c: c["model"]["config"]["layers"][1]["config"].update(units=10 ** 12),
     "more than the file's weights hold"),
    # a step count beyond the C long the compiled update counts in
    (lambda c: c["optimizer_state"].update(iterations={"value": 10 ** 30}), "iterations"),
])
def test_forged_configs_are_refused_naming_the_path(tmp_path, edit, word):
    utils.set_random_seed(6)
    _model().save(tmp_path / "m.fnn")
    _resave_config(tmp_path / "m.fnn", tmp_path / "forged.fnn", edit)
    with pytest.raises(ValueError, match=word) as info:
        load_model(tmp_path / "forged.fnn")
    assert "forged.fnn" in str(info.value)


def test_every_flipped_bit_is_a_clear_error_or_a_clean_load(tmp_path):
    # A bit flipped in a compressed member surfaced as zlib.error; a config nested
    # thousands deep as RecursionError. Loading raises ValueError or loads.
    utils.set_random_seed(6)
    _model(d=3, k=2).save(tmp_path / "m.fnn")
    raw = (tmp_path / "m.fnn").read_bytes()
    odd = []
    for offset in range(len(raw)):
        for bit in (0, 5):
            data = bytearray(raw)
            data[offset] ^= 1 << bit
            (tmp_path / "c.fnn").write_bytes(bytes(data))
            try:
                load_model(tmp_path / "c.fnn")
            except ValueError:
                pass
            except Exception as exc:  # noqa: BLE001 - the point of the test
                odd.append((offset, bit, type(exc).__name__))
    assert odd == []
    _, members = saving._read_archive(tmp_path / "m.fnn")
    members["config.json"] = b"[" * 100_000 + b"]" * 100_000
    saving._write_archive(tmp_path / "deep.fnn", members)
    with pytest.raises(ValueError, match="deep.fnn.*nested too deeply"):
        load_model(tmp_path / "deep.fnn")


def test_a_learning_rate_annealed_to_zero_saves_and_loads(tmp_path):
    # The setter took 0 (as LearningRateScheduler sets it) but the constructor that
    # loading calls refused it: the checkpoint could not be read back.
    utils.set_random_seed(6)
    model = _model()
    model.optimizer.learning_rate = 0.0
    model.save(tmp_path / "m.fnn")
    assert load_model(tmp_path / "m.fnn").optimizer.learning_rate == 0.0


def test_failed_save_leaves_the_previous_model(tmp_path, monkeypatch):
    utils.set_random_seed(8)
    x, y = _data()
    model = _model()
    path = tmp_path / "m.fnn"
    model.save(path)
    before = path.read_bytes()
    model.fit(x, y, epochs=1, verbose=0)
    calls = []
    real = saving.encode_tensors

    def failing(tensors, metadata=None):
        calls.append(1)
        if len(calls) == 2:  # weights encoded, the optimizer state fails
            raise MemoryError("out of memory")
        return real(tensors, metadata)

    monkeypatch.setattr(saving, "encode_tensors", failing)
    with pytest.raises(MemoryError):
        model.save(path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    assert load_model(path).optimizer.iterations == 0


def test_bad_arguments_and_missing_files(tmp_path):
    model = _model()
    with pytest.raises(TypeError, match="filepath"):
        model.save(3)
    with pytest.raises(ValueError, match="directory"):
        model.save(tmp_path)
    with pytest.raises(TypeError, match="overwrite"):
        model.save(tmp_path / "m.fnn", overwrite="yes")
    model.save(tmp_path / "m.fnn")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.fnn", overwrite=False)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.fnn")
    with pytest.raises(TypeError, match="custom_objects"):
        load_model(tmp_path / "m.fnn", custom_objects=[1])
    with pytest.raises(TypeError, match="compile"):
        load_model(tmp_path / "m.fnn", compile=1)
    with pytest.raises(TypeError, match="model"):
        saving.save_model(object(), tmp_path / "x.fnn")


def test_load_model_refuses_truncated_and_future_files(tmp_path):
    utils.set_random_seed(10)
    _model().save(tmp_path / "m.fnn")
    blob = (tmp_path / "m.fnn").read_bytes()
    (tmp_path / "cut.fnn").write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(ValueError, match="cut.fnn"):
        load_model(tmp_path / "cut.fnn")
    _rezip(tmp_path / "m.fnn", tmp_path / "future.fnn",
           manifest_edit=lambda m: m.update(format_version=saving.FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match="future.fnn.*version 2.*upgrade fastnn"):
        load_model(tmp_path / "future.fnn")


# --------------------------------------------------------------------------- classes of the user's

class _HalfMSE(fastnn.losses.MeanSquaredError):
    """Half the mean squared error: a loss class of the user's own."""

    def value(self, y_true, y_pred, sample_weight=None):
        return 0.5 * super().value(y_true, y_pred, sample_weight)

    def forward_backward(self, y_true, y_pred, sample_weight=None, *, validate=True):
        value, grad = super().forward_backward(y_true, y_pred, sample_weight, validate=validate)
        return 0.5 * value, 0.5 * grad


class _Count(fastnn.metrics.Metric):
    """Counts the samples seen: a metric class of the user's own."""

    def reset_state(self):
        self.n = 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.n += len(y_true)

    def result(self):
        return float(self.n)


def _regression_model(loss, metrics):
    model = fastnn.Sequential([fastnn.layers.Dense(2, input_shape=(6,))])
    model.compile(optimizer="sgd", loss=loss, metrics=metrics)
    return model


def test_custom_loss_and_metric_load_through_custom_objects(tmp_path):
    utils.set_random_seed(11)
    x, _ = _data()
    y = x[:, :2] * 0.5
    model = _regression_model(_HalfMSE(), [_Count(name="count"), fastnn.metrics.mean_absolute_error])
    model.fit(x, y, epochs=1, batch_size=20, verbose=0)
    path = tmp_path / "m.fnn"
    model.save(path)
    with pytest.raises(ValueError, match="unknown loss class '_HalfMSE'.*custom_objects"):
        load_model(path)
    # one dict for every kind: each looks only at the subclasses of its own base class
    restored = load_model(path, custom_objects={"_HalfMSE": _HalfMSE, "_Count": _Count})
    assert type(restored.loss) is _HalfMSE
    assert [type(m) for m in restored.compiled_metrics] == [_Count, fastnn.metrics.MeanAbsoluteError]
    assert [m.name for m in restored.compiled_metrics] == ["count", "mean_absolute_error"]
    want = model.evaluate(x, y, verbose=0, return_dict=True)
    assert restored.evaluate(x, y, verbose=0, return_dict=True) == want
    assert want["loss"] == pytest.approx(0.5 * np.mean((model.predict(x, verbose=0) - y) ** 2))


def test_a_metric_function_of_the_users_fails_at_save_time(tmp_path):
    def abs_diff(y_true, y_pred):
        return np.abs(y_true - y_pred)

    x, _ = _data()
    model = _regression_model("mse", [abs_diff])
    model.fit(x, x[:, :2], epochs=1, verbose=0)
    with pytest.raises(TypeError, match="'abs_diff'.*custom_objects"):
        model.save(tmp_path / "m.fnn")
    assert not (tmp_path / "m.fnn").exists()


def test_custom_initializer_regularizer_and_constraint_load_through_custom_objects(tmp_path):
    """A Dense whose initializer, regularizer and constraint are the user's own
    classes loads when they are passed in custom_objects (and only then)."""
    import fastnn
    from fastnn import constraints, initializers, regularizers

    class HalfOnes(initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return np.full(shape, 0.5, dtype=dtype or "float32")

    class TinyL2(regularizers.Regularizer):
        def __call__(self, w):
            return 1e-4 * float(np.sum(w * w))

        def add_gradient(self, w, grad):
            grad += 2e-4 * w

    class Clip1(constraints.Constraint):
        def __call__(self, w):
            return np.clip(w, -1.0, 1.0)

    model = fastnn.Sequential([fastnn.layers.Dense(
        3, input_shape=(4,), kernel_initializer=HalfOnes(),
        kernel_regularizer=TinyL2(), kernel_constraint=Clip1())])
    path = tmp_path / "custom.fnn"
    model.save(path)
    with pytest.raises(ValueError):
        fastnn.models.load_model(path)
    custom = {"HalfOnes": HalfOnes, "TinyL2": TinyL2, "Clip1": Clip1}
    loaded = fastnn.models.load_model(path, custom_objects=custom)
    dense = loaded.layers[0]
    assert isinstance(dense.kernel_initializer, HalfOnes)
    assert isinstance(dense.kernel_regularizer, TinyL2)
    assert isinstance(dense.kernel_constraint, Clip1)
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])


def test_label_smoothing_of_the_loss_is_saved(tmp_path):
    utils.set_random_seed(2)
    x, y = _data()
    model = fastnn.Sequential([fastnn.layers.Dense(3, activation="softmax", input_shape=(6,))])
    model.compile(optimizer="sgd",
                  loss=fastnn.losses.CategoricalCrossentropy(label_smoothing=0.25))
    onehot = np.eye(3)[y]
    model.fit(x, onehot, epochs=1, batch_size=20, verbose=0)
    model.save(tmp_path / "m.fnn")
    restored = load_model(tmp_path / "m.fnn")
    assert type(restored.loss) is fastnn.losses.CategoricalCrossentropy
    assert restored.loss.label_smoothing == 0.25
    # the restored model evaluates the smoothed loss, not the plain one
    assert restored.evaluate(x, onehot, verbose=0) == model.evaluate(x, onehot, verbose=0)
    p = model.predict(x, verbose=0).astype(np.float64)
    smoothed = onehot * 0.75 + 0.25 / 3
    assert restored.evaluate(x, onehot, verbose=0) == pytest.approx(
        np.mean(-np.sum(smoothed * np.log(p), axis=1)), rel=1e-5)


def test_weighted_metrics_survive_save_and_load(tmp_path):
    import fastnn
    from fastnn import layers
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3))
    y = rng.integers(0, 2, 40)
    w = rng.random(40)
    model = fastnn.Sequential([layers.Dense(2, activation="softmax", input_shape=(3,))])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  weighted_metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "m.fastnn"
    model.save(path)
    loaded = fastnn.models.load_model(path)
    assert [m.name for m in loaded.compiled_weighted_metrics] == ["accuracy"]
    got = loaded.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    want = model.evaluate(x, y, sample_weight=w, verbose=0, return_dict=True)
    assert set(got) == {"loss", "accuracy", "weighted_accuracy"}
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12)


def _with_dropout_rng_state(path, state):
    """Rewrite a saved model's Dropout generator state (layer 1), as an older or a
    tampered file would hold it."""
    _, members = saving._read_archive(path)
    config = json.loads(members[saving.CONFIG])
    config["weights"][1]["rng_state"] = state
    members[saving.CONFIG] = json.dumps(config).encode()
    saving._write_archive(Path(path), members)


def test_a_file_with_numpys_pcg64_dropout_state_still_loads(tmp_path):
    # Files written before fastnn had its own generator hold NumPy's PCG64 state.
    utils.set_random_seed(0)
    model = _model(dropout=True)
    path = tmp_path / "old.fnn"
    model.save(path)
    numpy_generator = np.random.default_rng(11)
    numpy_generator.random(5)
    _with_dropout_rng_state(path, numpy_generator.bit_generator.state)
    dropout = load_model(path).layers[1]
    assert isinstance(dropout._rng, np.random.Generator)
    h = np.ones((4, 16))
    np.testing.assert_array_equal(dropout.forward(h, training=True),
                                  (numpy_generator.random((4, 16)) >= 0.25) / 0.75)


@pytest.mark.parametrize("state", [
    {"bit_generator": "PCG64", "state": {"state": 2**200, "inc": 1}, "has_uint32": 0, "uinteger": 0},
    {"bit_generator": "MT19937", "state": {"key": [1] * 624, "pos": 100_000_000}},
    {"bit_generator": "Philox4x64-10", "key": [1, 2], "position": -1},
    "PCG64",
])
def test_a_tampered_dropout_state_is_a_clear_error(tmp_path, state):
    utils.set_random_seed(0)
    path = tmp_path / "bad.fnn"
    _model(dropout=True).save(path)
    _with_dropout_rng_state(path, state)
    with pytest.raises(ValueError, match="random state"):
        load_model(path)


def test_a_frozen_model_stays_frozen_through_its_config_and_file(tmp_path):
    model = fastnn.Sequential([fastnn.layers.Input(shape=(3,)), fastnn.layers.Dense(2)])
    model.trainable = False
    model.compile("sgd", "mse")
    model.save(tmp_path / "frozen.fnn")
    for copy in (fastnn.Sequential.from_config(model.get_config()),
                 fastnn.models.load_model(tmp_path / "frozen.fnn")):
        assert copy.trainable is False and copy.trainable_weights == []
    assert "trainable" not in fastnn.Sequential([fastnn.layers.Dense(2)]).get_config()


def test_models_pickled_before_activity_regularizers_and_loss_weights_still_save(tmp_path):
    import pickle
    model = fastnn.Sequential([fastnn.layers.Input(shape=(3,)), fastnn.layers.Dense(2)])
    model.compile("sgd", "mse")
    dense = model.layers[0]
    for name in ("activity_regularizer", "_activity_penalty"):   # as objects of the old classes
        dense.__dict__.pop(name, None)
    model.__dict__.pop("loss_weight", None)
    old = pickle.loads(pickle.dumps(model))
    assert old.get_compile_config()["loss"] is not None
    assert old.layers[0].get_config()["activity_regularizer"] is None
    old.save(tmp_path / "old.fnn")
    fastnn.models.load_model(tmp_path / "old.fnn")
