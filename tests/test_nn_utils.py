"""fastnn.nn.utils: gradient clipping as torch.nn.utils does it."""
from __future__ import annotations

import math

import numpy as np
import pytest

import fastnn
from fastnn import nn


def params_with_grads(grads, dtype=np.float64):
    out = []
    for g in grads:
        p = nn.Parameter(fastnn.tensor(np.zeros_like(np.asarray(g, dtype)), dtype=dtype))
        p.grad = fastnn.tensor(np.array(g, dtype=dtype))
        out.append(p)
    return out


def test_clip_grad_norm_scales_all_gradients_together():
    ps = params_with_grads([[3.0, 0.0], [[0.0], [4.0]]])          # joint norm 5
    total = nn.utils.clip_grad_norm_(ps, max_norm=1.0)
    assert total.item() == pytest.approx(5.0)
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(ps[0].grad.numpy(), [3 * coef, 0.0], rtol=1e-12)
    np.testing.assert_allclose(ps[1].grad.numpy(), [[0.0], [4 * coef]], rtol=1e-12)
    small = params_with_grads([[0.3, 0.4]])                       # norm 0.5 <= 1: unchanged
    nn.utils.clip_grad_norm_(small, 1.0)
    np.testing.assert_array_equal(small[0].grad.numpy(), [0.3, 0.4])


def test_clip_grad_norm_other_norms_and_nonfinite():
    ps = params_with_grads([[1.0, -3.0], [2.0]])
    assert nn.utils.clip_grad_norm_(ps, 10.0, norm_type=math.inf).item() == 3.0
    assert nn.utils.clip_grad_norm_(ps, 10.0, norm_type=1).item() == pytest.approx(6.0)
    bad = params_with_grads([[np.nan, 1.0]])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(bad, 1.0, error_if_nonfinite=True)
    no_grad = nn.Parameter(fastnn.tensor(np.zeros(2)))
    assert nn.utils.clip_grad_norm_([no_grad], 1.0).item() == 0.0


def test_clip_grad_value_clamps_elements():
    ps = params_with_grads([[-2.0, 0.5, 3.0]], dtype=np.float32)
    assert nn.utils.clip_grad_value_(ps, 1.0) is None
    np.testing.assert_array_equal(ps[0].grad.numpy(), np.array([-1.0, 0.5, 1.0], np.float32))


def test_vector_round_trip():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    vec = nn.utils.parameters_to_vector(model.parameters())
    assert vec.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    nn.utils.vector_to_parameters(vec.numpy() * 0 + 1.0, model.parameters())
    assert all(np.all(p.numpy() == 1.0) for p in model.parameters())
    with pytest.raises(ValueError, match="hold 26"):
        nn.utils.vector_to_parameters(np.zeros(7), model.parameters())


@pytest.mark.parametrize("call, error, match", [
    (lambda p: nn.utils.clip_grad_norm_(p, -1.0), ValueError, "max_norm"),
    (lambda p: nn.utils.clip_grad_norm_(p, 1.0, norm_type=-2.0), ValueError, "norm_type"),
    (lambda p: nn.utils.clip_grad_norm_(p, 1.0, norm_type="max"), ValueError, "norm_type"),
    (lambda p: nn.utils.clip_grad_norm_(5, 1.0), TypeError, "parameters"),
    (lambda p: nn.utils.clip_grad_norm_([np.zeros(2)], 1.0), TypeError, r"parameters\[0\]"),
    (lambda p: nn.utils.clip_grad_value_(p, "big"), TypeError, "clip_value"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call(params_with_grads([[1.0]]))


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(4, 3)) * 5, rng.normal(size=(3,)), np.zeros(2)]
    for norm_type in (2.0, 1.0, 3.0, 0.5, 0, math.inf, "inf", -math.inf, "-inf"):
        ours = params_with_grads(grads)
        theirs = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for t, g in zip(theirs, grads):
            t.grad = torch.tensor(g)
        total = nn.utils.clip_grad_norm_(ours, 1.5, norm_type=norm_type)
        expected = torch.nn.utils.clip_grad_norm_(theirs, 1.5, norm_type=norm_type)
        assert total.item() == pytest.approx(expected.item(), rel=1e-12), norm_type
        for p, t in zip(ours, theirs):
            np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    # a NaN norm scales every gradient to NaN, as PyTorch's clamp keeps the NaN
    # (min(1, nan) had let the huge gradients through unclipped)
    ours = params_with_grads([[1e6, np.nan], [3e6, 4e6]])
    assert math.isnan(nn.utils.clip_grad_norm_(ours, 1.0).item())
    assert all(np.isnan(p.grad.numpy()).all() for p in ours)
    ours, theirs = params_with_grads(grads), [torch.zeros(g.shape, dtype=torch.float64) for g in grads]
    for t, g in zip(theirs, grads):
        t.grad = torch.tensor(g)
    nn.utils.clip_grad_value_(ours, 2.0)
    torch.nn.utils.clip_grad_value_(theirs, 2.0)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())
