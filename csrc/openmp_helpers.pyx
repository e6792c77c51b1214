"""OpenMP facts and the one place that decides how many threads a kernel uses.

Modelled on scikit-learn's ``sklearn.utils._openmp_helpers``: the build may or
may not have OpenMP; everything compiles and runs either way.
"""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define FNN_HAVE_OPENMP 1
    #else
    #define FNN_HAVE_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    #endif
    """
    int FNN_HAVE_OPENMP
    int omp_get_max_threads() nogil


def openmp_enabled():
    """Return True if the extension modules were compiled with OpenMP."""
    return bool(FNN_HAVE_OPENMP)


def omp_max_threads():
    """Return OpenMP's own default thread count (1 without OpenMP)."""
    return omp_get_max_threads()
