"""Stein thinning's CUDA greedy step against the CPU loop, and ``backend="cuda"``.

In CI this runs in numba's CUDA simulator (tests/conftest.py), one Python thread
per GPU thread: sizes stay small, and blocks of 16 threads make even those span
several blocks and a partial last one. ``NUMBA_ENABLE_CUDASIM=0`` runs the same
tests on a real GPU.
"""

import numpy as np
import pytest
from numba import config

import ksdnumba as kn
from ksdnumba.kernels import _backend
from ksdnumba.kernels._cpu import _values as sv

SIMULATOR = bool(config.ENABLE_CUDASIM)
if not SIMULATOR and not _backend._cuda_available():
    pytest.skip(f"numba's CUDA simulator is off, and numba cannot use a GPU here "
                f"({_backend._cuda_status()[1]})", allow_module_level=True)

from ksdnumba.kernels import _cuda_stein_values as cv  # noqa: E402  (imports numba.cuda)

THREADS = 16 if SIMULATOR else None


def _frame(n, d, seed, period=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    s = rng.normal(size=(n, d))
    if period is not None:  # equal points: their objectives tie at every step
        x = x[np.arange(n) % period]
        s = s[np.arange(n) % period]
    a = rng.normal(size=(d, d))
    w, Q = np.linalg.eigh(a @ a.T / d + 0.3 * np.eye(d))
    return np.ascontiguousarray((x @ Q).T), np.ascontiguousarray((s @ Q).T), w


@pytest.mark.parametrize("kind", [sv.P_IMQ, sv.P_GAUSSIAN], ids=["imq", "gaussian"])
@pytest.mark.parametrize("n, d", [(1, 2), (37, 3)])
@pytest.mark.parametrize("regularized", [False, True])
def test_cuda_step_matches_cpu(kind, n, d, regularized):
    xT, sT, w = _frame(n, d, seed=n + d)
    m = min(5, 2 * n)
    extra = {}
    if regularized:
        rng = np.random.default_rng(1)
        extra = {"lap": rng.normal(size=n), "logp": rng.normal(size=n), "lam": 0.4}
    idx, totals = cv.greedy_thinning(kind, xT, sT, w, w.sum(), m, threads=THREADS, **extra)
    idx_cpu, totals_cpu = sv.greedy_thinning(kind, xT, sT, w, w.sum(), m, parallel=False,
                                             **extra)
    np.testing.assert_array_equal(idx, idx_cpu)
    np.testing.assert_allclose(totals, totals_cpu, rtol=1e-10)


@pytest.mark.parametrize("period", [5, 20])
def test_cuda_ties_go_to_the_lowest_index(period):
    # period 5: copies within a block (the reduction tree's tie-break); 20: across
    # blocks (the host's).
    xT, sT, w = _frame(40, 2, seed=3, period=period)
    idx, _ = cv.greedy_thinning(sv.P_IMQ, xT, sT, w, w.sum(), 6, threads=THREADS)
    idx_cpu, _ = sv.greedy_thinning(sv.P_IMQ, xT, sT, w, w.sum(), 6, parallel=False)
    np.testing.assert_array_equal(idx, idx_cpu)
    assert idx.max() < period


def test_stein_thinning_on_cuda(monkeypatch):
    monkeypatch.setattr(cv, "_THREADS", THREADS or cv._THREADS)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 2))
    target = kn.Gaussian(np.zeros(2), 1.0)
    cpu = kn.stein_thinning(x, -x, 5, regularize=True, target=target, backend="cpu")
    gpu = kn.stein_thinning(x, -x, 5, regularize=True, target=target, backend="cuda")
    np.testing.assert_array_equal(gpu.indices, cpu.indices)
    np.testing.assert_allclose(gpu.ksd, cpu.ksd, rtol=1e-10)
    assert (gpu.backend, cpu.backend) == ("cuda", "cpu")
    assert kn.stein_thinning(x, -x, 3, backend="auto").backend == "cpu"


# --------------------------------------------------------------------------- KSD test

FORM_TILE = 4 if SIMULATOR else None


@pytest.mark.parametrize("kind, beta", [(sv.GAUSSIAN, 0.5), (sv.IMQ, 0.5), (sv.IMQ, 0.3),
                                        (sv.LINEAR, 0.5)], ids=["gaussian", "imq", "imq-0.3",
                                                                "linear"])
@pytest.mark.parametrize("n, d, B", [(1, 2, 1), (13, 3, 6), (19, 1, 5)])
def test_cuda_forms_match_cpu(kind, beta, n, d, B):
    rng = np.random.default_rng(n + d + B)
    x, s, W = rng.normal(size=(n, d)), rng.normal(size=(n, d)), rng.normal(size=(n, B))
    gpu = cv.quadratic_forms(kind, x, s, 0.9, beta, W, tile=FORM_TILE)
    cpu = sv.quadratic_forms(kind, x, s, 0.9, beta, W, parallel=False)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-10, atol=1e-10 * np.abs(cpu).max())


@pytest.mark.parametrize("bootstrap", ["wild", "multinomial"])
def test_ksd_test_on_cuda(bootstrap, monkeypatch):
    monkeypatch.setattr(cv, "_FORM_TILE", FORM_TILE or cv._FORM_TILE)
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(18, rng=0) + 0.5
    cpu = kn.ksd_test(x, target, n_bootstrap=7, rng=1, bootstrap=bootstrap)
    gpu = kn.ksd_test(x, target, n_bootstrap=7, rng=1, bootstrap=bootstrap,
                      backend="cuda")
    assert (gpu.backend, cpu.backend) == ("cuda", "cpu")
    np.testing.assert_allclose(gpu.statistic, cpu.statistic, rtol=1e-10)
    np.testing.assert_allclose(gpu.bootstrap_statistics, cpu.bootstrap_statistics, rtol=1e-9,
                               atol=1e-12 * np.abs(cpu.bootstrap_statistics).max())
    assert gpu.pvalue == cpu.pvalue
