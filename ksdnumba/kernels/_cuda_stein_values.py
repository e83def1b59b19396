r"""numba.cuda kernel for Stein thinning's greedy step.

The same greedy loop as :func:`ksdnumba.kernels._cpu_stein_values.greedy_thinning`,
with the same signature and returns, on an NVIDIA GPU. Each step is one launch:
one thread per point ``i`` computes the preconditioned Stein kernel
:math:`k_p(x_i, x_c)` against the previous pick ``c`` (formulas in
:mod:`ksdnumba.kernels._cpu_stein_values`), adds twice it to the running
objective, which stays on the device, and each block reduces its candidates to
the smallest value and its lowest index (a tree in shared memory). The host
takes the blocks' minima in block order, so ties go to the lowest index as on the
CPU, and reads back only those minima and the objective at the pick: O(n / 256)
numbers per step. Computed in float64, with IEEE division and square root.

The points and scores are read as ``(d, n)`` arrays, so that the threads of a
warp read consecutive addresses. This module imports :mod:`numba.cuda`; thinning
imports it only when ``backend="cuda"`` asks for it.
"""

import math

import numpy as np
from numba import cuda
from numba import float64 as nb_float64
from numba import int64 as nb_int64

from ._backend import _simulating
from ._cuda import _import_with_row_stack
from ._cpu_stein_values import P_IMQ, stein_diagonal

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
    :func:`ksdnumba.kernels._cpu_stein_values.greedy_thinning`; ``threads`` is
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
