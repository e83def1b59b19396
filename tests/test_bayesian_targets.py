"""Tests of the Bayesian targets, BayesianLogisticRegression and BayesianICA, their data
and the Amari distance.

Scores are checked against central differences of ``logpdf`` and HVPs against
central differences of ``score``; the log density against a direct
implementation from scipy.stats. Central differences of step h on a function
of scale F err by about h^2 F''' (truncation) plus 1e-16 F / h (round-off):
with h = 1e-5 and the values of order 10-100 here, well under 1e-6 relative
to the scale of the derivative, the tolerance used.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import special, stats

import ksdnumba as kn
from ksdnumba import amari_distance
from ksdnumba.datasets import breast_cancer, laplace_mixtures

from conftest import fd_directional, fd_gradient

FD_STEP = 1e-5
FD_RTOL = 1e-6


def assert_close_scaled(actual, expected, rtol=FD_RTOL):
    """max |actual - expected| <= rtol * max |expected|."""
    scale = np.max(np.abs(expected))
    err = np.max(np.abs(actual - expected))
    assert err <= rtol * scale, f"max error {err:.3g} > {rtol:g} * {scale:.3g}"


def logistic_problem(n_samples=40, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([np.ones(n_samples), rng.normal(size=(n_samples, n_features - 1))])
    w_true = rng.normal(size=n_features)
    y = (rng.uniform(size=n_samples) < special.expit(X @ w_true)).astype(int)
    return X, y


def logistic_points(target, n=6, seed=1):
    rng = np.random.default_rng(seed)
    theta = np.column_stack(
        [rng.normal(size=(n, target.n_features)), rng.normal(scale=0.7, size=n)]
    )
    return theta, rng.normal(size=theta.shape)


# ------------------------------------------------------- BayesianLogisticRegression


def direct_logpdf(theta, X, y, a0, b0):
    """log p(y | w) + log N(w; 0, I / alpha) + log Gamma(alpha; a0, rate b0) + log alpha."""
    out = []
    for row in theta:
        w, z = row[:-1], row[-1]
        alpha = np.exp(z)
        loglik = stats.bernoulli.logpmf(y, special.expit(X @ w)).sum()
        log_prior_w = stats.norm.logpdf(w, scale=1.0 / np.sqrt(alpha)).sum()
        log_prior_alpha = stats.gamma.logpdf(alpha, a0, scale=1.0 / b0)
        out.append(loglik + log_prior_w + log_prior_alpha + z)  # + log |d alpha / dz|
    return np.array(out)


@pytest.mark.parametrize("a0, b0", [(1.0, 0.01), (2.5, 3.0)])
def test_logistic_logpdf_matches_direct_implementation(a0, b0):
    X, y = logistic_problem()
    target = kn.BayesianLogisticRegression(X, y, a0=a0, b0=b0)
    theta, _ = logistic_points(target)
    assert_allclose(target.logpdf(theta), direct_logpdf(theta, X, y, a0, b0), rtol=1e-12)


@pytest.mark.parametrize("n_features", [1, 3, 6])
def test_logistic_score_matches_finite_differences(n_features):
    X, y = logistic_problem(n_features=n_features, seed=n_features)
    target = kn.BayesianLogisticRegression(X, y, a0=1.5, b0=0.5)
    theta, _ = logistic_points(target)
    assert_close_scaled(target.score(theta), fd_gradient(target.logpdf, theta, FD_STEP))


@pytest.mark.parametrize("n_features", [1, 3, 6])
def test_logistic_hvp_matches_finite_differences(n_features):
    X, y = logistic_problem(n_features=n_features, seed=n_features)
    target = kn.BayesianLogisticRegression(X, y, a0=1.5, b0=0.5)
    theta, v = logistic_points(target)
    assert_close_scaled(target.hvp(theta, v), fd_directional(target.score, theta, v, FD_STEP))


def test_logistic_on_real_data_matches_finite_differences():
    X, _, y, _ = breast_cancer(rng=0)
    target = kn.BayesianLogisticRegression(X, y)
    rng = np.random.default_rng(2)
    theta = np.column_stack([0.3 * rng.normal(size=(3, target.n_features)), rng.normal(size=3)])
    v = rng.normal(size=theta.shape)
    assert_close_scaled(target.score(theta), fd_gradient(target.logpdf, theta, FD_STEP))
    assert_close_scaled(target.hvp(theta, v), fd_directional(target.score, theta, v, FD_STEP))


def test_logistic_hessian_is_symmetric():
    X, y = logistic_problem()
    target = kn.BayesianLogisticRegression(X, y)
    theta, _ = logistic_points(target, n=1)
    d = target.n_dims
    hess = np.column_stack([target.hvp(theta, np.eye(d)[[j]])[0] for j in range(d)])
    assert_allclose(hess, hess.T, rtol=1e-12, atol=1e-12)


def test_logistic_score_and_hvp_agree_with_score_and_hvp():
    X, y = logistic_problem()
    target = kn.BayesianLogisticRegression(X, y)
    theta, v = logistic_points(target)
    score, hvp = target.score_and_hvp(theta)
    assert_allclose(score, target.score(theta), rtol=0, atol=0)
    assert_allclose(hvp(v), target.hvp(theta, v), rtol=0, atol=0)


def test_logistic_tempered():
    X, y = logistic_problem()
    target = kn.BayesianLogisticRegression(X, y)
    theta, v = logistic_points(target)
    hot = target.tempered(0.25)
    assert_allclose(hot.score(theta), 0.25 * target.score(theta))
    assert_allclose(hot.hvp(theta, v), 0.25 * target.hvp(theta, v))
    assert_allclose(hot.logpdf(theta), 0.25 * target.logpdf(theta))


def test_logistic_stays_finite_far_out():
    X, y = logistic_problem()
    target = kn.BayesianLogisticRegression(X, y)
    theta = np.array([[300.0, -300.0, 300.0, 2.0], [-1e3, 1e3, 0.0, -5.0]])
    for values in (
        target.logpdf(theta),
        target.score(theta),
        target.hvp(theta, np.ones_like(theta)),
    ):
        assert np.all(np.isfinite(values))


def test_logistic_predict_proba_and_accuracy():
    X, y = logistic_problem()
    target = kn.BayesianLogisticRegression(X, y)
    theta, _ = logistic_points(target, n=5)
    proba = target.predict_proba(theta, X)
    expected = np.mean([special.expit(X @ row[:-1]) for row in theta], axis=0)
    assert_allclose(proba, expected, rtol=1e-14)
    assert target.accuracy(theta, X, y) == np.mean((expected > 0.5) == (y == 1))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"X": np.zeros(5)}, ValueError, "X must be a 2-D array"),
        ({"X": np.full((5, 2), np.nan)}, ValueError, "non-finite"),
        ({"y": [0, 1, 2, 0, 1]}, ValueError, "labels 0 and 1 only"),
        ({"y": [0, 1]}, ValueError, r"shape \(5,\)"),
        ({"y": ["a"] * 5}, ValueError, "labels 0 and 1"),
        ({"a0": 0.0}, ValueError, "a0 must be positive"),
        ({"b0": -1.0}, ValueError, "b0 must be positive"),
        ({"b0": "1"}, TypeError, "b0 must be"),
    ],
)
def test_logistic_errors(kwargs, error, match):
    args = {"X": np.ones((5, 2)), "y": [0, 1, 1, 0, 1], **kwargs}
    with pytest.raises(error, match=match):
        kn.BayesianLogisticRegression(**args)


def test_logistic_wrong_shapes():
    target = kn.BayesianLogisticRegression(np.ones((5, 2)), [0, 1, 1, 0, 1])
    with pytest.raises(ValueError, match="n_dims=3"):
        target.score(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="same shape"):
        target.hvp(np.zeros((2, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="n_features=2"):
        target.predict_proba(np.zeros((2, 3)), np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        target.accuracy(np.zeros((2, 3)), np.ones((4, 2)), [0, 1])


# ---------------------------------------------------------------------- breast_cancer


def test_breast_cancer_split():
    X_train, X_test, y_train, y_test = breast_cancer(test_fraction=0.2, rng=3)
    assert X_train.shape == (455, 31) and X_test.shape == (114, 31)
    assert np.all(X_train[:, 0] == 1.0) and np.all(X_test[:, 0] == 1.0)
    assert_allclose(X_train[:, 1:].mean(axis=0), 0.0, atol=1e-12)
    assert_allclose(X_train[:, 1:].std(axis=0), 1.0, rtol=1e-12)
    labels = np.concatenate([y_train, y_test])
    assert set(np.unique(labels)) == {0, 1}
    assert np.sum(labels == 1) == 357 and np.sum(labels == 0) == 212  # benign, malignant
    again = breast_cancer(test_fraction=0.2, rng=3)
    assert all(
        np.array_equal(a, b) for a, b in zip(again, (X_train, X_test, y_train, y_test), strict=True)
    )


@pytest.mark.parametrize(
    "fraction, error",
    [(0.0, ValueError), (1.0, ValueError), (1e-4, ValueError), ("0.5", TypeError)],
)
def test_breast_cancer_errors(fraction, error):
    with pytest.raises(error, match="test_fraction"):
        breast_cancer(test_fraction=fraction)


# ------------------------------------------------------------- claim of the example


def test_logistic_regression_claim_beats_majority_class():
    # plot_logistic_regression.py, with 20 particles and 200 iterations: the
    # posterior predictive of KSD descent beats the majority class on the test
    # set by a wide margin (logistic regression reaches about 0.97 here).
    X_train, X_test, y_train, y_test = breast_cancer(rng=0)
    target = kn.BayesianLogisticRegression(X_train, y_train)
    rng = np.random.default_rng(0)
    x0 = np.column_stack([rng.standard_normal((20, target.n_features)), np.zeros(20)])
    res = kn.ksdd_lbfgs(x0, target, bw="median", max_iter=200)
    majority = max(y_test.mean(), 1 - y_test.mean())
    assert target.accuracy(res.x, X_test, y_test) > majority + 0.2


# ---------------------------------------------------------------------- BayesianICA


def ica_problem(n_samples=200, p=3, seed=0):
    X, A = laplace_mixtures(n_samples, p, rng=seed)
    return X, A


def ica_points(p, n=5, seed=1):
    """Well-conditioned matrices (identity plus noise), flattened, and directions."""
    rng = np.random.default_rng(seed)
    w = (np.eye(p) + 0.4 * rng.normal(size=(n, p, p))).reshape(n, p * p)
    return w, rng.normal(size=w.shape)


def direct_ica_logpdf(w, X, sigma, weight):
    out = []
    for row in w:
        p = X.shape[1]
        W = row.reshape(p, p)
        loglik = -np.mean(np.sum(np.log(np.cosh(X @ W.T)), axis=1))
        loglik += np.log(abs(np.linalg.det(W)))
        out.append(weight * loglik - np.sum(W**2) / (2 * sigma))
    return np.array(out)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("sigma, weight", [(1.0, 1.0), (0.5, 200.0)])
def test_ica_logpdf_matches_direct_implementation(p, sigma, weight):
    X, _ = ica_problem(p=p, seed=p)
    target = kn.BayesianICA(X, sigma=sigma, likelihood_weight=weight)
    w, _ = ica_points(p)
    assert_allclose(target.logpdf(w), direct_ica_logpdf(w, X, sigma, weight), rtol=1e-12)


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("weight", [1.0, 200.0])
def test_ica_score_matches_finite_differences(p, weight):
    X, _ = ica_problem(p=p, seed=p)
    target = kn.BayesianICA(X, sigma=0.7, likelihood_weight=weight)
    w, _ = ica_points(p)
    assert_close_scaled(target.score(w), fd_gradient(target.logpdf, w, FD_STEP))


@pytest.mark.parametrize("p", [1, 2, 3])
@pytest.mark.parametrize("weight", [1.0, 200.0])
def test_ica_hvp_matches_finite_differences(p, weight):
    X, _ = ica_problem(p=p, seed=p)
    target = kn.BayesianICA(X, sigma=0.7, likelihood_weight=weight)
    w, v = ica_points(p)
    assert_close_scaled(target.hvp(w, v), fd_directional(target.score, w, v, FD_STEP))


def test_ica_log_det_terms():
    # No data (X = 0), unit prior: score W^{-T} - W, HVP -W^{-T} V^T W^{-T} - V.
    p = 3
    target = kn.BayesianICA(np.zeros((4, p)), sigma=1.0)
    w, v = ica_points(p, n=2)
    for row, vrow, score, hvp in zip(w, v, target.score(w), target.hvp(w, v), strict=True):
        W, V = row.reshape(p, p), vrow.reshape(p, p)
        inv_t = np.linalg.inv(W).T
        assert_allclose(score.reshape(p, p), inv_t - W, rtol=1e-12)
        assert_allclose(hvp.reshape(p, p), -inv_t @ V.T @ inv_t - V, rtol=1e-12)


def test_ica_hessian_is_symmetric_and_consistent():
    X, _ = ica_problem(p=2)
    target = kn.BayesianICA(X)
    w, v = ica_points(2, n=1)
    hess = np.column_stack([target.hvp(w, np.eye(4)[[j]])[0] for j in range(4)])
    assert_allclose(hess, hess.T, rtol=1e-12, atol=1e-12)
    score, hvp = target.score_and_hvp(w)
    assert_allclose(score, target.score(w), rtol=0, atol=0)
    assert_allclose(hvp(v), target.hvp(w, v), rtol=0, atol=0)


def test_ica_tempered_and_far_out():
    X, _ = ica_problem(p=2)
    target = kn.BayesianICA(X)
    w, v = ica_points(2)
    hot = target.tempered(0.5)
    assert_allclose(hot.score(w), 0.5 * target.score(w))
    assert_allclose(hot.hvp(w, v), 0.5 * target.hvp(w, v))
    big = 1e3 * w  # |W x| in the thousands: log cosh must not overflow
    assert np.all(np.isfinite(target.logpdf(big)))
    assert np.all(np.isfinite(target.score(big)))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"X": np.zeros(5)}, ValueError, "X must be a 2-D array"),
        ({"sigma": 0.0}, ValueError, "sigma must be positive"),
        ({"likelihood_weight": -1.0}, ValueError, "likelihood_weight must be positive"),
    ],
)
def test_ica_errors(kwargs, error, match):
    args = {"X": np.ones((5, 2)), **kwargs}
    with pytest.raises(error, match=match):
        kn.BayesianICA(**args)


def test_ica_wrong_shape():
    target = kn.BayesianICA(np.ones((5, 2)))
    with pytest.raises(ValueError, match="n_dims=4"):
        target.score(np.zeros((2, 2)))


# ------------------------------------------------------------------- amari_distance


def test_amari_distance_zero_on_scaled_permutations():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    perm = np.eye(4)[[2, 0, 3, 1]] * np.array([1.0, -3.0, 0.5, 2.0])[:, None]
    assert amari_distance(perm @ np.linalg.inv(A), A) < 1e-12


def test_amari_distance_stack_and_bounds():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 3))
    W = rng.normal(size=(20, 3, 3))
    d = amari_distance(W, A)
    assert d.shape == (20,)
    assert_allclose(d, [amari_distance(w, A) for w in W], rtol=1e-14)
    assert np.all((d >= 0) & (d <= 3 - 1))
    # The worst case, all entries of W A equal in magnitude, reaches p - 1.
    assert_allclose(amari_distance(np.ones((3, 3)), np.eye(3)), 2.0)


@pytest.mark.parametrize(
    "W, A, match",
    [
        (np.ones((2, 3)), np.eye(2), "square"),
        (np.eye(3), np.eye(2), "W is 3 x 3 but A is 2 x 2"),
        (np.eye(2), np.ones((2, 2, 2)), "A must be a square matrix"),
        (np.zeros((2, 2)), np.eye(2), "row or column of zeros"),
        (np.full((2, 2), np.nan), np.eye(2), "non-finite"),
    ],
)
def test_amari_distance_errors(W, A, match):
    with pytest.raises(ValueError, match=match):
        amari_distance(W, A)


def test_laplace_mixtures():
    X, A = laplace_mixtures(400, 3, rng=0)
    assert X.shape == (400, 3) and A.shape == (3, 3)
    sources = X @ np.linalg.inv(A).T
    # Standard Laplace sources: variance 2, excess kurtosis 3.
    assert_allclose(sources.var(axis=0), 2.0, rtol=0.3)
    assert np.all(stats.kurtosis(sources, axis=0) > 1.0)
    again, _ = laplace_mixtures(400, 3, rng=0)
    assert np.array_equal(X, again)
    with pytest.raises(ValueError, match="n_sources must be >= 1"):
        laplace_mixtures(10, 0)


# ------------------------------------------------------------- claim of the example


@pytest.mark.slow
def test_ica_claim_particles_against_random_matrices():
    # plot_ica.py, right panel, on 3 data sets instead of 5: on the posterior
    # proper (likelihood weight N) SVGD's particles have a lower median Amari
    # distance than random matrices, and KSD descent's best particles unmix
    # almost exactly (distance < 0.01), which random matrices do not. KSD
    # descent's *median* is not better than chance here (spurious stationary
    # points; see the example), so it is not asserted.
    rng = np.random.default_rng(0)
    ksd, svgd, rand = [], [], []
    for seed in range(3):
        X, A = laplace_mixtures(1000, 2, rng=seed)
        target = kn.BayesianICA(X, sigma=1.0, likelihood_weight=1000.0)
        x0 = rng.standard_normal((10, 4))
        for found, x in [
            (ksd, kn.ksdd_lbfgs(x0, target, bw=0.1).x),
            (svgd, kn.svgd(x0, target, step=1e-4, bw=0.1, max_iter=3000).x),
            (rand, rng.standard_normal((10, 4))),
        ]:
            found.append(amari_distance(x.reshape(-1, 2, 2), A))
    ksd, svgd, rand = (np.concatenate(d) for d in (ksd, svgd, rand))
    assert np.median(svgd) < 0.5 * np.median(rand), (np.median(svgd), np.median(rand))
    assert np.mean(ksd < 0.01) >= 0.2, np.sort(ksd)
    assert np.mean(rand < 0.01) <= 0.05, np.sort(rand)
