"""The GEMM-tiled Stein sums: the machine's bound, crossovers, float32, memory, ksddescent.

Each part prints a table; run one or several:

    python benchmarks/bench_tiled.py --bound
    python benchmarks/bench_tiled.py --crossover --sizes 128,512,2000 --dims 3,4,5,6,8,10
    python benchmarks/bench_tiled.py --dtypes --sizes 5000,20000 --dims 2,3,10,20,50,100
    python benchmarks/bench_tiled.py --rss
    python benchmarks/bench_tiled.py --ksddescent --sizes 2000,5000 --dims 2,10,50,100
    python benchmarks/bench_tiled.py --symmetry --sizes 2000,5000 --dims 10,50
    python benchmarks/bench_tiled.py --rows --sizes 2000,5000,20000,50000 --dims 3,4,5

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

``--rss`` runs ``gaussian_stein_sums`` at n = 50,000, d = 50 in a fresh process
and reports its peak resident memory.

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
                print(
                    f"{kernel:>8} {n:>6} {d:>4} {path:>7} {t64 * 1e3:>9.1f} {t32 * 1e3:>9.1f} "
                    f"{t64 / t32:>12.2f} {100 * flops / t64 / 1e9 / bound:>10.0f}% "
                    f"{100 * flops32 * float(n) ** 2 / t32 / 1e9 / bound32:>10.0f}%",
                    flush=True,
                )


def symmetry(sizes, dims, kernels, rounds):
    from ksdnumba.kernels._cpu import _tiled
    from ksdnumba.kernels._kinds import KINDS

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


def direct_rows(sizes, dims, rounds):
    from ksdnumba.kernels import _cpu

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
            print(
                f"{d:>4} {np.dtype(dtype).name:>8} " + " ".join(f"{v:>9.3f}" for v in row),
                flush=True,
            )


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


def versus_ksddescent(sizes, dims, rounds):
    try:
        import torch
        from ksddescent.kernels import gaussian_stein_kernel_single
    except ImportError as exc:
        print(f"ksddescent comparison skipped: {exc}")
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_objective import _problem as mixture_problem
    from bench_objective import _torch_mixture_score

    import ksdnumba as kn

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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bound", action="store_true")
    parser.add_argument("--crossover", action="store_true")
    parser.add_argument("--dtypes", action="store_true")
    parser.add_argument("--rss", action="store_true")
    parser.add_argument("--ksddescent", action="store_true")
    parser.add_argument("--symmetry", action="store_true")
    parser.add_argument("--rows", action="store_true")
    parser.add_argument("--sizes", default="2000,5000")
    parser.add_argument("--dims", default="2,3,10,20,50,100")
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
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    sizes = [int(v) for v in args.sizes.split(",")]
    dims = [int(v) for v in args.dims.split(",")]
    kernels = args.kernels.split(",")
    bound = args.bound_gflops
    if args.bound or (args.dtypes and bound is None):
        rows = measure_bound()
        if bound is None:
            bound = max(rows["float64"].values())
    if args.crossover:
        crossover(sizes, dims, kernels, args.rounds, not args.serial)
    if args.dtypes:
        print(f"bound: {bound:.1f} GFLOP/s in float64")
        dtypes(sizes, dims, kernels, args.rounds, bound)
    if args.rss:
        peak_rss()
    if args.ksddescent:
        versus_ksddescent(sizes, dims, args.rounds)
    if args.symmetry:
        symmetry(sizes, dims, kernels, args.rounds)
    if args.rows:
        direct_rows(sizes, dims, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
