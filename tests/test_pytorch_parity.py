"""Step-by-step parity with PyTorch on the seed's network, in float64.

The same initial state dict, the same batches, the same loop: fastnn's
PyTorch-style API must reproduce PyTorch's losses and weights (acceptance:
losses to 1e-9 relative over 20 steps, weights to 1e-8), on every backend.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import config, nn, optim

torch = pytest.importorskip("torch")

SIZES = (784, 64, 64, 10)
STEPS = 20
BATCH = 32


class FastNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(SIZES[0], SIZES[1])
        self.fc2 = nn.Linear(SIZES[1], SIZES[2])
        self.fc3 = nn.Linear(SIZES[2], SIZES[3])

    def forward(self, x):
        x = fastnn.relu(self.fc1(x))
        x = fastnn.relu(self.fc2(x))
        return self.fc3(x)


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(SIZES[0], SIZES[1])
        self.fc2 = torch.nn.Linear(SIZES[1], SIZES[2])
        self.fc3 = torch.nn.Linear(SIZES[2], SIZES[3])

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Small matrices: more threads only add contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.random((STEPS * BATCH, SIZES[0]))
    y = rng.integers(0, SIZES[-1], STEPS * BATCH)
    return x, y


def twin_models():
    """A PyTorch net and a fastnn net with the same float64 initial state."""
    config.set_floatx("float64")
    torch.manual_seed(0)
    theirs = TorchNet().double()
    ours = FastNet()
    ours.load_state_dict(theirs.state_dict())  # torch tensors load directly
    return ours, theirs


def train_side_by_side(ours, theirs, opt, t_opt, x, y, sched=None, t_sched=None,
                       criterion="cross_entropy"):
    ours_fn = getattr(nn.functional, criterion)
    theirs_fn = getattr(torch.nn.functional, criterion)
    for step in range(STEPS):
        xb, yb = x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH]
        target = yb if criterion == "cross_entropy" else np.eye(SIZES[-1])[yb]
        opt.zero_grad()
        loss = ours_fn(ours(xb), target)
        loss.backward()
        opt.step()
        t_opt.zero_grad()
        t_loss = theirs_fn(theirs(torch.from_numpy(xb)), torch.from_numpy(target))
        t_loss.backward()
        t_opt.step()
        if sched is not None:
            sched.step()
            t_sched.step()
        assert loss.item() == pytest.approx(t_loss.item(), rel=1e-9), f"loss at step {step}"
        for name, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(),
                                       rtol=0, atol=1e-8, err_msg=f"{name} at step {step}")
        assert opt.param_groups[0]["lr"] == t_opt.param_groups[0]["lr"]


def test_sgd_momentum_with_step_lr(use_backend, data):
    ours, theirs = twin_models()
    opt = optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.5)
    t_sched = torch.optim.lr_scheduler.StepLR(t_opt, step_size=5, gamma=0.5)
    train_side_by_side(ours, theirs, opt, t_opt, *data, sched, t_sched)


def test_adam(use_backend, data):
    ours, theirs = twin_models()
    opt = optim.Adam(ours.parameters(), lr=1e-3)
    t_opt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    train_side_by_side(ours, theirs, opt, t_opt, *data)


@pytest.mark.parametrize("criterion", ["mse_loss", "binary_cross_entropy_with_logits"])
def test_other_losses_with_adamw_and_nesterov(criterion, data):
    ours, theirs = twin_models()
    opt = optim.AdamW([{"params": list(ours.parameters())[:2], "lr": 0.01},
                       {"params": list(ours.parameters())[2:]}], lr=1e-3)
    t_opt = torch.optim.AdamW([{"params": list(theirs.parameters())[:2], "lr": 0.01},
                               {"params": list(theirs.parameters())[2:]}], lr=1e-3)
    train_side_by_side(ours, theirs, opt, t_opt, *data, criterion=criterion)
    ours, theirs = twin_models()
    opt = optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)
    t_opt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, nesterov=True,
                            weight_decay=1e-3)
    train_side_by_side(ours, theirs, opt, t_opt, *data, criterion=criterion)


def test_state_dict_goes_back_to_torch(data):
    ours, theirs = twin_models()
    opt = optim.Adam(ours.parameters(), lr=0.01)
    x, y = data
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(ours(x[:BATCH]), y[:BATCH]).backward()
        opt.step()
    theirs.load_state_dict({k: torch.from_numpy(v.numpy()) for k, v in ours.state_dict().items()})
    with fastnn.no_grad(), torch.no_grad():
        np.testing.assert_allclose(ours(x[:8]).numpy(), theirs(torch.from_numpy(x[:8])).numpy(),
                                   rtol=1e-12)


# ----------------------------------------------------------------------------
# cross_entropy / nll_loss options: weight, ignore_index, label_smoothing, reduction
# ----------------------------------------------------------------------------

CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 0.0, 3.0])


def _loss_pair(ours_fn, theirs_fn, logits, target, upstream, **kwargs):
    """(ours, theirs) loss values and logit gradients, in float64."""
    x = fastnn.tensor(logits, requires_grad=True)
    out = ours_fn(x, target, **kwargs)
    out.backward(fastnn.tensor(upstream) if out.ndim else None)
    t_kwargs = dict(kwargs)
    if t_kwargs.get("weight") is not None:
        t_kwargs["weight"] = torch.from_numpy(t_kwargs["weight"])
    tx = torch.from_numpy(logits.copy()).requires_grad_(True)
    t_out = theirs_fn(tx, torch.from_numpy(target), **t_kwargs)
    t_out.backward(torch.from_numpy(upstream) if t_out.ndim else None)
    return (out.numpy(), x.grad.numpy()), (t_out.detach().numpy(), tx.grad.numpy())


def _assert_same(ours, theirs, what):
    for a, b, name in zip(ours, theirs, ("value", "gradient")):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-15, err_msg=f"{name}, {what}")


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_options_match_torch(use_backend, reduction):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(9, 5)) * 2
    labels = np.array([0, 1, 2, 3, 4, 2, 1, 2, 0])
    # -1: an ignore_index outside the classes; 2: one inside them (class 2 then counts nowhere)
    with_minus_one = labels.copy()
    with_minus_one[[1, 6]] = -1
    upstream = rng.normal(size=9)
    for weight in (None, CLASS_WEIGHT):
        for ignore_index, target in ((-100, labels), (-1, with_minus_one), (2, labels)):
            for label_smoothing in (0.0, 0.15, 1.0):
                kwargs = dict(weight=weight, ignore_index=ignore_index, reduction=reduction,
                              label_smoothing=label_smoothing)
                ours, theirs = _loss_pair(nn.functional.cross_entropy,
                                          torch.nn.functional.cross_entropy,
                                          logits, target, upstream, **kwargs)
                _assert_same(ours, theirs, kwargs)
                if label_smoothing == 0.0:
                    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
                    kwargs.pop("label_smoothing")
                    ours, theirs = _loss_pair(nn.functional.nll_loss, torch.nn.functional.nll_loss,
                                              log_p, target, upstream, **kwargs)
                    _assert_same(ours, theirs, ("nll_loss", kwargs))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_class_probabilities_matches_torch(use_backend, reduction):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(6, 5))
    probs = rng.dirichlet(np.ones(5), size=6)
    upstream = rng.normal(size=6)
    for weight in (None, CLASS_WEIGHT):
        for label_smoothing in (0.0, 0.3):
            kwargs = dict(weight=weight, reduction=reduction, label_smoothing=label_smoothing)
            ours, theirs = _loss_pair(nn.functional.cross_entropy, torch.nn.functional.cross_entropy,
                                      logits, probs, upstream, **kwargs)
            _assert_same(ours, theirs, kwargs)


def test_loss_modules_with_options_match_torch():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(7, 5))
    labels = np.array([0, 4, 4, 1, 3, 2, 4])
    ours = nn.CrossEntropyLoss(weight=CLASS_WEIGHT, ignore_index=4, label_smoothing=0.2)
    theirs = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(CLASS_WEIGHT), ignore_index=4,
                                       label_smoothing=0.2)
    assert ours(fastnn.tensor(logits), labels).item() == pytest.approx(
        theirs(torch.from_numpy(logits), torch.from_numpy(labels)).item(), rel=1e-10)
    ours = nn.NLLLoss(weight=CLASS_WEIGHT, ignore_index=4, reduction="sum")
    theirs = torch.nn.NLLLoss(weight=torch.from_numpy(CLASS_WEIGHT), ignore_index=4, reduction="sum")
    assert ours(fastnn.tensor(logits), labels).item() == pytest.approx(
        theirs(torch.from_numpy(logits), torch.from_numpy(labels)).item(), rel=1e-10)


def test_every_target_ignored_gives_nan_and_zero_gradient_as_torch():
    logits = np.random.default_rng(4).normal(size=(3, 4))
    target = np.full(3, -100)
    upstream = np.ones(3)
    for fn, t_fn, kwargs in ((nn.functional.cross_entropy, torch.nn.functional.cross_entropy, {}),
                             (nn.functional.cross_entropy, torch.nn.functional.cross_entropy,
                              {"label_smoothing": 0.1}),
                             (nn.functional.nll_loss, torch.nn.functional.nll_loss, {})):
        (value, grad), (t_value, t_grad) = _loss_pair(fn, t_fn, logits, target, upstream, **kwargs)
        assert np.isnan(value) and np.isnan(t_value)
        np.testing.assert_array_equal(grad, t_grad)
