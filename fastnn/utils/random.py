"""fastnn's random numbers: a Philox4x64-10 stream and the distributions drawn from it.

Why fastnn has a generator of its own rather than ``numpy.random``:

- **Reproducible across versions.** NumPy keeps ``Generator`` method streams free to
  change between releases (NEP 19); fastnn promises that the same seed gives the same
  weights, masks and shuffles, so the algorithms that turn bits into numbers live here,
  written down below.
- **Counter-based.** Word ``i`` of the stream is a pure function of the key and ``i``
  (see csrc/philox.h), so compiled code can produce any range of it without shared
  state, and a generator's whole state is two key words and a position.
- **Light.** ``import numpy.random`` loads ``secrets``, ``hmac`` and OpenSSL, 5-6 MB of
  resident memory; fastnn never imports it. A ``numpy.random.Generator`` passed by a
  user is still accepted wherever a generator is (:func:`is_generator`).

The stream is ``numpy.random.Philox(key=k0 + 2**64 * k1, counter=0)``'s, which the
tests use as the oracle; the distributions are fastnn's own:

- ``random``: ``(word >> 11) * 2**-53`` (as NumPy's), one word per value;
  float32 uses ``(word >> 40) * 2**-24``.
- ``standard_normal``: Box-Muller, ``sqrt(-2 log(1 - u1)) * cos(2 pi u2)`` from two
  words per value (the sine half is not used, so draws of a and b values consume the
  same words as one draw of a + b).
- ``integers`` and the steps of ``permutation``: ``floor(word * range / 2**64)``, one
  word per value; the bias is below ``range / 2**64``.
- ``permutation``: Fisher-Yates from the last position down.

Every draw of n values takes the next words of the stream in order, so consecutive
draws equal one draw of their total size (the fused training step relies on it).

The words come from the compiled ``fastnn._kernels`` when it is built, else from the
NumPy twin below; the tests check that both give the same words and permutations.
"""
from __future__ import annotations

import math
import numbers
import sys

import numpy as np

__all__ = ["Generator", "is_generator", "generator_state", "restore_generator"]

_MASK64 = (1 << 64) - 1
_M0, _M1 = 0xD2E7470EE14C6C93, 0xCA5A826395121157    # Philox4x64 multipliers
_W0, _W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B    # Weyl key increments
_LOW32 = np.uint64(0xFFFFFFFF)
_32 = np.uint64(32)
STATE_NAME = "Philox4x64-10"
# Scalar operations per word (20 multiplies of 64 bits, xors, additions), for
# config.threads_for; below _THREADED_WORDS words it always answers one thread.
_WORD_COST = 60
_THREADED_WORDS = (1 << 21) // _WORD_COST


# ---------------------------------------------------------------------------
# The stream: NumPy twin of csrc/philox.h
# ---------------------------------------------------------------------------

def _mulhilo(a, b):
    """(high, low) 64-bit halves of the 128-bit products a * b (uint64 arrays),
    from 32-bit halves, as the portable branch of csrc/philox.h."""
    a_lo, a_hi, b_lo, b_hi = a & _LOW32, a >> _32, b & _LOW32, b >> _32
    ll, lh, hl, hh = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (ll >> _32) + (lh & _LOW32) + (hl & _LOW32)
    high = hh + (lh >> _32) + (hl >> _32) + (mid >> _32)
    low = (mid << _32) | (ll & _LOW32)
    return high, low


def _blocks(key0, key1, first, count):
    """Philox4x64-10 of the counters first + 1 .. first + count: (count, 4) uint64."""
    c0 = np.arange(first, first + count, dtype=np.uint64) + np.uint64(1)
    c1 = np.zeros(count, np.uint64)     # word indices < 2**64: no carry out of c0
    c2 = np.zeros(count, np.uint64)
    c3 = np.zeros(count, np.uint64)
    m0, m1 = np.full(count, _M0, np.uint64), np.full(count, _M1, np.uint64)
    k0, k1 = key0, key1
    for _ in range(10):
        hi0, lo0 = _mulhilo(m0, c0)
        hi1, lo1 = _mulhilo(m1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0, k1 = (k0 + _W0) & _MASK64, (k1 + _W1) & _MASK64
    return np.stack([c0, c1, c2, c3], axis=1)


def philox_words(key0, key1, start, n):
    """Words start .. start + n - 1 of the stream of key (key0, key1): uint64 (n,)."""
    if n == 0:
        return np.empty(0, np.uint64)
    first, last = start // 4, (start + n - 1) // 4
    words = _blocks(key0, key1, first, last - first + 1).reshape(-1)
    return words[start % 4:start % 4 + n].copy()


def _high_product(words, bounds):
    """floor(words * bounds / 2**64): each word mapped to 0 .. bound - 1."""
    return _mulhilo(words, bounds)[0]


def philox_permutation(key0, key1, start, n):
    """The order of 0 .. n-1 that csrc/philox.h's Fisher-Yates draws from word start on."""
    order = np.arange(n, dtype=np.int64)
    if n < 2:
        return order
    positions = np.arange(n - 1, 0, -1, dtype=np.int64)            # i = n-1 .. 1
    swaps = _high_product(philox_words(key0, key1, start, n - 1),
                          (positions + 1).astype(np.uint64)).astype(np.int64)
    for i, j in zip(positions.tolist(), swaps.tolist()):
        order[i], order[j] = order[j], order[i]
    return order


_KERNELS = []   # [fastnn._kernels or None] once looked up


def _compiled():
    """fastnn._kernels when built (same words, faster), else None."""
    if not _KERNELS:
        try:
            from fastnn import _kernels
        except ImportError:
            _kernels = None
        _KERNELS.append(_kernels if hasattr(_kernels, "philox_words") else None)
    return _KERNELS[0]


# ---------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------

def _size_count(size):
    """(shape or None, number of values) of a numpy-style ``size`` argument."""
    if size is None:
        return None, 1
    if type(size) is int:   # the common cases first: plain ints
        shape = (size,)
    elif type(size) is tuple and all(type(d) is int for d in size):
        shape = size
    else:
        if isinstance(size, numbers.Integral) and not isinstance(size, bool):
            size = (int(size),)
        if not isinstance(size, (tuple, list)) or not all(
                isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in size):
            raise TypeError(f"size must be None, an int or a tuple of ints, got {size!r}")
        shape = tuple(int(d) for d in size)
    if any(d < 0 for d in shape):
        raise ValueError(f"size must not have negative entries, got {shape}")
    return shape, math.prod(shape)


def _shaped(values, shape, dtype=None):
    """values reshaped to ``shape``, or the single value as a Python/NumPy scalar."""
    if shape is None:
        return values[0] if dtype is None else dtype(values[0])
    return values.reshape(shape)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not 0 <= seed < 1 << 128:
        raise ValueError(f"seed must be in [0, 2**128), got {seed}")
    return int(seed)


class Generator:
    """A seeded stream of random numbers with NumPy ``Generator``-like methods.

    Parameters
    ----------
    seed : int, default 0
        In [0, 2**128): the Philox key (low 64 bits, high 64 bits). Different seeds
        give independent streams.

    Notes
    -----
    The methods fastnn needs are here, with NumPy's names and argument order:
    :meth:`random`, :meth:`uniform`, :meth:`standard_normal`, :meth:`normal`,
    :meth:`integers`, :meth:`permutation`, :meth:`shuffle` and :meth:`choice`.
    :attr:`state` reads and restores the position in the stream, and
    ``Generator().manual_seed(s)`` follows ``torch.Generator``.
    """

    def __init__(self, seed=0):
        self.seed(seed)

    def seed(self, seed):
        """Restart the stream of ``seed`` (in place)."""
        seed = _check_seed(seed)
        self._key = (seed & _MASK64, seed >> 64)
        self._position = 0

    def manual_seed(self, seed):
        """PyTorch's spelling of :meth:`seed`; returns the generator, as
        ``torch.Generator().manual_seed(42)`` does."""
        self.seed(seed)
        return self

    # -- state --------------------------------------------------------------

    @property
    def state(self):
        """``{"bit_generator": "Philox4x64-10", "key": [k0, k1], "position": i}`` (JSON-able)."""
        return {"bit_generator": STATE_NAME, "key": list(self._key), "position": self._position}

    @state.setter
    def state(self, value):
        if not isinstance(value, dict) or value.get("bit_generator") != STATE_NAME:
            raise ValueError(f"state must be a {STATE_NAME} state dict, got {value!r}")
        key, position = value.get("key"), value.get("position")
        if (not isinstance(key, (list, tuple)) or len(key) != 2
                or not all(isinstance(k, int) and not isinstance(k, bool) and 0 <= k <= _MASK64
                           for k in key)):
            raise ValueError(f"state['key'] must be two ints in [0, 2**64), got {key!r}")
        # 2**63 words take centuries to draw: a position beyond is not a real state
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < 1 << 63:
            raise ValueError(f"state['position'] must be an int in [0, 2**63), got {position!r}")
        self._key, self._position = (key[0], key[1]), position

    def __repr__(self):
        return f"fastnn.Generator(position={self._position})"

    # -- the stream ----------------------------------------------------------

    def _advance(self, n):
        """Take the next n words: returns the index of the first."""
        start = self._position
        if start + n > _MASK64:
            raise OverflowError("random stream exhausted (2**64 words); reseed the generator")
        self._position = start + n
        return start

    def _words(self, n):
        """The next n words (uint64)."""
        start = self._advance(n)
        kernels = _compiled()
        if kernels is not None:
            return kernels.philox_words(self._key[0], self._key[1], start, n)
        return philox_words(self._key[0], self._key[1], start, n)

    def _uniform64(self, n):
        """The next n words as float64 in [0, 1): ``(word >> 11) * 2**-53``."""
        start = self._advance(n)
        kernels = _compiled()
        if kernels is not None:
            threads = 1
            if n >= _THREADED_WORDS:
                from fastnn import config
                threads = config.threads_for(_WORD_COST * n)
            return kernels.philox_uniform(self._key[0], self._key[1], start, n, threads)
        words = philox_words(self._key[0], self._key[1], start, n)
        return (words >> np.uint64(11)).astype(np.float64) * 2.0 ** -53

    # -- distributions -------------------------------------------------------

    def random(self, size=None, dtype=np.float64):
        """Uniform floats in [0, 1); one word per value."""
        shape, n = _size_count(size)
        if dtype is np.float64 or np.dtype(dtype) == np.float64:
            dtype = np.dtype(np.float64)
            values = self._uniform64(n)
        elif np.dtype(dtype) == np.float32:
            dtype = np.dtype(np.float32)
            values = (self._words(n) >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
        else:
            raise TypeError(f"dtype must be float32 or float64, got {np.dtype(dtype)}")
        return _shaped(values, shape, float if dtype == np.float64 else None)

    def uniform(self, low=0.0, high=1.0, size=None):
        """Uniform floats in [low, high): ``low + (high - low) * random()``."""
        low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("uniform: low and high must be finite")
        if size is None and (low.ndim or high.ndim):
            size = np.broadcast_shapes(low.shape, high.shape)
        values = low + (high - low) * self.random(size)
        return float(values) if size is None else values

    def standard_normal(self, size=None, dtype=np.float64):
        """Normal floats of mean 0 and variance 1 (Box-Muller; two words per value)."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        shape, n = _size_count(size)
        words = self._uniform64(2 * n)
        radius = np.sqrt(-2.0 * np.log1p(-words[0::2]))      # 1 - u in (0, 1]: log is finite
        values = (radius * np.cos(2.0 * math.pi * words[1::2])).astype(dtype, copy=False)
        return _shaped(values, shape, float if dtype == np.float64 else None)

    def normal(self, loc=0.0, scale=1.0, size=None):
        """Normal floats of mean ``loc`` and standard deviation ``scale``."""
        loc, scale = np.asarray(loc, np.float64), np.asarray(scale, np.float64)
        if np.any(scale < 0):
            raise ValueError("normal: scale must be >= 0")
        if size is None and (loc.ndim or scale.ndim):
            size = np.broadcast_shapes(loc.shape, scale.shape)
        values = loc + scale * self.standard_normal(size)
        return float(values) if size is None else values

    def integers(self, low, high=None, size=None, dtype=np.int64, endpoint=False):
        """Integers in [low, high) (``endpoint=True``: [low, high]); one word per value."""
        if high is None:
            low, high = 0, low
        for name, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"integers: {name} must be an int, got {v!r}")
        low, high = int(low), int(high) + (1 if endpoint else 0)
        span = high - low
        if span < 1:
            raise ValueError(f"integers: high must be > low, got low={low}, high={high}")
        if span > 1 << 64:
            raise ValueError("integers: high - low must be at most 2**64")
        info = np.iinfo(dtype)
        if low < info.min or high - 1 > info.max:
            raise ValueError(f"integers: [{low}, {high}) does not fit {np.dtype(dtype)}")
        shape, n = _size_count(size)
        words = self._words(n)
        offsets = words if span == 1 << 64 else _high_product(words, np.full(n, span, np.uint64))
        if shape is None:
            return int(offsets[0]) + low
        # low + offset fits dtype (checked above), so wrapping 64-bit arithmetic is exact
        if np.dtype(dtype).kind == "u":
            return (offsets + np.uint64(low)).astype(dtype).reshape(shape)
        return (offsets.view(np.int64) + np.int64(low)).astype(dtype).reshape(shape)

    def permutation(self, x):
        """A shuffled copy of ``arange(x)`` (int x) or of array x along its first axis."""
        if isinstance(x, numbers.Integral) and not isinstance(x, bool):
            if x < 0:
                raise ValueError(f"permutation: n must be >= 0, got {x}")
            return self._order(int(x))
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("permutation: x must be an int or an array with at least one axis")
        return x[self._order(len(x))]

    def shuffle(self, x):
        """Shuffle array ``x`` in place along its first axis."""
        if not isinstance(x, np.ndarray):
            raise TypeError(f"shuffle: x must be a numpy array, got {type(x).__name__}")
        if x.ndim == 0:
            raise ValueError("shuffle: x must have at least one axis")
        x[...] = x[self._order(len(x))]

    def choice(self, a, size=None, replace=True):
        """Values drawn from ``a`` (an array, or ``arange(a)`` for an int), uniformly;
        without replacement they are the first ``size`` of a permutation."""
        pool = np.arange(a) if isinstance(a, numbers.Integral) and not isinstance(a, bool) \
            else np.asarray(a)
        if pool.ndim == 0 or len(pool) == 0:
            raise ValueError("choice: a must be a positive int or a non-empty array")
        shape, n = _size_count(size)
        if replace:
            picks = pool[self.integers(0, len(pool), n)]
        else:
            if n > len(pool):
                raise ValueError(f"choice: cannot take {n} of {len(pool)} without replacement")
            picks = pool[self._order(len(pool))[:n]]
        return picks[0] if shape is None else picks.reshape(shape + pool.shape[1:])

    def _order(self, n):
        start = self._advance(max(n - 1, 0))
        kernels = _compiled()
        if kernels is not None:
            return kernels.philox_permutation(self._key[0], self._key[1], start, n)
        return philox_permutation(self._key[0], self._key[1], start, n)


# ---------------------------------------------------------------------------
# Generators users pass in
# ---------------------------------------------------------------------------

def is_generator(value):
    """Whether ``value`` is a fastnn :class:`Generator` or a ``numpy.random.Generator``.

    ``numpy.random`` is not imported to answer: if it is not loaded, nobody can have
    made one of its generators.
    """
    if isinstance(value, Generator):
        return True
    numpy_random = sys.modules.get("numpy.random")
    return numpy_random is not None and isinstance(value, numpy_random.Generator)


def _check_pcg64_state(state):
    """Raise ValueError unless ``state`` is a well-formed PCG64 state.

    Models saved before fastnn had its own generator hold NumPy's PCG64 state, the
    only NumPy state fastnn ever wrote. NumPy trusts the numbers of a state it is
    given (other bit generators' read positions are not range-checked: a crafted
    one reads outside its buffer), so every field is checked here first.
    """
    def is_int(v, bound):
        return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < bound
    inner = state.get("state")
    if (not isinstance(inner, dict) or set(inner) != {"state", "inc"}
            or not is_int(inner["state"], 1 << 128) or not is_int(inner["inc"], 1 << 128)
            or state.get("has_uint32") not in (0, 1) or not is_int(state.get("uinteger"), 1 << 32)):
        raise ValueError(f"not a valid PCG64 state: {state!r}"[:200])


def generator_state(generator):
    """A JSON-able state of a fastnn or NumPy generator."""
    return generator.state if isinstance(generator, Generator) else generator.bit_generator.state


def restore_generator(generator, state):
    """``generator`` moved to ``state``; a fresh generator of the state's kind when it
    is of another kind (a NumPy state restores into a ``numpy.random.Generator``).

    Raises ValueError for anything but a well-formed fastnn state or NumPy PCG64
    state (the only two kinds fastnn has written).
    """
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name == STATE_NAME:
        if not isinstance(generator, Generator):
            generator = Generator()
        generator.state = state
        return generator
    if name != "PCG64":
        raise ValueError(f"not a random generator state: {state!r}"[:200])
    _check_pcg64_state(state)
    import numpy.random as numpy_random
    if not (isinstance(generator, numpy_random.Generator)
            and type(generator.bit_generator) is numpy_random.PCG64):
        generator = numpy_random.Generator(numpy_random.PCG64())
    generator.bit_generator.state = state
    return generator
