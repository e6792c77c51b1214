"""Samplers: the order in which a ``DataLoader`` visits the samples, and its batches.

Pass one as ``DataLoader(dataset, sampler=...)`` (or ``batch_sampler=``). Random
ones draw from fastnn's generator unless given ``generator=`` (a
``fastnn.Generator`` or ``numpy.random.Generator``), as ``DataLoader`` does.
"""
from __future__ import annotations

import numpy as np

from fastnn import utils
from fastnn._validation import _to_array, check_bool, check_int
from fastnn.utils.data.dataset import _index_array

__all__ = ["Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler",
           "WeightedRandomSampler", "BatchSampler"]


class Sampler:
    """Base class: an iterable of sample indices (and, usually, a length)."""

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


def _generator(generator):
    return utils.resolve_generator(generator) if generator is not None else utils.rng()


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def __iter__(self):
        return iter(range(len(self.data_source)))

    def __len__(self):
        return len(self.data_source)


class RandomSampler(Sampler):
    """A random order of the samples (a new one per pass), or ``num_samples`` draws
    with ``replacement``.

    Parameters
    ----------
    data_source : Dataset
    replacement : bool, default False
    num_samples : int, optional
        Default ``len(data_source)``; more than that needs ``replacement`` or
        takes several permutations in turn (as PyTorch).
    generator : fastnn.Generator or numpy.random.Generator, optional
    """

    def __init__(self, data_source, replacement=False, num_samples=None, generator=None):
        self.data_source = data_source
        self.replacement = check_bool(replacement, "replacement")
        self._num_samples = check_int(num_samples, "num_samples", minimum=1, allow_none=True)
        self.generator = generator

    @property
    def num_samples(self):
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self):
        n, rng = len(self.data_source), _generator(self.generator)
        if self.replacement:
            return iter(rng.integers(0, n, size=self.num_samples).tolist())
        passes = [rng.permutation(n) for _ in range(-(-self.num_samples // n))] if n else []
        order = np.concatenate(passes) if passes else np.empty(0, np.int64)
        return iter(order[:self.num_samples].tolist())

    def __len__(self):
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices, in a random order (a new one per pass)."""

    def __init__(self, indices, generator=None):
        self.indices = _index_array(indices, "indices")
        self.generator = generator

    def __iter__(self):
        order = _generator(self.generator).permutation(self.indices.shape[0])
        return iter(self.indices[order].tolist())

    def __len__(self):
        return self.indices.shape[0]


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights``.

    Parameters
    ----------
    weights : array_like of float
        One non-negative weight per sample (need not sum to 1).
    num_samples : int
    replacement : bool, default True
        False draws each index at most once (needs ``num_samples`` <= the number
        of positive weights).
    generator : fastnn.Generator or numpy.random.Generator, optional
    """

    def __init__(self, weights, num_samples, replacement=True, generator=None):
        w = np.asarray(_to_array(weights, "weights"), dtype=np.float64).reshape(-1)
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        self.weights = w
        self.num_samples = check_int(num_samples, "num_samples", minimum=1)
        self.replacement = check_bool(replacement, "replacement")
        if not self.replacement and self.num_samples > np.count_nonzero(w):
            raise ValueError(f"cannot draw {self.num_samples} samples without replacement from "
                             f"{np.count_nonzero(w)} positive weights")
        self.generator = generator

    def __iter__(self):
        rng = _generator(self.generator)
        if self.replacement:  # inverse CDF of the normalized weights
            cdf = np.cumsum(self.weights)
            u = rng.random(self.num_samples) * cdf[-1]
            picks = np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
            return iter(picks.tolist())
        # Without replacement: the num_samples largest keys u^(1/w) (Efraimidis &
        # Spirakis 2006), the law of drawing one at a time proportionally to the weights.
        with np.errstate(divide="ignore"):
            keys = np.log(rng.random(self.weights.shape[0])) / self.weights
        return iter(np.argsort(-keys, kind="stable")[:self.num_samples].tolist())

    def __len__(self):
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of ``batch_size`` indices from ``sampler`` (the last one shorter, or dropped).

    Parameters
    ----------
    sampler : Sampler or iterable of int
    batch_size : int
    drop_last : bool
    """

    def __init__(self, sampler, batch_size, drop_last):
        if not hasattr(sampler, "__iter__"):
            raise TypeError(f"sampler must be an iterable of indices, got {type(sampler).__name__}")
        self.sampler = sampler
        self.batch_size = check_int(batch_size, "batch_size", minimum=1)
        self.drop_last = check_bool(drop_last, "drop_last")

    def __iter__(self):
        order = _index_array(list(self.sampler), "the sampler's indices").tolist()
        stop = len(order) - len(order) % self.batch_size if self.drop_last else len(order)
        for start in range(0, stop, self.batch_size):
            yield order[start:start + self.batch_size]

    def __len__(self):
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
