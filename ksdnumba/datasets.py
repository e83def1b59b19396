r"""Targets and data sets of the examples, built in one place.

The gallery reproduces the figures of Korba et al. (2021); the mixtures they
sample from are defined here once, so that an example, its test and a user's
own experiment all draw the same target.

Mixtures (2-D :class:`~ksdnumba.GaussianMixture`)
    :func:`two_modes`, :func:`skewed_mixture`, :func:`three_modes`.
Data
    :func:`laplace_mixtures`: synthetic ICA data (Laplace sources, random
    mixing matrix), for Bayesian ICA.
    :func:`breast_cancer`: a real binary classification data set, shipped
    with the package (``ksdnumba/data/``, CC BY 4.0), for Bayesian logistic
    regression.

References
----------
.. [1] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel Stein
   Discrepancy Descent." ICML 2021.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from ._validation import check_fraction, check_positive_int, check_rng
from .targets import GaussianMixture

__all__ = [
    "breast_cancer",
    "laplace_mixtures",
    "skewed_mixture",
    "three_modes",
    "two_modes",
]


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
    return GaussianMixture([[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]], [0.5, 0.3, 0.1], [1.0, 1.0, 1.0])


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
    return GaussianMixture([[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]], [variance, variance, variance])


def breast_cancer(
    *, test_fraction: float = 0.25, rng: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""The Breast Cancer Wisconsin (Diagnostic) data, split and standardised.

    569 breast masses, 30 features of their cell nuclei, label 1 for benign
    (357) and 0 for malignant (212). The data ship with the package
    (``ksdnumba/data/breast_cancer.csv``, from the UCI Machine Learning
    Repository, licence CC BY 4.0; see ``ksdnumba/data/README.md``).

    The rows are shuffled and split; each feature is standardised with the
    mean and standard deviation of the *training* rows, and a column of ones
    is prepended (the intercept), so that both matrices have 31 columns.

    Parameters
    ----------
    test_fraction : float
        Fraction of the rows held out for testing, in (0, 1); the test set has
        ``round(569 * test_fraction)`` rows.
    rng : None, int, numpy.random.Generator, ...
        Seed of the shuffle.

    Returns
    -------
    X_train : ndarray, shape (n_train, 31)
    X_test : ndarray, shape (n_test, 31)
    y_train : ndarray of int, shape (n_train,)
    y_test : ndarray of int, shape (n_test,)

    Raises
    ------
    ValueError
        If `test_fraction` is not in (0, 1) or leaves a side empty.

    References
    ----------
    .. [1] W. N. Street, W. H. Wolberg, O. L. Mangasarian. "Nuclear feature
       extraction for breast tumor diagnosis." IS&T/SPIE Symposium on
       Electronic Imaging, vol. 1905, 1993.

    Examples
    --------
    >>> from ksdnumba.datasets import breast_cancer
    >>> X_train, X_test, y_train, y_test = breast_cancer(rng=0)
    >>> X_train.shape, X_test.shape
    ((427, 31), (142, 31))
    >>> bool(abs(X_train[:, 1:].mean()) < 1e-12), float(X_train[0, 0])
    (True, 1.0)
    """
    test_fraction = check_fraction(test_fraction, "test_fraction")
    rng = check_rng(rng)
    with resources.files(__package__).joinpath("data", "breast_cancer.csv").open() as f:
        table = np.loadtxt(f, delimiter=",", skiprows=1)
    X, y = table[:, :-1], table[:, -1].astype(np.int64)
    n_test = int(round(X.shape[0] * test_fraction))
    if not 0 < n_test < X.shape[0]:
        raise ValueError(
            f"test_fraction={test_fraction} leaves {n_test} of {X.shape[0]} rows for "
            "testing; both sides must be non-empty"
        )
    order = rng.permutation(X.shape[0])
    test, train = order[:n_test], order[n_test:]
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)

    def design(rows):
        return np.column_stack([np.ones(rows.size), (X[rows] - mean) / std])

    return design(train), design(test), y[train], y[test]


def laplace_mixtures(
    n_samples: int = 1000, n_sources: int = 2, *, rng: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    r"""Linear mixtures of independent Laplace sources: data for ICA.

    As in the ICA experiment of Korba et al. (2021): sources :math:`s_t` with
    independent standard Laplace entries (density :math:`e^{-|s|} / 2`), a
    mixing matrix :math:`A` with independent standard normal entries, and
    observations :math:`x_t = A s_t`. An unmixing matrix :math:`W` recovers
    the sources when :math:`W A` is a scaled permutation, which
    :func:`ksdnumba.amari_distance` measures.

    Parameters
    ----------
    n_samples : int
        Number of observations :math:`N`, >= 1.
    n_sources : int
        Number of sources and of observed channels :math:`p`, >= 1.
    rng : None, int, numpy.random.Generator, ...
        Seed of the sources and of the mixing matrix.

    Returns
    -------
    X : ndarray, shape (n_samples, n_sources)
        Observations :math:`x_t`, one per row.
    A : ndarray, shape (n_sources, n_sources)
        The mixing matrix.

    Raises
    ------
    ValueError
        If `n_samples` or `n_sources` is below 1.
    TypeError
        If `n_samples` or `n_sources` is not an integer.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba import amari_distance
    >>> from ksdnumba.datasets import laplace_mixtures
    >>> X, A = laplace_mixtures(500, 3, rng=0)
    >>> X.shape, A.shape
    ((500, 3), (3, 3))
    >>> print(round(amari_distance(np.linalg.inv(A), A), 12))
    0.0
    """
    n_samples = check_positive_int(n_samples, "n_samples", minimum=1)
    n_sources = check_positive_int(n_sources, "n_sources", minimum=1)
    rng = check_rng(rng)
    A = rng.standard_normal((n_sources, n_sources))
    S = rng.laplace(size=(n_samples, n_sources))
    return S @ A.T, A
