"""Numba's disk cache and functions that inline compiled code from other files."""

import os
import subprocess
import sys

import pytest

from ksdnumba import objective
from ksdnumba._caching import cache_depends_on, cache_depends_on_each_other
from ksdnumba.kernels import _cpu

pytestmark = pytest.mark.slow  # each test compiles in fresh processes

CALLEE = """
from numba import njit

@njit(cache=True)
def f():
    return {value}
"""

CALLER = """
from numba import njit

import callee
from ksdnumba._caching import cache_depends_on, cache_depends_on_each_other

@njit(cache=True)
def g():
    return callee.f()

if {track}:
    assert cache_depends_on(g, callee)
"""


def _call_g(folder):
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, NUMBA_CACHE_DIR=str(folder / "cache"))
    code = "import caller; print(caller.g())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


@pytest.mark.parametrize("track", [False, True], ids=["numba alone", "with cache_depends_on"])
def test_an_edited_callee_reaches_a_cached_caller(tmp_path, track):
    """Without the extra stamp Numba serves the stale caller; with it, the new code."""
    (tmp_path / "caller.py").write_text(CALLER.format(track=track))
    (tmp_path / "callee.py").write_text(CALLEE.format(value=1))
    assert _call_g(tmp_path) == 1
    (tmp_path / "callee.py").write_text(CALLEE.format(value=2))
    assert _call_g(tmp_path) == (2 if track else 1)


def test_the_fused_mixture_objective_tracks_its_kernels():
    stamp = objective._diagonal_mixture_objective._cache._cache_file._source_stamp
    # Each file of the CPU backend's package, and the mixtures' file.
    assert len(stamp[1]) == len(_cpu.SOURCES) + 1


def test_an_uncached_function_is_left_alone():
    from numba import njit

    @njit
    def h():
        return 0

    assert not cache_depends_on(h, objective)


def test_every_cached_kernel_of_the_cpu_backend_tracks_every_file_of_it():
    """Its files inline one another's functions: an edit to any must reach all."""
    from numba.core.dispatcher import Dispatcher

    digests = None
    count = 0
    for module in _cpu.SOURCES:
        for obj in vars(module).values():
            if isinstance(obj, Dispatcher) and obj.py_func.__module__ == module.__name__:
                stamp = obj._cache._cache_file._source_stamp
                assert len(stamp[1]) == len(_cpu.SOURCES), obj.py_func.__qualname__
                digests = digests or stamp[1]
                assert stamp[1] == digests
                count += 1
    assert count > 40


def test_stamping_each_other_skips_uncached_and_imported_functions(tmp_path):
    import types

    from numba import njit

    module = types.ModuleType("stamped_here")
    module.__file__ = __file__

    def f():
        return 0

    f.__module__ = module.__name__
    module.uncached = njit(f)
    module.imported = objective._diagonal_mixture_objective  # defined elsewhere
    assert cache_depends_on_each_other([module]) == 0
