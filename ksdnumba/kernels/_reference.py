r"""Dense NumPy Stein kernels: the test oracle.

Every function here builds ``n x n`` (or ``n x n x d``) arrays, so it is only meant
for small ``n``. It is written for clarity, straight from the formulas, and the
compiled backends are checked against it.

Notation: ``u_ij = x_i - x_j``, ``r2_ij = |u_ij|^2``, ``S_ij = s_i . s_j`` and
``D_ij = s_i - s_j``; ``h = bw``. A radial kernel is :math:`k = \phi(r^2)`;
its *profile* returns :math:`\phi, \phi', \phi'', \phi'''` (derivatives in
:math:`r^2`).
"""

import numpy as np

KERNELS = ("gaussian", "imq", "linear")


def _pairs(x, s):
    u = x[:, None, :] - x[None, :, :]
    r2 = np.einsum("ijk,ijk->ij", u, u)
    S = s @ s.T
    D = s[:, None, :] - s[None, :, :]
    Du = np.einsum("ijk,ijk->ij", D, u)
    return u, r2, S, D, Du


def gaussian_profile(r2, bw):
    r""":math:`\phi = e^{-r^2 / (2h)}` and its derivatives, :math:`(-1 / (2h))^k \phi`."""
    phi = np.exp(-r2 / (2 * bw))
    c = -1.0 / (2 * bw)
    return phi, c * phi, c**2 * phi, c**3 * phi


def imq_profile(r2, bw, beta):
    r""":math:`\phi = (1 + r^2 / h)^{-\beta}` and its derivatives."""
    q = 1.0 + r2 / bw
    return (
        q**-beta,
        -beta / bw * q ** (-beta - 1),
        beta * (beta + 1) / bw**2 * q ** (-beta - 2),
        -beta * (beta + 1) * (beta + 2) / bw**3 * q ** (-beta - 3),
    )


def _profile(kernel, r2, bw, beta):
    if kernel == "gaussian":
        return gaussian_profile(r2, bw)
    if kernel == "imq":
        return imq_profile(r2, bw, beta)
    raise ValueError(f"{kernel!r} is not a radial kernel")


def stein_matrix(kernel, x, s, bw=1.0, beta=0.5):
    r"""Stein kernel matrix ``K[i, j] = k_p(x_i, x_j)``.

    Radial kernels: :math:`k_p = \phi S - 2 \phi' (D \cdot u + d) - 4 r^2 \phi''`.
    Linear kernel: :math:`k_p = (x \cdot y) S + s(x) \cdot x + s(y) \cdot y + d`.
    """
    d = x.shape[1]
    if kernel == "linear":
        sx = np.einsum("ij,ij->i", s, x)
        return (x @ x.T) * (s @ s.T) + sx[:, None] + sx[None, :] + d
    _, r2, S, _, Du = _pairs(x, s)
    phi, phi1, phi2, _ = _profile(kernel, r2, bw, beta)
    return phi * S - 2 * phi1 * (Du + d) - 4 * r2 * phi2


def stein_sums(kernel, x, s, bw=1.0, beta=0.5):
    r"""Sum of the Stein kernel and its two partial gradients.

    Returns
    -------
    total : float
        :math:`\sum_{i,j} k_p(x_i, x_j)`.
    gx : ndarray of shape (n, d)
        Row ``i`` is :math:`\sum_j \nabla_x k_p(x_i, x_j)` with the scores held
        fixed.
    gs : ndarray of shape (n, d)
        Row ``i`` is :math:`\sum_j \partial k_p(x_i, x_j) / \partial s(x_i)`.
    """
    d = x.shape[1]
    total = stein_matrix(kernel, x, s, bw, beta).sum()
    if kernel == "linear":
        n = x.shape[0]
        # grad_x k_p(x, y) = y S + s(x); d k_p / d s(x) = (x . y) s(y) + x
        gx = (s @ s.T) @ x + n * s
        gs = (x @ x.T) @ s + n * x
        return total, gx, gs
    u, r2, S, D, Du = _pairs(x, s)
    phi, phi1, phi2, phi3 = _profile(kernel, r2, bw, beta)
    coef_u = 2 * phi1 * S - 4 * phi2 * (Du + d + 2) - 8 * r2 * phi3
    gx = np.einsum("ij,ijk->ik", coef_u, u) - 2 * np.einsum("ij,ijk->ik", phi1, D)
    gs = phi @ s - 2 * np.einsum("ij,ijk->ik", phi1, u)
    return total, gx, gs


def ksd_v(kernel, x, s, bw=1.0, beta=0.5):
    """KSD^2 V-statistic, ``mean_{i,j} k_p(x_i, x_j)``."""
    return float(np.mean(stein_matrix(kernel, x, s, bw, beta)))


def ksd_u(kernel, x, s, bw=1.0, beta=0.5):
    """KSD^2 U-statistic: the mean of the off-diagonal Stein kernel entries."""
    n = x.shape[0]
    K = stein_matrix(kernel, x, s, bw, beta)
    return float((K.sum() - np.trace(K)) / (n * (n - 1)))


def ksd_v_grad(kernel, x, target, bw=1.0, beta=0.5):
    """Gradient of the V-statistic in ``x``, chain rule through ``target.hvp``."""
    n = x.shape[0]
    s = target.score(x)
    _, gx, gs = stein_sums(kernel, x, s, bw, beta)
    c = 2.0 / n**2
    return c * gx + target.hvp(x, c * gs)


# --------------------------------------------------------------------------- contenders
# The base Gaussian kernel k(x, y) = exp(-|x - y|^2 / (2 h)), for SVGD and MMD descent.


def gaussian_kernel_matrix(x, y, bw):
    """``K[i, j] = k(x_i, y_j)`` and the differences ``u[i, j] = x_i - y_j``."""
    u = x[:, None, :] - y[None, :, :]
    return np.exp(-np.einsum("ijk,ijk->ij", u, u) / (2 * bw)), u


def gaussian_kernel_sums(x, y, bw):
    r""":math:`\sum_{i,j} k(x_i, y_j)` and rows :math:`\sum_j k(x_i, y_j) (x_i - y_j)`."""
    K, u = gaussian_kernel_matrix(x, y, bw)
    return K.sum(), np.einsum("ij,ijk->ik", K, u)


def svgd_direction(x, s, bw):
    r"""SVGD direction, :math:`\phi_i = \frac1n \sum_j k(x_j, x_i) s_j + \nabla_{x_j} k(x_j, x_i)`.

    With ``K[j, i] = k(x_j, x_i)`` and :math:`\nabla_{x_j} k(x_j, x_i) = -(x_j - x_i) k / h`.
    """
    n = x.shape[0]
    K, u = gaussian_kernel_matrix(x, x, bw)  # u[j, i] = x_j - x_i
    drift = K.T @ s
    repulsion = -np.einsum("ji,jik->ik", K, u) / bw
    return (drift + repulsion) / n


def mmd2(x, y, bw):
    r"""Squared MMD with means.

    :math:`\overline{k(x, x)} - 2 \overline{k(x, y)} + \overline{k(y, y)}`, each the
    mean of the kernel over all pairs.
    """
    return (
        gaussian_kernel_matrix(x, x, bw)[0].mean()
        - 2 * gaussian_kernel_matrix(x, y, bw)[0].mean()
        + gaussian_kernel_matrix(y, y, bw)[0].mean()
    )


def mmd2_grad(x, y, bw):
    r"""Gradient of :func:`mmd2` in ``x``.

    :math:`\nabla_{x_i} = \frac{2}{n^2} \sum_j \nabla_x k(x_i, x_j)
    - \frac{2}{n m} \sum_j \nabla_x k(x_i, y_j)`, with
    :math:`\nabla_x k(x, y) = -(x - y) k(x, y) / h`.
    """
    n, m = x.shape[0], y.shape[0]
    Kxx, uxx = gaussian_kernel_matrix(x, x, bw)
    Kxy, uxy = gaussian_kernel_matrix(x, y, bw)
    grad_xx = -np.einsum("ij,ijk->ik", Kxx, uxx) / bw
    grad_xy = -np.einsum("ij,ijk->ik", Kxy, uxy) / bw
    return 2 / n**2 * grad_xx - 2 / (n * m) * grad_xy


# --------------------------------------------------------------------------- thinning
# The preconditioned kernels of Stein thinning (Riabiz et al. 2022): a symmetric
# positive definite L acts on the difference u = x - y, straight from the formulas.


def preconditioned_base_kernel(kernel, x, y, L):
    r"""Base kernel ``k(x_i, y_j)``: IMQ :math:`(1 + u^\top L u)^{-1/2}` or Gaussian
    :math:`e^{-u^\top L u / 2}`."""
    u = x[:, None, :] - y[None, :, :]
    rho = np.einsum("ijk,kl,ijl->ij", u, L, u)
    if kernel == "imq":
        return (1.0 + rho) ** -0.5
    if kernel == "gaussian":
        return np.exp(-0.5 * rho)
    raise ValueError(f"no preconditioned kernel {kernel!r}")


def preconditioned_stein_matrix(kernel, x, s, L, y=None, sy=None):
    r"""``K[i, j] = k_p(x_i, y_j)`` for a preconditioned kernel (``y = x`` by default).

    With :math:`u = x - y`, :math:`q = 1 + u^\top L u`:

    - IMQ: :math:`k_p = (s_x \cdot s_y) q^{-1/2} + (\operatorname{tr} L +
      (s_x - s_y)^\top L u) q^{-3/2} - 3 u^\top L^2 u\, q^{-5/2}`;
    - Gaussian: :math:`k_p = k\,(s_x \cdot s_y + (s_x - s_y)^\top L u
      + \operatorname{tr} L - u^\top L^2 u)`, :math:`k = e^{-u^\top L u / 2}`.
    """
    if y is None:
        y, sy = x, s
    u = x[:, None, :] - y[None, :, :]
    Lu = np.einsum("kl,ijl->ijk", L, u)
    rho = np.einsum("ijk,ijk->ij", u, Lu)
    a = np.einsum("ijk,ijk->ij", Lu, Lu)
    b = np.einsum("ijk,ijk->ij", s[:, None, :] - sy[None, :, :], Lu)
    S = s @ sy.T
    tr = np.trace(L)
    if kernel == "imq":
        q = 1.0 + rho
        return S * q**-0.5 + (tr + b) * q**-1.5 - 3.0 * a * q**-2.5
    if kernel == "gaussian":
        return np.exp(-0.5 * rho) * (S + b + tr - a)
    raise ValueError(f"no preconditioned kernel {kernel!r}")


def metric_stein_matrix(kernel, x, s, L, beta=0.5, y=None, sy=None):
    r"""``K[i, j] = k_p(x_i, y_j)`` for a base kernel :math:`\phi(u^\top L u)`.

    ``y = x`` by default.

    Gaussian :math:`\phi(\rho) = e^{-\rho / 2}`, IMQ :math:`(1 + \rho)^{-\beta}`;
    with :math:`a = u^\top L^2 u`, :math:`b = (s_x - s_y)^\top L u`,

    .. math::

        k_p = \phi S - 2 \phi' (b + \operatorname{tr} L) - 4 \phi'' a,

    derivatives in :math:`\rho`. ``L = I / bw`` gives :func:`stein_matrix`;
    ``beta = 1/2`` gives :func:`preconditioned_stein_matrix`. The linear kernel
    has no metric: :func:`stein_matrix`.
    """
    if y is None:
        y, sy = x, s
    u = x[:, None, :] - y[None, :, :]
    Lu = np.einsum("kl,ijl->ijk", L, u)
    rho = np.einsum("ijk,ijk->ij", u, Lu)
    a = np.einsum("ijk,ijk->ij", Lu, Lu)
    b = np.einsum("ijk,ijk->ij", s[:, None, :] - sy[None, :, :], Lu)
    S = s @ sy.T
    tr = np.trace(L)
    if kernel == "gaussian":
        phi = np.exp(-0.5 * rho)
        phi1, phi2 = -0.5 * phi, 0.25 * phi
    elif kernel == "imq":
        q = 1.0 + rho
        phi = q**-beta
        phi1 = -beta * q ** (-beta - 1)
        phi2 = beta * (beta + 1) * q ** (-beta - 2)
    else:
        raise ValueError(f"no kernel {kernel!r} with a metric")
    return phi * S - 2 * phi1 * (b + tr) - 4 * phi2 * a


def greedy_thinning(K, m, lap=None, logp=None, lam=0.0):
    r"""Greedy thinning on a dense Stein matrix ``K``: ``(indices, totals)``.

    Step ``t`` (1-based) picks :math:`\operatorname{argmin}_i K_{ii} + 2 \sum_{s<t}
    K_{i, i_s} + \Delta_i - \lambda t \log p_i` (``np.argmin``: the lowest index
    among ties); ``totals[t-1]`` is the sum of ``K`` over the first ``t`` picks.
    """
    running = np.diag(K).copy()
    idx = []
    for t in range(1, m + 1):
        value = running.copy()
        if lap is not None:
            value = value + lap - lam * t * logp
        i = int(np.argmin(value))
        idx.append(i)
        running += 2.0 * K[:, i]
    idx = np.array(idx, dtype=np.int64)
    totals = np.array([K[np.ix_(idx[:t], idx[:t])].sum() for t in range(1, m + 1)])
    return idx, totals


def quadratic_forms(kernel, x, s, W, bw=1.0, beta=0.5):
    """``w_b^T H w_b`` for each column of ``W``, with the dense Stein matrix ``H``."""
    H = stein_matrix(kernel, x, s, bw, beta)
    return np.einsum("ib,ij,jb->b", W, H, W)
