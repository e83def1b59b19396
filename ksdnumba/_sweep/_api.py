"""``kn.sweep``: many independent fits, here or on a Dask cluster, each kept on disk."""

from __future__ import annotations

import numbers
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from typing import Any

import numpy as np

from .._progress import check_progress, progress_bar
from .._result import Result
from .._validation import check_option
from ._configs import INITS, KEEP, check_configs, check_yardstick, fit_key
from ._local import available_cores, run_in_process, run_pool
from ._store import Store
from ._task import Shipped

_RECORD_COLUMNS = (
    "fun",
    "ksd2",
    "nit",
    "nfev",
    "success",
    "status",
    "message",
    "time",
    "threads",
    "error",
    "reused",
)


class FitResult(Result):
    """One row of a sweep: a configuration and the outcome of its fit.

    Fields are read as attributes (``row.fun``) or keys (``row["fun"]``).

    Attributes
    ----------
    config : dict
        The configuration, with the sweep's defaults filled in (``init``,
        ``seed``).
    key : str
        The fit's name: a hash of ``config`` (and of the yardstick); its file
        in the sweep's directory is ``fit-<key>.npz``.
    fun : float
        The method's own final value, as in :class:`SamplingResult` (what it
        minimised: the squared KSD for ``ksdd_*``, the squared MMD for
        ``mmd_lbfgs``; for SVGD, which has no objective, the squared norm of
        its direction); NaN if the fit raised.
    ksd2 : float
        Squared KSD (V-statistic) of the final particles, on the yardstick of
        the sweep, comparable between methods; NaN if the fit raised.
    nit, nfev, status : int or None
        As in :class:`SamplingResult`; None if the fit raised.
    success : bool
        The solver's convergence flag; False if the fit raised.
    message : str
        The solver's message.
    time : float
        Seconds the fit took, in its worker.
    threads : int or None
        numba threads the fit ran with (None for a fit lost with its worker).
    error : str or None
        ``"TypeName: message"`` of the exception the fit raised, or of the
        failure that lost it (a worker that died); None for a fit that ran.
    reused : bool
        True if the row was read from the sweep's directory instead of run.
    x : ndarray of shape (n, d) or None
        Final particles (``keep="x"`` or ``"all"``); None if the fit raised.
    result : SamplingResult or None
        The whole result, with its trajectory (``keep="all"``).
    """

    config: dict
    key: str
    fun: float
    ksd2: float
    nit: int | None
    nfev: int | None
    status: int | None
    success: bool
    message: str
    time: float
    threads: int | None
    error: str | None
    reused: bool
    x: np.ndarray | None
    result: Any


class SweepResult(Sequence):
    """The rows of a sweep, one :class:`FitResult` per configuration, in their order.

    A sequence: ``len(s)``, ``s[i]``, iteration. ``s.to_dataframe()`` gives the
    table of configurations and outcomes; ``s.x`` the final particles.

    Attributes
    ----------
    directory : str or None
        Where the fits were written.
    n_reused : int
        Rows read from the directory instead of run.
    n_errors : int
        Rows whose fit raised or was lost.
    time : float
        Wall-clock seconds of the whole sweep.
    """

    def __init__(
        self,
        rows: Iterable,
        *,
        directory: str | PathLike | None = None,
        wall_time: float = float("nan"),
    ) -> None:
        self._rows = list(rows)
        self.directory = None if directory is None else str(directory)
        self.time = float(wall_time)

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return SweepResult(self._rows[index], directory=self.directory, wall_time=self.time)
        return self._rows[index]

    @property
    def n_reused(self) -> int:
        return sum(row.reused for row in self._rows)

    @property
    def n_errors(self) -> int:
        return sum(row.error is not None for row in self._rows)

    @property
    def x(self) -> list:
        """The final particles of each row (None where the fit raised or with ``keep="none"``)."""
        return [row.x for row in self._rows]

    @property
    def errors(self) -> list:
        """The rows whose fit raised or was lost."""
        return [row for row in self._rows if row.error is not None]

    def __repr__(self) -> str:
        return (
            f"SweepResult({len(self)} fits: {len(self) - self.n_errors} ran, "
            f"{self.n_errors} failed, {self.n_reused} reused from disk; {self.time:.2f} s)"
        )

    def to_dataframe(self):
        """A pandas DataFrame: one row per fit, its configuration's columns, then the outcome.

        The configuration columns come first, in the order their keys first
        appear, then ``fun``, ``ksd2``, ``nit``, ``nfev``, ``success``,
        ``status``, ``message``, ``time``, ``threads``, ``error``, ``reused``
        and ``key``.
        A key that some configurations lack leaves missing cells; integer
        columns stay integer (pandas' nullable ``Int64``, with ``<NA>``) and
        boolean ones ``boolean``, instead of turning into floats. The particles
        are not in the table: they are in :attr:`x`.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        ImportError
            If pandas is not installed (it comes with the ``dask`` extra).

        Examples
        --------
        >>> import ksdnumba as kn
        >>> target = kn.Gaussian([0.0], 1.0)
        >>> configs = kn.grid(method="ksdd_lbfgs", n=20, seed=range(2), max_iter=30)
        >>> s = kn.sweep(configs, {"normal": target}, progress=False)
        >>> df = s.to_dataframe()
        >>> df[["seed", "n"]].dtypes.tolist()
        [Int64Dtype(), Int64Dtype()]
        >>> bool(df["fun"].notna().all())
        True
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "SweepResult.to_dataframe needs pandas: pip install 'ksdnumba[dask]' "
                '(from a clone: python -m pip install -e ".[dask]"), or pip install pandas'
            ) from exc
        names = []
        for row in self._rows:
            names += [k for k in row.config if k not in names]
        columns = {}
        for name in names:
            columns[name] = _column(pd, [row.config.get(name) for row in self._rows])
        for name in _RECORD_COLUMNS:
            columns[name] = _column(pd, [row[name] for row in self._rows])
        columns["key"] = _column(pd, [row.key for row in self._rows])
        clash = [n for n in names if n in (*_RECORD_COLUMNS, "key")]
        if clash:  # unreachable for valid configs; kept so that no column is silently lost
            raise ValueError(f"configuration keys {clash} clash with result columns")
        return pd.DataFrame(columns)


def _column(pd, values):
    """A pandas Series of ``values`` (None for a missing cell) that keeps integers integer."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pd.array(values, dtype="boolean")
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pd.array(values, dtype="Int64")
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values])
    return pd.Series(values, dtype=object if not all(isinstance(v, str) for v in present) else None)


def sweep(
    configs: Iterable[Mapping] | Mapping,
    targets: Mapping[str, object],
    *,
    client: Any = None,
    directory: str | PathLike | None = None,
    threads_per_fit: int | None = None,
    keep: str = "x",
    progress: bool = False,
    inits: Mapping[str, Callable] | None = None,
    yardstick: Mapping | None = None,
) -> SweepResult:
    r"""Run many independent fits: in this process, in a process pool, or on a Dask cluster.

    Each configuration names a method, a target, an initialisation, a number
    of particles and a seed, plus any keyword of the method. The initial
    particles are built where the fit runs, from ``(init, n, d, seed)``, so a
    task ships a few scalars; the targets are shipped once per worker. The
    particles of a configuration are bit-identical wherever it runs: in this
    process, in a pool, on any number of Dask workers.

    Parameters
    ----------
    configs : list of dict, or dict
        Flat mappings of scalars (see :func:`grid`), one per fit. Keys:

        - ``method``: ``"ksdd_lbfgs"``, ``"ksdd_gradient"``, ``"svgd"`` or
          ``"mmd_lbfgs"``;
        - ``target``: a key of `targets` (optional when there is one target);
        - ``n``: the number of particles;
        - ``init`` (default ``"normal"``): ``"normal"`` (standard normal),
          ``"init1"``, ``"init2"``, ``"init3"`` (the three starts of the
          ``plot_minima`` example: :math:`0.5\,\mathcal N(0, I)` with the first
          coordinate set to 0, left as is, or drawn from :math:`0.05\,\mathcal
          N(0, 1)`; they need ``d >= 2``), or a key of `inits`;
        - ``seed`` (default 0): x0 is ``init(n, d, np.random.default_rng(seed))``;
        - ``d``: the dimension, for targets without an ``n_dims`` attribute;
        - ``n_target_samples`` (``mmd_lbfgs`` only, default ``n``): the number
          of target samples, drawn with ``target.sample`` from
          ``np.random.default_rng([seed, 1])``;
        - any other keyword of the method (``bw``, ``kernel``, ``step``,
          ``max_iter``, ...).

        Unknown names (methods, targets, inits, keywords) raise before any fit
        runs; a value the method rejects (``bw=-1``) is recorded in the row.
    targets : dict of str to target
        The targets, by name: any object the methods accept (``mmd_lbfgs``
        needs ``sample(m, rng=...)``). Shipped with pickle, or with
        cloudpickle when pickle cannot (lambdas, closures).
    client : None, int, "local", str or distributed.Client
        Where the fits run. ``None`` (default): in this process, one after the
        other. An int ``k``: a pool of ``k`` worker processes of this machine,
        started with ``spawn`` (standard library only; a fit whose worker dies
        is run again). ``"local"``: a Dask ``LocalCluster`` with one
        single-threaded worker process per core. A scheduler address
        (``"tcp://host:8786"``) or a ``distributed.Client``: that Dask cluster.
        Dask is an optional dependency (``pip install 'ksdnumba[dask]'``). With
        a pool or a local cluster, the script that calls ``sweep`` must do so
        under ``if __name__ == "__main__":``.
    directory : str or path-like, optional
        Where each finished fit is written at once, one file per fit,
        ``fit-<key>.npz``, named by a hash of its configuration (and of the
        yardstick), and atomically renamed into place. A fit whose file is
        already there is read instead of run: run the same sweep again after a
        crash, a Ctrl-C or a lost cluster, and only the fits that were in flight
        run again. Fits that raised are stored too (they would raise again);
        fits lost to a dying worker are not (they run again). The directory
        belongs to one set of targets: a warning says when a stored fit was
        computed with a target that pickles differently.
    threads_per_fit : int, optional
        numba threads of each fit, set inside the task. Default: in this
        process, numba's current count; in a pool of ``k`` workers, the cores
        divided by ``k``; on Dask, the worker's number of threads (a worker runs
        one fit at a time).
    keep : {"x", "none", "all"}
        What each row keeps besides its scalars: the final particles (``"x"``),
        nothing (``"none"``), or the whole :class:`SamplingResult` with its
        trajectory (``"all"``, which runs every fit with ``store=True``: about
        0.3 MB per 50-particle fit, MBs for large ones).
    progress : bool
        Show a progress bar over finished fits: tqdm's (``tqdm.auto``) where it
        is installed, else a text line on stderr, in this process and in a
        pool; Dask's own on a cluster.
    inits : dict of str to callable, optional
        Your own initialisations, by name: ``f(n, d, rng) -> (n, d) array``,
        with ``rng`` a ``np.random.Generator`` seeded by the configuration.
    yardstick : dict, optional
        The kernel on which ``ksd2`` is measured for every row: keys among
        ``kernel``, ``bw``, ``beta`` (:func:`ksd`'s keywords). Default: each
        fit's own ``kernel``, ``bw`` and ``beta`` (so ``ksd2`` is ``fun`` for
        the ``ksdd_*`` methods); set it to compare rows with different
        bandwidths. ``bw="median"`` is taken at the initial particles.

    Returns
    -------
    SweepResult
        One :class:`FitResult` per configuration, in the order of `configs`;
        ``to_dataframe()`` gives the table.

    Raises
    ------
    ValueError
        For an unknown method, target, init, keyword, `keep` or `client`
        string, a configuration without ``n``, or two identical configurations.
    TypeError
        For a configuration value that is not a scalar, or arguments of the
        wrong type.
    ImportError
        If Dask is asked for and not installed; the message names the extra.
    RuntimeError
        If a Dask worker cannot import ksdnumba or runs another version, or a
        pool worker dies while starting (typically: a script without
        ``if __name__ == "__main__":``).

    See Also
    --------
    grid : the Cartesian product of axes.

    Notes
    -----
    ``ksd2`` is ``kn.ksd(x, target, kernel=kernel, bw=bw, beta=beta)`` of the final
    particles (V-statistic) for every method, so rows of SVGD, MMD and KSD
    descent are measured alike. An interrupt (Ctrl-C) stops the whole sweep:
    the fits finished before it are on disk, the interrupted one is not. In a
    pool or on Dask, the first configuration of each
    group of (method, target, kernel, dtype, backend) runs first, one at a time
    (on one worker of each Dask host), and the rest of its group only after it:
    a cold numba cache is filled once per machine rather than by every worker
    at the same moment.

    Examples
    --------
    >>> import ksdnumba as kn
    >>> from ksdnumba.datasets import two_modes
    >>> configs = kn.grid(method="ksdd_lbfgs", init=["init1", "init2"], n=20,
    ...                   seed=range(2), bw=0.3, max_iter=50)
    >>> s = kn.sweep(configs, {"mix": two_modes(0.3)}, progress=False)
    >>> len(s), s.n_errors
    (4, 0)
    >>> s[0].config["init"], s[0].config["seed"], s[0].config["target"]
    ('init1', 0, 'mix')
    >>> s[0].x.shape
    (20, 2)
    >>> bool(abs(s[0].fun - s[0].ksd2) < 1e-12)
    True

    A fit that raises is recorded, and the others run:

    >>> s = kn.sweep(kn.grid(method="ksdd_lbfgs", n=20, bw=[0.3, -1.0], max_iter=5),
    ...              {"mix": two_modes(0.3)}, progress=False)
    >>> s[1].error
    'ValueError: bw must be positive and finite, got -1.0'
    """
    start = time.perf_counter()
    keep = check_option(keep, "keep", KEEP)
    progress = check_progress(progress)
    threads = _check_threads(threads_per_fit)
    targets = _check_named(targets, "targets", callable_values=False)
    user_inits = _check_named(inits or {}, "inits", callable_values=True)
    clash = sorted(set(user_inits) & set(INITS))
    if clash:
        raise ValueError(
            f"inits {clash} would hide the built-in initialisations of the same "
            "names; choose other names"
        )
    yardstick = check_yardstick(yardstick)
    configs = check_configs(configs, targets, user_inits)
    kind = _runner_kind(client)
    keys = [fit_key(c, yardstick) for c in configs]

    shipping = kind != "in-process"
    # In this process the targets are not shipped; they are pickled only for the
    # digest that the files record, when there are files.
    shipped = (
        {name: _ship(obj, f"target {name!r}", shipping) for name, obj in targets.items()}
        if shipping or directory is not None
        else {}
    )
    digests = {name: (s.digest if s is not None else None) for name, s in shipped.items()}
    store = Store(directory) if directory is not None else None
    records: list = [None] * len(configs)
    changed = set()
    if store is not None:
        for i, key in enumerate(keys):
            found = store.load(key, keep)
            if found is None:
                continue
            record, digest = found
            records[i] = _row(configs[i], key, record, reused=True)
            name = configs[i]["target"]
            if digest is not None and digests.get(name) not in (None, digest):
                changed.add(name)
    if changed:
        warnings.warn(
            f"{directory}: fits of target(s) {sorted(changed)} were stored with a target that "
            "pickles differently from the one given now; they are reused as they are. Use "
            "another directory if the target changed.",
            UserWarning,
            stacklevel=2,
        )
    todo = [i for i, r in enumerate(records) if r is None]
    groups = _groups(todo, configs)
    bar = progress_bar(
        progress and kind != "dask",
        len(configs),
        "sweep",
        unit="fits",
        initial=len(configs) - len(todo),
    )
    failures = [0]

    def on_done(index, record, final):
        records[index] = _row(configs[index], keys[index], record, reused=False)
        if store is not None and final:
            store.save(
                keys[index], configs[index], record, keep, digests.get(configs[index]["target"])
            )
        if record["error"] is not None:
            failures[0] += 1
            bar.set_postfix_str(f"{failures[0]} failed")
        bar.update(1)

    job = {"keep": keep, "yardstick": yardstick, "threads": threads, "keys": keys}
    try:
        if not todo:
            pass  # everything was on disk: no pool, no cluster to start
        elif kind == "in-process":
            job.update(targets=targets, inits=user_inits)
            run_in_process(groups, job, on_done)
        elif kind == "pool":
            job.update(targets=shipped, inits=_ship_inits(user_inits))
            if threads is None:
                job["threads"] = max(1, available_cores() // client)
            run_pool(groups, job, client, on_done)
        else:
            from ._dask import connect, run_dask

            job.update(targets=shipped, inits=_ship_inits(user_inits))
            dask_client, close = connect(client)
            try:
                run_dask(groups, job, dask_client, on_done, progress)
            finally:
                close()
    finally:
        bar.close()
    return SweepResult(records, directory=directory, wall_time=time.perf_counter() - start)


_ROW_FIELDS = (
    "fun",
    "ksd2",
    "nit",
    "nfev",
    "success",
    "status",
    "message",
    "time",
    "threads",
    "error",
)


def _row(config, key, record, reused):
    """A :class:`FitResult`, its fields in a fixed order whatever the record's."""
    return FitResult(
        config=config,
        key=key,
        **{k: record.get(k) for k in _ROW_FIELDS},
        reused=reused,
        x=record.get("x"),
        result=record.get("result"),
    )


def _ship_inits(inits):
    return {name: _ship(f, f"init {name!r}", True) for name, f in inits.items()}


def _check_threads(threads):
    if threads is None:
        return None
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads_per_fit must be None or an integer >= 1, got {threads!r}")
    if threads < 1:
        raise ValueError(f"threads_per_fit must be >= 1, got {threads}")
    return int(threads)


def _check_named(table, name, callable_values):
    if not isinstance(table, Mapping):
        raise TypeError(f"{name} must be a dict of names to objects, got {type(table).__name__}")
    if not table and name == "targets":
        raise ValueError("targets is empty: give at least one, e.g. {'mix': two_modes(0.3)}")
    for key, value in table.items():
        if not isinstance(key, str):
            raise TypeError(f"{name} keys must be strings, got {key!r}")
        if callable_values and not callable(value):
            raise TypeError(
                f"{name}[{key!r}] must be callable as f(n, d, rng), got {type(value).__name__}"
            )
    return dict(table)


_CLIENTS = (
    "None (this process)",
    "an int (a process pool)",
    "'local' (a Dask LocalCluster)",
    "a scheduler address such as 'tcp://host:8786'",
    "a distributed.Client",
)


def _runner_kind(client) -> str:
    if client is None:
        return "in-process"
    if isinstance(client, numbers.Integral) and not isinstance(client, (bool, np.bool_)):
        if client < 1:
            raise ValueError(f"client: a process pool needs >= 1 worker, got {client}")
        return "pool"
    if isinstance(client, str):
        if client != "local" and ":" not in client:
            raise ValueError(f"unknown client {client!r}; valid values are " + ", ".join(_CLIENTS))
        from ._dask import import_distributed

        import_distributed()
        return "dask"
    from ._dask import import_distributed, is_client

    if is_client(client):
        import_distributed()
        return "dask"
    raise TypeError(f"client must be one of {', '.join(_CLIENTS)}; got {type(client).__name__}")


def _ship(obj, what, required):
    """``Shipped(obj)``; when it cannot be pickled, an error if shipping is required."""
    try:
        return Shipped(obj)
    except Exception as exc:
        if required:
            raise TypeError(
                f"{what} cannot be sent to worker processes, even with "
                f"cloudpickle: {type(exc).__name__}: {exc}"
            ) from exc
        return None


def _groups(todo, configs):
    """The fits to run, grouped by what they compile: (method, target, kernel, dtype, backend).

    Groups in the order of their first configuration, fits in the order of the
    configurations; the first fit of each group is its leader (the warm-up).
    """
    groups: dict = {}
    for i in todo:
        c = configs[i]
        key = (c["method"], c["target"], c.get("kernel"), c.get("dtype"), c.get("backend"))
        groups.setdefault(key, []).append((i, c))
    return list(groups.values())
