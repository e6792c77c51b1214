"""fastnn.initializers: Keras fan rules, distribution statistics, seeds, orthogonality.

Statistics use 200k-200k draws: the standard error of a sample standard
deviation is then about 0.16 %, so the 1.5 % tolerances below leave room
without letting a wrong formula (errors of 10 % and more) through.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from fastnn import config, initializers, utils
from fastnn.initializers import compute_fans

SHAPE = (400, 500)  # fan_in 400, fan_out 500, fan_avg 450


def test_compute_fans():
    assert compute_fans(()) == (1, 1)
    assert compute_fans((7,)) == (7, 7)
    assert compute_fans((3, 5)) == (3, 5)
    assert compute_fans((2, 3, 4, 5)) == (24, 30)


def test_constants():
    np.testing.assert_array_equal(initializers.Zeros()((2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(initializers.Ones()((4,)), np.ones(4))
    np.testing.assert_array_equal(initializers.Constant(2.5)((2, 2)), np.full((2, 2), 2.5))
    assert initializers.Constant()((1,))[0] == 0.0


def test_dtype_default_and_explicit():
    assert initializers.GlorotUniform(seed=0)((3, 4)).dtype == np.float32
    assert initializers.Zeros()((3,), dtype="float64").dtype == np.float64
    config.set_floatx("float64")
    value = initializers.HeNormal(seed=0)((3, 4))
    assert value.dtype == np.float64 and value.flags.c_contiguous
    with pytest.raises(ValueError, match="dtype"):
        initializers.Ones()((2,), dtype="int32")


@pytest.mark.parametrize("cls,limit", [
    (initializers.GlorotUniform, math.sqrt(6 / (400 + 500))),
    (initializers.HeUniform, math.sqrt(6 / 400)),
    (initializers.LecunUniform, math.sqrt(3 / 400)),
])
def test_uniform_variance_scaling(cls, limit):
    w = cls(seed=1)(SHAPE, dtype="float64")
    assert np.abs(w).max() <= limit
    assert np.abs(w).max() > 0.999 * limit         # the whole interval is used
    assert abs(w.mean()) < 0.01 * limit
    assert w.std() == pytest.approx(limit / math.sqrt(3), rel=0.015)


@pytest.mark.parametrize("cls,variance", [
    (initializers.GlorotNormal, 2 / (400 + 500)),
    (initializers.HeNormal, 2 / 400),
    (initializers.LecunNormal, 1 / 400),
])
def test_truncated_normal_variance_scaling(cls, variance):
    w = cls(seed=2)(SHAPE, dtype="float64")
    # The truncation is at 2 sigma of the *pre-truncation* normal, sigma = sqrt(var)/0.8796.
    sigma = math.sqrt(variance) / 0.87962566103423978
    assert np.abs(w).max() <= 2 * sigma
    assert np.abs(w).max() > 1.99 * sigma
    assert w.std() == pytest.approx(math.sqrt(variance), rel=0.015)
    assert abs(w.mean()) < 0.01 * sigma


def test_variance_scaling_modes_and_distributions():
    fan_out = initializers.VarianceScaling(3.0, "fan_out", "untruncated_normal", seed=3)
    w = fan_out(SHAPE, dtype="float64")
    assert w.std() == pytest.approx(math.sqrt(3.0 / 500), rel=0.015)
    assert np.abs(w).max() > 3 * math.sqrt(3.0 / 500)  # not truncated
    assert fan_out.variance((10, 20)) == pytest.approx(3.0 / 20)
    assert initializers.VarianceScaling(mode="fan_avg").variance((10, 20)) == pytest.approx(1 / 15)
    with pytest.raises(ValueError, match="did you mean 'fan_in'"):
        initializers.VarianceScaling(mode="fan_inn")
    with pytest.raises(ValueError, match="distribution"):
        initializers.VarianceScaling(distribution="cauchy")


def test_random_uniform_normal_truncated():
    u = initializers.RandomUniform(seed=4)(SHAPE, dtype="float64")
    assert u.min() >= -0.05 and u.max() <= 0.05
    assert u.std() == pytest.approx(0.1 / math.sqrt(12), rel=0.015)
    u = initializers.RandomUniform(1.0, 3.0, seed=4)((1000,), dtype="float64")
    assert u.min() >= 1.0 and u.max() <= 3.0
    n = initializers.RandomNormal(mean=1.0, stddev=2.0, seed=5)(SHAPE, dtype="float64")
    assert n.mean() == pytest.approx(1.0, abs=0.02)
    assert n.std() == pytest.approx(2.0, rel=0.015)
    t = initializers.TruncatedNormal(mean=0.5, stddev=0.1, seed=6)(SHAPE, dtype="float64")
    assert np.abs(t - 0.5).max() <= 0.2
    assert t.std() == pytest.approx(0.1 * 0.87962566103423978, rel=0.015)
    assert initializers.RandomNormal()((3,)).dtype == np.float32


@pytest.mark.parametrize("shape", [(6, 6), (10, 4), (4, 10), (2, 3, 5)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    w = initializers.Orthogonal(gain=gain, seed=7)(shape, dtype="float64")
    assert w.shape == shape
    m = w.reshape(-1, shape[-1])
    rows, cols = m.shape
    gram = m.T @ m if rows >= cols else m @ m.T
    np.testing.assert_allclose(gram, gain ** 2 * np.eye(min(rows, cols)), atol=1e-12)


def test_orthogonal_needs_a_matrix():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        initializers.Orthogonal()((5,))


ALL_RANDOM = [initializers.RandomUniform, initializers.RandomNormal,
              initializers.TruncatedNormal, initializers.GlorotUniform,
              initializers.GlorotNormal, initializers.HeUniform, initializers.HeNormal,
              initializers.LecunUniform, initializers.LecunNormal, initializers.Orthogonal,
              initializers.VarianceScaling]


@pytest.mark.parametrize("cls", ALL_RANDOM, ids=lambda c: c.__name__)
def test_seeds(cls):
    shape = (6, 5)
    a = cls(seed=11)(shape)
    np.testing.assert_array_equal(a, cls(seed=11)(shape))      # same seed, same values
    np.testing.assert_array_equal(a, cls(seed=11)(shape))
    assert not np.array_equal(a, cls(seed=12)(shape))
    # seed=None: fastnn's generator, reproducible with set_random_seed
    utils.set_random_seed(3)
    first = cls()(shape), cls()(shape)
    utils.set_random_seed(3)
    second = cls()(shape), cls()(shape)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], first[1])                # successive draws differ


def test_argument_validation():
    with pytest.raises(ValueError, match="seed must be >= 0"):
        initializers.GlorotUniform(seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        initializers.RandomNormal(seed=1.5)
    with pytest.raises(ValueError, match="stddev must be >= 0"):
        initializers.RandomNormal(stddev=-1.0)
    with pytest.raises(ValueError, match="maxval must be >= minval"):
        initializers.RandomUniform(1.0, 0.0)
    with pytest.raises(TypeError, match="shape"):
        initializers.Zeros()("3x4")
    with pytest.raises(ValueError, match="shape entries must be >= 0"):
        initializers.Zeros()((3, -1))
    assert initializers.Zeros()(3).shape == (3,)


def test_get_and_serialize():
    names = ["zeros", "ones", "constant", "random_uniform", "random_normal", "truncated_normal",
             "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal",
             "lecun_uniform", "orthogonal"]
    for name in names:
        init = initializers.get(name)
        assert isinstance(init, initializers.Initializer)
        back = initializers.deserialize(initializers.serialize(init))
        assert back == init and type(back) is type(init)
    assert isinstance(initializers.get("GlorotUniform"), initializers.GlorotUniform)
    assert isinstance(initializers.get(initializers.HeNormal), initializers.HeNormal)
    init = initializers.RandomNormal(0.0, 0.1, seed=9)
    assert initializers.get(init) is init
    assert initializers.serialize(init) == {
        "class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 0.1, "seed": 9}}
    assert initializers.GlorotUniform(seed=1).get_config() == {"seed": 1}
    np.testing.assert_array_equal(
        initializers.deserialize(initializers.serialize(init))((3, 3)), init((3, 3)))

    def custom(shape, dtype=None):
        return np.full(shape, 7.0)

    assert initializers.get(custom) is custom
    with pytest.raises(ValueError, match="did you mean 'he_normal'"):
        initializers.get("he_norml")
    with pytest.raises(ValueError, match="unknown initializer class"):
        initializers.deserialize({"class_name": "Evil", "config": {}})

    class Sevens(initializers.Initializer):
        def sample(self, shape):
            return np.full(shape, 7.0)

    back = initializers.deserialize(initializers.serialize(Sevens()),
                                    custom_objects={"Sevens": Sevens})
    np.testing.assert_array_equal(back((2,)), [7.0, 7.0])
    with pytest.raises(TypeError, match="initializer must be"):
        initializers.get(1.0)
