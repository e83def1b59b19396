r"""MCMC diagnostics from the kernel Stein discrepancy: running KSD curves per chain.

The KSD of the first :math:`m` states of a chain, for every :math:`m`, tells
whether the chain's empirical distribution approaches the target: for
independent exact draws it falls as :math:`m^{-1/2}`; a chain that has not
reached or not explored the target levels off, however many draws it adds.
Unlike R-hat and the effective sample size, which compare chains with each
other and measure autocorrelation, it compares each chain with the target
itself, through its score :math:`\nabla \log p`, so that it also flags chains
that agree with each other and are all wrong (a region none of them visited, a
bias of the sampler).

:func:`ksd_curve` computes the curve of one sample in one pass over the Stein
matrix's tiles; :func:`ksd_diagnostic` does it for every chain of an MCMC run
(arrays, or an ArviZ trace with the target of
:func:`ksdnumba.targets.from_pymc`), with the pooled value and the reference
rate of independent draws; :func:`ksdnumba.plotting.plot_ksd_curve` draws it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._draws import is_trace, trace_draws_and_scores
from ._preconditioners import stein_matrix_from_sample
from ._progress import check_progress, progress_bar
from ._result import Result
from ._validation import (
    call_target,
    check_finite_field,
    check_like,
    check_particles,
    check_positive_int,
    check_rng,
    check_target_dims,
)

__all__ = ["KSDDiagnosticResult", "ksd_curve", "ksd_diagnostic"]


def _running_ksd(H) -> np.ndarray:
    r""":math:`\sqrt{P_m} / m` for m = 1..n, from one pass (``prefix_sums``)."""
    n = H.shape[0]
    # Rounding can leave a tiny negative sum where the KSD is ~0: clamp, as thinning does.
    return np.sqrt(np.maximum(H.prefix_sums(), 0.0)) / np.arange(1, n + 1)


def _check_at(at, n):
    """``at`` as int64 positions 1..n (any shape), or None."""
    if at is None:
        return None
    arr = np.asarray(at)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise TypeError(f"at must be integers (numbers of points m), got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > n):
        raise ValueError(
            f"at must lie in [1, {n}] (numbers of leading points of a sample of {n}), got "
            f"values from {arr.min()} to {arr.max()}"
        )
    return arr


def ksd_curve(
    sample: ArrayLike,
    scores: ArrayLike,
    *,
    kernel: str = "imq",
    preconditioner: Any = "sclmed",
    standardize: bool = True,
    at: ArrayLike | None = None,
    backend: str = "auto",
) -> np.ndarray | float:
    r"""The KSD of the first ``m`` points of a sample, for every ``m`` (a running KSD).

    With the Stein kernel :math:`k_p` of :func:`ksdnumba.stein_thinning`
    (same ``kernel``, ``preconditioner`` and ``standardize``, so the same
    Stein matrix :math:`H_{ij} = k_p(x_i, x_j)`),

    .. math::

        \mathrm{KSD}_m = \frac{1}{m} \Big( \sum_{i, j \le m} k_p(x_i, x_j) \Big)^{1/2},
        \qquad m = 1, \dots, n,

    the square root of the V-statistic of the leading :math:`m \times m` block,
    from its prefix sums :math:`P_m = P_{m-1} + H_{mm} + 2 \sum_{j < m} H_{mj}`
    (:meth:`ksdnumba.SteinMatrix.prefix_sums`): one compiled pass over the
    tiles on and below the diagonal, :math:`n^2 / 2` kernel values, O(n d)
    memory. The standardisation and the preconditioner are those of the whole
    sample, so every prefix is measured in one kernel. For an MCMC chain in
    the order it was run, the curve falls as :math:`m^{-1/2}` once the chain
    mixes, and levels off while it has not reached the target.

    Parameters
    ----------
    sample : array_like of shape (n, d)
        The points, in order (e.g. the states of one chain).
    scores : array_like of shape (n, d)
        :math:`\nabla \log p` at each point.
    kernel : {"imq", "gaussian"}
        Base kernel, as in :func:`ksdnumba.stein_thinning` (``"imq"``,
        :math:`(1 + u^\top L u)^{-1/2}`, is stein-thinning's).
    preconditioner : str, float or array_like of shape (d, d)
        The matrix :math:`L` of the kernel: ``"id"``, ``"med"``, ``"sclmed"``,
        ``"smpcov"``, a squared length scale, or a covariance-like matrix; see
        :func:`ksdnumba.stein_thinning`. The default is the one of
        :func:`ksdnumba.stein_thinning`, so that a curve and the ``ksd`` of a
        thinning of the same sample are in the same kernel (stein-thinning's
        own default is ``"id"``).
    standardize : bool
        Divide each column by its mean absolute deviation first (and multiply
        the scores by it), as stein-thinning does.
    at : array_like of int, optional
        Return the curve only at these ``m`` (1-based counts of leading points,
        in ``[1, n]``, any order, repeats allowed); the pass over the matrix is
        the same.
    backend : {"auto", "cpu", "cuda"}
        Where the tiles are computed (see :class:`ksdnumba.SteinMatrix`).

    Returns
    -------
    ndarray of shape (n,), or of the shape of ``at``
        float64, ``curve[m - 1]`` the KSD (not squared) of the first ``m``
        points; for an integer ``at``, a float.

    Raises
    ------
    ValueError
        If the sample or the scores are not finite ``(n, d)`` arrays of one
        shape, a column is constant with ``standardize=True``, the
        preconditioner is invalid, or ``at`` lies outside ``[1, n]``.
    TypeError
        If ``at`` is not integer, or an option of the wrong type.

    See Also
    --------
    ksd_diagnostic : the curves of every chain of an MCMC run, with references.
    stein_thinning : its ``ksd`` is the curve of the picked points.

    Notes
    -----
    The values are those of stein-thinning 0.2.0's
    ``stein_thinning.stein.ksd(integrand, n)``, where ``integrand`` is what its
    ``thin`` builds for the same ``preconditioner`` and ``standardize``
    (``stein_thinning.thinning._make_stein_integrand``); that function loops
    over the rows in Python and evaluates the kernel on :math:`n^2 / 2` pairs
    in NumPy.

    References
    ----------
    .. [1] J. Gorham, L. Mackey. "Measuring sample quality with kernels." ICML
       2017.
    .. [2] M. Riabiz, W. Y. Chen, J. Cockayne, P. Swietach, S. A. Niederer,
       L. Mackey, C. J. Oates. "Optimal thinning of MCMC output." JRSS B
       84(4), 2022.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.diagnostics import ksd_curve
    >>> x = np.random.default_rng(0).normal(size=(2000, 2))
    >>> curve = ksd_curve(x, -x)
    >>> curve.shape
    (2000,)
    >>> bool(curve[-1] < curve[99] < curve[9])
    True
    >>> ksd_curve(x, -x, at=[10, 100, 2000]).round(3)
    array([0.591, 0.184, 0.047])
    """
    x = check_particles(sample, "sample")
    s = check_like(scores, x, "scores", "sample")
    positions = _check_at(at, x.shape[0])
    H, _, _ = stein_matrix_from_sample(
        x,
        s,
        kernel=kernel,
        preconditioner=preconditioner,
        standardize=standardize,
        backend=backend,
    )
    curve = _running_ksd(H)
    if positions is None:
        return curve
    out = curve[positions - 1]
    return float(out) if out.ndim == 0 else out


class KSDDiagnosticResult(Result):
    r"""Outcome of :func:`ksd_diagnostic`; fields are read as attributes or keys.

    Every KSD is the discrepancy itself (a square root), in one kernel: the
    standardisation and the preconditioner of all the draws pooled.

    Attributes
    ----------
    m : ndarray of shape (k,), int64
        Numbers of leading draws of a chain at which the curves are given,
        log-spaced from 1 to ``n_draws``.
    ksd : ndarray of shape (n_chains, k)
        ``ksd[c, j]``: the KSD of the first ``m[j]`` draws of chain ``c``.
    final_ksd : ndarray of shape (n_chains,)
        The KSD of each whole chain (``ksd[:, -1]``).
    pooled_ksd : float
        The KSD of all ``n_chains * n_draws`` draws together.
    slope : ndarray of shape (n_chains,)
        Least-squares slope of :math:`\log \mathrm{KSD}` against :math:`\log m`
        over each chain's last decade (``m >= n_draws / 10``): about -1/2 for
        a chain that mixes, near 0 for one that has stopped improving; NaN when
        fewer than 2 grid points lie in that decade.
    reference : ndarray of shape (k,)
        :math:`\sqrt{\bar h / m}`: the root mean square KSD of ``m``
        independent exact draws, with :math:`\bar h` the mean of
        :math:`k_p(x_i, x_i)` over the draws (an estimate of
        :math:`\mathbb E_p\, k_p(x, x)`).
    reference_pooled : float
        The same at ``m = n_chains * n_draws``, to compare with ``pooled_ksd``.
    exact_ksd : ndarray of shape (k,) or None
        The running KSD of ``n_chains * n_draws`` exact draws from
        ``target.sample`` at ``m``; None when the target cannot sample (or
        ``exact=False``).
    exact_pooled_ksd : float or None
        The KSD of all those exact draws.
    n_chains, n_draws, n_dims : int
    names : list of str or None
        The coordinates' labels (a PyMC target's ``names``), or None.
    kernel : str
    preconditioner : ndarray of shape (d, d)
        The matrix :math:`L` of the kernel, on standardised coordinates.
    scale : ndarray of shape (d,)
        The standardisation's scales (ones with ``standardize=False``).
    """

    def to_dataframe(self):
        """A long pandas DataFrame: one row per curve and ``m``.

        Columns ``curve`` (``"chain"``, ``"pooled"``, ``"reference"``,
        ``"exact"``), ``chain`` (nullable ``Int64``: the chain, ``<NA>`` for
        the other curves), ``m`` and ``ksd``. The pooled row, and the last row
        of the reference and of the exact draws, have ``m = n_chains *
        n_draws``.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            If pandas is not installed (it comes with the ``dask`` extra).

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.diagnostics import ksd_diagnostic
        >>> x = np.random.default_rng(1).normal(size=(2, 300, 2))
        >>> df = ksd_diagnostic(x, -x, n_grid=5).to_dataframe()
        >>> df.groupby("curve", sort=False).size().to_dict()
        {'chain': 10, 'pooled': 1, 'reference': 6}
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "KSDDiagnosticResult.to_dataframe needs pandas: pip install 'ksdnumba[dask]' "
                '(from a clone: python -m pip install -e ".[dask]"), or pip install pandas'
            ) from exc
        total = self.n_chains * self.n_draws
        k = self.m.size
        m_and_total = np.append(self.m, total)
        curve = ["chain"] * (self.n_chains * k) + ["pooled"] + ["reference"] * (k + 1)
        chain = [*np.repeat(np.arange(self.n_chains), k).tolist(), *[None] * (k + 2)]
        m = [np.tile(self.m, self.n_chains), [total], m_and_total]
        ksd = [self.ksd.reshape(-1), [self.pooled_ksd], self.reference, [self.reference_pooled]]
        if self.exact_ksd is not None:
            curve += ["exact"] * (k + 1)
            chain += [None] * (k + 1)
            m.append(m_and_total)
            ksd += [self.exact_ksd, [self.exact_pooled_ksd]]
        return pd.DataFrame(
            {
                "curve": curve,
                "chain": pd.array(chain, dtype="Int64"),
                "m": np.concatenate(m).astype(np.int64),
                "ksd": np.concatenate(ksd).astype(np.float64),
            }
        )


def _draws_and_scores(draws, scores_or_target):
    """``(x, s, target, names)``: ``x`` and ``s`` of shape (n_chains, n_draws, d)."""
    if is_trace(draws):
        x, s = trace_draws_and_scores(
            draws, scores_or_target, trace_name="draws", target_name="scores_or_target"
        )
        return x, s, scores_or_target, getattr(scores_or_target, "names", None)
    arr = np.asarray(draws)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise ValueError(
            f"draws must be a numeric array of shape (n_chains, n_draws, d) or (n, d), or an "
            f"ArviZ trace; got {type(draws).__name__} of dtype {arr.dtype}"
        )
    if arr.ndim not in (2, 3):
        hint = (
            " (for a scalar parameter, add a last axis: draws[..., None])" if arr.ndim == 1 else ""
        )
        raise ValueError(
            f"draws must have shape (n_chains, n_draws, d) or (n, d), got shape {arr.shape}" + hint
        )
    x = np.array(arr if arr.ndim == 3 else arr[None], dtype=np.float64)
    if 0 in x.shape:
        raise ValueError(f"draws must not be empty, got shape {arr.shape}")
    bad = ~np.isfinite(x).all(axis=2)
    if bad.any():
        c, i = np.argwhere(bad)[0]
        raise ValueError(
            f"draws contain NaN or infinite values: {int(bad.sum())} of {bad.size} draws "
            f"(the first: chain {c}, draw {i})"
        )
    flat = x.reshape(-1, x.shape[2])
    target, names = None, None
    if callable(scores_or_target) or hasattr(scores_or_target, "score"):
        from .targets import as_score_target  # the tools join targets and kernels

        target = as_score_target(scores_or_target)
        check_target_dims(target, flat, "draws")
        s = check_finite_field(call_target(target.score, "score", flat), flat, "score")
        names = getattr(target, "names", None)
    else:
        scores = np.asarray(scores_or_target)
        if scores.shape != arr.shape:
            raise ValueError(
                f"scores_or_target must be a target or an array of the shape of draws, "
                f"{arr.shape}, got shape {scores.shape}"
            )
        s = check_like(scores.reshape(flat.shape), flat, "scores_or_target", "draws")
    return x, s.reshape(x.shape), target, names


def _decade_slope(m, curves):
    """Least-squares slope of log KSD on log m for m >= m[-1] / 10, one per curve."""
    keep = m >= m[-1] / 10.0
    if np.count_nonzero(keep) < 2:
        return np.full(curves.shape[0], np.nan)
    lm = np.log(m[keep])
    lm = lm - lm.mean()
    with np.errstate(divide="ignore"):
        lk = np.log(curves[:, keep])
    return (lk - lk.mean(axis=1, keepdims=True)) @ lm / (lm @ lm)


def ksd_diagnostic(
    draws: Any,
    scores_or_target: Any,
    *,
    kernel: str = "imq",
    preconditioner: Any = "sclmed",
    standardize: bool = True,
    n_grid: int = 50,
    exact: bool = True,
    rng: Any = None,
    backend: str = "auto",
    progress: bool = False,
) -> KSDDiagnosticResult:
    r"""Running KSD of every chain of an MCMC run, with the rate of independent draws.

    For each chain :math:`c` and each ``m`` of a log-spaced grid, the KSD of
    the chain's first ``m`` draws (:func:`ksd_curve`),

    .. math::

        \mathrm{KSD}_{c}(m) = \frac1m \Big( \sum_{i, j \le m}
            k_p(x_{c,i}, x_{c,j}) \Big)^{1/2},

    the KSD of all chains pooled, and two yardsticks: the root mean square KSD
    of ``m`` independent exact draws,

    .. math::

        \sqrt{\mathbb E\, \mathrm{KSD}^2(m)} = \sqrt{\mathbb E_p\, k_p(x, x) / m},

    (the off-diagonal terms have mean zero under :math:`p`), with
    :math:`\mathbb E_p k_p(x, x)` estimated by the mean of the diagonal over
    the draws; and, when the target has ``sample``, the KSD of as many exact
    draws. A chain that mixes follows the reference line (slope -1/2 on a
    log-log plot) a constant factor above it, the factor growing with its
    autocorrelation; a chain that has not reached the target, or misses part
    of it, levels off. Every KSD is computed in one kernel: the
    standardisation and preconditioner (stein-thinning's options, as in
    :func:`ksdnumba.stein_thinning`) of all the draws pooled.

    Parameters
    ----------
    draws : array_like of shape (n_chains, n_draws, d) or (n, d), or an ArviZ trace
        The draws, each chain in the order it was run; an ``(n, d)`` array is
        one chain. Or what ``pm.sample`` returns (an ArviZ 0.x
        ``InferenceData`` or an ArviZ 1.x ``xarray.DataTree``), with the
        model's :func:`ksdnumba.targets.from_pymc` target as
        ``scores_or_target``: the draws are then the posterior's, on the
        model's unconstrained space (``target.to_unconstrained(trace)``).
    scores_or_target : array_like of the shape of ``draws``, target or callable
        The scores :math:`\nabla \log p` at the draws, or a target (an object
        with ``score``, or a callable ``score(x)``) evaluated at them.
    kernel : {"imq", "gaussian"}
        Base kernel, as in :func:`ksdnumba.stein_thinning`.
    preconditioner : str, float or array_like of shape (d, d)
        stein-thinning's names or a matrix (see
        :func:`ksdnumba.stein_thinning`), computed on all draws pooled.
    standardize : bool
        Divide each coordinate by its mean absolute deviation over all draws.
    n_grid : int
        Number of log-spaced ``m`` from 1 to ``n_draws``, >= 2 (fewer when
        rounding to integers merges some).
    exact : bool
        When the target has ``sample(n, rng=...)``, compare with
        ``n_chains * n_draws`` exact draws from it.
    rng : None, int, numpy.random.Generator, ...
        Randomness of the exact draws (SPEC 7).
    backend : {"auto", "cpu", "cuda"}
        Where the Stein matrices' tiles are computed.
    progress : bool
        Show a progress bar over the matrices (one per chain, the pooled one,
        the exact draws').

    Returns
    -------
    KSDDiagnosticResult
        ``m``, ``ksd`` (``(n_chains, k)``), ``final_ksd``, ``pooled_ksd``,
        ``slope``, ``reference``, ``reference_pooled``, ``exact_ksd``,
        ``exact_pooled_ksd``, ``n_chains``, ``n_draws``, ``n_dims``,
        ``names``, ``kernel``, ``preconditioner``, ``scale``; and
        ``to_dataframe()``. :func:`ksdnumba.plotting.plot_ksd_curve` draws it.

    Raises
    ------
    ValueError
        If the draws are not of shape ``(n_chains, n_draws, d)`` or ``(n, d)``,
        hold NaN or infinite values, or their dimension is not the target's;
        if the scores are not of the draws' shape, or not finite; for a trace,
        if it has no posterior group or does not match the target's model;
        and as :func:`ksd_curve` for the kernel's options.
    TypeError
        If a trace comes without a :func:`ksdnumba.targets.from_pymc` target,
        or an option has the wrong type.

    See Also
    --------
    ksd_curve : the curve of one sample.
    ksdnumba.plotting.plot_ksd_curve : the plot.
    stein_thinning : keep the draws that best represent the target.

    Notes
    -----
    Cost: one pass over each chain's Stein matrix (:math:`n_\mathrm{draws}^2
    / 2` kernel values per chain) and one over the pooled draws'
    (:math:`(n_\mathrm{chains} n_\mathrm{draws})^2 / 2`), and as much again
    for the exact draws; O(n d) memory.

    References
    ----------
    .. [1] J. Gorham, L. Mackey. "Measuring sample quality with kernels." ICML
       2017.
    .. [2] M. Riabiz, W. Y. Chen, J. Cockayne, P. Swietach, S. A. Niederer,
       L. Mackey, C. J. Oates. "Optimal thinning of MCMC output." JRSS B
       84(4), 2022.

    Examples
    --------
    Four chains of a standard normal, one of them stuck around 2:

    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> from ksdnumba.diagnostics import ksd_diagnostic
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(4, 500, 2))
    >>> x[3] = 2.0 + 0.1 * x[3]
    >>> res = ksd_diagnostic(x, kn.Gaussian(np.zeros(2), 1.0), rng=0)
    >>> res.ksd.shape == (4, res.m.size)
    True
    >>> int(np.argmax(res.final_ksd))
    3
    >>> bool(res.final_ksd[0] < 2 * res.reference[-1] < res.final_ksd[3])
    True
    """
    n_grid = check_positive_int(n_grid, "n_grid", minimum=2)
    progress = check_progress(progress)
    if not isinstance(exact, (bool, np.bool_)):
        raise TypeError(f"exact must be True or False, got {exact!r}")
    x, s, target, names = _draws_and_scores(draws, scores_or_target)
    n_chains, n_draws, d = x.shape
    total = n_chains * n_draws
    sampler = getattr(target, "sample", None) if exact and target is not None else None
    generator = check_rng(rng) if sampler is not None else None
    bar = progress_bar(progress, n_chains + 1 + (sampler is not None), "KSD curves", unit="matrix")
    try:
        pooled, scale, L = stein_matrix_from_sample(
            x.reshape(total, d),
            s.reshape(total, d),
            kernel=kernel,
            preconditioner=preconditioner,
            standardize=standardize,
            backend=backend,
        )
        pooled_ksd = float(np.sqrt(max(pooled.sum(), 0.0)) / total)
        mean_diagonal = float(np.mean(pooled.diagonal()))
        bar.update(1)
        m = np.unique(np.rint(np.geomspace(1, n_draws, n_grid)).astype(np.int64))
        # The pooled kernel for every chain: its metric as a covariance-like matrix.
        gamma = np.linalg.inv(L)

        def curve_of(points, points_scores, at):
            H, _, _ = stein_matrix_from_sample(
                points / scale,
                points_scores * scale,
                kernel=kernel,
                preconditioner=gamma,
                standardize=False,
                backend=backend,
            )
            return _running_ksd(H)[at - 1]

        if n_chains == 1:
            curves = _running_ksd(pooled)[m - 1][None]
            bar.update(1)
        else:
            curves = np.empty((n_chains, m.size))
            for c in range(n_chains):
                curves[c] = curve_of(x[c], s[c], m)
                bar.update(1)
        exact_ksd = exact_pooled = None
        if sampler is not None:
            y = check_particles(
                call_target(lambda n: sampler(n, rng=generator), "sample", total),
                "target.sample(n)",
            )
            check_target_dims(target, y, "target.sample(n)")
            sy = check_finite_field(call_target(target.score, "score", y), y, "score")
            values = curve_of(y, sy, np.append(m, total))
            exact_ksd, exact_pooled = values[:-1], float(values[-1])
            bar.update(1)
    finally:
        bar.close()
    return KSDDiagnosticResult(
        m=m,
        ksd=curves,
        final_ksd=curves[:, -1].copy(),
        pooled_ksd=pooled_ksd,
        slope=_decade_slope(m, curves),
        reference=np.sqrt(mean_diagonal / m),
        reference_pooled=float(np.sqrt(mean_diagonal / total)),
        exact_ksd=exact_ksd,
        exact_pooled_ksd=exact_pooled,
        n_chains=n_chains,
        n_draws=n_draws,
        n_dims=d,
        names=None if names is None else list(names),
        kernel=kernel,
        preconditioner=L,
        scale=scale,
    )
