"""``DataLoader``: mini-batches of a dataset, and ``default_collate``."""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping

import numpy as np

from fastnn import utils
from fastnn._validation import check_bool, check_int
from fastnn.tensor import Tensor
from fastnn.utils.data.dataset import _check_dataset, _gatherable, _index_array


def default_collate(batch):
    """Stack a list of samples into a batch, keeping their structure.

    Tensors, arrays and numbers become one Tensor with a new first dimension
    (Python bools bool, ints int64, floats float64, as PyTorch); tuples
    (namedtuples too), lists and dicts are collated element by element; strings
    stay a list.
    """
    if not isinstance(batch, (list, tuple)) or not batch:
        raise TypeError("default_collate expects a non-empty list of samples")
    first = batch[0]
    if isinstance(first, Tensor):
        return Tensor._wrap(np.stack([s.data for s in batch]))
    if isinstance(first, (np.ndarray, np.generic)):
        return Tensor._wrap(np.stack([np.asarray(s) for s in batch]))
    if isinstance(first, numbers.Real) and not isinstance(first, np.generic):
        # Python numbers, by the widest kind in the batch (PyTorch's torch.tensor(batch)):
        # [1, 2.5] is float64, not a truncated int64
        if not all(isinstance(s, numbers.Real) for s in batch):
            raise TypeError("default_collate: a batch mixes numbers with other kinds of samples")
        if all(isinstance(s, bool) for s in batch):
            return Tensor._wrap(np.asarray(batch, dtype=np.bool_))
        if all(isinstance(s, numbers.Integral) for s in batch):
            return Tensor._wrap(np.asarray(batch, dtype=np.int64))
        return Tensor._wrap(np.asarray(batch, dtype=np.float64))
    if isinstance(first, (str, bytes)):
        return list(batch)
    if isinstance(first, Mapping):
        if any(not isinstance(s, Mapping) or s.keys() != first.keys() for s in batch):
            raise ValueError("default_collate: the samples of a batch have different keys")
        return {key: default_collate([s[key] for s in batch]) for key in first}
    if isinstance(first, (tuple, list)):
        if any(len(s) != len(first) for s in batch):
            raise ValueError("default_collate: the samples of a batch have different lengths")
        columns = [default_collate(list(column)) for column in zip(*batch)]
        if hasattr(first, "_fields"):  # a namedtuple stays one
            return type(first)(*columns)
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
            return _index_array(list(self.sampler), "the sampler's indices")
        n = len(self.dataset)
        if self.shuffle:
            return (self.generator if self.generator is not None else utils.rng()).permutation(n)
        return np.arange(n)

    def _batches(self):
        if self.batch_sampler is not None:
            for batch in self.batch_sampler:
                yield _index_array(list(batch), "the batch sampler's indices")
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
