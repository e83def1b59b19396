r"""Compiled loops of Stein kernel thinning and Stein Compress++ (package-private).

Kernel thinning (Dwivedi and Mackey) reads the Stein matrix in a fixed,
sequential order: each halving step needs the kernel between its two new points
and every point already assigned, each swap step one column. These loops compute
those entries on demand, a block of a column at a time, from the Stein matrix's
prepared points with the kernel layer's own pair quantities and profiles
(:mod:`ksdnumba.kernels._cpu._profiles`): O(n d) memory, never an ``n x n``
array.

The decisions (the halving's coin against its threshold, the swaps' argmins)
are written as goodpoints 0.6.3 (``ktc.pyx``) writes them, in IEEE arithmetic:
this module's own functions are compiled without fast-math, so that with the
same kernel values the same indices come out. Where a sum's order cannot be
goodpoints' (a running sum over a column instead of a row of a stored matrix)
the values differ in the last bits, which changes a decision only when a
uniform draw falls within that distance of its threshold.

Every loop over rows runs in chunks, threaded in the ``*_parallel`` twins (one
Python body compiled twice, :func:`ksdnumba.kernels._cpu._twins.twin`); each
row is owned by one chunk, so results do not depend on the number of threads.
"""

import numpy as np
from numba import njit, prange

from .kernels._cpu._profiles import pair_terms, profile_row
from .kernels._cpu._twins import twin
from .kernels._cpu._vecmath import _not_inlined

# The plain Gaussian exp(-|x - y|^2 / ell) (no Stein operator; ``trace`` holds ell),
# computed as goodpoints' compiled kernel computes it, against which the Compress++
# loops are checked index for index.
BASE_GAUSSIAN = -1

_BLOCK = 256
# Pairs of a halving between two meetings of the threads.
_PAIRS = 64
# Comparisons and the halving's arithmetic in IEEE order (goodpoints compiles
# its Cython without fast-math).
_EXACT = {"cache": True, "error_model": "numpy"}


@njit(**_EXACT)
def _values(kind, beta, xT, sT, w, trace, c, lo, hi, out, acc):
    r"""``out[:hi - lo]`` = :math:`k(x_i, x_c)` for rows ``lo .. hi - 1`` (at most ``_BLOCK``).

    ``acc`` is a float64 ``(8, _BLOCK)`` scratch. Compiled on its own (never
    inlined), so that the serial and threaded twins compute the same bits.
    """
    _not_inlined()
    m = hi - lo
    if kind == BASE_GAUSSIAN:
        d = xT.shape[0]
        for ii in range(m):
            arg = 0.0
            for k in range(d):
                arg += (xT[k, c] - xT[k, lo + ii]) ** 2
            out[ii] = np.exp(-arg / trace)
        return
    pair_terms(xT, sT, w, c, lo, m, acc)
    profile_row(kind, beta, m, acc[0], acc[1], acc[2], trace, acc[3], out, acc[5:8])


@njit(**_EXACT)
def self_values(kind, beta, xT, sT, w, trace):
    r""":math:`k(x_i, x_i)` for every point, from the same pair loop as the columns.

    The closed form (:meth:`ksdnumba.SteinMatrix.diagonal`) sums
    :math:`|s_i|^2` in another order; computed here as the columns are, two
    identical points give a halving exactly :math:`\|k(x_1, .) - k(x_2, .)\|^2 = 0`.
    """
    n = xT.shape[1]
    out = np.empty(n)
    acc = np.empty((8, 1))
    one = np.empty(1)
    for i in range(n):
        _values(kind, beta, xT, sT, w, trace, i, i, i + 1, one, acc)
        out[i] = one[0]
    return out


@njit(**_EXACT)
def _entry(kind, beta, xT, sT, w, trace, a, b, acc, one):
    """:math:`k(x_b, x_a)`: row ``b`` of column ``a``."""
    _values(kind, beta, xT, sT, w, trace, a, b, b + 1, one, acc)
    return one[0]


@njit(**_EXACT)
def _add_pairs(
    kind, beta, xT, sT, w, trace, out0, out1, j0, j1, r0, r1, acc0, acc1, full, acc_m, buf
):
    r"""Rows ``r0 .. r1 - 1`` receive the columns of the pairs ``j0 .. j1 - 1``.

    ``full``: ``acc0 += k(., c^0_j)``, ``acc1 += k(., c^1_j)`` and ``acc_m`` (when
    not empty) both, in the points' order (so that it sums each row in index
    order); else ``acc1 += k(., c^1_j) - k(., c^0_j)``. ``buf``: ``(10, _BLOCK)``.
    """
    acc = buf[0:8]
    va = buf[8]
    vb = buf[9]
    for i0 in range(r0, r1, _BLOCK):
        i1 = min(i0 + _BLOCK, r1)
        for j in range(j0, j1):
            ca = out0[j]
            cb = out1[j]
            _values(kind, beta, xT, sT, w, trace, ca, i0, i1, va, acc)
            _values(kind, beta, xT, sT, w, trace, cb, i0, i1, vb, acc)
            if not full:
                for i in range(i0, i1):
                    acc1[i] += vb[i - i0] - va[i - i0]
                continue
            for i in range(i0, i1):
                acc0[i] += va[i - i0]
                acc1[i] += vb[i - i0]
            if acc_m.shape[0] > 0:
                if ca < cb:
                    for i in range(i0, i1):
                        acc_m[i] += va[i - i0]
                        acc_m[i] += vb[i - i0]
                else:
                    for i in range(i0, i1):
                        acc_m[i] += vb[i - i0]
                        acc_m[i] += va[i - i0]


@njit(**_EXACT)
def _within_block(kind, beta, xT, sT, w, trace, out0, out1, j0, i, p0, p1, cols, acc):
    r"""The part of :math:`\alpha_i` from the pairs ``j0 .. i - 1`` of the current block."""
    if i == j0:
        return 0.0
    lo = 2 * j0
    hi = 2 * i
    c0 = cols[0]
    c1 = cols[1]
    _values(kind, beta, xT, sT, w, trace, p0, lo, hi, c0, acc)
    _values(kind, beta, xT, sT, w, trace, p1, lo, hi, c1, acc)
    alpha = 0.0
    for j in range(j0, i):
        a = out0[j] - lo
        b = out1[j] - lo
        alpha += (c0[b] - c0[a]) - (c1[b] - c1[a])
    return alpha


def _halve_body(
    kind,
    beta,
    xT,
    sT,
    w,
    trace,
    diag,
    delta,
    u,
    out0,
    out1,
    full,
    acc0,
    acc1,
    acc_m,
    scratch,
    n_chunks,
):
    r"""Kernel halving (goodpoints' ``ktc.halve_K``) of the points ``0 .. N - 1`` in pairs.

    Pair :math:`i` is :math:`(2i, 2i + 1)`; with :math:`b^2 = \|k(x_{2i}, .) -
    k(x_{2i+1}, .)\|^2`, the adaptive threshold :math:`a` and
    :math:`\alpha = \sum_{j < i} [k(x_{2i}, c^1_j) - k(x_{2i}, c^0_j)
    - k(x_{2i+1}, c^1_j) + k(x_{2i+1}, c^0_j)]`, the second point joins
    coreset 0 when ``u[i] <= (1 - alpha / a) / 2``.

    The pairs go in blocks of ``_PAIRS``: within a block, :math:`\alpha` adds the
    block's earlier pairs from two short columns; after it, one threaded pass
    adds the block's columns to the rows' running sums (one meeting of the
    threads per block, not per pair). ``full``: the sums run over all rows,
    ``acc0``/``acc1`` (each row's kernel sum with coreset 0 / 1, which also give
    the swap's start) and ``acc_m`` (every point, in index order: goodpoints'
    row means); else ``acc1`` holds only the running difference, on the rows of
    the pairs still to come.
    """
    n = xT.shape[1]
    npairs = n // 2
    top = 2 * npairs
    log_multiplier = 2.0 * np.log(2.0 * n / delta)
    sig_sqd = 0.0
    acc = np.empty((8, _BLOCK))
    cols = np.empty((2, 2 * _PAIRS))
    one = np.empty(1)
    for j0 in range(0, npairs, _PAIRS):
        j1 = min(npairs, j0 + _PAIRS)
        for i in range(j0, j1):
            p0 = 2 * i
            p1 = p0 + 1
            k01 = _entry(kind, beta, xT, sT, w, trace, p1, p0, acc, one)
            b_sqd = diag[p0] - 2.0 * k01 + diag[p1]
            thresh = np.sqrt(sig_sqd * b_sqd * log_multiplier)
            if b_sqd > thresh:
                thresh = b_sqd
            if sig_sqd == 0.0:
                sig_sqd = b_sqd
            elif thresh != 0.0:
                update = 1.0 + (b_sqd / thresh - 2.0) * sig_sqd / thresh
                if update > 0.0:
                    sig_sqd += b_sqd * update
            if thresh == 0.0:
                thresh = 1.0
            if full:
                alpha = (acc1[p0] - acc0[p0]) - (acc1[p1] - acc0[p1])
            else:
                alpha = acc1[p0] - acc1[p1]
            alpha += _within_block(
                kind, beta, xT, sT, w, trace, out0, out1, j0, i, p0, p1, cols, acc
            )
            prob_point1 = 0.5 * (1.0 - alpha / thresh)
            if u[i] <= prob_point1:
                out0[i] = p1
                out1[i] = p0
            else:
                out0[i] = p0
                out1[i] = p1
        lo = 0 if full else 2 * j1
        hi = n if full else top
        if hi <= lo:
            continue
        m = hi - lo
        for ch in prange(n_chunks):
            r0 = lo + ch * m // n_chunks
            r1 = lo + (ch + 1) * m // n_chunks
            _add_pairs(
                kind,
                beta,
                xT,
                sT,
                w,
                trace,
                out0,
                out1,
                j0,
                j1,
                r0,
                r1,
                acc0,
                acc1,
                full,
                acc_m,
                scratch[ch],
            )


_halve_parallel = twin(_halve_body, "_halve_parallel", parallel=True)
_halve_serial = twin(_halve_body, "_halve_serial", parallel=False)


def _sums_body(kind, beta, xT, sT, w, trace, cols, out, scratch, n_chunks):
    r"""``out[i] = sum_j k(x_i, x_{cols[j]})`` for every row, ``j`` in order."""
    n = xT.shape[1]
    nc = cols.shape[0]
    for ch in prange(n_chunks):
        buf = scratch[ch]
        acc = buf[0:8]
        v = buf[8]
        r0 = ch * n // n_chunks
        r1 = (ch + 1) * n // n_chunks
        for i0 in range(r0, r1, _BLOCK):
            i1 = min(i0 + _BLOCK, r1)
            for i in range(i0, i1):
                out[i] = 0.0
            for j in range(nc):
                _values(kind, beta, xT, sT, w, trace, cols[j], i0, i1, v, acc)
                for i in range(i0, i1):
                    out[i] += v[i - i0]


_sums_parallel = twin(_sums_body, "_sums_parallel", parallel=True)
_sums_serial = twin(_sums_body, "_sums_serial", parallel=False)


def _refine_body(
    kind,
    beta,
    xT,
    sT,
    w,
    trace,
    diag,
    coreset,
    mean_k,
    start,
    unique,
    non,
    col_a,
    col_b,
    best_val,
    best_idx,
    scratch,
    n_chunks,
):
    r"""KT-SWAP's refinement (goodpoints' ``ktc.refine_K``), ``coreset`` changed in place.

    Each coreset point in turn is replaced by the point that most lowers the
    MMD (to the zero measure when ``mean_k`` is empty, else to the rows'
    means ``mean_k``); ``start[i] = sum_j k(x_i, x_{coreset[j]})``. With
    ``unique``, candidates are the point itself and ``non`` (the complement,
    kept up to date). One threaded pass per coreset point: it adds back the
    previous winner's column, takes out the next point's and finds the argmin.
    """
    n = xT.shape[1]
    size = coreset.shape[0]
    two = 2.0 / size
    suff = np.empty(n)
    mean0 = mean_k.shape[0] == 0
    for i in range(n):
        if mean0:
            suff[i] = (diag[i] + 2.0 * start[i]) / size
        else:
            suff[i] = diag[i] / size
            suff[i] += 2.0 * (start[i] / size - mean_k[i])
    n_non = non.shape[0]
    pending = -1  # the previous winner, whose column is still to be added
    stored = False  # ... and is col_a (the winner was the point it replaced)
    for idx in range(size + 1):
        cp = coreset[idx] if idx < size else -1
        for ch in prange(n_chunks):
            buf = scratch[ch]
            r0 = ch * n // n_chunks
            r1 = (ch + 1) * n // n_chunks
            bv = np.inf
            bi = -1
            for i0 in range(r0, r1, _BLOCK):
                i1 = min(i0 + _BLOCK, r1)
                if pending >= 0:
                    if stored:
                        for i in range(i0, i1):
                            suff[i] += col_a[i] * two
                    else:
                        _values(kind, beta, xT, sT, w, trace, pending, i0, i1, buf[9], buf[0:8])
                        for i in range(i0, i1):
                            suff[i] += buf[9, i - i0] * two
                if cp < 0:
                    continue
                _values(kind, beta, xT, sT, w, trace, cp, i0, i1, buf[8], buf[0:8])
                for i in range(i0, i1):
                    col_a[i] = buf[8, i - i0]
                    suff[i] -= col_a[i] * two
                    if bi < 0 or suff[i] < bv:  # strict: ties keep the lower index
                        bv = suff[i]
                        bi = i
            best_val[ch] = bv
            best_idx[ch] = bi
        if cp < 0:
            break
        if unique:
            best = cp
            lowest = suff[cp]
            pick = -1
            for q in range(n_non):
                if suff[non[q]] < lowest:
                    lowest = suff[non[q]]
                    pick = q
            if pick >= 0:
                best = non[pick]
                non[pick] = cp
        else:
            best = best_idx[0]
            lowest = best_val[0]
            for ch in range(1, n_chunks):
                if best_val[ch] < lowest:
                    lowest = best_val[ch]
                    best = best_idx[ch]
        coreset[idx] = best
        pending = best
        stored = best == cp


_refine_parallel = twin(_refine_body, "_refine_parallel", parallel=True)
_refine_serial = twin(_refine_body, "_refine_serial", parallel=False)


@njit(**_EXACT)
def opt_halve4(k, uniform, mean0, out):
    """goodpoints' optimal halving of four points (``opt_halve4_K`` / ``_mean0_K``).

    ``k`` is the ``(4, 4)`` kernel matrix of the points.
    """
    if mean0:
        out[0] = 0
        out[1] = 1
        best = k[0, 0] + k[1, 1] + 2.0 * k[0, 1]
        for j in range(2, 4):
            for i in range(0, j):
                v = k[j, j] + k[i, i] + 2.0 * k[i, j]
                if v < best:
                    best = v
                    out[0] = i
                    out[1] = j
        return
    k12_03 = k[1, 2] + k[0, 3]
    k01_23 = k[0, 1] + k[2, 3]
    k02_13 = k[0, 2] + k[1, 3]
    if k12_03 < k01_23:
        if k12_03 < k02_13:
            a0, a1, b0, b1 = 0, 3, 1, 2
        else:
            a0, a1, b0, b1 = 0, 2, 1, 3
    elif k01_23 < k02_13:
        a0, a1, b0, b1 = 0, 1, 2, 3
    else:
        a0, a1, b0, b1 = 0, 2, 1, 3
    if uniform < 0.5:
        out[0] = a0
        out[1] = a1
    else:
        out[0] = b0
        out[1] = b1


def _drivers(parallel):
    """The threaded or serial twins, as a tuple ``(halve, sums, refine)``."""
    if parallel:
        return _halve_parallel, _sums_parallel, _refine_parallel
    return _halve_serial, _sums_serial, _refine_serial
