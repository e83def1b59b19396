"""svgd and mmd_lbfgs: what they sample, what they return, and how they stop."""

import numpy as np
import pytest
from scipy import stats

import ksdnumba as kn
from ksdnumba.kernels import _reference as ref

NORMAL = kn.Gaussian(np.zeros(1), 1.0)
MIXTURE = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.1, 0.1])


def _uniform(n=100, d=1, seed=0):
    return np.random.default_rng(seed).uniform(-3, 3, size=(n, d))


# --------------------------------------------------------------------------- svgd


def test_svgd_samples_standard_normal_from_uniform_start():
    # bw = 1 and step = 2 (plain steps): the kurtosis is below 0.1 from iteration
    # ~670 on and settles at -0.06 (measured); bw = 0.1 settles at -0.23 instead.
    res = kn.svgd(_uniform(), NORMAL, step=2.0, bw=1.0, max_iter=1500)
    assert abs(stats.kurtosis(res.x[:, 0])) < 0.1
    assert abs(res.x.mean()) < 1e-3
    assert res.x.var() == pytest.approx(1.0, abs=0.01)


def test_svgd_update_is_the_direction_step():
    x0 = _uniform(20, 2, seed=1)
    res = kn.svgd(x0, MIXTURE, step=0.3, bw=0.5, max_iter=2, store=True)
    x = x0
    for k in range(2):
        phi = ref.svgd_direction(x, MIXTURE.score(x), 0.5)
        np.testing.assert_allclose(res.history[k], np.sum(phi**2), rtol=1e-10)
        x = x + 0.3 * phi
        np.testing.assert_allclose(res.trajectory[k + 1], x, rtol=1e-10, atol=1e-12)
    assert res.fun == res.history[-1]


def _liu_wang_adagrad(x0, score, bw, step, n_iter):
    """The loop of Liu and Wang's python/svgd.py, with a fixed bandwidth."""
    theta = np.copy(x0)
    historical_grad = 0
    for it in range(n_iter):
        grad_theta = ref.svgd_direction(theta, score(theta), bw)
        if it == 0:
            historical_grad = historical_grad + grad_theta**2
        else:
            historical_grad = 0.9 * historical_grad + 0.1 * grad_theta**2
        theta = theta + step * grad_theta / (1e-6 + np.sqrt(historical_grad))
    return theta


def test_adagrad_follows_the_reference_implementation():
    x0 = _uniform(30, 2, seed=2)
    res = kn.svgd(x0, MIXTURE, step=0.05, bw=0.3, max_iter=25, optimizer="adagrad", gtol=0.0)
    expected = _liu_wang_adagrad(x0, MIXTURE.score, 0.3, 0.05, 25)
    np.testing.assert_allclose(res.x, expected, rtol=1e-9, atol=1e-12)


def test_adagrad_samples_standard_normal():
    res = kn.svgd(_uniform(), NORMAL, step=0.05, bw=1.0, max_iter=500, optimizer="adagrad")
    assert abs(stats.kurtosis(res.x[:, 0])) < 0.1
    assert res.x.var() == pytest.approx(1.0, abs=0.02)


def test_svgd_converges_on_gtol():
    # gtol bounds the largest component of the direction: |phi|_F^2 (fun) is at
    # most n d gtol^2 at the end, and was above gtol^2 one step before.
    x0 = _uniform()
    res = kn.svgd(x0, NORMAL, step=2.0, bw=1.0, gtol=1e-4, max_iter=5000)
    assert res.success and res.status == 0, res.message
    assert "converged" in res.message
    assert res.fun <= x0.size * 1e-8 and res.history[-2] > 1e-8
    assert res.nit < 5000 and res.nfev == res.nit + 1


def test_svgd_max_iter_is_not_a_success():
    res = kn.svgd(_uniform(), NORMAL, step=1.0, max_iter=10)
    assert not res.success and res.status == 1 and res.nit == 10
    assert "max_iter=10" in res.message


def test_svgd_median_per_iteration_is_re_estimated_each_iteration():
    x0 = _uniform(40, 2, seed=3)
    res = kn.svgd(x0, MIXTURE, step=0.2, bw="median-per-iteration", max_iter=3, store=True)
    x = x0
    for k in range(3):
        bw = kn.median_bandwidth(x)
        x = x + 0.2 * ref.svgd_direction(x, MIXTURE.score(x), bw)
        np.testing.assert_allclose(res.trajectory[k + 1], x, rtol=1e-10, atol=1e-12)
    # "median", the package's rule: the median at x0, fixed; another path
    fixed = kn.svgd(x0, MIXTURE, step=0.2, bw="median", max_iter=3)
    again = kn.svgd(x0, MIXTURE, step=0.2, bw=kn.median_bandwidth(x0), max_iter=3)
    np.testing.assert_array_equal(fixed.x, again.x)
    assert np.abs(fixed.x - res.x).max() > 1e-6


def test_svgd_needs_only_a_score():
    class OnlyScore:
        def score(self, x):
            return -x

    x0 = _uniform(20)
    a = kn.svgd(x0, OnlyScore(), step=1.0, max_iter=20)
    b = kn.svgd(x0, lambda x: -x, step=1.0, max_iter=20)
    c = kn.svgd(x0, NORMAL, step=1.0, max_iter=20)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_allclose(a.x, c.x, rtol=1e-14)


def test_svgd_two_runs_are_bit_identical():
    x0 = _uniform(120, 2, seed=4)
    a = kn.svgd(x0, MIXTURE, step=0.1, bw=0.2, max_iter=50)
    b = kn.svgd(x0, MIXTURE, step=0.1, bw=0.2, max_iter=50)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.history, b.history)


def test_svgd_store_and_callback():
    x0 = _uniform(10, 2, seed=5)
    seen = []

    def callback(x):
        seen.append(x)
        return len(seen) == 3

    res = kn.svgd(x0, MIXTURE, step=0.1, callback=callback, store=True)
    assert isinstance(res, kn.SamplingResult)
    assert len(seen) == 3 and res.nit == 2 and res.status == 99 and not res.success
    np.testing.assert_array_equal(seen[0], x0)
    np.testing.assert_array_equal(res.x, seen[-1])
    assert res.trajectory.shape == (3, 10, 2)
    assert res.times.shape == (3,) and res.history.shape == (3,)


def test_svgd_non_finite_score_mid_run():
    def score(x):
        s = -x
        s[np.abs(x[:, 0]) > 1.0] = np.nan
        return s

    x0 = np.linspace(-0.5, 0.5, 20)[:, None]
    res = kn.svgd(x0, score, step=1.0, bw=0.1, store=True)
    assert res.status == -1 and not res.success
    assert "non-finite" in res.message and "iteration" in res.message
    assert np.isfinite(res.x).all() and np.abs(res.x).max() <= 1.0
    np.testing.assert_array_equal(res.trajectory[-1], res.x)


def test_svgd_float32():
    x0 = _uniform(30, seed=6)
    res = kn.svgd(x0, NORMAL, step=1.0, max_iter=100, dtype=np.float32)
    res64 = kn.svgd(x0, NORMAL, step=1.0, max_iter=100)
    assert res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, res64.x, atol=1e-4)


def test_svgd_verbose_prints_the_direction(capsys):
    kn.svgd(_uniform(10), NORMAL, step=1.0, max_iter=3, verbose=1)
    out = capsys.readouterr().out
    assert "svgd: iteration      2  |direction|^2" in out


# --------------------------------------------------------------------------- mmd_lbfgs


def test_mmd_moves_particles_onto_the_samples():
    rng = np.random.default_rng(7)
    y = MIXTURE.sample(300, rng=rng)
    x0 = 0.3 * rng.normal(size=(60, 2))
    res = kn.mmd_lbfgs(x0, y, bw=0.1)
    assert res.success, res.message
    assert res.fun < 1e-3 * res.history[0]
    np.testing.assert_allclose(res.fun, ref.mmd2(res.x, y, 0.1), rtol=1e-8, atol=1e-15)
    assert np.all(np.diff(res.history) <= 0)
    # half of the particles at each mode
    assert abs(np.mean(res.x[:, 0] > 0) - 0.5) < 0.1


def test_mmd_with_as_many_particles_as_samples_recovers_them():
    y = np.random.default_rng(8).normal(size=(10, 1))
    # ftol=0: MMD^2 is a difference of O(1) means, and stalls near 1e-16.
    res = kn.mmd_lbfgs(y + 0.05, y, bw=0.5, ftol=0.0, gtol=1e-12)
    assert res.fun < 1e-14
    np.testing.assert_allclose(np.sort(res.x, axis=0), np.sort(y, axis=0), atol=1e-3)


def test_mmd_result_fields_and_store():
    rng = np.random.default_rng(9)
    y = rng.normal(size=(40, 2))
    x0 = rng.uniform(-2, 2, size=(15, 2))
    res = kn.mmd_lbfgs(x0, y, max_iter=5, store=True)
    assert res.nit == 5 and not res.success and "ITERATIONS" in res.message
    assert res.trajectory.shape == (6, 15, 2) and res.times.shape == (6,)
    np.testing.assert_array_equal(res.trajectory[0], x0)
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    assert res.history[0] == pytest.approx(ref.mmd2(x0, y, 1.0), rel=1e-12)


def test_mmd_median_bandwidth_is_that_of_x0():
    # The package's one rule: bw="median" is the median heuristic at x0.
    rng = np.random.default_rng(10)
    y = rng.normal(size=(40, 2))
    x0 = rng.uniform(-2, 2, size=(15, 2))
    a = kn.mmd_lbfgs(x0, y, bw="median", max_iter=5)
    b = kn.mmd_lbfgs(x0, y, bw=kn.median_bandwidth(x0), max_iter=5)
    np.testing.assert_array_equal(a.x, b.x)


def test_mmd_two_runs_are_bit_identical_and_float32():
    rng = np.random.default_rng(11)
    y = rng.normal(size=(200, 2))
    x0 = rng.uniform(-2, 2, size=(100, 2))
    a = kn.mmd_lbfgs(x0, y, bw=0.3, max_iter=50)
    b = kn.mmd_lbfgs(x0, y, bw=0.3, max_iter=50)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.history, b.history)
    c = kn.mmd_lbfgs(x0, y, bw=0.3, max_iter=50, dtype=np.float32)
    assert c.x.dtype == np.float32


def test_mmd_callback_stops():
    y = np.random.default_rng(12).normal(size=(30, 1))
    res = kn.mmd_lbfgs(np.zeros((5, 1)) + np.arange(5)[:, None], y, callback=lambda x: True)
    assert res.nit == 0 and res.status == 99 and not res.success
