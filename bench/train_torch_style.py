"""fastnn's PyTorch-style loop on the seed workload, for the training benchmark.

The seed's second example as users write it against fastnn: an ``nn.Module``
with three ``nn.Linear`` layers and ``fastnn.relu``, ``nn.CrossEntropyLoss`` on
the logits, ``optim.Adam(lr=1e-3)``, one shuffle per epoch and contiguous
slices for the batches, ``zero_grad / backward / step`` per batch. Every step
goes through the tape and the per-op backend calls (no fused training step),
so this row measures the PyTorch-style API's overhead.

>>> from bench.train_torch_style import train_pytorch_style
>>> model, seconds = train_pytorch_style(x_train, y_train, epochs=1, batch_size=32, seed=0)

``python -m bench.train_torch_style`` times one epoch on MNIST (and PyTorch's
idiomatic loop, when installed) and prints both.
"""
from __future__ import annotations

import time

import numpy as np

__all__ = ["Net", "make_model", "train_epoch", "train_pytorch_style", "accuracy"]


def _fastnn():
    import fastnn
    from fastnn import nn, optim
    return fastnn, nn, optim


def make_model(sizes=(784, 64, 64, 10)):
    """The seed's ``Net`` (fc1, fc2, fc3 with ReLU), returning logits."""
    fastnn, nn, _ = _fastnn()

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(sizes[0], sizes[1])
            self.fc2 = nn.Linear(sizes[1], sizes[2])
            self.fc3 = nn.Linear(sizes[2], sizes[3])

        def forward(self, x):
            x = fastnn.relu(self.fc1(x))
            x = fastnn.relu(self.fc2(x))
            return self.fc3(x)

    return Net()


Net = make_model  # the name the seed uses


def train_epoch(model, optimizer, criterion, x, y, batch_size=32, rng=None):
    """One epoch of mini-batch training; returns the mean training loss.

    ``x`` (n, features) float32 and ``y`` (n,) int64 NumPy arrays.
    """
    n = len(x)
    order = (rng or np.random.default_rng()).permutation(n)
    xs, ys = x[order], y[order]
    total = 0.0
    model.train()
    for start in range(0, n, batch_size):
        xb, yb = xs[start:start + batch_size], ys[start:start + batch_size]
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
    return total / n


def accuracy(model, x, y):
    """Fraction of ``x`` whose largest logit is the label ``y``."""
    fastnn, _, _ = _fastnn()
    model.eval()
    with fastnn.no_grad():
        return float(np.mean(model(x).numpy().argmax(axis=1) == y))


def train_pytorch_style(x, y, epochs=1, batch_size=32, seed=0, lr=1e-3):
    """Train the seed's 784-64-64-10 net with fastnn's PyTorch-style API.

    Parameters
    ----------
    x : ndarray, shape (n, 784), float32
    y : ndarray, shape (n,), int
    epochs, batch_size, seed, lr
        Adam's learning rate ``lr``; ``seed`` fixes the initial weights and the shuffles.

    Returns
    -------
    model : fastnn.nn.Module
    seconds : list of float
        Wall time of each epoch.
    """
    fastnn, nn, optim = _fastnn()
    fastnn.manual_seed(seed)
    model = make_model((x.shape[1], 64, 64, int(np.max(y)) + 1))
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        train_epoch(model, optimizer, criterion, x, y, batch_size, rng)
        seconds.append(time.perf_counter() - start)
    return model, seconds


def _main():  # pragma: no cover - a manual benchmark
    import argparse

    import fastnn
    from fastnn.datasets import mnist
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mnist")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backend", default=None)
    args = parser.parse_args()
    if args.backend:
        fastnn.config.set_backend(args.backend)
    (x, y), (xt, yt) = mnist.load_data(path=args.data, download=False)
    x = (x.reshape(len(x), -1) / np.float32(255)).astype(np.float32)
    xt = (xt.reshape(len(xt), -1) / np.float32(255)).astype(np.float32)
    y, yt = y.astype(np.int64), yt.astype(np.int64)
    model, seconds = train_pytorch_style(x, y, args.epochs, args.batch_size)
    print(f"fastnn PyTorch-style ({fastnn.config.get_backend()}): "
          f"{', '.join(f'{s:.2f}' for s in seconds)} s/epoch, test acc {accuracy(model, xt, yt):.4f}")
    from bench import torch_loop
    if torch_loop.available():
        import torch
        peer = torch_loop.TorchMLP((784, 64, 64, 10))
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        for _ in range(args.epochs):
            start = time.perf_counter()
            peer.fit_epoch(tx, ty, args.batch_size)
            print(f"PyTorch idiomatic loop: {time.perf_counter() - start:.2f} s/epoch")


if __name__ == "__main__":  # pragma: no cover
    _main()
