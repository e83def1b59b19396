r"""KSDAgg: the KSD test aggregated over a collection of bandwidths (Schrab et al. 2022).

Every bandwidth's wild-bootstrap draws are quadratic forms of its Stein matrix;
:meth:`ksdnumba.SteinMatrix._forms_over_bandwidths` accumulates all of them in
one pass over the tiles, the distances and score products of a tile shared by
the bandwidths. The random stream, the bandwidth collection, the weights and the
bisection are those of the authors' NumPy code (``ksdagg/np.py``), so that an
integer ``rng`` gives its numbers.
"""

from __future__ import annotations

import numbers
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._result import Result
from ._validation import (
    check_dtype,
    check_fraction,
    check_option,
    check_particles,
    check_positive_int,
    check_rng,
    check_target_dims,
)

__all__ = ["KSDAggResult", "ksdagg"]

WEIGHT_TYPES = ("uniform", "decreasing", "increasing", "centred")
# ksdagg's collection of bandwidths looks at the distances between the first 500 points.
_BANDWIDTH_POINTS = 500
# Draws held at once, as float64 numbers (256 MiB): more draws are taken in several
# passes over the tiles (at n = 20,000 and 4,001 draws, three).
_MAX_WEIGHTS = 2**25


class KSDAggResult(Result):
    """Outcome of :func:`ksdagg`; fields are read as attributes or keys.

    Attributes
    ----------
    reject : bool
        The aggregated test's decision: True when one of the single tests
        rejects, ``pvalue[k] <= threshold[k]`` for some bandwidth ``k``
        (equivalently ``statistic[k] > quantile[k]``, but for rounding where
        ``(B1 + 1)(1 - u w_k)`` is within rounding of an integer: the p-values
        decide, as in ksdagg).
    bw : ndarray of shape (n_bandwidths,)
        The bandwidths, squared length scales as everywhere in the package:
        ``bw = lambda**2`` for ksdagg's length scale ``lambda``.
    statistic : ndarray of shape (n_bandwidths,)
        The U-statistic estimate of :math:`\\mathrm{KSD}^2` at each bandwidth
        (ksdagg's "KSD", a squared discrepancy).
    pvalue : ndarray of shape (n_bandwidths,)
        Each single test's p-value: the fraction of the ``B1`` draws and the
        statistic itself that are at least the statistic.
    threshold : ndarray of shape (n_bandwidths,)
        The corrected level ``u * w_k`` each p-value is compared with.
    quantile : ndarray of shape (n_bandwidths,)
        The ``(1 - u w_k)``-quantile of the draws each statistic is compared
        with.
    null_distribution : ndarray of shape (n_bandwidths, B1)
        The wild-bootstrap draws of each statistic that set the quantiles.
    u : float
        The level correction, the largest ``u`` (by bisection) for which the
        aggregated test keeps level ``alpha`` on the ``B2`` other draws.
    bandwidth_weights : ndarray of shape (n_bandwidths,)
        The weights ``w_k`` (they sum to one).
    alpha, weights, n_resamples, bisection_steps
        The settings of the test.
    """


def _weights_of(n, kind):
    """ksdagg's ``create_weights`` (MMDAgg, Section 5.1), computed as it does."""
    if kind == "uniform":
        return np.array([1 / n] * n)
    if kind in ("decreasing", "increasing"):
        norm = sum([1 / i for i in range(1, n + 1)])
        if kind == "decreasing":
            return np.array([1 / (i * norm) for i in range(1, n + 1)])
        return np.array([1 / ((n + 1 - i) * norm) for i in range(1, n + 1)])
    shift = 1 if n % 2 == 1 else 0.5  # centred: the middle bandwidth(s) weigh most
    norm = sum([1 / (abs((n + 1) / 2 - i) + shift) for i in range(1, n + 1)])
    return np.array([1 / ((abs((n + 1) / 2 - i) + shift) * norm) for i in range(1, n + 1)])


def _default_lengthscales(x, count):
    """ksdagg's collection: ``count`` length scales from 1/d to max(max distance, 2)/d,
    geometrically spaced, the distances taken between the first 500 points."""
    from scipy.spatial.distance import pdist  # here, to keep the import light

    distances = pdist(x[:_BANDWIDTH_POINTS], "euclidean")
    distances = distances[distances > 0]
    if distances.size == 0:
        raise ValueError(
            f"the first {min(len(x), _BANDWIDTH_POINTS)} points of x all coincide, so no "
            "bandwidth collection can be drawn from their distances; give bandwidths"
        )
    lambda_min = 1
    lambda_max = np.maximum(np.max(distances), 2)
    power = (lambda_max / lambda_min) ** (1 / (count - 1))
    return np.array([power**i * lambda_min / x.shape[1] for i in range(count)])


def _check_bandwidths(bandwidths):
    arr = np.asarray(bandwidths)
    if (
        arr.dtype == object
        or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer))
        or arr.dtype == bool
    ):
        raise TypeError(f"bandwidths must be None or a 1-D array of numbers, got {bandwidths!r}")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"bandwidths must be a non-empty 1-D array of squared length scales, got shape "
            f"{arr.shape}"
        )
    arr = arr.astype(np.float64)
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ValueError(
            f"bandwidths must be positive and finite (squared length scales), got {bandwidths!r}"
        )
    return arr


def _check_resamples(n_resamples, alpha, weights):
    if isinstance(n_resamples, numbers.Integral) and not isinstance(n_resamples, (bool, np.bool_)):
        pair = (n_resamples, n_resamples)
    else:
        try:
            pair = tuple(n_resamples)
        except TypeError:
            raise TypeError(
                f"n_resamples must be an integer or a pair (B1, B2) of integers, got "
                f"{n_resamples!r}"
            ) from None
        if len(pair) != 2:
            raise ValueError(
                f"n_resamples must be a pair (B1, B2) of integers, got {n_resamples!r}"
            )
    b1 = check_positive_int(pair[0], "n_resamples[0] (B1)", minimum=1)
    b2 = check_positive_int(pair[1], "n_resamples[1] (B2)", minimum=1)
    # Below these counts the test could not reject even at the Bonferroni level alpha * w:
    # the smallest p-value is 1 / (B1 + 1), and B2 draws estimate the level in steps of 1 / B2.
    need1 = int(np.ceil(1.0 / (alpha * np.max(weights)) - 1.0 - 1e-9))
    if b1 < need1:
        raise ValueError(
            f"n_resamples[0] (B1) = {b1} is too small for alpha = {alpha} with these weights: "
            f"the smallest p-value, 1 / (B1 + 1), must not exceed alpha * max(weights) = "
            f"{alpha * np.max(weights):.4g}, so B1 >= {need1}"
        )
    need2 = int(np.ceil(1.0 / alpha - 1e-9))
    if b2 < need2:
        raise ValueError(
            f"n_resamples[1] (B2) = {b2} is too small for alpha = {alpha}: the level is "
            f"estimated in steps of 1 / B2, so B2 >= {need2}"
        )
    return b1, b2


def _random_state(rng):
    """An int (or a RandomState): ksdagg's ``RandomState(seed)``; else a Generator (SPEC 7)."""
    if isinstance(rng, np.random.RandomState):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"rng: a seed must be non-negative, got {rng}")
        return np.random.RandomState(int(rng))
    return check_rng(rng)


def _bisection(m1_sorted, m2, weights, alpha, b1, b2, steps):
    """ksdagg's Step 2: the level correction ``u`` and the quantiles at ``u``."""

    def quantiles_at(u):
        rows = np.ceil((b1 + 1) * (1 - u * weights)).astype(np.int64) - 1
        return m1_sorted[np.arange(len(weights)), rows][:, None]

    u_min = 0
    u_max = np.min(1 / weights)
    for _ in range(steps):
        u = (u_max + u_min) / 2
        p_u = np.sum(np.max(m2 - quantiles_at(u), 0) > 0) / b2
        if p_u <= alpha:
            u_min = u
        else:
            u_max = u
    return u_min, quantiles_at(u_min)[:, 0]


def ksdagg(
    x: ArrayLike,
    target_or_scores: Any,
    *,
    alpha: float = 0.05,
    n_bandwidths: int = 10,
    weights: str = "uniform",
    bandwidths: ArrayLike | None = None,
    n_resamples: int | tuple[int, int] = (2000, 2000),
    bisection_steps: int = 50,
    rng: Any = 42,
    dtype: Any = np.float64,
    backend: str = "auto",
    progress: bool = False,
) -> KSDAggResult:
    r"""KSDAgg: the kernel Stein discrepancy test aggregated over many bandwidths.

    Tests the null hypothesis that the rows of ``x`` are independent draws from
    the target :math:`p`, with no bandwidth to choose: the test of
    :func:`ksd_test` (IMQ kernel, :math:`\beta = 1/2`) is run at every
    bandwidth :math:`\mathrm{bw}_k` of a collection, and the aggregated test
    rejects when one of them rejects at a corrected level :math:`u\, w_k` that
    keeps the aggregated level at ``alpha`` (Schrab, Guedj, Gretton 2022).

    With :math:`h_k` the Stein kernel of bandwidth :math:`\mathrm{bw}_k` and
    Rademacher signs :math:`\varepsilon^{(b)}` (draw ``B1`` of them all ones),

    .. math::

        \widehat{\mathrm{KSD}}{}^2_k = \frac{1}{n(n-1)} \sum_{i \ne j} h_k(x_i, x_j),
        \qquad
        M_k^{(b)} = \frac{1}{n(n-1)} \sum_{i \ne j}
            \varepsilon^{(b)}_i \varepsilon^{(b)}_j h_k(x_i, x_j),

    for ``B1 + B2 + 1`` draws :math:`b`. The first ``B1`` draws and the
    statistic set the quantiles :math:`q_k(u)`, the
    :math:`\lceil (B_1 + 1)(1 - u w_k) \rceil`-th smallest of them; ``u`` is the
    largest value (``bisection_steps`` halvings of
    :math:`[0, \min_k 1 / w_k]`) for which at most a fraction ``alpha`` of the
    last ``B2`` draws exceed :math:`q_k(u)` at some bandwidth. The test rejects
    when :math:`\widehat{\mathrm{KSD}}{}^2_k > q_k(u)` for some :math:`k`,
    equivalently when a p-value falls to its threshold :math:`u w_k`.

    Every draw of every bandwidth is a quadratic form of that bandwidth's Stein
    matrix; all of them are accumulated in one pass over the tiles of the
    matrix (the distances and score products of a tile serve every bandwidth),
    in :math:`n^2 (B_1 + B_2 + 1)` flops per bandwidth and
    O(n (d + B_1 + B_2)) memory, never an ``n x n`` array.

    Parameters
    ----------
    x : array_like of shape (n, d)
        The sample, n >= 2.
    target_or_scores : object with ``score``, callable, or array_like of shape (n, d)
        The target (only its score is used), or its scores at ``x``.
    alpha : float
        Level of the aggregated test, in (0, 1).
    n_bandwidths : int
        Size of the default collection, >= 2 (ignored when ``bandwidths`` is
        given): ksdagg's length scales :math:`\lambda_k`, from :math:`1/d` to
        :math:`\max(D, 2)/d` in geometric steps, :math:`D` the largest distance
        between the first 500 points; ``bw = lambda**2``.
    weights : {"uniform", "decreasing", "increasing", "centred"}
        The weights :math:`w_k` of the bandwidths, in their order (ksdagg's
        ``weights_type``): "decreasing" favours the small bandwidths,
        "increasing" the large ones, "centred" the middle ones.
    bandwidths : array_like of shape (n_bandwidths,), optional
        The collection itself, as squared length scales ``bw`` (ksdagg's
        bandwidths are length scales: pass their squares), each > 0.
    n_resamples : int or (int, int)
        ``(B1, B2)``: draws for the quantiles and for the level correction (an
        int: both). ``B1 + 1 >= 1 / (alpha max_k w_k)`` and
        ``B2 >= 1 / alpha``, below which the test could not reject.
    bisection_steps : int
        Halvings of the interval of ``u``, >= 1 (ksdagg's ``B3``).
    rng : int, numpy.random.RandomState, or anything numpy.random.default_rng accepts
        The source of the Rademacher signs. An integer seeds
        ``numpy.random.RandomState``, as ksdagg does, so that the same seed
        gives ksdagg's draws (:math:`\varepsilon` =
        ``RandomState(seed).choice([1.0, -1.0], size=(B1 + B2 + 1, n))``); the
        exception to the package's rule of ``numpy.random.default_rng`` for
        integers, to reproduce the reference. Anything else (None, a
        Generator, a SeedSequence, ...) goes through ``default_rng``.
    dtype : np.float64 or np.float32
        Precision of the tiles and their products (sums across tiles are
        float64). float32 is faster; the statistics then agree with float64 to
        about 1e-5 relative, and a draw within that of a quantile may count on
        the other side.
    backend : {"auto", "cpu", "cuda"}
        Where the tiles are computed (:class:`SteinMatrix`).
    progress : bool
        Report each pass over the matrix on stderr (long runs take several
        passes, one per batch of draws).

    Returns
    -------
    KSDAggResult
        ``reject`` and, per bandwidth, ``bw``, ``statistic``, ``pvalue``,
        ``threshold``, ``quantile``, ``null_distribution``; ``u`` and the
        settings.

    Raises
    ------
    ValueError
        If ``x`` is not a finite ``(n, d)`` array with n >= 2, the scores are
        not finite or not of its shape, ``n_bandwidths < 2``, a bandwidth is not
        positive, ``alpha`` is not in (0, 1), ``n_resamples`` is too small for
        ``alpha``, ``weights`` is not one of its names, or the first points of
        ``x`` coincide (no default collection).
    TypeError
        If an argument has the wrong type (e.g. a target without ``score``).

    See Also
    --------
    ksd_test : the test at one bandwidth.
    relative_ksd_test : which of two models fits better.

    Notes
    -----
    The same numbers as ksdagg's NumPy implementation (``ksdagg.np.ksdagg``
    with ``approx_type="wild bootstrap"``, ``kernel="imq"``) for an integer
    ``rng`` and float64: the decision, p-values, thresholds and quantiles, and
    the statistics to rounding. Its ``"Bandwidth"`` :math:`\lambda` is
    reported here as ``bw = lambda**2``, its ``"KSD"`` as ``statistic``. The
    parametric bootstrap of ksdagg is not offered.

    References
    ----------
    .. [1] A. Schrab, B. Guedj, A. Gretton. "KSD Aggregated Goodness-of-fit
       Test." NeurIPS 2022.
    .. [2] A. Schrab, I. Kim, M. Albert, B. Laurent, B. Guedj, A. Gretton.
       "MMD Aggregated Two-Sample Test." JMLR 24, 2023.
    .. [3] K. Chwialkowski, H. Strathmann, A. Gretton. "A Kernel Test of
       Goodness of Fit." ICML 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.gof import ksdagg
    >>> x = np.random.default_rng(0).standard_t(5, size=(300, 1))
    >>> res = ksdagg(x, lambda z: -z, n_bandwidths=4, n_resamples=(200, 200))
    >>> res.bw.shape, res.statistic.shape
    ((4,), (4,))
    >>> bool(res.reject) == bool(np.any(res.pvalue <= res.threshold))
    True
    """
    x = check_particles(x, "x")
    check_target_dims(target_or_scores, x, "x")
    n, d = x.shape
    if n < 2:
        raise ValueError("KSDAgg needs at least 2 points, got 1")
    alpha = check_fraction(alpha, "alpha")
    weights_name = check_option(weights, "weights", WEIGHT_TYPES)
    if bandwidths is None:
        count = check_positive_int(n_bandwidths, "n_bandwidths", minimum=2)
        bws = None
    else:
        bws = _check_bandwidths(bandwidths)
        count = len(bws)
    w = _weights_of(count, weights_name)
    b1, b2 = _check_resamples(n_resamples, alpha, w)
    steps = check_positive_int(bisection_steps, "bisection_steps", minimum=1)
    dtype = check_dtype(dtype)
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    source = _random_state(rng)
    if bws is None:
        bws = _default_lengthscales(x, count) ** 2
    from .stein_matrix import SteinMatrix  # here: it imports scipy.sparse

    H = SteinMatrix(
        x, target_or_scores, kernel="imq", bw=float(bws[0]), beta=0.5, dtype=dtype, backend=backend
    )
    # sum_i h_k(x_i, x_i) = |s_i|^2 + 2 beta d / bw_k (beta = 1/2): the diagonal the
    # U-statistic leaves out (every sign squares to one).
    s = np.asarray(H.scores, dtype=np.float64)
    traces = float(np.sum(s * s)) + n * d / bws
    total = b1 + b2 + 1
    batch = max(1, min(total, _MAX_WEIGHTS // n))
    M = np.empty((count, total))
    start = time.perf_counter()
    for first in range(0, total, batch):
        rows = min(batch, total - first)
        R = source.choice([1.0, -1.0], size=(rows, n))  # ksdagg's draws, in the same order
        if first <= b1 < first + rows:
            R[b1 - first] = 1.0  # the statistic itself
        forms = H._forms_over_bandwidths(np.ascontiguousarray(R.T), bws)
        M[:, first : first + rows] = (forms - traces[:, None]) / (n * (n - 1))
        if progress:
            sys.stderr.write(
                f"ksdagg: draws {first + rows}/{total} for {count} bandwidths, "
                f"{time.perf_counter() - start:.1f} s\n"
            )
            sys.stderr.flush()
    statistic = M[:, b1].copy()
    m1_sorted = np.sort(M[:, : b1 + 1])
    u, quantiles = _bisection(m1_sorted, M[:, b1 + 1 :], w, alpha, b1, b2, steps)
    pvalues = np.mean(m1_sorted - statistic[:, None] >= 0, -1)
    thresholds = u * w
    return KSDAggResult(
        reject=bool(np.any(pvalues <= thresholds)),
        bw=bws,
        statistic=statistic,
        pvalue=pvalues,
        threshold=thresholds,
        quantile=quantiles,
        null_distribution=M[:, :b1].copy(),
        u=float(u),
        bandwidth_weights=w,
        alpha=alpha,
        weights=weights_name,
        n_resamples=(b1, b2),
        bisection_steps=steps,
    )
