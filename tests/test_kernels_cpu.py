"""The numba CPU kernels against the dense NumPy reference."""

import numpy as np
import pytest
from numba import njit

from ksdnumba.kernels import _cpu
from ksdnumba.kernels import _reference as ref

RTOL = 1e-10


def _problem(n, d, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return scale * rng.normal(size=(n, d)), rng.normal(size=(n, d))


def _assert_rows_close(actual, expected, err_msg):
    # Row sums can cancel to ~0; measure their error against the largest entry.
    atol = RTOL * max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=err_msg)


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])
@pytest.mark.parametrize("d", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [1, 2, 17, 200])
@pytest.mark.parametrize("bw", [0.1, 1.0, 7.0])
def test_gaussian_sums_match_reference(n, d, bw, parallel):
    x, s = _problem(n, d, seed=n * 10 + d)
    total, gx, gs = ref.gaussian_stein_sums(x, s, bw)
    total_cpu, gx_cpu, gs_cpu = _cpu.gaussian_stein_sums(x, s, bw, parallel=parallel)
    msg = f"n={n} d={d} bw={bw} parallel={parallel}"
    np.testing.assert_allclose(total_cpu, total, rtol=RTOL, err_msg=msg)
    _assert_rows_close(gx_cpu, gx, msg + " (gradient in x)")
    _assert_rows_close(gs_cpu, gs, msg + " (gradient in s)")
    total_only = _cpu.gaussian_stein_total(x, s, bw, parallel=parallel)
    np.testing.assert_allclose(total_only, total, rtol=RTOL, err_msg=msg + " (total)")


@pytest.mark.parametrize("n", [255, 256, 257, 600])
def test_partner_blocks_cover_every_pair(n):
    """n around and above the block size: every partner j is counted once."""
    x, s = _problem(n, 2, seed=n)
    total, gx, gs = ref.gaussian_stein_sums(x, s, 0.5)
    total_cpu, gx_cpu, gs_cpu = _cpu.gaussian_stein_sums(x, s, 0.5)
    np.testing.assert_allclose(total_cpu, total, rtol=RTOL)
    _assert_rows_close(gx_cpu, gx, "gx")
    _assert_rows_close(gs_cpu, gs, "gs")


def test_parallel_and_serial_are_bit_identical():
    x, s = _problem(300, 3)
    a = _cpu.gaussian_stein_sums(x, s, 0.3, parallel=True)
    b = _cpu.gaussian_stein_sums(x, s, 0.3, parallel=False)
    c = _cpu.gaussian_stein_sums(x, s, 0.3, parallel=True)
    for u, v, w in zip(a, b, c):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(u, w)


def test_stein_matrix_is_symmetric_and_sums_agree():
    x, s = _problem(30, 3)
    K = ref.gaussian_stein_matrix(x, s, 0.8)
    np.testing.assert_allclose(K, K.T, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(ref.gaussian_stein_sums(x, s, 0.8)[0], K.sum(), rtol=1e-13)


def test_reference_stein_kernel_from_its_definition():
    """k_p = s(x).s(y) k + s(x).grad_y k + s(y).grad_x k + tr(grad_x grad_y k)."""
    rng = np.random.default_rng(3)
    d, bw = 3, 0.6
    x, y, sx, sy = rng.normal(size=(4, d))
    u = x - y
    k = np.exp(-u @ u / (2 * bw))
    grad_x = -u / bw * k
    grad_y = u / bw * k
    trace = k * (d / bw - u @ u / bw**2)
    expected = sx @ sy * k + sx @ grad_y + sy @ grad_x + trace
    K = ref.gaussian_stein_matrix(np.stack([x, y]), np.stack([sx, sy]), bw)
    np.testing.assert_allclose(K[0, 1], expected, rtol=1e-13)


def test_gradients_match_finite_differences_of_the_pair_sum():
    """gx and gs are the partial derivatives of sum_j k_p(x_i, x_j) in x_i and s_i."""
    x, s = _problem(6, 2, seed=5)
    bw, h = 0.9, 1e-6
    _, gx, gs = _cpu.gaussian_stein_sums(x, s, bw)

    def row_sum(xx, ss, i):
        return ref.gaussian_stein_matrix(xx, ss, bw)[i].sum()

    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            e = np.zeros_like(x)
            e[i, k] = h
            # Only k_p(x_i, .) is differentiated: the pair sum in the first argument.
            fd_x = (row_sum(x + e, s, i) - row_sum(x - e, s, i)) / (2 * h)
            fd_s = (row_sum(x, s + e, i) - row_sum(x, s - e, i)) / (2 * h)
            # The diagonal term k_p(x_i, x_i) moves with both arguments: its
            # derivative in x_i is zero and in s_i doubles (2 s_i, not s_i).
            np.testing.assert_allclose(gx[i, k], fd_x, rtol=1e-7, atol=1e-8)
            np.testing.assert_allclose(gs[i, k] + s[i, k], fd_s, rtol=1e-7, atol=1e-8)


def test_coincident_particles_are_finite():
    x = np.zeros((5, 2))
    s = np.ones((5, 2))
    total, gx, gs = _cpu.gaussian_stein_sums(x, s, 1.0)
    np.testing.assert_allclose(total, 25 * (2.0 + 2.0), rtol=1e-14)
    np.testing.assert_array_equal(gx, 0.0)
    np.testing.assert_allclose(gs, 5.0, rtol=1e-14)


def test_far_pairs_underflow_to_zero():
    x = np.array([[0.0], [1e3]])
    s = np.zeros((2, 1))
    total, gx, gs = _cpu.gaussian_stein_sums(x, s, 1.0)
    np.testing.assert_allclose(total, 2.0, rtol=1e-14)  # only the diagonal, d / bw each
    np.testing.assert_array_equal(gx, 0.0)
    assert np.isfinite(gs).all()


def test_float32_inputs_accumulate_in_float64():
    x, s = _problem(50, 2)
    total, gx, gs = ref.gaussian_stein_sums(x.astype(np.float32).astype(np.float64),
                                           s.astype(np.float32).astype(np.float64), 0.5)
    total32, gx32, gs32 = _cpu.gaussian_stein_sums(x.astype(np.float32), s.astype(np.float32), 0.5)
    assert gx32.dtype == np.float64
    np.testing.assert_allclose(total32, total, rtol=RTOL)
    _assert_rows_close(gx32, gx, "gx")


def test_vectorised_exp_accuracy():
    """The kernels' exp matches np.exp to a few ulps over [-708, 0], and is 0 below."""
    t = np.concatenate([
        -np.linspace(0.0, 708.0, 200_001),
        -np.geomspace(1e-300, 1.0, 1001),
        [-0.0, -708.0, -708.5, -745.0, -1e6],
    ])
    out = np.empty_like(t)
    bits = np.empty(t.size, dtype=np.int64)

    @njit  # the exp is inline-only: call it from compiled code, as the kernels do
    def run(t, out, bits):
        _cpu._exp_nonpositive(t, out, bits, t.size)

    run(t, out, bits)
    inside = t > -708.0
    expected = np.exp(t[inside])
    rel = np.abs(out[inside] - expected) / expected
    assert rel.max() < 1e-15, rel.max()
    np.testing.assert_array_equal(out[~inside], 0.0)
