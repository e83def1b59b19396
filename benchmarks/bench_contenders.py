"""Time the pair sums of SVGD and MMD descent, and the examples that use them.

Prints tables and writes their rows to ``benchmarks/results/contenders.json``
(``--json PATH`` elsewhere, ``--no-json`` not at all) with the machine, the
revision and the date; ``part`` is ``kernels`` or ``examples``:

* The SVGD direction (``kernels._cpu.gaussian_svgd_direction``, the pair sum of
  one SVGD iteration; the target's score is computed once, outside the timing)
  for each particle count ``n`` and dimension ``d``: time per call (median of a
  few warm calls after one that compiles or loads the kernels), pairs per second
  (n^2 / t) and the peak RSS of the process.
* The MMD objective with its gradient (what each L-BFGS-B evaluation of
  ``kn.mmd_lbfgs`` costs) with ``m = n`` target samples: ``n^2`` pairs within
  the particles and ``n m`` with the samples, so pairs per second is
  ``(n^2 + n m) / t``. The samples' own sum is computed once, at setup.
* The end-to-end wall time of ``examples/plot_simple_gaussian.py`` and
  ``examples/plot_quantitative_expe_gaussian.py`` (a fresh interpreter each,
  ``MPLBACKEND=Agg``, in a temporary directory; after one untimed run that fills
  numba's cache), in an environment without thread-count variables.

Each (kernel, n, d) runs in a fresh subprocess, so that the peak RSS is that
size's own. Run as ``python benchmarks/bench_contenders.py`` (about a minute on
a 2-core machine); ``--quick`` for a smoke test (n = 1000 and 2000, no examples);
``--help`` lists the options.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

# Sibling script: its machine description and timing helpers.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402
from bench_objective import (  # noqa: E402
    THREAD_VARS,
    _peak_rss_mib,
    _repeats,
    _time_calls,
)

BW = 0.1
EXAMPLES = ("plot_simple_gaussian", "plot_quantitative_expe_gaussian")
EXAMPLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def _problem(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, d))


def _worker(kind, n, d):
    from ksdnumba.contenders import _MMD
    from ksdnumba.kernels import _cpu

    x, other = _problem(n, d)
    if kind == "svgd":
        s = -x  # the score of N(0, I)

        def call():
            return _cpu.gaussian_svgd_direction(x, s, BW)

        pairs = n * n
        warm = x[: min(n, 1000)]
        _cpu.gaussian_svgd_direction(warm, -warm, BW)
    elif kind == "mmd":
        mmd = _MMD(other, BW)  # m = n samples; their own sum once, here

        def call():
            return mmd.value_and_grad(x)

        pairs = n * n + n * other.shape[0]
        _MMD(other[:100], BW).value_and_grad(x[: min(n, 1000)])
    else:
        raise SystemExit(f"unknown kernel {kind!r}")
    rss_before = _peak_rss_mib()
    t, times = _time_calls(call, _repeats(n))
    return {
        "kernel": kind,
        "n": n,
        "d": d,
        "pairs": pairs,
        "time_s": t,
        "times_s": times,
        "rss_before_mib": rss_before,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _run_worker(args, timeout=900):
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _time_example(name, env):
    path = os.path.join(EXAMPLES_DIR, f"{name}.py")
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(2):  # the first run fills numba's cache; the second is timed
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, path],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            elapsed = time.perf_counter() - start
            if proc.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{proc.stdout}\n{proc.stderr}")
    return {"example": name, "wall_s": elapsed}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[1000, 5000, 20000],
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
        default=["svgd", "mmd"],
        help="svgd and/or mmd, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--no-examples", action="store_true", help="skip the end-to-end runs of the examples"
    )
    parser.add_argument(
        "--quick", action="store_true", help="n = 1000 and 2000, no examples: a smoke test"
    )
    _results.add_arguments(parser, "contenders")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, n, d = args.worker
        print(json.dumps(_worker(kind, int(n), int(d))))
        return

    if args.quick:
        args.sizes, args.no_examples = [1000, 2000], True
    machine = _results.machine()
    print(
        f"machine: {machine['cpu']}, os.cpu_count() = {machine['cores']}, "
        f"numba threads = {machine['numba_threads']}"
    )
    print(
        f"python {machine['python']}, numpy {machine['numpy']}, numba {machine['numba']}, "
        f"scipy {machine['scipy']}; thread env vars: {machine['thread_env'] or 'none'}"
    )
    if hasattr(os, "getloadavg"):
        print("load average before the runs: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    meta = {"bw": BW, "sizes": args.sizes, "dims": args.dims, "quick": args.quick}

    print(
        f"\nGaussian kernel pair sums, bw = {BW}, float64; svgd: the SVGD direction "
        "(n^2 pairs); mmd: MMD^2 and its gradient with m = n samples (2 n^2 pairs); "
        "one fresh process per size"
    )
    header = (
        f"{'kernel':>6} {'n':>7} {'d':>3} {'time/call':>11} {'Gpairs/s':>9} "
        f"{'repeats':>7} {'RSS before':>10} {'peak RSS':>9}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for kind in args.kernels:
        for d in args.dims:
            for n in args.sizes:
                r = _run_worker([kind, n, d])
                r["gpairs_per_s"] = r["pairs"] / r["time_s"] / 1e9
                r["repeats"] = len(r["times_s"])
                rows.append({"part": "kernels", **r})
                print(
                    f"{kind:>6} {n:>7} {d:>3} {r['time_s'] * 1e3:>9.2f}ms "
                    f"{r['gpairs_per_s']:>9.3f} {len(r['times_s']):>7} "
                    f"{r['rss_before_mib']:>7.0f}MiB {r['peak_rss_mib']:>6.0f}MiB",
                    flush=True,
                )

    if not args.no_examples:
        env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
        env["MPLBACKEND"] = "Agg"
        print(
            "\nexamples end to end (fresh interpreter, after one untimed run; no thread env vars)"
        )
        for name in EXAMPLES:
            r = _time_example(name, env)
            rows.append({"part": "examples", **r})
            print(f"{name + '.py':>40} {r['wall_s']:>7.2f} s", flush=True)

    _results.write("contenders", rows, meta=meta, path=args.json)


if __name__ == "__main__":
    main()
