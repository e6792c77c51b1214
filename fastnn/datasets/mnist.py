"""MNIST: 70,000 handwritten digits, 28x28, in Keras's layout.

>>> from fastnn.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()
>>> x_train.shape, x_train.dtype, y_test.shape
((60000, 28, 28), dtype('uint8'), (10000,))

The loader reads the four standard IDX files (``train-images-idx3-ubyte.gz`` and
friends, gzip-compressed or not) from a directory: ``path`` if given, else
``$FASTNN_DATA/mnist``, else ``~/.fastnn/datasets/mnist``. Missing files are
downloaded into that directory from a list of mirrors; the MD5 of each file's
uncompressed content is checked against the canonical one before the file is
written (atomically, so an interrupted download leaves nothing half-written).

MNIST: Y. LeCun, C. Cortes, C. J. C. Burges; license CC BY-SA 3.0.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from fastnn._io import write_atomic

__all__ = ["load_data", "read_idx", "default_dir", "FILES", "MIRRORS"]

# name -> MD5 of the uncompressed IDX content (the gzip wrappers differ between
# mirrors; the content does not).
FILES = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}

# Tried in order; each serves "<name>.gz" for the four names above.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)

_TIMEOUT = 60.0

# IDX element types: code -> big-endian NumPy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


# --------------------------------------------------------------------------- IDX format

def _parse_idx(data: bytes, where: str) -> np.ndarray:
    """Decode IDX bytes: magic (0, 0, type, ndim), ndim big-endian uint32 sizes, data."""
    if len(data) < 4:
        raise ValueError(f"{where}: too short for an IDX file ({len(data)} bytes)")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES:
        raise ValueError(
            f"{where}: not an IDX file (magic number {data[:4].hex()}; expected 0000 followed "
            "by a type code 08, 09, 0b, 0c, 0d or 0e and the number of dimensions)"
        )
    if ndim == 0:
        raise ValueError(f"{where}: IDX header declares 0 dimensions")
    header_end = 4 + 4 * ndim
    if len(data) < header_end:
        raise ValueError(f"{where}: truncated IDX header ({len(data)} bytes, need {header_end})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_end
    if actual != expected:
        kind = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(
            f"{where}: IDX data {kind}: header says shape {shape} ({expected} bytes of "
            f"{dtype.name}), file holds {actual} bytes"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header_end).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, a writable copy


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped if the name ends in .gz."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{path}: not a valid gzip file, or truncated ({exc})") from None


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzip-compressed if its name ends in ``.gz``).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    numpy.ndarray
        With the shape and element type the file declares, in native byte order.

    Raises
    ------
    ValueError
        Naming the file: bad magic number, truncated header or data, trailing
        bytes, or a broken gzip stream.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), str(path))


# --------------------------------------------------------------------------- locating and downloading

def default_dir() -> Path:
    """``$FASTNN_DATA/mnist`` if ``FASTNN_DATA`` is set, else ``~/.fastnn/datasets/mnist``."""
    root = os.environ.get("FASTNN_DATA")
    if root:
        return Path(root).expanduser() / "mnist"
    return Path.home() / ".fastnn" / "datasets" / "mnist"


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _fetch(url: str, timeout: float = _TIMEOUT) -> bytes:
    """GET ``url``; the one place that touches the network (tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _download(directory: Path, name: str) -> Path:
    """Fetch ``name``.gz from the first mirror that serves the right content."""
    problems = []
    for mirror in MIRRORS:
        url = f"{mirror}{name}.gz"
        try:
            blob = _fetch(url)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problems.append(f"{url}: {exc}")
            continue
        try:
            content = gzip.decompress(blob)
        except (OSError, EOFError, zlib.error) as exc:
            problems.append(f"{url}: not a valid gzip file ({exc})")
            continue
        digest = hashlib.md5(content).hexdigest()
        if digest != FILES[name]:
            problems.append(f"{url}: MD5 of the content is {digest}, expected {FILES[name]}")
            continue
        target = directory / f"{name}.gz"
        write_atomic(target, lambda f: f.write(blob), suffix=".part")
        return target
    raise ConnectionError(
        f"could not download {name}.gz into {directory}:\n  " + "\n  ".join(problems)
        + f"\nIf this machine is offline, copy the four MNIST files ({', '.join(f + '.gz' for f in FILES)})"
        " into that directory, or pass load_data(path=...) / set FASTNN_DATA."
    )


def load_data(path=None, *, download=True):
    """Load MNIST as ``((x_train, y_train), (x_test, y_test))``, like ``keras.datasets.mnist``.

    Parameters
    ----------
    path : str, os.PathLike or None
        Directory holding the four IDX files (``train-images-idx3-ubyte.gz``,
        ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
        ``t10k-labels-idx1-ubyte.gz``; uncompressed copies without ``.gz`` work too).
        Default: :func:`default_dir`.
    download : bool, default True
        Download missing files into the directory (checking each file's MD5).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x``: uint8 arrays of shape (60000, 28, 28) and (10000, 28, 28), pixel
        values 0..255; ``y``: uint8 labels 0..9 (as Keras). Scale and flatten for a
        Dense network: ``x_train.reshape(-1, 784) / 255.0``.

    Raises
    ------
    FileNotFoundError
        A file is missing and ``download`` is False.
    ConnectionError
        A file is missing and no mirror could provide it (offline).
    ValueError
        A file is corrupt or truncated (the message names it), or images and
        labels do not match.
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, a path or None, got {type(path).__name__}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be True or False, got {download!r}")
    directory = Path(path).expanduser() if path is not None else default_dir()
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"path: {directory} is not a directory (expected the folder of the IDX files)")

    files = {}
    for name in FILES:
        found = _find(directory, name)
        if found is None:
            if not download:
                raise FileNotFoundError(
                    f"MNIST file {name}.gz not found in {directory} (download=False)"
                )
            directory.mkdir(parents=True, exist_ok=True)
            found = _download(directory, name)
        files[name] = found

    def pair(kind):
        images = read_idx(files[f"{kind}-images-idx3-ubyte"])
        labels = read_idx(files[f"{kind}-labels-idx1-ubyte"])
        where = f"{files[f'{kind}-images-idx3-ubyte']} / {files[f'{kind}-labels-idx1-ubyte']}"
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{files[f'{kind}-images-idx3-ubyte']}: expected 3-D uint8 images, "
                             f"got {images.dtype} {images.shape}")
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise ValueError(f"{files[f'{kind}-labels-idx1-ubyte']}: expected 1-D uint8 labels, "
                             f"got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"{where}: {len(images)} images but {len(labels)} labels")
        if labels.size and labels.max() > 9:
            raise ValueError(f"{files[f'{kind}-labels-idx1-ubyte']}: label {labels.max()} "
                             "out of range 0..9")
        return images, labels

    return pair("train"), pair("t10k")
