"""fastnn.optim.lr_scheduler: hand values and PyTorch's sequences, step for step."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from fastnn import nn, optim
from fastnn.optim import lr_scheduler as sched


def make_optimizer(lr=0.1, groups=1):
    params = [nn.Parameter(np.zeros(2)) for _ in range(groups)]
    return optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)], lr=lr)


def lr_sequence(scheduler, optimizer, epochs):
    """The learning rates in use during epochs 0..epochs-1 (optimizer.step before scheduler.step)."""
    lrs = []
    for _ in range(epochs):
        lrs.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return lrs


def test_step_lr_by_hand():
    opt = make_optimizer(1.0)
    s = sched.StepLR(opt, step_size=3, gamma=0.5)
    assert [lr[0] for lr in lr_sequence(s, opt, 8)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    assert s.get_last_lr() == [0.25]  # epoch 8: the next decay is at 9


def test_multistep_exponential_and_lambda_by_hand():
    opt = make_optimizer(1.0)
    s = sched.MultiStepLR(opt, milestones=[2, 4, 4], gamma=0.1)
    np.testing.assert_allclose([lr[0] for lr in lr_sequence(s, opt, 6)], [1, 1, 0.1, 0.1, 1e-3, 1e-3])
    opt = make_optimizer(2.0)
    s = sched.ExponentialLR(opt, gamma=0.5)
    assert [lr[0] for lr in lr_sequence(s, opt, 4)] == [2, 1, 0.5, 0.25]
    opt = make_optimizer(1.0)
    s = sched.LambdaLR(opt, lambda epoch: 1 / (epoch + 1))
    np.testing.assert_allclose([lr[0] for lr in lr_sequence(s, opt, 4)], [1, 1 / 2, 1 / 3, 1 / 4])


def test_cosine_and_linear_warmup_by_hand():
    opt = make_optimizer(1.0)
    s = sched.CosineAnnealingLR(opt, T_max=4, eta_min=0.0)
    expected = [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    np.testing.assert_allclose([lr[0] for lr in lr_sequence(s, opt, 5)], expected, atol=1e-15)
    opt = make_optimizer(1.0)
    s = sched.LinearLR(opt, start_factor=0.25, total_iters=3)
    np.testing.assert_allclose([lr[0] for lr in lr_sequence(s, opt, 5)], [0.25, 0.5, 0.75, 1, 1])


TORCH_CASES = [
    ("StepLR", dict(step_size=3, gamma=0.3)),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.5)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=5, eta_min=0.001)),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.9, total_iters=6)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e + 0.01 * e)),
]


@pytest.mark.parametrize("name,kwargs", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_schedulers(name, kwargs):
    torch = pytest.importorskip("torch")
    opt = make_optimizer(0.1, groups=2)
    ours = getattr(sched, name)(opt, **kwargs)
    t_params = [torch.zeros(2, requires_grad=True) for _ in range(2)]
    t_opt = torch.optim.SGD([{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(t_params)], lr=0.1)
    theirs = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
    for epoch in range(16):
        assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in t_opt.param_groups], epoch
        assert ours.get_last_lr() == theirs.get_last_lr()
        opt.step()
        t_opt.step()
        ours.step()
        theirs.step()


def test_chained_schedulers_compose_like_torch():
    torch = pytest.importorskip("torch")
    opt = make_optimizer(1.0)
    a, b = sched.LinearLR(opt, start_factor=0.5, total_iters=2), sched.ExponentialLR(opt, gamma=0.9)
    t_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=1.0)
    ta = torch.optim.lr_scheduler.LinearLR(t_opt, start_factor=0.5, total_iters=2)
    tb = torch.optim.lr_scheduler.ExponentialLR(t_opt, gamma=0.9)
    for _ in range(6):
        assert opt.param_groups[0]["lr"] == t_opt.param_groups[0]["lr"]
        opt.step(), t_opt.step()
        a.step(), b.step(), ta.step(), tb.step()


def test_reduce_on_plateau_matches_torch():
    torch = pytest.importorskip("torch")
    metrics = [1.0, 0.9, 0.95, 0.91, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]
    for kwargs in [dict(patience=1), dict(mode="max", factor=0.5, patience=0, cooldown=2),
                   dict(patience=2, threshold=0.1, threshold_mode="abs", min_lr=0.02)]:
        opt = make_optimizer(0.1)
        ours = sched.ReduceLROnPlateau(opt, **kwargs)
        t_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
        theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, **kwargs)
        for m in metrics:
            ours.step(m)
            theirs.step(m)
            assert ours.get_last_lr() == theirs.get_last_lr(), (kwargs, m)


def test_reduce_on_plateau_by_hand():
    opt = make_optimizer(1.0)
    s = sched.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    for m in [1.0, 1.0, 1.0]:  # two epochs without improvement > patience 1
        s.step(m)
    assert opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(TypeError, match="number"):
        s.step("low")


def test_warns_when_stepped_before_the_optimizer():
    opt = make_optimizer()
    s = sched.StepLR(opt, step_size=1)
    with pytest.warns(UserWarning, match="before optimizer.step"):
        s.step()
    opt2 = make_optimizer()
    s2 = sched.StepLR(opt2, step_size=1)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s2.step()


def test_state_dict_round_trip():
    opt = make_optimizer(1.0)
    s = sched.StepLR(opt, step_size=2, gamma=0.5)
    lr_sequence(s, opt, 3)
    saved = s.state_dict()
    assert "optimizer" not in saved and saved["last_epoch"] == 3
    opt2 = make_optimizer(1.0)
    s2 = sched.StepLR(opt2, step_size=2, gamma=0.5)
    s2.load_state_dict(saved)
    assert s2.last_epoch == 3 and s2.get_last_lr() == s.get_last_lr()


def test_bad_arguments():
    opt = make_optimizer()
    with pytest.raises(TypeError, match="not a fastnn.optim Optimizer"):
        sched.StepLR(object(), step_size=1)
    with pytest.raises(ValueError, match="step_size must be >= 1"):
        sched.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="increasing"):
        sched.MultiStepLR(opt, milestones=[5, 2])
    with pytest.raises(ValueError, match="start_factor must be > 0"):
        sched.LinearLR(opt, start_factor=0.0)
    with pytest.raises(TypeError, match="callable"):
        sched.LambdaLR(opt, lr_lambda=0.5)
    with pytest.raises(ValueError, match="factor must be < 1"):
        sched.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="did you mean 'max'"):
        sched.ReduceLROnPlateau(opt, mode="maxx")
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(make_optimizer(), step_size=1, last_epoch=3)
