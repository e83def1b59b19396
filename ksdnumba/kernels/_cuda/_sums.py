r"""numba.cuda kernels for descent's Stein pair sums and the base Gaussian kernel.

The same sums as the drivers of :mod:`ksdnumba.kernels._cpu`, with the same
signatures and returns (``total`` as a float, the row sums as float64 host
arrays): the value and gradient of the KSD objective, the SVGD direction and
the MMD sums. Each is one fused N-body kernel (see the package's docstring):
one thread per particle ``i``, its running sums in registers, the partners
streaming through shared memory. Each pair costs one exp (or a square root, or
a power for IMQ) and a few dozen flops, all in registers: the kernels are bound
by arithmetic, not by memory.

The profiles are written out here with their derivatives instead of coming
from :mod:`._profiles` (the Stein matrix's values): the gradient needs the
third derivative as well, and the fused loop shares its factors between the
value and the gradient. A partner is one row of the tile, its coordinates then
its score (or weights), padded to a multiple of 16 bytes
(:func:`._launch.row_width`); when there are too few particles to fill the GPU
with one thread each, the partner tiles are split between ``n_split`` blocks per
row block (the grid's second axis), whose partial row sums a second kernel adds
in a fixed order.

The linear kernel has no pair loop (O(n d^2)) and always runs on the host.
"""

import math

import numpy as np
from numba import cuda, from_dtype
from numba import float64 as nb_float64

from .._kinds import GAUSSIAN, IMQ
from . import _launch

# ------------------------------------------------------------------ Stein kernels


def stein_kernel(kind, half, d, dtype, tile, with_grad):
    """The Stein pair-sum kernel for one kind, ``d``, dtype and tile (built once).

    ``kind``: :data:`~ksdnumba.kernels._kinds.GAUSSIAN` or
    :data:`~ksdnumba.kernels._kinds.IMQ`, the latter through a power, or with
    ``half`` (beta = 1/2) through a square root.
    """
    key = ("stein", int(kind), bool(half), d, np.dtype(dtype).name, tile, with_grad)
    return _launch.cached(key, lambda: _build_stein(kind, half, d, dtype, tile, with_grad))


def _build_stein(kind, half, d, dtype, tile, with_grad):
    dtype = np.dtype(dtype).type
    dt = from_dtype(np.dtype(dtype))
    D = d
    W = _launch.row_width(2 * d, dtype)  # a partner's row: x_j, then s_j, then padding
    T = tile
    IS_GAUSSIAN = kind == GAUSSIAN
    IMQ_HALF = kind == IMQ and half
    WITH_GRAD = with_grad
    zero = dtype(0.0)
    one = dtype(1.0)
    two = dtype(2.0)
    four = dtype(4.0)
    eight = dtype(8.0)
    one_half = dtype(0.5)
    log2e = dtype(1.4426950408889634)
    dd = dtype(d)

    @_launch.jit(dtype)
    def stein(x, s, inv_h, beta, gx_part, gs_part, val_part):
        # x, s: (n, D) in dt; inv_h, beta: dt scalars; gx_part, gs_part:
        # (n_split, n, D) float64; val_part: (n_split, n_row_blocks) float64.
        n = x.shape[0]
        tid = cuda.threadIdx.x
        i = cuda.blockIdx.x * T + tid
        split = cuda.blockIdx.y
        n_split = cuda.gridDim.y
        ps = cuda.shared.array((T, W), dt)  # the tile's partners, one per row
        red = cuda.shared.array(T, nb_float64)
        xi = cuda.local.array(D, dt)
        si = cuda.local.array(D, dt)
        u = cuda.local.array(D, dt)
        ax_t = cuda.local.array(D, dt)
        as_t = cuda.local.array(D, dt)
        ax = cuda.local.array(D, nb_float64)
        as_ = cuda.local.array(D, nb_float64)
        active = i < n
        for k in range(D):
            xi[k] = x[i, k] if active else zero
            si[k] = s[i, k] if active else zero
            ax[k] = 0.0
            as_[k] = 0.0
        inv_h2 = inv_h * inv_h
        neg_inv_h = -inv_h
        neg_two_inv_h2 = -two * inv_h2
        c0 = -one_half * log2e * inv_h  # exp(-r2 / (2 h)) = 2^(c0 r2)
        c1 = -beta * inv_h
        c2 = -(beta + one) * inv_h
        c3 = -(beta + two) * inv_h
        value = 0.0
        n_tiles = (n + T - 1) // T
        for t in range(split * n_tiles // n_split, (split + 1) * n_tiles // n_split):
            j = t * T + tid
            if j < n:
                for k in range(D):
                    ps[tid, k] = x[j, k]
                    ps[tid, D + k] = s[j, k]
            cuda.syncthreads()
            if active:
                m = np.uint64(min(T, n - t * T))
                v_t = zero
                for k in range(D):
                    ax_t[k] = zero
                    as_t[k] = zero
                # An unsigned index: no code for negative indices in the pair loop.
                jj = np.uint64(0)
                while jj < m:
                    u[0] = xi[0] - ps[jj, 0]
                    r2 = u[0] * u[0]
                    S = si[0] * ps[jj, D]
                    Du = (si[0] - ps[jj, D]) * u[0]
                    for k in range(1, D):
                        u[k] = xi[k] - ps[jj, k]
                        r2 += u[k] * u[k]
                        S += si[k] * ps[jj, D + k]
                        Du += (si[k] - ps[jj, D + k]) * u[k]
                    if IS_GAUSSIAN:
                        p = math.exp2(c0 * r2)
                        k_p = p * (S + (Du + dd) * inv_h - r2 * inv_h2)
                        v_t += k_p
                        if WITH_GRAD:
                            # = p (r2 / h^3 - S / h - (Du + d + 2) / h^2)
                            c = neg_inv_h * k_p + neg_two_inv_h2 * p
                            q = p * inv_h
                    else:
                        w = one / (one + inv_h * r2)
                        if IMQ_HALF:
                            p = math.sqrt(w)
                        else:
                            p = math.pow(w, beta)
                        p1 = c1 * w * p
                        p2 = c2 * w * p1
                        v_t += p * S - two * p1 * (Du + dd) - four * r2 * p2
                        if WITH_GRAD:
                            p3 = c3 * w * p2
                            c = two * p1 * S - four * p2 * (Du + dd + two) - eight * r2 * p3
                            q = -two * p1
                    if WITH_GRAD:
                        for k in range(D):  # two FMAs per sum
                            ax_t[k] += c * u[k]
                            ax_t[k] += q * (si[k] - ps[jj, D + k])
                            as_t[k] += p * ps[jj, D + k]
                            as_t[k] += q * u[k]
                    jj += np.uint64(1)
                value += v_t
                for k in range(D):
                    ax[k] += ax_t[k]
                    as_[k] += as_t[k]
            cuda.syncthreads()
        if active and WITH_GRAD:
            for k in range(D):
                gx_part[split, i, k] = ax[k]
                gs_part[split, i, k] = as_[k]
        _block_sum(red, value, val_part, split)

    return stein


@cuda.jit(device=True)
def _block_sum(red, value, val_part, split):
    """Sum ``value`` over the block (a tree in shared memory) into ``val_part``.

    In the kernels' module: numba's CUDA simulator gives a device function the
    simulated ``cuda`` module only inside the module of the running kernel.
    """
    tid = cuda.threadIdx.x
    red[tid] = value
    cuda.syncthreads()
    width = cuda.blockDim.x // 2
    while width > 0:
        if tid < width:
            red[tid] += red[tid + width]
        cuda.syncthreads()
        width //= 2
    if tid == 0:
        val_part[split, cuda.blockIdx.x] = red[0]


# ------------------------------------------------------------- base Gaussian kernel


def cross_kernel(d, dw, dtype, tile):
    r"""The Gaussian kernel sums between ``x`` and partners ``y`` (built once).

    Row ``i`` gets :math:`\sum_j k_{ij} (x_i - y_j)` and, with ``dw > 0``
    weights, :math:`\sum_j k_{ij} w_j`; the value is :math:`\sum_{ij} k_{ij}`.
    """
    key = ("cross", d, dw, np.dtype(dtype).name, tile)
    return _launch.cached(key, lambda: _build_cross(d, dw, dtype, tile))


def _build_cross(d, dw, dtype, tile):
    dtype = np.dtype(dtype).type
    dt = from_dtype(np.dtype(dtype))
    D = d
    DW = dw
    DW_ALLOC = max(dw, 1)
    W = _launch.row_width(d + dw, dtype)  # a partner's row: y_j, then w_j, then padding
    T = tile
    zero = dtype(0.0)
    half = dtype(0.5)
    log2e = dtype(1.4426950408889634)

    @_launch.jit(dtype)
    def cross(x, y, w, inv_h, gx_part, gw_part, val_part):
        n = x.shape[0]
        m_total = y.shape[0]
        tid = cuda.threadIdx.x
        i = cuda.blockIdx.x * T + tid
        split = cuda.blockIdx.y
        n_split = cuda.gridDim.y
        ps = cuda.shared.array((T, W), dt)  # the tile's partners, one per row
        red = cuda.shared.array(T, nb_float64)
        xi = cuda.local.array(D, dt)
        u = cuda.local.array(D, dt)
        ax_t = cuda.local.array(D, dt)
        aw_t = cuda.local.array(DW_ALLOC, dt)
        ax = cuda.local.array(D, nb_float64)
        aw = cuda.local.array(DW_ALLOC, nb_float64)
        active = i < n
        for k in range(D):
            xi[k] = x[i, k] if active else zero
            ax[k] = 0.0
        for k in range(DW):
            aw[k] = 0.0
        c = -half * log2e * inv_h  # exp(-r2 / (2 h)) = 2^(c r2)
        value = 0.0
        n_tiles = (m_total + T - 1) // T
        for t in range(split * n_tiles // n_split, (split + 1) * n_tiles // n_split):
            j = t * T + tid
            if j < m_total:
                for k in range(D):
                    ps[tid, k] = y[j, k]
                for k in range(DW):
                    ps[tid, D + k] = w[j, k]
            cuda.syncthreads()
            if active:
                m = np.uint64(min(T, m_total - t * T))
                v_t = zero
                for k in range(D):
                    ax_t[k] = zero
                for k in range(DW):
                    aw_t[k] = zero
                jj = np.uint64(0)
                while jj < m:
                    u[0] = xi[0] - ps[jj, 0]
                    r2 = u[0] * u[0]
                    for k in range(1, D):
                        u[k] = xi[k] - ps[jj, k]
                        r2 += u[k] * u[k]
                    p = math.exp2(c * r2)
                    v_t += p
                    for k in range(D):
                        ax_t[k] += p * u[k]
                    for k in range(DW):
                        aw_t[k] += p * ps[jj, D + k]
                    jj += np.uint64(1)
                value += v_t
                for k in range(D):
                    ax[k] += ax_t[k]
                for k in range(DW):
                    aw[k] += aw_t[k]
            cuda.syncthreads()
        if active:
            for k in range(D):
                gx_part[split, i, k] = ax[k]
            for k in range(DW):
                gw_part[split, i, k] = aw[k]
        _block_sum(red, value, val_part, split)

    return cross


# ------------------------------------------------------------------- host drivers


def _stein_sums(kind, x, s, bw, beta, with_grad, tile=None, n_split=None):
    dtype = _launch.kernel_dtype(x.dtype)
    n, d = x.shape
    tile = _launch.tile_for(2 * d, dtype) if tile is None else tile
    kernel = stein_kernel(kind, kind == IMQ and beta == 0.5, d, dtype, tile, with_grad)
    row_blocks, n_split = _launch.launch_shape(n, n, tile, n_split)
    x_dev = cuda.to_device(np.ascontiguousarray(x, dtype=dtype))
    s_dev = cuda.to_device(np.ascontiguousarray(s, dtype=dtype))
    grad_shape = (n_split, n, d) if with_grad else (1, 1, d)
    gx_part = cuda.device_array(grad_shape, dtype=np.float64)
    gs_part = cuda.device_array(grad_shape, dtype=np.float64)
    val_part = cuda.device_array((n_split, row_blocks), dtype=np.float64)
    kernel[(row_blocks, n_split), tile](
        x_dev, s_dev, dtype(1.0 / bw), dtype(beta), gx_part, gs_part, val_part
    )
    if not with_grad:
        return _launch.finish(val_part, [])[0]
    total, (gx, gs) = _launch.finish(val_part, [gx_part, gs_part])
    return total, gx, gs


def gaussian_stein_sums(x, s, bw, tile=None, n_split=None):
    """As :func:`ksdnumba.kernels._cpu.gaussian_stein_sums`, on the GPU.

    The kernel runs in the dtype of ``x`` (float32 or float64; ``s`` is cast to
    it); the row sums are accumulated in float64 across tiles and returned as
    float64. ``tile`` and ``n_split`` override the launch configuration.
    """
    return _stein_sums(GAUSSIAN, x, s, float(bw), 0.0, True, tile, n_split)


def gaussian_stein_total(x, s, bw, tile=None, n_split=None):
    r"""As :func:`ksdnumba.kernels._cpu.gaussian_stein_total`, on the GPU."""
    return _stein_sums(GAUSSIAN, x, s, float(bw), 0.0, False, tile, n_split)


def imq_stein_sums(x, s, bw, beta, tile=None, n_split=None):
    """As :func:`ksdnumba.kernels._cpu.imq_stein_sums`, on the GPU."""
    return _stein_sums(IMQ, x, s, float(bw), float(beta), True, tile, n_split)


def imq_stein_total(x, s, bw, beta, tile=None, n_split=None):
    """As :func:`ksdnumba.kernels._cpu.imq_stein_total`, on the GPU."""
    return _stein_sums(IMQ, x, s, float(bw), float(beta), False, tile, n_split)


def _gaussian_cross(x, y, w, bw, tile=None, n_split=None):
    dtype = _launch.kernel_dtype(x.dtype)
    n, d = x.shape
    m = y.shape[0]
    dw = 0 if w is None else w.shape[1]
    tile = _launch.tile_for(d + dw, dtype) if tile is None else tile
    kernel = cross_kernel(d, dw, dtype, tile)
    row_blocks, n_split = _launch.launch_shape(n, m, tile, n_split)
    x_dev = cuda.to_device(np.ascontiguousarray(x, dtype=dtype))
    y_dev = x_dev if y is x else cuda.to_device(np.ascontiguousarray(y, dtype=dtype))
    w_dev = (
        cuda.device_array((1, 1), dtype=dtype)
        if w is None
        else cuda.to_device(np.ascontiguousarray(w, dtype=dtype))
    )
    gx_part = cuda.device_array((n_split, n, d), dtype=np.float64)
    gw_part = cuda.device_array((n_split, n, dw), dtype=np.float64)
    val_part = cuda.device_array((n_split, row_blocks), dtype=np.float64)
    kernel[(row_blocks, n_split), tile](
        x_dev, y_dev, w_dev, dtype(1.0 / bw), gx_part, gw_part, val_part
    )
    total, (gx, gw) = _launch.finish(val_part, [gx_part, gw_part])
    return total, gx, gw


def gaussian_kernel_sums(x, y, bw, tile=None, n_split=None):
    """As :func:`ksdnumba.kernels._cpu.gaussian_kernel_sums`, on the GPU."""
    total, gx, _ = _gaussian_cross(x, y, None, float(bw), tile, n_split)
    return total, gx


def gaussian_svgd_direction(x, s, bw, tile=None, n_split=None):
    """As :func:`ksdnumba.kernels._cpu.gaussian_svgd_direction`, on the GPU."""
    n = x.shape[0]
    _, gx, gs = _gaussian_cross(x, x, s, float(bw), tile, n_split)
    gx *= 1.0 / bw
    gx += gs
    gx *= 1.0 / n
    return gx
