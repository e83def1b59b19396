"""Stein kernel thinning, Stein Compress++ and Stein weights against goodpoints and SciPy.

Prints tables and writes their rows to ``benchmarks/results/compression.json``
(``--json PATH`` elsewhere, ``--no-json`` not at all; ``benchmarks/_results.py``)
with the machine, the revision, the date and the load average before and after;
``part`` is ``kernel_thinning``, ``compress`` or ``weights``:

* ``kernel_thinning`` at n = 2**14, d = 10, 7 rounds (sqrt(n) = 128 points),
  IMQ kernel, ``"sclmed"``, standardised, against goodpoints 0.6.3's
  ``kt.thin_K(K, K, 7, delta=0.5, seed=0, mean0=True)`` plus the time to build its
  dense ``K`` (``SteinMatrix.toarray()``, 2 GiB): wall time, peak RSS of the
  process, whether the indices are identical, and the speed-up (goodpoints' time,
  building ``K`` included, over ours).
* ``kernel_thinning(compress=True)`` (Stein Compress++, oversampling g = 4) at
  n = 2**16 and 2**18, d = 10, against goodpoints' compiled
  ``compress.compresspp_kt`` with its *Gaussian* kernel (squared bandwidth 2 d,
  the median squared distance of a standard normal sample) on the same points and
  g; and n = 2**20 for ours alone. The speed-up is goodpoints' time over ours,
  for two different kernels: the Stein kernel costs more per pair.
* ``stein_weights`` at n = 2**14, d = 10 (operator products, dense face blocks):
  time, the KKT residual reached, iterations, support; and at n = 2,000 against
  SciPy's ``minimize(method="SLSQP")`` on the dense matrix (at most 50 of its
  iterations at that size, each O(n^3); 500 at the quick run's n = 500).

The sample is a standard normal one with scores ``-x`` (target N(0, I)); the
weights' sample is shifted by 0.5 and scaled by 1.2 so that there is a bias to
correct. Each measurement runs in a fresh subprocess (its own peak RSS), after a
small call that compiles or loads the kernels; times are single runs (the large
ones take seconds to minutes), the best of 2 below 10 s.

Run as ``python benchmarks/bench_compression.py`` from the repository root with
the package installed (or ``PYTHONPATH=.``) and goodpoints 0.6.3: about 10
minutes on a 2-core machine; ``--quick`` runs small sizes in a minute, and writes
no results file unless ``--json PATH`` is given.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402
from bench_objective import _peak_rss_mib  # noqa: E402


def _problem(n, d, seed=0, biased=False):
    x = np.random.default_rng(seed).standard_normal((n, d))
    if biased:
        x = 1.2 * x + 0.5
    return x, -x


def _timed(call, budget=10.0):
    """``(seconds, result)``: the best of 2 when a call takes less than ``budget``."""
    start = time.perf_counter()
    out = call()
    best = time.perf_counter() - start
    if best < budget:
        start = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - start)
    return best, out


# ------------------------------------------------------------------ workers (subprocesses)


def _work_kt_ours(n, d, rounds, out):
    from ksdnumba.compression import kernel_thinning

    x, s = _problem(n, d)
    kernel_thinning(x[:4096], s[:4096], 3, rng=0)  # compile or load the kernels
    seconds, res = _timed(lambda: kernel_thinning(x, s, rounds, rng=0))
    np.save(out, res.indices)
    return {"seconds": seconds, "ksd": res.ksd}


def _work_kt_goodpoints(n, d, rounds, out):
    from goodpoints import kt

    from ksdnumba._preconditioners import stein_matrix_from_sample

    x, s = _problem(n, d)
    stein_matrix_from_sample(x[:512], s[:512])[0].toarray()  # compile or load
    start = time.perf_counter()
    K = stein_matrix_from_sample(x, s)[0].toarray()
    build = time.perf_counter() - start
    thin, idx = _timed(lambda: kt.thin_K(K, K, rounds, delta=0.5, seed=0, mean0=True))
    np.save(out, np.asarray(idx, dtype=np.int64))
    return {"build_seconds": build, "thin_seconds": thin, "seconds": build + thin}


def _work_cpp_ours(n, d, g, out):
    from ksdnumba.compression import kernel_thinning

    x, s = _problem(n, d)
    k = (n.bit_length() - 1) // 2
    kernel_thinning(x[:16384], s[:16384], 7, rng=0, compress=True, oversampling=g)  # compile
    seconds, res = _timed(lambda: kernel_thinning(x, s, k, rng=0, compress=True, oversampling=g))
    np.save(out, res.indices)
    return {"seconds": seconds, "ksd": res.ksd, "size": int(res.indices.size)}


def _work_cpp_goodpoints(n, d, g, out):
    from goodpoints import compress

    x, _ = _problem(n, d)
    params = np.array([2.0 * d])
    compress.compresspp_kt(x[:4096], b"gaussian", k_params=params, g=g, seed=0)
    seconds, idx = _timed(
        lambda: compress.compresspp_kt(
            x, b"gaussian", k_params=params, g=g, num_bins=4, delta=0.5, seed=0
        )
    )
    np.save(out, np.asarray(idx, dtype=np.int64))
    return {"seconds": seconds, "size": int(len(idx))}


def _work_weights_ours(n, d, out):
    from ksdnumba.compression import stein_weights

    x, s = _problem(n, d, biased=True)
    stein_weights(x[:200], s[:200])
    seconds, res = _timed(lambda: stein_weights(x, s))
    np.save(out, res.weights)
    return {
        "seconds": seconds,
        "kkt_residual": res.kkt_residual,
        "nit": res.nit,
        "support": int(res.support.size),
        "ksd": res.ksd,
        "success": res.success,
        "message": res.message,
    }


def _work_weights_slsqp(n, d, out):
    from scipy.optimize import minimize

    from ksdnumba._preconditioners import stein_matrix_from_sample

    x, s = _problem(n, d, biased=True)
    K = stein_matrix_from_sample(x, s)[0].toarray()
    start = time.perf_counter()
    res = minimize(
        lambda w: w @ K @ w,
        np.full(n, 1.0 / n),
        jac=lambda w: 2.0 * K @ w,
        method="SLSQP",
        bounds=[(0.0, None)] * n,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(n)}],
        # SLSQP's O(n^3) steps take seconds each at n = 2,000: 50 of them at most there.
        options={"ftol": 1e-15, "maxiter": 50 if n > 1000 else 500},
    )
    seconds = time.perf_counter() - start
    w = np.maximum(res.x, 0.0)
    w /= w.sum()
    g = K @ w
    mu = w @ g
    kkt = max(np.max(mu - g), np.max(np.abs(g[w > 1e-12 * w.max()] - mu))) / mu
    np.save(out, w)
    return {
        "seconds": seconds,
        "nit": int(res.nit),
        "ksd": float(np.sqrt(mu)),
        "kkt_residual": float(kkt),
        "message": str(res.message),
    }


WORKERS = {
    "kt_ours": _work_kt_ours,
    "kt_goodpoints": _work_kt_goodpoints,
    "cpp_ours": _work_cpp_ours,
    "cpp_goodpoints": _work_cpp_goodpoints,
    "weights_ours": _work_weights_ours,
    "weights_slsqp": _work_weights_slsqp,
}


def _run(name, *args, out):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", name, *map(str, args), out],
        capture_output=True,
        text=True,
        env=env,
        timeout=7200,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ sections


def bench_kt(n, d, rounds, tmp):
    print(f"\nkernel_thinning, n = {n}, d = {d}, rounds = {rounds}", flush=True)
    ours = _run("kt_ours", n, d, rounds, out=os.path.join(tmp, "a.npy"))
    row = {
        "part": "kernel_thinning",
        "n": n,
        "d": d,
        "rounds": rounds,
        "ours_seconds": ours["seconds"],
        "ours_peak_rss_mib": ours["peak_rss_mib"],
        "ksd": ours["ksd"],
    }
    try:
        theirs = _run("kt_goodpoints", n, d, rounds, out=os.path.join(tmp, "b.npy"))
    except RuntimeError as exc:
        row["goodpoints"] = f"failed: {str(exc).splitlines()[-1]}"
    else:
        row.update(
            goodpoints_build_seconds=theirs["build_seconds"],
            goodpoints_thin_seconds=theirs["thin_seconds"],
            goodpoints_seconds=theirs["seconds"],
            goodpoints_peak_rss_mib=theirs["peak_rss_mib"],
            speedup=theirs["seconds"] / ours["seconds"],
            same_indices=bool(
                np.array_equal(
                    np.load(os.path.join(tmp, "a.npy")), np.load(os.path.join(tmp, "b.npy"))
                )
            ),
        )
    print(f"  ours      {row['ours_seconds']:8.2f} s  {row['ours_peak_rss_mib']:7.0f} MiB")
    if "goodpoints_seconds" in row:
        print(
            f"  goodpoints {row['goodpoints_seconds']:7.2f} s  "
            f"{row['goodpoints_peak_rss_mib']:7.0f} MiB  (dense K "
            f"{row['goodpoints_build_seconds']:.2f} s + thin_K "
            f"{row['goodpoints_thin_seconds']:.2f} s)  same indices: {row['same_indices']}",
            flush=True,
        )
    return row


def bench_compress(sizes, d, g, ours_only, tmp):
    rows = []
    print(
        f"\nStein Compress++ (ours) and goodpoints' compresspp_kt (Gaussian kernel), "
        f"d = {d}, g = {g}",
        flush=True,
    )
    print(f"{'n':>9} {'ours s':>9} {'ours RSS':>9} {'gp s':>9} {'gp RSS':>9} {'speed-up':>8}")
    for n in sizes:
        ours = _run("cpp_ours", n, d, g, out=os.path.join(tmp, "a.npy"))
        row = {
            "part": "compress",
            "n": n,
            "d": d,
            "g": g,
            "size": ours["size"],
            "ours_seconds": ours["seconds"],
            "ours_peak_rss_mib": ours["peak_rss_mib"],
            "ksd": ours["ksd"],
        }
        if n not in ours_only:
            theirs = _run("cpp_goodpoints", n, d, g, out=os.path.join(tmp, "b.npy"))
            row.update(
                goodpoints_seconds=theirs["seconds"],
                goodpoints_peak_rss_mib=theirs["peak_rss_mib"],
                speedup=theirs["seconds"] / ours["seconds"],
            )
            tail = (
                f"{row['goodpoints_seconds']:>9.2f} {row['goodpoints_peak_rss_mib']:>6.0f}MiB"
                f" {row['speedup']:>6.2f}x"
            )
        else:
            tail = "  (ours only)"
        rows.append(row)
        print(
            f"{n:>9} {row['ours_seconds']:>9.2f} {row['ours_peak_rss_mib']:>6.0f}MiB " + tail,
            flush=True,
        )
    return rows


def bench_weights(n_large, n_small, d, tmp):
    rows = []
    print(f"\nstein_weights, d = {d}", flush=True)
    for n in (n_small, n_large):
        ours = _run("weights_ours", n, d, out=os.path.join(tmp, "a.npy"))
        row = {"part": "weights", "n": n, "d": d, **{f"ours_{k}": v for k, v in ours.items()}}
        line = (
            f"  n = {n:>6}: ours {ours['seconds']:8.2f} s, KKT residual "
            f"{ours['kkt_residual']:.1e}, {ours['nit']} iterations, support "
            f"{ours['support']}, {ours['peak_rss_mib']:.0f} MiB"
        )
        if n == n_small:
            theirs = _run("weights_slsqp", n, d, out=os.path.join(tmp, "b.npy"))
            row.update({f"slsqp_{k}": v for k, v in theirs.items()})
            row["speedup"] = theirs["seconds"] / ours["seconds"]
            row["max_weight_difference"] = float(
                np.max(
                    np.abs(
                        np.load(os.path.join(tmp, "a.npy")) - np.load(os.path.join(tmp, "b.npy"))
                    )
                )
            )
            line += (
                f"\n             SLSQP {theirs['seconds']:7.2f} s, KKT residual "
                f"{theirs['kkt_residual']:.1e}, KSD {theirs['ksd']:.6g} (ours "
                f"{ours['ksd']:.6g}), {theirs['message']}"
            )
        rows.append(row)
        print(line, flush=True)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    _results.add_arguments(parser, "compression")
    args = parser.parse_args(argv)
    if args.worker:
        name, *rest, out = args.worker
        result = WORKERS[name](*map(int, rest), out)
        result["peak_rss_mib"] = _peak_rss_mib()
        print(json.dumps(result))
        return
    import tempfile

    if args.quick:
        kt_case, cpp_sizes, ours_only, weights = (2**11, 10, 5), [2**12, 2**14], [], (2**11, 500)
    else:
        kt_case, cpp_sizes, ours_only = (2**14, 10, 7), [2**16, 2**18, 2**20], [2**20]
        weights = (2**14, 2000)
    d, g = 10, 4
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench_kt(*kt_case, tmp)]
        rows += bench_compress(cpp_sizes, d, g, ours_only, tmp)
        rows += bench_weights(*weights, d, tmp)
    try:
        from importlib.metadata import version

        goodpoints = version("goodpoints")
    except Exception:  # not installed, or no metadata
        goodpoints = None
    meta = {
        "goodpoints": goodpoints,
        "oversampling": g,
        "ours_only": ours_only,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
        "quick": args.quick,
    }
    _results.write("compression", rows, meta=meta, path=args.json)


if __name__ == "__main__":
    main()
