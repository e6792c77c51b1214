"""fastnn.regularizers: penalties and gradients (hand values, finite differences), get/config."""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import regularizers
from gradcheck import assert_gradient_close, numerical_gradient

W = np.array([[1.0, -2.0], [0.5, 0.0], [-3.0, 4.0]])  # sum|w| = 10.5, sum w^2 = 30.25


def test_penalties_hand_values(use_backend):
    assert regularizers.L1()(W) == pytest.approx(0.01 * 10.5)
    assert regularizers.L1(0.2)(W) == pytest.approx(0.2 * 10.5)
    assert regularizers.L2()(W) == pytest.approx(0.01 * 30.25)
    assert regularizers.L2(l2=0.5)(W) == pytest.approx(0.5 * 30.25)
    assert regularizers.L1L2()(W) == 0.0
    assert regularizers.L1L2(l1=0.1, l2=0.3)(W) == pytest.approx(0.1 * 10.5 + 0.3 * 30.25)
    assert regularizers.L2(0.5)([[1, 2]]) == pytest.approx(2.5)       # lists of ints accepted


def test_gradient_hand_values(use_backend):
    grad = regularizers.L1L2(l1=0.1, l2=0.3).gradient(W)
    np.testing.assert_allclose(grad, 0.1 * np.sign(W) + 0.6 * W)
    assert grad[1, 1] == 0.0                        # sign(0) = 0: the subgradient at a kink
    acc = np.ones_like(W)
    out = regularizers.L2(0.5).add_gradient(W, acc)
    assert out is acc
    np.testing.assert_allclose(acc, 1 + W)
    w32 = W.astype(np.float32)
    assert regularizers.L1().gradient(w32).dtype == np.float32


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.7),
                                 regularizers.L1L2(0.2, 0.4)], ids=repr)
def test_gradient_matches_finite_differences(use_backend, reg, rng):
    w = rng.uniform(0.1, 2.0, (4, 3)) * rng.choice([-1.0, 1.0], (4, 3))  # away from the kink
    assert_gradient_close(reg.gradient(w), numerical_gradient(reg, w))


def test_validation():
    with pytest.raises(ValueError, match="l1 must be >= 0"):
        regularizers.L1(-0.1)
    with pytest.raises(TypeError, match="l2 must be a number"):
        regularizers.L2("big")
    with pytest.raises(ValueError, match="w contains"):
        regularizers.L2()([1.0, float("nan")])
    with pytest.raises(TypeError, match="w must hold real numbers"):
        regularizers.L2()(np.array(["x"]))


def test_get_and_config():
    assert regularizers.get(None) is None
    assert regularizers.get("l1") == regularizers.L1(0.01)
    assert regularizers.get("L2") == regularizers.L2(0.01)
    assert regularizers.get("l1_l2") == regularizers.L1L2(0.0, 0.0)
    reg = regularizers.L1L2(0.1, 0.2)
    assert regularizers.get(reg) is reg
    assert regularizers.L1(0.1).get_config() == {"l1": 0.1}
    assert regularizers.L2(0.2).get_config() == {"l2": 0.2}
    assert reg.get_config() == {"l1": 0.1, "l2": 0.2}
    for r in [regularizers.L1(0.1), regularizers.L2(0.2), reg]:
        assert regularizers.deserialize(regularizers.serialize(r)) == r
    assert regularizers.serialize(None) is None
    with pytest.raises(ValueError, match="did you mean 'l1_l2'"):
        regularizers.get("l1_l3")
    with pytest.raises(ValueError, match="unknown regularizer class"):
        regularizers.deserialize({"class_name": "L3", "config": {}})

    class Tiny(regularizers.L2):
        def __init__(self, l2=1e-6):
            super().__init__(l2)

    back = regularizers.deserialize(regularizers.serialize(Tiny()), custom_objects={"Tiny": Tiny})
    assert type(back) is Tiny and back.l2 == 1e-6
    with pytest.raises(TypeError, match="regularizer must be"):
        regularizers.get(0.1)
