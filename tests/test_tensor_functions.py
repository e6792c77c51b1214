"""fastnn.tensor_functions: the torch.* functions (creation, cat/stack, reductions, device)."""
from __future__ import annotations

import numpy as np
import pytest
from gradcheck import assert_gradient_close, numerical_gradient

import fastnn
from fastnn import nn


def test_creation_shapes_and_dtypes():
    assert fastnn.zeros(2, 3).shape == (2, 3) and fastnn.zeros(2, 3).dtype == np.float32
    assert fastnn.ones((4,), dtype="float64").dtype == np.float64
    assert fastnn.zeros(()).shape == ()
    assert fastnn.full((2, 2), 7).dtype == np.int64 and fastnn.full((2,), 0.5).dtype == np.float32
    assert not fastnn.empty(3).numpy().any()
    np.testing.assert_array_equal(fastnn.eye(2, 3).numpy(), np.eye(2, 3))
    assert fastnn.arange(5).numpy().tolist() == [0, 1, 2, 3, 4] and fastnn.arange(5).dtype == np.int64
    assert fastnn.arange(0, 1, 0.25).dtype == np.float32
    np.testing.assert_allclose(fastnn.linspace(0, 1, 5).numpy(), [0, 0.25, 0.5, 0.75, 1])
    x = fastnn.randn(3, 2, dtype=fastnn.double)
    assert fastnn.zeros_like(x).dtype == np.float64 and fastnn.ones_like(x).shape == (3, 2)
    assert fastnn.full_like(x, 2.0).numpy().tolist() == [[2.0, 2.0]] * 3
    assert fastnn.rand_like(x).shape == fastnn.randn_like(x).shape == (3, 2)
    w = fastnn.zeros(2, requires_grad=True)
    assert w.requires_grad and w.is_leaf


def test_random_draws_are_seeded_and_in_range():
    fastnn.manual_seed(0)
    a = (fastnn.rand(100).numpy(), fastnn.randn(100).numpy(), fastnn.randint(0, 10, (100,)).numpy(),
         fastnn.randperm(10).numpy())
    fastnn.manual_seed(0)
    b = (fastnn.rand(100).numpy(), fastnn.randn(100).numpy(), fastnn.randint(0, 10, (100,)).numpy(),
         fastnn.randperm(10).numpy())
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert 0 <= a[0].min() and a[0].max() < 1
    assert a[2].min() >= 0 and a[2].max() < 10 and a[2].dtype == np.int64
    assert sorted(a[3].tolist()) == list(range(10))
    assert fastnn.randint(5, (3,)).numpy().max() < 5                  # randint(high, size)
    g1 = fastnn.randn(4, generator=np.random.default_rng(3)).numpy()
    g2 = fastnn.randn(4, generator=np.random.default_rng(3)).numpy()
    np.testing.assert_array_equal(g1, g2)


def test_cat_and_stack_values_and_gradients():
    rng = np.random.default_rng(0)
    a0, b0 = rng.normal(size=(2, 3)), rng.normal(size=(4, 3))
    c0 = rng.normal(size=(2, 3))
    weights = rng.normal(size=(6, 3))

    def loss_cat(a, b):
        return float(np.sum(weights * np.concatenate([a, b]) ** 2))
    a = fastnn.tensor(a0, requires_grad=True)
    b = fastnn.tensor(b0, requires_grad=True)
    out = fastnn.cat([a, b], dim=0)
    np.testing.assert_array_equal(out.numpy(), np.concatenate([a0, b0]))
    (fastnn.tensor(weights) * out ** 2).sum().backward()
    assert_gradient_close(a.grad.numpy(), numerical_gradient(lambda v: loss_cat(v, b0), a0.copy()))
    assert_gradient_close(b.grad.numpy(), numerical_gradient(lambda v: loss_cat(a0, v), b0.copy()))

    wst = rng.normal(size=(2, 2, 3))
    a = fastnn.tensor(a0, requires_grad=True)
    c = fastnn.tensor(c0, requires_grad=True)
    st = fastnn.stack([a, c], dim=1)
    assert st.shape == (2, 2, 3)
    (fastnn.tensor(wst) * st).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), wst[:, 0])
    np.testing.assert_array_equal(c.grad.numpy(), wst[:, 1])
    mixed = fastnn.cat([fastnn.tensor(np.ones((1, 2), np.float32)), np.zeros((1, 2))])
    assert mixed.dtype == np.float64 and mixed.shape == (2, 2)


def test_functions_mirror_the_methods():
    x = fastnn.tensor([[1.0, 5.0, 2.0], [4.0, 0.5, 3.0]])
    values, indices = fastnn.max(x, 1)
    assert values.numpy().tolist() == [5.0, 4.0] and indices.numpy().tolist() == [1, 0]
    assert fastnn.max(x).item() == 5.0
    assert fastnn.argmax(x, dim=1).numpy().tolist() == [1, 0]
    assert fastnn.sum(x).item() == pytest.approx(15.5)
    np.testing.assert_allclose(fastnn.mean(x, dim=0).numpy(), [2.5, 2.75, 2.5])
    np.testing.assert_allclose(fastnn.exp(fastnn.log(x)).numpy(), x.numpy(), rtol=1e-6)
    np.testing.assert_allclose(fastnn.sqrt(x).numpy() ** 2, x.numpy(), rtol=1e-6)
    assert fastnn.abs(-x).numpy().min() > 0
    assert fastnn.clamp(x, 1.0, 4.0).numpy().max() == 4.0
    assert fastnn.reshape(x, (3, 2)).shape == (3, 2)
    assert fastnn.flatten(x).shape == (6,)
    t = fastnn.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    tt = fastnn.transpose(t, 0, 1)
    assert tt.shape == (3, 2)
    (tt * fastnn.tensor(np.arange(6.0).reshape(3, 2))).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.arange(6.0).reshape(3, 2).T)


def test_the_cpu_device():
    dev = fastnn.device("cuda" if fastnn.cuda.is_available() else "cpu")
    assert str(dev) == "cpu" and dev == fastnn.device("cpu:0") and fastnn.cuda.device_count() == 0
    x = fastnn.randn(2, 2)
    assert x.to(dev) is x and x.cpu() is x and x.device == dev
    assert x.to(dev, fastnn.double).dtype == np.float64
    assert x.to(fastnn.zeros(1, dtype="float64")).dtype == np.float64
    model = nn.Linear(2, 2).to(dev)
    assert model.weight.dtype == np.float32
    with pytest.raises(ValueError, match="CPU only"):
        fastnn.device("cuda")
    with pytest.raises(ValueError, match="CPU only"):
        x.to("cuda:0")
    with pytest.raises(RuntimeError, match="CPU only"):
        x.cuda()
    with pytest.raises(ValueError, match="CPU only"):
        nn.Linear(2, 2).to("cuda")


@pytest.mark.parametrize("call, error, match", [
    (lambda: fastnn.zeros(-1), ValueError, "size"),
    (lambda: fastnn.zeros(2.5), TypeError, "size"),
    (lambda: fastnn.arange(0, 5, 0), ValueError, "step"),
    (lambda: fastnn.randint(5, 2, (3,)), ValueError, "low < high"),
    (lambda: fastnn.randint(0, 5), TypeError, "size"),
    (lambda: fastnn.rand(3, generator=1), TypeError, "generator"),
    (lambda: fastnn.cat(fastnn.zeros(2)), TypeError, "list or tuple"),
    (lambda: fastnn.cat([fastnn.zeros(2, 2), fastnn.zeros(2, 3)]), ValueError, "cat"),
    (lambda: fastnn.stack([fastnn.zeros(2), fastnn.zeros(3)]), ValueError, "stack"),
    (lambda: fastnn.sum("abc"), TypeError, "sum expects a Tensor"),
    (lambda: fastnn.zeros_like([1, 2]), TypeError, "zeros_like"),
])
def test_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a0, b0 = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    ours = [fastnn.tensor(v, requires_grad=True) for v in (a0, b0)]
    theirs = [torch.tensor(v, requires_grad=True) for v in (a0, b0)]
    w = rng.normal(size=(3, 2, 2))
    (fastnn.tensor(w) * fastnn.stack(ours, dim=2)).sum().backward()
    (torch.tensor(w) * torch.stack(theirs, dim=2)).sum().backward()
    for o, t in zip(ours, theirs):
        np.testing.assert_array_equal(o.grad.numpy(), t.grad.numpy())
    assert fastnn.arange(1, 7, 2).numpy().tolist() == torch.arange(1, 7, 2).tolist()
    assert fastnn.full((2,), 3).dtype == np.dtype(str(torch.full((2,), 3).dtype).replace("torch.", ""))


def test_star_import_keeps_the_builtins():
    namespace = {}
    exec("from fastnn import *", namespace)
    assert "zeros" in namespace and "cat" in namespace
    assert not {"float", "int", "bool", "sum", "max", "abs"} & set(namespace)
    assert "max" in dir(fastnn) and fastnn.float == np.float32


def test_factories_refuse_dtypes_that_are_not_numbers():
    # random floats cast to int were truncated; object / string tensors were made
    with pytest.raises(TypeError, match="dtype must be floating"):
        fastnn.randn(3, dtype="int64")
    with pytest.raises(TypeError, match="dtype must be floating"):
        fastnn.rand_like(fastnn.tensor(np.array([1, 2])))
    for dtype in (object, "U5", "complex64"):
        with pytest.raises(TypeError, match="numeric"):
            fastnn.zeros(2, dtype=dtype)
