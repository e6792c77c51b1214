"""Datasets and mini-batch loading for PyTorch-style training loops (``torch.utils.data``).

::

    from fastnn.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
    for epoch in range(5):
        for xb, yb in loader:          # a new shuffle every epoch
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()

Mini-batch gradient descent visits the training samples in a new random order every
epoch, a batch at a time. A :class:`TensorDataset` over in-memory arrays is batched
by one gather per array (``array[batch_indices]``), not sample by sample: an epoch
never copies the whole data set (the ``x[perm]`` of a hand-written loop) and a batch
of 32 MNIST images costs microseconds. Any other dataset goes through ``dataset[i]``
per sample and :func:`default_collate`, as in PyTorch.

Shuffles draw from fastnn's generator (:func:`fastnn.manual_seed` makes them
reproducible) unless ``generator=`` gives a generator (``fastnn.Generator`` or ``numpy.random.Generator``).
``num_workers`` and ``pin_memory`` are accepted so that PyTorch code runs unchanged:
batches are always made in the calling thread (gathering rows already in memory is
cheaper than sending them between processes) and there is no GPU memory to pin.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from fastnn import utils
from fastnn._validation import _to_array, check_bool, check_int
from fastnn.tensor import Tensor

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "default_collate", "DataLoader"]


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


class Subset(Dataset):
    """The samples ``indices`` of ``dataset``, in that order."""

    def __init__(self, dataset, indices):
        _check_dataset(dataset)
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
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


def default_collate(batch):
    """Stack a list of samples into a batch, keeping their structure.

    Tensors, arrays and numbers become one Tensor with a new first dimension
    (Python ints int64, Python floats float64, as PyTorch); tuples, lists and
    dicts are collated element by element; strings stay a list.
    """
    if not isinstance(batch, (list, tuple)) or not batch:
        raise TypeError("default_collate expects a non-empty list of samples")
    first = batch[0]
    if isinstance(first, Tensor):
        return Tensor._wrap(np.stack([s.data for s in batch]))
    if isinstance(first, (np.ndarray, np.generic)):
        return Tensor._wrap(np.stack([np.asarray(s) for s in batch]))
    if isinstance(first, (bool, numbers.Integral)):
        return Tensor._wrap(np.asarray(batch, dtype=np.int64))
    if isinstance(first, numbers.Real):
        return Tensor._wrap(np.asarray(batch, dtype=np.float64))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, Mapping):
        return {key: default_collate([s[key] for s in batch]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in batch):
            raise ValueError("default_collate: the samples of a batch have different lengths")
        columns = [default_collate(list(column)) for column in zip(*batch)]
        return tuple(columns) if isinstance(first, tuple) else columns
    raise TypeError(f"default_collate cannot batch samples of type {type(first).__name__}")


class DataLoader:
    """Iterate over a dataset in mini-batches (``torch.utils.data.DataLoader``).

    Parameters
    ----------
    dataset : Dataset
        Map-style: ``dataset[i]`` and ``len(dataset)``.
    batch_size : int or None, default 1
        Samples per batch; None yields the samples one by one, unbatched.
    shuffle : bool, default False
        A new random order every epoch (every ``iter(loader)``).
    sampler : iterable of int, optional
        The order of the samples instead (excludes ``shuffle``).
    batch_sampler : iterable of lists of int, optional
        The batches themselves (excludes ``batch_size``, ``shuffle``, ``sampler``
        and ``drop_last``).
    num_workers : int, default 0
        Accepted for compatibility; batches are made in the calling thread.
    collate_fn : callable, optional
        Turns a list of samples into a batch; default :func:`default_collate`.
    pin_memory : bool, default False
        Accepted for compatibility (no GPU).
    drop_last : bool, default False
        Skip the last batch when it is smaller than ``batch_size``.
    generator : fastnn.Generator or numpy.random.Generator, optional
        The shuffles' generator; default fastnn's (:func:`fastnn.manual_seed`).

    Notes
    -----
    A :class:`TensorDataset` (or a :class:`Subset` of one) with the default
    ``collate_fn`` is batched by one gather per array: the same batches as
    sample-by-sample collation, without a Python call per sample.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False,
                 timeout=0, worker_init_fn=None, generator=None, *, prefetch_factor=None,
                 persistent_workers=False):
        _check_dataset(dataset)
        if batch_size is not None:
            batch_size = check_int(batch_size, "batch_size", minimum=1)
        shuffle = check_bool(False if shuffle is None else shuffle, "shuffle")
        drop_last = check_bool(drop_last, "drop_last")
        check_int(num_workers, "num_workers", minimum=0)
        check_bool(pin_memory, "pin_memory")
        check_bool(persistent_workers, "persistent_workers")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable, got {type(collate_fn).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None and (batch_size != 1 or shuffle or sampler is not None
                                          or drop_last):
            raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                             "shuffle, sampler, and drop_last")
        for name, value in (("sampler", sampler), ("batch_sampler", batch_sampler)):
            if value is not None and not hasattr(value, "__iter__"):
                raise TypeError(f"{name} must be an iterable of indices, got {type(value).__name__}")
        self.dataset = dataset
        self.batch_size = None if batch_sampler is not None else batch_size
        self.shuffle = shuffle
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.generator = utils.resolve_generator(generator) if generator is not None else None

    def __len__(self):
        """Batches per epoch."""
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _order(self):
        """The epoch's sample order, as an int array."""
        if self.sampler is not None:
            return np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        n = len(self.dataset)
        if self.shuffle:
            return (self.generator if self.generator is not None else utils.rng()).permutation(n)
        return np.arange(n)

    def _batches(self):
        if self.batch_sampler is not None:
            for batch in self.batch_sampler:
                yield np.asarray([int(i) for i in batch], dtype=np.int64)
            return
        order = self._order()
        if self.batch_size is None:
            yield from order
            return
        n, bs = order.shape[0], self.batch_size
        stop = n - n % bs if self.drop_last else n
        for start in range(0, stop, bs):
            yield order[start:start + bs]

    def __iter__(self):
        gather = self.collate_fn is None and _gatherable(self.dataset)
        collate = self.collate_fn or default_collate
        for indices in self._batches():
            if self.batch_size is None and self.batch_sampler is None:
                sample = self.dataset[int(indices)]
                yield sample if self.collate_fn is None else self.collate_fn(sample)
            elif gather:
                yield self.dataset._gather(indices)
            else:
                yield collate([self.dataset[int(i)] for i in indices])

    def __repr__(self):
        return (f"DataLoader(dataset={type(self.dataset).__name__} of {len(self.dataset)}, "
                f"batch_size={self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last})")
