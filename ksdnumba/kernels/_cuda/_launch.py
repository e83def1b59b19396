"""How the CUDA kernels are compiled and launched, and the reductions they share.

The kernels are built by factories, one per compile-time configuration (kernel
kind, dimension, dtype, tile shape), and kept in :data:`KERNELS`. Tile and block
sizes are module attributes read at each call, so that the tests can shrink them
for numba's CUDA simulator.
"""

import numpy as np
from numba import cuda
from numba import float64 as nb_float64

from .._backend import CUDA_TILE_BYTES as TILE_BYTES
from .._backend import _simulating

# The N-body kernels (descent's sums, matrix products with few columns):
# threads per block and partners per shared-memory tile, a power of 2.
TILE = 128
# Threads of the reductions, a power of 2.
REDUCE_THREADS = 256
# Threads per block of the one-thread-per-point kernels (matrix blocks and
# columns, thinning's steps), a power of 2.
POINT_THREADS = 256
# The largest second dimension of a grid.
MAX_GRID_Y = 65535
# Blocks wanted per streaming multiprocessor before the partner tiles are split.
BLOCKS_PER_SM = 16
# Matrix kernels with many columns: a block of MATRIX_ROWS x MATRIX_COLS threads
# owns MATRIX_ROWS rows and MATRIX_COLS * COLUMNS_PER_THREAD (at most) columns,
# and streams up to MATRIX_PARTNERS partners per tile.
MATRIX_ROWS = 32
MATRIX_COLS = 8
MATRIX_PARTNERS = 32
COLUMNS_PER_THREAD = 8
# Products with up to this many columns (and one metric) take the N-body kernel,
# each thread computing its own row's entries.
ROW_MODE_MAX_COLUMNS = 4
# Static shared memory a matrix kernel may use (a block may have 48 KiB).
SHARED_BYTES = 44 * 1024

KERNELS = {}  # every compiled kernel and device function, by configuration


def cached(key, build):
    """``KERNELS[key]``, built by ``build()`` the first time."""
    if key not in KERNELS:
        KERNELS[key] = build()
    return KERNELS[key]


def _inline_options():
    # numba-cuda inlines a device function into its kernels in LLVM with
    # forceinline, so that the local arrays it reads stay in registers; numba's
    # own CUDA target has no such option.
    import inspect

    return {"forceinline": True} if "forceinline" in inspect.signature(cuda.jit).parameters else {}


def jit(dtype):
    """The kernel decorator for a dtype's kernels.

    float32 kernels take the fast exp, division and square root; float64
    kernels stay IEEE, to match the CPU backend to 1e-10.
    """
    fast = np.dtype(dtype) == np.float32
    if _simulating():  # the simulator runs Python: nothing to cache
        return cuda.jit(fastmath=fast)
    return cuda.jit(fastmath=fast, cache=True)


def device(dtype):
    """The device-function decorator for a dtype's kernels (same flags as :func:`jit`)."""
    if _simulating():
        return cuda.jit(device=True)
    return cuda.jit(device=True, fastmath=np.dtype(dtype) == np.float32, **_inline_options())


def kernel_dtype(x):
    """The numpy type a kernel computes in: float32 for float32 input, else float64."""
    return np.float32 if np.dtype(x) == np.float32 else np.float64


# ------------------------------------------------------------------ launch shapes


def multiprocessors():
    try:
        return cuda.get_current_device().MULTIPROCESSOR_COUNT
    except AttributeError:  # the simulator has no device attributes
        return 1


def split_for(blocks, n_tiles, n_split=None):
    """How many blocks share each row block's partner tiles: enough to fill the GPU."""
    if n_split is None:
        wanted = BLOCKS_PER_SM * multiprocessors()
        n_split = -(-wanted // max(blocks, 1))
    return max(1, min(int(n_split), max(n_tiles, 1)))


def launch_shape(n_rows, n_partners, tile, n_split):
    """Row blocks and partner splits of an N-body kernel."""
    row_blocks = max(1, -(-n_rows // tile))
    n_tiles = max(1, -(-n_partners // tile))
    return row_blocks, split_for(row_blocks, n_tiles, n_split)


def row_width(values, dtype):
    """Entries of a partner's row in a shared-memory tile: ``values``, padded to 16 bytes.

    With rows a multiple of 16 bytes, every row starts 16-byte aligned and a
    thread reads a partner with 16-byte loads (LDS.128), a quarter of the load
    instructions of one value at a time.
    """
    per_16_bytes = 16 // np.dtype(dtype).itemsize
    return -(-values // per_16_bytes) * per_16_bytes


def _too_large(values, dtype, row, limit):
    return ValueError(
        f"the CUDA kernels keep each partner's {values} numbers (its coordinates, "
        f"and its score or weights) in shared memory, {row} bytes in "
        f"{np.dtype(dtype).name}, more than the {limit} bytes they may use: "
        "the dimension is too large for backend='cuda'; use backend='cpu'"
    )


def tile_for(values, dtype):
    """Partners per tile (= threads per block) for ``values`` numbers per partner.

    :data:`TILE`, halved until the tile's rows fit in :data:`TILE_BYTES` of
    shared memory.

    Raises
    ------
    ValueError
        If one partner's row alone does not fit: ``d`` is too large for these
        kernels (beyond 2,048 in float64, 4,096 in float32, for the Stein sums).
    """
    itemsize = np.dtype(dtype).itemsize
    row = row_width(values, dtype) * itemsize
    if row > TILE_BYTES:
        raise _too_large(values, dtype, row, TILE_BYTES)
    tile = TILE
    while tile > 1 and tile * row > TILE_BYTES:
        tile //= 2
    return tile


def partners_that_fit(values, dtype, per_partner, fixed, largest):
    """Partners per tile of a matrix kernel: ``largest``, halved until the shared memory fits.

    A partner costs its row of ``values`` numbers (padded) plus ``per_partner``
    bytes (its entries and right-hand-side values); ``fixed`` bytes are taken
    whatever the tile. Raises the ValueError of :func:`tile_for` when not even
    one partner fits in :data:`SHARED_BYTES`.
    """
    row = row_width(values, dtype) * np.dtype(dtype).itemsize
    cost = row + per_partner
    if cost + fixed > SHARED_BYTES:
        raise _too_large(values, dtype, row, SHARED_BYTES - fixed - per_partner)
    tile = largest
    while tile > 1 and tile * cost + fixed > SHARED_BYTES:
        tile //= 2
    return tile


# ------------------------------------------------------------------ reductions


def _sum_splits_kernel():
    def build():
        @cuda.jit
        def sum_splits(part, out):
            """``out[i, k] = sum_c part[c, i, k]``, the splits added in order."""
            i = cuda.grid(1)
            n_split, n, d = part.shape
            if i < n:
                for k in range(d):
                    acc = 0.0
                    for c in range(n_split):
                        acc += part[c, i, k]
                    out[i, k] = acc

        return sum_splits

    return cached(("sum_splits",), build)


def _sum_middle_kernel():
    def build():
        @cuda.jit
        def sum_middle(part, out):
            """``out[k, b] = sum_r part[k, r, b]``, the middle axis added in order."""
            flat = cuda.grid(1)
            K, R, B = part.shape
            if flat < K * B:
                k = flat // B
                b = flat - k * B
                acc = 0.0
                for r in range(R):
                    acc += part[k, r, b]
                out[k, b] = acc

        return sum_middle

    return cached(("sum_middle",), build)


def _sum_all_kernel(threads):
    def build():
        @cuda.jit
        def sum_all(part, out):
            """``out[0] = part.sum()``, with one block of ``threads`` threads."""
            red = cuda.shared.array(threads, nb_float64)
            tid = cuda.threadIdx.x
            rows, cols = part.shape
            acc = 0.0
            for flat in range(tid, rows * cols, threads):
                acc += part[flat // cols, flat % cols]
            red[tid] = acc
            cuda.syncthreads()
            width = threads // 2
            while width > 0:
                if tid < width:
                    red[tid] += red[tid + width]
                cuda.syncthreads()
                width //= 2
            if tid == 0:
                out[0] = red[0]

        return sum_all

    return cached(("sum_all", threads), build)


def sum_splits(part):
    """``part`` ``(n_split, n, B)`` on the device -> its sum over splits, ``(n, B)`` on the host."""
    n_split, n, width = part.shape
    if n_split == 1 or width == 0:
        return part[0].copy_to_host() if width else np.empty((n, 0))
    out = cuda.device_array((n, width), dtype=np.float64)
    threads = REDUCE_THREADS
    _sum_splits_kernel()[-(-n // threads), threads](part, out)
    return out.copy_to_host()


def sum_middle(part):
    """``part`` ``(K, R, B)`` on the device -> its sum over ``R`` in order, on the host."""
    K, _, B = part.shape
    out = cuda.device_array((K, B), dtype=np.float64)
    threads = REDUCE_THREADS
    _sum_middle_kernel()[max(1, -(-(K * B) // threads)), threads](part, out)
    return out.copy_to_host()


def finish(val_part, parts):
    """Reduce the partial value and row sums on the device; copy them to the host."""
    total = cuda.device_array(1, dtype=np.float64)
    threads = REDUCE_THREADS
    _sum_all_kernel(threads)[1, threads](val_part, total)
    return float(total.copy_to_host()[0]), [sum_splits(part) for part in parts]
