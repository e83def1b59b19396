r"""Stein-kernel values from four pair quantities: the one place a kernel's profile lives.

Every base kernel of the package is a function of a squared distance measured
by a symmetric positive definite matrix :math:`L` (for the package's radial
kernels :math:`L = I / \mathrm{bw}`; for a preconditioner :math:`M`,
:math:`L = M^{-1}`). The caller rotates points and scores into :math:`L`'s
eigenbasis and passes its eigenvalues :math:`\lambda_k` as ``weights``; then,
with :math:`u = x_i - x_j`,

.. math::

    \rho = \sum_k \lambda_k u_k^2, \quad a = \sum_k \lambda_k^2 u_k^2, \quad
    b = \sum_k \lambda_k (s_i - s_j)_k u_k, \quad S = s_i \cdot s_j,

and for the base kernel :math:`k = \phi(\rho)` the Stein kernel is

.. math::

    k_p = \phi(\rho)\, S - 2 \phi'(\rho) (b + \operatorname{tr} L) - 4 \phi''(\rho)\, a.

Gaussian :math:`\phi = e^{-\rho/2}`: :math:`k_p = \phi (S + b + \operatorname{tr} L - a)`.
IMQ :math:`\phi = (1 + \rho)^{-\beta}`, with :math:`w = 1 / (1 + \rho)`:
:math:`k_p = \phi (S + 2 \beta w (b + \operatorname{tr} L) - 4 \beta (\beta + 1) a w^2)`
(for :math:`\beta = 1/2`, :math:`\phi (S + w (\operatorname{tr} L + b - 3 a w))`).

:func:`profile_row` is the generic path of every Stein-matrix operation
(columns, tiles with a non-isotropic :math:`L`, small dimensions, kernels
without a fused row): a new radial kernel needs a branch here and a line in
:mod:`ksdnumba.kernels._kinds`. The fused rows of :mod:`._matrix` and the
descent sums are faster copies for the Gaussian and IMQ kernels.
"""

import numpy as np
from numba import njit

from .._kinds import GAUSSIAN, IMQ
from ._vecmath import _KERNEL, _exp_scalar, _log_atleast1, _wide_vectors


@njit(**_KERNEL)
def pair_terms(xT, sT, weights, c, i0, m, acc):
    r"""``acc[0:4, :m]`` = :math:`\rho, a, b, S` of points ``i0 .. i0 + m - 1`` with point ``c``.

    ``xT``, ``sT``: ``(d, n)`` points and scores in :math:`L`'s eigenbasis;
    ``weights``: its eigenvalues. ``b`` is :math:`(s_i - s_c)^\top L (x_i - x_c)`.
    """
    _wide_vectors()
    d = xT.shape[0]
    rho, a2, b, S = acc[0], acc[1], acc[2], acc[3]
    for ii in range(m):
        rho[ii] = 0.0
        a2[ii] = 0.0
        b[ii] = 0.0
        S[ii] = 0.0
    # Four coordinates per pass: the four sums are loaded and stored once per
    # four coordinates instead of once per coordinate (the loop was bound by
    # those loads and stores).
    k4 = d - d % 4
    for k in range(0, k4, 4):
        l0, l1, l2, l3 = weights[k], weights[k + 1], weights[k + 2], weights[k + 3]
        y0, y1, y2, y3 = xT[k, c], xT[k + 1, c], xT[k + 2, c], xT[k + 3, c]
        t0, t1, t2, t3 = sT[k, c], sT[k + 1, c], sT[k + 2, c], sT[k + 3, c]
        x0 = xT[k, i0 : i0 + m]
        x1 = xT[k + 1, i0 : i0 + m]
        x2 = xT[k + 2, i0 : i0 + m]
        x3 = xT[k + 3, i0 : i0 + m]
        s0 = sT[k, i0 : i0 + m]
        s1 = sT[k + 1, i0 : i0 + m]
        s2 = sT[k + 2, i0 : i0 + m]
        s3 = sT[k + 3, i0 : i0 + m]
        for ii in range(m):
            u0 = x0[ii] - y0
            u1 = x1[ii] - y1
            u2 = x2[ii] - y2
            u3 = x3[ii] - y3
            v0 = l0 * u0
            v1 = l1 * u1
            v2 = l2 * u2
            v3 = l3 * u3
            rho[ii] += (v0 * u0 + v1 * u1) + (v2 * u2 + v3 * u3)
            a2[ii] += (v0 * v0 + v1 * v1) + (v2 * v2 + v3 * v3)
            b[ii] += ((s0[ii] - t0) * v0 + (s1[ii] - t1) * v1) + (
                (s2[ii] - t2) * v2 + (s3[ii] - t3) * v3
            )
            S[ii] += (s0[ii] * t0 + s1[ii] * t1) + (s2[ii] * t2 + s3[ii] * t3)
    for k in range(k4, d):
        lk = weights[k]
        yk = xT[k, c]
        tk = sT[k, c]
        xk = xT[k, i0 : i0 + m]
        sk = sT[k, i0 : i0 + m]
        for ii in range(m):
            lu = lk * (xk[ii] - yk)
            rho[ii] += lu * (xk[ii] - yk)
            a2[ii] += lu * lu
            b[ii] += (sk[ii] - tk) * lu
            S[ii] += sk[ii] * tk


@njit(**_KERNEL)
def profile_row(kind, beta, m, rho, a2, b, trace, S, out, scratch):
    r"""``out[:m]`` = :math:`k_p` from :math:`\rho, a, b, S` (see the module's docstring).

    ``scratch`` is a float64 ``(3, >= m)`` array (the general IMQ power).
    """
    _wide_vectors()
    if kind == GAUSSIAN:
        for ii in range(m):
            p = _exp_scalar(-0.5 * rho[ii])
            out[ii] = p * (S[ii] + b[ii] + trace - a2[ii])
    elif kind == IMQ and beta == 0.5:  # a square root instead of a log and an exp
        for ii in range(m):
            w = 1.0 / (1.0 + rho[ii])
            p = np.sqrt(w)
            out[ii] = p * (S[ii] + w * ((trace + b[ii]) - 3.0 * a2[ii] * w))
    elif kind == IMQ:
        q = scratch[0]
        lq = scratch[1]
        for ii in range(m):
            q[ii] = 1.0 + rho[ii]
        _log_atleast1(q, lq, scratch[2].view(np.int64), m)
        c1 = 2.0 * beta
        c2 = 4.0 * beta * (beta + 1.0)
        for ii in range(m):
            w = 1.0 / q[ii]
            p = _exp_scalar(-beta * lq[ii])
            out[ii] = p * (S[ii] + w * (c1 * (trace + b[ii]) - c2 * a2[ii] * w))
    else:
        for ii in range(m):
            out[ii] = np.nan
