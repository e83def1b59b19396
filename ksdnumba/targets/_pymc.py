r"""Targets from PyMC models: the score and Hessian of a model's log density.

PyMC and PyTensor are imported by :func:`from_pymc` only, so that importing
ksdnumba stays light.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from .._validation import check_directions, check_points, check_positive_int
from ._base import _Tempered

__all__ = ["PyMCTarget", "from_pymc"]

_PYMC_EXTRA = "pip install 'ksdnumba[pymc]'"
# Rows per compiled call: bounds the batched intermediates (rows x observations for a
# regression, rows x a whole matrix where a parameter scales one) at no measured cost.
_DEFAULT_BATCH = 1024


def _import_pymc():
    try:
        import pymc
        import pytensor
    except ImportError as exc:
        raise ImportError(
            f"from_pymc needs PyMC and PyTensor; install them with: {_PYMC_EXTRA}"
        ) from exc
    return pymc, pytensor


def _coordinate_names(name: str, shape: tuple[int, ...]) -> list[str]:
    """``name`` for a scalar, else ``name[i, j]`` for each index in C order."""
    if not shape:
        return [name]
    return [f"{name}[{', '.join(map(str, idx))}]" for idx in np.ndindex(*shape)]


class _RowwiseFunction:
    """A compiled PyTensor function of a batch of rows, built on first call.

    ``build(batched)`` returns ``(inputs, outputs)``: with ``batched=True``
    every input carries a leading batch dimension and the outputs are the
    vectorised graph (one compiled call for all rows); with ``batched=False``
    they describe one row, and a Python loop calls the function row by row.
    The batched graph is tried first; if PyTensor cannot vectorise or compile
    it, the loop is used and a warning says why.
    """

    def __init__(self, build, mode, vectorize: bool, batch: int | None, what: str) -> None:
        self._build = build
        self._mode = mode
        self._batch = batch
        self._what = what
        self.vectorized = vectorize
        self._fn = None

    def _compile(self):
        import pytensor

        if self.vectorized:
            try:
                inputs, outputs = self._build(True)
                self._fn = pytensor.function(inputs, outputs, mode=self._mode)
                return
            except Exception as exc:  # any failure of vectorize_graph or of the compiler
                warnings.warn(
                    f"PyTensor could not batch the model's {self._what} over rows "
                    f"({type(exc).__name__}: {exc}); evaluating it row by row instead",
                    RuntimeWarning,
                    stacklevel=4,
                )
                self.vectorized = False
        inputs, outputs = self._build(False)
        self._fn = pytensor.function(inputs, outputs, mode=self._mode)

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        if self._fn is None:
            self._compile()
        n = arrays[0].shape[0]
        if self.vectorized:
            step = max(1, n if self._batch is None else self._batch)
            chunks = [
                self._fn(*(a[start : start + step] for a in arrays))
                for start in range(0, max(n, 1), step)
            ]
            if len(chunks) == 1:
                return [np.asarray(out) for out in chunks[0]]
            return [np.concatenate(outs, axis=0) for outs in zip(*chunks)]
        # Fallback: the one-row function, once per row.
        rows = [self._fn(*(a[i] for a in arrays)) for i in range(n)]
        if not rows:
            _, outputs = self._build(False)
            return [np.empty((0, *[1] * o.ndim)) for o in outputs]
        return [np.stack(outs, axis=0) for outs in zip(*rows)]

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fn"] = None  # compiled again on first call after unpickling
        return state


class PyMCTarget:
    r"""The posterior of a PyMC model on its unconstrained space, as a target.

    Built by :func:`from_pymc`, which documents the construction. The
    coordinates are the model's value variables (``model.value_vars``: the
    free variables after PyMC's default transforms, such as ``sigma_log__``
    for a positive ``sigma``), in that order, each flattened in C order.

    Attributes
    ----------
    model : pymc.Model
        The model.
    n_dims : int
        :math:`d`, the number of unconstrained coordinates.
    dim : int
        Same as `n_dims`.
    names : list of str
        One label per coordinate: ``mu``, ``theta[3]``, ``W[0, 1]``,
        ``sigma_log__``.
    value_vars : list of str
        The names of the value variables, in order.
    free_vars : list of str
        The names of the matching free variables in the constrained space
        (``sigma`` for ``sigma_log__``): the variables of a trace's posterior.
    shapes : dict of str to tuple of int
        Shape of each value variable (the same as its free variable's).
    slices : dict of str to slice
        Columns of each value variable in a row of ``x``.
    mode : str, Mode or None
        The PyTensor compile mode (None: PyTensor's default).
    batch : int or None
        Rows per call of a compiled function (None: all rows in one call).
    vectorized : bool
        False once a function fell back to a loop over rows.
    """

    def __init__(
        self,
        model: Any,
        *,
        mode: Any = None,
        vectorize: bool = True,
        batch: int | None = _DEFAULT_BATCH,
    ) -> None:
        pm, _ = _import_pymc()
        if not isinstance(model, pm.Model):
            raise TypeError(f"model must be a pymc.Model, got {type(model).__name__}")
        if batch is not None:
            batch = check_positive_int(batch, "batch", minimum=1)
        value_vars = list(model.value_vars)
        if not value_vars:
            raise ValueError("the model has no free variables: there is nothing to score")
        discrete = [v.name for v in value_vars if not v.type.dtype.startswith("float")]
        if discrete:
            raise ValueError(
                f"the model has discrete free variables ({', '.join(discrete)}): they have "
                "no score, so the model has no kernel Stein discrepancy; marginalise them "
                "out (e.g. pymc_extras.marginalize) or observe them"
            )
        self.model = model
        self.mode = mode
        self.batch = batch
        self._vectorize = bool(vectorize)
        self._value_vars = value_vars
        self._rvs = [model.values_to_rvs[v] for v in value_vars]
        rv_shapes = model.eval_rv_shapes()
        self.value_vars = [v.name for v in value_vars]
        self.free_vars = [rv.name for rv in self._rvs]
        self.shapes = {v.name: tuple(int(s) for s in rv_shapes[v.name]) for v in value_vars}
        self.slices = {}
        self.names = []
        start = 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            self.slices[name] = slice(start, start + size)
            self.names.extend(_coordinate_names(name, shape))
            start += size
        self.n_dims = start
        self.dim = start
        self._dtype = value_vars[0].type.dtype
        self._make_functions()

    def _make_functions(self) -> None:
        def rowwise(build, what):
            return _RowwiseFunction(build, self.mode, self._vectorize, self.batch, what)

        self._logp_fn = rowwise(self._build_logp, "log density")
        self._score_fn = rowwise(self._build_score, "score")
        self._hvp_fn = rowwise(self._build_hvp, "Hessian-vector product")
        self._constrain_fn = rowwise(self._build_constrain, "back-transforms")
        self._unconstrain_fn = rowwise(self._build_unconstrain, "forward transforms")

    def __getstate__(self):
        import cloudpickle  # a dependency of PyMC

        state = self.__dict__.copy()
        for key in [k for k in state if k.endswith("_fn")]:
            del state[key]
        # A PyMC model pickles with cloudpickle only (its graphs hold partials), and its
        # value variables must stay the ones the model's graphs use: pickle them together.
        keys = ("model", "_value_vars", "_rvs")
        state["_pickled_model"] = cloudpickle.dumps({key: state.pop(key) for key in keys})
        return state

    def __setstate__(self, state):
        import cloudpickle

        state.update(cloudpickle.loads(state.pop("_pickled_model")))
        self.__dict__.update(state)
        self._make_functions()

    @property
    def vectorized(self) -> bool:
        return all(
            f.vectorized
            for f in (
                self._logp_fn,
                self._score_fn,
                self._hvp_fn,
                self._constrain_fn,
                self._unconstrain_fn,
            )
        )

    # ------------------------------------------------------------------ graphs

    def _input(self, batched: bool):
        import pytensor.tensor as pt

        return pt.matrix("x", dtype=self._dtype) if batched else pt.vector("x", dtype=self._dtype)

    def _split(self, x, batched: bool) -> dict:
        """Each value variable as its columns of ``x``, reshaped to its shape."""
        out = {}
        for v in self._value_vars:
            cols = x[:, self.slices[v.name]] if batched else x[self.slices[v.name]]
            shape = self.shapes[v.name]
            piece = cols.reshape((x.shape[0], *shape)) if batched else cols.reshape(shape)
            out[v] = piece.astype(v.type.dtype)
        return out

    def _in_terms_of(self, outputs: list, x, batched: bool) -> list:
        from pytensor.graph.replace import graph_replace, vectorize_graph

        values = self._split(x, batched)
        if batched:
            # The graph of one point, with a leading batch dimension added to every value
            # variable: matrix-vector products become matrix products.
            return list(vectorize_graph(outputs, replace=values))
        return list(graph_replace(outputs, replace=values, strict=False))

    def _logp_of(self, x, batched: bool):
        import pytensor.tensor as pt

        (logp,) = self._in_terms_of([self.model.logp()], x, batched)
        if batched:
            logp = pt.broadcast_to(logp, (x.shape[0],))
        return logp

    def _score_of(self, x, batched: bool):
        import pytensor

        logp = self._logp_of(x, batched)
        # Rows are independent, so the gradient of the sum is the gradient of each row.
        total = logp.sum() if batched else logp
        return pytensor.grad(total, x)

    def _build_logp(self, batched: bool):
        x = self._input(batched)
        return [x], [self._logp_of(x, batched)]

    def _build_score(self, batched: bool):
        x = self._input(batched)
        return [x], [self._score_of(x, batched)]

    def _build_hvp(self, batched: bool):
        import pytensor

        x = self._input(batched)
        v = x.type("v")
        score = self._score_of(x, batched)
        # Pearlmutter: d/dx_i sum_j s(x_j).v_j = H(x_i) v_i, the gradient of a gradient.
        hvp = pytensor.grad((score * v).sum(), x, disconnected_inputs="ignore")
        return [x, v], [hvp]

    def _build_constrain(self, batched: bool):
        x = self._input(batched)
        # PyMC's own back-transforms: each free variable in terms of the value variables.
        constrained = self.model.replace_rvs_by_values(self._rvs)
        return [x], self._in_terms_of(list(constrained), x, batched)

    def _build_unconstrain(self, batched: bool):
        import pytensor.tensor as pt
        from pytensor.graph.replace import graph_replace, vectorize_graph

        values = {rv: rv.type(name=rv.name) for rv in self._rvs}
        forward = []
        for rv in self._rvs:
            transform = self.model.rvs_to_transforms.get(rv)
            value = values[rv]
            forward.append(
                value if transform is None else transform.forward(value, *rv.owner.inputs)
            )
        # Parameters of a transform (an Interval's bounds) may be other free variables:
        # their constrained values, not random draws.
        forward = list(graph_replace(forward, replace=values, strict=False))
        if not batched:
            flat = pt.concatenate([f.reshape((-1,)).astype(self._dtype) for f in forward])
            return list(values.values()), [flat]
        batch_inputs = {
            values[rv]: pt.tensor(
                name=rv.name, dtype=rv.type.dtype, shape=(None, *values[rv].type.shape)
            )
            for rv in self._rvs
        }
        forward = vectorize_graph(forward, replace=batch_inputs)
        n = next(iter(batch_inputs.values())).shape[0]
        flat = pt.concatenate(
            [
                pt.broadcast_to(f, (n, *self.shapes[v.name])).reshape((n, -1)).astype(self._dtype)
                for f, v in zip(forward, self._value_vars)
            ],
            axis=1,
        )
        return list(batch_inputs.values()), [flat]

    # ------------------------------------------------------------------ the protocol

    def _points(self, x: ArrayLike, name: str = "x") -> np.ndarray:
        x = check_points(x, self.n_dims, name)
        return np.ascontiguousarray(x, dtype=self._dtype)

    def logpdf(self, x: ArrayLike) -> np.ndarray:
        r"""Log density of the unconstrained parameters, up to a constant.

        PyMC's ``model.logp()`` (Jacobians of the transforms included) at each
        row: the log joint density of the parameters and the observed data,
        the log posterior up to the evidence :math:`\log p(y)`.

        Parameters
        ----------
        x : array_like, shape (n, n_dims)
            Points of the unconstrained space, one per row.

        Returns
        -------
        ndarray, shape (n,)

        Raises
        ------
        ValueError
            If `x` is not 2-D with `n_dims` columns.
        """
        (out,) = self._logp_fn(self._points(x))
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def log_prob(self, x: ArrayLike) -> np.ndarray:
        """The same as :meth:`logpdf` (the name the issue and PyTorch use)."""
        return self.logpdf(x)

    def score(self, x: ArrayLike) -> np.ndarray:
        r"""Gradient of the log density, :math:`\nabla \log p`, at each row of `x`.

        Parameters
        ----------
        x : array_like, shape (n, n_dims)
            Points of the unconstrained space, one per row.

        Returns
        -------
        ndarray, shape (n, n_dims), float64
            The same numbers as ``model.compile_dlogp()`` at each row.

        Raises
        ------
        ValueError
            If `x` is not 2-D with `n_dims` columns.
        """
        (out,) = self._score_fn(self._points(x))
        return np.asarray(out, dtype=np.float64)

    def hvp(self, x: ArrayLike, v: ArrayLike) -> np.ndarray:
        r"""Hessian of the log density at each row of `x` times the same row of `v`.

        Computed by PyTensor from the model's graph, as the gradient of
        :math:`\sum_i s(x_i) \cdot v_i` (exact, not a finite difference).

        Parameters
        ----------
        x : array_like, shape (n, n_dims)
            Points, one per row.
        v : array_like, shape (n, n_dims)
            Directions, one per row.

        Returns
        -------
        ndarray, shape (n, n_dims), float64
            Row ``i`` is :math:`\nabla^2 \log p(x_i)\, v_i`.

        Raises
        ------
        ValueError
            If `x` is not 2-D with `n_dims` columns, or `v` has another shape.
        """
        x = self._points(x)
        v = np.ascontiguousarray(check_directions(v, x), dtype=self._dtype)
        (out,) = self._hvp_fn(x, v)
        return np.asarray(out, dtype=np.float64)

    def tempered(self, beta: float) -> _Tempered:
        r"""Target with density proportional to :math:`p^\beta` (score and hvp times `beta`)."""
        return _Tempered(self, beta)

    # ------------------------------------------------------------------ conversions

    def to_constrained(self, x: ArrayLike) -> dict[str, np.ndarray]:
        """Map unconstrained points back to the model's free variables.

        Applies PyMC's back-transforms (``model.replace_rvs_by_values``):
        ``sigma_log__`` becomes ``sigma = exp(sigma_log__)``, an interval
        variable its bounded value, and so on.

        Parameters
        ----------
        x : array_like, shape (..., n_dims)
            Unconstrained points, e.g. ``(n, n_dims)`` or
            ``(n_chains, n_draws, n_dims)``.

        Returns
        -------
        dict of str to ndarray
            For each free variable (keys in :attr:`free_vars` order), its
            values, of shape ``(..., *shape)``.

        Raises
        ------
        ValueError
            If the last axis of `x` is not of length `n_dims`.
        """
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim < 1 or arr.shape[-1] != self.n_dims:
            raise ValueError(
                f"x must have shape (..., {self.n_dims}) (the model's n_dims), got {arr.shape}"
            )
        lead = arr.shape[:-1]
        flat = np.ascontiguousarray(arr.reshape(-1, self.n_dims), dtype=self._dtype)
        outs = self._constrain_fn(flat)
        return {
            rv: np.asarray(out, dtype=np.float64).reshape(*lead, *self.shapes[v])
            for rv, v, out in zip(self.free_vars, self.value_vars, outs)
        }

    def to_unconstrained(self, trace: Any) -> np.ndarray:
        """The posterior draws of a trace, on the unconstrained space.

        Reads each free variable (by its name, e.g. ``sigma``) from the
        trace's posterior group and applies the model's forward transforms
        (``sigma_log__ = log(sigma)``, ...).

        Parameters
        ----------
        trace : InferenceData, DataTree or Dataset
            What ``pm.sample`` returns: an ArviZ 0.x ``InferenceData`` or an
            ArviZ 1.x ``xarray.DataTree`` (its ``posterior`` group), or the
            posterior ``xarray.Dataset`` itself.

        Returns
        -------
        ndarray, shape (n_chains, n_draws, n_dims), float64
            Columns in :attr:`names` order. ``x.reshape(-1, n_dims)`` orders
            the draws chain by chain; :func:`ksdnumba._arviz.chain_draw_indices`
            maps positions in it back to ``(chain, draw)``.

        Raises
        ------
        TypeError
            If `trace` is not one of these kinds.
        ValueError
            If it has no posterior group, its posterior lacks one of the
            model's free variables or holds one of another shape per draw (a
            trace of another model), a draw is NaN or infinite, or a draw lies
            outside its variable's support (its transform is not finite).
        """
        from .._arviz import posterior_dataset

        post = posterior_dataset(trace)
        missing = [name for name in self.free_vars if name not in post.data_vars]
        if missing:
            raise ValueError(
                f"the trace's posterior lacks the model's free variables "
                f"{', '.join(missing)} (it has: {', '.join(map(str, post.data_vars))}); "
                "is it a trace of this model?"
            )
        n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
        arrays = []
        for name, v in zip(self.free_vars, self.value_vars):
            arr = np.asarray(post[name].transpose("chain", "draw", ...).values, dtype=np.float64)
            if arr.shape[2:] != self.shapes[v]:
                raise ValueError(
                    f"the trace's draws of {name!r} have shape {arr.shape[2:]} but the "
                    f"model's {name} has shape {self.shapes[v]}: the dimensions of the "
                    "trace do not match the model"
                )
            bad = ~np.isfinite(arr).reshape(n_chains, n_draws, -1).all(axis=2)
            if bad.any():
                raise ValueError(
                    f"the trace's draws of {name!r} contain NaN or infinite values "
                    f"({int(bad.sum())} of {n_chains * n_draws} draws)"
                )
            arrays.append(np.ascontiguousarray(arr.reshape(n_chains * n_draws, *arr.shape[2:])))
        (flat,) = self._unconstrain_fn(*arrays)
        flat = np.asarray(flat, dtype=np.float64).reshape(n_chains, n_draws, self.n_dims)
        bad = ~np.isfinite(flat).all(axis=2)
        if bad.any():
            cols = np.flatnonzero(~np.isfinite(flat).all(axis=(0, 1)))
            raise ValueError(
                f"{int(bad.sum())} of {n_chains * n_draws} draws are outside the support "
                "of the model (their transform to the unconstrained space is not finite; "
                f"coordinates {', '.join(self.names[c] for c in cols[:5])})"
            )
        return flat

    def __repr__(self) -> str:
        return f"PyMCTarget(n_dims={self.n_dims}, value_vars={self.value_vars})"


def from_pymc(
    model: Any,
    *,
    mode: Any = None,
    vectorize: bool = True,
    batch: int | None = _DEFAULT_BATCH,
) -> PyMCTarget:
    r"""A target for the posterior of a PyMC model, on its unconstrained space.

    The coordinates are PyMC's value variables, ``model.value_vars``: the free
    variables after PyMC's default transforms (a positive ``sigma`` becomes
    ``sigma_log__ = log(sigma)``, a bounded one ``u_interval__``, ...), in
    that order, each flattened in C order; ``names`` labels them. The log
    density is PyMC's ``model.logp()``, the log joint with the transforms'
    Jacobians:

    .. math::

        \log p(z) = \log \pi\big(T^{-1}(z)\big) + \log p\big(y \mid T^{-1}(z)\big)
            + \log \left|\det J_{T^{-1}}(z)\right|,

    the log posterior of :math:`z = T(\theta)` up to the evidence. Its score
    and Hessian-vector product come from PyTensor's symbolic gradients of
    that graph (a gradient of :math:`s(z) \cdot v` for the HVP, no finite
    differences).

    Each function is compiled once, on its first call. Rows are evaluated
    together, without a Python loop: the one-point graph is vectorised over a
    leading batch dimension (``pytensor.graph.replace.vectorize_graph``), so
    that, e.g., the matrix-vector products of a regression become one matrix
    product for all rows; the gradient of the rows' summed log densities is
    every row's score, since the rows are independent. Where PyTensor cannot
    vectorise or compile a model's graph, that function falls back to a loop
    over rows, with a ``RuntimeWarning`` (``vectorized`` is then False).

    Parameters
    ----------
    model : pymc.Model
        A model whose free variables are all continuous.
    mode : str or pytensor.compile.Mode, optional
        PyTensor compile mode, e.g. ``"NUMBA"`` or ``"CVM"`` (its C backend);
        default PyTensor's (C in PyTensor 2, Numba in PyTensor 3).
    vectorize : bool, default True
        False evaluates row by row (the fallback's path; for comparisons).
    batch : int or None, default 1024
        Rows per compiled call. It bounds the memory of the batched
        intermediates: ``batch`` times the number of observations for a
        regression, ``batch`` copies of a whole design matrix where a
        parameter scales it. None: all rows in one call.

    Returns
    -------
    PyMCTarget
        With ``score``, ``hvp``, ``logpdf`` (and its alias ``log_prob``),
        ``tempered``, ``n_dims`` (and its alias ``dim``), ``names``,
        ``to_unconstrained(trace)`` and ``to_constrained(x)``.

    Raises
    ------
    ImportError
        If PyMC is not installed (``pip install 'ksdnumba[pymc]'``).
    TypeError
        If `model` is not a ``pymc.Model``.
    ValueError
        If the model has discrete free variables (they have no score) or none
        at all, or `batch` is not a positive integer.

    Notes
    -----
    PyTensor compiles C (or Numba) code on the first call of each function;
    the compiled code is cached on disk (``pytensor.config.compiledir``), so
    later sessions start faster. The layout (``n_dims``, ``names``,
    ``slices``) is read from the model when the target is built: after
    ``pm.set_data`` changes the shape of a free variable, build a new target.
    The target pickles without its compiled
    functions (the model through cloudpickle, a dependency of PyMC), which
    are compiled again on first use, so that it can go to other processes.

    References
    ----------
    .. [1] O. Abril-Pla et al. "PyMC: a modern, and comprehensive probabilistic
       programming framework in Python." PeerJ Computer Science 9, e1516, 2023.
    .. [2] B. A. Pearlmutter. "Fast exact multiplication by the Hessian."
       Neural Computation 6(1), 147-160, 1994.
    .. [3] M. Riabiz et al. "Optimal thinning of MCMC output." Journal of the
       Royal Statistical Society B 84(4), 1059-1081, 2022.

    Examples
    --------
    Not run as doctests: PyMC is optional and PyTensor compiles each function
    on first use (seconds).

    >>> import numpy as np
    >>> import pymc as pm  # doctest: +SKIP
    >>> import ksdnumba as kn
    >>> with pm.Model() as model:  # doctest: +SKIP
    ...     mu = pm.Normal("mu", 0.0, 1.0)
    ...     sigma = pm.HalfNormal("sigma", 1.0)
    ...     y = pm.Normal("y", mu, sigma, observed=[0.3, -0.2, 0.5])
    >>> target = kn.targets.from_pymc(model)  # doctest: +SKIP
    >>> target.names  # doctest: +SKIP
    ['mu', 'sigma_log__']
    >>> target.score(np.zeros((2, 2))).round(4)  # doctest: +SKIP
    array([[ 0.6 , -2.62],
           [ 0.6 , -2.62]])
    >>> trace = pm.sample(model=model, random_seed=0)  # doctest: +SKIP
    >>> x = target.to_unconstrained(trace)  # (chains, draws, 2)  # doctest: +SKIP
    >>> flat = x.reshape(-1, target.n_dims)  # doctest: +SKIP
    >>> res = kn.stein_thinning(flat, target.score(flat), 100)  # doctest: +SKIP
    """
    return PyMCTarget(model, mode=mode, vectorize=vectorize, batch=batch)
