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
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.9 if e % 2 else 1.05)),
    ("ConstantLR", dict(factor=0.4, total_iters=3)),
    ("PolynomialLR", dict(total_iters=7, power=2.0)),
    ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2, eta_min=0.001)),
    ("CosineAnnealingWarmRestarts", dict(T_0=4)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=[0.1, 0.2], step_size_up=3, step_size_down=2)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=2, mode="triangular2",
                      base_momentum=0.7)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, mode="exp_range", gamma=0.9,
                      cycle_momentum=False)),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=lambda x: 0.5 ** x,
                      scale_mode="iterations")),
    ("OneCycleLR", dict(max_lr=[0.5, 1.0], total_steps=16)),
    ("OneCycleLR", dict(max_lr=0.5, epochs=4, steps_per_epoch=4, pct_start=0.25,
                        anneal_strategy="linear", three_phase=True, div_factor=10.0)),
]


def _torch_twin(torch, optimizer_name, groups=2):
    t_params = [torch.zeros(2, requires_grad=True) for _ in range(groups)]
    return getattr(torch.optim, optimizer_name)(
        [{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(t_params)], lr=0.1)


def _settings(optimizer):
    """What a schedule may change: the rates and the momentum (or beta1)."""
    return [(g["lr"], g.get("momentum"), g.get("betas")) for g in optimizer.param_groups]


@pytest.mark.parametrize("optimizer_name", ["SGD", "Adam"])
@pytest.mark.parametrize("name,kwargs", TORCH_CASES, ids=[c[0] for c in TORCH_CASES])
def test_matches_torch_schedulers(name, kwargs, optimizer_name):
    torch = pytest.importorskip("torch")
    params = [nn.Parameter(np.zeros(2)) for _ in range(2)]
    opt = getattr(optim, optimizer_name)(
        [{"params": [p], "lr": 0.1 * (i + 1)} for i, p in enumerate(params)], lr=0.1)
    ours = getattr(sched, name)(opt, **kwargs)
    t_opt = _torch_twin(torch, optimizer_name)
    theirs = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
    for epoch in range(16):
        assert _settings(opt) == _settings(t_opt), epoch
        assert ours.get_last_lr() == theirs.get_last_lr()
        opt.step()
        t_opt.step()
        ours.step()
        theirs.step()


SEQUENCES = [
    (lambda s, o: [s.LinearLR(o, start_factor=0.1, total_iters=3),
                   s.CosineAnnealingLR(o, T_max=6, eta_min=0.01)], [3]),
    (lambda s, o: [s.ConstantLR(o, factor=0.5, total_iters=2), s.ExponentialLR(o, gamma=0.8),
                   s.StepLR(o, step_size=2, gamma=0.5)], [2, 6]),
    (lambda s, o: [s.LinearLR(o, start_factor=0.2, total_iters=4),
                   s.MultiStepLR(o, milestones=[1, 3], gamma=0.5),
                   s.PolynomialLR(o, total_iters=4)], [4, 9]),
    (lambda s, o: [s.ExponentialLR(o, gamma=0.9),
                   s.CosineAnnealingWarmRestarts(o, T_0=3)], [5]),
]


@pytest.mark.parametrize("make,milestones", SEQUENCES)
def test_sequential_lr_matches_torch(make, milestones):
    torch = pytest.importorskip("torch")
    opt = make_optimizer(0.1, groups=2)
    ours = sched.SequentialLR(opt, make(sched, opt), milestones=milestones)
    t_opt = _torch_twin(torch, "SGD")
    theirs = torch.optim.lr_scheduler.SequentialLR(
        t_opt, make(torch.optim.lr_scheduler, t_opt), milestones=milestones)
    for epoch in range(16):
        assert _settings(opt) == _settings(t_opt), epoch
        assert ours.get_last_lr() == theirs.get_last_lr()
        opt.step(), t_opt.step()
        ours.step(), theirs.step()


def test_chained_scheduler_matches_torch():
    torch = pytest.importorskip("torch")

    def make(s, o):
        return [s.ConstantLR(o, factor=0.5, total_iters=3), s.ExponentialLR(o, gamma=0.9),
                s.SequentialLR(o, [s.LinearLR(o, start_factor=0.5, total_iters=2),
                                   s.StepLR(o, step_size=2)], milestones=[3])]
    opt = make_optimizer(0.1, groups=2)
    ours = sched.ChainedScheduler(make(sched, opt))
    t_opt = _torch_twin(torch, "SGD")
    theirs = torch.optim.lr_scheduler.ChainedScheduler(make(torch.optim.lr_scheduler, t_opt))
    for epoch in range(12):
        assert _settings(opt) == _settings(t_opt), epoch
        assert ours.get_last_lr() == theirs.get_last_lr()
        opt.step(), t_opt.step()
        ours.step(), theirs.step()


def test_warm_restarts_take_fractional_epochs_like_torch():
    torch = pytest.importorskip("torch")
    opt = make_optimizer(0.1)
    ours = sched.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.001)
    t_opt = _torch_twin(torch, "SGD", groups=1)
    theirs = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(t_opt, T_0=2, T_mult=2,
                                                                  eta_min=0.001)
    for epoch in [0.25, 0.5, 1.75, 2, 3.5, 6, 13.9, 1]:
        opt.step(), t_opt.step()
        ours.step(epoch)
        theirs.step(epoch)
        assert _settings(opt) == _settings(t_opt), epoch
        assert ours.last_epoch == theirs.last_epoch


def test_one_cycle_by_hand_and_its_end():
    opt = optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=4, pct_start=0.5, div_factor=4.0,
                         final_div_factor=10.0, anneal_strategy="linear")
    lrs, momenta = [], []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        momenta.append(opt.param_groups[0]["momentum"])
        opt.step()
        s.step()
    # up from 0.25 to 1 over steps 0..1, then down to 0.025 at step 3; momentum the other way
    np.testing.assert_allclose(lrs, [0.25, 1.0, 0.5125, 0.025])
    np.testing.assert_allclose(momenta, [0.95, 0.85, 0.9, 0.95])
    with pytest.raises(ValueError, match="beyond total_steps = 4"):
        s.step()


def test_one_cycle_with_a_warm_up_of_no_steps():
    # pct_start * total_steps = 1: PyTorch divides by zero at step 0; the rise is over at once
    opt = optim.SGD([nn.Parameter(np.zeros(2))], lr=0.1)
    s = sched.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.1)
    assert s.get_last_lr() == [1.0]


def test_cyclic_and_one_cycle_need_a_momentum_to_cycle():
    opt = optim.Adagrad([nn.Parameter(np.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        sched.CyclicLR(opt, base_lr=0.01, max_lr=0.1)
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        sched.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    sched.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=False)


def test_composite_state_dict_round_trip():
    def build():
        opt = make_optimizer(1.0)
        return opt, sched.SequentialLR(opt, [sched.LinearLR(opt, start_factor=0.5, total_iters=2),
                                             sched.ExponentialLR(opt, gamma=0.5)], milestones=[2])
    opt, s = build()
    lr_sequence(s, opt, 4)
    saved = s.state_dict()
    assert "optimizer" not in saved and len(saved["_schedulers"]) == 2
    opt2, s2 = build()
    s2.load_state_dict(saved)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    assert lr_sequence(s2, opt2, 3) == lr_sequence(s, opt, 3)
    with pytest.raises(ValueError, match="states of 2 schedulers"):
        s2.load_state_dict({"last_epoch": 1})


def test_old_pickles_find_the_classes():
    # the classes keep the module path they had before lr_scheduler became a package
    assert sched.StepLR.__module__ == "fastnn.optim.lr_scheduler"
    import pickle
    opt = make_optimizer(1.0)
    s = pickle.loads(pickle.dumps(sched.StepLR(opt, step_size=2)))
    assert isinstance(s, sched.StepLR) and s.last_epoch == 0


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
    with pytest.raises(ValueError, match="factor must be > 0"):
        sched.ConstantLR(opt, factor=0.0)
    with pytest.raises(ValueError, match="T_mult must be >= 1"):
        sched.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        sched.CosineAnnealingWarmRestarts(opt, T_0=2).step(-1)
    with pytest.raises(ValueError, match="max_lr must have one value per parameter group"):
        sched.CyclicLR(opt, base_lr=0.01, max_lr=[0.1, 0.2])
    with pytest.raises(ValueError, match="did you mean 'triangular2'"):
        sched.CyclicLR(opt, base_lr=0.01, max_lr=0.1, mode="triangle2")
    with pytest.raises(ValueError, match="total_steps, or epochs and steps_per_epoch"):
        sched.OneCycleLR(opt, max_lr=0.1, epochs=3)
    with pytest.raises(ValueError, match="pct_start must be <= 1"):
        sched.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1.5)
    other = make_optimizer()
    with pytest.raises(ValueError, match="another optimizer"):
        sched.SequentialLR(opt, [sched.StepLR(opt, 1), sched.StepLR(other, 1)], milestones=[2])
    with pytest.raises(ValueError, match="one milestone fewer"):
        sched.SequentialLR(opt, [sched.StepLR(opt, 1), sched.StepLR(opt, 1)], milestones=[])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        sched.ChainedScheduler([sched.StepLR(opt, 1), sched.ReduceLROnPlateau(opt)])
    with pytest.raises(ValueError, match="at least one"):
        sched.SequentialLR(opt, [], milestones=[])


def test_reduce_on_plateau_reduces_a_group_added_later():
    torch = pytest.importorskip("torch")
    a, b = nn.Parameter(np.zeros(1)), nn.Parameter(np.zeros(1))
    opt = optim.SGD([a], lr=0.01)
    s = sched.ReduceLROnPlateau(opt, patience=0)
    ta, tb = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    t_opt = torch.optim.SGD([ta], lr=0.01)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, patience=0)
    opt.add_param_group({"params": [b], "lr": 0.5})
    t_opt.add_param_group({"params": [tb], "lr": 0.5})
    for m in [1.0, 1.0, 1.0]:
        s.step(m)
        ts.step(m)
    assert s.get_last_lr() == ts.get_last_lr() == pytest.approx([0.0001, 0.005])
    fixed = sched.ReduceLROnPlateau(optim.SGD([nn.Parameter(np.zeros(1))], lr=0.1), patience=0,
                                    min_lr=[0.0])
    fixed.optimizer.add_param_group({"params": [nn.Parameter(np.zeros(1))]})
    with pytest.raises(ValueError, match="one value per group"):
        for m in [1.0, 1.0]:
            fixed.step(m)


def test_step_with_an_epoch_jumps_there_like_torch():
    torch = pytest.importorskip("torch")
    for name, kwargs in [("StepLR", dict(step_size=2, gamma=0.5)),
                         ("CosineAnnealingLR", dict(T_max=5)),
                         ("LambdaLR", dict(lr_lambda=lambda e: 1 / (e + 1)))]:
        opt = make_optimizer(0.1)
        ours = getattr(sched, name)(opt, **kwargs)
        t_opt = _torch_twin(torch, "SGD", groups=1)
        theirs = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
        for epoch in [3, 1, 7, 7, 2]:
            opt.step(), t_opt.step()
            with pytest.warns(UserWarning, match="deprecated"):
                ours.step(epoch)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs.step(epoch)
            assert ([g["lr"] for g in opt.param_groups]
                    == pytest.approx([g["lr"] for g in t_opt.param_groups])), (name, epoch)


def test_reduce_on_plateau_takes_the_deprecated_epoch_and_old_pickles():
    import pickle
    opt = make_optimizer(1.0)
    s = sched.ReduceLROnPlateau(opt, patience=0)
    with pytest.warns(UserWarning, match="deprecated"):
        s.step(1.0, epoch=5)
    assert s.last_epoch == 5
    old = sched.ReduceLROnPlateau(make_optimizer(1.0), patience=0, min_lr=0.01)
    del old.__dict__["default_min_lr"]  # as pickled before groups could be added
    old = pickle.loads(pickle.dumps(old))
    old.optimizer.add_param_group({"params": [nn.Parameter(np.zeros(1))], "lr": 0.5})
    for m in (1.0, 1.0):
        old.step(m)
    assert old.get_last_lr() == pytest.approx([0.1, 0.05])
