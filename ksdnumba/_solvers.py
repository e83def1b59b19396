"""The samplers' solver drivers: SciPy's L-BFGS-B and fixed-step iterations.

:class:`Run` keeps the book of a run (history, stored iterates, the callback,
the verbose log); :func:`lbfgs` and :func:`fixed_step` drive it, hold BLAS to
one thread during the solve, and end a run cleanly, with its last finite
particles, when the objective can no longer be evaluated. Every sampler
(:mod:`ksdnumba.descent`, :mod:`ksdnumba.contenders`) goes through them.
"""

import time

import numpy as np

from ._result import SamplingResult
from ._validation import EvaluationError, NonFiniteError, check_positive_int
from .kernels._cpu._threads import single_threaded_blas


class Run:
    """Book-keeping shared by the samplers: history, stored iterates, callback."""

    def __init__(self, shape, dtype, store, callback, verbose, name, label="objective"):
        self.shape = shape
        self.dtype = dtype
        self.store = store
        self.callback = callback
        self.every = verbose_every(verbose)
        self.name = name
        self.label = label
        self.start = time.perf_counter()
        self.history = []
        self.trajectory = [] if store else None
        self.times = [] if store else None
        self.nit = 0
        self.x = None
        self.fun = None

    def record(self, x, fun):
        """Take iterate ``nit`` (0 is the start); True if the callback asks to stop."""
        x = np.array(x, dtype=self.dtype).reshape(self.shape)  # SciPy reuses its buffer
        self.x, self.fun = x, float(fun)
        self.history.append(self.fun)
        if self.store:
            self.trajectory.append(x.copy())
            self.times.append(time.perf_counter() - self.start)
        if self.every and self.nit % self.every == 0:
            print(f"{self.name}: iteration {self.nit:6d}  {self.label} {self.fun:.6e}")
        stop = self.callback is not None and self.callback(x.copy()) is True
        self.nit += 1
        return stop

    def result(self, success, status, message, nfev):
        if self.every:
            print(f"{self.name}: {message}")
        return SamplingResult(
            x=self.x,
            fun=self.fun,
            nit=self.nit - 1,
            nfev=nfev,
            success=bool(success),
            status=status,
            message=message,
            history=np.asarray(self.history),
            trajectory=np.asarray(self.trajectory) if self.store else None,
            times=np.asarray(self.times) if self.store else None,
        )


def verbose_every(verbose):
    if isinstance(verbose, (bool, np.bool_)):
        return 100 if verbose else 0
    return check_positive_int(verbose, "verbose", minimum=0)


class EvaluationStop(Exception):
    """Raised inside the SciPy loop to end a run whose objective cannot be evaluated."""


def lbfgs(value_and_grad, x0, run, max_iter, ftol, gtol):
    """Minimise ``value_and_grad`` from ``x0`` with SciPy's L-BFGS-B; the samplers' driver.

    ``value_and_grad(x)`` takes particles of shape ``(n, d)`` in ``run.dtype`` and
    returns the objective and its float64 gradient of the same shape; it raises
    :class:`EvaluationError` where it cannot be evaluated (a target that raises,
    returns the wrong shape, or is not finite). At ``x0`` that error
    propagates (the caller's input is wrong); later in the run it ends the run
    with the last finite iterate, ``status=-1``. BLAS is held to one thread
    during the solve.
    """
    from scipy.optimize import minimize  # here: it is a third of the import time

    shape, dtype = x0.shape, run.dtype
    # Evaluated here so that a target misbehaving at x0 raises a clear error,
    # and cached because L-BFGS-B asks for the same point first.
    f0, g0 = value_and_grad(x0)
    first = [x0.ravel().astype(np.float64), f0, g0.ravel()]
    nfev = [1]
    failure = []

    def fun(z):
        if first and np.array_equal(z, first[0]):
            _, f, g = first
            first.clear()
            return f, g
        first.clear()
        x = z.reshape(shape).astype(dtype, copy=False)
        nfev[0] += 1
        try:
            f, g = value_and_grad(x)
        except EvaluationError as exc:
            failure.append(exc)
            raise EvaluationStop from exc
        return f, g.ravel()

    def on_iteration(intermediate_result):
        if run.record(intermediate_result.x, intermediate_result.fun):
            raise StopIteration

    if run.record(x0, f0):
        return run.result(False, 99, "stopped by the callback", nfev[0])
    if max_iter == 0:  # SciPy would still take one step
        return run.result(False, 1, "max_iter=0: no iteration performed", nfev[0])
    options = {"maxiter": max_iter, "maxfun": 2 * max_iter + 20, "ftol": ftol, "gtol": gtol}
    try:
        # L-BFGS-B calls BLAS on small vectors between evaluations; with BLAS's
        # threads and numba's spinning on the same cores, a 50-particle fit on 2
        # cores once ran 90 times slower.
        with single_threaded_blas():
            res = minimize(
                fun,
                first[0].copy(),
                jac=True,
                method="L-BFGS-B",
                callback=on_iteration,
                options=options,
            )
    except EvaluationStop:
        message = (
            f"stopped during iteration {run.nit}: {failure[0]}; returning the last "
            "finite particles"
        )
        return run.result(False, -1, message, nfev[0])
    if res.status == 99:  # SciPy's code for a callback that raised StopIteration
        return run.result(False, 99, "stopped by the callback", nfev[0])
    run.x = np.asarray(res.x, dtype=dtype).reshape(shape)
    run.fun = float(res.fun)
    return run.result(res.success, int(res.status), str(res.message), nfev[0])


def fixed_step(evaluate, advance, x0, run, max_iter, converged_message):
    """Iterate ``x <- advance(x, direction, k)``: the driver of the fixed-step samplers.

    ``evaluate(x)`` returns ``(fun, direction, converged)`` at particles ``x``;
    it raises :class:`EvaluationError` where it cannot be evaluated. At ``x0``
    that error propagates; later it ends the run with the last finite iterate
    and ``status=-1``, as in :func:`lbfgs`. ``advance`` returns the next
    particles in ``run.dtype``. The run stops as soon as an iterate is
    converged (``status=0``), after ``max_iter`` steps (``status=1``), or when
    the callback returns True (``status=99``). BLAS is held to one thread
    during the run.
    """
    # The targets' NumPy code calls BLAS at every step: held to one thread, as
    # in _lbfgs, so that BLAS and numba threads do not fight over the cores.
    with single_threaded_blas():
        fun, direction, converged = evaluate(x0)
        nfev = 1
        if run.record(x0, fun):
            return run.result(False, 99, "stopped by the callback", nfev)
        x = x0
        for k in range(max_iter):
            if converged:
                break
            x = advance(x, direction, k)
            try:
                if not np.isfinite(x).all():
                    raise NonFiniteError(
                        "the particles became non-finite (NaN or inf); the step is too large"
                    )
                nfev += 1
                fun, direction, converged = evaluate(x)
            except EvaluationError as exc:
                message = (
                    f"stopped during iteration {run.nit}: {exc}; returning the last finite "
                    "particles"
                )
                return run.result(False, -1, message, nfev)
            if run.record(x, fun):
                return run.result(False, 99, "stopped by the callback", nfev)
        if converged:
            return run.result(True, 0, converged_message, nfev)
        return run.result(
            False, 1, f"maximum number of iterations reached (max_iter={max_iter})", nfev
        )
