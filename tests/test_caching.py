"""Numba's disk cache and functions that inline compiled code from other files."""

import os
import subprocess
import sys

import pytest

from ksdnumba import objective
from ksdnumba._caching import cache_depends_on
from ksdnumba.kernels import _cpu

CALLEE = """
from numba import njit

@njit(cache=True)
def f():
    return {value}
"""

CALLER = """
from numba import njit

import callee
from ksdnumba._caching import cache_depends_on

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
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=folder,
                         capture_output=True, text=True, check=True)
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
    assert len(stamp[1]) == len(_cpu._SOURCES) + 1


def test_an_uncached_function_is_left_alone():
    from numba import njit

    @njit
    def h():
        return 0

    assert not cache_depends_on(h, objective)
