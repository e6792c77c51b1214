"""The backend registry and the settings that choose a backend and its threads.

fastnn.backends.get / available / fast_import_error, fastnn.config's
set_backend / get_backend / use_backend, the warning-once fallback to the
reference backend when the compiled modules cannot be imported (simulated by
hiding them), and set_num_threads / threads_for.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import backends, config
from fastnn.backends.reference import ReferenceOps

HAVE_FAST = backends.fast_import_error() is None
needs_fast = pytest.mark.skipif(not HAVE_FAST, reason="compiled kernels not built")


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

def test_reference_backend():
    ops = backends.get("reference")
    assert isinstance(ops, ReferenceOps) and ops.name == "reference"
    assert backends.get("reference") is ops  # one instance per name
    assert "reference" in backends.available()


@needs_fast
def test_fast_backend_subclasses_the_reference():
    from fastnn.backends.fast import FastOps
    ops = backends.get("fast")
    assert isinstance(ops, FastOps) and isinstance(ops, ReferenceOps)
    assert ops.name == "fast"
    assert backends.get("fast") is ops
    assert backends.available() == ["fast", "reference"]
    assert config.fast_available()


@needs_fast
def test_ops_are_reachable_by_name_and_agree():
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(12.0).reshape(3, 4)
    for name in ("fast", "reference"):
        np.testing.assert_allclose(backends.get(name).gemm(a, b), a @ b)
        np.testing.assert_allclose(backends.get(name).gemm(b, a, trans_a=True, trans_b=True),
                                   (a @ b).T)


def test_unknown_backend_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"unknown backend 'fats'.*did you mean 'fast'"):
        backends.get("fats")
    with pytest.raises(ValueError, match=r"did you mean 'reference'"):
        config.set_backend("refrence")
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        config.set_backend("gpu")


def test_backend_name_must_be_a_string():
    with pytest.raises(TypeError, match="string"):
        backends.get(3)
    with pytest.raises(TypeError, match="string"):
        config.set_backend(3)
    config.set_backend("reference")
    with pytest.raises(TypeError, match="string"):
        config.set_backend(None)  # not "the active backend"
    assert config.get_backend() == "reference"


# ---------------------------------------------------------------------------
# Choosing the active backend
# ---------------------------------------------------------------------------

def test_default_backend_is_fast_when_compiled():
    config._BACKEND = None  # as in a fresh process (restored by conftest)
    assert config.get_backend() == ("fast" if HAVE_FAST else "reference")


def test_set_backend_and_get():
    config.set_backend("reference")
    assert config.get_backend() == "reference"
    assert backends.get() is backends.get("reference")
    if HAVE_FAST:
        config.set_backend("fast")
        assert config.get_backend() == "fast"
        assert backends.get() is backends.get("fast")


def test_failed_set_backend_keeps_the_active_one():
    config.set_backend("reference")
    with pytest.raises(ValueError):
        config.set_backend("nope")
    assert config.get_backend() == "reference"


def test_use_backend_restores_the_previous_one_even_after_an_error():
    config.set_backend("fast" if HAVE_FAST else "reference")
    before = config.get_backend()
    with config.use_backend("reference"):
        assert config.get_backend() == "reference"
        assert backends.get().name == "reference"
    assert config.get_backend() == before
    with pytest.raises(RuntimeError):
        with config.use_backend("reference"):
            raise RuntimeError("boom")
    assert config.get_backend() == before
    with pytest.raises(ValueError):
        with config.use_backend("nope"):
            pass  # pragma: no cover
    assert config.get_backend() == before


# ---------------------------------------------------------------------------
# Fallback when the compiled kernels cannot be imported
# ---------------------------------------------------------------------------

@pytest.fixture
def without_compiled_kernels(monkeypatch):
    """Make ``from fastnn import _kernels`` fail as in an installation built
    without a compiler, with a fresh registry and no backend chosen yet."""
    monkeypatch.setitem(sys.modules, "fastnn._kernels", None)  # import -> ImportError
    monkeypatch.delattr(fastnn, "_kernels", raising=False)
    monkeypatch.delitem(sys.modules, "fastnn.backends.fast", raising=False)
    monkeypatch.delattr(backends, "fast", raising=False)
    monkeypatch.setattr(backends, "_FAST_CHECKED", False)
    monkeypatch.setattr(backends, "_FAST_ERROR", None)
    monkeypatch.setattr(backends, "_INSTANCES", {})
    monkeypatch.setattr(config, "_BACKEND", None)
    monkeypatch.setattr(config, "_WARNED_NO_FAST", False)


def test_fallback_to_reference_warns_once(without_compiled_kernels):
    assert isinstance(backends.fast_import_error(), ImportError)
    assert backends.available() == ["reference"]
    assert not config.fast_available()
    with pytest.warns(RuntimeWarning, match="compiled kernels could not be imported") as record:
        assert config.get_backend() == "reference"
    assert len(record) == 1
    config._BACKEND = None  # asked again (e.g. after a reset): no second warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert config.get_backend() == "reference"
        assert backends.get().name == "reference"


def test_fast_is_refused_with_the_reason_when_not_compiled(without_compiled_kernels):
    with pytest.raises(ValueError, match="backend 'fast' is not available"):
        backends.get("fast")
    with pytest.raises(ValueError, match="not available"):
        config.set_backend("fast")
    # the reference backend still works
    x = np.array([[-1.0, 2.0]])
    np.testing.assert_array_equal(backends.get("reference").activation(x, "relu"), [[0.0, 2.0]])


# ---------------------------------------------------------------------------
# Threads
# ---------------------------------------------------------------------------

@pytest.fixture
def keep_threads():
    previous = config.get_num_threads()
    yield
    config.set_num_threads(previous)


def test_set_num_threads(keep_threads):
    config.set_num_threads(1)
    assert config.get_num_threads() == 1
    config.set_num_threads(np.int64(3))
    assert config.get_num_threads() == 3 and type(config.get_num_threads()) is int


@pytest.mark.parametrize("bad,error", [(0, ValueError), (-2, ValueError), (1.5, TypeError),
                                       ("2", TypeError), (True, TypeError), (None, TypeError)])
def test_set_num_threads_rejects_bad_values(bad, error, keep_threads):
    config.set_num_threads(2)
    with pytest.raises(error, match="set_num_threads"):
        config.set_num_threads(bad)
    assert config.get_num_threads() == 2


def test_default_thread_count_respects_omp_num_threads(monkeypatch):
    monkeypatch.setattr(config, "_NUM_THREADS", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert config.get_num_threads() == 3
    monkeypatch.setattr(config, "_NUM_THREADS", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "junk")
    assert config.get_num_threads() >= 1


def test_threads_for_keeps_small_work_on_one_thread(keep_threads):
    config.set_num_threads(2)
    assert config.threads_for(10) == 1
    assert config.threads_for(config.PARALLEL_WORK_THRESHOLD - 1) == 1
    big = config.threads_for(10 ** 9)
    assert big == (2 if config.openmp_enabled() else 1)
