r"""Numba CPU kernels for the Stein pair sums.

Layout of the computation
-------------------------
The particles and scores are passed transposed, as ``(d, n)`` arrays, so that the
loops over the partner index ``j`` run over contiguous memory and LLVM can
vectorise them. For each particle ``i`` the partners are taken in blocks of
``_BLOCK``: one pass fills the pair quantities of the block (``r2``, ``S``,
``D . u``), a second computes the exponentials with a vectorisable exp (numba's
``np.exp`` is a scalar libm call and took half the time), a third accumulates the
row's value and gradients.

Each row ``i`` is owned by one loop iteration and written once, and the blocks of a
row are summed in a fixed order, so results are bit-identical from run to run and
between the parallel driver and its serial twin (which serves small ``n``, where
starting the thread pool costs more than it saves).

Arithmetic is in float64 whatever the input dtype (the Python wrappers pass
float64 transposed copies). Memory is O(n d): no ``n x n``
array is formed.

``fastmath`` is limited to re-association, contraction and reciprocal flags:
NaN and infinity keep their IEEE meaning, so a non-finite input still shows in the
output instead of being optimised away.

Notation: ``u = x_i - x_j``, ``r2 = |u|^2``, ``S = s_i . s_j``,
``D = s_i - s_j``, ``h = bw`` and :math:`\phi = e^{-r2 / (2h)}`.
"""

import numpy as np
from numba import get_num_threads, njit, prange

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_BLOCK = 256

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody and Waite) so that
_LN2_LO = 1.90821492927058770002e-10  # nf * _LN2_HI is exact for |nf| < 2**20
_EXP_MIN = -708.0  # exp(-708) ~ 3.3e-308, the smallest normal float64's order


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _exp_nonpositive(t, out, bits, m):
    r"""``out[:m] = exp(t[:m])`` for ``t <= 0``, in loops LLVM vectorises.

    :math:`e^t = 2^{n} e^{r}` with :math:`n = \mathrm{round}(t / \ln 2)` and
    :math:`|r| \le \ln(2) / 2`; :math:`e^r` is its Taylor polynomial of degree 12
    (truncation below 2e-16) and :math:`2^n` is built from its bits. Measured
    relative error against ``np.exp`` over ``[-708, 0]``: below 5e-16. Returns
    exactly 0 below ``-708``, where ``exp`` is under 3.3e-308.
    """
    pow2 = bits.view(np.float64)
    for j in range(m):
        tj = max(t[j], _EXP_MIN)
        nf = np.floor(tj * _LOG2E + 0.5)
        r = (tj - nf * _LN2_HI) - nf * _LN2_LO
        p = 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        out[j] = p
        bits[j] = (np.int64(nf) + 1023) << 52
    for j in range(m):
        out[j] = out[j] * pow2[j] if t[j] > _EXP_MIN else 0.0


@njit(cache=True, fastmath=_FASTMATH)
def _pair_block(i, xT, sT, j0, m, r2, S, Du):
    """Fill ``r2``, ``S`` and ``D . u`` for partners ``j0 .. j0 + m - 1`` of ``i``."""
    d = xT.shape[0]
    for jj in range(m):
        r2[jj] = 0.0
        S[jj] = 0.0
        Du[jj] = 0.0
    for k in range(d):
        xik = xT[k, i]
        sik = sT[k, i]
        xk = xT[k, j0:j0 + m]
        sk = sT[k, j0:j0 + m]
        for jj in range(m):
            u = xik - xk[jj]
            r2[jj] += u * u
            S[jj] += sik * sk[jj]
            Du[jj] += (sik - sk[jj]) * u


@njit(cache=True, fastmath=_FASTMATH)
def _gaussian_row(i, xT, sT, bw, gx, gs, buf, bits):
    r"""Row ``i`` of the Gaussian Stein sums; returns :math:`\sum_j k_p(x_i, x_j)`.

    Writes :math:`\sum_j \nabla_x k_p(x_i, x_j)` (scores held fixed) into
    ``gx[i]`` and :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)` into
    ``gs[i]``:

    .. math::

        k_p &= \phi \left[ S + \frac{D \cdot u}{h} + \frac{d}{h}
               - \frac{r2}{h^2} \right] \\
        \nabla_x k_p &= \phi \frac{D}{h} - u \, \phi \left( \frac{S}{h}
               + \frac{D \cdot u}{h^2} + \frac{d + 2}{h^2}
               - \frac{r2}{h^3} \right) \\
        \partial k_p / \partial s(x) &= \phi \left( s_j + \frac{u}{h} \right)
    """
    d, n = xT.shape
    inv_h = 1.0 / bw
    inv_h2 = inv_h * inv_h
    inv_h3 = inv_h2 * inv_h
    const = d * inv_h
    const2 = (d + 2) * inv_h2
    r2, S, Du, phi, coef = buf[0], buf[1], buf[2], buf[3], buf[4]
    for k in range(d):
        gx[i, k] = 0.0
        gs[i, k] = 0.0
    total = 0.0
    for j0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - j0)
        _pair_block(i, xT, sT, j0, m, r2, S, Du)
        for jj in range(m):
            coef[jj] = -0.5 * inv_h * r2[jj]
        _exp_nonpositive(coef, phi, bits, m)
        block_total = 0.0
        for jj in range(m):
            p = phi[jj]
            block_total += p * (S[jj] + Du[jj] * inv_h + const - r2[jj] * inv_h2)
            coef[jj] = p * (S[jj] * inv_h + Du[jj] * inv_h2 + const2 - r2[jj] * inv_h3)
        total += block_total
        for k in range(d):
            xik = xT[k, i]
            sik = sT[k, i]
            xk = xT[k, j0:j0 + m]
            sk = sT[k, j0:j0 + m]
            acc_x = 0.0
            acc_s = 0.0
            for jj in range(m):
                u = xik - xk[jj]
                a = phi[jj] * inv_h
                acc_x += a * (sik - sk[jj]) - coef[jj] * u
                acc_s += phi[jj] * sk[jj] + a * u
            gx[i, k] += acc_x
            gs[i, k] += acc_s
    return total


@njit(cache=True, fastmath=_FASTMATH)
def _gaussian_row_value(i, xT, sT, bw, buf, bits):
    """Row ``i`` of the Gaussian Stein kernel sum, without gradients."""
    d, n = xT.shape
    inv_h = 1.0 / bw
    const = d * inv_h
    r2, S, Du, phi, t = buf[0], buf[1], buf[2], buf[3], buf[4]
    total = 0.0
    for j0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - j0)
        _pair_block(i, xT, sT, j0, m, r2, S, Du)
        for jj in range(m):
            t[jj] = -0.5 * inv_h * r2[jj]
        _exp_nonpositive(t, phi, bits, m)
        block_total = 0.0
        for jj in range(m):
            block_total += phi[jj] * (S[jj] + Du[jj] * inv_h + const - r2[jj] * inv_h * inv_h)
        total += block_total
    return total


@njit(cache=True)
def _scratch(n):
    m = min(n, _BLOCK)
    return np.empty((5, m)), np.empty(m, dtype=np.int64)


@njit(cache=True)
def _ordered_sum(rows):
    # A plain loop, kept out of the parallel drivers so that numba does not turn
    # it into a threaded reduction with a run-dependent order.
    total = 0.0
    for v in rows:
        total += v
    return total


# The drivers come in parallel/serial twins around the same row function. The
# parallel one splits the rows in chunks; each chunk allocates its scratch once
# instead of once per row.


@njit(cache=True, parallel=True)
def _gaussian_sums_parallel(xT, sT, bw, gx, gs, n_chunks):
    n = xT.shape[1]
    rows = np.empty(n)
    for c in prange(n_chunks):
        buf, bits = _scratch(n)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            rows[i] = _gaussian_row(i, xT, sT, bw, gx, gs, buf, bits)
    return _ordered_sum(rows)


@njit(cache=True)
def _gaussian_sums_serial(xT, sT, bw, gx, gs):
    n = xT.shape[1]
    rows = np.empty(n)
    buf, bits = _scratch(n)
    for i in range(n):
        rows[i] = _gaussian_row(i, xT, sT, bw, gx, gs, buf, bits)
    return _ordered_sum(rows)


@njit(cache=True, parallel=True)
def _gaussian_total_parallel(xT, sT, bw, n_chunks):
    n = xT.shape[1]
    rows = np.empty(n)
    for c in prange(n_chunks):
        buf, bits = _scratch(n)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            rows[i] = _gaussian_row_value(i, xT, sT, bw, buf, bits)
    return _ordered_sum(rows)


@njit(cache=True)
def _gaussian_total_serial(xT, sT, bw):
    n = xT.shape[1]
    rows = np.empty(n)
    buf, bits = _scratch(n)
    for i in range(n):
        rows[i] = _gaussian_row_value(i, xT, sT, bw, buf, bits)
    return _ordered_sum(rows)


# Below this many particles the serial twin is faster than waking the threads
# (measured with benchmarks/bench_objective.py on a 2-core machine).
SERIAL_MAX_N = 64


def _use_parallel(n, parallel):
    return n > SERIAL_MAX_N if parallel is None else bool(parallel)


def _n_chunks(n):
    # A few chunks per thread balance the load. Read here, not inside the
    # kernel, where get_num_threads would make the kernel uncacheable.
    return min(n, 8 * get_num_threads())


def _transposed(x, s):
    # float64 copies: the kernels compute in float64 whatever the input dtype,
    # and compile once.
    return (np.ascontiguousarray(x.T, dtype=np.float64),
            np.ascontiguousarray(s.T, dtype=np.float64))


def gaussian_stein_sums(x, s, bw, parallel=None):
    r"""Gaussian Stein kernel summed over all pairs, with its partial gradients.

    Parameters
    ----------
    x, s : ndarray of shape (n, d)
        Particles and their scores (float32 or float64).
    bw : float
        Squared length scale ``h`` of :math:`k(x, y) = e^{-|x - y|^2 / (2h)}`.
    parallel : bool or None
        Use the threaded driver; None decides from ``n``.

    Returns
    -------
    total : float
        :math:`\sum_{i,j} k_p(x_i, x_j)`.
    gx : ndarray of shape (n, d), float64
        Row ``i`` is :math:`\sum_j \nabla_x k_p(x_i, x_j)`, scores held fixed.
    gs : ndarray of shape (n, d), float64
        Row ``i`` is :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)`.
    """
    xT, sT = _transposed(x, s)
    gx = np.empty(x.shape)
    gs = np.empty(x.shape)
    if _use_parallel(x.shape[0], parallel):
        total = _gaussian_sums_parallel(xT, sT, float(bw), gx, gs, _n_chunks(x.shape[0]))
    else:
        total = _gaussian_sums_serial(xT, sT, float(bw), gx, gs)
    return total, gx, gs


def gaussian_stein_total(x, s, bw, parallel=None):
    r"""Gaussian Stein kernel summed over all pairs, :math:`\sum_{i,j} k_p(x_i, x_j)`."""
    xT, sT = _transposed(x, s)
    if _use_parallel(x.shape[0], parallel):
        return _gaussian_total_parallel(xT, sT, float(bw), _n_chunks(x.shape[0]))
    return _gaussian_total_serial(xT, sT, float(bw))
