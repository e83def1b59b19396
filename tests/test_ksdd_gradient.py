"""ksdd_gradient: fixed-step descent on the same objective as ksdd_lbfgs."""

import numpy as np
import pytest

import ksdnumba as kn

MIXTURE = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.1, 0.1])
NORMAL = kn.Gaussian(np.zeros(1), 1.0)


def _x0(n=30, d=1, seed=0):
    return np.random.default_rng(seed).uniform(-3, 3, size=(n, d))


def test_small_step_decreases_the_objective_at_every_step():
    res = kn.ksdd_gradient(_x0(), NORMAL, step=2.0, max_iter=300)
    assert res.nit == 300
    assert np.all(np.diff(res.history) < 0)
    np.testing.assert_allclose(res.fun, kn.ksd(res.x, NORMAL), rtol=1e-12)


def test_step_is_the_gradient_step():
    """One iteration is x0 - step * grad of the objective of ksdd_lbfgs."""
    x0 = _x0(20, 2, seed=1)
    _, grad = kn.ksd_and_grad(x0, MIXTURE, bw=0.5)
    res = kn.ksdd_gradient(x0, MIXTURE, step=0.7, bw=0.5, max_iter=1)
    np.testing.assert_array_equal(res.x, x0 - 0.7 * grad)
    np.testing.assert_allclose(res.history[0], kn.ksd(x0, MIXTURE, bw=0.5), rtol=1e-12)


def test_reaches_the_minimum_of_lbfgs():
    # Few particles: fixed-step descent is slow on the tails, where the kernel is flat.
    x0 = np.random.default_rng(0).uniform(-1, 1, size=(5, 1))
    lbfgs = kn.ksdd_lbfgs(x0, NORMAL)
    res = kn.ksdd_gradient(x0, NORMAL, step=1.0, max_iter=5000, gtol=1e-7)
    assert res.success and res.status == 0, res.message
    assert "converged" in res.message
    assert res.nit < 5000 and res.nfev == res.nit + 1
    np.testing.assert_allclose(np.sort(res.x, axis=0), np.sort(lbfgs.x, axis=0), atol=1e-5)
    np.testing.assert_allclose(res.fun, lbfgs.fun, rtol=1e-9)
    assert np.max(np.abs(kn.ksd_and_grad(res.x, NORMAL)[1])) <= 1e-7


def test_max_iter_reached_is_not_a_success():
    res = kn.ksdd_gradient(_x0(), NORMAL, step=1.0, max_iter=5)
    assert not res.success and res.status == 1
    assert "max_iter=5" in res.message
    assert res.nit == 5 and res.nfev == 6


def test_max_iter_zero_returns_start():
    x0 = _x0()
    res = kn.ksdd_gradient(x0, NORMAL, step=1.0, max_iter=0)
    np.testing.assert_array_equal(res.x, x0)
    assert res.nit == 0 and res.nfev == 1 and not res.success


@pytest.mark.parametrize("clamp", [(-1.0, 1.0), (0.0, 0.5), (-0.2, 3)])
def test_clamp_is_respected(clamp):
    x0 = np.random.default_rng(2).uniform(*clamp, size=(40, 2))
    res = kn.ksdd_gradient(x0, MIXTURE, step=1.0, bw=0.3, clamp=clamp, max_iter=200, store=True)
    assert res.trajectory.min() >= clamp[0] and res.trajectory.max() <= clamp[1]
    # The mixture pulls the particles to (+-1, 0): some end on the bounds.
    assert np.any(res.x == clamp[0]) or np.any(res.x == clamp[1])


def test_clamp_converges_on_the_bound():
    """N(0, 1) asks for spread; a box [-0.5, 0.5] stops it on the bounds."""
    x0 = np.linspace(-0.1, 0.1, 10)[:, None]
    res = kn.ksdd_gradient(x0, NORMAL, step=5.0, clamp=(-0.5, 0.5), max_iter=5000, gtol=1e-8)
    assert res.success, res.message
    assert res.x.min() == -0.5 and res.x.max() == 0.5
    # The raw gradient on the bounds is not zero: only the projected one is.
    _, grad = kn.ksd_and_grad(res.x, NORMAL)
    assert np.abs(grad).max() > 1e-3


def test_x0_outside_the_box_is_refused():
    with pytest.raises(ValueError, match=r"x0 has coordinates outside clamp=\(-1.0, 1.0\)"):
        kn.ksdd_gradient(_x0(), NORMAL, step=1.0, clamp=(-1, 1))


def test_two_runs_are_bit_identical():
    x0 = _x0(80, 2, seed=3)
    a = kn.ksdd_gradient(x0, MIXTURE, step=1.0, bw=0.1, max_iter=100)
    b = kn.ksdd_gradient(x0, MIXTURE, step=1.0, bw=0.1, max_iter=100)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.history, b.history)


def test_store_callback_and_result_fields():
    x0 = _x0(10, 2, seed=4)
    seen = []

    def callback(x):
        seen.append(x)
        return len(seen) == 4

    res = kn.ksdd_gradient(x0, MIXTURE, step=1.0, callback=callback, store=True)
    assert isinstance(res, kn.SamplingResult)
    assert len(seen) == 4 and res.nit == 3 and res.status == 99
    assert not res.success and "callback" in res.message
    np.testing.assert_array_equal(seen[0], x0)
    np.testing.assert_array_equal(res.x, seen[-1])
    assert res.trajectory.shape == (4, 10, 2) and res.times.shape == (4,)
    assert res.history.shape == (4,)
    assert np.all(np.diff(res.times) >= 0)
    plain = kn.ksdd_gradient(x0, MIXTURE, step=1.0, max_iter=3)
    assert plain.trajectory is None and plain.times is None
    np.testing.assert_array_equal(plain.x, res.x)


class _BreaksAway:
    """Gaussian score that turns NaN once a particle goes beyond `radius`."""

    def __init__(self, radius):
        self.radius = radius

    def score(self, x):
        s = NORMAL.score(x)
        s[np.abs(x[:, 0]) > self.radius] = np.nan
        return s

    def hvp(self, x, v):
        return NORMAL.hvp(x, v)


def test_non_finite_score_mid_run_returns_last_finite_particles():
    x0 = np.linspace(-0.5, 0.5, 20)[:, None]
    res = kn.ksdd_gradient(x0, _BreaksAway(1.0), step=5.0, store=True)
    assert not res.success and res.status == -1
    assert "non-finite" in res.message and "iteration" in res.message
    assert np.isfinite(res.x).all() and np.abs(res.x).max() <= 1.0
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    assert len(res.history) == res.nit + 1


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the target's, at 1e200
def test_diverging_step_stops_with_finite_particles():
    res = kn.ksdd_gradient(_x0(), NORMAL, step=1e200, max_iter=50)
    assert res.status == -1 and not res.success
    assert "non-finite" in res.message
    assert np.isfinite(res.x).all()


def test_float32_and_plain_callable():
    x0 = _x0(20, 1, seed=5)
    res = kn.ksdd_gradient(x0, NORMAL, step=2.0, max_iter=50, dtype=np.float32)
    res64 = kn.ksdd_gradient(x0, NORMAL, step=2.0, max_iter=50)
    assert res.x.dtype == np.float32
    np.testing.assert_allclose(res.x, res64.x, atol=1e-4)
    fd = kn.ksdd_gradient(x0, NORMAL.score, step=2.0, max_iter=50)
    np.testing.assert_allclose(fd.x, res64.x, atol=1e-6)


def test_verbose_prints_progress(capsys):
    kn.ksdd_gradient(_x0(), NORMAL, step=1.0, max_iter=4, verbose=2)
    out = capsys.readouterr().out
    assert "ksdd_gradient: iteration      2  objective" in out
    assert "iteration      1" not in out
    assert "max_iter=4" in out
