"""Tests of fastnn._validation: every bad input is a ValueError or TypeError that
names the argument; every good input comes back as the array the kernels take.

The hypothesis tests throw random bad shapes, dtypes, values and Python objects
at the validators and at the public entry points built on them.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn
from fastnn import backends, config
from fastnn._validation import (
    _to_array, as_float_array, as_label_array, check_float, check_int, check_positive,
    check_probability, check_same_length, lookup, resolve_dtype, suggest,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAME = "my_arg"  # every error message must name the argument it is about

# -- strategies -------------------------------------------------------------------------

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)
nonempty_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
bad_dtypes = st.one_of(
    hnp.unicode_string_dtypes(), hnp.byte_string_dtypes(), hnp.complex_number_dtypes(),
    hnp.datetime64_dtypes(), hnp.timedelta64_dtypes(),
    st.just(np.dtype([("a", "f4"), ("b", "i4")])),
)
good_dtypes = st.one_of(
    hnp.boolean_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(sizes=(16, 32, 64)),
)


@st.composite
def bad_dtype_arrays(draw):
    """Arrays (any shape, empty and 0-d included) of a dtype that is not real numbers."""
    kind = draw(st.sampled_from(["object", "void", "other"]))
    shape = draw(shapes)
    if kind == "object":  # even when every element is a number
        arr = np.empty(shape, dtype=object)
        arr[...] = draw(st.sampled_from([None, "a", 1.5, object()]))
        return arr
    if kind == "void":
        return np.zeros(shape, dtype="V8")
    return draw(hnp.arrays(draw(bad_dtypes), shape))


@st.composite
def nonfinite_arrays(draw):
    """Float arrays with at least one NaN or infinity somewhere."""
    dtype = draw(st.sampled_from([np.float16, np.float32, np.float64]))
    arr = draw(hnp.arrays(dtype, draw(nonempty_shapes),
                          elements=st.floats(-10, 10, width=16)))
    index = tuple(draw(st.integers(0, n - 1)) for n in arr.shape)
    arr[index] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return arr


@st.composite
def ragged_lists(draw):
    """Nested lists whose rows have different lengths."""
    lengths = draw(st.lists(st.integers(0, 4), min_size=2, max_size=5).filter(
        lambda ls: len(set(ls)) > 1))
    rows = [draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n)) for n in lengths]
    return [rows] if draw(st.booleans()) else rows


not_array_likes = st.one_of(
    st.none(), st.booleans(), st.text(max_size=5), st.binary(max_size=5),
    st.dictionaries(st.integers(), st.integers(), max_size=2),
    st.sets(st.integers(), max_size=3), st.builds(object), st.just(iter([1.0, 2.0])),
)

# Anything at all, nested: junk and good numbers mixed. The validator must either
# accept it or refuse it with a ValueError/TypeError; nothing else.
scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**70, 2**70), st.booleans(),
    st.none(), st.text(max_size=3), st.complex_numbers(max_magnitude=10),
)
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                        | st.tuples(inner, inner), max_leaves=12)


def assert_refused(call, *exc_types, name=NAME):
    """``call()`` raises one of ``exc_types`` (ValueError/TypeError) naming ``name``."""
    exc_types = exc_types or (ValueError, TypeError)
    with pytest.raises(exc_types) as info:
        call()
    assert name in str(info.value), f"message does not name {name!r}: {info.value}"
    return info.value


# -- as_float_array: refusals -----------------------------------------------------------

@FAST
@given(bad_dtype_arrays())
def test_float_array_refuses_non_real_dtypes_with_type_error(arr):
    assert_refused(lambda: as_float_array(arr, NAME), TypeError)
    assert_refused(lambda: as_float_array(arr, NAME, allow_empty=True, ndim=arr.ndim), TypeError)


@FAST
@given(nonfinite_arrays())
def test_float_array_refuses_nan_and_inf(arr):
    err = assert_refused(lambda: as_float_array(arr, NAME), ValueError)
    assert "NaN or infinite" in str(err)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    assert f"contains {bad} " in str(err)
    # ... unless the caller allows them, and then they pass through unchanged
    out = as_float_array(arr, NAME, allow_nonfinite=True, dtype="float64")
    np.testing.assert_array_equal(np.isnan(out), np.isnan(arr))


@FAST
@given(shape=nonempty_shapes, ndim=st.integers(0, 4))
def test_float_array_refuses_wrong_ndim(shape, ndim):
    assume(len(shape) != ndim)
    arr = np.ones(shape)
    err = assert_refused(lambda: as_float_array(arr, NAME, ndim=ndim), ValueError)
    assert f"{ndim}-dimensional" in str(err) and str(shape) in str(err)
    assert_refused(lambda: as_float_array(arr, NAME, min_ndim=len(shape) + 1), ValueError)


@FAST
@given(hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=3).filter(
    lambda s: 0 in s), good_dtypes)
def test_float_array_refuses_empty_unless_allowed(shape, dtype):
    arr = np.zeros(shape, dtype=dtype)
    err = assert_refused(lambda: as_float_array(arr, NAME), ValueError)
    assert "empty" in str(err)
    out = as_float_array(arr, NAME, allow_empty=True)
    assert out.shape == shape and out.dtype == np.float32


@FAST
@given(ragged_lists())
def test_float_array_refuses_ragged_lists_with_value_error(rows):
    err = assert_refused(lambda: as_float_array(rows, NAME), ValueError)
    assert "ragged" in str(err)


@FAST
@given(not_array_likes)
def test_float_array_refuses_things_that_are_not_arrays(x):
    assert_refused(lambda: as_float_array(x, NAME), TypeError)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anything, st.sampled_from(["float32", "float64"]))
def test_float_array_on_anything_returns_a_valid_array_or_refuses(x, dtype):
    """The contract as one property: a clean float array out, or ValueError/TypeError in."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RuntimeWarning on the way either
            out = as_float_array(x, NAME, dtype=dtype)
    except (ValueError, TypeError) as exc:
        assert NAME in str(exc)
        return
    assert isinstance(out, np.ndarray) and out.dtype == np.dtype(dtype)
    assert out.flags.c_contiguous and out.size > 0 and np.isfinite(out).all()
    np.testing.assert_array_equal(out, np.asarray(x, dtype=np.float64).astype(dtype))


def test_float_array_refuses_a_python_bool_scalar():
    assert_refused(lambda: as_float_array(True, NAME), TypeError)


def test_float_array_longdouble_overflow_is_a_value_error_without_warning():
    big = np.array([1e300], dtype=np.longdouble) * np.longdouble(1e300)
    with np.errstate(over="ignore"):
        overflows = np.isinf(big.astype(np.float64)).all() and np.isfinite(big).all()
    if overflows:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            err = assert_refused(lambda: as_float_array(big, NAME, dtype="float64"), ValueError)
        assert "too large for float64" in str(err)
    else:  # pragma: no cover - platforms where longdouble is float64
        pytest.skip("longdouble has no range beyond float64 here")


class _RefusesArray:
    """Like a torch tensor that requires grad: __array__ raises RuntimeError."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad")


def test_array_like_whose_conversion_fails_is_a_type_error():
    # Regression: the RuntimeError used to escape as is.
    err = assert_refused(lambda: as_float_array(_RefusesArray(), NAME), TypeError)
    assert "requires grad" in str(err)
    assert_refused(lambda: as_float_array([_RefusesArray()], NAME), TypeError)
    assert_refused(lambda: _to_array(_RefusesArray(), NAME), TypeError)


def test_too_deeply_nested_list_is_a_value_error():
    x = 0.0
    for _ in range(70):
        x = [x]
    assert_refused(lambda: as_float_array(x, NAME), ValueError)


def test_bad_dtype_argument_names_dtype():
    assert_refused(lambda: as_float_array([1.0], NAME, dtype="int32"), ValueError, name="dtype")
    assert_refused(lambda: as_float_array([1.0], NAME, dtype="nonsense"), TypeError, name="dtype")


# -- as_float_array: good inputs ---------------------------------------------------------

@FAST
@given(st.data(), st.sampled_from([np.bool_, np.int8, np.int32, np.int64, np.uint8, np.uint64]))
def test_ints_bools_and_uint8_become_floatx(data, dtype):
    arr = data.draw(hnp.arrays(dtype, nonempty_shapes, elements={"min_value": 0, "max_value": 100}
                               if dtype is not np.bool_ else None))
    for floatx in ("float32", "float64"):  # set per example: conftest resets only per test
        config.set_floatx(floatx)
        out = as_float_array(arr, NAME)
        assert out.dtype == np.dtype(floatx) and out.flags.c_contiguous
        np.testing.assert_array_equal(out, arr.astype(np.float64))
    config.set_floatx("float32")


@FAST
@given(hnp.arrays(np.float64, nonempty_shapes, elements=st.floats(-1e300, 1e300)))
def test_float64_preserved_when_asked(arr):
    out = as_float_array(arr, NAME, dtype=np.float64)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, arr)  # bit for bit: no float32 round trip
    copied = as_float_array(arr, NAME, dtype="float64", copy=True)
    assert copied is not arr and not np.shares_memory(copied, arr)
    np.testing.assert_array_equal(copied, arr)


def test_float32_input_is_converted_to_float64_when_asked_and_back():
    x = np.array([0.1, 1e-8], dtype=np.float32)
    np.testing.assert_array_equal(as_float_array(x, NAME, dtype="float64"), x.astype(np.float64))
    y = np.array([0.1, 1 / 3])
    np.testing.assert_array_equal(as_float_array(y, NAME, dtype="float32"), y.astype(np.float32))


@pytest.mark.parametrize("view", [
    lambda a: a[:, ::2], lambda a: a.T, lambda a: a[::-1], lambda a: a[1:, 1:3],
    lambda a: np.broadcast_to(a[:1], a.shape),
], ids=["strided", "transposed", "reversed", "sliced", "broadcast"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_non_contiguous_input_comes_back_c_contiguous(view, dtype):
    base = np.arange(24, dtype=dtype).reshape(4, 6)
    x = view(base)
    out = as_float_array(x, NAME, dtype=dtype)
    assert out.flags.c_contiguous and out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("x", [3, 2.5, np.float64(2.5), np.int16(4), np.array(7.0), np.array(True)])
def test_zero_d_stays_zero_d(x):
    out = as_float_array(x, NAME)
    assert out.shape == () and out.dtype == np.float32 and out == np.float32(x)
    # a 0-d copy is still 0-d
    assert as_float_array(x, NAME, copy=True).shape == ()


def test_lists_and_tuples_are_arrays():
    out = as_float_array([[1, 2], (3, 4)], NAME, dtype="float64", ndim=2)
    np.testing.assert_array_equal(out, [[1.0, 2.0], [3.0, 4.0]])


# -- as_label_array --------------------------------------------------------------------

@FAST
@given(hnp.arrays(np.int64, st.integers(1, 20), elements=st.integers(0, 9)),
       st.booleans(), st.sampled_from([np.int64, np.int32, np.uint8, np.float32, np.float64]))
def test_good_labels_round_trip(labels, column, dtype):
    y = labels.astype(dtype)
    if column:
        y = y[:, None]  # (n, 1) is taken as (n,)
    out = as_label_array(y, NAME, num_classes=10)
    assert out.dtype == np.int64 and out.shape == labels.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(out, labels)


@FAST
@given(hnp.arrays(np.float64, st.integers(1, 10),
                  elements=st.floats(-100, 100).filter(lambda v: v != round(v))))
def test_fractional_labels_refused(y):
    err = assert_refused(lambda: as_label_array(y, NAME), ValueError)
    assert "fractional" in str(err)


@FAST
@given(hnp.arrays(np.int64, st.integers(1, 10), elements=st.integers(-50, 50)),
       st.integers(1, 10))
def test_negative_or_out_of_range_labels_refused(y, num_classes):
    assume(y.min() < 0 or y.max() >= num_classes)
    err = assert_refused(lambda: as_label_array(y, NAME, num_classes=num_classes), ValueError)
    if y.min() < 0:
        assert f"negative label {y.min()}" in str(err)
    else:
        assert f"label {y.max()}" in str(err) and f"{num_classes} classes" in str(err)


@FAST
@given(st.one_of(bad_dtype_arrays(), nonfinite_arrays(), not_array_likes, ragged_lists(),
                 hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0,
                                                        max_side=3))))
def test_bad_labels_refused(y):
    """Bad dtypes, NaN/inf, junk, ragged lists, and int arrays of the wrong shape."""
    if isinstance(y, np.ndarray) and y.dtype == np.int64:
        column = y.ndim == 2 and y.shape[1] == 1
        assume(y.size == 0 or not (y.ndim == 1 or column) or y.min() < 0 or y.max() >= 3)
    assert_refused(lambda: as_label_array(y, NAME, num_classes=3))


@pytest.mark.parametrize("y", [np.array([1e20]), np.array([2.0**63]),
                               np.array([2**63, 1], dtype=np.uint64)])
def test_labels_too_large_for_int64_are_refused_not_wrapped(y):
    # Regression: the cast to int64 wrapped these round to a "negative label" (with
    # a RuntimeWarning) instead of saying they are too large.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        err = assert_refused(lambda: as_label_array(y, NAME), ValueError)
        assert "negative" not in str(err) and "too large" in str(err)
        err = assert_refused(lambda: as_label_array(y, NAME, num_classes=10), ValueError)
        assert "10 classes" in str(err)


def test_bool_labels_are_zero_and_one():
    np.testing.assert_array_equal(as_label_array([True, False], NAME), [1, 0])


# -- check_int / check_float / check_positive / check_probability -----------------------

@FAST
@given(st.one_of(st.booleans(), st.floats(), st.text(max_size=3), st.none(),
                 st.complex_numbers(), st.just(np.float64(2.0)), st.just(np.bool_(True)),
                 st.just([1]), st.just(np.array(3))))
def test_check_int_refuses_non_ints_with_type_error(value):
    assert_refused(lambda: check_int(value, NAME), TypeError)


@FAST
@given(st.integers(-10**30, 10**30), st.integers(-5, 5), st.integers(0, 5))
def test_check_int_bounds(value, minimum, span):
    maximum = minimum + span
    if minimum <= value <= maximum:
        assert check_int(value, NAME, minimum=minimum, maximum=maximum) == value
        assert type(check_int(np.int64(value), NAME, minimum=minimum)) is int
    else:
        err = assert_refused(lambda: check_int(value, NAME, minimum=minimum, maximum=maximum),
                             ValueError)
        assert (">=" if value < minimum else "<=") in str(err)


def test_check_int_allow_none():
    assert check_int(None, NAME, allow_none=True) is None
    assert_refused(lambda: check_int(None, NAME), TypeError)


@FAST
@given(st.one_of(st.booleans(), st.text(max_size=3), st.none(), st.complex_numbers(),
                 st.just(np.bool_(False)), st.just([1.0]), st.just(np.array([1.0]))))
def test_check_float_refuses_non_numbers_with_type_error(value):
    assert_refused(lambda: check_float(value, NAME), TypeError)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, np.float32(np.nan), 10**400, -10**400])
def test_check_float_refuses_non_finite(value):
    # 10**400: regression, float() of it raised OverflowError.
    err = assert_refused(lambda: check_float(value, NAME), ValueError)
    assert "finite" in str(err)


@FAST
@given(st.floats(-10, 10), st.booleans(), st.booleans())
def test_check_float_bounds(value, min_inclusive, max_inclusive):
    lo, hi = -1.0, 1.0
    inside = (lo < value < hi or (min_inclusive and value == lo) or (max_inclusive and value == hi))
    call = lambda: check_float(value, NAME, minimum=lo, maximum=hi,  # noqa: E731
                               min_inclusive=min_inclusive, max_inclusive=max_inclusive)
    if inside:
        assert call() == value and type(call()) is float
    else:
        assert_refused(call, ValueError)


def test_check_float_accepts_ints_and_numpy_scalars():
    assert check_float(3, NAME) == 3.0 and type(check_float(3, NAME)) is float
    assert check_float(np.float32(0.5), NAME) == 0.5
    assert check_float(None, NAME, allow_none=True) is None


def test_check_positive_and_probability():
    assert check_positive(1e-12, NAME) == 1e-12
    for bad in (0, 0.0, -1.0):
        assert_refused(lambda: check_positive(bad, NAME), ValueError)
    assert_refused(lambda: check_positive(True, NAME), TypeError)
    assert check_probability(0.0, NAME) == 0.0
    assert_refused(lambda: check_probability(1.0, NAME), ValueError)
    assert check_probability(1.0, NAME, allow_one=True) == 1.0
    for bad in (-0.01, 1.01):
        assert_refused(lambda: check_probability(bad, NAME, allow_one=True), ValueError)


# -- check_same_length ----------------------------------------------------------------

def test_check_same_length():
    check_same_length(x=np.zeros((3, 2)), y=[1, 2, 3], sample_weight=None)
    err = assert_refused(lambda: check_same_length(x=np.zeros((3, 2)), y=np.zeros(4)),
                         ValueError, name="x has 3")
    assert "y has 4" in str(err)


@pytest.mark.parametrize("scalar", [np.float64(1.0), np.array(2.0), 5])
def test_check_same_length_names_a_scalar_argument(scalar):
    # Regression: len() of a 0-d array or an int raised a TypeError naming nothing.
    assert_refused(lambda: check_same_length(x=np.zeros(3), y=scalar),
                   ValueError if hasattr(scalar, "shape") else TypeError, name="y")


# -- resolve_dtype ---------------------------------------------------------------------

def test_resolve_dtype():
    assert resolve_dtype() == np.float32
    config.set_floatx("float64")
    assert resolve_dtype(None) == np.float64
    for spelled, want in [("float32", np.float32), (np.float64, np.float64),
                          (np.dtype("float32"), np.float32), (">f8", np.float64)]:
        got = resolve_dtype(spelled)
        assert got == want and got.isnative


@pytest.mark.parametrize("dtype,exc", [
    ("int32", ValueError), ("float16", ValueError), (np.complex64, ValueError), ("U3", ValueError),
    ("f4,f4", ValueError), ("nonsense", TypeError), (3, TypeError), (np.float32(1.0), TypeError),
    ([("a", "f4", (-1,))], TypeError), (object(), TypeError),
])
def test_resolve_dtype_refuses(dtype, exc):
    assert_refused(lambda: resolve_dtype(dtype), exc, name="dtype")


# -- suggest / lookup ------------------------------------------------------------------

TABLE = {name: i for i, name in enumerate(
    ["relu", "sigmoid", "softmax", "tanh", "exponential", "linear", "categorical_crossentropy"])}


@st.composite
def misspelled(draw):
    """A table name with one typo: a deleted, replaced, inserted or swapped letter."""
    word = draw(st.sampled_from(sorted(TABLE)))
    i = draw(st.integers(0, len(word) - 2))
    letter = draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz_"))
    typo = draw(st.sampled_from([
        word[:i] + word[i + 1:], word[:i] + letter + word[i + 1:], word[:i] + letter + word[i:],
        word[:i] + word[i + 1] + word[i] + word[i + 2:],
    ]))
    assume(typo not in TABLE)
    return word, typo


@FAST
@given(misspelled(), st.booleans())
def test_lookup_suggests_the_close_name(pair, upper):
    word, typo = pair
    if upper:
        typo = typo.upper()  # lookup is case-insensitive, and so is the suggestion
    err = assert_refused(lambda: lookup("activation", typo, TABLE), ValueError, name=repr(typo))
    assert "unknown activation" in str(err)
    assert f"did you mean {word!r}?" in str(err)
    assert suggest(typo, TABLE) == f"; did you mean {word!r}?"


def test_lookup_finds_names_in_any_case():
    assert lookup("activation", "ReLU", TABLE) == TABLE["relu"]


def test_suggest_ignores_case_and_keeps_the_choice_spelling():
    # Regression: 'sdg' was compared with 'SGD' case-sensitively and got nothing.
    assert suggest("sdg", ["SGD", "Adam", "RMSprop"]) == "; did you mean 'SGD'?"
    assert suggest("rmsporp", ["SGD", "Adam", "RMSprop"]) == "; did you mean 'RMSprop'?"
    assert suggest("DENSE", ["Input", "Dense"]) == "; did you mean 'Dense'?"


def test_no_suggestion_for_far_names_or_non_strings():
    assert suggest("qqqqqq", TABLE) == ""
    assert suggest(3, TABLE) == ""
    err = assert_refused(lambda: lookup("activation", "qqqqqq", TABLE), ValueError,
                         name="'qqqqqq'")
    assert "did you mean" not in str(err) and "expected one of" in str(err)
    assert_refused(lambda: lookup("activation", None, TABLE), TypeError, name="activation")


# -- public entry points ---------------------------------------------------------------

bad_inputs = st.one_of(bad_dtype_arrays(), nonfinite_arrays(), not_array_likes, ragged_lists())


@FAST
@given(bad_inputs)
def test_activations_refuse_bad_arrays(x):
    from fastnn import activations
    for fn in (activations.relu, activations.softmax):
        with pytest.raises((ValueError, TypeError)):
            fn(x)


@FAST
@given(bad_inputs, st.booleans())
def test_mse_refuses_bad_arrays(bad, bad_is_target):
    loss = fastnn.losses.get("mse")
    good = np.ones((2, 3))
    y_true, y_pred = (bad, good) if bad_is_target else (good, bad)
    with pytest.raises((ValueError, TypeError)):
        loss(y_true, y_pred)


@FAST
@given(st.one_of(st.text(max_size=12), st.integers(), st.builds(object),
                 st.just(["fast"]), st.binary(max_size=4)))
def test_backends_get_refuses_bad_names(name):
    assume(name not in backends.available())
    err = assert_refused(lambda: backends.get(name), name="backend")
    if isinstance(name, str):
        assert isinstance(err, ValueError)


def test_backends_get_suggests_a_name():
    with pytest.raises(ValueError, match="did you mean 'reference'"):
        backends.get("refernce")


@pytest.fixture(scope="module")
def small_model():
    from fastnn.layers import Dense
    model = fastnn.Sequential([Dense(2, input_shape=(3,))])
    model.build()
    return model


@FAST
@given(st.one_of(bad_inputs, hnp.arrays(np.float32, nonempty_shapes).filter(
    lambda a: a.ndim != 2 or a.shape[1] != 3)))
def test_sequential_predict_refuses_bad_arrays(small_model, x):
    with pytest.raises((ValueError, TypeError)):
        small_model.predict(x, verbose=0)


def test_float64_too_large_for_float32_says_so():
    err = assert_refused(lambda: as_float_array(np.array([1.0, 1e300]), NAME, dtype="float32"),
                         ValueError)
    assert "too large for float32" in str(err) and "1e+300" in str(err)


def test_finiteness_check_is_exact_when_finite_values_overflow_the_sum():
    """The cheap sum-based check falls back to the exact one: huge but finite
    values whose sum overflows are accepted, a single NaN or inf is refused."""
    big = np.full(8, np.finfo(np.float32).max, dtype=np.float32)
    out = as_float_array(big, "x", dtype="float32")
    np.testing.assert_array_equal(out, big)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros(1000, dtype=np.float64)
        x[517] = bad
        with pytest.raises(ValueError, match="x contains 1 NaN or infinite"):
            as_float_array(x, "x", dtype="float64")
