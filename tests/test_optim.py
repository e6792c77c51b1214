"""fastnn.optim: update rules (hand values, torch.optim), groups, state dicts, validation."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import backends, nn, optim
from fastnn.tensor import tensor


def param(values):
    return nn.Parameter(np.array(values, dtype=np.float64))


def set_grad(p, values):
    p.grad = tensor(np.array(values, dtype=np.float64))


# ----------------------------------------------------------------------------
# Hand-computed steps
# ----------------------------------------------------------------------------

def test_sgd_step_by_hand(use_backend):
    p = param([1.0, -2.0])
    opt = optim.SGD([p], lr=0.1)
    set_grad(p, [0.5, 1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.95, -2.1], rtol=1e-15)


def test_sgd_momentum_by_hand(use_backend):
    # buf1 = g1; buf2 = 0.9 buf1 + g2; p -= lr * buf each step
    p = param([0.0])
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    set_grad(p, [1.0])
    opt.step()
    set_grad(p, [2.0])
    opt.step()
    np.testing.assert_allclose(p.data, [-0.1 - 0.1 * (0.9 + 2.0)], rtol=1e-15)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], [2.9], rtol=1e-15)


def test_adam_first_step_is_lr_times_sign(use_backend):
    # step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps)
    p = param([1.0, 1.0, 1.0])
    opt = optim.Adam([p], lr=0.01)
    g = np.array([3.0, -0.5, 1e-3])
    set_grad(p, g)
    opt.step()
    np.testing.assert_allclose(p.data, 1 - 0.01 * g / (np.abs(g) + 1e-8), rtol=1e-14)
    assert opt.state[p]["step"] == 1


def test_adamw_decays_before_the_step(use_backend):
    p = param([2.0])
    opt = optim.AdamW([p], lr=0.1)  # weight_decay=1e-2 by default
    set_grad(p, [0.0])
    opt.step()
    np.testing.assert_allclose(p.data, [2.0 * (1 - 0.1 * 1e-2)], rtol=1e-15)


def test_parameters_without_gradients_are_skipped():
    a, b = param([1.0]), param([1.0])
    opt = optim.SGD([a, b], lr=1.0)
    set_grad(a, [1.0])
    opt.step()
    assert a.data[0] == 0.0 and b.data[0] == 1.0 and b not in opt.state


def test_zero_grad():
    p = param([1.0])
    opt = optim.SGD([p])
    set_grad(p, [3.0])
    opt.zero_grad(set_to_none=False)
    assert p.grad.data[0] == 0.0
    opt.zero_grad()
    assert p.grad is None


def test_closure_is_evaluated_with_gradients():
    p = param([3.0])
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with fastnn.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 9.0 and p.data[0] == 3.0 - 0.25 * 6.0


def test_param_groups_and_editable_lr():
    a, b = param([1.0]), param([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    set_grad(a, [1.0])
    set_grad(b, [1.0])
    opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.5])
    opt.param_groups[0]["lr"] = 1.0
    opt.step()
    np.testing.assert_allclose(a.data[0], -0.1)


# ----------------------------------------------------------------------------
# Against torch.optim, several steps, every option
# ----------------------------------------------------------------------------

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.1)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5)),
]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_matches_torch_optim(name, kwargs, use_backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 4)), rng.normal(size=4)]
    ours = [param(v) for v in start]
    theirs = [torch.tensor(v, requires_grad=True) for v in start]
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    for _ in range(6):
        grads = [rng.normal(size=v.shape) for v in start]
        for p, t, g in zip(ours, theirs, grads):
            set_grad(p, g)
            t.grad = torch.tensor(g)
        opt.step()
        ref.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_updates_are_backend_ops(monkeypatch):
    """No update rule lives in fastnn.optim: each step is one backend op call per parameter."""
    ops = backends.get()
    calls = []
    for op in ("sgd_update", "adam_update", "rmsprop_update", "adagrad_update"):
        original = getattr(ops, op)
        monkeypatch.setattr(ops, op, lambda *a, _o=original, _n=op, **k: calls.append(_n) or _o(*a, **k))
    for cls, op in [(optim.SGD, "sgd_update"), (optim.Adam, "adam_update"), (optim.AdamW, "adam_update"),
                    (optim.RMSprop, "rmsprop_update"), (optim.Adagrad, "adagrad_update")]:
        calls.clear()
        p, q = param([1.0, 2.0]), param([3.0])
        opt = cls([p, q])
        set_grad(p, [1.0, 1.0])
        set_grad(q, [1.0])
        before = p.data.copy()
        opt.step()
        assert calls == [op, op]
        assert not np.array_equal(p.data, before)


def test_float32_parameters_and_column_major_weights(use_backend):
    lin = nn.Linear(3, 2)  # float32, weight stored column-major
    x = np.ones((4, 3), np.float32)
    opt = optim.Adam(lin.parameters(), lr=0.1)
    before = lin.weight.data.copy()
    lin(x).sum().backward()
    expected = before - 0.1 * np.sign(lin.weight.grad.data)
    opt.step()
    # atol: a weight that lands near zero after the step (before ~ 0.1) carries
    # float32 cancellation error ~1e-8, far above rtol * |result|.
    np.testing.assert_allclose(lin.weight.data, expected, rtol=1e-5, atol=1e-6)
    assert lin.weight.data.dtype == np.float32 and opt.state[lin.weight]["exp_avg"].dtype == np.float32


def test_state_follows_a_model_converted_to_float64():
    lin = nn.Linear(3, 2)
    opt = optim.Adam(lin.parameters())
    lin(np.ones((1, 3))).sum().backward()
    opt.step()
    lin.double()
    lin(np.ones((1, 3))).sum().backward()
    opt.step()
    assert opt.state[lin.weight]["exp_avg"].dtype == np.float64


# ----------------------------------------------------------------------------
# state_dict
# ----------------------------------------------------------------------------

def run(opt, params, grads):
    for g in grads:
        for p, gp in zip(params, g):
            set_grad(p, gp)
        opt.step()


@pytest.mark.parametrize("cls,kwargs", [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, {}),
                                        (optim.RMSprop, dict(momentum=0.5, centered=True)),
                                        (optim.Adagrad, {})])
def test_state_dict_resumes_exactly(cls, kwargs):
    rng = np.random.default_rng(1)
    grads = [[rng.normal(size=(2, 2)), rng.normal(size=2)] for _ in range(6)]
    start = [rng.normal(size=(2, 2)), rng.normal(size=2)]
    straight = [param(v) for v in start]
    run(cls(straight, **kwargs), straight, grads)

    first = [param(v) for v in start]
    opt = cls(first, **kwargs)
    run(opt, first, grads[:3])
    saved = opt.state_dict()
    checkpoint = [p.data.copy() for p in first]
    run(opt, first, grads[3:4])  # changes the live state, not the saved copy

    resumed = [param(v) for v in checkpoint]
    opt2 = cls(resumed, **kwargs)
    opt2.load_state_dict(saved)
    run(opt2, resumed, grads[3:])
    for p, q in zip(straight, resumed):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_from_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    start = rng.normal(size=(3, 2))
    t = torch.tensor(start, requires_grad=True)
    ref = torch.optim.Adam([t], lr=0.01)
    for _ in range(3):
        t.grad = torch.tensor(rng.normal(size=(3, 2)))
        ref.step()
    p = param(t.detach().numpy().copy())
    opt = optim.Adam([p], lr=0.01)
    opt.load_state_dict(ref.state_dict())
    assert opt.state[p]["step"] == 3
    g = rng.normal(size=(3, 2))
    t.grad = torch.tensor(g)
    ref.step()
    set_grad(p, g)
    opt.step()
    np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-13)


def test_load_state_dict_errors():
    opt = optim.Adam([param(np.zeros((2, 2)))])
    with pytest.raises(TypeError, match="state"):
        opt.load_state_dict({"state": {}})
    with pytest.raises(ValueError, match="parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    good = opt.state_dict()
    bad = {"state": {0: {"step": 1, "exp_avg": np.zeros(3), "exp_avg_sq": np.zeros((2, 2))}},
           "param_groups": good["param_groups"]}
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"param_groups\[0\].*'params'"):
        opt.load_state_dict({"state": {}, "param_groups": [{"lr": 0.1}]})
    with pytest.raises(TypeError, match=r"state_dict\['param_groups'\] must be a list of dicts"):
        opt.load_state_dict({"state": {}, "param_groups": 5})
    with pytest.raises(TypeError, match=r"state_dict\['state'\] must be a dict"):
        opt.load_state_dict({"state": [1], "param_groups": good["param_groups"]})


def test_a_failed_load_changes_nothing():
    # The second group's lr is refused after the first group's settings were read:
    # neither group may keep any of the loaded values.
    a, b = param([1.0]), param([2.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
    saved = opt.state_dict()
    saved["param_groups"][0].update(lr=0.5, momentum=0.9)
    saved["param_groups"][1].update(lr=-1.0)
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(saved)
    assert [(g["lr"], g["momentum"]) for g in opt.param_groups] == [(0.1, 0.0), (0.1, 0.0)]


def test_sgd_without_momentum_saves_a_state_it_can_load():
    # Its state holds momentum_buffer None, which load_state_dict refused.
    p = param([1.0, 2.0])
    opt = optim.SGD([p], lr=0.1)
    p.grad = tensor(np.array([0.5, -0.5]))
    opt.step()
    twin = optim.SGD([param([1.0, 2.0])], lr=0.3)
    twin.load_state_dict(opt.state_dict())
    assert twin.param_groups[0]["lr"] == 0.1


def test_a_gradient_that_is_not_an_array_is_refused():
    p = param([1.0, 2.0])
    p.grad = [1.0, 2.0]
    with pytest.raises(TypeError, match=r"\.grad must be a Tensor or a numpy array, got list"):
        optim.Adam([p]).step()


# ----------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------

def test_bad_arguments_are_rejected():
    p = param([1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="single Parameter"):
        optim.SGD(p)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(3)
    with pytest.raises(TypeError, match="only optimize Tensors"):
        optim.SGD([np.zeros(3)])
    with pytest.raises(ValueError, match="lr must be >= 0"):
        optim.SGD([p], lr=-1)
    with pytest.raises(TypeError, match="lr must be a number"):
        optim.Adam([p], lr="fast")
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\] must be < 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="betas"):
        optim.Adam([p], betas=0.9)
    with pytest.raises(TypeError, match="amsgrad"):
        optim.Adam([p], amsgrad="yes")
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}])
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        optim.SGD([{"params": [p], "momentun": 0.9}])
    with pytest.raises(ValueError, match="not a leaf"):
        optim.SGD([p * 2])
    with pytest.raises(TypeError, match="closure"):
        optim.SGD([p]).step(closure=3)


def test_rmsprop_alpha_above_one_is_refused():
    # the average of g^2 would go negative and the first step give NaN weights
    with pytest.raises(ValueError, match="alpha must be <= 1"):
        optim.RMSprop([param(np.zeros(2))], alpha=2.0)
