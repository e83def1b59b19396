"""Direct pair loops: one particle's row against blocks of partners (see the package docstring)."""

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from .._kinds import GAUSSIAN
from ._twins import twin
from ._vecmath import (
    _FASTMATH,
    _KERNEL,
    _exp_scalar,
    _log_atleast1,
    _not_inlined,
    _ordered_sum,
    _wide_vectors,
    fexp,
    like,
)

_BLOCK = 256


def _running_block(xT, n):
    """Partners per running sum of the one-loop rows: ``_BLOCK`` in float32, all in float64."""
    raise NotImplementedError("_running_block is called from compiled code only")


@overload(_running_block, inline="always")
def _running_block_overload(xT, n):
    # float32 sums run over one block of partners and are added in float64;
    # float64 sums run over the whole row, as one loop (faster than in blocks).
    if xT.dtype == types.float32:
        return lambda xT, n: _BLOCK
    return lambda xT, n: max(n, 1)


@njit(**_KERNEL)
def _pair_block(i, xT, sT, j0, m, r2, S, Du):
    """Fill ``r2``, ``S`` and ``D . u`` for partners ``j0 .. j0 + m - 1`` of ``i``."""
    _wide_vectors()
    d = xT.shape[0]
    for jj in range(m):
        r2[jj] = 0.0
        S[jj] = 0.0
        Du[jj] = 0.0
    for k in range(d):
        xik = xT[k, i]
        sik = sT[k, i]
        xk = xT[k, j0 : j0 + m]
        sk = sT[k, j0 : j0 + m]
        for jj in range(m):
            u = xik - xk[jj]
            r2[jj] += u * u
            S[jj] += sik * sk[jj]
            Du[jj] += (sik - sk[jj]) * u


@njit(**_KERNEL)
def _gaussian_block(inv_h, d, m, r2, S, Du, P, C):
    """Value of a block of Gaussian pairs; fills ``P = phi`` and ``C``.

    ``grad_x k_p = C u + (P / h) D`` and ``d k_p / d s(x) = P s_j + (P / h) u``.
    The loop stores two arrays only: with a third, LLVM stopped vectorising it
    (too many pairs of arrays to check for overlap at run time).
    """
    _wide_vectors()
    inv_h = like(r2, inv_h)
    inv_h2 = inv_h * inv_h
    inv_h3 = inv_h2 * inv_h
    c_exp = like(r2, -0.5) * inv_h
    # d's terms as constants: written (Du + d) with a float d, the loop took
    # twice as long (LLVM's code for it doubled in size).
    c0 = like(r2, d) * inv_h
    c1 = like(r2, d + 2.0) * inv_h2
    total = like(r2, 0.0)
    for jj in range(m):
        p = fexp(c_exp * r2[jj])
        total += p * (S[jj] + Du[jj] * inv_h + c0 - r2[jj] * inv_h2)
        C[jj] = p * (r2[jj] * inv_h3 - S[jj] * inv_h - Du[jj] * inv_h2 - c1)
        P[jj] = p
    return total


@njit(**_KERNEL)
def _imq_block(inv_h, beta, d, m, r2, S, Du, P, Q, C):
    """Value of a block of IMQ pairs; fills ``P = phi``, ``Q = -2 phi'`` and ``C``.

    ``grad_x k_p = C u + Q D`` and ``d k_p / d s(x) = P s_j + Q u``.
    """
    _wide_vectors()
    one = like(r2, 1.0)
    two = like(r2, 2.0)
    four = like(r2, 4.0)
    e0 = like(r2, 2.0 * d)  # d's terms as constants (see _gaussian_block)
    e1 = like(r2, 4.0 * (d + 2.0))
    if beta == 0.5:  # q^(-1/2) is a square root, 3x cheaper than a log and an exp
        h = like(r2, inv_h)
        for jj in range(m):
            w = one / (one + h * r2[jj])
            P[jj] = np.sqrt(w)
            Q[jj] = w
    else:
        _imq_power(inv_h, beta, m, r2, P, Q, C)
    c1 = like(r2, -beta * inv_h)
    c2 = like(r2, -(beta + 1.0) * inv_h)
    c3 = like(r2, -(beta + 2.0) * inv_h)
    total = like(r2, 0.0)
    for jj in range(m):
        w = Q[jj]
        p1 = c1 * w * P[jj]
        p2 = c2 * w * p1
        p3 = c3 * w * p2
        total += P[jj] * S[jj] - two * p1 * Du[jj] - e0 * p1 - four * r2[jj] * p2
        C[jj] = two * p1 * S[jj] - four * p2 * Du[jj] - e1 * p2 - like(r2, 8.0) * r2[jj] * p3
        Q[jj] = -two * p1
    return total


def _imq_power(inv_h, beta, m, r2, P, Q, C):
    """``P = q^(-beta)`` and ``Q = 1 / q`` for ``q = 1 + r2 / h``; ``C`` is scratch.

    float64: the vectorised log of :mod:`._vecmath` and its exp. float32 (which
    the drivers send through float64 for ``beta != 1/2``; kept for direct
    callers): NumPy's log and exp of each pair.
    """
    raise NotImplementedError("_imq_power is called from compiled code only")


@overload(_imq_power, jit_options={"fastmath": _FASTMATH, "error_model": "numpy"})
def _imq_power_overload(inv_h, beta, m, r2, P, Q, C):
    if r2.dtype == types.float64:

        def power(inv_h, beta, m, r2, P, Q, C):
            for jj in range(m):
                C[jj] = 1.0 + inv_h * r2[jj]  # q, until the caller fills C
            _log_atleast1(C, P, Q.view(np.int64), m)
            for jj in range(m):
                Q[jj] = 1.0 / C[jj]
            for jj in range(m):
                P[jj] = _exp_scalar(-beta * P[jj])

        return power

    def power_any(inv_h, beta, m, r2, P, Q, C):
        for jj in range(m):
            q = 1.0 + inv_h * r2[jj]
            P[jj] = np.exp(-beta * np.log(q))
            Q[jj] = 1.0 / q

    return power_any


@njit(**_KERNEL)
def _gaussian_row_2d(i, xT, sT, inv_h, gx, gs):
    """Row ``i`` of the Gaussian Stein sums in two dimensions, in one loop.

    With ``d`` known, every pair quantity stays in a register: no blocks, no
    stores in the loop, only five running sums, which LLVM vectorises (the
    general row stores and reloads them). Uses ``C = -k_p / h - 2 phi / h^2``,
    the coefficient of :func:`_gaussian_block` rewritten with the pair's value.
    In float32 the sums run over ``_BLOCK`` partners at a time and in float64
    across those blocks.
    """
    _not_inlined()
    _wide_vectors()
    n = xT.shape[1]
    x0 = xT[0]
    x1 = xT[1]
    s0 = sT[0]
    s1 = sT[1]
    xi0 = x0[i]
    xi1 = x1[i]
    si0 = s0[i]
    si1 = s1[i]
    zero = like(xT, 0.0)
    inv_h = like(xT, inv_h)
    c_exp = like(xT, -0.5) * inv_h
    inv_h2 = inv_h * inv_h
    two_inv_h = like(xT, 2.0) * inv_h  # d / h
    neg_two_inv_h2 = like(xT, -2.0) * inv_h2
    total = 0.0
    ax0 = 0.0
    ax1 = 0.0
    as0 = 0.0
    as1 = 0.0
    step = _running_block(xT, n)
    for j0 in range(0, n, step):
        bt = zero
        bx0 = zero
        bx1 = zero
        bs0 = zero
        bs1 = zero
        # Slices: with j running from j0, numba's test for negative indices
        # made LLVM gather the partners (2 times slower).
        j1 = min(j0 + step, n)
        y0 = x0[j0:j1]
        y1 = x1[j0:j1]
        t0 = s0[j0:j1]
        t1 = s1[j0:j1]
        for j in range(j1 - j0):
            u0 = xi0 - y0[j]
            u1 = xi1 - y1[j]
            d0 = si0 - t0[j]
            d1 = si1 - t1[j]
            r2 = u0 * u0 + u1 * u1
            p = fexp(c_exp * r2)
            k_p = p * (
                si0 * t0[j] + si1 * t1[j] + (d0 * u0 + d1 * u1) * inv_h + two_inv_h - r2 * inv_h2
            )
            bt += k_p
            c = neg_two_inv_h2 * p - inv_h * k_p
            q = p * inv_h
            bx0 += c * u0 + q * d0
            bx1 += c * u1 + q * d1
            bs0 += p * t0[j] + q * u0
            bs1 += p * t1[j] + q * u1
        total += bt
        ax0 += bx0
        ax1 += bx1
        as0 += bs0
        as1 += bs1
    gx[i, 0] = ax0
    gx[i, 1] = ax1
    gs[i, 0] = as0
    gs[i, 1] = as1
    return total


@njit(**_KERNEL)
def _imq_half_row_2d(i, xT, sT, inv_h, gx, gs):
    """Row ``i`` of the IMQ Stein sums with beta = 1/2 in two dimensions, in one loop.

    As :func:`_gaussian_row_2d`, with the profile of :func:`_imq_block`:
    ``phi = w^(1/2)`` with ``w = 1 / (1 + r2 / h)``.
    """
    _not_inlined()
    _wide_vectors()
    n = xT.shape[1]
    x0 = xT[0]
    x1 = xT[1]
    s0 = sT[0]
    s1 = sT[1]
    xi0 = x0[i]
    xi1 = x1[i]
    si0 = s0[i]
    si1 = s1[i]
    zero = like(xT, 0.0)
    one = like(xT, 1.0)
    two = like(xT, 2.0)
    four = like(xT, 4.0)
    inv_h = like(xT, inv_h)
    c1 = like(xT, -0.5) * inv_h
    c2 = like(xT, -1.5) * inv_h
    c3 = like(xT, -2.5) * inv_h
    total = 0.0
    ax0 = 0.0
    ax1 = 0.0
    as0 = 0.0
    as1 = 0.0
    step = _running_block(xT, n)
    for j0 in range(0, n, step):
        bt = zero
        bx0 = zero
        bx1 = zero
        bs0 = zero
        bs1 = zero
        # Slices: with j running from j0, numba's test for negative indices
        # made LLVM gather the partners (2 times slower).
        j1 = min(j0 + step, n)
        y0 = x0[j0:j1]
        y1 = x1[j0:j1]
        t0 = s0[j0:j1]
        t1 = s1[j0:j1]
        for j in range(j1 - j0):
            u0 = xi0 - y0[j]
            u1 = xi1 - y1[j]
            d0 = si0 - t0[j]
            d1 = si1 - t1[j]
            r2 = u0 * u0 + u1 * u1
            S = si0 * t0[j] + si1 * t1[j]
            Du = d0 * u0 + d1 * u1
            w = one / (one + inv_h * r2)
            p = np.sqrt(w)
            p1 = c1 * w * p
            p2 = c2 * w * p1
            p3 = c3 * w * p2
            bt += p * S - two * p1 * (Du + two) - four * r2 * p2
            c = two * p1 * S - four * p2 * (Du + four) - like(xT, 8.0) * r2 * p3
            q = -two * p1
            bx0 += c * u0 + q * d0
            bx1 += c * u1 + q * d1
            bs0 += p * t0[j] + q * u0
            bs1 += p * t1[j] + q * u1
        total += bt
        ax0 += bx0
        ax1 += bx1
        as0 += bs0
        as1 += bs1
    gx[i, 0] = ax0
    gx[i, 1] = ax1
    gs[i, 0] = as0
    gs[i, 1] = as1
    return total


@njit(cache=True)
def _row_2d(kind, beta, d):
    """Which one-loop row serves a kernel: 1 Gaussian, 2 IMQ with beta = 1/2, 0 none."""
    if d != 2:
        return 0
    if kind == GAUSSIAN:
        return 1
    return 2 if beta == 0.5 else 0


@njit(**_KERNEL)
def _radial_row(i, xT, sT, kind, bw, beta, gx, gs, buf):
    """Row ``i`` of the radial Stein sums; writes ``gx[i]``, ``gs[i]``, returns the value."""
    _not_inlined()
    _wide_vectors()
    d, n = xT.shape
    inv_h = 1.0 / bw
    q_h = like(xT, inv_h)
    zero = like(xT, 0.0)
    r2, S, Du, P, Q, C = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5]
    for k in range(d):
        gx[i, k] = 0.0
        gs[i, k] = 0.0
    total = 0.0
    for j0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - j0)
        _pair_block(i, xT, sT, j0, m, r2, S, Du)
        if kind == GAUSSIAN:
            total += _gaussian_block(inv_h, d, m, r2, S, Du, P, C)
        else:
            total += _imq_block(inv_h, beta, d, m, r2, S, Du, P, Q, C)
        for k in range(d):
            xik = xT[k, i]
            sik = sT[k, i]
            xk = xT[k, j0 : j0 + m]
            sk = sT[k, j0 : j0 + m]
            acc_x = zero
            acc_s = zero
            if kind == GAUSSIAN:  # Q = P / h, not stored
                for jj in range(m):
                    u = xik - xk[jj]
                    q = P[jj] * q_h
                    acc_x += C[jj] * u + q * (sik - sk[jj])
                    acc_s += P[jj] * sk[jj] + q * u
            else:
                for jj in range(m):
                    u = xik - xk[jj]
                    acc_x += C[jj] * u + Q[jj] * (sik - sk[jj])
                    acc_s += P[jj] * sk[jj] + Q[jj] * u
            gx[i, k] += acc_x
            gs[i, k] += acc_s
    return total


@njit(**_KERNEL)
def _radial_row_value(i, xT, sT, kind, bw, beta, buf):
    """Row ``i`` of the radial Stein kernel sum, without gradients."""
    _not_inlined()
    d, n = xT.shape
    inv_h = 1.0 / bw
    r2, S, Du, P, Q, C = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5]
    total = 0.0
    for j0 in range(0, n, _BLOCK):
        m = min(_BLOCK, n - j0)
        _pair_block(i, xT, sT, j0, m, r2, S, Du)
        if kind == GAUSSIAN:
            total += _gaussian_block(inv_h, d, m, r2, S, Du, P, C)
        else:
            total += _imq_block(inv_h, beta, d, m, r2, S, Du, P, Q, C)
    return total


@njit(cache=True)
def _scratch(n, xT):
    """Six blocks of pair quantities in the dtype of ``xT``."""
    return np.empty((6, min(n, _BLOCK)), xT.dtype)


# The drivers are threaded/serial twins compiled from one body (._twins.twin):
# the threaded one splits the rows in chunks, each chunk allocating its scratch
# once; the serial one is the same code with one chunk.


def _radial_sums_body(xT, sT, kind, bw, beta, gx, gs, n_chunks):
    d, n = xT.shape
    rows = np.empty(n)
    fast = _row_2d(kind, beta, d)
    inv_h = 1.0 / bw
    for c in prange(n_chunks):
        buf = _scratch(0 if fast else n, xT)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            # The 2-D rows are called from here, not from _radial_row: through
            # it, a row took 100 ns more (a quarter of all pairs at n = 50).
            if fast == 1:
                rows[i] = _gaussian_row_2d(i, xT, sT, inv_h, gx, gs)
            elif fast == 2:
                rows[i] = _imq_half_row_2d(i, xT, sT, inv_h, gx, gs)
            else:
                rows[i] = _radial_row(i, xT, sT, kind, bw, beta, gx, gs, buf)
    return _ordered_sum(rows)


radial_sums_parallel = twin(_radial_sums_body, "radial_sums_parallel", parallel=True)
radial_sums_serial = twin(_radial_sums_body, "radial_sums_serial", parallel=False)


def _radial_total_body(xT, sT, kind, bw, beta, n_chunks):
    n = xT.shape[1]
    rows = np.empty(n)
    for c in prange(n_chunks):
        buf = _scratch(n, xT)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            rows[i] = _radial_row_value(i, xT, sT, kind, bw, beta, buf)
    return _ordered_sum(rows)


radial_total_parallel = twin(_radial_total_body, "radial_total_parallel", parallel=True)
radial_total_serial = twin(_radial_total_body, "radial_total_serial", parallel=False)


# --------------------------------------------------------------------------- base kernel
# The contenders of KSD descent (SVGD, MMD descent) need the base Gaussian kernel
# itself, not its Stein kernel: one row function serves both, with the same blocked
# layout as the Stein kernels (transposed float64 inputs, a block of partners at a
# time, the vectorised exp).


@njit(**_KERNEL)
def _gaussian_cross_row(i, xT, yT, wT, bw, gx, gw, buf):
    r"""Row ``i`` of the Gaussian kernel sums between ``x`` and partners ``y``.

    With :math:`k_{ij} = e^{-|x_i - y_j|^2 / (2 h)}`, writes

    .. math::

        g^x_i = \sum_j k_{ij} (x_i - y_j), \qquad g^w_i = \sum_j k_{ij} w_j

    and returns :math:`\sum_j k_{ij}`. ``wT`` has shape ``(d_w, m)``; with
    ``d_w = 0`` the weighted sum is skipped (and ``gw`` not touched).
    """
    _not_inlined()
    _wide_vectors()
    d, m_total = yT.shape
    dw = wT.shape[0]
    r2, p0 = buf[0], buf[1]
    for k in range(d):
        gx[i, k] = 0.0
    for k in range(dw):
        gw[i, k] = 0.0
    c = -0.5 / bw
    total = 0.0
    for j0 in range(0, m_total, _BLOCK):
        m = min(_BLOCK, m_total - j0)
        for jj in range(m):
            r2[jj] = 0.0
        for k in range(d):
            xik = xT[k, i]
            yk = yT[k, j0 : j0 + m]
            for jj in range(m):
                u = xik - yk[jj]
                r2[jj] += u * u
        block_total = 0.0
        for jj in range(m):
            p0[jj] = _exp_scalar(c * r2[jj])
            block_total += p0[jj]
        total += block_total
        for k in range(d):
            xik = xT[k, i]
            yk = yT[k, j0 : j0 + m]
            acc = 0.0
            for jj in range(m):
                acc += p0[jj] * (xik - yk[jj])
            gx[i, k] += acc
        for k in range(dw):
            wk = wT[k, j0 : j0 + m]
            acc = 0.0
            for jj in range(m):
                acc += p0[jj] * wk[jj]
            gw[i, k] += acc
    return total


@njit(**_KERNEL)
def _gaussian_cross_row_2d(i, xT, yT, wT, c, gx, gw):
    """:func:`_gaussian_cross_row` in two dimensions, in one loop, ``c = -1 / (2 h)``.

    ``wT`` has 0 rows (MMD) or 2 (SVGD: the scores); the loop is chosen outside.
    """
    _not_inlined()
    _wide_vectors()
    m = yT.shape[1]
    y0 = yT[0]
    y1 = yT[1]
    xi0 = xT[0, i]
    xi1 = xT[1, i]
    total = 0.0
    a0 = 0.0
    a1 = 0.0
    if wT.shape[0] == 2:
        w0 = wT[0]
        w1 = wT[1]
        b0 = 0.0
        b1 = 0.0
        for j in range(m):
            u0 = xi0 - y0[j]
            u1 = xi1 - y1[j]
            p = _exp_scalar(c * (u0 * u0 + u1 * u1))
            total += p
            a0 += p * u0
            a1 += p * u1
            b0 += p * w0[j]
            b1 += p * w1[j]
        gw[i, 0] = b0
        gw[i, 1] = b1
    else:
        for j in range(m):
            u0 = xi0 - y0[j]
            u1 = xi1 - y1[j]
            p = _exp_scalar(c * (u0 * u0 + u1 * u1))
            total += p
            a0 += p * u0
            a1 += p * u1
    gx[i, 0] = a0
    gx[i, 1] = a1
    return total


def _gaussian_cross_body(xT, yT, wT, bw, gx, gw, n_chunks):
    d, n = xT.shape
    rows = np.empty(n)
    fast = d == 2 and (wT.shape[0] == 0 or wT.shape[0] == 2)
    for c in prange(n_chunks):
        buf = _scratch(0 if fast else yT.shape[1], yT)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            if fast:
                rows[i] = _gaussian_cross_row_2d(i, xT, yT, wT, -0.5 / bw, gx, gw)
            else:
                rows[i] = _gaussian_cross_row(i, xT, yT, wT, bw, gx, gw, buf)
    return _ordered_sum(rows)


gaussian_cross_parallel = twin(_gaussian_cross_body, "gaussian_cross_parallel", parallel=True)
gaussian_cross_serial = twin(_gaussian_cross_body, "gaussian_cross_serial", parallel=False)
