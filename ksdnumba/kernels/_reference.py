"""Dense NumPy Stein kernels: the test oracle.

Every function here builds ``n x n`` (or ``n x n x d``) arrays, so it is only meant
for small ``n``. It is written for clarity, straight from the formulas, and the
compiled backends are checked against it.

Notation: ``x`` holds the particles, ``s`` their scores (both ``(n, d)``),
``u_ij = x_i - x_j``, ``r2_ij = |u_ij|^2``, ``S_ij = s_i . s_j`` and
``D_ij = s_i - s_j``.
"""

import numpy as np


def _pairs(x, s):
    u = x[:, None, :] - x[None, :, :]
    r2 = np.einsum("ijk,ijk->ij", u, u)
    S = s @ s.T
    D = s[:, None, :] - s[None, :, :]
    Du = np.einsum("ijk,ijk->ij", D, u)
    return u, r2, S, D, Du


def gaussian_stein_matrix(x, s, bw):
    r"""Gaussian Stein kernel matrix ``K[i, j] = k_p(x_i, x_j)``.

    .. math::

        k_p(x, y) = \phi \left[ s(x) \cdot s(y) + \frac{(s(x) - s(y)) \cdot u}{h}
                    + \frac{d}{h} - \frac{|u|^2}{h^2} \right],
        \quad \phi = e^{-|u|^2 / (2h)}, \quad u = x - y,

    with ``h = bw``.
    """
    d = x.shape[1]
    _, r2, S, _, Du = _pairs(x, s)
    phi = np.exp(-r2 / (2 * bw))
    return phi * (S + Du / bw + d / bw - r2 / bw**2)


def gaussian_stein_sums(x, s, bw):
    r"""Sum of the Gaussian Stein kernel and its two partial gradients.

    Returns
    -------
    total : float
        :math:`\sum_{i,j} k_p(x_i, x_j)`.
    gx : ndarray of shape (n, d)
        Row ``i`` is :math:`\sum_j \nabla_x k_p(x_i, x_j)` with the scores held
        fixed.
    gs : ndarray of shape (n, d)
        Row ``i`` is :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)
        = \sum_j \phi_{ij} (s_j + u_{ij} / h)`.
    """
    d = x.shape[1]
    u, r2, S, D, Du = _pairs(x, s)
    phi = np.exp(-r2 / (2 * bw))
    total = np.sum(phi * (S + Du / bw + d / bw - r2 / bw**2))
    coef = phi * (S / bw + Du / bw**2 + (d + 2) / bw**2 - r2 / bw**3)
    gx = np.einsum("ij,ijk->ik", phi, D) / bw - np.einsum("ij,ijk->ik", coef, u)
    gs = phi @ s + np.einsum("ij,ijk->ik", phi, u) / bw
    return total, gx, gs


def ksd_v(x, s, bw):
    """KSD^2 V-statistic ``mean_{i,j} k_p(x_i, x_j)`` with the Gaussian kernel."""
    return float(np.mean(gaussian_stein_matrix(x, s, bw)))


def ksd_u(x, s, bw):
    """KSD^2 U-statistic: the mean of the off-diagonal Stein kernel entries."""
    n = x.shape[0]
    if n < 2:
        raise ValueError("the U-statistic needs at least 2 particles")
    K = gaussian_stein_matrix(x, s, bw)
    return float((K.sum() - np.trace(K)) / (n * (n - 1)))


def ksd_v_grad(x, target, bw):
    """Gradient of the V-statistic in ``x``, chain rule through ``target.hvp``."""
    n = x.shape[0]
    s = target.score(x)
    _, gx, gs = gaussian_stein_sums(x, s, bw)
    c = 2.0 / n**2
    return c * gx + target.hvp(x, c * gs)
