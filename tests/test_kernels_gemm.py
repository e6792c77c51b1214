"""fastnn's own GEMM (csrc/gemm.c through fastnn._gemm_binding) against NumPy.

The reference is computed in float64 (float128 where NumPy has it would not
change the verdicts) and the comparison uses the standard forward error bound
of a dot product, |fl(c) - c| <= gamma_k * (|alpha| |op(A)| |op(B)| + |beta C| + |bias|)
with gamma_k ~ (k + 2) * eps: a wrong element breaks it, rounding order never does.
"""
import numpy as np
import pytest

G = pytest.importorskip("fastnn._gemm_binding")

from fastnn.backends import ACTIVATION_CODES  # noqa: E402

DTYPES = [np.float32, np.float64]
TRANS = [(False, False), (False, True), (True, False), (True, True)]

# (m, n, k): size 1, primes, odd sizes, around the 6 x 16 / 6 x 8 tiles, the seed
# MLP's shapes, and shapes that take the packed (blocked) path with several
# k-blocks and row blocks.
SHAPES = [
    (1, 1, 1), (1, 7, 3), (5, 1, 9), (2, 3, 1), (7, 13, 5), (13, 17, 11),
    (6, 16, 4), (6, 8, 4), (12, 32, 257), (31, 37, 41), (97, 101, 103),
    (32, 64, 784), (32, 10, 64), (784, 64, 32), (32, 784, 64),
    (300, 517, 263), (157, 40, 1031),
    # the one-row path (m <= 2, B read in place): partial vectors, several
    # 64-column chunks, a masked last vector after full ones
    (1, 64, 784), (1, 10, 64), (2, 130, 33), (1, 67, 5), (2, 203, 17),
]


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    """The references are NumPy products; OpenBLAS threads that spin after each of
    them would compete with the GEMM's own OpenMP threads on a small machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only makes the suite faster
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _rng(seed=0):
    return np.random.default_rng(seed)


def _operands(m, n, k, dtype, trans_a, trans_b, seed=0):
    rng = _rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def _op(x, trans):
    return x.T if trans else x


def _reference(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c0=None, bias=None):
    """Exact-ish value (float64) and a rigorous rounding-error bound for the output dtype."""
    A = _op(a, trans_a).astype(np.float64)
    B = _op(b, trans_b).astype(np.float64)
    k = A.shape[1]
    value = alpha * (A @ B)
    scale = abs(alpha) * (np.abs(A) @ np.abs(B))
    if beta != 0.0 and c0 is not None:
        value = value + beta * c0.astype(np.float64)
        scale = scale + np.abs(beta * c0.astype(np.float64))
    if bias is not None:
        value = value + bias.astype(np.float64)
        scale = scale + np.abs(bias.astype(np.float64))
    eps = np.finfo(a.dtype).eps
    bound = (k + 4) * eps * scale + np.finfo(a.dtype).tiny
    return value, bound


def _assert_close(got, value, bound):
    err = np.abs(got.astype(np.float64) - value)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), (
        f"max violation at {worst}: got {got[worst]}, expected {value[worst]}, bound {bound[worst]}"
    )


def _activation(code_name, z, param):
    """The activations as NumPy formulas (float64)."""
    z = z.astype(np.float64)
    from math import erf
    formulas = {
        "linear": lambda: z,
        "relu": lambda: np.maximum(z, 0.0),
        "sigmoid": lambda: 1.0 / (1.0 + np.exp(-z)),
        "tanh": lambda: np.tanh(z),
        "exponential": lambda: np.exp(z),
        "leaky_relu": lambda: np.where(z > 0, z, param * z),
        "elu": lambda: np.where(z > 0, z, param * np.expm1(z)),
        "softplus": lambda: np.logaddexp(0.0, z),
        "gelu": lambda: 0.5 * z * (1.0 + np.vectorize(erf)(z / np.sqrt(2.0))),
        "gelu_tanh": lambda: 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z**3))),
        # Row-wise codes are finished by the caller: the GEMM leaves them linear.
        "softmax": lambda: z,
        "log_softmax": lambda: z,
    }
    return formulas[code_name]()


# ---------------------------------------------------------------- plain products

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_gemm_matches_numpy(m, n, k, trans_a, trans_b, dtype):
    a, b = _operands(m, n, k, dtype, trans_a, trans_b)
    c = G.gemm(a, b, trans_a, trans_b)
    assert c.shape == (m, n) and c.dtype == dtype and c.flags.c_contiguous
    _assert_close(c, *_reference(a, b, trans_a, trans_b))


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_hand_computed(dtype):
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=dtype)
    b = np.array([[1, 0], [0, 1], [1, 1]], dtype=dtype)
    np.testing.assert_array_equal(G.gemm(a, b), np.array([[4, 5], [10, 11]], dtype=dtype))
    np.testing.assert_array_equal(G.gemm(a, a, trans_b=True), np.array([[14, 32], [32, 77]], dtype=dtype))
    np.testing.assert_array_equal(G.gemm(a, a, trans_a=True)[0], np.array([17, 22, 27], dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_gemm_wide_output_crosses_column_blocks(trans_a, trans_b, dtype):
    # n > NC (4080) and m * k large enough for the packed path.
    m, n, k = 40, 4100, 300
    a, b = _operands(m, n, k, dtype, trans_a, trans_b, seed=3)
    _assert_close(G.gemm(a, b, trans_a, trans_b, num_threads=2), *_reference(a, b, trans_a, trans_b))


# ---------------------------------------------------------------- alpha, beta, out

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("m,n,k", [(7, 13, 5), (32, 64, 784), (300, 517, 263)])
def test_alpha_beta(m, n, k, trans_a, trans_b, dtype):
    a, b = _operands(m, n, k, dtype, trans_a, trans_b, seed=1)
    c0 = _rng(2).standard_normal((m, n)).astype(dtype)
    out = c0.copy()
    got = G.gemm(a, b, trans_a, trans_b, alpha=-0.75, beta=0.5, out=out)
    assert got is out
    _assert_close(out, *_reference(a, b, trans_a, trans_b, alpha=-0.75, beta=0.5, c0=c0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", [(7, 13, 5), (32, 64, 784), (300, 517, 263)])
def test_beta_zero_ignores_nan_in_out(m, n, k, dtype):
    a, b = _operands(m, n, k, dtype, False, False)
    out = np.full((m, n), np.nan, dtype=dtype)
    G.gemm(a, b, beta=0.0, out=out)
    assert np.all(np.isfinite(out))
    _assert_close(out, *_reference(a, b, False, False))


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_none_ignores_beta(dtype):
    a, b = _operands(4, 5, 6, dtype, False, False)
    _assert_close(G.gemm(a, b, beta=3.0), *_reference(a, b, False, False))


# ---------------------------------------------------------------- fused epilogue

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(ACTIVATION_CODES))
@pytest.mark.parametrize("m,n,k,trans_a,trans_b", [
    (13, 17, 11, False, False),   # one edge tile
    (784, 64, 32, True, False),   # small-problem path
    (300, 40, 263, True, True),   # packed path, two k-blocks, edge columns
    (1, 75, 40, False, False),    # one-row path, masked last vector
    (2, 64, 30, True, False),     # one-row path, A transposed
])
def test_bias_activation_epilogue(m, n, k, trans_a, trans_b, name, dtype):
    a, b = _operands(m, n, k, dtype, trans_a, trans_b, seed=4)
    a *= 0.2  # keep z in the range where exponential stays finite in float32
    bias = _rng(5).standard_normal(n).astype(dtype)
    param = {"leaky_relu": 0.2, "elu": 0.7}.get(name, 0.0)
    preact = np.empty((m, n), dtype=dtype)
    y = G.gemm(a, b, trans_a, trans_b, bias=bias, activation=ACTIVATION_CODES[name],
               param=param, preact=preact)
    # preact is the product plus bias ...
    _assert_close(preact, *_reference(a, b, trans_a, trans_b, bias=bias))
    # ... and y is the activation of exactly that preact.
    rtol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y, _activation(name, preact, param), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_epilogue_without_preact_matches_with(dtype):
    a, b = _operands(32, 64, 784, dtype, False, False)
    bias = _rng(6).standard_normal(64).astype(dtype)
    y1 = G.gemm(a, b, bias=bias, activation=ACTIVATION_CODES["relu"])
    y2 = G.gemm(a, b, bias=bias, activation=ACTIVATION_CODES["relu"],
                preact=np.empty((32, 64), dtype))
    np.testing.assert_array_equal(y1, y2)
    assert np.all(y1 >= 0) and np.any(y1 > 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_epilogue_with_alpha_beta(dtype):
    m, n, k = 19, 23, 29
    a, b = _operands(m, n, k, dtype, True, False, seed=7)
    c0 = _rng(8).standard_normal((m, n)).astype(dtype)
    bias = _rng(9).standard_normal(n).astype(dtype)
    preact = np.empty((m, n), dtype)
    y = G.gemm(a, b, trans_a=True, alpha=2.0, beta=-1.0, out=c0.copy(), bias=bias,
               activation=ACTIVATION_CODES["tanh"], preact=preact)
    _assert_close(preact, *_reference(a, b, True, False, 2.0, -1.0, c0, bias))
    np.testing.assert_allclose(y, np.tanh(preact.astype(np.float64)),
                               rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)


# ---------------------------------------------------------------- empty dimensions

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n", [(0, 5), (4, 0), (0, 0)])
def test_empty_output(m, n, dtype):
    k = 3
    a, b = _operands(m, n, k, dtype, False, False)
    c = G.gemm(a, b, bias=np.ones(n, dtype), activation=1)
    assert c.shape == (m, n) and c.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_k_zero_is_beta_c_then_epilogue(dtype):
    a = np.empty((4, 0), dtype)
    b = np.empty((0, 5), dtype)
    np.testing.assert_array_equal(G.gemm(a, b), np.zeros((4, 5), dtype))
    c0 = _rng(10).standard_normal((4, 5)).astype(dtype)
    bias = _rng(11).standard_normal(5).astype(dtype)
    preact = np.empty((4, 5), dtype)
    y = G.gemm(a, b, beta=2.0, out=c0.copy(), bias=bias, activation=ACTIVATION_CODES["relu"],
               preact=preact)
    np.testing.assert_array_equal(preact, 2 * c0 + bias)
    np.testing.assert_array_equal(y, np.maximum(2 * c0 + bias, 0))


# ---------------------------------------------------------------- memory layouts

@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_inputs(dtype):
    rng = _rng(12)
    big_a = rng.standard_normal((50, 90)).astype(dtype)
    big_b = rng.standard_normal((70, 60)).astype(dtype)
    cases = [
        (big_a[:, ::3], big_b[:30:, :41]),          # inner stride 3 (copied) / padded rows
        (big_a[::2, 5:35], big_b[3:33, ::2]),       # padded rows / inner stride 2
        (np.asfortranarray(big_a[:, :30]), np.asfortranarray(big_b[:30])),
        (big_a[::-1, :30], big_b[:30][::-1]),       # negative row strides
    ]
    for a, b in cases:
        _assert_close(G.gemm(a, b), *_reference(a, b, False, False))
        _assert_close(G.gemm(a.T, b.T, True, True), *_reference(a.T, b.T, True, True))


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_out_and_preact(dtype):
    a, b = _operands(9, 11, 13, dtype, False, False, seed=13)
    bias = _rng(14).standard_normal(11).astype(dtype)
    c0 = _rng(15).standard_normal((9, 11)).astype(dtype)
    value, bound = _reference(a, b, False, False, 1.0, 0.5, c0, bias)
    # padded rows (used in place), a column-strided view and a transposed view (copied back)
    for holder, view in [
        (np.zeros((9, 20), dtype), lambda h: h[:, 3:14]),
        (np.zeros((9, 33), dtype), lambda h: h[:, ::3]),
        (np.zeros((11, 9), dtype), lambda h: h.T),
    ]:
        out = view(holder)
        out[...] = c0
        pre_holder = np.zeros((9, 25), dtype)
        preact = pre_holder[:, 2:13]
        got = G.gemm(a, b, beta=0.5, out=out, bias=bias, activation=ACTIVATION_CODES["relu"],
                     preact=preact)
        assert got is out
        _assert_close(preact, value, bound)
        np.testing.assert_array_equal(out, np.maximum(preact, 0))
        assert np.all(pre_holder[:, :2] == 0) and np.all(pre_holder[:, 13:] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_out_overlapping_an_input(dtype):
    x = _rng(16).standard_normal((20, 20)).astype(dtype)
    y = _rng(17).standard_normal((20, 20)).astype(dtype)
    value, bound = _reference(x, y, False, False)
    G.gemm(x, y, out=x)
    _assert_close(x, value, bound)


@pytest.mark.parametrize("dtype", DTYPES)
def test_bias_inside_out(dtype):
    # bias is row 0 of out itself: it must be read before the product overwrites it
    # (several row tiles, so later tiles would otherwise see the new row 0).
    a, b = _operands(20, 6, 5, dtype, False, False, seed=25)
    out = _rng(26).standard_normal((20, 6)).astype(dtype)
    bias = out[0].copy()
    value, bound = _reference(a, b, False, False, bias=bias)
    G.gemm(a, b, out=out, bias=out[0])
    _assert_close(out, value, bound)


@pytest.mark.parametrize("dtype", DTYPES)
def test_broadcast_rows_in_input(dtype):
    # A row stride of 0 (np.broadcast_to) is a legal read-only layout.
    row = _rng(18).standard_normal((1, 7)).astype(dtype)
    a = np.broadcast_to(row, (5, 7))
    b = _rng(19).standard_normal((7, 3)).astype(dtype)
    _assert_close(G.gemm(a, b), *_reference(np.ascontiguousarray(a), b, False, False))


# ---------------------------------------------------------------- threads

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,trans_a,trans_b", [
    (300, 517, 263, False, False),   # packed path, split along n
    (517, 300, 263, True, True),     # packed path, split along m
    (32, 784, 64, False, True),      # small-problem path, split along n
    (784, 64, 32, True, False),      # small-problem path, split along m
    (157, 4100, 101, False, False),  # several column blocks
    (1, 3000, 400, False, False),    # one-row path, columns split between threads
    (1000, 50, 300, False, False),   # tall and narrow, A beyond L2: row units, B in L2
    (784, 64, 256, True, False),     # the same for a weight gradient x^T dz
])
def test_threads_bit_identical(m, n, k, trans_a, trans_b, dtype):
    a, b = _operands(m, n, k, dtype, trans_a, trans_b, seed=20)
    bias = _rng(21).standard_normal(n).astype(dtype)
    kw = dict(bias=bias, activation=ACTIVATION_CODES["gelu"], alpha=0.5)
    one = G.gemm(a, b, trans_a, trans_b, num_threads=1, **kw)
    G._reset_thread_backoff()
    two = G.gemm(a, b, trans_a, trans_b, num_threads=2, **kw)
    G._reset_thread_backoff()
    three = G.gemm(a, b, trans_a, trans_b, num_threads=3, **kw)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, three)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["relu", "linear", "gelu"])
@pytest.mark.parametrize("trans_a", [False, True])
def test_rows_alone_equal_rows_in_a_batch(trans_a, act, dtype):
    """One sample through the one-row kernel gives exactly its row of the batched
    product (the small-problem path): same FMA chain per element."""
    a, b = _operands(32, 64, 784, dtype, trans_a, False, seed=30)
    bias = _rng(31).standard_normal(64).astype(dtype)
    kw = dict(bias=bias, activation=ACTIVATION_CODES[act], alpha=0.75)
    batch = G.gemm(a, b, trans_a, False, **kw)
    for rows in (slice(0, 1), slice(5, 7), slice(31, 32)):
        part = a[:, rows] if trans_a else a[rows]
        np.testing.assert_array_equal(G.gemm(part, b, trans_a, False, **kw), batch[rows])


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_row_path_reads_and_writes_only_its_operands(dtype):
    """The masked last vector must not read past B's row or write past C's."""
    a, b = _operands(1, 9, 6, dtype, False, False, seed=32)
    wide = np.full((6, 16), np.nan, dtype)
    wide[:, :9] = b
    out = np.full((1, 16), -7.0, dtype)
    G.gemm(a, wide[:, :9], out=out[:, :9], beta=0.0)
    assert np.all(out[:, 9:] == -7.0)
    _assert_close(out[:, :9], *_reference(a, b, False, False))


def _with_offset(x, offset_bytes):
    """A copy of the 2-D array ``x`` whose data starts ``offset_bytes`` past a
    64-byte boundary (row stride unchanged)."""
    raw = np.empty(x.nbytes + 128, np.uint8)
    start = -raw.ctypes.data % 64 + offset_bytes
    out = raw[start:start + x.nbytes].view(x.dtype).reshape(x.shape)
    out[...] = x
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k,trans_a", [
    (32, 64, 784, False),   # few row tiles: B read in place when aligned
    (5, 70, 300, False),    # full panels in place, the edge panel packed
    (300, 48, 64, True),    # tall C, small k: in place, rows shared in units
    (301, 37, 100, False),  # tall C with an edge panel
    (64, 64, 256, True),    # many row tiles, larger k: packed either way
])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_b_in_place_equals_packed(m, n, k, trans_a, num_threads, dtype):
    """A B whose rows start cache lines is read where it lies, any other B is
    packed first: the two give the same bits (and agree with the reference)."""
    a, b = _operands(m, n, k, dtype, trans_a, False, seed=33)
    n_pad = -(-n * np.dtype(dtype).itemsize // 64) * 64 // np.dtype(dtype).itemsize
    wide = np.zeros((k, n_pad), dtype)
    wide[:, :n] = b
    aligned = _with_offset(wide, 0)[:, :n]       # rows on 64-byte boundaries
    shifted = _with_offset(wide, 16)[:, :n]      # rows straddle cache lines
    bias = _rng(34).standard_normal(n).astype(dtype)
    kw = dict(bias=bias, activation=ACTIVATION_CODES["relu"], num_threads=num_threads)
    G._reset_thread_backoff()
    y_in_place = G.gemm(a, aligned, trans_a, False, **kw)
    G._reset_thread_backoff()
    y_packed = G.gemm(a, shifted, trans_a, False, **kw)
    np.testing.assert_array_equal(y_in_place, y_packed)
    want, bound = _reference(a, b, trans_a, False, bias=bias)
    _assert_close(y_in_place, np.maximum(want, 0), bound)  # relu is 1-Lipschitz


def test_nonpositive_thread_count_means_one():
    a, b = _operands(30, 40, 50, np.float64, False, False)
    np.testing.assert_array_equal(G.gemm(a, b, num_threads=0), G.gemm(a, b, num_threads=1))
    np.testing.assert_array_equal(G.gemm(a, b, num_threads=-3), G.gemm(a, b, num_threads=1))


# ---------------------------------------------------------------- rows picked by a_rows

ROW_SHAPES = [
    (1, 10, 64),     # the one-row path: gathered first
    (5, 70, 300),    # few row tiles, an edge panel
    (32, 64, 784),   # the seed MLP's first layer at batch 32
    (256, 64, 784),  # ... at batch 256: tall C, rows shared in units
    (784, 64, 256),  # its weight gradient x^T dz (transposed: gathered first)
    (300, 517, 263), # the packed path: gathered first
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", ROW_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_picked_rows_equal_the_gathered_rows(m, n, k, trans_a, num_threads, dtype):
    """op(a[a_rows]) read where the rows lie gives the bits of the gathered copy,
    on every path (repeated and unsorted rows included)."""
    rng = _rng(40)
    stored, width = (k, m) if trans_a else (m, k)
    data = rng.standard_normal((2 * stored + 3, width)).astype(dtype)
    rows = rng.integers(0, len(data), stored)
    rows[-1] = rows[0]
    b = rng.standard_normal((k, n)).astype(dtype)
    bias = rng.standard_normal(n).astype(dtype)
    c0 = rng.standard_normal((m, n)).astype(dtype)
    kw = dict(alpha=1.5, beta=-0.5, bias=bias, activation=ACTIVATION_CODES["relu"],
              num_threads=num_threads)
    pre_want, pre_got = np.empty((m, n), dtype), np.empty((m, n), dtype)
    want = G.gemm(np.ascontiguousarray(data[rows]), b, trans_a, False, out=c0.copy(),
                  preact=pre_want, **kw)
    got = G.gemm(data, b, trans_a, False, out=c0.copy(), preact=pre_got, a_rows=rows, **kw)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(pre_got, pre_want)
    _assert_close(pre_got, *_reference(data[rows], b, trans_a, False, 1.5, -0.5, c0, bias))


def test_picked_rows_with_the_portable_kernel(portable_kernel):
    rng = _rng(41)
    data = rng.standard_normal((50, 30))
    rows = rng.integers(0, 50, 20)
    b = rng.standard_normal((30, 9))
    np.testing.assert_array_equal(G.gemm(data, b, a_rows=rows),
                                  G.gemm(np.ascontiguousarray(data[rows]), b))


def test_picked_rows_refuses_bad_row_numbers():
    data, b = np.ones((5, 4)), np.ones((4, 3))
    with pytest.raises(ValueError, match="a_rows must lie in"):
        G.gemm(data, b, a_rows=np.array([0, 5]))
    with pytest.raises(ValueError, match="a_rows must lie in"):
        G.gemm(data, b, a_rows=np.array([-1]))
    with pytest.raises(ValueError, match="a_rows must be a 1-D integer"):
        G.gemm(data, b, a_rows=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="a_rows must be a 1-D integer"):
        G.gemm(data, b, a_rows=np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="a_rows must be a numpy.ndarray"):
        G.gemm(data, b, a_rows=[0, 1])
    with pytest.raises(ValueError, match="inner dimensions"):
        G.gemm(data, np.ones((3, 3)), True, False, a_rows=np.array([0, 1]))
    assert G.gemm(data, b, a_rows=np.array([], np.int64)).shape == (0, 3)


# ---------------------------------------------------------------- parts of a product

PART_SHAPES = [
    (1, 64, 784),    # the one-row path
    (5, 70, 300),    # few row tiles, an edge panel
    (32, 64, 784),   # the seed MLP's first layer at batch 32 (sup path, B in place)
    (256, 64, 784),  # ... at batch 256: tall C
    (784, 64, 32),   # its weight gradient x^T dz, cut by rows of dW
    (300, 517, 263), # the packed path: k in several blocks
    (64, 1024, 784), # packed, wide
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n,k", PART_SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("picked", [False, True])
def test_parts_equal_the_whole_product(m, n, k, trans_a, trans_b, picked, dtype):
    """Rows computed part by part, wherever the cuts fall (off the tile grid, a
    part of one row, of none), are the whole product's bits: the team training
    step relies on it (csrc/fused.pyx)."""
    rng = _rng(50)
    a, b = _operands(m, n, k, dtype, trans_a, trans_b, seed=51)
    kw = dict(alpha=1.5, beta=-0.5, bias=rng.standard_normal(n).astype(dtype),
              activation=ACTIVATION_CODES["relu"])
    rows = None
    if picked:   # op(A)'s rows picked from a larger array, as the trainer reads a batch
        data = rng.standard_normal((2 * a.shape[0] + 3, a.shape[1])).astype(dtype)
        rows = rng.permutation(len(data))[:a.shape[0]]
        data[rows] = a
        a = data
    c0 = rng.standard_normal((m, n)).astype(dtype)
    pre_want = np.empty((m, n), dtype)
    want = G.gemm(a, b, trans_a, trans_b, out=c0.copy(), preact=pre_want, num_threads=2,
                  a_rows=rows, **kw)
    for cuts in ([0, m], [0, m // 2, m], [0, 1, m // 3, m // 3, m - 1, m], [0, 5, 16, m]):
        cuts = sorted(min(c, m) for c in cuts)
        got, pre_got = c0.copy(), np.full((m, n), np.nan, dtype)
        for r0, r1 in zip(cuts[:-1], cuts[1:]):
            G.gemm(a, b, trans_a, trans_b, out=got, preact=pre_got, a_rows=rows,
                   part=(r0, r1), **kw)
        np.testing.assert_array_equal(got, want, err_msg=str(cuts))
        np.testing.assert_array_equal(pre_got, pre_want, err_msg=str(cuts))


def test_part_leaves_the_other_rows_and_checks_its_bounds():
    a, b = _operands(9, 5, 4, np.float64, False, False, seed=52)
    out = np.full((9, 5), 7.0)
    G.gemm(a, b, out=out, part=(3, 6))
    np.testing.assert_array_equal(out[3:6], (a @ b)[3:6])
    assert (out[:3] == 7.0).all() and (out[6:] == 7.0).all()
    np.testing.assert_array_equal(G.gemm(a, b, part=(2, 2)), np.zeros((9, 5)))
    with pytest.raises(ValueError, match="part must satisfy"):
        G.gemm(a, b, part=(4, 10))
    with pytest.raises(ValueError, match="part must satisfy"):
        G.gemm(a, b, part=(5, 4))
    with pytest.raises(TypeError, match="part must be a pair"):
        G.gemm(a, b, part=3)


# ---------------------------------------------------------------- the portable kernel

@pytest.fixture
def portable_kernel():
    G._set_kernel("portable")
    try:
        yield
    finally:
        G._set_kernel("auto")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (7, 13, 5), (32, 64, 300), (150, 67, 263)])
def test_portable_kernel(m, n, k, trans_a, trans_b, dtype, portable_kernel):
    assert G.kernel_name() == "portable"
    a, b = _operands(m, n, k, dtype, trans_a, trans_b, seed=22)
    bias = _rng(23).standard_normal(n).astype(dtype)
    c0 = _rng(24).standard_normal((m, n)).astype(dtype)
    preact = np.empty((m, n), dtype)
    y = G.gemm(a, b, trans_a, trans_b, alpha=1.5, beta=-0.5, out=c0.copy(), bias=bias,
               activation=ACTIVATION_CODES["relu"], preact=preact, num_threads=2)
    _assert_close(preact, *_reference(a, b, trans_a, trans_b, 1.5, -0.5, c0, bias))
    np.testing.assert_array_equal(y, np.maximum(preact, 0))


def test_kernel_name():
    assert G.kernel_name() in ("avx2_fma", "portable")
    with pytest.raises(ValueError, match="_set_kernel"):
        G._set_kernel("sse9")


# ---------------------------------------------------------------- refused input

def test_refuses_bad_arguments():
    f32 = np.ones((3, 4), np.float32)
    f64 = np.ones((4, 5), np.float64)
    with pytest.raises(ValueError, match="dtype"):
        G.gemm(f32, f64)
    with pytest.raises(ValueError, match="dtype"):
        G.gemm(np.ones((3, 4), np.int64), np.ones((4, 5), np.int64))
    with pytest.raises(ValueError, match="inner dimensions"):
        G.gemm(f64.T.copy(), f64.T.copy())
    with pytest.raises(ValueError, match="2-D"):
        G.gemm(np.ones(4), f64)
    with pytest.raises(ValueError, match="2-D"):
        G.gemm(f64.T.copy(), np.ones(4))
    with pytest.raises(TypeError, match="a must be"):
        G.gemm([[1.0]], f64)
    with pytest.raises(TypeError, match="b must be"):
        G.gemm(f64.T.copy(), [[1.0]])
    a, b = np.ones((3, 4)), np.ones((4, 5))
    with pytest.raises(ValueError, match="out must have shape"):
        G.gemm(a, b, out=np.empty((5, 3)))
    with pytest.raises(ValueError, match="out must have dtype"):
        G.gemm(a, b, out=np.empty((3, 5), np.float32))
    ro = np.empty((3, 5))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        G.gemm(a, b, out=ro)
    with pytest.raises(ValueError, match="bias must have shape"):
        G.gemm(a, b, bias=np.ones(4))
    with pytest.raises(ValueError, match="bias must have dtype"):
        G.gemm(a, b, bias=np.ones(5, np.float32))
    with pytest.raises(ValueError, match="preact must have shape"):
        G.gemm(a, b, preact=np.empty((3, 4)))
    with pytest.raises(ValueError, match="activation"):
        G.gemm(a, b, activation=12)
    with pytest.raises(ValueError, match="activation"):
        G.gemm(a, b, activation=-1)
