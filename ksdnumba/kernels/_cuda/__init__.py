r"""numba.cuda kernels: the Stein pair sums of descent and the Stein matrix's products.

The same entry points as :mod:`ksdnumba.kernels._cpu`, with the same signatures
and returns (float64 host arrays, a float for a total), computed on an NVIDIA
GPU; :func:`ksdnumba.kernels._backend.kernels` hands out either module. This
package imports :mod:`numba.cuda`: only a call that resolves to the CUDA
backend imports it, never ``import ksdnumba``.

What is computed
----------------
The descent sums (``gaussian_stein_sums``, ``imq_stein_sums`` and their
totals, the SVGD direction and the MMD sums) return the value of the KSD
objective and its partial gradients, as the CPU's do. The Stein matrix's entry
points serve :class:`ksdnumba.SteinMatrix`: ``stein_layout`` puts the points
and scores (in the eigenbasis of the metric :math:`L`) on the device once per
matrix; ``stein_products`` (:math:`H W`, or its strictly lower triangle times
``W``), ``stein_forms`` (:math:`w_b^\top H w_b`, for several bandwidths in one
pass), ``stein_dense``, ``stein_columns``, ``stein_diagonal`` and
``greedy_thinning`` read it. The linear kernel's sums, total and diagonal are
the host's closed forms (:mod:`ksdnumba.kernels._host`), O(n d^2).

Layout of the computation
-------------------------
The N-body pattern: one thread owns one row ``i`` (its point, score and
running sums in registers) and the partners ``j`` stream through shared
memory, one tile at a time, every thread of the block loading a share of it. A
partner is one row of the tile, its coordinates then its score, padded to a
multiple of 16 bytes so that a thread reads it with 16-byte loads. The
dimension ``d`` is a compile-time constant: kernels are built by factories and
cached per configuration (kind, ``d``, dtype, tile shape), so that the loops
over ``d`` unroll and the per-row arrays live in registers. Products with many
right-hand sides compute each tile of :math:`H` once into shared memory and
multiply it there by the block's columns of ``W`` (:mod:`._matrix`). Entries
come from the pair quantities of :mod:`._profiles` computed directly with the
metric's eigenvalues, O(d) per pair: no Gram products on a GPU. When there are
too few rows to fill the GPU, the partner tiles are split between several
blocks per row block, whose partial sums a second kernel adds. For large ``d``
the tiles shrink to fit in shared memory; when one partner does not fit,
``backend="cuda"`` raises a ValueError that says so.

Determinism
-----------
Every output is accumulated by one thread, over the partner tiles in order;
partial sums (splits, blocks' rows, blocks' values) are reduced in a fixed
order, and thinning's ties go to the lowest index as on the CPU. No atomics:
results are bit-identical from run to run for a given launch configuration
(tile sizes and splits, chosen from ``n``, ``d``, the number of columns and the
GPU's multiprocessors).

float32
-------
The products, forms and dense blocks compute in the layout's dtype, and the
descent sums in the particles'. float32 kernels take the fast exp, division and
square root (``fastmath``) and every constant in them is a float32: a float64
literal would silently promote the arithmetic to float64, at a fraction of the
speed (``benchmarks/check_cuda_ptx.py`` fails on a float64 multiply in a
float32 kernel). Sums are float32 within a tile and float64 across tiles.
float64 kernels are IEEE, to match the CPU backend to 1e-10. Columns and
thinning compute in float64 whatever the dtype, as the CPU's do.

Files
-----
``_compat``: the NumPy 2.5 workaround for numba-cuda. ``_launch``: the jit
factory, tile and block sizes, launch shapes and the device reductions.
``_sums``: descent's Stein sums and the Gaussian kernel sums. ``_profiles``:
device functions for the pair quantities and every kind's Stein value.
``_matrix``: the Stein matrix's layout, products, forms, blocks, columns and
diagonal. ``_values``: greedy thinning.
"""

from .._backend import _simulating
from . import _compat

if not _simulating():
    _compat._import_with_row_stack()

from .._host import linear_stein_diagonal, linear_stein_sums, linear_stein_total  # noqa: E402
from ._matrix import Layout as stein_layout  # noqa: E402
from ._matrix import columns as stein_columns  # noqa: E402
from ._matrix import dense as stein_dense  # noqa: E402
from ._matrix import diagonal as stein_diagonal  # noqa: E402
from ._matrix import products as stein_products  # noqa: E402
from ._matrix import quadratic_forms as stein_forms  # noqa: E402
from ._sums import (  # noqa: E402
    gaussian_kernel_sums,
    gaussian_stein_sums,
    gaussian_stein_total,
    gaussian_svgd_direction,
    imq_stein_sums,
    imq_stein_total,
)
from ._values import greedy_thinning  # noqa: E402

__all__ = [
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
    "stein_columns",
    "stein_dense",
    "stein_diagonal",
    "stein_forms",
    "stein_layout",
    "stein_products",
]
