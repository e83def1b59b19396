"""The CUDA Stein matrix against the CPU's, entry point by entry point, and end to end.

Each entry point of ``ksdnumba.kernels._cuda`` that ``kn.SteinMatrix`` calls is
checked against the CPU backend on the same layout (points rotated into the
metric's eigenbasis): every kind of ``_kinds.KINDS``, IMQ with beta = 1/2 (a
square root) and another beta (a power), an isotropic metric and a random
symmetric positive definite preconditioner; float64 to 1e-10 and float32 to
1e-4 (against the CPU in float64). The CPU backend is itself checked against
the dense NumPy formulas of ``kernels/_reference.py`` by the CPU tests.

In CI this runs in numba's CUDA simulator (tests/conftest.py), one Python
thread per GPU thread: sizes stay small, and blocks of 16 threads (16 rows and
partners in row mode; 4 x 4 threads with tiles of 8 partners in shared mode)
make them span several blocks, partial last tiles, several column groups and
partner splits. ``NUMBA_ENABLE_CUDASIM=0`` runs the same tests on a real GPU,
with the production launch shapes.
"""

import inspect

import numpy as np
import pytest
from numba import config

import ksdnumba as kn
from ksdnumba.kernels import _backend, _cpu
from ksdnumba.kernels._kinds import KINDS, LINEAR

SIMULATOR = bool(config.ENABLE_CUDASIM)
if not SIMULATOR and not _backend._cuda_available():
    pytest.skip(
        f"numba's CUDA simulator is off, and numba cannot use a GPU here "
        f"({_backend._cuda_status()[1]})",
        allow_module_level=True,
    )

from ksdnumba.kernels import _cuda  # noqa: E402  (imports numba.cuda)
from ksdnumba.kernels._cuda import _launch, _matrix, _profiles  # noqa: E402

pytestmark = pytest.mark.slow  # numba's CUDA simulator runs the kernels as Python

RTOL64 = 1e-10
RTOL32 = 1e-4
BW = 0.7
# (kernel, beta, metric): every kind, two IMQ exponents, both metrics of the
# radial kernels ("spd": a random symmetric positive definite preconditioner).
CASES = [
    ("gaussian", 0.5, "iso"),
    ("gaussian", 0.5, "spd"),
    ("imq", 0.5, "iso"),
    ("imq", 0.5, "spd"),
    ("imq", 0.3, "iso"),
    ("imq", 0.3, "spd"),
    ("linear", 0.5, "iso"),
]
IDS = [f"{k}-{b}-{m}" for k, b, m in CASES]
# Launch shapes in the simulator: 16 threads per block everywhere.
SMALL = {
    "TILE": 16,
    "REDUCE_THREADS": 16,
    "POINT_THREADS": 16,
    "MATRIX_ROWS": 4,
    "MATRIX_COLS": 4,
    "MATRIX_PARTNERS": 8,
    "COLUMNS_PER_THREAD": 2,
    "BLOCKS_PER_SM": 1,
    "MAX_GRID_Y": 4,
}


@pytest.fixture(autouse=True)
def _small_blocks_in_the_simulator(monkeypatch):
    """The simulator runs one Python thread per GPU thread: keep blocks small."""
    if SIMULATOR:
        for name, value in SMALL.items():
            monkeypatch.setattr(_launch, name, value)


def _spd(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.5 * np.eye(d)


def _frame(kernel, metric, n, d, seed=0, coincident=False):
    """``(kind, x, s, weights, trace)``: points and scores in the metric's eigenbasis."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    s = -x + 0.5 * rng.normal(size=(n, d))
    if coincident:  # every third point repeats the first, with its score
        x[::3] = x[0]
        s[::3] = s[0]
    if kernel == "linear":
        return LINEAR, x, s, np.ones(d), None
    if metric == "iso":
        return KINDS[kernel], x, s, np.full(d, 1.0 / BW), d / BW
    weights, Q = np.linalg.eigh(np.linalg.inv(_spd(rng, d)))
    return KINDS[kernel], x @ Q, s @ Q, weights, None


def _layouts(kernel, beta, metric, n, d, dtype=np.float64, **kw):
    """The CUDA layout in ``dtype`` and the CPU's in float64, of the same points."""
    kind, x, s, weights, trace = _frame(kernel, metric, n, d, **kw)
    return (
        _cuda.stein_layout(kind, beta, x, s, weights, dtype, trace),
        _cpu.stein_layout(kind, beta, x, s, weights, np.float64, trace),
    )


def _close(actual, expected, rtol, what=""):
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, what
    assert actual.dtype == np.float64, what
    # Sums can cancel to ~0: their error is measured against the largest entry.
    atol = rtol * max(np.abs(expected).max(initial=0.0), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


def _block(n, B, seed=1):
    return np.random.default_rng(seed).normal(size=(n, B))


# ------------------------------------------------------------------ the interface


def test_cuda_backend_has_the_cpu_interface():
    """``kernels("cuda")`` and ``kernels("cpu")``: same functions, same signatures."""
    cpu_only = {
        "SERIAL_MAX_N",
        "SOURCES",
        "computes_in_float32",
        "cross_computes_in_float32",
        "radial_sums_serial",
    }
    assert set(_cuda.__all__) == set(_cpu.__all__) - cpu_only
    for name in _cuda.__all__:
        cuda_params = list(inspect.signature(getattr(_cuda, name)).parameters)
        cpu_params = list(inspect.signature(getattr(_cpu, name)).parameters)
        # the CPU's parameters, in order; each backend may add its own tuning ones
        shared = [p for p in cpu_params if p not in ("parallel", "tile", "n_split", "path")]
        assert cuda_params[: len(shared)] == shared, name


@pytest.mark.parametrize("kernel", list(KINDS))
def test_every_kind_has_a_cuda_profile(kernel):
    """Adding a kind to _kinds.py without its device function fails here."""
    kind = KINDS[kernel]
    for dtype in (np.float32, np.float64):
        assert _profiles.stein_value(kind, False, 3, dtype) is not None
        assert _profiles.tile_terms(kind, 3, dtype) is not None
        assert _profiles.column_terms(kind, 3, dtype) is not None
    with pytest.raises(ValueError, match="no CUDA profile for kernel kind 99"):
        _profiles.stein_value(99, False, 3, np.float64)


# ------------------------------------------------------------------ products and forms


@pytest.mark.parametrize("kernel, beta, metric", CASES, ids=IDS)
def test_products_match_cpu(kernel, beta, metric):
    """H W with one column and three (row mode), and eleven (two column groups)."""
    for n, B in ((19, 1), (19, 3), (11, 11)):
        gpu, cpu = _layouts(kernel, beta, metric, n, 3)
        W = _block(n, B)
        _close(_cuda.stein_products(gpu, W), _cpu.stein_products(cpu, W), RTOL64, f"B={B}")


@pytest.mark.parametrize("kernel, beta, metric", CASES, ids=IDS)
def test_lower_products_and_forms_match_cpu(kernel, beta, metric):
    gpu, cpu = _layouts(kernel, beta, metric, 11, 2, seed=2)
    for B in (1, 6):
        W = _block(11, B, seed=3)
        _close(
            _cuda.stein_products(gpu, W, lower=True),
            _cpu.stein_products(cpu, W, lower=True),
            RTOL64,
            f"lower B={B}",
        )
        _close(_cuda.stein_forms(gpu, W), _cpu.stein_forms(cpu, W), RTOL64, f"forms B={B}")


@pytest.mark.parametrize("kernel, beta", [("gaussian", 0.5), ("imq", 0.5), ("imq", 0.3)])
def test_forms_for_several_bandwidths_in_one_pass(kernel, beta):
    gpu, cpu = _layouts(kernel, beta, "iso", 13, 2, seed=4)
    W = _block(13, 5, seed=5)
    lams = np.array([0.3, 1.0 / BW, 4.0])
    got = _cuda.stein_forms(gpu, W, lams)
    assert got.shape == (3, 5)
    _close(got, _cpu.stein_forms(cpu, W, lams), RTOL64, "several bandwidths")


@pytest.mark.parametrize("metric", ["spd", "linear"])
def test_several_bandwidths_need_an_isotropic_kernel(metric):
    kernel = "linear" if metric == "linear" else "gaussian"
    gpu, _ = _layouts(kernel, 0.5, metric, 5, 2)
    with pytest.raises(ValueError, match="several bandwidths need an isotropic kernel"):
        _cuda.stein_forms(gpu, _block(5, 2), np.array([1.0, 2.0]))


# ------------------------------------------------------------------ blocks and columns


@pytest.mark.parametrize("kernel, beta, metric", CASES, ids=IDS)
def test_dense_columns_and_diagonal_match_cpu(kernel, beta, metric):
    gpu, cpu = _layouts(kernel, beta, metric, 18, 3, seed=6)
    dense = _cuda.stein_dense(gpu)
    want = _cpu.stein_dense(cpu)
    _close(dense, want, RTOL64, "dense")
    np.testing.assert_array_equal(dense, dense.T)  # symmetric to the bit
    cols = np.array([0, 17, 5, 5])
    rows = np.array([4, 0, 17, 4])
    _close(_cuda.stein_columns(gpu, cols), want[:, cols], RTOL64, "columns")
    _close(_cuda.stein_columns(gpu, cols, rows), want[np.ix_(rows, cols)], RTOL64, "some rows")
    _close(_cuda.stein_diagonal(gpu), np.diag(want), RTOL64, "diagonal")
    if kernel != "linear":  # the CPU's columns and diagonal serve the radial kernels
        _close(_cuda.stein_columns(gpu, cols, rows), _cpu.stein_columns(cpu, cols, rows), RTOL64)
        _close(_cuda.stein_diagonal(gpu), _cpu.stein_diagonal(cpu), RTOL64, "diagonal")


# ------------------------------------------------------------------ sizes, ties, dtypes


@pytest.mark.parametrize(
    "n, B", [(1, 1), (15, 1), (16, 1), (17, 1), (1, 5), (7, 5), (8, 5), (9, 5)]
)
def test_both_sides_of_every_tile_boundary(n, B):
    """In the simulator: row mode (B = 1) takes 16 rows and partners per block, shared
    mode (B = 5) 4 rows per block and 8 partners per tile."""
    gpu, cpu = _layouts("imq", 0.5, "spd", n, 2, seed=n)
    W = _block(n, B, seed=n + 1)
    _close(_cuda.stein_products(gpu, W), _cpu.stein_products(cpu, W), RTOL64, "products")
    _close(
        _cuda.stein_products(gpu, W, lower=True),
        _cpu.stein_products(cpu, W, lower=True),
        RTOL64,
        "lower",
    )
    _close(_cuda.stein_forms(gpu, W), _cpu.stein_forms(cpu, W), RTOL64, "forms")
    if B == 1:
        _close(_cuda.stein_dense(gpu), _cpu.stein_dense(cpu), RTOL64, "dense")


@pytest.mark.parametrize("kernel, metric", [("gaussian", "iso"), ("imq", "spd"), ("linear", "iso")])
def test_coincident_points(kernel, metric):
    """Equal points: rho = a = b = 0 exactly, on and off the diagonal."""
    gpu, cpu = _layouts(kernel, 0.3, metric, 10, 3, seed=7, coincident=True)
    W = _block(10, 5, seed=8)
    for B in (1, 5):
        _close(_cuda.stein_products(gpu, W[:, :B]), _cpu.stein_products(cpu, W[:, :B]), RTOL64)
    dense = _cuda.stein_dense(gpu)
    _close(dense, _cpu.stein_dense(cpu), RTOL64, "dense")
    np.testing.assert_array_equal(dense[0, ::3], dense[0, 0])  # the copies of point 0
    if kernel != "linear":
        idx, totals = _cuda.greedy_thinning(gpu, 4)
        idx_cpu, totals_cpu = _cpu.greedy_thinning(cpu, 4, parallel=False)
        np.testing.assert_array_equal(idx, idx_cpu)
        _close(totals, totals_cpu, RTOL64, "totals")


@pytest.mark.parametrize(
    "kernel, beta, metric",
    [case for case in CASES if case[2] == "iso"] + [CASES[3]],
    ids=[i for i, case in zip(IDS, CASES) if case[2] == "iso"] + [IDS[3]],
)
def test_float32_within_1e_4_of_float64(kernel, beta, metric):
    gpu, cpu = _layouts(kernel, beta, metric, 10, 3, dtype=np.float32, seed=9)
    assert gpu.xT_dev.dtype == np.float32
    W = _block(10, 6, seed=10)
    for B in (1, 6):
        _close(
            _cuda.stein_products(gpu, W[:, :B]),
            _cpu.stein_products(cpu, W[:, :B]),
            RTOL32,
            f"float32 B={B}",
        )
    _close(_cuda.stein_forms(gpu, W), _cpu.stein_forms(cpu, W), RTOL32, "float32 forms")
    _close(_cuda.stein_dense(gpu), _cpu.stein_dense(cpu), RTOL32, "float32 dense")
    # columns compute in float64 whatever the tiles' dtype, as on the CPU
    _close(_cuda.stein_columns(gpu, [3]), _cpu.stein_dense(cpu)[:, [3]], RTOL64, "columns")


def test_partner_splits_and_repeated_calls():
    """Splits change the order of the sums, not the result; a rerun is bit-identical."""
    for n, B in ((20, 1), (11, 5)):  # two partner tiles in row mode and in shared mode
        gpu, cpu = _layouts("gaussian", 0.5, "spd", n, 2, seed=11)
        W = _block(n, B, seed=12)
        got = _cuda.stein_products(gpu, W, n_split=2)
        _close(got, _cpu.stein_products(cpu, W), RTOL64, f"B={B}")
        _close(_cuda.stein_forms(gpu, W, n_split=2), _cpu.stein_forms(cpu, W), RTOL64)
        np.testing.assert_array_equal(got, _cuda.stein_products(gpu, W, n_split=2))


def test_no_columns():
    gpu, _ = _layouts("gaussian", 0.5, "iso", 5, 2)
    assert _cuda.stein_products(gpu, np.empty((5, 0))).shape == (5, 0)
    assert _cuda.stein_forms(gpu, np.empty((5, 0))).shape == (0,)
    assert _cuda.stein_columns(gpu, np.empty(0, dtype=np.int64)).shape == (5, 0)


def test_tile_shapes_fit_shared_memory():
    for dtype in (np.float32, np.float64):
        itemsize = np.dtype(dtype).itemsize
        for d in (1, 10, 300, 1000):
            for B, K in ((1, 1), (4, 1), (5, 1), (256, 1), (64, 8)):
                rows, cols, partners, per_thread = _matrix.tile_shape(B, K, d, dtype)
                assert (cols == 1) == (K == 1 and B <= _launch.ROW_MODE_MAX_COLUMNS)
                if cols > 1:  # K running sums per column and thread, as few as the columns
                    assert K * per_thread <= max(_launch.COLUMNS_PER_THREAD, K)
                row = _launch.row_width(2 * d, dtype) * itemsize
                extra = per_thread * cols + (0 if cols == 1 else rows)
                padding = 0 if cols == 1 else rows * itemsize
                used = partners * (row + extra * itemsize) + rows * cols * 8 + padding
                assert used <= _launch.SHARED_BYTES, (d, B, K)


def test_too_large_d_for_shared_memory_is_a_clear_error():
    d = 2900  # one float64 partner row, with its shared-mode extras, is over the limit
    x = np.random.default_rng(0).normal(size=(3, d))
    H = kn.SteinMatrix(x, -x, bw=float(d), backend="cuda")
    with pytest.raises(ValueError, match="too large for backend='cuda'; use backend='cpu'"):
        H @ np.ones((3, 7))


# ------------------------------------------------------------------ kn.SteinMatrix


def _matrices(kernel, beta, preconditioner, dtype=np.float64, n=12, d=2, seed=13):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(dtype)
    s = (-x + 0.5 * rng.normal(size=(n, d))).astype(dtype)
    kw = {"kernel": kernel, "beta": beta}
    if preconditioner:
        kw["preconditioner"] = _spd(rng, d)
    elif kernel != "linear":
        kw["bw"] = BW
    gpu = kn.SteinMatrix(x, s, dtype=dtype, backend="cuda", **kw)
    cpu = kn.SteinMatrix(x.astype(np.float64), s.astype(np.float64), backend="cpu", **kw)
    return gpu, cpu


@pytest.mark.parametrize(
    "kernel, beta, preconditioner",
    [
        ("gaussian", 0.5, False),
        ("imq", 0.5, True),
        ("imq", 0.3, False),
        ("linear", 0.5, False),
    ],
)
def test_stein_matrix_on_cuda_matches_cpu(kernel, beta, preconditioner):
    H, ref = _matrices(kernel, beta, preconditioner)
    assert (H.backend, ref.backend) == ("cuda", "cpu")
    n = H.shape[0]
    v = _block(n, 1, seed=14)[:, 0]
    V = _block(n, 6, seed=15)
    _close(H @ v, ref @ v, RTOL64, "matvec")
    _close(H.matvec(v), ref.matvec(v), RTOL64, "matvec")
    _close(H.matmat(V), ref.matmat(V), RTOL64, "matmat")
    _close(H.row_sums(), ref.row_sums(), RTOL64, "row_sums")
    _close(H.sum(), ref.sum(), RTOL64, "sum")
    _close(H.prefix_sums(), ref.prefix_sums(), RTOL64, "prefix_sums")
    _close(H.quadratic_forms(V), ref.quadratic_forms(V), RTOL64, "quadratic_forms")
    _close(H.quadratic_forms(v), ref.quadratic_forms(v), RTOL64, "one form")
    _close(H.columns([0, 7], rows=[3, 0]), ref.columns([0, 7], rows=[3, 0]), RTOL64, "columns")
    _close(H.column(-1), ref.column(-1), RTOL64, "column")
    _close(H.diagonal(), ref.diagonal(), RTOL64, "diagonal")
    _close(H.toarray(), ref.toarray(), RTOL64, "toarray")


def test_stein_matrix_on_cuda_in_float32():
    H, ref = _matrices("imq", 0.5, True, dtype=np.float32, seed=16)
    assert H.compute_dtype == np.float32
    V = _block(H.shape[0], 6, seed=17)
    _close(H @ V, ref @ V, RTOL32, "matmat")
    _close(H.prefix_sums(), ref.prefix_sums(), RTOL32, "prefix_sums")
    _close(H.quadratic_forms(V), ref.quadratic_forms(V), RTOL32, "quadratic_forms")
    _close(H.toarray(), ref.toarray(), RTOL32, "toarray")


def test_float32_matrix_kernels_use_float32_throughout():
    """A float64 literal in a float32 kernel would silently promote it."""
    if SIMULATOR:
        pytest.skip("the simulator runs Python, not the compiled kernel")
    gpu, _ = _layouts("imq", 0.3, "spd", 300, 3, dtype=np.float32)
    W = _block(300, 40)
    _cuda.stein_products(gpu, W[:, :1])
    _cuda.stein_forms(gpu, W)
    _cuda.stein_dense(gpu)
    checked = 0
    for key, kernel in _launch.KERNELS.items():
        if key[0] not in ("tiles", "entries") or "float32" not in key:
            continue
        for ptx in kernel.inspect_asm().values():
            # The float64 instructions allowed: the sums across tiles, conversions.
            bad = [
                line
                for line in ptx.splitlines()
                if ".f64" in line
                and any(op in line for op in ("mul.", "fma.", "ex2.", "div.", "sqrt."))
            ]
            assert not bad, (key, bad[:5])
            checked += 1
    assert checked >= 3
