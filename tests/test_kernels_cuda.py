"""The CUDA kernels against the CPU kernels, and the ``backend`` option end to end.

In CI these run in numba's CUDA simulator (tests/conftest.py sets
``NUMBA_ENABLE_CUDASIM=1`` unless the environment says otherwise), which executes
every thread in Python: sizes stay small (n <= 21), and small tiles (8 partners)
make even those cross several tiles, a partial last tile, and several partner
splits. ``NUMBA_ENABLE_CUDASIM=0 python -m pytest tests/test_kernels_cuda.py``
runs the same tests on a real GPU.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from numba import config

import ksdnumba as kn
from ksdnumba.kernels import _backend, _cpu
from ksdnumba.kernels._kinds import GAUSSIAN

SIMULATOR = bool(config.ENABLE_CUDASIM)
if not SIMULATOR and not _backend._cuda_available():
    pytest.skip(
        f"numba's CUDA simulator is off, and numba cannot use a GPU here "
        f"({_backend._cuda_status()[1]})",
        allow_module_level=True,
    )

from ksdnumba.kernels import _cuda  # noqa: E402  (imports numba.cuda)
from ksdnumba.kernels._cuda import _compat, _launch, _sums  # noqa: E402

pytestmark = pytest.mark.slow  # numba's CUDA simulator runs the kernels as Python

RTOL64 = 1e-10
RTOL32 = 1e-4
# (n, d): one particle; a partial tile; several tiles with d = 1.
SHAPES = [(1, 2), (13, 3), (20, 1)]
# (tile, n_split): one block of partners per row; tiles split in 3; the defaults.
LAUNCHES = [(8, 1), (8, 3), (None, None)]
STEIN = {
    "gaussian": (_cpu.gaussian_stein_sums, _cuda.gaussian_stein_sums, {}),
    "imq_half": (_cpu.imq_stein_sums, _cuda.imq_stein_sums, {"beta": 0.5}),
    "imq_0.3": (_cpu.imq_stein_sums, _cuda.imq_stein_sums, {"beta": 0.3}),
}
TOTALS = {
    "gaussian": (_cpu.gaussian_stein_total, _cuda.gaussian_stein_total, {}),
    "imq_half": (_cpu.imq_stein_total, _cuda.imq_stein_total, {"beta": 0.5}),
    "imq_0.3": (_cpu.imq_stein_total, _cuda.imq_stein_total, {"beta": 0.3}),
}


@pytest.fixture(autouse=True)
def _small_blocks_in_the_simulator(monkeypatch):
    """The simulator runs one Python thread per GPU thread: keep blocks small."""
    if SIMULATOR:
        monkeypatch.setattr(_launch, "TILE", 16)
        monkeypatch.setattr(_launch, "REDUCE_THREADS", 16)
        monkeypatch.setattr(_launch, "POINT_THREADS", 16)
        monkeypatch.setattr(_launch, "MATRIX_ROWS", 4)
        monkeypatch.setattr(_launch, "MATRIX_COLS", 4)
        monkeypatch.setattr(_launch, "MATRIX_PARTNERS", 8)


def test_the_simulator_is_on_unless_asked_off():
    """conftest.py must set the variable before numba is first imported."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        assert SIMULATOR


def _problem(n, d, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, -x + 0.5 * rng.normal(size=(n, d))


def _assert_close(actual, expected, rtol, what):
    expected = np.asarray(expected, dtype=np.float64)
    # Row sums can cancel to ~0: their error is measured against the largest entry.
    atol = rtol * max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


@pytest.mark.parametrize("launch", LAUNCHES, ids=["tile8", "tile8-split3", "default"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}-d{s[1]}")
@pytest.mark.parametrize("kernel", list(STEIN))
def test_stein_sums_match_cpu_float64(kernel, shape, launch):
    cpu, gpu, kw = STEIN[kernel]
    x, s = _problem(*shape)
    tile, n_split = launch
    expected = cpu(x, s, 0.7, **kw)
    actual = gpu(x, s, 0.7, **kw, tile=tile, n_split=n_split)
    what = f"{kernel} {shape} {launch}"
    assert actual[1].shape == shape and actual[1].dtype == np.float64
    _assert_close(actual[0], expected[0], RTOL64, what + " total")
    _assert_close(actual[1], expected[1], RTOL64, what + " gx")
    _assert_close(actual[2], expected[2], RTOL64, what + " gs")


@pytest.mark.parametrize("kernel", list(STEIN))
def test_stein_sums_match_cpu_float32(kernel):
    cpu, gpu, kw = STEIN[kernel]
    x, s = _problem(20, 2, seed=1)
    x, s = x.astype(np.float32), s.astype(np.float32)
    expected = cpu(x, s, 0.7, **kw)  # float64 sums of the same float32 inputs
    actual = gpu(x, s, 0.7, **kw, tile=8)
    for a, e, what in zip(actual, expected, ("total", "gx", "gs"), strict=True):
        _assert_close(a, e, RTOL32, f"{kernel} float32 {what}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel", list(TOTALS))
def test_stein_totals_match_cpu(kernel, dtype):
    cpu, gpu, kw = TOTALS[kernel]
    x, s = _problem(13, 2, seed=2)
    x, s = x.astype(dtype), s.astype(dtype)
    rtol = RTOL64 if dtype == np.float64 else RTOL32
    _assert_close(gpu(x, s, 0.7, **kw, tile=8, n_split=2), cpu(x, s, 0.7, **kw), rtol, kernel)


def test_partner_rows_are_padded_to_16_bytes():
    assert [_launch.row_width(v, np.float32) for v in (1, 2, 4, 5, 6, 20)] == [4, 4, 4, 8, 8, 20]
    assert [_launch.row_width(v, np.float64) for v in (1, 2, 3, 6, 20)] == [2, 2, 4, 6, 20]


def test_tiles_shrink_to_fit_shared_memory_for_large_d():
    for dtype in (np.float32, np.float64):
        itemsize = np.dtype(dtype).itemsize
        assert _launch.tile_for(4, dtype) == _launch.TILE
        for values in (100, 600, 2000, 32768 // itemsize):
            tile = _launch.tile_for(values, dtype)
            row = _launch.row_width(values, dtype) * itemsize
            assert tile * row <= 32768  # fits...
            assert (
                tile == _launch.TILE or 2 * tile * row > 32768
            )  # ... and is the largest that does
        assert _launch.tile_for(32768 // itemsize, dtype) == 1


@pytest.mark.parametrize("dtype, d", [(np.float64, 2049), (np.float32, 4097)])
def test_too_large_d_for_shared_memory_is_a_clear_error(dtype, d):
    x = np.random.default_rng(0).normal(size=(3, d)).astype(dtype)
    target = kn.Gaussian(np.zeros(d), 1.0)
    with pytest.raises(ValueError, match="too large for backend='cuda'; use backend='cpu'"):
        kn.ksd_and_grad(x, target, backend="cuda")
    with pytest.raises(ValueError, match="too large for backend='cuda'"):
        kn.svgd(x, target, step=0.1, max_iter=1, backend="cuda", dtype=dtype)


def test_large_d_matches_cpu():
    x, s = _problem(5, 50, seed=10)
    _assert_close(
        _cuda.gaussian_stein_sums(x, s, 30.0)[1],
        _cpu.gaussian_stein_sums(x, s, 30.0)[1],
        RTOL64,
        "d=50",
    )


@pytest.mark.parametrize("launch", LAUNCHES, ids=["tile8", "tile8-split3", "default"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"n{s[0]}-d{s[1]}")
def test_svgd_direction_matches_cpu(shape, launch):
    x, s = _problem(*shape, seed=3)
    tile, n_split = launch
    expected = _cpu.gaussian_svgd_direction(x, s, 0.7)
    actual = _cuda.gaussian_svgd_direction(x, s, 0.7, tile=tile, n_split=n_split)
    _assert_close(actual, expected, RTOL64, f"svgd {shape} {launch}")
    actual32 = _cuda.gaussian_svgd_direction(
        x.astype(np.float32), s.astype(np.float32), 0.7, tile=tile, n_split=n_split
    )
    _assert_close(actual32, expected, RTOL32, f"svgd float32 {shape} {launch}")


@pytest.mark.parametrize("m", [1, 21])
def test_gaussian_kernel_sums_between_two_sets_match_cpu(m):
    """The MMD cross term: ``y`` has its own size, not a multiple of the tile."""
    x, _ = _problem(11, 2, seed=4)
    y, _ = _problem(m, 2, seed=5)
    for got, want in zip(
        _cuda.gaussian_kernel_sums(x, y, 0.4, tile=8, n_split=2),
        _cpu.gaussian_kernel_sums(x, y, 0.4),
        strict=True,
    ):
        _assert_close(got, want, RTOL64, f"cross m={m}")


def test_float32_kernels_use_float32_throughout():
    """A float64 literal in a float32 kernel would silently promote it."""
    if SIMULATOR:
        pytest.skip("the simulator runs Python, not the compiled kernel")
    kernel = _sums.stein_kernel(GAUSSIAN, False, 2, np.float32, 128, True)
    _cuda.gaussian_stein_sums(*(a.astype(np.float32) for a in _problem(130, 2)), 0.7)
    ptx = next(iter(kernel.inspect_asm().values()))
    # The float64 instructions allowed: the running sums across tiles, and the
    # block reduction.
    f64_math = [
        line
        for line in ptx.splitlines()
        if ".f64" in line and any(op in line for op in ("mul.", "fma.", "ex2."))
    ]
    assert not f64_math, f64_math[:5]


# ----------------------------------------------------------------- the public API


def test_ksd_and_grad_on_cuda_matches_cpu():
    target = kn.GaussianMixture([[-1.0, 0.0], [1.5, 0.5]], [0.3, 0.7], [0.5, 1.2])
    x, _ = _problem(17, 2, seed=6)
    for kernel in ("gaussian", "imq", "linear"):
        v_cpu, g_cpu = kn.ksd_and_grad(x, target, kernel=kernel, bw=0.8, backend="cpu")
        v_gpu, g_gpu = kn.ksd_and_grad(x, target, kernel=kernel, bw=0.8, backend="cuda")
        _assert_close(v_gpu, v_cpu, RTOL64, kernel)
        _assert_close(g_gpu, g_cpu, RTOL64, kernel)
    for statistic in ("u", "v"):
        _assert_close(
            kn.ksd(x, target, statistic=statistic, backend="cuda"),
            kn.ksd(x, target, statistic=statistic, backend="cpu"),
            RTOL64,
            statistic,
        )


def test_ksdd_lbfgs_on_cuda_follows_the_cpu_run():
    target = kn.Gaussian(np.zeros(2), 1.0)
    x0 = np.random.default_rng(7).uniform(-2.0, 2.0, size=(12, 2))
    runs = [kn.ksdd_lbfgs(x0, target, bw=0.5, max_iter=4, backend=b) for b in ("cpu", "cuda")]
    assert runs[0].nit == runs[1].nit == 4
    _assert_close(runs[1].x, runs[0].x, 1e-8, "iterates")
    _assert_close(runs[1].fun, runs[0].fun, 1e-8, "objective")


def test_float32_end_to_end_on_cuda():
    target = kn.Gaussian(np.zeros(2), 1.0)
    x0 = np.random.default_rng(8).uniform(-2.0, 2.0, size=(12, 2))
    res = kn.ksdd_lbfgs(x0, target, bw=0.5, max_iter=4, backend="cuda", dtype=np.float32)
    ref = kn.ksdd_lbfgs(x0, target, bw=0.5, max_iter=4, backend="cpu", dtype=np.float32)
    assert res.x.dtype == np.float32 and res.nit == 4
    _assert_close(res.fun, ref.fun, 1e-3, "float32 objective")
    res = kn.ksdd_gradient(
        x0, target, step=0.5, bw=0.5, max_iter=3, backend="cuda", dtype=np.float32
    )
    assert res.x.dtype == np.float32 and res.nit == 3


def test_svgd_and_mmd_on_cuda_match_cpu():
    target = kn.Gaussian(np.zeros(2), 1.0)
    rng = np.random.default_rng(9)
    x0 = rng.uniform(-2.0, 2.0, size=(10, 2))
    runs = [kn.svgd(x0, target, step=0.3, bw=0.5, max_iter=3, backend=b) for b in ("cpu", "cuda")]
    _assert_close(runs[1].x, runs[0].x, RTOL64, "svgd")
    y = rng.normal(size=(15, 2))
    runs = [kn.mmd_lbfgs(x0, y, bw=0.5, max_iter=2, backend=b) for b in ("cpu", "cuda")]
    _assert_close(runs[1].x, runs[0].x, 1e-8, "mmd")


# ------------------------------------------------------------------- backend choice


def test_auto_stays_on_the_cpu_in_the_simulator_and_for_small_or_wide_problems(monkeypatch):
    assert _backend.resolve_backend("auto", 10**12) == ("cuda" if not SIMULATOR else "cpu")
    monkeypatch.setattr(_backend, "_status", [(True, None)])
    assert _backend.resolve_backend("auto", _backend.AUTO_CUDA_MIN_PAIRS) == "cuda"
    assert _backend.resolve_backend("auto", _backend.AUTO_CUDA_MIN_PAIRS - 1) == "cpu"
    assert _backend.resolve_backend("auto") == "cpu"
    assert _backend.resolve_backend("cpu", 10**12) == "cpu"
    big = _backend.AUTO_CUDA_MIN_PAIRS
    assert _backend.resolve_backend("auto", big, _backend.AUTO_CUDA_MAX_D) == "cuda"
    assert _backend.resolve_backend("auto", big, _backend.AUTO_CUDA_MAX_D + 1) == "cpu"


def test_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(_backend, "_simulating", lambda: False)
    monkeypatch.setattr(_backend, "_status", [(False, "no GPU in this test")])
    x = np.zeros((3, 2))
    target = kn.Gaussian(np.zeros(2), 1.0)
    with pytest.raises(RuntimeError, match=r"needs an NVIDIA GPU .* \(no GPU in this test\)"):
        kn.ksd_and_grad(x, target, backend="cuda")
    with pytest.raises(RuntimeError, match="backend='cpu'"):
        kn.svgd(x + np.arange(6).reshape(3, 2), target, step=0.1, backend="cuda")
    assert _backend.resolve_backend("auto", 10**12) == "cpu"


@pytest.mark.parametrize(
    "gpu, nvvm, auto, error",
    [
        (False, True, "cpu", r"numba.cuda.is_available\(\) is False"),
        (True, False, "cpu", "numba finds no libNVVM"),
        (True, True, "cuda", None),
    ],
)
def test_a_gpu_counts_only_with_its_driver_and_libnvvm(gpu, nvvm, auto, error):
    """Outside the simulator, with numba's two probes answered by the test."""
    code = (
        "import re, numba.cuda as cuda\n"
        "from numba.cuda.cudadrv import nvvm\n"
        f"cuda.is_available = lambda: {gpu}\n"
        f"nvvm.is_available = lambda: {nvvm}\n"
        "from ksdnumba.kernels import _backend\n"
        f"assert _backend.resolve_backend('auto', 10**8, 2) == {auto!r}\n"
        "assert _backend.resolve_backend('auto', 10**8, 10**4) == 'cpu'\n"
        "try:\n"
        "    assert _backend.resolve_backend('cuda') == 'cuda'\n"
        "except RuntimeError as err:\n"
        f"    assert {error!r} and re.search({error!r}, str(err)), err\n"
        "else:\n"
        f"    assert {error!r} is None\n"
    )
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_auto_never_imports_cuda_for_small_problems():
    code = (
        "import sys, numpy as np, ksdnumba as kn\n"
        "x = np.random.default_rng(0).normal(size=(50, 2))\n"
        "kn.ksd_and_grad(x, kn.Gaussian(np.zeros(2), 1.0))\n"
        "assert 'numba.cuda' not in sys.modules\n"
    )
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)


def test_gpu_benchmark_runs_at_toy_sizes(tmp_path):
    """benchmarks/bench_gpu.py must work when a session finally has a GPU."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "gpu.json"
    args = (
        "--sizes 8,12 --dims 2 --kernels gaussian --check-n 9 --lbfgs-n 8 --lbfgs-iter 1 "
        "--crossover-sizes 6,9 --matrix-sizes 9 --matrix-dims 2 --matrix-columns 1,5 --no-torch"
    )
    code = bench.main([*args.split(), "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and all(row["ok"] for row in report["check"])
    assert [row["n"] for row in report["kernels"]] == [8, 12, 8, 12]
    rows = [(row["dtype"], row["B"]) for row in report["matrix"]]
    assert rows == [("float32", 1), ("float32", 5), ("float64", 1), ("float64", 5)]
    assert all(row["ok"] and row["cuda_s"] > 0 and row["cpu_s"] > 0 for row in report["matrix"])
    assert report["lbfgs"]["nit"] == 1
    assert [row["n"] for row in report["crossover"]["rows"]] == [6, 9]
    assert all(row["cpu_s"] > 0 and row["cuda_s"] > 0 for row in report["crossover"]["rows"])


def test_numba_cuda_imported_with_a_row_stack_alias_only_while_needed(monkeypatch, tmp_path):
    """The NumPy 2.5 workaround for numba-cuda 0.30: alias, import, leave NumPy as it was."""
    (tmp_path / "reads_row_stack.py").write_text("import numpy as np\nSEEN = np.row_stack\n")
    (tmp_path / "breaks_on_import.py").write_text("raise RuntimeError('broken')\n")
    (tmp_path / "needs_a_missing_one.py").write_text("import no_such_module_either\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("reads_row_stack", "breaks_on_import", "needs_a_missing_one"):
        monkeypatch.delitem(sys.modules, name, raising=False)

    monkeypatch.delattr(np, "row_stack", raising=False)  # NumPy >= 2.5
    _compat._import_with_row_stack("reads_row_stack")
    assert sys.modules["reads_row_stack"].SEEN is np.vstack
    assert not hasattr(np, "row_stack")
    _compat._import_with_row_stack("no_such_module_here")  # numba's own target: nothing
    assert not hasattr(np, "row_stack")
    _compat._import_with_row_stack("no_such_package.np.arrayobj")
    with pytest.raises(RuntimeError, match="broken"):
        _compat._import_with_row_stack("breaks_on_import")
    with pytest.raises(ModuleNotFoundError, match="no_such_module_either"):
        _compat._import_with_row_stack("needs_a_missing_one")
    assert not hasattr(np, "row_stack")

    sys.modules.pop("reads_row_stack")
    monkeypatch.setattr(np, "row_stack", np.hstack, raising=False)  # NumPy < 2.5
    _compat._import_with_row_stack("reads_row_stack")
    assert "reads_row_stack" not in sys.modules and np.row_stack is np.hstack
