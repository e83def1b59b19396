"""Measures of sample quality."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._bandwidth import median_bandwidth, resolve_bw
from ._validation import (
    check_option,
    check_particles,
    check_radius,
    check_samples,
    check_square_matrices,
)
from .kernels._kinds import KINDS
from .objective import _particles_dtype

__all__ = ["amari_distance", "histogram_kl", "ksd", "median_bandwidth", "mode_occupancy"]

STATISTICS = ("v", "u")


def ksd(
    x: ArrayLike,
    target: Any,
    *,
    kernel: str = "gaussian",
    bw: float | str = 1.0,
    beta: float = 0.5,
    statistic: str = "v",
    squared: bool = True,
    backend: str = "auto",
) -> float:
    r"""Kernel Stein Discrepancy between particles and a target: squared by default.

    .. math::

        \mathrm{KSD}^2_V = \frac{1}{n^2} \sum_{i, j} k_p(x_i, x_j), \qquad
        \mathrm{KSD}^2_U = \frac{1}{n (n - 1)} \sum_{i \ne j} k_p(x_i, x_j).

    The package's one convention: a name ``ksd`` is the discrepancy itself, a
    name ``ksd2`` its square; this function computes the discrepancy and
    returns its square unless ``squared=False`` (the squared V-statistic is
    the objective of KSD descent, and both estimators are estimates of the
    square).

    The V-statistic (the objective of KSD descent) is always >= 0 but biased
    upwards by the diagonal terms, of order ``1 / n``. The U-statistic is an
    unbiased estimate of the population KSD^2 when the particles are independent
    samples; it can be negative, and it is the better choice to compare samples
    of different sizes or to test goodness of fit.

    Parameters
    ----------
    x : array_like of shape (n, d)
        Particles (at least 2 for the U-statistic).
    target : object with ``score``, or callable
        The target distribution (only its score is used).
    kernel : {"gaussian", "imq", "linear"}
        Base kernel of the Stein kernel (see :func:`ksd_and_grad`).
    bw : float or "median"
        Bandwidth: squared length scale of the kernel, > 0, or ``"median"`` for
        :func:`median_bandwidth` of ``x``. Ignored by the linear kernel.
    beta : float
        Exponent of the IMQ kernel, in (0, 1).
    statistic : {"v", "u"}
        Which estimator to return.
    squared : bool
        Return :math:`\mathrm{KSD}^2` (default) or, with False, its square root
        (V-statistic only: the U-statistic can be negative).
    backend : {"auto", "cpu", "cuda"}
        Where the pair sums run: ``"cpu"``, ``"cuda"`` or ``"auto"``, the
        package's one rule (see :class:`SteinMatrix`).

    Returns
    -------
    float
        The squared KSD, or the KSD with ``squared=False``.

    See Also
    --------
    ksd_and_grad : the V-statistic with its gradient.

    References
    ----------
    .. [1] Q. Liu, J. Lee, M. Jordan. "A Kernelized Stein Discrepancy for
       Goodness-of-fit Tests." ICML 2016.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> target = kn.Gaussian(np.zeros(1), 1.0)
    >>> rng = np.random.default_rng(0)
    >>> good = target.sample(500, rng=rng)
    >>> bad = good + 1.0
    >>> kn.ksd(good, target) < kn.ksd(bad, target)
    True
    >>> bool(np.isclose(kn.ksd(good, target, squared=False) ** 2, kn.ksd(good, target)))
    True
    """
    statistic = check_option(statistic, "statistic", STATISTICS)
    if not isinstance(squared, (bool, np.bool_)):
        raise TypeError(f"squared must be True or False, got {squared!r}")
    if statistic == "u" and not squared:
        raise ValueError(
            "the U-statistic estimates KSD^2 and can be negative, so it has no square "
            "root: pass squared=True, or statistic='v'"
        )
    x = check_particles(x, "x", _particles_dtype(x))
    if statistic == "u" and x.shape[0] < 2:
        raise ValueError("the U-statistic needs at least 2 particles, got 1")
    from .stein_matrix import SteinMatrix  # here: it imports scipy.sparse

    kernel = check_option(kernel, "kernel", tuple(KINDS))
    # The linear kernel has no bandwidth: not resolved, not checked.
    bw = None if kernel == "linear" else resolve_bw(bw, x)
    H = SteinMatrix(x, target, kernel=kernel, bw=bw, beta=beta, backend=backend)
    n = x.shape[0]
    total = H.sum()
    if statistic == "u":
        return float((total - H.diagonal().sum()) / (n * (n - 1)))
    value = float(total / n**2)
    return value if squared else float(np.sqrt(max(value, 0.0)))


def _one_dimensional(values, name):
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D data, of shape (n,) or (n, 1), got shape {arr.shape}")
    return check_particles(arr[:, None], name)[:, 0]


def histogram_kl(
    x: ArrayLike, reference: ArrayLike, *, bins: int | ArrayLike | None = None
) -> float:
    r"""Kullback-Leibler divergence between the histograms of 1-D particles and samples.

    With :math:`P_b` the fraction of the particles and :math:`Q_b` the fraction
    of the reference samples that fall in bin :math:`b`,

    .. math::

        \mathrm{KL}(P \,\|\, Q) = \sum_{b:\ P_b > 0} P_b \log \frac{P_b}{Q_b}
        \ \ge 0.

    A crude but common measure of how well a few particles spread like the
    target (Korba et al., 2021, Fig. 4), and one that, unlike the KSD, does not
    depend on a kernel. It is 0 when the particles fill the bins in the
    proportions of the reference, and it is biased upwards for few particles
    (about :math:`(B - 1) / (2 n)` for :math:`n` exact samples in :math:`B` bins).

    Parameters
    ----------
    x : array_like of shape (n,) or (n, 1)
        Particles.
    reference : array_like of shape (m,) or (m, 1)
        Samples of the target, many more than the particles (thousands).
    bins : int or array_like or None
        An int :math:`B \ge 2` gives :math:`B` bins of equal mass under the
        reference (edges at its quantiles, so :math:`Q_b \approx 1/B` and no
        bin is empty). An array gives the edges, strictly increasing, at least
        3 of them. Either way the first and last bins extend to
        :math:`-\infty` and :math:`+\infty`, so that no particle is left out.
        Default: :math:`B = \max(2, \mathrm{round}(\sqrt n))`.

    Returns
    -------
    float
        The divergence; ``inf`` when a bin holds particles but no reference
        sample (possible only with explicit edges).

    Raises
    ------
    ValueError
        If ``x`` or ``reference`` is not finite 1-D data, ``bins`` is an int
        below 2 or edges that are not strictly increasing, or the reference's
        quantiles coincide (ties: give the edges).

    References
    ----------
    .. [1] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel Stein
       Discrepancy Descent." ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba import histogram_kl
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(size=10_000)
    >>> good = rng.normal(size=100)
    >>> bad = 0.2 * rng.normal(size=100)
    >>> bool(histogram_kl(good, reference) < histogram_kl(bad, reference))
    True
    """
    x = _one_dimensional(x, "x")
    reference = _one_dimensional(reference, "reference")
    if bins is None:
        bins = max(2, int(round(np.sqrt(x.shape[0]))))
    if isinstance(bins, numbers.Integral) and not isinstance(bins, (bool, np.bool_)):
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins}")
        edges = np.quantile(reference, np.linspace(0.0, 1.0, int(bins) + 1))
        if not np.all(np.diff(edges) > 0):
            raise ValueError(
                "the reference's quantiles coincide (tied samples); give the bin edges explicitly"
            )
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or edges.size < 3:
            raise ValueError(
                "bins must be an int >= 2 or a 1-D array of at least 3 edges, got "
                f"shape {edges.shape}"
            )
        if not (np.all(np.isfinite(edges)) and np.all(np.diff(edges) > 0)):
            raise ValueError("bin edges must be finite and strictly increasing")
    n_bins = edges.size - 1

    def fractions(v):
        # Open outer bins: searchsorted, then clip into the first and last bins.
        index = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, n_bins - 1)
        return np.bincount(index, minlength=n_bins) / v.shape[0]

    p, q = fractions(x), fractions(reference)
    held = p > 0
    if np.any(q[held] == 0):
        return float("inf")
    return float(np.sum(p[held] * np.log(p[held] / q[held])))


def mode_occupancy(
    x: ArrayLike, means: ArrayLike, *, radius: float | ArrayLike
) -> tuple[np.ndarray, int]:
    r"""Count the particles near each mode, and those near none.

    Particle :math:`x_i` is counted at mode :math:`k` when :math:`\mu_k` is its
    nearest mode and :math:`|x_i - \mu_k| < r_k`; otherwise it is
    *stranded*. A crude check of what a picture shows: whether every mode of a
    mixture holds particles, and how many are left between the modes (KSD
    descent's spurious stationary points).

    Parameters
    ----------
    x : array_like of shape (n, d)
        Particles.
    means : array_like of shape (K, d)
        The modes, e.g. ``target.means`` of a :class:`~ksdnumba.GaussianMixture`.
    radius : float or array_like of shape (K,)
        Distance :math:`r_k` to its nearest mode within which a particle
        counts, > 0: one for all modes, or one per mode. Three standard
        deviations of each component, ``3 * np.sqrt(target.covariances)`` for
        an isotropic mixture, is typical; with components of unequal spread a
        single radius would count a narrow mode's surroundings as the mode.

    Returns
    -------
    counts : ndarray of int, shape (K,)
        Number of particles at each mode.
    n_stranded : int
        Number of particles farther than `radius` from every mode, so that
        ``counts.sum() + n_stranded == n``.

    Raises
    ------
    ValueError
        If `x` or `means` is not a finite 2-D array, their dimensions differ,
        or `radius` is not positive and finite or has another length than
        `means`.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba import mode_occupancy
    >>> x = np.array([[-1.1, 0.0], [0.9, 0.1], [1.0, 0.0], [0.0, 0.0]])
    >>> counts, n_stranded = mode_occupancy(x, [[-1.0, 0.0], [1.0, 0.0]], radius=0.5)
    >>> counts.tolist(), n_stranded
    ([1, 2], 1)
    >>> mode_occupancy(x, [[-1.0, 0.0], [1.0, 0.0]], radius=[0.5, 0.05])[0].tolist()
    [1, 1]
    """
    x = check_particles(x, "x")
    means = check_samples(means, x, "means", "x")
    radius = check_radius(radius, means.shape[0])
    dist = np.linalg.norm(x[:, None, :] - means[None, :, :], axis=2)
    nearest = dist.argmin(axis=1)
    near = dist[np.arange(x.shape[0]), nearest] < radius[nearest]
    counts = np.bincount(nearest[near], minlength=means.shape[0])
    return counts, int(x.shape[0] - near.sum())


def amari_distance(W: ArrayLike, A: ArrayLike) -> float | np.ndarray:
    r"""Amari distance between an unmixing matrix and the inverse of a mixing matrix.

    With :math:`P = W A` (:math:`p \times p`),

    .. math::

        d(W, A) = \frac{1}{2p} \Big[ \sum_i \Big( \frac{\sum_j P_{ij}^2}
            {\max_j P_{ij}^2} - 1 \Big) + \sum_j \Big( \frac{\sum_i P_{ij}^2}
            {\max_i P_{ij}^2} - 1 \Big) \Big].

    It is 0 exactly when :math:`P` is a scaled permutation matrix, that is when
    `W` unmixes the sources of :math:`x = A s` up to their order and scale, the
    indeterminacy of ICA; it is at most :math:`p - 1`. This is the squared
    variant of Korba et al. (2021) (Amari et al. (1996) use absolute values).

    Parameters
    ----------
    W : array_like of shape (p, p) or (n, p, p)
        Unmixing matrix, or a stack of them (e.g. KSD descent's particles of a
        :class:`~ksdnumba.BayesianICA` reshaped with ``res.x.reshape(-1, p, p)``).
    A : array_like of shape (p, p)
        Mixing matrix.

    Returns
    -------
    float or ndarray of shape (n,)
        One distance per matrix of `W`.

    Raises
    ------
    ValueError
        If `W` or `A` is not a finite square matrix (stack), their sizes differ,
        or :math:`W A` has a row or column of zeros.

    References
    ----------
    .. [1] S. Amari, A. Cichocki, H. Yang. "A New Learning Algorithm for Blind
       Signal Separation." NeurIPS 1996.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba import amari_distance
    >>> A = np.array([[1.0, 2.0], [0.5, -1.0]])
    >>> swap = np.array([[0.0, 3.0], [-1.0, 0.0]])        # order and scale
    >>> print(round(amari_distance(swap @ np.linalg.inv(A), A), 12))
    0.0
    >>> amari_distance(np.eye(2), [[2.0, 1.0], [1.0, 2.0]])  # (4 rows and columns) (5/4 - 1) / 4
    0.25
    """
    W = check_square_matrices(W, "W")
    A = check_square_matrices(A, "A", allow_stack=False)
    p = A.shape[0]
    if W.shape[-1] != p:
        raise ValueError(f"W is {W.shape[-1]} x {W.shape[-1]} but A is {p} x {p}")
    P2 = np.square(W @ A)
    row_max, col_max = P2.max(axis=-1), P2.max(axis=-2)
    if np.any(row_max == 0) or np.any(col_max == 0):
        raise ValueError("W @ A has a row or column of zeros: W is singular")
    rows = (P2.sum(axis=-1) / row_max - 1.0).sum(axis=-1)
    cols = (P2.sum(axis=-2) / col_max - 1.0).sum(axis=-1)
    out = (rows + cols) / (2 * p)
    return float(out) if out.ndim == 0 else out
