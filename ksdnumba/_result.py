"""The result objects: one dict-like class with attribute access, one subclass per kind."""

from __future__ import annotations

import numpy as np


class Result(dict):
    """A dict whose fields are also read as attributes (``res.x`` or ``res["x"]``).

    The base of every result ksdnumba returns, shaped like
    :class:`scipy.optimize.OptimizeResult`. It is a dict of its own rather than
    SciPy's class so that ``import ksdnumba`` need not import
    :mod:`scipy.optimize` (a third of the import time). Arrays of three or more
    dimensions are shown by their shape in the ``repr``.
    """

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    __setattr__ = dict.__setitem__
    __delattr__ = dict.__delitem__

    def __dir__(self):
        return list(self.keys())

    def __repr__(self):
        if not self:
            return f"{type(self).__name__}()"
        width = max(map(len, self.keys())) + 1
        lines = []
        for key, value in self.items():
            if isinstance(value, np.ndarray) and value.ndim > 2:
                text = f"<{value.dtype} array of shape {value.shape}>"
            elif isinstance(value, np.ndarray):
                text = np.array2string(value, threshold=6, edgeitems=2, precision=4)
                text = text.replace("\n", "\n" + " " * (width + 2))
            else:
                text = repr(value)
            lines.append(f"{key.rjust(width)}: {text}")
        return "\n".join(lines)


class SamplingResult(Result):
    """Outcome of a particle sampler, shaped like :class:`scipy.optimize.OptimizeResult`.

    Every sampler returns this one type, whatever its options, so code written
    against one sampler works with the others. Fields are read as attributes
    (``res.x``) or as keys (``res["x"]``).

    Attributes
    ----------
    x : ndarray of shape (n, d)
        Final particles, in the dtype that was asked for.
    fun : float
        Objective at ``x`` (for ``ksdd_*`` the squared KSD, V-statistic).
    nit : int
        Number of iterations performed.
    nfev : int
        Number of objective (and gradient) evaluations.
    success : bool
        Whether the solver stopped on one of its convergence tests.
    status : int
        0 converged, 1 ``max_iter`` reached (SciPy's codes for L-BFGS-B, whose 2
        is any other stop of the solver); 99 stopped by the callback; -1 the
        objective could not be evaluated (the target raised or returned a wrong
        shape or non-finite values, or the particles overflowed); -2
        interrupted by the user (Ctrl-C).
    message : str
        Why the solver stopped.
    history : ndarray of shape (nit + 1,)
        Objective at the initial particles and after each iteration.
    trajectory : ndarray of shape (n_stored, n, d) or None
        The initial particles and every iterate, when ``store=True``.
    times : ndarray of shape (n_stored,) or None
        Seconds since the start of the run at each stored iterate, when
        ``store=True``.
    """

    x: np.ndarray
    fun: float
    nit: int
    nfev: int
    success: bool
    status: int
    message: str
    history: np.ndarray
    trajectory: np.ndarray | None
    times: np.ndarray | None
