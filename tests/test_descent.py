"""ksdd_lbfgs: what it samples, what it returns, and how it stops."""

import numpy as np
import pytest
from scipy import stats

import ksdnumba as kn

MIXTURE = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.1, 0.1])


def test_samples_standard_normal_from_uniform_start():
    target = kn.Gaussian(np.zeros(1), 1.0)
    x0 = np.random.default_rng(0).uniform(-3, 3, size=(100, 1))
    res = kn.ksdd_lbfgs(x0, target, bw=1.0)
    assert res.success, res.message
    assert abs(stats.kurtosis(res.x[:, 0])) < 0.1
    assert abs(res.x.mean()) < 1e-3
    assert res.x.var() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("kernel, bw", [("imq", 4.0), ("gaussian", "median")])
def test_other_kernels_sample_standard_normal(kernel, bw):
    target = kn.Gaussian(np.zeros(1), 1.0)
    x0 = np.random.default_rng(0).uniform(-3, 3, size=(100, 1))
    res = kn.ksdd_lbfgs(x0, target, kernel=kernel, bw=bw)
    assert res.success, res.message
    assert abs(stats.kurtosis(res.x[:, 0])) < 0.1
    assert res.x.var() == pytest.approx(1.0, abs=0.02)


def test_linear_kernel_matches_two_moments():
    """The linear Stein kernel only sees E[s(x) x^T] = -I: mean 0 and variance 1."""
    target = kn.Gaussian(np.zeros(1), 1.0)
    x0 = np.random.default_rng(0).uniform(-3, 3, size=(100, 1))
    res = kn.ksdd_lbfgs(x0, target, kernel="linear")
    assert res.success, res.message
    # With s(x) = -x and A = sum_i x_i^2, V = (A^2 - 2 n A) / n^2 + 1: minimal,
    # and 0, at A = n.
    assert np.mean(res.x[:, 0] ** 2) == pytest.approx(1.0, rel=1e-8)
    assert abs(res.fun) < 1e-12


@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (10, 1), (10, 3)])
def test_output_shapes(shape):
    n, d = shape
    target = kn.Gaussian(np.zeros(d), 1.0)
    x0 = np.random.default_rng(1).normal(size=shape)
    res = kn.ksdd_lbfgs(x0, target, store=True, max_iter=50)
    assert res.x.shape == shape
    assert res.x.dtype == np.float64
    assert res.history.shape == (res.nit + 1,)
    assert res.trajectory.shape == (res.nit + 1, n, d)
    assert res.times.shape == (res.nit + 1,)
    np.testing.assert_array_equal(res.trajectory[0], x0)
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    assert np.all(np.diff(res.times) >= 0)
    assert res.fun == res.history[-1]


def test_two_runs_are_bit_identical():
    x0 = np.random.default_rng(2).normal(size=(80, 2))
    a = kn.ksdd_lbfgs(x0, MIXTURE, bw=0.1, max_iter=200)
    b = kn.ksdd_lbfgs(x0, MIXTURE, bw=0.1, max_iter=200)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.history, b.history)


def test_objective_decreases_and_result_fields():
    x0 = 0.5 * np.random.default_rng(3).normal(size=(50, 2))
    res = kn.ksdd_lbfgs(x0, MIXTURE, bw=0.1)
    assert isinstance(res, kn.SamplingResult)
    assert res.success, res.message
    assert res.fun < res.history[0]
    assert np.all(np.diff(res.history) <= 0)  # L-BFGS-B only accepts decreasing steps
    assert res.nfev >= res.nit
    assert res.trajectory is None and res.times is None
    np.testing.assert_allclose(res.fun, kn.ksd(res.x, MIXTURE, bw=0.1), rtol=1e-12)


def test_default_tolerances_reach_the_minimum():
    """The defaults land within a small distance of a run pushed much further."""
    x0 = 0.5 * np.random.default_rng(4).normal(size=(50, 2))
    res = kn.ksdd_lbfgs(x0, MIXTURE, bw=0.1)
    tight = kn.ksdd_lbfgs(x0, MIXTURE, bw=0.1, ftol=0.0, gtol=1e-13, max_iter=100_000)
    assert np.abs(res.x - tight.x).max() < 1e-2
    assert res.fun == pytest.approx(tight.fun, rel=1e-8)


def test_max_iter_zero_returns_start():
    x0 = np.random.default_rng(5).normal(size=(10, 2))
    res = kn.ksdd_lbfgs(x0, MIXTURE, max_iter=0)
    np.testing.assert_array_equal(res.x, x0)
    assert res.nit == 0 and res.nfev == 1 and not res.success
    assert res.fun == kn.ksd(x0, MIXTURE)


def test_max_iter_is_respected():
    x0 = np.random.default_rng(6).normal(size=(20, 2))
    res = kn.ksdd_lbfgs(x0, MIXTURE, bw=0.1, max_iter=5)
    assert res.nit == 5 and not res.success
    assert "ITERATIONS" in res.message


def test_callback_sees_every_iterate_and_can_stop():
    x0 = np.random.default_rng(7).normal(size=(20, 2))
    seen = []

    def callback(x):
        seen.append(x)
        return len(seen) == 4

    res = kn.ksdd_lbfgs(x0, MIXTURE, callback=callback, store=True)
    assert len(seen) == 4 and res.nit == 3
    assert not res.success and "callback" in res.message
    np.testing.assert_array_equal(seen[0], x0)
    np.testing.assert_array_equal(res.x, seen[-1])
    assert res.trajectory.shape == (4, 20, 2)


def test_float32_run():
    x0 = np.random.default_rng(8).normal(size=(30, 1))
    target = kn.Gaussian(np.zeros(1), 1.0)
    res = kn.ksdd_lbfgs(x0, target, dtype=np.float32)
    res64 = kn.ksdd_lbfgs(x0, target)
    assert res.x.dtype == np.float32
    assert res.success, res.message
    # Particles are exchangeable and the float32 path rounds every iterate, so
    # compare the sets and the objective, not the paths.
    assert res.fun == pytest.approx(res64.fun, rel=1e-4)
    np.testing.assert_allclose(np.sort(res.x, axis=0), np.sort(res64.x, axis=0), atol=5e-3)


def test_plain_score_callable_is_accepted():
    x0 = np.random.default_rng(9).normal(size=(30, 2))
    # A few iterations only: L-BFGS-B amplifies the ~1e-8 error of the
    # finite-difference HVP as the run goes on.
    a = kn.ksdd_lbfgs(x0, MIXTURE, bw=0.5, max_iter=10)
    b = kn.ksdd_lbfgs(x0, MIXTURE.score, bw=0.5, max_iter=10)
    np.testing.assert_allclose(b.x, a.x, atol=1e-6)


class _BreaksAway:
    """Gaussian score that turns NaN once a particle goes beyond `radius`."""

    def __init__(self, radius):
        self.radius = radius
        self.base = kn.Gaussian(np.zeros(1), 1.0)

    def score(self, x):
        s = self.base.score(x)
        s[np.abs(x[:, 0]) > self.radius] = np.nan
        return s

    def hvp(self, x, v):
        return self.base.hvp(x, v)


def test_non_finite_score_mid_run_returns_last_finite_particles():
    # Particles start inside |x| < 1 and must spread to sample N(0, 1).
    x0 = np.linspace(-0.5, 0.5, 20)[:, None]
    res = kn.ksdd_lbfgs(x0, _BreaksAway(1.0), bw=1.0, store=True)
    assert not res.success and res.status == -1
    assert "non-finite" in res.message and "iteration" in res.message
    assert np.isfinite(res.x).all() and np.isfinite(res.fun)
    assert np.abs(res.x).max() <= 1.0
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    assert len(res.history) == res.nit + 1


def test_non_finite_score_at_start_raises():
    x0 = np.array([[0.0], [2.0]])
    with pytest.raises(ValueError, match=r"target.score returned non-finite values .* 1 of 2"):
        kn.ksdd_lbfgs(x0, _BreaksAway(1.0))


def test_verbose_prints_progress(capsys):
    x0 = np.random.default_rng(10).normal(size=(10, 2))
    kn.ksdd_lbfgs(x0, MIXTURE, max_iter=4, verbose=2)
    out = capsys.readouterr().out
    assert "iteration      0" in out and "iteration      2" in out
    assert "iteration      1" not in out


def test_blas_threads_restored_after_run():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info()]
    kn.ksdd_lbfgs(
        np.zeros((3, 1)) + [[0.0], [1.0], [2.0]], kn.Gaussian(np.zeros(1), 1.0), max_iter=3
    )
    after = [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info()]
    assert before == after


def test_result_reads_as_attributes_and_keys_and_prints():
    x0 = np.random.default_rng(11).normal(size=(6, 2))
    res = kn.ksdd_lbfgs(x0, MIXTURE, max_iter=3, store=True)
    assert res.x is res["x"] and res.nit == res["nit"]
    with pytest.raises(AttributeError, match="no_such_field"):
        res.no_such_field
    text = repr(res)
    assert "nit: 3" in text and "trajectory: <float64 array of shape (4, 6, 2)>" in text
    assert set(dir(res)) >= {"x", "fun", "nit", "nfev", "success", "message", "history"}
