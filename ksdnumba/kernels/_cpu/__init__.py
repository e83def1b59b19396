r"""Numba CPU kernels for the Stein pair sums.

What is computed
----------------
For particles ``x`` and their scores ``s`` (both ``(n, d)``) and a Stein kernel
:math:`k_p`, every kernel returns

- ``total`` :math:`= \sum_{i,j} k_p(x_i, x_j)`,
- ``gx`` with rows :math:`\sum_j \nabla_x k_p(x_i, x_j)` (scores held fixed),
- ``gs`` with rows :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)`,

which :mod:`ksdnumba.objective` chains through the target's Hessian.

Radial kernels
--------------
The Gaussian and IMQ kernels are radial, :math:`k = \phi(r^2)`, and share one row
function; only the profile (:math:`\phi` and its first three derivatives in
:math:`r^2`, evaluated in :func:`_gaussian_block` and :func:`_imq_block`)
differs. With ``u = x_i - x_j``, ``r2 = |u|^2``, ``S = s_i . s_j`` and
``D = s_i - s_j``:

.. math::

    k_p &= \phi S - 2 \phi' (D \cdot u + d) - 4 r^2 \phi'' \\
    \nabla_x k_p &= u \left[ 2 \phi' S - 4 \phi'' (D \cdot u + d + 2)
        - 8 r^2 \phi''' \right] - 2 \phi' D \\
    \partial k_p / \partial s(x) &= \phi \, s_j - 2 \phi' u

The Gaussian kernel has its own block loop: its derivatives are multiples of
:math:`\phi`, so it stores two arrays per block where IMQ stores three.

Layout of the computation
-------------------------
The particles and scores are passed transposed, as float64 ``(d, n)`` arrays, so
that the loops over the partner index ``j`` run over contiguous memory and LLVM
vectorises them. For each particle ``i`` the partners are taken in blocks of
``_BLOCK``: one pass fills the pair quantities of the block (``r2``, ``S``,
``D . u``), a second evaluates the profile and the value with an exp written to
vectorise (numba's ``np.exp`` is a scalar libm call and took half the time), and
stores the gradients' coefficients; a third accumulates the row's gradients.
LLVM vectorises a loop only while it can check cheaply that the arrays it writes
do not overlap those it reads, which is why no loop stores more than two arrays
where it can be helped (a third store made the Gaussian loop 2-3 times slower).
Measured on a 2-core Xeon, serial, d = 2, n = 2000: 4.7 ns per pair for the
Gaussian kernel (6.6 with a separate exp pass), 7.4 ns for IMQ with beta = 1/2.

In two dimensions, the case of every figure of the paper, the Gaussian kernel and
the IMQ kernel with beta = 1/2 have rows of their own (:func:`_gaussian_row_2d`,
:func:`_imq_half_row_2d`): one loop over the partners that keeps every pair
quantity in registers and stores nothing. Measured side by side with the blocked
rows (``benchmarks/compare_kernels.py``), two threads: Gaussian 1.41-1.51 times
faster, IMQ 2.6 times, with 256-bit vectors.

On CPUs with AVX-512 the pair loops ask LLVM for 512-bit vectors
(:func:`_wide_vectors`), which its default tuning does not use. Side by side on
a 2-core Cascade Lake, against the same loops in 256 bits: 1.42-1.51 times for
the 2-D Gaussian row (0.68 Gpairs/s at n = 20,000 with two threads), 1.5-1.7
times for the 2-D SVGD and MMD rows, 1.0-1.25 for the 2-D IMQ row (its square
root and division gain little from width); at d = 10, 1.0-1.4 for the Gaussian,
SVGD and MMD sums and 0.93-1.14 for IMQ, within the machine's noise.

The kernels use NumPy's
error model: under Python's, every division carried a zero test and an exception
branch that kept LLVM from vectorising its loop. The base Gaussian kernel of SVGD
and MMD has a 2-D row of the same kind (1.16-1.36 times faster than its blocked
row with the same exp).

Each row ``i`` is owned by one loop iteration and written once, and the blocks of a
row are summed in a fixed order, so results are bit-identical from run to run and
between the parallel driver and its serial twin (which serves small ``n``, where
starting the thread pool costs more than it saves). Memory is O(n d).

``fastmath`` is limited to re-association, contraction and reciprocal flags, so
NaN and infinity keep their IEEE meaning. The exp and log leave re-association
out as well: it would undo their argument reductions.

GEMM-tiled path
---------------
From a few dimensions on, the radial Stein sums take another road
(:mod:`._tiled`): ``r2``, ``S`` and ``D . u`` of a tile of pairs come from three
Gram products (BLAS, through numba's ``np.dot``), one pass over the tile
evaluates the same profile functions, and the gradients come back as products
of the coefficient tiles with the particles and scores. Each unordered pair of
tiles is computed once, in a fixed round-robin order, so the path is as
deterministic as the rows; it costs about ``9 d`` (Gaussian) to ``11 d`` (IMQ)
flops per pair in matrix products, which run near the machine's peak, where the
direct row does ``19 d + 51``. Side by side with the direct rows of revision
e21fc01 (two threads, float64, n = 5000 and 20,000,
``benchmarks/compare_kernels.py``): 1.9-2.1 times faster at d = 10, 1.8-2.4 at
d = 20, 1.7-3.2 at d = 50, 2.0-5.7 at d = 100; the old rows reached 58-69 % of
the machine's bound at n = 5000 in that run, and fall off once their partners
outgrow the caches. The SVGD direction and the MMD sums
take the same road from d = 16. Which path runs is decided
by ``n`` and ``d`` (``_TILED_MIN_D``, ``_TILED_MIN_N`` in :mod:`._drivers`,
measured by ``benchmarks/bench_tiled.py --crossover``); ``path=`` forces one.
Each unordered pair of tiles serves both its row tiles; side by side with a
schedule of every ordered pair (``bench_tiled.py --symmetry``, float64, two
threads, n = 1000 to 20,000) this is 1.12-1.52 times faster at d = 6 to 100.

The linear kernel needs no pair loop (see :func:`linear_stein_sums`).

float32
-------
With float32 particles the sums compute in float32 and accumulate in float64
across tiles, or across blocks of ``_BLOCK`` partners in the direct rows (whose
running sums over one block are float32): on the tiled path always, on the
direct rows from n = 1000 on (:func:`computes_in_float32`; below, the sums take
microseconds and float32 would only cost accuracy), except IMQ with beta other
than 1/2, whose vectorised log is written for float64. The exp has a float32
twin (:func:`._vecmath._exp_scalar32`, 16 lanes to a 512-bit vector where
float64 has 8), and the loops are written once for both dtypes, with their
constants taken through :func:`._vecmath.like`: a float literal is a float64
in numba, and one of them in a float32 expression made the whole of it
float64. float32 tiles have 256 rows from d = 64 on (:func:`._tiled._tile_rows`).
Side by side with float64 (``benchmarks/bench_tiled.py --dtypes``, two threads,
n = 5000 and 20,000): 1.80-2.28 times faster on the direct rows (d = 2 to 5),
1.63-2.26 on the tiled path (d = 8 to 100), where the float64 sums across tiles
stay as they were.

Two pitfalls of numba's code, each of which cost these loops a factor of two:
an index ``J0 + j`` with an offset LLVM cannot prove non-negative keeps numba's
wrap-around test for negative indices, and LLVM then loads the partners one by
one (gathers); the loops read slices instead. And a row function inlined into
the threaded driver and into its serial twin was optimised in two contexts,
where its sums need not come out in the same order: the rows are kept out of
their drivers (:func:`._vecmath._not_inlined`), so that both run the same code.

Files
-----
``_vecmath``: compiler flags, the vectorisable exp and log, the wide-vector
intrinsic, the ordered sum. ``_direct``: the direct rows and their drivers,
for the Stein kernels and the base Gaussian kernel (SVGD, MMD). ``_tiled``: the
GEMM-tiled path. ``_threads``: the one switch that holds BLAS to one thread
while numba's threads run. ``_drivers``: the entry points, which lay out the
arguments and choose the driver and the path. ``_values``: Stein-kernel
values without gradients, for Stein thinning (preconditioned kernels, one column
per greedy step) and the KSD test (bootstrap quadratic forms); its own docstring
states those formulas. This docstring is the one statement of the others.
"""
from ._direct import (
    _BLOCK,
    _gaussian_block,
    _gaussian_cross_parallel,
    _gaussian_cross_row,
    _gaussian_cross_row_2d,
    _gaussian_cross_serial,
    _gaussian_row_2d,
    _imq_block,
    _imq_half_row_2d,
    _pair_block,
    _radial_row,
    _radial_row_value,
    _radial_sums_parallel,
    _radial_sums_serial,
    _radial_total_parallel,
    _radial_total_serial,
    _row_2d,
    _scratch,
)
from ._drivers import (
    PATHS,
    SERIAL_MAX_N,
    _TILED_MIN_D,
    _TILED_MIN_N,
    _choose_path,
    _gaussian_cross,
    _n_chunks,
    _radial_sums,
    _radial_total,
    _transposed,
    _use_parallel,
    computes_in_float32,
    gaussian_kernel_sums,
    gaussian_stein_diagonal,
    gaussian_stein_sums,
    gaussian_stein_total,
    gaussian_svgd_direction,
    imq_stein_diagonal,
    imq_stein_sums,
    imq_stein_total,
    linear_stein_diagonal,
    linear_stein_sums,
    linear_stein_total,
)
from ._vecmath import (
    _EXP_MIN,
    _FASTMATH,
    _FASTMATH_EXACT,
    _KERNEL,
    _KERNEL_EXACT,
    _PREFER_WIDE,
    GAUSSIAN,
    IMQ,
    _bits_as_float64,
    _exp_scalar,
    _float64_bits,
    _log_atleast1,
    _ordered_sum,
    _wide_vectors,
    fexp,
    like,
)

from ..._caching import cache_depends_on_each_other  # noqa: E402
from . import _direct, _drivers, _threads, _tiled, _values, _vecmath  # noqa: E402

# Every module of the backend with compiled code. Their functions call one
# another's across files (Numba inlines them), and Numba checks a cached function
# against its own file only: each is stamped with all of them, and so is any
# compiled function elsewhere that calls into the backend.
_SOURCES = (_vecmath, _direct, _tiled, _drivers, _values)
cache_depends_on_each_other(_SOURCES)
