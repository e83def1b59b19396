r"""Device functions: the pair quantities and the Stein-kernel value of every kind.

The GPU's copy of :mod:`ksdnumba.kernels._cpu._profiles`, and the one place a
kernel's profile lives on the GPU: every Stein-matrix kernel (products, forms,
blocks, columns, thinning) computes an entry as
``value(*terms(...), trace, c1, c2, beta)``.

Points and scores are in the eigenbasis of the metric :math:`L` (eigenvalues
:math:`\lambda_k`, the ``weights``); with :math:`u = x_i - x_j`,

.. math::

    \rho = \sum_k \lambda_k u_k^2, \quad a = \sum_k \lambda_k^2 u_k^2, \quad
    b = \sum_k \lambda_k (s_i - s_j)_k u_k, \quad S = s_i \cdot s_j,

and for the base kernel :math:`k = \phi(\rho)`,
:math:`k_p = \phi S - 2 \phi' (b + \operatorname{tr} L) - 4 \phi'' a`:
Gaussian :math:`\phi = e^{-\rho/2}`, :math:`k_p = \phi (S + b + \operatorname{tr} L - a)`;
IMQ :math:`\phi = (1 + \rho)^{-\beta}`, :math:`w = 1 / (1 + \rho)`,
:math:`k_p = \phi (S + w (c_1 (\operatorname{tr} L + b) - c_2 a w))` with
:math:`c_1 = 2 \beta`, :math:`c_2 = 4 \beta (\beta + 1)` (for
:math:`\beta = 1/2` a square root, :math:`\phi (S + w (\operatorname{tr} L + b - 3 a w))`).
The linear kernel has no metric: its four quantities are
:math:`x_i \cdot x_j`, :math:`s_i \cdot x_i`, :math:`s_j \cdot x_j` and
:math:`S`, and :math:`k_p = (x_i \cdot x_j) S + s_i \cdot x_i + s_j \cdot x_j + d`.

The functions are built per (kind, ``d``, dtype): ``d`` a compile-time
constant, so that the loops over the coordinates unroll, and every constant of
a float32 function a float32.
"""

import math

import numpy as np

from .._kinds import GAUSSIAN, IMQ, LINEAR
from . import _launch


def tile_terms(kind, d, dtype):
    r"""Device function ``terms(xi, si, wl, ps, jj) -> (rho, a, b, S)``.

    The thread's point ``xi`` and score ``si`` (arrays of ``d``) against row
    ``jj`` of a partner tile ``ps`` (coordinates, then the score from column
    ``d``); ``wl`` holds the metric's eigenvalues. In the dtype of the arrays.
    """
    key = ("tile_terms", int(kind), d, np.dtype(dtype).name)
    return _launch.cached(key, lambda: _build_tile_terms(kind, d, dtype))


def _build_tile_terms(kind, d, dtype):
    D = d
    IS_LINEAR = kind == LINEAR
    zero = np.dtype(dtype).type(0.0)

    @_launch.device(dtype)
    def terms(xi, si, wl, ps, jj):
        rho = zero
        a = zero
        b = zero
        S = zero
        for k in range(D):
            xj = ps[jj, k]
            sj = ps[jj, D + k]
            if IS_LINEAR:
                rho += xi[k] * xj
                a += si[k] * xi[k]
                b += sj * xj
            else:
                u = xi[k] - xj
                lu = wl[k] * u
                rho += lu * u
                a += lu * lu
                b += (si[k] - sj) * lu
            S += si[k] * sj
        return rho, a, b, S

    return terms


def column_terms(kind, d, dtype):
    r"""Device function ``terms(xT, sT, wl, i, c) -> (rho, a, b, S)`` of points ``i`` and ``c``.

    Points and scores are read from ``(d, n)`` arrays, so that the threads of a
    warp, each with its own ``i`` and a common ``c``, read consecutive addresses.
    """
    key = ("column_terms", int(kind), d, np.dtype(dtype).name)
    return _launch.cached(key, lambda: _build_column_terms(kind, d, dtype))


def _build_column_terms(kind, d, dtype):
    D = d
    IS_LINEAR = kind == LINEAR
    zero = np.dtype(dtype).type(0.0)

    @_launch.device(dtype)
    def terms(xT, sT, wl, i, c):
        rho = zero
        a = zero
        b = zero
        S = zero
        for k in range(D):
            xi = xT[k, i]
            si = sT[k, i]
            xc = xT[k, c]
            sc = sT[k, c]
            if IS_LINEAR:
                rho += xi * xc
                a += si * xi
                b += sc * xc
            else:
                u = xi - xc
                lu = wl[k] * u
                rho += lu * u
                a += lu * lu
                b += (si - sc) * lu
            S += si * sc
        return rho, a, b, S

    return terms


def stein_value(kind, half, d, dtype):
    r"""Device function ``value(rho, a, b, S, trace, c1, c2, beta) -> k_p``.

    ``half``: IMQ with beta = 1/2, through a square root instead of a power.
    ``c1``, ``c2``: :math:`2 \beta` and :math:`4 \beta (\beta + 1)`, computed once
    per launch. All arguments in the dtype of the function.
    """
    key = ("stein_value", int(kind), bool(half), d, np.dtype(dtype).name)
    return _launch.cached(key, lambda: _build_stein_value(kind, half, d, dtype))


def _build_stein_value(kind, half, d, dtype):
    typ = np.dtype(dtype).type
    FAST = typ is np.float32
    IS_GAUSSIAN = kind == GAUSSIAN
    IS_IMQ = kind == IMQ
    HALF = bool(half)
    if kind not in (GAUSSIAN, IMQ, LINEAR):
        raise ValueError(f"no CUDA profile for kernel kind {kind}")
    one = typ(1.0)
    three = typ(3.0)
    neg_half = typ(-0.5)
    neg_half_log2e = typ(-0.5 * 1.4426950408889634)  # exp(-rho / 2) = 2^(that rho)
    dd = typ(d)

    @_launch.device(dtype)
    def value(rho, a, b, S, trace, c1, c2, beta):
        if IS_GAUSSIAN:
            if FAST:
                p = math.exp2(neg_half_log2e * rho)
            else:
                p = math.exp(neg_half * rho)
            return p * (S + b + trace - a)
        elif IS_IMQ:
            w = one / (one + rho)
            if HALF:
                return math.sqrt(w) * (S + w * ((trace + b) - three * a * w))
            p = math.pow(w, beta)
            return p * (S + w * (c1 * (trace + b) - c2 * a * w))
        else:
            return rho * S + (a + b) + dd  # symmetric in i and j to the bit

    return value
