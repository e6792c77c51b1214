"""The plain NumPy peer: an MLP trained by a hand-written NumPy loop.

This is what a competent user writes without a framework: float32 arrays, ReLU
hidden layers, a softmax + cross-entropy output computed on the logits, Adam with
the textbook (``torch.optim``) formulas, and one ``x[idx]`` gather per batch. The
matrix products go to NumPy's BLAS (OpenBLAS, with its own threads). It is a
benchmark peer, not part of fastnn: fastnn must beat it, not reuse it.
"""
from __future__ import annotations

import numpy as np

__all__ = ["NumpyMLP"]


class NumpyMLP:
    """A ReLU MLP with a softmax output, trained with Adam by plain NumPy.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``(784, 64, 64, 10)``.
    lr, beta_1, beta_2, epsilon : float
        Adam hyper-parameters (``torch.optim.Adam`` defaults).
    seed : int
        Seed of the Glorot-uniform initialisation and of the shuffles.
    dtype : numpy dtype
        float32 (default) or float64.
    """

    def __init__(self, sizes, lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-8, seed=0,
                 dtype=np.float32):
        self.rng = np.random.default_rng(seed)
        self.dtype = np.dtype(dtype)
        self.params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            self.params.append(self.rng.uniform(-limit, limit, (fan_in, fan_out)).astype(self.dtype))
            self.params.append(np.zeros(fan_out, self.dtype))
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.lr, self.beta_1, self.beta_2, self.epsilon = lr, beta_1, beta_2, epsilon
        self.step = 0

    def forward(self, x):
        """Logits of ``x`` (n, inputs), and the hidden activations backward needs."""
        acts = [x]
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            z = acts[-1] @ self.params[2 * i] + self.params[2 * i + 1]
            acts.append(np.maximum(z, 0) if i < n_layers - 1 else z)
        return acts

    def train_step(self, x, y):
        """One Adam step on the batch ``(x, y)``; returns the mean cross-entropy."""
        acts = self.forward(x)
        logits = acts[-1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        n = len(x)
        loss = -np.log(probs[np.arange(n), y] + 1e-12).mean()
        delta = probs
        delta[np.arange(n), y] -= 1
        delta /= n
        grads = [None] * len(self.params)
        for i in range(len(self.params) // 2 - 1, -1, -1):
            grads[2 * i] = acts[i].T @ delta
            grads[2 * i + 1] = delta.sum(axis=0)
            if i > 0:
                delta = (delta @ self.params[2 * i].T) * (acts[i] > 0)
        self.step += 1
        c1 = 1 - self.beta_1 ** self.step
        c2 = 1 - self.beta_2 ** self.step
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= self.beta_1
            m += (1 - self.beta_1) * g
            v *= self.beta_2
            v += (1 - self.beta_2) * g * g
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.epsilon)
        return float(loss)

    def fit_epoch(self, x, y, batch_size, max_batches=None):
        """One shuffled epoch (or its first ``max_batches`` batches); returns the samples seen."""
        order = self.rng.permutation(len(x))
        seen = 0
        for b, start in enumerate(range(0, len(x), batch_size)):
            if max_batches is not None and b >= max_batches:
                break
            idx = order[start:start + batch_size]
            self.train_step(x[idx], y[idx])
            seen += len(idx)
        return seen

    def predict(self, x):
        """Class probabilities for ``x``."""
        logits = self.forward(x)[-1]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def accuracy(self, x, y):
        """Fraction of ``x`` classified as ``y``."""
        return float(np.mean(self.forward(x)[-1].argmax(axis=1) == y))
