"""kn.sweep on Dask: one 2-worker LocalCluster for the module (it takes seconds to start)."""

import threading

import pytest

import ksdnumba as kn
from ksdnumba._sweep import _dask
from ksdnumba.datasets import two_modes

distributed = pytest.importorskip("distributed")

from test_sweep import TARGETS, KillsItsWorker, assert_same_fits, small_grid  # noqa: E402

pytestmark = pytest.mark.slow  # each test starts a Dask cluster


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_serial_pool_and_dask_give_bit_identical_particles(client, tmp_path):
    configs = small_grid(
        target=["narrow", "wide"], init=["init1", "init2"], seed=range(2)
    ) + kn.grid(method="svgd", target="wide", n=20, step=0.5, bw=0.3, max_iter=20)
    serial = kn.sweep(configs, TARGETS, progress=False)
    on_dask = kn.sweep(configs, TARGETS, client=client, directory=tmp_path, progress=False)
    assert on_dask.n_errors == 0
    assert_same_fits(on_dask, serial)
    assert_same_fits(kn.sweep(configs, TARGETS, client=2, progress=False), serial)
    assert len(list(tmp_path.glob("fit-*.npz"))) == len(configs)
    # by scheduler address, resumed from the files: nothing runs again
    again = kn.sweep(
        configs, TARGETS, client=client.scheduler.address, directory=tmp_path, progress=False
    )
    assert again.n_reused == len(configs)
    assert_same_fits(again, serial)


def test_two_sweeps_on_one_client_do_not_mix(client):
    configs = small_grid(seed=range(3), bw=[0.3, -1.0])
    first, second = {"t": two_modes(0.3)}, {"t": two_modes(2.0)}
    out = {}

    def run(name, targets):
        out[name] = kn.sweep(configs, targets, client=client, progress=False)

    threads = [
        threading.Thread(target=run, args=("first", first)),
        threading.Thread(target=run, args=("second", second)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert_same_fits(out["first"], kn.sweep(configs, first, progress=False))
    assert_same_fits(out["second"], kn.sweep(configs, second, progress=False))
    assert [row.success for row in out["second"]][1::2] == [False] * 3


def test_a_killed_workers_fits_are_redone(client, tmp_path):
    flag = tmp_path / "killed"
    targets = {
        "killer": KillsItsWorker(two_modes(0.3), flag),
        "lambda": kn.ScoreFunction(lambda x: -x),
    }
    configs = small_grid(target="killer", init=["init1", "init3"], seed=range(3)) + kn.grid(
        method="ksdd_lbfgs", target="lambda", n=10, d=2, max_iter=5
    )
    s = kn.sweep(configs, targets, client=client, progress=False)
    assert flag.exists()  # one worker died
    assert s.n_errors == 0
    assert_same_fits(s, kn.sweep(configs, targets, progress=False))
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it, for the next tests


def test_workers_with_another_ksdnumba_are_refused(client, monkeypatch):
    here = _dask.environment()
    monkeypatch.setattr(_dask, "environment", lambda: {**here, "ksdnumba": "0.0.1"})
    with pytest.raises(
        RuntimeError,
        match="runs ksdnumba 0.1.0.dev0, this process runs 0.0.1: "
        "install the same version everywhere",
    ):
        kn.sweep(small_grid(target="wide"), TARGETS, client=client, progress=False)
    monkeypatch.setattr(_dask, "environment", lambda: {**here, "source": "edited"})
    with pytest.warns(RuntimeWarning, match="from sources that differ"):
        kn.sweep(small_grid(target="wide", seed=5), TARGETS, client=client, progress=False)
    monkeypatch.setattr(_dask, "environment", lambda: here)

    def missing():
        raise ModuleNotFoundError("No module named 'ksdnumba'")

    # the scheduler unpickles the tasks: it needs ksdnumba too (this one runs here, in
    # this process, so the function is replaced here)
    monkeypatch.setattr(_dask, "worker_environment", missing)
    with pytest.raises(
        RuntimeError,
        match="ksdnumba cannot run on the Dask scheduler tcp://"
        ".*: ModuleNotFoundError: No module named 'ksdnumba'. "
        "Install ksdnumba 0.1.0.dev0 there",
    ):
        kn.sweep(small_grid(target="wide"), TARGETS, client=client, progress=False)


def test_the_same_sources_give_no_warning(client, recwarn):
    kn.sweep(small_grid(target="wide", seed=6), TARGETS, client=client, progress=False)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_numba_threads_are_set_inside_each_task(client):
    configs = small_grid(target="wide", seed=range(2), max_iter=3)
    numba_max = min(client.run(lambda: __import__("numba").config.NUMBA_NUM_THREADS).values())
    # the workers have one thread each: one numba thread per fit
    assert [row.threads for row in kn.sweep(configs, TARGETS, client=client, progress=False)] == [
        1,
        1,
    ]
    s = kn.sweep(configs, TARGETS, client=client, threads_per_fit=2, progress=False)
    assert [row.threads for row in s] == [min(2, numba_max)] * 2
    assert_same_fits(s, kn.sweep(configs, TARGETS, progress=False))


def test_local_cluster_with_dasks_progress_bar(capsys):
    configs = small_grid(target="wide", seed=range(3), max_iter=5)
    s = kn.sweep(configs, TARGETS, client="local", progress=True)
    assert s.n_errors == 0
    assert_same_fits(s, kn.sweep(configs, TARGETS, progress=False))
    captured = capsys.readouterr()
    assert "100% Completed" in captured.out  # Dask's bar, not ours
    assert "sweep [" not in captured.err
