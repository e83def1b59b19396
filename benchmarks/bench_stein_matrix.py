"""kn.SteinMatrix against the machine's bounds, measured in one process.

Each part prints a table and adds its rows to ``benchmarks/results/stein_matrix.json``
(``--json PATH`` elsewhere, ``--no-json`` not at all; ``benchmarks/_results.py``)
with the machine's CPU, the revision and the date:

* ``bound``: GFLOP/s of a two-threaded float64 GEMM (2000 x 2000), the bound of
  the products, and of float32; the memory bandwidth of a NumPy sum over the
  bytes a column reads.
* ``products``: ``H @ W`` for ``W`` of B columns, as a fraction of the GEMM bound
  counting ``2 n^2 B`` flops (the kernel's own arithmetic not counted), beside the
  dense route (NumPy builds ``H`` by rows, then one BLAS product) with the peak
  memory of each, measured in a fresh process.
* ``matvec``: ``H @ v`` and ``row_sums()`` against the bound through the flop
  model of the tiled Stein sums (``benchmarks/bench_tiled.py``): ``3 d + 60``
  flops per ordered pair for a tile, plus 2 for the product.
* ``column``: ``column(j)`` at n = 100,000 against the bandwidth of a NumPy sum
  over the bytes it reads (``x`` and ``s``, ``2 n d`` float64 numbers).
* ``prefix``: ``prefix_sums()`` against ``sum()``.

    python benchmarks/bench_stein_matrix.py                 # every part
    python benchmarks/bench_stein_matrix.py --parts products --sizes 20000 --cols 256,1024
    python benchmarks/bench_stein_matrix.py --quick          # small sizes, a smoke test

Times are the best of ``--rounds`` calls, the compared callables called in turns.
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402


def best(calls, rounds):
    out = [np.inf] * len(calls)
    for _ in range(rounds):
        for k, call in enumerate(calls):
            start = time.perf_counter()
            call()
            out[k] = min(out[k], time.perf_counter() - start)
    return out


def problem(n, d, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    return x, -x + 0.3 * rng.normal(size=(n, d))


def gemm_bound(rounds):
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    out = {}
    for dtype in (np.float64, np.float32):
        a = rng.random((2000, 2000)).astype(dtype)
        b = rng.random((2000, 2000)).astype(dtype)
        with threadpool_limits(2, user_api="blas"):
            a @ b
            (t,) = best([lambda: a @ b], rounds)
        out[np.dtype(dtype).name] = 2 * 2000**3 / t / 1e9
    return out


def memory_bandwidth(n, d, rounds):
    buf = np.random.default_rng(0).random(2 * n * d)
    buf.sum()
    (t,) = best([buf.sum], rounds)
    return buf.nbytes / t / 1e9


def part_bound(args, rows):
    bound = gemm_bound(args.rounds)
    bw = memory_bandwidth(100_000, 10, args.rounds)
    print(
        f"GEMM, two threads: float64 {bound['float64']:.1f} GFLOP/s, float32 "
        f"{bound['float32']:.1f}; NumPy sum over 16 MB: {bw:.1f} GB/s"
    )
    rows.append(
        {
            "part": "bound",
            "gemm_float64": bound["float64"],
            "gemm_float32": bound["float32"],
            "sum_bandwidth_gbs": bw,
        }
    )
    return bound, bw


DENSE_CHILD = """
import resource, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
n, d, B, kernel = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
x = rng.normal(size=(n, d)); s = -x + 0.3 * rng.normal(size=(n, d))
W = rng.normal(size=(n, B))
bw = 0.5 * d
start = time.perf_counter()
H = np.empty((n, n))
nx = np.einsum("ij,ij->i", x, x); sx = np.einsum("ij,ij->i", s, x)
for i0 in range(0, n, 1000):
    xi, si = x[i0:i0 + 1000], s[i0:i0 + 1000]
    r2 = np.maximum(nx[i0:i0 + 1000, None] + nx[None, :] - 2 * xi @ x.T, 0.0)
    S = si @ s.T
    Du = sx[i0:i0 + 1000, None] + sx[None, :] - si @ x.T - xi @ s.T
    if kernel == "gaussian":
        H[i0:i0 + 1000] = np.exp(-r2 / (2 * bw)) * (S + (Du + d) / bw - r2 / bw**2)
    else:
        q = 1.0 + r2 / bw
        H[i0:i0 + 1000] = q**-0.5 * (S + (Du + d) / (bw * q) - 3 * r2 / (bw * q) ** 2)
built = time.perf_counter() - start
with threadpool_limits(2, user_api="blas"):
    start = time.perf_counter()
    HW = H @ W
    product = time.perf_counter() - start
print(built, product, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""

TILED_CHILD = """
import resource, sys, time
import numpy as np
import ksdnumba as kn
n, d, B, kernel = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rng = np.random.default_rng(0)
x = rng.normal(size=(n, d)); s = -x + 0.3 * rng.normal(size=(n, d))
W = rng.normal(size=(n, B))
H = kn.SteinMatrix(x, s, kernel=kernel, bw=0.5 * d)
H @ W[:, :2]  # compile or load
start = time.perf_counter()
HW = H @ W
t = time.perf_counter() - start
print(t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def part_products(args, rows, bound):
    import ksdnumba as kn

    print(
        f"\nH @ W, float64, two threads; fraction of the GEMM bound "
        f"({bound['float64']:.0f} GFLOP/s) counting 2 n^2 B flops"
    )
    print(
        f"{'kernel':>8} {'n':>6} {'d':>3} {'B':>5} {'tiled s':>8} {'frac':>6} "
        f"{'f32 s':>7} {'frac32':>7} {'dense s':>8} {'ratio':>6} {'RSS MB':>15}"
    )
    for n in args.sizes:
        for B in args.cols:
            for kernel in args.kernels:
                d = args.d
                x, s = problem(n, d)
                W = np.random.default_rng(1).normal(size=(n, B))
                H = kn.SteinMatrix(x, s, kernel=kernel, bw=0.5 * d)
                H32 = kn.SteinMatrix(x, s, kernel=kernel, bw=0.5 * d, dtype=np.float32)
                H @ W[:, :2]
                H32 @ W[:, :2]
                t64, t32 = best([lambda: H @ W, lambda: H32 @ W], args.rounds)
                flops = 2.0 * n * n * B
                f64 = flops / t64 / 1e9 / bound["float64"]
                f32 = flops / t32 / 1e9 / bound["float32"]
                dense_t = dense_rss = tiled_rss = float("nan")
                if args.dense:
                    out = subprocess.run(
                        [sys.executable, "-c", DENSE_CHILD, str(n), str(d), str(B), kernel],
                        capture_output=True,
                        text=True,
                    )
                    if out.returncode == 0:
                        built, product, dense_rss = map(float, out.stdout.split())
                        dense_t = built + product
                    out = subprocess.run(
                        [sys.executable, "-c", TILED_CHILD, str(n), str(d), str(B), kernel],
                        capture_output=True,
                        text=True,
                    )
                    if out.returncode == 0:
                        tiled_rss = float(out.stdout.split()[1])
                print(
                    f"{kernel:>8} {n:>6} {d:>3} {B:>5} {t64:>8.2f} {f64:>6.0%} {t32:>7.2f} "
                    f"{f32:>7.0%} {dense_t:>8.2f} {dense_t / t64:>6.1f} "
                    f"{tiled_rss:>7.0f}/{dense_rss:>7.0f}",
                    flush=True,
                )
                rows.append(
                    {
                        "part": "products",
                        "kernel": kernel,
                        "n": n,
                        "d": d,
                        "B": B,
                        "seconds_float64": t64,
                        "fraction_float64": f64,
                        "seconds_float32": t32,
                        "fraction_float32": f32,
                        "dense_seconds": dense_t,
                        "dense_ratio": dense_t / t64,
                        "tiled_rss_mb": tiled_rss,
                        "dense_rss_mb": dense_rss,
                    }
                )


def part_matvec(args, rows, bound):
    import ksdnumba as kn

    print(
        "\nH @ v and row_sums(), float64, two threads; fraction of the bound through "
        "the tiled sums' model (3 d + 60 + 2 flops per ordered pair)"
    )
    print(
        f"{'kernel':>8} {'n':>6} {'d':>3} {'H @ v s':>8} {'frac':>6} {'rows s':>7} "
        f"{'frac':>6} {'sum() s':>8}"
    )
    for n in args.sizes:
        for kernel in args.kernels:
            d = args.d
            x, s = problem(n, d)
            v = np.random.default_rng(1).normal(size=n)
            H = kn.SteinMatrix(x, s, kernel=kernel, bw=0.5 * d)
            H @ v
            H.row_sums()
            H.sum()
            tv, tr, ts = best([lambda: H @ v, H.row_sums, H.sum], args.rounds)
            flops = (3.0 * d + 62.0) * n * n
            fv = flops / tv / 1e9 / bound["float64"]
            fr = flops / tr / 1e9 / bound["float64"]
            print(
                f"{kernel:>8} {n:>6} {d:>3} {tv:>8.3f} {fv:>6.0%} {tr:>7.3f} {fr:>6.0%} {ts:>8.3f}",
                flush=True,
            )
            rows.append(
                {
                    "part": "matvec",
                    "kernel": kernel,
                    "n": n,
                    "d": d,
                    "matvec_seconds": tv,
                    "matvec_fraction": fv,
                    "row_sums_seconds": tr,
                    "row_sums_fraction": fr,
                    "sum_seconds": ts,
                }
            )


def part_column(args, rows):
    import ksdnumba as kn

    n, d = args.column_n, args.d
    x, s = problem(n, d)
    buf = np.concatenate([x.ravel(), s.ravel()])
    print(
        f"\ncolumn(j), n = {n}, d = {d}, float64: bandwidth against a NumPy sum over "
        f"the same {buf.nbytes / 1e6:.0f} MB"
    )
    print(f"{'kernel':>8} {'column s':>9} {'GB/s':>6} {'sum GB/s':>9} {'frac':>6}")
    for kernel in args.kernels:
        H = kn.SteinMatrix(x, s, kernel=kernel, bw=0.5 * d)
        H.column(0)
        buf.sum()
        tc, tsum = best([lambda: H.column(n // 2), buf.sum], args.rounds * 4)
        moved = buf.nbytes + 8 * n
        gbs = moved / tc / 1e9
        ref = buf.nbytes / tsum / 1e9
        print(
            f"{kernel:>8} {tc * 1e3:>8.2f}m {gbs:>6.1f} {ref:>9.1f} {gbs / ref:>6.0%}", flush=True
        )
        rows.append(
            {
                "part": "column",
                "kernel": kernel,
                "n": n,
                "d": d,
                "seconds": tc,
                "gbs": gbs,
                "sum_gbs": ref,
                "fraction": gbs / ref,
            }
        )


def part_prefix(args, rows):
    import ksdnumba as kn

    print("\nprefix_sums() against sum(), float64, two threads")
    print(f"{'kernel':>8} {'n':>6} {'d':>3} {'prefix s':>9} {'sum s':>7} {'ratio':>6}")
    for n in args.sizes:
        for d in sorted({2, args.d}):
            for kernel in args.kernels:
                x, s = problem(n, d)
                H = kn.SteinMatrix(x, s, kernel=kernel, bw=0.5 * d)
                H.prefix_sums()
                H.sum()
                tp, ts = best([H.prefix_sums, H.sum], args.rounds)
                print(
                    f"{kernel:>8} {n:>6} {d:>3} {tp:>9.3f} {ts:>7.3f} {tp / ts:>6.2f}", flush=True
                )
                rows.append(
                    {
                        "part": "prefix",
                        "kernel": kernel,
                        "n": n,
                        "d": d,
                        "prefix_seconds": tp,
                        "sum_seconds": ts,
                        "ratio": tp / ts,
                    }
                )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="bound,products,matvec,column,prefix")
    parser.add_argument("--sizes", default="20000")
    parser.add_argument("--cols", default="256,1024")
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--kernels", default="gaussian,imq")
    parser.add_argument("--column-n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-dense",
        dest="dense",
        action="store_false",
        help="skip the dense route (it holds an n x n float64 matrix)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    _results.add_arguments(parser, "stein_matrix")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.cols, args.column_n, args.rounds = "1500", "64", 20_000, 1
    args.sizes = [int(v) for v in args.sizes.split(",")]
    args.cols = [int(v) for v in args.cols.split(",")]
    args.kernels = args.kernels.split(",")
    parts = args.parts.split(",")
    rows = []
    bound, _ = part_bound(args, rows)
    if "products" in parts:
        part_products(args, rows, bound)
    if "matvec" in parts:
        part_matvec(args, rows, bound)
    if "column" in parts:
        part_column(args, rows)
    if "prefix" in parts:
        part_prefix(args, rows)
    meta = {
        "sizes": args.sizes,
        "cols": args.cols,
        "d": args.d,
        "kernels": args.kernels,
        "column_n": args.column_n,
        "rounds": args.rounds,
        "dense": args.dense,
        "parts": parts,
        "quick": args.quick,
    }
    _results.write("stein_matrix", rows, meta=meta, path=args.json)


if __name__ == "__main__":
    main()
