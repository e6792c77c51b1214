"""fastnn.nn.init: PyTorch's formulas, in place, seeded."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn import init


def test_gains_match_pytorch_values():
    assert init.calculate_gain("linear") == init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("fill, bound_or_std, kind", [
    (lambda w: init.xavier_uniform_(w), math.sqrt(6 / (300 + 200)), "uniform"),
    (lambda w: init.xavier_normal_(w, gain=2.0), 2 * math.sqrt(2 / (300 + 200)), "normal"),
    (lambda w: init.kaiming_uniform_(w, nonlinearity="relu"), math.sqrt(3) * math.sqrt(2 / 300), "uniform"),
    (lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 200), "normal"),
    (lambda w: init.uniform_(w, -0.3, 0.3), 0.3, "uniform"),
    (lambda w: init.normal_(w, 0.0, 0.05), 0.05, "normal"),
])
def test_spreads_follow_the_fans(fill, bound_or_std, kind):
    """A (200, 300) weight: fan_in 300 (its columns), fan_out 200, as PyTorch."""
    w = nn.Linear(300, 200).weight
    out = fill(w)
    assert out is w and w.data.flags.f_contiguous and w.dtype == np.float32
    values = w.numpy().ravel()
    if kind == "uniform":
        assert np.abs(values).max() <= bound_or_std * (1 + 1e-6)
        assert np.abs(values).max() > 0.99 * bound_or_std
        assert values.std() == pytest.approx(bound_or_std / math.sqrt(3), rel=0.03)
    else:
        assert values.std() == pytest.approx(bound_or_std, rel=0.03)
        assert abs(values.mean()) < 4 * bound_or_std / math.sqrt(values.size)


def test_trunc_normal_constants_eye_orthogonal():
    w = fastnn.tensor(np.empty((100, 50), np.float64))
    init.trunc_normal_(w, mean=0.1, std=1.0, a=-0.5, b=0.5)
    assert w.numpy().min() >= -0.5 and w.numpy().max() <= 0.5
    init.constant_(w, 0.25)
    assert np.all(w.numpy() == 0.25)
    init.ones_(w)
    assert np.all(w.numpy() == 1)
    init.zeros_(w)
    assert not w.numpy().any()
    init.eye_(w)
    np.testing.assert_array_equal(w.numpy(), np.eye(100, 50))
    q = init.orthogonal_(fastnn.tensor(np.empty((20, 30))), gain=2.0).numpy()
    np.testing.assert_allclose(q @ q.T, 4 * np.eye(20), atol=1e-10)   # orthogonal rows
    tall = init.orthogonal_(np.empty((30, 20))).copy()
    np.testing.assert_allclose(tall.T @ tall, np.eye(20), atol=1e-10)  # a NumPy array works too


def test_seeded_and_generator_draws_repeat():
    w = nn.Linear(10, 10).weight
    fastnn.manual_seed(5)
    first = init.kaiming_normal_(w).numpy().copy()
    fastnn.manual_seed(5)
    np.testing.assert_array_equal(init.kaiming_normal_(w).numpy(), first)
    a = init.xavier_uniform_(np.empty((4, 4)), generator=np.random.default_rng(1)).copy()
    b = init.xavier_uniform_(np.empty((4, 4)), generator=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)


def test_init_records_nothing_and_training_continues():
    layer = nn.Linear(3, 2)
    init.xavier_uniform_(layer.weight)
    assert layer.weight.requires_grad and layer.weight.grad is None
    layer(np.ones((1, 3), np.float32)).sum().backward()
    assert layer.weight.grad.shape == (2, 3)


@pytest.mark.parametrize("call, error, match", [
    (lambda: init.xavier_uniform_(fastnn.tensor(np.zeros(5))), ValueError, "fewer than 2 dimensions"),
    (lambda: init.kaiming_uniform_(np.zeros((2, 2)), mode="fan_avg"), ValueError, "Mode"),
    (lambda: init.uniform_(np.zeros(3), 1.0, 0.0), ValueError, "a <= b"),
    (lambda: init.normal_(np.zeros(3), std=-1.0), ValueError, "std"),
    (lambda: init.zeros_([0.0, 1.0]), TypeError, "Tensor or a NumPy array"),
    (lambda: init.zeros_(np.zeros(3, np.int64)), TypeError, "floats"),
    (lambda: init.eye_(np.zeros((2, 2, 2))), ValueError, "2 dimensions"),
    (lambda: init.uniform_(np.zeros(3), generator=3), TypeError, "generator"),
    (lambda: init.trunc_normal_(np.zeros(3), mean=50.0, a=-1.0, b=1.0), ValueError, "almost none"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fans_match_pytorch():
    torch = pytest.importorskip("torch")
    for shape in [(64, 784), (10, 64), (8, 3, 5, 5)]:
        t = torch.empty(shape)
        fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(t)
        assert init._fans(np.empty(shape)) == (fan_in, fan_out)
    for name, param in [("relu", None), ("leaky_relu", None), ("leaky_relu", 0.3), ("tanh", None),
                        ("selu", None), ("conv2d", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))


def test_kaiming_on_an_empty_tensor_is_a_no_op():
    # its fan may be 0: PyTorch warns and leaves it, rather than divide by zero
    p = nn.Parameter(np.zeros((3, 0)))
    for init in (nn.init.kaiming_uniform_, nn.init.kaiming_normal_):
        with pytest.warns(UserWarning, match="zero-element"):
            assert init(p) is p
