"""The fast kernels give bit-identical results for 1, 2 and 3 threads.

Every reduction is done over fixed-size chunks added in chunk order, so the
split of work between threads never changes a rounding. The problems here are
big enough that ``fastnn.config.threads_for`` really asks for several threads
and that every parallel loop has several chunks (CHUNK = 8192 elements,
COL_BLOCK = 64 columns in csrc/kernels.pxd).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastnn._kernels")
pytest.importorskip("fastnn._gemm_binding")

from fastnn import _kernels, backends, config  # noqa: E402

FAST = backends.get("fast")
REF = backends.get("reference")


@pytest.fixture(autouse=True)
def low_parallel_threshold(monkeypatch):
    """Split even these test-sized problems between threads, so the parallel
    paths run without test data the size of a production workload."""
    monkeypatch.setattr(config, "PARALLEL_WORK_THRESHOLD", 1 << 12)


@pytest.fixture
def threads():
    """Run a callable under 1 and 2 threads (config.set_num_threads); restore after."""
    previous = config.get_num_threads()

    def run(fn):
        results = []
        for n in (1, 2):
            config.set_num_threads(n)
            results.append(fn())
        return results

    yield run
    config.set_num_threads(previous)


def assert_uses_threads(work):
    """The op below really runs on 2 threads (when there is OpenMP at all)."""
    if config.openmp_enabled():
        config.set_num_threads(2)
        assert config.threads_for(work) == 2
        config.set_num_threads(1)


def assert_identical(a, b):
    if isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
    elif a is None:
        assert b is None
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def data(shape, dtype, seed=0, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("name", ["relu", "tanh", "gelu", "softmax", "log_softmax"])
def test_activation_forward_and_backward(name, float_dtype, threads):
    x = data((700, 101), float_dtype)          # 70,700 elements: 9 chunks
    g = data(x.shape, float_dtype, seed=1)
    assert_uses_threads(x.size)
    y1, y2 = threads(lambda: FAST.activation(x, name))
    assert_identical(y1, y2)
    gx1, gx2 = threads(lambda: FAST.activation_backward(g, x, y1, name))
    assert_identical(gx1, gx2)
    if name != "gelu":  # (the reference's exact erf is slow; gelu parity is tested elsewhere)
        np.testing.assert_allclose(y1, REF.activation(x, name), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,units", [("relu", 200), ("tanh", 10), ("softmax", 70)])
def test_dense_forward_and_backward(name, units, float_dtype, threads):
    m, k = 1000 if units == 10 else 128, 60
    x = data((m, k), float_dtype)
    w = data((k, units), float_dtype, seed=1, scale=0.2)
    b = data((units,), float_dtype, seed=2)
    g = data((m, units), float_dtype, seed=3)
    assert_uses_threads(x.size * units)

    def forward():
        pre = np.empty((m, units), float_dtype)
        return FAST.dense_forward(x, w, b, name, preact_out=pre), pre

    (y1, pre1), (y2, pre2) = threads(forward)
    assert_identical((y1, pre1), (y2, pre2))

    def backward():
        gk = np.ones((k, units), float_dtype)
        gb = np.ones(units, float_dtype)
        gx = FAST.dense_backward(g, x, w, y1, pre1, name, grad_kernel=gk, grad_bias=gb,
                                 accumulate=True)
        return gx, gk, gb

    r1, r2 = threads(backward)
    assert_identical(r1, r2)
    # the multi-threaded result is also the right one
    rgk = np.ones((k, units), float_dtype)
    rgb = np.ones(units, float_dtype)
    REF.dense_backward(g, x, w, y1, pre1, name, grad_kernel=rgk, grad_bias=rgb, accumulate=True)
    tol = 1e-4 if float_dtype == np.float32 else 1e-11
    np.testing.assert_allclose(r2[2], rgb, rtol=tol, atol=tol * np.abs(rgb).max())


def test_bias_gradient_column_blocks_any_thread_count(float_dtype):
    # called directly: 3 threads over 5 column blocks, and the dz-first path (n < threads * 64)
    for units in (300, 100):
        g = data((700, units), float_dtype)
        x = data((700, 20), float_dtype, seed=1)
        w = data((20, units), float_dtype, seed=2)
        y = np.tanh(data((700, units), float_dtype, seed=3))
        results = []
        for n in (1, 2, 3):
            gb = np.zeros(units, float_dtype)
            _kernels.dense_backward(g, x, w, y, None, 3, 0.0, None, gb, False, False, n)
            results.append(gb)
        assert_identical(results[0], results[1])
        assert_identical(results[0], results[2])


@pytest.mark.parametrize("name,from_logits", [("sparse_categorical_crossentropy", True),
                                              ("categorical_crossentropy", False),
                                              ("binary_crossentropy", True),
                                              ("mean_squared_error", False)])
def test_loss(name, from_logits, float_dtype, threads):
    m, n = 4000, 10                           # 5 chunks of 819 rows
    rng = np.random.default_rng(4)
    y_pred = data((m, n), float_dtype)
    if name == "sparse_categorical_crossentropy":
        y_true = rng.integers(0, n, m)
    elif name == "categorical_crossentropy":
        y_pred = REF.activation(y_pred, "softmax")
        y_true = np.eye(n, dtype=float_dtype)[rng.integers(0, n, m)]
    elif name == "binary_crossentropy":
        y_true = rng.integers(0, 2, (m, n)).astype(float_dtype)
    else:
        y_true = data((m, n), float_dtype, seed=5)
    w = rng.uniform(0, 1, m).astype(float_dtype)
    assert_uses_threads(y_pred.size * 10)
    r1, r2 = threads(lambda: FAST.loss(name, y_pred, y_true, from_logits, w))
    assert_identical(r1, r2)
    direct = [_kernels.loss(_kernels.LOSS_CODES[name], y_pred, y_true, from_logits, w, 1.0,
                            True, n) for n in (1, 3)]
    assert_identical(direct[0], direct[1])
    np.testing.assert_allclose(r2[0], REF.loss(name, y_pred, y_true, from_logits, w)[0],
                               rtol=1e-5 if float_dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("opt", ["sgd", "adam", "rmsprop", "adagrad"])
def test_optimizer_updates(opt, float_dtype, threads):
    size = 50_000                             # 7 chunks

    def run():
        p = data(size, float_dtype)
        s = [np.zeros(size, float_dtype) for _ in range(3)]
        for step in range(1, 4):
            g = data(size, float_dtype, seed=step)
            if opt == "sgd":
                FAST.sgd_update(p, g, s[0], 0.1, momentum=0.9, nesterov=True, weight_decay=0.01,
                                first_step=step == 1)
            elif opt == "adam":
                FAST.adam_update(p, g, s[0], s[1], s[2], 1e-3, 0.9, 0.999, 1e-8, step,
                                 weight_decay=0.01, decoupled_weight_decay=True, amsgrad=True)
            elif opt == "rmsprop":
                FAST.rmsprop_update(p, g, s[0], s[1], s[2], 1e-2, 0.9, 1e-7, momentum=0.9,
                                    centered=True)
            else:
                FAST.adagrad_update(p, g, s[0], 0.1, 1e-10, step, lr_decay=0.01)
        return p, s

    assert_uses_threads(size * 12)  # FastOps counts about a dozen flops per parameter
    r1, r2 = threads(run)
    assert_identical(r1, r2)


def test_norms_clipping_and_penalties(float_dtype, threads):
    grads = [data((300, 250), float_dtype, seed=i) for i in range(3)]
    assert_uses_threads(grads[0].size)
    n1, n2 = threads(lambda: FAST.global_norm(grads))
    assert n1 == n2
    p1, p2 = threads(lambda: FAST.l1l2_penalty(grads[0], 0.01, 0.02))
    assert p1 == p2

    def clip():
        gs = [g.copy() for g in grads]
        FAST.clip_by_global_norm(gs, 1.0)
        FAST.clip_by_norm(gs, 0.1)
        FAST.clip_by_value(gs, 1e-4)
        FAST.l1l2_grad(grads[0], 0.01, 0.02, gs[0])
        return gs

    c1, c2 = threads(clip)
    assert_identical(c1, c2)
    direct = [_kernels.sum_squares(grads[0], n) for n in (1, 2, 3)]
    assert direct[0] == direct[1] == direct[2]
