"""fastnn.constraints: exact projected values, in-place application, get/config."""
from __future__ import annotations

import math

import numpy as np
import pytest

from fastnn import constraints

EPS = 1e-7
# Columns have norms 5 and 1 (axis=0); rows have norms 3, 4, 1 (axis=1).
W = np.array([[3.0, 0.0], [4.0, 0.0], [0.0, 1.0]])


def test_max_norm():
    out = constraints.MaxNorm(2.0)(W)
    np.testing.assert_allclose(out[:, 0], W[:, 0] * 2 / (EPS + 5), rtol=1e-15)
    np.testing.assert_allclose(out[:, 1], W[:, 1] * 1 / (EPS + 1), rtol=1e-15)   # within: ~kept
    out = constraints.MaxNorm(3.5, axis=1)(W)
    np.testing.assert_allclose(out[1], W[1] * 3.5 / (EPS + 4), rtol=1e-15)
    np.testing.assert_allclose(out[0], W[0] * 3 / (EPS + 3), rtol=1e-15)
    assert np.linalg.norm(constraints.MaxNorm()(W)[:, 0]) == pytest.approx(2.0, rel=1e-7)


def test_min_max_norm():
    out = constraints.MinMaxNorm(min_value=2.0, max_value=4.0)(W)
    np.testing.assert_allclose(out[:, 0], W[:, 0] * 4 / (EPS + 5), rtol=1e-15)
    np.testing.assert_allclose(out[:, 1], W[:, 1] * 2 / (EPS + 1), rtol=1e-15)
    # rate 0.5: halfway between the current norm and the clipped one
    out = constraints.MinMaxNorm(2.0, 4.0, rate=0.5)(W)
    np.testing.assert_allclose(out[:, 0], W[:, 0] * 4.5 / (EPS + 5), rtol=1e-15)
    np.testing.assert_allclose(out[:, 1], W[:, 1] * 1.5 / (EPS + 1), rtol=1e-15)


def test_unit_norm():
    out = constraints.UnitNorm()(W)
    np.testing.assert_allclose(out, W / (EPS + np.array([5.0, 1.0])), rtol=1e-15)
    out = constraints.UnitNorm(axis=1)(W)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), [1.0, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(constraints.UnitNorm()(np.zeros((2, 2))), np.zeros((2, 2)))


def test_non_neg_and_clip_value():
    w = np.array([-1.0, 0.0, 2.5, -0.25])
    np.testing.assert_array_equal(constraints.NonNeg()(w), [0.0, 0.0, 2.5, 0.0])
    np.testing.assert_array_equal(constraints.ClipValue(-0.5, 1.0)(w), [-0.5, 0.0, 1.0, -0.25])


def test_call_returns_new_array_apply_writes_in_place():
    w = W.copy()
    out = constraints.MaxNorm(1.0)(w)
    assert out is not w
    np.testing.assert_array_equal(w, W)
    assert constraints.MaxNorm(1.0).apply_(w) is w
    np.testing.assert_array_equal(w, out)
    w32 = W.astype(np.float32)
    assert constraints.UnitNorm()(w32).dtype == np.float32
    constraints.ClipValue(-1, 1).apply_(w32)
    assert w32.max() == 1.0
    with pytest.raises(TypeError, match="float32 or float64"):
        constraints.NonNeg().apply_([1.0, -1.0])


def test_bias_vector_uses_its_whole_norm():
    b = np.array([6.0, 8.0])
    np.testing.assert_allclose(constraints.MaxNorm(5.0)(b), b * 5 / (EPS + 10), rtol=1e-15)
    assert math.isclose(np.linalg.norm(constraints.UnitNorm()(b)), 1.0, rel_tol=1e-7)


def test_validation():
    with pytest.raises(ValueError, match="max_value must be >="):
        constraints.MinMaxNorm(min_value=2.0, max_value=1.0)
    with pytest.raises(ValueError, match="rate must be <= 1"):
        constraints.MinMaxNorm(rate=1.5)
    with pytest.raises(ValueError, match="max_value must be >="):
        constraints.ClipValue(1.0, -1.0)
    with pytest.raises(TypeError, match="axis must be"):
        constraints.UnitNorm(axis=0.5)
    with pytest.raises(ValueError, match="max_value must be >= 0"):
        constraints.MaxNorm(-1)


def test_get_and_config():
    assert constraints.get(None) is None
    assert constraints.get("max_norm") == constraints.MaxNorm(2, 0)
    assert constraints.get("non_neg") == constraints.NonNeg()
    assert constraints.get("unit_norm") == constraints.UnitNorm()
    assert constraints.get("min_max_norm") == constraints.MinMaxNorm(0.0, 1.0, 1.0, 0)
    c = constraints.ClipValue(-0.01, 0.01)
    assert constraints.get(c) is c
    assert c.get_config() == {"min_value": -0.01, "max_value": 0.01}
    assert constraints.MaxNorm(3, axis=1).get_config() == {"max_value": 3.0, "axis": 1}
    for obj in [constraints.MaxNorm(3, axis=(0, 1)), constraints.MinMaxNorm(0.5, 2.0, 0.3, 1),
                constraints.NonNeg(), constraints.UnitNorm(1), c]:
        config = constraints.serialize(obj)
        back = constraints.deserialize(config)
        assert type(back) is type(obj)
        np.testing.assert_array_equal(back(W), obj(W))
    with pytest.raises(ValueError, match="did you mean 'max_norm'"):
        constraints.get("max_nrom")
    with pytest.raises(ValueError, match="unknown constraint class"):
        constraints.deserialize({"class_name": "Bad", "config": {}})

    class Halve(constraints.Constraint):
        def project(self, w):
            return w / 2

    config = constraints.serialize(Halve())
    assert config == {"class_name": "Halve", "config": {}}
    back = constraints.deserialize(config, custom_objects={"Halve": Halve})
    assert type(back) is Halve and back == Halve()
    assert type(constraints.get("halve", custom_objects={"Halve": Halve})) is Halve

    def custom(w):
        return w * 0

    assert constraints.get(custom) is custom
    with pytest.raises(ValueError, match="cannot be serialized"):
        constraints.serialize(custom)
