"""Global settings: the active backend, the default float type, the thread count.

>>> import fastnn
>>> fastnn.config.set_floatx('float64')
>>> with fastnn.config.use_backend('reference'):
...     pass

Settings are process-wide. The backend and float type apply to operations that
start after the change; layers keep the dtype they were built with.
"""
from __future__ import annotations

import contextlib
import os
import warnings

__all__ = [
    "set_backend", "get_backend", "use_backend", "set_floatx", "floatx",
    "set_num_threads", "get_num_threads", "openmp_enabled", "fast_available",
]

_FLOATX = "float32"
_BACKEND: str | None = None
_NUM_THREADS: int | None = None
_FAST_IMPORT_ERROR: Exception | None = None
_WARNED_NO_FAST = False

try:  # The compiled modules are optional: without them fastnn runs on the reference backend.
    from fastnn import _openmp_helpers  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the build
    _openmp_helpers = None
    _FAST_IMPORT_ERROR = exc


def fast_available() -> bool:
    """Return True if the compiled ``fast`` backend can be used."""
    from fastnn import backends
    return backends.fast_import_error() is None


def openmp_enabled() -> bool:
    """Return True if the compiled kernels were built with OpenMP.

    False when the build found no OpenMP support, when ``FASTNN_NO_OPENMP=1`` was set
    at build time, or when the compiled modules are missing altogether.
    """
    return bool(_openmp_helpers is not None and _openmp_helpers.openmp_enabled())


def _default_backend() -> str:
    global _WARNED_NO_FAST
    if fast_available():
        return "fast"
    if not _WARNED_NO_FAST:
        from fastnn import backends
        warnings.warn(
            "fastnn: the compiled kernels could not be imported "
            f"({backends.fast_import_error()}); using the pure NumPy 'reference' backend. "
            "Reinstall with a C compiler available (pip install .) to get the fast backend.",
            RuntimeWarning,
            stacklevel=3,
        )
        _WARNED_NO_FAST = True
    return "reference"


def get_backend() -> str:
    """Return the name of the active backend: ``'fast'`` or ``'reference'``."""
    global _BACKEND
    if _BACKEND is None:
        _BACKEND = _default_backend()
    return _BACKEND


def set_backend(name: str) -> None:
    """Make ``name`` (``'fast'`` or ``'reference'``) the active backend.

    Raises
    ------
    ValueError
        If ``name`` is not a known backend or ``'fast'`` is not compiled.
    """
    from fastnn import backends
    if not isinstance(name, str):  # backends.get(None) would mean "the active one"
        raise TypeError(f"set_backend: name must be a string ('fast' or 'reference'), got {name!r}")
    backends.get(name)  # validates the name and that it can be loaded
    global _BACKEND
    _BACKEND = name


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager that activates backend ``name`` and restores the previous one."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def floatx() -> str:
    """Return the default float type as a string: ``'float32'`` or ``'float64'``."""
    return _FLOATX


def set_floatx(value: str) -> None:
    """Set the default float type (``'float32'`` or ``'float64'``) for new layers and data.

    ``value`` may also be the NumPy type or dtype (``np.float32``).

    Raises
    ------
    TypeError
        If ``value`` does not name a dtype (``None`` included).
    ValueError
        If it names a dtype other than float32 and float64.
    """
    from fastnn._validation import _float_dtype
    global _FLOATX
    _FLOATX = _float_dtype(value, "set_floatx: value").name


def _cpus_available() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def max_num_threads() -> int:
    """The most threads :func:`set_num_threads` accepts: 8 per CPU, at least 256.

    More threads than CPUs only oversubscribe the machine; tens of thousands
    make OpenMP fail to create them, which ends the process.
    """
    return max(256, 8 * (os.cpu_count() or 1))


def _default_num_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = int(env)
            if n > 0:
                return min(n, max_num_threads())
        except ValueError:
            pass
    return _cpus_available()


def get_num_threads() -> int:
    """Return the number of threads compiled kernels may use.

    Default: ``OMP_NUM_THREADS`` if set, else the CPUs this process may run on.
    Kernels use fewer threads when the work is too small to split profitably
    (see :func:`fastnn.config.threads_for`).
    """
    global _NUM_THREADS
    if _NUM_THREADS is None:
        _NUM_THREADS = _default_num_threads()
    return _NUM_THREADS


def set_num_threads(n: int) -> None:
    """Set the number of threads compiled kernels may use (``1 <= n <= max_num_threads()``)."""
    import numbers
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be an int >= 1, got {n!r}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if n > max_num_threads():
        raise ValueError(f"set_num_threads: n must be <= {max_num_threads()} (8 per CPU, at "
                         f"least 256), got {n}")
    global _NUM_THREADS
    _NUM_THREADS = int(n)


# Below this many multiply-adds (or element updates) a second thread costs more
# than it saves. Measured on 2 cores: a 32x784x64 dense forward (1.6M multiply-adds)
# ran 77 us on one thread and 356 us on two when the other core was busy, since an
# OpenMP barrier waits for the slowest thread. About 2M operations (~0.2 ms of
# work) is where splitting starts to pay even on a noisy machine.
PARALLEL_WORK_THRESHOLD = 1 << 21


def threads_for(work: int) -> int:
    """The one helper that decides a kernel's thread count.

    Parameters
    ----------
    work : int
        Rough count of scalar operations the kernel will do.

    Returns
    -------
    int
        1 for small work or without OpenMP, else ``get_num_threads()``.
    """
    if work < PARALLEL_WORK_THRESHOLD or not openmp_enabled():
        return 1
    return get_num_threads()
