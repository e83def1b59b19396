"""Plotting helpers for 2-D targets and particle clouds.

matplotlib is an optional dependency (``pip install ksdnumba[plot]``): it is
imported when a function of this module is called, never at import, so that
``import ksdnumba.plotting`` works without it.

The helpers draw on an existing :class:`matplotlib.axes.Axes` (or on the
current one) and return it, so that a figure of several panels is one loop::

    ax = plot_target_2d(target, ax=ax)
    plot_particles(res.x, ax=ax, x_init=x0, trajectory=res.trajectory)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["plot_convergence", "plot_ksd_curve", "plot_particles", "plot_target_2d"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            "ksdnumba.plotting needs matplotlib; install it with "
            "`pip install ksdnumba[plot]` (or `pip install matplotlib`)"
        ) from exc
    return plt


def _axes(ax):
    plt = _pyplot()
    return plt.gca() if ax is None else ax


def _points_2d(x, name, ndim=2):
    """``x`` as a float array whose last axis has length 2, or a ValueError."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim or arr.shape[-1] != 2:
        shape = "(n, 2)" if ndim == 2 else "(n_stored, n, 2)"
        raise ValueError(f"{name} must have shape {shape} for a 2-D plot, got shape {arr.shape}")
    return arr


def _limits(lim, name):
    lo, hi = (float(v) for v in lim)
    if not lo < hi:
        raise ValueError(f"{name} must be (low, high) with low < high, got {lim!r}")
    return lo, hi


def plot_target_2d(
    target: Any,
    *,
    ax: Any = None,
    xlim: tuple[float, float] = (-2.0, 2.0),
    ylim: tuple[float, float] = (-1.5, 1.5),
    levels: int | ArrayLike = 5,
    grid: int = 100,
    quiver: int = 20,
    contour_kw: dict | None = None,
    quiver_kw: dict | None = None,
) -> Any:
    r"""Draw a 2-D target: contours of its log density and its score field.

    The contours of ``target.logpdf`` are drawn on a ``grid x grid`` mesh
    (black solid lines, ``alpha=0.6``), and the score :math:`\nabla \log p` as arrows on a
    coarser ``quiver x quiver`` mesh (red, ``alpha=0.2``). The axes get the
    given limits and an equal aspect ratio.

    Parameters
    ----------
    target : object with ``score`` (and optionally ``logpdf``), or callable
        A target in two dimensions, such as :class:`ksdnumba.GaussianMixture`;
        a plain callable is taken as the score. Without ``logpdf`` only the
        score field is drawn. A log density known up to an additive constant
        gives the same picture.
    ax : matplotlib.axes.Axes or None
        Where to draw; None draws on the current axes.
    xlim, ylim : tuple of float
        The region shown, ``(low, high)``.
    levels : int or array_like
        Contour levels, passed to :meth:`~matplotlib.axes.Axes.contour`.
    grid : int
        Points per side of the mesh of the contours; 0 skips the contours.
    quiver : int
        Points per side of the mesh of the arrows; 0 skips the arrows.
    contour_kw, quiver_kw : dict or None
        Extra keyword arguments for :meth:`~matplotlib.axes.Axes.contour` and
        :meth:`~matplotlib.axes.Axes.quiver`; they override the defaults.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the target is not two-dimensional (its ``n_dims``, or the shape of
        its score), or if a limit is not ``(low, high)`` with ``low < high``.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> import ksdnumba as kn
    >>> from ksdnumba.plotting import plot_target_2d
    >>> target = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.3, 0.3])
    >>> ax = plot_target_2d(target)
    >>> [float(v) for v in ax.get_xlim()]
    [-2.0, 2.0]
    """
    n_dims = getattr(target, "n_dims", None)
    if n_dims is not None and n_dims != 2:
        raise ValueError(f"plot_target_2d needs a 2-D target, got n_dims={n_dims}")
    xlim = _limits(xlim, "xlim")
    ylim = _limits(ylim, "ylim")
    grid = int(grid)
    quiver = int(quiver)
    score = target.score if hasattr(target, "score") else target
    if not callable(score):
        raise TypeError(
            f"target must have a score method or be callable, got {type(target).__name__}"
        )
    ax = _axes(ax)

    def mesh(m):
        X, Y = np.meshgrid(np.linspace(*xlim, m), np.linspace(*ylim, m))
        return X, Y, np.column_stack([X.ravel(), Y.ravel()])

    logpdf = getattr(target, "logpdf", None)
    if grid > 0 and callable(logpdf):
        X, Y, xy = mesh(grid)
        Z = np.asarray(logpdf(xy), dtype=np.float64).reshape(X.shape)
        # -inf far from every mode (a density that underflows) is left blank.
        Z = np.ma.masked_invalid(Z)
        # Solid lines: a single colour would otherwise dash the negative levels,
        # which for a log density are all of them.
        ax.contour(
            X,
            Y,
            Z,
            **{
                "levels": levels,
                "colors": "k",
                "alpha": 0.6,
                "linestyles": "solid",
                "linewidths": 0.8,
                **(contour_kw or {}),
            },
        )
    if quiver > 0:
        X, Y, xy = mesh(quiver)
        s = np.asarray(score(xy), dtype=np.float64)
        if s.shape != xy.shape:
            raise ValueError(
                f"plot_target_2d needs a 2-D target: its score returned shape {s.shape} "
                f"for points of shape {xy.shape}"
            )
        ax.quiver(
            X,
            Y,
            s[:, 0].reshape(X.shape),
            s[:, 1].reshape(X.shape),
            **{"color": "red", "alpha": 0.2, **(quiver_kw or {})},
        )
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)
    ax.set_aspect("equal")
    return ax


def plot_particles(
    x: ArrayLike,
    *,
    ax: Any = None,
    x_init: ArrayLike | None = None,
    trajectory: ArrayLike | None = None,
    color: Any = "blue",
    s: float = 4.0,
    init_color: Any = "green",
    init_s: float = 1.0,
    label: str | None = None,
    trajectory_kw: dict | None = None,
) -> Any:
    """Draw 2-D particles, optionally with where they started and their paths.

    Layers, from bottom to top: the trajectories (thin black lines,
    ``alpha=0.2``), the initial particles (small, green), the final particles
    (blue). Limits set before (for instance by :func:`plot_target_2d`) are
    kept; otherwise matplotlib's autoscaling applies.

    Parameters
    ----------
    x : array_like of shape (n, 2)
        Final particles, e.g. ``res.x``.
    ax : matplotlib.axes.Axes or None
        Where to draw; None draws on the current axes.
    x_init : array_like of shape (m, 2) or None
        Initial particles.
    trajectory : array_like of shape (n_stored, n, 2) or None
        Successive positions of the particles, e.g. ``res.trajectory`` of a
        sampler run with ``store=True``: one line per particle.
    color, init_color : color
        Colours of the final and the initial particles.
    s, init_s : float
        Marker areas (points squared) of the final and the initial particles.
    label : str or None
        Legend label of the final particles.
    trajectory_kw : dict or None
        Extra keyword arguments for the trajectory lines
        (:meth:`~matplotlib.axes.Axes.plot`); they override the defaults.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If an array is not of dimension 2 in its last axis, or the trajectory
        does not have one column per particle of ``x``.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from ksdnumba.plotting import plot_particles
    >>> x = np.random.default_rng(0).normal(size=(10, 2))
    >>> ax = plot_particles(x, x_init=x / 2)
    >>> len(ax.collections)
    2
    """
    x = _points_2d(x, "x")
    if x_init is not None:
        x_init = _points_2d(x_init, "x_init")
    if trajectory is not None:
        trajectory = _points_2d(trajectory, "trajectory", ndim=3)
        if trajectory.shape[1] != x.shape[0]:
            raise ValueError(
                f"trajectory has {trajectory.shape[1]} particles per iterate but x has "
                f"{x.shape[0]}; expected shape (n_stored, {x.shape[0]}, 2)"
            )
    ax = _axes(ax)
    if trajectory is not None:
        ax.plot(
            trajectory[:, :, 0],
            trajectory[:, :, 1],
            **{"color": "k", "alpha": 0.2, "linewidth": 0.5, **(trajectory_kw or {})},
        )
    if x_init is not None:
        ax.scatter(x_init[:, 0], x_init[:, 1], s=init_s, color=init_color, zorder=2)
    ax.scatter(x[:, 0], x[:, 1], s=s, color=color, label=label, zorder=3)
    return ax


def _runs(values, name):
    """A list of 1-D float arrays: one array is one run, a sequence of arrays several."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):  # runs of different lengths
        arr = None
    if arr is None:
        runs = [np.asarray(v, dtype=np.float64) for v in values]
    elif arr.ndim in (1, 2):
        runs = [arr] if arr.ndim == 1 else list(arr)
    else:
        runs = []
    if not runs or any(r.ndim != 1 or r.size == 0 for r in runs):
        raise ValueError(f"{name} must be a non-empty 1-D array (one run) or a sequence of them")
    return runs


def plot_convergence(
    times: Any,
    values: Any,
    *,
    ax: Any = None,
    label: str | None = None,
    color: Any = None,
    n_grid: int = 200,
    log_time: bool = False,
    runs_alpha: float = 0.25,
    linewidth: float = 2.0,
) -> Any:
    """Draw a quantity against time for one or several runs, and their median.

    Each run is drawn as a thin line (``alpha=runs_alpha``). With several runs,
    their median is drawn on top, bold and labelled: every run is interpolated
    on a grid of ``n_grid`` times up to the end of the longest run, and holds
    its last value after it ends (its result is then available). Runs of a
    sampler with ``store=True`` give ``res.times`` and a quantity per stored
    iterate, such as ``res.history``.

    Parameters
    ----------
    times : array_like of shape (k,) or sequence of them
        Seconds since the start of each run, increasing, at each value.
    values : array_like of shape (k,) or sequence of them
        The quantity, one array per run, each as long as its times.
    ax : matplotlib.axes.Axes or None
        Where to draw; None draws on the current axes.
    label : str or None
        Legend label of the median (of the run, for a single run).
    color : color or None
        Colour of all the lines; None takes the next of the axes' cycle.
    n_grid : int
        Number of times at which the median is evaluated, >= 2.
    log_time : bool
        Put the time axis on a log scale, and space the grid of the median
        evenly on it, from the earliest positive time (a grid even on a linear
        scale would draw steps on a log axis). Otherwise the grid is even from 0.
    runs_alpha : float
        Opacity of the individual runs (with several runs).
    linewidth : float
        Width of the median line.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If the numbers of runs differ, a run's times and values have
        different lengths, or its times decrease.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from ksdnumba.plotting import plot_convergence
    >>> times = [np.linspace(0, 1, 50), np.linspace(0, 2, 80)]
    >>> values = [np.exp(-3 * t) for t in times]
    >>> ax = plot_convergence(times, values, label="two runs")
    >>> len(ax.lines)  # each run, then the median
    3
    """
    times = _runs(times, "times")
    values = _runs(values, "values")
    if len(times) != len(values):
        raise ValueError(
            f"times has {len(times)} runs but values has {len(values)}; give one "
            "array of times per run"
        )
    for k, (t, v) in enumerate(zip(times, values, strict=True)):
        if t.shape != v.shape:
            raise ValueError(
                f"run {k}: {t.size} times but {v.size} values; give one time per value"
            )
        if np.any(np.diff(t) < 0):
            raise ValueError(f"run {k}: the times must not decrease")
    n_grid = int(n_grid)
    if n_grid < 2:
        raise ValueError(f"n_grid must be >= 2, got {n_grid}")
    ax = _axes(ax)
    if log_time:
        ax.set_xscale("log")
    if color is None:
        (probe,) = ax.plot([], [])  # the next colour of the axes' cycle
        color = probe.get_color()
        probe.remove()
    if len(times) == 1:
        ax.plot(times[0], values[0], color=color, label=label, linewidth=linewidth)
        return ax
    for t, v in zip(times, values, strict=True):
        ax.plot(t, v, color=color, alpha=runs_alpha, linewidth=0.8)
    end = max(t[-1] for t in times)
    if log_time:
        positive = np.concatenate([t[t > 0] for t in times])
        if positive.size == 0:
            raise ValueError("log_time=True needs positive times")
        grid = np.geomspace(positive.min(), end, n_grid)
    else:
        grid = np.linspace(0.0, end, n_grid)
    median = np.median([np.interp(grid, t, v) for t, v in zip(times, values, strict=True)], axis=0)
    ax.plot(grid, median, color=color, label=label, linewidth=linewidth)
    return ax


def plot_ksd_curve(
    result: Any,
    *,
    ax: Any = None,
    reference: bool = True,
    exact: bool = True,
    pooled: bool = True,
    legend: bool = True,
    linewidth: float = 1.5,
) -> Any:
    r"""Draw the running KSD of each chain on log-log axes, with the rate of independent draws.

    One line per chain (``result.ksd[c]`` against ``result.m``, labelled
    ``chain c``, colours from the axes' cycle); the root mean square KSD of
    independent exact draws, :math:`\sqrt{\bar h / m}`, as a black dashed
    line up to the pooled size ``n_chains * n_draws``; the KSD of the target's
    exact draws, when ``result`` has them, in grey; and the KSD of all chains
    pooled as a black star at ``m = n_chains * n_draws``. A chain that mixes
    runs parallel to the dashed line (slope -1/2); one that levels off has not
    reached the target, or misses part of it.

    Parameters
    ----------
    result : KSDDiagnosticResult
        What :func:`ksdnumba.ksd_diagnostic` returns.
    ax : matplotlib.axes.Axes or None
        Where to draw; None draws on the current axes.
    reference : bool
        Draw the independent draws' rate.
    exact : bool
        Draw the exact draws' curve (when ``result.exact_ksd`` is not None).
    pooled : bool
        Mark the pooled KSD.
    legend : bool
        Add a legend.
    linewidth : float
        Width of the chains' lines.

    Returns
    -------
    ax : matplotlib.axes.Axes

    Raises
    ------
    TypeError
        If ``result`` is not a result of :func:`ksdnumba.ksd_diagnostic`.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from ksdnumba.diagnostics import ksd_diagnostic
    >>> from ksdnumba.plotting import plot_ksd_curve
    >>> x = np.random.default_rng(0).normal(size=(2, 400, 2))
    >>> fig, ax = plt.subplots()
    >>> ax = plot_ksd_curve(ksd_diagnostic(x, -x), ax=ax)
    >>> len(ax.lines), ax.get_xscale(), ax.get_yscale()  # 2 chains, reference, pooled
    (4, 'log', 'log')
    >>> plt.close(fig)
    """
    needed = ("m", "ksd", "reference", "reference_pooled", "pooled_ksd", "n_chains", "n_draws")
    if not isinstance(result, dict) or any(key not in result for key in needed):
        raise TypeError(
            "result must be what ksdnumba.ksd_diagnostic returns (a KSDDiagnosticResult), "
            f"got {type(result).__name__}"
        )
    ax = _axes(ax)
    m = np.asarray(result["m"])
    total = result["n_chains"] * result["n_draws"]
    for c, curve in enumerate(np.asarray(result["ksd"])):
        ax.plot(m, curve, linewidth=linewidth, label=f"chain {c}")
    if reference:
        ax.plot(
            np.append(m, total),
            np.append(result["reference"], result["reference_pooled"]),
            color="black",
            linestyle="--",
            linewidth=1.0,
            label=r"independent draws, $\propto m^{-1/2}$",
        )
    if exact and result.get("exact_ksd") is not None:
        ax.plot(
            np.append(m, total),
            np.append(result["exact_ksd"], result["exact_pooled_ksd"]),
            color="0.55",
            linewidth=1.0,
            label="exact draws",
        )
    if pooled:
        ax.plot(
            [total],
            [result["pooled_ksd"]],
            linestyle="none",
            marker="*",
            markersize=11,
            color="black",
            label="all chains pooled",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of draws $m$")
    ax.set_ylabel("KSD of the first $m$ draws")
    if legend:
        ax.legend(fontsize="small")
    return ax
