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

import numpy as np

from ._validation import (
    NonFiniteError,
    check_bw,
    check_finite_field,
    check_option,
    check_particles,
    check_target_dims,
)
from .kernels import _cpu
from .targets import as_target

KERNELS = ("gaussian",)
BACKENDS = ("auto", "cpu")

# kernel name -> (sums with gradients, total only, diagonal k_p(x, x) from (s, bw))
_CPU = {
    "gaussian": (
        _cpu.gaussian_stein_sums,
        _cpu.gaussian_stein_total,
        lambda s, bw: np.einsum("ij,ij->i", s, s) + s.shape[1] / bw,
    ),
}


def _resolve_backend(backend):
    check_option(backend, "backend", BACKENDS)
    # Only the CPU backend exists so far, so "auto" has one choice.
    return "cpu"


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
        Bandwidth (squared length scale), already checked.
    backend : str
        One of :data:`BACKENDS`.
    """

    def __init__(self, target, kernel, bw, backend):
        self.target = target
        self.kernel = check_option(kernel, "kernel", KERNELS)
        self.bw = bw
        self.backend = _resolve_backend(backend)
        self._sums, self._total, self._diagonal = _CPU[self.kernel]

    def score(self, x):
        """The target's score at ``x``, checked for shape and finiteness."""
        return check_finite_field(self.target.score(x), x, "score")

    def value(self, x, statistic="v"):
        """Squared KSD at ``x``: V-statistic (``"v"``) or U-statistic (``"u"``)."""
        n = x.shape[0]
        s = self.score(x)
        total = self._total(x, s, self.bw)
        if statistic == "u":
            return (total - self._diagonal(s, self.bw).sum()) / (n * (n - 1))
        return total / n**2

    def value_and_grad(self, x):
        """V-statistic at ``x`` and its gradient, shape ``(n, d)``, float64.

        Raises
        ------
        NonFiniteError
            If the target's score or HVP, or the result, is not finite.
        """
        n = x.shape[0]
        s = self.score(x)
        total, gx, gs = self._sums(x, s, self.bw)
        c = 2.0 / n**2
        hv = check_finite_field(self.target.hvp(x, (c * gs).astype(x.dtype)), x, "hvp")
        grad = c * gx
        grad += hv
        value = total / n**2
        if not (np.isfinite(value) and np.isfinite(grad).all()):
            raise NonFiniteError(
                "the KSD objective or its gradient is not finite although the "
                "target's outputs are; the particles or scores are too large for "
                "float64"
            )
        return value, grad


def _particles_dtype(x):
    dtype = getattr(x, "dtype", None)
    return np.float32 if dtype == np.float32 else np.float64


def ksd_and_grad(x, target, kernel="gaussian", bw=1.0, backend="auto"):
    r"""Squared KSD (V-statistic) of the particles and its gradient.

    This is the objective minimised by :func:`ksdnumba.ksdd_lbfgs`, exposed for
    use with any optimiser.

    .. math::

        \mathrm{KSD}^2(x) = \frac{1}{n^2} \sum_{i,j=1}^n k_p(x_i, x_j),
        \quad
        k_p(x, y) = s(x)^\top s(y) k(x, y) + s(x)^\top \nabla_y k(x, y)
        + s(y)^\top \nabla_x k(x, y) + \nabla_x \cdot \nabla_y k(x, y),

    with :math:`s = \nabla \log p` and the Gaussian kernel
    :math:`k(x, y) = \exp(-|x - y|^2 / (2\,\mathrm{bw}))`. The gradient is exact:
    closed-form pair sums, chained through the target's Hessian-vector product.

    Parameters
    ----------
    x : array_like of shape (n, d)
        Particles. float32 input is kept as float32 for the target's calls; the
        pair sums are accumulated in float64.
    target : object with ``score`` and ``hvp``, or callable
        The target distribution; a plain callable is taken as its score and
        wrapped in :class:`ksdnumba.ScoreFunction`.
    kernel : {"gaussian"}
        Base kernel of the Stein kernel.
    bw : float
        Bandwidth: the squared length scale of the kernel, > 0.
    backend : {"auto", "cpu"}
        Where the pair sums run.

    Returns
    -------
    value : float
        :math:`\mathrm{KSD}^2`, V-statistic (diagonal included, so >= 0).
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
    target = as_target(target)
    check_target_dims(target, x, "x")
    objective = SteinObjective(target, kernel, check_bw(bw), backend)
    value, grad = objective.value_and_grad(x)
    return float(value), grad.astype(x.dtype, copy=False)
