"""Tests of ksdnumba.targets: scores and HVPs, densities, sampling, wrappers."""

import doctest

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats

from ksdnumba import targets as targets_module
from ksdnumba.targets import Gaussian, GaussianMixture, ScoreFunction, as_target
from ksdnumba.targets import _base as targets_base
from ksdnumba.targets import _bayes as targets_bayes
from ksdnumba.targets import _mixtures as targets_mixtures

from conftest import fd_directional, fd_gradient

DIMS = [1, 2, 3, 5]


# --------------------------------------------------------------------------- helpers


def make_target(kind, d, n_components=1, seed=0):
    """A target with well-conditioned random parameters (variances in [0.5, 2])."""
    rng = np.random.default_rng([seed, d, n_components])
    k = n_components
    if kind == "gauss-scalar":
        return Gaussian(rng.normal(size=d), rng.uniform(0.5, 2.0))
    if kind == "gauss-diag":
        return Gaussian(rng.normal(size=d), rng.uniform(0.5, 2.0, size=d))
    if kind == "gauss-full":
        a = 0.5 * rng.normal(size=(d, d))
        return Gaussian(rng.normal(size=d), a @ a.T + 0.5 * np.eye(d))
    means = 1.5 * rng.normal(size=(k, d))
    weights = rng.uniform(0.2, 1.0, size=k)
    if kind == "gmm-iso":
        covs = rng.uniform(0.5, 2.0, size=k)
    elif kind == "gmm-diag":
        covs = rng.uniform(0.5, 2.0, size=(k, d))
    elif kind == "gmm-full":
        a = 0.5 * rng.normal(size=(k, d, d))
        covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d)
    else:
        raise ValueError(kind)
    return GaussianMixture(means, covs, weights)


CASES = [(kind, d, 1) for kind in ("gauss-scalar", "gauss-diag", "gauss-full") for d in DIMS]
CASES += [
    (kind, d, k) for kind in ("gmm-iso", "gmm-diag", "gmm-full") for k in (1, 2, 3) for d in DIMS
]
CASE_IDS = [f"{kind}-d{d}-K{k}" for kind, d, k in CASES]


def points_and_directions(target, n=8, seed=1):
    """Points near the modes (samples, plus spread) and random directions."""
    rng = np.random.default_rng(seed)
    x = target.sample(n, rng=rng) + 0.3 * rng.normal(size=(n, target.n_dims))
    v = rng.normal(size=x.shape)
    return x, v


def assert_close_scaled(actual, expected, rtol, err_msg=""):
    """max |actual - expected| <= rtol * max |expected|: relative to the field's scale,
    so that entries that happen to be near 0 do not demand an absolute precision that
    finite differences cannot give."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, err_msg
    assert np.all(np.isfinite(actual)), err_msg
    scale = np.max(np.abs(expected))
    err = np.max(np.abs(actual - expected))
    assert err <= rtol * scale, f"{err_msg}: max error {err:.3g} > {rtol:g} * {scale:.3g}"


def full_covariances(target):
    """The (K, d, d) covariance matrices of a GaussianMixture, from its attributes."""
    k, d = target.n_components, target.n_dims
    cov = np.asarray(target.covariances)
    if target.covariance_type == "isotropic":
        return cov[:, None, None] * np.eye(d)
    if target.covariance_type == "diagonal":
        return np.stack([np.diag(c) for c in cov])
    assert cov.shape == (k, d, d)
    return cov


def textbook(target, x, v):
    """Score, HVP and log density from scipy densities and explicit inverses.

    The HVP is the textbook sum_k r_k(-P_k v + s_k (s_k.v)) - s (s.v), with the
    responsibilities as a ratio of densities: valid near the modes only.
    """
    covs = full_covariances(target)
    dens = np.stack(
        [
            w * stats.multivariate_normal(m, c).pdf(x).reshape(len(x))
            for w, m, c in zip(target.weights, target.means, covs, strict=True)
        ]
    )
    resp = dens / dens.sum(axis=0)
    precs = np.linalg.inv(covs)
    comp = -np.einsum("kij,knj->kni", precs, x[None] - target.means[:, None])
    s = np.einsum("kn,kni->ni", resp, comp)
    hv = np.einsum("kn,kni->ni", resp, -np.einsum("kij,nj->kni", precs, v))
    hv += np.einsum("kn,kni,kn->ni", resp, comp, np.einsum("kni,ni->kn", comp, v))
    hv -= s * np.sum(s * v, axis=1, keepdims=True)
    return s, hv, np.log(dens.sum(axis=0))


# ------------------------------------------------------------------------- derivatives


@pytest.mark.parametrize("kind, d, k", CASES, ids=CASE_IDS)
def test_score_matches_finite_differences_of_logpdf(kind, d, k):
    # h = 1e-5: logpdf is O(10) so round-off is ~1e-15 * 10 / 2e-5 ~ 5e-10, and the
    # truncation h^2/6 |d^3 log p| is below 1e-9 for variances >= 0.5 (0 for Gaussians);
    # rtol 1e-6 of the score's scale leaves a margin of 100 or more.
    target = make_target(kind, d, k)
    x, _ = points_and_directions(target)
    assert_close_scaled(target.score(x), fd_gradient(target.logpdf, x, 1e-5), 1e-6, kind)


@pytest.mark.parametrize("kind, d, k", CASES, ids=CASE_IDS)
def test_hvp_matches_finite_differences_of_score(kind, d, k):
    # h = 1e-6 along |v| ~ sqrt(d): round-off ~1e-16 * |s| / 1e-6 ~ 1e-9 with
    # |s| <~ 10, truncation ~h^2 |d^3 s| ~ 1e-11: well inside rtol 1e-7 of the
    # Hessian's scale (~1).
    target = make_target(kind, d, k)
    x, v = points_and_directions(target)
    assert_close_scaled(target.hvp(x, v), fd_directional(target.score, x, v, 1e-6), 1e-7, kind)


@pytest.mark.parametrize("kind, d, k", CASES, ids=CASE_IDS)
def test_score_and_hvp_is_score_and_hvp(kind, d, k):
    target = make_target(kind, d, k)
    x, v = points_and_directions(target)
    for t in (target, target.tempered(0.3)):
        score, hvp = t.score_and_hvp(x)
        assert_array_equal(score, t.score(x))
        assert_array_equal(hvp(v), t.hvp(x, v))


def test_score_and_hvp_absent_when_the_base_has_none():
    wrapped = ScoreFunction(lambda x: -x).tempered(0.5)
    assert not hasattr(wrapped, "score_and_hvp")


@pytest.mark.parametrize("kind, d, k", CASES, ids=CASE_IDS)
def test_matches_textbook_formulas_near_modes(kind, d, k):
    # Independent code (scipy densities, explicit inverses): only rounding separates
    # the two, so 1e-10 of the scale is ample.
    target = make_target(kind, d, k)
    x, v = points_and_directions(target)
    s, hv, logp = textbook(target, x, v)
    assert_close_scaled(target.score(x), s, 1e-10, "score")
    assert_close_scaled(target.hvp(x, v), hv, 1e-10, "hvp")
    assert_allclose(target.logpdf(x), logp, rtol=1e-10)


def test_hvp_of_one_component_is_exactly_minus_precision_times_v():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, 3))
    cov = a @ a.T + np.eye(3)
    x, v = 100.0 * rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    g = Gaussian(np.zeros(3), cov)
    assert_array_equal(g.hvp(x, v), -(v @ g._precision[0]))
    assert_allclose(g.hvp(x, v), -np.linalg.solve(cov, v.T).T, rtol=1e-12)
    diag = Gaussian(np.zeros(3), [1.0, 2.0, 4.0])
    assert_array_equal(diag.hvp(x, v), -v / np.array([1.0, 2.0, 4.0]))


# --------------------------------------------------------------------------- logpdf


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("form", ["scalar", "diag", "full"])
def test_gaussian_logpdf_matches_scipy(form, d):
    rng = np.random.default_rng(d)
    mean = rng.normal(size=d)
    if form == "scalar":
        cov = 0.7
    elif form == "diag":
        cov = rng.uniform(0.5, 2.0, size=d)
    else:
        a = rng.normal(size=(d, d))
        cov = a @ a.T + 0.5 * np.eye(d)
    x = rng.normal(size=(10, d))
    # scipy reads a scalar as sigma^2 I and a 1-D array as a diagonal, as we do.
    expected = stats.multivariate_normal(mean, cov).logpdf(x).reshape(10)
    assert_allclose(Gaussian(mean, cov).logpdf(x), expected, rtol=1e-12)


@pytest.mark.parametrize("kind", ["gmm-iso", "gmm-diag", "gmm-full"])
@pytest.mark.parametrize("d", DIMS)
def test_mixture_logpdf_matches_log_of_sum_of_scipy_densities(kind, d):
    target = make_target(kind, d, 3)
    x, _ = points_and_directions(target)
    covs = full_covariances(target)
    dens = sum(
        w * stats.multivariate_normal(m, c).pdf(x).reshape(len(x))
        for w, m, c in zip(target.weights, target.means, covs, strict=True)
    )
    assert_allclose(target.logpdf(x), np.log(dens), rtol=1e-12)


def test_logpdf_integrates_to_one_in_1d():
    gm = GaussianMixture([[-1.0], [2.0]], [0.3, 1.5], weights=[1.0, 3.0])
    grid = np.linspace(-15.0, 15.0, 30001)[:, None]
    mass = np.trapezoid(np.exp(gm.logpdf(grid)), grid[:, 0])
    assert_allclose(mass, 1.0, rtol=1e-10)


def test_zero_weight_component_is_ignored():
    gm = GaussianMixture([[0.0, 0.0], [5.0, 5.0]], [1.0, 1.0], weights=[2.0, 0.0])
    g = Gaussian([0.0, 0.0], 1.0)
    x, v = np.random.default_rng(0).normal(size=(2, 4, 2))
    assert_allclose(gm.score(x), g.score(x), rtol=1e-14)
    assert_allclose(gm.hvp(x, v), g.hvp(x, v), rtol=1e-14)
    assert_allclose(gm.logpdf(x), g.logpdf(x), rtol=1e-14)
    assert np.all(gm.sample(100, rng=0)[:, 0] < 4.0)


# --------------------------------------------------------------------------- far field

FAR = np.array([[1000.0, 0.0], [0.0, 1000.0], [-1e3, 1e3]])


def test_far_field_is_finite_and_follows_the_nearest_mode():
    gm = GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.01, 0.01])
    v = np.array([[1.0, 2.0], [-0.5, 1.0], [3.0, -1.0]])
    s, hv, logp = gm.score(FAR), gm.hvp(FAR, v), gm.logpdf(FAR)
    assert np.all(np.isfinite(s)) and np.all(np.isfinite(hv)) and np.all(np.isfinite(logp))
    # (0, 1000) is equidistant from both means: both responsibilities are 1/2 and the
    # score points to their midpoint.
    nearest = np.array([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0]])
    assert_allclose(s, -(FAR - nearest) / 0.01, rtol=1e-8)
    # Where one mode takes all the mass the Hessian is its precision alone.
    assert_allclose(hv[[0, 2]], -v[[0, 2]] / 0.01, rtol=1e-8)
    # At the midpoint it adds r0 r1 (s0 - s1)(s0 - s1)^T, with s0 - s1 = (-200, 0).
    assert_allclose(hv[1], -v[1] / 0.01 + 0.25 * 4e4 * np.array([v[1, 0], 0.0]), rtol=1e-8)
    assert_allclose(
        logp[0],
        stats.multivariate_normal([1.0, 0.0], 0.01).logpdf(FAR[0]) + np.log(0.5),
        rtol=1e-12,
    )


@pytest.mark.parametrize("form", ["diag", "full"])
def test_far_field_is_finite_for_other_covariance_forms(form):
    covs = (
        [[0.01, 0.02], [0.01, 0.02]]
        if form == "diag"
        else [[[0.01, 0.005], [0.005, 0.02]], [[0.02, 0.0], [0.0, 0.01]]]
    )
    gm = GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], covs)
    v = np.ones_like(FAR)
    for value in (gm.score(FAR), gm.hvp(FAR, v), gm.logpdf(FAR)):
        assert np.all(np.isfinite(value))


def naive_seed_score(x, centers, var, weights):
    """The seed's make_mog score: a ratio of raw exponentials (0/0 on underflow)."""
    den = 0.0
    top = 0.0
    with np.errstate(all="ignore"):
        for c, w in zip(centers, weights, strict=True):
            e = np.exp(-0.5 * ((x - c) ** 2).sum(axis=1) / var)
            den = den + w * e
            top = top + w * e[:, None] * (x - c) / var
        return -top / den[:, None]


def test_seed_mixture_nan_is_fixed():
    centers = np.array([[-1.0, 0.0], [1.0, 0.0]])
    gm = GaussianMixture(centers, [0.1, 0.1])
    for point, dtype in (([[10.0, 0.0]], np.float32), ([[40.0, 0.0]], np.float64)):
        x = np.array(point)
        # The seed ran in float32 (torch's default): exp(-405) underflows there at
        # (10, 0); in float64 the same 0/0 comes at (40, 0).
        naive = naive_seed_score(
            x.astype(dtype),
            centers.astype(dtype),
            dtype(0.1),
            np.array([0.5, 0.5], dtype),
        )
        assert np.all(np.isnan(naive))
        assert_allclose(gm.score(x), -(x - centers[1]) / 0.1, rtol=1e-12)
        assert np.all(np.isfinite(gm.hvp(x, np.ones_like(x))))


# --------------------------------------------------------------------------- sampling


def mixture_moments(target):
    covs = full_covariances(target)
    w, m = target.weights, target.means
    mean = w @ m
    second = np.einsum("k,kij->ij", w, covs + np.einsum("ki,kj->kij", m, m))
    return mean, second - np.outer(mean, mean)


@pytest.mark.parametrize(
    "kind, d, k",
    [
        ("gauss-full", 3, 1),
        ("gauss-diag", 2, 1),
        ("gmm-iso", 2, 3),
        ("gmm-diag", 3, 2),
        ("gmm-full", 2, 3),
    ],
)
def test_sample_moments_match_within_five_standard_errors(kind, d, k):
    target = make_target(kind, d, k)
    n = 20000
    x = target.sample(n, rng=12345)
    assert x.shape == (n, d) and x.dtype == np.float64
    mean, cov = mixture_moments(target)
    emp_mean = x.mean(axis=0)
    se_mean = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(emp_mean - mean) < 5 * se_mean)
    centred = x - emp_mean
    products = centred[:, :, None] * centred[:, None, :]
    se_cov = products.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(products.mean(axis=0) - cov) < 5 * se_cov)


def test_sample_is_reproducible_and_accepts_a_generator():
    gm = make_target("gmm-full", 3, 2)
    a = gm.sample(50, rng=7)
    assert_array_equal(a, gm.sample(50, rng=7))
    assert_array_equal(a, gm.sample(50, rng=np.random.default_rng(7)))
    assert not np.array_equal(a, gm.sample(50, rng=8))
    rng = np.random.default_rng(0)
    assert not np.array_equal(gm.sample(5, rng=rng), gm.sample(5, rng=rng))
    assert gm.sample(0).shape == (0, 3)
    assert gm.sample(3).shape == (3, 3)


def test_sample_rejects_bad_arguments():
    g = Gaussian([0.0], 1.0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        g.sample(-1)
    with pytest.raises(TypeError, match="n must be an integer"):
        g.sample(2.5)
    with pytest.raises(TypeError, match="rng must be"):
        g.sample(2, rng="seed")


# --------------------------------------------------------------------------- tempering


@pytest.mark.parametrize("kind, d, k", [("gmm-full", 2, 3), ("gmm-iso", 3, 2)])
def test_tempered_mixture_scales_score_hvp_and_logpdf(kind, d, k):
    target = make_target(kind, d, k)
    x, v = points_and_directions(target)
    hot = target.tempered(0.25)
    assert_allclose(hot.score(x), 0.25 * target.score(x), rtol=1e-15)
    assert_allclose(hot.hvp(x, v), 0.25 * target.hvp(x, v), rtol=1e-15)
    assert_allclose(hot.logpdf(x), 0.25 * target.logpdf(x), rtol=1e-15)
    twice = hot.tempered(3.0)
    assert twice.beta == 0.75 and twice.base is target
    assert_allclose(twice.score(x), 0.75 * target.score(x), rtol=1e-15)
    assert not hasattr(hot, "sample")
    with pytest.raises(AttributeError, match="no exact sampler"):
        hot.sample(10)
    assert as_target(hot) is hot


@pytest.mark.parametrize("cov", [2.0, [1.0, 3.0], [[2.0, 0.5], [0.5, 1.0]]])
def test_gaussian_tempered_is_an_exact_gaussian(cov):
    g = Gaussian([1.0, -1.0], cov)
    hot = g.tempered(4.0)
    assert type(hot) is Gaussian
    assert_allclose(hot.covariance, np.asarray(cov) / 4.0, rtol=1e-15)
    assert_array_equal(hot.mean, g.mean)
    x, v = np.random.default_rng(0).normal(size=(2, 5, 2))
    assert_allclose(hot.score(x), 4.0 * g.score(x), rtol=1e-14)
    assert_allclose(hot.hvp(x, v), 4.0 * g.hvp(x, v), rtol=1e-14)
    assert hot.sample(4, rng=0).shape == (4, 2)


@pytest.mark.parametrize("beta", [0.0, -1.0, np.inf, np.nan])
def test_tempered_rejects_bad_beta(beta):
    targets = [
        Gaussian([0.0], 1.0),
        make_target("gmm-iso", 2, 2),
        ScoreFunction(lambda x: -x),
    ]
    for target in targets:
        with pytest.raises(ValueError, match="beta must be positive and finite"):
            target.tempered(beta)
    with pytest.raises(ValueError, match="beta must be positive and finite"):
        targets[1].tempered(2.0).tempered(beta)


def test_tempered_rejects_non_numeric_beta():
    with pytest.raises(TypeError, match="beta must be a positive real number"):
        Gaussian([0.0], 1.0).tempered("hot")


def test_tempered_score_function_has_no_logpdf():
    t = ScoreFunction(lambda x: -x).tempered(2.0)
    assert not hasattr(t, "logpdf")
    with pytest.raises(AttributeError, match="no logpdf"):
        t.logpdf(np.zeros((1, 1)))
    assert_allclose(t.hvp(np.ones((2, 2)), np.ones((2, 2))), -2.0 * np.ones((2, 2)), rtol=1e-9)


# ----------------------------------------------------------------------- ScoreFunction


@pytest.mark.parametrize(
    "kind, d, k",
    [("gmm-full", 1, 2), ("gmm-full", 3, 3), ("gmm-diag", 5, 2), ("gauss-full", 2, 1)],
)
def test_score_function_fd_hvp_matches_analytic_hvp(kind, d, k):
    # The default step gives ~1e-10 relative error at unit scale; 1e-7 leaves room for
    # the larger third derivatives of a mixture between its modes.
    target = make_target(kind, d, k)
    x, v = points_and_directions(target)
    sf = ScoreFunction(target.score)
    assert_close_scaled(sf.hvp(x, v), target.hvp(x, v), 1e-7, kind)
    assert_array_equal(sf.score(x), target.score(x))


def test_score_function_fd_step_follows_the_scale_of_x():
    g = Gaussian([1e4, -2e4], [[50.0, 10.0], [10.0, 80.0]])
    x, v = g.sample(6, rng=0), np.random.default_rng(1).normal(size=(6, 2))
    assert_close_scaled(ScoreFunction(g.score).hvp(x, v), g.hvp(x, v), 1e-7)
    # A tiny or huge v changes the direction's length, not the step taken.
    for scale in (1e-200, 1e200):
        assert_close_scaled(ScoreFunction(g.score).hvp(x, scale * v), g.hvp(x, scale * v), 1e-7)


def test_score_function_zero_direction_gives_zero():
    calls = []

    def score(x):
        calls.append(1)
        return -(x**3)

    sf = ScoreFunction(score)
    x = np.array([[1.0, 2.0], [0.5, -1.0]])
    assert_array_equal(sf.hvp(x, np.zeros_like(x)), np.zeros_like(x))
    assert calls == []  # no evaluation when there is nothing to differentiate
    out = sf.hvp(x, np.array([[0.0, 0.0], [1.0, 1.0]]))
    assert_array_equal(out[0], [0.0, 0.0])
    assert_allclose(out[1], -3 * x[1] ** 2, rtol=1e-9)
    assert len(calls) == 2  # two score evaluations per finite-difference hvp


def test_score_function_uses_given_hvp():
    seen = []

    def hvp(x, v):
        seen.append((x, v))
        return 7.0 * v

    sf = ScoreFunction(lambda x: -x, hvp=hvp)
    x, v = np.ones((3, 2)), np.arange(6.0).reshape(3, 2)
    assert_array_equal(sf.hvp(x, v), 7.0 * v)
    assert len(seen) == 1
    assert not hasattr(sf, "logpdf") and not hasattr(sf, "sample")


def test_score_function_eps_default_and_custom():
    assert ScoreFunction(lambda x: -x).eps == pytest.approx(np.finfo(np.float64).eps ** (1 / 3))
    assert ScoreFunction(lambda x: -x, eps=1e-4).eps == 1e-4


@pytest.mark.parametrize("eps", [0.0, -1e-6, np.inf, np.nan])
def test_score_function_rejects_bad_eps(eps):
    with pytest.raises(ValueError, match="eps must be positive and finite"):
        ScoreFunction(lambda x: -x, eps=eps)


def test_score_function_rejects_non_callables():
    with pytest.raises(TypeError, match="score must be callable"):
        ScoreFunction(np.zeros(3))
    with pytest.raises(TypeError, match="hvp must be None or callable"):
        ScoreFunction(lambda x: -x, hvp=3.0)
    with pytest.raises(TypeError, match="eps must be a positive real number"):
        ScoreFunction(lambda x: -x, eps="small")


def test_score_function_checks_shapes():
    sf = ScoreFunction(lambda x: -x.sum(axis=1))
    with pytest.raises(ValueError, match=r"score function returned shape \(3,\)"):
        sf.score(np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"score function returned shape \(3,\)"):
        sf.hvp(np.ones((3, 2)), np.ones((3, 2)))
    bad_hvp = ScoreFunction(lambda x: -x, hvp=lambda x, v: v[:, :1])
    with pytest.raises(ValueError, match=r"hvp function returned shape \(3, 1\)"):
        bad_hvp.hvp(np.ones((3, 2)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        ScoreFunction(lambda x: -x).hvp(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"v must have the same shape as x \(3, 2\)"):
        ScoreFunction(lambda x: -x).hvp(np.ones((3, 2)), np.ones((2, 2)))


# --------------------------------------------------------------------------- as_target


def test_as_target_passes_targets_through_and_wraps_callables():
    g = Gaussian([0.0, 0.0], 1.0)
    assert as_target(g) is g
    sf = ScoreFunction(g.score)
    assert as_target(sf) is sf
    wrapped = as_target(g.score)
    assert isinstance(wrapped, ScoreFunction)
    x, v = np.ones((2, 2)), np.ones((2, 2))
    assert_allclose(wrapped.hvp(x, v), -v, rtol=1e-9)


def test_as_target_rejects_what_it_cannot_use():
    with pytest.raises(TypeError, match=r"must be an object with score.*or a callable"):
        as_target(object())
    with pytest.raises(TypeError, match=r"must be an object with score.*or a callable"):
        as_target(np.zeros((2, 2)))

    class OnlyScore:
        def score(self, x):
            return -x

    with pytest.raises(TypeError, match=r"has a score but no hvp.*ScoreFunction\(target.score\)"):
        as_target(OnlyScore())
    with pytest.raises(TypeError, match="must be an instance, got the class Gaussian"):
        as_target(Gaussian)


# --------------------------------------------------------------------------- validation

GOOD_MEANS = [[0.0, 0.0], [1.0, 1.0]]


@pytest.mark.parametrize(
    "means, covariances, weights, match",
    [
        ([0.0, 1.0], [1.0, 1.0], None, r"means must be a 2-D array .* got 1-D"),
        (np.zeros((0, 2)), [], None, "means must not be empty"),
        ([[0.0, np.nan], [1.0, 1.0]], [1.0, 1.0], None, "means contains non-finite"),
        (
            GOOD_MEANS,
            [1.0, 1.0, 1.0],
            None,
            r"covariances must have shape \(2,\) .* \(2, 2\) .* \(2, 2, 2\) .* "
            r"got shape \(3,\)",
        ),
        (
            GOOD_MEANS,
            np.ones((2, 3)),
            None,
            r"covariances must have shape .* got shape \(2, 3\)",
        ),
        (GOOD_MEANS, np.ones((2, 2, 3)), None, r"covariances must have shape"),
        (GOOD_MEANS, [1.0, 0.0], None, "covariances must contain positive variances"),
        (
            GOOD_MEANS,
            [[1.0, 1.0], [1.0, -2.0]],
            None,
            "covariances must contain positive",
        ),
        (GOOD_MEANS, [1.0, np.inf], None, "covariances contains non-finite"),
        (
            GOOD_MEANS,
            [np.eye(2), [[1.0, 0.1], [0.0, 1.0]]],
            None,
            r"covariances\[1\] is not symmetric",
        ),
        (
            GOOD_MEANS,
            [[[1.0, 2.0], [2.0, 1.0]], np.eye(2)],
            None,
            r"covariances\[0\] is not positive definite",
        ),
        (
            GOOD_MEANS,
            [np.eye(2), np.zeros((2, 2))],
            None,
            r"covariances\[1\] is not positive definite",
        ),
        (GOOD_MEANS, [1.0, 1.0], [1.0, 1.0, 1.0], r"weights must have shape \(2,\)"),
        (GOOD_MEANS, [1.0, 1.0], [1.0, -0.5], "weights must be non-negative"),
        (GOOD_MEANS, [1.0, 1.0], [1.0, np.nan], "weights contains non-finite"),
        (GOOD_MEANS, [1.0, 1.0], [0.0, 0.0], "weights must have a positive sum"),
    ],
)
def test_gaussian_mixture_validation(means, covariances, weights, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixture(means, covariances, weights)


def test_symmetry_tolerance_is_relative():
    # Asymmetry at rounding level (as from a @ a.T) passes and is removed.
    c = np.array([[1e6, 3e5], [3e5 * (1 + 1e-14), 2e6]])
    gm = GaussianMixture([[0.0, 0.0]], [c])
    assert_array_equal(gm.covariances[0], gm.covariances[0].T)


@pytest.mark.parametrize(
    "mean, covariance, match",
    [
        (
            [[0.0, 0.0]],
            1.0,
            r"mean must be a non-empty 1-D array .* got shape \(1, 2\)",
        ),
        ([], 1.0, "mean must be a non-empty 1-D array"),
        ([0.0, np.inf], 1.0, "mean contains non-finite"),
        (
            [0.0, 0.0],
            [1.0, 1.0, 1.0],
            r"covariance must be a scalar .* \(2,\) .* \(2, 2\) .* got shape \(3,\)",
        ),
        ([0.0, 0.0], np.ones((2, 2, 1)), "covariance must be a scalar"),
        ([0.0, 0.0], -1.0, "covariance must contain positive variances"),
        ([0.0, 0.0], [1.0, 0.0], "covariance must contain positive variances"),
        ([0.0, 0.0], np.nan, "covariance contains non-finite"),
        ([0.0, 0.0], [[1.0, 0.5], [0.4, 1.0]], "covariance is not symmetric"),
        ([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], "covariance is not positive definite"),
    ],
)
def test_gaussian_validation(mean, covariance, match):
    with pytest.raises(ValueError, match=match):
        Gaussian(mean, covariance)


@pytest.mark.parametrize("method", ["score", "logpdf", "hvp"])
def test_methods_check_the_shape_of_x(method):
    gm = make_target("gmm-diag", 2, 2)

    def call(x, v=None):
        args = (x,) if method != "hvp" else (x, np.ones_like(x) if v is None else v)
        return getattr(gm, method)(*args)

    with pytest.raises(ValueError, match=r"x has 3 columns but the target has n_dims=2"):
        call(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"x must be a 2-D array of shape \(n, 2\), got 1-D"):
        call(np.ones(2))
    if method == "hvp":
        with pytest.raises(ValueError, match=r"v must have the same shape as x \(4, 2\)"):
            call(np.ones((4, 2)), np.ones((4, 1)))


def test_attributes_and_integer_input():
    gm = GaussianMixture([[0, 0], [2, 2]], np.ones((2, 2)), weights=[1, 3])
    assert gm.n_components == 2 and gm.n_dims == 2
    assert gm.covariance_type == "diagonal"
    assert_allclose(gm.weights, [0.25, 0.75])
    assert gm.means.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        gm.means[0, 0] = 5.0
    # Integer particles are converted, not truncated.
    assert_allclose(gm.score(np.array([[1, 1]])), gm.score(np.array([[1.0, 1.0]])))
    g = Gaussian([0.0, 1.0], 2.0)
    assert g.covariance == 2.0 and g.covariance_type == "isotropic"
    assert_array_equal(g.mean, [0.0, 1.0])
    assert g.n_components == 1 and isinstance(g, GaussianMixture)
    assert "n_dims=2" in repr(g) and "n_components=2" in repr(gm)


def test_module_exports_and_doctests():
    assert set(targets_module.__all__) == {
        "BayesianICA",
        "BayesianLogisticRegression",
        "GaussianMixture",
        "Gaussian",
        "PyMCTarget",
        "ScoreFunction",
        "as_target",
        "from_pymc",
    }
    attempted = failed = 0
    for module in (targets_base, targets_mixtures, targets_bayes):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        attempted += result.attempted
        failed += result.failed
    assert attempted > 20 and failed == 0
