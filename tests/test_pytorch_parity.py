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
