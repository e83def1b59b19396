r"""stein-thinning's conventions for a sample's Stein matrix: standardisation, named metrics.

Stein thinning and the tools beside it (running-KSD curves, Stein weights,
kernel thinning) measure distances the way stein-thinning (Riabiz et al. 2022)
does: each column of the sample divided by its mean absolute deviation
(``standardize``), and a metric :math:`L` acting on differences, chosen by
name from the sample (``preconditioner``). :func:`stein_matrix_from_sample`
builds the :class:`ksdnumba.SteinMatrix` of those options, so that every tool
computes with the same matrix :func:`ksdnumba.stein_thinning` uses.

How the names differ from ``bw="median"`` elsewhere in the package: ``"med"``
is :math:`L = I / \ell^2` with :math:`\ell` the median *distance* (squared
after the median, over at most 1000 evenly spaced rows, in standardised
coordinates), where :func:`ksdnumba.median_bandwidth` takes the median of the
*squared* distances (over a random subset of 2000 points) of the raw sample;
``"sclmed"`` also multiplies :math:`L` by :math:`\log \min(n, 1000)`.
"""

import numbers

import numpy as np

from ._validation import check_option, check_spd

PRECONDITIONERS = ("id", "med", "sclmed", "smpcov")
SAMPLE_KERNELS = ("gaussian", "imq")
# stein-thinning takes the median distance over this many evenly spaced rows.
_MEDIAN_ROWS = 1000


def _median_distance2(z):
    """stein-thinning's squared median distance: over 1000 evenly spaced rows when n > 1000."""
    from scipy.spatial.distance import pdist  # here, to keep the import light

    n = z.shape[0]
    if n > _MEDIAN_ROWS:
        z = z[np.linspace(0, n - 1, _MEDIAN_ROWS, dtype=int)]
    if z.shape[0] < 2:
        raise ValueError(
            "the 'med' and 'sclmed' preconditioners need at least 2 points; give a number"
        )
    # The median of the distances, then squared (not the median of the squares,
    # which differs for an even number of pairs), as stein-thinning does.
    m2 = float(np.median(pdist(z)) ** 2)
    if not m2 > 0:
        raise ValueError(
            "the median distance between the points is 0 (more than half of the pairs "
            "coincide); give the preconditioner as a number or a matrix"
        )
    return m2


def metric_from_name(spec, z):
    """``(L, weights, Q)``: the matrix, its eigenvalues and eigenvectors (None: Q = I).

    Isotropic and diagonal preconditioners are kept in the sample's own
    coordinates (``Q = None``), so that their columns are computed as the
    formulas are written.
    """
    n, d = z.shape
    if isinstance(spec, str):
        try:
            value = float(spec)  # stein-thinning accepts a number as a string
        except ValueError:
            value = None
        if value is not None:
            return metric_from_name(value, z)
        spec = check_option(spec, "preconditioner", PRECONDITIONERS)
        if spec == "id":
            lam = 1.0
        elif spec == "med":
            lam = 1.0 / _median_distance2(z)
        elif spec == "sclmed":
            lam = 1.0 / _median_distance2(z) * np.log(min(_MEDIAN_ROWS, n))
        else:
            if n < 2:
                raise ValueError("the 'smpcov' preconditioner needs at least 2 points")
            cov = np.atleast_2d(np.cov(z, rowvar=False))
            try:
                _, values, vectors = check_spd(cov, d, "the sample covariance")
            except ValueError as exc:
                raise ValueError(
                    f"preconditioner='smpcov': {exc} (too few distinct points, or "
                    "collinear ones); use another preconditioner"
                ) from None
            return _from_covariance(values, vectors, d)
        return lam * np.eye(d), np.full(d, lam), None
    if isinstance(spec, (bool, np.bool_)):
        raise TypeError(f"preconditioner must be a name, a number or a (d, d) array, got {spec!r}")
    if isinstance(spec, numbers.Real):
        value = float(spec)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(
                f"a number as preconditioner is a squared length scale and must be "
                f"positive and finite, got {spec!r}"
            )
        return np.eye(d) / value, np.full(d, 1.0 / value), None
    arr = np.asarray(spec)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(
            f"preconditioner must be a name, a number or a (d, d) array, got {type(spec).__name__}"
        )
    if arr.ndim == 0:
        return metric_from_name(float(arr), z)
    gamma, values, vectors = check_spd(arr, d, "preconditioner")
    if np.count_nonzero(gamma - np.diag(np.diag(gamma))) == 0:
        weights = 1.0 / np.diag(gamma)
        return np.diag(weights), weights, None
    return _from_covariance(values, vectors, d)


def _from_covariance(values, vectors, d):
    """``L = Gamma^{-1}`` from the eigendecomposition of ``Gamma``."""
    weights = 1.0 / values
    L = (vectors * weights) @ vectors.T
    return 0.5 * (L + L.T), weights, vectors


def standardized(x, s, standardize):
    """``(x / scale, s * scale, scale)``: stein-thinning's standardisation, or none."""
    if not isinstance(standardize, (bool, np.bool_)):
        raise TypeError(f"standardize must be True or False, got {standardize!r}")
    d = x.shape[1]
    if not standardize:
        return x, s, np.ones(d)
    loc = np.mean(x, axis=0)
    scale = np.mean(np.abs(x - loc), axis=0)
    if not np.all(scale > 0):
        cols = np.flatnonzero(~(scale > 0)).tolist()
        raise ValueError(
            f"cannot standardise: column(s) {cols} of sample are constant; pass standardize=False"
        )
    return x / scale, s * scale, scale


def stein_matrix_from_sample(
    sample,
    scores,
    *,
    kernel="imq",
    preconditioner="sclmed",
    standardize=True,
    beta=0.5,
    backend="auto",
):
    r"""The Stein matrix of a sample with stein-thinning's options.

    Parameters
    ----------
    sample, scores : ndarray of shape (n, d), float64
        Checked points and scores.
    kernel : {"imq", "gaussian"}
        Base kernel: IMQ :math:`(1 + u^\top L u)^{-\beta}` or Gaussian
        :math:`e^{-u^\top L u / 2}`, :math:`u` the difference of two
        standardised points.
    preconditioner : str, float or array_like of shape (d, d)
        :math:`L` by name (:data:`PRECONDITIONERS`), a squared length scale
        :math:`h` (:math:`L = I / h`), or a covariance-like matrix
        :math:`\Gamma` (:math:`L = \Gamma^{-1}`); see
        :func:`ksdnumba.stein_thinning`.
    standardize : bool
        Divide each column by its mean absolute deviation first (and multiply
        the scores by it).
    beta : float
        IMQ exponent; stein-thinning's is 1/2.
    backend : {"auto", "cpu", "cuda"}

    Returns
    -------
    H : SteinMatrix
        In standardised coordinates.
    scale : ndarray of shape (d,)
        The standardisation's scales (ones without it).
    L : ndarray of shape (d, d)
        The metric, acting on differences of standardised points.
    """
    from .stein_matrix import SteinMatrix  # here: it imports scipy.sparse

    kernel = check_option(kernel, "kernel", SAMPLE_KERNELS)
    x, s, scale = standardized(sample, scores, standardize)
    L, weights, Q = metric_from_name(preconditioner, x)
    H = SteinMatrix._from_metric(
        x,
        s,
        kernel=kernel,
        beta=beta,
        weights=weights,
        rotation=Q,
        preconditioner=np.linalg.inv(L),
        backend=backend,
    )
    return H, scale, L
