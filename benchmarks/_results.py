"""Where and how a benchmark ran, and its rows, written as one JSON file.

Every script of ``benchmarks/`` writes ``benchmarks/results/<name>.json``::

    {"machine": {...}, "command": "python benchmarks/...", "meta": {...}, "rows": [...]}

``machine`` is :func:`machine` at the end of the run (CPU, cores, revision, date,
versions, BLAS), ``command`` the command line, ``meta`` the parameters of the run
plus the load average before and after it, and ``rows`` one flat dict per line of
the tables the script prints (a ``part`` key tells the tables apart). The
documentation's benchmarks page is built from these files
(``docs/sphinxext/ksdnumba_benchmarks.py``), so every figure there names the
machine, revision and date of its measurement.

A script adopts it in two lines::

    from _results import write          # the script's folder is on sys.path
    write("objective", rows_or_report, meta={...}, path=args.json)

``path=None`` writes the default file, ``path=False`` nothing; a run whose
``meta`` says ``quick`` is written only to an explicit path, so a smoke test never
replaces a measurement. :func:`add_arguments` gives a script ``--json PATH`` and
``--no-json``. Only the standard library, NumPy and (when installed) threadpoolctl.
"""

import importlib.metadata
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
THREAD_VARS = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)

# Taken when the script imports this module, i.e. before it measures anything.
_LOAD_AT_START = os.getloadavg() if hasattr(os, "getloadavg") else None
_CLOCK_AT_START = time.perf_counter()


def cpu_model():
    """The CPU's model name: /proc/cpuinfo on Linux, else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out
    return platform.processor() or platform.machine()


def _run(cmd):
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def revision():
    """``(short hash of HEAD, dirty)``; dirty: the code that runs differs from HEAD.

    The code that runs: tracked files under ``ksdnumba/``, ``benchmarks/`` (its
    ``results/`` aside), ``examples/`` and ``pyproject.toml``; an edit to the docs
    does not make a measurement dirty.
    """
    rev = _run(["git", "rev-parse", "--short", "HEAD"])
    if rev is None:
        return None, None
    paths = ["ksdnumba", "benchmarks", "examples", "pyproject.toml"]
    status = _run(
        [
            "git",
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            *paths,
            ":(exclude)benchmarks/results",
        ]
    )
    return rev, bool(status)


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def blas():
    """The BLAS/OpenMP libraries loaded in this process (threadpoolctl), or None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    keys = ("internal_api", "version", "num_threads", "threading_layer", "architecture")
    return [{k: info.get(k) for k in keys} for info in threadpool_info()]


def machine():
    """Where and when this process runs: a JSON-ready dict.

    Keys: ``cpu``, ``cores`` (``os.cpu_count()``), ``usable_cores`` (this process's
    affinity), ``platform``, ``revision`` and ``dirty`` (see :func:`revision`),
    ``date`` (UTC, ISO 8601), ``python``, ``numpy``, ``scipy``, ``numba``,
    ``numba_threads``, ``blas`` (threadpoolctl's view of the libraries loaded so far:
    call it after the work), ``thread_env`` (the thread-count variables set) and
    ``load_average`` (now).
    """
    rev, dirty = revision()
    try:
        import numba

        threads = numba.get_num_threads()
    except ImportError:
        threads = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "revision": rev,
        "dirty": dirty,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "numba": _version("numba"),
        "numba_threads": threads,
        "blas": blas(),
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def command():
    """This process's command line, the script's path relative to the repository."""
    argv = list(sys.argv) or [""]
    script = Path(argv[0]).resolve() if argv[0] and Path(argv[0]).is_file() else None
    if script is not None and script.is_relative_to(ROOT):
        argv[0] = str(script.relative_to(ROOT))
    return shlex.join(["python", *[a for a in argv if a]])


def jsonable(value):
    """``value`` with NumPy scalars and arrays as Python ones, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())  # NumPy arrays and scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def sections_to_rows(report):
    """Rows and meta from a report ``{section: [row, ...], key: value}``.

    Each list of dicts becomes rows with ``part`` set to its key, and each dict one
    such row; a ``machine`` dict is returned apart (it adds to :func:`machine`, e.g.
    a GPU's name); anything else (numbers, strings, lists of numbers) goes to meta.
    Returns ``(rows, meta, machine_extra)``.
    """
    rows, meta, extra = [], {}, {}
    for key, value in report.items():
        if key == "machine" and isinstance(value, dict):
            extra = dict(value)
        elif isinstance(value, dict):
            rows.append({"part": key, **value})
        elif isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            rows += [{"part": key, **r} for r in value]
        else:
            meta[key] = value
    return rows, meta, extra


def default_path(name):
    """``benchmarks/results/<name>.json``."""
    return RESULTS / f"{name}.json"


def write(name, rows, *, meta=None, path=None):
    """Write ``{"machine", "command", "meta", "rows"}`` as JSON; return the path.

    Parameters
    ----------
    name : str
        The results' name: ``benchmarks/results/<name>.json`` by default.
    rows : list of dict, or dict
        One flat dict per table line. A dict is a report of sections
        (:func:`sections_to_rows`): its dicts and lists of dicts become rows with a
        ``part``.
    meta : dict, optional
        The run's parameters. ``load_average_before`` (when this module was
        imported), ``load_average_after`` and ``wall_s`` are added unless given.
    path : str, Path, None or False
        Where to write; None: the default file, or nothing when ``meta["quick"]``
        is true; False: nothing (returns None).
    """
    meta = dict(meta or {})
    extra = {}
    if isinstance(rows, dict):
        rows, more, extra = sections_to_rows(rows)
        meta = {**more, **meta}
    if path is False or (path is None and meta.get("quick")):
        why = "--no-json" if path is False else "a quick run writes only to --json PATH"
        print(f"no JSON written ({why})")
        return None
    meta.setdefault("load_average_before", _LOAD_AT_START)
    meta.setdefault("load_average_after", os.getloadavg() if hasattr(os, "getloadavg") else None)
    meta.setdefault("wall_s", time.perf_counter() - _CLOCK_AT_START)
    info = machine()
    for key, value in extra.items():
        info.setdefault(key, value)
    doc = {"machine": info, "command": command(), "meta": meta, "rows": list(rows)}
    path = Path(default_path(name) if path is None else path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(jsonable(doc), indent=1) + "\n")
    print(f"wrote {path}")
    return path


def add_arguments(parser, name):
    """Add ``--json PATH`` and ``--no-json`` (both to ``args.json``) to ``parser``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help=f"write the results here (default: benchmarks/results/{name}.json)",
    )
    group.add_argument(
        "--no-json", dest="json", action="store_const", const=False, help="write no JSON"
    )
    return parser


def load_average():
    """The 1, 5 and 15 minute load averages now, or None."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


__all__ = [
    "RESULTS",
    "THREAD_VARS",
    "add_arguments",
    "command",
    "cpu_model",
    "jsonable",
    "load_average",
    "machine",
    "revision",
    "sections_to_rows",
    "write",
]
