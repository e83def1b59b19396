"""MCMC draws and their scores from arrays, or from an ArviZ trace and a PyMC target.

The tools that read MCMC output (:func:`ksdnumba.stein_thinning`,
:func:`ksdnumba.ksd_diagnostic`) take either arrays of points and scores, or
the trace that ``pm.sample`` returns together with the model's target from
:func:`ksdnumba.targets.from_pymc`: the trace is mapped to the model's
unconstrained space by the target's ``to_unconstrained``, and the scores are
computed there. Flat positions are chain-major (:mod:`ksdnumba._arviz`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import call_target, check_finite_field


def is_trace(obj: Any) -> bool:
    """Whether ``obj`` looks like ArviZ output: a DataTree, an InferenceData or a Dataset.

    Told by structure, so that no ArviZ or xarray import is needed to decide.
    """
    if isinstance(obj, (np.ndarray, list, tuple)):
        return False
    return (
        hasattr(obj, "data_vars")  # xarray.Dataset
        or (hasattr(obj, "children") and hasattr(obj, "to_dataset"))  # xarray.DataTree
        or callable(getattr(obj, "groups", None))  # arviz.InferenceData
    )


def trace_draws_and_scores(
    trace: Any, target: Any, *, trace_name: str = "sample", target_name: str = "scores"
) -> tuple[np.ndarray, np.ndarray]:
    """``(x, s)``, both ``(n_chains, n_draws, d)``: a trace's draws and their scores.

    ``x`` is ``target.to_unconstrained(trace)`` (which checks the posterior
    group, its variables' shapes, NaN and the support), ``s`` the target's
    score at every draw.
    """
    if not callable(getattr(target, "to_unconstrained", None)):
        raise TypeError(
            f"{trace_name} is an ArviZ trace, so {target_name} must be the model's target "
            "from kn.targets.from_pymc(model) (it maps the trace to the unconstrained "
            f"space, where the scores live); got {type(target).__name__}. Or pass the "
            "draws and their scores as arrays"
        )
    x = np.ascontiguousarray(target.to_unconstrained(trace), dtype=np.float64)
    flat = x.reshape(-1, x.shape[-1])
    s = check_finite_field(call_target(target.score, "score", flat), flat, "score")
    return x, s.reshape(x.shape)
