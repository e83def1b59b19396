r"""Targets and data sets of the examples, built in one place.

The gallery reproduces the figures of Korba et al. (2021); the mixtures they
sample from are defined here once, so that an example, its test and a user's
own experiment all draw the same target.

Mixtures (2-D :class:`~ksdnumba.GaussianMixture`)
    :func:`two_modes`, :func:`skewed_mixture`, :func:`three_modes`.

References
----------
.. [1] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel Stein
   Discrepancy Descent." ICML 2021.
"""

from __future__ import annotations

from .targets import GaussianMixture

__all__ = ["skewed_mixture", "three_modes", "two_modes"]


def two_modes(variance: float = 0.3) -> GaussianMixture:
    r"""Two equal Gaussians centred at :math:`(-1, 0)` and :math:`(1, 0)`.

    .. math::

        p(x) = \tfrac12 \mathcal{N}(x; (-1, 0), \sigma^2 I)
             + \tfrac12 \mathcal{N}(x; (1, 0), \sigma^2 I).

    The target of the minima and initialisation figures of Korba et al.
    (2021), with :math:`\sigma^2` = 0.1, 0.3 or 2.

    Parameters
    ----------
    variance : float
        Isotropic variance :math:`\sigma^2` of both components, > 0.

    Returns
    -------
    GaussianMixture
        A 2-D mixture of two components.

    Raises
    ------
    ValueError
        If `variance` is not positive and finite.

    Examples
    --------
    >>> from ksdnumba.datasets import two_modes
    >>> target = two_modes(0.3)
    >>> target.means.tolist()
    [[-1.0, 0.0], [1.0, 0.0]]
    """
    return GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [variance, variance])


def skewed_mixture() -> GaussianMixture:
    r"""Three Gaussians of unequal spread, far apart: the skewed target.

    Centres :math:`(-3, 0)`, :math:`(3, 0)` and :math:`(0, 3)`, isotropic
    variances 0.5, 0.3 and 0.1, equal weights (as in Korba et al., 2021). The
    peaks are unbalanced: the narrowest component is five times as high as
    the widest, and holds the same mass.

    Returns
    -------
    GaussianMixture
        A 2-D mixture of three components.

    Examples
    --------
    >>> from ksdnumba.datasets import skewed_mixture
    >>> target = skewed_mixture()
    >>> target.n_components, target.weights.round(3).tolist()
    (3, [0.333, 0.333, 0.333])
    """
    return GaussianMixture(
        [[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], [0.5, 0.3, 0.1], [1.0, 1.0, 1.0]
    )


def three_modes(variance: float = 0.1) -> GaussianMixture:
    r"""Three equal Gaussians on three corners of the square :math:`[-1, 1]^2`.

    Centres :math:`(-1, -1)`, :math:`(1, 1)` and :math:`(1, -1)`, equal
    weights, isotropic variance :math:`\sigma^2`: the target of the annealing
    figure of Korba et al. (2021), where KSD descent started near the origin
    strands particles between the modes.

    Parameters
    ----------
    variance : float
        Isotropic variance of the three components, > 0.

    Returns
    -------
    GaussianMixture
        A 2-D mixture of three components.

    Raises
    ------
    ValueError
        If `variance` is not positive and finite.

    Examples
    --------
    >>> from ksdnumba.datasets import three_modes
    >>> three_modes().means.tolist()
    [[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]]
    """
    return GaussianMixture(
        [[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]], [variance, variance, variance]
    )
