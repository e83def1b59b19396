"""The CPU kernels' entry points: argument layout, serial or threaded driver, and path.

Each public function here takes ``(n, d)`` arrays, lays them out for the
compiled loops and picks the driver. The formulas are stated once, in the
package's docstring (:mod:`ksdnumba.kernels._cpu`).
"""

import numpy as np
from numba import get_num_threads

from .._kinds import GAUSSIAN, IMQ
from ._direct import (
    gaussian_cross_parallel,
    gaussian_cross_serial,
    radial_sums_parallel,
    radial_sums_serial,
    radial_total_parallel,
    radial_total_serial,
)
from ._tiled import tiled_gaussian_cross, tiled_radial_sums

# Below this many particles the serial twin beats waking the threads
# (benchmarks/bench_objective.py).
SERIAL_MAX_N = 64


def _use_parallel(n, parallel):
    return n > SERIAL_MAX_N if parallel is None else bool(parallel)


def _n_chunks(n):
    # A few chunks per thread balance the load. Read here, not inside the
    # kernel, where get_num_threads would make the kernel uncacheable.
    return min(n, 8 * get_num_threads())


def _transposed(x, s, dtype=np.float64):
    """``x.T`` and ``s.T``, contiguous, in the dtype the rows compute in."""
    return (np.ascontiguousarray(x.T, dtype=dtype), np.ascontiguousarray(s.T, dtype=dtype))


# float32 particles make the direct rows compute in float32 from this many on.
# Below, the sums take microseconds either way, and float32's rounding only
# costs: a 1-D fit of 30 particles ended 2 % above float64's optimum (its O(1)
# pair terms cancel to a KSD^2 of 3e-5). The tiled path, which runs from
# _TILED_MIN_N on, always takes the particles' dtype.
_FLOAT32_MIN_N = 1000


def computes_in_float32(kind, n, d, beta, path=None):
    """Whether the radial Stein sums of ``n`` float32 particles compute in float32.

    Always on the tiled path (its tiles take the particles' dtype); on the
    direct rows from ``n = 1000`` on, for the Gaussian kernel and IMQ with
    beta = 1/2 (the general IMQ profile's vectorised log is written for
    float64).
    """
    if _choose_path(n, d, True, path) == "tiled":
        return True
    return n >= _FLOAT32_MIN_N and (kind == GAUSSIAN or beta == 0.5)


def _row_dtype(x, kind, beta):
    # float32 particles: the direct rows compute in float32 within blocks of
    # partners and sum in float64 across them.
    n, d = x.shape
    if x.dtype == np.float32 and computes_in_float32(kind, n, d, beta, "direct"):
        return np.float32
    return np.float64


# The tiled path (:mod:`._tiled`) from this dimension and this many particles
# on, where it beats the direct rows (bench_tiled.py --crossover --serial).
_TILED_MIN_D = {True: 6, False: 6}  # with gradients, value alone
_TILED_MIN_N = 1000
PATHS = ("direct", "tiled")


def _choose_path(n, d, grad, path):
    if path is None:
        return "tiled" if d >= _TILED_MIN_D[grad] and n >= _TILED_MIN_N else "direct"
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS} or None, got {path!r}")
    return path


def _tile_dtype(x):
    # float32 particles: float32 tiles, float64 across tiles (bench_tiled.py --dtypes).
    return np.float32 if x.dtype == np.float32 else np.float64


def _radial_sums(kind, x, s, bw, beta, parallel, path=None):
    n, d = x.shape
    if _choose_path(n, d, True, path) == "tiled":
        return tiled_radial_sums(
            kind, x, s, bw, beta, True, _use_parallel(n, parallel), _tile_dtype(x)
        )
    xT, sT = _transposed(x, s, _row_dtype(x, kind, beta))
    gx = np.empty(x.shape)
    gs = np.empty(x.shape)
    if _use_parallel(n, parallel):
        total = radial_sums_parallel(xT, sT, kind, bw, beta, gx, gs, _n_chunks(n))
    else:
        total = radial_sums_serial(xT, sT, kind, bw, beta, gx, gs, 1)
    return total, gx, gs


def _radial_total(kind, x, s, bw, beta, parallel, path=None):
    n, d = x.shape
    if _choose_path(n, d, False, path) == "tiled":
        return tiled_radial_sums(
            kind, x, s, bw, beta, False, _use_parallel(n, parallel), _tile_dtype(x)
        )
    xT, sT = _transposed(x, s, _row_dtype(x, kind, beta))
    if _use_parallel(n, parallel):
        return radial_total_parallel(xT, sT, kind, bw, beta, _n_chunks(n))
    return radial_total_serial(xT, sT, kind, bw, beta, 1)


def gaussian_stein_sums(x, s, bw, parallel=None, path=None):
    r"""Gaussian Stein kernel summed over all pairs, with its partial gradients.

    Base kernel :math:`k(x, y) = e^{-|x - y|^2 / (2 h)}`, ``h = bw``.

    Parameters
    ----------
    x, s : ndarray of shape (n, d)
        Particles and their scores.
    bw : float
        Squared length scale ``h``.
    parallel : bool or None
        Use the threaded driver; None decides from ``n``.
    path : {"direct", "tiled"} or None
        The direct rows or the GEMM-tiled path (see the package's docstring);
        None decides from ``n`` and ``d``. With float32 particles the tiled
        path computes its tiles in float32.

    Returns
    -------
    total : float
        :math:`\sum_{i,j} k_p(x_i, x_j)`.
    gx : ndarray of shape (n, d), float64
        Row ``i`` is :math:`\sum_j \nabla_x k_p(x_i, x_j)`, scores held fixed.
    gs : ndarray of shape (n, d), float64
        Row ``i`` is :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)`.
    """
    return _radial_sums(GAUSSIAN, x, s, float(bw), 0.0, parallel, path)


def gaussian_stein_total(x, s, bw, parallel=None, path=None):
    r"""Gaussian Stein kernel summed over all pairs, :math:`\sum_{i,j} k_p(x_i, x_j)`."""
    return _radial_total(GAUSSIAN, x, s, float(bw), 0.0, parallel, path)


def gaussian_stein_diagonal(x, s, bw):
    """``k_p(x_i, x_i) = |s_i|^2 + d / h`` for each particle."""
    return np.einsum("ij,ij->i", s, s) + x.shape[1] / bw


def imq_stein_sums(x, s, bw, beta, parallel=None, path=None):
    r"""IMQ Stein kernel summed over all pairs, with its partial gradients.

    Base kernel :math:`k(x, y) = (1 + |x - y|^2 / h)^{-\beta}`, ``h = bw``,
    ``0 < beta < 1``. Parameters and returns as :func:`gaussian_stein_sums`.
    """
    return _radial_sums(IMQ, x, s, float(bw), float(beta), parallel, path)


def imq_stein_total(x, s, bw, beta, parallel=None, path=None):
    r"""IMQ Stein kernel summed over all pairs, :math:`\sum_{i,j} k_p(x_i, x_j)`."""
    return _radial_total(IMQ, x, s, float(bw), float(beta), parallel, path)


def imq_stein_diagonal(x, s, bw, beta):
    r"""``k_p(x_i, x_i) = |s_i|^2 + 2 d \beta / h`` for each particle."""
    return np.einsum("ij,ij->i", s, s) + 2.0 * x.shape[1] * beta / bw


# The tiled path for the base kernel's sums (SVGD, MMD): later than the Stein
# sums', whose direct rows do more per pair (bench_tiled.py --crossover
# --kernels svgd,mmd --serial).
_TILED_CROSS_MIN_D = 16
_TILED_CROSS_MIN_N = 2000


def _cross_path(n, m, d, path=None):
    if path is None:
        return "tiled" if d >= _TILED_CROSS_MIN_D and min(n, m) >= _TILED_CROSS_MIN_N else "direct"
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS} or None, got {path!r}")
    return path


def cross_computes_in_float32(n, m, d):
    """Whether the Gaussian kernel sums of float32 ``x`` (``n``) and ``y`` (``m``) compute
    in float32: on the tiled path, whose tiles take ``x``'s dtype."""
    return _cross_path(n, m, d) == "tiled"


def _gaussian_cross(x, y, w, bw, parallel, path=None):
    n, d = x.shape
    path = _cross_path(n, y.shape[0], d, path)
    if path == "tiled":
        par = (n * y.shape[0] > SERIAL_MAX_N**2) if parallel is None else bool(parallel)
        return tiled_gaussian_cross(x, y, w, bw, par, _tile_dtype(x))
    xT = np.ascontiguousarray(x.T, dtype=np.float64)
    yT = xT if y is x else np.ascontiguousarray(y.T, dtype=np.float64)
    wT = np.empty((0, yT.shape[1])) if w is None else np.ascontiguousarray(w.T, dtype=np.float64)
    n = x.shape[0]
    gx = np.empty((n, x.shape[1]))
    gw = np.empty((n, wT.shape[0]))
    # The number of pairs decides whether waking the threads pays (n != m for MMD).
    if (n * y.shape[0] > SERIAL_MAX_N**2) if parallel is None else parallel:
        total = gaussian_cross_parallel(xT, yT, wT, float(bw), gx, gw, _n_chunks(n))
    else:
        total = gaussian_cross_serial(xT, yT, wT, float(bw), gx, gw, 1)
    return total, gx, gw


def gaussian_kernel_sums(x, y, bw, parallel=None, path=None):
    r"""Gaussian kernel summed over all pairs of ``x`` and ``y``, with its gradient.

    .. math::

        k(x, y) = e^{-|x - y|^2 / (2 h)}, \qquad
        \mathrm{total} = \sum_{i,j} k(x_i, y_j), \qquad
        g_i = \sum_j k(x_i, y_j)\, (x_i - y_j),

    so that :math:`\nabla_{x_i} \sum_j k(x_i, y_j) = -g_i / h`.

    Parameters
    ----------
    x : ndarray of shape (n, d)
        Points.
    y : ndarray of shape (m, d)
        Partners; pass ``x`` itself (the same object) for the sums within ``x``.
    bw : float
        Squared length scale ``h``.
    parallel : bool or None
        Use the threaded driver; None decides from ``n`` and ``m``.
    path : {"direct", "tiled"} or None
        The direct rows or the GEMM-tiled path; None decides from the sizes
        and ``d``. With float32 ``x`` the tiled path computes in float32.

    Returns
    -------
    total : float
        :math:`\sum_{i,j} k(x_i, y_j)`.
    g : ndarray of shape (n, d), float64
        Row ``i`` is :math:`\sum_j k(x_i, y_j) (x_i - y_j)`.
    """
    total, gx, _ = _gaussian_cross(x, y, None, bw, parallel, path)
    return total, gx


def gaussian_svgd_direction(x, s, bw, parallel=None, path=None):
    r"""The SVGD direction for the Gaussian kernel, one row per particle.

    .. math::

        \phi(x_i) = \frac{1}{n} \sum_j \left[ k(x_j, x_i)\, s_j
            + \nabla_{x_j} k(x_j, x_i) \right]
        = \frac{1}{n} \sum_j k_{ij} \left[ s_j + \frac{x_i - x_j}{h} \right],

    with :math:`k(x, y) = e^{-|x - y|^2 / (2 h)}`: the kernel-smoothed score
    (drift) plus the repulsion between particles.

    Parameters
    ----------
    x, s : ndarray of shape (n, d)
        Particles and their scores.
    bw : float
        Squared length scale ``h``.
    parallel : bool or None
        Use the threaded driver; None decides from ``n``.
    path : {"direct", "tiled"} or None
        The direct rows or the GEMM-tiled path; None decides from ``n`` and
        ``d``. With float32 ``x`` the tiled path computes in float32.

    Returns
    -------
    ndarray of shape (n, d), float64
        Row ``i`` is :math:`\phi(x_i)`.
    """
    n = x.shape[0]
    _, gx, gs = _gaussian_cross(x, x, s, bw, parallel, path)
    gx *= 1.0 / bw
    gx += gs
    gx *= 1.0 / n
    return gx
