r"""The Stein matrix :math:`H_{ij} = k_p(x_i, x_j)` as a SciPy linear operator.

Every tool of the package computes with this one matrix: the KSD is its mean,
Stein thinning reads one column per step, the KSD test forms :math:`w^\top H w`
for every bootstrap draw, and the tools built on top (running-KSD curves,
Stein weights, kernel thinning, aggregated tests) need a few more of its
products. :class:`SteinMatrix` offers them all, each in one pass over the
matrix's tiles, never holding an ``n x n`` array.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.sparse.linalg import LinearOperator

from ._bandwidth import resolve_bw
from ._validation import (
    call_target,
    check_beta,
    check_dtype,
    check_finite_field,
    check_like,
    check_option,
    check_particles,
    check_spd,
    check_target_dims,
)
from .kernels._backend import kernels, resolve_backend
from .kernels._kinds import KINDS, LINEAR, RADIAL

__all__ = ["SteinMatrix"]

# toarray() refuses a dense matrix above this many bytes unless asked for more.
_MAX_DENSE_BYTES = 2**31


def _scores_at(score, x):
    """``score`` as an ``(n, d)`` array at ``x``: an array as given, or a target's score."""
    from .targets import as_score_target  # targets import this module's siblings

    arr = None if callable(score) or hasattr(score, "score") else np.asarray(score)
    numeric = arr is not None and (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    )
    if not numeric:
        target = as_score_target(score)  # raises TypeError for anything else
        check_target_dims(target, x, "x")
        values = call_target(target.score, "score", x)
        return check_finite_field(values, x, "score")
    arr = check_like(score, x, "score", "x")
    return np.ascontiguousarray(arr, dtype=x.dtype)


def _metric(preconditioner, d):
    r"""``(weights, rotation, M)`` of a preconditioner :math:`M`: :math:`L = M^{-1}`.

    ``weights`` are :math:`L`'s eigenvalues; ``rotation`` its eigenvectors, or
    None when :math:`M` is diagonal (then the points are used as they are).
    """
    arr = np.asarray(preconditioner)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise TypeError(
            "preconditioner must be None or a numeric (d,) or (d, d) array, got "
            f"{type(preconditioner).__name__}"
        )
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        if arr.shape != (d,):
            raise ValueError(f"a diagonal preconditioner must have shape ({d},), got {arr.shape}")
        if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
            raise ValueError(
                "a diagonal preconditioner must be positive and finite (it is the diagonal "
                "of a positive definite matrix)"
            )
        return 1.0 / arr, None, np.diag(arr)
    if arr.ndim != 2:
        raise ValueError(
            f"preconditioner must have shape ({d},) or ({d}, {d}), got shape {arr.shape}"
        )
    M, values, vectors = check_spd(arr, d, "preconditioner")
    if np.count_nonzero(M - np.diag(np.diag(M))) == 0:
        return 1.0 / np.diag(M), None, M
    return 1.0 / values, vectors, M


class SteinMatrix(LinearOperator):
    r"""The Stein matrix :math:`H_{ij} = k_p(x_i, x_j)` of a sample, as a linear operator.

    For points :math:`x_1, \dots, x_n` with scores :math:`s_i = \nabla \log p(x_i)`
    and a base kernel :math:`k`, the Stein kernel is

    .. math::

        k_p(x, y) = s(x)^\top s(y)\, k(x, y) + s(x)^\top \nabla_y k(x, y)
            + s(y)^\top \nabla_x k(x, y) + \nabla_x \cdot \nabla_y k(x, y),

    and :math:`H` is symmetric positive semi-definite, with
    :math:`\mathrm{KSD}^2 = \frac{1}{n^2} \mathbf 1^\top H \mathbf 1`
    (V-statistic). The operator never holds :math:`H`: every product and
    reduction walks its tiles once, in compiled code, with O(n d) memory
    besides its output. It is a :class:`scipy.sparse.linalg.LinearOperator`,
    so ``H @ v``, ``H @ V``, ``H.T`` and SciPy's iterative solvers
    (``eigsh``, ``cg``, ``lsqr``, ...) work on it.

    Parameters
    ----------
    x : array_like of shape (n, d)
        The points.
    score : array_like of shape (n, d), target, or callable
        The scores at ``x``: an array, or a target (any object with
        ``score(x)``) or a callable ``score(x)``, evaluated once.
    kernel : {"gaussian", "imq", "linear"}
        Base kernel. With a bandwidth ``bw`` (a squared length scale):
        ``"gaussian"`` :math:`e^{-|x - y|^2 / (2\,\mathrm{bw})}`, ``"imq"``
        :math:`(1 + |x - y|^2 / \mathrm{bw})^{-\beta}`; ``"linear"``
        :math:`x \cdot y`.
    bw : float, "median" or None
        Bandwidth, > 0; ``"median"`` for :func:`ksdnumba.median_bandwidth` of
        ``x``, resolved once (:attr:`bw` holds the value). None: 1.0, or no
        bandwidth when a preconditioner is given. Ignored by the linear kernel.
    beta : float
        Exponent of the IMQ kernel, in (0, 1).
    preconditioner : None or array_like of shape (d, d) or (d,)
        A symmetric positive definite matrix :math:`M` (or its diagonal) that
        replaces the bandwidth: the base kernel is then a function of
        :math:`(x - y)^\top M^{-1} (x - y)`, IMQ
        :math:`(1 + (x - y)^\top M^{-1} (x - y))^{-\beta}`, Gaussian
        :math:`e^{-(x - y)^\top M^{-1} (x - y) / 2}` (stein-thinning's
        convention: ``M = bw * I`` is the kernel with bandwidth ``bw``).
        Radial kernels only; not together with ``bw``.
    dtype : None, np.float32 or np.float64
        Precision of the tiles and their products; the sums across tiles and
        every result are float64. None: float32 for float32 ``x``, else float64.
    backend : {"auto", "cpu", "cuda"}
        Where the tiles are computed: ``"cpu"`` (numba, threaded), ``"cuda"``
        (an NVIDIA GPU through numba.cuda) or ``"auto"``, the package's one
        rule (:func:`ksdnumba.kernels._backend.resolve_backend`): the GPU when
        numba can use one and there are at least ``2048**2`` pairs.

    Attributes
    ----------
    shape : tuple
        ``(n, n)``.
    dtype : numpy.dtype
        float64, the dtype of every result.
    x : ndarray of shape (n, d)
        The points, in the computation dtype.
    scores : ndarray of shape (n, d)
        The scores, in the computation dtype.
    kernel : str
    bw : float or None
        The bandwidth (resolved from ``"median"``), None with a preconditioner
        or the linear kernel.
    beta : float
    preconditioner : ndarray of shape (d, d) or None
        :math:`M`.
    backend : str
        ``"cpu"`` or ``"cuda"``, resolved.
    compute_dtype : numpy.dtype
        The tiles' dtype.

    Raises
    ------
    ValueError
        If ``x`` is not a finite non-empty ``(n, d)`` array, the scores are not
        finite or not of ``x``'s shape, the kernel is unknown, ``bw`` and
        ``preconditioner`` are both given, or the preconditioner is not
        symmetric positive definite of size ``d``.
    TypeError
        If an argument has the wrong type (e.g. a target without ``score``).
    ksdnumba._validation.EvaluationError
        If the target's score raises (chained) or returns the wrong shape.

    Notes
    -----
    Cost of each method, with :math:`T = 128`-row tiles: ``H @ V`` (``B``
    columns) is :math:`2 n^2 B` flops of BLAS products on tiles computed once
    per unordered pair; ``row_sums``, ``sum``, ``prefix_sums`` the same tiles
    with one column; ``quadratic_forms`` (``B`` forms) :math:`n^2 B` flops on
    the upper triangle of tiles; ``column`` O(n d); ``diagonal`` O(n d);
    ``toarray`` :math:`n^2` entries. Memory: O(n d) plus the output and a few
    tiles per thread. Results are bit-identical for any number of threads.

    References
    ----------
    .. [1] Q. Liu, J. Lee, M. Jordan. "A Kernelized Stein Discrepancy for
       Goodness-of-fit Tests." ICML 2016.
    .. [2] M. Riabiz, W. Y. Chen, J. Cockayne, P. Swietach, S. A. Niederer,
       L. Mackey, C. J. Oates. "Optimal thinning of MCMC output." JRSS B
       84(4), 2022.

    Examples
    --------
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> x = np.random.default_rng(0).normal(size=(200, 2))
    >>> H = kn.SteinMatrix(x, -x, kernel="imq", bw=1.0)
    >>> H.shape
    (200, 200)
    >>> v = np.ones(200)
    >>> bool(np.isclose(v @ (H @ v), H.sum()))
    True
    >>> bool(np.isclose(H.sum() / 200**2, kn.ksd(x, lambda z: -z, kernel="imq")))
    True
    >>> from scipy.sparse.linalg import eigsh
    >>> top = eigsh(H, k=1, return_eigenvectors=False)
    >>> bool(top[0] > 0)
    True
    """

    def __init__(
        self,
        x: ArrayLike,
        score: Any,
        *,
        kernel: str = "gaussian",
        bw: float | str | None = None,
        beta: float = 0.5,
        preconditioner: ArrayLike | None = None,
        dtype: Any = None,
        backend: str = "auto",
    ) -> None:
        if dtype is None:
            dtype = np.float32 if getattr(x, "dtype", None) == np.float32 else np.float64
        dtype = check_dtype(dtype)
        x = check_particles(x, "x", dtype)
        d = x.shape[1]
        kernel = check_option(kernel, "kernel", tuple(KINDS))
        beta = check_beta(beta)
        if preconditioner is not None:
            if kernel not in RADIAL:
                raise ValueError(
                    f"the {kernel} kernel has no distance for a preconditioner to act on; "
                    f"pass preconditioner=None or one of the kernels {RADIAL}"
                )
            if bw is not None:
                raise ValueError(
                    "give bw or preconditioner, not both: a preconditioner M replaces the "
                    "bandwidth (bw is M = bw * I)"
                )
            weights, rotation, M = _metric(preconditioner, d)
        else:
            M = None
            if kernel in RADIAL:
                bw = resolve_bw(1.0 if bw is None else bw, x)
                weights, rotation = np.full(d, 1.0 / bw), None
            else:
                bw, weights, rotation = None, np.ones(d), None
        s = _scores_at(score, x)
        self._setup(x, s, kernel, bw, beta, weights, rotation, M, backend)

    @classmethod
    def _from_metric(cls, x, s, *, kernel, beta, weights, rotation, preconditioner, backend):
        """A matrix for a metric given by its eigenvalues and eigenvectors (checked arrays).

        The door of the tools that compute their metric themselves (stein-thinning's
        named preconditioners), so that their weights are used to the bit.
        """
        self = cls.__new__(cls)
        self._setup(
            x,
            s,
            kernel,
            None,
            beta,
            np.asarray(weights, dtype=np.float64),
            rotation,
            preconditioner,
            backend,
        )
        return self

    def _setup(self, x, s, kernel, bw, beta, weights, rotation, M, backend):
        n, d = x.shape
        self.x = x
        self.scores = s
        self.kernel = kernel
        self.bw = bw
        self.beta = beta
        self.preconditioner = M
        self.compute_dtype = x.dtype
        self.backend = resolve_backend(backend, n * n, d)
        self._weights = weights
        self._rotation = rotation
        self._kind = KINDS[kernel]
        self._module = kernels(self.backend)
        self._layout_cache = None
        super().__init__(np.float64, (n, n))

    # ------------------------------------------------------------------ internals

    @property
    def _layout(self):
        """The backend's prepared arrays (points and scores in the metric's eigenbasis)."""
        if self._layout_cache is None:
            x = np.asarray(self.x, dtype=np.float64)
            s = np.asarray(self.scores, dtype=np.float64)
            if self._rotation is not None:
                x, s = x @ self._rotation, s @ self._rotation
            trace = None
            if self.bw is not None:  # d / bw as the package's formulas write it
                trace = self.x.shape[1] / self.bw
            self._layout_cache = self._module.stein_layout(
                self._kind, self.beta, x, s, self._weights, self.compute_dtype, trace
            )
        return self._layout_cache

    def _as_block(self, W, name):
        arr = np.asarray(W)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise TypeError(f"{name} must be a real array, got dtype {arr.dtype}")
        if arr.ndim not in (1, 2) or arr.shape[0] != self.shape[0]:
            raise ValueError(
                f"{name} must have shape ({self.shape[0]},) or ({self.shape[0]}, B), got "
                f"{arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains non-finite values (NaN or inf)")
        return arr

    def _indices(self, idx, name):
        n = self.shape[0]
        arr = np.asarray(idx)
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
        arr = np.atleast_1d(arr).astype(np.int64)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one integer or a 1-D array of them")
        if np.any(arr < -n) or np.any(arr >= n):
            raise IndexError(f"{name} out of range for a matrix of size {n}")
        return np.where(arr < 0, arr + n, arr)

    # ------------------------------------------------------------------ LinearOperator

    def _matvec(self, v):
        v = np.asarray(v).reshape(-1)
        return self._module.stein_products(self._layout, v[:, None])[:, 0]

    def _matmat(self, V):
        return self._module.stein_products(self._layout, np.asarray(V))

    _rmatvec = _matvec
    _rmatmat = _matmat

    def _adjoint(self):
        return self  # symmetric and real

    def _transpose(self):
        return self

    def __repr__(self) -> str:
        n = self.shape[0]
        what = "preconditioner=M" if self.preconditioner is not None else f"bw={self.bw!r}"
        return (
            f"<{n}x{n} SteinMatrix, kernel={self.kernel!r}, {what}, "
            f"{self.compute_dtype.name} tiles, backend={self.backend!r}>"
        )

    # ------------------------------------------------------------------ reductions

    def diagonal(self) -> np.ndarray:
        r""":math:`H_{ii} = k_p(x_i, x_i)`, in closed form: O(n d).

        Gaussian :math:`|s_i|^2 + \operatorname{tr} L`, IMQ
        :math:`|s_i|^2 + 2\beta \operatorname{tr} L` (:math:`L = I / \mathrm{bw}`
        or :math:`M^{-1}`), linear :math:`|x_i|^2 |s_i|^2 + 2 s_i \cdot x_i + d`.

        Returns
        -------
        ndarray of shape (n,), float64
        """
        return self._module.stein_diagonal(self._layout)

    def columns(self, cols: ArrayLike, rows: ArrayLike | None = None) -> np.ndarray:
        r"""Columns :math:`H_{:, j}` for each ``j`` in ``cols``: O(n d) each.

        Parameters
        ----------
        cols : int or array_like of int
            Column indices (negative ones count from the end).
        rows : array_like of int, optional
            Only these rows, in this order (default: all).

        Returns
        -------
        ndarray of shape (n_rows, len(cols)), float64
        """
        cols = self._indices(cols, "cols")
        rows = None if rows is None else self._indices(rows, "rows")
        return self._module.stein_columns(self._layout, cols, rows)

    def column(self, j: int) -> np.ndarray:
        """Column ``j`` of :math:`H`, :math:`k_p(x_i, x_j)` for every ``i``: O(n d).

        Returns
        -------
        ndarray of shape (n,), float64
        """
        if isinstance(j, (bool, np.bool_)) or not isinstance(j, numbers.Integral):
            raise TypeError(f"j must be an integer, got {j!r}")
        return self.columns([j])[:, 0]

    def row_sums(self) -> np.ndarray:
        r""":math:`H \mathbf 1`, the sum of each row: one pass over the tiles.

        Returns
        -------
        ndarray of shape (n,), float64
        """
        return self._module.stein_products(self._layout, np.ones((self.shape[0], 1)))[:, 0]

    def sum(self) -> float:
        r""":math:`\mathbf 1^\top H \mathbf 1 = \sum_{i, j} k_p(x_i, x_j)`: one pass.

        :math:`n^2 \mathrm{KSD}^2` (V-statistic). With a bandwidth, the sum is
        the one :func:`ksdnumba.ksd` and the descent objective compute, to the bit.
        """
        if self._kind == LINEAR:
            return float(self._module.linear_stein_total(self.x, self.scores))
        if self.bw is not None:
            if self.kernel == "gaussian":
                return float(self._module.gaussian_stein_total(self.x, self.scores, self.bw))
            return float(self._module.imq_stein_total(self.x, self.scores, self.bw, self.beta))
        return float(np.sum(self.row_sums()))

    def prefix_sums(self) -> np.ndarray:
        r"""Sums over the leading blocks: :math:`P_m = \sum_{i, j < m} H_{ij}` for m = 1..n.

        :math:`\sqrt{P_m} / m` is the KSD of the first ``m`` points, the running
        curve of an MCMC chain. One pass over the tiles on and below the
        diagonal: :math:`P_m = P_{m-1} + H_{mm} + 2 \sum_{j < m} H_{mj}`.

        Returns
        -------
        ndarray of shape (n,), float64
        """
        ones = np.ones((self.shape[0], 1))
        lower = self._module.stein_products(self._layout, ones, lower=True)[:, 0]
        return np.cumsum(2.0 * lower + self.diagonal())

    def quadratic_forms(self, W: ArrayLike) -> np.ndarray | float:
        r""":math:`w_b^\top H w_b` for every column :math:`w_b` of ``W``.

        All forms in one pass over the upper triangle of tiles:
        :math:`n^2 B` flops, O(n (d + B)) memory.

        Parameters
        ----------
        W : array_like of shape (n, B) or (n,)
            One vector per column.

        Returns
        -------
        ndarray of shape (B,) or float
            float64; a float for a 1-D ``W``.
        """
        W = self._as_block(W, "W")
        one = W.ndim == 1
        out = self._module.stein_forms(self._layout, W[:, None] if one else W)
        return float(out[0]) if one else out

    def _forms_over_bandwidths(self, W, bws):
        """Quadratic forms for each bandwidth in ``bws`` (the isotropic radial kernels), one
        pass over the tiles: ``(len(bws), B)``."""
        lams = 1.0 / np.asarray(bws, dtype=np.float64)
        return self._module.stein_forms(self._layout, W, lams)

    def _greedy(self, m, lap=None, logp=None, lam=0.0, log_weights=None):
        """Greedy Stein thinning on this matrix: ``(indices, running sums)``."""
        return self._module.greedy_thinning(self._layout, m, lap, logp, lam, log_weights)

    def toarray(self, max_bytes: int = _MAX_DENSE_BYTES) -> np.ndarray:
        """The dense matrix, ``(n, n)`` float64, computed tile by tile.

        Parameters
        ----------
        max_bytes : int
            Refuse (ValueError) when ``8 n^2`` bytes exceed this: 2 GiB by default,
            n = 16,384.

        Returns
        -------
        ndarray of shape (n, n), float64
        """
        n = self.shape[0]
        need = 8 * n * n
        if need > max_bytes:
            raise ValueError(
                f"toarray() would hold a {n} x {n} float64 matrix, {need / 2**30:.1f} GiB, "
                f"above max_bytes={max_bytes} ({max_bytes / 2**30:.1f} GiB); use the "
                "operator's products instead, or raise max_bytes"
            )
        return self._module.stein_dense(self._layout)
