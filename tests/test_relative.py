"""The relative KSD test against lkgof's DC_KSD (live where lkgof and kgof import, pinned
values from it otherwise), against a dense transcription of its formulas, symmetry, and
every error."""

import sys
import types

import numpy as np
import pytest

import ksdnumba as kn
from ksdnumba._validation import EvaluationError
from ksdnumba.gof import relative_ksd_test
from ksdnumba.kernels import _reference as ref

RTOL = 1e-10


class Model:
    """N(mean, diag(var)), with ``score`` (the protocol of both packages)."""

    def __init__(self, mean, var):
        self.mean = np.asarray(mean, dtype=float)
        self.var = np.asarray(var, dtype=float)

    def score(self, x):
        return -(x - self.mean) / self.var


def case_data(name):
    """The same sample and models as benchmarks/pin_relative_lkgof.py."""
    rng = np.random.default_rng({"imq": 0, "gauss": 1, "imq-c2": 2, "null": 3}[name])
    if name == "null":
        x = rng.normal(size=(150, 2))
        return x, Model([0.3, 0.0], [1.0, 1.0]), Model([-0.3, 0.0], [1.0, 1.0])
    x = rng.normal(size=(200, 3)) * np.array([1.0, 1.5, 0.7]) + 0.2
    return x, Model([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), Model([0.2, 0.1, 0.2], [1.0, 2.0, 0.5])


# Each case: our options, and kgof's kernel scale c^(2b) = bw^(-1/2) for the IMQ kernel
# (its (c^2 + r^2)^(-1/2) is bw^(-1/2) (1 + r^2 / bw)^(-1/2) with bw = c^2).
CASES = {
    "imq": ({"kernel": "imq", "bw": 1.0}, 1.0),
    "gauss": ({"kernel": "gaussian", "bw": 1.7}, 1.0),
    "imq-c2": ({"kernel": "imq", "bw": 2.5}, 2.5**-0.5),
    "null": ({"kernel": "imq", "bw": 1.0}, 1.0),
}

# printed by benchmarks/pin_relative_lkgof.py (lkgof 54303a2, kgof 039a95e)
PINNED = {
    "imq": {
        "mean": 0.10540760550102611,
        "variance": 0.000977278325031162,
        "test_stat": 1.49068865276824,
        "pvalue": 0.000373382675166827,
        "reject": True,
    },
    "gauss": {
        "mean": 0.08003096592333005,
        "variance": 0.001069281425007257,
        "test_stat": 1.1318087741859237,
        "pvalue": 0.007193754616382346,
        "reject": True,
    },
    "imq-c2": {
        "mean": 0.061737217404336776,
        "variance": 0.0005078032533976273,
        "test_stat": 0.8730961015638936,
        "pvalue": 0.0030749825896964505,
        "reject": True,
    },
    "null": {
        "mean": -0.03575027381550611,
        "variance": 0.003350498786767922,
        "test_stat": -0.43784964506386126,
        "pvalue": 0.7315886130708186,
        "reject": False,
    },
}


def _assert_matches(res, expected, scale, n, rtol):
    assert res.reject == expected["reject"]
    np.testing.assert_allclose(scale * res.difference, expected["mean"], rtol=rtol)
    np.testing.assert_allclose(scale**2 * res.variance, expected["variance"], rtol=rtol)
    np.testing.assert_allclose(
        scale * np.sqrt(n) * res.difference, expected["test_stat"], rtol=rtol
    )
    np.testing.assert_allclose(res.pvalue, expected["pvalue"], rtol=rtol)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pinned_dc_ksd_values(case):
    x, p, q = case_data(case)
    options, scale = CASES[case]
    _assert_matches(relative_ksd_test(x, p, q, **options), PINNED[case], scale, len(x), 1e-8)


def _lkgof():
    """lkgof's mctest module, or None (it needs autograd and kgof, and its PPCA models
    NumPyro, replaced here by an empty module: DC_KSD does not use them)."""
    pytest.importorskip("autograd")
    pytest.importorskip("kgof")
    stub = "lkgof.numpyro_models"
    added = stub not in sys.modules
    if added:
        sys.modules[stub] = types.ModuleType(stub)
    try:
        return pytest.importorskip("lkgof.mctest")
    finally:
        if added and "lkgof.mctest" not in sys.modules:
            del sys.modules[stub]


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_numbers_as_dc_ksd_live(case):
    mctest = _lkgof()
    import kgof.data
    import kgof.kernel

    x, p, q = case_data(case)
    options, scale = CASES[case]
    if options["kernel"] == "gaussian":
        k = kgof.kernel.KGauss(options["bw"])
    else:
        k = kgof.kernel.KIMQ(b=-0.5, c=np.sqrt(options["bw"]))
    test = mctest.DC_KSD(p, q, k, k, alpha=0.05)
    mean, var = test.get_mean_variance(kgof.data.Data(x))
    out = test.perform_test(kgof.data.Data(x))
    expected = {
        "mean": mean,
        "variance": var,
        "test_stat": out["test_stat"],
        "pvalue": out["pvalue"],
        "reject": bool(out["h0_rejected"]),
    }
    _assert_matches(relative_ksd_test(x, p, q, **options), expected, scale, len(x), 1e-8)


# ----------------------------------------------------------------------------- formulas


def _dense_dc_ksd(x, sp, sq, kernel, bw):
    """lkgof's DC_KSD.get_mean_variance on dense matrices, its jackknife loop as written."""
    n = len(x)
    Hp = ref.stein_matrix(kernel, x, sp, bw, 0.5)
    Hq = ref.stein_matrix(kernel, x, sq, bw, 0.5)
    up = (np.sum(Hp) - np.sum(np.diag(Hp))) / (n * (n - 1))
    uq = (np.sum(Hq) - np.sum(np.diag(Hq))) / (n * (n - 1))
    Ht = Hp - Hq
    Ht[np.diag_indices(n)] = 0.0
    total = np.sum(Ht)
    lfn3 = n * (n - 1) * (n - 2)
    variance = 0.0
    for i in range(n):
        tmp = 4.0 * ((n * Ht[i, :].sum() - total) / lfn3) ** 2
        variance = variance + (tmp - variance) / (i + 1)
    return up, uq, (n - 1) * variance


@pytest.mark.parametrize("kernel", ["imq", "gaussian", "linear"])
@pytest.mark.parametrize("d", [1, 4, 8])
def test_dense_formulas(kernel, d):
    rng = np.random.default_rng(d)
    x = rng.normal(size=(70, d)) + 0.3
    p = kn.Gaussian(np.zeros(d), 1.0)
    q = kn.Gaussian(np.full(d, 0.2), 1.3)
    res = relative_ksd_test(x, p, q, kernel=kernel, bw=1.4)
    up, uq, var = _dense_dc_ksd(x, p.score(x), q.score(x), kernel, 1.4)
    np.testing.assert_allclose([res.ksd2_p, res.ksd2_q], [up, uq], rtol=RTOL)
    np.testing.assert_allclose(res.variance, var, rtol=1e-9)
    np.testing.assert_allclose(res.statistic, (up - uq) / np.sqrt(var), rtol=1e-9)
    assert res.difference == res.ksd2_p - res.ksd2_q


def test_swapping_the_models_mirrors_the_test():
    x, p, q = case_data("imq")
    pq = relative_ksd_test(x, p, q)
    qp = relative_ksd_test(x, q, p)
    assert qp.statistic == pytest.approx(-pq.statistic, rel=1e-12)
    assert qp.pvalue == pytest.approx(1.0 - pq.pvalue, rel=1e-9)
    assert (pq.reject, qp.reject) == (True, False)
    assert (qp.ksd2_p, qp.ksd2_q) == (pq.ksd2_q, pq.ksd2_p)


def test_scores_arrays_callables_and_median_bandwidth():
    x, p, q = case_data("null")
    a = relative_ksd_test(x, p, q, bw="median")
    b = relative_ksd_test(x.tolist(), p.score(x), q.score, bw=kn.median_bandwidth(x))
    assert a.bw == kn.median_bandwidth(x)
    assert (a.statistic, a.pvalue) == (b.statistic, b.pvalue)
    assert (a.kernel, a.beta, a.alpha) == ("imq", 0.5, 0.05)
    assert relative_ksd_test(x, p, q, kernel="linear").bw == 1.0
    assert "ksd2_p" in repr(a)


def test_constant_difference_has_no_variance():
    # Linear kernel, d = 1: D_ij = x_i x_j (sp_i sp_j - sq_i sq_j) + a_i + a_j with
    # a_i = (sp_i - sq_i) x_i. With sq = -sp and sp_i = c / (2 x_i), D is the constant 2c
    # off the diagonal: every leave-one-out difference is the same, the variance is 0.
    x = np.array([[1.0], [2.0], [4.0], [8.0]])
    sp = 0.25 / x
    res = relative_ksd_test(x, sp, -sp, kernel="linear")
    assert res.difference == pytest.approx(1.0, rel=1e-12)
    assert res.variance < 1e-28
    assert res.pvalue == 0.0 and res.reject and res.statistic > 1e6
    back = relative_ksd_test(x, -sp, sp, kernel="linear")
    assert back.pvalue == 1.0 and not back.reject


# ----------------------------------------------------------------------------- errors


def test_bad_input():
    x, p, q = case_data("null")
    with pytest.raises(ValueError, match="needs at least 3 points, got 2"):
        relative_ksd_test(x[:2], p, q)
    with pytest.raises(ValueError, match="x contains non-finite"):
        relative_ksd_test(np.where(x > 1, np.nan, x), p, q)
    with pytest.raises(ValueError, match="unknown kernel 'rbf'"):
        relative_ksd_test(x, p, q, kernel="rbf")
    with pytest.raises(ValueError, match="bw must be positive"):
        relative_ksd_test(x, p, q, bw=0.0)
    with pytest.raises(ValueError, match="bw must be a positive number or 'median'"):
        relative_ksd_test(x, p, q, bw="mean")
    with pytest.raises(ValueError, match="beta must be in the open interval"):
        relative_ksd_test(x, p, q, beta=1.5)
    with pytest.raises(ValueError, match="alpha must be in the open interval"):
        relative_ksd_test(x, p, q, alpha=1.0)
    with pytest.raises(ValueError, match="unknown backend"):
        relative_ksd_test(x, p, q, backend="gpu")
    with pytest.raises(ValueError, match="p and q have the same score at every point"):
        relative_ksd_test(x, p, Model(p.mean, p.var))
    with pytest.raises(ValueError, match="score must have the shape of x"):
        relative_ksd_test(x, p, np.zeros((150, 3)))
    with pytest.raises(TypeError, match="score"):
        relative_ksd_test(x, object(), q)


def test_models_of_different_dimensions():
    x = np.random.default_rng(0).normal(size=(20, 2))
    p2 = kn.Gaussian(np.zeros(2), 1.0)
    p3 = kn.Gaussian(np.zeros(3), 1.0)
    with pytest.raises(
        ValueError, match="p and q must be models of the same dimension, got 2 and 3"
    ):
        relative_ksd_test(x, p2, p3)
    with pytest.raises(ValueError, match="x has 2 columns .* but q is 3-dimensional"):
        relative_ksd_test(x, lambda z: -z, p3)


def test_a_failing_score_names_the_target():
    x, p, _ = case_data("null")

    def broken(z):
        raise RuntimeError("boom")

    with pytest.raises(EvaluationError, match="target.score raised RuntimeError") as info:
        relative_ksd_test(x, p, broken)
    assert isinstance(info.value.__cause__, RuntimeError)
    with pytest.raises(ValueError, match="returned non-finite"):
        relative_ksd_test(x, lambda z: np.full_like(z, np.inf), p)
