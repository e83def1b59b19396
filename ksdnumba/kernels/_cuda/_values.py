r"""Greedy Stein thinning on the GPU.

The same loop as :func:`ksdnumba.kernels._cpu._values.greedy_thinning`, with
the same arguments and returns. Each step is two launches and no copy:

- the step kernel: one thread per point ``i`` computes :math:`k_p(x_i, x_c)`
  against the previous pick ``c`` (read from the device's index array) with
  :mod:`._profiles`, adds twice it to the running objective, which stays on the
  device, and each block reduces its candidates to the smallest value and its
  lowest index (a tree in shared memory);
- the pick kernel: one block reduces the blocks' minima (each thread its blocks
  in block order, then a tree), ties to the lowest index as on the CPU, writes
  the pick and adds the objective at it to the running sum.

The indices and sums come back to the host once, at the end. Computed in
float64 with IEEE division and square root, from ``(d, n)`` arrays, so that the
threads of a warp read consecutive addresses.
"""

import math

import numpy as np
from numba import cuda
from numba import float64 as nb_float64
from numba import int64 as nb_int64

from . import _launch, _profiles
from ._matrix import diagonal


def step_kernel(kind, half, d, threads):
    """The greedy step kernel of one kind, ``d`` and block size, built once."""
    key = ("greedy_step", int(kind), bool(half), d, threads)
    return _launch.cached(key, lambda: _build_step(kind, half, d, threads))


def _build_step(kind, half, d, threads):
    T = threads
    terms = _profiles.column_terms(kind, d, np.float64)
    value = _profiles.stein_value(kind, half, d, np.float64)

    @_launch.jit(np.float64)
    def step(
        xT, sT, wts, trace, c1, c2, beta, obj, lap, logp, lam, lw, idx, t, block_val, block_idx
    ):
        sval = cuda.shared.array(T, dtype=nb_float64)
        sidx = cuda.shared.array(T, dtype=nb_int64)
        tid = cuda.threadIdx.x
        i = cuda.blockIdx.x * T + tid
        n = xT.shape[1]
        c = idx[t - 1] if t > 0 else -1
        best = math.inf
        index = -1
        if i < n:
            if c >= 0:
                rho, a, b, S = terms(xT, sT, wts, i, c)
                kp = value(rho, a, b, S, trace, c1, c2, beta)
                if lw.shape[0] > 0:  # gradient-free thinning: w_i w_c k_q(x_i, x_c)
                    obj[i] += 2.0 * (math.exp(lw[i] + lw[c]) * kp)
                else:
                    obj[i] += 2.0 * kp
            v = obj[i]
            if lap.shape[0] > 0:
                v += lap[i] - lam * (t + 1.0) * logp[i]
            best = v
            index = i
        sval[tid] = best
        sidx[tid] = index
        cuda.syncthreads()
        width = T // 2
        while width > 0:
            if tid < width:
                ov = sval[tid + width]
                oi = sidx[tid + width]
                # ties to the lower index, wherever it sits in the tree
                if oi >= 0 and (
                    sidx[tid] < 0 or ov < sval[tid] or (ov == sval[tid] and oi < sidx[tid])
                ):
                    sval[tid] = ov
                    sidx[tid] = oi
            cuda.syncthreads()
            width //= 2
        if tid == 0:
            block_val[cuda.blockIdx.x] = sval[0]
            block_idx[cuda.blockIdx.x] = sidx[0]

    return step


def pick_kernel(threads):
    """The kernel that reduces the blocks' minima to the step's pick, built once."""
    return _launch.cached(("greedy_pick", threads), lambda: _build_pick(threads))


def _build_pick(threads):
    T = threads

    @_launch.jit(np.float64)
    def pick(block_val, block_idx, obj, idx, totals, t):
        sval = cuda.shared.array(T, dtype=nb_float64)
        sidx = cuda.shared.array(T, dtype=nb_int64)
        tid = cuda.threadIdx.x
        best = math.inf
        index = -1
        for blk in range(tid, block_val.shape[0], T):  # in block order: ties keep the first
            v = block_val[blk]
            j = block_idx[blk]
            if j >= 0 and (index < 0 or v < best):
                best = v
                index = j
        sval[tid] = best
        sidx[tid] = index
        cuda.syncthreads()
        width = T // 2
        while width > 0:
            if tid < width:
                ov = sval[tid + width]
                oi = sidx[tid + width]
                if oi >= 0 and (
                    sidx[tid] < 0 or ov < sval[tid] or (ov == sval[tid] and oi < sidx[tid])
                ):
                    sval[tid] = ov
                    sidx[tid] = oi
            cuda.syncthreads()
            width //= 2
        if tid == 0:
            chosen = sidx[0]
            idx[t] = chosen
            # sum_{a, b <= t} k_p(x_{i_a}, x_{i_b}) grows by the kernel part of
            # the objective at the new point: its diagonal plus twice its column sums
            previous = totals[t - 1] if t > 0 else 0.0
            totals[t] = previous + obj[chosen]

    return pick


def greedy_thinning(layout, m, lap=None, logp=None, lam=0.0, log_weights=None, threads=None):
    r"""Greedy Stein thinning on the GPU: ``(idx, totals)`` as the CPU version.

    Parameters and returns as
    :func:`ksdnumba.kernels._cpu._values.greedy_thinning`; ``threads`` is the
    block size (a power of 2; default :data:`._launch.POINT_THREADS`).
    """
    threads = _launch.POINT_THREADS if threads is None else int(threads)
    n, d = layout.n, layout.d
    obj = diagonal(layout)
    if log_weights is None:
        lw = np.empty(0)
    else:
        lw = np.ascontiguousarray(log_weights, dtype=np.float64)
        obj = np.exp(2.0 * lw) * obj
    if lap is None:
        lap = np.empty(0)
        logp = np.empty(0)
    xT, sT, w = layout.float64_arrays()
    blocks = -(-n // threads)
    step = step_kernel(layout.kind, layout.half, d, threads)
    pick = pick_kernel(threads)
    d_obj = cuda.to_device(np.ascontiguousarray(obj, dtype=np.float64))
    d_lap = cuda.to_device(np.ascontiguousarray(lap, dtype=np.float64))
    d_logp = cuda.to_device(np.ascontiguousarray(logp, dtype=np.float64))
    d_lw = cuda.to_device(lw)
    d_val = cuda.device_array(blocks, dtype=np.float64)
    d_blk = cuda.device_array(blocks, dtype=np.int64)
    d_idx = cuda.device_array(m, dtype=np.int64)
    d_totals = cuda.device_array(m, dtype=np.float64)
    c1, c2, beta = layout.constants(np.float64)
    trace = np.float64(layout.trace)
    lam = np.float64(lam)
    for t in range(m):
        step[blocks, threads](
            xT, sT, w, trace, c1, c2, beta, d_obj, d_lap, d_logp, lam, d_lw, d_idx, t, d_val, d_blk
        )
        pick[1, threads](d_val, d_blk, d_obj, d_idx, d_totals, t)
    return d_idx.copy_to_host(), d_totals.copy_to_host()
