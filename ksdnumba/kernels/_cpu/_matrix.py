r"""The Stein matrix in tiles: products, quadratic forms, triangular row sums, blocks.

:math:`H_{ij} = k_p(x_i, x_j)` is never held whole. Each operation walks its
``T x T`` tiles (``T = _TILE``), computes a tile into a thread's scratch, and
uses it at once: multiplied by the matching rows of a right-hand side (BLAS,
one thread per tile), reduced into quadratic forms, or copied into a dense
block. Memory is O(n d) for the points plus the output and one scratch of a
few tiles per thread.

Filling a tile
--------------
*Isotropic* :math:`L = \lambda I` (the package's kernels, ``lambda = 1 / bw``,
and stein-thinning's named preconditioners): the pair quantities come from
three Gram products of the centred points ``x``, the scores ``s`` and
``z = alpha x + s / alpha`` (the construction and its accuracy argument are
those of :mod:`._tiled`): :math:`r^2`, :math:`S` and :math:`D \cdot u`, then
:math:`\rho = \lambda r^2`, :math:`a = \lambda^2 r^2`,
:math:`b = \lambda D \cdot u`. The Gaussian kernel and the IMQ kernel with
beta = 1/2 turn a row of the Gram tiles into a row of ``H`` in one fused
loop; other kernels go through :func:`._profiles.profile_row`.

*Diagonal* :math:`L` (in its eigenbasis, any preconditioner): four products, of
``sqrt(lambda) x`` (for :math:`\rho`), ``lambda x`` (for :math:`a`), ``s`` and
``z = alpha lambda x + s / alpha`` (for :math:`b`), then
:func:`._profiles.profile_row`.

*Direct*, for ``d < _GRAM_MIN_D`` (a Gram product of a few columns costs more
than the pair loop): :func:`._profiles.pair_terms`, the same code as the
columns of :mod:`._values`.

*Linear* kernel: :math:`k_p = (x_i \cdot x_j) S + s_i \cdot x_i + s_j \cdot x_j + d`
from two products of the raw points and scores.

Order and threads
-----------------
Products :math:`H W` take the tiles in the symmetric round-robin schedule of
:mod:`._tiled` (each unordered pair of tiles once, serving both row tiles;
the pairs of a round touch disjoint rows and run in parallel; the rounds run
in a fixed order). Quadratic forms take row tiles in pairs, each owning its
tiles to the right of the diagonal. Either way every output is accumulated in
an order fixed by the tiling alone: the results are bit-identical from run to
run and for any number of threads. Tiles and their products are in the
computation dtype (float32 or float64); the sums across tiles are float64.
"""

import numpy as np
from numba import get_num_threads, njit, prange

from .._kinds import GAUSSIAN, IMQ, LINEAR
from ._profiles import pair_terms, profile_row
from ._threads import single_threaded_blas
from ._tiled import _aligned, _round_pair
from ._twins import twin
from ._vecmath import _KERNEL, _not_inlined, _ordered_sum, _wide_vectors, fexp, like

_TILE = 128
# Right-hand sides are taken in chunks of this many columns, so that a tile's
# product (T x _COLS) stays in a core's L2 while it is added up.
_COLS = 256
# From this dimension on the tiles come from Gram products; below, from the pair
# loop (bench_stein_matrix.py --crossover).
_GRAM_MIN_D = 6

# How a tile is filled (see the module's docstring).
ISO = 0
DIAG = 1
DIRECT = 2
LIN = 3


# --------------------------------------------------------------------------- layout


class Layout:
    r"""The arrays every tile operation reads, prepared once per matrix.

    Parameters
    ----------
    kind : int
        A kind of :mod:`ksdnumba.kernels._kinds`.
    beta : float
        IMQ exponent.
    x, s : ndarray of shape (n, d), float64
        Points and scores, already rotated into :math:`L`'s eigenbasis.
    weights : ndarray of shape (d,)
        Eigenvalues of :math:`L` (ignored by the linear kernel).
    dtype : float32 or float64
        Dtype of the tiles and their products.
    trace : float or None
        :math:`\operatorname{tr} L`; None: the sum of ``weights``.
    """

    def __init__(self, kind, beta, x, s, weights, dtype, trace=None):
        n, d = x.shape
        self.kind = int(kind)
        self.beta = float(beta)
        self.n, self.d = n, d
        self.dtype = np.dtype(dtype)
        self.weights = np.ascontiguousarray(weights, dtype=np.float64)
        self.trace = float(np.sum(self.weights)) if trace is None else float(trace)
        iso = bool(np.all(self.weights == self.weights[0]))
        if kind == LINEAR:
            self.mode = LIN
        elif d < _GRAM_MIN_D:
            self.mode = DIRECT
        else:
            self.mode = ISO if iso else DIAG
        self.lam = float(self.weights[0])
        # Direct rows (and columns) read the transposed float64 arrays.
        self.xT = np.ascontiguousarray(x.T, dtype=np.float64)
        self.sT = np.ascontiguousarray(s.T, dtype=np.float64)
        z = (0, d)
        self.X = self.Y = self.S = self.Z = _aligned(z, self.dtype)
        self.n1 = self.n2 = self.av = np.zeros(0)
        self.alpha2 = 1.0
        if self.mode == DIRECT:
            return
        self.X = _aligned((n, d), self.dtype)
        self.S = _aligned((n, d), self.dtype)
        self.n1 = np.empty(n)
        if self.mode == LIN:
            _linear_layout(x, s, self.X, self.S, self.n1)
            return
        self.Z = _aligned((n, d), self.dtype)
        self.av = np.empty(n)
        if self.mode == DIAG:
            self.Y = _aligned((n, d), self.dtype)
            self.n2 = np.empty(n)
        self.alpha2 = _gram_layout(
            x,
            s,
            self.weights,
            self.mode == ISO,
            self.X,
            self.Y,
            self.S,
            self.Z,
            self.n1,
            self.n2,
            self.av,
        )

    def arrays(self):
        """The arguments of the compiled tile functions, in their order."""
        return (
            self.mode,
            self.kind,
            self.beta,
            self.X,
            self.Y,
            self.S,
            self.Z,
            self.xT,
            self.sT,
            self.n1,
            self.n2,
            self.av,
            self.weights,
            self.lam,
            self.trace,
            self.alpha2,
        )


@njit(cache=True)
def _linear_layout(x, s, X, S, sx):
    n, d = x.shape
    for i in range(n):
        t = 0.0
        for k in range(d):
            X[i, k] = x[i, k]
            S[i, k] = s[i, k]
            t += x[i, k] * s[i, k]
        sx[i] = t


@njit(cache=True)
def _gram_layout(x, s, weights, iso, X, Y, S, Z, n1, n2, av):
    r"""Fill the tiles' operands; return ``alpha^2`` of ``z``.

    Isotropic: ``X`` the centred points, ``n1 = |x_i|^2``, ``av = s_i . x_i``,
    ``z = alpha x + s / alpha``. Diagonal: ``X = sqrt(lambda) x``,
    ``Y = lambda x`` (centred), ``n1 = |X_i|^2``, ``n2 = |Y_i|^2``,
    ``av = s_i . Y_i``, ``z = alpha Y + s / alpha``. The norms and ``av`` are
    float64 sums of the values the products see (rounded to the tiles' dtype).
    """
    n, d = x.shape
    mean = np.zeros(d)
    for i in range(n):
        for k in range(d):
            mean[k] += x[i, k]
    mean /= max(n, 1)
    root = np.sqrt(weights)
    sum_y = 0.0
    sum_s = 0.0
    for i in range(n):
        q1 = 0.0
        q2 = 0.0
        p = 0.0
        for k in range(d):
            u = x[i, k] - mean[k]
            S[i, k] = s[i, k]
            sr = np.float64(S[i, k])
            sum_s += sr * sr
            if iso:
                X[i, k] = u
                xr = np.float64(X[i, k])
                q1 += xr * xr
                p += xr * sr
            else:
                X[i, k] = root[k] * u
                Y[i, k] = weights[k] * u
                xr = np.float64(X[i, k])
                yr = np.float64(Y[i, k])
                q1 += xr * xr
                q2 += yr * yr
                p += yr * sr
        n1[i] = q1
        if not iso:
            n2[i] = q2
        av[i] = p
        sum_y += q1 if iso else q2
    alpha = 1.0
    if sum_y > 0.0 and sum_s > 0.0 and np.isfinite(sum_y) and np.isfinite(sum_s):
        # |alpha y| ~ |s / alpha|, a power of two (exact scalings); see _tiled
        alpha = 2.0 ** min(max(np.round(0.25 * np.log2(sum_s / sum_y)), -30.0), 30.0)
    for i in range(n):
        for k in range(d):
            y = np.float64(X[i, k]) if iso else np.float64(Y[i, k])
            Z[i, k] = alpha * y + np.float64(S[i, k]) / alpha
    return alpha * alpha


# --------------------------------------------------------------------------- tile rows


@njit(**_KERNEL)
def _gaussian_row(i, bj, jdiag, Gx, Gs, Gz, n1, av, alpha2, I0, J0, lam, trace, out):
    """Row ``i`` of a Gaussian tile from its Gram rows, in the tile's dtype."""
    _wide_vectors()
    G = Gx[i]
    H = Gs[i]
    N = Gz[i]
    nxj = n1[J0 : J0 + bj]  # slices, not offsets (see _tiled._row_views)
    aj = av[J0 : J0 + bj]
    o = out[i]
    nxi = like(G, n1[I0 + i])
    ai = like(G, av[I0 + i])
    zero = like(G, 0.0)
    two = like(G, 2.0)
    a2 = like(G, alpha2)
    ia2 = like(G, 1.0 / alpha2)
    lm = like(G, lam)
    lm2 = lm * lm
    c_exp = like(G, -0.5) * lm
    tr = like(G, trace)
    for j in range(bj):
        r2 = max(nxi + like(G, nxj[j]) - two * G[j], zero)
        du = ai + like(G, aj[j]) + a2 * G[j] + ia2 * H[j] - N[j]
        r2 = zero if j == jdiag else r2
        du = zero if j == jdiag else du
        p = fexp(c_exp * r2)
        o[j] = p * (H[j] + lm * du + tr - lm2 * r2)


@njit(**_KERNEL)
def _imq_half_row(i, bj, jdiag, Gx, Gs, Gz, n1, av, alpha2, I0, J0, lam, trace, out):
    """Row ``i`` of an IMQ tile with beta = 1/2 from its Gram rows, in the tile's dtype."""
    _wide_vectors()
    G = Gx[i]
    H = Gs[i]
    N = Gz[i]
    nxj = n1[J0 : J0 + bj]
    aj = av[J0 : J0 + bj]
    o = out[i]
    nxi = like(G, n1[I0 + i])
    ai = like(G, av[I0 + i])
    zero = like(G, 0.0)
    one = like(G, 1.0)
    two = like(G, 2.0)
    three = like(G, 3.0)
    a2 = like(G, alpha2)
    ia2 = like(G, 1.0 / alpha2)
    lm = like(G, lam)
    lm2 = lm * lm
    tr = like(G, trace)
    for j in range(bj):
        r2 = max(nxi + like(G, nxj[j]) - two * G[j], zero)
        du = ai + like(G, aj[j]) + a2 * G[j] + ia2 * H[j] - N[j]
        r2 = zero if j == jdiag else r2
        du = zero if j == jdiag else du
        w = one / (one + lm * r2)
        p = np.sqrt(w)
        o[j] = p * (H[j] + w * ((tr + lm * du) - three * lm2 * r2 * w))


@njit(**_KERNEL)
def _generic_gram_row(
    mode, kind, beta, i, bj, jdiag, Gx, Gy, Gs, Gz, n1, n2, av, alpha2, I0, J0, lam, trace, out, buf
):
    """Row ``i`` of a tile from its Gram rows through :func:`._profiles.profile_row`.

    Isotropic (``mode == ISO``, three products) or diagonal (four); computed in
    float64 whatever the tiles' dtype.
    """
    _wide_vectors()
    rho, a2, b, S = buf[0], buf[1], buf[2], buf[3]
    G = Gx[i]
    H = Gs[i]
    N = Gz[i]
    n1i = n1[I0 + i]
    ai = av[I0 + i]
    inv_alpha2 = 1.0 / alpha2
    if mode == ISO:
        for j in range(bj):
            g = np.float64(G[j])
            h = np.float64(H[j])
            r2 = max(n1i + n1[J0 + j] - 2.0 * g, 0.0)
            du = ai + av[J0 + j] + alpha2 * g + inv_alpha2 * h - np.float64(N[j])
            r2 = 0.0 if j == jdiag else r2
            du = 0.0 if j == jdiag else du
            rho[j] = lam * r2
            a2[j] = lam * lam * r2
            b[j] = lam * du
            S[j] = h
    else:
        Y = Gy[i]
        n2i = n2[I0 + i]
        for j in range(bj):
            gy = np.float64(Y[j])
            h = np.float64(H[j])
            r = max(n1i + n1[J0 + j] - 2.0 * np.float64(G[j]), 0.0)
            q = max(n2i + n2[J0 + j] - 2.0 * gy, 0.0)
            bb = ai + av[J0 + j] + alpha2 * gy + inv_alpha2 * h - np.float64(N[j])
            rho[j] = 0.0 if j == jdiag else r
            a2[j] = 0.0 if j == jdiag else q
            b[j] = 0.0 if j == jdiag else bb
            S[j] = h
    row = buf[4]
    profile_row(kind, beta, bj, rho, a2, b, trace, S, row, buf[5:8])
    o = out[i]
    for j in range(bj):
        o[j] = row[j]


@njit(**_KERNEL)
def _linear_row(i, bj, Gx, Gs, sx, I0, J0, d, out):
    """Row ``i`` of a linear-kernel tile: ``(x_i . x_j) S_ij + s_i . x_i + s_j . x_j + d``."""
    _wide_vectors()
    G = Gx[i]
    H = Gs[i]
    o = out[i]
    sxj = sx[J0 : J0 + bj]
    c = sx[I0 + i] + d
    for j in range(bj):
        o[j] = G[j] * H[j] + like(G, sxj[j] + c)


@njit(**_KERNEL)
def _grams(I0, bi, J0, bj, mode, X, Y, S, Z, F):
    """The Gram tiles of rows ``I`` and ``J`` in ``F``: ``X``, ``S``, then ``Z`` and ``Y``."""
    m = bi * bj
    if mode == DIRECT:
        return
    np.dot(X[I0 : I0 + bi], X[J0 : J0 + bj].T, F[:m].reshape((bi, bj)))
    np.dot(S[I0 : I0 + bi], S[J0 : J0 + bj].T, F[m : 2 * m].reshape((bi, bj)))
    if mode == LIN:
        return
    np.dot(Z[I0 : I0 + bi], Z[J0 : J0 + bj].T, F[2 * m : 3 * m].reshape((bi, bj)))
    if mode == DIAG:
        np.dot(Y[I0 : I0 + bi], Y[J0 : J0 + bj].T, F[3 * m : 4 * m].reshape((bi, bj)))


@njit(**_KERNEL)
def _rows(
    I0, bi, J0, bj, mode, kind, beta, xT, sT, n1, n2, av, weights, lam, trace, alpha2, F, Ht, buf
):
    """Tile ``H[I0:I0 + bi, J0:J0 + bj]`` into ``Ht`` from the Gram tiles of :func:`_grams`
    (or, ``mode == DIRECT``, from the points), for the metric ``weights`` (``lam``
    when isotropic, ``trace`` their sum)."""
    _not_inlined()  # one copy of the code for the threaded drivers and their serial twins
    if mode == DIRECT:
        for i in range(bi):
            pair_terms(xT, sT, weights, I0 + i, J0, bj, buf)
            row = buf[4]
            profile_row(kind, beta, bj, buf[0], buf[1], buf[2], trace, buf[3], row, buf[5:8])
            h = Ht[i]
            for j in range(bj):
                h[j] = row[j]
        return
    m = bi * bj
    Gx = F[:m].reshape((bi, bj))
    Gs = F[m : 2 * m].reshape((bi, bj))
    if mode == LIN:
        d = xT.shape[0]
        for i in range(bi):
            _linear_row(i, bj, Gx, Gs, n1, I0, J0, d, Ht)
        return
    Gz = F[2 * m : 3 * m].reshape((bi, bj))
    Gy = F[3 * m : 4 * m].reshape((bi, bj)) if mode == DIAG else Gx
    same = I0 == J0
    for i in range(bi):
        jdiag = i if same else -1
        if mode == ISO and kind == GAUSSIAN:
            _gaussian_row(i, bj, jdiag, Gx, Gs, Gz, n1, av, alpha2, I0, J0, lam, trace, Ht)
        elif mode == ISO and kind == IMQ and beta == 0.5:
            _imq_half_row(i, bj, jdiag, Gx, Gs, Gz, n1, av, alpha2, I0, J0, lam, trace, Ht)
        else:
            _generic_gram_row(
                mode,
                kind,
                beta,
                i,
                bj,
                jdiag,
                Gx,
                Gy,
                Gs,
                Gz,
                n1,
                n2,
                av,
                alpha2,
                I0,
                J0,
                lam,
                trace,
                Ht,
                buf,
            )


@njit(**_KERNEL)
def _fill(I0, bi, J0, bj, layout, F, Ht, buf):
    """Tile ``H[I0:I0 + bi, J0:J0 + bj]`` into ``Ht`` (``bi x bj``, the tiles' dtype)."""
    mode, kind, beta, X, Y, S, Z, xT, sT, n1, n2, av, weights, lam, trace, alpha2 = layout
    _grams(I0, bi, J0, bj, mode, X, Y, S, Z, F)
    _rows(
        I0,
        bi,
        J0,
        bj,
        mode,
        kind,
        beta,
        xT,
        sT,
        n1,
        n2,
        av,
        weights,
        lam,
        trace,
        alpha2,
        F,
        Ht,
        buf,
    )


# --------------------------------------------------------------------------- products


@njit(**_KERNEL)
def _add_rows(acc, r0, t):
    for i in range(t.shape[0]):
        for b in range(t.shape[1]):
            acc[r0 + i, b] += t[i, b]


@njit(**_KERNEL)
def _add_matvec(Ht, bi, bj, w, out, I0, J0, both, lower, cols):
    """``out[I] += H w[J]`` and, with ``both``, ``out[J] += H^T w[I]``, for one column.

    ``lower``: only the strictly lower triangle of ``H`` (``H`` a diagonal tile)
    or only ``out[J] += H^T w[I]`` (``H`` above the diagonal).
    """
    _wide_vectors()
    if lower and I0 == J0:
        for i in range(bi):
            h = Ht[i]
            t = 0.0
            for j in range(i):
                t += h[j] * w[J0 + j]
            out[I0 + i] += t
        return
    if not lower:
        for i in range(bi):
            h = Ht[i]
            wj = w[J0 : J0 + bj]
            t = 0.0
            for j in range(bj):
                t += h[j] * wj[j]
            out[I0 + i] += t
    if both or lower:
        for j in range(bj):
            cols[j] = 0.0
        for i in range(bi):
            h = Ht[i]
            wi = w[I0 + i]
            for j in range(bj):
                cols[j] += h[j] * wi
        for j in range(bj):
            out[J0 + j] += cols[j]


@njit(**_KERNEL)
def _pair_products(I0, bi, J0, bj, layout, W, out, lower, F, Hf, T, buf):
    """One unordered pair of tiles: their share of ``H W`` (``lower``: of the strictly
    lower triangle of ``H`` times ``W``)."""
    Ht = Hf[: bi * bj].reshape((bi, bj))
    _fill(I0, bi, J0, bj, layout, F, Ht, buf)
    n_cols, n, B = W.shape
    same = I0 == J0
    if n_cols == 1 and B == 1:
        _add_matvec(Ht, bi, bj, W[0].reshape(n), out[0].reshape(n), I0, J0, not same, lower, buf[0])
        return
    if lower and same:
        for i in range(bi):
            for j in range(i, bj):
                Ht[i, j] = 0.0
    for q in range(n_cols):
        Wq = W[q]
        if not (lower and not same):
            t1 = T[: bi * B].reshape((bi, B))
            np.dot(Ht, Wq[J0 : J0 + bj], t1)
            _add_rows(out[q], I0, t1)
        if not same:
            t2 = T[: bj * B].reshape((bj, B))
            np.dot(Ht.T, Wq[I0 : I0 + bi], t2)
            _add_rows(out[q], J0, t2)


def _products_body(layout, W, out, lower, tile, F, Hf, T, buf):
    n = W.shape[1]
    n_chunks = F.shape[0]
    nb = (n + tile - 1) // tile
    m = nb + (nb & 1)  # with an odd count, a dummy tile sits out each round
    half = m // 2
    for r in range(m):
        # Rounds 0 .. m - 2 pair distinct tiles; round m - 1 takes the diagonal
        # tiles, k and k + half in slot k.
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
                _pair_products(
                    I0,
                    min(tile, n - I0),
                    J0,
                    min(tile, n - J0),
                    layout,
                    W,
                    out,
                    lower,
                    F[c],
                    Hf[c],
                    T[c],
                    buf[c],
                )
                if r == m - 1 and k + half < nb:
                    I0 = (k + half) * tile
                    _pair_products(
                        I0,
                        min(tile, n - I0),
                        I0,
                        min(tile, n - I0),
                        layout,
                        W,
                        out,
                        lower,
                        F[c],
                        Hf[c],
                        T[c],
                        buf[c],
                    )


@njit(**_KERNEL)
def _lower_row_tile(I, layout, W, out, tile, F, Hf, T, buf):
    """``out[I] += sum_{J <= I} tril(H_IJ) W_J``, strictly below the diagonal."""
    n_cols, n, B = W.shape
    i0 = I * tile
    bi = min(tile, n - i0)
    for J in range(I + 1):
        j0 = J * tile
        bj = min(tile, n - j0)
        Ht = Hf[: bi * bj].reshape((bi, bj))
        _fill(i0, bi, j0, bj, layout, F, Ht, buf)
        if J == I:
            for i in range(bi):
                for j in range(i, bj):
                    Ht[i, j] = 0.0
        if n_cols == 1 and B == 1:
            _add_matvec(
                Ht, bi, bj, W[0].reshape(n), out[0].reshape(n), i0, j0, False, False, buf[0]
            )
        else:
            for q in range(n_cols):
                t1 = T[: bi * B].reshape((bi, B))
                np.dot(Ht, W[q][j0 : j0 + bj], t1)
                _add_rows(out[q], i0, t1)


def _lower_body(layout, W, out, tile, F, Hf, T, buf):
    """Strictly lower triangle of ``H`` times ``W``: each row tile owns its tiles on and
    left of the diagonal; tasks take row tiles ``I`` and ``nb - 1 - I`` (even work),
    so the threads never meet and never share an output row."""
    n = W.shape[1]
    nb = (n + tile - 1) // tile
    n_tasks = (nb + 1) // 2
    n_chunks = F.shape[0]
    for c in prange(n_chunks):
        for task in range(c, n_tasks, n_chunks):
            first = np.int64(task)  # the prange index may be unsigned
            last = nb - 1 - first
            _lower_row_tile(first, layout, W, out, tile, F[c], Hf[c], T[c], buf[c])
            if last != first:
                _lower_row_tile(last, layout, W, out, tile, F[c], Hf[c], T[c], buf[c])


_lower_parallel = twin(_lower_body, "_lower_parallel", parallel=True)
_lower_serial = twin(_lower_body, "_lower_serial", parallel=False)


_products_parallel = twin(_products_body, "_products_parallel", parallel=True)
_products_serial = twin(_products_body, "_products_serial", parallel=False)


def _scratch(layout, n_chunks, tile, B):
    """Per-thread scratch: Gram tiles, the ``H`` tile, product rows, row buffers."""
    dtype = layout.dtype
    grams = 4 if layout.mode == DIAG else 3
    F = _aligned((n_chunks, grams * tile * tile), dtype, zero=True)
    Hf = _aligned((n_chunks, tile * tile), dtype, zero=True)
    T = _aligned((n_chunks, tile * max(B, 1)), dtype, zero=True)
    buf = np.zeros((n_chunks, 8, tile))
    return F, Hf, T, buf


def _chunks(n, tile, parallel):
    nb = (n + tile - 1) // tile
    return max(1, min(get_num_threads(), nb)) if parallel else 1


def products(layout, W, lower=False, parallel=None, tile=_TILE):
    """``H W`` (``lower``: the strictly lower triangle of ``H`` times ``W``), float64 ``(n, B)``.

    ``W`` is ``(n, B)``; it is multiplied in the tiles' dtype.
    """
    n = layout.n
    B = W.shape[1]
    Wc = _by_columns(W, layout.dtype)
    tile = int(min(tile, max(n, 1)))
    parallel = n > tile if parallel is None else bool(parallel)
    n_chunks = _chunks(n, tile, parallel)
    out = np.zeros(Wc.shape)
    F, Hf, T, buf = _scratch(layout, n_chunks, tile, Wc.shape[2])
    threaded = parallel and n_chunks > 1
    with single_threaded_blas():
        if lower:
            (_lower_parallel if threaded else _lower_serial)(
                layout.arrays(), Wc, out, tile, F, Hf, T, buf
            )
        else:
            (_products_parallel if threaded else _products_serial)(
                layout.arrays(), Wc, out, False, tile, F, Hf, T, buf
            )
    return _from_columns(out, B)


def _by_columns(W, dtype):
    """``W`` ``(n, B)`` as ``(q, n, c)`` contiguous chunks of ``c <= _COLS`` columns."""
    n, B = W.shape
    c = min(B, _COLS)
    q = -(-B // c)
    Wc = np.zeros((q, n, c), dtype=dtype)
    for k in range(q):
        Wc[k, :, : min(c, B - k * c)] = W[:, k * c : (k + 1) * c]
    return Wc


def _from_columns(out, B):
    q, n, c = out.shape
    return np.ascontiguousarray(out.transpose(1, 0, 2).reshape(n, q * c)[:, :B])


# --------------------------------------------------------------------------- forms


@njit(**_KERNEL)
def _forms_row_tile(I, layout, metrics, W, tile, partial, F, Hf, G, buf):
    """Row tile ``I``'s share of every form, for each metric ``k``:
    ``partial[k, b] = sum_{i in I} W[i, b] (sum_{J >= I} f_J H^k_{IJ} W_J)[i, b]``,
    ``f_J = 2`` off the diagonal tile and 1 on it. ``metrics`` is
    ``(weights (K, d), lams (K,), traces (K,))``: the Gram tiles serve all K."""
    mode, kind, beta, X, Y, S, Z, xT, sT, n1, n2, av, _, _, _, alpha2 = layout
    weights, lams, traces = metrics
    n_cols, n, B = W.shape
    nb = (n + tile - 1) // tile
    i0 = I * tile
    ni = min(tile, n - i0)
    for k in range(lams.shape[0]):
        for q in range(n_cols):
            for b in range(B):
                partial[k, q, b] = 0.0
    for J in range(I, nb):
        j0 = J * tile
        nj = min(tile, n - j0)
        Ht = Hf[: ni * nj].reshape((ni, nj))
        Gs = G[: ni * B].reshape((ni, B))
        factor = 1.0 if J == I else 2.0
        _grams(i0, ni, j0, nj, mode, X, Y, S, Z, F)
        for k in range(lams.shape[0]):
            _rows(
                i0,
                ni,
                j0,
                nj,
                mode,
                kind,
                beta,
                xT,
                sT,
                n1,
                n2,
                av,
                weights[k],
                lams[k],
                traces[k],
                alpha2,
                F,
                Ht,
                buf,
            )
            for q in range(n_cols):
                Wq = W[q]
                np.dot(Ht, Wq[j0 : j0 + nj], Gs)
                pq = partial[k, q]
                for a in range(ni):
                    wa = Wq[i0 + a]
                    ga = Gs[a]
                    for b in range(B):
                        pq[b] += factor * wa[b] * ga[b]


def _forms_body(layout, metrics, W, tile, partial, F, Hf, G, buf):
    n = W.shape[1]
    nb = (n + tile - 1) // tile
    n_tasks = (nb + 1) // 2
    n_chunks = F.shape[0]
    # Row tile I has nb - I tiles to its right: a task takes I and nb - 1 - I.
    for c in prange(n_chunks):
        for task in range(c, n_tasks, n_chunks):
            first = np.int64(task)
            _forms_row_tile(
                first, layout, metrics, W, tile, partial[:, first], F[c], Hf[c], G[c], buf[c]
            )
            last = nb - 1 - first
            if last != first:
                _forms_row_tile(
                    last, layout, metrics, W, tile, partial[:, last], F[c], Hf[c], G[c], buf[c]
                )


_forms_parallel = twin(_forms_body, "_forms_parallel", parallel=True)
_forms_serial = twin(_forms_body, "_forms_serial", parallel=False)


@njit(cache=True)
def _sum_partials(partial, out):
    """``out[k, q, b]``: the row tiles' partial forms summed in tile order."""
    for k in range(partial.shape[0]):
        for q in range(partial.shape[2]):
            for b in range(partial.shape[3]):
                out[k, q, b] = _ordered_sum(partial[k, :, q, b])


def quadratic_forms(layout, W, lams=None, parallel=None, tile=_TILE):
    r""":math:`w_b^\top H w_b` for every column of ``W`` (``(n, B)``), float64 ``(B,)``.

    ``lams`` (isotropic layouts only): several values of :math:`\lambda`
    (``1 / bw``), one pass over the tiles for all of them; returns
    ``(len(lams), B)`` then.
    """
    n = layout.n
    B = W.shape[1]
    Wc = _by_columns(W, layout.dtype)
    several = lams is not None
    if several:
        if layout.mode not in (ISO, DIRECT) or not np.all(layout.weights == layout.weights[0]):
            raise ValueError("several bandwidths need an isotropic kernel")
        lams = np.ascontiguousarray(lams, dtype=np.float64)
        weights = np.ascontiguousarray(np.repeat(lams[:, None], layout.d, axis=1))
        traces = lams * layout.d
    else:
        lams = np.array([layout.lam])
        weights = layout.weights[None, :].copy()
        traces = np.array([layout.trace])
    tile = int(min(tile, max(n, 1)))
    nb = (n + tile - 1) // tile
    parallel = n > tile if parallel is None else bool(parallel)
    n_chunks = _chunks(n, tile, parallel) if parallel else 1
    q, _, c = Wc.shape
    F, Hf, G, buf = _scratch(layout, n_chunks, tile, c)
    partial = np.zeros((lams.shape[0], nb, q, c))
    args = (layout.arrays(), (weights, lams, traces), Wc, tile, partial, F, Hf, G, buf)
    with single_threaded_blas():
        (_forms_parallel if parallel and n_chunks > 1 else _forms_serial)(*args)
    out = np.empty((lams.shape[0], q, c))
    _sum_partials(partial, out)
    out = out.reshape(lams.shape[0], q * c)[:, :B]
    return out if several else out[0]


# --------------------------------------------------------------------------- blocks


def _block_body(layout, out, tile, F, Hf, buf):
    n = out.shape[0]
    nb = (n + tile - 1) // tile
    n_chunks = F.shape[0]
    for c in prange(n_chunks):
        for I in range(c, nb, n_chunks):
            i0 = I * tile
            ni = min(tile, n - i0)
            for J in range(I, nb):
                j0 = J * tile
                nj = min(tile, n - j0)
                Ht = Hf[c][: ni * nj].reshape((ni, nj))
                _fill(i0, ni, j0, nj, layout, F[c], Ht, buf[c])
                for a in range(ni):
                    for b in range(nj):
                        out[i0 + a, j0 + b] = Ht[a, b]
                        out[j0 + b, i0 + a] = Ht[a, b]


_block_parallel = twin(_block_body, "_block_parallel", parallel=True)
_block_serial = twin(_block_body, "_block_serial", parallel=False)


def dense(layout, parallel=None, tile=_TILE):
    """The whole matrix, ``(n, n)`` float64, from the upper triangle of tiles."""
    n = layout.n
    tile = int(min(tile, max(n, 1)))
    parallel = n > tile if parallel is None else bool(parallel)
    n_chunks = _chunks(n, tile, parallel)
    F, Hf, _, buf = _scratch(layout, n_chunks, tile, 1)
    out = np.empty((n, n))
    args = (layout.arrays(), out, tile, F, Hf, buf)
    with single_threaded_blas():
        (_block_parallel if parallel and n_chunks > 1 else _block_serial)(*args)
    return out
