"""KSD descent: move particles to minimise the squared Kernel Stein Discrepancy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._result import SamplingResult
from ._solvers import Run, fixed_step, lbfgs
from ._validation import (
    check_bw,
    check_callback,
    check_clamp,
    check_dtype,
    check_particles,
    check_positive_int,
    check_tolerance,
)
from .objective import make_objective


def ksdd_lbfgs(
    x0: ArrayLike,
    target: Any,
    *,
    kernel: str = "gaussian",
    bw: float | str = 1.0,
    beta: float = 0.5,
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
    r"""Sample by minimising the squared KSD of the particles with L-BFGS-B.

    The particles move to minimise the V-statistic

    .. math::

        F(x_1, \dots, x_n) = \frac{1}{n^2} \sum_{i,j=1}^n k_p(x_i, x_j),

    where :math:`k_p` is the Stein kernel of the target built on the base kernel
    (see :func:`ksd_and_grad`). The
    objective and its exact gradient (see :func:`ksd_and_grad`) are handed to
    :func:`scipy.optimize.minimize` with ``method="L-BFGS-B"``. During the solve
    BLAS is held to one thread (restored afterwards): its threads and numba's
    would otherwise compete for the same cores.

    Parameters
    ----------
    x0 : array_like of shape (n, d)
        Initial particles. KSD descent is deterministic and its minima depend on
        the initialisation (see the ``plot_minima`` example).
    target : object with ``score`` and ``hvp``, or callable
        The target distribution; a plain callable is taken as its score and
        wrapped in :class:`ScoreFunction` (Hessian-vector products then come
        from finite differences of the score).
    kernel : {"gaussian", "imq", "linear"}
        Base kernel: ``"gaussian"`` :math:`\exp(-|x - y|^2 / (2\,\mathrm{bw}))`,
        ``"imq"`` :math:`(1 + |x - y|^2 / \mathrm{bw})^{-\beta}`, ``"linear"``
        :math:`x \cdot y`.
    bw : float or "median"
        Bandwidth: squared length scale of the kernel, > 0. ``"median"`` takes
        :func:`median_bandwidth` of ``x0`` once, and keeps it for the whole run
        (the objective must not change under L-BFGS-B). Ignored by the linear
        kernel.
    beta : float
        Exponent of the IMQ kernel, in (0, 1); checked but unused by the others.
    max_iter : int
        Maximum number of L-BFGS-B iterations, >= 0. ``max_iter=0`` evaluates
        the objective at ``x0`` and returns. The number of evaluations is capped
        at ``2 * max_iter + 20``.
    ftol : float or None
        Stop when the relative decrease of the objective in one iteration is
        ``<= ftol`` (SciPy's L-BFGS-B ``ftol``; for an objective below 1, as
        KSD^2 mostly is, SciPy divides by 1, so the decrease is absolute).
        None: ``1e-12``, or ``1e-10`` where the objective computes in float32
        (the same rule in every L-BFGS-B sampler): float32 sums are good to
        about 1e-6 relative, and with ``1e-12`` a run could go on until its
        line search failed in float32's rounding. To go further, continue from
        ``res.x`` in float64.
    gtol : float
        Stop when the largest component of the projected gradient is
        ``<= gtol`` (SciPy's L-BFGS-B ``gtol``). The default is tight enough
        for runs in float64 to reach the minimum, not merely its
        neighbourhood.
    dtype : {np.float64, np.float32}
        dtype of the particles passed to the target and returned. With float32
        and at least 1000 particles, the CPU's pair sums compute in float32
        within tiles (d >= 6) or blocks of partners, summed in float64 across
        them; IMQ with beta other than 1/2 at d <= 5, fewer particles and the
        linear kernel compute in float64 whatever the dtype. The CUDA kernels
        compute in this dtype, summing in float64 across tiles. L-BFGS-B
        itself always works in float64, on the host.
    backend : {"auto", "cpu", "cuda"}
        Where the pair sums run: ``"cpu"`` (numba, threaded), ``"cuda"`` (an
        NVIDIA GPU through numba.cuda; needs numba-cuda) or ``"auto"``, the
        package's one rule: the GPU when numba can use one and there are at
        least 2048**2 pairs in at most 2048 dimensions, else the CPU.
    store : bool
        Keep every iterate (``res.trajectory``) and its time (``res.times``).
    callback : callable or None
        Called as ``callback(x)`` with a copy of the particles, shape ``(n, d)``,
        at the start and after each iteration; returning True stops the run.
    verbose : bool or int
        Print the objective every ``verbose`` iterations (True: every 100).
    progress : bool
        Draw a progress bar over the iterations (tqdm's where installed).

    Returns
    -------
    SamplingResult
        ``x`` (final particles), ``fun`` (final squared KSD), ``nit``, ``nfev``,
        ``success``, ``status``, ``message``, ``history`` (objective at the start
        and after each iteration), ``trajectory`` and ``times`` (with
        ``store=True``, else None).

    Notes
    -----
    If the target's score or HVP fails at ``x0`` (it raises, returns the wrong
    shape, or NaN or infinite values), a ``ValueError`` says so. If that
    happens later in the run, the run stops and returns the last finite
    iterate with ``success=False``, ``status=-1`` and a message that says at
    which iteration and what happened; no non-finite value reaches ``res.x``.
    Interrupted (Ctrl-C), the run returns its last iterate with
    ``success=False``, ``status=-2`` and a warning, as PyMC's sampler keeps
    its draws; inside :func:`sweep` an interrupt stops the whole sweep.

    References
    ----------
    .. [1] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel Stein
       Discrepancy Descent." ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> target = kn.Gaussian(np.zeros(1), 1.0)
    >>> x0 = np.random.default_rng(0).uniform(-3, 3, size=(50, 1))
    >>> res = kn.ksdd_lbfgs(x0, target, bw=1.0)
    >>> res.success, res.x.shape
    (True, (50, 1))
    >>> bool(res.fun < res.history[0])
    True
    """
    dtype = check_dtype(dtype)
    x0 = check_particles(x0, "x0", dtype)
    objective, _ = make_objective(x0, target, kernel, bw, beta, backend, "x0")
    max_iter = check_positive_int(max_iter, "max_iter")
    if ftol is None:
        ftol = 1e-10 if objective.computes_in_float32(x0) else 1e-12
    ftol = check_tolerance(ftol, "ftol")
    gtol = check_tolerance(gtol, "gtol")
    check_callback(callback)
    run = Run(
        x0.shape,
        dtype,
        bool(store),
        callback,
        verbose,
        "ksdd_lbfgs",
        progress=progress,
        max_iter=max_iter,
    )
    return lbfgs(objective.value_and_grad, x0, run, max_iter, ftol, gtol)


def ksdd_gradient(
    x0: ArrayLike,
    target: Any,
    *,
    step: float,
    kernel: str = "gaussian",
    bw: float | str = 1.0,
    beta: float = 0.5,
    max_iter: int = 1000,
    gtol: float = 1e-9,
    clamp: tuple[float, float] | None = None,
    dtype: Any = np.float64,
    backend: str = "auto",
    store: bool = False,
    callback: Callable[[np.ndarray], Any] | None = None,
    verbose: bool | int = False,
    progress: bool = False,
) -> SamplingResult:
    r"""Sample by fixed-step gradient descent on the squared KSD of the particles.

    Each iteration moves every particle against the gradient of the objective
    of :func:`ksdd_lbfgs`, the V-statistic
    :math:`F(x) = \frac{1}{n^2} \sum_{i,j} k_p(x_i, x_j)`:

    .. math::

        x^{(k+1)} = \Pi\big(x^{(k)} - \mathrm{step}\, \nabla F(x^{(k)})\big),

    where :math:`\Pi` clips every coordinate into ``clamp = (low, high)``
    (the identity without ``clamp``). This is the time discretisation of the
    KSD gradient flow; :func:`ksdd_lbfgs` reaches the same minima in far fewer
    evaluations and needs no step, so prefer it unless the path itself
    matters.

    Parameters
    ----------
    x0 : array_like of shape (n, d)
        Initial particles; inside the box when ``clamp`` is given.
    target : object with ``score`` and ``hvp``, or callable
        The target distribution; a plain callable is taken as its score and
        wrapped in :class:`ScoreFunction`.
    step : float
        Step size, > 0. The gradient of a particle is of order ``1 / n`` (it
        is one particle's share of a mean over pairs), so useful steps grow
        with ``n``; too large a step makes the objective oscillate or diverge.
    kernel : {"gaussian", "imq", "linear"}
        Base kernel (see :func:`ksdd_lbfgs`).
    bw : float or "median"
        Bandwidth, squared length scale, > 0; ``"median"`` takes
        :func:`median_bandwidth` of ``x0`` once, for the whole run. Ignored by
        the linear kernel.
    beta : float
        Exponent of the IMQ kernel, in (0, 1).
    max_iter : int
        Maximum number of steps, >= 0.
    gtol : float
        Stopping rule: the run stops, with ``success=True``, at the first
        iterate where the largest component of the projected gradient is
        ``<= gtol`` (the test of SciPy's L-BFGS-B ``gtol``). The projected
        gradient is the gradient with the components that would push a
        coordinate already on a bound of ``clamp`` further out set to 0: a
        fixed point of the clipped step has a zero projected gradient.
        ``gtol=0`` runs all ``max_iter`` steps (unless the gradient is exactly
        0).
    clamp : (float, float) or None
        ``(low, high)``, finite with ``low < high``: after each step every
        coordinate of every particle is clipped into ``[low, high]``.
    dtype : {np.float64, np.float32}
        dtype of the particles passed to the target and returned.
    backend : {"auto", "cpu", "cuda"}
        Where the pair sums run (see :func:`ksdd_lbfgs`).
    store : bool
        Keep every iterate (``res.trajectory``) and its time (``res.times``).
    callback : callable or None
        Called as ``callback(x)`` with a copy of the particles at the start and
        after each step; returning True stops the run.
    verbose : bool or int
        Print the objective every ``verbose`` iterations (True: every 100).
    progress : bool
        Draw a progress bar over the iterations (tqdm's where installed).

    Returns
    -------
    SamplingResult
        ``x``, ``fun`` (squared KSD at ``x``), ``nit`` (steps taken), ``nfev``
        (evaluations of the objective and its gradient, ``nit + 1``),
        ``success`` (True only when the ``gtol`` test passed), ``status`` (0:
        converged, 1: ``max_iter`` reached, 99: stopped by the callback, -1:
        non-finite values, -2: interrupted), ``message``, ``history`` (squared KSD at the start
        and after each step), ``trajectory`` and ``times`` (with
        ``store=True``).

    Raises
    ------
    ValueError
        If ``step`` is not positive and finite, ``clamp`` is not a finite pair
        with ``low < high``, ``x0`` lies outside the box, or for the reasons of
        :func:`ksdd_lbfgs` (including a target that is not finite at ``x0``).
    TypeError
        If ``step`` or a bound of ``clamp`` is not a real number.

    Notes
    -----
    If the target fails after some steps (it raises, returns the wrong shape,
    or NaN or infinite values), or a step makes the particles overflow, the run
    stops and returns the last finite iterate with ``success=False``,
    ``status=-1`` and a message that says in which iteration and what
    happened.

    References
    ----------
    .. [1] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel Stein
       Discrepancy Descent." ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> target = kn.Gaussian(np.zeros(1), 1.0)
    >>> x0 = np.random.default_rng(0).uniform(-3, 3, size=(50, 1))
    >>> res = kn.ksdd_gradient(x0, target, step=5.0, max_iter=200, clamp=(-3, 3))
    >>> res.x.shape, res.nit
    ((50, 1), 200)
    >>> bool(res.fun < res.history[0])
    True
    """
    dtype = check_dtype(dtype)
    x0 = check_particles(x0, "x0", dtype)
    step = check_bw(step, "step")
    clamp = check_clamp(clamp)
    if clamp is not None and (x0.min() < clamp[0] or x0.max() > clamp[1]):
        raise ValueError(
            f"x0 has coordinates outside clamp={clamp}: its range is "
            f"[{x0.min():.6g}, {x0.max():.6g}]; clip it first, np.clip(x0, *clamp)"
        )
    objective, _ = make_objective(x0, target, kernel, bw, beta, backend, "x0")
    max_iter = check_positive_int(max_iter, "max_iter")
    gtol = check_tolerance(gtol, "gtol")
    check_callback(callback)

    def evaluate(x):
        f, g = objective.value_and_grad(x)
        projected = g
        if clamp is not None:
            projected = np.where(((x <= clamp[0]) & (g > 0)) | ((x >= clamp[1]) & (g < 0)), 0.0, g)
        return f, g, bool(np.max(np.abs(projected)) <= gtol)

    def advance(x, g, k):
        x = x - step * g
        if clamp is not None:
            np.clip(x, clamp[0], clamp[1], out=x)
        return x.astype(dtype, copy=False)

    run = Run(
        x0.shape,
        dtype,
        bool(store),
        callback,
        verbose,
        "ksdd_gradient",
        progress=progress,
        max_iter=max_iter,
    )
    message = "converged: the largest component of the projected gradient is <= gtol"
    return fixed_step(evaluate, advance, x0, run, max_iter, message)
