"""The one twin builder: a threaded driver and its serial twin from one Python body."""

import types

from numba import njit


def twin(body, name, parallel):
    """``body`` compiled as the threaded driver (``parallel=True``) or its serial twin.

    The body loops with ``prange`` over ``n_chunks`` chunks of work; the serial
    twin runs the same code, its ``prange`` a plain ``range`` (callers pass one
    chunk), so the two cannot drift apart. Numba's disk cache files a function
    under its qualified name and line and keys the entries by signature, not by
    the ``parallel`` flag: two dispatchers of one Python function would share one
    entry (the threaded driver was once found running the serial code it had
    loaded). A copy of the function under another name has an entry of its own.
    """
    copy = types.FunctionType(
        body.__code__, body.__globals__, name, body.__defaults__, body.__closure__
    )
    copy.__qualname__ = name
    copy.__module__ = body.__module__
    copy.__doc__ = body.__doc__
    return njit(cache=True, parallel=parallel)(copy)
