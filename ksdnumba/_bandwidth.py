"""The median heuristic for the kernel bandwidth (public through ``ksdnumba.metrics``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._validation import check_bw, check_particles, check_positive_int, check_rng


def median_bandwidth(x: ArrayLike, *, max_points: int = 2000, rng: Any = 0) -> float:
    r"""Bandwidth from the median heuristic, as a squared length scale.

    .. math::

        \mathrm{bw} = \operatorname{median}_{i < j} |x_i - x_j|^2,

    so that the Gaussian kernel :math:`\exp(-|x - y|^2 / (2\,\mathrm{bw}))` has
    the median inter-particle distance as its length scale (Gretton et al.,
    2012; analysed by Garreau et al., 2017). ksdnumba's ``bw`` is a squared length
    scale for every kernel, so the same value serves the IMQ kernel.

    SVGD (Liu and Wang, 2016) divides this median by :math:`2 \log n` instead, to
    balance the kernel's sum against the number of particles; that is
    ``median_bandwidth(x) / (2 * np.log(n))`` in this package's convention.

    Parameters
    ----------
    x : array_like of shape (n, d)
        Points, at least 2.
    max_points : int
        Above this many points the median is taken over the pairs of a random
        subset of ``max_points`` of them (the exact median costs O(n^2) memory).
    rng : None, int, numpy.random.Generator, ...
        Chooses that subset; the default makes the result reproducible.

    Returns
    -------
    float
        The bandwidth, > 0.

    Raises
    ------
    ValueError
        If there are fewer than 2 points, or the median distance is 0 (more
        than half of the pairs coincide): pass ``bw`` explicitly then.

    References
    ----------
    .. [1] A. Gretton, K. Borgwardt, M. Rasch, B. Schoelkopf, A. Smola. "A Kernel
       Two-Sample Test." JMLR 13, 2012.
    .. [2] D. Garreau, W. Jitkrittum, M. Kanagawa. "Large sample analysis of the
       median heuristic." arXiv:1707.07269, 2017.
    .. [3] Q. Liu, D. Wang. "Stein Variational Gradient Descent." NeurIPS 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba import median_bandwidth
    >>> median_bandwidth(np.array([[0.0], [1.0], [3.0]]))
    4.0
    """
    from scipy.spatial.distance import pdist  # here, to keep the import light

    x = check_particles(x, "x")
    max_points = check_positive_int(max_points, "max_points", minimum=2)
    n = x.shape[0]
    if n < 2:
        raise ValueError("the median heuristic needs at least 2 points, got 1")
    if n > max_points:
        rng = check_rng(rng)
        x = x[rng.choice(n, size=max_points, replace=False)]
    bw = float(np.median(pdist(x, "sqeuclidean")))
    if not bw > 0:
        raise ValueError(
            "the median squared distance between the points is 0 (most of them "
            "coincide); give the bandwidth explicitly"
        )
    return bw


def resolve_bw(bw, x):
    """``bw`` checked, or the median heuristic at ``x`` when ``bw == "median"``."""
    if isinstance(bw, str):
        if bw != "median":
            raise ValueError(f"bw must be a positive number or 'median', got {bw!r}")
        return median_bandwidth(x)
    return check_bw(bw)
