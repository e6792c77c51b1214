"""Learning-rate schedules: values from Keras's formulas worked by hand."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from fastnn.optimizers import schedules as S


def test_exponential_decay():
    s = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert s(0) == pytest.approx(0.1)
    assert s(10) == pytest.approx(0.05)
    assert s(5) == pytest.approx(0.1 * 0.5 ** 0.5)
    assert s(25) == pytest.approx(0.1 * 0.5 ** 2.5)


def test_exponential_decay_staircase():
    s = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert [s(t) for t in (0, 9, 10, 19, 20)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])


def test_piecewise_constant_boundaries_belong_to_the_left_interval():
    s = S.PiecewiseConstantDecay([100, 110], [1.0, 0.5, 0.1])
    assert [s(t) for t in (0, 100, 101, 110, 111, 10_000)] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]


def test_inverse_time_decay():
    s = S.InverseTimeDecay(0.1, decay_steps=1.0, decay_rate=0.5)
    assert s(0) == pytest.approx(0.1)
    assert s(2) == pytest.approx(0.1 / 2.0)
    st = S.InverseTimeDecay(1.0, decay_steps=4, decay_rate=1.0, staircase=True)
    assert [st(t) for t in (3, 4, 9)] == pytest.approx([1.0, 0.5, 1 / 3])
    assert S.InverseTimeDecay(1.0, 4, 1.0)(2) == pytest.approx(1 / 1.5)


def test_polynomial_decay_linear_and_capped():
    s = S.PolynomialDecay(0.1, decay_steps=100, end_learning_rate=0.01)
    assert s(0) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.055)
    assert s(100) == pytest.approx(0.01)
    assert s(500) == pytest.approx(0.01)


def test_polynomial_decay_power_and_default_end():
    s = S.PolynomialDecay(1.0, decay_steps=10, power=2.0)
    assert s(5) == pytest.approx((1.0 - 0.0001) * 0.25 + 0.0001)


def test_polynomial_decay_cycle():
    s = S.PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, cycle=True)
    assert s(0) == pytest.approx(1.0)          # multiplier is 1 at step 0
    assert s(10) == pytest.approx(0.0)
    # step 15: horizon ceil(1.5) * 10 = 20, so 1 - 15/20
    assert s(15) == pytest.approx(0.25)
    assert s(30) == pytest.approx(0.0)


def test_cosine_decay():
    s = S.CosineDecay(1.0, decay_steps=100, alpha=0.1)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.9 * 0.5 + 0.1)
    assert s(25) == pytest.approx(0.9 * 0.5 * (1 + math.cos(math.pi / 4)) + 0.1)
    assert s(100) == pytest.approx(0.1)
    assert s(1000) == pytest.approx(0.1)


def test_cosine_decay_with_warmup_is_the_increasing_learning_rate():
    s = S.CosineDecay(0.0, decay_steps=10, warmup_target=1.0, warmup_steps=4)
    assert [s(t) for t in (0, 1, 2, 3)] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert s(4) == pytest.approx(1.0)
    assert s(9) == pytest.approx(0.5)            # 5 of 10 decay steps done
    assert s(14) == pytest.approx(0.0)
    assert s(100) == pytest.approx(0.0)


def test_cosine_decay_ignores_warmup_steps_without_target():
    assert S.CosineDecay(1.0, 10, warmup_steps=5)(5) == pytest.approx(0.5)


def test_cosine_decay_zero_warmup_steps_with_target():
    s = S.CosineDecay(0.3, 10, warmup_target=1.0, warmup_steps=0)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.5)


def test_cosine_decay_restarts_t_mul_1():
    s = S.CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=1.0, m_mul=0.5)
    assert s(0) == pytest.approx(1.0)
    assert s(5) == pytest.approx(0.5)
    assert s(10) == pytest.approx(0.5)           # restart at half the height
    assert s(15) == pytest.approx(0.25)


def test_cosine_decay_restarts_geometric_periods():
    s = S.CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=1.0, alpha=0.0)
    # periods: [0, 10), [10, 30), [30, 70)
    assert s(9.999999) == pytest.approx(0.0, abs=1e-9)
    assert s(10) == pytest.approx(1.0)
    assert s(20) == pytest.approx(0.5)           # halfway through the 20-step period
    assert s(30) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.5)
    a = S.CosineDecayRestarts(2.0, 10, t_mul=2.0, m_mul=0.5, alpha=0.2)
    # period 1 (i=1), fraction 0.25: 2 * (0.8 * 0.5 * 0.5 * (1 + cos(pi/4)) + 0.2)
    assert a(15) == pytest.approx(2.0 * (0.8 * 0.25 * (1 + math.cos(math.pi / 4)) + 0.2))


def test_cosine_decay_restarts_shrinking_periods_end_at_the_floor():
    # t_mul < 1: periods [0, 10), [10, 15), [15, 17.5), ... all end at step 20, where
    # Keras's formula (and fastnn's before) took the log of a number <= 0: NaN rates.
    s = S.CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=0.5, m_mul=1.0, alpha=0.1)
    assert s(5) == pytest.approx(0.1 + 0.9 * 0.5)
    assert s(10) == pytest.approx(1.0)
    assert s(12.5) == pytest.approx(0.55)        # halfway through the 5-step period
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert s(20) == s(21) == s(10_000) == pytest.approx(0.1)
        np.testing.assert_allclose(s(np.array([12.5, 20.0, 99.0])), [0.55, 0.1, 0.1])


def test_a_schedule_giving_a_non_finite_rate_is_an_error():
    class Broken(S.LearningRateSchedule):
        def decay(self, step):
            return np.log(step - 1.0)

    with pytest.raises(ValueError, match="Broken gave a non-finite learning rate at step 0"):
        with np.errstate(invalid="ignore"):
            Broken()(0)


def test_array_steps_give_arrays_matching_scalars():
    s = S.CosineDecayRestarts(0.1, 7, t_mul=1.5, m_mul=0.8, alpha=0.05)
    steps = np.arange(60)
    values = s(steps)
    assert isinstance(values, np.ndarray) and values.shape == (60,)
    np.testing.assert_allclose(values, [s(int(t)) for t in steps], rtol=1e-15)
    assert isinstance(s(3), float) and isinstance(s(np.int64(3)), float)


@pytest.mark.parametrize("sched", [
    S.ExponentialDecay(0.1, 10, 0.9, staircase=True),
    S.PiecewiseConstantDecay([10, 20], [0.3, 0.2, 0.1]),
    S.InverseTimeDecay(0.1, 5, 0.5),
    S.PolynomialDecay(0.1, 50, 0.001, power=0.5, cycle=True),
    S.CosineDecay(0.01, 100, alpha=0.1, warmup_target=0.1, warmup_steps=5),
    S.CosineDecayRestarts(0.1, 20, t_mul=3.0, m_mul=0.7, alpha=0.01),
], ids=lambda s: type(s).__name__)
def test_serialize_round_trip(sched):
    cfg = json.loads(json.dumps(S.serialize(sched)))
    back = S.deserialize(cfg)
    assert type(back) is type(sched) and back.get_config() == sched.get_config()
    steps = np.arange(0, 120, 7)
    np.testing.assert_array_equal(back(steps), sched(steps))
    assert S.get(cfg).get_config() == sched.get_config()


def test_deserialize_refuses_unknown_classes():
    with pytest.raises(ValueError, match="did you mean 'exponentialdecay'"):
        S.deserialize({"class_name": "ExponentialDecy", "config": {}})
    with pytest.raises(TypeError):
        S.deserialize(["ExponentialDecay"])


@pytest.mark.parametrize("make,exc,word", [
    (lambda: S.ExponentialDecay(0.1, 0, 0.5), ValueError, "decay_steps"),
    (lambda: S.ExponentialDecay(-0.1, 10, 0.5), ValueError, "initial_learning_rate"),
    (lambda: S.ExponentialDecay(0.1, 10, "x"), TypeError, "decay_rate"),
    (lambda: S.PiecewiseConstantDecay([1, 2], [0.1, 0.2]), ValueError, "one more"),
    (lambda: S.PiecewiseConstantDecay([2, 1], [0.1, 0.2, 0.3]), ValueError, "increasing"),
    (lambda: S.PolynomialDecay(0.1, -5), ValueError, "decay_steps"),
    (lambda: S.CosineDecay(0.1, 10, alpha=2.0), ValueError, "alpha"),
    (lambda: S.CosineDecayRestarts(0.1, 10, t_mul=0.0), ValueError, "t_mul"),
])
def test_bad_arguments_are_named(make, exc, word):
    with pytest.raises(exc, match=word):
        make()


def test_bad_steps():
    s = S.ExponentialDecay(0.1, 10, 0.5)
    with pytest.raises(ValueError, match="step"):
        s(-1)
    with pytest.raises(TypeError, match="step"):
        s("3")
    with pytest.raises(TypeError, match="step"):
        s(True)
