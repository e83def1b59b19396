"""Posteriors of the paper's Bayesian experiments: logistic regression and ICA."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike

from .._validation import (
    check_binary_labels,
    check_bw,
    check_design,
    check_directions,
    check_points,
)
from ._base import _LOG_2PI, Target, _readonly, _Tempered


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

    def __init__(self, X: ArrayLike, y: ArrayLike, *, a0: float = 1.0, b0: float = 0.01) -> None:
        X = check_design(X)
        self.X = _readonly(X)
        self.y = _readonly(check_binary_labels(y, X.shape[0]))
        self.a0 = check_bw(a0, "a0")
        self.b0 = check_bw(b0, "b0")
        self.n_features = X.shape[1]
        self.n_dims = self.n_features + 1
        self._log_prior_const = (
            -0.5 * self.n_features * _LOG_2PI + self.a0 * np.log(self.b0) - math.lgamma(self.a0)
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
        from scipy.special import expit  # here: scipy.special is heavy to import

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
                f"X has {X.shape[1]} columns but the model has n_features={self.n_features}"
            )
        from scipy.special import expit

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

    def __init__(self, X: ArrayLike, *, sigma: float = 1.0, likelihood_weight: float = 1.0) -> None:
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

    def score_and_hvp(self, w: ArrayLike) -> tuple[np.ndarray, Callable[[ArrayLike], np.ndarray]]:
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
