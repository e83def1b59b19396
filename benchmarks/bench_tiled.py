"""The GEMM-tiled Stein sums: the machine's bound, crossovers, float32, memory, ksddescent.

Each part prints a table and writes its rows to ``benchmarks/results/tiled_<part>.json``
(``bound``, ``crossover``, ``dtypes``, ``rss``, ``ksddescent``, ``symmetry``,
``rows``) with the machine, the revision and the date, so that running one part
leaves the others' files alone; ``--json PATH`` writes the parts run to one file
instead, ``--no-json`` nothing. Run one or several, or ``--all``:

    python benchmarks/bench_tiled.py --bound
    python benchmarks/bench_tiled.py --crossover --sizes 128,512,2000 --dims 3,4,5,6,8,10
    python benchmarks/bench_tiled.py --dtypes --sizes 5000,20000 --dims 2,3,10,20,50,100
    python benchmarks/bench_tiled.py --rss
    python benchmarks/bench_tiled.py --ksddescent --sizes 2000,5000 --dims 2,10,50,100
    python benchmarks/bench_tiled.py --symmetry --sizes 2000,5000 --dims 10,50
    python benchmarks/bench_tiled.py --rows --sizes 2000,5000,20000,50000 --dims 3,4,5
    python benchmarks/bench_tiled.py --all --quick      # every part at small sizes

``--sizes`` and ``--dims`` apply to the parts named; with ``--all`` each part has
the sizes of its line above unless ``--sizes``/``--dims`` are given.

``--bound`` times square GEMMs (2000 x 2000) in float64 and float32: one
single-threaded GEMM alone, two at once (one per thread), and one two-threaded.
On a machine whose two vCPUs share one core's floating-point units, the sum of
the two-at-once rates is the whole machine's bound.

``--crossover`` times the direct rows against the tiled path (``--kernels`` among
gaussian, imq, svgd, mmd; the MMD cross sums take the scores as partners) (``path=...`` of
:mod:`ksdnumba.kernels._cpu`) with the thread pool (``--serial``: the serial
drivers), alternately, best of ``--rounds``: the ratio decides ``_TILED_MIN_D``
and ``_TILED_MIN_N``.

``--dtypes`` times the automatic path with float32 and float64 particles,
alternately, and reports each as a fraction of the bound (``--bound-gflops``,
float64; float32 is taken as twice that) through the flop count of the path
that ran, every addition and multiplication counted (a fused one as two) and
the exp's polynomial with them: the tiled path's products cost ``15 d`` flops
per ordered pair (Gaussian: ``13 d``), the Gram part (three products of ``d``
columns) computed once per unordered pair of tiles, plus 60 for the pass over
each tile; the general
direct rows ``19 d + 51``; the one-loop rows in two dimensions 76 (Gaussian;
65 in float32, whose exp is shorter) and 64 (IMQ, a division and a square root
counted as one flop each). Where float32 particles still compute in float64
(see ``computes_in_float32`` of :mod:`ksdnumba.kernels._cpu`), the float32
column is measured against the float64 bound.

``--symmetry`` times the tiled path's symmetric schedule (each unordered pair
of tiles once, serving both) against every ordered pair of tiles, in float64.

``--rows`` times the direct rows (Gaussian, thread pool) in ns per ordered pair
against ``n``, in both dtypes: whether they fall off once the partners outgrow
the caches.

``--rss`` runs ``gaussian_stein_sums`` at n = 50,000, d = 50 (``--rss-n``,
``--rss-d``) in a fresh process and reports its peak resident memory.

``--ksddescent`` times :func:`ksdnumba.ksd_and_grad` (float64 and float32) against
ksddescent's dense torch Gaussian Stein kernel with autograd in float32 (what
its ``ksdd_lbfgs`` evaluates per step), when torch and ksddescent import.
"""

import argparse
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BW_PER_DIM = 0.5  # bw = 0.5 d keeps the kernel's width fixed relative to the spread


def _best(calls, rounds):
    """Best time of each callable over ``rounds`` rounds, called in turns."""
    best = [np.inf] * len(calls)
    for _ in range(rounds):
        for k, call in enumerate(calls):
            start = time.perf_counter()
            call()
            best[k] = min(best[k], time.perf_counter() - start)
    return best


def measure_bound(size=2000, rounds=5):
    """GFLOP/s of square GEMMs: one thread alone, two single-threaded at once, two threads."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    rows = {}
    for dtype in (np.float64, np.float32):
        a = rng.random((size, size)).astype(dtype)
        b = rng.random((size, size)).astype(dtype)
        flops = 2.0 * size**3
        with threadpool_limits(1, user_api="blas"):
            a @ b
            (one,) = _best([lambda: a @ b], rounds)

            def worker():
                for _ in range(rounds):
                    a @ b

            threads = [threading.Thread(target=worker) for _ in range(2)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            both = time.perf_counter() - start
        with threadpool_limits(2, user_api="blas"):
            a @ b
            (two,) = _best([lambda: a @ b], rounds)
        rows[np.dtype(dtype).name] = {
            "one thread": flops / one / 1e9,
            "two at once (sum)": 2 * rounds * flops / both / 1e9,
            "one two-threaded": flops / two / 1e9,
        }
    print(f"{'dtype':>8} {'one thread':>11} {'two at once':>12} {'2-threaded':>11}  GFLOP/s")
    for name, r in rows.items():
        print(
            f"{name:>8} {r['one thread']:>11.1f} {r['two at once (sum)']:>12.1f} "
            f"{r['one two-threaded']:>11.1f}"
        )
    return rows


def _problem(n, d, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    s = -x + 0.3 * rng.normal(size=(n, d))
    return x.astype(dtype), s.astype(dtype)


def _stein_call(cpu, kernel, grad, x, s, bw, **kw):
    if kernel == "svgd":  # the base kernel's sums: no value-alone variant
        return lambda: cpu.gaussian_svgd_direction(x, s, bw, **kw)
    if kernel == "mmd":
        return lambda: cpu.gaussian_kernel_sums(x, s, bw, **kw)
    if kernel == "gaussian":
        f = cpu.gaussian_stein_sums if grad else cpu.gaussian_stein_total
        return lambda: f(x, s, bw, **kw)
    f = cpu.imq_stein_sums if grad else cpu.imq_stein_total
    return lambda: f(x, s, bw, 0.5, **kw)


def crossover(sizes, dims, kernels, rounds, parallel):
    from ksdnumba.kernels import _cpu

    rows = []
    print(f"threads: {'pool' if parallel else 'serial'}")
    print(
        f"{'kernel':>8} {'grad':>5} {'n':>6} {'d':>4} {'direct ms':>10} {'tiled ms':>9} "
        f"{'tiled speed-up':>14}"
    )
    for kernel in kernels:
        for grad in (True, False) if kernel in ("gaussian", "imq") else (True,):
            for d in dims:
                for n in sizes:
                    x, s = _problem(n, d)
                    calls = [
                        _stein_call(
                            _cpu, kernel, grad, x, s, BW_PER_DIM * d, path=p, parallel=parallel
                        )
                        for p in ("direct", "tiled")
                    ]
                    for c in calls:
                        c()
                    direct, tiled = _best(calls, rounds)
                    print(
                        f"{kernel:>8} {str(grad):>5} {n:>6} {d:>4} {direct * 1e3:>10.2f} "
                        f"{tiled * 1e3:>9.2f} {direct / tiled:>14.2f}",
                        flush=True,
                    )
                    rows.append(
                        {
                            "kernel": kernel,
                            "grad": grad,
                            "n": n,
                            "d": d,
                            "threads": "pool" if parallel else "serial",
                            "direct_s": direct,
                            "tiled_s": tiled,
                            "tiled_speedup": direct / tiled,
                        }
                    )
    return rows


def _flops_per_pair(path, kernel, d, dtype=np.float64):
    """Arithmetic per ordered pair of the path that ran (see the module's docstring)."""
    if path == "direct":
        if d == 2:
            return 64 if kernel == "imq" else (65 if dtype == np.float32 else 76)
        return 19 * d + 51
    back = 6 * d if kernel == "gaussian" else 8 * d
    return 3 * d + back + 60  # Gram part once per unordered pair, products, tile pass


def dtypes(sizes, dims, kernels, rounds, bound):
    from ksdnumba.kernels import _cpu
    from ksdnumba.kernels._cpu import _drivers
    from ksdnumba.kernels._kinds import KINDS

    rows = []
    print(
        f"{'kernel':>8} {'n':>6} {'d':>4} {'path':>7} {'f64 ms':>9} {'f32 ms':>9} "
        f"{'f32 speed-up':>12} {'f64 % bound':>11} {'f32 % bound':>11}"
    )
    for kernel in kernels:
        for d in dims:
            for n in sizes:
                x, s = _problem(n, d)
                x32, s32 = x.astype(np.float32), s.astype(np.float32)
                calls = [
                    _stein_call(_cpu, kernel, True, x, s, BW_PER_DIM * d),
                    _stein_call(_cpu, kernel, True, x32, s32, BW_PER_DIM * d),
                ]
                for c in calls:
                    c()
                t64, t32 = _best(calls, rounds)
                path = _drivers._choose_path(n, d, True, None)
                flops = _flops_per_pair(path, kernel, d) * float(n) ** 2
                kind = KINDS[kernel]
                in32 = _cpu.computes_in_float32(kind, n, d, 0.5)
                flops32 = _flops_per_pair(path, kernel, d, np.float32 if in32 else np.float64)
                bound32 = 2 * bound if in32 else bound
                frac64 = flops / t64 / 1e9 / bound
                frac32 = flops32 * float(n) ** 2 / t32 / 1e9 / bound32
                print(
                    f"{kernel:>8} {n:>6} {d:>4} {path:>7} {t64 * 1e3:>9.1f} {t32 * 1e3:>9.1f} "
                    f"{t64 / t32:>12.2f} {100 * frac64:>10.0f}% {100 * frac32:>10.0f}%",
                    flush=True,
                )
                rows.append(
                    {
                        "kernel": kernel,
                        "n": n,
                        "d": d,
                        "path": path,
                        "float64_s": t64,
                        "float32_s": t32,
                        "float32_speedup": t64 / t32,
                        "flops_per_pair_float64": _flops_per_pair(path, kernel, d),
                        "flops_per_pair_float32": flops32,
                        "float32_computes_in_float32": bool(in32),
                        "bound_float64_gflops": bound,
                        "bound_float32_gflops": bound32,
                        "fraction_float64": frac64,
                        "fraction_float32": frac32,
                    }
                )
    return rows


def symmetry(sizes, dims, kernels, rounds):
    from ksdnumba.kernels._cpu import _tiled
    from ksdnumba.kernels._kinds import KINDS

    rows = []
    print(
        "tiled path, float64, thread pool: each unordered pair of tiles once "
        "against every ordered pair"
    )
    print(
        f"{'kernel':>8} {'n':>6} {'d':>4} {'ordered ms':>11} {'symmetric ms':>13} {'speed-up':>9}"
    )
    for kernel in kernels:
        kind = KINDS[kernel]
        for d in dims:
            for n in sizes:
                x, s = _problem(n, d)
                calls = [
                    lambda sym=sym: _tiled.tiled_radial_sums(
                        kind, x, s, BW_PER_DIM * d, 0.5, True, True, np.float64, symmetric=sym
                    )
                    for sym in (False, True)
                ]
                for c in calls:
                    c()
                ordered, sym = _best(calls, rounds)
                print(
                    f"{kernel:>8} {n:>6} {d:>4} {ordered * 1e3:>11.1f} {sym * 1e3:>13.1f} "
                    f"{ordered / sym:>9.2f}",
                    flush=True,
                )
                rows.append(
                    {
                        "kernel": kernel,
                        "n": n,
                        "d": d,
                        "ordered_s": ordered,
                        "symmetric_s": sym,
                        "speedup": ordered / sym,
                    }
                )
    return rows


def direct_rows(sizes, dims, rounds):
    from ksdnumba.kernels import _cpu

    rows = []
    print("direct rows, Gaussian, thread pool: ns per ordered pair")
    print(f"{'d':>4} {'dtype':>8} " + " ".join(f"{'n=' + str(n):>9}" for n in sizes))
    for d in dims:
        for dtype in (np.float64, np.float32):
            row = []
            for n in sizes:
                x, s = _problem(n, d, dtype)

                def call():
                    return _cpu.gaussian_stein_sums(x, s, BW_PER_DIM * d, path="direct")

                call()
                (t,) = _best([call], rounds)
                row.append(t / float(n) ** 2 * 1e9)
                rows.append(
                    {
                        "kernel": "gaussian",
                        "d": d,
                        "dtype": np.dtype(dtype).name,
                        "n": n,
                        "seconds": t,
                        "ns_per_pair": row[-1],
                    }
                )
            print(
                f"{d:>4} {np.dtype(dtype).name:>8} " + " ".join(f"{v:>9.3f}" for v in row),
                flush=True,
            )
    return rows


_RSS_CODE = """
import resource, sys
import numpy as np
sys.path.insert(0, {root!r})
from ksdnumba.kernels import _cpu
rng = np.random.default_rng(0)
x = rng.normal(size=({n}, {d})); s = -x
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_cpu.gaussian_stein_sums(x, s, {bw})
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before / 1024, after / 1024)
"""


def peak_rss(n=50_000, d=50):
    code = _RSS_CODE.format(root=str(ROOT), n=n, d=d, bw=BW_PER_DIM * d)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    elapsed = time.perf_counter() - start
    before, after = float(out[0]), float(out[1])
    print(
        f"n = {n}, d = {d}: peak RSS {after:.0f} MiB (before the call {before:.0f} MiB; "
        f"the process ran {elapsed:.0f} s)"
    )
    return [
        {
            "kernel": "gaussian",
            "n": n,
            "d": d,
            "peak_rss_mib": after,
            "rss_before_mib": before,
            "process_s": elapsed,
        }
    ]


def versus_ksddescent(sizes, dims, rounds):
    try:
        import torch
        from ksddescent.kernels import gaussian_stein_kernel_single
    except ImportError as exc:
        print(f"ksddescent comparison skipped: {exc}")
        return []
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_objective import _problem as mixture_problem
    from bench_objective import _torch_mixture_score

    import ksdnumba as kn

    rows = []
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; the same mixture, "
        "bw = 0.5 d; ksddescent's kernel and autograd through its score, float32"
    )
    print(
        f"{'n':>6} {'d':>4} {'ksddescent f32 ms':>17} {'ours f64 ms':>11} {'ours f32 ms':>11} "
        f"{'x (f64)':>8} {'x (f32)':>8} {'KSD2 rel diff':>13}"
    )
    for d in dims:
        bw = BW_PER_DIM * d
        score = _torch_mixture_score(torch, d, torch.float32)
        for n in sizes:
            target, x = mixture_problem(n, d)
            x32 = x.astype(np.float32)
            out = {}

            def theirs():
                xt = torch.tensor(x32, requires_grad=True)
                loss = gaussian_stein_kernel_single(xt, score(xt), bw).sum() / n**2
                loss.backward()
                out["value"] = loss.item()

            calls = [
                theirs,
                lambda: kn.ksd_and_grad(x, target, bw=bw, backend="cpu"),
                lambda: kn.ksd_and_grad(x32, target, bw=bw, backend="cpu"),
            ]
            for c in calls:
                c()
            t_them, t64, t32 = _best(calls, rounds)
            ours = kn.ksd_and_grad(x, target, bw=bw, backend="cpu")[0]
            diff = abs(out["value"] - ours) / abs(ours)
            print(
                f"{n:>6} {d:>4} {t_them * 1e3:>17.1f} {t64 * 1e3:>11.1f} {t32 * 1e3:>11.1f} "
                f"{t_them / t64:>8.1f} {t_them / t32:>8.1f} {diff:>13.1e}",
                flush=True,
            )
            rows.append(
                {
                    "n": n,
                    "d": d,
                    "ksddescent_float32_s": t_them,
                    "ours_float64_s": t64,
                    "ours_float32_s": t32,
                    "speedup_float64": t_them / t64,
                    "speedup_float32": t_them / t32,
                    "ksd2_rel_diff": diff,
                    "torch_version": torch.__version__,
                    "torch_threads": torch.get_num_threads(),
                }
            )
    return rows


PARTS = ("bound", "crossover", "dtypes", "rss", "ksddescent", "symmetry", "rows")
# Sizes and dimensions of each part when --sizes/--dims are not given (the usage lines).
PART_SIZES = {
    "crossover": ([128, 512, 2000], [3, 4, 5, 6, 8, 10]),
    "dtypes": ([5000, 20000], [2, 3, 10, 20, 50, 100]),
    "ksddescent": ([2000, 5000], [2, 10, 50, 100]),
    "symmetry": ([2000, 5000], [10, 50]),
    "rows": ([2000, 5000, 20000, 50000], [3, 4, 5]),
}
QUICK_SIZES = ([1000], [3, 8])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for part in PARTS:
        parser.add_argument(f"--{part}", action="store_true")
    parser.add_argument("--all", action="store_true", help="every part")
    parser.add_argument(
        "--sizes",
        default=None,
        help="particle counts of the parts named (default: each part's own)",
    )
    parser.add_argument(
        "--dims", default=None, help="dimensions of the parts named (default: each part's own)"
    )
    parser.add_argument("--kernels", default="gaussian,imq")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--serial",
        action="store_true",
        help="--crossover with the serial drivers (steadier on a loaded machine)",
    )
    parser.add_argument(
        "--bound-gflops",
        type=float,
        default=None,
        help="float64 bound for --dtypes; measured with --bound if omitted",
    )
    parser.add_argument("--rss-n", type=int, default=50_000)
    parser.add_argument("--rss-d", type=int, default=50)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="n = 1000, d = 3 and 8, one round: a smoke test",
    )
    _results.add_arguments(parser, "tiled_<part>")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    parts = [p for p in PARTS if args.all or getattr(args, p)]
    if args.quick:
        args.rounds, args.rss_n, args.rss_d = 1, 5000, 10

    def sizes_of(part):
        sizes, dims = QUICK_SIZES if args.quick else PART_SIZES[part]
        if args.sizes:
            sizes = [int(v) for v in args.sizes.split(",")]
        if args.dims:
            dims = [int(v) for v in args.dims.split(",")]
        return sizes, dims

    kernels = args.kernels.split(",")
    meta = {
        "rounds": args.rounds,
        "kernels": kernels,
        "quick": args.quick,
        "bw": "0.5 d",
        "threads": "serial" if args.serial else "pool",
    }
    out = {}
    bound = args.bound_gflops
    if "bound" in parts or ("dtypes" in parts and bound is None):
        measured = measure_bound(size=500 if args.quick else 2000, rounds=2 if args.quick else 5)
        if bound is None:
            bound = max(measured["float64"].values())
        if "bound" in parts:
            out["bound"] = [
                {
                    "dtype": name,
                    "one_thread_gflops": r["one thread"],
                    "two_at_once_gflops": r["two at once (sum)"],
                    "two_threaded_gflops": r["one two-threaded"],
                    "bound_gflops": max(r.values()),
                }
                for name, r in measured.items()
            ]
    if "crossover" in parts:
        out["crossover"] = crossover(*sizes_of("crossover"), kernels, args.rounds, not args.serial)
    if "dtypes" in parts:
        print(f"bound: {bound:.1f} GFLOP/s in float64")
        out["dtypes"] = dtypes(*sizes_of("dtypes"), kernels, args.rounds, bound)
    if "rss" in parts:
        out["rss"] = peak_rss(args.rss_n, args.rss_d)
    if "ksddescent" in parts:
        out["ksddescent"] = versus_ksddescent(*sizes_of("ksddescent"), args.rounds)
    if "symmetry" in parts:
        out["symmetry"] = symmetry(*sizes_of("symmetry"), kernels, args.rounds)
    if "rows" in parts:
        out["rows"] = direct_rows(*sizes_of("rows"), args.rounds)
    if args.json is not None:  # one file for every part run, or none
        _results.write("tiled", out, meta=meta, path=args.json)
    else:
        for part, rows in out.items():
            if part in PART_SIZES:
                sizes, dims = sizes_of(part)
                part_meta = {**meta, "sizes": sizes, "dims": dims}
            else:
                part_meta = dict(meta)
            if part == "ksddescent" and not rows:
                part_meta["skipped"] = "torch or ksddescent not importable"
            _results.write(f"tiled_{part}", [{"part": part, **r} for r in rows], meta=part_meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
