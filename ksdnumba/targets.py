r"""Targets: distributions known through their score.

KSD descent never needs the density of the target, only its *score*
:math:`s(x) = \nabla \log p(x)`, and -- for the gradient of the objective --
the Hessian of :math:`\log p` applied to a vector. A *target* is therefore any
object that follows this protocol:

Required
    ``score(x) -> (n, d)``
        Row ``i`` is :math:`\nabla \log p(x_i)`.
    ``hvp(x, v) -> (n, d)``
        Row ``i`` is :math:`\nabla^2 \log p(x_i)\, v_i` (the Hessian of the log
        density at ``x_i`` times ``v_i``). The Hessian is symmetric, so this is
        also the vector-Jacobian product of the score, which is what the chain
        rule of the objective asks for.

Optional
    ``logpdf(x) -> (n,)``
        Log density, possibly up to an additive constant (say so in its
        docstring). Used by diagnostics and plots, never by the solvers.
    ``sample(n, random_state=None) -> (n, d)``
        Exact samples, for reference sets and statistical tests.
    ``tempered(beta)``
        A target whose density is proportional to :math:`p^\beta`.
    ``score_and_hvp(x) -> (score, hvp)``
        The score at ``x`` and a function ``v -> hvp(x, v)`` that reuses the
        work the two share. The objective uses it when present: it needs both
        at the same points on every evaluation.

Here ``x`` and ``v`` are arrays of shape ``(n, d)``: one particle (one
direction) per row. The entry points of the package accept either such an
object or a plain callable ``score(x)``, through :func:`as_target`.

The analytic targets in this module (:class:`GaussianMixture`,
:class:`Gaussian`) compute in float64 whatever the dtype of ``x``; callers
that run in float32 cast the result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numba import njit
from numpy.typing import ArrayLike
from scipy.linalg import solve_triangular
from scipy.special import expit, gammaln

from ._validation import (
    check_binary_labels,
    check_bw,
    check_covariances,
    check_design,
    check_directions,
    check_means,
    check_points,
    check_positive_int,
    check_random_state,
    check_weights,
)

__all__ = [
    "BayesianICA",
    "BayesianLogisticRegression",
    "Gaussian",
    "GaussianMixture",
    "ScoreFunction",
    "as_target",
]

_LOG_2PI = float(np.log(2.0 * np.pi))


# Central differences err by O(h^2) (truncation) plus O(macheps / h) (round-off); the
# sum is smallest for h ~ macheps ** (1/3).
_DEFAULT_FD_EPS = float(np.finfo(np.float64).eps ** (1.0 / 3.0))


class Target(Protocol):
    """What the solvers need from a target: its score and its Hessian-vector product."""

    def score(self, x: np.ndarray) -> np.ndarray: ...

    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------- checks


def _readonly(arr: np.ndarray) -> np.ndarray:
    # The precomputed factors would silently go stale if a user edited these in place.
    arr.flags.writeable = False
    return arr


def _logsumexp0(a: np.ndarray) -> np.ndarray:
    """``log(sum(exp(a), axis=0))`` without overflow or 0/0 far from the modes."""
    top = a.max(axis=0)
    return top + np.log(np.exp(a - top).sum(axis=0))


# --------------------------------------------------------------------------- targets


@njit(cache=True)
def _diagonal_mixture_terms(x, means, precision, log_norm):
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
def _diagonal_mixture_hvp(v, precision, resp, comp, score):
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
    >>> print(gm.sample(1000, random_state=0).shape)
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
            return _diagonal_mixture_terms(x, self.means, self._precision, self._log_norm)[2]
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
            terms = _diagonal_mixture_terms(x, self.means, self._precision, self._log_norm)
            resp, comp, score = terms

            def hvp_diagonal(v: ArrayLike) -> np.ndarray:
                v = check_directions(v, x)
                return _diagonal_mixture_hvp(v, self._precision, resp, comp, score)

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

    def sample(self, n: int, random_state: Any = None) -> np.ndarray:
        """Draw `n` independent samples.

        Each sample picks a component with probability `weights`, then adds to
        its mean the Cholesky factor (or standard deviation) times a standard
        normal vector.

        Parameters
        ----------
        n : int
            Number of samples, >= 0.
        random_state : None, int or numpy.random.Generator, optional
            Source of randomness; an int seeds a fresh ``default_rng``, so the
            same int gives the same samples.

        Returns
        -------
        ndarray, shape (n, n_dims)
            The samples.

        Raises
        ------
        TypeError
            If `n` is not an integer or `random_state` is of another type.
        ValueError
            If `n` is negative.

        Examples
        --------
        >>> from ksdnumba.targets import GaussianMixture
        >>> gm = GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], covariances=[0.1, 0.1])
        >>> x = gm.sample(5, random_state=42)
        >>> x.shape
        (5, 2)
        >>> bool((x == gm.sample(5, random_state=42)).all())
        True
        """
        n = check_positive_int(n, "n", minimum=0)
        rng = check_random_state(random_state)
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

    Besides these, the attributes of :class:`GaussianMixture` (``means``,
    ``covariances``, ``weights``, ``n_components`` = 1, ``n_dims``) are set.

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
                "mean must be a non-empty 1-D array of shape (n_dims,), got shape "
                f"{mean.shape}"
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
        return (
            f"Gaussian(n_dims={self.n_dims}, covariance_type={self.covariance_type!r})"
        )


class ScoreFunction:
    r"""A target given by plain callables: the score, and optionally its hvp.

    Parameters
    ----------
    score : callable
        ``score(x) -> (n, d)``: row ``i`` is :math:`\nabla \log p(x_i)`.
    hvp : callable, optional
        ``hvp(x, v) -> (n, d)``: row ``i`` is :math:`\nabla^2 \log p(x_i)\, v_i`.
        If omitted, it is a central finite difference of `score` (see `hvp`).
    eps : float, optional
        Relative step of the finite difference, positive and finite. Default
        ``np.finfo(np.float64).eps ** (1/3)`` (about 6.1e-6).

    Attributes
    ----------
    eps : float
        The finite-difference step actually used.

    Raises
    ------
    TypeError
        If `score`, or `hvp` when given, is not callable, or `eps` is not a
        real number.
    ValueError
        If `eps` is not positive and finite.

    Notes
    -----
    A :class:`ScoreFunction` knows nothing of the normalising constant, so it
    has no ``logpdf`` (nor ``sample``).

    Without `hvp`, each call of :meth:`hvp` costs **two extra evaluations of**
    `score`, and assumes that row ``i`` of ``score(x)`` depends on row ``i``
    of ``x`` only (true of any score evaluated point by point). The default
    step balances the :math:`O(h^2)` truncation error against the
    :math:`O(\epsilon_{\mathrm{mach}} / h)` round-off of central differences;
    for a smooth score at unit scale the result has a relative error of about
    1e-10. The difference is taken in float64: a score that computes in
    float32 needs an analytic `hvp`.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.targets import ScoreFunction
    >>> target = ScoreFunction(lambda x: -x**3)   # log p = -|x|^4 / 4 (per coordinate)
    >>> x = np.array([[1.0, 2.0]])
    >>> print(target.hvp(x, np.array([[1.0, 1.0]])).round(8))  # -3 x**2 v
    [[ -3. -12.]]
    """

    def __init__(
        self,
        score: Callable[[np.ndarray], ArrayLike],
        hvp: Callable[[np.ndarray, np.ndarray], ArrayLike] | None = None,
        eps: float | None = None,
    ) -> None:
        if not callable(score):
            raise TypeError(
                "score must be callable, score(x) -> (n, d), got "
                f"{type(score).__name__}"
            )
        if hvp is not None and not callable(hvp):
            raise TypeError(
                "hvp must be None or callable, hvp(x, v) -> (n, d), got "
                f"{type(hvp).__name__}"
            )
        self._score = score
        self._hvp = hvp
        self.eps = _DEFAULT_FD_EPS if eps is None else check_bw(eps, "eps")

    @staticmethod
    def _checked(values: ArrayLike, x: np.ndarray, what: str) -> np.ndarray:
        arr = np.asarray(values)
        if arr.shape != x.shape:
            raise ValueError(
                f"the {what} function returned shape {arr.shape} for x of shape "
                f"{x.shape}; it must return one row per point, of shape (n, d)"
            )
        return arr

    def score(self, x: ArrayLike) -> np.ndarray:
        r"""The wrapped score, :math:`\nabla \log p`, at each row of `x`.

        Parameters
        ----------
        x : array_like, shape (n, d)
            Points, one per row; passed on as an ndarray of its own dtype.

        Returns
        -------
        ndarray, shape (n, d)

        Raises
        ------
        ValueError
            If the wrapped function returns another shape than `x`'s.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import ScoreFunction
        >>> print(ScoreFunction(lambda x: -x).score(np.array([[1.0, 2.0]])))
        [[-1. -2.]]
        """
        x = np.asarray(x)
        return self._checked(self._score(x), x, "score")

    def hvp(self, x: ArrayLike, v: ArrayLike) -> np.ndarray:
        r"""Hessian of :math:`\log p` at each row of `x` times the same row of `v`.

        The wrapped `hvp` if one was given; otherwise, with
        :math:`h_i = \mathrm{eps} \cdot \max(1, |x_i|) / |v_i|`,

        .. math::

            (\nabla^2 \log p(x_i)\, v_i) \approx
            \frac{s(x + h v)_i - s(x - h v)_i}{2 h_i},

        so that every point moves by ``eps * max(1, |x_i|)`` whatever the size
        of :math:`v_i`; rows with :math:`v_i = 0` give 0. It costs two
        evaluations of the score (none when `v` is all zeros).

        Parameters
        ----------
        x : array_like, shape (n, d)
            Points, one per row.
        v : array_like, shape (n, d)
            Directions, one per row.

        Returns
        -------
        ndarray, shape (n, d)
            Row ``i`` is :math:`\nabla^2 \log p(x_i)\, v_i`; float64 when
            computed by finite differences.

        Raises
        ------
        ValueError
            If `x` is not 2-D, `v` has another shape, or a wrapped function
            returns another shape than `x`'s.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import ScoreFunction
        >>> target = ScoreFunction(lambda x: -2.0 * x)
        >>> v = np.array([[1.0, 0.5], [0.0, 0.0]])
        >>> print(target.hvp(np.ones((2, 2)), v).round(8))
        [[-2. -1.]
         [ 0.  0.]]
        """
        x = np.asarray(x)
        if x.ndim != 2:
            raise ValueError(
                f"x must be a 2-D array of shape (n, d), got {x.ndim}-D with shape "
                f"{x.shape}"
            )
        v = check_directions(v, x)
        if self._hvp is not None:
            return self._checked(self._hvp(x, v), x, "hvp")
        return self._finite_difference_hvp(x.astype(np.float64, copy=False), v)

    def _finite_difference_hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        v_max = np.max(np.abs(v), axis=1)
        moving = v_max > 0
        if not np.any(moving):
            return np.zeros_like(x)
        # Step along the unit direction u_i = v_i / |v_i| by t_i = h_i |v_i|, then scale
        # back by |v_i|: the same quotient as the formula, but h_i cannot overflow for a
        # tiny v_i. Dividing by max|v_i| first keeps |v_i| from under- or overflowing.
        scaled = v / np.where(moving, v_max, 1.0)[:, None]
        scaled_norm = np.where(moving, np.linalg.norm(scaled, axis=1), 1.0)
        v_norm = v_max * scaled_norm
        unit = scaled / scaled_norm[:, None]
        step = self.eps * np.maximum(1.0, np.linalg.norm(x, axis=1))
        delta = step[:, None] * unit
        plus = self._checked(self._score(x + delta), x, "score")
        minus = self._checked(self._score(x - delta), x, "score")
        out = (plus - minus) * (v_norm / (2.0 * step))[:, None]
        out[~moving] = 0.0
        return out

    def tempered(self, beta: float) -> Target:
        r"""Target with density proportional to :math:`p^\beta`.

        Its score and hvp are this target's times `beta`.

        Parameters
        ----------
        beta : float
            Inverse temperature, positive and finite.

        Returns
        -------
        target
            A target with ``score``, ``hvp`` and ``tempered``.

        Raises
        ------
        ValueError
            If `beta` is not positive and finite.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import ScoreFunction
        >>> print(ScoreFunction(lambda x: -x).tempered(3.0).score(np.ones((1, 2))))
        [[-3. -3.]]
        """
        return _Tempered(self, beta)

    def __repr__(self) -> str:
        hvp = "finite differences" if self._hvp is None else repr(self._hvp)
        return f"ScoreFunction(score={self._score!r}, hvp={hvp}, eps={self.eps:g})"


class _Tempered:
    r"""Any target raised to the power `beta`: density :math:`\propto p^\beta`.

    Score and hvp are the base's times `beta`. ``logpdf`` exists when the base
    has one and is :math:`\beta \log p`, unnormalised. There is no ``sample``:
    ``hasattr(t, "sample")`` is False, and ``t.sample`` raises an
    AttributeError that explains why (:meth:`Gaussian.tempered` is exact and
    can sample).
    """

    def __init__(self, base: Any, beta: float) -> None:
        self.base = base
        self.beta = check_bw(beta, "beta")

    def score(self, x: ArrayLike) -> np.ndarray:
        """``beta * base.score(x)``, shape (n, d)."""
        return self.beta * np.asarray(self.base.score(x))

    def hvp(self, x: ArrayLike, v: ArrayLike) -> np.ndarray:
        """``beta * base.hvp(x, v)``, shape (n, d)."""
        return self.beta * np.asarray(self.base.hvp(x, v))

    @property
    def score_and_hvp(self):
        # A property, so that hasattr(t, "score_and_hvp") follows the base.
        base = getattr(self.base, "score_and_hvp", None)
        if base is None:
            raise AttributeError(f"{type(self.base).__name__} has no score_and_hvp")
        beta = self.beta

        def score_and_hvp(x: ArrayLike):
            """``beta *`` the base's score, and ``v -> beta * base hvp(x, v)``."""
            score, hvp = base(x)
            return beta * np.asarray(score), lambda v: beta * np.asarray(hvp(v))

        return score_and_hvp

    @property
    def logpdf(self) -> Callable[[ArrayLike], np.ndarray]:
        # A property, so that hasattr(t, "logpdf") tells whether the base has one.
        base_logpdf = getattr(self.base, "logpdf", None)
        if base_logpdf is None:
            raise AttributeError(
                f"the tempered target has no logpdf because its base "
                f"{type(self.base).__name__} has none"
            )
        beta = self.beta

        def logpdf(x: ArrayLike) -> np.ndarray:
            """Unnormalised log density, ``beta * base.logpdf(x)``."""
            return beta * np.asarray(base_logpdf(x))

        return logpdf

    @property
    def sample(self):
        raise AttributeError(
            f"a tempered {type(self.base).__name__} has no exact sampler: p**beta is "
            "not of the base's family (Gaussian.tempered returns a Gaussian that can "
            "sample)"
        )

    def tempered(self, beta: float) -> _Tempered:
        """Density proportional to ``p ** (self.beta * beta)``; wrappers do not nest."""
        return _Tempered(self.base, self.beta * check_bw(beta, "beta"))

    def __repr__(self) -> str:
        return f"_Tempered({self.base!r}, beta={self.beta:g})"


def as_target(target: Any) -> Target:
    """Return `target` as an object with ``score`` and ``hvp``.

    The entry points of the package call this on whatever the user passed.

    Parameters
    ----------
    target : object or callable
        Either an object with callable ``score(x)`` and ``hvp(x, v)``
        attributes (such as :class:`GaussianMixture`, :class:`Gaussian`,
        :class:`ScoreFunction` or a tempered target), returned unchanged; or a
        plain callable ``score(x) -> (n, d)``, wrapped in
        :class:`ScoreFunction` (whose hvp is then a finite difference).

    Returns
    -------
    target
        An object with ``score`` and ``hvp``.

    Raises
    ------
    TypeError
        If `target` is neither, or is a class rather than an instance.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.targets import as_target, Gaussian
    >>> g = Gaussian([0.0], 1.0)
    >>> as_target(g) is g
    True
    >>> t = as_target(lambda x: -x)
    >>> type(t).__name__
    'ScoreFunction'
    >>> print(t.hvp(np.ones((1, 1)), np.ones((1, 1))).round(8))
    [[-1.]]
    """
    if isinstance(target, type):
        raise TypeError(
            f"target must be an instance, got the class {target.__name__}; "
            f"construct it first, e.g. {target.__name__}(...)"
        )
    score = getattr(target, "score", None)
    if callable(score) and callable(getattr(target, "hvp", None)):
        return target
    if callable(target):
        return ScoreFunction(target)
    if callable(score):
        raise TypeError(
            f"target of type {type(target).__name__} has a score but no hvp method; "
            "pass ScoreFunction(target.score) for a finite-difference hvp, or add "
            "hvp(x, v)"
        )
    raise TypeError(
        "target must be an object with score(x) and hvp(x, v) methods (e.g. "
        "GaussianMixture, Gaussian, ScoreFunction) or a callable score(x) -> (n, d), "
        f"got {type(target).__name__}"
    )


def as_score_target(target: Any) -> Any:
    """Return `target` as an object with ``score``: all that SVGD needs.

    Like :func:`as_target`, but an object with a callable ``score`` is returned
    unchanged even without ``hvp``, and a plain callable ``score(x)`` is
    wrapped in :class:`ScoreFunction` (whose hvp is never called then).

    Raises
    ------
    TypeError
        If `target` has no callable ``score`` and is not callable, or is a
        class rather than an instance.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.targets import as_score_target
    >>> class OnlyScore:
    ...     def score(self, x):
    ...         return -x
    >>> t = OnlyScore()
    >>> as_score_target(t) is t
    True
    >>> type(as_score_target(lambda x: -x)).__name__
    'ScoreFunction'
    """
    if isinstance(target, type):
        raise TypeError(
            f"target must be an instance, got the class {target.__name__}; "
            f"construct it first, e.g. {target.__name__}(...)"
        )
    if callable(getattr(target, "score", None)):
        return target
    if callable(target):
        return ScoreFunction(target)
    raise TypeError(
        "target must be an object with a score(x) method (e.g. GaussianMixture, "
        "Gaussian, ScoreFunction) or a callable score(x) -> (n, d), got "
        f"{type(target).__name__}"
    )


# ------------------------------------------------------------------ Bayesian models


class BayesianLogisticRegression:
    r"""Posterior of Bayesian logistic regression with a Gamma prior on the precision.

    The model of the SVGD paper (Liu and Wang, 2016), after Gershman et al.
    (2012): labels :math:`y_t \in \{0, 1\}` of rows :math:`x_t \in
    \mathbb{R}^p` of `X`, weights :math:`w \in \mathbb{R}^p`, precision
    :math:`\alpha > 0`,

    .. math::

        y_t \mid w \sim \mathrm{Bernoulli}\big(\sigma(w \cdot x_t)\big), \quad
        w \mid \alpha \sim \mathcal{N}(0, \alpha^{-1} I_p), \quad
        \alpha \sim \mathrm{Gamma}(a_0, b_0)

    (:math:`b_0` is the *rate*: :math:`p(\alpha) \propto \alpha^{a_0 - 1}
    e^{-b_0 \alpha}`). The particles are :math:`\theta = (w, z)` with
    :math:`z = \log \alpha`, of dimension ``n_dims = p + 1``: the density of
    :math:`z` carries the Jacobian :math:`d\alpha / dz = e^z`. With
    :math:`u_t = w \cdot x_t` and :math:`\log \sigma(u) = -\log(1 + e^{-u})`,
    the log density of the particles is the log joint

    .. math::

        \log p(\theta, y) = \sum_t \big[ y_t \log \sigma(u_t)
            + (1 - y_t) \log \sigma(-u_t) \big]
            + \Big(\frac{p}{2} + a_0\Big) z
            - e^z \Big(\frac{|w|^2}{2} + b_0\Big)
            - \frac{p}{2} \log(2 \pi) + a_0 \log b_0 - \log \Gamma(a_0),

    the posterior up to the evidence :math:`\log p(y)`. Its score is

    .. math::

        \nabla_w = \sum_t (y_t - \sigma(u_t))\, x_t - e^z w, \qquad
        \partial_z = \frac{p}{2} + a_0 - e^z \Big(\frac{|w|^2}{2} + b_0\Big),

    and, with :math:`\sigma'(u) = \sigma(u)(1 - \sigma(u))`, its Hessian
    times :math:`v = (v_w, v_z)` is

    .. math::

        (H v)_w &= -\sum_t \sigma'(u_t)\, (x_t \cdot v_w)\, x_t
            - e^z (v_w + v_z\, w), \\
        (H v)_z &= -e^z \Big( w \cdot v_w
            + \Big(\frac{|w|^2}{2} + b_0\Big) v_z \Big).

    The full data set enters every evaluation (no mini-batches), so that the
    score is deterministic, as L-BFGS needs.

    Parameters
    ----------
    X : array_like, shape (n_samples, n_features)
        Covariates, one row per observation. Add a column of ones for an
        intercept (:func:`ksdnumba.datasets.breast_cancer` does).
    y : array_like, shape (n_samples,)
        Labels, 0 or 1 (booleans accepted).
    a0 : float
        Shape of the Gamma prior on :math:`\alpha`, > 0.
    b0 : float
        Rate of the Gamma prior on :math:`\alpha`, > 0.

    Attributes
    ----------
    X : ndarray, shape (n_samples, n_features)
        Read-only copy of the covariates.
    y : ndarray, shape (n_samples,)
        Read-only copy of the labels, as floats 0.0 and 1.0.
    n_features : int
        :math:`p`.
    n_dims : int
        ``n_features + 1``: the particles are ``[w, log alpha]``.

    Raises
    ------
    ValueError
        If `X` is not a finite non-empty 2-D array, `y` does not hold one
        label 0 or 1 per row of `X`, or `a0` or `b0` is not positive and
        finite.

    References
    ----------
    .. [1] Q. Liu, D. Wang. "Stein Variational Gradient Descent: A General
       Purpose Bayesian Inference Algorithm." NeurIPS 2016.
    .. [2] S. Gershman, M. Hoffman, D. Blei. "Nonparametric Variational
       Inference." ICML 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.targets import BayesianLogisticRegression
    >>> X = np.array([[1.0, -1.0], [1.0, 0.5], [1.0, 2.0]])
    >>> target = BayesianLogisticRegression(X, [0, 1, 1])
    >>> theta = np.zeros((1, 3))            # w = 0, alpha = 1
    >>> print(target.score(theta).round(6))  # sum_t (y_t - 1/2) x_t; p/2 + a0 - b0
    [[0.5  1.75 1.99]]
    """

    def __init__(self, X: ArrayLike, y: ArrayLike, a0: float = 1.0, b0: float = 0.01) -> None:
        X = check_design(X)
        self.X = _readonly(X)
        self.y = _readonly(check_binary_labels(y, X.shape[0]))
        self.a0 = check_bw(a0, "a0")
        self.b0 = check_bw(b0, "b0")
        self.n_features = X.shape[1]
        self.n_dims = self.n_features + 1
        self._log_prior_const = (
            -0.5 * self.n_features * _LOG_2PI + self.a0 * np.log(self.b0) - gammaln(self.a0)
        )

    def _split(self, theta: ArrayLike):
        theta = check_points(theta, self.n_dims, "theta")
        return theta, theta[:, :-1], theta[:, -1]

    def logpdf(self, theta: ArrayLike) -> np.ndarray:
        r"""Log joint :math:`\log p(\theta, y)`: the log posterior up to the evidence.

        Parameters
        ----------
        theta : array_like, shape (n, n_dims)
            Particles ``[w, log alpha]``, one per row.

        Returns
        -------
        ndarray, shape (n,)

        Raises
        ------
        ValueError
            If `theta` is not 2-D with `n_dims` columns.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianLogisticRegression
        >>> target = BayesianLogisticRegression([[1.0], [2.0]], [1, 0], a0=1.0, b0=1.0)
        >>> # w = 0, alpha = 1: 2 log(1/2) - log(2 pi) / 2 - 1
        >>> bool(np.isclose(target.logpdf(np.zeros((1, 2)))[0],
        ...                 2 * np.log(0.5) - 0.5 * np.log(2 * np.pi) - 1.0))
        True
        """
        _, w, z = self._split(theta)
        u = w @ self.X.T
        # y log s(u) + (1 - y) log s(-u) = y u - log(1 + e^u), stably.
        loglik = (u * self.y).sum(axis=1) - np.logaddexp(0.0, u).sum(axis=1)
        half_sq = 0.5 * np.einsum("nd,nd->n", w, w)
        log_prior = (0.5 * self.n_features + self.a0) * z - np.exp(z) * (half_sq + self.b0)
        return loglik + log_prior + self._log_prior_const

    def score(self, theta: ArrayLike) -> np.ndarray:
        r"""Score :math:`\nabla_\theta \log p(\theta \mid y)` at each row of `theta`.

        See the class docstring for the formula.

        Parameters
        ----------
        theta : array_like, shape (n, n_dims)
            Particles ``[w, log alpha]``, one per row.

        Returns
        -------
        ndarray, shape (n, n_dims)

        Raises
        ------
        ValueError
            If `theta` is not 2-D with `n_dims` columns.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianLogisticRegression
        >>> target = BayesianLogisticRegression([[1.0], [2.0]], [1, 0], a0=1.0, b0=1.0)
        >>> print(target.score(np.zeros((1, 2))))   # (1 - 2) / 2; 1/2 + 1 - 1
        [[-0.5  0.5]]
        """
        return self.score_and_hvp(theta)[0]

    def hvp(self, theta: ArrayLike, v: ArrayLike) -> np.ndarray:
        r"""Hessian of the log posterior at each row of `theta` times that row of `v`.

        See the class docstring for the formula.

        Parameters
        ----------
        theta : array_like, shape (n, n_dims)
            Particles ``[w, log alpha]``, one per row.
        v : array_like, shape (n, n_dims)
            Directions, one per row.

        Returns
        -------
        ndarray, shape (n, n_dims)

        Raises
        ------
        ValueError
            If `theta` is not 2-D with `n_dims` columns, or `v` has another shape.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianLogisticRegression
        >>> target = BayesianLogisticRegression([[1.0], [2.0]], [1, 0], a0=1.0, b0=1.0)
        >>> # w = 0, alpha = 1: H = [[-(1 + 4) / 4 - 1, 0], [0, -1]]
        >>> print(target.hvp(np.zeros((1, 2)), np.array([[1.0, 1.0]])))
        [[-2.25 -1.  ]]
        """
        return self.score_and_hvp(theta)[1](v)

    def score_and_hvp(
        self, theta: ArrayLike
    ) -> tuple[np.ndarray, Callable[[ArrayLike], np.ndarray]]:
        """Score at `theta`, and a function ``v -> hvp(theta, v)`` that reuses its work.

        Both rest on :math:`\\sigma(w \\cdot x_t)` for every particle and every
        observation, computed once here.

        Parameters
        ----------
        theta : array_like, shape (n, n_dims)
            Particles ``[w, log alpha]``, one per row.

        Returns
        -------
        score : ndarray, shape (n, n_dims)
            As :meth:`score`.
        hvp : callable
            ``hvp(v)`` equals ``self.hvp(theta, v)`` for `v` of shape (n, n_dims).

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianLogisticRegression
        >>> target = BayesianLogisticRegression([[1.0], [2.0]], [1, 0])
        >>> score, hvp = target.score_and_hvp(np.array([[1.0, 0.0]]))   # w = 1, alpha = 1
        >>> print(score.round(4))
        [[-2.4927  0.99  ]]
        >>> print(hvp(np.array([[0.0, 1.0]])))   # -alpha [w, |w|^2 / 2 + b0]
        [[-1.   -0.51]]
        """
        theta, w, z = self._split(theta)
        prob = expit(w @ self.X.T)
        alpha = np.exp(z)
        half_sq_b0 = 0.5 * np.einsum("nd,nd->n", w, w) + self.b0
        score = np.empty_like(theta)
        score[:, :-1] = (self.y - prob) @ self.X - alpha[:, None] * w
        score[:, -1] = 0.5 * self.n_features + self.a0 - alpha * half_sq_b0
        curvature = prob * (1.0 - prob)

        def hvp(v: ArrayLike) -> np.ndarray:
            v = check_directions(v, theta)
            v_w, v_z = v[:, :-1], v[:, -1]
            out = np.empty_like(theta)
            out[:, :-1] = -(curvature * (v_w @ self.X.T)) @ self.X - alpha[:, None] * (
                v_w + v_z[:, None] * w
            )
            out[:, -1] = -alpha * (np.einsum("nd,nd->n", w, v_w) + half_sq_b0 * v_z)
            return out

        return score, hvp

    def predict_proba(self, theta: ArrayLike, X: ArrayLike) -> np.ndarray:
        r"""Posterior predictive probability of label 1, averaged over the particles.

        .. math:: p(y = 1 \mid x) \approx \frac{1}{n} \sum_i \sigma(w_i \cdot x).

        Parameters
        ----------
        theta : array_like, shape (n, n_dims)
            Particles ``[w, log alpha]``, e.g. ``res.x``.
        X : array_like, shape (m, n_features)
            Covariates at which to predict (with the same columns, intercept
            included, as the training `X`).

        Returns
        -------
        ndarray, shape (m,)

        Raises
        ------
        ValueError
            If `theta` or `X` has the wrong shape, or `X` is not finite.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianLogisticRegression
        >>> target = BayesianLogisticRegression([[1.0], [-1.0]], [1, 0])
        >>> theta = np.array([[100.0, 0.0], [-100.0, 0.0]])   # two opposite particles
        >>> print(target.predict_proba(theta, [[1.0]]))
        [0.5]
        """
        _, w, _ = self._split(theta)
        X = check_design(X)
        if X.shape[1] != self.n_features:
            raise ValueError(
                f"X has {X.shape[1]} columns but the model has n_features="
                f"{self.n_features}"
            )
        return expit(X @ w.T).mean(axis=1)

    def accuracy(self, theta: ArrayLike, X: ArrayLike, y: ArrayLike) -> float:
        """Fraction of the labels `y` that the posterior predictive gets right.

        The prediction is 1 where :meth:`predict_proba` exceeds 1/2.

        Parameters
        ----------
        theta : array_like, shape (n, n_dims)
            Particles ``[w, log alpha]``.
        X : array_like, shape (m, n_features)
            Covariates.
        y : array_like, shape (m,)
            Their labels, 0 or 1.

        Returns
        -------
        float
            In [0, 1].

        Raises
        ------
        ValueError
            For the reasons of :meth:`predict_proba`, or if `y` does not hold
            one label 0 or 1 per row of `X`.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianLogisticRegression
        >>> target = BayesianLogisticRegression([[1.0], [-1.0]], [1, 0])
        >>> target.accuracy(np.array([[3.0, 0.0]]), [[1.0], [-2.0], [0.5]], [1, 0, 0])
        0.6666666666666666
        """
        proba = self.predict_proba(theta, X)
        y = check_binary_labels(y, proba.shape[0])
        return float(np.mean((proba > 0.5) == (y == 1.0)))

    def tempered(self, beta: float) -> Target:
        r"""Target with density proportional to :math:`p(\theta \mid y)^\beta`.

        Parameters
        ----------
        beta : float
            Inverse temperature, positive and finite.

        Returns
        -------
        target
            Score and hvp this target's times `beta`; ``logpdf`` :math:`\beta
            \log p(\theta, y)`.

        Raises
        ------
        ValueError
            If `beta` is not positive and finite.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianLogisticRegression
        >>> target = BayesianLogisticRegression([[1.0], [2.0]], [1, 0], b0=1.0)
        >>> print(target.tempered(2.0).score(np.zeros((1, 2))))
        [[-1.  1.]]
        """
        return _Tempered(self, beta)

    def __repr__(self) -> str:
        return (
            f"BayesianLogisticRegression(n_samples={self.X.shape[0]}, "
            f"n_features={self.n_features}, a0={self.a0:g}, b0={self.b0:g})"
        )


class BayesianICA:
    r"""Posterior over the unmixing matrix of independent component analysis.

    Observations :math:`x_t \in \mathbb{R}^p` (the rows of `X`) are modelled
    as :math:`x_t = W^{-1} s_t` with independent, super-Gaussian sources of
    density :math:`\propto 1 / \cosh(s)`, and a Gaussian prior
    :math:`W_{ij} \sim \mathcal{N}(0, \sigma)` on the unmixing matrix. The
    particles are the flattened matrices ``W.ravel()`` (row major), of
    dimension ``n_dims = p * p``, and the log density, without normalising
    constant, is

    .. math::

        \log p(W) = \lambda \Big[ -\frac{1}{N} \sum_{t=1}^N \sum_{i=1}^p
            \log \cosh\big((W x_t)_i\big) + \log |\det W| \Big]
            - \frac{\|W\|_F^2}{2 \sigma}.

    The bracket is the log likelihood *averaged* over the :math:`N`
    observations. With the default :math:`\lambda = 1`
    (``likelihood_weight``) this is the density of the ICA experiment of
    Korba et al. (2021): a posterior as broad as one observation would make
    it, so broad that its samples are hardly closer to an unmixing matrix
    than random matrices (measured with :func:`ksdnumba.amari_distance` on
    :func:`ksdnumba.datasets.laplace_mixtures`, p = 2, N = 1000, on one data
    set, by 200 random-walk Metropolis chains of 3000 steps: median distance
    0.22 against 0.21 for Gaussian matrices). :math:`\lambda = N` gives the Bayesian posterior
    proper, which concentrates around the unmixing matrices. With :math:`\nabla \log |\det W| =
    W^{-\top}`, its score and its Hessian applied to a direction :math:`V \in
    \mathbb{R}^{p \times p}` are

    .. math::

        \nabla \log p(W) &= \lambda \Big[ -\frac{1}{N} \sum_t
            \tanh(W x_t)\, x_t^\top + W^{-\top} \Big] - \frac{W}{\sigma}, \\
        \nabla^2 \log p(W)[V] &= \lambda \Big[ -\frac{1}{N} \sum_t
            \big(\mathrm{sech}^2(W x_t) \odot V x_t\big)\, x_t^\top
            - W^{-\top} V^\top W^{-\top} \Big] - \frac{V}{\sigma},

    where :math:`-W^{-\top} V^\top W^{-\top}` is the derivative of
    :math:`W^{-\top}` along :math:`V`. The density vanishes on the singular
    matrices (:math:`\log |\det W| \to -\infty`), which split the space into
    the regions of :math:`\det W > 0` and :math:`\det W < 0`; each holds
    :math:`p!\, 2^{p - 1}` modes, the row permutations and sign changes of the
    true unmixing matrix. At an exactly singular matrix the score is not
    finite.

    Parameters
    ----------
    X : array_like, shape (n_samples, n_features)
        Observations, one per row; ``p = n_features``.
    sigma : float
        Variance of the Gaussian prior on each entry of :math:`W`, > 0.
    likelihood_weight : float
        :math:`\lambda` > 0, the weight of the averaged log likelihood: 1 for
        the density of Korba et al. (2021), ``n_samples`` for the posterior.

    Attributes
    ----------
    X : ndarray, shape (n_samples, n_features)
        Read-only copy of the observations.
    n_features : int
        :math:`p`.
    n_dims : int
        :math:`p^2`.

    Raises
    ------
    ValueError
        If `X` is not a finite non-empty 2-D array, or `sigma` or
        `likelihood_weight` is not positive and finite.

    References
    ----------
    .. [1] A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin. "Kernel
       Stein Discrepancy Descent." ICML 2021.
    .. [2] A. Hyvarinen, E. Oja. "Independent component analysis: algorithms
       and applications." Neural Networks 13, 2000.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.targets import BayesianICA
    >>> target = BayesianICA(np.zeros((5, 2)), sigma=1.0)    # no data: prior and det
    >>> W = np.array([[2.0, 0.0, 0.0, 1.0]])               # diag(2, 1), flattened
    >>> print(target.score(W))                              # W^{-T} - W
    [[-1.5  0.   0.   0. ]]
    """

    def __init__(
        self, X: ArrayLike, sigma: float = 1.0, likelihood_weight: float = 1.0
    ) -> None:
        X = check_design(X)
        self.X = _readonly(X)
        self.sigma = check_bw(sigma, "sigma")
        self.likelihood_weight = check_bw(likelihood_weight, "likelihood_weight")
        self.n_features = X.shape[1]
        self.n_dims = self.n_features**2

    def _matrices(self, w: ArrayLike):
        w = check_points(w, self.n_dims, "w")
        p = self.n_features
        return w, w.reshape(-1, p, p)

    def _sources(self, mats: np.ndarray) -> np.ndarray:
        """``(n, N, p)``: row t of slice k is ``W_k x_t``."""
        return self.X @ mats.transpose(0, 2, 1)

    def logpdf(self, w: ArrayLike) -> np.ndarray:
        r"""Log density at each row of `w` (flattened matrices), unnormalised.

        Parameters
        ----------
        w : array_like, shape (n, n_dims)
            Flattened unmixing matrices, one per row.

        Returns
        -------
        ndarray, shape (n,)
            ``-inf`` at singular matrices.

        Raises
        ------
        ValueError
            If `w` is not 2-D with `n_dims` columns.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianICA
        >>> target = BayesianICA(np.zeros((5, 2)), sigma=1.0)
        >>> print(target.logpdf(np.array([[2.0, 0.0, 0.0, 1.0]])).round(6))  # log 2 - 5/2
        [-1.806853]
        """
        _, mats = self._matrices(w)
        y = np.abs(self._sources(mats))
        # log cosh(y) = |y| + log(1 + e^{-2|y|}) - log 2, without overflow.
        log_cosh = y + np.log1p(np.exp(-2.0 * y)) - np.log(2.0)
        _, logdet = np.linalg.slogdet(mats)
        sq = np.einsum("kij,kij->k", mats, mats)
        loglik = -log_cosh.sum(axis=(1, 2)) / self.X.shape[0] + logdet
        return self.likelihood_weight * loglik - sq / (2 * self.sigma)

    def score(self, w: ArrayLike) -> np.ndarray:
        r"""Score at each row of `w` (flattened matrices), flattened the same way.

        See the class docstring for the formula.

        Parameters
        ----------
        w : array_like, shape (n, n_dims)
            Flattened unmixing matrices, one per row.

        Returns
        -------
        ndarray, shape (n, n_dims)

        Raises
        ------
        ValueError
            If `w` is not 2-D with `n_dims` columns.
        numpy.linalg.LinAlgError
            If a matrix is exactly singular.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianICA
        >>> target = BayesianICA(np.zeros((5, 2)), sigma=0.5)
        >>> print(target.score(np.array([[1.0, 0.0, 0.0, 1.0]])))   # I - I / 0.5
        [[-1.  0.  0. -1.]]
        """
        return self.score_and_hvp(w)[0]

    def hvp(self, w: ArrayLike, v: ArrayLike) -> np.ndarray:
        r"""Hessian of the log density at each row of `w` times that row of `v`.

        See the class docstring for the formula; `v` holds flattened directions
        :math:`V`, row major like `w`.

        Parameters
        ----------
        w : array_like, shape (n, n_dims)
            Flattened unmixing matrices, one per row.
        v : array_like, shape (n, n_dims)
            Flattened directions, one per row.

        Returns
        -------
        ndarray, shape (n, n_dims)

        Raises
        ------
        ValueError
            If `w` is not 2-D with `n_dims` columns, or `v` has another shape.
        numpy.linalg.LinAlgError
            If a matrix is exactly singular.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianICA
        >>> target = BayesianICA(np.zeros((5, 2)), sigma=1.0)
        >>> w = np.array([[2.0, 0.0, 0.0, 1.0]])
        >>> print(target.hvp(w, np.array([[1.0, 0.0, 0.0, 0.0]])) + 0.0)  # -1/4 - 1 on W_11
        [[-1.25  0.    0.    0.  ]]
        """
        return self.score_and_hvp(w)[1](v)

    def score_and_hvp(
        self, w: ArrayLike
    ) -> tuple[np.ndarray, Callable[[ArrayLike], np.ndarray]]:
        """Score at `w`, and a function ``v -> hvp(w, v)`` that reuses its work.

        Both need :math:`W x_t` for every particle and observation, and
        :math:`W^{-1}`; they are computed once here.

        Parameters
        ----------
        w : array_like, shape (n, n_dims)
            Flattened unmixing matrices, one per row.

        Returns
        -------
        score : ndarray, shape (n, n_dims)
            As :meth:`score`.
        hvp : callable
            ``hvp(v)`` equals ``self.hvp(w, v)`` for `v` of shape (n, n_dims).

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianICA
        >>> target = BayesianICA(np.zeros((5, 2)))
        >>> score, hvp = target.score_and_hvp(np.array([[1.0, 0.0, 0.0, 1.0]]))
        >>> print(hvp(np.array([[0.0, 1.0, 0.0, 0.0]])) + 0.0)  # -V^T - V at W = I
        [[ 0. -1. -1.  0.]]
        """
        w, mats = self._matrices(w)
        n_obs = self.X.shape[0]
        p = self.n_features
        tanh = np.tanh(self._sources(mats))
        inv_t = np.linalg.inv(mats).transpose(0, 2, 1)
        lam = self.likelihood_weight
        score = lam * (inv_t - (tanh.transpose(0, 2, 1) @ self.X) / n_obs) - mats / self.sigma
        sech2 = 1.0 - tanh * tanh

        def hvp(v: ArrayLike) -> np.ndarray:
            v = check_directions(v, w).reshape(-1, p, p)
            dir_sources = sech2 * self._sources(v)
            data = (dir_sources.transpose(0, 2, 1) @ self.X) / n_obs
            out = -lam * (data + inv_t @ v.transpose(0, 2, 1) @ inv_t) - v / self.sigma
            return out.reshape(-1, p * p)

        return score.reshape(-1, p * p), hvp

    def tempered(self, beta: float) -> Target:
        r"""Target with density proportional to :math:`p(W)^\beta`.

        Parameters
        ----------
        beta : float
            Inverse temperature, positive and finite.

        Returns
        -------
        target
            Score and hvp this target's times `beta`; ``logpdf`` :math:`\beta
            \log p`.

        Raises
        ------
        ValueError
            If `beta` is not positive and finite.

        Examples
        --------
        >>> import numpy as np
        >>> from ksdnumba.targets import BayesianICA
        >>> target = BayesianICA(np.zeros((5, 2)), sigma=0.5)
        >>> print(target.tempered(2.0).score(np.array([[1.0, 0.0, 0.0, 1.0]])))
        [[-2.  0.  0. -2.]]
        """
        return _Tempered(self, beta)

    def __repr__(self) -> str:
        return (
            f"BayesianICA(n_samples={self.X.shape[0]}, n_features={self.n_features}, "
            f"sigma={self.sigma:g}, likelihood_weight={self.likelihood_weight:g})"
        )
