"""The Dask runner: the fits as tasks of a ``distributed`` scheduler.

Imported only when a sweep is asked to run on Dask; ``import ksdnumba`` never
imports Dask. What this runner does, and why:

- every key carries a token drawn for this sweep, so a second sweep on the same
  client never receives the results of the first (Dask reuses a finished key);
- targets travel as small tasks of their own (not ``client.scatter``): when the
  only worker holding one dies, Dask recomputes it instead of cancelling every fit
  that needs it;
- the task function lives in ksdnumba and the same version must run everywhere
  (the scheduler unpickles the tasks too): checked on the scheduler and on every
  worker before anything is submitted;
- numba's thread count is set inside each task (the worker's own settings do not
  reach numba), to the worker's number of threads by default;
- the first fit of each group runs on one worker of each host before the rest of
  its group fans out, so the workers of a host do not all compile the same
  kernels at once.
"""

from __future__ import annotations

import threading
import uuid
import warnings

from ._local import available_cores, check_not_bootstrapping
from ._task import environment, failed, run_fit

EXTRA_HINT = (
    "pip install 'ksdnumba[dask]' (from a clone: python -m pip install -e \".[dask]\"), "
    "which installs dask[distributed] and pandas"
)


def import_distributed():
    """Import ``distributed``, or raise an ImportError that names the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            f"running a sweep on Dask needs the optional dependency 'distributed': {EXTRA_HINT}"
        ) from exc
    return distributed


def is_client(obj) -> bool:
    """Whether ``obj`` looks like a ``distributed.Client`` (checked without importing Dask)."""
    return all(hasattr(obj, name) for name in ("submit", "scheduler_info", "run"))


def connect(client):
    """``(client, close)``: a Client for ``client``, and a function that closes what we opened."""
    distributed = import_distributed()
    if isinstance(client, str) and client == "local":
        check_not_bootstrapping("kn.sweep(client='local')")
        # The scheduler serves HTTP even without a dashboard, on 8787 unless told:
        # a free port instead, so that a second cluster does not warn about it.
        cluster = distributed.LocalCluster(
            n_workers=available_cores(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
        )
        c = distributed.Client(cluster)

        def close():
            c.close()
            cluster.close()

        return c, close
    if isinstance(client, str):
        c = distributed.Client(client)
        return c, c.close
    return client, lambda: None


def worker_environment():
    """What :func:`check_workers` compares, computed on a worker."""
    return environment()


def _problem(address, env, here, where):
    """What is wrong with the environment ``env`` of ``address``, or None."""
    if isinstance(env, BaseException):
        what = f"{type(env).__name__}: {env}" if type(env) is not Exception else str(env)
        return (
            f"ksdnumba cannot run on the Dask {where} {address}: {what}. Install ksdnumba "
            f"{here['ksdnumba']} there, in its Python environment (the same version as here)"
        )
    if env["ksdnumba"] != here["ksdnumba"]:
        return (
            f"the Dask {where} {address} runs ksdnumba {env['ksdnumba']}, this process "
            f"runs {here['ksdnumba']}: install the same version everywhere"
        )
    return None


def check_workers(client, timeout: float = 60.0) -> dict:
    """Check that the scheduler and every worker run this ksdnumba; return the workers' info.

    The scheduler unpickles the tasks, so it needs the package too.
    """
    address = client.scheduler.address
    here = environment()
    try:
        env = client.run_on_scheduler(worker_environment)
    except Exception as exc:
        env = exc
    problem = _problem(address, env, here, "scheduler")
    if problem:
        raise RuntimeError(problem)
    if not client.scheduler_info()["workers"]:
        try:
            client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            raise RuntimeError(
                f"no Dask worker joined the scheduler {address} within {timeout:.0f} s; "
                f"start some with `dask worker {address}`"
            ) from None
    found = client.run(worker_environment, on_error="return")
    for worker, env in found.items():
        problem = _problem(worker, env, here, "worker")
        if problem:
            raise RuntimeError(problem)
        if env["source"] != here["source"]:
            warnings.warn(
                f"the Dask worker {worker} runs ksdnumba {env['ksdnumba']} from sources that "
                "differ from this process's (an edited checkout?); results may differ",
                RuntimeWarning,
                stacklevel=4,
            )
    return client.scheduler_info()["workers"]


def ship(obj):
    """The task that holds a shipped target or initialisation on the cluster."""
    return obj


def dask_fit(config, target, inits, keep, yardstick, threads):
    """A fit as a Dask task: numba threads default to the worker's thread count."""
    if threads is None:
        from distributed import get_worker

        threads = get_worker().state.nthreads
    return run_fit(config, target, inits, keep, yardstick, threads)


def run_dask(groups, job, client, on_done, progress: bool) -> None:
    """Run the fits on ``client``'s cluster, each group's leader first on one worker per host.

    The leaders all go to one worker (which runs them one at a time); the
    same fits run on one worker of every other host, their results dropped, to
    fill those hosts' caches. The rest of a group is submitted once its leader
    and those warm-ups have finished.
    """
    distributed = import_distributed()
    workers = check_workers(client)
    token = uuid.uuid4().hex[:12]
    keys = job["keys"]
    shipped = {
        name: client.submit(ship, obj, key=f"ksdnumba-target-{name}-{token}", pure=False)
        for name, obj in job["targets"].items()
    }
    inits = job["inits"]
    if inits:
        inits = client.submit(ship, inits, key=f"ksdnumba-inits-{token}", pure=False)
    args = (inits, job["keep"], job["yardstick"], job["threads"])

    def submit(config, key, worker=None):
        where = {"workers": [worker], "allow_other_workers": True} if worker else {}
        return client.submit(
            dask_fit, config, shipped[config["target"]], *args, key=key, pure=False, **where
        )

    hosts = {}
    for address, info in sorted(workers.items()):
        hosts.setdefault(info.get("host", address), address)
    first, *others = hosts.values()
    fits, warm, waiting, rest = {}, {}, {}, []
    running = distributed.as_completed()
    bar = None
    try:
        for g, group in enumerate(groups):
            index, config = group[0]
            f = submit(config, f"ksdnumba-fit-{keys[index]}-{token}", first)
            fits[f.key] = (index, g, f)
            for h, address in enumerate(others):
                w = submit(config, f"ksdnumba-warm-{keys[index]}-{h}-{token}", address)
                warm[w.key] = (g, w)
                running.add(w)
            running.add(f)
            waiting[g] = 1 + len(others)
        released = 0
        for future in running:
            key = future.key
            if key in warm:
                g, _ = warm.pop(key)
                leader = True
            else:
                index, g, _ = fits.pop(key)
                leader = index == groups[g][0][0]
                if future.status == "finished":
                    on_done(index, future.result(), True)
                else:  # the task itself never raises: Dask lost it (KilledWorker, cancelled)
                    exc = future.exception()
                    on_done(index, failed(f"{type(exc).__name__}: {exc}"), False)
            if leader:  # the rest stay referenced by `rest` until the progress bar is done
                future.release()
            else:
                continue
            waiting[g] -= 1
            if waiting[g]:
                continue
            for index, config in groups[g][1:]:
                f = submit(config, f"ksdnumba-fit-{keys[index]}-{token}")
                fits[f.key] = (index, g, f)
                rest.append(f)
                running.add(f)
            released += 1
            if released == len(groups) and progress and rest:
                bar = _progress_bar(distributed, rest)
        if bar is not None:
            bar.join(timeout=5.0)
    except BaseException:
        client.cancel([f for *_, f in fits.values()] + [w for _, w in warm.values()])
        raise
    finally:
        rest.clear()
        client.cancel(list(shipped.values()) + ([inits] if not isinstance(inits, dict) else []))


def _progress_bar(distributed, futures):
    """Dask's own progress bar, drawn by a thread of its own while this one collects."""

    def draw():
        try:
            distributed.progress(futures, notebook=False)
        except Exception:  # a bar that fails must not fail the sweep
            pass

    thread = threading.Thread(target=draw, daemon=True, name="ksdnumba-sweep-progress")
    thread.start()
    return thread
