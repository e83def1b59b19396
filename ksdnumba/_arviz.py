r"""MCMC output held by ArviZ: the posterior group, flat indices, thinned traces.

ArviZ 0.x holds a trace in an ``InferenceData``; ArviZ 1.x in an
``xarray.DataTree``. The helpers here read either (and a bare posterior
``xarray.Dataset``) by their structure, so reading a trace never imports
ArviZ; only :func:`thinned_trace` does, to build an ``InferenceData`` for
ArviZ 0.x users.

The flat order of a posterior is chain-major: flat index ``i`` is draw
``i % n_draws`` of chain ``i // n_draws``, the order of
``x.reshape(-1, d)`` for ``x`` of shape ``(n_chains, n_draws, d)`` (what
:meth:`ksdnumba.targets.from_pymc`'s ``to_unconstrained`` returns).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["chain_draw_indices", "posterior_dataset", "thinned_trace"]

_SAMPLE_DIMS = ("chain", "draw")
# Groups with chain and draw dimensions that do not index the posterior's draws.
_UNTHINNED_PREFIXES = ("prior", "warmup")


def _import_arviz():
    try:
        import arviz
    except ImportError as exc:
        raise ImportError(
            "this needs ArviZ; install it with: pip install 'ksdnumba[arviz]'"
        ) from exc
    return arviz


def _kind(trace: Any) -> str:
    """``"datatree"``, ``"inferencedata"`` or ``"dataset"``, told by structure."""
    if hasattr(trace, "children") and hasattr(trace, "to_dataset"):
        return "datatree"
    if callable(getattr(trace, "groups", None)) and hasattr(trace, "_groups"):
        return "inferencedata"
    if hasattr(trace, "data_vars") and hasattr(trace, "dims"):
        return "dataset"
    raise TypeError(
        "trace must be an ArviZ InferenceData (ArviZ 0.x), an xarray DataTree "
        "(ArviZ 1.x) or a posterior xarray.Dataset with 'chain' and 'draw' "
        f"dimensions, got {type(trace).__name__}"
    )


def _groups(trace: Any) -> dict[str, Any]:
    """The trace's groups as ``{name: xarray.Dataset}``, in its order."""
    kind = _kind(trace)
    if kind == "datatree":
        return {name: node.to_dataset() for name, node in trace.children.items()}
    if kind == "inferencedata":
        return {name: getattr(trace, name) for name in trace.groups()}
    return {"posterior": trace}


def posterior_dataset(trace: Any):
    """The posterior group of a trace, as an ``xarray.Dataset``.

    Parameters
    ----------
    trace : InferenceData, DataTree or Dataset
        ArviZ 0.x ``InferenceData``, ArviZ 1.x ``xarray.DataTree``, or the
        posterior ``xarray.Dataset`` itself.

    Returns
    -------
    xarray.Dataset
        Its variables have the dimensions ``chain`` and ``draw`` first.

    Raises
    ------
    TypeError
        If `trace` is none of these.
    ValueError
        If it has no posterior group, or its posterior lacks a ``chain`` or
        ``draw`` dimension.

    Examples
    --------
    xarray is an optional dependency, so the example is not run as a doctest:

    >>> import numpy as np, xarray as xr  # doctest: +SKIP
    >>> from ksdnumba._arviz import posterior_dataset
    >>> post = xr.Dataset({"mu": (("chain", "draw"), np.zeros((2, 5)))})  # doctest: +SKIP
    >>> tree = xr.DataTree.from_dict({"posterior": post})  # doctest: +SKIP
    >>> dict(posterior_dataset(tree).sizes)  # doctest: +SKIP
    {'chain': 2, 'draw': 5}
    """
    groups = _groups(trace)
    if "posterior" not in groups:
        raise ValueError(
            "trace has no posterior group (its groups: "
            f"{', '.join(groups) or 'none'}); pass the result of pm.sample or an "
            "InferenceData / DataTree with a 'posterior' group"
        )
    post = groups["posterior"]
    missing = [dim for dim in _SAMPLE_DIMS if dim not in post.dims]
    if missing:
        raise ValueError(
            f"the posterior has no {' or '.join(repr(m) for m in missing)} dimension "
            f"(its dimensions: {', '.join(map(str, post.dims)) or 'none'})"
        )
    return post.transpose(*_SAMPLE_DIMS, ...)


def _sample_shape(trace: Any) -> tuple[int, int]:
    if isinstance(trace, np.ndarray):
        if trace.ndim < 2:
            raise ValueError(
                "trace given as an array must have shape (n_chains, n_draws, ...), "
                f"got shape {trace.shape}"
            )
        return int(trace.shape[0]), int(trace.shape[1])
    if isinstance(trace, tuple) and len(trace) == 2:
        return int(trace[0]), int(trace[1])
    post = posterior_dataset(trace)
    return int(post.sizes["chain"]), int(post.sizes["draw"])


def _check_indices(indices: ArrayLike, n: int) -> np.ndarray:
    idx = np.asarray(indices)
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise ValueError(
            "indices must be a 1-D array of integers (flat, chain-major positions), "
            f"got dtype {idx.dtype} and shape {idx.shape}"
        )
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(
            f"indices must lie in [0, {n}) (n_chains * n_draws), got values from "
            f"{idx.min()} to {idx.max()}"
        )
    return idx


def chain_draw_indices(indices: ArrayLike, trace: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""Map flat (chain-major) indices of a sample to ``(chain, draw)`` positions.

    For a sample of ``n_chains`` chains of ``n_draws`` draws flattened as
    ``x.reshape(-1, d)``, flat index :math:`i` is draw
    :math:`i \bmod n_\mathrm{draws}` of chain
    :math:`\lfloor i / n_\mathrm{draws} \rfloor`: ``np.unravel_index``.

    Parameters
    ----------
    indices : array_like of int, shape (m,)
        Flat positions, e.g. ``stein_thinning(...).indices``.
    trace : InferenceData, DataTree, Dataset, ndarray or tuple
        The trace the indices point into, an array of shape
        ``(n_chains, n_draws, ...)``, or the pair ``(n_chains, n_draws)``.

    Returns
    -------
    chain, draw : ndarray of int64, shape (m,)
        Positions along the ``chain`` and ``draw`` dimensions (``isel``
        positions, not coordinate labels).

    Raises
    ------
    ValueError
        If `indices` is not a 1-D integer array within the sample, or the trace
        has no posterior group.

    Examples
    --------
    >>> import numpy as np
    >>> from ksdnumba._arviz import chain_draw_indices
    >>> chain, draw = chain_draw_indices([0, 4, 7], (2, 4))
    >>> print(chain, draw)
    [0 1 1] [0 0 3]
    """
    n_chains, n_draws = _sample_shape(trace)
    idx = _check_indices(indices, n_chains * n_draws)
    chain, draw = np.unravel_index(idx, (n_chains, n_draws))
    return chain.astype(np.int64), draw.astype(np.int64)


def _thin_dataset(ds, chain: np.ndarray, draw: np.ndarray):
    import xarray as xr

    labels_chain = ds["chain"].values[chain] if "chain" in ds.coords else chain
    labels_draw = ds["draw"].values[draw] if "draw" in ds.coords else draw
    # Pointwise selection: one new "draw" per (chain, draw) pair, in the given order.
    picked = ds.isel(chain=xr.DataArray(chain, dims="draw"), draw=xr.DataArray(draw, dims="draw"))
    picked = picked.drop_vars([c for c in _SAMPLE_DIMS if c in picked.coords])
    picked = picked.assign_coords(draw=np.arange(chain.size)).expand_dims(chain=[0])
    picked = picked.assign_coords(
        source_chain=("draw", np.asarray(labels_chain)),
        source_draw=("draw", np.asarray(labels_draw)),
    )
    return picked.transpose(*_SAMPLE_DIMS, ...)


def thinned_trace(trace: Any, indices: ArrayLike) -> Any:
    """The draws at flat `indices` of a trace, as an ArviZ object of the trace's kind.

    The result has one chain whose draws are the picked ones, in the order of
    `indices` (repeats kept), so that ``az.summary`` and ``az.plot_trace``
    work on it. Every group whose ``chain`` and ``draw`` sizes are the
    posterior's (``posterior``, ``sample_stats``, ``log_likelihood``,
    ``posterior_predictive``, ...) is thinned the same way; groups without
    those dimensions (``observed_data``, ``constant_data``) are kept as they
    are; ``prior*`` and ``warmup*`` groups are dropped, since the indices do
    not point into them. Each thinned group gets the coordinates
    ``source_chain`` and ``source_draw`` along ``draw``: the labels of the
    picked draws in the original trace.

    Parameters
    ----------
    trace : InferenceData, DataTree or Dataset
        ArviZ 0.x ``InferenceData``, ArviZ 1.x ``xarray.DataTree``, or a
        posterior ``xarray.Dataset``.
    indices : array_like of int, shape (m,)
        Flat chain-major positions (see :func:`chain_draw_indices`), e.g.
        ``kn.stein_thinning(...).indices``.

    Returns
    -------
    InferenceData or DataTree
        Of the same kind as `trace`; for a bare ``Dataset``, a ``DataTree`` on
        ArviZ 1.x and an ``InferenceData`` on ArviZ 0.x.

    Raises
    ------
    ImportError
        If ArviZ is needed (an ``InferenceData`` to build) and not installed.
    ValueError
        If the trace has no posterior group or `indices` are not valid flat
        positions.

    Examples
    --------
    xarray is an optional dependency, so the example is not run as a doctest
    (``tests/test_pymc.py`` runs it):

    >>> import numpy as np, xarray as xr  # doctest: +SKIP
    >>> from ksdnumba._arviz import thinned_trace
    >>> mu = np.arange(8.0).reshape(2, 4)  # doctest: +SKIP
    >>> post = xr.Dataset({"mu": (("chain", "draw"), mu)})  # doctest: +SKIP
    >>> tree = xr.DataTree.from_dict({"posterior": post})  # doctest: +SKIP
    >>> thinned = thinned_trace(tree, [5, 0, 5])  # doctest: +SKIP
    >>> print(thinned["posterior"]["mu"].values)  # doctest: +SKIP
    [[5. 0. 5.]]
    """
    kind = _kind(trace)
    post = posterior_dataset(trace)
    n_chains, n_draws = int(post.sizes["chain"]), int(post.sizes["draw"])
    chain, draw = chain_draw_indices(indices, (n_chains, n_draws))
    out = {}
    for name, ds in _groups(trace).items():
        has_sample_dims = all(dim in ds.dims for dim in _SAMPLE_DIMS)
        if not has_sample_dims:
            out[name] = ds
        elif not name.startswith(_UNTHINNED_PREFIXES) and (
            ds.sizes["chain"] == n_chains and ds.sizes["draw"] == n_draws
        ):
            out[name] = _thin_dataset(ds.transpose(*_SAMPLE_DIMS, ...), chain, draw)
    if kind == "dataset":
        arviz = _import_arviz()
        kind = "datatree" if int(arviz.__version__.split(".")[0]) >= 1 else "inferencedata"
    if kind == "inferencedata":
        arviz = _import_arviz()
        return arviz.InferenceData(**out)
    import xarray as xr

    tree = xr.DataTree.from_dict(out)
    if _kind(trace) == "datatree":
        tree.attrs.update(trace.attrs)
    return tree
