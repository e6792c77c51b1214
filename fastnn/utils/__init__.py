"""Randomness: one generator for every random draw fastnn makes.

``set_random_seed(seed)`` reseeds it. Initializers, dropout, shuffling and data
splitting all draw from :func:`rng` (or from a generator made from an explicit
``seed`` argument), never from NumPy's hidden global state.

``fastnn.utils.data`` holds the PyTorch-style datasets and ``DataLoader``.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["set_random_seed", "rng", "make_rng", "resolve_generator"]

_RNG = np.random.default_rng()


def set_random_seed(seed: int) -> None:
    """Seed fastnn's generator; the same seed gives the same initial weights,
    dropout masks, shuffles and splits."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"set_random_seed: seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"set_random_seed: seed must be >= 0, got {seed}")
    # Reseed the one generator in place (the stream of default_rng(seed)), so a
    # reference to rng() taken before the call follows the new seed too.
    _RNG.bit_generator.state = np.random.PCG64(int(seed)).state


def rng() -> np.random.Generator:
    """Return fastnn's generator (the one :func:`set_random_seed` seeds)."""
    return _RNG


def resolve_generator(generator=None) -> np.random.Generator:
    """The ``generator=`` argument of the PyTorch-style functions: a given
    ``numpy.random.Generator``, else fastnn's own (:func:`rng`, seeded by
    ``fastnn.manual_seed``), used directly as torch uses its default generator."""
    if generator is None:
        return _RNG
    if not isinstance(generator, np.random.Generator):
        raise TypeError(f"generator must be a numpy.random.Generator or None, "
                        f"got {type(generator).__name__}")
    return generator


def make_rng(seed=None) -> np.random.Generator:
    """A generator for an API that takes ``seed``/``random_state``.

    ``None`` draws a child seed from fastnn's generator (so :func:`set_random_seed`
    still makes it reproducible); an int gives an independent seeded generator; a
    ``numpy.random.Generator`` is used as is.
    """
    if seed is None:
        return np.random.default_rng(_RNG.integers(0, 2**63 - 1))
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None, an int or a numpy Generator, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def __getattr__(name):
    # fastnn.utils.data on first use, as torch.utils.data is reachable from torch.utils
    if name == "data":
        import importlib
        return importlib.import_module("fastnn.utils.data")
    raise AttributeError(f"module 'fastnn.utils' has no attribute {name!r}")
