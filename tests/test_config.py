"""Tests of fastnn.config: the active backend, floatx, and the thread count.

conftest restores floatx and the backend after every test; the ``keep_threads``
fixture here restores the thread count.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from fastnn import backends, config
from fastnn._validation import as_float_array


@pytest.fixture(autouse=True)
def keep_threads(monkeypatch):
    """Restore the cached thread count (None included: then it is recomputed)."""
    monkeypatch.setattr(config, "_NUM_THREADS", config._NUM_THREADS)


def cpus_available():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


# -- backends ------------------------------------------------------------------------

def test_default_backend_is_fast_when_compiled():
    config._BACKEND = None  # as in a fresh process (conftest restores it)
    assert config.get_backend() == ("fast" if config.fast_available() else "reference")
    assert config.fast_available() == ("fast" in backends.available())


@pytest.mark.parametrize("name", backends.available())
def test_set_backend_and_get_backend(name):
    config.set_backend(name)
    assert config.get_backend() == name
    assert backends.get() is backends.get(name)  # the active backend's op object


@pytest.mark.parametrize("bad,suggestion", [("fsat", "fast"), ("refrence", "reference"),
                                            ("Reference", "reference"), ("numpy", None)])
def test_unknown_backend_is_a_value_error_with_a_suggestion(bad, suggestion):
    before = config.get_backend()
    with pytest.raises(ValueError, match="unknown backend") as info:
        config.set_backend(bad)
    assert repr(bad) in str(info.value)
    if suggestion:
        assert f"did you mean {suggestion!r}?" in str(info.value)
    else:
        assert "did you mean" not in str(info.value)
    assert config.get_backend() == before


@pytest.mark.parametrize("bad", [None, 1, b"fast", ["fast"]])
def test_set_backend_refuses_non_strings(bad):
    # Regression for None: backends.get(None) means "the active backend", so
    # set_backend(None) used to succeed and silently reset the choice.
    config.set_backend("reference")
    with pytest.raises(TypeError, match="set_backend: name"):
        config.set_backend(bad)
    assert config.get_backend() == "reference"


@pytest.mark.parametrize("name", backends.available())
def test_use_backend_activates_and_restores(name):
    config.set_backend("reference")
    with config.use_backend(name):
        assert config.get_backend() == name
        with config.use_backend("reference"):  # nests
            assert config.get_backend() == "reference"
        assert config.get_backend() == name
    assert config.get_backend() == "reference"


@pytest.mark.parametrize("name", backends.available())
def test_use_backend_restores_after_an_exception(name):
    previous = "reference" if name == "fast" else backends.available()[0]
    config.set_backend(previous)
    with pytest.raises(KeyError):
        with config.use_backend(name):
            assert config.get_backend() == name
            raise KeyError("inside")
    assert config.get_backend() == previous


def test_use_backend_with_a_bad_name_changes_nothing():
    config.set_backend("reference")
    with pytest.raises(ValueError, match="did you mean 'reference'"):
        with config.use_backend("referenc"):
            pytest.fail("the body must not run")  # pragma: no cover
    assert config.get_backend() == "reference"


# -- floatx --------------------------------------------------------------------------

def test_floatx_default_is_float32():
    assert config.floatx() == "float32"


@pytest.mark.parametrize("value,name", [
    ("float32", "float32"), ("float64", "float64"), (np.float32, "float32"),
    (np.float64, "float64"), (np.dtype("float64"), "float64"), (np.dtype(">f4"), "float32"),
])
def test_set_floatx_accepts_float32_and_float64(value, name):
    config.set_floatx("float64" if name == "float32" else "float32")
    config.set_floatx(value)
    assert config.floatx() == name and type(config.floatx()) is str
    # and the new floatx is what ints are converted to
    assert as_float_array([1, 2], "x").dtype == np.dtype(name)


@pytest.mark.parametrize("value,error", [
    ("float16", ValueError), ("int32", ValueError), (np.int64, ValueError), ("complex64", ValueError),
    ("f4,f4", ValueError), ("bfloat16", TypeError), ("nope", TypeError),
    (None, TypeError), (1, TypeError), (True, TypeError), (np.float32(1.0), TypeError),
    (object(), TypeError), ([("a", "f4")], TypeError),
])
def test_set_floatx_refuses_others(value, error):
    # Regression: np.dtype(None) is float64, so set_floatx(None) used to set float64.
    config.set_floatx("float64")
    with pytest.raises(error, match="set_floatx: value must be 'float32' or 'float64'"):
        config.set_floatx(value)
    assert config.floatx() == "float64"


# -- threads -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7, np.int64(3), np.uint8(4)])
def test_set_num_threads(n):
    config.set_num_threads(n)
    assert config.get_num_threads() == int(n) and type(config.get_num_threads()) is int


@pytest.mark.parametrize("bad,error", [
    (0, ValueError), (-1, ValueError), (np.int64(0), ValueError), (1.5, TypeError),
    (2.0, TypeError), (True, TypeError), (False, TypeError), ("2", TypeError), (None, TypeError),
    # tens of thousands of threads made OpenMP end the process (or crash) at the first kernel
    (100_000, ValueError), (2**31, ValueError),
])
def test_set_num_threads_validation(bad, error):
    config.set_num_threads(2)
    with pytest.raises(error, match="set_num_threads: n"):
        config.set_num_threads(bad)
    assert config.get_num_threads() == 2


@pytest.mark.parametrize("env,expected", [
    ("3", 3), ("1", 1), (" 4 ", 4), ("5,2", 5),            # OpenMP's nested list: the outer level
    ("0", None), ("-2", None), ("junk", None), ("", None), (None, None),   # None: the CPUs
    ("100000", config.max_num_threads()),                  # bounded as set_num_threads is
])
def test_default_num_threads_respects_omp_num_threads(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    monkeypatch.setattr(config, "_NUM_THREADS", None)  # forget the cached value
    assert config.get_num_threads() == (cpus_available() if expected is None else expected)


def test_default_num_threads_is_cached_until_set(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(config, "_NUM_THREADS", None)
    assert config.get_num_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "5")  # read once, like OpenMP
    assert config.get_num_threads() == 3
    config.set_num_threads(2)
    assert config.get_num_threads() == 2


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threads_for(threads):
    config.set_num_threads(threads)
    limit = config.PARALLEL_WORK_THRESHOLD
    for work in (0, 1, limit // 2, limit - 1):
        assert config.threads_for(work) == 1
    expected = threads if config.openmp_enabled() else 1
    for work in (limit, 10 * limit, 10 ** 12):
        assert config.threads_for(work) == expected


def test_threads_for_is_one_without_openmp(monkeypatch):
    config.set_num_threads(4)
    monkeypatch.setattr(config, "openmp_enabled", lambda: False)
    assert config.threads_for(10 ** 12) == 1


def test_openmp_enabled_matches_the_compiled_module():
    try:
        from fastnn import _openmp_helpers
    except ImportError:  # pragma: no cover - without the compiled modules
        assert config.openmp_enabled() is False
        return
    assert config.openmp_enabled() is bool(_openmp_helpers.openmp_enabled())
