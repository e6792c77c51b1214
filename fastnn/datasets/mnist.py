"""MNIST: 70,000 handwritten digits, 28x28, in Keras's layout.

::

    >>> from fastnn.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()   # doctest: +SKIP
    >>> x_train.shape, x_train.dtype, y_test.shape                  # doctest: +SKIP
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
import math
import os
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

# Deflate's best case is about 1032 output bytes per input byte.
_MAX_DEFLATE_RATIO = 1032
_MAX_IDX_DIMS = 32


def _read_idx_stream(path: Path) -> np.ndarray:
    """Read an IDX file straight into its array, decompressing as it goes.

    IDX: magic (0, 0, type, ndim), ndim big-endian uint32 sizes, then the data.
    Nothing holds the whole (decompressed) file as bytes next to the array, so
    loading MNIST peaks at about the size of the arrays instead of three times
    it, and leaves no freed-but-kept heap behind (18 MB for the training images).
    """
    where = str(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise ValueError(f"{where}: too short for an IDX file ({len(head)} bytes)")
            zero0, zero1, type_code, ndim = head
            if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES:
                raise ValueError(
                    f"{where}: not an IDX file (magic number {head.hex()}; expected 0000 "
                    "followed by a type code 08, 09, 0b, 0c, 0d or 0e and the number of "
                    "dimensions)"
                )
            if ndim == 0:
                raise ValueError(f"{where}: IDX header declares 0 dimensions")
            sizes = f.read(4 * ndim)
            if len(sizes) < 4 * ndim:
                raise ValueError(f"{where}: truncated IDX header ({4 + len(sizes)} bytes, "
                                 f"need {4 + 4 * ndim})")
            shape = tuple(int(d) for d in np.frombuffer(sizes, dtype=">u4"))
            dtype = np.dtype(_IDX_DTYPES[type_code])
            if ndim > _MAX_IDX_DIMS:
                raise ValueError(f"{where}: IDX header declares {ndim} dimensions (at most "
                                 f"{_MAX_IDX_DIMS} are read)")
            # What the header promises must fit the file before anything is allocated: a
            # forged or damaged header (20000000 x 28 x 28) would otherwise reserve GBs
            # first. Uncompressed, the rest of the file is the data; compressed, deflate
            # expands by at most 1032x.
            declared = math.prod(shape) * dtype.itemsize
            stored = path.stat().st_size - 4 - 4 * ndim
            if path.suffix == ".gz":
                stored = path.stat().st_size * _MAX_DEFLATE_RATIO
            if declared > stored:
                raise ValueError(
                    f"{where}: IDX data truncated: header says shape {shape} ({declared} bytes "
                    f"of {dtype.name}), the file cannot hold that many")
            arr = np.empty(shape, dtype=dtype.newbyteorder("="))
            view = memoryview(arr.reshape(-1).view(np.uint8))
            filled = 0
            while filled < len(view):
                got = f.readinto(view[filled:])
                if not got:
                    break
                filled += got
            trailing = f.read(1)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise  # they name the path already; not a damaged file
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"{path}: not a valid gzip file, or truncated ({exc})") from None
    if filled < len(view) or trailing:
        kind = "truncated" if filled < len(view) else "has trailing bytes"
        held = f"{filled} bytes" if filled < len(view) else "more bytes"
        raise ValueError(
            f"{where}: IDX data {kind}: header says shape {shape} ({len(view)} bytes of "
            f"{dtype.name}), file holds {held}"
        )
    if dtype.itemsize > 1 and not dtype.isnative:
        arr.byteswap(inplace=True)  # the file is big-endian
    return arr


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
    return _read_idx_stream(Path(path))


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
    # Imported here: urllib.request pulls in http and email (6 MB of RSS), which
    # reading files that are already on disk never needs.
    import urllib.request
    request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _download(directory: Path, name: str) -> Path:
    """Fetch ``name``.gz from the first mirror that serves the right content."""
    import hashlib   # here, not at the top: it loads OpenSSL (~3 MB), which reading local files never needs

    problems = []
    for mirror in MIRRORS:
        url = f"{mirror}{name}.gz"
        try:
            blob = _fetch(url)
        except (OSError, ValueError) as exc:  # urllib.error.URLError is an OSError
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
