"""One fit of a sweep, as it runs in any process: this one, a spawned worker, a Dask worker.

Everything here must be importable wherever a fit runs, which is why it lives in
the package and not in the user's script: Dask and the process pool ship the
function by reference.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import threading
import time
from functools import lru_cache
from pathlib import Path

import numpy as np

from .._bandwidth import resolve_bw
from .._solvers import interrupts_propagate
from ..metrics import ksd
from ._configs import INITS, METHODS, SWEEP_KEYS

# Two fits at once in one process abort it when numba's threading layer is
# "workqueue" ("Concurrent access has been detected"): a Dask worker with several
# threads runs its fits one after the other, each with all the numba threads asked.
_FIT_LOCK = threading.Lock()

# Pickle protocol 5 keeps the read-only flag of arrays (protocol 4, the default
# before Python 3.14, drops it: a target's precomputed factors would become editable).
_PROTOCOL = 5


def _cloudpickle():
    try:
        import cloudpickle
    except ImportError:  # numba ships a copy of its own
        from numba import cloudpickle
    return cloudpickle


def dumps(obj) -> bytes:
    """Pickle ``obj`` (protocol 5); with cloudpickle when plain pickle cannot.

    Plain pickle ships classes and functions by reference and fails on lambdas
    and closures (``ScoreFunction(lambda x: -x)``); cloudpickle ships those by
    value. Plain pickle is tried first: what it writes needs nothing but the
    package on the other side.
    """
    try:
        return pickle.dumps(obj, protocol=_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        return _cloudpickle().dumps(obj, protocol=_PROTOCOL)


class Shipped:
    """An object pickled once, in the parent, and unpickled once per process.

    Targets and user initialisations travel as ``Shipped``: the payload is the
    same bytes in every task, and :meth:`load` keeps what it unpickled in a
    per-process cache keyed by the payload's hash.
    """

    __slots__ = ("payload", "digest")

    def __init__(self, obj):
        self.payload = dumps(obj)
        self.digest = hashlib.sha256(self.payload).hexdigest()[:20]

    def __getstate__(self):
        return {"payload": self.payload, "digest": self.digest}

    def __setstate__(self, state):
        self.payload = state["payload"]
        self.digest = state["digest"]

    def load(self):
        try:
            return _LOADED[self.digest]
        except KeyError:
            pass
        if len(_LOADED) > 64:
            _LOADED.clear()
        obj = pickle.loads(self.payload)
        _LOADED[self.digest] = obj
        return obj


_LOADED: dict = {}


def resolve(obj):
    """``obj``, or what it ships when it is :class:`Shipped`."""
    return obj.load() if isinstance(obj, Shipped) else obj


@contextlib.contextmanager
def numba_threads(threads):
    """Run with ``threads`` numba threads in this thread (None: leave as is); restore after.

    numba's count is per thread: it must be set inside the task, in the thread
    that runs the fit. Dask's worker options and ``client.run`` do not reach it.
    """
    if threads is None:
        yield
        return
    import numba

    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def initial_particles(config: dict, d: int, inits: dict) -> np.ndarray:
    """x0 of a configuration: ``init(n, d, default_rng(seed))``, checked."""
    name = config["init"]
    make = INITS.get(name) or resolve(inits[name])
    x0 = np.asarray(make(config["n"], d, np.random.default_rng(config["seed"])), dtype=float)
    if x0.shape != (config["n"], d):
        raise ValueError(
            f"init {name!r} returned shape {x0.shape}; it must return (n, d) = ({config['n']}, {d})"
        )
    return x0


def _dimension(config: dict, target, name: str) -> int:
    d = config.get("d", getattr(target, "n_dims", None))
    if d is None:
        raise ValueError(
            f"target {name!r} does not say its dimension (no n_dims attribute): add 'd' to "
            "the configuration"
        )
    return int(d)


def run_fit(
    config: dict, target, inits: dict, keep: str, yardstick: dict | None, threads: int | None
) -> dict:
    """Run one configuration; return its record. Never raises for a failed fit.

    The record holds ``fun`` (the method's own final value, what it minimised),
    ``ksd2`` (the squared KSD, V-statistic, of the final particles on the
    yardstick),
    ``nit``, ``nfev``, ``success``, ``status``, ``message``, ``time``, ``threads``
    (numba threads of the fit), ``error``
    (``"TypeName: message"`` when the fit raised, else None), and per ``keep``
    the final particles ``x`` and the whole ``result``.
    """
    import numba

    with _FIT_LOCK, numba_threads(threads):
        start = time.perf_counter()
        try:
            # Ctrl-C stops the sweep: a sampler must not return an interrupted fit
            # that would be written down as finished.
            with interrupts_propagate():
                record = _fit(config, resolve(target), inits, keep, yardstick)
        except Exception as exc:  # recorded in the row: the sweep goes on
            record = failed(f"{type(exc).__name__}: {exc}")
        record["time"] = time.perf_counter() - start
        record["threads"] = numba.get_num_threads()
    return record


def failed(error: str) -> dict:
    """The record of a fit that produced nothing."""
    return {
        "fun": float("nan"),
        "ksd2": float("nan"),
        "nit": None,
        "nfev": None,
        "success": False,
        "status": None,
        "message": "",
        "time": float("nan"),
        "threads": None,
        "error": error,
        "x": None,
        "result": None,
    }


def _fit(config, target, inits, keep, yardstick):
    d = _dimension(config, target, config["target"])
    x0 = initial_particles(config, d, inits)
    method = config["method"]
    kwargs = {k: v for k, v in config.items() if k not in SWEEP_KEYS}
    store = keep == "all"
    if method == "mmd_lbfgs":
        m = config.get("n_target_samples", config["n"])
        # Drawn from a stream of their own, so that x0 is the same for every method.
        samples = target.sample(m, rng=np.random.default_rng([config["seed"], 1]))
        res = METHODS[method](x0, samples, store=store, **kwargs)
    else:
        res = METHODS[method](x0, target, store=store, **kwargs)
    ruler = (
        dict(yardstick)
        if yardstick is not None
        else {k: kwargs[k] for k in ("kernel", "bw", "beta") if k in kwargs}
    )
    if isinstance(ruler.get("bw"), str):
        # "median" as the fits resolve it: once, at the initial particles.
        ruler["bw"] = resolve_bw(ruler["bw"], x0)
    ksd2 = ksd(res.x, target, **ruler)
    return {
        "fun": float(res.fun),
        "ksd2": float(ksd2),
        "nit": int(res.nit),
        "nfev": int(res.nfev),
        "success": bool(res.success),
        "status": int(res.status),
        "message": str(res.message),
        "error": None,
        "x": res.x if keep != "none" else None,
        "result": res if store else None,
    }


@lru_cache(maxsize=1)
def environment() -> dict:
    """What must match between the client and the workers: versions and a source digest."""
    import numba
    import scipy

    import ksdnumba

    root = Path(ksdnumba.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return {
        "ksdnumba": ksdnumba.__version__,
        "source": digest.hexdigest()[:20],
        "numba": numba.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pid": os.getpid(),
    }
