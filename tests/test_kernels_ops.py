"""Every op the fast backend overrides, against the reference backend.

float32 (rtol 1e-5, scaled by the magnitude of the result) and float64 (rtol
1e-12, scaled), shapes with 1, primes, odd sizes and sizes that are not
multiples of the GEMM tile, a few large ones, non-contiguous and transposed
inputs, ``out=`` arguments, and the cases where the fast backend hands over to
the reference code. Thread-count determinism is in test_kernels_threads.py.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastnn._kernels")
pytest.importorskip("fastnn._gemm_binding")

from fastnn import backends, config  # noqa: E402
from fastnn.backends import ACTIVATION_CODES  # noqa: E402
from fastnn.backends.fast import FastOps  # noqa: E402

FAST = backends.get("fast")
REF = backends.get("reference")

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}
ACTIVATIONS = sorted(ACTIVATION_CODES)
ELEMENTWISE = [a for a in ACTIVATIONS if a not in ("softmax", "log_softmax")]
# Activations whose derivative can be formed from the output y alone.
FROM_Y = ["linear", "relu", "sigmoid", "tanh", "exponential", "leaky_relu", "elu", "softplus",
          "softmax", "log_softmax"]
DENSE_SHAPES = [(1, 1, 1), (1, 7, 3), (5, 3, 1), (13, 17, 11), (32, 784, 64), (31, 67, 129),
                (64, 100, 257)]
LOSSES = ["mean_squared_error", "mean_absolute_error", "huber", "binary_crossentropy",
          "categorical_crossentropy", "sparse_categorical_crossentropy"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Values are checked on one thread, ours and the BLAS's behind the reference:
    on a loaded machine a thread team that waits for a descheduled member turns
    microseconds into milliseconds. That other thread counts give the same bits
    is test_kernels_threads.py's job."""
    previous = config.get_num_threads()
    config.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only makes the reference's matmul faster here
        limits = None
    else:
        limits = threadpool_limits(1, user_api="blas")
    yield
    if limits is not None:
        limits.restore_original_limits()
    config.set_num_threads(previous)


def assert_close(actual, expected, dtype, rtol_scale=1.0):
    """Elementwise within rtol of the expected value, or within rtol times the
    largest expected magnitude (sums lose relative accuracy near zero)."""
    expected = np.asarray(expected)
    rtol = RTOL[np.dtype(dtype)] * rtol_scale
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-30))


def inputs(rng, shape, dtype, scale=2.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


def away_from_zero(x, margin=1e-3):
    """Keep x off relu's kink, where a rounding difference flips the branch."""
    x = x.copy()
    x[np.abs(x) < margin] = margin
    return x


def test_fast_backend_is_the_reference_with_hot_ops_overridden():
    assert isinstance(FAST, FastOps) and FAST.name == "fast"
    hot = ["gemm", "activation", "activation_backward", "dense_forward", "dense_backward",
           "loss", "loss_value", "sgd_update", "adam_update", "rmsprop_update",
           "adagrad_update", "clip_by_value", "clip_by_norm", "global_norm",
           "clip_by_global_norm", "l1l2_penalty", "l1l2_grad"]
    for name in hot:
        assert name in FastOps.__dict__, name
    assert "dropout_mask" not in FastOps.__dict__  # inherited


# ---------------------------------------------------------------------------
# GEMM (the binding itself is tested with the GEMM; here: the op's wiring)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_gemm_op(float_dtype, rng, trans_a, trans_b):
    m, k, n = 13, 37, 29
    a = inputs(rng, (k, m) if trans_a else (m, k), float_dtype)
    b = inputs(rng, (n, k) if trans_b else (k, n), float_dtype)
    c0 = inputs(rng, (m, n), float_dtype)
    out = c0.copy()
    got = FAST.gemm(a, b, trans_a, trans_b, alpha=0.5, beta=2.0, out=out)
    want = REF.gemm(a, b, trans_a, trans_b, alpha=0.5, beta=2.0, out=c0.copy())
    assert got is out
    assert_close(got, want, float_dtype)


# ---------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_reference(name, float_dtype, rng):
    for shape in [(1,), (1, 1), (7, 13), (3, 5, 11), (33, 65), (128, 300)]:
        x = inputs(rng, shape, float_dtype)
        got = FAST.activation(x, name)
        assert got.dtype == float_dtype and got.shape == shape and got.flags.c_contiguous
        assert_close(got, REF.activation(x, name), float_dtype)


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_activation_param(name, float_dtype, rng):
    x = inputs(rng, (9, 10), float_dtype)
    assert_close(FAST.activation(x, name, param=0.37), REF.activation(x, name, param=0.37),
                 float_dtype)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "softmax", "log_softmax", "relu",
                                  "elu", "leaky_relu"])
def test_activation_is_stable_for_huge_inputs(name, float_dtype):
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=float_dtype)
    got = FAST.activation(x, name)
    assert np.all(np.isfinite(got))
    assert_close(got, REF.activation(x, name), float_dtype)


@pytest.mark.parametrize("name", ["relu", "gelu", "softmax"])
def test_activation_noncontiguous_input_and_out(name, float_dtype, rng):
    big = inputs(rng, (20, 30), float_dtype)
    x = big[::2, 1::3]
    want = REF.activation(x, name)
    assert_close(FAST.activation(x, name), want, float_dtype)
    out = np.empty_like(want)
    assert FAST.activation(x, name, out=out) is out
    assert_close(out, want, float_dtype)
    # a non-contiguous out is written too
    holder = np.zeros((want.shape[0], 2 * want.shape[1]), float_dtype)
    view = holder[:, ::2]
    assert FAST.activation(x, name, out=view) is view
    assert_close(view, want, float_dtype)
    assert np.all(holder[:, 1::2] == 0)


def test_activation_in_place(float_dtype, rng):
    x = inputs(rng, (17, 19), float_dtype)
    want = REF.activation(x, "tanh")
    assert FAST.activation(x, "tanh", out=x) is x
    assert_close(x, want, float_dtype)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_other_axes_fall_back_to_reference(name, float_dtype, rng):
    x = inputs(rng, (6, 7, 5), float_dtype)
    for axis in (0, 1, 2, -1):
        assert_close(FAST.activation(x, name, axis=axis), REF.activation(x, name, axis=axis),
                     float_dtype)
    g = inputs(rng, x.shape, float_dtype)
    y = REF.activation(x, name, axis=1)
    assert_close(FAST.activation_backward(g, x, y, name, axis=1),
                 REF.activation_backward(g, x, y, name, axis=1), float_dtype)


def test_activation_unknown_name_raises_like_reference():
    with pytest.raises(ValueError, match="unknown activation"):
        FAST.activation(np.zeros(3), "relux")


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_backward_matches_reference(name, float_dtype, rng):
    for shape in [(1, 1), (7, 13), (33, 65), (40, 300)]:
        x = away_from_zero(inputs(rng, shape, float_dtype))
        y = REF.activation(x, name)
        g = inputs(rng, shape, float_dtype, scale=1.0)
        got = FAST.activation_backward(g, x, y, name)
        assert got.dtype == float_dtype and got.shape == shape
        assert_close(got, REF.activation_backward(g, x, y, name), float_dtype)


@pytest.mark.parametrize("name", FROM_Y)
def test_activation_backward_from_output_only(name, float_dtype, rng):
    x = away_from_zero(inputs(rng, (11, 23), float_dtype))
    y = REF.activation(x, name)
    g = inputs(rng, x.shape, float_dtype)
    assert_close(FAST.activation_backward(g, None, y, name),
                 REF.activation_backward(g, None, y, name), float_dtype)


def test_softplus_backward_from_output_is_accurate_far_left():
    # sigmoid(x) = 1 - e^-y is -expm1(-y): accurate when y is tiny
    x = np.array([-30.0, -20.0, -10.0, 0.5])
    y = REF.activation(x, "softplus")
    got = FAST.activation_backward(np.ones_like(x), None, y, "softplus")
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-x)), rtol=1e-12)


def test_activation_backward_computes_y_from_x_when_missing(float_dtype, rng):
    x = inputs(rng, (5, 8), float_dtype)
    g = inputs(rng, x.shape, float_dtype)
    y = REF.activation(x, "sigmoid")
    assert_close(FAST.activation_backward(g, x, None, "sigmoid"),
                 REF.activation_backward(g, x, y, "sigmoid"), float_dtype)


def test_activation_backward_out_and_noncontiguous(float_dtype, rng):
    big = inputs(rng, (16, 40), float_dtype)
    x = big[:, ::2]
    y = REF.activation(x, "elu")
    g = inputs(rng, (16, 40), float_dtype)[:, 1::2]
    want = REF.activation_backward(g, x, y, "elu")
    out = np.empty_like(want)
    assert FAST.activation_backward(g, x, y, "elu", out=out) is out
    assert_close(out, want, float_dtype)


def test_gelu_backward_needs_x():
    y = np.ones((2, 2))
    with pytest.raises(ValueError, match="x"):
        FAST.activation_backward(y, None, y, "gelu")


# ---------------------------------------------------------------------------
# Dense layer
# ---------------------------------------------------------------------------

def dense_case(rng, m, k, n, dtype):
    x = inputs(rng, (m, k), dtype, scale=1.0)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(dtype)
    b = inputs(rng, (n,), dtype, scale=0.5)
    return x, w, b


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_forward_matches_reference(name, float_dtype, rng):
    for m, k, n in DENSE_SHAPES:
        x, w, b = dense_case(rng, m, k, n, float_dtype)
        for bias in (b, None):
            pre_fast = np.empty((m, n), float_dtype)
            pre_ref = np.empty((m, n), float_dtype)
            got = FAST.dense_forward(x, w, bias, name, preact_out=pre_fast)
            want = REF.dense_forward(x, w, bias, name, preact_out=pre_ref)
            assert got.shape == (m, n) and got.dtype == float_dtype and got.flags.c_contiguous
            assert_close(pre_fast, pre_ref, float_dtype, rtol_scale=10)
            assert_close(got, want, float_dtype, rtol_scale=10)


def test_dense_forward_strided_transposed_and_out(float_dtype, rng):
    m, k, n = 19, 45, 23
    x, w, b = dense_case(rng, m, k, n, float_dtype)
    want = REF.dense_forward(x, w, b, "relu")
    # x as a row-strided view, kernel as the transpose of a (n, k) array (torch's layout)
    x_view = np.zeros((m, k + 7), float_dtype)
    x_view[:, 3:3 + k] = x
    w_t = np.ascontiguousarray(w.T).T
    assert not w_t.flags.c_contiguous
    assert_close(FAST.dense_forward(x_view[:, 3:3 + k], w_t, b, "relu"), want, float_dtype)
    # x transposed, kernel with every other column
    x_t = np.ascontiguousarray(x.T).T
    w_wide = np.zeros((k, 2 * n), float_dtype)
    w_wide[:, ::2] = w
    assert_close(FAST.dense_forward(x_t, w_wide[:, ::2], b, "relu"), want, float_dtype)
    out = np.empty((m, n), float_dtype)
    pre = np.empty((m, n), float_dtype)
    assert FAST.dense_forward(x, w, b, "relu", out=out, preact_out=pre) is out
    assert_close(out, want, float_dtype)
    assert_close(pre, x @ w + b, float_dtype)
    # a strided out and preact are written in place
    holder = np.zeros((m, 2 * n), float_dtype)
    got = FAST.dense_forward(x, w, b, "relu", out=holder[:, 1::2], preact_out=holder[:, ::2])
    assert_close(got, want, float_dtype)
    assert_close(holder[:, 1::2], want, float_dtype)
    assert_close(holder[:, ::2], x @ w + b, float_dtype)


def test_dense_forward_empty_batch(float_dtype):
    x = np.zeros((0, 4), float_dtype)
    w = np.ones((4, 3), float_dtype)
    assert FAST.dense_forward(x, w, None, "softmax").shape == (0, 3)


def backward_both(rng, name, m, k, n, dtype, accumulate=False, need_input_grad=True,
                  use_bias=True, keep_preact=True):
    x, w, b = dense_case(rng, m, k, n, dtype)
    x = away_from_zero(x)
    pre = x @ w + b
    pre = away_from_zero(pre).astype(dtype)
    y = REF.activation(pre, name)
    g = inputs(rng, (m, n), dtype, scale=1.0)
    results = []
    for ops in (FAST, REF):
        gk = inputs(np.random.default_rng(7), (k, n), dtype)
        gb = inputs(np.random.default_rng(8), (n,), dtype) if use_bias else None
        gx = ops.dense_backward(g, x, w, y, pre if keep_preact else None, name,
                                grad_kernel=gk, grad_bias=gb, need_input_grad=need_input_grad,
                                accumulate=accumulate)
        results.append((gx, gk, gb))
    return results


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dense_backward_matches_reference(name, float_dtype, rng):
    for m, k, n in DENSE_SHAPES:
        (gx, gk, gb), (rgx, rgk, rgb) = backward_both(rng, name, m, k, n, float_dtype)
        assert gx.shape == (m, k) and gx.dtype == float_dtype
        assert_close(gx, rgx, float_dtype, rtol_scale=10)
        assert_close(gk, rgk, float_dtype, rtol_scale=10)
        assert_close(gb, rgb, float_dtype, rtol_scale=10)


@pytest.mark.parametrize("name", ["linear", "relu", "tanh", "softmax"])
def test_dense_backward_accumulates_and_skips_input_grad(name, float_dtype, rng):
    (gx, gk, gb), (rgx, rgk, rgb) = backward_both(rng, name, 17, 33, 70, float_dtype,
                                                  accumulate=True, need_input_grad=False)
    assert gx is None and rgx is None
    assert_close(gk, rgk, float_dtype, rtol_scale=10)
    assert_close(gb, rgb, float_dtype, rtol_scale=10)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "elu", "softmax"])
def test_dense_backward_without_preact_or_bias(name, float_dtype, rng):
    (gx, gk, gb), (rgx, rgk, rgb) = backward_both(rng, name, 9, 12, 5, float_dtype,
                                                  use_bias=False, keep_preact=False)
    assert gb is None
    assert_close(gx, rgx, float_dtype, rtol_scale=10)
    assert_close(gk, rgk, float_dtype, rtol_scale=10)


def test_dense_backward_torch_layout(float_dtype, rng):
    # torch's Linear keeps weight (out, in); the layer passes weight.T and grad.T
    m, k, n = 21, 37, 19
    x, w, b = dense_case(rng, m, k, n, float_dtype)
    pre = x @ w + b
    y = REF.activation(pre, "tanh")
    g = inputs(rng, (m, n), float_dtype)
    weight = np.ascontiguousarray(w.T)
    for accumulate in (False, True):
        grad_weight = np.ones((n, k), float_dtype)
        ref_gk = np.ones((k, n), float_dtype)
        gx = FAST.dense_backward(g, x, weight.T, y, pre, "tanh", grad_kernel=grad_weight.T,
                                 accumulate=accumulate)
        rgx = REF.dense_backward(g, x, w, y, pre, "tanh", grad_kernel=ref_gk,
                                 accumulate=accumulate)
        assert_close(gx, rgx, float_dtype)
        assert_close(grad_weight.T, ref_gk, float_dtype)


def test_dense_backward_noncontiguous_grads(float_dtype, rng):
    m, k, n = 8, 10, 6
    x, w, b = dense_case(rng, m, k, n, float_dtype)
    pre = x @ w + b
    y = REF.activation(pre, "sigmoid")
    g_big = inputs(rng, (m, 2 * n), float_dtype)
    g = g_big[:, ::2]
    gk_holder = np.zeros((k, 3 * n), float_dtype)
    gb_holder = np.zeros(2 * n, float_dtype)
    FAST.dense_backward(g, x, w, y, pre, "sigmoid", grad_kernel=gk_holder[:, ::3],
                        grad_bias=gb_holder[::2])
    rgk = np.zeros((k, n), float_dtype)
    rgb = np.zeros(n, float_dtype)
    REF.dense_backward(np.ascontiguousarray(g), x, w, y, pre, "sigmoid", grad_kernel=rgk,
                       grad_bias=rgb)
    assert_close(gk_holder[:, ::3], rgk, float_dtype)
    assert_close(gb_holder[::2], rgb, float_dtype)
    assert np.all(gk_holder[:, 1::3] == 0) and np.all(gb_holder[1::2] == 0)


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------

def loss_case(rng, name, shape, dtype, from_logits):
    m = shape[0]
    n = shape[-1] if len(shape) > 1 else 1
    if name == "sparse_categorical_crossentropy":
        y_true = rng.integers(0, n, size=m)
    elif name == "categorical_crossentropy":
        y_true = np.eye(n, dtype=dtype)[rng.integers(0, n, size=m)]
    elif name == "binary_crossentropy":
        y_true = rng.integers(0, 2, size=shape).astype(dtype)
    else:
        y_true = inputs(rng, shape, dtype)
    if from_logits or name not in ("binary_crossentropy", "categorical_crossentropy",
                                   "sparse_categorical_crossentropy"):
        y_pred = inputs(rng, shape, dtype, scale=3.0)
    elif name == "binary_crossentropy":
        y_pred = rng.uniform(0, 1, size=shape).astype(dtype)
    else:
        y_pred = REF.activation(inputs(rng, shape, dtype, scale=3.0), "softmax")
    return y_pred, y_true


LOSS_CASES = [(name, logits) for name in LOSSES for logits in (False, True)
              if logits is False or "crossentropy" in name]


@pytest.mark.parametrize("name,from_logits", LOSS_CASES)
def test_loss_matches_reference(name, from_logits, float_dtype, rng):
    shapes = [(1, 1), (7, 5), (33, 10), (300, 3), (64, 129)]
    if name in ("mean_squared_error", "mean_absolute_error", "huber", "binary_crossentropy"):
        shapes += [(13,), (4, 3, 5)]
    for shape in shapes:
        y_pred, y_true = loss_case(rng, name, shape, float_dtype, from_logits)
        for weights in (None, rng.uniform(0, 2, size=shape[0]).astype(float_dtype)):
            value, grad = FAST.loss(name, y_pred, y_true, from_logits, weights)
            r_value, r_grad = REF.loss(name, y_pred, y_true, from_logits, weights)
            assert isinstance(value, float)
            assert grad.shape == y_pred.shape and grad.dtype == float_dtype
            assert_close(value, r_value, float_dtype)
            assert_close(grad, r_grad, float_dtype)
            assert FAST.loss_value(name, y_pred, y_true, from_logits, weights) == value


@pytest.mark.parametrize("name", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_loss_from_logits_gives_the_softmax_bits(name, num_threads, float_dtype, rng):
    # The fused trainer takes the model's softmax output for its metrics from the
    # loss: it must be the softmax kernel's result bit for bit, ties and all.
    from fastnn import _kernels as K
    code = K.LOSS_CODES[name]
    softmax = ACTIVATION_CODES["softmax"]
    for shape in [(1, 1), (7, 5), (3000, 10), (64, 129)]:
        y_pred, y_true = loss_case(rng, name, shape, float_dtype, True)
        y_pred[0, :] = 3.0                              # a row of ties
        if shape[1] > 1:
            y_pred[-1, :2] = [80.0, -80.0]              # exponentials that underflow
        probs = np.empty_like(y_pred)
        value, grad = K.loss(code, y_pred, y_true, True, num_threads=num_threads,
                             probs_out=probs)
        np.testing.assert_array_equal(probs, K.activation(y_pred, softmax))
        plain_value, plain_grad = K.loss(code, y_pred, y_true, True, num_threads=num_threads)
        assert value == plain_value                     # asking for them changes nothing else
        np.testing.assert_array_equal(grad, plain_grad)
    y_pred, y_true = loss_case(rng, name, (4, 3), float_dtype, True)
    with pytest.raises(ValueError, match="from logits"):
        K.loss(code, y_pred, y_true, False, probs_out=np.empty_like(y_pred))
    with pytest.raises(ValueError, match="C-contiguous"):
        K.loss(code, y_pred, y_true, True, probs_out=np.empty((4, 2), y_pred.dtype))
    with pytest.raises(ValueError, match="overlap"):
        K.loss(code, y_pred, y_true, True, probs_out=y_pred)
    with pytest.raises(TypeError, match="probs_out"):
        K.loss(code, y_pred, y_true, True, probs_out=[0.0] * 12)


def _ulps(a, b):
    """Distance in units in the last place between float32 arrays of one sign."""
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


def test_float32_exponential_is_within_one_ulp(rng):
    # csrc/fast_exp.h against the double exponential rounded to float32, over
    # the whole range where e^x is a normal float, densely and at random.
    from fastnn import _kernels as K
    x = np.concatenate([np.linspace(-87.3, 88.7, 1_000_001, dtype=np.float32),
                        rng.uniform(-87.3, 88.7, 200_000).astype(np.float32),
                        rng.uniform(-1e-3, 1e-3, 10_000).astype(np.float32)])
    want = np.exp(x.astype(np.float64)).astype(np.float32)
    assert _ulps(K.exp_float32(x), want).max() <= 1


def test_float32_exponential_special_values():
    from fastnn import _kernels as K
    x = np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, 88.8, 89.0, 1e30, -104.0, -1e30,
                  -103.0, -87.4], np.float32)
    y = K.exp_float32(x)
    assert np.isnan(y[0])
    np.testing.assert_array_equal(y[1:10], [0.0, np.inf, 1.0, 1.0, np.inf, np.inf, np.inf,
                                            0.0, 0.0])
    # denormal results: within one rounding of the true value
    want = np.exp(x[10:].astype(np.float64))
    np.testing.assert_allclose(y[10:], want, rtol=0, atol=1.5e-45)
    assert K.exp_float32(np.float32(3.0), shift=3.0) == 1.0       # x - shift first


def test_float32_exponential_vector_and_portable_give_the_same_bits(rng):
    # The AVX2 kernel (eight lanes and a masked tail) and the portable C one
    # run the same operations: a machine without AVX2 gets the same softmax.
    from fastnn import _kernels as K
    special = np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, 89.0, -104.0, -103.0, 88.72],
                       np.float32)
    for n in list(range(0, 20)) + [64, 1001]:
        x = rng.uniform(-110, 95, n).astype(np.float32)
        x[: len(special)] = special[: n]
        for shift in (0.0, 2.5, -80.0):
            fast = K.exp_float32(x, shift)
            portable = K.exp_float32(x, shift, portable=True)
            np.testing.assert_array_equal(fast.view(np.uint32), portable.view(np.uint32))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_softmax_of_many_rows_is_each_row_alone(name, num_threads, float_dtype, rng):
    # Softmax computes the exponentials of a whole block of rows in one call:
    # every row must still come out as if it were computed alone.
    from fastnn import _kernels as K
    code = ACTIVATION_CODES[name]
    for n in [1, 3, 8, 10, 17, 64, 65, 130]:
        x = inputs(rng, (2000, n), float_dtype) * 10
        x[1, :] = 3.0
        whole = K.activation(x, code, num_threads=num_threads)
        for i in [0, 1, 2, 999, 1999]:
            np.testing.assert_array_equal(whole[i], K.activation(x[i : i + 1], code)[0])
        assert_close(whole, REF.activation(x, name), float_dtype)


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber_delta(delta, float_dtype, rng):
    y_pred, y_true = loss_case(rng, "huber", (20, 7), float_dtype, False)
    value, grad = FAST.loss("huber", y_pred, y_true, param=delta)
    r_value, r_grad = REF.loss("huber", y_pred, y_true, param=delta)
    assert_close(value, r_value, float_dtype)
    assert_close(grad, r_grad, float_dtype)


@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy",
                                  "sparse_categorical_crossentropy"])
def test_probability_losses_clip_at_the_boundaries(name, float_dtype):
    # exact 0 and 1 are clipped to [1e-7, 1 - 1e-7], with zero gradient where clipped
    y_pred = np.array([[0.0, 1.0, 0.0], [0.5, 0.25, 0.25], [1e-9, 1.0 - 1e-9, 0.0]], float_dtype)
    if name == "sparse_categorical_crossentropy":
        y_true = np.array([0, 1, 2])
    else:
        y_true = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], float_dtype)
    value, grad = FAST.loss(name, y_pred, y_true)
    r_value, r_grad = REF.loss(name, y_pred, y_true)
    assert np.isfinite(value)
    assert_close(value, r_value, float_dtype)
    assert_close(grad, r_grad, float_dtype)


@pytest.mark.parametrize("name", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_softmax_crossentropy_from_huge_logits_is_finite(name, float_dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], float_dtype)
    y_true = np.array([1, 2]) if name.startswith("sparse") else np.eye(3, dtype=float_dtype)[[1, 2]]
    value, grad = FAST.loss(name, logits, y_true, from_logits=True)
    r_value, r_grad = REF.loss(name, logits, y_true, from_logits=True)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert_close(value, r_value, float_dtype)
    assert_close(grad, r_grad, float_dtype)


def test_sparse_crossentropy_gradient_is_softmax_minus_one_hot():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = np.array([2, 0])
    value, grad = FAST.loss("sparse_categorical_crossentropy", logits, labels, from_logits=True)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(value, -np.mean(np.log(p[[0, 1], labels])), rtol=1e-14)
    np.testing.assert_allclose(grad, (p - np.eye(3)[labels]) / 2, rtol=1e-14, atol=1e-16)


def test_sparse_labels_any_integer_dtype_and_column(float_dtype, rng):
    y_pred, y_true = loss_case(rng, "sparse_categorical_crossentropy", (12, 4), float_dtype, True)
    want = REF.loss("sparse_categorical_crossentropy", y_pred, y_true, True)
    for labels in (y_true.astype(np.int32), y_true.reshape(-1, 1), y_true.astype(float_dtype)):
        value, grad = FAST.loss("sparse_categorical_crossentropy", y_pred, labels, True)
        assert_close(value, want[0], float_dtype)
        assert_close(grad, want[1], float_dtype)


def test_loss_noncontiguous_and_fallbacks(float_dtype, rng):
    big = inputs(rng, (10, 12), float_dtype)
    y_pred = big[:, ::3]
    y_true = inputs(rng, (10, 4), float_dtype)
    assert_close(FAST.loss("mean_squared_error", y_pred, y_true)[1],
                 REF.loss("mean_squared_error", y_pred, y_true)[1], float_dtype)
    # a cross-entropy over (batch, time, classes) runs the reference formula
    logits = inputs(rng, (3, 4, 5), float_dtype)
    labels = np.eye(5, dtype=float_dtype)[rng.integers(0, 5, size=(3, 4))]
    got = FAST.loss("categorical_crossentropy", logits, labels, from_logits=True)
    want = REF.loss("categorical_crossentropy", logits, labels, from_logits=True)
    assert_close(got[0], want[0], float_dtype)
    assert_close(got[1], want[1], float_dtype)
    with pytest.raises(ValueError, match="unknown loss"):
        FAST.loss("hinge", y_true, y_true)


def test_out_of_range_label_does_not_read_past_the_row():
    value, grad = FAST.loss("sparse_categorical_crossentropy", np.zeros((2, 3)),
                            np.array([0, 7]), from_logits=True)
    assert np.isnan(value)
    assert np.all(grad[1] == 0)


# ---------------------------------------------------------------------------
# Optimizer updates: several steps against the reference
# ---------------------------------------------------------------------------

def run_steps(ops, update, dtype, shape, state_names, steps=5, seed=3, **kwargs):
    rng = np.random.default_rng(seed)
    param = inputs(rng, shape, dtype, scale=1.0)
    state = {name: np.zeros(shape, dtype) for name in state_names}
    for step in range(1, steps + 1):
        grad = inputs(rng, shape, dtype, scale=1.0)
        update(ops, param, grad, state, step, **kwargs)
    return param, state


def sgd(ops, param, grad, state, step, **kw):
    ops.sgd_update(param, grad, state["velocity"], 0.1, first_step=step == 1, **kw)


def adam(ops, param, grad, state, step, **kw):
    ops.adam_update(param, grad, state["m"], state["v"], state["v_max"], 1e-2, 0.9, 0.999, 1e-8,
                    step, **kw)


def rmsprop(ops, param, grad, state, step, **kw):
    ops.rmsprop_update(param, grad, state["sq"], state["buf"], state["gavg"], 1e-2, 0.9, 1e-7,
                       **kw)


def adagrad(ops, param, grad, state, step, **kw):
    ops.adagrad_update(param, grad, state["sum"], 0.1, 1e-10, step, **kw)


OPTIMIZER_CASES = [
    (sgd, ["velocity"], {}),
    (sgd, ["velocity"], {"momentum": 0.9}),
    (sgd, ["velocity"], {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    (sgd, ["velocity"], {"momentum": 0.5, "dampening": 0.3, "weight_decay": 0.1,
                         "decoupled_weight_decay": True}),
    (adam, ["m", "v", "v_max"], {}),
    (adam, ["m", "v", "v_max"], {"amsgrad": True, "weight_decay": 0.01}),
    (adam, ["m", "v", "v_max"], {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    (rmsprop, ["sq", "buf", "gavg"], {}),
    (rmsprop, ["sq", "buf", "gavg"], {"momentum": 0.9, "centered": True}),
    (rmsprop, ["sq", "buf", "gavg"], {"weight_decay": 0.05, "decoupled_weight_decay": True,
                                      "centered": True}),
    (adagrad, ["sum"], {}),
    (adagrad, ["sum"], {"lr_decay": 0.01, "weight_decay": 0.01}),
    (adagrad, ["sum"], {"weight_decay": 0.1, "decoupled_weight_decay": True}),
]


@pytest.mark.parametrize("update,state_names,kwargs", OPTIMIZER_CASES,
                         ids=[f"{u.__name__}-{i}" for i, (u, _, _) in enumerate(OPTIMIZER_CASES)])
def test_optimizer_updates_match_reference(update, state_names, kwargs, float_dtype):
    for shape in [(1,), (7, 13), (20011,)]:
        p, s = run_steps(FAST, update, float_dtype, shape, state_names, **kwargs)
        rp, rs = run_steps(REF, update, float_dtype, shape, state_names, **kwargs)
        assert_close(p, rp, float_dtype, rtol_scale=10)
        for name in state_names:
            assert_close(s[name], rs[name], float_dtype, rtol_scale=10)


def test_optimizer_update_of_noncontiguous_param_falls_back(float_dtype, rng):
    holder = inputs(rng, (6, 10), float_dtype)
    ref_holder = holder.copy()
    param, ref_param = holder[:, ::2], ref_holder[:, ::2]
    grad = inputs(rng, (6, 5), float_dtype)
    m, v = np.zeros((6, 5), float_dtype), np.zeros((6, 5), float_dtype)
    rm, rv = m.copy(), v.copy()
    FAST.adam_update(param, grad, m, v, None, 0.1, 0.9, 0.999, 1e-8, 1)
    REF.adam_update(ref_param, grad, rm, rv, None, 0.1, 0.9, 0.999, 1e-8, 1)
    assert_close(holder, ref_holder, float_dtype)
    assert_close(m, rm, float_dtype)


# ---------------------------------------------------------------------------
# Clipping and penalties
# ---------------------------------------------------------------------------

def grad_list(rng, dtype):
    return [inputs(rng, s, dtype) for s in [(1,), (7, 13), (20011,), (3, 4, 5)]]


def test_clip_by_value(float_dtype, rng):
    grads = grad_list(rng, float_dtype)
    grads.append(inputs(rng, (6, 8), float_dtype)[:, ::2])  # non-contiguous view
    ref = [g.copy() for g in grads]
    FAST.clip_by_value(grads, 0.7)
    REF.clip_by_value(ref, 0.7)
    for g, r in zip(grads, ref):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("clip_norm", [0.5, 5.0, 1e6])
def test_norm_clipping(float_dtype, rng, clip_norm):
    grads = grad_list(rng, float_dtype)
    assert_close(FAST.global_norm(grads), REF.global_norm(grads), float_dtype)
    each, ref_each = [g.copy() for g in grads], [g.copy() for g in grads]
    FAST.clip_by_norm(each, clip_norm)
    REF.clip_by_norm(ref_each, clip_norm)
    for g, r in zip(each, ref_each):
        assert_close(g, r, float_dtype)
    glob, ref_glob = [g.copy() for g in grads], [g.copy() for g in grads]
    norm = FAST.clip_by_global_norm(glob, clip_norm)
    assert_close(norm, REF.clip_by_global_norm(ref_glob, clip_norm), float_dtype)
    for g, r in zip(glob, ref_glob):
        assert_close(g, r, float_dtype)
    assert FAST.global_norm(glob) <= clip_norm * (1 + 1e-5)


@pytest.mark.parametrize("l1,l2", [(0.0, 0.0), (0.01, 0.0), (0.0, 0.02), (0.01, 0.02)])
def test_l1l2(float_dtype, rng, l1, l2):
    for shape in [(1,), (7, 13), (20011,)]:
        w = inputs(rng, shape, float_dtype)
        w.flat[0] = 0  # sign(0) = 0
        assert_close(FAST.l1l2_penalty(w, l1, l2), REF.l1l2_penalty(w, l1, l2), float_dtype)
        grad = inputs(rng, shape, float_dtype)
        ref = grad.copy()
        assert FAST.l1l2_grad(w, l1, l2, grad) is grad
        REF.l1l2_grad(w, l1, l2, ref)
        assert_close(grad, ref, float_dtype)


# ---------------------------------------------------------------------------
# Validation: the compiled finiteness check against NumPy's
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [0, 1, 7, 4096, 4097, 10001])
def test_all_finite_matches_numpy(size, dtype):
    from fastnn._kernels import all_finite
    info = np.finfo(dtype)
    # extremes that are finite: largest, smallest normal, a subnormal, negative zero
    x = np.resize(np.array([info.max, -info.max, info.tiny, info.tiny / 4, -0.0, 1.5], dtype),
                  size)
    assert all_finite(x) is True
    for bad in (np.nan, np.inf, -np.inf):
        for pos in {0, size // 2, size - 1, min(4096, size - 1)} if size else ():
            y = x.copy()
            y[pos] = bad
            assert all_finite(y) is bool(np.isfinite(y).all()) is False


def test_all_finite_declines_what_it_cannot_scan():
    from fastnn._kernels import all_finite
    x = np.ones((4, 6))
    assert all_finite(x[:, ::2]) is None  # not contiguous
    assert all_finite(x.astype(np.float16)) is None
    assert all_finite([1.0, 2.0]) is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_on_several_threads(dtype):
    from fastnn._kernels import all_finite
    x = np.ones(300_001, dtype)
    assert all_finite(x, 2) is True and all_finite(x, 3) is True
    for pos in (0, 65_535, 65_536, 200_000, 300_000):
        y = x.copy()
        y[pos] = np.nan
        assert all_finite(y, 2) is False and all_finite(y, 1) is False


@pytest.mark.parametrize("name", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("offset", [1e8, 1e12, 1e17, -1e30])
def test_crossentropy_from_logits_ignores_a_common_offset(name, offset, float_dtype):
    # softmax does not see a constant added to every logit, nor may the loss: the kernel
    # computed (max + log sum) - x, cancelling two large numbers (1e17 gave a loss of 0)
    logits = np.array([[0.3, -1.2, 2.0, 0.5]]) + offset
    if offset == -1e30:
        logits = np.full((1, 4), -1e30)
    logits = logits.astype(float_dtype)
    label = np.array([1]) if name.startswith("sparse") else np.eye(4)[[1]].astype(float_dtype)
    shifted = logits - logits.max()
    expected = float(np.log(np.exp(shifted).sum()) - shifted[0, 1])
    got = FAST.loss_value(name, logits, label.astype(float_dtype) if label.ndim == 2 else label,
                          from_logits=True)
    assert got == pytest.approx(expected, rel=1e-6 if float_dtype == np.float32 else 1e-12)
    assert REF.loss_value(name, logits, label, from_logits=True) == pytest.approx(got, rel=1e-6)


def test_dense_forward_into_an_input_it_reads(float_dtype, rng):
    # out (or preact_out) sharing memory with x: the product overwrote rows of x it had
    # still to read (max error 67 at 17 x 17)
    x = rng.standard_normal((17, 17)).astype(float_dtype)
    w = rng.standard_normal((17, 17)).astype(float_dtype)
    b = rng.standard_normal(17).astype(float_dtype)
    want = REF.dense_forward(x.copy(), w, b, "tanh")
    for target in ("out", "preact_out"):
        xx = x.copy()
        y = FAST.dense_forward(xx, w, b, "tanh", **{target: xx})
        np.testing.assert_allclose(y, want, rtol=1e-5 if float_dtype == np.float32 else 1e-12,
                                   atol=1e-6)


def test_float32_norms_do_not_overflow_on_either_backend():
    # squares above float32's range: the kernels add in double; the reference did not
    g = np.full(4, 2e19, np.float32)
    for ops in (FAST, REF):
        assert ops.global_norm([g.copy()]) == pytest.approx(4e19, rel=1e-6)
        assert ops.l1l2_penalty(g, 0.0, 1e-3) == pytest.approx(1.6e36, rel=1e-6)
        clipped = [g.copy()]
        ops.clip_by_global_norm(clipped, 1.0)
        np.testing.assert_allclose(clipped[0], 0.5, rtol=1e-6)
