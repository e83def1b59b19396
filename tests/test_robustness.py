"""Misbehaving targets, numerical extremes, and properties that hold for any input."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ksdnumba as kn
from ksdnumba.kernels import _reference as ref

from conftest import central_difference_gradient

GOOD = kn.Gaussian(np.zeros(2), 1.0)


class _Breaks:
    """N(0, I) until its score has been called `after` times, then misbehaves."""

    def __init__(self, mode, after, d=2):
        self.mode = mode
        self.after = after
        self.calls = 0
        self.base = kn.Gaussian(np.zeros(d), 1.0)

    def score(self, x):
        self.calls += 1
        s = self.base.score(x)
        if self.calls <= self.after:
            return s
        if self.mode == "raise":
            raise ZeroDivisionError("the model blew up")
        if self.mode == "shape":
            return s[:, :1]
        if self.mode == "nan":
            return np.full_like(s, np.nan)
        if self.mode == "inf":
            s[0, 0] = np.inf
            return s
        if self.mode == "dtype":
            return s.astype(complex)
        raise AssertionError(self.mode)

    def hvp(self, x, v):
        return self.base.hvp(x, v)


MODES = {
    "raise": r"target.score raised ZeroDivisionError: the model blew up",
    "shape": r"target.score returned shape \(20, 1\) for particles of shape \(20, 2\)",
    "nan": r"target.score returned non-finite values \(NaN or inf\) for 20 of 20",
    "inf": r"target.score returned non-finite values \(NaN or inf\) for 1 of 20",
    "dtype": r"target.score returned non-numeric dtype complex128",
}

SAMPLERS = {
    "ksdd_lbfgs": lambda x0, t, **kw: kn.ksdd_lbfgs(x0, t, **kw),
    "ksdd_gradient": lambda x0, t, **kw: kn.ksdd_gradient(x0, t, step=1.0, **kw),
    "svgd": lambda x0, t, **kw: kn.svgd(x0, t, step=0.1, **kw),
}


def _x0(n=20, d=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + 1.0


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("mode", MODES)
def test_failing_target_at_start_raises(sampler, mode):
    with pytest.raises(ValueError, match=MODES[mode]):
        SAMPLERS[sampler](_x0(), _Breaks(mode, after=0))


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("mode", MODES)
def test_failing_target_mid_run_stops_with_last_finite_particles(sampler, mode):
    target = _Breaks(mode, after=6)
    res = SAMPLERS[sampler](_x0(), target, store=True, max_iter=50)
    assert not res.success
    assert res.status == -1
    assert "stopped during iteration" in res.message
    assert "returning the last finite particles" in res.message
    assert re.search(MODES[mode], res.message), res.message
    assert np.isfinite(res.x).all() and np.isfinite(res.fun)
    assert res.nit >= 1
    assert res.trajectory.shape[0] == res.nit + 1 == len(res.history) == len(res.times)
    np.testing.assert_array_equal(res.trajectory[-1], res.x)
    assert np.isfinite(res.trajectory).all()


def test_failing_target_error_is_chained():
    with pytest.raises(ValueError) as info:
        kn.ksd_and_grad(_x0(), _Breaks("raise", after=0))
    assert isinstance(info.value.__cause__, ZeroDivisionError)


class _RaisingHvp:
    def score(self, x):
        return -x

    def hvp(self, x, v):
        raise RuntimeError("no Hessian today")


def test_raising_hvp_at_start():
    with pytest.raises(ValueError, match="target.hvp raised RuntimeError: no Hessian today"):
        kn.ksdd_lbfgs(_x0(), _RaisingHvp())


def test_keyboard_interrupt_is_not_swallowed():
    class Interrupts:
        def score(self, x):
            raise KeyboardInterrupt

        def hvp(self, x, v):
            return v

    with pytest.raises(KeyboardInterrupt):
        kn.ksd(_x0(), Interrupts())


# --------------------------------------------------------------------- numerical extremes


@pytest.mark.parametrize("kernel", ["gaussian", "imq", "linear"])
def test_coincident_particles(kernel):
    x = np.ones((6, 3))
    target = kn.Gaussian(np.zeros(3), 2.0)
    value, grad = kn.ksd_and_grad(x, target, kernel=kernel)
    np.testing.assert_allclose(value, ref.ksd_v(kernel, x, target.score(x)), rtol=1e-12)
    np.testing.assert_allclose(grad, ref.ksd_v_grad(kernel, x, target), rtol=1e-12, atol=1e-15)
    res = kn.ksdd_lbfgs(x, target, kernel=kernel, max_iter=20)
    assert np.isfinite(res.x).all()


@pytest.mark.parametrize("kernel", ["gaussian", "imq"])
@pytest.mark.parametrize("bw", [1e-8, 1e-3, 1e3, 1e8])
def test_extreme_bandwidths_match_reference(kernel, bw):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 2))
    target = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.5, 0.5])
    value, grad = kn.ksd_and_grad(x, target, kernel=kernel, bw=bw)
    expected = ref.ksd_v_grad(kernel, x, target, bw)
    np.testing.assert_allclose(value, ref.ksd_v(kernel, x, target.score(x), bw), rtol=1e-10)
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("kernel", ["gaussian", "imq", "linear"])
def test_coordinates_of_a_million(kernel):
    """Far from the origin, with the target there too: nothing overflows."""
    centre = np.array([1e6, -1e6])
    target = kn.GaussianMixture([centre - [1.0, 0.0], centre + [1.0, 0.0]], [0.3, 0.3])
    x = centre + np.random.default_rng(2).normal(size=(15, 2))
    value, grad = kn.ksd_and_grad(x, target, kernel=kernel, bw=0.5)
    expected = ref.ksd_v_grad(kernel, x, target, 0.5)
    # Differences of coordinates near 1e6 lose 6 digits to rounding.
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max())
    assert np.isfinite(value)
    if kernel != "linear":  # the linear kernel is not translation invariant
        shifted = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.3, 0.3])
        near = kn.ksd(x - centre, shifted, kernel=kernel, bw=0.5)
        np.testing.assert_allclose(value, near, rtol=1e-6)


def test_single_particle_in_one_dimension_for_every_sampler():
    target = kn.Gaussian(np.zeros(1), 1.0)
    x0 = np.array([[0.7]])
    for res in (
        kn.ksdd_lbfgs(x0, target),
        kn.ksdd_gradient(x0, target, step=0.1, max_iter=500),
        kn.svgd(x0, target, step=0.1, max_iter=500),
    ):
        assert res.x.shape == (1, 1)
        # One particle: the minimiser of k_p(x, x) = s(x)^2 + 1/bw is the mode.
        assert abs(res.x[0, 0]) < 1e-3


@pytest.mark.parametrize("sampler", ["ksdd_lbfgs", "ksdd_gradient", "svgd", "mmd_lbfgs"])
def test_float32_end_to_end(sampler):
    x0 = _x0(30, 2).astype(np.float32)
    if sampler == "mmd_lbfgs":
        res = kn.mmd_lbfgs(x0, GOOD.sample(200, rng=0), dtype=np.float32, max_iter=50)
    else:
        res = SAMPLERS[sampler](x0, GOOD, dtype=np.float32, max_iter=50, store=True)
        assert res.trajectory.dtype == np.float32
    assert res.x.dtype == np.float32
    assert np.isfinite(res.x).all()


# ---------------------------------------------------------------------- properties

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def _problems(draw):
    n = draw(st.integers(1, 7))
    d = draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=2.0, size=(k, d))
    variances = rng.uniform(0.2, 3.0, size=k)
    target = kn.GaussianMixture(means, variances, rng.uniform(0.1, 1.0, size=k))
    x = rng.normal(scale=2.0, size=(n, d))
    kernel = draw(st.sampled_from(["gaussian", "imq", "linear"]))
    bw = draw(st.floats(0.05, 20.0))
    beta = draw(st.floats(0.05, 0.95))
    return x, target, dict(kernel=kernel, bw=bw, beta=beta), rng


@_SETTINGS
@given(_problems())
def test_v_statistic_is_finite_and_nonnegative(problem):
    x, target, kw, _ = problem
    value, grad = kn.ksd_and_grad(x, target, **kw)
    assert np.isfinite(value) and np.isfinite(grad).all()
    # The Stein kernel is positive semi-definite, so V >= 0 up to rounding,
    # which is bounded by the largest entry, itself at most the largest diagonal.
    diagonal = np.diag(ref.stein_matrix(kw["kernel"], x, target.score(x), kw["bw"], kw["beta"]))
    assert value >= -1e-12 * np.abs(diagonal).max()


@_SETTINGS
@given(_problems())
def test_gradient_matches_finite_differences(problem):
    x, target, kw, _ = problem
    _, grad = kn.ksd_and_grad(x, target, **kw)
    fd = central_difference_gradient(lambda z: kn.ksd(z, target, **kw), x)
    scale = max(np.abs(fd).max(), 1.0)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * scale)


@_SETTINGS
@given(_problems())
def test_permuting_particles_permutes_the_gradient(problem):
    x, target, kw, rng = problem
    perm = rng.permutation(x.shape[0])
    value, grad = kn.ksd_and_grad(x, target, **kw)
    value_p, grad_p = kn.ksd_and_grad(x[perm], target, **kw)
    np.testing.assert_allclose(value_p, value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(grad_p, grad[perm], rtol=1e-10, atol=1e-12 * np.abs(grad).max())


@_SETTINGS
@given(_problems(), st.floats(-50.0, 50.0), st.floats(-50.0, 50.0))
def test_translating_target_and_particles_leaves_ksd_unchanged(problem, a, b):
    x, target, kw, _ = problem
    if kw["kernel"] == "linear":  # x . y is not translation invariant
        kw["kernel"] = "gaussian"
    shift = np.resize([a, b], x.shape[1])
    moved = kn.GaussianMixture(target.means + shift, target.covariances, target.weights)
    value = kn.ksd(x, target, **kw)
    value_moved = kn.ksd(x + shift, moved, **kw)
    # Translating changes the rounding of the coordinates, by ~1e-16 * |shift|.
    np.testing.assert_allclose(value_moved, value, rtol=1e-8, atol=1e-10)
