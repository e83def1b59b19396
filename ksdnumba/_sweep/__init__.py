"""Sweeps: many independent fits at once, in this process, a process pool or on Dask.

One room per role: ``_configs`` (the grid, the tables, the checks), ``_task``
(one fit, wherever it runs), ``_store`` (the files of finished fits),
``_local`` (in-process and process-pool runners), ``_dask`` (the Dask runner,
imported only when asked for), ``_api`` (``sweep`` and its result).
"""

from ._api import FitResult, SweepResult, sweep
from ._configs import INITS, grid

__all__ = ["INITS", "FitResult", "SweepResult", "grid", "sweep"]
