"""fastnn.datasets: the embedded digits set and the MNIST IDX loader.

No test touches the network: an autouse fixture replaces the downloader's fetch
function with one that fails, and the download tests install their own fake.
The real MNIST files are read from ../shared/data/mnist (relative to the project
root) when present; those tests skip otherwise.
"""
import gzip
import hashlib
import os
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from fastnn.datasets import digits, mnist

SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
NAMES = list(mnist.FILES)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(url, timeout=None):
        raise AssertionError(f"test tried to use the network: {url}")
    monkeypatch.setattr(mnist, "_fetch", refuse)


# --------------------------------------------------------------------------- digits

def test_digits_shapes_types_ranges():
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    assert x_train.shape == (1442, 64) and x_test.shape == (355, 64)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    # Scaled from integers 0..16: every value is a multiple of 1/16.
    np.testing.assert_array_equal(x_train * 16, np.round(x_train * 16))
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))


def test_digits_first_sample_matches_the_file():
    # First CSV row: 0,0,5,13,9,1,0,0, 0,0,13,15,10,15,5,0, ... label 0. It is the
    # first sample of class 0, so it is in the training part (every 5th is test).
    (x_train, y_train), _ = digits.load_data()
    np.testing.assert_array_equal(x_train[0, :16] * 16,
                                  [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0])
    assert y_train[0] == 0


def test_digits_split_is_fixed_stratified_and_disjoint():
    x, y = digits.load()
    assert x.shape == (1797, 64)
    counts = np.bincount(y)
    np.testing.assert_array_equal(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    (x_train, y_train), (x_test, y_test) = digits.load_data()
    np.testing.assert_array_equal(np.bincount(y_test), counts // 5)
    np.testing.assert_array_equal(np.bincount(y_train), counts - counts // 5)
    # The test samples are the 5th, 10th, ... members of each class in file order.
    members0 = np.nonzero(y == 0)[0]
    np.testing.assert_array_equal(x_test[y_test == 0], x[members0[4::5]])
    (x_train2, _), (x_test2, _) = digits.load_data()
    np.testing.assert_array_equal(x_test, x_test2)


def test_digits_returns_fresh_arrays():
    (x_train, y_train), _ = digits.load_data()
    x_train[:] = -1
    y_train[:] = 99
    (x_again, y_again), _ = digits.load_data()
    assert x_again.min() == 0.0 and y_again.max() == 9


# --------------------------------------------------------------------------- IDX files we write

def _idx_bytes(arr: np.ndarray, type_code=0x08) -> bytes:
    header = bytes([0, 0, type_code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _small_set(rng, n_train=5, n_test=3):
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def _write_set(directory: Path, arrays, compress=True):
    directory.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        data = _idx_bytes(arr)
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_reads_small_idx_files(tmp_path, compress):
    arrays = _small_set(np.random.default_rng(0))
    _write_set(tmp_path, arrays, compress)
    (x_train, y_train), (x_test, y_test) = mnist.load_data(tmp_path, download=False)
    np.testing.assert_array_equal(x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(x_test, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    assert x_train.dtype == np.uint8 and x_train.flags.writeable


@pytest.mark.parametrize("dtype, code", [(np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D),
                                         (np.float64, 0x0E), (np.int8, 0x09)])
def test_read_idx_other_element_types_big_endian(tmp_path, dtype, code):
    arr = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    path = tmp_path / "x.idx"
    path.write_bytes(_idx_bytes(arr, code))
    out = mnist.read_idx(path)
    np.testing.assert_array_equal(out, arr)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative


def test_read_idx_known_header_bytes(tmp_path):
    # Hand-written: magic 00 00 08 01, one dimension of size 3, then 3 bytes.
    path = tmp_path / "labels"
    path.write_bytes(bytes.fromhex("00000801 00000003 070201"))
    np.testing.assert_array_equal(mnist.read_idx(path), [7, 2, 1])


@pytest.mark.parametrize("data, word", [
    (b"\x00\x00", "too short"),
    (bytes.fromhex("00000F01 00000003 070201"), "magic"),
    (bytes.fromhex("01000801 00000003 070201"), "magic"),
    (bytes.fromhex("00000800"), "0 dimensions"),
    (bytes.fromhex("00000803 0000000A 0000001C"), "truncated IDX header"),
    (bytes.fromhex("00000801 00000004 070201"), "truncated"),
    (bytes.fromhex("00000801 00000002 070201"), "trailing"),
    # headers promising more than the file holds are refused before allocating (a
    # 20000000 x 28 x 28 header reserved 15.7 GB first; 8 bytes asked for 32 GiB)
    (bytes.fromhex("00000803 01312D00 0000001C 0000001C 00"), "truncated"),
    (bytes.fromhex("00000D04 FFFFFFFF FFFFFFFF FFFFFFFF FFFFFFFF"), "truncated"),
    (bytes.fromhex("000008FF") + b"\x00" * 1020, "255 dimensions"),
])
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, data, word):
    path = tmp_path / "bad-file"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=word) as info:
        mnist.read_idx(path)
    assert "bad-file" in str(info.value)


def test_a_gzip_header_promising_gigabytes_is_refused_before_allocating(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(bytes.fromhex("00000803 01312D00 0000001C 0000001C")))
    with pytest.raises(ValueError, match="huge.gz.*truncated"):
        mnist.read_idx(path)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        mnist.read_idx(tmp_path / "missing")


def test_truncated_gzip_names_the_file(tmp_path):
    arrays = _small_set(np.random.default_rng(1))
    _write_set(tmp_path, arrays)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    blob = target.read_bytes()
    target.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        mnist.load_data(tmp_path, download=False)


def test_mismatched_images_and_labels(tmp_path):
    arrays = _small_set(np.random.default_rng(2))
    arrays["t10k-labels-idx1-ubyte"] = arrays["t10k-labels-idx1-ubyte"][:2]
    _write_set(tmp_path, arrays)
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        mnist.load_data(tmp_path, download=False)


def test_labels_out_of_range_and_wrong_rank(tmp_path):
    arrays = _small_set(np.random.default_rng(3))
    arrays["train-labels-idx1-ubyte"][0] = 10
    _write_set(tmp_path, arrays)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.*out of range"):
        mnist.load_data(tmp_path, download=False)
    arrays = _small_set(np.random.default_rng(3))
    arrays["train-images-idx3-ubyte"] = arrays["train-images-idx3-ubyte"].reshape(5, 784)
    _write_set(tmp_path, arrays)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*3-D"):
        mnist.load_data(tmp_path, download=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="path"):
        mnist.load_data(3)
    with pytest.raises(TypeError, match="download"):
        mnist.load_data(tmp_path, download="no")
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(ValueError, match="path"):
        mnist.load_data(tmp_path / "afile")
    with pytest.raises(FileNotFoundError, match="download=False"):
        mnist.load_data(tmp_path / "empty", download=False)


# --------------------------------------------------------------------------- download (faked)

def _fake_mirrors(monkeypatch, arrays, broken=()):
    """Install FILES checksums for ``arrays`` and a fake fetch: mirror 0 is down,
    mirror 1 serves wrong content for the names in ``broken``, the last mirror
    serves everything correctly."""
    contents = {name: _idx_bytes(a) for name, a in arrays.items()}
    monkeypatch.setattr(mnist, "FILES", {n: hashlib.md5(c).hexdigest() for n, c in contents.items()})
    mirrors = ("https://down.example/", "https://stale.example/", "https://good.example/")
    monkeypatch.setattr(mnist, "MIRRORS", mirrors)
    calls = []

    def fetch(url, timeout=None):
        calls.append(url)
        mirror, name = url.rsplit("/", 1)[0] + "/", url.rsplit("/", 1)[1][: -len(".gz")]
        if mirror == mirrors[0]:
            raise urllib.error.URLError("connection refused")
        if mirror == mirrors[1]:
            if name in broken:
                return gzip.compress(contents[name][:-1] + b"\xff")
            return gzip.compress(contents[name])
        return gzip.compress(contents[name])

    monkeypatch.setattr(mnist, "_fetch", fetch)
    return calls


def test_download_into_fastnn_data_with_checksums(tmp_path, monkeypatch):
    arrays = _small_set(np.random.default_rng(4))
    calls = _fake_mirrors(monkeypatch, arrays, broken={"t10k-images-idx3-ubyte"})
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))
    assert mnist.default_dir() == tmp_path / "data" / "mnist"
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    np.testing.assert_array_equal(x_test, arrays["t10k-images-idx3-ubyte"])
    np.testing.assert_array_equal(y_train, arrays["train-labels-idx1-ubyte"])
    written = sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir())
    assert written == sorted(f"{n}.gz" for n in NAMES)  # no temporary files left
    # The stale mirror's wrong t10k images were refused by checksum; the good one served them.
    assert "https://good.example/t10k-images-idx3-ubyte.gz" in calls
    assert "https://good.example/train-images-idx3-ubyte.gz" not in calls
    # Second call: everything is on disk, no fetch at all.
    calls.clear()
    mnist.load_data()
    assert calls == []


def test_downloaded_files_are_readable_by_others(tmp_path, monkeypatch):
    # The files were written through a temporary file, whose 0600 mode they kept:
    # a shared $FASTNN_DATA was unreadable for everyone but the downloader.
    _fake_mirrors(monkeypatch, _small_set(np.random.default_rng(8)))
    old = os.umask(0o022)
    try:
        mnist.load_data(tmp_path)
    finally:
        os.umask(old)
    assert {p.stat().st_mode & 0o777 for p in tmp_path.iterdir()} == {0o644}


def test_download_only_the_missing_file(tmp_path, monkeypatch):
    arrays = _small_set(np.random.default_rng(5))
    calls = _fake_mirrors(monkeypatch, arrays)
    _write_set(tmp_path, {k: v for k, v in arrays.items() if k != "train-labels-idx1-ubyte"})
    mnist.load_data(tmp_path)
    assert {c.rsplit("/", 1)[1] for c in calls} == {"train-labels-idx1-ubyte.gz"}


def test_offline_error_is_clear_and_leaves_nothing(tmp_path, monkeypatch):
    arrays = _small_set(np.random.default_rng(6))
    _fake_mirrors(monkeypatch, arrays)

    def offline(url, timeout=None):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(mnist, "_fetch", offline)
    with pytest.raises(ConnectionError) as info:
        mnist.load_data(tmp_path / "m")
    message = str(info.value)
    assert str(tmp_path / "m") in message and "offline" in message
    assert "name resolution" in message
    assert list((tmp_path / "m").iterdir()) == []


def test_every_mirror_wrong_content_names_the_checksum(tmp_path, monkeypatch):
    arrays = _small_set(np.random.default_rng(7))
    _fake_mirrors(monkeypatch, arrays)
    monkeypatch.setattr(mnist, "FILES", {n: "0" * 32 for n in NAMES})
    with pytest.raises(ConnectionError, match="MD5"):
        mnist.load_data(tmp_path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- the real files

needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist not present")


@needs_mnist
def test_real_mnist_shapes_and_counts():
    (x_train, y_train), (x_test, y_test) = mnist.load_data(SHARED_MNIST, download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y_test),
                                  [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert x_train.max() == 255 and x_train.min() == 0


@needs_mnist
def test_real_mnist_content_checksums():
    # The canonical MD5s in FILES are what the downloader verifies: check them on
    # the reference copy (the smaller test files keep this quick).
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        content = gzip.decompress((SHARED_MNIST / f"{name}.gz").read_bytes())
        assert hashlib.md5(content).hexdigest() == mnist.FILES[name]
