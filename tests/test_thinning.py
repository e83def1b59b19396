"""Stein thinning: compiled columns and greedy loop against the dense oracle, the
preconditioned IMQ Stein kernel against finite differences, stein-thinning's
indices, the preconditioners, regularised thinning and every error."""

import subprocess
import sys

import numpy as np
import pytest

import ksdnumba as kn
from ksdnumba.kernels import _reference as ref
from ksdnumba.kernels._cpu import _matrix
from ksdnumba.kernels._cpu import _values as sv
from ksdnumba.kernels._kinds import GAUSSIAN, IMQ

RTOL = 1e-10
KINDS = {"imq": IMQ, "gaussian": GAUSSIAN}


def _problem(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)
    s = rng.normal(size=(n, d))
    a = rng.normal(size=(d, d))
    L = a @ a.T / d + 0.3 * np.eye(d)
    return x, s, L


def _frame(x, s, L, kind=IMQ):
    """The CPU layout of points and scores in the eigenbasis of L (IMQ: beta = 1/2)."""
    w, Q = np.linalg.eigh(L)
    return _matrix.Layout(kind, 0.5, x @ Q, s @ Q, w, np.float64)


# --------------------------------------------------------------------- the Stein kernel


@pytest.mark.parametrize("kernel", ["imq", "gaussian"])
@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 9])
def test_column_matches_reference(kernel, d):
    x, s, L = _problem(300, d, seed=d)
    layout = _frame(x, s, L, KINDS[kernel])
    K = ref.preconditioned_stein_matrix(kernel, x, s, L)
    cols = sv.stein_columns(layout, np.array([0, 17, 299]))
    for q, c in enumerate((0, 17, 299)):
        np.testing.assert_allclose(
            cols[:, q],
            K[:, c],
            rtol=RTOL,
            atol=RTOL * np.abs(K).max(),
            err_msg=f"{kernel} d={d} column {c}",
        )
    np.testing.assert_allclose(sv.stein_diagonal(layout), np.diag(K), rtol=RTOL)


@pytest.mark.parametrize("kernel", ["imq", "gaussian"])
@pytest.mark.parametrize("d", [1, 3])
def test_stein_kernel_matches_finite_differences_of_the_base_kernel(kernel, d):
    # k_p = s_x.s_y k + s_x.grad_y k + s_y.grad_x k + tr(grad_x grad_y k), each
    # derivative of the base kernel by central differences.
    x, s, L = _problem(6, d, seed=10 + d)
    y, sy = x[::-1] + 0.3, s[::-1]
    h = 1e-4

    def k(a, b):  # row-wise base kernel
        return np.diag(ref.preconditioned_base_kernel(kernel, a, b, L))

    grad_x = np.empty_like(x)
    grad_y = np.empty_like(x)
    mixed = np.zeros(x.shape[0])
    for j in range(d):
        e = np.zeros(d)
        e[j] = h
        grad_x[:, j] = (k(x + e, y) - k(x - e, y)) / (2 * h)
        grad_y[:, j] = (k(x, y + e) - k(x, y - e)) / (2 * h)
        mixed += (k(x + e, y + e) - k(x + e, y - e) - k(x - e, y + e) + k(x - e, y - e)) / (
            4 * h * h
        )
    fd = (
        np.einsum("ij,ij->i", s, sy) * k(x, y)
        + np.einsum("ij,ij->i", s, grad_y)
        + np.einsum("ij,ij->i", sy, grad_x)
        + mixed
    )
    exact = np.diag(ref.preconditioned_stein_matrix(kernel, x, s, L, y, sy))
    np.testing.assert_allclose(exact, fd, rtol=1e-6, atol=1e-6)


def test_isotropic_preconditioner_is_the_package_imq_kernel():
    # L = I / bw: the package's IMQ Stein kernel with beta = 1/2.
    x, s, _ = _problem(50, 3, seed=3)
    bw = 1.7
    K = ref.preconditioned_stein_matrix("imq", x, s, np.eye(3) / bw)
    np.testing.assert_allclose(K, ref.stein_matrix("imq", x, s, bw, 0.5), rtol=1e-12)
    K = ref.preconditioned_stein_matrix("gaussian", x, s, np.eye(3) / bw)
    np.testing.assert_allclose(K, ref.stein_matrix("gaussian", x, s, bw), rtol=1e-12)


# --------------------------------------------------------------------- the greedy loop


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
@pytest.mark.parametrize("kernel", ["imq", "gaussian"])
@pytest.mark.parametrize("d", [1, 2, 5])
def test_greedy_matches_dense_greedy(kernel, d, parallel):
    x, s, L = _problem(700, d, seed=20 + d)
    layout = _frame(x, s, L, KINDS[kernel])
    K = ref.preconditioned_stein_matrix(kernel, x, s, L)
    idx, totals = sv.greedy_thinning(layout, 60, parallel=parallel)
    idx_ref, totals_ref = ref.greedy_thinning(K, 60)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_allclose(totals, totals_ref, rtol=RTOL)
    rng = np.random.default_rng(d)
    lap, logp = rng.normal(size=700), rng.normal(size=700)
    idx, totals = sv.greedy_thinning(layout, 60, lap, logp, 0.3, parallel=parallel)
    idx_ref, totals_ref = ref.greedy_thinning(K, 60, lap, logp, 0.3)
    np.testing.assert_array_equal(idx, idx_ref)
    np.testing.assert_allclose(totals, totals_ref, rtol=RTOL)


def test_parallel_serial_and_adaptive_are_bit_identical():
    # parallel=None above n d = 2**15 switches between the twins every few steps,
    # as they time: the picks and sums must not depend on which ran when.
    x, s, L = _problem(9000, 4, seed=5)
    layout = _frame(x, s, L)
    assert 9000 * 4 > sv._GREEDY_SERIAL_MAX_WORK
    a = sv.greedy_thinning(layout, 150, parallel=True)
    b = sv.greedy_thinning(layout, 150, parallel=False)
    c = sv.greedy_thinning(layout, 150)
    for other in (b, c):
        np.testing.assert_array_equal(a[0], other[0])
        np.testing.assert_array_equal(a[1], other[1])


@pytest.mark.parametrize("d", [2, 5])
def test_ties_go_to_the_lowest_index(d):
    # A duplicated point has the same objective as its original at every step
    # (each row's value is computed by the same operations wherever it sits), so
    # the copies are never picked and the picks are those of the originals alone.
    # (The dense oracle's einsum does not promise equal rows for equal points.)
    x, s, L = _problem(300, d, seed=6)
    alone = sv.greedy_thinning(_frame(x, s, L), 40, parallel=False)[0]
    x2, s2 = np.concatenate([x, x, x]), np.concatenate([s, s, s])
    layout = _frame(x2, s2, L)
    for parallel in (True, False):
        idx, _ = sv.greedy_thinning(layout, 40, parallel=parallel)
        np.testing.assert_array_equal(idx, alone)


# --------------------------------------------------------------------- stein_thinning


def _sample(n=40):
    rng = np.random.default_rng(2026)
    x = rng.normal(size=(n, 2)) * [1.0, 3.0] + [0.5, -1.0]
    return x, -(x - [0.5, -1.0]) / [1.0, 9.0]


# Indices stein-thinning 0.2.0's thin(x, s, 10, standardize, preconditioner) returns
# for _sample(): the comparison runs even where stein-thinning is not installed.
PINNED = [
    ("id", True, [6, 22, 17, 9, 2, 18, 39, 34, 12, 30]),
    ("med", False, [6, 9, 19, 26, 20, 28, 37, 34, 2, 9]),
    ("sclmed", True, [6, 22, 17, 9, 2, 18, 39, 34, 12, 30]),
    ("smpcov", True, [6, 19, 34, 29, 9, 26, 2, 18, 37, 3]),
    ("0.5", False, [6, 7, 18, 2, 28, 5, 34, 10, 19, 39]),
]


@pytest.mark.parametrize("preconditioner, standardize, expected", PINNED)
def test_pinned_stein_thinning_indices(preconditioner, standardize, expected):
    x, s = _sample()
    res = kn.stein_thinning(x, s, 10, preconditioner=preconditioner, standardize=standardize)
    assert res.indices.tolist() == expected
    assert res.indices.dtype == np.int64


@pytest.mark.parametrize("preconditioner", ["id", "med", "sclmed", "smpcov", "2.5"])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("n, d", [(1500, 3), (400, 1), (300, 6)])
def test_same_indices_as_stein_thinning(preconditioner, standardize, n, d):
    thinning = pytest.importorskip("stein_thinning.thinning")
    if preconditioner == "smpcov" and d == 1:
        pytest.skip("stein-thinning's smpcov fails at d = 1 (tested below)")
    rng = np.random.default_rng(n + d)
    x = rng.standard_t(4, size=(n, d)) * rng.uniform(0.5, 3.0, size=d)
    s = -x / (1.0 + x**2)
    theirs = thinning.thin(x, s, 80, standardize=standardize, preconditioner=preconditioner)
    ours = kn.stein_thinning(x, s, 80, standardize=standardize, preconditioner=preconditioner)
    np.testing.assert_array_equal(ours.indices, theirs.astype(np.int64))


def test_ksd_is_stein_thinnings_ksd_of_the_picks():
    x, s = _sample(200)
    res = kn.stein_thinning(x, s, 30, preconditioner="med")
    z = x / res.scale
    K = ref.preconditioned_stein_matrix("imq", z, s * res.scale, res.preconditioner)
    expected = [
        np.sqrt(K[np.ix_(res.indices[:t], res.indices[:t])].sum()) / t for t in range(1, 31)
    ]
    np.testing.assert_allclose(res.ksd, expected, rtol=1e-10)
    stein = pytest.importorskip("stein_thinning.stein")
    kernel = pytest.importorskip("stein_thinning.kernel")
    zi, si = z[res.indices], (s * res.scale)[res.indices]

    def integrand(a, b):
        return kernel.vfk0_imq(zi[a], zi[b], si[a], si[b], res.preconditioner)

    np.testing.assert_allclose(res.ksd, stein.ksd(integrand, 30), rtol=1e-10)


def test_preconditioners_follow_stein_thinnings_definitions():
    from scipy.spatial.distance import pdist

    rng = np.random.default_rng(1)
    x = rng.normal(size=(2500, 3))
    s = -x
    z = x / np.mean(np.abs(x - x.mean(axis=0)), axis=0)
    med2 = np.median(pdist(z[np.linspace(0, 2499, 1000, dtype=int)])) ** 2
    L = kn.stein_thinning(x, s, 2, preconditioner="med").preconditioner
    np.testing.assert_allclose(L, np.eye(3) / med2, rtol=1e-14)
    L = kn.stein_thinning(x, s, 2, preconditioner="sclmed").preconditioner
    np.testing.assert_allclose(L, np.log(1000) * np.eye(3) / med2, rtol=1e-14)
    L = kn.stein_thinning(x, s, 2, preconditioner="smpcov").preconditioner
    np.testing.assert_allclose(L, np.linalg.inv(np.cov(z, rowvar=False)), rtol=1e-10)
    L = kn.stein_thinning(x, s, 2, preconditioner=4.0, standardize=False).preconditioner
    np.testing.assert_array_equal(L, np.eye(3) / 4.0)
    np.testing.assert_array_equal(
        kn.stein_thinning(x, s, 2, preconditioner="id").preconditioner, np.eye(3)
    )


@pytest.mark.parametrize("diagonal", [True, False])
def test_matrix_preconditioner_is_a_covariance(diagonal):
    x, s = _sample(300)
    gamma = np.diag([0.7, 2.0]) if diagonal else np.array([[0.7, 0.3], [0.3, 2.0]])
    res = kn.stein_thinning(x, s, 25, preconditioner=gamma, standardize=False)
    np.testing.assert_allclose(res.preconditioner, np.linalg.inv(gamma), rtol=1e-12)
    K = ref.preconditioned_stein_matrix("imq", x, s, np.linalg.inv(gamma))
    np.testing.assert_array_equal(res.indices, ref.greedy_thinning(K, 25)[0])


def test_smpcov_works_in_one_dimension():
    rng = np.random.default_rng(3)
    x = 2.0 * rng.normal(size=(500, 1))
    res = kn.stein_thinning(
        x.tolist(), (-x / 4.0).tolist(), 10, preconditioner="smpcov", standardize=False
    )
    np.testing.assert_allclose(res.preconditioner, [[1.0 / np.var(x, ddof=1)]], rtol=1e-12)
    same = kn.stein_thinning(x, -x / 4.0, 10, preconditioner=np.var(x, ddof=1), standardize=False)
    np.testing.assert_array_equal(res.indices, same.indices)


def test_gaussian_kernel_and_repeats():
    x, s = _sample(5)
    res = kn.stein_thinning(x, s, 12, kernel="gaussian", preconditioner="id")
    assert res.indices.shape == (12,) and len(set(res.indices.tolist())) <= 5
    z, sz = x / res.scale, s * res.scale
    K = ref.preconditioned_stein_matrix("gaussian", z, sz, np.eye(2))
    np.testing.assert_array_equal(res.indices, ref.greedy_thinning(K, 12)[0])


# --------------------------------------------------------------------- regularised


def _mixture_chain(n, seed):
    """A random-walk Metropolis chain on two modes, started in the right one: it
    crosses rarely, so the right mode holds more than its half."""
    target = kn.GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], [0.5, 0.5])
    rng = np.random.default_rng(seed)
    steps = 0.6 * rng.normal(size=(n, 2))
    logu = np.log(rng.uniform(size=n))
    x = np.array([2.0, 0.0])
    lp = target.logpdf(x[None])[0]
    chain = np.empty((n, 2))
    for i in range(n):
        y = x + steps[i]
        ly = target.logpdf(y[None])[0]
        if logu[i] < ly - lp:
            x, lp = y, ly
        chain[i] = x
    return target, chain


def test_regularised_thinning_avoids_low_density_points():
    # Benard et al. (2023): plain Stein thinning over-selects points where p is
    # small; the regularised objective fixes it.
    target, chain = _mixture_chain(4000, seed=0)
    s = target.score(chain)
    threshold = np.quantile(target.logpdf(target.sample(20000, rng=1)), 0.05)
    plain = kn.stein_thinning(chain, s, 100)
    reg = kn.stein_thinning(chain, s, 100, regularize=True, target=target)
    low_plain = np.mean(target.logpdf(chain[plain.indices]) < threshold)
    low_reg = np.mean(target.logpdf(chain[reg.indices]) < threshold)
    assert low_plain > 0.08  # 5 % of exact samples would be there
    assert low_reg < 0.03
    assert reg.regularize == 0.01


def test_regularisation_inputs_agree():
    target, chain = _mixture_chain(600, seed=2)
    s = target.score(chain)
    scale = np.mean(np.abs(chain - chain.mean(axis=0)), axis=0)
    hdiag = np.stack(
        [target.hvp(chain, np.tile(e, (600, 1)))[:, k] for k, e in enumerate(np.eye(2))], axis=1
    )
    lap_plus = np.sum(np.maximum(hdiag, 0.0) * scale**2, axis=1)
    by_target = kn.stein_thinning(chain, s, 40, regularize=0.05, target=target)
    by_diag = kn.stein_thinning(
        chain, s, 40, regularize=0.05, log_p=target.logpdf(chain), laplacian=hdiag
    )
    by_lap = kn.stein_thinning(
        chain, s, 40, regularize=0.05, log_p=target.logpdf(chain)[:, None], laplacian=lap_plus
    )
    np.testing.assert_array_equal(by_target.indices, by_diag.indices)
    np.testing.assert_array_equal(by_target.indices, by_lap.indices)
    # The objective, from the dense oracle in standardised coordinates.
    z, sz = chain / scale, s * scale
    K = ref.preconditioned_stein_matrix("imq", z, sz, by_target.preconditioner)
    expected = ref.greedy_thinning(K, 40, lap_plus, target.logpdf(chain), 0.05)[0]
    np.testing.assert_array_equal(by_target.indices, expected)
    # lam = 0 with a zero Laplacian is plain thinning
    zero = kn.stein_thinning(
        chain, s, 40, regularize=0.0, log_p=np.zeros(600), laplacian=np.zeros(600)
    )
    np.testing.assert_array_equal(zero.indices, kn.stein_thinning(chain, s, 40).indices)


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "m, error, match",
    [
        (0, ValueError, "m must be >= 1"),
        (-3, ValueError, "m must be >= 1"),
        (2.5, TypeError, "m must be an integer"),
    ],
)
def test_bad_m(m, error, match):
    x, s = _sample()
    with pytest.raises(error, match=match):
        kn.stein_thinning(x, s, m)


@pytest.mark.parametrize(
    "preconditioner, error, match",
    [
        (0.0, ValueError, "positive and finite"),
        (-1.0, ValueError, "positive and finite"),
        (float("nan"), ValueError, "positive and finite"),
        ("0", ValueError, "positive and finite"),
        ("-2", ValueError, "positive and finite"),
        ("nan", ValueError, "positive and finite"),
        ("cov", ValueError, "unknown preconditioner 'cov'; valid names are 'id'"),
        ([[1.0, 2.0], [2.0, 1.0]], ValueError, "not positive definite"),
        ([[1.0, 0.5], [0.0, 1.0]], ValueError, "not symmetric"),
        (np.eye(3), ValueError, r"shape \(2, 2\)"),
        ([[1.0, np.nan], [np.nan, 1.0]], ValueError, "non-finite"),
        (True, TypeError, "preconditioner must be"),
        (None, TypeError, "preconditioner must be"),
    ],
)
def test_bad_preconditioner(preconditioner, error, match):
    x, s = _sample()
    with pytest.raises(error, match=match):
        kn.stein_thinning(x, s, 3, preconditioner=preconditioner)


def test_degenerate_samples():
    x, s = _sample()
    x[:, 1] = 1.0
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] of sample are constant"):
        kn.stein_thinning(x, s, 3)
    with pytest.raises(ValueError, match="smpcov.*not positive definite"):
        kn.stein_thinning(x, s, 3, preconditioner="smpcov", standardize=False)
    same = np.zeros((10, 2))
    with pytest.raises(ValueError, match="median distance between the points is 0"):
        kn.stein_thinning(same, same, 3, preconditioner="med", standardize=False)
    with pytest.raises(ValueError, match="need at least 2 points"):
        kn.stein_thinning(same[:1], same[:1], 3, preconditioner="sclmed", standardize=False)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"scores": np.zeros((40, 3))}, ValueError, r"scores must have the shape of sample"),
        ({"scores": np.full((40, 2), np.nan)}, ValueError, "scores contains non-finite"),
        ({"sample": np.full((40, 2), np.inf)}, ValueError, "sample contains non-finite"),
        ({"kernel": "linear"}, ValueError, "unknown kernel 'linear'"),
        ({"backend": "gpu"}, ValueError, "unknown backend 'gpu'"),
        ({"standardize": "yes"}, TypeError, "standardize must be True or False"),
        ({"regularize": True}, ValueError, "needs the log density and its Laplacian"),
        ({"regularize": -1.0}, ValueError, "regularize must be non-negative"),
        ({"regularize": "1/m"}, TypeError, "regularize must be None, True"),
        ({"log_p": np.zeros(40)}, ValueError, "log_p given but regularize is None"),
        (
            {"regularize": True, "log_p": np.zeros(40), "laplacian": np.zeros(39)},
            ValueError,
            r"laplacian must have shape \(40,\)",
        ),
        (
            {"regularize": True, "log_p": np.zeros((40, 2)), "laplacian": np.zeros(40)},
            ValueError,
            r"log_p must have shape \(40,\)",
        ),
        (
            {"regularize": True, "log_p": np.zeros(40), "laplacian": np.zeros((40, 3))},
            ValueError,
            "laplacian must have the shape of sample",
        ),
        (
            {"regularize": True, "target": lambda x: -x},
            TypeError,
            "needs a target with logpdf and hvp",
        ),
        (
            {"regularize": True, "target": kn.Gaussian(np.zeros(2), 1.0), "log_p": np.zeros(40)},
            ValueError,
            "either target or the arrays",
        ),
    ],
)
def test_bad_arguments(kwargs, error, match):
    x, s = _sample()
    args = {"sample": x, "scores": s, **kwargs}
    sample, scores = args.pop("sample"), args.pop("scores")
    with pytest.raises(error, match=match):
        kn.stein_thinning(sample, scores, 3, **args)


def test_cuda_without_a_gpu_says_why(monkeypatch):
    from ksdnumba.kernels import _backend

    monkeypatch.setattr(_backend, "_simulating", lambda: False)
    monkeypatch.setattr(_backend, "_cuda_status", lambda: (False, "no GPU in this test"))
    x, s = _sample()
    with pytest.raises(RuntimeError, match=r"backend='cuda' needs an NVIDIA GPU.*no GPU in this"):
        kn.stein_thinning(x, s, 3, backend="cuda")
    assert kn.stein_thinning(x, s, 3, backend="auto").backend == "cpu"


@pytest.mark.slow
def test_validation_survives_python_O():
    code = (
        "import numpy as np, ksdnumba as kn\n"
        "x = np.random.default_rng(0).normal(size=(20, 2))\n"
        "for bad in (0.0, -1.0, float('nan')):\n"
        "    try:\n"
        "        kn.stein_thinning(x, -x, 3, preconditioner=bad)\n"
        "    except ValueError:\n"
        "        continue\n"
        "    raise SystemExit('accepted ' + repr(bad))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_gallery_example_runs(tmp_path):
    pytest.importorskip("matplotlib")
    import os
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    script = root / "examples" / "plot_stein_thinning.py"
    # This checkout's package first, installed or not.
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    png = tmp_path / "plot_stein_thinning.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    low = {
        line.split(":")[0]: int(line.split(", ")[1].split("%")[0])
        for line in proc.stdout.splitlines()
        if "low-density regions" in line
    }
    assert low["regularised Stein thinning"] < low["Stein thinning"], proc.stdout
    burn, after = [line for line in proc.stdout.splitlines() if line.startswith("KSD test")]
    assert burn.endswith("reject: True") and after.endswith("reject: False"), proc.stdout
