r"""Numba CPU kernels for Stein-kernel columns and greedy Stein thinning.

Greedy thinning needs one column :math:`k_p(x_i, x_c)` of the Stein matrix per
step, and nothing else: each column costs O(n d) from the pair quantities of
:mod:`._profiles` (points and scores in the eigenbasis of the metric
:math:`L`, its eigenvalues as weights), never an ``n x n`` matrix.

The greedy loop (:func:`greedy_thinning`) is compiled whole: each step adds
twice the new column to the running objective, in parallel over blocks of rows
(each block owned by one thread), and finds the block's smallest value; the
blocks' minima are combined in block order, so ties go to the lowest index and
results are bit-identical between runs and between the threaded driver and its
serial twin. Memory: O(n d) for the points, O(n) for the objective.
"""

import time

import numpy as np
from numba import njit, prange

from .._host import linear_stein_block, linear_stein_diagonal, radial_diagonal
from .._kinds import GAUSSIAN, IMQ, LINEAR
from ._drivers import _n_chunks
from ._profiles import pair_terms, profile_row
from ._twins import twin
from ._vecmath import _KERNEL

_BLOCK = 256
RADIAL_KINDS = (GAUSSIAN, IMQ)
# The greedy loop wakes the threads once per step: below this many coordinates
# (n d) a step is too short (~10 microseconds) to gain from a second thread, and
# on a loaded machine each wake-up can cost far more than that.
_GREEDY_SERIAL_MAX_WORK = 2**15


@njit(**_KERNEL)
def _column_block(kind, beta, xT, sT, weights, trace, c, i0, m, out, acc):
    r"""``out[:m] = k_p(x_i, x_c)`` for rows ``i0 .. i0 + m - 1``.

    ``acc`` is a ``(8, >= m)`` float64 scratch array.
    """
    pair_terms(xT, sT, weights, c, i0, m, acc)
    profile_row(kind, beta, m, acc[0], acc[1], acc[2], trace, acc[3], out, acc[5:8])


def _columns_body(kind, beta, xT, sT, weights, trace, cols, rows, out, n_chunks):
    n = rows.shape[0]
    nc = cols.shape[0]
    for ch in prange(n_chunks):
        acc = np.empty((8, _BLOCK))
        col = np.empty(_BLOCK)
        lo = ch * n // n_chunks
        hi = (ch + 1) * n // n_chunks
        contiguous = rows.shape[0] == xT.shape[1]
        for q in range(nc):
            c = cols[q]
            for i0 in range(lo, hi, _BLOCK):
                m = min(_BLOCK, hi - i0)
                if contiguous:  # all rows, in order: the partners are read as slices
                    _column_block(
                        kind, beta, xT, sT, weights, trace, c, i0, m, out[q, i0 : i0 + m], acc
                    )
                else:
                    for ii in range(m):
                        _column_block(
                            kind, beta, xT, sT, weights, trace, c, rows[i0 + ii], 1, col, acc
                        )
                        out[q, i0 + ii] = col[0]


_columns_parallel = twin(_columns_body, "_columns_parallel", parallel=True)
_columns_serial = twin(_columns_body, "_columns_serial", parallel=False)


def stein_columns(layout, cols, rows=None, parallel=None):
    r"""Columns ``cols`` of the Stein matrix, :math:`k_p(x_i, x_c)`: float64 ``(n_rows, n_cols)``.

    Parameters
    ----------
    layout : ._matrix.Layout
        The matrix's points, scores, metric and kernel.
    cols : ndarray of int64
        The columns' points.
    rows : ndarray of int64 or None
        Only these rows (None: all, in order).
    parallel : bool or None
        Threaded driver; None: from ``n d`` on ``2**15``.
    """
    xT, sT = layout.xT, layout.sT
    n = xT.shape[1]
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    rows = np.arange(n, dtype=np.int64) if rows is None else np.ascontiguousarray(rows, np.int64)
    if layout.kind == LINEAR:  # a closed form, O(n d) per column as the others
        return linear_stein_block(xT.T, sT.T, rows, cols)
    out = np.empty((cols.shape[0], rows.shape[0]))  # one contiguous row per column
    if parallel is None:
        parallel = rows.shape[0] * xT.shape[0] > _GREEDY_SERIAL_MAX_WORK
    args = (layout.kind, layout.beta, xT, sT, layout.weights, layout.trace, cols, rows, out)
    if parallel:
        _columns_parallel(*args, _n_chunks(rows.shape[0]))
    else:
        _columns_serial(*args, 1)
    return out.T


def stein_diagonal(layout):
    r""":math:`k_p(x_i, x_i)` of a layout (closed form), float64 ``(n,)``."""
    if layout.kind == LINEAR:
        return linear_stein_diagonal(layout.xT.T, layout.sT.T)
    return radial_diagonal(layout.kind, layout.beta, layout.sT, layout.trace)


@njit(**_KERNEL)
def _greedy_rows(kind, beta, xT, sT, weights, trace, obj, lap, logp, lam, lw, step, c, lo, hi, buf):
    """One greedy step on rows ``lo .. hi - 1``: add twice column ``c`` (none if
    ``c < 0``) to ``obj``; return the rows' smallest value and its first index."""
    regularized = lap.shape[0] > 0
    weighted = lw.shape[0] > 0
    best = np.inf
    best_i = -1
    for i0 in range(lo, hi, _BLOCK):
        mm = min(_BLOCK, hi - i0)
        if c >= 0:
            col = buf[8]
            _column_block(kind, beta, xT, sT, weights, trace, c, i0, mm, col, buf)
            if weighted:  # gradient-free thinning: w_i w_c k_q(x_i, x_c)
                for ii in range(mm):
                    obj[i0 + ii] += 2.0 * (np.exp(lw[i0 + ii] + lw[c]) * col[ii])
            else:
                for ii in range(mm):
                    obj[i0 + ii] += 2.0 * col[ii]
        for ii in range(mm):
            i = i0 + ii
            v = obj[i]
            if regularized:
                v += lap[i] - lam * step * logp[i]
            if best_i < 0 or v < best:  # strict: ties keep the lower index
                best = v
                best_i = i
    return best, best_i


def _greedy_body(
    kind, beta, xT, sT, weights, trace, obj, lap, logp, lam, lw, idx, totals, t0, t1, n_chunks
):
    """Steps ``t0 .. t1 - 1``; ``obj`` holds the objective after step ``t0 - 1``."""
    n = xT.shape[1]
    chunk_val = np.empty(n_chunks)
    chunk_idx = np.empty(n_chunks, dtype=np.int64)
    scratch = np.empty((n_chunks, 9, min(n, _BLOCK)))
    total = totals[t0 - 1] if t0 > 0 else 0.0
    for t in range(t0, t1):
        c = idx[t - 1] if t > 0 else -1
        for ch in prange(n_chunks):
            v, i = _greedy_rows(
                kind,
                beta,
                xT,
                sT,
                weights,
                trace,
                obj,
                lap,
                logp,
                lam,
                lw,
                t + 1.0,
                c,
                ch * n // n_chunks,
                (ch + 1) * n // n_chunks,
                scratch[ch],
            )
            chunk_val[ch] = v
            chunk_idx[ch] = i
        best = chunk_val[0]
        best_i = chunk_idx[0]
        for ch in range(1, n_chunks):  # in order: ties keep the lower index
            if chunk_val[ch] < best:
                best = chunk_val[ch]
                best_i = chunk_idx[ch]
        idx[t] = best_i
        # sum_{a, b <= t} k_p(x_{i_a}, x_{i_b}) grows by the kernel part of the
        # objective at the new point: its diagonal plus twice its column sums.
        total += obj[best_i]
        totals[t] = total


_greedy_parallel = twin(_greedy_body, "_greedy_parallel", parallel=True)
_greedy_serial = twin(_greedy_body, "_greedy_serial", parallel=False)


# The threads meet once per greedy step. On a machine shared with other work, a
# thread that is descheduled holds up each meeting (several times slower than
# one thread, bench_thinning.py). The twins give bit-identical results, so the
# loop times a few steps of each every _SEGMENT steps and runs the rest of the
# segment with the faster.
_PROBE = 2
_SEGMENT = 128


def greedy_thinning(layout, m, lap=None, logp=None, lam=0.0, log_weights=None, parallel=None):
    r"""Greedy Stein thinning: ``m`` indices and the running kernel sums.

    Step :math:`t` picks

    .. math::

        i_t = \operatorname{argmin}_i \Big[ k_p(x_i, x_i)
            + 2 \sum_{s < t} k_p(x_i, x_{i_s})
            + \Delta_i - \lambda\, t \log p_i \Big],

    ties to the lowest index, the last two terms only when ``lap`` and ``logp``
    are given (regularised thinning, Benard et al. 2023). With ``log_weights``
    :math:`\ell`, every :math:`k_p(x_i, x_j)` is multiplied by
    :math:`e^{\ell_i + \ell_j}` (gradient-free thinning, whose Stein kernel is
    that of an auxiliary distribution).

    Parameters
    ----------
    layout : ._matrix.Layout
        The matrix's points, scores, metric and kernel (radial).
    m : int
        Number of points to pick, >= 1.
    lap, logp : ndarray of shape (n,) or None
        The regularisation's Laplacian term and log density.
    lam : float
        Weight of the entropic term.
    log_weights : ndarray of shape (n,) or None
        Logarithms of the points' weights.
    parallel : bool or None
        True or False: the threaded driver or its serial twin for every step.
        None: serial below ``n d`` = 2**15; above, whichever of the two a few
        timed steps find faster, checked again every 128 steps.

    Returns
    -------
    idx : ndarray of shape (m,), int64
    totals : ndarray of shape (m,)
        :math:`\sum_{a, b \le t} k_p(x_{i_a}, x_{i_b})` (weighted), the
        unnormalised squared KSD of the first ``t`` picks.
    """
    if layout.kind not in RADIAL_KINDS:
        raise ValueError("greedy thinning takes a radial kernel (gaussian or imq)")
    xT, sT = layout.xT, layout.sT
    n = xT.shape[1]
    obj = stein_diagonal(layout)
    if log_weights is None:
        lw = np.empty(0)
    else:
        lw = np.ascontiguousarray(log_weights, dtype=np.float64)
        obj = np.exp(2.0 * lw) * obj
    if lap is None:
        lap = np.empty(0)
        logp = np.empty(0)
    idx = np.empty(m, dtype=np.int64)
    totals = np.empty(m)
    args = (
        layout.kind,
        layout.beta,
        xT,
        sT,
        layout.weights,
        layout.trace,
        obj,
        lap,
        logp,
        float(lam),
        lw,
        idx,
        totals,
    )
    n_chunks = _n_chunks(n)

    def run(threaded, t0, t1):
        if threaded:
            _greedy_parallel(*args, t0, t1, n_chunks)
        else:
            _greedy_serial(*args, t0, t1, 1)

    if parallel is not None or n * xT.shape[0] <= _GREEDY_SERIAL_MAX_WORK:
        run(bool(parallel), 0, m)
        return idx, totals
    t = 0
    while t < m:
        seconds = []
        for threaded in (True, False):
            t1 = min(m, t + _PROBE)
            start = time.perf_counter()
            run(threaded, t, t1)
            seconds.append((time.perf_counter() - start) / max(t1 - t, 1))
            t = t1
        t1 = min(m, t + _SEGMENT - 2 * _PROBE)
        run(seconds[0] <= seconds[1], t, t1)
        t = t1
    return idx, totals
