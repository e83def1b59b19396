"""kn.grid and kn.sweep: configurations, fits in this process and in a spawn pool, files.

The Dask runner is tested in test_sweep_dask.py.
"""

import multiprocessing
import os
import pickle
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

import ksdnumba as kn
from ksdnumba._sweep._store import Store
from ksdnumba._sweep._task import Shipped
from ksdnumba.datasets import two_modes

TARGETS = {"narrow": two_modes(0.1), "wide": two_modes(2.0)}
SMALL = {"n": 20, "bw": 0.3, "max_iter": 40}


def small_grid(**axes):
    return kn.grid(method="ksdd_lbfgs", **{**SMALL, **axes})


class KillsItsWorker:
    """A target that kills the process it runs in, once: the first use that creates ``flag``.

    The flag file is created atomically, so exactly one process dies however
    many start at once; the process that made the target (the test) never does.
    """

    def __init__(self, target, flag, always=False):
        self.target, self.flag, self.always = target, str(flag), always
        self.parent = os.getpid()
        self.n_dims = target.n_dims

    def _maybe_die(self):
        if os.getpid() == self.parent:
            return
        if not self.always:
            try:
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return
        os.kill(os.getpid(), signal.SIGKILL)

    def score(self, x):
        self._maybe_die()
        return self.target.score(x)

    def hvp(self, x, v):
        return self.target.hvp(x, v)


def assert_same_fits(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert ra.config == rb.config
        assert ra.error == rb.error
        np.testing.assert_array_equal(ra.x, rb.x, err_msg=str(ra.config))
        assert ra.fun == rb.fun or (np.isnan(ra.fun) and np.isnan(rb.fun))
        assert (ra.nit, ra.nfev, ra.success) == (rb.nit, rb.nfev, rb.success)


# ---------------------------------------------------------------- grid


def test_grid_is_the_product_in_a_fixed_order():
    configs = kn.grid(method="svgd", seed=range(2), bw=[0.1, 1.0], step=np.float64(0.5))
    assert configs == [
        {"method": "svgd", "seed": 0, "bw": 0.1, "step": 0.5},
        {"method": "svgd", "seed": 0, "bw": 1.0, "step": 0.5},
        {"method": "svgd", "seed": 1, "bw": 0.1, "step": 0.5},
        {"method": "svgd", "seed": 1, "bw": 1.0, "step": 0.5},
    ]
    assert type(configs[0]["step"]) is float
    assert kn.grid(seed=np.arange(3))[2] == {"seed": 2}


def test_grid_errors():
    with pytest.raises(ValueError, match="at least one axis"):
        kn.grid()
    with pytest.raises(ValueError, match="axis 'seed' is empty"):
        kn.grid(seed=[])
    with pytest.raises(TypeError, match="'bw' must be a scalar"):
        kn.grid(bw=[[0.1, 0.2]])
    with pytest.raises(TypeError, match="must be 1-D"):
        kn.grid(bw=np.ones((2, 2)))
    with pytest.raises(TypeError, match="inits=\\{'mine': f\\}"):
        kn.grid(init=[lambda n, d, rng: rng.normal(size=(n, d))])
    with pytest.raises(TypeError, match="scalar or a list of scalars, got dict"):
        kn.grid(bw={"a": 1})


# ---------------------------------------------------------------- checks before running


@pytest.mark.parametrize(
    "config, error, match",
    [
        ({"n": 10}, ValueError, "has no 'method'; valid methods are 'ksdd_lbfgs'"),
        ({"method": "lbfgs", "n": 10}, ValueError, "unknown method 'lbfgs'; valid methods"),
        (
            {"method": "ksdd_lbfgs", "target": "x", "n": 10},
            ValueError,
            "unknown target 'x'; valid targets are 'narrow', 'wide'",
        ),
        ({"method": "ksdd_lbfgs", "target": "wide"}, ValueError, "has no 'n'"),
        (
            {"method": "ksdd_lbfgs", "target": "wide", "n": 10, "init": "uniform"},
            ValueError,
            "unknown init 'uniform'; valid inits are 'normal', 'init1'",
        ),
        (
            {"method": "ksdd_lbfgs", "target": "wide", "n": 10, "bandwidth": 1.0},
            ValueError,
            "ksdd_lbfgs has no keyword 'bandwidth'; valid keys are .*'bw'",
        ),
        ({"method": "svgd", "target": "wide", "n": 10}, ValueError, "svgd needs 'step'"),
        (
            {"method": "svgd", "target": "wide", "n": 10, "step": 1.0, "store": True},
            ValueError,
            "svgd has no keyword 'store'",
        ),
        (
            {"method": "ksdd_lbfgs", "target": "wide", "n": 10.0},
            TypeError,
            "'n'\\] must be an integer, got 10.0",
        ),
        ({"method": "ksdd_lbfgs", "target": "wide", "n": 0}, ValueError, "'n'\\] must be >= 1"),
        (
            {"method": "ksdd_lbfgs", "target": "wide", "n": 10, "n_target_samples": 5},
            ValueError,
            "'mmd_lbfgs' only",
        ),
        (
            {"method": "ksdd_lbfgs", "target": "wide", "n": 10, "bw": [0.1]},
            TypeError,
            "must be a scalar",
        ),
    ],
)
def test_bad_configs_raise_before_any_fit(config, error, match):
    with pytest.raises(error, match=match):
        kn.sweep([config], TARGETS, progress=False)


def test_bad_arguments_raise():
    good = small_grid(target="wide")
    with pytest.raises(ValueError, match="unknown keep 'trajectory'; valid names are 'none'"):
        kn.sweep(good, TARGETS, keep="trajectory")
    with pytest.raises(ValueError, match="unknown client 'dask'; valid values are None"):
        kn.sweep(good, TARGETS, client="dask")
    with pytest.raises(ValueError, match="needs >= 1 worker"):
        kn.sweep(good, TARGETS, client=0)
    with pytest.raises(TypeError, match="client must be one of"):
        kn.sweep(good, TARGETS, client=True)
    with pytest.raises(TypeError, match="threads_per_fit must be None or an integer"):
        kn.sweep(good, TARGETS, threads_per_fit=1.5)
    with pytest.raises(ValueError, match="threads_per_fit must be >= 1"):
        kn.sweep(good, TARGETS, threads_per_fit=0)
    with pytest.raises(ValueError, match="unknown yardstick key 'h'; valid keys are 'kernel'"):
        kn.sweep(good, TARGETS, yardstick={"h": 1.0})
    with pytest.raises(
        ValueError,
        match="unknown yardstick kernel 'rbf'; valid names are 'gaussian', 'imq', 'linear'",
    ):
        kn.sweep(good, TARGETS, yardstick={"kernel": "rbf"})
    with pytest.raises(ValueError, match="yardstick bw must be positive"):
        kn.sweep(good, TARGETS, yardstick={"bw": 0.0})
    with pytest.raises(ValueError, match="beta must be in the open interval"):
        kn.sweep(good, TARGETS, yardstick={"kernel": "imq", "beta": 1.5})
    with pytest.raises(ValueError, match="would hide the built-in"):
        kn.sweep(good, TARGETS, inits={"normal": lambda n, d, rng: np.zeros((n, d))})
    with pytest.raises(TypeError, match="must be callable as f\\(n, d, rng\\)"):
        kn.sweep(good, TARGETS, inits={"mine": 3})
    with pytest.raises(TypeError, match="progress must be True or False"):
        kn.sweep(good, TARGETS, progress="yes")
    with pytest.raises(ValueError, match="targets is empty"):
        kn.sweep(good, {})
    with pytest.raises(TypeError, match="targets must be a dict"):
        kn.sweep(good, [two_modes()])
    with pytest.raises(ValueError, match="configs is empty"):
        kn.sweep([], TARGETS)
    with pytest.raises(ValueError, match="configs\\[0\\] and configs\\[1\\] are the same fit"):
        kn.sweep(good + good, TARGETS)
    with pytest.raises(ValueError, match="has no 'target'; valid targets are"):
        kn.sweep(kn.grid(method="ksdd_lbfgs", n=10), TARGETS)


# ---------------------------------------------------------------- what a fit computes


def test_rows_are_the_fits_of_the_methods():
    target = TARGETS["wide"]
    configs = (
        small_grid(target="wide", init=["init1", "normal"], seed=3)
        + kn.grid(method="svgd", target="wide", n=20, step=0.5, bw=0.3, max_iter=20)
        + kn.grid(method="mmd_lbfgs", target="wide", n=20, bw=0.3, max_iter=20, n_target_samples=30)
    )
    s = kn.sweep(configs, TARGETS, progress=False)
    assert len(s) == 4 and s.n_errors == 0 and s.n_reused == 0

    x0 = 0.5 * np.random.default_rng(3).standard_normal((20, 2))
    x0[:, 0] = 0.0
    direct = kn.ksdd_lbfgs(x0, target, bw=0.3, max_iter=40)
    np.testing.assert_array_equal(s[0].x, direct.x)
    assert s[0].ksd2 == pytest.approx(direct.fun, rel=1e-12, abs=1e-15)
    assert (s[0].fun, s[0].nit, s[0].nfev) == (direct.fun, direct.nit, direct.nfev)

    x0 = np.random.default_rng(3).standard_normal((20, 2))
    np.testing.assert_array_equal(s[1].x, kn.ksdd_lbfgs(x0, target, bw=0.3, max_iter=40).x)
    x0 = np.random.default_rng(0).standard_normal((20, 2))
    svgd = kn.svgd(x0, target, step=0.5, bw=0.3, max_iter=20)
    np.testing.assert_array_equal(s[2].x, svgd.x)
    samples = target.sample(30, rng=np.random.default_rng([0, 1]))
    mmd = kn.mmd_lbfgs(x0, samples, bw=0.3, max_iter=20)
    np.testing.assert_array_equal(s[3].x, mmd.x)
    # one yardstick for every method: the KSD^2 of the final particles, the fits' bw
    for row, res in zip(s[2:], (svgd, mmd), strict=True):
        assert row.fun == res.fun
        assert row.ksd2 == kn.ksd(res.x, target, bw=0.3)
    s2 = kn.sweep(configs, TARGETS, progress=False, yardstick={"bw": 1.0}, keep="none")
    assert [row.ksd2 for row in s2] == [kn.ksd(row.x, target, bw=1.0) for row in s]
    assert s2.x == [None] * 4
    # "median" is taken at the initial particles, as the fits take it
    s3 = kn.sweep(configs[1:2], TARGETS, progress=False, yardstick={"bw": "median"})
    start = np.random.default_rng(3).standard_normal((20, 2))  # configs[1]'s x0
    assert s3[0].ksd2 == kn.ksd(s[1].x, target, bw=kn.median_bandwidth(start))


def test_user_inits_and_targets_without_dimension():
    def corner(n, d, rng):
        return 2.0 + 0.1 * rng.standard_normal((n, d))

    score = kn.ScoreFunction(lambda x: -x)
    configs = kn.grid(method="ksdd_lbfgs", target="f", init="corner", n=10, d=3, max_iter=5)
    s = kn.sweep(configs, {"f": score}, inits={"corner": corner}, progress=False)
    x0 = corner(10, 3, np.random.default_rng(0))
    np.testing.assert_array_equal(s[0].x, kn.ksdd_lbfgs(x0, score, max_iter=5).x)
    bad = kn.sweep(kn.grid(method="ksdd_lbfgs", n=10, max_iter=5), {"f": score}, progress=False)
    assert "add 'd' to the configuration" in bad[0].error
    one_d = kn.sweep(
        kn.grid(method="ksdd_lbfgs", n=10, init="init1", d=1), {"f": score}, progress=False
    )
    assert one_d[0].error == (
        "ValueError: init 'init1' sets the first coordinate apart from the others and needs "
        "d >= 2, got d=1"
    )
    wrong = kn.sweep(
        kn.grid(method="ksdd_lbfgs", n=10, d=2, init="flat"),
        {"f": score},
        inits={"flat": lambda n, d, rng: np.zeros(n)},
        progress=False,
    )
    assert "init 'flat' returned shape (10,); it must return (n, d) = (10, 2)" in wrong[0].error


def test_a_bad_config_is_recorded_and_the_others_run(tmp_path):
    configs = small_grid(target="wide", bw=[0.3, -1.0, "silverman"])
    s = kn.sweep(configs, TARGETS, directory=tmp_path, progress=False)
    assert [row.error is None for row in s] == [True, False, False]
    assert s[1].error == "ValueError: bw must be positive and finite, got -1.0"
    assert s[2].error.startswith("ValueError: bw must be a positive number or 'median'")
    assert s[1].success is False and np.isnan(s[1].fun) and s[1].x is None
    assert s.n_errors == 2 and s.errors == [s[1], s[2]]
    # the error is stored: a rerun does not try the fit again
    again = kn.sweep(configs, TARGETS, directory=tmp_path, progress=False)
    assert again.n_reused == 3 and again[1].error == s[1].error


def test_keep_all_keeps_the_trajectory_and_the_files_keep_it_too(tmp_path):
    configs = small_grid(target="narrow", max_iter=10)
    s = kn.sweep(configs, TARGETS, keep="all", directory=tmp_path, progress=False)
    res = s[0].result
    assert isinstance(res, kn.SamplingResult)
    assert res.trajectory.shape == (res.nit + 1, 20, 2)
    np.testing.assert_array_equal(res.x, s[0].x)
    back = kn.sweep(configs, TARGETS, keep="all", directory=tmp_path, progress=False)
    assert back.n_reused == 1
    assert list(back[0].result) == list(res)
    for name in ("x", "history", "trajectory", "times"):
        np.testing.assert_array_equal(back[0].result[name], res[name])
    assert back[0].result.message == res.message


# ---------------------------------------------------------------- nothing lost


def test_resume_after_an_interrupted_run_recomputes_nothing_finished(tmp_path):
    configs = small_grid(target="wide", seed=range(5))
    calls = []

    def counted(n, d, rng):
        calls.append(1)
        if interrupt and len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third fit
        return rng.standard_normal((n, d))

    interrupt = True
    configs = [{**c, "init": "counted"} for c in configs]
    with pytest.raises(KeyboardInterrupt):
        kn.sweep(configs, TARGETS, directory=tmp_path, inits={"counted": counted}, progress=False)
    assert len(list(tmp_path.glob("fit-*.npz"))) == 2
    assert not list(tmp_path.glob(".*tmp"))
    interrupt, calls[:] = False, []
    s = kn.sweep(configs, TARGETS, directory=tmp_path, inits={"counted": counted}, progress=False)
    assert len(calls) == 3
    assert [row.reused for row in s] == [True, True, False, False, False]
    calls[:] = []
    whole = kn.sweep(configs, TARGETS, inits={"counted": counted}, progress=False)
    assert_same_fits(s, whole)
    final = kn.sweep(
        configs, TARGETS, directory=tmp_path, inits={"counted": counted}, progress=False
    )
    assert len(calls) == 5 and final.n_reused == 5  # only the run without directory fitted
    assert_same_fits(final, whole)


def test_nothing_starts_when_every_fit_is_on_disk(tmp_path, monkeypatch):
    from ksdnumba._sweep import _api

    configs = small_grid(target="wide", seed=range(2), max_iter=3)
    kn.sweep(configs, TARGETS, directory=tmp_path, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("a pool was started")

    monkeypatch.setattr(_api, "run_pool", fail)
    assert kn.sweep(configs, TARGETS, client=2, directory=tmp_path, progress=False).n_reused == 2


def test_a_damaged_file_is_recomputed_and_a_changed_target_is_reported(tmp_path):
    configs = small_grid(target="wide", seed=range(2))
    s = kn.sweep(configs, TARGETS, directory=tmp_path, progress=False)
    Store(tmp_path).path(s[0].key).write_bytes(b"not a zip file")
    again = kn.sweep(configs, TARGETS, directory=tmp_path, progress=False)
    assert [row.reused for row in again] == [False, True]
    assert_same_fits(again, s)
    with pytest.warns(UserWarning, match="target\\(s\\) \\['wide'\\] were stored with a target"):
        kn.sweep(configs, {**TARGETS, "wide": two_modes(1.0)}, directory=tmp_path, progress=False)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        kn.sweep(configs, TARGETS, directory=tmp_path / "a-file", progress=False)


def test_file_names_are_a_stable_hash_of_the_config(tmp_path):
    configs = small_grid(target="wide")
    s = kn.sweep(configs, TARGETS, directory=tmp_path, keep="none", progress=False)
    # the same scalars, another order and the defaults written out: the same fit
    same = [{"seed": 0, "init": "normal", **dict(reversed(list(configs[0].items())))}]
    t = kn.sweep(same, TARGETS, directory=tmp_path, keep="none", progress=False)
    assert t[0].key == s[0].key and t.n_reused == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"fit-{s[0].key}.npz"]
    # a file that keeps less than asked is not enough
    assert kn.sweep(configs, TARGETS, directory=tmp_path, progress=False).n_reused == 0


# ---------------------------------------------------------------- the table


def test_to_dataframe_keeps_integers_integer_with_missing_cells():
    pd = pytest.importorskip("pandas")
    configs = (
        kn.grid(method="ksdd_lbfgs", target="wide", n=20, bw=0.3, seed=range(2))
        + kn.grid(method="svgd", target="wide", n=20, bw=0.3, step=0.5, max_iter=30)
        + kn.grid(method="ksdd_lbfgs", target="wide", n=20, bw=-1.0, max_iter=5)
    )
    df = kn.sweep(configs, TARGETS, progress=False).to_dataframe()
    assert list(df.columns[:7]) == ["method", "target", "n", "bw", "seed", "init", "step"]
    assert df["max_iter"].dtype == pd.Int64Dtype()
    assert df["max_iter"].tolist() == [pd.NA, pd.NA, 30, 5]
    assert df["seed"].dtype == pd.Int64Dtype() and df["n"].dtype == pd.Int64Dtype()
    assert df["nit"].dtype == pd.Int64Dtype() and df["nit"].isna().tolist() == [0, 0, 0, 1]
    assert df["step"].dtype == np.float64 and df["step"].isna().sum() == 3
    assert df["success"].dtype == pd.BooleanDtype() and df["reused"].dtype == pd.BooleanDtype()
    assert df["error"].isna().tolist() == [True, True, True, False]
    assert df["ksd2"].iloc[:3].notna().all() and np.isnan(df["ksd2"].iloc[3])


def test_missing_pandas_says_which_extra(monkeypatch):
    s = kn.sweep(small_grid(target="wide", max_iter=3), TARGETS, progress=False)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="to_dataframe needs pandas: pip install 'ksdnumba\\[da"):
        s.to_dataframe()


def test_dask_is_imported_only_when_asked_for(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    configs = small_grid(target="wide", max_iter=3)
    assert kn.sweep(configs, TARGETS, progress=False).n_errors == 0
    for client in ("local", "tcp://127.0.0.1:8786"):
        with pytest.raises(
            ImportError,
            match="needs the optional dependency 'distributed': pip install 'ksdnumba\\[dask\\]'",
        ):
            kn.sweep(configs, TARGETS, client=client, progress=False)


def test_progress_bar(capsys):
    kn.sweep(small_grid(target="wide", seed=range(3), max_iter=3), TARGETS, progress=True)
    err = capsys.readouterr().err
    assert "3/3 fits" in err and err.endswith("\n")
    kn.sweep(small_grid(target="wide", seed=range(3), max_iter=3), TARGETS, progress=False)
    assert capsys.readouterr().err == ""


def test_sweep_result_is_a_sequence():
    s = kn.sweep(small_grid(target="wide", seed=range(3), max_iter=3), TARGETS, progress=False)
    assert isinstance(s[0], kn.FitResult) and s[0].fun == s[0]["fun"]
    assert [row.config["seed"] for row in s[1:]] == [1, 2]
    assert repr(s).startswith("SweepResult(3 fits: 3 ran, 0 failed, 0 reused from disk;")


# ---------------------------------------------------------------- shipping targets


def test_shipping_keeps_read_only_arrays_and_lambdas():
    target = two_modes(0.3)

    def flags(t):
        return {k: v.flags.writeable for k, v in vars(t).items() if isinstance(v, np.ndarray)}

    assert flags(target)["means"] is False
    assert flags(pickle.loads(pickle.dumps(target, protocol=4)))["means"] is True  # the pitfall
    assert flags(pickle.loads(Shipped(target).payload)) == flags(target)
    score = kn.ScoreFunction(lambda x: -2.0 * x)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(score)
    shipped = pickle.loads(pickle.dumps(Shipped(score)))
    np.testing.assert_array_equal(shipped.load().score(np.ones((2, 2))), -2.0 * np.ones((2, 2)))
    assert shipped.load() is shipped.load()  # once per process


def test_fits_in_one_process_run_one_at_a_time():
    # Two fits at once in one process abort it under numba's workqueue layer: a Dask
    # worker with several threads must run its fits one after the other.
    import threading
    import time

    from ksdnumba._sweep._task import run_fit

    active, most = [0], [0]

    class Watched:
        n_dims = 2

        def score(self, x):
            active[0] += 1
            most[0] = max(most[0], active[0])
            time.sleep(0.002)
            active[0] -= 1
            return -x

    config = {
        "method": "svgd",
        "target": "w",
        "n": 10,
        "step": 0.1,
        "max_iter": 20,
        "init": "normal",
        "seed": 0,
    }
    records = []
    threads = [
        threading.Thread(
            target=lambda: records.append(run_fit(config, Watched(), {}, "x", None, 1))
        )
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["error"] for r in records] == [None] * 3
    assert most[0] == 1


# ---------------------------------------------------------------- the process pool


@pytest.mark.slow
def test_pool_is_bit_identical_to_serial_and_reruns_a_killed_workers_fit(tmp_path):
    flag = tmp_path / "killed"
    targets = {"killer": KillsItsWorker(two_modes(0.3), flag), "f": kn.ScoreFunction(lambda x: -x)}
    configs = small_grid(target="killer", init=["init1", "init3"], seed=range(3)) + kn.grid(
        method="ksdd_lbfgs", target="f", n=10, d=2, init="ring", max_iter=5
    )
    inits = {
        "ring": lambda n, d, rng: np.c_[np.cos(rng.uniform(0, 6, n)), np.sin(rng.uniform(0, 6, n))]
    }
    pool = kn.sweep(
        configs, targets, client=2, inits=inits, directory=tmp_path / "fits", progress=False
    )
    assert flag.exists()  # a worker died
    assert pool.n_errors == 0
    serial = kn.sweep(configs, targets, inits=inits, progress=False)
    assert_same_fits(pool, serial)
    import numba

    from ksdnumba._sweep._local import available_cores

    assert {row.threads for row in serial} == {numba.get_num_threads()}
    assert {row.threads for row in pool} == {max(1, available_cores() // 2)}
    assert len(list((tmp_path / "fits").glob("fit-*.npz"))) == len(configs)


@pytest.mark.slow
def test_pool_records_a_fit_that_always_kills_its_worker(tmp_path):
    targets = {
        "killer": KillsItsWorker(two_modes(0.3), tmp_path / "flag", always=True),
        "wide": TARGETS["wide"],
    }
    configs = small_grid(target=["killer", "wide"])
    s = kn.sweep(configs, targets, client=1, directory=tmp_path, progress=False)
    assert s[0].error == (
        "WorkerDied: the worker process died 3 times while running this fit "
        f"(last exit code {-signal.SIGKILL})"
    )
    assert s[1].error is None
    # lost to the machinery, not to the fit: not stored, tried again next time
    assert [p.name for p in tmp_path.glob("fit-*.npz")] == [f"fit-{s[1].key}.npz"]


def test_pool_needs_targets_that_pickle():
    import threading

    class Locked:
        def __init__(self):
            self.lock = threading.Lock()
            self.n_dims = 2

        def score(self, x):
            return -x

    configs = kn.grid(method="svgd", n=10, step=0.1, max_iter=2)
    assert kn.sweep(configs, {"t": Locked()}, progress=False).n_errors == 0  # here: no pickle
    with pytest.raises(
        TypeError,
        match="target 't' cannot be sent to worker processes, even "
        "with cloudpickle: TypeError: cannot pickle",
    ):
        kn.sweep(configs, {"t": Locked()}, client=2, progress=False)


def test_pool_refuses_to_start_from_a_child_importing_the_script(monkeypatch):
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match='under `if __name__ == "__main__":`'):
        kn.sweep(small_grid(target="wide"), TARGETS, client=2, progress=False)


@pytest.mark.slow
def test_a_script_without_main_guard_gets_a_clear_error(tmp_path):
    import subprocess

    script = tmp_path / "unguarded.py"
    script.write_text(
        "import ksdnumba as kn\n"
        "from ksdnumba.datasets import two_modes\n"
        "kn.sweep(kn.grid(method='ksdd_lbfgs', n=10, max_iter=2), {'t': two_modes()},\n"
        "         client=1, progress=False)\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(kn.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode != 0
    assert "exited with code 1 while starting" in proc.stderr
    assert 'if __name__ == "__main__":' in proc.stderr


# ---------------------------------------------------------------- the example


def _run_statistics_example(tmp_path, *args):
    script = Path(__file__).resolve().parent.parent / "examples" / "plot_minima_statistics.py"
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(kn.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    png = tmp_path / "plot_minima_statistics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    return proc.stdout


@pytest.mark.slow
def test_example_plot_minima_statistics_in_a_pool(tmp_path):
    # The gallery runs the default (20 seeds, in this process); 2 seeds here, in a pool,
    # whose workers import the script again: its main guard is what is tested.
    pytest.importorskip("matplotlib")
    out = _run_statistics_example(tmp_path, "2", "--seeds", "2", "--directory", "fits")
    assert "18 fits, 0 failed, 0 read from disk" in out
    assert len(list((tmp_path / "fits").glob("fit-*.npz"))) == 18
    cells = [line for line in out.splitlines() if line.startswith("variance")]
    assert len(cells) == 9, out
    # particles started on the axis never leave it: the mixture's score has no x_0 part there
    assert all(
        "init1: on the axis   50 of 50 (median), all 50 in 100%" in line
        for line in cells
        if "init1" in line
    ), out


def test_the_first_fit_of_each_group_runs_first():
    # the warm-up: one fit per (method, target, kernel, dtype, backend) fills numba's
    # cache, one at a time, before the rest of its group is handed out
    from ksdnumba._sweep._api import _groups
    from ksdnumba._sweep._configs import check_configs
    from ksdnumba._sweep._local import WarmUpQueue

    configs = check_configs(
        small_grid(target=["narrow", "wide"], seed=range(2))
        + kn.grid(method="svgd", target="wide", n=20, step=0.5, seed=range(2)),
        TARGETS,
        {},
    )
    groups = _groups(list(range(len(configs))), configs)
    assert [[i for i, _ in g] for g in groups] == [[0, 1], [2, 3], [4, 5]]
    assert [[i for i, _ in g] for g in _groups([1, 3, 4, 5], configs)] == [[1], [3], [4, 5]]

    queue = WarmUpQueue(groups)
    first = queue.take()
    assert first[0] == 0 and queue.take() is None  # one leader at a time, nothing else yet
    queue.put_back(first)  # its worker died
    assert queue.take()[0] == 0
    queue.finished(0)
    assert [queue.take()[0], queue.take()[0]] == [2, 1]  # the next leader, then group 0
    assert queue.take() is None
    queue.finished(2)
    queue.finished(1)
    assert [queue.take()[0], queue.take()[0]] == [4, 3]
    queue.finished(4)
    assert queue.take()[0] == 5 and not queue
