"""Map-style datasets: ``dataset[i]`` is a sample, ``len(dataset)`` how many."""
from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Sequence

import numpy as np

from fastnn import utils
from fastnn._validation import _to_array
from fastnn.tensor import Tensor


class Dataset:
    """A map-style dataset: ``dataset[i]`` is sample ``i``, ``len(dataset)`` how many.

    Subclass it and define ``__getitem__`` and ``__len__``.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


def _as_array(value, name):
    if isinstance(value, Tensor):
        return value.data
    array = _to_array(value, name)
    if array.dtype == object:
        raise TypeError(f"{name} must hold numbers, got an object array (ragged or mixed data?)")
    return array


class TensorDataset(Dataset):
    """Samples made of the rows of several arrays: ``dataset[i] == (t[i] for t in tensors)``.

    Parameters
    ----------
    *tensors : Tensor or array_like
        All with the same first dimension (the samples), e.g. ``(x, y)``.
    """

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        arrays = []
        for i, t in enumerate(tensors):
            a = _as_array(t, f"tensors[{i}]")
            if a.ndim == 0:
                raise ValueError(f"tensors[{i}] is a scalar; each tensor needs a sample dimension")
            arrays.append(a)
        n = arrays[0].shape[0]
        for i, a in enumerate(arrays[1:], 1):
            if a.shape[0] != n:
                raise ValueError(
                    f"size mismatch between tensors: tensors[0] has {n} samples, "
                    f"tensors[{i}] has {a.shape[0]}"
                )
        self._arrays = tuple(arrays)
        self.tensors = tuple(Tensor._wrap(a) for a in arrays)

    def __getitem__(self, index):
        return tuple(Tensor._wrap(np.asarray(a[index])) for a in self._arrays)

    def __len__(self):
        return self._arrays[0].shape[0]

    def _gather(self, indices):
        """The batch of the samples ``indices`` (an int array): one gather per array."""
        return tuple(Tensor._wrap(a[indices]) for a in self._arrays)


def _index_array(indices, name):
    """``indices`` as a 1-D int64 array; fractional values are an error, not truncated."""
    arr = _to_array(indices, name)
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)) or np.any(arr != np.floor(arr)):
            raise TypeError(f"{name} must hold integer indices, got dtype {arr.dtype}")
    return arr.astype(np.int64).reshape(-1)


class Subset(Dataset):
    """The samples ``indices`` of ``dataset``, in that order."""

    def __init__(self, dataset, indices):
        _check_dataset(dataset)
        self.dataset = dataset
        self.indices = _index_array(indices, "indices")
        n = len(dataset)
        if self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise IndexError(f"Subset: an index is out of range for a dataset of {n} samples")

    def __getitem__(self, index):
        if isinstance(index, (list, np.ndarray)):
            return self.dataset[self.indices[index]]
        return self.dataset[int(self.indices[index])]

    def __len__(self):
        return self.indices.shape[0]

    def _gather(self, indices):
        return self.dataset._gather(self.indices[indices])


class ConcatDataset(Dataset):
    """The samples of several datasets one after the other.

    Parameters
    ----------
    datasets : iterable of Dataset
        Map-style datasets (``dataset[i]`` and ``len``), at least one.
    """

    def __init__(self, datasets):
        try:
            self.datasets = list(datasets)
        except TypeError:
            raise TypeError(f"datasets must be an iterable of datasets, got "
                            f"{type(datasets).__name__}") from None
        if not self.datasets:
            raise ValueError("datasets should not be an empty iterable")
        for i, d in enumerate(self.datasets):
            _check_dataset(d, f"datasets[{i}]")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"ConcatDataset indices must be ints, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} samples")
        index = int(index) + n if index < 0 else int(index)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def _gatherable(dataset):
    """Whether the loader may batch ``dataset`` by whole-array gathers."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return type(dataset) is TensorDataset


def _check_dataset(dataset, name="dataset"):
    if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
        raise TypeError(f"{name} must support dataset[i] and len(dataset) (a map-style dataset), "
                        f"got {type(dataset).__name__}")


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` at random into non-overlapping :class:`Subset` s.

    Parameters
    ----------
    dataset : Dataset
    lengths : sequence of int, or of float
        The sizes of the parts (summing to ``len(dataset)``), or fractions summing
        to 1: each part gets ``floor(fraction * n)`` samples and the remaining ones
        go to the parts in turn, from the first (PyTorch's rule).
    generator : fastnn.Generator or numpy.random.Generator, optional
        Default: fastnn's generator (:func:`fastnn.manual_seed`).
    """
    _check_dataset(dataset)
    n = len(dataset)
    if isinstance(lengths, np.ndarray) and lengths.ndim == 1:
        lengths = lengths.tolist()
    if isinstance(lengths, (str, bytes)) or not isinstance(lengths, Sequence) or not lengths:
        raise TypeError(f"lengths must be a non-empty sequence of ints or fractions, got {lengths!r}")
    values = list(lengths)
    if all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        sizes = [int(v) for v in values]
    elif (all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)
          and all(0 <= v <= 1 for v in values if isinstance(v, numbers.Integral))):
        if any(not 0 <= v <= 1 for v in values) or not math.isclose(sum(values), 1.0, abs_tol=1e-9):
            raise ValueError(f"fractions in lengths must lie in [0, 1] and sum to 1, got {values}")
        sizes = [math.floor(n * v) for v in values]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
    else:
        raise TypeError(f"lengths must be all ints or all fractions, got {values!r}")
    if any(s < 0 for s in sizes):
        raise ValueError(f"lengths must be >= 0, got {sizes}")
    if sum(sizes) != n:
        raise ValueError(f"lengths sum to {sum(sizes)}, but the dataset has {n} samples")
    order = utils.resolve_generator(generator).permutation(n)
    parts, start = [], 0
    for size in sizes:
        parts.append(Subset(dataset, order[start:start + size]))
        start += size
    return parts
