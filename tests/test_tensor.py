"""fastnn.Tensor and its tape: construction, values, gradients, grad modes."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import backends, config
from fastnn.tensor import Tensor, matmul, no_grad, enable_grad, tensor
from gradcheck import ATOL, assert_gradient_close, numerical_gradient, rounding_error


def leaf(values):
    return tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# ----------------------------------------------------------------------------
# Construction and conversions
# ----------------------------------------------------------------------------

def test_dtypes_follow_pytorch_rules():
    assert tensor([1.0, 2.0]).dtype == np.float32                     # Python floats: floatx
    assert tensor(np.zeros(2, np.float64)).dtype == np.float64        # NumPy floats kept
    assert tensor([1, 2]).dtype == np.int64                           # ints: int64
    assert tensor([1, 2], dtype="float64").dtype == np.float64
    config.set_floatx("float64")
    assert tensor([1.0]).dtype == np.float64


def test_tensor_copies_but_constructor_shares():
    a = np.zeros(3)
    t = tensor(a)
    a[0] = 5
    assert t.data[0] == 0
    shared = Tensor(a)
    a[1] = 7
    assert shared.data[1] == 7


@pytest.mark.parametrize("first_import", ["fastnn", "fastnn.nn"])
def test_fastnn_tensor_is_callable_whatever_was_imported_first(first_import):
    """``fastnn.tensor`` names a module and a function; either way ``fastnn.tensor(data)`` works."""
    import subprocess
    import sys
    code = (f"import {first_import}, fastnn; t = fastnn.tensor([1.0, 2.0]); "
            "assert isinstance(t, fastnn.Tensor) and t.dtype.name == 'float32'")
    root = os.path.join(os.path.dirname(__file__), "..")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], cwd=root,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_from_numpy_shares_memory():
    a = np.zeros(3, np.float32)
    t = fastnn.tensor.from_numpy(a)
    a[2] = 1
    assert t.dtype == np.float32 and t.data[2] == 1
    with pytest.raises(TypeError, match="ndarray"):
        fastnn.tensor.from_numpy([1.0])


def test_bad_construction_is_rejected():
    with pytest.raises(TypeError, match="numbers"):
        tensor(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="array-like"):
        tensor(object())
    with pytest.raises(ValueError, match="ragged"):
        tensor([[1.0, 2.0], [3.0]])
    with pytest.raises(TypeError, match="float32/float64"):
        tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="dtype"):
        tensor([1.0], dtype="complex64")


def test_conversions():
    t = tensor(np.arange(6, dtype=np.float64).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.numel() == 6 and t.size(1) == 3
    assert len(t) == 2
    assert np.asarray(t) is t.data
    np.testing.assert_array_equal(np.asarray(t, dtype=np.float32), t.data.astype(np.float32))
    assert t.sum().item() == 15.0
    assert float(t[1, 2]) == 5.0 and int(t[1, 1]) == 4
    assert t.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert [row.tolist() for row in t] == t.tolist()
    with pytest.raises(ValueError, match="one element"):
        t.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(t)
    with pytest.raises(TypeError, match="0-d"):
        len(tensor(1.0))
    assert "requires_grad=True" in repr(leaf([1.0]))
    assert repr(tensor([1, 2])) == "tensor([1, 2])"


def test_arithmetic_with_numpy_and_scalars_keeps_float32():
    t = tensor(np.ones(3, np.float32))
    for result in (t + 1.0, 2 * t, t - np.ones(3), np.ones(3) + t, t / np.float64(2), 1.0 / t,
                   t ** 2, 2.0 ** t):
        assert isinstance(result, Tensor) and result.dtype == np.float32
    np.testing.assert_allclose((np.full(3, 4.0) - t).data, 3.0)
    np.testing.assert_allclose((np.full(3, 4.0) / (t + 1)).data, 2.0)


def test_comparisons_give_bool_tensors():
    t = tensor([1.0, 2.0, 3.0])
    assert (t > 1.5).data.tolist() == [False, True, True]
    assert (t == tensor([1.0, 0.0, 3.0])).sum().item() == 2
    assert t.argmax().item() == 2
    assert tensor([[1.0, 5.0], [7.0, 2.0]]).argmax(dim=1).tolist() == [1, 0]


# ----------------------------------------------------------------------------
# Gradients: hand values
# ----------------------------------------------------------------------------

def test_square_sum_gradient_is_2w():
    w = leaf([1.0, -2.0, 3.0])
    (w * w).sum().backward()
    np.testing.assert_array_equal(w.grad.data, [2.0, -4.0, 6.0])
    assert isinstance(w.grad, Tensor)


def test_chain_rule_by_hand():
    # f = mean(exp(a) * b + a / b) ; df/da = (exp(a) * b + 1/b) / n ; df/db = (exp(a) - a/b^2) / n
    a, b = leaf([0.5, -1.0]), leaf([2.0, 4.0])
    (a.exp() * b + a / b).mean().backward()
    A, B = a.data, b.data
    np.testing.assert_allclose(a.grad.data, (np.exp(A) * B + 1 / B) / 2, rtol=1e-15)
    np.testing.assert_allclose(b.grad.data, (np.exp(A) - A / B ** 2) / 2, rtol=1e-15)


def test_tensor_used_twice_gets_both_gradients():
    a = leaf([3.0])
    (a * a + a).backward()
    assert a.grad.item() == 7.0


def test_broadcast_gradients_are_summed_back():
    col, row = leaf(np.ones((3, 1))), leaf(np.ones(4))
    (col * row * 2.0).sum().backward()
    np.testing.assert_array_equal(col.grad.data, np.full((3, 1), 8.0))
    np.testing.assert_array_equal(row.grad.data, np.full(4, 6.0))


@pytest.mark.parametrize("op", ["t + c", "c + t", "t - c", "c - t", "t * c", "c * t",
                                "t / c", "c / t", "t ** c", "c ** t"])
def test_broadcast_against_a_constant_sums_the_gradient_back(op):
    # A plain array that broadcasts the tensor to a larger shape: the gradient has the
    # tensor's shape (sum over the copies). +, - and the reflected / and ** returned
    # the broadcast gradient itself. Checked against finite differences.
    c = np.array([[1.5, 2.0, 0.5, 3.0]])                   # (1, 4)
    t0 = np.array([[0.7], [1.3], [2.1]])                   # (3, 1)
    f = lambda t: (eval(op, {"t": t, "c": c}) ** 2).sum()  # noqa: E731
    t = leaf(t0)
    f(t).backward()
    assert t.grad.data.shape == (3, 1)
    expected = numerical_gradient(lambda v: float(f(v)), t0.copy())
    np.testing.assert_allclose(t.grad.data, expected, rtol=1e-6, atol=1e-8)


def test_gradients_accumulate_until_cleared():
    w = leaf([1.0, 2.0])
    (w * 3.0).sum().backward()
    (w * 3.0).sum().backward()
    np.testing.assert_array_equal(w.grad.data, [6.0, 6.0])


def test_leaf_gradients_never_share_memory():
    # a + b hands the same gradient array to both inputs: each must own a copy.
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (a + b).sum().backward()
    a.grad.data[0] = 100.0
    assert b.grad.data[0] == 1.0
    user = np.ones(2)
    a.grad = None
    a.reshape(2, 1).backward(user.reshape(2, 1))
    a.grad.data[1] = 50.0
    assert user[1] == 1.0


def test_backward_needs_a_scalar_or_a_gradient():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(RuntimeError, match="one-element"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(x.grad.data, [2.0, 20.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        tensor([1.0]).backward()


def test_graph_is_freed_unless_retained():
    x = leaf([2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.item() == 8.0
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_no_grad_and_enable_grad():
    x = leaf([1.0])
    with no_grad():
        y = x * 2
        with enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad and not z.is_leaf

    @no_grad()
    def predict(t):
        return t * 3

    assert not predict(x).requires_grad
    assert fastnn.no_grad is no_grad
    assert fastnn.tensor([1.0]).dtype == np.float32  # fastnn.tensor is callable


def test_inplace_update_only_without_recording():
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="no_grad"):
        w -= 1.0
    with no_grad():
        w -= 0.5 * tensor([2.0, 2.0], dtype="float64")
    np.testing.assert_array_equal(w.data, [0.0, 1.0])
    assert w.requires_grad and w.is_leaf


def test_detach_shares_values_and_stops_gradients():
    x = leaf([1.0, 2.0])
    d = x.detach()
    assert d.data is x.data and not d.requires_grad
    (x * d).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 2.0])


def test_row_indexing_gradient_adds_repeated_rows():
    x = leaf(np.arange(6.0).reshape(3, 2))
    x[[0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[2, 2], [0, 0], [1, 1]])
    x.grad = None
    x[1:].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 0], [1, 1], [1, 1]])
    with pytest.raises(IndexError, match="out of range"):
        x[5]


def test_max_routes_gradient_to_the_maximum():
    x = leaf([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    values, indices = x.max(dim=1)
    assert indices.tolist() == [1, 0]
    values.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 1, 0], [1, 0, 0]])


def test_shape_errors_are_clear():
    x = leaf(np.ones((2, 3)))
    with pytest.raises(ValueError, match="reshape"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="out of range"):
        x.sum(dim=2)
    with pytest.raises(TypeError, match="dim"):
        x.sum(dim="rows")
    with pytest.raises(ValueError, match="align"):
        x @ leaf(np.ones((2, 2)))
    with pytest.raises(TypeError, match="mean"):
        tensor([1, 2]).mean()


# ----------------------------------------------------------------------------
# Gradients: finite differences
# ----------------------------------------------------------------------------

def check_gradients(f, *arrays):
    """Compare backward() with central differences for scalar ``f`` of float64 leaves."""
    leaves = [leaf(a) for a in arrays]
    out = f(*leaves)
    out.backward()
    atol = ATOL + rounding_error(out.item())
    for i, t in enumerate(leaves):
        def scalar(values, i=i):
            args = [Tensor(values) if j == i else Tensor(arrays[j]) for j in range(len(arrays))]
            with no_grad():
                return f(*args).item()
        numeric = numerical_gradient(scalar, np.array(arrays[i], dtype=np.float64))
        # An input the result does not depend on keeps grad None, as in PyTorch.
        analytic = np.zeros_like(numeric) if t.grad is None else t.grad.data
        assert_gradient_close(analytic, numeric, atol=atol, what=f"input {i}")


def test_matmul_goes_through_the_backend_gemm(use_backend, rng, monkeypatch):
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 5))
    calls = []
    ops = backends.get(use_backend)
    original = ops.gemm
    monkeypatch.setattr(ops, "gemm", lambda *args, **kw: calls.append(kw) or original(*args, **kw))
    x, w = leaf(a), leaf(b)
    out = x @ w
    np.testing.assert_allclose(out.data, a @ b, rtol=1e-13)
    out.sum().backward()
    assert len(calls) == 3  # forward, d/da, d/db
    np.testing.assert_allclose(x.grad.data, np.ones((4, 5)) @ b.T, rtol=1e-13)
    np.testing.assert_allclose(w.grad.data, a.T @ np.ones((4, 5)), rtol=1e-13)


@pytest.mark.parametrize("shapes", [((3,), (3, 2)), ((2, 3), (3,)), ((3,), (3,)), ((2, 2, 3), (3, 4))])
def test_matmul_shapes_and_gradients(shapes, rng):
    a, b = rng.normal(size=shapes[0]), rng.normal(size=shapes[1])
    np.testing.assert_allclose(matmul(Tensor(a), Tensor(b)).data, np.matmul(a, b), rtol=1e-13)
    check_gradients(lambda x, y: ((x @ y) * (x @ y)).sum(), a, b)


def test_transposed_and_strided_operands(rng):
    a = rng.normal(size=(3, 4))
    check_gradients(lambda x: (x.T @ x).sum() + (x[:, ::2] @ x[::2, :2].T).sum() * 0.5, a)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "log_softmax"])
def test_activation_gradients(name, use_backend, rng):
    a = rng.normal(size=(3, 4))
    a[np.abs(a) < 1e-3] = 0.5  # keep relu away from its kink
    weights = rng.normal(size=(3, 4))
    method = {"softmax": lambda x: x.softmax(1), "log_softmax": lambda x: x.log_softmax(0)}.get(
        name, lambda x: getattr(x, name)())
    check_gradients(lambda x: (method(x) * Tensor(weights)).sum(), a)


def test_reductions_and_shapes_gradients(rng):
    a = rng.normal(size=(2, 3, 4))
    w = rng.normal(size=(3,))
    check_gradients(
        lambda x: (x.sum(dim=(0, 2)) * Tensor(w)).sum() + x.mean(dim=1, keepdim=True).exp().sum()
        + x.reshape(6, 4).T.sum(0).log_softmax(0).sum() + (x.flatten(1) ** 3).mean(), a)
    check_gradients(lambda x: (x.abs() + 1).sqrt().sum() + x.clamp(-0.5, 0.5).sum()
                    + x.unsqueeze(0).squeeze(0).max(), a + 0.01)


# Random expressions: every op of the tensor, composed by hypothesis, checked
# against central differences. Each op maps (3, 4) operands to a (3, 4) result
# and stays clear of kinks and poles, so finite differences are trustworthy.
W = np.random.default_rng(7).normal(size=(4, 4)) / 2
R = np.random.default_rng(8).normal(size=(3, 4))
UNARY = {
    "neg": lambda a: -a,
    "exp_tanh": lambda a: a.tanh().exp(),
    "log": lambda a: (a * a + 1).log(),
    "sqrt": lambda a: (a * a + 0.5).sqrt(),
    "cube": lambda a: a ** 3 * 0.3,
    "sigmoid": lambda a: a.sigmoid(),
    "tanh": lambda a: a.tanh(),
    "softmax": lambda a: a.softmax(1),
    "log_softmax": lambda a: a.log_softmax(0),
    "matmul": lambda a: a @ Tensor(W),
    "transpose": lambda a: a.reshape(4, 3).T,
    "rows": lambda a: a[[2, 0, 0]],
    "slice": lambda a: a[::-1] * 0.5 + 1,
    "rsub": lambda a: 1.0 - a / 2.0,
    "rdiv": lambda a: 2.0 / (a * a + 1),
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "pow": lambda a, b: (a * a + 1) ** (b.tanh()),
    "bcast_row": lambda a, b: a + b.sum(0),
    "bcast_col": lambda a, b: a * b.mean(1, keepdim=True),
    "matmul_T": lambda a, b: (a @ b.T) @ a * 0.2,
}

step = st.one_of(
    st.tuples(st.sampled_from(sorted(UNARY)), st.integers(0, 50)),
    st.tuples(st.sampled_from(sorted(BINARY)), st.integers(0, 50), st.integers(0, 50)),
)


def evaluate(program, x, y):
    pool = [x, y]
    for op in program:
        if len(op) == 2:
            pool.append(UNARY[op[0]](pool[op[1] % len(pool)]))
        else:
            pool.append(BINARY[op[0]](pool[op[1] % len(pool)], pool[op[2] % len(pool)]))
    return (pool[-1] * Tensor(R)).sum()


@pytest.mark.parametrize("backend", backends.available())
@settings(max_examples=25, deadline=None)
@given(program=st.lists(step, min_size=1, max_size=6),
       seed=st.integers(0, 2**16))
# |f| = 11.7 with gradient entries of 1e-4: the finite differences' rounding error
# (2e-9) exceeded a tolerance that ignored it, until check_gradients counted it
@example(program=[("rdiv", 0), ("bcast_row", 14, 26), ("exp_tanh", 3)], seed=0)
def test_random_expressions_match_finite_differences(backend, program, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.uniform(-1, 1, size=(3, 4)), rng.uniform(-1, 1, size=(3, 4))
    with config.use_backend(backend):
        check_gradients(lambda a, b: evaluate(program, a, b), x, y)


def test_matmul_with_an_empty_inner_dimension():
    # (2, 3, 0) @ (0, 4) is zeros(2, 3, 4); the reshape to (-1, 0) was ambiguous
    a = fastnn.zeros(2, 3, 0, requires_grad=True)
    b = fastnn.ones(0, 4, requires_grad=True)
    c = a @ b
    np.testing.assert_array_equal(c.numpy(), np.zeros((2, 3, 4)))
    c.sum().backward()
    assert a.grad.shape == (2, 3, 0) and b.grad.shape == (0, 4)
