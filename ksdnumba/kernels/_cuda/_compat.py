"""What the CUDA backend needs from its environment, and the one workaround it applies.

numba-cuda 0.30 (in maintenance mode: NVIDIA/numba-cuda#907 will not be fixed)
registers an overload of ``np.row_stack`` when its target first loads, which
NumPy 2.5 removed: on a GPU, the first kernel compile then fails with an
AttributeError. :func:`_import_with_row_stack` loads that module once with the
alias in place; the package's ``__init__`` calls it before any kernel is built.
"""

import importlib

import numpy as np


def _import_with_row_stack(module="numba.cuda.np.arrayobj"):
    """Import numba-cuda's array module where NumPy no longer has ``np.row_stack``.

    Importing the module once with the alias in place registers the overload on
    ``np.vstack`` (which ``row_stack`` always was) and caches the module; the
    alias is removed again, so that NumPy is left as it was. Nothing happens
    where NumPy has the alias, or where the module does not exist (numba's own
    CUDA target, a later numba-cuda).
    """
    if hasattr(np, "row_stack"):
        return
    np.row_stack = np.vstack
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:  # the module itself, not one that it imports
        if err.name is None or not (module + ".").startswith(err.name + "."):
            raise
    finally:
        del np.row_stack
