"""The samplers' solver drivers: SciPy's L-BFGS-B and fixed-step iterations.

:class:`Run` keeps the book of a run (history, stored iterates, the callback,
the verbose log, the progress bar); :func:`lbfgs` and :func:`fixed_step` drive
it, hold BLAS to one thread during the solve, and end a run cleanly, with its
last finite particles, when the objective can no longer be evaluated or the user
interrupts it (Ctrl-C). Every sampler (:mod:`ksdnumba.descent`,
:mod:`ksdnumba.contenders`) goes through them.

Status codes of a :class:`ksdnumba.SamplingResult`: SciPy's for L-BFGS-B (0
converged, 1 ``max_iter`` reached, 2 stopped otherwise), 0 and 1 likewise for the
fixed-step samplers, 99 stopped by the callback, -1 the objective could not be
evaluated, -2 interrupted.
"""

import contextlib
import contextvars
import time
import warnings

import numpy as np

from ._progress import check_progress, progress_bar
from ._result import SamplingResult
from ._validation import EvaluationError, NonFiniteError, check_positive_int
from .kernels._cpu._threads import single_threaded_blas

INTERRUPTED = -2
STOPPED_BY_CALLBACK = 99
EVALUATION_FAILED = -1

# False inside kn.sweep: an interrupt must stop the whole sweep, not end one fit
# that would then be written down as finished.
_KEEP_INTERRUPTED = contextvars.ContextVar("ksdnumba_keep_interrupted", default=True)


@contextlib.contextmanager
def interrupts_propagate():
    """Within this block, Ctrl-C in a sampler raises KeyboardInterrupt instead of
    returning the run so far (the sweeps' fits)."""
    token = _KEEP_INTERRUPTED.set(False)
    try:
        yield
    finally:
        _KEEP_INTERRUPTED.reset(token)


class Run:
    """Book-keeping shared by the samplers: history, stored iterates, callback, log, bar."""

    def __init__(
        self,
        shape,
        dtype,
        store,
        callback,
        verbose,
        name,
        label="objective",
        progress=False,
        max_iter=0,
    ):
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
        self.bar = progress_bar(check_progress(progress), max_iter, name, unit="it")

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
        if self.nit > 0:
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.label} {self.fun:.3e}")
        self.nit += 1
        return self.callback is not None and self.callback(x.copy()) is True

    def result(self, success, status, message, nfev):
        self.bar.close()
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

    def interrupted(self, nfev):
        """The run so far, with a warning; or KeyboardInterrupt again inside a sweep."""
        self.bar.close()
        if not _KEEP_INTERRUPTED.get() or self.x is None:
            raise KeyboardInterrupt
        message = (
            f"interrupted by the user (KeyboardInterrupt) during iteration {self.nit}; "
            "returning the last particles"
        )
        warnings.warn(f"{self.name}: {message}", RuntimeWarning, stacklevel=4)
        return self.result(False, INTERRUPTED, message, nfev)


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
    with the last finite iterate, ``status=-1``. A KeyboardInterrupt ends it
    with the last iterate, ``status=-2`` and a warning. BLAS is held to one
    thread during the solve.
    """
    from scipy.optimize import minimize  # here: it is a third of the import time

    shape, dtype = x0.shape, run.dtype
    # Evaluated here so that a target misbehaving at x0 raises a clear error,
    # and cached because L-BFGS-B asks for the same point first.
    try:
        f0, g0 = value_and_grad(x0)
    except KeyboardInterrupt:
        run.bar.close()
        raise
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

    try:
        if run.record(x0, f0):
            return run.result(False, STOPPED_BY_CALLBACK, "stopped by the callback", nfev[0])
        if max_iter == 0:  # SciPy would still take one step
            return run.result(False, 1, "max_iter=0: no iteration performed", nfev[0])
        options = {"maxiter": max_iter, "maxfun": 2 * max_iter + 20, "ftol": ftol, "gtol": gtol}
        # L-BFGS-B calls BLAS on small vectors between evaluations: BLAS's threads
        # and numba's would spin on the same cores (see kernels/_cpu/_threads.py).
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
            f"stopped during iteration {run.nit}: {failure[0]}; returning the last finite particles"
        )
        return run.result(False, EVALUATION_FAILED, message, nfev[0])
    except KeyboardInterrupt:
        return run.interrupted(nfev[0])
    if res.status == 99:  # SciPy's code for a callback that raised StopIteration
        return run.result(False, STOPPED_BY_CALLBACK, "stopped by the callback", nfev[0])
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
    converged (``status=0``), after ``max_iter`` steps (``status=1``), when the
    callback returns True (``status=99``), or on a KeyboardInterrupt
    (``status=-2``, with a warning). BLAS is held to one thread during the run.
    """
    # The targets' NumPy code calls BLAS at every step: held to one thread, as
    # in lbfgs, so that BLAS and numba threads do not fight over the cores.
    nfev = 0
    with single_threaded_blas():
        try:
            fun, direction, converged = evaluate(x0)
        except KeyboardInterrupt:
            run.bar.close()
            raise
        nfev = 1
        try:
            if run.record(x0, fun):
                return run.result(False, STOPPED_BY_CALLBACK, "stopped by the callback", nfev)
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
                        f"stopped during iteration {run.nit}: {exc}; returning the last "
                        "finite particles"
                    )
                    return run.result(False, EVALUATION_FAILED, message, nfev)
                if run.record(x, fun):
                    return run.result(False, STOPPED_BY_CALLBACK, "stopped by the callback", nfev)
        except KeyboardInterrupt:
            return run.interrupted(nfev)
        if converged:
            return run.result(True, 0, converged_message, nfev)
        return run.result(
            False, 1, f"maximum number of iterations reached (max_iter={max_iter})", nfev
        )
