"""fastnn.save / fastnn.load: state dicts and checkpoints, no pickle, atomic."""
from __future__ import annotations

import io
import os
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim


def net():
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))


def train(model, optimizer, steps, seed):
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.normal(size=(5, 3)).astype(np.float32)
        y = rng.integers(0, 2, 5)
        optimizer.zero_grad()
        nn.CrossEntropyLoss()(model(x), y).backward()
        optimizer.step()


def test_state_dict_round_trip(tmp_path):
    fastnn.manual_seed(0)
    model = net()
    path = tmp_path / "net.pt"
    fastnn.save(model.state_dict(), path)
    loaded = fastnn.load(path)
    assert list(loaded) == list(model.state_dict())
    for key, value in model.state_dict().items():
        assert isinstance(loaded[key], fastnn.Tensor)
        np.testing.assert_array_equal(loaded[key].numpy(), value.numpy())
        assert loaded[key].dtype == value.dtype
    other = net()
    other.load_state_dict(loaded)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())


def test_checkpoint_resumes_training_exactly(tmp_path):
    """Model + Adam state + a step count saved mid-run: resuming from the file gives
    the same weights, bit for bit, as never stopping."""
    fastnn.manual_seed(1)
    straight = net()
    opt = optim.Adam(straight.parameters(), lr=0.01, amsgrad=True)
    train(straight, opt, 3, seed=0)
    fastnn.save({"model": straight.state_dict(), "optim": opt.state_dict(), "epoch": 3,
                 "note": "mid-run", "best": float("inf")}, tmp_path / "ck.pt")
    train(straight, opt, 4, seed=1)

    ck = fastnn.load(tmp_path / "ck.pt")
    assert ck["epoch"] == 3 and ck["note"] == "mid-run" and ck["best"] == float("inf")
    resumed = net()
    resumed.load_state_dict(ck["model"])
    opt2 = optim.Adam(resumed.parameters(), lr=0.5)
    opt2.load_state_dict(ck["optim"])
    assert opt2.param_groups[0]["lr"] == 0.01 and opt2.param_groups[0]["betas"] == (0.9, 0.999)
    train(resumed, opt2, 4, seed=1)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_structures_and_types_survive():
    obj = {0: (1, 2.5, None), "s": ["a", True, np.float32(1.5), np.int64(7)],
           (1, "k"): {"nested": np.arange(6, dtype=np.int16).reshape(2, 3)},
           "nan": float("nan"), "empty": np.zeros((0, 4))}
    buf = io.BytesIO()
    fastnn.save(obj, buf)
    buf.seek(0)
    back = fastnn.load(buf)
    assert back[0] == (1, 2.5, None)
    assert back["s"][:2] == ["a", True]
    assert back["s"][2] == np.float32(1.5) and back["s"][2].dtype == np.float32
    assert back["s"][3].dtype == np.int64
    nested = back[(1, "k")]["nested"]
    assert isinstance(nested, np.ndarray) and nested.dtype == np.int16 and nested.shape == (2, 3)
    assert np.isnan(back["nan"]) and back["empty"].shape == (0, 4)


def test_unsupported_objects_are_refused_and_the_old_file_stays(tmp_path):
    path = tmp_path / "keep.pt"
    fastnn.save({"w": np.ones(3)}, path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match=r"obj\['bad'\] of type function"):
        fastnn.save({"w": np.ones(3), "bad": lambda: 0}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.pt"]      # no temporary left


def test_corrupt_foreign_and_model_files_raise_value_error(tmp_path):
    path = tmp_path / "x.pt"
    fastnn.save({"w": np.arange(1000.0)}, path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError):
        fastnn.load(tmp_path / "bad.pt")
    (tmp_path / "junk.pt").write_bytes(os.urandom(200))
    with pytest.raises(ValueError, match="not a file written by fastnn.save"):
        fastnn.load(tmp_path / "junk.pt")
    model = fastnn.Sequential([fastnn.layers.Dense(2, input_shape=(3,))])
    model.save(tmp_path / "m.fnn")
    with pytest.raises(ValueError, match="format 'fastnn', expected 'fastnn-object'"):
        fastnn.load(tmp_path / "m.fnn")
    with zipfile.ZipFile(path) as zf:  # the documented members, nothing else
        assert sorted(zf.namelist()) == ["arrays.tensors", "manifest.json", "object.json"]


def test_load_arguments():
    buf = io.BytesIO()
    fastnn.save([1, 2], buf)
    buf.seek(0)
    assert fastnn.load(buf, map_location="cpu", weights_only=True) == [1, 2]
    buf.seek(0)
    with pytest.raises(ValueError, match="map_location"):
        fastnn.load(buf, map_location="cuda:0")
    with pytest.raises(TypeError, match="path or a binary file object"):
        fastnn.load(42)
    with pytest.raises(TypeError, match="unexpected keyword"):
        fastnn.load(buf, pickle_module=None)
