r"""numba.cuda kernels for the Stein pair sums and the base Gaussian kernel.

The same sums as :mod:`ksdnumba.kernels._cpu`, with the same signatures and
returns (``total`` as a float, the row sums as float64 host arrays), computed on
an NVIDIA GPU. This module imports :mod:`numba.cuda`; :mod:`ksdnumba.objective`
imports it only when a call asks for the CUDA backend.

Layout of the computation
-------------------------
The N-body pattern: one thread owns one particle ``i`` (its coordinates, score
and running sums live in registers) and the partners ``j`` stream through
shared memory, one tile of ``_TILE`` particles at a time, every thread of the
block loading one partner of the tile. A partner is one row of the tile, its
coordinates then its score (or weights) padded to a multiple of 16 bytes, so
that a thread reads it with 16-byte loads: at d = 10 in float32, 5 loads per
pair instead of 20. Each pair costs one exp (or a square root, or a power for
IMQ) and a few dozen flops, all in registers: the kernels are bound by
arithmetic, not by memory.

- The dimension ``d`` is a compile-time constant: kernels are built by a
  factory and cached per (kernel, ``d``, dtype), so that the loops over ``d``
  unroll and the per-particle arrays fit in registers.
- float32 and float64: the kernel's precision is the particles' dtype. In the
  float32 kernels every constant is a float32 (a float64 literal would silently
  promote the arithmetic to float64, at a fraction of the speed); the running
  sums are float32 within a tile and float64 across tiles, so that the rounding
  error of a row sum grows with the tile size, not with ``n``.
- When there are too few particles to fill the GPU with one thread each, the
  partner tiles are split between ``n_split`` blocks per row block (the grid's
  second axis); each writes its partial row sums, which a second kernel adds in
  a fixed order.
- The value is reduced on the device: a tree in shared memory per block, then
  one block over the blocks' partial sums, in a fixed order. Results are
  deterministic for a given launch configuration.
- For large ``d`` the tile shrinks so that its partners fit in 32 KiB of shared
  memory (:func:`_tile_for`); beyond d = 2,048 in float64 (4,096 in float32)
  one partner does not fit, and ``backend="cuda"`` raises a ValueError.
  Compiled for the H100 (``sm_90``, ``benchmarks/check_cuda_ptx.py``), the
  float32 Gaussian kernel uses 48 registers per thread at d = 2 and 126 at
  d = 10, without spills; from d of about 20 on, some running sums spill to
  (cached) local memory.

The linear kernel has no pair loop (O(n d^2)) and always runs on the host.
"""

import importlib
import math

import numpy as np
from numba import cuda, from_dtype
from numba import float64 as nb_float64

from ._backend import CUDA_TILE_BYTES as _TILE_BYTES
from ._backend import _simulating


def _import_with_row_stack(module="numba.cuda.np.arrayobj"):
    """Import numba-cuda's array module where NumPy no longer has ``np.row_stack``.

    numba-cuda 0.30 (in maintenance mode: NVIDIA/numba-cuda#907 will not be fixed)
    registers an overload of ``np.row_stack`` when its target first loads, which
    NumPy 2.5 removed: on a GPU, the first kernel compile then fails with an
    AttributeError. Importing that module once with the alias in place registers
    the overload on ``np.vstack`` (which ``row_stack`` always was) and caches the
    module; the alias is removed again, so that NumPy is left as it was. Nothing
    happens where NumPy has the alias, or where the module does not exist (numba's
    own CUDA target, a later numba-cuda).
    """
    if hasattr(np, "row_stack"):
        return
    np.row_stack = np.vstack
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:  # the module itself, not one that it imports
        if err.name is None or not (module + ".").startswith(err.name + "."):
            raise
    finally:
        del np.row_stack


if not _simulating():
    _import_with_row_stack()

_TILE = 128  # threads per block and partners per shared-memory tile (a power of 2)
_REDUCE_THREADS = 256
# Blocks wanted per streaming multiprocessor before the partner tiles are split.
_BLOCKS_PER_SM = 16

_KERNELS = {}


def _jit(dtype):
    # float32 kernels take the fast exp, division and square root; float64
    # kernels stay IEEE, to match the CPU backend to 1e-10.
    fast = dtype == np.float32
    if _simulating():  # the simulator runs Python: nothing to cache
        return cuda.jit(fastmath=fast)
    return cuda.jit(fastmath=fast, cache=True)


# ------------------------------------------------------------------ Stein kernels


def _stein_kernel(kind, d, dtype, tile, with_grad):
    """Build (once) the Stein pair-sum kernel for one kernel, ``d`` and dtype.

    ``kind`` is ``"gaussian"``, ``"imq"`` (any beta, through a power) or
    ``"imq_half"`` (beta = 1/2, through a square root).
    """
    key = ("stein", kind, d, np.dtype(dtype).name, tile, with_grad)
    if key in _KERNELS:
        return _KERNELS[key]
    dtype = np.dtype(dtype).type
    dt = from_dtype(np.dtype(dtype))
    D = d
    W = _row_width(2 * d, dtype)  # a partner's row: x_j, then s_j, then padding
    T = tile
    GAUSSIAN = kind == "gaussian"
    IMQ_HALF = kind == "imq_half"
    WITH_GRAD = with_grad
    zero = dtype(0.0)
    one = dtype(1.0)
    two = dtype(2.0)
    four = dtype(4.0)
    eight = dtype(8.0)
    half = dtype(0.5)
    log2e = dtype(1.4426950408889634)
    dd = dtype(d)

    @_jit(dtype)
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
        c0 = -half * log2e * inv_h  # exp(-r2 / (2 h)) = 2^(c0 r2)
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
                    if GAUSSIAN:
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

    _KERNELS[key] = stein
    return stein


@cuda.jit(device=True)
def _block_sum(red, value, val_part, split):
    """Sum ``value`` over the block (a tree in shared memory) into ``val_part``."""
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


def _cross_kernel(d, dw, dtype, tile):
    r"""Build (once) the Gaussian kernel sums between ``x`` and partners ``y``.

    Row ``i`` gets :math:`\sum_j k_{ij} (x_i - y_j)` and, with ``dw > 0``
    weights, :math:`\sum_j k_{ij} w_j`; the value is :math:`\sum_{ij} k_{ij}`.
    """
    key = ("cross", d, dw, np.dtype(dtype).name, tile)
    if key in _KERNELS:
        return _KERNELS[key]
    dtype = np.dtype(dtype).type
    dt = from_dtype(np.dtype(dtype))
    D = d
    DW = dw
    DW_ALLOC = max(dw, 1)
    W = _row_width(d + dw, dtype)  # a partner's row: y_j, then w_j, then padding
    T = tile
    zero = dtype(0.0)
    half = dtype(0.5)
    log2e = dtype(1.4426950408889634)

    @_jit(dtype)
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

    _KERNELS[key] = cross
    return cross


# ------------------------------------------------------------ reductions over splits


@cuda.jit
def _sum_splits(part, out):
    """``out[i, k] = sum_c part[c, i, k]``, the splits added in order."""
    i = cuda.grid(1)
    n_split, n, d = part.shape
    if i < n:
        for k in range(d):
            acc = 0.0
            for c in range(n_split):
                acc += part[c, i, k]
            out[i, k] = acc


@cuda.jit
def _sum_all(part, out):
    """``out[0] = part.sum()``, with one block of ``_REDUCE_THREADS`` threads."""
    red = cuda.shared.array(_REDUCE_THREADS, nb_float64)
    tid = cuda.threadIdx.x
    rows, cols = part.shape
    acc = 0.0
    for flat in range(tid, rows * cols, _REDUCE_THREADS):
        acc += part[flat // cols, flat % cols]
    red[tid] = acc
    cuda.syncthreads()
    width = _REDUCE_THREADS // 2
    while width > 0:
        if tid < width:
            red[tid] += red[tid + width]
        cuda.syncthreads()
        width //= 2
    if tid == 0:
        out[0] = red[0]


# ------------------------------------------------------------------- host drivers


def _multiprocessors():
    try:
        return cuda.get_current_device().MULTIPROCESSOR_COUNT
    except AttributeError:  # the simulator has no device attributes
        return 1


def _launch_shape(n_rows, n_partners, tile, n_split):
    """Row blocks and partner splits: enough blocks to fill the GPU."""
    row_blocks = max(1, -(-n_rows // tile))
    n_tiles = max(1, -(-n_partners // tile))
    if n_split is None:
        wanted = _BLOCKS_PER_SM * _multiprocessors()
        n_split = -(-wanted // row_blocks)
    return row_blocks, max(1, min(int(n_split), n_tiles))


def _row_width(values, dtype):
    """Entries of a partner's row in a shared-memory tile: ``values``, padded to 16 bytes.

    With rows a multiple of 16 bytes, every row starts 16-byte aligned and a
    thread reads a partner with 16-byte loads (LDS.128), a quarter of the load
    instructions of one value at a time.
    """
    per_16_bytes = 16 // np.dtype(dtype).itemsize
    return -(-values // per_16_bytes) * per_16_bytes


def _tile_for(values, dtype):
    """Partners per tile (= threads per block) for ``values`` numbers per partner.

    ``_TILE``, halved until the tile's rows fit in ``_TILE_BYTES`` of shared
    memory (a block may have 48 KiB of static shared memory).

    Raises
    ------
    ValueError
        If one partner's row alone does not fit: ``d`` is too large for these
        kernels (beyond 2,048 in float64, 4,096 in float32, for the Stein sums).
    """
    itemsize = np.dtype(dtype).itemsize
    row = _row_width(values, dtype) * itemsize
    if row > _TILE_BYTES:
        raise ValueError(
            f"the CUDA kernels keep each partner's {values} numbers (its coordinates, "
            f"and its score or weights) in shared memory, {row} bytes in "
            f"{np.dtype(dtype).name}, more than the {_TILE_BYTES} bytes they may use: "
            "the dimension is too large for backend='cuda'; use backend='cpu'"
        )
    tile = _TILE
    while tile > 1 and tile * row > _TILE_BYTES:
        tile //= 2
    return tile


def _kernel_dtype(x):
    return np.float32 if x.dtype == np.float32 else np.float64


def _finish(val_part, parts):
    """Reduce the partial value and row sums on the device; copy them to the host."""
    total = cuda.device_array(1, dtype=np.float64)
    _sum_all[1, _REDUCE_THREADS](val_part, total)
    rows = []
    for part in parts:
        n_split, n, d = part.shape
        if n_split == 1 or d == 0:
            rows.append(part[0].copy_to_host() if d else np.empty((n, 0)))
            continue
        out = cuda.device_array((n, d), dtype=np.float64)
        _sum_splits[-(-n // _REDUCE_THREADS), _REDUCE_THREADS](part, out)
        rows.append(out.copy_to_host())
    return float(total.copy_to_host()[0]), rows


def _stein_sums(kind, x, s, bw, beta, with_grad, tile=None, n_split=None):
    dtype = _kernel_dtype(x)
    n, d = x.shape
    tile = _tile_for(2 * d, dtype) if tile is None else tile
    if kind == "imq" and beta == 0.5:
        kind = "imq_half"
    kernel = _stein_kernel(kind, d, dtype, tile, with_grad)
    row_blocks, n_split = _launch_shape(n, n, tile, n_split)
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
        return _finish(val_part, [])[0]
    total, (gx, gs) = _finish(val_part, [gx_part, gs_part])
    return total, gx, gs


def gaussian_stein_sums(x, s, bw, tile=None, n_split=None):
    """As :func:`ksdnumba.kernels._cpu.gaussian_stein_sums`, on the GPU.

    The kernel runs in the dtype of ``x`` (float32 or float64; ``s`` is cast to
    it); the row sums are accumulated in float64 across tiles and returned as
    float64. ``tile`` and ``n_split`` override the launch configuration.
    """
    return _stein_sums("gaussian", x, s, float(bw), 0.0, True, tile, n_split)


def gaussian_stein_total(x, s, bw, tile=None, n_split=None):
    r"""As :func:`ksdnumba.kernels._cpu.gaussian_stein_total`, on the GPU."""
    return _stein_sums("gaussian", x, s, float(bw), 0.0, False, tile, n_split)


def imq_stein_sums(x, s, bw, beta, tile=None, n_split=None):
    """As :func:`ksdnumba.kernels._cpu.imq_stein_sums`, on the GPU."""
    return _stein_sums("imq", x, s, float(bw), float(beta), True, tile, n_split)


def imq_stein_total(x, s, bw, beta, tile=None, n_split=None):
    """As :func:`ksdnumba.kernels._cpu.imq_stein_total`, on the GPU."""
    return _stein_sums("imq", x, s, float(bw), float(beta), False, tile, n_split)


def _gaussian_cross(x, y, w, bw, tile=None, n_split=None):
    dtype = _kernel_dtype(x)
    n, d = x.shape
    m = y.shape[0]
    dw = 0 if w is None else w.shape[1]
    tile = _tile_for(d + dw, dtype) if tile is None else tile
    kernel = _cross_kernel(d, dw, dtype, tile)
    row_blocks, n_split = _launch_shape(n, m, tile, n_split)
    x_dev = cuda.to_device(np.ascontiguousarray(x, dtype=dtype))
    y_dev = x_dev if y is x else cuda.to_device(np.ascontiguousarray(y, dtype=dtype))
    w_dev = (cuda.device_array((1, 1), dtype=dtype) if w is None
             else cuda.to_device(np.ascontiguousarray(w, dtype=dtype)))
    gx_part = cuda.device_array((n_split, n, d), dtype=np.float64)
    gw_part = cuda.device_array((n_split, n, dw), dtype=np.float64)
    val_part = cuda.device_array((n_split, row_blocks), dtype=np.float64)
    kernel[(row_blocks, n_split), tile](
        x_dev, y_dev, w_dev, dtype(1.0 / bw), gx_part, gw_part, val_part
    )
    total, (gx, gw) = _finish(val_part, [gx_part, gw_part])
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
