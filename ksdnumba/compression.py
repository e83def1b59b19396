r"""Compressing and correcting a sample with its Stein matrix.

Two tools beside greedy Stein thinning (:func:`ksdnumba.stein_thinning`), on the
same matrix :math:`H_{ij} = k_p(x_i, x_j)` with the same options:

- :func:`stein_weights`: weights on the simplex that minimise the weighted KSD
  (Stein importance weights), which correct a biased sample without discarding
  it;
- :func:`kernel_thinning`: Stein kernel thinning (KT-SPLIT then KT-SWAP,
  Dwivedi and Mackey), index for index goodpoints' ``kt.thin_K``, and with
  ``compress=True`` Stein Compress++ (Shetty, Dwivedi and Mackey) in
  near-linear time.

Neither holds an ``n x n`` matrix (beyond a size below which dense is faster):
the weights' solver works through products :math:`H v` and blocks of the
support, the thinning loops compute the columns they need on demand.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._preconditioners import stein_matrix_from_sample
from ._result import Result
from ._validation import (
    call_target,
    check_finite_field,
    check_fraction,
    check_like,
    check_particles,
    check_positive_int,
    check_rng,
    check_target_dims,
    check_tolerance,
)

__all__ = ["KernelThinningResult", "WeightsResult", "kernel_thinning", "stein_weights"]

# Dense blocks (the distinct points' matrix, a face's block) up to 1 GiB (n = 11,585):
# its products and the support's Cholesky factors cost less than the tiles' passes.
_DENSE_BYTES = 2**30
# Points joining the face per outer iteration: the most violated, at most the face's
# size (so that it grows geometrically, and faces stay near the support's size).
_MIN_ADD = 64
# Rounds of dropping every non-positive weight at once before the classical steps.
_BLOCK_DROPS = 4
# The signed weights' default ridge, relative to the mean of H's diagonal.
_RIDGE = 1e-4


# ------------------------------------------------------------------------ results


class WeightsResult(Result):
    r"""Outcome of :func:`stein_weights`; fields are read as attributes or keys.

    Attributes
    ----------
    weights : ndarray of shape (n,)
        One weight per row of the sample, summing to 1 (non-negative unless
        ``signed``); a row repeated exactly has weight 0, its first occurrence
        carries the group's weight.
    ksd : float
        The weighted KSD :math:`\sqrt{w^\top H w}` (a square root, as
        :attr:`ThinningResult.ksd`), in the kernel of the weights.
    support : ndarray of int64
        Rows with a positive weight (non-zero when ``signed``), in increasing order.
    kkt_residual : float
        The relative KKT residual reached (see :func:`stein_weights`).
    nit : int
        Iterations: the active-set solver's outer iterations (each one product
        with :math:`H`), or the conjugate-gradient iterations when ``signed``.
    success : bool
        Whether ``kkt_residual <= tol``.
    message : str
        Why the solver stopped.
    n_unique : int
        The number of distinct rows (points with their scores).
    ridge : float or None
        The regularisation :math:`\lambda` of the signed weights, else None.
    preconditioner : ndarray of shape (d, d)
        The metric :math:`L` of the kernel (as :attr:`ThinningResult.preconditioner`).
    scale : ndarray of shape (d,)
        The standardisation's scales (ones without it).
    kernel : str
    """


class KernelThinningResult(Result):
    r"""Outcome of :func:`kernel_thinning`; fields are read as attributes or keys.

    Attributes
    ----------
    indices : ndarray of int64
        Rows of the sample, ``n // 2**rounds`` of them (see the Notes of
        :func:`kernel_thinning` for the remainder); a row may appear twice.
    ksd : float
        KSD of the selected points, :math:`\sqrt{\sum_{a, b} k_p(x_{i_a},
        x_{i_b})} / m` (as :attr:`ThinningResult.ksd` at its last step).
    preconditioner : ndarray of shape (d, d)
        The metric :math:`L` of the kernel.
    scale : ndarray of shape (d,)
        The standardisation's scales (ones without it).
    kernel : str
    rounds : int
    compress : bool
        Whether Compress++ ran.
    """


# ------------------------------------------------------------------------ shared pieces


def _scores(scores, x):
    """``scores`` as an ``(n, d)`` array: an array, or a target's score at ``x``."""
    from .targets import as_score_target  # targets import the package's siblings

    if not isinstance(scores, np.ndarray) and (callable(scores) or hasattr(scores, "score")):
        if hasattr(scores, "score") and not callable(scores.score):
            raise TypeError(
                f"scores must be an (n, d) array or a target with a score(x) method; "
                f"{type(scores).__name__}.score is not callable"
            )
        target = as_score_target(scores)
        check_target_dims(target, x, "sample")
        return check_finite_field(call_target(target.score, "score", x), x, "score")
    arr = np.asarray(scores)
    if arr.dtype == object:
        raise TypeError(
            f"scores must be an (n, d) array or a target with a score(x) method, got "
            f"{type(scores).__name__} (no score method)"
        )
    return check_like(arr, x, "scores", "sample")


def _principal(H, idx):
    """The :class:`SteinMatrix` of the rows ``idx`` of ``H``, with ``H``'s metric to the bit.

    A principal block :math:`H_{II}` as an operator of its own (its products
    cost :math:`|I|^2`, not :math:`n^2`).
    """
    from .stein_matrix import SteinMatrix

    idx = np.asarray(idx, dtype=np.int64)
    # The metric's eigenvalues and eigenvectors as H holds them (SteinMatrix
    # offers no public door to a principal block yet).
    return SteinMatrix._from_metric(
        H.x[idx],
        H.scores[idx],
        kernel=H.kernel,
        beta=H.beta,
        weights=H._weights,
        rotation=H._rotation,
        preconditioner=H.preconditioner,
        backend=H.backend,
    )


class _Progress:
    """A one-line text bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, label, total, enabled):
        self.label, self.total, self.done = label, max(int(total), 1), 0
        self.enabled = bool(enabled)
        self.start = self.last = time.perf_counter()
        self.note = ""
        self.draw(force=True)

    def update(self, k=1, note=""):
        self.done = min(self.total, self.done + k)
        self.note = note
        self.draw()

    def draw(self, force=False):
        now = time.perf_counter()
        if not self.enabled or (not force and now - self.last < 0.1):
            return
        self.last = now
        filled = 30 * self.done // self.total
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] "
            f"{self.done}/{self.total}{self.note}, {now - self.start:.1f} s"
        )
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            self.done = self.total
            self.draw(force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


# ------------------------------------------------------------------------ Stein weights


def _merge_duplicates(x, s):
    """Rows of the first occurrence of each distinct (point, score), increasing."""
    keys = np.ascontiguousarray(np.concatenate([x, s], axis=1))
    _, first = np.unique(keys, axis=0, return_index=True)
    return np.sort(first).astype(np.int64)


class _Face:
    r"""Minimisers of :math:`z^\top H_{FF} z` with :math:`\sum z = 1` on faces ``F``.

    :math:`z = H_{FF}^{-1} \mathbf 1 / (\mathbf 1^\top H_{FF}^{-1} \mathbf 1)`.
    Dense faces (``8 |F|^2 <= max_bytes``, or the whole matrix held) are solved by
    a Cholesky factor of a base face :math:`F_0`; a face :math:`F_0 \setminus D`
    reuses it through the Schur complement of :math:`(H_{F_0 F_0}^{-1})_{DD}`
    (one solve per dropped point, instead of a new factor). Larger faces are
    solved by conjugate gradients on the face's own operator.
    """

    # Refactor once this many points were dropped from the base face.
    MAX_DROPPED = 64

    def __init__(self, K, Hu, tol, max_bytes, max_cg):
        self.K, self.Hu, self.tol, self.max_bytes, self.max_cg = K, Hu, tol, max_bytes, max_cg
        self.cg_iterations = 0
        self.fresh = False
        self.pos = np.full(Hu.shape[0], -1, dtype=np.int64)
        self.base = None

    def _factor(self, F, refine=1):
        import scipy.linalg as sla

        A = (
            self.K[np.ix_(F, F)]
            if self.K is not None
            else _principal(self.Hu, F).toarray(max_bytes=2**62)
        )
        ones = np.ones(F.size)
        factor = None
        scale = float(np.max(np.diag(A))) if F.size else 1.0
        for jitter in (0.0, 1e-14, 1e-12, 1e-10):
            # Numerically singular faces (points closer than the float64 kernel tells
            # apart) are factored with a small multiple of the identity added: the
            # outer loop checks the weights with H itself.
            try:
                factor = sla.cho_factor(
                    A + (jitter * scale) * np.eye(F.size) if jitter else A,
                    lower=True,
                    check_finite=False,
                )
                break
            except np.linalg.LinAlgError:
                continue
        if factor is None:
            self.base = None
            return np.linalg.lstsq(A, ones, rcond=None)[0]
        y = sla.cho_solve(factor, ones, check_finite=False)
        for _ in range(refine):  # iterative refinement: the KKT test reads the residual
            y += sla.cho_solve(factor, ones - A @ y, check_finite=False)
        if self.base is not None:
            self.pos[self.base[0]] = -1
        self.pos[F] = np.arange(F.size)
        self.base = (F, factor, y, {})
        return y

    def _dropped(self, F):
        r"""The solution on ``F`` from the base face's factor, or None if ``F`` is not a subface."""
        import scipy.linalg as sla

        F0, factor, y, columns = self.base
        where = self.pos[F]
        if F0.size - F.size > self.MAX_DROPPED or np.any(where < 0):
            return None
        keep = np.zeros(F0.size, dtype=bool)
        keep[where] = True
        D = np.flatnonzero(~keep)
        if D.size == 0:
            return y[where]
        for k in D:
            if k not in columns:
                e = np.zeros(F0.size)
                e[k] = 1.0
                columns[k] = sla.cho_solve(factor, e, check_finite=False)
        C = np.stack([columns[k] for k in D], axis=1)
        lam = np.linalg.solve(C[D], -y[D])
        return (y + C @ lam)[where]

    def _cg(self, F, guess):
        from scipy.sparse.linalg import cg

        count = [0]

        def tick(_):
            count[0] += 1

        x0 = None
        if guess is not None and np.all(np.isfinite(guess)) and np.any(guess != 0):
            x0 = guess / max(np.abs(guess).max(), 1e-300)
        rtol = 0.1 * self.tol / math.sqrt(F.size)  # on ||r||_2, which bounds ||r||_inf
        z, _ = cg(
            _principal(self.Hu, F),
            np.ones(F.size),
            x0=x0,
            rtol=rtol,
            atol=0.0,
            maxiter=self.max_cg,
            callback=tick,
        )
        self.cg_iterations += count[0]
        return z

    def dense(self, F):
        """Whether the face ``F`` is solved by a Cholesky factor."""
        return self.K is not None or 8 * F.size * F.size <= self.max_bytes

    def solve(self, F, guess=None, fresh=False):
        r"""``(z, f)``: the face's minimiser (sums to 1) and its objective
        :math:`z^\top H_{FF} z = 1 / (\mathbf 1^\top H_{FF}^{-1} \mathbf 1)`; ``(None, inf)``
        when the face's system is singular."""
        self.fresh = True
        if not self.dense(F):
            z = self._cg(F, guess)
        else:
            z = None if fresh or self.base is None else self._dropped(F)
            self.fresh = z is None
            if z is None:
                z = self._factor(F, refine=2 if fresh else 1)
        total = z.sum()
        if not (np.isfinite(total) and total > 0.0):
            return None, np.inf
        return z / total, 1.0 / total


def _kkt(w, g, mask_support):
    """Relative KKT residual of the simplex problem at ``w`` with ``g = H w``, and ``w^T H w``."""
    mu = float(w @ g)
    if not mu > 0:
        return np.inf, mu
    dual = max(0.0, float(np.max(mu - g)))
    comp = float(np.max(np.abs(g[mask_support] - mu))) if np.any(mask_support) else 0.0
    return max(dual, comp) / mu, mu


def _face_minimum(face, F, w, f_w):
    r"""Active-set inner loop: from feasible ``w`` (objective ``f_w``), the minimiser on a
    subface of ``F``: ``(F, w, f)``, ``w`` None when a face's system is singular.

    When the face's minimiser has non-positive weights, first all of them leave at
    once (kept only if the smaller face's minimiser is positive and lowers the
    objective); else the classical step from ``w`` towards it, to the simplex's
    boundary, where the points that reach 0 leave. Along that step, with
    :math:`H_{FF} z = f_z \mathbf 1`, the objective is
    :math:`f_w - (2t - t^2)(f_w - f_z)`.
    """
    guess = None
    blocks = True  # until a block drop fails: then the classical steps only
    while True:
        z, f_z = face.solve(F, guess)
        if z is None:
            return F, None, np.inf
        if np.all(z > 0) and not face.fresh:
            # Solved again from a fresh factor, so that the weights returned carry
            # no error of the dropped-point updates.
            z, f_z = face.solve(F, z, fresh=True)
            if z is None:
                return F, None, np.inf
        if np.all(z > 0):
            w = np.zeros_like(w)
            w[F] = z
            return F, w, f_z
        wf = w[F]
        at_zero = (wf == 0.0) & (z <= 0.0)
        if np.any(at_zero):  # joined at zero and would turn negative: leave them out
            F, guess = F[~at_zero], z[~at_zero]
            continue
        G, zg = F, z
        for _ in range(_BLOCK_DROPS if blocks else 0):
            G = G[zg > 0]
            zg, f_g = face.solve(G, zg[zg > 0])
            if zg is None or not f_g < f_w:
                break
            if np.all(zg > 0):
                if not face.fresh:
                    zg, f_g = face.solve(G, zg, fresh=True)
                if zg is not None and np.all(zg > 0) and f_g < f_w:
                    w = np.zeros_like(w)
                    w[G] = zg
                    return G, w, f_g
                break
        if blocks:
            blocks = False
            z, f_z = face.solve(F, z)  # F's own minimiser again, for the steps below
        # Step from w towards z up to the boundary; the points that reach 0 leave.
        neg = z <= 0.0
        ratio = wf[neg] / (wf[neg] - z[neg])
        t = float(ratio.min())
        new = np.maximum(wf + t * (z - wf), 0.0)
        new[np.flatnonzero(neg)[ratio <= t]] = 0.0
        w = np.zeros_like(w)
        w[F] = new / new.sum()
        f_w = f_w - (2.0 * t - t * t) * (f_w - f_z)
        keep = new > 0.0
        F, guess = F[keep], z[keep]


def _simplex_weights(Hu, K, tol, max_iter, max_bytes, bar):
    r"""Primal active-set solver of :math:`\min w^\top H w` on the simplex."""
    u = Hu.shape[0]
    product = (lambda v: K @ v) if K is not None else (lambda v: Hu @ v)
    diag = np.diag(K).copy() if K is not None else Hu.diagonal()
    face = _Face(K, Hu, tol, max_bytes, max(100, 10 * u))
    # Start on the points whose kernel sum is below the mean, uniform weights there
    # (often close to the support's size), or the smallest diagonal entry alone.
    g = product(np.full(u, 1.0 / u))
    F = np.flatnonzero(g <= np.mean(g))
    limit = u if K is not None else max(1, int(math.sqrt(max_bytes / 8)))
    if F.size > limit:
        F = np.sort(F[np.argsort(g[F], kind="stable")[:limit]])
    if F.size == 0:
        F = np.array([int(np.argmin(diag))], dtype=np.int64)
    w = np.zeros(u)
    w[F] = 1.0 / F.size
    g = product(w)
    kkt, mu = _kkt(w, g, w > 0)
    message = f"max_iter={max_iter} outer iterations reached; raise max_iter"
    nit = 0
    previous = np.inf
    while kkt > tol:
        if nit == max_iter:
            break
        nit += 1
        inF = np.zeros(u, dtype=bool)
        inF[F] = True
        add = np.flatnonzero(~inF & (mu - g > tol * mu))
        # The most violated first; the face at most doubles, and stays within the dense
        # budget while there is room (the support is usually well below it).
        room = max(_MIN_ADD, F.size)
        if K is None and 8 * F.size * F.size <= max_bytes:
            room = max(1, min(room, int(math.sqrt(max_bytes / 8)) - F.size))
        if add.size > room:
            add = add[np.argsort(g[add], kind="stable")[:room]]
        if add.size == 0 and previous <= kkt:  # the same face again, and no better
            message = (
                f"the KKT residual stalled at {kkt:.2e} with the face fixed (rounding "
                "of a badly conditioned face); raise tol"
            )
            break
        previous = kkt
        F, w_new, _ = _face_minimum(face, np.concatenate([F, add]), w, mu)
        if w_new is None:
            message = "a face's linear system is singular to working precision"
            break
        w = w_new
        g = product(w)
        kkt, mu = _kkt(w, g, w > 0)
        bar.update(note=f", KKT residual {kkt:.1e}")
    if kkt <= tol:
        message = "the KKT conditions hold to tol"
    return w, max(mu, 0.0), kkt, nit, kkt <= tol, message


def _signed_weights(Hu, K, ridge, tol, max_iter):
    r"""Signed weights :math:`(H + \lambda I)^{-1} 1 / (1^\top (H + \lambda I)^{-1} 1)` by CG."""
    from scipy.sparse.linalg import LinearOperator, cg

    u = Hu.shape[0]
    if K is not None:
        A = LinearOperator((u, u), matvec=lambda v: K @ v + ridge * v, dtype=np.float64)
    else:
        A = LinearOperator((u, u), matvec=lambda v: Hu @ v + ridge * v, dtype=np.float64)
    count = [0]

    def tick(_):
        count[0] += 1

    # ||r||_inf <= ||r||_2 = rtol sqrt(u): the relative KKT residual is r's largest entry.
    z, info = cg(A, np.ones(u), rtol=tol / math.sqrt(u), atol=0.0, maxiter=max_iter, callback=tick)
    w = z / z.sum()
    g = A @ w
    nu = float(w @ g)
    kkt = float(np.max(np.abs(g - nu)) / abs(nu)) if nu != 0 else np.inf
    mu = float(w @ (g - ridge * w))
    success = kkt <= tol
    if success:
        message = "the Lagrange conditions hold to tol"
    elif info > 0:
        message = (
            f"conjugate gradients stopped after max_iter={max_iter} iterations; raise "
            "max_iter or ridge"
        )
    else:
        message = "conjugate gradients converged, but not to tol (raise ridge)"
    return w, max(mu, 0.0), kkt, count[0], success, message


def stein_weights(
    sample: ArrayLike,
    scores: Any,
    *,
    kernel: str = "imq",
    preconditioner: Any = "sclmed",
    standardize: bool = True,
    signed: bool = False,
    ridge: float | None = None,
    tol: float = 1e-8,
    max_iter: int | None = None,
    max_bytes: int = _DENSE_BYTES,
    progress: bool = False,
    backend: str = "auto",
) -> WeightsResult:
    r"""Stein importance weights: the weights that minimise the weighted KSD of a sample.

    .. math::

        w^\star = \operatorname{argmin} \{ w^\top H w : w \ge 0,\ \textstyle\sum_i w_i = 1 \},
        \qquad H_{ij} = k_p(x_i, x_j),

    and :math:`\mathrm{KSD}_w = \sqrt{w^\top H w}`: reweighting the points
    corrects a biased sample (a chain with burn-in, a wrong step size, an
    approximate sampler) without discarding any of them (Liu and Lee 2017;
    Hodgkinson, Salomone and Roosta 2020; Riabiz et al. 2022). The weighted
    sample estimates :math:`E_p f` by :math:`\sum_i w_i f(x_i)`.

    The kernel, its preconditioner and the standardisation are those of
    :func:`ksdnumba.stein_thinning`, computed from the sample as given, so that
    :math:`H` is the matrix Stein thinning uses: switching between thinning and
    weighting is one word.

    Rows repeated exactly (same point and score; a Metropolis chain repeats
    every rejected state) make :math:`H` singular. They are merged first: the
    problem is solved on the distinct rows and each group's weight goes to its
    first occurrence (the others get 0). The KSD is unchanged by the merge.

    **Solver.** A primal active-set method. It starts from uniform weights on
    the points whose kernel sum :math:`(H \mathbf 1)_i` is below the mean; each
    outer iteration computes :math:`g = H w` (one product), lets the points with
    :math:`g_j < w^\top H w` into the face (the most violated first, at most
    doubling it), and minimises over the face (:math:`H_{FF} z \propto \mathbf
    1`): if weights turn negative, they first all leave at once (kept when that
    lowers the objective), else the step from :math:`w` towards the face's
    minimiser stops at the simplex's boundary and the points reaching 0 leave.
    The objective decreases at every step and the method ends in finitely many
    steps. Blocks up to ``max_bytes`` are held dense (the distinct points' whole
    matrix when it fits) and faces are solved by Cholesky factors, with one step
    of iterative refinement, a point dropped from a face through a Schur
    complement of the same factor, and a small multiple of the identity added
    when a face is numerically singular; above, products go through
    :class:`ksdnumba.SteinMatrix`'s tiles (O(n d) memory) and faces beyond the
    budget are solved by conjugate gradients on the face's own operator
    (:math:`|F|^2` per product; slow where the face is badly conditioned, as in
    two dimensions).

    **Stopping.** With :math:`g = H w` and :math:`\mu = w^\top H w`, the KKT
    conditions of this convex problem are :math:`w \ge 0`, :math:`\sum w = 1`
    (exact here by construction), :math:`g_i \ge \mu` for every :math:`i` and
    :math:`g_i = \mu` where :math:`w_i > 0`. The solver stops when

    .. math::

        r = \frac{1}{\mu} \max\Big( \max_i (\mu - g_i)_+,\
            \max_{i : w_i > 0} |g_i - \mu| \Big) \le \mathrm{tol},

    ``kkt_residual`` is :math:`r` at the weights returned, computed with a fresh
    product. The default ``tol = 1e-8`` is reached in float64 at n = 2,000 (the
    error of :math:`g` itself is about :math:`10^{-16} \max |H_{ij}| / \mu`).

    **Signed weights** (``signed=True``) drop :math:`w \ge 0`: the closed form
    :math:`w = H^{-1} \mathbf 1 / (\mathbf 1^\top H^{-1} \mathbf 1)` of the
    equality-constrained problem, solved by conjugate gradients on
    :math:`H + \lambda I` (``ridge``, :math:`\lambda`), because :math:`H` is
    often numerically singular. Default :math:`\lambda = 10^{-4}
    \operatorname{tr}(H) / n`, the mean diagonal times ``1e-4``: about
    :math:`10^{-7}` of :math:`H`'s largest eigenvalue at n = 1,000, small
    against the eigenvalues that carry the KSD, and large enough that conjugate
    gradients converge in at most a few thousand iterations even in two
    dimensions, where :math:`H`'s condition number passes :math:`10^{12}`
    (a smaller ridge approaches the unregularised solution, more slowly). ``kkt_residual`` is then
    :math:`\max_i |g_i - \nu| / |\nu|` with :math:`g = (H + \lambda I) w`,
    :math:`\nu = w^\top g`. Signed weights can be large and of both signs.

    Parameters
    ----------
    sample : array_like of shape (n, d)
        The points, e.g. the states of a Markov chain.
    scores : array_like of shape (n, d), target or callable
        :math:`\nabla \log p` at each point: an array, or a target (an object
        with ``score(x)``) or a callable ``score(x)``, evaluated once.
    kernel : {"imq", "gaussian"}
        Base kernel, as in :func:`ksdnumba.stein_thinning`.
    preconditioner : str, float or array_like of shape (d, d)
        The metric :math:`L` by stein-thinning's names (``"id"``, ``"med"``,
        ``"sclmed"``, ``"smpcov"``), a squared length scale, or a matrix; see
        :func:`ksdnumba.stein_thinning`.
    standardize : bool
        Divide each column by its mean absolute deviation first.
    signed : bool
        Drop the non-negativity constraint (see above).
    ridge : float, optional
        :math:`\lambda` of the signed weights, >= 0; default above. Only with
        ``signed=True``.
    tol : float
        Relative KKT tolerance, > 0.
    max_iter : int, optional
        Outer iterations of the active-set solver (default 200), or
        conjugate-gradient iterations when ``signed`` (default ``10 n``).
    max_bytes : int
        Hold the distinct points' Stein matrix dense when its ``8 n^2`` bytes fit
        (default 256 MiB); 0 forces the operator.
    progress : bool
        Print a progress line (outer iterations and the residual) on stderr.
    backend : {"auto", "cpu", "cuda"}
        Where the Stein matrix's products run (see :class:`ksdnumba.SteinMatrix`).

    Returns
    -------
    WeightsResult
        ``weights``, ``ksd``, ``support``, ``kkt_residual``, ``nit``,
        ``success``, ``message``, ``n_unique``, ``ridge``, ``preconditioner``,
        ``scale``, ``kernel``.

    Raises
    ------
    ValueError
        If the sample or scores are not finite ``(n, d)`` arrays of one shape
        (NaN scores included), ``tol`` is not positive, ``ridge`` is negative or
        given without ``signed``, or a preconditioner is invalid.
    TypeError
        If an option has the wrong type, or ``scores`` is neither an array nor a
        target with ``score``.

    See Also
    --------
    stein_thinning : keep ``m`` points instead of weighting all of them.
    kernel_thinning : the same, with KT's guarantees.

    References
    ----------
    .. [1] Q. Liu, J. D. Lee. "Black-box importance sampling." AISTATS 2017.
    .. [2] L. Hodgkinson, R. Salomone, F. Roosta. "The reproducing Stein kernel
       approach for post-hoc corrected sampling." arXiv:2001.09266, 2020.
    .. [3] M. Riabiz, W. Y. Chen, J. Cockayne, P. Swietach, S. A. Niederer,
       L. Mackey, C. J. Oates. "Optimal thinning of MCMC output." JRSS B 84(4),
       2022.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.compression import stein_weights
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(0.5, 1.0, size=(300, 2))       # biased for N(0, I)
    >>> res = stein_weights(x, -x)
    >>> bool(res.success), bool(res.kkt_residual <= 1e-8)
    (True, True)
    >>> bool(abs(res.weights.sum() - 1) < 1e-12), bool(res.weights.min() >= 0)
    (True, True)
    >>> mean = res.weights @ x                         # closer to 0 than x.mean(0)
    >>> bool(np.linalg.norm(mean) < np.linalg.norm(x.mean(axis=0)))
    True
    """
    from .kernels._cpu._threads import single_threaded_blas

    x = check_particles(sample, "sample")
    s = _scores(scores, x)
    signed = _check_bool(signed, "signed")
    progress = _check_bool(progress, "progress")
    tol = check_tolerance(tol, "tol")
    if tol == 0:
        raise ValueError("tol must be positive, got 0.0")
    if max_iter is not None:
        max_iter = check_positive_int(max_iter, "max_iter", minimum=1)
    max_bytes = check_positive_int(max_bytes, "max_bytes", minimum=0)
    if ridge is not None:
        if not signed:
            raise ValueError("ridge regularises the signed weights only; pass signed=True")
        ridge = check_tolerance(ridge, "ridge")
    H, scale, L = stein_matrix_from_sample(
        x, s, kernel=kernel, preconditioner=preconditioner, standardize=standardize, backend=backend
    )
    n = x.shape[0]
    keep = _merge_duplicates(x, s)
    Hu = H if keep.size == n else _principal(H, keep)
    u = keep.size
    with single_threaded_blas():
        K = Hu.toarray(max_bytes=2**62) if 8 * u * u <= max_bytes else None
        if signed:
            if ridge is None:
                diag = np.diag(K) if K is not None else Hu.diagonal()
                ridge = _RIDGE * float(np.mean(diag))
            w, mu, kkt, nit, success, message = _signed_weights(
                Hu, K, ridge, tol, 10 * u if max_iter is None else max_iter
            )
        else:
            bar = _Progress("stein_weights", 200 if max_iter is None else max_iter, progress)
            try:
                w, mu, kkt, nit, success, message = _simplex_weights(
                    Hu, K, tol, 200 if max_iter is None else max_iter, max_bytes, bar
                )
            finally:
                bar.close()
    weights = np.zeros(n)
    weights[keep] = w
    support = np.flatnonzero(weights != 0.0) if signed else np.flatnonzero(weights > 0.0)
    return WeightsResult(
        weights=weights,
        ksd=math.sqrt(mu),
        support=support.astype(np.int64),
        kkt_residual=float(kkt),
        nit=int(nit),
        success=bool(success),
        message=message,
        n_unique=int(u),
        ridge=ridge if signed else None,
        preconditioner=L,
        scale=scale,
        kernel=kernel,
    )


# ------------------------------------------------------------------------ kernel thinning


class _Points:
    """A Stein matrix's prepared points (or a subset of them) for the compiled loops."""

    def __init__(self, kind, beta, xT, sT, weights, trace, diag=None):
        from ._compression_kernels import self_values

        self.kind, self.beta, self.weights, self.trace = int(kind), float(beta), weights, trace
        self.xT = np.ascontiguousarray(xT)
        self.sT = np.ascontiguousarray(sT)
        if diag is None:
            diag = self_values(self.kind, self.beta, self.xT, self.sT, weights, trace)
        self.diag = diag

    @classmethod
    def of(cls, H):
        layout = H._layout  # the CPU layout: points and scores in the metric's eigenbasis
        return cls(layout.kind, layout.beta, layout.xT, layout.sT, layout.weights, layout.trace)

    @property
    def n(self):
        return self.xT.shape[1]

    def args(self):
        return self.kind, self.beta, self.xT, self.sT, self.weights, self.trace

    def subset(self, idx):
        return _Points(
            self.kind,
            self.beta,
            self.xT[:, idx],
            self.sT[:, idx],
            self.weights,
            self.trace,
            self.diag[idx],
        )


# The loops meet their threads once per step; below this much work per step
# (pair-coordinate evaluations) the meeting costs more than the second thread saves,
# the more so on a machine shared with other work.
_PARALLEL_MIN_WORK = 2**20


def _threads(P, work):
    """``(drivers, n_chunks, scratch)`` for steps of ``work`` evaluations on ``P``'s points."""
    from numba import get_num_threads

    from ._compression_kernels import _BLOCK, _drivers

    threads = get_num_threads()
    parallel = threads > 1 and work * P.xT.shape[0] >= _PARALLEL_MIN_WORK
    n_chunks = min(P.n, 8 * threads) if parallel else 1
    return _drivers(parallel), n_chunks, np.empty((n_chunks, 10, _BLOCK))


def _halve(P, delta, u, full):
    """KT's halving of the points of ``P`` in pairs: ``(coreset0, coreset1, acc0, acc1, acc_m)``."""
    from ._compression_kernels import _PAIRS

    (halve, _, _), n_chunks, scratch = _threads(P, 2 * _PAIRS * P.n)
    n = P.n
    out0 = np.empty(n // 2, dtype=np.int64)
    out1 = np.empty(n // 2, dtype=np.int64)
    acc0 = np.zeros(n if full else 0)
    acc1 = np.zeros(n)
    acc_m = np.zeros(n if full else 0)
    halve(
        *P.args(), P.diag, float(delta), u, out0, out1, full, acc0, acc1, acc_m, scratch, n_chunks
    )
    return out0, out1, acc0, acc1, acc_m


def _row_sums(P, cols):
    """``sum_j k(x_i, x_{cols[j]})`` for every point ``i`` of ``P``, ``j`` in order."""
    (_, sums, _), n_chunks, scratch = _threads(P, len(cols) * P.n)
    out = np.empty(P.n)
    sums(*P.args(), np.ascontiguousarray(cols, dtype=np.int64), out, scratch, n_chunks)
    return out


def _ordered_sum(values):
    """The left-to-right sum (goodpoints' loops), not NumPy's pairwise one."""
    return float(np.cumsum(values)[-1]) if values.size else 0.0


def _refine(P, coreset, mean_k, start, unique, non):
    """KT-SWAP's refinement of ``coreset`` (indices into ``P``) in place."""
    (_, _, refine), n_chunks, scratch = _threads(P, 2 * P.n)
    n = P.n
    refine(
        *P.args(),
        P.diag,
        coreset,
        mean_k,
        start,
        unique,
        non,
        np.empty(n),
        np.empty(n),
        np.empty(n_chunks),
        np.empty(n_chunks, dtype=np.int64),
        scratch,
        n_chunks,
    )


def _split(P, rounds, delta, gen, bar):
    """KT-SPLIT (goodpoints' ``kt.split_K``): ``2**rounds`` coresets of ``n // 2**rounds``."""
    n = P.n
    if rounds == 1:
        u = gen.random(n // 2)
        c0, c1, _, _, _ = _halve(P, delta, u, False)
        bar.update()
        return [c0, c1]
    u = gen.random((rounds, n // 2))  # the stream of goodpoints' rng.uniform(size=...)
    used = 2**rounds * (n // 2**rounds)
    inputs = [np.arange(used, dtype=np.int64)]
    for j in range(rounds):
        delta_j = delta * len(inputs) / rounds
        size = used // 2 ** (j + 1)
        outputs = []
        for ell, inp in enumerate(inputs):
            c0, c1, _, _, _ = _halve(
                P.subset(inp), delta_j, u[j, ell * size : (ell + 1) * size], False
            )
            outputs += [inp[c0], inp[c1]]
        inputs = outputs
        bar.update()
    return inputs


def _coreset_total(P, idx):
    r""":math:`\sum_{a, b} k(x_{i_a}, x_{i_b})` over a coreset (goodpoints' ``mean0`` MMD)."""
    Q = P.subset(idx)
    return _ordered_sum(_row_sums(Q, np.arange(Q.n)))


def _thin(P, rounds, delta, gen, bar):
    """goodpoints' ``kt.thin_K(K, K, rounds, delta, seed, mean0=True)`` on the points of ``P``."""
    n = P.n
    if rounds == 0:
        return np.arange(n, dtype=np.int64)
    coresets = _split(P, rounds, delta, gen, bar)
    size = coresets[0].size
    # KT-SWAP: the best of the split's coresets and standard thinning (taken from
    # the end, as goodpoints does), then each point swapped for the best one.
    best = np.arange(n - 1, -1, -(n // size), dtype=np.int64)[::-1].copy()
    best_value = _coreset_total(P, best) / (best.size * best.size)
    for coreset in coresets:
        value = _coreset_total(P, coreset) / (size * size)
        if value < best_value:
            best, best_value = coreset, value
    coreset = np.array(best, dtype=np.int64)
    _refine(P, coreset, np.empty(0), _row_sums(P, coreset), False, np.empty(0, np.int64))
    bar.update()
    return coreset


def _compress_halve(P, delta, gen):
    """Symmetrised KT halving of Compress (goodpoints' ``compressc.halve``): local indices."""
    from ._compression_kernels import opt_halve4

    n = P.n
    if n == 4:
        k = np.column_stack([_row_sums(P, [j]) for j in range(4)])
        out = np.empty(2, dtype=np.int64)
        opt_halve4(k, gen.random(), False, out)
        return out
    u = gen.random(n // 2)
    c0, c1, acc0, _, total = _halve(P, delta, u, True)
    mean_k = total / n
    size = n // 2
    sq = size * size
    base = np.arange(1, n, 2, dtype=np.int64)
    inner = _row_sums(P.subset(base), np.arange(size))
    base_value = _ordered_sum(inner / sq - 2.0 * mean_k[base] / size)
    value0 = _ordered_sum(acc0[c0] / sq - 2.0 * mean_k[c0] / size)
    if value0 < base_value:
        coreset, non, start = c0, c1, acc0
    else:
        coreset, non = base, np.arange(0, n, 2, dtype=np.int64)
        start = _row_sums(P, coreset)
    _refine(P, coreset, mean_k, start, True, non)
    if gen.random() > 0.5:
        coreset = non
    return coreset


def _compress(P, g, bins, delta, gen, bar):
    """Compress (Shetty et al., Algorithm 1; goodpoints' ``compress_kt``): indices into ``P``."""
    n = P.n
    bin_size = n // bins
    base_size = 4 ** (g + 1)
    halve_prob = delta / base_size / (math.log2(bin_size) / 2 - g) / n

    def halve(idx):
        local = _compress_halve(P.subset(idx), halve_prob * idx.size**2, gen)
        bar.update()
        return idx[local]

    def recurse(idx):
        if idx.size == base_size:
            return halve(idx)
        quarter = idx.size // 4
        return halve(
            np.concatenate([recurse(idx[i * quarter : (i + 1) * quarter]) for i in range(4)])
        )

    return np.concatenate(
        [recurse(np.arange(j * bin_size, (j + 1) * bin_size, dtype=np.int64)) for j in range(bins)]
    )


def _compress_plan(n, rounds, g):
    """``(n4, k, bins, m, depth)`` of Compress++ for an output of ``n4 / 2**rounds`` points."""
    k = (n.bit_length() - 1) // 2
    bins = 4 ** max(1, k - rounds + 1)
    m = g + 1 + max(0, rounds - k)
    depth = min(k, rounds) - 1 - g
    return 4**k, k, bins, m, depth


def _compresspp(P, rounds, g, delta, rng, bar_enabled):
    """Stein Compress++ (goodpoints' ``compresspp_kt(..., num_bins=4, mean0=True)``)."""
    n4, k, bins, m, depth = _compress_plan(P.n, rounds, g)
    trimmed = np.arange(P.n, dtype=np.int64)
    if n4 != P.n:  # standard thinning from the end to a power of four, as goodpoints does
        trimmed = np.linspace(P.n - 1, 0, n4, dtype=int)[::-1].astype(np.int64)
    Q = P.subset(trimmed)
    if depth <= 0:  # no bin is large enough to compress: KT on the whole (trimmed) sample
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        bar = _Progress("kernel_thinning", rounds + 1, bar_enabled)
        try:
            return trimmed[_thin(Q, rounds, delta, gen, bar)]
        finally:
            bar.close()
    thin_frac = m / (m + (2**m) * depth)
    thin_delta = delta * thin_frac
    compress_delta = delta * (1 - thin_frac)
    if isinstance(rng, np.random.Generator):
        compress_seed, thin_seed = (int(v) for v in rng.integers(0, 2**32, size=2))
    else:
        seqs = np.random.SeedSequence(rng).spawn(2)
        compress_seed, thin_seed = (int(q.generate_state(1)[0]) for q in seqs)
    halvings = bins * sum(4**level for level in range(depth))
    bar = _Progress("kernel_thinning", halvings + m + 1, bar_enabled)
    try:
        gen = np.random.Generator(np.random.PCG64(compress_seed))
        coreset = _compress(Q, g, bins, compress_delta, gen, bar)
        chosen = _thin(Q.subset(coreset), m, thin_delta, np.random.default_rng(thin_seed), bar)
    finally:
        bar.close()
    return trimmed[coreset[chosen]]


def kernel_thinning(
    sample: ArrayLike,
    scores: Any,
    rounds: int,
    *,
    kernel: str = "imq",
    preconditioner: Any = "sclmed",
    standardize: bool = True,
    delta: float = 0.5,
    rng: Any = None,
    compress: bool = False,
    oversampling: int = 4,
    progress: bool = False,
) -> KernelThinningResult:
    r"""Stein kernel thinning: ``n / 2**rounds`` points of a sample with a small KSD.

    Kernel thinning (Dwivedi and Mackey 2021, 2022) with the Stein kernel
    :math:`k_p` (target kernel thinning with mean-zero swaps):

    1. **KT-SPLIT** halves the sample ``rounds`` times. Each halving takes the
       points in pairs :math:`(x_{2i}, x_{2i+1})` and sends one to each half,
       the second to the first half with probability
       :math:`\frac12 (1 - \alpha_i / a_i)`, where :math:`\alpha_i` is the
       inner product of :math:`k_p(x_{2i}, \cdot) - k_p(x_{2i+1}, \cdot)` with
       the difference of the two halves built so far and :math:`a_i` an
       adaptive threshold; ``delta`` sets the failure probability of its
       sub-Gaussian bound. The result is ``2**rounds`` candidate coresets.
    2. **KT-SWAP** keeps the candidate with the smallest KSD (standard thinning
       is a candidate too) and replaces each of its points in turn by the point
       of the sample that lowers the coreset's KSD most:

    .. math::

        \mathrm{KSD}^2(S) = \frac{1}{|S|^2} \sum_{i, j \in S} k_p(x_i, x_j)
        \quad \text{(the MMD to the target, since } E_p k_p(x, \cdot) = 0).

    The indices are those of goodpoints 0.6.3's
    ``kt.thin_K(K, K, rounds, delta=delta, seed=rng, mean0=True)`` with ``K`` the
    dense Stein matrix of the same options, but no ``n x n`` matrix is formed:
    the loops compute the columns they need, O(n d) memory, :math:`O(n^2)`
    kernel evaluations (about ``n**2`` for the split, ``3 n**2 / 2**rounds``
    for the swap).

    With ``compress=True``, **Stein Compress++** (Shetty, Dwivedi and Mackey
    2022, Algorithm 2, with KT as both the halving and the thinning routine):
    the sample (first reduced to :math:`n' = 4^k`, the largest power of four
    :math:`\le n`, by standard thinning from the end) is cut into bins;
    Compress halves recursively, each halving a symmetrised KT halving (to the
    bin's own points, mean not zero) of at most :math:`2^{g+1} \sqrt{\text{bin}}`
    points, to :math:`2^g` times the target size; KT then thins that to
    ``n' // 2**rounds``. :math:`O(4^g n \log n)` kernel evaluations, near linear.
    For ``rounds = k`` (:math:`\sqrt{n'}` points) the indices are those of
    goodpoints' ``compress.compresspp_kt(X, kernel, g=oversampling,
    num_bins=4, delta=delta, seed=rng, mean0=True)`` with the Stein kernel in
    place of its compiled Gaussian one; for other sizes the four bins become
    :math:`4^{k + 1 - \text{rounds}}` (fewer rounds) or the final thinning takes
    the extra rounds (more rounds).

    Parameters
    ----------
    sample : array_like of shape (n, d)
        The points, e.g. the states of a Markov chain.
    scores : array_like of shape (n, d), target or callable
        :math:`\nabla \log p` at each point (an array, or a target's
        ``score``, evaluated once).
    rounds : int
        Halving rounds, >= 0: the output has ``n // 2**rounds`` points, at
        least one. With ``compress=True``, at most :math:`2 k`.
    kernel, preconditioner, standardize
        The Stein kernel, as in :func:`ksdnumba.stein_thinning` (same defaults,
        same matrix).
    delta : float
        KT-SPLIT's failure probability, in (0, 1).
    rng : None, int, SeedSequence or numpy.random.Generator
        Randomness of the halvings. An int (or a SeedSequence) reproduces
        goodpoints' stream: ``numpy.random.default_rng(seed)`` for KT-SPLIT, and
        for Compress++ ``SeedSequence(seed).spawn(2)`` giving the seeds of
        Compress's ``Generator(PCG64(.))`` and of the final KT, as goodpoints
        draws them. A Generator is used as it is (KT) or draws the two seeds
        (Compress++).
    compress : bool
        Run Stein Compress++ instead of KT on the whole sample.
    oversampling : int
        Compress++'s :math:`g` >= 0: Compress keeps :math:`2^g` times the output
        size before the final KT. Larger: closer to KT's quality, at
        :math:`4^g` times the cost.
    progress : bool
        Print a progress line on stderr.

    Returns
    -------
    KernelThinningResult
        ``indices`` (int64), ``ksd`` (of the selected points), ``preconditioner``
        (:math:`L`), ``scale``, ``kernel``, ``rounds``, ``compress``.

    Raises
    ------
    ValueError
        If ``rounds`` leaves no point (``2**rounds > n``, or ``> 4**k`` with
        ``compress``), ``delta`` is outside (0, 1), the sample or scores are not
        finite arrays of one shape (NaN scores included), ``oversampling`` is
        negative, or the preconditioner is invalid.
    TypeError
        If ``rounds`` or ``oversampling`` is not an integer, ``rng`` is not a
        seed or Generator, or ``scores`` is neither an array nor a target.

    See Also
    --------
    stein_thinning : greedy Stein thinning, to any size.
    stein_weights : weight every point instead.

    Notes
    -----
    When ``n`` is not a multiple of ``2**rounds``, KT-SPLIT (as goodpoints')
    halves the first ``2**rounds * (n // 2**rounds)`` points and leaves the last
    ``n % 2**rounds`` out of the candidates, but KT-SWAP may swap any of the
    ``n`` points in. The standard-thinning candidate is
    ``arange(n - 1, -1, -(n // m))[::-1]`` (every ``n // m``-th point from the
    end, ``m = n // 2**rounds``), which has more than ``m`` points when ``m``
    does not divide ``n``; on the rare runs where it beats every KT candidate,
    the output has its size, as goodpoints' does. The swap may select a point
    twice (goodpoints' ``unique=False``).

    References
    ----------
    .. [1] R. Dwivedi, L. Mackey. "Kernel Thinning." COLT 2021;
       "Generalized Kernel Thinning." ICLR 2022.
    .. [2] A. Shetty, R. Dwivedi, L. Mackey. "Distribution Compression in
       Near-linear Time." ICLR 2022.
    .. [3] goodpoints, https://github.com/microsoft/goodpoints (version 0.6.3).

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba.compression import kernel_thinning
    >>> x = np.random.default_rng(0).normal(size=(512, 2))
    >>> res = kernel_thinning(x, -x, 4, rng=0)
    >>> res.indices.shape, res.indices.dtype
    ((32,), dtype('int64'))
    >>> res2 = kernel_thinning(x, -x, 4, rng=0)
    >>> bool(np.array_equal(res.indices, res2.indices))
    True
    >>> y = np.random.default_rng(1).normal(size=(1024, 2))
    >>> cpp = kernel_thinning(y, -y, 5, rng=0, compress=True, oversampling=1)
    >>> cpp.indices.shape                              # sqrt(1024) points
    (32,)
    """
    x = check_particles(sample, "sample")
    s = _scores(scores, x)
    n = x.shape[0]
    rounds = check_positive_int(rounds, "rounds", minimum=0)
    delta = check_fraction(delta, "delta")
    compress = _check_bool(compress, "compress")
    progress = _check_bool(progress, "progress")
    oversampling = check_positive_int(oversampling, "oversampling", minimum=0)
    if isinstance(rng, (np.random.Generator, np.random.SeedSequence)) or rng is None:
        seed = rng
    elif isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"rng: a seed must be non-negative, got {rng}")
        seed = int(rng)
    else:
        seed = check_rng(rng)  # a BitGenerator or a sequence of ints; raises for the rest
    if compress:
        k = (n.bit_length() - 1) // 2
        if k == 0:
            raise ValueError(f"compress=True needs at least 4 points, got n = {n}")
        if 2**rounds > 4**k:
            raise ValueError(
                f"rounds={rounds} is too large for Compress++ on n = {n}: it thins the "
                f"{4**k} points of the largest power of four to {4**k} // 2**rounds, "
                f"so rounds must be <= {2 * k}"
            )
    elif 2**rounds > n:
        raise ValueError(
            f"rounds={rounds} is too large for n = {n}: the output has n // 2**rounds points; "
            f"rounds must be <= {n.bit_length() - 1}"
        )
    H, scale, L = stein_matrix_from_sample(
        x, s, kernel=kernel, preconditioner=preconditioner, standardize=standardize, backend="cpu"
    )
    P = _Points.of(H)
    from .kernels._cpu._threads import single_threaded_blas

    with single_threaded_blas():
        if compress:
            indices = _compresspp(P, rounds, oversampling, delta, seed, progress)
        else:
            gen = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
            bar = _Progress("kernel_thinning", rounds + 1, progress)
            try:
                indices = _thin(P, rounds, delta, gen, bar)
            finally:
                bar.close()
        m = indices.size
        ksd = math.sqrt(max(_coreset_total(P, indices), 0.0)) / m
    return KernelThinningResult(
        indices=np.asarray(indices, dtype=np.int64),
        ksd=ksd,
        preconditioner=L,
        scale=scale,
        kernel=kernel,
        rounds=rounds,
        compress=compress,
    )
