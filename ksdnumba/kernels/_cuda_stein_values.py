r"""numba.cuda kernels for Stein thinning's greedy step and the KSD test's bootstrap.

Thinning
--------

The same greedy loop as :func:`ksdnumba.kernels._cpu._values.greedy_thinning`,
with the same signature and returns, on an NVIDIA GPU. Each step is one launch:
one thread per point ``i`` computes the preconditioned Stein kernel
:math:`k_p(x_i, x_c)` against the previous pick ``c`` (formulas in
:mod:`ksdnumba.kernels._cpu._values`), adds twice it to the running
objective, which stays on the device, and each block reduces its candidates to
the smallest value and its lowest index (a tree in shared memory). The host
takes the blocks' minima in block order, so ties go to the lowest index as on the
CPU, and reads back only those minima and the objective at the pick: O(n / 256)
numbers per step. Computed in float64, with IEEE division and square root.

The points and scores are read as ``(d, n)`` arrays, so that the threads of a
warp read consecutive addresses.

The KSD test
------------
:func:`quadratic_forms` computes :math:`w_b^\top H w_b` for every draw as the
CPU version does, with the Stein matrix's tiles computed in shared memory and
multiplied there by the weights (:func:`_forms_kernel`); the whole matrix, not its
upper triangle, and the blocks' row sums added on the host in a fixed order.

Both are checked against the CPU kernels in numba's CUDA simulator
(``tests/test_thinning_cuda.py``). This module imports :mod:`numba.cuda`;
thinning and the test import it only when ``backend="cuda"`` asks for it.
"""

import math

import numpy as np
from numba import cuda
from numba import float64 as nb_float64
from numba import int64 as nb_int64

from ._backend import _simulating
from ._cuda import _import_with_row_stack
from ._cpu._values import P_IMQ, stein_diagonal

if not _simulating():
    _import_with_row_stack()

_THREADS = 256  # threads per block, a power of 2

_KERNELS = {}


def _step_kernel(threads):
    """Build (once per block size) the greedy step kernel."""
    if threads in _KERNELS:
        return _KERNELS[threads]
    jit = cuda.jit if _simulating() else cuda.jit(cache=True)

    @jit
    def step_kernel(kind, xT, sT, weights, trace, c, obj, lap, logp, lam, step,
                    block_val, block_idx):
        sval = cuda.shared.array(threads, dtype=nb_float64)
        sidx = cuda.shared.array(threads, dtype=nb_int64)
        tid = cuda.threadIdx.x
        i = cuda.blockIdx.x * threads + tid
        d, n = xT.shape
        value = math.inf
        index = -1
        if i < n:
            if c >= 0:
                rho = 0.0
                a2 = 0.0
                b = 0.0
                S = 0.0
                for k in range(d):
                    u = xT[k, i] - xT[k, c]
                    lu = weights[k] * u
                    rho += lu * u
                    a2 += lu * lu
                    b += (sT[k, i] - sT[k, c]) * lu
                    S += sT[k, i] * sT[k, c]
                if kind == 0:  # P_IMQ
                    w = 1.0 / (1.0 + rho)
                    kp = math.sqrt(w) * (S + w * ((trace + b) - 3.0 * a2 * w))
                else:
                    kp = math.exp(-0.5 * rho) * (S + b + trace - a2)
                obj[i] += 2.0 * kp
            value = obj[i]
            if lap.shape[0] > 0:
                value += lap[i] - lam * step * logp[i]
            index = i
        sval[tid] = value
        sidx[tid] = index
        cuda.syncthreads()
        half = threads // 2
        while half > 0:
            if tid < half:
                ov = sval[tid + half]
                oi = sidx[tid + half]
                # ties to the lower index, wherever it sits in the tree
                if oi >= 0 and (sidx[tid] < 0 or ov < sval[tid]
                                or (ov == sval[tid] and oi < sidx[tid])):
                    sval[tid] = ov
                    sidx[tid] = oi
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            block_val[cuda.blockIdx.x] = sval[0]
            block_idx[cuda.blockIdx.x] = sidx[0]

    _KERNELS[threads] = step_kernel
    return step_kernel


def greedy_thinning(kind, xT, sT, weights, trace, m, lap=None, logp=None, lam=0.0,
                    threads=None):
    r"""Greedy Stein thinning on the GPU: ``(idx, totals)`` as the CPU version.

    Parameters and returns as
    :func:`ksdnumba.kernels._cpu._values.greedy_thinning`; ``threads`` is
    the block size (a power of 2; default 256).
    """
    threads = _THREADS if threads is None else int(threads)
    d, n = xT.shape
    kernel = _step_kernel(threads)
    blocks = (n + threads - 1) // threads
    if lap is None:
        lap = np.empty(0)
        logp = np.empty(0)
    d_x = cuda.to_device(np.ascontiguousarray(xT, dtype=np.float64))
    d_s = cuda.to_device(np.ascontiguousarray(sT, dtype=np.float64))
    d_w = cuda.to_device(np.ascontiguousarray(weights, dtype=np.float64))
    d_obj = cuda.to_device(stein_diagonal(sT, trace))
    d_lap = cuda.to_device(np.ascontiguousarray(lap, dtype=np.float64))
    d_logp = cuda.to_device(np.ascontiguousarray(logp, dtype=np.float64))
    d_val = cuda.device_array(blocks, dtype=np.float64)
    d_idx = cuda.device_array(blocks, dtype=np.int64)
    idx = np.empty(m, dtype=np.int64)
    totals = np.empty(m)
    total = 0.0
    kind = 0 if kind == P_IMQ else 1
    for t in range(m):
        c = int(idx[t - 1]) if t > 0 else -1
        kernel[blocks, threads](kind, d_x, d_s, d_w, float(trace), c, d_obj, d_lap, d_logp,
                                float(lam), t + 1.0, d_val, d_idx)
        vals = d_val.copy_to_host()
        inds = d_idx.copy_to_host()
        best = 0
        for blk in range(1, blocks):  # in block order: ties keep the lower index
            if vals[blk] < vals[best]:
                best = blk
        idx[t] = inds[best]
        total += float(d_obj[idx[t]:idx[t] + 1].copy_to_host()[0])
        totals[t] = total
    return idx, totals


# --------------------------------------------------------------------------- KSD test

_FORM_TILE = 16  # rows, draws and partners per tile: blocks of 16 x 16 threads

_FORM_KERNELS = {}


def _forms_kernel(tile):
    r"""Build (once per tile size) the kernel of the bootstrap's products ``H W``.

    Block ``(I, C)`` holds ``tile x tile`` threads, thread ``(r, c)`` owning row
    ``i = I tile + r`` and draw ``b = C tile + c``. For each tile of partners
    ``j``, the block computes the ``tile x tile`` entries :math:`H_{ij}` into
    shared memory (each thread one), loads the partners' weights, and each thread
    adds :math:`\sum_j H_{ij} W_{jb}`. It then writes
    :math:`\sum_{i \in I} W_{ib} (H W)_{ib}`, summed over the block's rows in a
    fixed order, to ``partial[I, b]``.
    """
    if tile in _FORM_KERNELS:
        return _FORM_KERNELS[tile]
    jit = cuda.jit if _simulating() else cuda.jit(cache=True)

    @jit
    def forms_kernel(kind, xT, sT, sx, bw, beta, W, partial):
        Hs = cuda.shared.array((tile, tile), dtype=nb_float64)
        Ws = cuda.shared.array((tile, tile), dtype=nb_float64)
        r = cuda.threadIdx.x
        c = cuda.threadIdx.y
        d, n = xT.shape
        B = W.shape[1]
        i = cuda.blockIdx.x * tile + r
        b = cuda.blockIdx.y * tile + c
        inv_h = 1.0 / bw
        acc = 0.0
        for j0 in range(0, n, tile):
            # thread (r, c) computes H[i, j0 + c] and loads W[j0 + r, b]
            j = j0 + c
            h = 0.0
            if i < n and j < n:
                r2 = 0.0
                S = 0.0
                Du = 0.0
                for k in range(d):
                    if kind == 2:  # linear: r2 holds x_i . x_j
                        r2 += xT[k, i] * xT[k, j]
                        S += sT[k, i] * sT[k, j]
                    else:
                        u = xT[k, i] - xT[k, j]
                        r2 += u * u
                        S += sT[k, i] * sT[k, j]
                        Du += (sT[k, i] - sT[k, j]) * u
                if kind == 2:
                    h = r2 * S + sx[i] + sx[j] + d
                elif kind == 0:  # Gaussian
                    p = math.exp(-0.5 * inv_h * r2)
                    h = p * (S + (Du + d) * inv_h - r2 * inv_h * inv_h)
                else:  # IMQ
                    q = 1.0 + inv_h * r2
                    w = 1.0 / q
                    p = math.sqrt(w) if beta == 0.5 else math.pow(q, -beta)
                    p1 = -beta * inv_h * w * p
                    p2 = -(beta + 1.0) * inv_h * w * p1
                    h = p * S - 2.0 * p1 * (Du + d) - 4.0 * r2 * p2
            Hs[r, c] = h
            jr = j0 + r
            Ws[r, c] = W[jr, b] if (jr < n and b < B) else 0.0
            cuda.syncthreads()
            for jj in range(tile):
                acc += Hs[r, jj] * Ws[jj, c]
            cuda.syncthreads()
        # sum over the block's rows of W[i, b] (H W)[i, b], in row order
        Hs[r, c] = W[i, b] * acc if (i < n and b < B) else 0.0
        cuda.syncthreads()
        if r == 0 and b < B:
            total = 0.0
            for rr in range(tile):
                total += Hs[rr, c]
            partial[cuda.blockIdx.x, b] = total

    _FORM_KERNELS[tile] = forms_kernel
    return forms_kernel


def quadratic_forms(kind, x, s, bw, beta, W, tile=None):
    r"""``w_b^T H w_b`` for every column of ``W`` on the GPU, without forming ``H``.

    Parameters and returns as
    :func:`ksdnumba.kernels._cpu._values.quadratic_forms` (``kind`` one of its
    ``GAUSSIAN``, ``IMQ``, ``LINEAR``); ``tile`` is the side of the thread blocks
    (default 16).
    """
    tile = _FORM_TILE if tile is None else int(tile)
    n = x.shape[0]
    W = np.ascontiguousarray(W, dtype=np.float64)
    B = W.shape[1]
    kernel = _forms_kernel(tile)
    grid = ((n + tile - 1) // tile, (B + tile - 1) // tile)
    partial = cuda.device_array((grid[0], B), dtype=np.float64)
    kernel[grid, (tile, tile)](
        int(kind), cuda.to_device(np.ascontiguousarray(x.T, dtype=np.float64)),
        cuda.to_device(np.ascontiguousarray(s.T, dtype=np.float64)),
        cuda.to_device(np.einsum("ij,ij->i", s, x)), float(bw), float(beta),
        cuda.to_device(W), partial)
    rows = partial.copy_to_host()
    out = np.zeros(B)
    for I in range(rows.shape[0]):  # a fixed order
        out += rows[I]
    return out
