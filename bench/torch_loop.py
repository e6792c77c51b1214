"""The PyTorch peer: the idiomatic training loop users write.

An ``nn.Sequential`` of ``Linear``/``ReLU``, ``CrossEntropyLoss`` on the logits,
``torch.optim.Adam`` (default, non-fused; ``fused=True`` for PyTorch's fused
Adam), shuffling by ``randperm`` each epoch and
tensor slices for the batches, ``zero_grad / backward / step``. Threads default to
2 (the machine's cores), as fastnn's do. Import is lazy: the benchmark runs without
PyTorch and reports the peer as missing.
"""
from __future__ import annotations

__all__ = ["available", "TorchMLP"]


def available() -> bool:
    """True if PyTorch can be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class TorchMLP:
    """A ReLU MLP trained by the idiomatic PyTorch loop.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first.
    lr : float
        Adam learning rate.
    seed : int
        ``torch.manual_seed`` for initialisation and shuffles.
    threads : int
        ``torch.set_num_threads``.
    fused : bool
        ``torch.optim.Adam(fused=True)``: one kernel updates every parameter.
    """

    def __init__(self, sizes, lr=1e-3, seed=0, threads=2, fused=False):
        import torch
        from torch import nn
        self.torch = torch
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        layers = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.model = nn.Sequential(*layers)
        self.criterion = nn.CrossEntropyLoss()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr,
                                          **({"fused": True} if fused else {}))

    def fit_epoch(self, x, y, batch_size, max_batches=None):
        """One epoch over tensors ``x`` (float32) and ``y`` (int64); returns the samples seen."""
        torch = self.torch
        self.model.train()
        perm = torch.randperm(len(x))
        xs, ys = x[perm], y[perm]
        seen = 0
        for b, start in enumerate(range(0, len(xs), batch_size)):
            if max_batches is not None and b >= max_batches:
                break
            xb, yb = xs[start:start + batch_size], ys[start:start + batch_size]
            self.optimizer.zero_grad()
            loss = self.criterion(self.model(xb), yb)
            loss.backward()
            self.optimizer.step()
            seen += len(xb)
        return seen

    def predict(self, x):
        """Logits of ``x`` under ``inference_mode``."""
        self.model.eval()
        with self.torch.inference_mode():
            return self.model(x)

    def accuracy(self, x, y):
        """Fraction of ``x`` classified as ``y``."""
        return float((self.predict(x).argmax(dim=1) == y).float().mean())
