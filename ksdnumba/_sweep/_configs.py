"""Configurations of a sweep: the grid, the tables of methods and initialisations, the checks.

A configuration is a flat mapping of scalars. Everything a fit needs beyond those
scalars (the target objects, user initialisations) is named by a string and
shipped once, so that a task carries a few numbers and the file of a finished
fit can be named by a hash of the numbers alone.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import numbers
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from .._validation import check_beta, check_bw, check_option
from ..contenders import mmd_lbfgs, svgd
from ..descent import ksdd_gradient, ksdd_lbfgs
from ..objective import KERNELS

#: The methods a configuration may name, and the function that runs each.
METHODS: dict[str, Callable] = {
    "ksdd_lbfgs": ksdd_lbfgs,
    "ksdd_gradient": ksdd_gradient,
    "svgd": svgd,
    "mmd_lbfgs": mmd_lbfgs,
}

# Keys the sweep interprets itself; every other key is a keyword of the method.
SWEEP_KEYS = ("method", "target", "init", "n", "seed", "d", "n_target_samples")
# Keywords the sweep sets on the method (or replaces by a key above): never in a config.
_SET_BY_SWEEP = ("x0", "target", "target_samples", "store", "callback", "verbose")

DEFAULTS = {"init": "normal", "seed": 0}


def _normal(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal((n, d))


def _needs_two_dims(name: str, d: int) -> None:
    if d < 2:
        raise ValueError(
            f"init {name!r} sets the first coordinate apart from the others and needs "
            f"d >= 2, got d={d}"
        )


def _on_axis(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    _needs_two_dims("init1", d)
    x = 0.5 * rng.standard_normal((n, d))
    x[:, 0] = 0.0
    return x


def _spread(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    return 0.5 * rng.standard_normal((n, d))


def _near_axis(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    _needs_two_dims("init3", d)
    x = 0.5 * rng.standard_normal((n, d))
    x[:, 0] = 0.05 * rng.standard_normal(n)
    return x


#: The named initialisations, functions of ``(n, d, rng)``: a standard normal and the
#: three starts of the ``plot_minima`` example (on, around and near the axis x_0 = 0).
INITS: dict[str, Callable] = {
    "normal": _normal,
    "init1": _on_axis,
    "init2": _spread,
    "init3": _near_axis,
}

KEEP = ("none", "x", "all")
YARDSTICK_KEYS = ("kernel", "bw", "beta")


def grid(**axes) -> list[dict]:
    """The Cartesian product of axes: one configuration per combination.

    Parameters
    ----------
    **axes : scalar or iterable of scalars
        One axis per keyword. A list, tuple, range or 1-D array gives the
        values of the axis; a scalar (a number, a string, a bool or None) is an
        axis of one value.

    Returns
    -------
    list of dict
        ``len`` is the product of the axes' lengths. The order is fixed: the
        first axis varies slowest, the last fastest (as in
        :func:`itertools.product`), and each dict has the keys in the order of
        the keywords. Grids can be concatenated with ``+``, for configurations
        that differ in their keys (an SVGD ``step`` next to L-BFGS runs).

    Raises
    ------
    ValueError
        If no axis is given, or an axis is empty.
    TypeError
        If a value is not a scalar (a nested list, a dict, an array of 2 or
        more dimensions, a function).

    See Also
    --------
    sweep : runs the configurations.

    Examples
    --------
    >>> import ksdnumba as kn
    >>> configs = kn.grid(method="ksdd_lbfgs", seed=range(2), bw=[0.1, 1.0])
    >>> len(configs)
    4
    >>> configs[1]
    {'method': 'ksdd_lbfgs', 'seed': 0, 'bw': 1.0}
    """
    if not axes:
        raise ValueError("grid needs at least one axis, e.g. grid(seed=range(10))")
    values = []
    for name, axis in axes.items():
        if _is_scalar(axis):
            values.append([_scalar(axis, name)])
            continue
        if isinstance(axis, np.ndarray) and axis.ndim != 1:
            raise TypeError(f"axis {name!r} must be 1-D, got an array of shape {axis.shape}")
        if isinstance(axis, (Mapping, set, frozenset)) or not isinstance(axis, Iterable):
            raise TypeError(
                f"axis {name!r} must be a scalar or a list of scalars, got {type(axis).__name__}"
            )
        items = [_scalar(v, name) for v in axis]
        if not items:
            raise ValueError(f"axis {name!r} is empty")
        values.append(items)
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, bool, numbers.Number, np.generic))


def _scalar(value, name: str):
    """``value`` as a plain Python scalar (numpy scalars converted), or a TypeError."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    hint = ""
    if callable(value):
        hint = (
            "; to use your own initialisation, pass it by name: "
            f"sweep(..., inits={{'mine': f}}) and {name}='mine'"
        )
    raise TypeError(
        f"{name!r} must be a scalar (str, int, float, bool or None), got "
        f"{type(value).__name__}{hint}"
    )


def check_configs(configs, targets: Mapping, inits: Mapping) -> list[dict]:
    """Return the configurations, defaults filled in, or raise before anything runs.

    What is checked here is what no fit can recover from: the names of the
    method, target and initialisation, the keywords, the types. Values the
    method checks itself (a negative ``bw``) are left to the fit, where an
    error is recorded in its row.
    """
    if isinstance(configs, Mapping):
        configs = [configs]
    if isinstance(configs, (str, bytes)) or not isinstance(configs, Iterable):
        raise TypeError(
            f"configs must be a list of dicts (see kn.grid), got {type(configs).__name__}"
        )
    configs = list(configs)
    if not configs:
        raise ValueError("configs is empty: nothing to run")
    checked = []
    for i, config in enumerate(configs):
        if not isinstance(config, Mapping):
            raise TypeError(f"configs[{i}] must be a dict, got {type(config).__name__}")
        checked.append(_check_config(i, config, targets, inits))
    seen = {}
    for i, config in enumerate(checked):
        key = json.dumps(config, sort_keys=True)
        if key in seen:
            raise ValueError(
                f"configs[{seen[key]}] and configs[{i}] are the same fit, {config}; give "
                "each a different seed (or drop one)"
            )
        seen[key] = i
    return checked


def _check_config(i: int, config: Mapping, targets: Mapping, inits: Mapping) -> dict:
    where = f"configs[{i}]"
    out = {}
    for key, value in config.items():
        if not isinstance(key, str):
            raise TypeError(f"{where} has a key {key!r} that is not a string")
        out[key] = _scalar(value, f"{where}[{key!r}]")
    if "method" not in out:
        raise ValueError(f"{where} has no 'method'; valid methods are {_names(METHODS)}")
    method = out["method"]
    if method not in METHODS:
        raise ValueError(f"{where}: unknown method {method!r}; valid methods are {_names(METHODS)}")
    if "target" not in out:
        if len(targets) != 1:
            raise ValueError(f"{where} has no 'target'; valid targets are {_names(targets)}")
        out["target"] = next(iter(targets))
    if out["target"] not in targets:
        raise ValueError(
            f"{where}: unknown target {out['target']!r}; valid targets are {_names(targets)}"
        )
    for key, value in DEFAULTS.items():
        out.setdefault(key, value)
    if out["init"] not in INITS and out["init"] not in inits:
        valid = _names({**INITS, **inits})
        raise ValueError(f"{where}: unknown init {out['init']!r}; valid inits are {valid}")
    for key in ("n", "seed", "d", "n_target_samples"):
        if key not in out:
            if key == "n":
                raise ValueError(f"{where} has no 'n' (the number of particles)")
            continue
        value = out[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where}[{key!r}] must be an integer, got {value!r}")
        if value < (0 if key == "seed" else 1):
            raise ValueError(
                f"{where}[{key!r}] must be >= {0 if key == 'seed' else 1}, got {value}"
            )
    if "n_target_samples" in out and method != "mmd_lbfgs":
        raise ValueError(f"{where}: 'n_target_samples' is for method 'mmd_lbfgs' only")
    parameters = inspect.signature(METHODS[method]).parameters
    keywords = [p for p in parameters if p not in _SET_BY_SWEEP]
    for key in out:
        if key not in SWEEP_KEYS and key not in keywords:
            valid = ", ".join(
                repr(k)
                for k in (*SWEEP_KEYS, *keywords)
                if not (k == "n_target_samples" and method != "mmd_lbfgs")
            )
            raise ValueError(f"{where}: {method} has no keyword {key!r}; valid keys are {valid}")
    for name, p in parameters.items():
        if name not in _SET_BY_SWEEP and p.default is inspect.Parameter.empty and name not in out:
            raise ValueError(f"{where}: {method} needs {name!r}")
    return out


def check_yardstick(yardstick) -> dict | None:
    """Return the yardstick as a dict of KSD keywords, or None for each fit's own."""
    if yardstick is None:
        return None
    if not isinstance(yardstick, Mapping):
        raise TypeError(
            "yardstick must be None or a dict with keys among "
            f"{_names(YARDSTICK_KEYS)}, got {type(yardstick).__name__}"
        )
    out = {}
    for key, value in yardstick.items():
        if key not in YARDSTICK_KEYS:
            raise ValueError(
                f"unknown yardstick key {key!r}; valid keys are {_names(YARDSTICK_KEYS)}"
            )
        out[key] = _scalar(value, f"yardstick[{key!r}]")
    # Checked here, once: a wrong yardstick would fail every row.
    if "kernel" in out:
        check_option(out["kernel"], "yardstick kernel", KERNELS)
    if "bw" in out and out["bw"] != "median":
        check_bw(out["bw"], "yardstick bw")
    if "beta" in out:
        check_beta(out["beta"])
    return out


def fit_key(config: Mapping, yardstick: Mapping | None) -> str:
    """A stable name for a fit: a hash of its configuration and of the yardstick.

    JSON with sorted keys, so the same scalars give the same name in every
    process, on every machine, in every session (``1`` and ``1.0`` differ).
    """
    text = json.dumps({"config": config, "yardstick": yardstick}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _names(table) -> str:
    return ", ".join(repr(k) for k in table)
