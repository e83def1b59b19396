"""Stein thinning's CUDA greedy loop against the CPU's, and ``backend="cuda"`` end to end.

In CI this runs in numba's CUDA simulator (tests/conftest.py), one Python thread
per GPU thread: sizes stay small, and blocks of 16 threads make even those span
several blocks and a partial last one. ``NUMBA_ENABLE_CUDASIM=0`` runs the same
tests on a real GPU.
"""

import numpy as np
import pytest
from numba import config

import ksdnumba as kn
from ksdnumba.kernels import _backend, _cpu
from ksdnumba.kernels._kinds import GAUSSIAN, IMQ

SIMULATOR = bool(config.ENABLE_CUDASIM)
if not SIMULATOR and not _backend._cuda_available():
    pytest.skip(
        f"numba's CUDA simulator is off, and numba cannot use a GPU here "
        f"({_backend._cuda_status()[1]})",
        allow_module_level=True,
    )

from ksdnumba.kernels import _cuda  # noqa: E402  (imports numba.cuda)
from ksdnumba.kernels._cuda import _launch  # noqa: E402

pytestmark = pytest.mark.slow  # numba's CUDA simulator runs the kernels as Python

KINDS = [(GAUSSIAN, 0.5), (IMQ, 0.5), (IMQ, 0.3)]
KIND_IDS = ["gaussian", "imq", "imq-0.3"]


@pytest.fixture(autouse=True)
def _small_blocks_in_the_simulator(monkeypatch):
    """The simulator runs one Python thread per GPU thread: keep blocks small."""
    if SIMULATOR:
        for name in ("TILE", "REDUCE_THREADS", "POINT_THREADS"):
            monkeypatch.setattr(_launch, name, 16)
        monkeypatch.setattr(_launch, "MATRIX_ROWS", 4)
        monkeypatch.setattr(_launch, "MATRIX_COLS", 4)
        monkeypatch.setattr(_launch, "MATRIX_PARTNERS", 8)
        monkeypatch.setattr(_launch, "BLOCKS_PER_SM", 1)


def _layouts(kind, beta, n, d, seed, period=None):
    """CUDA and CPU layouts of random points and scores under a random metric."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    s = rng.normal(size=(n, d))
    if period is not None:  # equal points: their objectives tie at every step
        x = x[np.arange(n) % period]
        s = s[np.arange(n) % period]
    a = rng.normal(size=(d, d))
    w, Q = np.linalg.eigh(a @ a.T / d + 0.3 * np.eye(d))
    args = (kind, beta, x @ Q, s @ Q, w)
    return _cuda.stein_layout(*args, np.float64), _cpu.stein_layout(*args, np.float64)


@pytest.mark.parametrize("kind, beta", KINDS, ids=KIND_IDS)
@pytest.mark.parametrize("n, d", [(1, 2), (21, 3)])
@pytest.mark.parametrize("extra", ["plain", "regularized", "weighted"])
def test_cuda_greedy_matches_cpu(kind, beta, n, d, extra):
    gpu, cpu = _layouts(kind, beta, n, d, seed=n + d)
    m = min(4, 2 * n)
    rng = np.random.default_rng(1)
    kw = {}
    if extra == "regularized":
        kw = {"lap": rng.normal(size=n), "logp": rng.normal(size=n), "lam": 0.4}
    elif extra == "weighted":  # gradient-free thinning's importance weights
        kw = {"log_weights": 0.3 * rng.normal(size=n)}
    idx, totals = _cuda.greedy_thinning(gpu, m, **kw)
    idx_cpu, totals_cpu = _cpu.greedy_thinning(cpu, m, parallel=False, **kw)
    assert idx.dtype == np.int64 and totals.dtype == np.float64
    np.testing.assert_array_equal(idx, idx_cpu)
    np.testing.assert_allclose(totals, totals_cpu, rtol=1e-10)


@pytest.mark.parametrize("period", [5, 20])
def test_cuda_ties_go_to_the_lowest_index(period):
    # period 5: copies within a block (the block's tree); 20: across blocks (the pick)
    gpu, cpu = _layouts(IMQ, 0.5, 40, 2, seed=3, period=period)
    idx, _ = _cuda.greedy_thinning(gpu, 6)
    idx_cpu, _ = _cpu.greedy_thinning(cpu, 6, parallel=False)
    np.testing.assert_array_equal(idx, idx_cpu)
    assert idx.max() < period


def test_stein_thinning_on_cuda():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(30, 2))
    target = kn.Gaussian(np.zeros(2), 1.0)
    cpu = kn.stein_thinning(x, -x, 5, regularize=True, target=target, backend="cpu")
    gpu = kn.stein_thinning(x, -x, 5, regularize=True, target=target, backend="cuda")
    np.testing.assert_array_equal(gpu.indices, cpu.indices)
    np.testing.assert_allclose(gpu.ksd, cpu.ksd, rtol=1e-10)
    assert (gpu.backend, cpu.backend) == ("cuda", "cpu")
    for preconditioner in ("med", "smpcov"):
        kw = {"kernel": "gaussian", "preconditioner": preconditioner}
        gpu = kn.stein_thinning(x, -x, 4, backend="cuda", **kw)
        cpu = kn.stein_thinning(x, -x, 4, backend="cpu", **kw)
        np.testing.assert_array_equal(gpu.indices, cpu.indices)
        np.testing.assert_allclose(gpu.ksd, cpu.ksd, rtol=1e-10)
    assert kn.stein_thinning(x, -x, 3, backend="auto").backend == "cpu"


@pytest.mark.parametrize("bootstrap", ["wild", "multinomial"])
def test_ksd_test_on_cuda(bootstrap):
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(18, rng=0) + 0.5
    cpu = kn.ksd_test(x, target, n_resamples=7, rng=1, bootstrap=bootstrap)
    gpu = kn.ksd_test(x, target, n_resamples=7, rng=1, bootstrap=bootstrap, backend="cuda")
    assert (gpu.backend, cpu.backend) == ("cuda", "cpu")
    np.testing.assert_allclose(gpu.statistic, cpu.statistic, rtol=1e-10)
    np.testing.assert_allclose(
        gpu.null_distribution,
        cpu.null_distribution,
        rtol=1e-9,
        atol=1e-12 * np.abs(cpu.null_distribution).max(),
    )
    assert gpu.pvalue == cpu.pvalue


def test_ksd_test_with_the_linear_kernel_on_cuda():
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(12, rng=2)
    cpu = kn.ksd_test(x, target, kernel="linear", n_resamples=5, rng=3)
    gpu = kn.ksd_test(x, target, kernel="linear", n_resamples=5, rng=3, backend="cuda")
    np.testing.assert_allclose(gpu.statistic, cpu.statistic, rtol=1e-10)
    assert gpu.pvalue == cpu.pvalue
