"""One BLAS thread while numba's threads run: the package's single switch for it.

numba's ``np.dot`` calls SciPy's BLAS (``scipy.linalg.cython_blas``); L-BFGS-B
calls NumPy's between evaluations. Both OpenBLAS builds start as many threads as
there are cores; called from inside numba's parallel loops, or between them
while numba's threads still spin, they compete with numba for the same cores,
and GEMMs inside the tiled pair sums, or a small L-BFGS run, slow down by an
order of magnitude or more (``tests/test_threads.py``). :func:`single_threaded_blas`
holds every BLAS loaded in the process to one thread for the duration of a
``with`` block and restores the previous counts on exit; it never touches
environment variables, and does nothing at import.
"""

_CONTROLLER = None


def _controller():
    global _CONTROLLER
    if _CONTROLLER is None:
        # Loaded first, so that the scan below finds SciPy's own OpenBLAS, the
        # one numba's np.dot calls (NumPy's is loaded already).
        import scipy.linalg.cython_blas  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def single_threaded_blas():
    """A context manager holding every loaded BLAS to one thread, restoring it on exit.

    Examples
    --------
    >>> from ksdnumba.kernels._cpu._threads import single_threaded_blas
    >>> with single_threaded_blas():
    ...     pass
    """
    return _controller().limit(limits=1, user_api="blas")


def blas_thread_counts():
    """``{filepath: num_threads}`` of every BLAS library the process has loaded."""
    return {
        lib.filepath: lib.num_threads
        for lib in _controller().lib_controllers
        if lib.user_api == "blas"
    }
