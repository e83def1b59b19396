"""Time the CPU kernels against those of another git revision, side by side.

On a shared machine, times move by tens of percent between runs; the ratio of two
kernels timed alternately in one process moves much less. This script loads
the CPU backend as it was at ``--against`` (a git revision, by default
``HEAD~1``) next to the working tree's, checks that both compute the same
sums, and times them in turns: the Stein sums (Gaussian, IMQ with beta = 1/2),
the SVGD direction and the MMD cross sums, serial and with the thread pool.

    python benchmarks/compare_kernels.py --against HEAD~3 --sizes 2000,20000 --dims 2
    python benchmarks/compare_kernels.py --against e21fc01 --sizes 5000,20000 \
        --dims 2,3,10,20,50,100 --kernels gaussian,imq --threads pool

The old backend must be importable on its own (it imports only NumPy, Numba and
llvmlite): the file ``ksdnumba/kernels/_cpu.py`` at revisions up to ``e21fc01``
and a little after, the package ``ksdnumba/kernels/_cpu/`` since. The new side is
the working tree's package. Each kernel is compiled before it is timed; the best
of ``--rounds`` rounds is kept. ``--dtype float32`` times float32 particles on
both sides (the max rel diff is then that of float32 rounding).

The rows go to ``benchmarks/results/compare_kernels.json`` (``--json PATH``
elsewhere, ``--no-json`` not at all) with the machine, the revision and the
date; ``meta`` names the revision compared with. ``--quick`` is a smoke test
(n = 500 and 1000, d = 2, the Gaussian Stein sums, one round).
"""

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CALLS = {
    "gaussian": lambda m, x, s, y, par: m.gaussian_stein_sums(x, s, 0.1, parallel=par),
    "imq": lambda m, x, s, y, par: m.imq_stein_sums(x, s, 0.1, 0.5, parallel=par),
    "svgd": lambda m, x, s, y, par: (m.gaussian_svgd_direction(x, s, 0.1, parallel=par),),
    "mmd": lambda m, x, s, y, par: m.gaussian_kernel_sums(x, y, 0.1, parallel=par),
}


def _load_revision(revision, folder):
    """The CPU backend at ``revision``: the package ``_cpu/`` or, before it, ``_cpu.py``."""
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", revision, "ksdnumba/kernels/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name = "_cpu_at_revision"
    package = "ksdnumba/kernels/_cpu.py" not in listing.split()
    if package:
        files = subprocess.run(
            ["git", "ls-tree", "--name-only", revision, "ksdnumba/kernels/_cpu/"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        (Path(folder) / name).mkdir()
        paths = {f: Path(folder) / name / Path(f).name for f in files.split() if f.endswith(".py")}
    else:
        paths = {"ksdnumba/kernels/_cpu.py": Path(folder) / f"{name}.py"}
    for source, target in paths.items():
        target.write_text(
            subprocess.run(
                ["git", "show", f"{revision}:{source}"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    if package:
        # A subpackage of the working tree's ksdnumba.kernels, for its relative
        # imports (``from ..._caching import ...``).
        import ksdnumba.kernels  # noqa: F401

        location = Path(folder) / name / "__init__.py"
        name = f"ksdnumba.kernels.{name}"
        spec = importlib.util.spec_from_file_location(
            name, location, submodule_search_locations=[str(location.parent)]
        )
    else:
        spec = importlib.util.spec_from_file_location(name, Path(folder) / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _max_rel_diff(a, b):
    diffs = []
    for u, v in zip(a, b, strict=True):
        u, v = np.asarray(u, dtype=float), np.asarray(v, dtype=float)
        diffs.append(float(np.abs(u - v).max() / max(np.abs(v).max(), 1e-300)))
    return max(diffs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", default="HEAD~1", help="git revision to compare with")
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--dims", default="2")
    parser.add_argument("--kernels", default="gaussian,imq,svgd,mmd")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument(
        "--threads", default="serial,pool", help="which drivers to time: serial, pool or both"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="n = 500 and 1000, d = 2, Gaussian, one round: a smoke test",
    )
    _results.add_arguments(parser, "compare_kernels")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.dims, args.kernels, args.rounds = "500,1000", "2", "gaussian", 1
    drivers = [{"serial": False, "pool": True}[v] for v in args.threads.split(",")]
    sys.path.insert(0, str(ROOT))
    from ksdnumba.kernels import _cpu as new

    against = subprocess.run(
        ["git", "rev-parse", "--short", args.against],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        old = _load_revision(args.against, folder)
        print(
            f"{'kernel':>8} {'n':>7} {'d':>3} {'threads':>7} {'old Gp/s':>9} {'new Gp/s':>9} "
            f"{'speed-up':>8} {'max rel diff':>12}"
        )
        rng = np.random.default_rng(0)
        for d in (int(v) for v in args.dims.split(",")):
            for n in (int(v) for v in args.sizes.split(",")):
                x = rng.normal(size=(n, d))
                s = -x + 0.3 * rng.normal(size=(n, d))
                y = rng.normal(size=(n, d))
                x, s, y = (v.astype(args.dtype) for v in (x, s, y))
                for kernel in args.kernels.split(","):
                    call = CALLS[kernel]
                    diff = _max_rel_diff(call(new, x, s, y, None), call(old, x, s, y, None))
                    for parallel in drivers:
                        for module in (old, new):  # compiles, or loads from the cache
                            call(module, x[:64], s[:64], y[:64], parallel)
                        best = {}
                        for _ in range(args.rounds):
                            for name, module in (("old", old), ("new", new)):
                                start = time.perf_counter()
                                call(module, x, s, y, parallel)
                                elapsed = time.perf_counter() - start
                                best[name] = min(best.get(name, np.inf), elapsed)
                        rate_old, rate_new = n * n / best["old"] / 1e9, n * n / best["new"] / 1e9
                        threads = "pool" if parallel else "serial"
                        print(
                            f"{kernel:>8} {n:>7} {d:>3} {threads:>7} "
                            f"{rate_old:>9.3f} {rate_new:>9.3f} "
                            f"{best['old'] / best['new']:>8.2f} {diff:>12.1e}",
                            flush=True,
                        )
                        rows.append(
                            {
                                "kernel": kernel,
                                "n": n,
                                "d": d,
                                "threads": threads,
                                "dtype": args.dtype,
                                "old_s": best["old"],
                                "new_s": best["new"],
                                "old_gpairs_per_s": rate_old,
                                "new_gpairs_per_s": rate_new,
                                "speedup": best["old"] / best["new"],
                                "max_rel_diff": diff,
                                "against": against,
                            }
                        )
    meta = {
        "against": args.against,
        "against_revision": against,
        "rounds": args.rounds,
        "dtype": args.dtype,
        "quick": args.quick,
    }
    _results.write("compare_kernels", rows, meta=meta, path=args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
