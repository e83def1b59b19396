"""The numba CPU kernels against the dense NumPy reference."""

import numpy as np
import pytest
from numba import njit

from ksdnumba.kernels import _cpu
from ksdnumba.kernels import _reference as ref
from ksdnumba.kernels._cpu import _direct, _vecmath
from ksdnumba.kernels._kinds import IMQ, KINDS

RTOL = 1e-10


def _problem(n, d, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return scale * rng.normal(size=(n, d)), rng.normal(size=(n, d))


def _cpu_sums(kernel, x, s, bw, beta, parallel=None):
    if kernel == "gaussian":
        return _cpu.gaussian_stein_sums(x, s, bw, parallel=parallel)
    if kernel == "imq":
        return _cpu.imq_stein_sums(x, s, bw, beta, parallel=parallel)
    return _cpu.linear_stein_sums(x, s)


def _cpu_total(kernel, x, s, bw, beta, parallel=None):
    if kernel == "gaussian":
        return _cpu.gaussian_stein_total(x, s, bw, parallel=parallel)
    if kernel == "imq":
        return _cpu.imq_stein_total(x, s, bw, beta, parallel=parallel)
    return _cpu.linear_stein_total(x, s)


def _cpu_diagonal(kernel, x, s, bw, beta):
    if kernel == "linear":
        return _cpu.linear_stein_diagonal(x, s)
    d = x.shape[1]
    layout = _cpu.stein_layout(KINDS[kernel], beta, x, s, np.full(d, 1.0 / bw), np.float64, d / bw)
    return _cpu.stein_diagonal(layout)


def _assert_rows_close(actual, expected, err_msg):
    # Row sums can cancel to ~0; measure their error against the largest entry.
    atol = RTOL * max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=err_msg)


def _assert_sums_match(kernel, x, s, bw, beta, parallel, msg):
    total, gx, gs = ref.stein_sums(kernel, x, s, bw, beta)
    total_cpu, gx_cpu, gs_cpu = _cpu_sums(kernel, x, s, bw, beta, parallel)
    np.testing.assert_allclose(total_cpu, total, rtol=RTOL, err_msg=msg)
    _assert_rows_close(gx_cpu, gx, msg + " (gradient in x)")
    _assert_rows_close(gs_cpu, gs, msg + " (gradient in s)")
    total_only = _cpu_total(kernel, x, s, bw, beta, parallel)
    np.testing.assert_allclose(total_only, total, rtol=RTOL, err_msg=msg + " (total)")


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [1, 2, 17, 200])
@pytest.mark.parametrize("bw", [0.1, 1.0, 7.0])
def test_gaussian_sums_match_reference(n, d, bw, parallel):
    x, s = _problem(n, d, seed=n * 10 + d)
    _assert_sums_match("gaussian", x, s, bw, 0.5, parallel, f"n={n} d={d} bw={bw} {parallel}")


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("n", [1, 17, 200])
@pytest.mark.parametrize("bw, beta", [(0.1, 0.5), (1.0, 0.2), (7.0, 0.9), (1.0, 0.5)])
def test_imq_sums_match_reference(n, d, bw, beta, parallel):
    x, s = _problem(n, d, seed=n * 10 + d)
    msg = f"n={n} d={d} bw={bw} beta={beta} {parallel}"
    _assert_sums_match("imq", x, s, bw, beta, parallel, msg)


@pytest.mark.parametrize("d", [1, 2, 5])
@pytest.mark.parametrize("n", [1, 2, 17, 200])
def test_linear_sums_match_reference(n, d):
    x, s = _problem(n, d, seed=n * 10 + d)
    _assert_sums_match("linear", x, s, 1.0, 0.5, None, f"n={n} d={d}")


@pytest.mark.parametrize("kernel", ["gaussian", "imq", "linear"])
def test_diagonal_matches_reference(kernel):
    x, s = _problem(9, 3)
    K = ref.stein_matrix(kernel, x, s, 0.7, 0.3)
    np.testing.assert_allclose(_cpu_diagonal(kernel, x, s, 0.7, 0.3), np.diag(K), rtol=1e-13)


@pytest.mark.parametrize("kernel", ["gaussian", "imq"])
@pytest.mark.parametrize("n", [255, 256, 257, 600])
def test_partner_blocks_cover_every_pair(kernel, n):
    """n around and above the block size: every partner j is counted once."""
    x, s = _problem(n, 2, seed=n)
    _assert_sums_match(kernel, x, s, 0.5, 0.5, None, f"n={n}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("d", [2, 3], ids=["one-loop-2d-rows", "blocked-rows"])
@pytest.mark.parametrize("kernel", ["gaussian", "imq"])
def test_parallel_and_serial_are_bit_identical(kernel, d, dtype):
    # float32 rows from n = 1000 on
    x, s = _problem(300 if dtype == np.float64 else 1100, d)
    x, s = x.astype(dtype), s.astype(dtype)
    a = _cpu_sums(kernel, x, s, 0.3, 0.5, parallel=True)
    b = _cpu_sums(kernel, x, s, 0.3, 0.5, parallel=False)
    c = _cpu_sums(kernel, x, s, 0.3, 0.5, parallel=True)
    for u, v, w in zip(a, b, c):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(u, w)


@pytest.mark.parametrize("kernel", ["gaussian", "imq", "linear"])
def test_stein_matrix_is_symmetric(kernel):
    x, s = _problem(30, 3)
    K = ref.stein_matrix(kernel, x, s, 0.8, 0.5)
    np.testing.assert_allclose(K, K.T, rtol=1e-13, atol=1e-13)


def _base_kernel_and_derivatives(kernel, x, y, bw, beta):
    """k, grad_x k, grad_y k and tr(grad_x grad_y k), written from scratch."""
    u = x - y
    d = x.size
    if kernel == "gaussian":
        k = np.exp(-u @ u / (2 * bw))
        return k, -u / bw * k, u / bw * k, k * (d / bw - u @ u / bw**2)
    if kernel == "imq":
        q = 1 + u @ u / bw
        gx = -2 * beta / bw * q ** (-beta - 1) * u
        trace = 2 * beta * d / bw * q ** (-beta - 1) - 4 * beta * (beta + 1) / bw**2 * (
            u @ u
        ) * q ** (-beta - 2)
        return q**-beta, gx, -gx, trace
    return x @ y, y, x, float(d)


@pytest.mark.parametrize("kernel", ["gaussian", "imq", "linear"])
def test_reference_stein_kernel_from_its_definition(kernel):
    """k_p = s(x).s(y) k + s(x).grad_y k + s(y).grad_x k + tr(grad_x grad_y k)."""
    rng = np.random.default_rng(3)
    d, bw, beta = 3, 0.6, 0.3
    x, y, sx, sy = rng.normal(size=(4, d))
    k, grad_x, grad_y, trace = _base_kernel_and_derivatives(kernel, x, y, bw, beta)
    expected = sx @ sy * k + sx @ grad_y + sy @ grad_x + trace
    K = ref.stein_matrix(kernel, np.stack([x, y]), np.stack([sx, sy]), bw, beta)
    np.testing.assert_allclose(K[0, 1], expected, rtol=1e-13)


@pytest.mark.parametrize("kernel", ["gaussian", "imq", "linear"])
def test_gradients_match_finite_differences_of_the_pair_sum(kernel):
    """gx and gs are the partial derivatives of sum_j k_p(x_i, x_j) in x_i and s_i."""
    x, s = _problem(6, 2, seed=5)
    bw, beta, h = 0.9, 0.4, 1e-6
    _, gx, gs = _cpu_sums(kernel, x, s, bw, beta)
    diag = _cpu_diagonal(kernel, x, s, bw, beta)

    def row_sum(xx, ss, i):
        return ref.stein_matrix(kernel, xx, ss, bw, beta)[i].sum()

    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            e = np.zeros_like(x)
            e[i, k] = h
            fd_x = (row_sum(x + e, s, i) - row_sum(x - e, s, i)) / (2 * h)
            fd_s = (row_sum(x, s + e, i) - row_sum(x, s - e, i)) / (2 * h)
            # The diagonal term k_p(x_i, x_i) moves with both of its arguments;
            # gx and gs differentiate the first only, so take that term's other
            # half out of the finite difference.
            ed = np.zeros_like(x)
            ed[i, k] = h
            fd_diag_x = (
                _cpu_diagonal(kernel, x + ed, s, bw, beta)[i]
                - _cpu_diagonal(kernel, x - ed, s, bw, beta)[i]
            ) / (2 * h)
            fd_diag_s = (
                _cpu_diagonal(kernel, x, s + ed, bw, beta)[i]
                - _cpu_diagonal(kernel, x, s - ed, bw, beta)[i]
            ) / (2 * h)
            assert np.isfinite(diag[i])
            np.testing.assert_allclose(gx[i, k], fd_x - fd_diag_x / 2, rtol=1e-7, atol=1e-8)
            np.testing.assert_allclose(gs[i, k], fd_s - fd_diag_s / 2, rtol=1e-7, atol=1e-8)


def test_coincident_particles_are_finite():
    x = np.zeros((5, 2))
    s = np.ones((5, 2))
    total, gx, gs = _cpu.gaussian_stein_sums(x, s, 1.0)
    np.testing.assert_allclose(total, 25 * (2.0 + 2.0), rtol=1e-14)
    np.testing.assert_array_equal(gx, 0.0)
    np.testing.assert_allclose(gs, 5.0, rtol=1e-14)
    total, gx, gs = _cpu.imq_stein_sums(x, s, 1.0, 0.5)
    np.testing.assert_allclose(total, 25 * (2.0 + 2.0), rtol=1e-14)
    np.testing.assert_array_equal(gx, 0.0)


def test_far_pairs_underflow_to_zero():
    x = np.array([[0.0], [1e3]])
    s = np.zeros((2, 1))
    total, gx, gs = _cpu.gaussian_stein_sums(x, s, 1.0)
    np.testing.assert_allclose(total, 2.0, rtol=1e-14)  # only the diagonal, d / bw each
    np.testing.assert_array_equal(gx, 0.0)
    assert np.isfinite(gs).all()


def test_imq_at_huge_distances_matches_reference():
    """IMQ decays only polynomially: far pairs still count, and stay finite."""
    x = np.array([[0.0, 0.0], [1e6, -3e5], [2.0, 1e8]])
    s = np.array([[1.0, -1.0], [0.5, 2.0], [-3.0, 0.1]])
    _assert_sums_match("imq", x, s, 0.5, 0.5, False, "far pairs")


@pytest.mark.slow
@pytest.mark.parametrize(
    "kernel, beta",
    [("gaussian", 0.5), ("imq", 0.5), ("imq", 0.3)],
    ids=["gaussian", "imq-half", "imq-0.3"],
)
@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
def test_float32_direct_rows_against_float64(kernel, beta, d, parallel):
    """float32 rows: the error of float32 rounding, no more; float64 results."""
    n = 4 * _direct._BLOCK + 37  # float32 from n = 1000; the last block short
    x, s = _problem(n, d, seed=d)
    x32, s32 = x.astype(np.float32), s.astype(np.float32)
    bw = 0.5 * d + 0.3
    exact = ref.stein_sums(kernel, x32.astype(np.float64), s32.astype(np.float64), bw, beta)
    total, gx, gs = _cpu_sums(kernel, x32, s32, bw, beta, parallel)
    assert gx.dtype == gs.dtype == np.float64
    # Measured: up to 2e-6 of the largest entry (float32's epsilon is 1.2e-7).
    for got, want, name in ((total, exact[0], "total"), (gx, exact[1], "gx"), (gs, exact[2], "gs")):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * scale, err_msg=name)
    value = _cpu_total(kernel, x32, s32, bw, beta, parallel)
    np.testing.assert_allclose(value, exact[0], rtol=2e-5)
    # ... and the rows did compute in float32 where they can (float64 rows err
    # by ~1e-15); IMQ with beta != 1/2 computes in float64.
    err = np.abs(gx - exact[1]).max() / np.abs(exact[1]).max()
    if kernel == "gaussian" or beta == 0.5:
        assert err > 1e-10
    else:
        assert err < 1e-12


def test_float32_rows_sum_in_float64_across_blocks():
    """Many equal pairs: a float32 running sum over all of them would drift.

    Every pair of n = 20,000 particles at one point has ``k_p = |s|^2 + d / h``.
    Summed in float32 along whole rows of 20,000 terms, each row would carry
    an error of ~5e-6; over blocks of 256 summed in float64, ~1e-7.
    """
    n, d, bw = 20_000, 2, 0.7
    x = np.full((n, d), 0.25, dtype=np.float32)
    s = np.full((n, d), -0.5, dtype=np.float32)
    total, gx, gs = _cpu.gaussian_stein_sums(x, s, bw)
    per_pair = float(np.sum(s[0].astype(np.float64) ** 2)) + d / bw
    np.testing.assert_allclose(total, n * n * per_pair, rtol=1e-6)
    np.testing.assert_allclose(gs, n * s.astype(np.float64), rtol=1e-6)


def test_imq_general_beta_on_float32_rows():
    """The float32 branch of the general IMQ profile.

    The drivers send beta != 1/2 through float64 rows, so this branch runs only
    when a row is called on float32 arrays directly.
    """
    x, s = _problem(300, 3, seed=7)
    x32, s32 = x.astype(np.float32), s.astype(np.float32)
    xT, sT = np.ascontiguousarray(x32.T), np.ascontiguousarray(s32.T)
    gx = np.empty(x.shape)
    gs = np.empty(x.shape)
    total = _direct.radial_sums_serial(xT, sT, IMQ, 0.8, 0.3, gx, gs, 1)
    exact = ref.stein_sums("imq", x32.astype(np.float64), s32.astype(np.float64), 0.8, 0.3)
    np.testing.assert_allclose(total, exact[0], rtol=2e-5)
    np.testing.assert_allclose(gx, exact[1], rtol=0, atol=2e-5 * np.abs(exact[1]).max())
    np.testing.assert_allclose(gs, exact[2], rtol=0, atol=2e-5 * np.abs(exact[2]).max())


@njit(fastmath=_vecmath._FASTMATH)  # the kernels' own flags: they must not spoil the results
def _special_functions(t, q):
    out_exp = np.empty_like(t)
    out_log = np.empty_like(q)
    for j in range(t.size):
        out_exp[j] = _vecmath._exp_scalar(t[j])
    _vecmath._log_atleast1(q, out_log, np.empty(q.size, dtype=np.int64), q.size)
    return out_exp, out_log


def test_vectorised_exp_and_log_accuracy():
    """The kernels' exp and log match NumPy's to a few ulps."""
    t = np.concatenate(
        [
            -np.linspace(0.0, 708.0, 200_001),
            -np.geomspace(1e-300, 1.0, 1001),
            [-0.0, -708.0, -708.5, -745.0, -1e6],
        ]
    )
    q = np.concatenate(
        [
            1.0 + np.geomspace(1e-17, 1e300, 100_001),
            1.0 + np.linspace(0.0, 10.0, 100_001),
            [1.0, np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 3.0), 2.0, 1.7976931348623157e308],
        ]
    )
    out_exp, out_log = _special_functions(t, q)
    inside = t > -708.0
    expected = np.exp(t[inside])
    assert np.max(np.abs(out_exp[inside] - expected) / expected) < 1e-15
    np.testing.assert_array_equal(out_exp[~inside], 0.0)
    expected = np.log(q)
    # Relative error where log q is not tiny; absolute error near q = 1.
    err = np.abs(out_log - expected) / np.maximum(expected, 1.0)
    assert err.max() < 1e-15, err.max()
    assert out_log[q == 1.0].max() == 0.0


def test_float32_fit_through_float32_rows_lands_near_the_float64_fit():
    """From n = 1000 the 2-D rows compute in float32: a fit still lands where float64's does."""
    import ksdnumba as kn
    from ksdnumba.objective import make_objective

    d, n = 2, 1024
    rng = np.random.default_rng(1)
    target = kn.Gaussian(np.zeros(d), 1.0)
    x0 = 1.5 * rng.normal(size=(n, d)) + 0.3
    objective, _ = make_objective(x0.astype(np.float32), target, "gaussian", 0.3, 0.5, "cpu")
    assert objective.computes_in_float32(x0.astype(np.float32))
    r64 = kn.ksdd_lbfgs(x0, target, bw=0.3, max_iter=120, store=True)
    r32 = kn.ksdd_lbfgs(x0, target, bw=0.3, dtype=np.float32, max_iter=120)
    assert r32.x.dtype == np.float32
    # Along float64's path the float32 objective and gradient keep float32's
    # accuracy; near the minimum the value's pair terms cancel (1e-4 relative).
    # The two fits' objectives after 120 iterations are not compared: rounding
    # sends the runs on different paths, and where they stand then varies from
    # one compiler (Numba, LLVM) to the next.
    for x in r64.trajectory[::20]:
        v64, g64 = kn.ksd_and_grad(x, target, bw=0.3)
        v32, g32 = kn.ksd_and_grad(x.astype(np.float32), target, bw=0.3)
        assert abs(v32 - v64) < 1e-3 * v64
        assert np.abs(g32 - g64).max() < 1e-4 * np.abs(g64).max()
    # The clouds agree in mean and covariance, and the float32 fit descends.
    np.testing.assert_allclose(r32.x.mean(axis=0), r64.x.mean(axis=0), atol=5e-3)
    np.testing.assert_allclose(np.cov(r32.x.T), np.cov(r64.x.T), atol=1e-2)
    assert r32.fun < 0.01 * r32.history[0]


@njit(fastmath=_vecmath._FASTMATH)
def _exp32(t):
    out = np.empty_like(t)
    for j in range(t.size):
        out[j] = _vecmath.fexp(t[j])
    return out


def test_float32_exp_accuracy():
    """The float32 exp: within 2 float32 ulps of the exact value, 0 below -87."""
    t = np.concatenate(
        [
            -np.linspace(0.0, 87.0, 400_001),
            -np.geomspace(1e-30, 1.0, 1001),
            [-0.0, -87.0, -87.5, -104.0, -1e6],
        ]
    ).astype(np.float32)
    out = _exp32(t)
    assert out.dtype == np.float32
    inside = t > -87.0
    expected = np.exp(t[inside].astype(np.float64))
    err = np.abs(out[inside] - expected) / expected
    assert err.max() < 2.0 * np.finfo(np.float32).eps, err.max()
    np.testing.assert_array_equal(out[~inside], 0.0)


@pytest.mark.slow
@pytest.mark.parametrize("kernel, beta", [("gaussian", 0.5), ("imq", 0.5), ("imq", 0.3)])
@pytest.mark.parametrize("n, d", [(300, 2), (1100, 2), (1100, 5), (1100, 8)])
def test_computes_in_float32_says_what_the_sums_do(kernel, beta, n, d):
    """The objective's claim (which sets ksdd_lbfgs's ftol) against the arithmetic."""
    import ksdnumba as kn

    x, s = _problem(n, d, seed=n + d)
    x32, s32 = x.astype(np.float32), s.astype(np.float32)
    exact = ref.stein_sums(kernel, x32.astype(np.float64), s32.astype(np.float64), d, beta)[1]
    gx = _cpu_sums(kernel, x32, s32, d, beta)[1]
    in_float32 = np.abs(gx - exact).max() > 1e-10 * np.abs(exact).max()
    from ksdnumba.objective import make_objective

    objective, _ = make_objective(x32, kn.Gaussian(np.zeros(d), 1.0), kernel, float(d), beta, "cpu")
    assert objective.computes_in_float32(x32) == in_float32


def test_pair_loops_ask_for_wide_vectors():
    """The intrinsic sets LLVM's vector-width attribute, and on AVX-512 it takes."""
    import llvmlite.binding as llvm
    import numba

    @njit(fastmath=True)
    def scaled_sum(a):
        _vecmath._wide_vectors()
        total = 0.0
        for v in a:
            total += 3.0 * v
        return total

    a = np.arange(100.0)
    assert scaled_sum(a) == 3.0 * a.sum()
    signature = scaled_sum.signatures[0]
    assert _vecmath._PREFER_WIDE in scaled_sum.inspect_llvm(signature)
    compiles_for_host = numba.config.CPU_NAME is None and numba.config.CPU_FEATURES is None
    if compiles_for_host and llvm.get_host_cpu_features().get("avx512f", False):
        assert "zmm" in scaled_sum.inspect_asm(signature)
