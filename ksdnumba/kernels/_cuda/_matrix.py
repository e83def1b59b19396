r"""The Stein matrix on the GPU: products, quadratic forms, triangular products, blocks, columns.

The same entry points as :mod:`ksdnumba.kernels._cpu._matrix` and
:mod:`ksdnumba.kernels._cpu._values`, with the same arguments and returns
(float64 host arrays). :math:`H_{ij} = k_p(x_i, x_j)` is never held whole
(except by :func:`dense`): every entry is computed where it is used, from the
pair quantities of :mod:`._profiles` evaluated directly with the metric's
eigenvalues, O(d) per pair.

Products and forms (:func:`tile_kernel`)
----------------------------------------
A block owns a tile of rows and a group of right-hand-side columns; the
partners ``j`` stream through shared memory, a tile at a time, with the
matching rows of ``W``. Two shapes, chosen by :func:`tile_shape`:

- *Row mode* (at most :data:`._launch.ROW_MODE_MAX_COLUMNS` columns, one
  metric): the N-body pattern, one thread per row, each computing its own
  row's entries and multiplying them at once by the partners' ``W`` values.
- *Shared mode* (more columns, or several metrics): a block of
  ``MATRIX_ROWS x MATRIX_COLS`` threads; the block computes the tile's entries
  once into shared memory (each thread a few), then each thread multiplies its
  row of the tile by up to ``COLUMNS_PER_THREAD`` columns of ``W``. With
  several metrics (the forms of several bandwidths), the pair quantities are
  computed once per tile and each metric's entries in turn.

The whole matrix is streamed, not its upper triangle (the symmetry would need
atomic or extra reductions). ``lower=True`` keeps the entries with ``j < i``
and skips the tiles without any. Quadratic forms multiply each row's product
by its ``W`` row and sum the block's rows in order; a second kernel adds the
blocks' sums in order.

Blocks and columns (:func:`entries_kernel`)
-------------------------------------------
One thread per row of the output block, reading points from ``(d, n)`` arrays
(consecutive threads, consecutive addresses). ``dense`` uses the tiles' dtype,
``columns`` float64 (as the CPU's columns).
"""

import numpy as np
from numba import cuda, from_dtype
from numba import float64 as nb_float64

from .._host import linear_stein_diagonal, radial_diagonal
from .._kinds import IMQ, LINEAR
from . import _launch, _profiles


class Layout:
    r"""The matrix's arrays on the device, prepared once per matrix.

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
        Dtype of the products' and blocks' computation.
    trace : float or None
        :math:`\operatorname{tr} L`; None: the sum of ``weights``.
    """

    def __init__(self, kind, beta, x, s, weights, dtype, trace=None):
        x = np.asarray(x, dtype=np.float64)
        s = np.asarray(s, dtype=np.float64)
        n, d = x.shape
        self.kind = int(kind)
        self.beta = float(beta)
        self.half = self.kind == IMQ and self.beta == 0.5
        self.n, self.d = n, d
        self.dtype = np.dtype(dtype)
        self.weights = np.ascontiguousarray(weights, dtype=np.float64)
        self.trace = float(np.sum(self.weights)) if trace is None else float(trace)
        self.isotropic = bool(np.all(self.weights == self.weights[0]))
        # On the host, float64, (d, n): the diagonal's closed forms.
        self.xT = np.ascontiguousarray(x.T)
        self.sT = np.ascontiguousarray(s.T)
        typ = self.dtype.type
        self.xT_dev = cuda.to_device(self.xT.astype(typ))
        self.sT_dev = cuda.to_device(self.sT.astype(typ))
        self.w_dev = cuda.to_device(self.weights.astype(typ))
        self._float64 = None

    def float64_arrays(self):
        """``(xT, sT, weights)`` on the device in float64: columns and thinning use them."""
        if self.dtype == np.float64:
            return self.xT_dev, self.sT_dev, self.w_dev
        if self._float64 is None:
            self._float64 = tuple(cuda.to_device(a) for a in (self.xT, self.sT, self.weights))
        return self._float64

    def constants(self, typ):
        r"""``(c1, c2, beta)`` in ``typ``: :math:`2 \beta`, :math:`4 \beta (\beta + 1)`, beta."""
        b = self.beta
        return typ(2.0 * b), typ(4.0 * b * (b + 1.0)), typ(b)


# --------------------------------------------------------------------------- tiles


def tile_shape(B, K, d, dtype):
    """``(rows, column threads, partners, columns per thread)`` of a tile kernel.

    Row mode (one column thread) for up to ``ROW_MODE_MAX_COLUMNS`` columns and
    one metric, shared mode otherwise; the partners per tile shrink until the
    block's shared memory fits (:func:`._launch.partners_that_fit`).
    """
    itemsize = np.dtype(dtype).itemsize
    if K == 1 and B <= _launch.ROW_MODE_MAX_COLUMNS:
        rows, cols, per_thread = _launch.TILE, 1, max(B, 1)
        largest = _launch.TILE
        per_partner = per_thread * itemsize
    else:
        rows, cols = _launch.MATRIX_ROWS, _launch.MATRIX_COLS
        # K metrics keep K running sums per column: fewer columns each, so that
        # the K * per_thread sums stay in registers
        per_thread = max(1, min(_launch.COLUMNS_PER_THREAD // K, -(-B // cols)))
        largest = _launch.MATRIX_PARTNERS
        per_partner = (cols * per_thread + rows) * itemsize  # W's values, then the entries
    # the forms' row reduction, and the entries' padding column (shared mode)
    fixed = rows * cols * 8 + (0 if cols == 1 else rows * itemsize)
    partners = _launch.partners_that_fit(2 * d, dtype, per_partner, fixed, largest)
    return rows, cols, partners, per_thread


def tile_kernel(kind, half, d, dtype, shape, K, lower, forms, scaled):
    """The product (or forms) kernel of one configuration, built once.

    ``shape``: from :func:`tile_shape`; ``K``: metrics (bandwidths) per pass;
    ``lower``: strictly lower triangle; ``forms``: reduce to quadratic forms;
    ``scaled``: the metrics are scales of unit-weight pair quantities.
    """
    key = (
        "tiles",
        int(kind),
        bool(half),
        d,
        np.dtype(dtype).name,
        tuple(shape),
        K,
        bool(lower),
        bool(forms),
        bool(scaled),
    )
    return _launch.cached(
        key, lambda: _build_tiles(kind, half, d, dtype, shape, K, lower, forms, scaled)
    )


def _build_tiles(kind, half, d, dtype, shape, K, lower, forms, scaled):
    TR, TC, TP, CPT = shape
    typ = np.dtype(dtype).type
    dt = from_dtype(np.dtype(dtype))
    D = d
    WROW = _launch.row_width(2 * d, dtype)  # a partner's row: x_j, then s_j, then padding
    NC = TC * CPT  # columns of W per block
    NT = TR * TC  # threads per block
    ROW_MODE = TC == 1
    EPT = -(-TP // TC)  # entries of a tile per thread, shared mode
    # A row of entries per thread row, one longer than the tile: the threads of a
    # warp (consecutive rows) then read and write different banks of shared memory.
    HS = 1 if ROW_MODE else TP + 1
    KC = K * CPT
    LOWER = bool(lower)
    FORMS = bool(forms)
    SCALED = bool(scaled)
    zero = typ(0.0)
    terms = _profiles.tile_terms(kind, d, dtype)
    value = _profiles.stein_value(kind, half, d, dtype)

    @_launch.jit(dtype)
    def tiles(xT, sT, wts, scales, traces, c1, c2, beta, W, part):
        # xT, sT: (D, n) in dt; wts: (D,) the metric's eigenvalues; scales,
        # traces: (K,); W: (n, B) in dt; part: float64, (n_split, n, B) for
        # products, (K, n_split * row_blocks, B) for forms.
        n = xT.shape[1]
        B = W.shape[1]
        r = cuda.threadIdx.x
        c = cuda.threadIdx.y
        tid = c * TR + r
        blk = cuda.blockIdx.x
        row_blocks = cuda.gridDim.x
        groups = (B + NC - 1) // NC
        split = cuda.blockIdx.y // groups
        n_split = cuda.gridDim.y // groups
        col0 = (cuda.blockIdx.y - split * groups) * NC
        i = blk * TR + r
        active = i < n
        ps = cuda.shared.array((TP, WROW), dt)
        ws = cuda.shared.array((TP, NC), dt)
        hs = cuda.shared.array((TR, HS), dt)
        red = cuda.shared.array((TR, TC), nb_float64)
        xi = cuda.local.array(D, dt)
        si = cuda.local.array(D, dt)
        wl = cuda.local.array(D, dt)
        tl = cuda.local.array((EPT, 4), dt)
        acc_t = cuda.local.array(KC, dt)
        acc = cuda.local.array(KC, nb_float64)
        for k in range(D):
            xi[k] = xT[k, i] if active else zero
            si[k] = sT[k, i] if active else zero
            wl[k] = wts[k]
        for q in range(KC):
            acc[q] = 0.0
        sc0 = scales[0]
        tr0 = traces[0]
        last = n
        if LOWER:  # the tiles with a partner j < i for some row i of the block
            last = min(n, (blk + 1) * TR)
        n_tiles = (last + TP - 1) // TP
        for t in range(split * n_tiles // n_split, (split + 1) * n_tiles // n_split):
            j0 = t * TP
            m = min(TP, n - j0)
            for jj in range(tid, m, NT):
                for k in range(D):
                    ps[jj, k] = xT[k, j0 + jj]
                    ps[jj, D + k] = sT[k, j0 + jj]
            for flat in range(tid, TP * NC, NT):
                jj = flat // NC
                col = flat - jj * NC
                b = col0 + col
                ws[jj, col] = W[j0 + jj, b] if (jj < m and b < B) else zero
            cuda.syncthreads()
            for q in range(KC):
                acc_t[q] = zero
            if ROW_MODE:
                if active:
                    for jj in range(m):
                        rho, a, bb, S = terms(xi, si, wl, ps, jj)
                        if SCALED:
                            h = value(sc0 * rho, sc0 * sc0 * a, sc0 * bb, S, tr0, c1, c2, beta)
                        else:
                            h = value(rho, a, bb, S, tr0, c1, c2, beta)
                        if LOWER and j0 + jj >= i:
                            h = zero
                        for q in range(CPT):
                            acc_t[q] += h * ws[jj, q]
            else:
                for e in range(EPT):
                    jj = c + TC * e
                    if active and jj < m:
                        rho, a, bb, S = terms(xi, si, wl, ps, jj)
                    else:
                        rho = zero
                        a = zero
                        bb = zero
                        S = zero
                    tl[e, 0] = rho
                    tl[e, 1] = a
                    tl[e, 2] = bb
                    tl[e, 3] = S
                for kk in range(K):
                    sc = scales[kk]
                    tr = traces[kk]
                    for e in range(EPT):
                        jj = c + TC * e
                        if jj < TP:
                            h = zero
                            if active and jj < m and not (LOWER and j0 + jj >= i):
                                if SCALED:
                                    h = value(
                                        sc * tl[e, 0],
                                        sc * sc * tl[e, 1],
                                        sc * tl[e, 2],
                                        tl[e, 3],
                                        tr,
                                        c1,
                                        c2,
                                        beta,
                                    )
                                else:
                                    h = value(
                                        tl[e, 0], tl[e, 1], tl[e, 2], tl[e, 3], tr, c1, c2, beta
                                    )
                            hs[r, jj] = h
                    cuda.syncthreads()
                    for jj in range(m):
                        h = hs[r, jj]
                        for q in range(CPT):
                            acc_t[kk * CPT + q] += h * ws[jj, c + TC * q]
                    # hs is rewritten next, and ps, ws by the next tile: wait for all
                    cuda.syncthreads()
            for q in range(KC):
                acc[q] += acc_t[q]
            if ROW_MODE:  # ps and ws are rewritten by the next tile
                cuda.syncthreads()
        if FORMS:
            for kk in range(K):
                for q in range(CPT):
                    b = col0 + c + TC * q
                    v = 0.0
                    if active and b < B:
                        # in the tiles' dtype: no float64 product in a float32 kernel
                        v = np.float64(W[i, b] * typ(acc[kk * CPT + q]))
                    red[r, c] = v
                    cuda.syncthreads()
                    if r == 0 and b < B:
                        total = 0.0
                        for rr in range(TR):  # the block's rows in order
                            total += red[rr, c]
                        part[kk, split * row_blocks + blk, b] = total
                    cuda.syncthreads()
        elif active:
            for q in range(CPT):
                b = col0 + c + TC * q
                if b < B:
                    part[split, i, b] = acc[q]

    return tiles


def _run_tiles(layout, W, weights, scales, traces, lower, forms, scaled, n_split):
    """Launch a tile kernel; ``(n, B)`` products or ``(K, B)`` forms, float64, on the host."""
    typ = layout.dtype.type
    n, B = W.shape
    K = scales.shape[0]
    if B == 0:
        return np.zeros((K, 0)) if forms else np.zeros((n, 0))
    shape = tile_shape(B, K, layout.d, layout.dtype)
    TR, TC, TP, CPT = shape
    kernel = tile_kernel(
        layout.kind, layout.half, layout.d, layout.dtype, shape, K, lower, forms, scaled
    )
    row_blocks = -(-n // TR)
    groups = -(-B // (TC * CPT))
    n_split = _launch.split_for(row_blocks * groups, -(-n // TP), n_split)
    W_dev = cuda.to_device(np.ascontiguousarray(W, dtype=typ))
    if forms:
        part = cuda.device_array((K, n_split * row_blocks, B), dtype=np.float64)
    else:
        part = cuda.device_array((n_split, n, B), dtype=np.float64)
    c1, c2, beta = layout.constants(typ)
    kernel[(row_blocks, groups * n_split), (TR, TC)](
        layout.xT_dev,
        layout.sT_dev,
        weights,
        cuda.to_device(scales.astype(typ)),
        cuda.to_device(traces.astype(typ)),
        c1,
        c2,
        beta,
        W_dev,
        part,
    )
    return _launch.sum_middle(part) if forms else _launch.sum_splits(part)


def products(layout, W, lower=False, n_split=None):
    """``H W`` (``lower``: the strictly lower triangle of ``H`` times ``W``), float64 ``(n, B)``.

    ``W`` is ``(n, B)``; it is multiplied in the layout's dtype, and the sums
    across tiles are float64. ``n_split`` overrides the partner splits.
    """
    W = np.asarray(W)
    return _run_tiles(
        layout, W, layout.w_dev, np.ones(1), np.array([layout.trace]), lower, False, False, n_split
    )


def quadratic_forms(layout, W, lams=None, n_split=None):
    r""":math:`w_b^\top H w_b` for every column of ``W`` (``(n, B)``), float64 ``(B,)``.

    ``lams`` (isotropic radial kernels only): several values of :math:`\lambda`
    (``1 / bw``), one pass over the tiles for all of them; returns
    ``(len(lams), B)`` then.
    """
    W = np.asarray(W)
    if lams is None:
        out = _run_tiles(
            layout,
            W,
            layout.w_dev,
            np.ones(1),
            np.array([layout.trace]),
            False,
            True,
            False,
            n_split,
        )
        return out[0]
    if layout.kind == LINEAR or not layout.isotropic:
        raise ValueError("several bandwidths need an isotropic kernel")
    lams = np.ascontiguousarray(lams, dtype=np.float64).reshape(-1)
    unit = cuda.to_device(np.ones(layout.d, dtype=layout.dtype))
    return _run_tiles(layout, W, unit, lams, lams * layout.d, False, True, True, n_split)


# --------------------------------------------------------------------------- entries


def entries_kernel(kind, half, d, dtype, threads, all_rows):
    """The block kernel: ``out[q, a] = H[rows[a], cols[q]]`` (``all_rows``: ``rows[a] = a``)."""
    key = ("entries", int(kind), bool(half), d, np.dtype(dtype).name, threads, bool(all_rows))
    return _launch.cached(key, lambda: _build_entries(kind, half, d, dtype, threads, all_rows))


def _build_entries(kind, half, d, dtype, threads, all_rows):
    ALL_ROWS = bool(all_rows)
    T = threads
    terms = _profiles.column_terms(kind, d, dtype)
    value = _profiles.stein_value(kind, half, d, dtype)

    @_launch.jit(dtype)
    def entries(xT, sT, wts, trace, c1, c2, beta, rows, cols, out):
        a = cuda.blockIdx.x * T + cuda.threadIdx.x
        n_cols, n_rows = out.shape
        if a < n_rows:
            i = a if ALL_ROWS else rows[a]
            for q in range(cuda.blockIdx.y, n_cols, cuda.gridDim.y):
                rho, aa, b, S = terms(xT, sT, wts, i, cols[q])
                out[q, a] = value(rho, aa, b, S, trace, c1, c2, beta)

    return entries


def _run_entries(layout, arrays, dtype, rows, cols):
    """``out[q, a] = H[rows[a], cols[q]]`` (``rows`` None: all), float64 ``(n_cols, n_rows)``."""
    typ = np.dtype(dtype).type
    xT, sT, w = arrays
    n_rows = layout.n if rows is None else rows.shape[0]
    out = cuda.device_array((cols.shape[0], n_rows), dtype=np.float64)
    if out.size == 0:
        return out.copy_to_host()
    threads = _launch.POINT_THREADS
    kernel = entries_kernel(layout.kind, layout.half, layout.d, dtype, threads, rows is None)
    cols_dev = cuda.to_device(cols)
    rows_dev = cols_dev if rows is None else cuda.to_device(rows)
    c1, c2, beta = layout.constants(typ)
    grid = (-(-n_rows // threads), min(cols.shape[0], _launch.MAX_GRID_Y))
    kernel[grid, threads](xT, sT, w, typ(layout.trace), c1, c2, beta, rows_dev, cols_dev, out)
    return out.copy_to_host()


def dense(layout):
    """The whole matrix, ``(n, n)`` float64, in the layout's dtype."""
    cols = np.arange(layout.n, dtype=np.int64)
    arrays = (layout.xT_dev, layout.sT_dev, layout.w_dev)
    # out[q, a] = H[a, q]: H itself, whose entries are symmetric to the bit
    return _run_entries(layout, arrays, layout.dtype, None, cols)


def columns(layout, cols, rows=None):
    r"""Columns ``cols`` of the Stein matrix, :math:`k_p(x_i, x_c)`: ``(n_rows, len(cols))``.

    Computed in float64 whatever the layout's dtype (as the CPU's columns);
    ``rows``: only these rows, in this order (None: all).
    """
    cols = np.ascontiguousarray(cols, dtype=np.int64).reshape(-1)
    if rows is not None:
        rows = np.ascontiguousarray(rows, dtype=np.int64).reshape(-1)
    return _run_entries(layout, layout.float64_arrays(), np.float64, rows, cols).T


def diagonal(layout):
    r""":math:`k_p(x_i, x_i)` in closed form (:mod:`ksdnumba.kernels._host`), float64 ``(n,)``."""
    if layout.kind == LINEAR:
        return linear_stein_diagonal(layout.xT.T, layout.sT.T)
    return radial_diagonal(layout.kind, layout.beta, layout.sT, layout.trace)
