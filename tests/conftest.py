"""Shared pytest fixtures for the fastnn test suite.

``backend_name`` runs a test once per backend available in this installation
(``'reference'`` always, ``'fast'`` when the compiled kernels import), and
``ops`` is that backend's op object. ``use_backend`` additionally makes it the
active backend for the test, so public APIs (losses, activations, layers) run on
it. Every test starts and ends with the default float type, backend and seed
state, so tests cannot leak settings into one another.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from fastnn import backends, config

# Make tests/ importable as a plain directory (for the helpers in gradcheck.py)
# whatever pytest import mode or package layout is in use.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

BACKENDS = backends.available()

# Property-based tests draw the same examples on every run (derandomize) and keep
# no example database: the suite is deterministic, so a CI run on a fresh clone
# sees exactly what a developer saw. (A random draw once found a case that only
# the finite-difference tolerance, not the library, got wrong: see
# tests/test_tensor.py's check_gradients.)
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis is a test extra; tests that need it import it themselves
    pass
else:
    _hypothesis_settings.register_profile("fastnn", derandomize=True, database=None)
    _hypothesis_settings.load_profile("fastnn")


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    """The name of each available backend in turn."""
    return request.param


@pytest.fixture
def ops(backend_name):
    """The op object of each available backend in turn."""
    return backends.get(backend_name)


@pytest.fixture
def use_backend(backend_name):
    """Activate each available backend in turn for the duration of the test."""
    with config.use_backend(backend_name):
        yield backend_name


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def float_dtype(request):
    """float32 and float64 in turn."""
    return np.dtype(request.param)


@pytest.fixture(autouse=True)
def _restore_global_settings():
    """Undo changes a test makes to floatx, the active backend, the thread count and
    fastnn's random generator, so tests do not depend on their order."""
    from fastnn import utils
    floatx = config.floatx()
    threads = config._NUM_THREADS
    rng_state = utils.rng().state
    # The private attribute, not get_backend(): reading it must not trigger the
    # default-backend selection (and its warning) in tests that never use it.
    backend = config._BACKEND
    # Every test starts from the same seed, so a failure reproduces on re-run;
    # FASTNN_TEST_SEED lets a developer sweep seeds to find tolerance-fragile tests.
    utils.set_random_seed(int(os.environ.get("FASTNN_TEST_SEED", "0")))
    yield
    config.set_floatx(floatx)
    config._BACKEND = backend
    config._NUM_THREADS = threads
    utils.rng().state = rng_state


@pytest.fixture
def rng():
    """A fresh, fixed-seed NumPy generator for test data."""
    return np.random.default_rng(1234)

