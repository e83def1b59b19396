"""BLAS runs one thread while numba's threads run the tiled pair sums."""

import numpy as np
import pytest
import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot calls its BLAS: loaded first)
from threadpoolctl import threadpool_info, threadpool_limits

from ksdnumba.kernels import _cpu
from ksdnumba.kernels._cpu import _threads, _tiled


def _blas_counts():
    return {
        lib["filepath"]: lib["num_threads"]
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    }


@pytest.fixture
def spy(monkeypatch):
    """Record every BLAS library's thread count each time a tiled driver runs."""
    seen = []
    for name in ("_tiled_parallel", "_tiled_serial"):
        compiled = getattr(_tiled, name)

        def wrapper(*args, _compiled=compiled, _name=name):
            seen.append((_name, _blas_counts()))
            return _compiled(*args)

        monkeypatch.setattr(_tiled, name, wrapper)
    return seen


@pytest.mark.parametrize("kernel", ["gaussian", "imq"])
def test_blas_holds_one_thread_inside_the_parallel_pair_sums(spy, kernel):
    x = np.random.default_rng(0).normal(size=(300, 12))
    s = -x
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_counts()
        if kernel == "gaussian":
            _cpu.gaussian_stein_sums(x, s, 1.0, parallel=True, path="tiled")
            _cpu.gaussian_stein_total(x, s, 1.0, parallel=True, path="tiled")
        else:
            _cpu.imq_stein_sums(x, s, 1.0, 0.5, parallel=True, path="tiled")
            _cpu.imq_stein_total(x, s, 1.0, 0.5, parallel=True, path="tiled")
        after = _blas_counts()
    assert [name for name, _ in spy] == ["_tiled_parallel", "_tiled_parallel"]
    for _, counts in spy:
        assert counts, "no BLAS library found"
        assert all(v == 1 for v in counts.values()), counts
    # Restored on exit (and a BLAS that reports 2 threads was really set to 2).
    assert after == before


def test_the_switch_covers_the_blas_numba_calls():
    """numba's np.dot calls SciPy's BLAS: the controller must see that library."""
    counts = _threads.blas_thread_counts()
    scipy_libs = [path for path in _blas_counts() if "scipy" in path.lower()]
    if not scipy_libs:
        pytest.skip("SciPy's BLAS is not a separate library here")
    assert set(scipy_libs) <= set(counts)
    with threadpool_limits(limits=2, user_api="blas"), _threads.single_threaded_blas():
        assert all(_blas_counts()[path] == 1 for path in scipy_libs)
