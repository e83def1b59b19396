"""KSDAgg: kn.ksdagg against ksdagg's NumPy and JAX versions, and at n = 20,000.

Run from the repository root::

    python benchmarks/bench_ksdagg.py --compare --large

* ``--compare``: the README's example (a Gamma sample, n = 500, d = 1) and
  Gaussian samples at n = 2,000 and 5,000, d = 2 and 10, with ksdagg's defaults
  (10 bandwidths, B1 = B2 = 2,000, 50 bisection steps): kn.ksdagg in float64
  and float32, ksdagg's NumPy code (the copy vendored in tests/) in float64,
  and ksdagg's JAX code in a separate environment (``--jax-python``, default
  /work/venv-jax/bin/python, with ``--ksdagg-src`` holding the ksdagg package;
  JAX computes in float32 unless ``--jax-x64``). Every time is the best of
  ``--rounds`` calls after one that compiles (JAX) or loads numba's cache. The
  float64 results are checked against NumPy's (same decision and p-values).
* ``--large``: n = 20,000, d = 10, the same defaults (4,001 draws, 10
  bandwidths), once in float64 and once in float32. The wild bootstrap is
  ``2 n^2 B`` flops per bandwidth as a dense product counts it (ksdagg's ``H @ R``);
  the tiles take the upper triangle, ``n^2 B``. Both rates are reported as
  fractions of the GEMM bound measured in the same run (bench_tiled's square
  GEMMs, the best of its three ways of using the two cores).
* ``--quick`` (or ``--smoke``): tiny sizes, to check the script; it writes no
  results file unless ``--json PATH`` is given.

Writes ``benchmarks/results/ksdagg.json`` (``--json PATH`` elsewhere, ``--no-json``
not at all; ``benchmarks/_results.py``: the machine, the revision, the date, the load
average before and after) after each part, so that a run stopped during the long
``--large`` part keeps what it measured (``meta["complete"]`` says whether it ended).
``part`` is ``bound`` (the GEMM bound, ``when`` = ``start``, ``before_large`` or
``after_large``), ``compare`` or ``large``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402
from bench_tiled import measure_bound  # noqa: E402

DRAWS = (2000, 2000)

# The JAX side, run by --jax-python: prints one JSON line.
JAX_WORKER = r"""
import json, sys, time
import numpy as np
args = json.loads(sys.argv[1])
import jax
if args["x64"]:
    jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from ksdagg import ksdagg
sys.path.insert(0, args["bench_dir"])
from bench_ksdagg import problem
x, s = problem(args["case"], args["n"], args["d"])
X, S = jnp.array(x), jnp.array(s)
start = time.perf_counter()
out = ksdagg(X, S)
out.block_until_ready()
first = time.perf_counter() - start
best = float("inf")
for _ in range(args["rounds"]):
    start = time.perf_counter()
    out = ksdagg(X, S)
    out.block_until_ready()
    best = min(best, time.perf_counter() - start)
print(json.dumps({"first": first, "best": best, "reject": int(out), "jax": jax.__version__,
                  "dtype": str(X.dtype)}))
"""


def problem(case, n, d):
    """The README's Gamma example, or a Gaussian sample shifted by 0.1 against N(0, I)."""
    if case == "gamma":
        x = np.random.RandomState(0).gamma(5.5, 5, (n, 1))
        return x, (5 - 1) / x - 1 / 5
    x = np.random.default_rng(n + d).normal(size=(n, d)) + 0.1
    return x, -x


def _best(call, rounds):
    best = np.inf
    out = None
    for _ in range(rounds):
        start = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - start)
    return best, out


def _ours(x, s, dtype, rounds):
    import ksdnumba.gof as gof

    gof.ksdagg(x[:300], s[:300], n_resamples=DRAWS, dtype=dtype)  # loads numba's cache
    return _best(lambda: gof.ksdagg(x, s, n_resamples=DRAWS, dtype=dtype), rounds)


def _numpy_reference(x, s, rounds):
    sys.path.insert(0, str(ROOT / "tests"))
    from ksdagg_np import ksdagg

    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        out = ksdagg(x, s, B1=DRAWS[0], B2=DRAWS[1], return_dictionary=True)
        best = min(best, time.perf_counter() - start)
    return best, out


def _jax(args, case, n, d):
    if not os.path.exists(args.jax_python):
        return {"error": f"no JAX environment at {args.jax_python}"}
    payload = json.dumps(
        {
            "case": case,
            "n": n,
            "d": d,
            "rounds": args.rounds,
            "x64": args.jax_x64,
            "bench_dir": str(Path(__file__).parent),
        }
    )
    env = dict(os.environ, PYTHONPATH=args.ksdagg_src, JAX_PLATFORMS="cpu")
    proc = subprocess.run(
        [args.jax_python, "-c", JAX_WORKER, payload], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _jax_columns(jax):
    """The JAX worker's answer as flat row keys (``jax_error`` when it did not run)."""
    if "error" in jax:
        return {"jax_error": jax["error"]}
    return {
        "jax_first_s": jax["first"],
        "jax_best_s": jax["best"],
        "jax_reject": bool(jax["reject"]),
        "jax_dtype": jax["dtype"],
        "jax_version": jax["jax"],
    }


def compare(args, cases):
    rows = []
    print(
        f"{'case':>6} {'n':>6} {'d':>3} {'ours f64':>9} {'ours f32':>9} {'NumPy':>9} "
        f"{'JAX':>9} {'JAX first':>9} {'vs JAX f64':>10} {'vs JAX f32':>10}  s",
        flush=True,
    )
    for case, n, d in cases:
        x, s = problem(case, n, d)
        t64, r64 = _ours(x, s, np.float64, args.rounds)
        t32, r32 = _ours(x, s, np.float32, args.rounds)
        row = {
            "part": "compare",
            "case": case,
            "n": n,
            "d": d,
            "ours_float64_s": t64,
            "ours_float32_s": t32,
            "reject_float64": r64.reject,
            "reject_float32": r32.reject,
        }
        if n <= args.numpy_max_n:
            tn, (out, dic) = _numpy_reference(x, s, 1)
            pv = np.array([dic[f"Single test {k + 1}"]["p-value"] for k in range(len(r64.bw))])
            row.update(
                numpy_s=tn,
                numpy_same_decision=bool(out) == r64.reject,
                numpy_same_pvalues=bool(np.array_equal(pv, r64.pvalue)),
                numpy_speedup_float64=tn / t64,
            )
        jax = _jax(args, case, n, d)
        row.update(_jax_columns(jax))
        tj = jax.get("best", np.nan)
        if "jax_best_s" in row:
            # Above 1: ours is faster than ksdagg's JAX code (which runs in float32).
            row.update(jax_speedup_float64=tj / t64, jax_speedup_float32=tj / t32)
        rows.append(row)
        print(
            f"{case:>6} {n:>6} {d:>3} {t64:>9.3f} {t32:>9.3f} {row.get('numpy_s', np.nan):>9.3f} "
            f"{tj:>9.3f} {jax.get('first', np.nan):>9.3f} {tj / t64:>10.2f} {tj / t32:>10.2f}",
            flush=True,
        )
        if "error" in jax:
            print(f"       JAX: {jax['error']}", flush=True)
    return rows


def bound_rows(measured, when):
    """Rows ``part="bound"`` from :func:`bench_tiled.measure_bound`'s rates."""
    return [
        {
            "part": "bound",
            "when": when,
            "dtype": name,
            "one_thread_gflops": r["one thread"],
            "two_at_once_gflops": r["two at once (sum)"],
            "two_threaded_gflops": r["one two-threaded"],
            "bound_gflops": max(r.values()),
        }
        for name, r in measured.items()
    ]


def large(n, d, dtype, bound):
    import ksdnumba.gof as gof

    x, s = problem("gauss", n, d)
    B = DRAWS[0] + DRAWS[1] + 1
    gof.ksdagg(x[:300], s[:300], n_resamples=DRAWS, dtype=dtype)  # loads numba's cache
    start = time.perf_counter()
    res = gof.ksdagg(x, s, n_resamples=DRAWS, dtype=dtype, progress=True)
    t = time.perf_counter() - start
    dense = 2.0 * n * n * B * len(res.bw) / t / 1e9
    name = np.dtype(dtype).name
    print(
        f"n = {n}, d = {d}, {name}: {t:.1f} s; 2 n^2 B per bandwidth at "
        f"{dense:.1f} GFLOP/s = {100 * dense / bound:.0f} % of the {bound:.0f} GFLOP/s "
        f"bound (the tiles' n^2 B: {50 * dense / bound:.0f} %)",
        flush=True,
    )
    return {
        "part": "large",
        "n": n,
        "d": d,
        "draws": B,
        "bandwidths": len(res.bw),
        "dtype": name,
        "seconds": t,
        "reject": res.reject,
        "dense_gflops": dense,
        "tile_gflops": dense / 2,
        "bound_gflops": bound,
        "dense_fraction_of_bound": dense / bound,
        "tile_fraction_of_bound": dense / 2 / bound,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare", action="store_true", help="against ksdagg's NumPy and JAX")
    parser.add_argument("--large", action="store_true", help="n = --large-n, d = 10")
    parser.add_argument(
        "--quick", "--smoke", action="store_true", help="tiny sizes, to check the script"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--numpy-max-n", type=int, default=5000)
    parser.add_argument("--large-n", type=int, default=20_000)
    parser.add_argument("--jax-python", default="/work/venv-jax/bin/python")
    parser.add_argument("--ksdagg-src", default="/work/ref-src/ksdagg-src")
    parser.add_argument("--jax-x64", action="store_true")
    parser.add_argument("--large-dtypes", default="float64,float32")
    _results.add_arguments(parser, "ksdagg")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    quick = args.quick
    meta = {
        "draws": DRAWS,
        "rounds": args.rounds,
        "numpy_max_n": args.numpy_max_n,
        "jax_x64": args.jax_x64,
        "quick": quick,
        "complete": False,
    }
    rows = []

    def save():
        _results.write("ksdagg", rows, meta=meta, path=args.json)

    def bound(when):
        measured = measure_bound(size=500 if quick else 2000, rounds=2 if quick else 5)
        rows.extend(bound_rows(measured, when))
        return max(measured["float64"].values()), max(measured["float32"].values())

    bound64, bound32 = bound("start")
    if args.compare:
        cases = (
            [("gamma", 200, 1), ("gauss", 300, 10)]
            if quick
            else [("gamma", 500, 1)] + [("gauss", n, d) for n in (2000, 5000) for d in (2, 10)]
        )
        rows.extend(compare(args, cases))
        save()
    if args.large:
        n = 1000 if quick else args.large_n
        meta["large_n"] = n
        if args.compare:  # the load may have changed since the first measurement
            bound64, bound32 = bound("before_large")
        for name in args.large_dtypes.split(","):
            dtype = np.dtype(name)
            rows.append(large(n, 10, dtype, bound64 if dtype == np.float64 else bound32))
            save()
        bound("after_large")
    meta["complete"] = True
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
