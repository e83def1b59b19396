r"""Closed forms computed with NumPy on the host, whatever the backend.

The linear kernel has no pair loop (its sums are linear in ``n``), and every
radial Stein matrix's diagonal is a norm plus a constant: both backends use
these functions as they are.
"""

import numpy as np

from ._kinds import GAUSSIAN


def linear_stein_sums(x, s):
    r"""Linear Stein kernel summed over all pairs, with its partial gradients.

    Base kernel :math:`k(x, y) = x \cdot y`, whose Stein kernel is
    :math:`k_p(x, y) = (x \cdot y)(s(x) \cdot s(y)) + s(x) \cdot x + s(y) \cdot y + d`.
    With :math:`M = \sum_i x_i s_i^\top` every sum is linear in ``n``:

    .. math::

        \sum_{i,j} k_p = \|M\|_F^2 + 2 n \sum_i s_i \cdot x_i + n^2 d, \quad
        g^x_i = M s_i + n s_i, \quad g^s_i = M^\top x_i + n x_i.

    Returns ``total, gx, gs`` as :func:`gaussian_stein_sums`. O(n d^2) time.
    """
    x = np.asarray(x, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    n, d = x.shape
    M = x.T @ s
    total = np.sum(M * M) + 2.0 * n * np.einsum("ij,ij->", s, x) + n * n * d
    return total, s @ M.T + n * s, x @ M + n * x


def linear_stein_total(x, s):
    """Linear Stein kernel summed over all pairs (see :func:`linear_stein_sums`)."""
    x = np.asarray(x, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    n, d = x.shape
    M = x.T @ s
    return np.sum(M * M) + 2.0 * n * np.einsum("ij,ij->", s, x) + n * n * d


def linear_stein_block(x, s, rows, cols):
    """``k_p(x_i, x_j)`` of the linear kernel for ``i`` in ``rows``, ``j`` in ``cols``."""
    x = np.asarray(x, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    sx = np.einsum("ij,ij->i", s, x)
    return (
        (x[rows] @ x[cols].T) * (s[rows] @ s[cols].T)
        + sx[rows][:, None]
        + sx[cols][None, :]
        + x.shape[1]
    )


def linear_stein_diagonal(x, s):
    """``k_p(x_i, x_i) = |x_i|^2 |s_i|^2 + 2 s_i . x_i + d`` for each particle."""
    return (
        np.einsum("ij,ij->i", x, x) * np.einsum("ij,ij->i", s, s)
        + 2.0 * np.einsum("ij,ij->i", s, x)
        + x.shape[1]
    )


def radial_diagonal(kind, beta, sT, trace):
    r""":math:`k_p(x_i, x_i)`: Gaussian :math:`|s_i|^2 + \operatorname{tr} L`, IMQ
    :math:`|s_i|^2 + 2 \beta \operatorname{tr} L` (:math:`\rho = a = b = 0`).

    ``sT`` is ``(d, n)``; float64 out.
    """
    c = trace if kind == GAUSSIAN else 2.0 * beta * trace
    return np.einsum("ki,ki->i", sT, sT, dtype=np.float64) + c
