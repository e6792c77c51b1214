"""Tests of fastnn.utils.random: the Philox stream (compiled and NumPy twin), the
distributions drawn from it, its state, and the generators users pass in."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import utils
from fastnn.utils import random as frandom

kernels = pytest.importorskip("fastnn._kernels")

KEYS = [(0, 0), (12345, 0), (1, 2), (2**64 - 1, 2**63 + 5)]


def numpy_philox(key0, key1):
    return np.random.Philox(key=key0 + (key1 << 64), counter=0)


@pytest.fixture
def twin_only(monkeypatch):
    """Make the generator use the NumPy twin instead of the compiled stream."""
    monkeypatch.setattr(frandom, "_KERNELS", [None])


# ---------------------------------------------------------------------------
# The stream: compiled, twin and NumPy's Philox agree
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("start,n", [(0, 0), (0, 1), (0, 8), (3, 37), (5, 16), (2, 1000), (1001, 63)])
def test_words_match_numpy_philox_compiled_and_twin(key, start, n):
    expected = numpy_philox(*key).random_raw(start + n)[start:]
    np.testing.assert_array_equal(kernels.philox_words(key[0], key[1], start, n), expected)
    np.testing.assert_array_equal(frandom.philox_words(key[0], key[1], start, n), expected)


@pytest.mark.parametrize("key", KEYS)
def test_uniform_is_numpys_philox_random(key):
    expected = np.random.Generator(numpy_philox(*key)).random(1003)
    np.testing.assert_array_equal(kernels.philox_uniform(key[0], key[1], 0, 1003), expected)
    np.testing.assert_array_equal(kernels.philox_uniform(key[0], key[1], 7, 100), expected[7:107])


def test_words_far_into_the_stream_compiled_equals_twin():
    start = 2**62 + 3
    np.testing.assert_array_equal(kernels.philox_words(9, 8, start, 50),
                                  frandom.philox_words(9, 8, start, 50))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 1000])
@pytest.mark.parametrize("start", [0, 1, 3, 6])
def test_permutation_compiled_equals_twin_and_is_a_permutation(n, start):
    got = kernels.philox_permutation(7, 9, start, n)
    np.testing.assert_array_equal(got, frandom.philox_permutation(7, 9, start, n))
    np.testing.assert_array_equal(np.sort(got), np.arange(n))
    assert got.dtype == np.int64


def test_kernels_refuse_negative_counts():
    for f in (kernels.philox_words, kernels.philox_uniform, kernels.philox_permutation):
        with pytest.raises(ValueError, match="n must be"):
            f(0, 0, 0, -1)


def test_every_draw_is_the_same_with_the_twin(monkeypatch):
    def draws(g):
        return [g.random(9), g.random(4, dtype=np.float32), g.standard_normal(7),
                g.integers(-5, 5, 11), g.permutation(30), g.uniform(2, 3, 5), g.normal(1, 2, 3),
                g.choice(10, 4, replace=False)]
    compiled = draws(frandom.Generator(77))
    monkeypatch.setattr(frandom, "_KERNELS", [None])
    for a, b in zip(compiled, draws(frandom.Generator(77))):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Draws are consecutive slices of the stream
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["random", "standard_normal"])
def test_consecutive_draws_equal_one_draw_of_their_total(method):
    a = frandom.Generator(5)
    parts = np.concatenate([getattr(a, method)(n) for n in (3, 1, 0, 10, 5)])
    np.testing.assert_array_equal(parts, getattr(frandom.Generator(5), method)(19))


def test_words_used_per_value():
    g = frandom.Generator(3)
    g.random(10)
    assert g.state["position"] == 10
    g.standard_normal(4)
    assert g.state["position"] == 18
    g.integers(0, 9, 5)
    assert g.state["position"] == 23
    g.permutation(6)
    assert g.state["position"] == 28
    g.permutation(1)
    g.permutation(0)
    assert g.state["position"] == 28


def test_random_values_follow_the_documented_formula():
    g = frandom.Generator(11)
    words = frandom.philox_words(11, 0, 0, 20)
    np.testing.assert_array_equal(g.random(10), (words[:10] >> np.uint64(11)) * 2.0**-53)
    f32 = g.random(10, dtype=np.float32)
    assert f32.dtype == np.float32
    np.testing.assert_array_equal(f32, (words[10:] >> np.uint64(40)).astype(np.float32) * 2.0**-24)


# ---------------------------------------------------------------------------
# Distributions (statistical checks at about 5 sigma: they fail on a wrong formula)
# ---------------------------------------------------------------------------

N = 200_000


def test_random_is_uniform_in_unit_interval():
    u = frandom.Generator(1).random(N)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / N)
    counts = np.bincount((u * 10).astype(int), minlength=10)
    chi2 = ((counts - N / 10) ** 2 / (N / 10)).sum()
    assert chi2 < 40          # 9 degrees of freedom: p < 1e-5 above 40


def test_standard_normal_moments_and_tails():
    z = frandom.Generator(2).standard_normal(N)
    assert abs(z.mean()) < 5 / math.sqrt(N)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / N)
    assert abs(np.mean(np.abs(z) > 2) - 0.0455) < 5 * math.sqrt(0.0455 * 0.9545 / N)
    assert np.isfinite(z).all()


def test_normal_and_uniform_scale_and_shift():
    x = frandom.Generator(3).normal(10.0, 0.5, N)
    assert abs(x.mean() - 10) < 5 * 0.5 / math.sqrt(N) and abs(x.std() - 0.5) < 0.01
    u = frandom.Generator(4).uniform(-3, 5, N)
    assert u.min() >= -3 and u.max() < 5 and abs(u.mean() - 1) < 5 * 8 / math.sqrt(12 * N)


def test_integers_cover_their_range_uniformly():
    v = frandom.Generator(5).integers(-3, 4, N)
    assert v.dtype == np.int64 and v.min() == -3 and v.max() == 3
    counts = np.bincount(v + 3)
    chi2 = ((counts - N / 7) ** 2 / (N / 7)).sum()
    assert chi2 < 36          # 6 degrees of freedom
    assert set(frandom.Generator(6).integers(2, 4, 500, endpoint=True).tolist()) == {2, 3, 4}
    assert set(frandom.Generator(6).integers(3, size=100).tolist()) == {0, 1, 2}


def test_integers_full_64_bit_ranges():
    g = frandom.Generator(7)
    full = g.integers(0, 2**64, 1000, dtype=np.uint64)
    assert full.dtype == np.uint64 and full.max() > 2**63
    signed = g.integers(-2**63, 2**63, 1000)
    assert signed.min() < -2**60 and signed.max() > 2**60
    scalar = g.integers(0, 2**63 - 1)
    assert isinstance(scalar, int) and 0 <= scalar < 2**63 - 1


def test_permutations_are_uniform():
    g = frandom.Generator(8)
    seen = {}
    for _ in range(24_000):
        key = tuple(g.permutation(4).tolist())
        seen[key] = seen.get(key, 0) + 1
    assert len(seen) == 24
    chi2 = sum((c - 1000) ** 2 / 1000 for c in seen.values())
    assert chi2 < 60          # 23 degrees of freedom


def test_permutation_shuffle_and_choice_of_arrays():
    x = np.arange(20).reshape(10, 2)
    p = frandom.Generator(9).permutation(x)
    np.testing.assert_array_equal(p, x[frandom.Generator(9).permutation(10)])
    y = x.copy()
    frandom.Generator(9).shuffle(y)
    np.testing.assert_array_equal(y, p)
    picks = frandom.Generator(10).choice(np.arange(100, 110), 5, replace=False)
    assert len(set(picks.tolist())) == 5 and set(picks.tolist()) <= set(range(100, 110))
    assert frandom.Generator(10).choice(3, (2, 2)).shape == (2, 2)


# ---------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------

def test_scalar_and_shaped_sizes():
    g = frandom.Generator(0)
    assert isinstance(g.random(), float) and isinstance(g.standard_normal(), float)
    assert isinstance(g.uniform(), float) and isinstance(g.normal(), float)
    assert g.random((2, 3)).shape == (2, 3) and g.standard_normal((4, 1)).shape == (4, 1)
    assert g.random(0).shape == (0,)


@pytest.mark.parametrize("call,error,match", [
    (lambda g: g.random(-1), ValueError, "size"),
    (lambda g: g.random("3"), TypeError, "size"),
    (lambda g: g.random(3, dtype=np.int32), TypeError, "dtype"),
    (lambda g: g.standard_normal(3, dtype=np.int64), TypeError, "dtype"),
    (lambda g: g.normal(0, -1, 3), ValueError, "scale"),
    (lambda g: g.uniform(0, np.inf, 3), ValueError, "finite"),
    (lambda g: g.integers(5, 5), ValueError, "high"),
    (lambda g: g.integers(1.5, 3), TypeError, "low"),
    (lambda g: g.integers(0, 300, dtype=np.uint8), ValueError, "fit"),
    (lambda g: g.permutation(-2), ValueError, "n must"),
    (lambda g: g.permutation(np.float64(3.0)), ValueError, "x must"),
    (lambda g: g.shuffle([1, 2, 3]), TypeError, "numpy array"),
    (lambda g: g.choice(3, 5, replace=False), ValueError, "without replacement"),
    (lambda g: g.choice(0), ValueError, "non-empty"),
])
def test_bad_arguments_raise_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(frandom.Generator(0))


@pytest.mark.parametrize("seed,error", [(-1, ValueError), (2**128, ValueError), (1.0, TypeError),
                                        (True, TypeError), ("3", TypeError)])
def test_bad_seeds(seed, error):
    with pytest.raises(error, match="seed"):
        frandom.Generator(seed)


def test_the_seed_is_the_philox_key_low_word_first():
    seed = 3 + (5 << 64)
    np.testing.assert_array_equal(frandom.Generator(seed).random(5),
                                  np.random.Generator(numpy_philox(3, 5)).random(5))


def test_manual_seed_follows_torch_generator():
    g = fastnn.Generator()
    assert g.manual_seed(42) is g
    np.testing.assert_array_equal(g.random(4), fastnn.Generator(42).random(4))


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

def test_state_round_trips_through_json():
    g = frandom.Generator(2**100 + 7)
    g.random(13)
    state = json.loads(json.dumps(g.state))
    expected = g.random(6)
    h = frandom.Generator()
    h.state = state
    np.testing.assert_array_equal(h.random(6), expected)


@pytest.mark.parametrize("bad", [
    None, {"bit_generator": "PCG64"}, {"bit_generator": frandom.STATE_NAME, "key": [1], "position": 0},
    {"bit_generator": frandom.STATE_NAME, "key": [1, -1], "position": 0},
    {"bit_generator": frandom.STATE_NAME, "key": [1, 2], "position": -3},
    {"bit_generator": frandom.STATE_NAME, "key": [1, 2], "position": True},
    {"bit_generator": frandom.STATE_NAME, "key": [1, 2**64], "position": 0},
    {"bit_generator": frandom.STATE_NAME, "key": [1, 2], "position": 2**63},
])
def test_bad_states_are_refused_and_leave_the_generator_alone(bad):
    g = frandom.Generator(4)
    before = g.state
    with pytest.raises(ValueError, match="state"):
        g.state = bad
    assert g.state == before


def test_restore_generator_of_either_kind():
    ours = frandom.Generator(1)
    ours.random(3)
    restored = frandom.restore_generator(None, ours.state)
    assert isinstance(restored, frandom.Generator) and restored.state == ours.state
    numpy_gen = np.random.default_rng(5)
    numpy_gen.random(2)
    back = frandom.restore_generator(frandom.Generator(0), frandom.generator_state(numpy_gen))
    assert isinstance(back, np.random.Generator)
    np.testing.assert_array_equal(back.random(4), numpy_gen.random(4))
    same = np.random.default_rng(0)
    assert frandom.restore_generator(same, numpy_gen.bit_generator.state) is same
    for bad in ({"bit_generator": "os.system"}, "PCG64", {"state": 1}):
        with pytest.raises(ValueError, match="state"):
            frandom.restore_generator(frandom.Generator(0), bad)


def good_pcg64_state():
    return np.random.default_rng(3).bit_generator.state


@pytest.mark.parametrize("corrupt", [
    lambda s: s["state"].update(state=2**200),
    lambda s: s["state"].update(state=-1),
    lambda s: s["state"].update(inc="1"),
    lambda s: s["state"].update(extra=0),
    lambda s: s.update(has_uint32=2),
    lambda s: s.update(uinteger=2**32),
    lambda s: s.update(state=[1, 2]),
])
def test_a_corrupt_pcg64_state_is_refused_before_numpy_sees_it(corrupt):
    state = good_pcg64_state()
    corrupt(state)
    with pytest.raises(ValueError, match="PCG64"):
        frandom.restore_generator(frandom.Generator(0), state)


@pytest.mark.parametrize("state", [
    {"bit_generator": "MT19937", "state": {"key": [1] * 624, "pos": 100_000_000}},
    {"bit_generator": "Philox", "state": {"counter": [0] * 4, "key": [0, 0]}, "buffer": [0] * 4,
     "buffer_pos": -100_000_000, "has_uint32": 0, "uinteger": 0},
])
def test_only_fastnn_and_pcg64_states_are_restored(state):
    # NumPy does not range-check these generators' read positions: restoring them
    # from a file could read outside a buffer. fastnn never wrote them.
    with pytest.raises(ValueError, match="state"):
        frandom.restore_generator(frandom.Generator(0), state)


def test_is_generator():
    assert frandom.is_generator(frandom.Generator(0))
    assert frandom.is_generator(np.random.default_rng(0))
    for other in (None, 3, np.random.RandomState(0), np.random.PCG64(0)):
        assert not frandom.is_generator(other)


def test_numpy_generators_are_still_accepted_where_users_pass_one():
    from fastnn.data import train_test_split
    a = train_test_split(np.arange(20), random_state=np.random.default_rng(3))
    b = train_test_split(np.arange(20), random_state=np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    t = fastnn.rand(3, generator=np.random.default_rng(1))
    np.testing.assert_array_equal(t.numpy(), np.random.default_rng(1).random(3).astype(np.float32))


def test_training_does_not_load_numpy_random():
    # fastnn's footprint: numpy.random (with secrets, hmac and OpenSSL) is 5-6 MB of
    # resident memory that a fastnn program need not pay.
    code = ("import sys, numpy as np, fastnn\n"
            "from fastnn import layers\n"
            "fastnn.utils.set_random_seed(0)\n"
            "m = fastnn.Sequential([layers.Dense(8, activation='relu', input_shape=(4,)),\n"
            "                       layers.Dropout(0.2), layers.Dense(3, activation='softmax')])\n"
            "m.compile(optimizer='adam', loss='sparse_categorical_crossentropy')\n"
            "x = np.linspace(0, 1, 200, dtype=np.float32).reshape(50, 4)\n"
            "m.fit(x, np.arange(50) % 3, epochs=2, batch_size=8, validation_split=0.2, verbose=0)\n"
            "m.predict(x, verbose=0)\n"
            "loaded = [name for name in ('numpy.random', 'secrets', '_hashlib') if name in sys.modules]\n"
            "print(','.join(loaded) or 'none')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_uniform_is_the_same_for_any_thread_count(threads):
    n = 3 * (1 << 15) + 11            # several thread chunks and a partial one
    np.testing.assert_array_equal(kernels.philox_uniform(4, 5, 9, n, threads),
                                  kernels.philox_uniform(4, 5, 9, n, 1))
    np.testing.assert_array_equal(kernels.philox_uniform(4, 5, 9, n, threads)[-20:],
                                  np.random.Generator(numpy_philox(4, 5)).random(9 + n)[-20:])
