"""The KSD objective and its gradient: reference, finite differences, chain rule."""

import numpy as np
import pytest
from conftest import TARGET_KINDS, central_difference_gradient, make_targets

import ksdnumba as kn
from ksdnumba.kernels import _reference as ref


@pytest.mark.parametrize("kind", TARGET_KINDS)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_gradient_matches_finite_differences(kind, d):
    rng = np.random.default_rng(d)
    target = make_targets(d, rng)[kind]
    x = rng.normal(size=(7, d))
    bw = 0.8
    _, grad = kn.ksd_and_grad(x, target, bw=bw)
    fd = central_difference_gradient(lambda z: kn.ksd(z, target, bw=bw), x)
    # Central differences with h = 1e-6 on an O(1) objective: error ~1e-10.
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_value_and_gradient_match_dense_reference(kind):
    rng = np.random.default_rng(11)
    target = make_targets(3, rng)[kind]
    x = rng.normal(size=(40, 3))
    value, grad = kn.ksd_and_grad(x, target, bw=0.5)
    np.testing.assert_allclose(value, ref.ksd_v(x, target.score(x), 0.5), rtol=1e-10)
    expected = ref.ksd_v_grad(x, target, 0.5)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


def test_u_and_v_statistics_match_reference():
    rng = np.random.default_rng(2)
    target = make_targets(2, rng)["mixture-full"]
    x = rng.normal(size=(30, 2))
    s = target.score(x)
    np.testing.assert_allclose(kn.ksd(x, target, bw=0.3), ref.ksd_v(x, s, 0.3), rtol=1e-10)
    np.testing.assert_allclose(
        kn.ksd(x, target, bw=0.3, statistic="u"), ref.ksd_u(x, s, 0.3), rtol=1e-10
    )


def test_u_statistic_is_near_zero_on_exact_samples():
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(2000, random_state=0)
    u = kn.ksd(x, target, bw=1.0, statistic="u")
    v = kn.ksd(x, target, bw=1.0)
    # V carries the diagonal, mean(|s|^2 + d / bw) / n ~ 4 / n; U does not.
    assert abs(u) < 5e-4
    assert v == pytest.approx(u * (1999 / 2000) + (np.mean((x**2).sum(1)) + 2.0) / 2000, rel=1e-8)


def test_ksd_grows_as_particles_move_away():
    target = kn.Gaussian(np.zeros(1), 1.0)
    x = target.sample(300, random_state=1)
    values = [kn.ksd(x + shift, target) for shift in (0.0, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(values, values[1:]))


def test_score_function_target_matches_analytic_target():
    """A plain score callable (finite-difference HVP) gives the same gradient."""
    rng = np.random.default_rng(4)
    target = make_targets(2, rng)["mixture-iso"]
    x = rng.normal(size=(25, 2))
    value, grad = kn.ksd_and_grad(x, target, bw=0.5)
    value_fd, grad_fd = kn.ksd_and_grad(x, target.score, bw=0.5)
    assert value_fd == value
    np.testing.assert_allclose(grad_fd, grad, rtol=1e-7, atol=1e-9 * np.abs(grad).max())


def test_float32_particles_keep_their_dtype():
    rng = np.random.default_rng(5)
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = rng.normal(size=(20, 2))
    value64, grad64 = kn.ksd_and_grad(x, target)
    value32, grad32 = kn.ksd_and_grad(x.astype(np.float32), target)
    assert grad32.dtype == np.float32
    np.testing.assert_allclose(value32, value64, rtol=1e-6)
    np.testing.assert_allclose(grad32, grad64, rtol=1e-5, atol=1e-6)


def test_translation_of_target_and_particles_leaves_ksd_unchanged():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(15, 2))
    shift = np.array([3.0, -2.0])
    a = kn.ksd(x, kn.GaussianMixture([[0.0, 0.0], [1.0, 1.0]], [0.5, 1.0]), bw=0.7)
    b = kn.ksd(x + shift, kn.GaussianMixture([[0.0, 0.0], [1.0, 1.0]] + shift, [0.5, 1.0]), bw=0.7)
    np.testing.assert_allclose(a, b, rtol=1e-10)


def test_single_particle():
    target = kn.Gaussian(np.zeros(3), 2.0)
    x = np.array([[0.5, -1.0, 2.0]])
    value, grad = kn.ksd_and_grad(x, target, bw=1.5)
    s = target.score(x)
    # k_p(x, x) = |s|^2 + d / bw, and its gradient is 2 H s.
    np.testing.assert_allclose(value, (s**2).sum() + 3 / 1.5, rtol=1e-12)
    np.testing.assert_allclose(grad, 2 * target.hvp(x, s), rtol=1e-12)
