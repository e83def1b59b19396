r"""Goodness-of-fit tests on the Stein matrix: the KSD test, KSDAgg, the relative test.

:func:`ksd_test` is written here; :func:`ksdagg` (the test aggregated over
bandwidths) and :func:`relative_ksd_test` (which of two models fits better) live
in private modules of their own and are re-exported.

The test asks whether a sample was drawn from a target known through its score.
Its statistic is :math:`n\, \mathrm{KSD}^2` and its null distribution is
approximated by a bootstrap whose every draw is a quadratic form
:math:`w^\top H w` of the Stein matrix :math:`H_{ij} = k_p(x_i, x_j)`; all draws
are accumulated together over tiles of :math:`H`
(:meth:`ksdnumba.SteinMatrix.quadratic_forms`), never forming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._bandwidth import resolve_bw
from ._ksdagg import KSDAggResult, ksdagg
from ._relative import RelativeKSDTestResult, relative_ksd_test
from ._result import Result
from ._validation import (
    check_beta,
    check_fraction,
    check_option,
    check_particles,
    check_positive_int,
    check_rng,
)
from .kernels._kinds import KINDS

__all__ = [
    "KSDAggResult",
    "KSDTestResult",
    "RelativeKSDTestResult",
    "ksd_test",
    "ksdagg",
    "relative_ksd_test",
]

TEST_KERNELS = tuple(KINDS)
BOOTSTRAPS = ("wild", "multinomial")
# Weights of at most this many float64 numbers are held at once (64 MiB); more
# draws are taken in batches, each a pass over the Stein matrix's tiles.
_MAX_WEIGHTS = 2**23


class KSDTestResult(Result):
    """Outcome of :func:`ksd_test`; fields are read as attributes or keys.

    Attributes
    ----------
    statistic : float
        :math:`n\\, \\mathrm{KSD}^2`: the V-statistic for the wild bootstrap, the
        U-statistic for the multinomial one.
    pvalue : float
        :math:`(1 + \\#\\{b : T_b \\ge T\\}) / (1 + B)`.
    null_distribution : ndarray of shape (n_resamples,)
        The bootstrap draws :math:`T_b`, on the scale of ``statistic``.
    reject : bool
        ``pvalue <= alpha``, a convenience: the sample is judged not to come
        from the target at level ``alpha``.
    ksd2 : float
        The squared KSD itself, ``statistic / n``.
    kernel, bw, beta, n_resamples, alpha, bootstrap, backend
        The settings of the test (``bw`` resolved when ``"median"`` was asked).
    """


def _weights(bootstrap, n, count, rng):
    """``(n, count)`` float64 weights, one column per draw."""
    if bootstrap == "wild":
        return (2.0 * rng.integers(0, 2, size=(count, n)) - 1.0).T
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=count)
    return ((counts - 1.0) / n).T


def ksd_test(
    x: ArrayLike,
    target: Any,
    *,
    kernel: str = "imq",
    bw: float | str = 1.0,
    beta: float = 0.5,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    bootstrap: str = "wild",
    rng: Any = None,
    backend: str = "auto",
) -> KSDTestResult:
    r"""Kernel Stein discrepancy goodness-of-fit test of a sample against a target.

    Tests the null hypothesis that the rows of ``x`` are independent draws from
    the target :math:`p`, using only its score. With the Stein matrix
    :math:`H_{ij} = k_p(x_i, x_j)` (:func:`ksd` gives its definition):

    - ``bootstrap="wild"`` (Chwialkowski, Strathmann, Gretton 2016): statistic
      :math:`T = n V_n = \frac1n \sum_{i,j} H_{ij}`, draws
      :math:`T_b = \frac1n \sum_{i,j} \varepsilon_i \varepsilon_j H_{ij}` with
      Rademacher signs :math:`\varepsilon_i = \pm 1`;
    - ``bootstrap="multinomial"`` (Liu, Lee, Jordan 2016, after Huskova and
      Janssen 1993, Arcones and Gine 1992): statistic
      :math:`T = n U_n = \frac{1}{n - 1} \sum_{i \ne j} H_{ij}`, draws
      :math:`T_b = n \sum_{i \ne j} (w_i - \frac1n)(w_j - \frac1n) H_{ij}`,
      :math:`n w \sim \mathrm{Mult}(n; \frac1n, \dots, \frac1n)`.

    The p-value is :math:`(1 + \#\{b : T_b \ge T\}) / (1 + B)`, which never
    falls below :math:`1 / (1 + B)`. All draws are quadratic forms of
    :math:`H`, accumulated together over its ``256 x 256`` tiles (the upper
    triangle, :math:`H` being symmetric) by compiled code and BLAS: O(n (d + B))
    memory, O(n^2 (d + B)) time, never an ``n x n`` array.

    Parameters
    ----------
    x : array_like of shape (n, d)
        The sample, n >= 2.
    target : object with ``score``, or callable
        The target (only its score is used).
    kernel : {"imq", "gaussian", "linear"}
        Base kernel, with the package's conventions (``bw`` a squared length
        scale). The default, IMQ with ``beta = 1/2``, is the choice of Gorham and
        Mackey (2017): its KSD detects non-convergence where the Gaussian
        kernel's can miss it. The linear kernel only compares the first two
        moments.
    bw : float or "median"
        Bandwidth, > 0, or ``"median"`` for :func:`median_bandwidth` of ``x``.
    beta : float
        Exponent of the IMQ kernel, in (0, 1).
    n_resamples : int
        Number of bootstrap draws ``B``, >= 1.
    alpha : float
        Level of the test, in (0, 1).
    bootstrap : {"wild", "multinomial"}
        Which bootstrap (see above).
    rng : None, int, numpy.random.Generator, ...
        Source of the bootstrap's weights: anything
        :func:`numpy.random.default_rng` accepts.
    backend : {"auto", "cpu", "cuda"}
        Where the bootstrap's products run: ``"cpu"`` (numba and BLAS, threaded),
        ``"cuda"`` (an NVIDIA GPU through numba.cuda; needs numba-cuda and raises
        RuntimeError without a usable GPU) or ``"auto"``, the package's one rule
        (:class:`SteinMatrix`).

    Returns
    -------
    KSDTestResult
        ``statistic``, ``pvalue``, ``null_distribution``, ``reject``, ``ksd2``
        and the settings, with SciPy's names for resampling tests
        (:func:`scipy.stats.monte_carlo_test`).

    Raises
    ------
    ValueError
        If ``x`` is not a finite ``(n, d)`` array with n >= 2, an option is not
        one of its names, ``alpha`` is not in (0, 1), ``n_resamples < 1``, or
        the target's score is not finite.
    TypeError
        If ``target`` has no score, or an argument has the wrong type.

    See Also
    --------
    ksd : the squared KSD alone.
    stein_thinning : the same Stein kernels, to compress a sample.

    Notes
    -----
    Differences from kgof's ``KernelSteinTest``: the p-value counts ties and
    adds one to both counts (a valid p-value at any ``B``; kgof takes the
    fraction of draws strictly above the statistic), the multinomial bootstrap
    of the U-statistic is offered too, and memory is O(n (d + B)) instead of
    kgof's ``n x n`` matrix. ``bw`` is a squared length scale, as everywhere in
    this package (kgof's IMQ kernel is :math:`(c^2 + |x - y|^2)^b`: ``bw = c^2``
    gives the same test, the kernel differing by the constant :math:`c^{2b}`).

    References
    ----------
    .. [1] K. Chwialkowski, H. Strathmann, A. Gretton. "A Kernel Test of
       Goodness of Fit." ICML 2016.
    .. [2] Q. Liu, J. Lee, M. Jordan. "A Kernelized Stein Discrepancy for
       Goodness-of-fit Tests." ICML 2016.
    .. [3] J. Gorham, L. Mackey. "Measuring Sample Quality with Kernels."
       ICML 2017.
    .. [4] M. Huskova, P. Janssen. "Consistency of the generalized bootstrap for
       degenerate U-statistics." Annals of Statistics 21(4), 1993.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> target = kn.Gaussian(np.zeros(1), 1.0)
    >>> rng = np.random.default_rng(0)
    >>> good = kn.ksd_test(rng.normal(size=(300, 1)), target, rng=0)
    >>> bool(good.reject)
    False
    >>> bad = kn.ksd_test(rng.normal(0.5, 1.0, size=(300, 1)), target, rng=0)
    >>> bool(bad.reject), bad.pvalue < 0.01
    (True, True)
    """
    x = check_particles(x, "x")
    n, d = x.shape
    if n < 2:
        raise ValueError("the KSD test needs at least 2 points, got 1")
    kernel = check_option(kernel, "kernel", TEST_KERNELS)
    beta = check_beta(beta)
    n_resamples = check_positive_int(n_resamples, "n_resamples", minimum=1)
    alpha = check_fraction(alpha, "alpha")
    bootstrap = check_option(bootstrap, "bootstrap", BOOTSTRAPS)
    rng = check_rng(rng)
    from .stein_matrix import SteinMatrix  # here: it imports scipy.sparse

    bw = 1.0 if kernel == "linear" else resolve_bw(bw, x)
    H = SteinMatrix(
        x, target, kernel=kernel, bw=None if kernel == "linear" else bw, beta=beta, backend=backend
    )
    diag = H.diagonal()
    batch = max(1, min(n_resamples + 1, _MAX_WEIGHTS // n))
    forms = []
    done = 0
    total = None
    while done < n_resamples:
        count = min(batch - (1 if total is None else 0), n_resamples - done)
        W = _weights(bootstrap, n, count, rng)
        if total is None:  # an all-ones column gives the sum of H, for the statistic
            both = H.quadratic_forms(np.concatenate([np.ones((n, 1)), W], axis=1))
            total, q = both[0], both[1:]
        else:
            q = H.quadratic_forms(W)
        if bootstrap == "multinomial":  # sum over i != j: the diagonal leaves
            q = q - (W * W).T @ diag
        forms.append(q)
        done += count
    forms = np.concatenate(forms)
    if bootstrap == "wild":
        statistic = total / n
        draws = forms / n
    else:
        statistic = (total - np.sum(diag)) / (n - 1)
        draws = n * forms
    ksd2 = statistic / n
    pvalue = (1.0 + np.count_nonzero(draws >= statistic)) / (1.0 + n_resamples)
    return KSDTestResult(
        statistic=float(statistic),
        pvalue=float(pvalue),
        null_distribution=draws,
        reject=bool(pvalue <= alpha),
        ksd2=float(ksd2),
        kernel=kernel,
        bw=bw,
        beta=beta,
        n_resamples=n_resamples,
        alpha=alpha,
        bootstrap=bootstrap,
        backend=H.backend,
    )
