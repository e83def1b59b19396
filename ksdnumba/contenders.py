r"""The contenders of KSD descent: SVGD and MMD descent.

Korba et al. (2021) compare KSD descent with two other particle methods, and
this module provides them with the same conventions (Gaussian kernel
:math:`k(x, y) = e^{-|x - y|^2 / (2\,\mathrm{bw})}`, one
:class:`SamplingResult`, ``store``/``callback``/``verbose`` as in
:func:`ksdd_lbfgs`):

- :func:`svgd`, Stein variational gradient descent, needs only the score of
  the target and moves the particles along a fixed-step direction; it has no
  objective.
- :func:`mmd_lbfgs` needs samples of the target instead of its score, and
  minimises the squared maximum mean discrepancy to them with L-BFGS-B.

Both pair sums run in the numba kernels of :mod:`ksdnumba.kernels._cpu`, or
of :mod:`ksdnumba.kernels._cuda` on a GPU, in O(n d) memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._bandwidth import median_bandwidth, resolve_bw
from ._result import SamplingResult
from ._solvers import Run, fixed_step, lbfgs
from ._validation import (
    EvaluationError,
    NonFiniteError,
    call_target,
    check_bw,
    check_callback,
    check_dtype,
    check_finite_field,
    check_option,
    check_particles,
    check_positive_int,
    check_samples,
    check_tolerance,
)
from .kernels import _cpu
from .kernels._backend import kernels, resolve_backend
from .targets import as_score_target

__all__ = ["mmd_lbfgs", "svgd"]

OPTIMIZERS = ("sgd", "adagrad")
# SVGD's own bandwidth rule beside the package's "median" (at x0, once).
MEDIAN_PER_ITERATION = "median-per-iteration"

# The adaptive step of Liu and Wang's reference implementation (python/svgd.py of
# dilinwang820/Stein-Variational-Gradient-Descent): its "adagrad with momentum".
_ADAGRAD_ALPHA = 0.9
_ADAGRAD_FUDGE = 1e-6


def svgd(
    x0: ArrayLike,
    target: Any,
    *,
    step: float,
    bw: float | str = 1.0,
    max_iter: int = 1000,
    gtol: float = 1e-6,
    optimizer: str = "sgd",
    dtype: Any = np.float64,
    backend: str = "auto",
    store: bool = False,
    callback: Callable[[np.ndarray], Any] | None = None,
    verbose: bool | int = False,
    progress: bool = False,
) -> SamplingResult:
    r"""Sample with Stein variational gradient descent (SVGD), Gaussian kernel.

    Every iteration moves each particle along the SVGD direction

    .. math::

        \phi(x_i) = \frac{1}{n} \sum_{j=1}^n \left[ k(x_j, x_i)\, s(x_j)
            + \nabla_{x_j} k(x_j, x_i) \right],
        \qquad k(x, y) = e^{-|x - y|^2 / (2\,\mathrm{bw})},

    (a kernel-smoothed score, which pulls the particles to the modes, plus a
    repulsion between them), with ``optimizer="sgd"``:

    .. math:: x_i \leftarrow x_i + \mathrm{step}\ \phi(x_i).

    With ``optimizer="adagrad"`` the step is that of the reference
    implementation of Liu and Wang (2016) ("adagrad with momentum"): with
    :math:`\phi^2` taken element-wise, :math:`G = \phi^2` at the first
    iteration and :math:`G \leftarrow 0.9\, G + 0.1\, \phi^2` afterwards, and

    .. math:: x \leftarrow x + \mathrm{step}\ \frac{\phi}{10^{-6} + \sqrt{G}}.

    Parameters
    ----------
    x0 : array_like of shape (n, d)
        Initial particles.
    target : object with ``score``, or callable
        The target distribution; only its score is used (no ``hvp`` needed). A
        plain callable is taken as the score.
    step : float
        Step size, > 0.
    bw : float, "median" or "median-per-iteration"
        Bandwidth, the squared length scale of the kernel, > 0. ``"median"``
        takes :func:`median_bandwidth` of ``x0`` once, for the whole run, as
        every sampler of the package does; ``"median-per-iteration"``
        re-estimates it at every iteration on the current particles. Both are
        the package's median heuristic (the median squared distance), not the
        SVGD paper's (see Notes); they need ``n >= 2``.
    max_iter : int
        Maximum number of iterations, >= 0.
    gtol : float
        Stopping rule: the run stops, with ``success=True``, at the first
        iterate where the largest component of the direction :math:`\phi` is
        ``<= gtol`` (the test of :func:`ksdd_gradient` and of SciPy's
        L-BFGS-B). ``gtol=0`` runs all ``max_iter`` iterations (unless the
        direction is exactly 0).
    optimizer : {"sgd", "adagrad"}
        The update: the plain step above, or the adaptive one.
    dtype : {np.float64, np.float32}
        dtype of the particles passed to the target and returned. On the CPU
        the direction is computed in float64, except on the GEMM-tiled path
        (from d = 16 and n = 2000), whose tiles take this dtype and are summed
        in float64; on the GPU it is computed in this dtype.
    backend : {"auto", "cpu", "cuda"}
        Where the pair sums run (see :func:`ksdd_lbfgs`).
    store : bool
        Keep every iterate (``res.trajectory``) and its time (``res.times``).
    callback : callable or None
        Called as ``callback(x)`` with a copy of the particles at the start and
        after each iteration; returning True stops the run.
    verbose : bool or int
        Print :math:`\|\phi\|_F^2` every ``verbose`` iterations (True: every
        100).
    progress : bool
        Draw a progress bar over the iterations (tqdm's where installed).

    Returns
    -------
    SamplingResult
        ``x``; ``fun``, :math:`\|\phi(x)\|_F^2` at the final particles (SVGD
        minimises no objective: this is the quantity of its stopping rule,
        which vanishes at its fixed points); ``nit``; ``nfev`` (evaluations of
        the score and the direction, ``nit + 1``); ``success`` (True only when
        the ``gtol`` test passed); ``status`` (0: converged, 1: ``max_iter``
        reached, 99: stopped by the callback, -1: the score failed or the
        particles became non-finite, -2: interrupted);
        ``message``; ``history``, :math:`\|\phi\|_F^2` at the start and after
        each iteration; ``trajectory`` and ``times`` (with ``store=True``).

    Raises
    ------
    ValueError
        If ``step`` is not positive and finite, ``optimizer`` is unknown, the
        target's score is not finite at ``x0``, or for the reasons of
        :func:`ksdd_lbfgs`.
    TypeError
        If ``target`` has no ``score`` and is not callable.

    Notes
    -----
    **Bandwidth.** Liu and Wang (2016) take :math:`k = e^{-|x - y|^2 / h}`
    with :math:`h = \mathrm{med}^2 / \log n` (med: the median distance between
    the particles), so that each far particle weighs about :math:`1 / n` in
    :math:`\sum_j k(x_i, x_j)`. In this package's convention
    (:math:`h = 2\,\mathrm{bw}`) that is ``median_bandwidth(x) / (2 * log(n))``:
    :math:`2 \log n` times (9.2 times for 100 particles) narrower than
    ``bw="median"`` here, which keeps the package-wide meaning of "median".
    The choice matters: on N(0, 1) the paper's narrower kernel stops on
    particles whose spread is visibly too small, the package's does not
    (``examples/plot_simple_gaussian.py`` compares them). Liu and Wang's
    reference code takes the median over the full :math:`n \times n` matrix
    of distances (zeros of the diagonal included) and divides by
    :math:`\log(n + 1)` instead.

    **Adaptive step.** The ``"adagrad"`` update divides each coordinate of
    :math:`\phi` by a running root mean square of its own past values, so
    each particle moves by about ``step`` per iteration however small
    :math:`\phi` is: near the fixed point the particles keep jittering with
    an amplitude of order ``step``, and the ``gtol`` test rarely passes. It
    moves a badly scaled start quickly; take a small ``step`` (0.01 to 0.1).

    If the score fails after some iterations (it raises, returns the wrong
    shape, or NaN or infinite values), or a step makes the particles overflow,
    the run stops and returns the last finite iterate with ``success=False``,
    ``status=-1`` and a message that says in which iteration and what
    happened.

    References
    ----------
    .. [1] Q. Liu, D. Wang. "Stein Variational Gradient Descent: A General
       Purpose Bayesian Inference Algorithm." NeurIPS 2016.
    .. [2] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel Stein
       Discrepancy Descent." ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> target = kn.Gaussian(np.zeros(1), 1.0)
    >>> x0 = np.random.default_rng(0).uniform(-3, 3, size=(100, 1))
    >>> res = kn.svgd(x0, target, step=2.0, bw=1.0, gtol=1e-4, max_iter=5000)
    >>> res.success, res.nit < 5000
    (True, True)
    >>> round(float(res.x.var()), 2)
    0.99
    """
    dtype = check_dtype(dtype)
    x0 = check_particles(x0, "x0", dtype)
    target = as_score_target(target)
    d = getattr(target, "n_dims", None)
    if d is not None and d != x0.shape[1]:
        raise ValueError(
            f"x0 has {x0.shape[1]} columns (dimensions) but the target is {d}-dimensional"
        )
    step = check_bw(step, "step")
    median = bw == MEDIAN_PER_ITERATION
    # Checks the name, and that the heuristic works at x0 (n >= 2, distinct points).
    bw = resolve_bw("median" if median else bw, x0)
    max_iter = check_positive_int(max_iter, "max_iter")
    gtol = check_tolerance(gtol, "gtol")
    optimizer = check_option(optimizer, "optimizer", OPTIMIZERS)
    pair_sums = kernels(resolve_backend(backend, x0.shape[0] ** 2, x0.shape[1]))
    check_callback(callback)

    def evaluate(x):
        s = check_finite_field(call_target(target.score, "score", x), x, "score")
        try:
            h = median_bandwidth(x) if median else bw
        except ValueError as exc:  # the particles have collapsed onto each other
            raise EvaluationError(f"bw='median' failed: {exc}") from exc
        phi = pair_sums.gaussian_svgd_direction(x, s, h)
        sq_norm = float(np.einsum("ij,ij->", phi, phi))
        if not np.isfinite(sq_norm):
            raise NonFiniteError("the SVGD direction is not finite")
        return sq_norm, phi, bool(np.max(np.abs(phi)) <= gtol)

    history = []

    def advance(x, phi, k):
        if optimizer == "adagrad":
            if k == 0:
                history.append(phi * phi)
            else:
                history[0] *= _ADAGRAD_ALPHA
                history[0] += (1.0 - _ADAGRAD_ALPHA) * (phi * phi)
            phi = phi / (_ADAGRAD_FUDGE + np.sqrt(history[0]))
        return (x + step * phi).astype(dtype, copy=False)

    run = Run(
        x0.shape,
        dtype,
        bool(store),
        callback,
        verbose,
        "svgd",
        "|direction|^2",
        progress=progress,
        max_iter=max_iter,
    )
    return fixed_step(
        evaluate,
        advance,
        x0,
        run,
        max_iter,
        "converged: the largest component of the direction is <= gtol",
    )


class _MMD:
    """Squared MMD to fixed samples ``y``, as a function of the particles."""

    def __init__(self, y, bw, pair_sums=_cpu):
        self.y = y
        self.bw = bw
        self.pair_sums = pair_sums
        m = y.shape[0]
        kyy, _ = pair_sums.gaussian_kernel_sums(y, y, bw)
        self.mean_kyy = kyy / m**2

    def value_and_grad(self, x):
        n, m = x.shape[0], self.y.shape[0]
        kxx, gxx = self.pair_sums.gaussian_kernel_sums(x, x, self.bw)
        kxy, gxy = self.pair_sums.gaussian_kernel_sums(x, self.y, self.bw)
        value = kxx / n**2 - 2.0 * kxy / (n * m) + self.mean_kyy
        gxx *= -2.0 / (n**2 * self.bw)
        gxx += (2.0 / (n * m * self.bw)) * gxy
        if not (np.isfinite(value) and np.isfinite(gxx).all()):
            raise NonFiniteError("the MMD objective or its gradient is not finite")
        return value, gxx


def mmd_lbfgs(
    x0: ArrayLike,
    target_samples: ArrayLike,
    *,
    bw: float | str = 1.0,
    max_iter: int = 10000,
    ftol: float | None = None,
    gtol: float = 1e-9,
    dtype: Any = np.float64,
    backend: str = "auto",
    store: bool = False,
    callback: Callable[[np.ndarray], Any] | None = None,
    verbose: bool | int = False,
    progress: bool = False,
) -> SamplingResult:
    r"""Sample by minimising the squared MMD to target samples with L-BFGS-B.

    The particles :math:`x_1, \dots, x_n` move to minimise the squared maximum
    mean discrepancy to fixed samples :math:`y_1, \dots, y_m` of the target,

    .. math::

        \mathrm{MMD}^2(x) = \frac{1}{n^2} \sum_{i,j} k(x_i, x_j)
            - \frac{2}{n m} \sum_{i,j} k(x_i, y_j)
            + \frac{1}{m^2} \sum_{i,j} k(y_i, y_j),
        \qquad k(x, y) = e^{-|x - y|^2 / (2\,\mathrm{bw})},

    (means, so ``n`` and ``m`` may differ) whose gradient is, in closed form,

    .. math::

        \nabla_{x_i} \mathrm{MMD}^2 = -\frac{2}{n^2\,\mathrm{bw}} \sum_j k(x_i, x_j)
            (x_i - x_j) + \frac{2}{n m\,\mathrm{bw}} \sum_j k(x_i, y_j) (x_i - y_j).

    The solver is the one of :func:`ksdd_lbfgs` (SciPy's L-BFGS-B, BLAS held
    to one thread during the solve).

    Parameters
    ----------
    x0 : array_like of shape (n, d)
        Initial particles.
    target_samples : array_like of shape (m, d)
        Samples of the target; the method needs no score.
    bw : float or "median"
        Bandwidth, squared length scale, > 0; ``"median"`` takes
        :func:`median_bandwidth` of ``x0`` once, as every sampler does
        (``kn.median_bandwidth(target_samples)`` gives the target's).
    max_iter : int
        Maximum number of L-BFGS-B iterations, >= 0.
    ftol : float or None
        SciPy's L-BFGS-B ``ftol``; None: ``1e-12``, or ``1e-10`` where the
        objective computes in float32 (the rule of :func:`ksdd_lbfgs`).
    gtol : float
        SciPy's L-BFGS-B ``gtol`` (see :func:`ksdd_lbfgs`).
    dtype : {np.float64, np.float32}
        dtype of the particles returned.
    backend : {"auto", "cpu", "cuda"}
        Where the pair sums run (see :func:`ksdd_lbfgs`).
    store : bool
        Keep every iterate (``res.trajectory``) and its time (``res.times``).
    callback : callable or None
        Called as ``callback(x)`` with a copy of the particles at the start and
        after each iteration; returning True stops the run.
    verbose : bool or int
        Print the objective every ``verbose`` iterations (True: every 100).
    progress : bool
        Draw a progress bar over the iterations (tqdm's where installed).

    Returns
    -------
    SamplingResult
        As :func:`ksdd_lbfgs`, with ``fun`` and ``history`` the squared MMD.

    Raises
    ------
    ValueError
        If ``target_samples`` is not a finite non-empty 2-D array with as many
        columns as ``x0``, or for the reasons of :func:`ksdd_lbfgs`.

    References
    ----------
    .. [1] M. Arbel, A. Korba, A. Salim, A. Gretton. "Maximum Mean Discrepancy
       Gradient Flow." NeurIPS 2019.
    .. [2] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel Stein
       Discrepancy Descent." ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(200, 2))
    >>> res = kn.mmd_lbfgs(rng.uniform(-3, 3, size=(50, 2)), y, bw=0.5)
    >>> res.success, res.x.shape
    (True, (50, 2))
    >>> bool(res.fun < 0.01 * res.history[0])
    True
    """
    dtype = check_dtype(dtype)
    x0 = check_particles(x0, "x0", dtype)
    y = check_samples(target_samples, x0, "target_samples")
    bw = resolve_bw(bw, x0)
    max_iter = check_positive_int(max_iter, "max_iter")
    n, m = x0.shape[0], y.shape[0]
    resolved = resolve_backend(backend, max(n, m) ** 2, x0.shape[1])
    if ftol is None:
        in32 = dtype == np.float32 and (
            resolved == "cuda" or _cpu.cross_computes_in_float32(n, m, x0.shape[1])
        )
        ftol = 1e-10 if in32 else 1e-12
    ftol = check_tolerance(ftol, "ftol")
    gtol = check_tolerance(gtol, "gtol")
    pair_sums = kernels(resolved)
    check_callback(callback)
    objective = _MMD(y, bw, pair_sums)
    run = Run(
        x0.shape,
        dtype,
        bool(store),
        callback,
        verbose,
        "mmd_lbfgs",
        progress=progress,
        max_iter=max_iter,
    )
    return lbfgs(objective.value_and_grad, x0, run, max_iter, ftol, gtol)
