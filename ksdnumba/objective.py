r"""The KSD objective: pair sums from a kernel backend, chained through the target.

This is the only module that joins targets and kernels. For particles
:math:`x_1, \dots, x_n` with scores :math:`s_i = \nabla \log p(x_i)`, the objective
is the V-statistic

.. math::

    \mathrm{KSD}^2(x) = \frac{1}{n^2} \sum_{i, j} k_p(x_i, x_j),

and, since the Stein kernel :math:`k_p` is symmetric, its gradient is

.. math::

    \nabla_{x_i} \mathrm{KSD}^2 = \frac{2}{n^2} \sum_j \nabla_x k_p(x_i, x_j)
        + H(x_i) \, g_i, \qquad
    g_i = \frac{2}{n^2} \sum_j \frac{\partial k_p(x_i, x_j)}{\partial s(x_i)},

where :math:`H = \nabla^2 \log p` is applied through the target's ``hvp``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from ._bandwidth import resolve_bw
from ._caching import cache_depends_on
from ._validation import (
    NonFiniteError,
    call_target,
    check_beta,
    check_field,
    check_finite_field,
    check_option,
    check_particles,
    check_target_dims,
)
from .kernels import _cpu
from .kernels._backend import kernels, resolve_backend
from .kernels._kinds import KINDS, RADIAL
from .targets import _mixtures, as_target
from .targets._mixtures import diagonal_mixture_hvp, diagonal_mixture_terms

KERNELS = tuple(KINDS)


def _kernel_sums(kernel, backend):
    """``sums(x, s, bw, beta) -> (total, gx, gs)`` for one kernel on one resolved backend.

    The linear kernel has no pair loop: O(n d^2) NumPy on the host, whatever the
    backend.
    """
    if kernel == "linear":
        return lambda x, s, bw, beta: _cpu.linear_stein_sums(x, s)
    module = kernels(backend)
    if kernel == "gaussian":
        return lambda x, s, bw, beta: module.gaussian_stein_sums(x, s, bw)
    return module.imq_stein_sums


@njit(cache=True)
def _diagonal_mixture_objective(x, means, precision, log_norm, kind, bw, beta):
    """Value (unnormalised) and gradient for a diagonal mixture, in one compiled call.

    The same steps as :meth:`SteinObjective.value_and_grad`, with the same
    functions in the same order: at tens of particles, the calls between Python
    and the compiled pieces (each array they return costs about a microsecond
    to box) took as long as the pair sums.
    """
    n = x.shape[0]
    resp, comp, s = diagonal_mixture_terms(x, means, precision, log_norm)
    gx = np.empty(x.shape)
    gs = np.empty(x.shape)
    total = _cpu.radial_sums_serial(
        np.ascontiguousarray(x.T), np.ascontiguousarray(s.T), kind, bw, beta, gx, gs, 1
    )
    c = 2.0 / n**2
    gs *= c
    gx *= c
    gx += diagonal_mixture_hvp(gs, precision, resp, comp, s)
    return total, gx


# The CPU backend is a package: stamp each file whose compiled functions the
# objective inlines, not only its __init__.
cache_depends_on(_diagonal_mixture_objective, *_cpu.SOURCES, _mixtures)


def _fused_mixture(target, kernel, backend):
    """The arguments of :func:`_diagonal_mixture_objective` for `target`, or None.

    Through the target's ``compiled_terms`` hook (diagonal Gaussian mixtures).
    """
    hook = getattr(target, "compiled_terms", None)
    if hook is None or kernel not in RADIAL or backend != "cpu":
        return None
    arrays = hook()
    return None if arrays is None else (*arrays, KINDS[kernel])


class SteinObjective:
    """The squared KSD of one target, kernel and bandwidth, as a function of ``x``.

    Solvers build one and call it many times; it does not re-validate the
    parameters on each call, only the target's outputs (shape and finiteness),
    which can go wrong anywhere in a run.

    Parameters
    ----------
    target : object with ``score`` and ``hvp``
        Already passed through :func:`ksdnumba.targets.as_target`.
    kernel : str
        One of :data:`KERNELS`.
    bw : float
        Bandwidth (squared length scale), already resolved and checked.
    beta : float
        Exponent of the IMQ kernel, already checked.
    backend : {"cpu", "cuda"}
        Where the pair sums run, already resolved
        (:func:`ksdnumba.kernels._backend.resolve_backend`).
    """

    def __init__(self, target, kernel, bw, beta, backend):
        self.target = target
        self.kernel = kernel
        self.bw = bw
        self.beta = beta
        self.backend = backend
        self._sums = _kernel_sums(kernel, backend)
        self._score_and_hvp = getattr(target, "score_and_hvp", None)
        self._fused = _fused_mixture(target, kernel, backend)

    def computes_in_float32(self, x):
        """Whether the pair sums at float32 particles like ``x`` compute in float32.

        True on the GPU; on the CPU where the GEMM-tiled path runs, and on the
        direct rows from n = 1000 on (Gaussian kernel, IMQ with beta = 1/2).
        The linear kernel computes in float64 whatever the dtype.
        """
        if x.dtype != np.float32 or self.kernel == "linear":
            return False
        if self.backend == "cuda":
            return True
        n, d = x.shape
        return _cpu.computes_in_float32(KINDS[self.kernel], n, d, self.beta)

    def score(self, x):
        """The target's score at ``x``, checked for shape and finiteness."""
        return check_finite_field(call_target(self.target.score, "score", x), x, "score")

    def value_and_grad(self, x):
        """V-statistic at ``x`` and its gradient, shape ``(n, d)``, float64.

        Raises
        ------
        EvaluationError
            If the target's score or HVP raises, returns the wrong shape, or is
            not finite (:class:`NonFiniteError`), or the result is not finite.
        """
        n = x.shape[0]
        if self._fused is not None and n <= _cpu.SERIAL_MAX_N and x.dtype == np.float64:
            means, precision, log_norm, kind = self._fused
            total, grad = _diagonal_mixture_objective(
                x, means, precision, log_norm, kind, self.bw, self.beta
            )
            if math.isfinite(total) and math.isfinite(grad.sum()):
                return total / n**2, grad
            # Not finite: the general path below finds the culprit and says so.
        if self._score_and_hvp is not None:
            s, hvp_at_x = call_target(self._score_and_hvp, "score_and_hvp", x)
        else:
            s = call_target(self.target.score, "score", x)
            hvp_at_x = partial(self.target.hvp, x)
        s = check_field(s, x, "score")
        total, gx, gs = self._sums(x, s, self.bw, self.beta)
        # A NaN or inf in the scores always reaches the total (each particle's
        # pair with itself holds |s_i|^2), so the scores' finiteness is looked at
        # only when the total is not finite: two passes over the arrays fewer per
        # evaluation, which count at small n.
        if not math.isfinite(total):
            check_finite_field(s, x, "score")
            raise _overflow()
        c = 2.0 / n**2
        gs *= c
        hv = check_field(call_target(hvp_at_x, "hvp", gs.astype(x.dtype, copy=False)), x, "hvp")
        gx *= c
        gx += hv  # a NaN or inf in the HVP reaches the gradient
        # The sum is not finite if an entry is not (and may overflow when all are).
        if not math.isfinite(gx.sum()) and not np.isfinite(gx).all():
            check_finite_field(hv, x, "hvp")
            raise _overflow()
        return total / n**2, gx


def _overflow():
    return NonFiniteError(
        "the KSD objective or its gradient is not finite although the target's "
        "outputs are; the particles or scores are too large for float64"
    )


def _particles_dtype(x):
    dtype = getattr(x, "dtype", None)
    return np.float32 if dtype == np.float32 else np.float64


def make_objective(x, target, kernel, bw, beta, backend, name="x"):
    """Check the arguments shared by the descent entry points and build the objective.

    ``x`` must already be a checked particle array; ``bw="median"`` is resolved
    at ``x``. Returns the objective and the target as :func:`as_target` made it.
    """
    target = as_target(target)
    check_target_dims(target, x, name)
    kernel = check_option(kernel, "kernel", KERNELS)
    beta = check_beta(beta)
    # The linear kernel has no bandwidth: bw is ignored (and not resolved) there.
    bw = 1.0 if kernel == "linear" else resolve_bw(bw, x)
    backend = resolve_backend(backend, x.shape[0] ** 2, x.shape[1])
    return SteinObjective(target, kernel, bw, beta, backend), target


def ksd_and_grad(
    x: ArrayLike,
    target: Any,
    *,
    kernel: str = "gaussian",
    bw: float | str = 1.0,
    beta: float = 0.5,
    backend: str = "auto",
) -> tuple[float, np.ndarray]:
    r"""Squared KSD (V-statistic) of the particles and its gradient.

    This is the objective minimised by :func:`ksdnumba.ksdd_lbfgs`, exposed for
    use with any optimiser.

    .. math::

        \mathrm{KSD}^2(x) = \frac{1}{n^2} \sum_{i,j=1}^n k_p(x_i, x_j),
        \quad
        k_p(x, y) = s(x)^\top s(y) k(x, y) + s(x)^\top \nabla_y k(x, y)
        + s(y)^\top \nabla_x k(x, y) + \nabla_x \cdot \nabla_y k(x, y),

    with :math:`s = \nabla \log p` and the base kernel :math:`k`. The gradient is
    exact: closed-form pair sums, chained through the target's Hessian-vector
    product.

    Parameters
    ----------
    x : array_like of shape (n, d)
        Particles. float32 input is kept as float32 for the target's calls.
        On the CPU, from n = 1000 particles on, float32 particles make the
        pair sums compute in float32 within tiles (d >= 6) or blocks of
        partners (d <= 5), summed in float64 across them: faster, and KSD^2
        and its gradient then carry relative errors of about float32's
        precision (more near a minimum, where the pair terms cancel). IMQ with
        beta other than 1/2 at d <= 5, fewer particles, and the linear kernel
        compute in float64 whatever the dtype. With ``backend="cuda"`` the
        kernels compute in float32, summed in float64 across tiles.
    target : object with ``score`` and ``hvp``, or callable
        The target distribution; a plain callable is taken as its score and
        wrapped in :class:`ksdnumba.ScoreFunction`.
    kernel : {"gaussian", "imq", "linear"}
        Base kernel: ``"gaussian"`` :math:`\exp(-|x - y|^2 / (2\,\mathrm{bw}))`,
        ``"imq"`` :math:`(1 + |x - y|^2 / \mathrm{bw})^{-\beta}`, ``"linear"``
        :math:`x \cdot y` (O(n d^2) time: no pair loop).
    bw : float or "median"
        Bandwidth: the squared length scale of the kernel, > 0, or ``"median"``
        for :func:`ksdnumba.median_bandwidth` of ``x``. Ignored by the linear
        kernel.
    beta : float
        Exponent of the IMQ kernel, in (0, 1); checked but unused by the others.
    backend : {"auto", "cpu", "cuda"}
        Where the pair sums run (see :func:`ksdd_lbfgs`).

    Returns
    -------
    value : float
        :math:`\mathrm{KSD}^2`, V-statistic (diagonal included).
    grad : ndarray of shape (n, d)
        Its gradient with respect to the particles, in ``x``'s dtype.

    See Also
    --------
    ksd : the squared KSD alone, V- or U-statistic.

    References
    ----------
    .. [1] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel Stein
       Discrepancy Descent." ICML 2021.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> target = kn.Gaussian(np.zeros(2), 1.0)
    >>> x = np.random.default_rng(0).normal(size=(100, 2))
    >>> value, grad = kn.ksd_and_grad(x, target, bw=1.0)
    >>> grad.shape
    (100, 2)
    >>> bool(value > 0)
    True
    """
    x = check_particles(x, "x", _particles_dtype(x))
    objective, _ = make_objective(x, target, kernel, bw, beta, backend)
    value, grad = objective.value_and_grad(x)
    return float(value), grad.astype(x.dtype, copy=False)
