"""Randomness: one generator for every random draw fastnn makes.

``set_random_seed(seed)`` reseeds it. Initializers, dropout, shuffling and data
splitting all draw from :func:`rng` (or from a generator made from an explicit
``seed`` argument), never from NumPy's hidden global state. The generator is
fastnn's own (:mod:`fastnn.utils.random`: Philox4x64-10, with NumPy-like
methods); a ``numpy.random.Generator`` is accepted wherever a user may pass one.

``fastnn.utils.data`` holds the PyTorch-style datasets and ``DataLoader``.
"""
from __future__ import annotations

import numbers
import os

from fastnn.utils.random import Generator, is_generator

__all__ = ["set_random_seed", "rng", "make_rng", "resolve_generator", "is_generator", "Generator"]

# Unseeded, fastnn starts from a seed of the operating system's entropy, as NumPy's
# default_rng() does.
_RNG = Generator(int.from_bytes(os.urandom(16), "little"))


def set_random_seed(seed: int) -> None:
    """Seed fastnn's generator; the same seed gives the same initial weights,
    dropout masks, shuffles and splits."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"set_random_seed: seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"set_random_seed: seed must be >= 0, got {seed}")
    if seed >= 1 << 128:
        raise ValueError(f"set_random_seed: seed must be < 2**128, got {seed}")
    # Reseed the one generator in place, so a reference to rng() taken before the
    # call follows the new seed too.
    _RNG.seed(int(seed))


def rng() -> Generator:
    """Return fastnn's generator (the one :func:`set_random_seed` seeds)."""
    return _RNG


def resolve_generator(generator=None):
    """The ``generator=`` argument of the PyTorch-style functions: a given generator
    (fastnn's or a ``numpy.random.Generator``), else fastnn's own (:func:`rng`, seeded
    by ``fastnn.manual_seed``), used directly as torch uses its default generator."""
    if generator is None:
        return _RNG
    if not is_generator(generator):
        raise TypeError(f"generator must be a fastnn.utils.Generator, a numpy.random.Generator "
                        f"or None, got {type(generator).__name__}")
    return generator


def make_rng(seed=None):
    """A generator for an API that takes ``seed``/``random_state``.

    ``None`` draws a child seed from fastnn's generator (so :func:`set_random_seed`
    still makes it reproducible); an int gives an independent seeded generator; a
    generator (fastnn's or NumPy's) is used as is.
    """
    if seed is None:
        return Generator(_RNG.integers(0, 2**63 - 1))
    if is_generator(seed):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be None, an int or a generator, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if seed >= 1 << 128:
        raise ValueError(f"seed must be < 2**128, got {seed}")
    return Generator(int(seed))


def __getattr__(name):
    # fastnn.utils.data on first use, as torch.utils.data is reachable from torch.utils
    if name == "data":
        import importlib
        return importlib.import_module("fastnn.utils.data")
    raise AttributeError(f"module 'fastnn.utils' has no attribute {name!r}")
