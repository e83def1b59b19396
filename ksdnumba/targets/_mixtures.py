"""Gaussian mixtures and Gaussians, with analytic score and Hessian-vector product."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numba import njit
from numpy.typing import ArrayLike

from .._validation import (
    check_bw,
    check_covariances,
    check_directions,
    check_means,
    check_points,
    check_positive_int,
    check_rng,
    check_weights,
)
from ._base import _LOG_2PI, Target, _logsumexp0, _readonly, _Tempered


@njit(cache=True)
def diagonal_mixture_terms(x, means, precision, log_norm):
    """Responsibilities ``(K, n)``, component scores ``(K, n, d)`` and the score.

    For mixtures with diagonal precisions ``(K, d)``: the hot path of the
    solvers, compiled because at tens of particles NumPy's per-call overhead
    cost more than the KSD pair sums themselves. Responsibilities by
    log-sum-exp, as in :meth:`GaussianMixture._log_joint`.
    """
    n, d = x.shape
    n_comp = means.shape[0]
    resp = np.empty((n_comp, n))
    comp = np.empty((n_comp, n, d))
    score = np.zeros((n, d))
    for i in range(n):
        top = -np.inf
        for k in range(n_comp):
            maha = 0.0
            for a in range(d):
                diff = x[i, a] - means[k, a]
                comp[k, i, a] = -precision[k, a] * diff
                maha += precision[k, a] * diff * diff
            resp[k, i] = log_norm[k] - 0.5 * maha
            top = max(top, resp[k, i])
        total = 0.0
        for k in range(n_comp):
            resp[k, i] = np.exp(resp[k, i] - top)
            total += resp[k, i]
        for k in range(n_comp):
            resp[k, i] /= total
            for a in range(d):
                score[i, a] += resp[k, i] * comp[k, i, a]
    return resp, comp, score


@njit(cache=True)
def diagonal_mixture_hvp(v, precision, resp, comp, score):
    """The stable Hessian-vector product of a diagonal mixture (see ``hvp``)."""
    n, d = v.shape
    out = np.zeros((n, d))
    for i in range(n):
        for k in range(precision.shape[0]):
            proj = 0.0
            for a in range(d):
                proj += (comp[k, i, a] - score[i, a]) * v[i, a]
            for a in range(d):
                out[i, a] += resp[k, i] * (
                    (comp[k, i, a] - score[i, a]) * proj - precision[k, a] * v[i, a]
                )
    return out


class GaussianMixture:
    r"""Mixture of Gaussians, with analytic score and Hessian-vector product.

    .. math::

        p(x) = \sum_{k=1}^K w_k\, \mathcal{N}(x;\ \mu_k, \Sigma_k),
        \qquad \sum_k w_k = 1.

    The density is properly normalised. With the responsibilities
    :math:`r_k(x) = w_k \mathcal{N}(x; \mu_k, \Sigma_k) / p(x)`, computed by
    log-sum-exp, the precisions :math:`P_k = \Sigma_k^{-1}` and the component
    scores :math:`s_k(x) = -P_k (x - \mu_k)`:

    .. math::

        \nabla \log p(x) = s(x) = \sum_k r_k(x)\, s_k(x),

        \nabla^2 \log p(x)\, v = -\sum_k r_k P_k v
            + \sum_k r_k\, (s_k - s)\, \big((s_k - s) \cdot v\big).

    The Hessian is written as minus the average precision plus the covariance
    of the component scores under the responsibilities. It equals the textbook
    :math:`\sum_k r_k (-P_k v + s_k (s_k \cdot v)) - s (s \cdot v)`, but does not
    subtract two huge, nearly equal terms far from the modes, where the
    :math:`s_k` are large and one responsibility is close to 1. With one
    component it is exactly :math:`-P v`.

    Parameters
    ----------
    means : array_like, shape (n_components, n_dims)
        Component means :math:`\mu_k`.
    covariances : array_like
        Component covariances, whose number of dimensions gives their type:

        - shape ``(n_components,)``: isotropic, :math:`\Sigma_k = \sigma_k^2 I`
          (the entries are the variances :math:`\sigma_k^2`);
        - shape ``(n_components, n_dims)``: diagonal, the variances of each
          coordinate;
        - shape ``(n_components, n_dims, n_dims)``: full, symmetric positive
          definite matrices.

        Isotropic and diagonal components cost :math:`O(d)` per point and
        component; full ones cost :math:`O(d^2)` and are handled through their
        Cholesky factors.
    weights : array_like, shape (n_components,), optional
        Non-negative mixture weights with a positive sum; normalised to sum to 1.
        Components of weight 0 are allowed (their responsibility is exactly 0).
        Default: uniform.

    Attributes
    ----------
    means : ndarray, shape (n_components, n_dims)
        The means, as float64 (read-only).
    covariances : ndarray
        The covariances *as given* (float64, read-only): shape
        ``(n_components,)``, ``(n_components, n_dims)`` or
        ``(n_components, n_dims, n_dims)``; full matrices are symmetrised.
    covariance_type : {"isotropic", "diagonal", "full"}
        Which of the three forms `covariances` has.
    weights : ndarray, shape (n_components,)
        The normalised weights (read-only).
    n_components : int
        Number of components :math:`K`.
    n_dims : int
        Dimension :math:`d` of the space.

    Raises
    ------
    ValueError
        If `means` is not a finite non-empty 2-D array; if `covariances` has a
        shape that fits none of the three forms, has non-positive or non-finite
        variances, or has a matrix that is not symmetric or not positive
        definite; if `weights` has the wrong shape, a negative or non-finite
        entry, or sums to 0.

    See Also
    --------
    Gaussian : the one-component case.

    Notes
    -----
    All methods compute in float64 and are vectorised over the points and the
    components, with :math:`O(n K d)` memory for isotropic and diagonal
    components.

    Examples
    --------
    The two-mode mixture of the KSD descent paper, evaluated near a mode and
    some 3000 standard deviations away, where the naive ratio of exponentials
    would be 0/0:

    >>> import numpy as np
    >>> from ksdnumba.targets import GaussianMixture
    >>> gm = GaussianMixture(means=[[-1.0, 0.0], [1.0, 0.0]], covariances=[0.1, 0.1])
    >>> x = np.array([[0.5, 0.5], [1000.0, 1.0]])
    >>> gm.score(x).round(4).tolist()
    [[4.9991, -5.0], [-9990.0, -10.0]]
    >>> print(gm.hvp(x, np.ones_like(x)).round(4))
    [[ -9.9818 -10.    ]
     [-10.     -10.    ]]
    >>> print(gm.sample(1000, rng=0).shape)
    (1000, 2)
    """

    def __init__(
        self,
        means: ArrayLike,
        covariances: ArrayLike,
        weights: ArrayLike | None = None,
    ) -> None:
        means = check_means(means)
        n_components, n_dims = means.shape
        kind, covariances = check_covariances(
            covariances, n_components, n_dims, "covariances", single=False
        )
        weights = check_weights(weights, n_components)
        self._setup(means, kind, covariances, weights)

    def _setup(
        self, means: np.ndarray, kind: str, covariances: np.ndarray, weights: np.ndarray
    ) -> None:
        """Store validated parameters and precompute the factors of every component."""
        self.means = _readonly(means)
        self.covariances = _readonly(covariances)
        self.weights = _readonly(weights)
        self.covariance_type = kind
        self.n_components, self.n_dims = means.shape
        k, d = means.shape
        if kind == "full":
            from scipy.linalg import solve_triangular  # here, to keep the import light

            chol = np.linalg.cholesky(covariances)
            eye = np.eye(d)
            chol_inv = np.stack([solve_triangular(c, eye, lower=True) for c in chol])
            precision = np.einsum("kji,kjl->kil", chol_inv, chol_inv)
            self._chol = chol
            self._chol_inv = chol_inv
            self._precision = 0.5 * (precision + precision.transpose(0, 2, 1))
            logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        else:
            var = np.broadcast_to(covariances.reshape(k, -1), (k, d))
            self._precision = 1.0 / var
            self._std = np.sqrt(var)
            logdet = np.log(var).sum(axis=1)
        with np.errstate(divide="ignore"):
            log_weights = np.log(weights)  # -inf for empty components, on purpose
        self._log_norm = log_weights - 0.5 * (d * _LOG_2PI + logdet)

    def compiled_terms(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(means, precision, log_norm)`` for the compiled score and HVP, or None.

        The package's hook through which :mod:`ksdnumba.objective` fuses the
        score, the Stein pair sums and the HVP into one compiled call at small
        ``n``: the arguments of :func:`diagonal_mixture_terms` and
        :func:`diagonal_mixture_hvp` (diagonal precisions ``(K, d)``). None for
        full covariances, and for a subclass that redefines ``score`` or ``hvp``
        (the compiled terms would not be its own).
        """
        own = type(self).score is GaussianMixture.score and type(self).hvp is GaussianMixture.hvp
        if self.covariance_type == "full" or not own:
            return None
        return self.means, self._precision, self._log_norm

    # -- shared pieces --------------------------------------------------------------

    def _log_joint(self, x: np.ndarray, with_scores: bool):
        """Return ``log(w_k N(x; mu_k, Sigma_k))`` (K, n) and maybe s_k (K, n, d)."""
        diff = x[None, :, :] - self.means[:, None, :]
        if self.covariance_type == "full":
            z = diff @ self._chol_inv.transpose(0, 2, 1)  # rows L_k^{-1} (x - mu_k)
            maha = np.einsum("knd,knd->kn", z, z)
            comp_scores = -(z @ self._chol_inv) if with_scores else None
        else:
            scaled = diff * self._precision[:, None, :]
            maha = np.einsum("knd,knd->kn", diff, scaled)
            comp_scores = -scaled if with_scores else None
        return self._log_norm[:, None] - 0.5 * maha, comp_scores

    def _responsibilities_and_scores(self, x: np.ndarray):
        log_joint, comp_scores = self._log_joint(x, with_scores=True)
        resp = np.exp(log_joint - _logsumexp0(log_joint))
        return resp, comp_scores

    # -- protocol -------------------------------------------------------------------

    def score(self, x: ArrayLike) -> np.ndarray:
        r"""Score :math:`\nabla \log p` at each row of `x`.

        .. math:: s(x) = -\sum_k r_k(x)\, \Sigma_k^{-1} (x - \mu_k)

        Parameters
        ----------
        x : array_like, shape (n, n_dims)
            Points, one per row.

        Returns
        -------
        ndarray, shape (n, n_dims)
            Row ``i`` is :math:`\nabla \log p(x_i)`.

        Raises
        ------
        ValueError
            If `x` is not 2-D with `n_dims` columns.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import GaussianMixture
        >>> gm = GaussianMixture([[0.0, 0.0]], covariances=[[1.0, 4.0]])
        >>> print(gm.score(np.array([[1.0, 2.0]])))
        [[-1.  -0.5]]
        """
        x = check_points(x, self.n_dims)
        if self.covariance_type != "full":
            return diagonal_mixture_terms(x, self.means, self._precision, self._log_norm)[2]
        resp, comp_scores = self._responsibilities_and_scores(x)
        return np.einsum("kn,knd->nd", resp, comp_scores)

    def hvp(self, x: ArrayLike, v: ArrayLike) -> np.ndarray:
        r"""Hessian of :math:`\log p` at each row of `x` times the same row of `v`.

        .. math::

            \nabla^2 \log p(x)\, v = -\sum_k r_k P_k v
                + \sum_k r_k\, (s_k - s)\, \big((s_k - s) \cdot v\big)

        (see the class docstring for why this form and not the textbook one).

        Parameters
        ----------
        x : array_like, shape (n, n_dims)
            Points, one per row.
        v : array_like, shape (n, n_dims)
            Directions, one per row.

        Returns
        -------
        ndarray, shape (n, n_dims)
            Row ``i`` is :math:`\nabla^2 \log p(x_i)\, v_i`.

        Raises
        ------
        ValueError
            If `x` is not 2-D with `n_dims` columns, or `v` has another shape.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import GaussianMixture
        >>> gm = GaussianMixture([[0.0, 0.0]], covariances=[[1.0, 4.0]])
        >>> print(gm.hvp(np.zeros((1, 2)), np.array([[1.0, 1.0]])))
        [[-1.   -0.25]]
        """
        x = check_points(x, self.n_dims)
        return self.score_and_hvp(x)[1](v)

    def score_and_hvp(self, x: ArrayLike) -> tuple[np.ndarray, Callable[[ArrayLike], np.ndarray]]:
        """Score at `x`, and a function ``v -> hvp(x, v)`` that reuses its work.

        The solvers need the score and then one Hessian-vector product at the
        same points; both rest on the responsibilities, computed once here.

        Parameters
        ----------
        x : array_like, shape (n, n_dims)
            Points, one per row.

        Returns
        -------
        score : ndarray, shape (n, n_dims)
            As :meth:`score`.
        hvp : callable
            ``hvp(v)`` equals ``self.hvp(x, v)`` for `v` of shape (n, n_dims).

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import GaussianMixture
        >>> gm = GaussianMixture([[0.0, 0.0]], covariances=[[1.0, 4.0]])
        >>> score, hvp = gm.score_and_hvp(np.zeros((1, 2)))
        >>> print(hvp(np.array([[1.0, 1.0]])))
        [[-1.   -0.25]]
        """
        x = check_points(x, self.n_dims)
        if self.covariance_type != "full":
            terms = diagonal_mixture_terms(x, self.means, self._precision, self._log_norm)
            resp, comp, score = terms

            def hvp_diagonal(v: ArrayLike) -> np.ndarray:
                v = check_directions(v, x)
                return diagonal_mixture_hvp(v, self._precision, resp, comp, score)

            return score, hvp_diagonal
        resp, comp_scores = self._responsibilities_and_scores(x)
        score = np.einsum("kn,knd->nd", resp, comp_scores)

        def hvp(v: ArrayLike) -> np.ndarray:
            v = check_directions(v, x)
            if self.covariance_type == "full":
                # v @ P_k is (P_k v)^T row by row, as P_k is symmetric.
                mean_prec_v = np.einsum("kn,knd->nd", resp, v @ self._precision)
            else:
                mean_prec_v = (resp.T @ self._precision) * v
            dev = comp_scores - score[None, :, :]
            proj = np.einsum("knd,nd->kn", dev, v)
            return np.einsum("kn,knd->nd", resp * proj, dev) - mean_prec_v

        return score, hvp

    def logpdf(self, x: ArrayLike) -> np.ndarray:
        r"""Normalised log density at each row of `x`.

        .. math::

            \log p(x) = \operatorname{logsumexp}_k \Big( \log w_k
                - \tfrac12 (x - \mu_k)^\top \Sigma_k^{-1} (x - \mu_k)
                - \tfrac12 \log \det (2 \pi \Sigma_k) \Big)

        Parameters
        ----------
        x : array_like, shape (n, n_dims)
            Points, one per row.

        Returns
        -------
        ndarray, shape (n,)
            :math:`\log p(x_i)`.

        Raises
        ------
        ValueError
            If `x` is not 2-D with `n_dims` columns.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import GaussianMixture
        >>> gm = GaussianMixture([[0.0]], covariances=[1.0])
        >>> print(np.round(gm.logpdf(np.array([[0.0], [1.0]])), 6))
        [-0.918939 -1.418939]
        """
        x = check_points(x, self.n_dims)
        log_joint, _ = self._log_joint(x, with_scores=False)
        return _logsumexp0(log_joint)

    def sample(self, n: int, *, rng: Any = None) -> np.ndarray:
        """Draw `n` independent samples.

        Each sample picks a component with probability `weights`, then adds to
        its mean the Cholesky factor (or standard deviation) times a standard
        normal vector.

        Parameters
        ----------
        n : int
            Number of samples, >= 0.
        rng : None, int, numpy.random.Generator, ..., optional
            Source of randomness; an int seeds a fresh ``default_rng``, so the
            same int gives the same samples.

        Returns
        -------
        ndarray, shape (n, n_dims)
            The samples.

        Raises
        ------
        TypeError
            If `n` is not an integer or `rng` is of another type.
        ValueError
            If `n` is negative.

        Examples
        --------
        >>> from ksdnumba.targets import GaussianMixture
        >>> gm = GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], covariances=[0.1, 0.1])
        >>> x = gm.sample(5, rng=42)
        >>> x.shape
        (5, 2)
        >>> bool((x == gm.sample(5, rng=42)).all())
        True
        """
        n = check_positive_int(n, "n", minimum=0)
        rng = check_rng(rng)
        labels = rng.choice(self.n_components, size=n, p=self.weights)
        z = rng.standard_normal((n, self.n_dims))
        if self.covariance_type == "full":
            out = np.empty_like(z)
            for k in range(self.n_components):
                mask = labels == k
                out[mask] = z[mask] @ self._chol[k].T
            return out + self.means[labels]
        return self.means[labels] + self._std[labels] * z

    def tempered(self, beta: float) -> Target:
        r"""Target with density proportional to :math:`p^\beta`.

        Its score and hvp are those of this mixture times `beta`; its
        ``logpdf`` is :math:`\beta \log p`, which is *not* normalised. A
        tempered mixture is not a mixture, so it has no ``sample``.

        Parameters
        ----------
        beta : float
            Inverse temperature, positive and finite.

        Returns
        -------
        target
            A target with ``score``, ``hvp``, ``logpdf`` and ``tempered``.

        Raises
        ------
        ValueError
            If `beta` is not positive and finite.
        TypeError
            If `beta` is not a real number.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import GaussianMixture
        >>> gm = GaussianMixture([[-1.0], [1.0]], covariances=[0.5, 0.5])
        >>> hot = gm.tempered(0.5)
        >>> x = np.array([[0.3]])
        >>> bool(np.allclose(hot.score(x), 0.5 * gm.score(x)))
        True
        """
        return _Tempered(self, beta)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(n_components={self.n_components}, "
            f"n_dims={self.n_dims}, covariance_type={self.covariance_type!r})"
        )


class Gaussian(GaussianMixture):
    r"""Multivariate normal distribution :math:`\mathcal{N}(\mu, \Sigma)`.

    A one-component :class:`GaussianMixture`, so both share one implementation;
    with one component the formulas reduce exactly to

    .. math::

        \nabla \log p(x) = -\Sigma^{-1}(x - \mu), \qquad
        \nabla^2 \log p(x)\, v = -\Sigma^{-1} v.

    Parameters
    ----------
    mean : array_like, shape (n_dims,)
        The mean :math:`\mu`.
    covariance : float or array_like
        A positive scalar (isotropic variance, :math:`\Sigma = \sigma^2 I`),
        an array of shape ``(n_dims,)`` (diagonal variances), or a symmetric
        positive definite matrix of shape ``(n_dims, n_dims)``.

    Attributes
    ----------
    mean : ndarray, shape (n_dims,)
        The mean (read-only).
    covariance : float or ndarray
        The covariance as given: a float, or a read-only array of shape
        ``(n_dims,)`` or ``(n_dims, n_dims)``.
    means, covariances, covariance_type, weights, n_components, n_dims
        As for :class:`GaussianMixture`, with ``n_components = 1``.

    Raises
    ------
    ValueError
        If `mean` is not a finite non-empty 1-D array, or `covariance` has
        another shape, non-positive or non-finite variances, or is not
        symmetric positive definite.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.targets import Gaussian
    >>> g = Gaussian(mean=[1.0, -1.0], covariance=[[2.0, 0.5], [0.5, 1.0]])
    >>> print(g.score(np.array([[1.0, -1.0], [2.0, -1.0]])).round(6))
    [[ 0.        0.      ]
     [-0.571429  0.285714]]
    >>> g.tempered(2.0).covariance
    array([[1.  , 0.25],
           [0.25, 0.5 ]])
    """

    def __init__(self, mean: ArrayLike, covariance: ArrayLike) -> None:
        mean = np.array(mean, dtype=np.float64)
        if mean.ndim != 1 or mean.size == 0:
            raise ValueError(
                f"mean must be a non-empty 1-D array of shape (n_dims,), got shape {mean.shape}"
            )
        if not np.all(np.isfinite(mean)):
            raise ValueError("mean contains non-finite values (NaN or inf)")
        d = mean.shape[0]
        cov = np.array(covariance, dtype=np.float64)
        if cov.ndim == 0:
            stacked = cov.reshape(1)
        elif cov.shape in ((d,), (d, d)):
            stacked = cov[None]
        else:
            raise ValueError(
                f"covariance must be a scalar (isotropic variance), shape ({d},) "
                f"(diagonal variances) or ({d}, {d}) (full matrix) for a "
                f"{d}-dimensional mean, got shape {cov.shape}"
            )
        kind, stacked = check_covariances(stacked, 1, d, "covariance", single=True)
        # Not super().__init__: its messages would say "means" and "covariances[0]".
        self._setup(mean[None, :], kind, stacked, np.ones(1))
        self.mean = self.means[0]
        self.covariance = float(stacked[0]) if cov.ndim == 0 else self.covariances[0]

    def tempered(self, beta: float) -> Gaussian:
        r"""Exact tempering: the Gaussian :math:`\mathcal{N}(\mu, \Sigma / \beta)`.

        Its density is :math:`p^\beta` normalised: unlike a tempered mixture,
        the result is a :class:`Gaussian`, with a normalised ``logpdf`` and
        ``sample``.

        Parameters
        ----------
        beta : float
            Inverse temperature, positive and finite.

        Returns
        -------
        Gaussian
            ``Gaussian(mean, covariance / beta)``.

        Raises
        ------
        ValueError
            If `beta` is not positive and finite.
        TypeError
            If `beta` is not a real number.

        Examples
        --------
        >>> from ksdnumba.targets import Gaussian
        >>> Gaussian([0.0, 0.0], 2.0).tempered(4.0).covariance
        0.5
        """
        beta = check_bw(beta, "beta")
        return Gaussian(self.mean, self.covariance / beta)

    def __repr__(self) -> str:
        return f"Gaussian(n_dims={self.n_dims}, covariance_type={self.covariance_type!r})"
