"""The KSD goodness-of-fit test: tiled quadratic forms against the dense Stein
matrix, the statistic and the bootstrap draws, calibration and power (seeded), and
every error."""

import numpy as np
import pytest
from scipy import stats

import ksdnumba as kn
from ksdnumba import gof
from ksdnumba.kernels import _reference as ref

RTOL = 1e-10
PINNED_STATISTIC = 3.8486245424082224
PINNED_PVALUE = 0.4129353233830846


def test_pinned_statistic_and_pvalue():
    # Pinned before the test moved onto SteinMatrix's tiles (the statistic to
    # 1e-12, the same p-value): the result a user had keeps its value.
    x = np.random.default_rng(11).normal(size=(300, 2)) * 1.1
    res = kn.ksd_test(x, lambda z: -z, bw=1.3, n_resamples=200, rng=3)
    assert res.statistic == pytest.approx(PINNED_STATISTIC, rel=1e-12)
    assert res.pvalue == PINNED_PVALUE


@pytest.mark.parametrize("kernel", ["imq", "gaussian", "linear"])
def test_statistics_are_n_times_the_ksd(kernel):
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(120, rng=0) * 1.2
    wild = kn.ksd_test(x, target, kernel=kernel, bw=0.8, n_resamples=20, rng=0)
    v = kn.ksd(x, target, kernel=kernel, bw=0.8, statistic="v")
    np.testing.assert_allclose(wild.statistic, 120 * v, rtol=1e-10)
    np.testing.assert_allclose(wild.ksd2, v, rtol=1e-10)
    multi = kn.ksd_test(
        x, target, kernel=kernel, bw=0.8, n_resamples=20, rng=0, bootstrap="multinomial"
    )
    u = kn.ksd(x, target, kernel=kernel, bw=0.8, statistic="u")
    np.testing.assert_allclose(multi.statistic, 120 * u, rtol=1e-10)


@pytest.mark.parametrize("bootstrap", ["wild", "multinomial"])
@pytest.mark.parametrize("max_weights", [None, 2000])
def test_bootstrap_draws_match_dense_formulas(bootstrap, max_weights, monkeypatch):
    # max_weights=2000 forces several batches of draws (9 columns each at n = 200).
    if max_weights is not None:
        monkeypatch.setattr(gof, "_MAX_WEIGHTS", max_weights)
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(200, rng=3)
    res = kn.ksd_test(x, target, n_resamples=50, rng=7, bootstrap=bootstrap)
    # The same draws, in the same batches, from the same generator.
    rng = np.random.default_rng(7)
    batch = max(1, min(51, gof._MAX_WEIGHTS // 200))
    sizes, done = [], 0
    while done < 50:
        sizes.append(min(batch - (1 if not sizes else 0), 50 - done))
        done += sizes[-1]
    W = np.concatenate([gof._weights(bootstrap, 200, c, rng) for c in sizes], axis=1)
    H = ref.stein_matrix("imq", x, target.score(x), 1.0, 0.5)
    if bootstrap == "wild":
        assert set(np.unique(W)) == {-1.0, 1.0}
        expected = np.einsum("ib,ij,jb->b", W, H, W) / 200
    else:
        np.testing.assert_allclose(W.sum(axis=0), 0.0, atol=1e-12)  # counts sum to n
        off = H - np.diag(np.diag(H))
        expected = 200 * np.einsum("ib,ij,jb->b", W, off, W)
    np.testing.assert_allclose(
        res.null_distribution, expected, rtol=1e-9, atol=1e-12 * np.abs(expected).max()
    )
    p = (1 + np.sum(expected >= res.statistic)) / 51
    assert res.pvalue == pytest.approx(p)
    assert res.reject == (res.pvalue <= 0.05)


def test_result_fields_and_median_bandwidth():
    target = kn.Gaussian(np.zeros(1), 1.0)
    x = target.sample(50, rng=1)
    res = kn.ksd_test(x.tolist(), target, bw="median", n_resamples=30, rng=2)
    assert res.bw == pytest.approx(kn.median_bandwidth(x))
    assert res.null_distribution.shape == (30,)
    assert (res.kernel, res.n_resamples, res.alpha, res.bootstrap, res.backend) == (
        "imq",
        30,
        0.05,
        "wild",
        "cpu",
    )
    again = kn.ksd_test(x, target, bw="median", n_resamples=30, rng=2)
    assert again.pvalue == res.pvalue


# ------------------------------------------------------------ calibration and power


def _binomial_bounds(reps, p, level=1e-3):
    return stats.binom.ppf(level / 2, reps, p), stats.binom.ppf(1 - level / 2, reps, p)


@pytest.mark.slow
@pytest.mark.parametrize("bootstrap", ["wild", "multinomial"])
@pytest.mark.parametrize("d", [1, 3])
def test_calibration_on_exact_samples(bootstrap, d):
    # The rejection rate of exact samples is alpha, within binomial bounds
    # (two-sided, 0.1 %). The full curve is in benchmarks/bench_thinning.py.
    target = kn.Gaussian(np.zeros(d), 1.0)
    reps, alpha = 500, 0.05
    rejected = sum(
        kn.ksd_test(
            target.sample(100, rng=r),
            target,
            n_resamples=100,
            alpha=alpha,
            rng=1000 + r,
            bootstrap=bootstrap,
        ).reject
        for r in range(reps)
    )
    low, high = _binomial_bounds(reps, alpha)
    assert low <= rejected <= high, (rejected, low, high)


@pytest.mark.parametrize("bootstrap", ["wild", "multinomial"])
def test_power_against_student_t(bootstrap):
    # Student-t(5) against N(0, 1), the alternative of Chwialkowski et al. (2016)
    # and Liu et al. (2016); n = 1000 (power ~0.95 at B = 200, benchmarks/).
    target = kn.Gaussian(np.zeros(1), 1.0)
    rejected = sum(
        kn.ksd_test(
            np.random.default_rng(r).standard_t(5, size=(1000, 1)),
            target,
            n_resamples=200,
            rng=r,
            bootstrap=bootstrap,
        ).reject
        for r in range(10)
    )
    assert rejected >= 8


@pytest.mark.parametrize("bootstrap", ["wild", "multinomial"])
def test_power_against_a_shift(bootstrap):
    target = kn.Gaussian(np.zeros(2), 1.0)
    rejected = sum(
        kn.ksd_test(
            np.random.default_rng(r).normal(size=(200, 2)) + [0.3, 0.0],
            target,
            n_resamples=200,
            rng=r,
            bootstrap=bootstrap,
        ).reject
        for r in range(10)
    )
    assert rejected >= 8


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"x": np.zeros((1, 2))}, ValueError, "at least 2 points"),
        ({"x": np.full((10, 2), np.nan)}, ValueError, "x contains non-finite"),
        ({"x": np.zeros((10, 3))}, ValueError, "the target is 2-dimensional"),
        ({"kernel": "laplace"}, ValueError, "unknown kernel 'laplace'"),
        ({"bootstrap": "permutation"}, ValueError, "unknown bootstrap 'permutation'"),
        ({"alpha": 0.0}, ValueError, r"alpha must be in the open interval \(0, 1\)"),
        ({"alpha": 1.5}, ValueError, r"alpha must be in the open interval \(0, 1\)"),
        ({"n_resamples": 0}, ValueError, "n_resamples must be >= 1"),
        ({"n_resamples": 10.0}, TypeError, "n_resamples must be an integer"),
        ({"bw": -1.0}, ValueError, "bw must be positive"),
        ({"beta": 1.0}, ValueError, "beta must be in the open interval"),
        ({"rng": "seed"}, TypeError, "rng must be None, an int"),
        ({"target": object()}, TypeError, "target must be an object with a score"),
        ({"target": lambda x: x * np.nan}, ValueError, "target.score returned non-finite"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {
        "x": np.random.default_rng(0).normal(size=(10, 2)),
        "target": kn.Gaussian(np.zeros(2), 1.0),
        **kwargs,
    }
    x, target = args.pop("x"), args.pop("target")
    with pytest.raises(error, match=match):
        kn.ksd_test(x, target, n_resamples=args.pop("n_resamples", 10), **args)


def test_cuda_without_a_gpu_says_why(monkeypatch):
    from ksdnumba.kernels import _backend

    monkeypatch.setattr(_backend, "_simulating", lambda: False)
    monkeypatch.setattr(_backend, "_cuda_status", lambda: (False, "no GPU in this test"))
    target = kn.Gaussian(np.zeros(1), 1.0)
    x = target.sample(20, rng=0)
    with pytest.raises(RuntimeError, match=r"backend='cuda' needs an NVIDIA GPU.*no GPU in this"):
        kn.ksd_test(x, target, n_resamples=5, backend="cuda")
    assert kn.ksd_test(x, target, n_resamples=5, backend="auto").backend == "cpu"
