"""The KSD objective and its gradient: reference, finite differences, chain rule."""

import numpy as np
import pytest

import ksdnumba as kn
from ksdnumba.kernels import _reference as ref

from conftest import TARGET_KINDS, central_difference_gradient, make_targets

KERNEL_PARAMS = [
    ("gaussian", 0.8, 0.5),
    ("imq", 0.8, 0.5),
    ("imq", 2.0, 0.2),
    ("linear", 1.0, 0.5),
]
KERNEL_IDS = ["gaussian", "imq", "imq-b0.2", "linear"]


@pytest.mark.parametrize("kernel, bw, beta", KERNEL_PARAMS, ids=KERNEL_IDS)
@pytest.mark.parametrize("kind", TARGET_KINDS)
@pytest.mark.parametrize("d", [1, 2, 5])
def test_gradient_matches_finite_differences(kernel, bw, beta, kind, d):
    rng = np.random.default_rng(d)
    target = make_targets(d, rng)[kind]
    x = rng.normal(size=(7, d))
    _, grad = kn.ksd_and_grad(x, target, kernel=kernel, bw=bw, beta=beta)
    fd = central_difference_gradient(
        lambda z: kn.ksd(z, target, kernel=kernel, bw=bw, beta=beta), x
    )
    # Central differences with h = 1e-6 on an O(1) objective: error ~1e-10.
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())


@pytest.mark.parametrize("kernel, bw, beta", KERNEL_PARAMS, ids=KERNEL_IDS)
@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_value_and_gradient_match_dense_reference(kernel, bw, beta, kind):
    rng = np.random.default_rng(11)
    target = make_targets(3, rng)[kind]
    x = rng.normal(size=(40, 3))
    value, grad = kn.ksd_and_grad(x, target, kernel=kernel, bw=bw, beta=beta)
    expected_value = ref.ksd_v(kernel, x, target.score(x), bw, beta)
    np.testing.assert_allclose(value, expected_value, rtol=1e-10)
    expected = ref.ksd_v_grad(kernel, x, target, bw, beta)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


@pytest.mark.parametrize("kernel, bw, beta", KERNEL_PARAMS, ids=KERNEL_IDS)
def test_u_and_v_statistics_match_reference(kernel, bw, beta):
    rng = np.random.default_rng(2)
    target = make_targets(2, rng)["mixture-full"]
    x = rng.normal(size=(30, 2))
    s = target.score(x)
    kw = dict(kernel=kernel, bw=bw, beta=beta)
    np.testing.assert_allclose(
        kn.ksd(x, target, **kw), ref.ksd_v(kernel, x, s, bw, beta), rtol=1e-10
    )
    np.testing.assert_allclose(
        kn.ksd(x, target, statistic="u", **kw), ref.ksd_u(kernel, x, s, bw, beta), rtol=1e-10
    )


@pytest.mark.parametrize("kernel", ["gaussian", "imq", "linear"])
def test_u_statistic_is_near_zero_on_exact_samples(kernel):
    """On exact samples KSD^2 = 0, and U estimates it without bias."""
    d, n = 2, 3000
    target = kn.Gaussian(np.zeros(d), 1.0)
    x = target.sample(n, rng=0)
    u = kn.ksd(x, target, kernel=kernel, statistic="u")
    # Under p the U-statistic is degenerate: Var(U) ~ 2 E[k_p(X, X')^2] / n^2.
    # Estimate E[k_p^2] from the off-diagonal entries on a subset.
    K = ref.stein_matrix(kernel, x[:800], target.score(x[:800]))
    second_moment = (np.sum(K**2) - np.sum(np.diag(K) ** 2)) / (800 * 799)
    standard_error = np.sqrt(2 * second_moment / (n * (n - 1)))
    assert abs(u) < 4 * standard_error, (u, standard_error)
    # Shifted samples are detected: their U-statistic is many standard errors away.
    shifted = kn.ksd(x + 0.3, target, kernel=kernel, statistic="u")
    assert shifted > 10 * standard_error


@pytest.mark.parametrize("kernel", ["gaussian", "imq", "linear"])
def test_v_statistic_is_u_statistic_plus_diagonal(kernel):
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(500, rng=1)
    s = target.score(x)
    n = 500
    u = kn.ksd(x, target, kernel=kernel, statistic="u")
    v = kn.ksd(x, target, kernel=kernel)
    diagonal = np.diag(ref.stein_matrix(kernel, x, s)).sum()
    np.testing.assert_allclose(v, (u * n * (n - 1) + diagonal) / n**2, rtol=1e-10)


def test_linear_v_statistic_matches_dense_formula():
    """V = (|M|_F^2 + 2 n sum_i s_i.x_i) / n^2 + d with M = sum_i s_i x_i^T."""
    rng = np.random.default_rng(12)
    target = make_targets(3, rng)["mixture-diag"]
    x = rng.normal(size=(200, 3))
    s = target.score(x)
    M = s.T @ x
    expected = (np.sum(M**2) + 2 * 200 * np.sum(s * x)) / 200**2 + 3
    np.testing.assert_allclose(kn.ksd(x, target, kernel="linear"), expected, rtol=1e-12)
    # Dense double sum as a second, independent check.
    dense = np.mean((x @ x.T) * (s @ s.T) + (s * x).sum(1)[:, None] + (s * x).sum(1) + 3)
    np.testing.assert_allclose(kn.ksd(x, target, kernel="linear"), dense, rtol=1e-12)


def test_linear_kernel_ignores_bw():
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(50, rng=2)
    a = kn.ksd_and_grad(x, target, kernel="linear", bw=1.0)
    b = kn.ksd_and_grad(x, target, kernel="linear", bw=123.0)
    c = kn.ksd_and_grad(x, target, kernel="linear", bw="median")
    assert a[0] == b[0] == c[0]
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("kernel", ["gaussian", "imq"])
def test_median_bandwidth_is_resolved_at_x(kernel):
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(60, rng=3)
    bw = kn.median_bandwidth(x)
    assert kn.ksd(x, target, kernel=kernel, bw="median") == kn.ksd(x, target, kernel=kernel, bw=bw)
    value, grad = kn.ksd_and_grad(x, target, kernel=kernel, bw="median")
    value_bw, grad_bw = kn.ksd_and_grad(x, target, kernel=kernel, bw=bw)
    assert value == value_bw
    np.testing.assert_array_equal(grad, grad_bw)


def test_imq_beta_changes_the_kernel():
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(40, rng=4) + 0.5
    assert kn.ksd(x, target, kernel="imq", beta=0.2) != kn.ksd(x, target, kernel="imq", beta=0.8)


def test_ksd_grows_as_particles_move_away():
    target = kn.Gaussian(np.zeros(1), 1.0)
    x = target.sample(300, rng=1)
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


@pytest.mark.parametrize("kernel", ["gaussian", "imq"])
def test_translation_of_target_and_particles_leaves_ksd_unchanged(kernel):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(15, 2))
    shift = np.array([3.0, -2.0])
    means = np.array([[0.0, 0.0], [1.0, 1.0]])
    a = kn.ksd(x, kn.GaussianMixture(means, [0.5, 1.0]), kernel=kernel, bw=0.7)
    b = kn.ksd(x + shift, kn.GaussianMixture(means + shift, [0.5, 1.0]), kernel=kernel, bw=0.7)
    np.testing.assert_allclose(a, b, rtol=1e-10)


def test_single_particle():
    target = kn.Gaussian(np.zeros(3), 2.0)
    x = np.array([[0.5, -1.0, 2.0]])
    value, grad = kn.ksd_and_grad(x, target, bw=1.5)
    s = target.score(x)
    # k_p(x, x) = |s|^2 + d / bw, and its gradient is 2 H s.
    np.testing.assert_allclose(value, (s**2).sum() + 3 / 1.5, rtol=1e-12)
    np.testing.assert_allclose(grad, 2 * target.hvp(x, s), rtol=1e-12)


# ------------------------------------------------ the compiled path of diagonal mixtures


def _objective(x, target, kernel="gaussian", beta=0.5, backend="cpu"):
    from ksdnumba.objective import make_objective

    return make_objective(x, target, kernel, 0.4, beta, backend)[0]


@pytest.mark.parametrize("kernel, beta", [("gaussian", 0.5), ("imq", 0.5), ("imq", 0.2)])
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("covariances", ["isotropic", "diagonal"])
def test_fused_mixture_path_is_bit_identical_to_the_general_path(kernel, beta, d, covariances):
    rng = np.random.default_rng(d)
    cov = [0.5, 2.0] if covariances == "isotropic" else rng.uniform(0.3, 2.0, size=(2, d))
    target = kn.GaussianMixture(rng.normal(size=(2, d)), cov, weights=[0.3, 0.7])
    x = rng.normal(size=(40, d))
    fused = _objective(x, target, kernel, beta)
    general = _objective(x, target, kernel, beta)
    general._fused = None
    assert fused._fused is not None
    v1, g1 = fused.value_and_grad(x)
    v2, g2 = general.value_and_grad(x)
    assert v1 == v2
    np.testing.assert_array_equal(g1, g2)


def test_fused_path_only_where_it_applies(monkeypatch):
    from ksdnumba import objective

    x = np.random.default_rng(0).normal(size=(10, 2))
    mixture = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.3, 0.3])
    full = kn.GaussianMixture([[0.0, 0.0]], [[[1.0, 0.2], [0.2, 1.0]]])
    assert _objective(x, full)._fused is None
    assert _objective(x, mixture.tempered(0.5))._fused is None
    assert _objective(x, mixture, kernel="linear")._fused is None
    assert objective._fused_mixture(mixture, "gaussian", "cuda") is None

    def forbidden(*args):
        raise AssertionError("the compiled path ran where it should not")

    monkeypatch.setattr(objective, "_diagonal_mixture_objective", forbidden)
    big = np.random.default_rng(1).normal(size=(objective._cpu.SERIAL_MAX_N + 1, 2))
    _objective(big, mixture).value_and_grad(big)  # threads: the general path
    x32 = x.astype(np.float32)
    _objective(x32, mixture).value_and_grad(x32)


def test_fused_path_falls_back_when_not_finite(monkeypatch):
    from ksdnumba import objective

    x = np.random.default_rng(2).normal(size=(10, 2))
    target = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.3, 0.3])
    expected = _objective(x, target).value_and_grad(x)
    monkeypatch.setattr(
        objective, "_diagonal_mixture_objective", lambda x, *args: (np.nan, np.zeros_like(x))
    )
    value, grad = _objective(x, target).value_and_grad(x)
    assert value == expected[0]
    np.testing.assert_array_equal(grad, expected[1])


@pytest.mark.parametrize("statistic", ["v", "u"])
def test_ksd_needs_only_the_score(statistic):
    """The value uses the score alone: a target without hvp is measured as it is."""
    target = kn.Gaussian(np.array([0.5, -1.0]), np.array([1.0, 2.0]))

    class ScoreOnly:
        def score(self, x):
            return target.score(x)

    x = np.random.default_rng(3).normal(size=(40, 2))
    assert kn.ksd(x, ScoreOnly(), bw=0.7, statistic=statistic) == kn.ksd(
        x, target, bw=0.7, statistic=statistic
    )
    with pytest.raises(TypeError, match="has a score but no hvp"):
        kn.ksd_and_grad(x, ScoreOnly(), bw=0.7)
