r"""Stein thinning: pick the points of a sample that best represent the target.

Greedy minimisation of the KSD of the selected points (Riabiz et al. 2022), plain
or regularised (Benard, Staber, Da Veiga 2023), with the preconditioned kernels
and the compiled columns of :mod:`ksdnumba.kernels._cpu._values`.
"""

import numbers
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._draws import is_trace, trace_draws_and_scores
from ._preconditioners import stein_matrix_from_sample
from ._result import Result
from ._validation import (
    call_target,
    check_finite_field,
    check_like,
    check_particles,
    check_per_point,
    check_positive_int,
)

__all__ = ["GradientFreeThinningResult", "ThinningResult", "stein_thinning", "stein_thinning_gf"]

# stein-thinning warns when log q - log p spans more than this: the weights q/p then
# differ by more than e^10 and a few points dominate.
_WEIGHT_RANGE_WARNING = 10.0


class ThinningResult(Result):
    """Outcome of :func:`stein_thinning`; fields are read as attributes or keys.

    Attributes
    ----------
    indices : ndarray of shape (m,), int64
        Rows of the sample, in the order they were picked; a row can be picked
        more than once.
    ksd : ndarray of shape (m,)
        ``ksd[t - 1]`` is the KSD of the first ``t`` picks,
        :math:`\\sqrt{\\sum_{a, b \\le t} k_p(x_{i_a}, x_{i_b})} / t`, in the
        kernel used for thinning (standardised coordinates, preconditioner
        :math:`L`), as stein-thinning's ``ksd`` computes it.
    preconditioner : ndarray of shape (d, d)
        The matrix :math:`L` of the kernel, acting on differences of standardised
        points (the matrix stein-thinning's ``make_precon`` returns).
    scale : ndarray of shape (d,)
        The standardisation's scales (the columns' mean absolute deviations),
        ones when ``standardize=False``.
    kernel : str
        ``"imq"`` or ``"gaussian"``.
    regularize : float or None
        The entropic weight :math:`\\lambda` of regularised thinning, or None.
    backend : str
        Where the greedy steps ran, ``"cpu"`` or ``"cuda"``.
    """


def _hessian_diagonal(target, x):
    """The diagonal of the Hessian of log p at each row of ``x``, from d HVPs."""
    n, d = x.shape
    out = np.empty((n, d))
    for k in range(d):
        e = np.zeros((n, d))
        e[:, k] = 1.0
        hv = check_finite_field(call_target(target.hvp, "hvp", x, e), x, "hvp")
        out[:, k] = hv[:, k]
    return out


def _regularization(regularize, m, target, log_p, laplacian, sample, scale):
    """``(lam, log_p, laplacian term)`` for regularised thinning, or ``(None, None, None)``."""
    n, d = sample.shape
    given = [
        name
        for name, value in (("target", target), ("log_p", log_p), ("laplacian", laplacian))
        if value is not None
    ]
    if regularize is None or regularize is False:
        if given:
            raise ValueError(
                f"{', '.join(given)} given but regularize is None: they serve regularised "
                "thinning only; pass regularize=True (lam = 1/m) or a weight"
            )
        return None, None, None
    if regularize is True:
        lam = 1.0 / m
    elif isinstance(regularize, numbers.Real) and not isinstance(regularize, np.bool_):
        lam = float(regularize)
        if not (np.isfinite(lam) and lam >= 0):
            raise ValueError(f"regularize must be non-negative and finite, got {regularize!r}")
    else:
        raise TypeError(
            f"regularize must be None, True (lam = 1/m) or a number, got {regularize!r}"
        )
    if target is not None:
        if log_p is not None or laplacian is not None:
            raise ValueError("give either target or the arrays log_p and laplacian, not both")
        missing = [name for name in ("logpdf", "hvp") if not callable(getattr(target, name, None))]
        if missing:
            raise TypeError(
                f"regularised thinning needs a target with logpdf and hvp; "
                f"{type(target).__name__} has no {' or '.join(missing)}"
            )
        log_p = call_target(target.logpdf, "logpdf", sample)
        laplacian = _hessian_diagonal(target, sample)
    elif log_p is None or laplacian is None:
        raise ValueError(
            "regularised thinning needs the log density and its Laplacian: pass target "
            "(with logpdf and hvp), or both arrays log_p and laplacian"
        )
    log_p = check_per_point(log_p, n, "log_p" if target is None else "target.logpdf(sample)")
    lap = np.asarray(laplacian)
    if lap.ndim == 2:
        lap = check_like(lap, sample, "laplacian", "sample")
        # Delta+ in the standardised coordinates z = x / scale: d^2/dz_k^2 = scale_k^2 d^2/dx_k^2.
        term = np.sum(np.maximum(lap, 0.0) * scale**2, axis=1)
    else:
        term = check_per_point(lap, n, "laplacian")
    return lam, log_p, term


def stein_thinning(
    sample: Any,
    scores: Any,
    m: int,
    *,
    kernel: str = "imq",
    preconditioner: str | float | ArrayLike = "sclmed",
    standardize: bool = True,
    regularize: bool | float | None = None,
    target: Any = None,
    log_p: ArrayLike | None = None,
    laplacian: ArrayLike | None = None,
    backend: str = "auto",
) -> ThinningResult:
    r"""Select ``m`` points of a sample by greedy minimisation of their KSD.

    Stein thinning (Riabiz et al. 2022) picks, one at a time, the point that
    most lowers the kernel Stein discrepancy of the points picked so far:

    .. math::

        i_1 = \operatorname{argmin}_i k_p(x_i, x_i), \qquad
        i_t = \operatorname{argmin}_i \Big[ k_p(x_i, x_i)
            + 2 \sum_{s < t} k_p(x_i, x_{i_s}) \Big],

    ties to the lowest index; a point may be picked again. Each step computes
    one column of the Stein kernel, compiled and in parallel over the points, in
    O(n d) time and memory: never an ``n x n`` matrix.

    The kernel is the inverse multiquadric :math:`k(x, y) = (1 + (x - y)^\top L
    (x - y))^{-1/2}` of stein-thinning (or the Gaussian
    :math:`e^{-(x - y)^\top L (x - y) / 2}`), with a preconditioner :math:`L`
    acting on differences only; its Stein kernel, with :math:`u = x - y`,
    :math:`q = 1 + u^\top L u`, is

    .. math::

        k_p(x, y) = \frac{s_x \cdot s_y}{q^{1/2}}
            + \frac{\operatorname{tr} L + (s_x - s_y)^\top L u}{q^{3/2}}
            - \frac{3\, u^\top L^2 u}{q^{5/2}}.

    Regularised Stein thinning (Benard et al. 2023) counters plain thinning's
    pull towards low-density points: it adds :math:`\Delta^+ \log p(x_i)` (the
    sum of the positive diagonal entries of the Hessian of :math:`\log p`) and
    an entropic term to each candidate's objective,

    .. math::

        i_t = \operatorname{argmin}_i \Big[ k_p(x_i, x_i) + \Delta^+ \log p(x_i)
            + 2 \sum_{s < t} k_p(x_i, x_{i_s}) - \lambda\, t \log p(x_i) \Big],

    which is their reference code's objective (the Laplacian once, the entropic
    term once per step).

    Parameters
    ----------
    sample : array_like of shape (n, d), or an ArviZ trace
        The points, e.g. the states of a Markov chain (lists are accepted).
        Or what ``pm.sample`` returns (an ArviZ 0.x ``InferenceData`` or an
        ArviZ 1.x ``xarray.DataTree``), with the model's target as ``scores``:
        the points are then its posterior draws on the model's unconstrained
        space, flattened chain by chain (``target.to_unconstrained(trace)
        .reshape(-1, d)``), so that :func:`ksdnumba.chain_draw_indices` maps
        ``indices`` to ``(chain, draw)`` and :func:`ksdnumba.thinned_trace`
        returns the picked draws as a trace.
    scores : array_like of shape (n, d), or a target
        :math:`\nabla \log p` at each point; with a trace as ``sample``, the
        target of :func:`ksdnumba.targets.from_pymc` for the trace's model,
        whose ``score`` is evaluated at the draws (for regularised thinning,
        pass it as ``target`` too).
    m : int
        Number of points to pick, >= 1 (may exceed ``n``: points repeat).
    kernel : {"imq", "gaussian"}
        Base kernel (see above); ``"imq"`` is stein-thinning's.
    preconditioner : str, float or array_like of shape (d, d)
        The matrix :math:`L`, with stein-thinning's definitions (computed on the
        standardised sample when ``standardize=True``):

        - ``"id"``: :math:`L = I`;
        - ``"med"``: :math:`L = I / \ell^2`, :math:`\ell` the median distance
          between the points, over 1000 evenly spaced rows
          (``np.linspace(0, n - 1, 1000, dtype=int)``) when ``n > 1000``;
        - ``"sclmed"``: :math:`L = \log(\min(1000, n))\, I / \ell^2` (the
          default here; stein-thinning's default is ``"id"``, its paper's and its
          MATLAB and R ports' is ``"sclmed"``, which adapts the kernel to the
          spread of the sample);
        - ``"smpcov"``: :math:`L = \Sigma^{-1}`, the inverse sample covariance;
        - a positive number :math:`h` (or a numeric string): :math:`L = I / h`,
          :math:`h` a squared length scale;
        - a symmetric positive definite :math:`\Gamma` of shape ``(d, d)``:
          :math:`L = \Gamma^{-1}` (:math:`\Gamma` plays the part of the
          covariance, as the number and ``"smpcov"`` do).
    standardize : bool
        Divide each column of the sample by its mean absolute deviation from
        its mean (and multiply the scores by it) before anything else, as
        stein-thinning does.
    regularize : None, True or float
        None: plain Stein thinning. A number: regularised thinning with that
        entropic weight :math:`\lambda`; True: :math:`\lambda = 1/m`, the default
        of the reference code. Needs ``target``, or ``log_p`` and ``laplacian``.
    target : object with ``logpdf`` and ``hvp``, optional
        For regularised thinning: :math:`\log p` at the points and the Hessian's
        diagonal from ``d`` Hessian-vector products.
    log_p : array_like of shape (n,), optional
        :math:`\log p` at the points (up to a constant), instead of ``target``.
    laplacian : array_like of shape (n, d) or (n,), optional
        Instead of ``target``: the Hessian's diagonal, :math:`\partial^2 \log p /
        \partial x_k^2` (``(n, d)``; its positive part is taken, in standardised
        coordinates: :math:`\sum_k \mathrm{scale}_k^2 (\partial_k^2 \log p)^+`),
        or :math:`\Delta^+ \log p` itself (``(n,)``, used as given, so in the
        standardised coordinates when ``standardize=True``). A 2-D array is
        always the Hessian's diagonal (also ``(n, 1)`` at ``d = 1``).
    backend : {"auto", "cpu", "cuda"}
        Where the greedy steps run: ``"cpu"`` (numba, threaded), ``"cuda"`` (an
        NVIDIA GPU through numba.cuda, one launch per step; needs numba-cuda and
        raises RuntimeError without a usable GPU) or ``"auto"``, which is the CPU
        (the GPU step is checked in numba's CUDA simulator but not yet timed on a
        GPU, so it is not chosen by itself).

    Returns
    -------
    ThinningResult
        ``indices`` (int64, ``(m,)``), ``ksd`` (``(m,)``, the KSD of the first
        ``t`` picks), ``preconditioner`` (:math:`L`), ``scale``, ``kernel``,
        ``regularize``, ``backend``.

    Raises
    ------
    ValueError
        If the sample or the scores are not finite ``(n, d)`` arrays of one
        shape, ``m < 1``, a column is constant with ``standardize=True``, the
        preconditioner is zero, negative, NaN or not symmetric positive definite,
        or the regularisation's inputs are missing or malformed; for a trace,
        if it has no posterior group, or its draws hold NaN or do not match
        the target's model.
    TypeError
        If ``m`` is not an integer, the preconditioner or ``regularize`` of
        the wrong type, or ``sample`` is a trace and ``scores`` no target with
        ``to_unconstrained``.

    See Also
    --------
    ksd_test : a goodness-of-fit test on the same Stein kernels.

    Notes
    -----
    With the same options, the indices are stein-thinning's
    (``stein_thinning.thinning.thin``), as int64 rather than uint32. Differences:
    validation that survives ``python -O`` with ValueError instead of assert,
    ``"smpcov"`` at ``d = 1``, numbers and matrices as preconditioners, and
    O(n d) per step in place of stein-thinning's O(n d^2) (a non-diagonal
    :math:`L` is diagonalised once and the points rotated into its eigenbasis).

    References
    ----------
    .. [1] M. Riabiz, W. Y. Chen, J. Cockayne, P. Swietach, S. A. Niederer,
       L. Mackey, C. J. Oates. "Optimal thinning of MCMC output." JRSS B 84(4),
       2022.
    .. [2] C. Benard, B. Staber, S. Da Veiga. "Kernel Stein Discrepancy thinning:
       a theoretical perspective of pathologies and a practical fix with
       regularization." NeurIPS 2023.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 2))
    >>> res = kn.stein_thinning(x, -x, 20)
    >>> res.indices.shape, res.indices.dtype
    ((20,), dtype('int64'))
    >>> bool(res.ksd[-1] < res.ksd[0])
    True
    >>> target = kn.Gaussian(np.zeros(2), 1.0)
    >>> reg = kn.stein_thinning(x, -x, 20, regularize=True, target=target)
    >>> reg.regularize
    0.05
    """
    if is_trace(sample):
        x, s = trace_draws_and_scores(sample, scores)
        x, s = x.reshape(-1, x.shape[-1]), s.reshape(-1, s.shape[-1])
    else:
        x = check_particles(sample, "sample")
        s = check_like(scores, x, "scores", "sample")
    m = check_positive_int(m, "m", minimum=1)
    H, scale, L = stein_matrix_from_sample(
        x, s, kernel=kernel, preconditioner=preconditioner, standardize=standardize, backend=backend
    )
    lam, logp, lap = _regularization(regularize, m, target, log_p, laplacian, x, scale)
    idx, totals = H._greedy(m, lap, logp, 0.0 if lam is None else lam)
    ksd = np.sqrt(np.maximum(totals, 0.0)) / np.arange(1, m + 1)
    return ThinningResult(
        indices=idx,
        ksd=ksd,
        preconditioner=L,
        scale=scale,
        kernel=kernel,
        regularize=lam,
        backend=H.backend,
    )


class GradientFreeThinningResult(Result):
    r"""Outcome of :func:`stein_thinning_gf`; fields are read as attributes or keys.

    Attributes
    ----------
    indices : ndarray of shape (m,), int64
        Rows of the sample, in the order they were picked (repeats allowed).
    ksd : ndarray of shape (m,)
        ``ksd[t - 1]`` is the gradient-free KSD of the first ``t`` picks,
        :math:`\sqrt{\sum_{a, b \le t} w_{i_a} w_{i_b} k_q(x_{i_a}, x_{i_b})} / t`
        in the kernel used for thinning, with the weights as used,
        :math:`w = e^{\ell}` for :math:`\ell` = ``log_weights`` (the smallest
        weight is 1: with :math:`\log p` and :math:`\log q` known up to
        constants, so is :math:`q / p`, and the discrepancy up to a factor).
    log_weights : ndarray of shape (n,)
        :math:`\log w_i - \min_j \log w_j`: ``log_q - log_p`` shifted to a
        minimum of 0 and capped at ``range_cap``, as the greedy loop used them.
    preconditioner : ndarray of shape (d, d)
        The matrix :math:`L` of the kernel, acting on differences of
        standardised points.
    scale : ndarray of shape (d,)
        The standardisation's scales (ones when ``standardize=False``).
    kernel : str
        ``"imq"`` or ``"gaussian"``.
    range_cap : float or None
    backend : str
        Where the greedy steps ran.
    """


def _check_range_cap(range_cap):
    if range_cap is None:
        return None
    if isinstance(range_cap, (bool, np.bool_)) or not isinstance(range_cap, numbers.Real):
        raise TypeError(f"range_cap must be None or a positive number, got {range_cap!r}")
    cap = float(range_cap)
    if not (np.isfinite(cap) and cap > 0):
        raise ValueError(f"range_cap must be positive and finite, got {range_cap!r}")
    return cap


def stein_thinning_gf(
    sample: ArrayLike,
    log_p: ArrayLike,
    log_q: ArrayLike,
    gradient_q: ArrayLike,
    m: int,
    *,
    standardize: bool = True,
    preconditioner: str | float | ArrayLike = "id",
    range_cap: float | None = None,
    kernel: str = "imq",
    backend: str = "auto",
) -> GradientFreeThinningResult:
    r"""Gradient-free Stein thinning: select ``m`` points without the target's score.

    When the score of the target :math:`p` is unavailable or expensive, the
    gradient-free KSD (Fisher and Oates 2023) uses the score of an auxiliary
    distribution :math:`q` (e.g. a Gaussian fitted to the sample) and corrects
    with the density ratio :math:`w = q / p`, known up to a constant from
    :math:`\log p` and :math:`\log q` at the points. The greedy selection of
    :func:`stein_thinning` then runs on the weighted Stein kernel of :math:`q`,

    .. math::

        i_t = \operatorname{argmin}_i \Big[ w_i^2 k_q(x_i, x_i)
            + 2 \sum_{s < t} w_i w_{i_s} k_q(x_i, x_{i_s}) \Big],
        \qquad \log w_i = \min\big(\ell_i - \min_j \ell_j,\ \mathrm{range\_cap}\big),
        \quad \ell = \log q - \log p,

    ties to the lowest index, each step one column of :math:`k_q` computed in
    O(n d) by the same compiled loop as :func:`stein_thinning` (never an
    ``n x n`` matrix). With :math:`q = p` it is plain Stein thinning.

    Parameters
    ----------
    sample : array_like of shape (n, d)
        The points.
    log_p : array_like of shape (n,) or (n, 1)
        :math:`\log p` at the points, up to an additive constant.
    log_q : array_like of shape (n,) or (n, 1)
        :math:`\log q` at the points, up to an additive constant.
    gradient_q : array_like of shape (n, d)
        :math:`\nabla \log q` at the points.
    m : int
        Number of points to pick, >= 1 (may exceed ``n``: points repeat).
    standardize : bool
        Divide each column by its mean absolute deviation (and multiply the
        scores by it) first, as stein-thinning does.
    preconditioner : str, float or array_like of shape (d, d)
        The kernel's matrix :math:`L`, as in :func:`stein_thinning`; the
        default ``"id"`` is stein-thinning's.
    range_cap : float, optional
        Cap the shifted :math:`\ell` at this value (> 0), so that no weight
        exceeds the smallest by more than :math:`e^{\mathrm{range\_cap}}`.
    kernel : {"imq", "gaussian"}
        Base kernel; ``"imq"`` is stein-thinning's.
    backend : {"auto", "cpu", "cuda"}
        Where the greedy steps run (:func:`stein_thinning`).

    Returns
    -------
    GradientFreeThinningResult
        ``indices``, ``ksd``, ``log_weights``, ``preconditioner``, ``scale``,
        ``kernel``, ``range_cap``, ``backend``.

    Raises
    ------
    ValueError
        If the sample or ``gradient_q`` are not finite ``(n, d)`` arrays of
        one shape, ``log_p`` or ``log_q`` are not finite with one value per
        point, ``m < 1``, ``range_cap`` is not positive, or the preconditioner
        or standardisation fail as in :func:`stein_thinning`.
    TypeError
        If ``m`` is not an integer, or ``range_cap`` or the preconditioner of
        the wrong type.

    Warns
    -----
    UserWarning
        When :math:`\ell` spans more than 10 (stein-thinning's warning): a few
        points then carry most of the weight; choose a :math:`q` closer to
        :math:`p`, or set ``range_cap``.

    See Also
    --------
    stein_thinning : with the target's own score.

    Notes
    -----
    With the same options, the indices of stein-thinning 0.2.0's
    ``stein_thinning.thinning.thin_gf`` (as int64 rather than uint32), with
    validation by ValueError instead of ``assert``.

    References
    ----------
    .. [1] M. A. Fisher, C. J. Oates. "Gradient-Free Kernel Stein
       Discrepancy." NeurIPS 2023.
    .. [2] M. Riabiz, W. Y. Chen, J. Cockayne, P. Swietach, S. A. Niederer,
       L. Mackey, C. J. Oates. "Optimal thinning of MCMC output." JRSS B 84(4),
       2022.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_t(10, size=(1000, 2))
    >>> log_p = -6.0 * np.log1p(np.sum(x**2, axis=1) / 10)  # unnormalised bivariate t
    >>> cov = np.cov(x, rowvar=False)                        # q: a fitted Gaussian
    >>> prec = np.linalg.inv(cov)
    >>> log_q = -0.5 * np.einsum("ij,jk,ik->i", x, prec, x)
    >>> from ksdnumba.thinning import stein_thinning_gf
    >>> res = stein_thinning_gf(x, log_p, log_q, -x @ prec, 20)
    >>> res.indices.shape
    (20,)
    >>> same = stein_thinning_gf(x, log_q, log_q, -x @ prec, 20)   # q = p
    >>> bool(np.all(same.indices == kn.stein_thinning(x, -x @ prec, 20,
    ...                                                preconditioner="id").indices))
    True
    """
    x = check_particles(sample, "sample")
    n = x.shape[0]
    gq = check_like(gradient_q, x, "gradient_q", "sample")
    m = check_positive_int(m, "m", minimum=1)
    lp = check_per_point(log_p, n, "log_p")
    lq = check_per_point(log_q, n, "log_q")
    cap = _check_range_cap(range_cap)
    ell = lq - lp
    if np.ptp(ell) > _WEIGHT_RANGE_WARNING:
        warnings.warn(
            f"log_q - log_p spans {np.ptp(ell):.3g} > {_WEIGHT_RANGE_WARNING:g}: a few points "
            "carry most of the weight; use a q closer to the target, or set range_cap",
            UserWarning,
            stacklevel=2,
        )
    ell = ell - np.min(ell)
    if cap is not None:
        np.clip(ell, a_min=None, a_max=cap, out=ell)
    H, scale, L = stein_matrix_from_sample(
        x,
        gq,
        kernel=kernel,
        preconditioner=preconditioner,
        standardize=standardize,
        backend=backend,
    )
    idx, totals = H._greedy(m, log_weights=ell)
    ksd = np.sqrt(np.maximum(totals, 0.0)) / np.arange(1, m + 1)
    return GradientFreeThinningResult(
        indices=idx,
        ksd=ksd,
        log_weights=ell,
        preconditioner=L,
        scale=scale,
        kernel=kernel,
        range_cap=cap,
        backend=H.backend,
    )
