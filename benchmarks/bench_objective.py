"""Time the KSD objective (value and gradient) and the seed workload.

Prints tables and writes their rows to ``benchmarks/results/objective.json``
(``--json PATH`` elsewhere, ``--no-json`` not at all), with the machine, the
revision and the date (``benchmarks/_results.py``); ``part`` is ``objective``,
``seed_workload`` or ``torch``:

* ``kn.ksd_and_grad`` on a 2-component Gaussian mixture, for each kernel
  (Gaussian and IMQ by default), particle count ``n`` and dimension ``d``: time per call
  (median of a few warm calls, after one call that compiles or loads the
  kernels), pairs per second (n^2 / t) and the peak RSS of the process. Each
  (n, d) runs in a fresh subprocess, so that the peak RSS is that size's own.
* The seed workload: the 9 fits of ``examples/plot_minima.py`` (50 particles,
  bw = 0.1, ``store=True``), total wall time after a warm-up fit, in a
  subprocess whose environment has no thread-count variables.
* When ``torch`` and ``ksddescent`` are importable: ksddescent's dense PyTorch
  Gaussian Stein kernel plus autograd (what its ``ksdd_lbfgs`` evaluates at each
  step) on the same particles, in float32 and float64, with the ratio of our
  time to theirs and the relative difference of the two KSD^2 values. Neither
  package is a dependency of ksdnumba; without them the comparison is skipped.

Run as ``python benchmarks/bench_objective.py`` (about 1-2 minutes on a 2-core
machine); ``--quick`` for a smoke test at small sizes; ``--help`` lists the options.
"""

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402
from _results import THREAD_VARS  # noqa: E402, F401  (bench_contenders imports it from here)

BW = 0.1


def _peak_rss_mib():
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _repeats(n):
    return 7 if n <= 5000 else 3 if n <= 20000 else 2


def _problem(n, d, seed=0):
    """A 2-component mixture in d dimensions and n standard normal particles."""
    import ksdnumba as kn

    means = np.zeros((2, d))
    means[0, 0], means[1, 0] = -1.0, 1.0
    target = kn.GaussianMixture(means, [0.3, 0.3])
    x = np.random.default_rng(seed).standard_normal((n, d))
    return target, x


def _time_calls(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), times


# --------------------------------------------------------------------------- workers
# Each runs in its own interpreter and prints one JSON line.


def _worker_ours(n, d, kernel):
    import ksdnumba as kn

    target, x = _problem(n, d)
    # Compiles (or loads from the cache) the same parallel kernels as size n,
    # without paying a full call at large n.
    kn.ksd_and_grad(x[: min(n, 1000)], target, kernel=kernel, bw=BW)
    rss_before = _peak_rss_mib()
    out = {}

    def call():
        out["value"] = kn.ksd_and_grad(x, target, kernel=kernel, bw=BW)[0]

    t, times = _time_calls(call, _repeats(n))
    return {
        "n": n,
        "d": d,
        "kernel": kernel,
        "time_s": t,
        "times_s": times,
        "value": out["value"],
        "rss_before_mib": rss_before,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _torch_mixture_score(torch, d, dtype):
    """Score of the same mixture as :func:`_problem`, in torch, differentiable."""
    means = torch.zeros(2, d, dtype=dtype)
    means[0, 0], means[1, 0] = -1.0, 1.0
    var = 0.3

    def score(x):
        diff = x[:, None, :] - means[None, :, :]  # (n, 2, d)
        resp = torch.softmax(-0.5 * (diff**2).sum(-1) / var, dim=1)  # equal weights
        return -(resp[:, :, None] * diff).sum(1) / var

    return score


def _worker_torch(n, d, dtype_name):
    import torch
    from ksddescent.kernels import gaussian_stein_kernel_single

    dtype = {"float32": torch.float32, "float64": torch.float64}[dtype_name]
    _, x_np = _problem(n, d)
    score = _torch_mixture_score(torch, d, dtype)
    out = {}

    def call():
        # What ksddescent's ksdd_lbfgs does at each evaluation.
        x = torch.tensor(x_np, dtype=dtype, requires_grad=True)
        loss = gaussian_stein_kernel_single(x, score(x), BW).sum() / n**2
        loss.backward()
        out["value"] = loss.item()
        out["grad"] = x.grad.numpy()

    call()
    rss_before = _peak_rss_mib()
    t, times = _time_calls(call, _repeats(n))
    return {
        "n": n,
        "d": d,
        "dtype": dtype_name,
        "time_s": t,
        "times_s": times,
        "value": out["value"],
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "rss_before_mib": rss_before,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _seed_inits(n_particles=50):
    # The three initialisations of examples/plot_minima.py, same seed and order.
    rng = np.random.default_rng(0)
    init1 = 0.5 * rng.standard_normal((n_particles, 2))
    init1[:, 0] = 0.0
    init2 = 0.5 * rng.standard_normal((n_particles, 2))
    init3 = 0.5 * rng.standard_normal((n_particles, 2))
    init3[:, 0] = 0.05 * rng.standard_normal(n_particles)
    return [init1, init2, init3]


def _worker_seed():
    import numba

    import ksdnumba as kn

    inits = _seed_inits()
    targets = [kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [v, v]) for v in (0.1, 0.3, 2.0)]
    kn.ksdd_lbfgs(inits[0], targets[0], bw=BW, max_iter=3, store=True)  # warm-up
    fits = []
    start = time.perf_counter()
    for target in targets:
        for x0 in inits:
            t0 = time.perf_counter()
            res = kn.ksdd_lbfgs(x0, target, bw=BW, store=True)
            fits.append(
                {
                    "time_s": time.perf_counter() - t0,
                    "nit": int(res.nit),
                    "nfev": int(res.nfev),
                    "fun": float(res.fun),
                    "success": bool(res.success),
                }
            )
    total = time.perf_counter() - start
    return {
        "total_s": total,
        "fits": fits,
        "numba_threads": numba.get_num_threads(),
        "peak_rss_mib": _peak_rss_mib(),
    }


def _run_worker(args, env=None, timeout=900):
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def _comparison_available():
    missing = [m for m in ("torch", "ksddescent") if importlib.util.find_spec(m) is None]
    return missing


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[1000, 5000, 20000, 50000],
        help="particle counts, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--dims",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[2],
        help="dimensions, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--kernels",
        type=lambda s: s.split(","),
        default=["gaussian", "imq"],
        help="Stein kernels, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--torch-sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[1000, 5000],
        help="particle counts for the ksddescent comparison (default: %(default)s)",
    )
    parser.add_argument("--no-seed", action="store_true", help="skip the seed workload")
    parser.add_argument(
        "--no-torch", action="store_true", help="skip the ksddescent (PyTorch) comparison"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="n = 1000 and 2000 and a small comparison: a smoke test",
    )
    _results.add_arguments(parser, "objective")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, *rest = args.worker
        if kind == "ours":
            result = _worker_ours(int(rest[0]), int(rest[1]), rest[2])
        elif kind == "torch":
            result = _worker_torch(int(rest[0]), int(rest[1]), rest[2])
        elif kind == "seed":
            result = _worker_seed()
        else:
            raise SystemExit(f"unknown worker {kind!r}")
        print(json.dumps(result))
        return

    if args.quick:
        args.sizes, args.torch_sizes = [1000, 2000], [1000]
    machine = _results.machine()
    print(
        f"machine: {machine['cpu']}, os.cpu_count() = {machine['cores']}, "
        f"numba threads = {machine['numba_threads']}"
    )
    print(
        f"python {machine['python']}, numpy {machine['numpy']}, numba {machine['numba']}, "
        f"scipy {machine['scipy']}; thread env vars: {machine['thread_env'] or 'none'}"
    )
    meta = {
        "bw": BW,
        "sizes": args.sizes,
        "dims": args.dims,
        "kernels": args.kernels,
        "quick": args.quick,
    }
    rows = []

    print(
        f"\nkn.ksd_and_grad, bw = {BW} (IMQ: beta = 0.5), 2-component GaussianMixture, "
        "float64; one fresh process per size"
    )
    header = (
        f"{'kernel':>8} {'n':>7} {'d':>3} {'time/call':>11} {'Gpairs/s':>9} "
        f"{'repeats':>7} {'RSS before':>10} {'peak RSS':>9}"
    )
    print(header)
    print("-" * len(header))
    ours = []
    for kernel in args.kernels:
        for d in args.dims:
            for n in args.sizes:
                r = _run_worker(["ours", n, d, kernel])
                r["gpairs_per_s"] = n**2 / r["time_s"] / 1e9
                r["repeats"] = len(r["times_s"])
                ours.append(r)
                rows.append({"part": "objective", **r})
                print(
                    f"{kernel:>8} {n:>7} {d:>3} {r['time_s'] * 1e3:>9.2f}ms "
                    f"{r['gpairs_per_s']:>9.3f} {len(r['times_s']):>7} "
                    f"{r['rss_before_mib']:>7.0f}MiB {r['peak_rss_mib']:>6.0f}MiB",
                    flush=True,
                )

    if not args.no_seed:
        env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
        seed = _run_worker(["seed"], env=env)
        nit = sum(f["nit"] for f in seed["fits"])
        nfev = sum(f["nfev"] for f in seed["fits"])
        successes = sum(f["success"] for f in seed["fits"])
        print(
            f"\nseed workload (examples/plot_minima.py: 9 fits of 50 particles, bw = {BW}, "
            f"store=True, no thread env vars, {seed['numba_threads']} numba threads): "
            f"{seed['total_s']:.2f} s total, {nit} iterations, {nfev} evaluations, "
            f"{seed['total_s'] / nfev * 1e3:.3f} ms/evaluation, {successes}/9 successes"
        )
        rows.append(
            {
                "part": "seed_workload",
                "fits": len(seed["fits"]),
                "total_s": seed["total_s"],
                "nit": nit,
                "nfev": nfev,
                "ms_per_evaluation": seed["total_s"] / nfev * 1e3,
                "us_per_evaluation": seed["total_s"] / nfev * 1e6,
                "successes": successes,
                "numba_threads": seed["numba_threads"],
                "peak_rss_mib": seed["peak_rss_mib"],
                "per_fit": seed["fits"],
            }
        )

    missing = _comparison_available()
    if args.no_torch:
        print("\nksddescent (PyTorch) comparison: skipped (--no-torch)")
        meta["torch"] = "skipped: --no-torch"
    elif missing:
        print(
            f"\nksddescent (PyTorch) comparison: skipped ({' and '.join(missing)} "
            "not importable; `pip install torch` and `pip install ksddescent --no-deps` "
            "to enable it)"
        )
        meta["torch"] = f"skipped: not importable: {', '.join(missing)}"
    else:
        by_size = {(r["n"], r["d"]): r for r in ours if r["kernel"] == "gaussian"}
        torch_rows = []
        print(
            "\nksddescent: dense gaussian_stein_kernel_single + autograd (torch), "
            "same particles; ratio = ours / theirs (< 1: ours faster)"
        )
        header = (
            f"{'n':>6} {'d':>3} {'ours f64':>10} {'torch f32':>10} {'ratio':>6} "
            f"{'torch f64':>10} {'ratio':>6} {'|dKSD2|/KSD2':>12} {'torch RSS':>9}"
        )
        print(header)
        print("-" * len(header))
        for d in args.dims:
            for n in args.torch_sizes:
                mine = by_size.get((n, d)) or _run_worker(["ours", n, d, "gaussian"])
                t32 = _run_worker(["torch", n, d, "float32"])
                t64 = _run_worker(["torch", n, d, "float64"])
                rel = abs(mine["value"] - t64["value"]) / abs(t64["value"])
                row = {
                    "part": "torch",
                    "n": n,
                    "d": d,
                    "ours_s": mine["time_s"],
                    "torch_float32_s": t32["time_s"],
                    "torch_float64_s": t64["time_s"],
                    "ratio_float32": mine["time_s"] / t32["time_s"],
                    "ratio_float64": mine["time_s"] / t64["time_s"],
                    "speedup_float32": t32["time_s"] / mine["time_s"],
                    "speedup_float64": t64["time_s"] / mine["time_s"],
                    "value_rel_diff_float64": rel,
                    "torch_peak_rss_mib": max(t32["peak_rss_mib"], t64["peak_rss_mib"]),
                    "torch_threads": t64["torch_threads"],
                    "torch_version": t64["torch_version"],
                }
                torch_rows.append(row)
                print(
                    f"{n:>6} {d:>3} {row['ours_s'] * 1e3:>8.2f}ms "
                    f"{row['torch_float32_s'] * 1e3:>8.2f}ms {row['ratio_float32']:>6.3f} "
                    f"{row['torch_float64_s'] * 1e3:>8.2f}ms {row['ratio_float64']:>6.3f} "
                    f"{rel:>12.1e} {row['torch_peak_rss_mib']:>6.0f}MiB",
                    flush=True,
                )
        if torch_rows:
            print(
                f"(torch {torch_rows[0]['torch_version']}, "
                f"{torch_rows[0]['torch_threads']} threads)"
            )
        rows += torch_rows

    _results.write("objective", rows, meta=meta, path=args.json)


if __name__ == "__main__":
    main()
