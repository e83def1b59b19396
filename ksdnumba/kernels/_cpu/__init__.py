r"""Numba CPU kernels: the Stein pair sums of descent and the Stein matrix's tiles.

What is computed
----------------
For particles ``x`` and their scores ``s`` (both ``(n, d)``) and a Stein kernel
:math:`k_p`, the descent sums return

- ``total`` :math:`= \sum_{i,j} k_p(x_i, x_j)`,
- ``gx`` with rows :math:`\sum_j \nabla_x k_p(x_i, x_j)` (scores held fixed),
- ``gs`` with rows :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)`,

which :mod:`ksdnumba.objective` chains through the target's Hessian; the
Stein matrix's entry points (``stein_*``, ``greedy_thinning``) serve
:class:`ksdnumba.SteinMatrix` (products, forms, columns, blocks, thinning).

Radial kernels
--------------
The Gaussian and IMQ kernels are radial, :math:`k = \phi(r^2)`, and share one row
function; only the profile (:math:`\phi` and its first three derivatives in
:math:`r^2`, evaluated in :func:`._direct._gaussian_block` and
:func:`._direct._imq_block`) differs. With ``u = x_i - x_j``, ``r2 = |u|^2``,
``S = s_i . s_j`` and ``D = s_i - s_j``:

.. math::

    k_p &= \phi S - 2 \phi' (D \cdot u + d) - 4 r^2 \phi'' \\
    \nabla_x k_p &= u \left[ 2 \phi' S - 4 \phi'' (D \cdot u + d + 2)
        - 8 r^2 \phi''' \right] - 2 \phi' D \\
    \partial k_p / \partial s(x) &= \phi \, s_j - 2 \phi' u

The Stein matrix's tiles and columns take the same kernels with a metric
:math:`L` (``I / bw`` or a preconditioner's inverse); their formulas are in
:mod:`._profiles`, the one place a kernel's profile lives for them.

Layout of the computation
-------------------------
The direct rows read particles and scores transposed, ``(d, n)``, so that the
loops over the partner index ``j`` run over contiguous memory and LLVM
vectorises them; partners come in blocks of ``_BLOCK``, with a vectorisable exp
(numba's ``np.exp`` is a scalar libm call). No loop stores more than two arrays
where it can be helped: with a third, LLVM stopped vectorising (it checks at run
time that the arrays it writes do not overlap those it reads). In two
dimensions the Gaussian kernel and IMQ with beta = 1/2 have one-loop rows
(:func:`._direct._gaussian_row_2d`, :func:`._direct._imq_half_row_2d`) that keep
every pair quantity in registers. On CPUs with AVX-512 the pair loops ask LLVM
for 512-bit vectors (:func:`._vecmath._wide_vectors`), which its default tuning
does not use. The kernels use NumPy's error model: under Python's, every
division carried a zero test whose branch kept LLVM from vectorising.

From a few dimensions on, the radial sums take the GEMM-tiled path
(:mod:`._tiled`): ``r2``, ``S`` and ``D . u`` of a tile of pairs come from Gram
products (BLAS), one pass over the tile evaluates the profile, and the
gradients come back as products of the coefficient tiles with the particles.
Which path runs is decided by ``n`` and ``d`` (``_TILED_MIN_D``,
``_TILED_MIN_N`` in :mod:`._drivers`, measured by
``benchmarks/bench_tiled.py --crossover``); ``path=`` forces one.

Determinism
-----------
Each row ``i`` is owned by one loop iteration and written once, tiles are
scheduled in an order fixed by the tiling alone, and every sum across rows or
tiles is taken in a fixed order: results are bit-identical from run to run and
between a threaded driver and its serial twin (one body, two compilations:
:func:`._twins.twin`), which serves small ``n`` where waking the threads costs
more than it saves. Memory is O(n d). ``fastmath`` is limited to
re-association, contraction and reciprocal flags, so NaN and infinity keep
their IEEE meaning; the exp and log leave re-association out as well, which
would undo their argument reductions. Row functions are kept out of their
drivers (:func:`._vecmath._not_inlined`), so that both twins run the same code.

float32
-------
With float32 particles the sums compute in float32 and accumulate in float64
across tiles, or across blocks of ``_BLOCK`` partners in the direct rows: on the
tiled path always, on the direct rows from n = 1000 on
(:func:`computes_in_float32`), except IMQ with beta other than 1/2, whose
vectorised log is written for float64. Constants enter float32 expressions
through :func:`._vecmath.like`: a float literal is a float64 in numba, and one
of them made the whole expression float64.

Files
-----
``_vecmath``: compiler flags, the vectorisable exp and log, the wide-vector
intrinsic, the ordered sum. ``_twins``: the twin builder. ``_direct``: the
direct rows and their drivers, for the Stein kernels and the base Gaussian
kernel (SVGD, MMD). ``_tiled``: the GEMM-tiled descent sums. ``_profiles``:
Stein-kernel values from a metric's pair quantities. ``_matrix``: the Stein
matrix's tiles (products, quadratic forms, blocks). ``_values``: its columns
and the greedy thinning loop. ``_threads``: the one switch that holds BLAS to
one thread while numba's threads run. ``_drivers``: the descent sums' entry
points, which lay out the arguments and choose the driver and the path.

Adding a kernel
---------------
One line in :mod:`ksdnumba.kernels._kinds`, its branch in
:func:`._profiles.profile_row` (the Stein matrix, thinning, the tests), its
closed form in :mod:`ksdnumba.kernels._reference`, and, for descent, a block
function beside :func:`._direct._gaussian_block` called from
:func:`._direct._radial_row`; the CUDA backend has a device function of the
same role. ``tests/test_stein_matrix.py`` checks every kind of
:data:`ksdnumba.kernels._kinds.KINDS` on every backend against the reference.
"""

from ..._caching import cache_depends_on_each_other
from .._host import linear_stein_diagonal, linear_stein_sums, linear_stein_total
from . import _direct, _drivers, _matrix, _profiles, _tiled, _twins, _values, _vecmath
from ._direct import radial_sums_serial
from ._drivers import (
    SERIAL_MAX_N,
    computes_in_float32,
    cross_computes_in_float32,
    gaussian_kernel_sums,
    gaussian_stein_sums,
    gaussian_stein_total,
    gaussian_svgd_direction,
    imq_stein_sums,
    imq_stein_total,
)
from ._matrix import Layout as stein_layout
from ._matrix import dense as stein_dense
from ._matrix import products as stein_products
from ._matrix import quadratic_forms as stein_forms
from ._values import greedy_thinning, stein_columns, stein_diagonal

# Every module of the backend with compiled code. Their functions call one
# another's across files (Numba inlines them), and Numba checks a cached function
# against its own file only: each is stamped with all of them, and so is any
# compiled function elsewhere that calls into the backend.
SOURCES = (_vecmath, _twins, _direct, _tiled, _drivers, _profiles, _matrix, _values)
cache_depends_on_each_other(SOURCES)

__all__ = [
    "SERIAL_MAX_N",
    "SOURCES",
    "computes_in_float32",
    "cross_computes_in_float32",
    "gaussian_kernel_sums",
    "gaussian_stein_sums",
    "gaussian_stein_total",
    "gaussian_svgd_direction",
    "greedy_thinning",
    "imq_stein_sums",
    "imq_stein_total",
    "linear_stein_diagonal",
    "linear_stein_sums",
    "linear_stein_total",
    "radial_sums_serial",
    "stein_columns",
    "stein_dense",
    "stein_diagonal",
    "stein_forms",
    "stein_layout",
    "stein_products",
]
