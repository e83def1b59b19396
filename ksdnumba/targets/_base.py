"""The target protocol's shared pieces: wrappers for plain callables, tempering,
and the coercion every entry point applies (:func:`as_target`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numpy.typing import ArrayLike

from .._validation import (
    check_bw,
    check_directions,
)

_LOG_2PI = float(np.log(2.0 * np.pi))


# Central differences err by O(h^2) (truncation) plus O(macheps / h) (round-off); the
# sum is smallest for h ~ macheps ** (1/3).
_DEFAULT_FD_EPS = float(np.finfo(np.float64).eps ** (1.0 / 3.0))


class Target(Protocol):
    """What the solvers need from a target: its score and its Hessian-vector product."""

    def score(self, x: np.ndarray) -> np.ndarray: ...

    def hvp(self, x: np.ndarray, v: np.ndarray) -> np.ndarray: ...


def _readonly(arr: np.ndarray) -> np.ndarray:
    # The precomputed factors would silently go stale if a user edited these in place.
    arr.flags.writeable = False
    return arr


def _logsumexp0(a: np.ndarray) -> np.ndarray:
    """``log(sum(exp(a), axis=0))`` without overflow or 0/0 far from the modes."""
    top = a.max(axis=0)
    return top + np.log(np.exp(a - top).sum(axis=0))


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
        *,
        eps: float | None = None,
    ) -> None:
        if not callable(score):
            raise TypeError(
                f"score must be callable, score(x) -> (n, d), got {type(score).__name__}"
            )
        if hvp is not None and not callable(hvp):
            raise TypeError(
                f"hvp must be None or callable, hvp(x, v) -> (n, d), got {type(hvp).__name__}"
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
                f"x must be a 2-D array of shape (n, d), got {x.ndim}-D with shape {x.shape}"
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
