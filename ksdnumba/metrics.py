"""Measures of sample quality."""

from ._bandwidth import median_bandwidth
from ._validation import check_option, check_particles
from .objective import _particles_dtype, make_objective

__all__ = ["ksd", "median_bandwidth"]

STATISTICS = ("v", "u")


def ksd(x, target, kernel="gaussian", bw=1.0, beta=0.5, statistic="v", backend="auto"):
    r"""Squared Kernel Stein Discrepancy between particles and a target.

    .. math::

        \mathrm{KSD}^2_V = \frac{1}{n^2} \sum_{i, j} k_p(x_i, x_j), \qquad
        \mathrm{KSD}^2_U = \frac{1}{n (n - 1)} \sum_{i \ne j} k_p(x_i, x_j).

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
    backend : {"auto", "cpu"}
        Where the pair sums run.

    Returns
    -------
    float
        The squared KSD.

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
    >>> good = target.sample(500, random_state=rng)
    >>> bad = good + 1.0
    >>> kn.ksd(good, target) < kn.ksd(bad, target)
    True
    """
    statistic = check_option(statistic, "statistic", STATISTICS)
    x = check_particles(x, "x", _particles_dtype(x))
    if statistic == "u" and x.shape[0] < 2:
        raise ValueError("the U-statistic needs at least 2 particles, got 1")
    objective, _ = make_objective(x, target, kernel, bw, beta, backend)
    return float(objective.value(x, statistic))
