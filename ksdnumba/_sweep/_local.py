"""The embedded runners: in this process, or in a pool of spawned worker processes.

The pool is built on :mod:`multiprocessing` with the ``spawn`` start method, never
``fork``: once numba's OpenMP threading layer has run in the parent, a forked
child aborts ("fork() called from a process already using GNU OpenMP"). The
parent talks to each worker through its own pipe and knows which fit each one
runs, so when a worker dies its fit, and only its fit, is run again.
"""

from __future__ import annotations

import os
import pickle
import time
from collections import deque

from ._task import failed, run_fit

# A fit whose worker dies this many times is recorded as an error (Dask's default
# allows 3 deaths too), so that a fit that always crashes its process cannot loop.
MAX_DEATHS = 3


def available_cores() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_not_bootstrapping(what: str) -> None:
    """Raise when called while a spawned child imports the user's script.

    A script that starts worker processes outside ``if __name__ == "__main__":``
    runs again, top to bottom, in every child; without this check each child
    would try to start a pool of its own.
    """
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            f"{what} was called while a worker process was importing your script; "
            'put the code that runs the sweep under `if __name__ == "__main__":`'
        )


def run_in_process(groups, job, on_done) -> None:
    """Run the fits one after the other in this process, in the order of the configurations."""
    for index, config in sorted(task for group in groups for task in group):
        record = run_fit(
            config,
            job["targets"][config["target"]],
            job["inits"],
            job["keep"],
            job["yardstick"],
            job["threads"],
        )
        on_done(index, record, True)


class WarmUpQueue:
    """The fits of a sweep, handed out so that numba's cache is filled once.

    ``groups`` are lists of ``(index, config)`` that compile the same kernels;
    the first of each is its leader. Leaders are handed out one at a time, and
    the rest of a group only once its leader has finished: with an empty cache,
    one process compiles each kernel while the others wait or run fits of groups
    already compiled, instead of every worker compiling the same kernels at once.
    """

    def __init__(self, groups):
        self.leaders = deque(group[0] for group in groups)
        self.rest = [deque(group[1:]) for group in groups]
        self.group_of = {index: g for g, group in enumerate(groups) for index, _ in group}
        self.unfinished_leaders = {group[0][0] for group in groups}
        self.released: list[int] = []
        self.leader_running = False

    def __bool__(self) -> bool:
        return bool(self.leaders) or any(self.rest)

    def take(self):
        """The next task to run, or None when every pending one must wait for a leader."""
        if not self.leader_running and self.leaders:
            self.leader_running = True
            return self.leaders.popleft()
        for g in self.released:
            if self.rest[g]:
                return self.rest[g].popleft()
        return None

    def finished(self, index: int) -> None:
        """A task is done, or given up: a finished leader releases its group."""
        if index in self.unfinished_leaders:
            self.unfinished_leaders.discard(index)
            self.leader_running = False
            self.released.append(self.group_of[index])

    def put_back(self, task) -> None:
        """A task whose worker died runs again, first."""
        if task[0] in self.unfinished_leaders:
            self.leaders.appendleft(task)
            self.leader_running = False
        else:
            self.rest[self.group_of[task[0]]].appendleft(task)


def _worker_main(conn, payload: bytes) -> None:
    """A pool worker: receive ``(index, config)``, send back ``(index, record)``; None ends it."""
    try:
        job = pickle.loads(payload)
        conn.send(("ready", os.getpid()))
        while True:
            message = conn.recv()
            if message is None:
                return
            index, config = message
            record = run_fit(
                config,
                job["targets"][config["target"]],
                job["inits"],
                job["keep"],
                job["yardstick"],
                job["threads"],
            )
            conn.send(("done", index, record))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return  # the parent is gone or stopping: nothing to report to


class _Worker:
    def __init__(self, context, payload):
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=_worker_main, args=(child, payload), daemon=True, name="ksdnumba-sweep-worker"
        )
        self.process.start()
        child.close()
        self.ready = False
        self.task = None


def run_pool(groups, job, n_workers: int, on_done) -> None:
    """Run the fits in ``n_workers`` spawned processes, warming numba's cache first.

    Fits are handed out by a :class:`WarmUpQueue`. A worker that dies has its
    fit handed to a fresh worker; after :data:`MAX_DEATHS` deaths the fit is
    recorded as failed.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    check_not_bootstrapping("kn.sweep(client=<int>)")
    context = multiprocessing.get_context("spawn")
    payload = pickle.dumps(job, protocol=5)
    queue = WarmUpQueue(groups)
    deaths: dict[int, int] = {}
    n_tasks = sum(len(group) for group in groups)
    workers = [_Worker(context, payload) for _ in range(min(n_workers, n_tasks))]
    try:
        while queue or any(w.task is not None for w in workers):
            for w in workers:
                if w.ready and w.task is None:
                    task = queue.take()
                    if task is None:
                        break
                    w.task = task
                    w.conn.send(task)
            wait([w.conn for w in workers] + [w.process.sentinel for w in workers])
            for w in list(workers):
                alive = _receive(w, on_done, queue)
                if alive and w.process.is_alive():
                    continue
                w.process.join()
                workers.remove(w)
                _bury(w, queue, deaths, on_done)
                if queue and len(workers) < n_workers:
                    workers.append(_Worker(context, payload))
    finally:
        _stop(workers)


def _receive(w, on_done, queue) -> bool:
    """Take every message a worker has sent; False if its pipe is closed."""
    try:
        while w.conn.poll():
            message = w.conn.recv()
            if message[0] == "ready":
                w.ready = True
            else:
                _, index, record = message
                w.task = None
                queue.finished(index)
                on_done(index, record, True)
    except (EOFError, OSError):
        return False
    return True


def _bury(w, queue, deaths, on_done) -> None:
    code = w.process.exitcode
    if not w.ready:
        raise RuntimeError(
            f"a sweep worker process exited with code {code} while starting, before it "
            "could run a fit. If your script calls kn.sweep at module level, put that code "
            'under `if __name__ == "__main__":` (each worker imports the script); '
            "otherwise run with client=None to see the error in this process"
        )
    if w.task is None:
        return
    index, config = w.task
    deaths[index] = deaths.get(index, 0) + 1
    if deaths[index] < MAX_DEATHS:
        queue.put_back(w.task)
        return
    queue.finished(index)
    on_done(
        index,
        failed(
            f"WorkerDied: the worker process died {deaths[index]} times while running this fit "
            f"(last exit code {code})"
        ),
        False,
    )


def _stop(workers) -> None:
    """Tell the workers to exit; do not wait for an interpreter to wind down.

    A worker that has been told exits on its own (about a second for numba and
    SciPy to unload); as daemon processes, any still alive when this process
    exits are ended by :mod:`multiprocessing`. A worker busy with a fit (Ctrl-C)
    gets a moment to finish, then is terminated.
    """
    for w in workers:
        try:
            w.conn.send(None)
        except (OSError, ValueError):
            pass
    busy = [w for w in workers if w.task is not None]
    deadline = time.monotonic() + 2.0
    for w in busy:
        w.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if w.process.is_alive():
            w.process.terminate()
            w.process.join()
    for w in workers:
        w.conn.close()
