r"""GEMM-tiled Stein pair sums, for dimensions where Gram products beat the direct rows.

The pair quantities come from Gram products of tiles of rows ``I`` and partners
``J`` (``x`` centred first, so that the products stay of the order of the
spread, not of the position):

.. math::

    r^2_{ij} = |x_i|^2 + |x_j|^2 - 2\, x_i \cdot x_j, \quad
    S_{ij} = s_i \cdot s_j, \quad
    D_{ij} \cdot u_{ij} = a_i + a_j - s_i \cdot x_j - x_i \cdot s_j, \quad
    a_i = s_i \cdot x_i.

The two cross products come from one product of ``z = alpha x + s / alpha``
with itself:

.. math::

    s_i \cdot x_j + x_i \cdot s_j
        = z_i \cdot z_j - \alpha^2\, x_i \cdot x_j - \alpha^{-2}\, s_i \cdot s_j,

so three Gram products of a tile, ``X_I X_J^T``, ``S_I S_J^T`` and
``Z_I Z_J^T``, give them all. That is three quarters of the arithmetic and of
the stores of one product of the stacked ``[X_I; S_I]`` with
``[X_J; S_J]^T``, which computes the two cross products apart. ``alpha`` is the
power of two nearest ``(rms|s| / rms|x|)^(1/2)``, so that ``alpha x`` and
``s / alpha`` are of one size (within a factor of two): the three terms are
then of the size of the cross products they replace, little is lost to
cancellation, and the scalings are exact.

One pass over the tile turns them into the profile and the
coefficients of :mod:`ksdnumba.kernels._cpu` (the same block functions as the
direct rows), with ``grad_x k_p = C u + Q D`` and ``d k_p / d s(x) = P s_j + Q u``
(Gaussian: ``Q = P / h``), and the gradient sums come back as products of the
coefficient tiles with the partners:

.. math::

    g^x_i = x_i \textstyle\sum_j C_{ij} - (C X)_i + s_i \sum_j Q_{ij} - (Q S)_i,
    \qquad
    g^s_i = (P S)_i + x_i \textstyle\sum_j Q_{ij} - (Q X)_i.

The pair ``(i, i)`` (``u = 0``, ``D = 0``) is left out of the coefficient
tiles, and its only gradient term, :math:`\phi(0) s_i = s_i` in ``g^s``, is
added at the end: through the products it would come back as the difference
of two large numbers where the true sum is small.

The Stein kernel and its coefficients are symmetric in ``(i, j)``, so each
unordered pair of tiles is computed once and serves both: rows ``I`` take
``C X_J``, rows ``J`` take ``C^T X_I``. The tiles are scheduled as a round-robin
tournament (the circle method): in each round every tile meets one other, the
pairs of a round touch disjoint rows and run in parallel, and the rounds run in
a fixed order, so that every row's sums are accumulated in the same order
whatever the number of threads, and the results are bit-identical from run to
run and between the threaded driver and its serial twin. The tiles on the
diagonal form one more round.

Memory: the particles' copies (``x``, ``s``, ``z``) and the accumulators are
O(n d); each thread has its scratch of a few tiles (``_TILE`` rows), never an
``n x n`` array.

The products and the pass over each tile run in the particles' dtype
(``float32`` or ``float64``), the products through numba's ``np.dot`` (SciPy's
BLAS, which must run single-threaded while numba's threads run: see
:mod:`ksdnumba.kernels._cpu._threads`); every accumulation across tiles is in
float64. The general IMQ profile (beta other than 1/2) computes its pass in
float64 from the float32 Gram tile.
"""

import numpy as np
from numba import njit, prange

from .._kinds import GAUSSIAN
from ._direct import _imq_block
from ._twins import twin
from ._vecmath import _KERNEL, _not_inlined, _ordered_sum, _wide_vectors, fexp, like

# Rows per tile: 128 x 128 keeps a thread's scratch (a Gram tile, three
# coefficient tiles) within a core's L2; float32 tiles of 256 rows, half the
# bytes, pay from d = 64 (bench_tiled.py --dtypes).
_TILE = 128
_TILE32_WIDE = 256
_TILE32_WIDE_MIN_D = 64


def _tile_rows(dtype, d):
    """Rows per tile for particles of dimension ``d`` in ``dtype``."""
    if np.dtype(dtype) == np.float32 and d >= _TILE32_WIDE_MIN_D:
        return _TILE32_WIDE
    return _TILE


_ALIGN = 64


@njit(cache=True)
def _gram_tiles(F, bi, bj):
    """The three Gram tiles ``X_I X_J^T``, ``S_I S_J^T``, ``Z_I Z_J^T`` in the scratch ``F``."""
    m = bi * bj
    return (
        F[:m].reshape((bi, bj)),
        F[m : 2 * m].reshape((bi, bj)),
        F[2 * m : 3 * m].reshape((bi, bj)),
    )


@njit(cache=True)
def _row_views(i, bj, Gt, Ht, Nt, nx, a, J0):
    """Row ``i``'s Gram products and its partners' ``|x_j|^2``, ``a_j``, as slices.

    ``x_i . x_j``, ``s_i . s_j``, ``z_i . z_j`` for the partners ``j`` of the
    tile. Slices, not offsets: with an index ``J0 + j``, numba's test for
    negative indices made LLVM load the partners one by one (gathers, 2-3 times
    slower).
    """
    return Gt[i], Ht[i], Nt[i], nx[J0 : J0 + bj], a[J0 : J0 + bj]


@njit(**_KERNEL)
def _tile_pass(i, bj, same, Gt, Ht, Nt, nx, a, alpha2, I0, J0, rb):
    """Row ``i`` of a tile: fill ``r2``, ``S`` and ``D . u`` from the Gram tiles."""
    _wide_vectors()
    r2, S, Du = rb[0], rb[1], rb[2]
    nxi = nx[I0 + i]
    ai = a[I0 + i]
    G, H, N, nxj, aj = _row_views(i, bj, Gt, Ht, Nt, nx, a, J0)
    inv_alpha2 = 1.0 / alpha2
    for j in range(bj):
        # Rounding can leave r2 slightly negative for close pairs.
        r2[j] = max(nxi + nxj[j] - 2.0 * G[j], 0.0)
        Du[j] = ai + aj[j] + alpha2 * G[j] + inv_alpha2 * H[j] - N[j]
        S[j] = H[j]
    if same:  # the pair (i, i): exactly u = 0
        r2[i] = 0.0
        Du[i] = 0.0


@njit(**_KERNEL)
def _gaussian_tile_row(i, bj, same, Gt, Ht, Nt, nx, a, alpha2, I0, J0, inv_h, d, grad, Pt, Ct):
    """Row ``i`` of a Gaussian tile in one loop: value, ``P``, ``C``, their sums.

    The formulas of :func:`._direct._gaussian_block`, read straight from the Gram
    tile, in the tile's dtype. Returns the row's value and its sums of ``C`` and
    ``P``. The pair ``(i, i)`` counts in the value and is left out of the
    coefficients (see the module's docstring). The column sums are left to
    :func:`_column_sums`: with two more arrays to update, the loop on float32
    tiles ran twice as slowly.
    """
    _wide_vectors()
    G, Hs, N, nxj, aj = _row_views(i, bj, Gt, Ht, Nt, nx, a, J0)
    nxi = nx[I0 + i]
    ai = a[I0 + i]
    zero = like(G, 0.0)
    two = like(G, 2.0)
    a2 = like(G, alpha2)  # powers of two: exact in either dtype
    ia2 = like(G, 1.0 / alpha2)
    inv_h = like(G, inv_h)
    c_exp = like(G, -0.5) * inv_h
    inv_h2 = inv_h * inv_h
    inv_h3 = inv_h2 * inv_h
    # d's terms as constants (see _direct._gaussian_block)
    c0 = like(G, d) * inv_h
    c1 = like(G, d + 2.0) * inv_h2
    jdiag = i if same else -1
    total = zero
    sc = zero
    sp = zero
    if not grad:
        for j in range(bj):
            r2 = max(nxi + nxj[j] - two * G[j], zero)
            du = ai + aj[j] + a2 * G[j] + ia2 * Hs[j] - N[j]
            r2 = zero if j == jdiag else r2
            du = zero if j == jdiag else du
            p = fexp(c_exp * r2)
            total += p * (Hs[j] + du * inv_h + c0 - r2 * inv_h2)
        return total, sc, sp
    pt = Pt[i]
    ct = Ct[i]
    for j in range(bj):
        r2 = max(nxi + nxj[j] - two * G[j], zero)
        du = ai + aj[j] + a2 * G[j] + ia2 * Hs[j] - N[j]
        S = Hs[j]
        r2 = zero if j == jdiag else r2
        du = zero if j == jdiag else du
        p = fexp(c_exp * r2)
        total += p * (S + du * inv_h + c0 - r2 * inv_h2)
        c = p * (r2 * inv_h3 - S * inv_h - du * inv_h2 - c1)
        p = zero if j == jdiag else p
        c = zero if j == jdiag else c
        sc += c
        sp += p
        pt[j] = p
        ct[j] = c
    return total, sc, sp


@njit(**_KERNEL)
def _imq_half_tile_row(i, bj, same, Gt, Ht, Nt, nx, a, alpha2, I0, J0, inv_h, d, grad, Pt, Qt, Ct):
    """Row ``i`` of an IMQ tile with beta = 1/2 in one loop: value, ``P``, ``Q``, ``C``.

    The formulas of :func:`._direct._imq_block` (``phi = w^(1/2)``,
    ``w = 1 / (1 + r2 / h)``), read straight from the Gram tile, in the tile's
    dtype. Returns the row's value and its sums of ``C`` and ``Q``; the pair
    ``(i, i)`` counts in the value and is left out of the coefficients.
    """
    _wide_vectors()
    G, Hs, N, nxj, aj = _row_views(i, bj, Gt, Ht, Nt, nx, a, J0)
    nxi = nx[I0 + i]
    ai = a[I0 + i]
    zero = like(G, 0.0)
    a2 = like(G, alpha2)  # powers of two: exact in either dtype
    ia2 = like(G, 1.0 / alpha2)
    one = like(G, 1.0)
    two = like(G, 2.0)
    four = like(G, 4.0)
    inv_h = like(G, inv_h)
    e0 = like(G, 2.0 * d)  # d's terms as constants (see _direct._gaussian_block)
    e1 = like(G, 4.0 * (d + 2.0))
    c1 = like(G, -0.5) * inv_h
    c2 = like(G, -1.5) * inv_h
    c3 = like(G, -2.5) * inv_h
    jdiag = i if same else -1
    total = zero
    sc = zero
    sq = zero
    if not grad:
        for j in range(bj):
            r2 = max(nxi + nxj[j] - two * G[j], zero)
            du = ai + aj[j] + a2 * G[j] + ia2 * Hs[j] - N[j]
            r2 = zero if j == jdiag else r2
            du = zero if j == jdiag else du
            w = one / (one + inv_h * r2)
            p = np.sqrt(w)
            p1 = c1 * w * p
            p2 = c2 * w * p1
            total += p * Hs[j] - two * p1 * du - e0 * p1 - four * r2 * p2
        return total, sc, sq
    pt = Pt[i]
    qt = Qt[i]
    ct = Ct[i]
    for j in range(bj):
        r2 = max(nxi + nxj[j] - two * G[j], zero)
        du = ai + aj[j] + a2 * G[j] + ia2 * Hs[j] - N[j]
        S = Hs[j]
        r2 = zero if j == jdiag else r2
        du = zero if j == jdiag else du
        w = one / (one + inv_h * r2)
        p = np.sqrt(w)
        p1 = c1 * w * p
        p2 = c2 * w * p1
        p3 = c3 * w * p2
        total += p * S - two * p1 * du - e0 * p1 - four * r2 * p2
        c = two * p1 * S - four * p2 * du - e1 * p2 - like(G, 8.0) * r2 * p3
        q = -two * p1
        p = zero if j == jdiag else p
        q = zero if j == jdiag else q
        c = zero if j == jdiag else c
        sc += c
        sq += q
        pt[j] = p
        qt[j] = q
        ct[j] = c
    return total, sc, sq


@njit(**_KERNEL)
def _store_row(i, bj, same, rb, Pt, Qt, Ct):
    """Copy row ``i``'s IMQ coefficients into the tiles; return the sums of ``C`` and ``Q``."""
    _wide_vectors()
    P, Q, C = rb[3], rb[4], rb[5]
    if same:  # the pair (i, i) is added analytically (see the module's docstring)
        P[i] = 0.0
        Q[i] = 0.0
        C[i] = 0.0
    sc = 0.0
    sq = 0.0
    pt = Pt[i]
    ct = Ct[i]
    qt = Qt[i]
    for j in range(bj):
        sc += C[j]
        sq += Q[j]
        pt[j] = P[j]
        ct[j] = C[j]
    for j in range(bj):
        qt[j] = Q[j]
    return sc, sq


@njit(**_KERNEL)
def _column_sums(bi, bj, Ct, Qt, cols):
    """Column sums of ``C`` and ``Q`` for the partner rows of an off-diagonal tile."""
    _wide_vectors()
    cc = cols[0]
    cq = cols[1]
    for j in range(bj):
        cc[j] = 0.0
        cq[j] = 0.0
    for i in range(bi):
        c = Ct[i]
        q = Qt[i]
        for j in range(bj):
            cc[j] += c[j]
            cq[j] += q[j]


@njit(**_KERNEL)
def _add_rows(acc, r0, tv):
    for i in range(tv.shape[0]):
        for k in range(tv.shape[1]):
            acc[r0 + i, k] += tv[i, k]


@njit(**_KERNEL)
def _tile_pair(
    I0,
    bi,
    J0,
    bj,
    grad,
    Xd,
    Sd,
    Zd,
    alpha2,
    W,
    nx,
    a,
    kind,
    inv_h,
    beta,
    F,
    Pf,
    Qf,
    Cf,
    rb,
    cols,
    tmp,
    acc1,
    acc2,
    acc3,
    sums,
    both,
):
    """All pairs of tiles ``I`` and ``J``; with ``both``, the sums of rows ``J`` too.

    Returns the sum of ``k_p`` over the pairs of ``I x J`` and, with ``both``
    and off the diagonal, ``J x I``. ``both=False`` serves the ordered
    schedule of :func:`_tiled_body`, which only benchmarks run.
    """
    _not_inlined()  # the same code in the threaded driver and its serial twin
    d = Xd.shape[1]
    same = I0 == J0
    gaussian = kind == GAUSSIAN
    Gt, Ht, Nt = _gram_tiles(F, bi, bj)
    np.dot(Xd[I0 : I0 + bi], Xd[J0 : J0 + bj].T, Gt)
    np.dot(Sd[I0 : I0 + bi], Sd[J0 : J0 + bj].T, Ht)
    np.dot(Zd[I0 : I0 + bi], Zd[J0 : J0 + bj].T, Nt)
    Pt = Pf[: bi * bj].reshape((bi, bj))
    Qt = Qf[: bi * bj].reshape((bi, bj))
    Ct = Cf[: bi * bj].reshape((bi, bj))
    r2, S, Du, P, Q, C = rb[0], rb[1], rb[2], rb[3], rb[4], rb[5]
    total = 0.0
    if gaussian:
        for i in range(bi):
            t, sc, sp = _gaussian_tile_row(
                i, bj, same, Gt, Ht, Nt, nx, a, alpha2, I0, J0, inv_h, d, grad, Pt, Ct
            )
            total += t
            sums[0, I0 + i] += sc
            sums[1, I0 + i] += sp * inv_h
    elif beta == 0.5:  # a square root instead of a log and an exp
        for i in range(bi):
            t, sc, sq = _imq_half_tile_row(
                i, bj, same, Gt, Ht, Nt, nx, a, alpha2, I0, J0, inv_h, d, grad, Pt, Qt, Ct
            )
            total += t
            sums[0, I0 + i] += sc
            sums[1, I0 + i] += sq
    else:
        for i in range(bi):
            _tile_pass(i, bj, same, Gt, Ht, Nt, nx, a, alpha2, I0, J0, rb)
            total += _imq_block(inv_h, beta, d, bj, r2, S, Du, P, Q, C)
            if grad:
                sc, sq = _store_row(i, bj, same, rb, Pt, Qt, Ct)
                sums[0, I0 + i] += sc
                sums[1, I0 + i] += sq
    if both and not same:
        total *= 2.0
    if not grad:
        return total
    # Rows I: C X_J, Q' [S_J | X_J] (Q' = P for the Gaussian, scaled at the end)
    # and, for IMQ, P S_J.
    Qs = Pt if gaussian else Qt
    t1 = tmp[: bi * d].reshape((bi, d))
    np.dot(Ct, Xd[J0 : J0 + bj], t1)
    _add_rows(acc1, I0, t1)
    t2 = tmp[: bi * 2 * d].reshape((bi, 2 * d))
    np.dot(Qs, W[J0 : J0 + bj], t2)
    _add_rows(acc2, I0, t2)
    if not gaussian:
        np.dot(Pt, Sd[J0 : J0 + bj], t1)
        _add_rows(acc3, I0, t1)
    if same or not both:
        return total
    # Rows J: the transposed tiles against rows I.
    _column_sums(bi, bj, Ct, Qs, cols)
    if gaussian:
        for j in range(bj):
            cols[1, j] *= inv_h
    for j in range(bj):
        sums[0, J0 + j] += cols[0, j]
        sums[1, J0 + j] += cols[1, j]
    u1 = tmp[: bj * d].reshape((bj, d))
    np.dot(Ct.T, Xd[I0 : I0 + bi], u1)
    _add_rows(acc1, J0, u1)
    u2 = tmp[: bj * 2 * d].reshape((bj, 2 * d))
    np.dot(Qs.T, W[I0 : I0 + bi], u2)
    _add_rows(acc2, J0, u2)
    if not gaussian:
        np.dot(Pt.T, Sd[I0 : I0 + bi], u1)
        _add_rows(acc3, J0, u1)
    return total


@njit(cache=True)
def _round_pair(r, k, m):
    """Pair ``k`` of round ``r`` of the circle method for ``m`` (even) players."""
    if k == 0:
        return r, m - 1
    return (r + k) % (m - 1), (r - k + m - 1) % (m - 1)


def _tiled_body(
    Xd,
    Sd,
    Zd,
    alpha2,
    W,
    nx,
    a,
    kind,
    bw,
    beta,
    grad,
    acc1,
    acc2,
    acc3,
    sums,
    F,
    Pf,
    Qf,
    Cf,
    tmp,
    tile,
    symmetric,
):
    n, d = Xd.shape
    n_chunks = F.shape[0]
    nb = (n + tile - 1) // tile
    m = nb + (nb & 1)  # with an odd count, a dummy tile sits out each round
    half = m // 2
    inv_h = 1.0 / bw
    rb = np.empty((n_chunks, 6, tile))
    cols = np.empty((n_chunks, 2, tile), Xd.dtype)
    if not symmetric:
        # Every ordered pair of tiles, each row tile against all partner tiles
        # in order: twice the Gram products and passes of the symmetric
        # schedule, the same gradient products. Kept to measure what symmetry
        # saves (benchmarks/bench_tiled.py --symmetry).
        rows = np.zeros(nb)
        for c in prange(n_chunks):
            for b in range(c, nb, n_chunks):
                I0 = b * tile
                t = 0.0
                for q in range(nb):
                    J0 = q * tile
                    t += _tile_pair(
                        I0,
                        min(tile, n - I0),
                        J0,
                        min(tile, n - J0),
                        grad,
                        Xd,
                        Sd,
                        Zd,
                        alpha2,
                        W,
                        nx,
                        a,
                        kind,
                        inv_h,
                        beta,
                        F[c],
                        Pf[c],
                        Qf[c],
                        Cf[c],
                        rb[c],
                        cols[c],
                        tmp[c],
                        acc1,
                        acc2,
                        acc3,
                        sums,
                        False,
                    )
                rows[b] = t
        return _ordered_sum(rows)
    totals = np.zeros((m, half))
    for r in range(m):
        # Rounds 0 .. m - 2 pair distinct tiles; round m - 1 takes the tiles on
        # the diagonal, k and k + half in slot k.
        for c in prange(n_chunks):
            for k in range(c, half, n_chunks):
                if r < m - 1:
                    p, q = _round_pair(r, k, m)
                    if p >= nb or q >= nb:
                        continue
                    if p > q:
                        p, q = q, p
                else:
                    p = q = k
                I0 = p * tile
                J0 = q * tile
                t = _tile_pair(
                    I0,
                    min(tile, n - I0),
                    J0,
                    min(tile, n - J0),
                    grad,
                    Xd,
                    Sd,
                    Zd,
                    alpha2,
                    W,
                    nx,
                    a,
                    kind,
                    inv_h,
                    beta,
                    F[c],
                    Pf[c],
                    Qf[c],
                    Cf[c],
                    rb[c],
                    cols[c],
                    tmp[c],
                    acc1,
                    acc2,
                    acc3,
                    sums,
                    True,
                )
                if r == m - 1 and k + half < nb:
                    I0 = (k + half) * tile
                    t += _tile_pair(
                        I0,
                        min(tile, n - I0),
                        I0,
                        min(tile, n - I0),
                        grad,
                        Xd,
                        Sd,
                        Zd,
                        alpha2,
                        W,
                        nx,
                        a,
                        kind,
                        inv_h,
                        beta,
                        F[c],
                        Pf[c],
                        Qf[c],
                        Cf[c],
                        rb[c],
                        cols[c],
                        tmp[c],
                        acc1,
                        acc2,
                        acc3,
                        sums,
                        True,
                    )
                totals[r, k] = t
    return _ordered_sum(totals.ravel())


_tiled_parallel = twin(_tiled_body, "_tiled_parallel", parallel=True)
_tiled_serial = twin(_tiled_body, "_tiled_serial", parallel=False)


@njit(cache=True)
def _centred(x, s, Xd, Sd, Zd, nx, a):
    """Fill ``Xd``, ``Sd``, ``Zd`` (the tiles' dtype): centred particles, scores, ``z``.

    ``nx = |x_i|^2`` and ``a = s_i . x_i`` are computed from the rounded values
    that the Gram tiles multiply, in float64, with fixed loops (a fixed
    summation order). Returns ``alpha^2`` of ``z = alpha x + s / alpha`` (see
    the module's docstring): 1 when ``x`` or ``s`` is all zeros.
    """
    n, d = x.shape
    mean = np.zeros(d)
    for i in range(n):
        for k in range(d):
            mean[k] += x[i, k]
    mean /= max(n, 1)
    sum_x = 0.0
    sum_s = 0.0
    for i in range(n):
        q = 0.0
        p = 0.0
        for k in range(d):
            Xd[i, k] = x[i, k] - mean[k]
            Sd[i, k] = s[i, k]
            xr = np.float64(Xd[i, k])
            sr = np.float64(Sd[i, k])
            q += xr * xr
            p += xr * sr
            sum_s += sr * sr
        nx[i] = q
        a[i] = p
        sum_x += q
    alpha = 1.0
    if sum_x > 0.0 and sum_s > 0.0 and np.isfinite(sum_x) and np.isfinite(sum_s):
        # |alpha x| ~ |s / alpha|: alpha^4 ~ rms|s|^2 / rms|x|^2, a power of two
        alpha = 2.0 ** min(max(np.round(0.25 * np.log2(sum_s / sum_x)), -30.0), 30.0)
    for i in range(n):
        for k in range(d):
            Zd[i, k] = alpha * np.float64(Xd[i, k]) + np.float64(Sd[i, k]) / alpha
    return alpha * alpha


@njit(cache=True)
def _assemble(gaussian, inv_h, Xd, Sd, sums, acc1, acc2, acc3, gx, gs):
    """The gradients from the row sums and the products (see the module's docstring)."""
    n, d = Xd.shape
    for i in range(n):
        sc = sums[0, i]
        sq = sums[1, i]
        for k in range(d):
            xk = np.float64(Xd[i, k])
            sk = np.float64(Sd[i, k])
            if gaussian:  # acc2 holds P [S | X]: Q = P / h
                ps = acc2[i, k]
                qs = ps * inv_h
                qx = acc2[i, d + k] * inv_h
            else:
                ps = acc3[i, k]
                qs = acc2[i, k]
                qx = acc2[i, d + k]
            gx[i, k] = xk * sc - acc1[i, k] + sk * sq - qs
            # + s_i: the pair (i, i), phi(0) s_i, left out of the tiles
            gs[i, k] = ps + xk * sq - qx + sk


def _aligned(shape, dtype, zero=False):
    """An array whose data starts on a 64-byte boundary.

    Every operand of the products starts on a 64-byte boundary (the tiles'
    offsets are multiples of 64 bytes too), whatever the allocator returns:
    with operands at other offsets, OpenBLAS's results changed in the last bits
    from one call to the next (20 % of the gradients' entries at n = 1000).
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = (np.zeros if zero else np.empty)(size + _ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % _ALIGN
    return raw[start : start + size].view(dtype).reshape(shape)


def tiled_radial_sums(kind, x, s, bw, beta, grad, parallel, dtype, symmetric=True):
    """Radial Stein sums through the tiled path: ``total`` or ``(total, gx, gs)``.

    ``dtype`` (float32 or float64) is the dtype of the tiles and their
    products; the value and the gradients are float64. ``parallel`` picks the
    threaded driver or its serial twin (the same results to the bit).
    ``symmetric=False`` computes every ordered pair of tiles, for benchmarks.
    """
    from numba import get_num_threads

    from ._threads import single_threaded_blas

    x = np.ascontiguousarray(x, dtype=np.float64)
    s = np.ascontiguousarray(s, dtype=np.float64)
    n, d = x.shape
    tile = min(_tile_rows(dtype, d), n)
    Xd = _aligned((n, d), dtype)
    Sd = _aligned((n, d), dtype)
    Zd = _aligned((n, d), dtype)
    nx = np.empty(n, dtype)
    a = np.empty(n, dtype)
    alpha2 = _centred(x, s, Xd, Sd, Zd, nx, a)
    W = _aligned((n if grad else 0, 2 * d), dtype)
    if grad:
        W[:, :d] = Sd
        W[:, d:] = Xd
    gaussian = kind == GAUSSIAN
    rows = n if grad else 0
    acc1 = np.zeros((rows, d))
    acc2 = np.zeros((rows, 2 * d))
    acc3 = np.zeros((0 if gaussian else rows, d))
    sums = np.zeros((2, rows))
    n_chunks = get_num_threads() if parallel else 1
    # Zeroed, not left as whatever memory held: subnormal numbers in the garbage
    # made float32 products on fresh memory slower by orders of magnitude.
    F = _aligned((n_chunks, 3 * tile * tile), dtype, zero=True)
    Pf = _aligned((n_chunks, tile * tile), dtype, zero=True)
    Qf = _aligned((n_chunks, tile * tile), dtype, zero=True)
    Cf = _aligned((n_chunks, tile * tile), dtype, zero=True)
    tmp = _aligned((n_chunks, tile * 2 * d), dtype, zero=True)
    args = (
        Xd,
        Sd,
        Zd,
        alpha2,
        W,
        nx,
        a,
        kind,
        float(bw),
        float(beta),
        grad,
        acc1,
        acc2,
        acc3,
        sums,
        F,
        Pf,
        Qf,
        Cf,
        tmp,
        tile,
        bool(symmetric),
    )
    with single_threaded_blas():
        total = _tiled_parallel(*args) if parallel else _tiled_serial(*args)
    if not grad:
        return total
    gx = np.empty((n, d))
    gs = np.empty((n, d))
    _assemble(gaussian, 1.0 / bw, Xd, Sd, sums, acc1, acc2, acc3, gx, gs)
    return total, gx, gs


# --------------------------------------------------------------------------- base kernel
# The Gaussian kernel itself (SVGD's direction, MMD's sums) between points x and
# partners y, through the same products: r2 from the Gram tile X_I Y_J^T, one
# pass for k = exp(-r2 / (2 h)), then K [Y_J | W_J]:
#     g^x_i = x_i sum_j k_ij - (K Y)_i,    g^w_i = (K W)_i.
# Row tiles of x are owned by one loop iteration each, and their partner tiles
# are taken in a fixed order: deterministic as the rows are. When y is x, the
# pair (i, i) (k = 1, u = 0) is left out of the tile and its term w_i added at
# the end, as for the Stein sums.


@njit(**_KERNEL)
def _cross_tile_row(i, bj, jdiag, Gv, nx, ny, I0, J0, c_exp, Kt):
    """Row ``i`` of a tile of ``k = exp(c r2)`` in the tile's dtype; returns the row's sum."""
    _wide_vectors()
    G = Gv[i, :bj]
    nyj = ny[J0 : J0 + bj]  # a slice: see _gaussian_tile_row
    nxi = nx[I0 + i]
    kt = Kt[i]
    zero = like(G, 0.0)
    two = like(G, 2.0)
    c_exp = like(G, c_exp)
    total = zero
    for j in range(bj):
        r2 = max(nxi + nyj[j] - two * G[j], zero)
        r2 = zero if j == jdiag else r2
        k = fexp(c_exp * r2)
        k = zero if j == jdiag else k
        total += k
        kt[j] = k
    return total


def _cross_body(Xd, Yd, YW, nx, ny, same, bw, rows, acc, sums, G, K, tmp):
    n, d = Xd.shape
    m = Yd.shape[0]
    dyw = YW.shape[1]
    n_chunks = G.shape[0]
    tile = _TILE
    nb = (n + tile - 1) // tile
    c_exp = -0.5 / bw
    for c in prange(n_chunks):
        for b in range(c, nb, n_chunks):
            I0 = b * tile
            bi = min(tile, n - I0)
            total = 0.0
            for J0 in range(0, m, tile):
                bj = min(tile, m - J0)
                Gv = G[c][: bi * bj].reshape((bi, bj))
                np.dot(Xd[I0 : I0 + bi], Yd[J0 : J0 + bj].T, Gv)
                Kt = K[c][: bi * bj].reshape((bi, bj))
                for i in range(bi):
                    jdiag = I0 + i - J0 if same else -1
                    t = _cross_tile_row(i, bj, jdiag, Gv, nx, ny, I0, J0, c_exp, Kt)
                    sums[I0 + i] += t
                    total += t
                tv = tmp[c][: bi * dyw].reshape((bi, dyw))
                np.dot(Kt, YW[J0 : J0 + bj], tv)
                _add_rows(acc, I0, tv)
            rows[b] = total


_cross_parallel = twin(_cross_body, "_cross_parallel", parallel=True)
_cross_serial = twin(_cross_body, "_cross_serial", parallel=False)


@njit(cache=True)
def _centred_cross(x, y, w, Xd, Yd, YW, nx, ny):
    """``x`` and ``y`` shifted by the mean of ``y``, in the tiles' dtype, with their norms."""
    n, d = x.shape
    m = y.shape[0]
    dw = w.shape[1]
    mean = np.zeros(d)
    for j in range(m):
        for k in range(d):
            mean[k] += y[j, k]
    mean /= max(m, 1)
    for i in range(n):
        q = 0.0
        for k in range(d):
            Xd[i, k] = x[i, k] - mean[k]
            q += np.float64(Xd[i, k]) ** 2
        nx[i] = q
    for j in range(m):
        q = 0.0
        for k in range(d):
            Yd[j, k] = y[j, k] - mean[k]
            YW[j, k] = Yd[j, k]
            q += np.float64(Yd[j, k]) ** 2
        for k in range(dw):
            YW[j, d + k] = w[j, k]
        ny[j] = q


def tiled_gaussian_cross(x, y, w, bw, parallel, dtype):
    """:func:`._drivers._gaussian_cross` through the tiled path: ``total, gx, gw``.

    ``y is x`` marks the sums within ``x`` (SVGD, MMD's first term); ``w`` is
    None (MMD) or the partners' weights (SVGD: the scores).
    """
    from numba import get_num_threads

    from ._threads import single_threaded_blas

    same = y is x
    x = np.ascontiguousarray(x, dtype=np.float64)
    y = x if same else np.ascontiguousarray(y, dtype=np.float64)
    w = np.empty((y.shape[0], 0)) if w is None else np.ascontiguousarray(w, dtype=np.float64)
    n, d = x.shape
    m, dw = y.shape[0], w.shape[1]
    Xd = _aligned((n, d), dtype)
    Yd = _aligned((m, d), dtype)
    YW = _aligned((m, d + dw), dtype)
    nx = np.empty(n, dtype)
    ny = np.empty(m, dtype)
    _centred_cross(x, y, w, Xd, Yd, YW, nx, ny)
    nb = (n + _TILE - 1) // _TILE
    n_chunks = min(get_num_threads(), nb) if parallel else 1
    G = _aligned((n_chunks, _TILE * _TILE), dtype, zero=True)
    K = _aligned((n_chunks, _TILE * _TILE), dtype, zero=True)
    tmp = _aligned((n_chunks, _TILE * (d + dw)), dtype, zero=True)
    rows = np.zeros(nb)
    acc = np.zeros((n, d + dw))
    sums = np.zeros(n)
    args = (Xd, Yd, YW, nx, ny, same, float(bw), rows, acc, sums, G, K, tmp)
    with single_threaded_blas():
        (_cross_parallel if parallel else _cross_serial)(*args)
    total = _ordered_sum(rows)
    xr = Xd.astype(np.float64)
    gx = xr * sums[:, None] - acc[:, :d]
    gw = acc[:, d:]
    if same:  # the pairs (i, i): k = 1, counted here
        total += n
        gw += w
    return total, gx, gw
