"""The result object returned by every sampler."""

from scipy.optimize import OptimizeResult


class SamplingResult(OptimizeResult):
    """Outcome of a particle sampler, shaped like :class:`scipy.optimize.OptimizeResult`.

    Every sampler returns this one type, whatever its options, so code written
    against one sampler works with the others. Fields are read as attributes.

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
        Solver-specific code (SciPy's, for L-BFGS-B); -1 when the run was stopped
        because the objective could not be evaluated (the target raised or
        returned a wrong shape or non-finite values, or the particles overflowed).
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
