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
    ``sample(n, rng=None) -> (n, d)``
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

from ._base import ScoreFunction, as_target
from ._base import Target as Target  # the protocol, for type hints
from ._base import as_score_target as as_score_target  # used by the contenders
from ._bayes import BayesianICA, BayesianLogisticRegression
from ._mixtures import Gaussian, GaussianMixture
from ._pymc import PyMCTarget, from_pymc  # PyMC itself is imported when from_pymc is called

__all__ = [
    "BayesianICA",
    "BayesianLogisticRegression",
    "Gaussian",
    "GaussianMixture",
    "PyMCTarget",
    "ScoreFunction",
    "as_target",
    "from_pymc",
]
