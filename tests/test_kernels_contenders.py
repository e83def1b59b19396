"""The numba kernels of SVGD and MMD descent against the dense NumPy reference."""

import numpy as np
import pytest

from ksdnumba.contenders import _MMD
from ksdnumba.kernels import _cpu
from ksdnumba.kernels import _reference as ref

from conftest import central_difference_gradient

RTOL = 1e-10
SIZES = [1, 2, 17, 300]  # 300 crosses the block of 256 partners
DIMS = [1, 2, 5]
PARALLEL = pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "serial"])


def _problem(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))


def _assert_rows_close(actual, expected, err_msg):
    # Row sums can cancel to ~0; measure their error against the largest entry.
    atol = RTOL * max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=atol, err_msg=err_msg)


@PARALLEL
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("bw", [0.1, 1.0, 7.0])
def test_svgd_direction_matches_reference(n, d, bw, parallel):
    x, s = _problem(n, d, seed=n * 10 + d)
    expected = ref.svgd_direction(x, s, bw)
    actual = _cpu.gaussian_svgd_direction(x, s, bw, parallel=parallel)
    assert actual.shape == (n, d) and actual.dtype == np.float64
    _assert_rows_close(actual, expected, f"n={n} d={d} bw={bw} {parallel}")


@PARALLEL
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("m", [1, 40, 300])
def test_kernel_sums_match_reference(n, m, d, parallel):
    rng = np.random.default_rng(n + m + d)
    x, y = rng.normal(size=(n, d)), 1.5 * rng.normal(size=(m, d))
    msg = f"n={n} m={m} d={d} {parallel}"
    for xx, yy in [(x, y), (x, x)]:
        total, g = ref.gaussian_kernel_sums(xx, yy, 0.6)
        total_cpu, g_cpu = _cpu.gaussian_kernel_sums(xx, yy, 0.6, parallel=parallel)
        np.testing.assert_allclose(total_cpu, total, rtol=RTOL, err_msg=msg)
        _assert_rows_close(g_cpu, g, msg)


@PARALLEL
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n", SIZES)
def test_mmd_value_and_gradient_match_reference(n, d, parallel, monkeypatch):
    rng = np.random.default_rng(7 * n + d)
    x, y = rng.normal(size=(n, d)), 0.5 + rng.normal(size=(n + 13, d))
    # The objective calls the public kernel; pin its driver.
    sums = _cpu.gaussian_kernel_sums
    monkeypatch.setattr(
        _cpu, "gaussian_kernel_sums", lambda a, b, bw: sums(a, b, bw, parallel=parallel)
    )
    value, grad = _MMD(y, 0.8).value_and_grad(x)
    np.testing.assert_allclose(value, ref.mmd2(x, y, 0.8), rtol=RTOL)
    _assert_rows_close(grad, ref.mmd2_grad(x, y, 0.8), f"n={n} d={d} {parallel}")


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n, m", [(1, 5), (6, 6), (9, 4)])
def test_mmd_gradient_matches_finite_differences(n, m, d):
    rng = np.random.default_rng(n * m + d)
    x, y = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    mmd = _MMD(y, 0.7)
    _, grad = mmd.value_and_grad(x)
    fd = central_difference_gradient(lambda z: ref.mmd2(z, y, 0.7), x)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max())
    # and the reference gradient is the derivative of the reference value
    np.testing.assert_allclose(
        ref.mmd2_grad(x, y, 0.7), fd, rtol=1e-6, atol=1e-8 * np.abs(fd).max()
    )


def test_mmd_is_zero_on_the_samples_themselves():
    y = np.random.default_rng(0).normal(size=(50, 2))
    value, grad = _MMD(y, 0.5).value_and_grad(y.copy())
    assert abs(value) < 1e-14
    np.testing.assert_allclose(grad, 0.0, atol=1e-15)


def test_reference_svgd_direction_from_its_definition():
    """phi(x_i) = mean_j k(x_j, x_i) s_j + grad_{x_j} k(x_j, x_i), the gradient by FD."""
    x, s = _problem(5, 3, seed=4)
    bw, h = 0.9, 1e-6

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * bw))

    expected = np.zeros_like(x)
    for i in range(5):
        for j in range(5):
            grad_j = np.array(
                [(k(x[j] + h * e, x[i]) - k(x[j] - h * e, x[i])) / (2 * h) for e in np.eye(3)]
            )
            expected[i] += (k(x[j], x[i]) * s[j] + grad_j) / 5
    np.testing.assert_allclose(ref.svgd_direction(x, s, bw), expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("d", [2, 3], ids=["one-loop-2d-rows", "blocked-rows"])
@pytest.mark.parametrize("kind", ["svgd", "sums"])
def test_parallel_and_serial_are_bit_identical(kind, d):
    x, s = _problem(300, d)
    y = np.random.default_rng(1).normal(size=(500, d))
    if kind == "svgd":
        runs = [_cpu.gaussian_svgd_direction(x, s, 0.3, parallel=p) for p in (True, False, True)]
    else:
        runs = [
            np.append(*_cpu.gaussian_kernel_sums(x, y, 0.3, parallel=p))
            for p in (True, False, True)
        ]
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(runs[0], runs[2])


def test_far_pairs_underflow_to_zero():
    x = np.array([[0.0], [1e3]])
    s = np.array([[1.0], [2.0]])
    # Each particle sees only itself: phi_i = s_i / n.
    np.testing.assert_array_equal(_cpu.gaussian_svgd_direction(x, s, 1.0), s / 2)
    total, g = _cpu.gaussian_kernel_sums(x, x, 1.0)
    assert total == 2.0
    np.testing.assert_array_equal(g, 0.0)


def test_coincident_particles_have_no_repulsion():
    x = np.ones((4, 2))
    s = np.arange(8.0).reshape(4, 2)
    np.testing.assert_allclose(
        _cpu.gaussian_svgd_direction(x, s, 1.0), np.broadcast_to(s.mean(axis=0), (4, 2)), rtol=1e-15
    )


def test_float32_inputs_accumulate_in_float64():
    x, s = _problem(50, 2)
    x32, s32 = x.astype(np.float32), s.astype(np.float32)
    expected = ref.svgd_direction(x32.astype(np.float64), s32.astype(np.float64), 0.5)
    actual = _cpu.gaussian_svgd_direction(x32, s32, 0.5)
    assert actual.dtype == np.float64
    _assert_rows_close(actual, expected, "float32")
