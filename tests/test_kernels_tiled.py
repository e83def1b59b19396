"""The GEMM-tiled Stein sums against the dense reference, the direct rows and themselves."""

import contextlib

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ksdnumba as kn
from ksdnumba.kernels import _cpu
from ksdnumba.kernels import _reference as ref
from ksdnumba.kernels._cpu import _drivers, _tiled
from ksdnumba.kernels._kinds import KINDS

RTOL = 1e-10
TILE = _tiled._TILE


def _problem(n, d, seed=0, scale=1.0, offset=0.0):
    rng = np.random.default_rng(seed)
    return offset + scale * rng.normal(size=(n, d)), rng.normal(size=(n, d))


def _sums(kernel, x, s, bw, beta, **kw):
    if kernel == "gaussian":
        return _cpu.gaussian_stein_sums(x, s, bw, **kw)
    return _cpu.imq_stein_sums(x, s, bw, beta, **kw)


def _total(kernel, x, s, bw, beta, **kw):
    if kernel == "gaussian":
        return _cpu.gaussian_stein_total(x, s, bw, **kw)
    return _cpu.imq_stein_total(x, s, bw, beta, **kw)


def _assert_rows_close(actual, expected, rtol, err_msg):
    # Row sums can cancel to ~0; their error is measured against the largest entry.
    atol = rtol * max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def _assert_matches(expected, actual, rtol, msg):
    total, gx, gs = expected
    np.testing.assert_allclose(actual[0], total, rtol=rtol, err_msg=msg + " (total)")
    _assert_rows_close(actual[1], gx, rtol, msg + " (gradient in x)")
    _assert_rows_close(actual[2], gs, rtol, msg + " (gradient in s)")


KERNELS = [("gaussian", 0.5), ("imq", 0.5), ("imq", 0.3)]
KERNEL_IDS = ["gaussian", "imq-half", "imq-0.3"]


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize(
    "n, d",
    [
        (1, 1),
        (1, 9),
        (2, 9),
        (17, 3),
        (TILE - 1, 8),
        (TILE, 20),
        (TILE + 1, 7),
        (300, 1),
        (300, 50),
        (3 * TILE + 5, 4),
    ],
)
def test_tiled_path_matches_reference(n, d, kernel, beta, parallel):
    """Around the tile size, with an odd number of tiles (a tile sits out each round)."""
    x, s = _problem(n, d, seed=n + d)
    bw = 0.3 * d
    expected = ref.stein_sums(kernel, x, s, bw, beta)
    msg = f"{kernel} beta={beta} n={n} d={d} parallel={parallel}"
    actual = _sums(kernel, x, s, bw, beta, parallel=parallel, path="tiled")
    _assert_matches(expected, actual, RTOL, msg)
    total = _total(kernel, x, s, bw, beta, parallel=parallel, path="tiled")
    np.testing.assert_allclose(total, expected[0], rtol=RTOL, err_msg=msg + " (total alone)")


@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("grad", [True, False], ids=["sums", "total"])
def test_automatic_path_on_both_sides_of_the_crossovers(kernel, beta, grad):
    """Without ``path``, the path named by the thresholds runs, to the bit."""
    min_d, min_n = _drivers._TILED_MIN_D[grad], _drivers._TILED_MIN_N
    assert _drivers._choose_path(min_n, min_d - 1, grad, None) == "direct"
    assert _drivers._choose_path(min_n - 1, min_d, grad, None) == "direct"
    assert _drivers._choose_path(min_n, min_d, grad, None) == "tiled"
    call = _sums if grad else _total
    for n, d in [(min_n, min_d - 1), (min_n - 1, min_d), (min_n, min_d)]:
        x, s = _problem(n, d, seed=d)
        path = _drivers._choose_path(n, d, grad, None)
        auto = call(kernel, x, s, 0.5 * d, beta)
        forced = call(kernel, x, s, 0.5 * d, beta, path=path)
        other = call(kernel, x, s, 0.5 * d, beta, path="direct" if path == "tiled" else "tiled")
        if not grad:
            auto, forced, other = (auto,), (forced,), (other,)
        for u, v, w in zip(auto, forced, other, strict=True):
            np.testing.assert_array_equal(u, v, err_msg=f"n={n} d={d} {path}")
            # Both paths are exact to rounding (each is tested against the reference).
            _assert_rows_close(np.asarray(w), np.asarray(u), 2 * RTOL, f"n={n} d={d}")


@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("bw", [1e-3, 1.0, 1e3])
def test_tiled_path_far_from_the_origin_and_at_extreme_bandwidths(kernel, beta, bw):
    """Centring keeps the Gram products of the order of the spread, not of the position."""
    x, s = _problem(150, 10, seed=7, scale=1.0, offset=1e3)
    expected = ref.stein_sums(kernel, x, s, bw, beta)
    actual = _sums(kernel, x, s, bw, beta, path="tiled")
    _assert_matches(expected, actual, RTOL, f"{kernel} bw={bw}")


@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
def test_tiled_path_with_coincident_particles(kernel, beta):
    """Pairs at distance 0 inside and across tiles: u = 0 stays exact."""
    x, s = _problem(140, 12, seed=3)
    x[70:] = x[:70]  # every particle has a twin, in another tile or the same one
    x[5] = x[6]
    expected = ref.stein_sums(kernel, x, s, 0.8, beta)
    _assert_matches(expected, _sums(kernel, x, s, 0.8, beta, path="tiled"), RTOL, kernel)
    # All particles at one point: gx = 0 and gs = n s_i (phi = 1, u = 0 for every pair).
    n, d = 150, 10
    x = np.full((n, d), 0.3)
    s = np.random.default_rng(1).normal(size=(n, d))
    total, gx, gs = _sums(kernel, x, s, 0.5, beta, path="tiled")
    diagonal = ref.stein_matrix(kernel, x[:1], s[:1], 0.5, beta)[0, 0] - np.dot(
        s[0], s[0]
    )  # the part of k_p(x, x) that is not s . s
    np.testing.assert_allclose(total, np.sum(s.sum(axis=0) ** 2) + n * n * diagonal, rtol=1e-12)
    np.testing.assert_allclose(
        gx, ref.stein_sums(kernel, x, s, 0.5, beta)[1], atol=1e-12 * np.abs(s).max() * n
    )
    np.testing.assert_allclose(gs, np.broadcast_to(s.sum(axis=0), (n, d)), rtol=1e-12)


@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
def test_tiled_path_is_bit_identical_for_any_thread_count(kernel, beta):
    """Fixed tiles and a fixed round order: the same bits serial, threaded, on 1 or 2 threads."""
    x, s = _problem(5 * TILE + 17, 11, seed=4)
    runs = [_sums(kernel, x, s, 2.0, beta, parallel=p, path="tiled") for p in (True, False, True)]
    runs.append(_total(kernel, x, s, 2.0, beta, parallel=True, path="tiled"))
    runs.append(_total(kernel, x, s, 2.0, beta, parallel=False, path="tiled"))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        runs.append(_sums(kernel, x, s, 2.0, beta, parallel=True, path="tiled"))
    finally:
        numba.set_num_threads(threads)
    for run in runs[1:3] + runs[5:]:
        for u, v in zip(runs[0], run, strict=True):
            np.testing.assert_array_equal(u, v)
    assert runs[3] == runs[4] == runs[0][0]


@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("n, d", [(1, 3), (TILE, 6), (3 * TILE + 5, 9)])
def test_ordered_tile_schedule_matches_reference(n, d, kernel, beta):
    """The benchmark's schedule of every ordered pair of tiles: right, and deterministic."""
    kind = KINDS[kernel]
    x, s = _problem(n, d, seed=n + 2 * d)
    runs = [
        _tiled.tiled_radial_sums(kind, x, s, 1.5, beta, True, p, np.float64, symmetric=False)
        for p in (True, False)
    ]
    _assert_matches(ref.stein_sums(kernel, x, s, 1.5, beta), runs[0], RTOL, f"n={n} d={d}")
    for u, v in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(u, v)
    value = _tiled.tiled_radial_sums(
        kind, x, s, 1.5, beta, False, True, np.float64, symmetric=False
    )
    np.testing.assert_allclose(value, runs[0][0], rtol=RTOL)


@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
def test_tiled_gradients_match_finite_differences(kernel, beta):
    """gx and gs are the partial derivatives of sum_j k_p(x_i, x_j) in x_i and s_i."""
    x, s = _problem(TILE + 3, 9, seed=5)
    bw, h = 4.0, 1e-6
    _, gx, gs = _sums(kernel, x, s, bw, beta, path="tiled")
    rows = [0, TILE - 1, TILE + 2]

    def row_sum(xx, ss, i):
        # sum_j k_p(x_i, x_j) with x_i moved only as the first argument: the
        # diagonal pair moves with both, so it is taken as k_p(x_i', x_i).
        xi, si = xx[i : i + 1], ss[i : i + 1]
        others = np.concatenate([xx[:i], x[i : i + 1], xx[i + 1 :]])
        others_s = np.concatenate([ss[:i], s[i : i + 1], ss[i + 1 :]])
        return ref.stein_matrix(
            kernel, np.concatenate([xi, others]), np.concatenate([si, others_s]), bw, beta
        )[0, 1:].sum()

    for i in rows:
        for k in (0, 4, 8):
            e = np.zeros_like(x)
            e[i, k] = h
            fd_x = (row_sum(x + e, s, i) - row_sum(x - e, s, i)) / (2 * h)
            fd_s = (row_sum(x, s + e, i) - row_sum(x, s - e, i)) / (2 * h)
            np.testing.assert_allclose(gx[i, k], fd_x, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(gs[i, k], fd_s, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("d", [3, 10, 50, _tiled._TILE32_WIDE_MIN_D + 6])
def test_float32_tiles_against_float64(kernel, beta, d):
    """float32 tiles, float64 accumulation: the error of float32 rounding, no more.

    From d = 64 on, float32 tiles have 256 rows: n = 385 is one full tile and
    one partial.
    """
    x, s = _problem(3 * TILE + 1, d, seed=d)
    x32, s32 = x.astype(np.float32), s.astype(np.float32)
    bw = 0.5 * d
    exact = ref.stein_sums(kernel, x32.astype(np.float64), s32.astype(np.float64), bw, beta)
    total, gx, gs = _sums(kernel, x32, s32, bw, beta, path="tiled")
    assert gx.dtype == gs.dtype == np.float64
    # Measured: 1e-7 to 2e-6 of the largest entry; float32's epsilon is 1.2e-7,
    # and each entry sums n terms of rounded products.
    _assert_matches(exact, (total, gx, gs), 2e-5, f"{kernel} d={d} float32")
    # ... and the tiles did compute in float32: float64 tiles err by ~1e-15.
    assert np.abs(gx - exact[1]).max() > 1e-10 * np.abs(exact[1]).max()


@pytest.mark.parametrize("kernel, beta", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("spread, score", [(1e-3, 1e3), (1e3, 1e-3)], ids=["narrow", "wide"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tiled_path_with_scores_and_positions_of_different_sizes(
    kernel, beta, spread, score, dtype
):
    """The cross products come from ``z = alpha x + s / alpha``: alpha must balance them.

    With ``alpha = 1`` here, ``|z|^2`` is ``|s|^2`` (or ``|x|^2``), 1e6 times the
    cross products it carries, and the float32 sums erred by 1e-2 (float64:
    3e-11) of their largest entry.
    """
    rng = np.random.default_rng(5)
    n, d = 2 * TILE + 3, 12
    x = spread * rng.normal(size=(n, d))
    s = -score / spread * x + 0.3 * score * rng.normal(size=(n, d))
    x, s = x.astype(dtype), s.astype(dtype)
    bw = 0.5 * d * spread**2
    exact = ref.stein_sums(kernel, x.astype(np.float64), s.astype(np.float64), bw, beta)
    actual = _sums(kernel, x, s, bw, beta, path="tiled")
    rtol = RTOL if dtype == np.float64 else 2e-5
    _assert_matches(exact, actual, rtol, f"{kernel} beta={beta} {np.dtype(dtype).name}")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 2 * TILE + 9),
    d=st.integers(1, 24),
    kernel=st.sampled_from(["gaussian", "imq"]),
    bw=st.floats(0.05, 50.0),
    beta=st.floats(0.05, 0.95),
    scale=st.floats(0.01, 10.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_tiled_and_direct_paths_agree(n, d, kernel, bw, beta, scale, seed):
    x, s = _problem(n, d, seed=seed, scale=scale)
    direct = _sums(kernel, x, s, bw, beta, path="direct")
    tiled = _sums(kernel, x, s, bw, beta, path="tiled")
    # The direct rows match the reference to 1e-10 (tests/test_kernels_cpu.py);
    # the two paths round differently, so allow both their errors.
    _assert_matches(direct, tiled, 2 * RTOL, f"{kernel} n={n} d={d}")


@contextlib.contextmanager
def _tiled_everywhere():
    """Route every radial Stein sum through the tiled path, whatever n and d."""
    saved = dict(_drivers._TILED_MIN_D), _drivers._TILED_MIN_N
    _drivers._TILED_MIN_D.update({True: 1, False: 1})
    _drivers._TILED_MIN_N = 1
    try:
        yield
    finally:
        _drivers._TILED_MIN_D.update(saved[0])
        _drivers._TILED_MIN_N = saved[1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 9),
    d=st.integers(1, 4),
    kernel=st.sampled_from(["gaussian", "imq"]),
    bw=st.floats(0.05, 20.0),
    beta=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32 - 1),
)
def test_objective_through_the_tiled_path_matches_finite_differences(n, d, kernel, bw, beta, seed):
    from conftest import central_difference_gradient

    rng = np.random.default_rng(seed)
    mean = rng.normal(size=d)
    # A plain score function: a Gaussian target at n <= 64 would take the fused
    # objective, which calls the direct rows itself.
    target = kn.ScoreFunction(lambda z: (mean - z) / 1.3, hvp=lambda z, v: -v / 1.3)
    x = rng.normal(scale=2.0, size=(n, d))
    kw = dict(kernel=kernel, bw=bw, beta=beta)
    with _tiled_everywhere():
        value, grad = kn.ksd_and_grad(x, target, **kw)
        fd = central_difference_gradient(lambda z: kn.ksd(z, target, **kw), x)
    np.testing.assert_allclose(value, ref.ksd_v(kernel, x, target.score(x), bw, beta), rtol=RTOL)
    scale = max(np.abs(fd).max(), 1.0)
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * scale)


def test_path_option_is_checked():
    x, s = _problem(4, 2)
    with pytest.raises(ValueError, match="path must be one of"):
        _cpu.gaussian_stein_sums(x, s, 1.0, path="gemm")


@pytest.mark.slow
def test_float32_fit_through_float32_tiles_converges_near_the_float64_fit():
    """ksdd_lbfgs's default tolerances end a float32 run with success, near float64's fit.

    In float32 the objective is good to ~1e-6 to 1e-5 relative; the default
    ``ftol`` in float32 (1e-10) stops before the line search fails in rounding.
    """
    d, n = 8, 140
    rng = np.random.default_rng(1)
    target = kn.Gaussian(np.zeros(d), 1.0)
    x0 = 1.5 * rng.normal(size=(n, d)) + 0.3
    r64 = kn.ksdd_lbfgs(x0, target, bw=8.0)
    with _tiled_everywhere():
        r32 = kn.ksdd_lbfgs(x0, target, bw=8.0, dtype=np.float32)
        # float64's default asks float32 for more than it can give:
        tight = kn.ksdd_lbfgs(x0, target, bw=8.0, dtype=np.float32, ftol=1e-12)
    assert r32.success, r32.message
    assert r32.x.dtype == np.float32
    # Measured: KSD^2 3.5 % above float64's, the cloud's mean within 1e-3 and its
    # covariance within 2e-3 of float64's (the particles themselves take other
    # paths to other, equally good, minima).
    assert abs(r32.fun - r64.fun) < 0.1 * r64.fun
    np.testing.assert_allclose(r32.x.mean(axis=0), r64.x.mean(axis=0), atol=5e-3)
    np.testing.assert_allclose(np.cov(r32.x.T), np.cov(r64.x.T), atol=1e-2)
    assert r32.fun < 0.01 * r32.history[0]
    # The tighter run gains nothing that float32 can show.
    assert tight.fun > 0.9 * r32.fun


# ------------------------------------------------------------------ base kernel (SVGD, MMD)


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
@pytest.mark.parametrize(
    "n, m, d",
    [
        (1, 1, 1),
        (7, 5, 9),
        (TILE + 2, 300, 20),
        (300, TILE - 1, 3),
        (2 * TILE + 1, 2 * TILE + 1, 16),
    ],
)
def test_tiled_base_kernel_sums_match_reference(n, m, d, parallel):
    rng = np.random.default_rng(n + m + d)
    x, y, s = rng.normal(size=(n, d)), rng.normal(size=(m, d)), rng.normal(size=(n, d))
    bw = 0.7 * d
    msg = f"n={n} m={m} d={d} parallel={parallel}"
    for a, b in ((x, y), (x, x)):
        total, g = ref.gaussian_kernel_sums(a, b, bw)
        total_t, g_t = _cpu.gaussian_kernel_sums(a, b, bw, parallel=parallel, path="tiled")
        np.testing.assert_allclose(total_t, total, rtol=RTOL, err_msg=msg)
        _assert_rows_close(g_t, g, RTOL, msg)
    expected = ref.svgd_direction(x, s, bw)
    actual = _cpu.gaussian_svgd_direction(x, s, bw, parallel=parallel, path="tiled")
    _assert_rows_close(actual, expected, RTOL, msg + " (SVGD)")


def test_tiled_base_kernel_sums_coincident_deterministic_and_float32():
    rng = np.random.default_rng(2)
    n, d = 2 * TILE + 7, 18
    s = rng.normal(size=(n, d))
    # All particles at one point: k = 1, u = 0 for every pair.
    x = np.full((n, d), -0.4)
    np.testing.assert_allclose(
        _cpu.gaussian_svgd_direction(x, s, 1.0, path="tiled"),
        np.broadcast_to(s.mean(axis=0), (n, d)),
        rtol=1e-12,
    )
    total, g = _cpu.gaussian_kernel_sums(x, x, 1.0, path="tiled")
    assert total == n * n
    np.testing.assert_array_equal(g, 0.0)
    # The same bits serial, threaded, on one thread.
    x = rng.normal(size=(n, d))
    runs = [
        _cpu.gaussian_svgd_direction(x, s, 3.0, parallel=p, path="tiled") for p in (True, False)
    ]
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        runs.append(_cpu.gaussian_svgd_direction(x, s, 3.0, parallel=True, path="tiled"))
    finally:
        numba.set_num_threads(threads)
    for run in runs[1:]:
        np.testing.assert_array_equal(run, runs[0])
    # float32 tiles: float32 rounding, no more.
    x32, s32 = x.astype(np.float32), s.astype(np.float32)
    exact = ref.svgd_direction(x32.astype(np.float64), s32.astype(np.float64), 3.0)
    actual = _cpu.gaussian_svgd_direction(x32, s32, 3.0, path="tiled")
    _assert_rows_close(actual, exact, 2e-5, "float32")
    assert np.abs(actual - exact).max() > 1e-10 * np.abs(exact).max()


def test_automatic_path_of_the_base_kernel_sums():
    min_d, min_n = _drivers._TILED_CROSS_MIN_D, _drivers._TILED_CROSS_MIN_N
    rng = np.random.default_rng(3)
    for n, d, path in [(min_n, min_d, "tiled"), (min_n, min_d - 1, "direct")]:
        x, s = rng.normal(size=(n, d)), rng.normal(size=(n, d))
        np.testing.assert_array_equal(
            _cpu.gaussian_svgd_direction(x, s, 2.0),
            _cpu.gaussian_svgd_direction(x, s, 2.0, path=path),
        )
