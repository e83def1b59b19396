r"""Numba CPU kernels for Stein-kernel *values*: thinning columns and bootstrap forms.

Stein thinning and the KSD test need no gradient in ``x``, only values of the
Stein kernel :math:`k_p`: one column :math:`k_p(x_i, x_c)` per greedy step, and
quadratic forms :math:`w_b^\top H w_b` of the Stein matrix
:math:`H_{ij} = k_p(x_i, x_j)` for every bootstrap draw. Neither ever holds an
``n x n`` matrix.

Preconditioned kernels (thinning)
---------------------------------
The base kernels act on distances through a symmetric positive definite matrix
:math:`L`, written in its eigenbasis :math:`L = Q \Lambda Q^\top`: the caller
rotates the points and scores (``x Q``, ``s Q``; nothing to do when :math:`L`
is diagonal) and passes the eigenvalues :math:`\lambda_k` as ``weights``. In
that frame, with :math:`u = x_i - x_c`,

.. math::

    \rho = u^\top L u = \sum_k \lambda_k u_k^2, \quad
    a = u^\top L^2 u = \sum_k \lambda_k^2 u_k^2, \quad
    b = (s_i - s_c)^\top L u, \quad S = s_i \cdot s_c,

all O(d) per pair instead of the O(d^2) of a matrix product. The IMQ kernel
:math:`k = (1 + \rho)^{-1/2}` (Riabiz et al. 2022, :math:`c = 1`, exponent
:math:`-1/2`) has the Stein kernel, with :math:`q = 1 + \rho`,

.. math::

    k_p = S q^{-1/2} + (\operatorname{tr} L + b)\, q^{-3/2} - 3 a\, q^{-5/2},

and the Gaussian kernel :math:`k = e^{-\rho / 2}` the Stein kernel
:math:`k_p = k (S + b + \operatorname{tr} L - a)`.

The greedy loop (:func:`greedy_thinning`) is compiled whole: each step adds
twice the new column to the running objective, in parallel over blocks of rows
(each block owned by one thread), and finds the block's smallest value; the
blocks' minima are combined in block order, so ties go to the lowest index and
results are bit-identical between runs and between the parallel driver and its
serial twin. Memory: O(n d) for the points, O(n) for the objective.

Radial kernels with a bandwidth (the KSD test)
----------------------------------------------
The package's kernels (``bw`` a squared length scale, IMQ exponent
:math:`-\beta`): :math:`k_p = \phi S - 2\phi' (D \cdot u + d) - 4 r^2 \phi''`
with :math:`\phi(r^2)` the profile, and the linear kernel
:math:`k_p = (x \cdot y) S + s(x) \cdot x + s(y) \cdot y + d`.
:func:`quadratic_forms` tiles the matrix in ``T x T`` blocks (upper triangle
only: :math:`H` is symmetric), computes each tile, multiplies it by the tile's
rows of the weights ``W`` (``n x B``, one column per draw) with BLAS, and
accumulates :math:`\sum_{i \in I} W_{ib} (H_{IJ} W_J)_{ib}`, twice for the
off-diagonal tiles. O(n (d + B)) memory, O(n^2 (d + B)) time. Threads take row
tiles in pairs (``I`` and ``n_tiles - 1 - I``) so that their work is even, and
each row tile's sums are added in a fixed order.
"""

import time

import numpy as np
from numba import njit, prange

from ._direct import _pair_block
from ._drivers import SERIAL_MAX_N, _n_chunks
from ._threads import single_threaded_blas
from ._vecmath import _KERNEL, _exp_scalar, _ordered_sum, _wide_vectors

# Preconditioned kernels of Stein thinning.
P_IMQ = 0
P_GAUSSIAN = 1
# Kernels of the KSD test (the package's conventions).
GAUSSIAN = 0
IMQ = 1
LINEAR = 2

_BLOCK = 256
_TILE = 256
# The greedy loop wakes the threads once per step: below this many coordinates
# (n d) a step is too short (~10 microseconds) to gain from a second thread, and
# on a loaded machine each wake-up can cost far more than that.
_GREEDY_SERIAL_MAX_WORK = 2**15


# --------------------------------------------------------------------------- thinning


@njit(**_KERNEL)
def _column_block(kind, xT, sT, weights, trace, c, i0, m, out, acc):
    r"""``out[:m] = k_p(x_i, x_c)`` for rows ``i0 .. i0 + m - 1`` (preconditioned).

    ``acc`` is a ``(4, >= m)`` scratch array for :math:`\rho, a, b, S`.
    """
    _wide_vectors()
    d = xT.shape[0]
    rho, a2, b, S = acc[0], acc[1], acc[2], acc[3]
    for ii in range(m):
        rho[ii] = 0.0
        a2[ii] = 0.0
        b[ii] = 0.0
        S[ii] = 0.0
    # Four coordinates per pass: the four sums are loaded and stored once per
    # four coordinates instead of once per coordinate (the loop was bound by
    # those loads and stores; 1.3x faster at d = 10).
    k4 = d - d % 4
    for k in range(0, k4, 4):
        l0, l1, l2, l3 = weights[k], weights[k + 1], weights[k + 2], weights[k + 3]
        y0, y1, y2, y3 = xT[k, c], xT[k + 1, c], xT[k + 2, c], xT[k + 3, c]
        t0, t1, t2, t3 = sT[k, c], sT[k + 1, c], sT[k + 2, c], sT[k + 3, c]
        x0 = xT[k, i0:i0 + m]
        x1 = xT[k + 1, i0:i0 + m]
        x2 = xT[k + 2, i0:i0 + m]
        x3 = xT[k + 3, i0:i0 + m]
        s0 = sT[k, i0:i0 + m]
        s1 = sT[k + 1, i0:i0 + m]
        s2 = sT[k + 2, i0:i0 + m]
        s3 = sT[k + 3, i0:i0 + m]
        for ii in range(m):
            u0 = x0[ii] - y0
            u1 = x1[ii] - y1
            u2 = x2[ii] - y2
            u3 = x3[ii] - y3
            v0 = l0 * u0
            v1 = l1 * u1
            v2 = l2 * u2
            v3 = l3 * u3
            rho[ii] += (v0 * u0 + v1 * u1) + (v2 * u2 + v3 * u3)
            a2[ii] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)
            b[ii] += ((s0[ii] - t0) * v0 + (s1[ii] - t1) * v1) + ((s2[ii] - t2) * v2
                                                                  + (s3[ii] - t3) * v3)
            S[ii] += (s0[ii] * t0 + s1[ii] * t1) + (s2[ii] * t2 + s3[ii] * t3)
    for k in range(k4, d):
        lk = weights[k]
        yk = xT[k, c]
        tk = sT[k, c]
        xk = xT[k, i0:i0 + m]
        sk = sT[k, i0:i0 + m]
        for ii in range(m):
            lu = lk * (xk[ii] - yk)
            rho[ii] += lu * (xk[ii] - yk)
            a2[ii] += lu * lu
            b[ii] += (sk[ii] - tk) * lu
            S[ii] += sk[ii] * tk
    if kind == P_IMQ:
        for ii in range(m):
            w = 1.0 / (1.0 + rho[ii])
            p = np.sqrt(w)
            out[ii] = p * (S[ii] + w * ((trace + b[ii]) - 3.0 * a2[ii] * w))
    else:
        for ii in range(m):
            p = _exp_scalar(-0.5 * rho[ii])
            out[ii] = p * (S[ii] + b[ii] + trace - a2[ii])


@njit(**_KERNEL)
def _column_serial(kind, xT, sT, weights, trace, c, out):
    n = xT.shape[1]
    acc = np.empty((4, min(n, _BLOCK)))
    for i0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - i0)
        _column_block(kind, xT, sT, weights, trace, c, i0, m, out[i0:i0 + m], acc)


def stein_column(kind, xT, sT, weights, trace, c):
    r"""Column ``c`` of a preconditioned Stein kernel: ``k_p(x_i, x_c)`` for every ``i``.

    Parameters
    ----------
    kind : int
        :data:`P_IMQ` or :data:`P_GAUSSIAN`.
    xT, sT : ndarray of shape (d, n), float64, C-contiguous
        Points and scores, transposed, in the eigenbasis of :math:`L`.
    weights : ndarray of shape (d,)
        Eigenvalues :math:`\lambda_k` of :math:`L`.
    trace : float
        :math:`\operatorname{tr} L = \sum_k \lambda_k`.
    c : int
        The column's point.

    Returns
    -------
    ndarray of shape (n,)
    """
    out = np.empty(xT.shape[1])
    _column_serial(kind, xT, sT, weights, float(trace), int(c), out)
    return out


def stein_diagonal(sT, trace):
    r""":math:`k_p(x_i, x_i) = |s_i|^2 + \operatorname{tr} L` for both preconditioned kernels."""
    return np.einsum("ki,ki->i", sT, sT) + trace


@njit(**_KERNEL)
def _greedy_rows(kind, xT, sT, weights, trace, obj, lap, logp, lam, step, c, lo, hi, buf):
    """One greedy step on rows ``lo .. hi - 1``: add twice column ``c`` (none if
    ``c < 0``) to ``obj``; return the rows' smallest value and its first index."""
    regularized = lap.shape[0] > 0
    best = np.inf
    best_i = -1
    for i0 in range(lo, hi, _BLOCK):
        mm = min(_BLOCK, hi - i0)
        if c >= 0:
            col = buf[4]
            _column_block(kind, xT, sT, weights, trace, c, i0, mm, col, buf)
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


# The parallel and serial drivers are two functions around the same row function,
# not one body compiled twice: numba's cache keys a function by its bytecode and
# signature, not its flags, so twins compiled from one body would share (and
# overwrite) one cache entry.


@njit(parallel=True, **_KERNEL)
def _greedy_parallel(kind, xT, sT, weights, trace, obj, lap, logp, lam, idx, totals, t0, t1,
                     n_chunks):
    """Steps ``t0 .. t1 - 1``; ``obj`` holds the objective after step ``t0 - 1``."""
    n = xT.shape[1]
    chunk_val = np.empty(n_chunks)
    chunk_idx = np.empty(n_chunks, dtype=np.int64)
    scratch = np.empty((n_chunks, 5, min(n, _BLOCK)))
    total = totals[t0 - 1] if t0 > 0 else 0.0
    for t in range(t0, t1):
        c = idx[t - 1] if t > 0 else -1
        for ch in prange(n_chunks):
            v, i = _greedy_rows(kind, xT, sT, weights, trace, obj, lap, logp, lam, t + 1.0, c,
                                ch * n // n_chunks, (ch + 1) * n // n_chunks, scratch[ch])
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


@njit(**_KERNEL)
def _greedy_serial(kind, xT, sT, weights, trace, obj, lap, logp, lam, idx, totals, t0, t1):
    """Steps ``t0 .. t1 - 1`` as :func:`_greedy_parallel`, in one thread."""
    n = xT.shape[1]
    buf = np.empty((5, min(n, _BLOCK)))
    total = totals[t0 - 1] if t0 > 0 else 0.0
    for t in range(t0, t1):
        c = idx[t - 1] if t > 0 else -1
        _, best_i = _greedy_rows(kind, xT, sT, weights, trace, obj, lap, logp, lam, t + 1.0, c,
                                 0, n, buf)
        idx[t] = best_i
        total += obj[best_i]
        totals[t] = total


# The threads meet once per greedy step. On a machine shared with other work, a
# thread that is descheduled holds up each meeting: measured here with two other
# busy processes on 2 cores, 8-12 ms per step in parallel against 1.3-2.9 ms in
# one thread (0.7 and 1.4 ms on the idle machine). The twins give bit-identical
# results, so the loop times a few steps of each every _SEGMENT steps and runs
# the rest of the segment with the faster.
_PROBE = 2
_SEGMENT = 128


def greedy_thinning(kind, xT, sT, weights, trace, m, lap=None, logp=None, lam=0.0,
                    parallel=None):
    r"""Greedy Stein thinning: ``m`` indices and the running kernel sums.

    Step :math:`t` picks

    .. math::

        i_t = \operatorname{argmin}_i \Big[ k_p(x_i, x_i)
            + 2 \sum_{s < t} k_p(x_i, x_{i_s})
            + \Delta_i - \lambda\, t \log p_i \Big],

    ties to the lowest index, the last two terms only when ``lap`` and ``logp``
    are given (regularised thinning, Benard et al. 2023).

    Parameters
    ----------
    kind : int
        :data:`P_IMQ` or :data:`P_GAUSSIAN`.
    xT, sT : ndarray of shape (d, n), float64, C-contiguous
        Points and scores, transposed, in the eigenbasis of :math:`L`.
    weights : ndarray of shape (d,)
        Eigenvalues of :math:`L`.
    trace : float
        Their sum.
    m : int
        Number of points to pick, >= 1.
    lap, logp : ndarray of shape (n,) or None
        The regularisation's Laplacian term and log density.
    lam : float
        Weight of the entropic term.
    parallel : bool or None
        True or False: the threaded driver or its serial twin for every step.
        None: serial below ``n d`` = 2**15; above, whichever of the two a few
        timed steps find faster, checked again every 128 steps.

    Returns
    -------
    idx : ndarray of shape (m,), int64
    totals : ndarray of shape (m,)
        :math:`\sum_{a, b \le t} k_p(x_{i_a}, x_{i_b})`, the unnormalised squared
        KSD of the first ``t`` picks.
    """
    n = xT.shape[1]
    obj = stein_diagonal(sT, trace)
    if lap is None:
        lap = np.empty(0)
        logp = np.empty(0)
    idx = np.empty(m, dtype=np.int64)
    totals = np.empty(m)
    args = (kind, xT, sT, weights, float(trace), obj, lap, logp, float(lam), idx, totals)
    n_chunks = _n_chunks(n)

    def run(threaded, t0, t1):
        if threaded:
            _greedy_parallel(*args, t0, t1, n_chunks)
        else:
            _greedy_serial(*args, t0, t1)

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


# --------------------------------------------------------------------------- KSD test


@njit(**_KERNEL)
def _stein_tile(kind, xT, sT, sx, bw, beta, i0, ni, j0, nj, H, buf):
    """``H[a, b] = k_p(x_{i0 + a}, x_{j0 + b})`` for the package's kernels.

    ``H`` is ``(ni, nj)``, C-contiguous; ``buf`` a ``(3, >= nj)`` scratch array.
    ``sx[i] = s_i . x_i`` (linear kernel only).
    """
    _wide_vectors()
    d = xT.shape[0]
    r2, S, Du = buf[0], buf[1], buf[2]
    inv_h = 1.0 / bw
    c1 = -beta * inv_h
    c2 = -(beta + 1.0) * inv_h
    for a in range(ni):
        i = i0 + a
        row = H[a]
        if kind == LINEAR:  # r2 holds x_i . x_j
            for jj in range(nj):
                r2[jj] = 0.0
                S[jj] = 0.0
            for k in range(d):
                xik = xT[k, i]
                sik = sT[k, i]
                xk = xT[k, j0:j0 + nj]
                sk = sT[k, j0:j0 + nj]
                for jj in range(nj):
                    r2[jj] += xik * xk[jj]
                    S[jj] += sik * sk[jj]
            for jj in range(nj):
                row[jj] = r2[jj] * S[jj] + sx[i] + sx[j0 + jj] + d
            continue
        _pair_block(i, xT, sT, j0, nj, r2, S, Du)
        if kind == GAUSSIAN:
            for jj in range(nj):
                p = _exp_scalar(-0.5 * inv_h * r2[jj])
                row[jj] = p * (S[jj] + (Du[jj] + d) * inv_h - r2[jj] * inv_h * inv_h)
        elif beta == 0.5:
            for jj in range(nj):
                w = 1.0 / (1.0 + inv_h * r2[jj])
                p = np.sqrt(w)
                p1 = c1 * w * p
                p2 = c2 * w * p1
                row[jj] = p * S[jj] - 2.0 * p1 * (Du[jj] + d) - 4.0 * r2[jj] * p2
        else:
            for jj in range(nj):
                q = 1.0 + inv_h * r2[jj]
                w = 1.0 / q
                p = np.exp(-beta * np.log(q))
                p1 = c1 * w * p
                p2 = c2 * w * p1
                row[jj] = p * S[jj] - 2.0 * p1 * (Du[jj] + d) - 4.0 * r2[jj] * p2


def stein_block(kind, x, s, bw, beta, i0, ni, j0, nj):
    """A block of the Stein matrix, ``(ni, nj)``, through the compiled tile (for tests)."""
    xT = np.ascontiguousarray(x.T, dtype=np.float64)
    sT = np.ascontiguousarray(s.T, dtype=np.float64)
    sx = np.einsum("ij,ij->i", s, x)
    H = np.empty((ni, nj))
    _stein_tile(kind, xT, sT, sx, float(bw), float(beta), i0, ni, j0, nj, H,
                np.empty((3, max(nj, 1))))
    return H


@njit(**_KERNEL)
def _forms_row_tile(kind, xT, sT, sx, bw, beta, W, tile, I, out, hbuf, G, buf):
    """``out[b] = sum_{i in I} W[i, b] (sum_{J >= I} f_J H_{IJ} W_J)[i, b]``, f_J = 2
    off the diagonal tile, 1 on it: row tile ``I``'s share of every form."""
    n = xT.shape[1]
    B = W.shape[1]
    n_tiles = (n + tile - 1) // tile
    i0 = I * tile
    ni = min(tile, n - i0)
    for b in range(B):
        out[b] = 0.0
    for J in range(I, n_tiles):
        j0 = J * tile
        nj = min(tile, n - j0)
        H = hbuf[:ni * nj].reshape((ni, nj))
        _stein_tile(kind, xT, sT, sx, bw, beta, i0, ni, j0, nj, H, buf)
        Gs = G[:ni]
        np.dot(H, W[j0:j0 + nj], Gs)
        factor = 1.0 if J == I else 2.0
        for a in range(ni):
            wa = W[i0 + a]
            ga = Gs[a]
            for b in range(B):
                out[b] += factor * wa[b] * ga[b]


@njit(parallel=True, **_KERNEL)
def _forms_parallel(kind, xT, sT, sx, bw, beta, W, tile, partial):
    n = xT.shape[1]
    n_tiles = (n + tile - 1) // tile
    # Row tile I has n_tiles - I tiles to its right: a task takes I and
    # n_tiles - 1 - I, so that every task has the same work.
    for task in prange((n_tiles + 1) // 2):
        hbuf = np.empty(tile * tile)
        G = np.empty((tile, W.shape[1]))
        buf = np.empty((3, tile))
        # int64: the prange index may be unsigned, and int64 - uint64 is a float
        first = np.int64(task)
        _forms_row_tile(kind, xT, sT, sx, bw, beta, W, tile, first, partial[first], hbuf, G,
                        buf)
        last = n_tiles - 1 - first
        if last != first:
            _forms_row_tile(kind, xT, sT, sx, bw, beta, W, tile, last, partial[last], hbuf, G,
                            buf)


@njit(**_KERNEL)
def _forms_serial(kind, xT, sT, sx, bw, beta, W, tile, partial):
    n = xT.shape[1]
    n_tiles = (n + tile - 1) // tile
    hbuf = np.empty(tile * tile)
    G = np.empty((tile, W.shape[1]))
    buf = np.empty((3, tile))
    for I in range(n_tiles):
        _forms_row_tile(kind, xT, sT, sx, bw, beta, W, tile, I, partial[I], hbuf, G, buf)


@njit(cache=True)
def _sum_rows(partial, out):
    for b in range(partial.shape[1]):
        out[b] = _ordered_sum(partial[:, b])


def quadratic_forms(kind, x, s, bw, beta, W, tile=_TILE, parallel=None):
    r"""``w_b^T H w_b`` for every column ``w_b`` of ``W``, without forming ``H``.

    Parameters
    ----------
    kind : int
        :data:`GAUSSIAN`, :data:`IMQ` or :data:`LINEAR`.
    x, s : ndarray of shape (n, d)
        Points and scores.
    bw, beta : float
        Bandwidth (squared length scale) and IMQ exponent.
    W : ndarray of shape (n, B), float64
        One column of weights per draw.
    tile : int
        Side of the square tiles of ``H``.
    parallel : bool or None
        Threaded driver; None decides from ``n``.

    Returns
    -------
    ndarray of shape (B,)
        :math:`\sum_{i, j} W_{ib} H_{ij} W_{jb}`.
    """
    xT = np.ascontiguousarray(x.T, dtype=np.float64)
    sT = np.ascontiguousarray(s.T, dtype=np.float64)
    sx = np.einsum("ij,ij->i", s, x)
    W = np.ascontiguousarray(W, dtype=np.float64)
    n = x.shape[0]
    tile = int(min(tile, n))
    n_tiles = (n + tile - 1) // tile
    partial = np.empty((n_tiles, W.shape[1]))
    use_parallel = n > SERIAL_MAX_N if parallel is None else bool(parallel)
    # One BLAS thread per caller: numba's threads each call BLAS, whose own threads
    # would fight them; and even alone, OpenBLAS's two threads made a 100 x 100
    # product 100 times slower (16 ms instead of 0.15) on a 2-core machine.
    with single_threaded_blas():
        if use_parallel and n_tiles > 1:
            _forms_parallel(kind, xT, sT, sx, float(bw), float(beta), W, tile, partial)
        else:
            _forms_serial(kind, xT, sT, sx, float(bw), float(beta), W, tile, partial)
    out = np.empty(W.shape[1])
    _sum_rows(partial, out)
    return out


def stein_diagonal_bw(kind, x, s, bw, beta):
    r""":math:`k_p(x_i, x_i)` for the package's kernels (the KSD test's diagonal).

    Gaussian :math:`|s_i|^2 + d / h`; IMQ :math:`|s_i|^2 + 2 d \beta / h`;
    linear :math:`|x_i|^2 |s_i|^2 + 2 s_i \cdot x_i + d`.
    """
    d = x.shape[1]
    ss = np.einsum("ij,ij->i", s, s)
    if kind == GAUSSIAN:
        return ss + d / bw
    if kind == IMQ:
        return ss + 2.0 * d * beta / bw
    return np.einsum("ij,ij->i", x, x) * ss + 2.0 * np.einsum("ij,ij->i", s, x) + d
