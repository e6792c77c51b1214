"""The embedded digits data set: 1,797 handwritten digits as 8x8 images.

fastnn ships this small set inside the package (57 KB), so examples, the demo
(``python -m fastnn demo``) and tests run without a download. It is the test part
of the UCI "Optical Recognition of Handwritten Digits" data set (E. Alpaydin,
C. Kaynak, 1998; CC BY 4.0; see ``DIGITS_LICENSE.md`` next to this file).

>>> from fastnn.datasets import digits
>>> (x_train, y_train), (x_test, y_test) = digits.load_data()
>>> x_train.shape, x_test.shape
((1442, 64), (355, 64))

Pixels are scaled from their raw range 0..16 to [0, 1] (float32) and flattened
row-major to 64 features; labels are int64 in 0..9.
"""
from __future__ import annotations

import functools
import gzip
import io
from importlib import resources

import numpy as np

__all__ = ["load_data", "load", "NUM_CLASSES", "IMAGE_SHAPE", "MAX_PIXEL"]

NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8)
MAX_PIXEL = 16  # each pixel counts the set pixels of a 4x4 block of a 32x32 bitmap
_FILE = "digits.csv.gz"
_N_SAMPLES = 1797
TEST_EVERY = 5  # the fixed split: every 5th sample of each class is a test sample


@functools.lru_cache(maxsize=1)
def _read_raw() -> tuple[np.ndarray, np.ndarray]:
    """Pixels (uint8, 0..16) and labels (int64) from the copy shipped in the package."""
    blob = resources.files(__package__).joinpath(_FILE).read_bytes()
    text = gzip.decompress(blob).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64)
    if table.shape != (_N_SAMPLES, 65):
        raise ValueError(f"{_FILE}: expected {_N_SAMPLES} rows of 65 values, got {table.shape}")
    pixels, labels = table[:, :64], table[:, 64].copy()
    if pixels.min() < 0 or pixels.max() > MAX_PIXEL or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{_FILE}: values out of range (pixels 0..16, labels 0..9)")
    pixels = pixels.astype(np.uint8)
    # Cached and shared between calls: read-only so no caller can alter the next one's data.
    pixels.setflags(write=False)
    labels.setflags(write=False)
    return pixels, labels


def load() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 samples, for splits of your own (:mod:`fastnn.data`).

    Returns
    -------
    x : numpy.ndarray
        float32, shape (1797, 64), pixels scaled to [0, 1].
    y : numpy.ndarray
        int64, shape (1797,), labels 0..9.
    """
    pixels, labels = _read_raw()
    return (pixels / np.float32(MAX_PIXEL)).astype(np.float32), labels.copy()


def _test_mask(labels: np.ndarray) -> np.ndarray:
    """True for every TEST_EVERY-th sample of each class, counted in file order."""
    mask = np.zeros(len(labels), dtype=bool)
    for c in range(NUM_CLASSES):
        (members,) = np.nonzero(labels == c)
        mask[members[TEST_EVERY - 1:: TEST_EVERY]] = True
    return mask


def load_data():
    """The digits set with a fixed, stratified train/test split (Keras's layout).

    The split is deterministic and needs no random numbers: within each class,
    counted in file order, every 5th sample goes to the test set. That keeps the
    class proportions (19.5% to 20% of each class is test data) and spreads the test
    samples over all writers. 1,442 training and 355 test samples.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_*`` float32 of shape (n, 64), pixels scaled from 0..16 to [0, 1]
        (reshape to (n, 8, 8) for images); ``y_*`` int64 labels 0..9.
    """
    x, y = load()
    test = _test_mask(y)
    return (x[~test], y[~test]), (x[test], y[test])
