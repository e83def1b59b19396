"""Stein importance weights, Stein kernel thinning and Stein Compress++.

Kernel thinning against goodpoints 0.6.3's ``kt.thin_K`` on the dense Stein matrix
(live, index for index) and a pinned case; the Compress++ loops against
goodpoints' compiled ``compresspp_kt`` with a plain Gaussian kernel (live), and
Stein Compress++ by its guarantee; the weights by their KKT certificate against a
dense solver, duplicates, the signed closed form; every error; determinism.
"""

import numpy as np
import pytest

import ksdnumba as kn
from ksdnumba._compression_kernels import BASE_GAUSSIAN
from ksdnumba._preconditioners import stein_matrix_from_sample
from ksdnumba._validation import EvaluationError
from ksdnumba.compression import (
    _compress,
    _compress_plan,
    _compresspp,
    _Points,
    _Progress,
    kernel_thinning,
    stein_weights,
)


def _sample(n, d, seed, shift=0.2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)
    return x, -x / 2.0 + shift + 0.1 * rng.normal(size=(n, d))


def _dense(x, s, **options):
    return stein_matrix_from_sample(x, s, **options)[0].toarray()


def _rwm(target, n, step, x0, seed):
    """A random-walk Metropolis chain (repeats every rejected state)."""
    rng = np.random.default_rng(seed)
    d = len(x0)
    proposals = step * rng.standard_normal((n, d))
    log_u = np.log(rng.uniform(size=n))
    state = np.array(x0, dtype=float)
    log_p = target.logpdf(state[None])[0]
    out = np.empty((n, d))
    for i in range(n):
        candidate = state + proposals[i]
        log_c = target.logpdf(candidate[None])[0]
        if log_u[i] < log_c - log_p:
            state, log_p = candidate, log_c
        out[i] = state
    return out


# --------------------------------------------------------------------- kernel thinning


KT_CASES = [
    # n, d, rounds, seed, options
    (64, 2, 1, 0, {}),
    (64, 2, 2, 1, {}),
    (101, 2, 1, 2, {"preconditioner": "med"}),  # odd n, one round: the last point left out
    (100, 2, 3, 3, {"preconditioner": "id"}),  # n not a multiple of 2**rounds
    (257, 3, 4, 4, {"kernel": "gaussian"}),
    (300, 4, 5, 5, {"preconditioner": "smpcov"}),  # a rotated metric
    (500, 10, 3, 6, {}),  # the Gram-tiled dense matrix (d >= 6)
    (512, 2, 6, 7, {"preconditioner": 2.5, "standardize": False}),
    (999, 1, 2, 8, {"preconditioner": "sclmed"}),
    (1024, 5, 7, 9, {"kernel": "gaussian", "preconditioner": "med"}),
]


@pytest.mark.parametrize("n, d, rounds, seed, options", KT_CASES)
def test_kernel_thinning_matches_goodpoints(n, d, rounds, seed, options):
    kt = pytest.importorskip("goodpoints.kt")
    x, s = _sample(n, d, seed)
    K = _dense(x, s, **options)
    expected = np.asarray(kt.thin_K(K, K, rounds, delta=0.5, seed=seed, mean0=True))
    res = kernel_thinning(x, s, rounds, rng=seed, **options)
    np.testing.assert_array_equal(res.indices, expected, err_msg=f"n={n} rounds={rounds}")
    assert res.indices.dtype == np.int64
    ksd = np.sqrt(K[np.ix_(expected, expected)].sum()) / expected.size
    np.testing.assert_allclose(res.ksd, ksd, rtol=1e-10)


@pytest.mark.parametrize("delta", [0.01, 0.9])
def test_kernel_thinning_matches_goodpoints_delta(delta):
    kt = pytest.importorskip("goodpoints.kt")
    x, s = _sample(256, 2, 11)
    K = _dense(x, s)
    expected = kt.thin_K(K, K, 3, delta=delta, seed=5, mean0=True)
    np.testing.assert_array_equal(kernel_thinning(x, s, 3, delta=delta, rng=5).indices, expected)


def test_kernel_thinning_pinned():
    # goodpoints 0.6.3, kt.thin_K(K, K, 3, delta=0.5, seed=7, mean0=True), K the dense
    # Stein matrix of this sample (IMQ, sclmed, standardised): needs no goodpoints.
    rng = np.random.default_rng(2024)
    x = rng.normal(size=(100, 2))
    res = kernel_thinning(x, -x + 0.2, 3, rng=7)
    np.testing.assert_array_equal(res.indices, [32, 27, 38, 84, 69, 49, 13, 24, 35, 73, 0, 93])
    np.testing.assert_allclose(res.ksd, 0.3036204688657651, rtol=1e-10)


def test_kernel_thinning_sizes_and_remainder():
    x, s = _sample(203, 2, 1)
    for rounds in range(0, 8):
        res = kernel_thinning(x, s, rounds, rng=0)
        m = 203 // 2**rounds
        # the standard-thinning candidate, when it wins, has ceil(n / (n // m)) points
        assert res.indices.size in (m, len(range(202, -1, -(203 // m))))
        assert res.indices.min() >= 0 and res.indices.max() < 203
    np.testing.assert_array_equal(kernel_thinning(x, s, 0).indices, np.arange(203))


def test_kernel_thinning_rng_forms_and_determinism():
    x, s = _sample(200, 2, 2)
    a = kernel_thinning(x, s, 3, rng=42).indices
    np.testing.assert_array_equal(a, kernel_thinning(x, s, 3, rng=42).indices)
    np.testing.assert_array_equal(
        a, kernel_thinning(x, s, 3, rng=np.random.default_rng(42)).indices
    )
    np.testing.assert_array_equal(
        a, kernel_thinning(x, s, 3, rng=np.random.SeedSequence(42)).indices
    )
    np.testing.assert_array_equal(a, kernel_thinning(x, s, 3, rng=np.random.PCG64(42)).indices)
    b = kernel_thinning(x, s, 3, rng=43).indices
    assert not np.array_equal(a, b)


def test_kernel_thinning_takes_a_target():
    target = kn.Gaussian(np.zeros(2), 1.5)
    x = target.sample(128, rng=0) + 0.3
    a = kernel_thinning(x, target, 2, rng=1)
    b = kernel_thinning(x, target.score(x), 2, rng=1)
    np.testing.assert_array_equal(a.indices, b.indices)
    c = kernel_thinning(x, target.score, 2, rng=1)  # a plain callable
    np.testing.assert_array_equal(a.indices, c.indices)


def test_kernel_thinning_beats_standard_thinning():
    target = kn.datasets.two_modes(0.1)
    chain = _rwm(target, 2600, 0.3, [3.0, 2.5], 0)[600:]
    s = target.score(chain)
    res = kernel_thinning(chain, s, 5, rng=0)
    K = _dense(chain, s)
    std = np.arange(chain.shape[0] - 1, -1, -32)[::-1]
    assert res.ksd < np.sqrt(K[np.ix_(std, std)].sum()) / std.size


# --------------------------------------------------------------------- Compress++


def _gaussian_points(X, ell):
    d, n = X.shape[1], X.shape[0]
    return _Points(BASE_GAUSSIAN, 0.5, X.T, np.zeros((d, n)), np.ones(d), ell)


@pytest.mark.parametrize(
    "n, d, g, seed, ell",
    [
        (256, 2, 1, 1, 2.0),
        (1000, 2, 1, 2, 1.0),
        (4096, 3, 2, 3, 4.0),
        (64, 2, 0, 4, 1.0),
        (1024, 2, 0, 5, 0.5),
    ],
)
def test_compresspp_loops_match_goodpoints_compiled(n, d, g, seed, ell):
    # The Compress++ loops with goodpoints' own Gaussian kernel, computed as its
    # Cython computes it: the same indices as its compiled compresspp_kt.
    compress = pytest.importorskip("goodpoints.compress")
    X = np.random.default_rng(seed).normal(size=(n, d))
    expected = compress.compresspp_kt(
        X, b"gaussian", k_params=np.array([ell]), g=g, num_bins=4, delta=0.5, seed=seed, mean0=True
    )
    k = (n.bit_length() - 1) // 2
    got = _compresspp(_gaussian_points(X, ell), k, g, 0.5, seed, False)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rounds", [3, 4, 6, 7])
def test_compresspp_other_sizes_match_goodpoints_parts(rounds):
    # Other output sizes: Compress with 4**(k + 1 - rounds) bins (or 4 bins and a
    # longer final thinning), goodpoints' compress_kt then kt.thin_K, with its seeds.
    compress = pytest.importorskip("goodpoints.compress")
    kt = pytest.importorskip("goodpoints.kt")
    n, g, ell, seed = 1024, 1, 1.0, 3
    X = np.random.default_rng(7).normal(size=(n, 2))
    n4, k, bins, m, depth = _compress_plan(n, rounds, g)
    thin_frac = m / (m + 2**m * depth)
    seqs = np.random.SeedSequence(seed).spawn(2)
    c_seed, t_seed = (q.generate_state(1)[0] for q in seqs)
    core = compress.compress_kt(
        X,
        b"gaussian",
        k_params=np.array([ell]),
        g=g,
        num_bins=bins,
        delta=0.5 * (1 - thin_frac),
        seed=c_seed,
    )
    Y = X[core]
    K = np.exp(-((Y[:, None] - Y[None]) ** 2).sum(-1) / ell)
    expected = core[kt.thin_K(K, K, m, delta=0.5 * thin_frac, seed=t_seed, mean0=True)]
    got = _compresspp(_gaussian_points(X, ell), rounds, g, 0.5, seed, False)
    assert got.size == n // 2**rounds
    # Kernel values differ in the last bits between this K and the loops' columns.
    np.testing.assert_array_equal(got, expected)


def test_compress_bins_match_goodpoints():
    compress = pytest.importorskip("goodpoints.compress")
    X = np.random.default_rng(0).normal(size=(256, 2))
    for bins in (1, 4, 16):
        for seed in range(5):
            expected = compress.compress_kt(
                X, b"gaussian", k_params=np.array([1.0]), g=0, num_bins=bins, delta=0.3, seed=seed
            )
            gen = np.random.Generator(np.random.PCG64(seed))
            got = _compress(_gaussian_points(X, 1.0), 0, bins, 0.3, gen, _Progress("", 1, False))
            np.testing.assert_array_equal(got, expected, err_msg=f"bins={bins} seed={seed}")


def _chain(name):
    if name == "two_modes":  # the example's chain
        target, x0, step = kn.datasets.two_modes(0.1), [3.0, 2.5], 0.3
    elif name == "three_modes":
        target, x0, step = kn.datasets.three_modes(0.1), [0.0, 0.0], 0.4
    else:
        target, x0, step = kn.datasets.two_modes(0.3), [2.0, 2.0], 0.5
    chain = _rwm(target, 2 * 4096 + 500, step, x0, 3)[500::2]
    return chain, target.score(chain)


@pytest.mark.parametrize("name", ["two_modes", "three_modes", "two_modes_wide"])
def test_stein_compresspp_guarantee(name):
    # 4**6 points to sqrt(n) = 64: within twice full KT's KSD, below greedy Stein
    # thinning's at the same size.
    x, s = _chain(name)
    full = kernel_thinning(x, s, 6, rng=0)
    cpp = kernel_thinning(x, s, 6, rng=0, compress=True, oversampling=2)
    greedy = kn.stein_thinning(x, s, 64)
    assert cpp.indices.size == full.indices.size == 64
    assert cpp.ksd <= 2.0 * full.ksd
    assert cpp.ksd < greedy.ksd[-1]


def test_stein_compresspp_sizes_and_trimming():
    x, s = _sample(1100, 2, 4)  # trimmed to 4**5 = 1024 by standard thinning from the end
    kept = np.linspace(1099, 0, 1024, dtype=int)[::-1]
    for rounds in (1, 2, 4, 5, 7, 10):
        res = kernel_thinning(x, s, rounds, rng=1, compress=True, oversampling=1)
        assert res.indices.size == 1024 // 2**rounds
        assert np.all(np.isin(res.indices, kept))
        assert res.compress
    a = kernel_thinning(x, s, 5, rng=3, compress=True, oversampling=1).indices
    np.testing.assert_array_equal(
        a, kernel_thinning(x, s, 5, rng=3, compress=True, oversampling=1).indices
    )


def test_stein_compresspp_direct_case_is_kt_on_the_trimmed_sample():
    # With 2**(g+1) >= sqrt(n), Compress has nothing to do: KT on the trimmed sample
    # (in the kernel of the whole sample), as goodpoints' compresspp_kt does.
    kt = pytest.importorskip("goodpoints.kt")
    x, s = _sample(300, 2, 5)
    kept = np.linspace(299, 0, 256, dtype=int)[::-1]
    K = _dense(x, s)[np.ix_(kept, kept)]
    res = kernel_thinning(x, s, 4, rng=2, compress=True, oversampling=4)
    np.testing.assert_array_equal(res.indices, kept[kt.thin_K(K, K, 4, seed=2, mean0=True)])


# --------------------------------------------------------------------- Stein weights


def _check_kkt(K, w, tol):
    g = K @ w
    mu = w @ g
    assert np.all(w >= 0) and abs(w.sum() - 1) < 1e-13
    assert np.max(mu - g) <= tol * mu
    assert np.max(np.abs(g[w > 0] - mu)) <= tol * mu
    return mu


@pytest.mark.parametrize(
    "d, options", [(2, {}), (3, {"kernel": "gaussian"}), (2, {"preconditioner": "smpcov"})]
)
def test_stein_weights_kkt_certificate_and_dense_solver(d, options):
    from scipy.optimize import minimize

    x, s = _sample(50, d, 3)
    K = _dense(x, s, **options)
    res = stein_weights(x, s, **options)
    assert res.success and res.kkt_residual <= 1e-8
    mu = _check_kkt(K, res.weights, 1e-8)
    np.testing.assert_allclose(res.ksd, np.sqrt(mu), rtol=1e-10)
    np.testing.assert_array_equal(res.support, np.flatnonzero(res.weights > 0))
    # SciPy's SLSQP on the dense matrix: no lower objective, and the same weights.
    n = x.shape[0]
    slsqp = minimize(
        lambda w: w @ K @ w,
        np.full(n, 1.0 / n),
        jac=lambda w: 2 * K @ w,
        method="SLSQP",
        bounds=[(0, None)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1, "jac": lambda w: np.ones(n)}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert slsqp.fun >= mu * (1 - 1e-8)
    np.testing.assert_allclose(res.weights, slsqp.x, atol=1e-5)


def test_stein_weights_operator_path_matches_dense():
    x, s = _sample(100, 10, 4)
    dense = stein_weights(x, s)
    op = stein_weights(x, s, max_bytes=0)  # products through the tiles, faces by CG
    assert op.success and op.kkt_residual <= 1e-8
    _check_kkt(_dense(x, s), op.weights, 1e-8)
    np.testing.assert_allclose(op.weights, dense.weights, atol=1e-8)
    np.testing.assert_array_equal(op.support, dense.support)


def test_stein_weights_correct_a_biased_sample():
    target = kn.datasets.two_modes(0.1)
    chain = _rwm(target, 1500, 0.3, [3.0, 2.5], 1)[300:]
    s = target.score(chain)
    res = stein_weights(chain, s)
    assert res.success
    uniform_ksd = np.sqrt(_dense(chain, s).mean())
    assert res.ksd < 0.5 * uniform_ksd


def test_stein_weights_merge_duplicates():
    target = kn.datasets.two_modes(0.1)
    chain = _rwm(target, 700, 0.8, [1.0, 0.0], 2)[200:]  # rejected moves repeat states
    s = target.score(chain)
    _, first = np.unique(chain, axis=0, return_index=True)
    first = np.sort(first)
    assert first.size < chain.shape[0]
    res = stein_weights(chain, s)
    assert res.n_unique == first.size and res.success
    repeats = np.setdiff1d(np.arange(chain.shape[0]), first)
    assert np.all(res.weights[repeats] == 0)
    # The same H (preconditioner from the whole chain): the unique rows' problem.
    K = _dense(chain, s)[np.ix_(first, first)]
    mu = _check_kkt(K, res.weights[first], 1e-8)
    np.testing.assert_allclose(res.ksd, np.sqrt(mu), rtol=1e-10)


@pytest.mark.parametrize("ridge", [None, 1e-2])
def test_stein_weights_signed_closed_form(ridge):
    x, s = _sample(200, 5, 6)
    K = _dense(x, s)
    res = stein_weights(x, s, signed=True, ridge=ridge)
    lam = 1e-4 * np.mean(np.diag(K)) if ridge is None else ridge
    assert res.ridge == pytest.approx(lam, rel=1e-12)
    z = np.linalg.solve(K + lam * np.eye(200), np.ones(200))
    w = z / z.sum()
    assert res.success and res.kkt_residual <= 1e-8
    np.testing.assert_allclose(res.weights, w, rtol=0, atol=1e-7 * np.abs(w).max())
    np.testing.assert_allclose(res.ksd, np.sqrt(w @ K @ w), rtol=1e-6)
    assert np.any(res.weights < 0)


def test_stein_weights_determinism_and_target():
    target = kn.Gaussian(np.zeros(2), 1.0)
    x = target.sample(120, rng=1) * 1.3
    a = stein_weights(x, target)
    b = stein_weights(x, target.score(x))
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.weights, stein_weights(x, target).weights)


@pytest.mark.slow
def test_stein_weights_tolerance_at_2000():
    x, s = _sample(2000, 2, 7, shift=0.5)
    res = stein_weights(x, s)
    assert res.success and res.kkt_residual <= 1e-8
    _check_kkt(_dense(x, s), res.weights, 1e-8)


@pytest.mark.slow
def test_kernel_thinning_threaded_matches_goodpoints():
    # n d above the threads' threshold: the threaded twins, index for index.
    kt = pytest.importorskip("goodpoints.kt")
    x, s = _sample(4096, 10, 12)
    K = _dense(x, s)
    expected = kt.thin_K(K, K, 6, delta=0.5, seed=3, mean0=True)
    np.testing.assert_array_equal(kernel_thinning(x, s, 6, rng=3).indices, expected)


# --------------------------------------------------------------------- errors


def test_kernel_thinning_errors():
    x, s = _sample(20, 2, 0)
    with pytest.raises(ValueError, match=r"rounds=5 is too large for n = 20"):
        kernel_thinning(x, s, 5)
    with pytest.raises(ValueError, match="rounds must be >= 0"):
        kernel_thinning(x, s, -1)
    for bad in (2.0, True, "2", None):
        with pytest.raises(TypeError, match="rounds must be an integer"):
            kernel_thinning(x, s, bad)
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"delta must be in the open interval \(0, 1\)"):
            kernel_thinning(x, s, 1, delta=bad)
    with pytest.raises(TypeError, match="delta must be a real number"):
        kernel_thinning(x, s, 1, delta="half")
    nan = s.copy()
    nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="scores contains non-finite values"):
        kernel_thinning(x, nan, 1)
    with pytest.raises(ValueError, match="sample contains non-finite values"):
        kernel_thinning(np.where(nan == nan, x, np.nan), s, 1)
    with pytest.raises(ValueError, match=r"scores must have the shape of sample"):
        kernel_thinning(x, s[:, :1], 1)
    with pytest.raises(TypeError, match="scores must be an \\(n, d\\) array or a target"):
        kernel_thinning(x, object(), 1)

    class NoScore:
        score = 3.0

    with pytest.raises(TypeError, match="NoScore.score is not callable"):
        kernel_thinning(x, NoScore(), 1)

    def broken(z):
        raise RuntimeError("boom")

    with pytest.raises(EvaluationError, match="target.score raised RuntimeError: boom"):
        kernel_thinning(x, broken, 1)
    with pytest.raises(TypeError, match="rng must be None, an int"):
        kernel_thinning(x, s, 1, rng=1.5)
    with pytest.raises(TypeError, match="rng must be None, an int"):
        kernel_thinning(x, s, 1, rng="seed")
    with pytest.raises(ValueError, match="rng: a seed must be non-negative"):
        kernel_thinning(x, s, 1, rng=-3)
    with pytest.raises(TypeError, match="compress must be True or False"):
        kernel_thinning(x, s, 1, compress=1)
    with pytest.raises(TypeError, match="progress must be True or False"):
        kernel_thinning(x, s, 1, progress="yes")
    with pytest.raises(ValueError, match="oversampling must be >= 0"):
        kernel_thinning(x, s, 1, compress=True, oversampling=-1)
    with pytest.raises(TypeError, match="oversampling must be an integer"):
        kernel_thinning(x, s, 1, compress=True, oversampling=1.0)
    with pytest.raises(ValueError, match="compress=True needs at least 4 points"):
        kernel_thinning(x[:3], s[:3], 1, compress=True)
    with pytest.raises(ValueError, match=r"rounds=9 is too large for Compress\+\+ on n = 20"):
        kernel_thinning(x, s, 9, compress=True)
    with pytest.raises(ValueError, match="unknown kernel 'linear'"):
        kernel_thinning(x, s, 1, kernel="linear")
    with pytest.raises(ValueError, match="unknown preconditioner 'median'"):
        kernel_thinning(x, s, 1, preconditioner="median")


def test_stein_weights_errors():
    x, s = _sample(30, 2, 1)
    for bad in (0, 0.0, -1e-3):
        with pytest.raises(ValueError, match="tol must be"):
            stein_weights(x, s, tol=bad)
    with pytest.raises(ValueError, match="ridge regularises the signed weights only"):
        stein_weights(x, s, ridge=1e-3)
    with pytest.raises(ValueError, match="ridge must be non-negative"):
        stein_weights(x, s, signed=True, ridge=-1.0)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        stein_weights(x, s, max_iter=0)
    with pytest.raises(TypeError, match="max_iter must be an integer"):
        stein_weights(x, s, max_iter=10.0)
    with pytest.raises(TypeError, match="signed must be True or False"):
        stein_weights(x, s, signed="no")
    with pytest.raises(ValueError, match="max_bytes must be >= 0"):
        stein_weights(x, s, max_bytes=-1)
    nan = s.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="scores contains non-finite values"):
        stein_weights(x, nan)
    with pytest.raises(TypeError, match="scores must be an \\(n, d\\) array or a target"):
        stein_weights(x, object())

    def nan_score(z):
        return np.full_like(z, np.nan)

    with pytest.raises(EvaluationError, match="target.score returned non-finite values"):
        stein_weights(x, nan_score)


def test_stein_weights_max_iter_reports_failure():
    x, s = _sample(200, 2, 9, shift=0.8)
    res = stein_weights(x, s, max_iter=1)
    assert not res.success and res.nit == 1
    assert "max_iter=1" in res.message
    assert res.kkt_residual > 1e-8
