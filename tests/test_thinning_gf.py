"""Gradient-free Stein thinning against stein-thinning 0.2.0's thin_gf (its own test's
pinned indices, and live on more cases), against the dense weighted Stein matrix, and
every error."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal as mvn

import ksdnumba as kn
from ksdnumba.kernels import _reference as ref
from ksdnumba.thinning import stein_thinning_gf


def _their_test_problem():
    """The sample, log densities and scores of stein-thinning's test_thin_gf."""
    rng = np.random.default_rng(12345)
    means = np.array([0.0, 0.0])
    covs = np.array([[1.0, 0.8], [0.8, 1.0]])
    sample = mvn.rvs(mean=means, cov=covs, size=1000, random_state=rng)
    gradient = np.einsum("kj,ij->ik", np.linalg.inv(covs), means - sample)
    log_p = mvn.logpdf(sample, mean=means, cov=covs)
    sample_mean = np.mean(sample, axis=0)
    sample_cov = np.cov(sample, rowvar=False, ddof=means.shape[0])
    log_q = mvn.logpdf(sample, mean=sample_mean, cov=sample_cov)
    gradient_q = np.einsum("kj,ij->ik", np.linalg.inv(sample_cov), sample_mean - sample)
    return sample, gradient, log_p, log_q, gradient_q


# stein-thinning 0.2.0, tests/stein_thinning/test_thinning.py::test_thin_gf
THEIR_THIN = [
    164,
    60,
    859,
    821,
    66,
    870,
    327,
    885,
    677,
    944,
    111,
    601,
    950,
    249,
    584,
    795,
    174,
    317,
    792,
    637,
]
THEIR_THIN_GF = [
    302,
    995,
    914,
    931,
    889,
    918,
    65,
    714,
    885,
    46,
    601,
    88,
    111,
    16,
    478,
    462,
    750,
    79,
    783,
    739,
]


def test_their_pinned_indices():
    sample, gradient, log_p, log_q, gradient_q = _their_test_problem()
    plain = kn.stein_thinning(sample, gradient, 20, preconditioner="id")
    assert plain.indices.tolist() == THEIR_THIN
    same = stein_thinning_gf(sample, log_p, log_p, gradient, 20)
    assert same.indices.tolist() == THEIR_THIN  # q = p: plain thinning
    res = stein_thinning_gf(sample, log_p, log_q, gradient_q, 20)
    assert res.indices.tolist() == THEIR_THIN_GF
    assert res.indices.dtype == np.int64


def _mixture_problem(n, d, seed):
    """A two-component mixture target and a Gaussian proxy fitted to its sample."""
    rng = np.random.default_rng(seed)
    target = kn.GaussianMixture(
        np.stack([-np.ones(d), np.ones(d)]), np.array([0.5, 1.5]), [0.3, 0.7]
    )
    x = target.sample(n, rng=rng)
    mean, cov = x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))
    prec = np.linalg.inv(cov)
    log_q = -0.5 * np.einsum("ij,jk,ik->i", x - mean, prec, x - mean)
    return x, target.logpdf(x), log_q, -(x - mean) @ prec


@pytest.mark.parametrize(
    "preconditioner, standardize, range_cap",
    [
        ("id", True, None),
        ("med", False, None),
        ("sclmed", True, 1.5),
        ("smpcov", True, None),
        ("0.7", False, 0.5),
    ],
)
@pytest.mark.parametrize("n, d", [(600, 2), (300, 7)])
def test_same_indices_as_thin_gf(preconditioner, standardize, range_cap, n, d):
    thinning = pytest.importorskip("stein_thinning.thinning")
    x, log_p, log_q, gq = _mixture_problem(n, d, n + d)
    theirs = thinning.thin_gf(
        x,
        log_p,
        log_q,
        gq,
        40,
        standardize=standardize,
        preconditioner=preconditioner,
        range_cap=range_cap,
    )
    ours = stein_thinning_gf(
        x,
        log_p[:, None],
        log_q,
        gq,
        40,
        standardize=standardize,
        preconditioner=preconditioner,
        range_cap=range_cap,
    )
    np.testing.assert_array_equal(ours.indices, theirs.astype(np.int64))


def test_weights_and_ksd_match_the_dense_weighted_matrix():
    x, log_p, log_q, gq = _mixture_problem(200, 3, 1)
    res = stein_thinning_gf(x, log_p, log_q, gq, 25, preconditioner="med", range_cap=2.0)
    ell = np.minimum(log_q - log_p - np.min(log_q - log_p), 2.0)
    np.testing.assert_allclose(res.log_weights, ell, rtol=1e-14, atol=1e-14)
    assert res.log_weights.min() == 0.0 and res.log_weights.max() <= 2.0
    z = x / res.scale
    K = ref.preconditioned_stein_matrix("imq", z, gq * res.scale, res.preconditioner)
    W = np.exp(ell[:, None] + ell[None, :]) * K
    # the greedy choice, step by step, on the dense weighted matrix
    obj = np.diag(W).copy()
    picks = []
    for t in range(25):
        if picks:
            obj += 2.0 * W[:, picks[-1]]
        picks.append(int(np.argmin(obj)))
    assert res.indices.tolist() == picks
    expected = [np.sqrt(W[np.ix_(picks[:t], picks[:t])].sum()) / t for t in range(1, 26)]
    np.testing.assert_allclose(res.ksd, expected, rtol=1e-10)
    assert (res.kernel, res.range_cap, res.backend) == ("imq", 2.0, "cpu")


def test_warns_when_the_weights_span_too_much():
    x, log_p, log_q, gq = _mixture_problem(100, 2, 3)
    with pytest.warns(UserWarning, match=r"log_q - log_p spans .* > 10"):
        stein_thinning_gf(x, log_p, log_q + 3.0 * np.arange(100) / 10, gq, 5)


def test_gaussian_kernel_runs():
    x, log_p, log_q, gq = _mixture_problem(150, 2, 4)
    res = stein_thinning_gf(x, log_p, log_q, gq, 10, kernel="gaussian")
    assert res.kernel == "gaussian" and np.all(np.isfinite(res.ksd))


def test_bad_input():
    x, log_p, log_q, gq = _mixture_problem(50, 2, 5)
    bad = log_p.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="log_p contains non-finite"):
        stein_thinning_gf(x, bad, log_q, gq, 5)
    bad[3] = -np.inf
    with pytest.raises(ValueError, match="log_q contains non-finite"):
        stein_thinning_gf(x, log_p, bad, gq, 5)
    with pytest.raises(ValueError, match=r"log_p must have shape \(50,\)"):
        stein_thinning_gf(x, log_p[:40], log_q, gq, 5)
    with pytest.raises(ValueError, match=r"log_q must have shape \(50,\)"):
        stein_thinning_gf(x, log_p, np.stack([log_q, log_q], axis=1), gq, 5)
    with pytest.raises(ValueError, match="gradient_q"):
        stein_thinning_gf(x, log_p, log_q, gq[:, :1], 5)
    with pytest.raises(ValueError, match="gradient_q contains non-finite"):
        stein_thinning_gf(x, log_p, log_q, np.full_like(gq, np.nan), 5)
    with pytest.raises(ValueError, match="sample contains non-finite"):
        stein_thinning_gf(np.full_like(x, np.inf), log_p, log_q, gq, 5)
    with pytest.raises(ValueError, match="m must be >= 1"):
        stein_thinning_gf(x, log_p, log_q, gq, 0)
    with pytest.raises(TypeError, match="m must be an integer"):
        stein_thinning_gf(x, log_p, log_q, gq, 2.0)
    with pytest.raises(ValueError, match="range_cap must be positive"):
        stein_thinning_gf(x, log_p, log_q, gq, 5, range_cap=0.0)
    with pytest.raises(ValueError, match="range_cap must be positive"):
        stein_thinning_gf(x, log_p, log_q, gq, 5, range_cap=np.inf)
    with pytest.raises(TypeError, match="range_cap must be None or a positive number"):
        stein_thinning_gf(x, log_p, log_q, gq, 5, range_cap="1")
    with pytest.raises(ValueError, match="unknown preconditioner 'bogus'"):
        stein_thinning_gf(x, log_p, log_q, gq, 5, preconditioner="bogus")
    with pytest.raises(ValueError, match="unknown kernel 'linear'"):
        stein_thinning_gf(x, log_p, log_q, gq, 5, kernel="linear")
    with pytest.raises(TypeError, match="standardize must be True or False"):
        stein_thinning_gf(x, log_p, log_q, gq, 5, standardize="yes")
    with pytest.raises(ValueError, match="column.* of sample are constant"):
        stein_thinning_gf(np.ones_like(x), log_p, log_q, gq, 5)
