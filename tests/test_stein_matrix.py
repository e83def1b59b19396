"""kn.SteinMatrix: every method against the dense reference, SciPy's solvers on it,
determinism, the kernel kinds on every backend, and every error."""

import numba
import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator, cg, eigsh

import ksdnumba as kn
from ksdnumba._validation import EvaluationError
from ksdnumba.kernels import _reference as ref
from ksdnumba.kernels._backend import kernels
from ksdnumba.kernels._cpu import _matrix
from ksdnumba.kernels._kinds import KINDS

RTOL = {np.float64: 1e-10, np.float32: 1e-4}


def _problem(n, d, seed, coincident=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)
    s = -x + 0.3 * rng.normal(size=(n, d))
    if coincident and n > 3:  # a few points twice, scores too
        x[1::3] = x[0]
        s[1::3] = s[0]
    return x, s


def _spd(d, seed):
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


def _dense(kernel, x, s, bw=None, beta=0.5, M=None):
    """The reference Stein matrix for the package's options."""
    if kernel == "linear":
        return ref.stein_matrix("linear", x, s)
    if M is None:
        return ref.stein_matrix(kernel, x, s, bw, beta)
    L = np.linalg.inv(np.diag(M) if M.ndim == 1 else M)
    return ref.metric_stein_matrix(kernel, x, s, L, beta)


def _close(actual, expected, dtype, what):
    scale = max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(
        actual, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale, err_msg=what
    )


CASES = [
    ("gaussian", 0.5, "bw"),
    ("imq", 0.5, "bw"),
    ("imq", 0.3, "bw"),
    ("linear", 0.5, "bw"),
    ("gaussian", 0.5, "full"),
    ("imq", 0.5, "full"),
    ("imq", 0.7, "diagonal"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("kernel, beta, metric", CASES)
@pytest.mark.parametrize("n, d", [(1, 3), (127, 2), (129, 7), (257, 3), (300, 8)])
def test_every_method_matches_the_dense_reference(kernel, beta, metric, n, d, dtype):
    # n on both sides of the 128-row tiles; d on both sides of the Gram products'
    # threshold; coincident points from n > 3.
    x, s = _problem(n, d, seed=n + d, coincident=True)
    M = None
    if metric == "full":
        M = _spd(d, seed=d)
    elif metric == "diagonal":
        M = np.random.default_rng(d).uniform(0.5, 2.0, size=d)
    bw = 1.7 if metric == "bw" and kernel != "linear" else None
    H = kn.SteinMatrix(
        x.astype(dtype),
        s.astype(dtype),
        kernel=kernel,
        bw=bw,
        beta=beta,
        preconditioner=M,
        backend="cpu",
    )
    # The reference sees what the tiles see: the points rounded to the dtype.
    xr, sr = x.astype(dtype).astype(np.float64), s.astype(dtype).astype(np.float64)
    K = _dense(kernel, xr, sr, bw, beta, M)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(n, 5))
    v = W[:, 0]
    what = f"{kernel} beta={beta} {metric} n={n} d={d} {np.dtype(dtype).name}"
    _close(H.toarray(), K, dtype, "toarray " + what)
    _close(H @ W, K @ W, dtype, "H @ W " + what)
    _close(H @ v, K @ v, dtype, "H @ v " + what)
    _close(H.matvec(v), K @ v, dtype, "matvec " + what)
    _close(H.rmatvec(v), K @ v, dtype, "rmatvec " + what)
    _close(H.T @ W, K @ W, dtype, "H.T @ W " + what)
    _close(H.row_sums(), K.sum(axis=1), dtype, "row_sums " + what)
    _close(H.sum(), K.sum(), dtype, "sum " + what)
    prefix = np.array([K[:m, :m].sum() for m in range(1, n + 1)])
    _close(H.prefix_sums(), prefix, dtype, "prefix_sums " + what)
    _close(H.quadratic_forms(W), np.einsum("ib,ij,jb->b", W, K, W), dtype, "forms " + what)
    assert isinstance(H.quadratic_forms(v), float)
    # The diagonal and the columns are exact formulas, computed in float64.
    _close(H.diagonal(), np.diag(K), np.float64, "diagonal " + what)
    cols = [0, n - 1, n // 2]
    _close(H.columns(cols), K[:, cols], np.float64, "columns " + what)
    _close(H.column(-1), K[:, -1], np.float64, "column " + what)
    rows = [n - 1, 0]
    _close(H.columns(cols, rows=rows), K[np.ix_(rows, cols)], np.float64, "rows " + what)


def test_the_same_matrix_for_any_form_of_the_scores():
    x, s = _problem(50, 2, seed=1)
    target = kn.Gaussian(np.zeros(2), 1.0)
    a = kn.SteinMatrix(x, target.score(x), bw=0.5).toarray()
    b = kn.SteinMatrix(x, target, bw=0.5).toarray()
    c = kn.SteinMatrix(x.tolist(), target.score, bw=0.5).toarray()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_isotropic_preconditioner_is_the_bandwidth():
    x, s = _problem(90, 7, seed=2)
    for kernel in ("gaussian", "imq"):
        a = kn.SteinMatrix(x, s, kernel=kernel, bw=2.5).toarray()
        b = kn.SteinMatrix(x, s, kernel=kernel, preconditioner=np.full(7, 2.5)).toarray()
        c = kn.SteinMatrix(x, s, kernel=kernel, preconditioner=2.5 * np.eye(7)).toarray()
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13 * np.abs(a).max())
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-13 * np.abs(a).max())


def test_median_bandwidth_is_resolved_once():
    x, s = _problem(200, 3, seed=3)
    H = kn.SteinMatrix(x, s, bw="median")
    assert H.bw == pytest.approx(kn.median_bandwidth(x))
    assert repr(H).startswith("<200x200 SteinMatrix, kernel='gaussian', bw=")


def test_sum_is_the_ksd_of_the_package():
    # The same sums as kn.ksd and the descent objective, to the bit.
    x, s = _problem(400, 2, seed=4)
    target = kn.ScoreFunction(lambda z: -z)
    for kernel, bw in (("gaussian", 0.7), ("imq", 1.5), ("linear", None)):
        H = kn.SteinMatrix(x, target, kernel=kernel, bw=bw)
        assert H.sum() / 400**2 == kn.ksd(x, target, kernel=kernel, bw=bw or 1.0)
        np.testing.assert_allclose(H.prefix_sums()[-1], H.sum(), rtol=1e-12)


@pytest.mark.parametrize("n, d", [(700, 3), (1000, 10)])
def test_results_do_not_depend_on_the_threads(n, d):
    x, s = _problem(n, d, seed=5)
    W = np.random.default_rng(1).normal(size=(n, 4))
    layout = _matrix.Layout(KINDS["imq"], 0.5, x, s, np.full(d, 0.8), np.float64)

    def run(parallel):
        return (
            _matrix.products(layout, W, parallel=parallel),
            _matrix.products(layout, W[:, :1], lower=True, parallel=parallel),
            _matrix.quadratic_forms(layout, W, parallel=parallel),
            _matrix.dense(layout, parallel=parallel),
        )

    serial = run(False)
    threaded = run(True)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run(True)
    finally:
        numba.set_num_threads(previous)
    for a, b, c in zip(serial, threaded, one):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_several_bandwidths_in_one_pass():
    x, s = _problem(300, 2, seed=6)
    W = np.random.default_rng(2).choice([-1.0, 1.0], size=(300, 6))
    bws = np.array([0.3, 1.0, 4.0])
    H = kn.SteinMatrix(x, s, kernel="imq", bw=1.0)
    forms = H._forms_over_bandwidths(W, bws)
    for k, bw in enumerate(bws):
        K = ref.stein_matrix("imq", x, s, bw, 0.5)
        np.testing.assert_allclose(forms[k], np.einsum("ib,ij,jb->b", W, K, W), rtol=1e-10)


# ------------------------------------------------------------ SciPy's solvers


def test_eigsh_finds_the_dense_eigenvalues():
    x, s = _problem(300, 3, seed=7)
    H = kn.SteinMatrix(x, s, kernel="imq", bw=1.0)
    top = np.sort(eigsh(H, k=3, return_eigenvectors=False))
    dense = np.linalg.eigvalsh(H.toarray())[-3:]
    np.testing.assert_allclose(top, dense, rtol=1e-8)
    assert dense.min() > 0


def test_cg_solves_a_regularised_system():
    x, s = _problem(400, 2, seed=8)
    H = kn.SteinMatrix(x, s, kernel="gaussian", bw=0.5)
    lam = 1e-2 * H.diagonal().mean()
    shifted = LinearOperator(H.shape, matvec=lambda v: H @ v + lam * v, dtype=float)
    b = np.ones(400)
    w, info = cg(shifted, b, rtol=1e-10, maxiter=2000)
    assert info == 0
    exact = np.linalg.solve(H.toarray() + lam * np.eye(400), b)
    np.testing.assert_allclose(w, exact, rtol=1e-6, atol=1e-8 * np.abs(exact).max())


def test_operator_algebra():
    x, s = _problem(60, 2, seed=9)
    H = kn.SteinMatrix(x, s, bw=1.0)
    K = H.toarray()
    v = np.arange(60.0)
    np.testing.assert_allclose((2 * H) @ v, 2 * K @ v, rtol=1e-12)
    np.testing.assert_allclose((H + H) @ v, 2 * K @ v, rtol=1e-12)
    assert H.T is H and H.H is H
    assert H.dtype == np.float64 and H.shape == (60, 60)


# ------------------------------------------------------------ kinds and backends


def _backends():
    out = ["cpu"]
    try:
        kernels("cuda")
    except Exception:  # no numba-cuda at all: nothing to check there
        return out
    return out + ["cuda"]


@pytest.mark.parametrize("backend", _backends())
@pytest.mark.parametrize("kernel", sorted(KINDS))
def test_every_kind_runs_on_every_backend(kernel, backend):
    # The recipe for a new kernel (kernels/_kinds.py): a kind in KINDS that a
    # backend does not implement fails here.
    n, d = (9, 3) if backend == "cuda" else (140, 3)
    x, s = _problem(n, d, seed=10)
    bw = None if kernel == "linear" else 0.9
    H = kn.SteinMatrix(x, s, kernel=kernel, bw=bw, beta=0.4, backend=backend)
    K = _dense(kernel, x, s, bw, 0.4)
    W = np.random.default_rng(3).normal(size=(n, 2))
    _close(H @ W, K @ W, np.float64, f"{kernel} on {backend}")
    _close(H.quadratic_forms(W), np.einsum("ib,ij,jb->b", W, K, W), np.float64, kernel)
    _close(H.columns([0, n - 1]), K[:, [0, n - 1]], np.float64, kernel)
    _close(
        H.prefix_sums(),
        np.cumsum([K[:m, :m].sum() - K[: m - 1, : m - 1].sum() for m in range(1, n + 1)]),
        np.float64,
        kernel,
    )


# ------------------------------------------------------------ errors


def _args():
    x, s = _problem(10, 2, seed=11)
    return {"x": x, "score": s}


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"x": np.zeros(5)}, ValueError, "x must be a 2-D array"),
        ({"x": np.full((10, 2), np.nan)}, ValueError, "x contains non-finite"),
        ({"score": np.zeros((10, 3))}, ValueError, "score must have the shape of x"),
        ({"score": np.full((10, 2), np.inf)}, ValueError, "score contains non-finite"),
        ({"score": object()}, TypeError, "target must be an object with a score"),
        (
            {"score": lambda z: np.full(z.shape, np.nan)},
            ValueError,
            "target.score returned non-finite",
        ),
        ({"kernel": "laplace"}, ValueError, "unknown kernel 'laplace'"),
        ({"bw": -1.0}, ValueError, "bw must be positive"),
        ({"bw": "mean"}, ValueError, "bw must be a positive number or 'median'"),
        ({"beta": 1.5}, ValueError, "beta must be in the open interval"),
        ({"bw": 1.0, "preconditioner": np.eye(2)}, ValueError, "give bw or preconditioner"),
        ({"preconditioner": np.eye(3)}, ValueError, r"preconditioner must have shape \(2, 2\)"),
        ({"preconditioner": np.ones(3)}, ValueError, r"must have shape \(2,\)"),
        ({"preconditioner": np.array([1.0, -1.0])}, ValueError, "must be positive and finite"),
        ({"preconditioner": np.array([[1.0, 2.0], [0.0, 1.0]])}, ValueError, "not symmetric"),
        ({"preconditioner": np.array([[1.0, 2.0], [2.0, 1.0]])}, ValueError, "positive definite"),
        ({"preconditioner": "sclmed"}, TypeError, "preconditioner must be None or a numeric"),
        ({"kernel": "linear", "preconditioner": np.eye(2)}, ValueError, "no distance"),
        ({"dtype": np.int32}, ValueError, "dtype must be np.float32 or np.float64"),
        ({"backend": "tpu"}, ValueError, "unknown backend 'tpu'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {**_args(), **kwargs}
    x, score = args.pop("x"), args.pop("score")
    with pytest.raises(error, match=match):
        kn.SteinMatrix(x, score, **args)


def test_a_failing_target_says_so():
    def score(z):
        raise RuntimeError("model exploded")

    with pytest.raises(
        EvaluationError, match="target.score raised RuntimeError: model exploded"
    ) as info:
        kn.SteinMatrix(np.ones((4, 2)), score)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_bad_method_arguments():
    H = kn.SteinMatrix(**_args())
    with pytest.raises(ValueError, match=r"W must have shape \(10,\) or \(10, B\)"):
        H.quadratic_forms(np.ones((9, 2)))
    with pytest.raises(ValueError, match="W contains non-finite"):
        H.quadratic_forms(np.full(10, np.nan))
    with pytest.raises(IndexError, match="cols out of range"):
        H.columns([10])
    with pytest.raises(TypeError, match="cols must be integers"):
        H.columns([0.5])
    with pytest.raises(TypeError, match="j must be an integer"):
        H.column(1.0)
    with pytest.raises(ValueError, match=r"toarray\(\) would hold a 10 x 10 float64 matrix"):
        H.toarray(max_bytes=100)


# ------------------------------------------------------------ the old entry points


def test_entry_points_keep_their_pinned_results():
    # Values computed before the entry points moved onto SteinMatrix (revision
    # 265fa44, NumPy 2.4, Numba 0.68): the same bits there, as the one kernel
    # code serves them all; to 1e-13 under another Numba (another LLVM).
    x = np.random.default_rng(21).normal(size=(400, 3)) * 1.2
    t = kn.Gaussian(np.zeros(3), 1.0)
    pinned = {
        "gaussian": (0.025110279793333305, 0.009375887653758536),
        "imq": (0.022556873195336717, 0.00681608154047875),
        "linear": (0.3433604669354245, 0.28990636012911025),
    }
    import numba

    same = pytest.approx if numba.__version__ != "0.68.1" else (lambda v, rel: v)
    for kernel, (v, u) in pinned.items():
        assert kn.ksd(x, t, kernel=kernel, bw=1.3) == same(v, rel=1e-13)
        assert kn.ksd(x, t, kernel=kernel, bw=1.3, statistic="u") == same(u, rel=1e-13)
    value, grad = kn.ksd_and_grad(x, t, kernel="imq", bw=1.3)
    assert value == same(0.022556873195336717, rel=1e-13)
    assert float(np.abs(grad).sum()) == same(0.21171621991084244, rel=1e-13)
    r = kn.stein_thinning(x, t.score(x), 12)
    assert r.indices.tolist() == [22, 184, 235, 337, 149, 23, 270, 90, 317, 131, 318, 53]
    assert r.ksd[-1] == same(0.3846020253824806, rel=1e-13)
    r = kn.stein_thinning(x, t.score(x), 12, kernel="gaussian", preconditioner="smpcov")
    assert r.indices.tolist() == [22, 103, 13, 235, 79, 62, 41, 317, 357, 297, 99, 287]
    assert r.ksd[-1] == same(0.2565685640433116, rel=1e-13)
