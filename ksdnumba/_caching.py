"""Numba's on-disk cache for functions that compile in code from other files.

Numba checks a cached function against the source file that defines it, and
against nothing else. A function that calls compiled functions of other modules
has their code inlined into its own, so after one of those modules changes (an
edited checkout, a ``git pull`` on an editable install) the cache would go on
serving the old code. :func:`cache_depends_on` adds the other files to the
function's freshness stamp.
"""

import hashlib
from pathlib import Path


def cache_depends_on(dispatcher, *modules):
    """Make ``dispatcher``'s disk cache stale whenever one of ``modules`` changes.

    Call it right after the ``@njit(cache=True)`` definition, before the first
    call. The modules' sources are hashed now and stored with the cache entry
    next to Numba's own stamp of the dispatcher's file.

    Parameters
    ----------
    dispatcher : numba Dispatcher
        Compiled with ``cache=True``.
    *modules : module
        The modules whose compiled functions ``dispatcher`` calls.

    Returns
    -------
    bool
        False if this Numba keeps its cache stamp elsewhere (the function then
        has Numba's default check only); True otherwise.
    """
    try:
        cache_file = dispatcher._cache._cache_file
        own_stamp = cache_file._source_stamp
    except AttributeError:
        return False
    digests = tuple(hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for m in modules)
    cache_file._source_stamp = (own_stamp, digests)
    return True


def cache_depends_on_each_other(modules):
    """Stamp every disk-cached function defined in ``modules`` with all their sources.

    For a package of modules that call one another's compiled functions (the
    CPU backend: the exp of one file is inlined into the pair loops of others),
    so that an edit to any of its files makes every cached function of the
    package stale. Call it once, when the last of ``modules`` has been imported
    and before any of their functions runs.

    Parameters
    ----------
    modules : sequence of module
        The package's modules.

    Returns
    -------
    int
        The number of functions stamped.
    """
    from numba.core.dispatcher import Dispatcher

    stamped = 0
    for module in modules:
        for obj in vars(module).values():
            if (
                isinstance(obj, Dispatcher)
                and getattr(obj.py_func, "__module__", None) == module.__name__
            ):
                stamped += cache_depends_on(obj, *modules)
    return stamped
