"""Time what a new process pays before its first result: import, load, compile.

Each measurement runs in a fresh Python process with its own Numba cache
directory (``NUMBA_CACHE_DIR``, a temporary folder), so the user's cache is
neither used nor touched:

* ``import ksdnumba``, and the part of it that is importing NumPy and Numba;
* the first call of a small run, ``ksdd_lbfgs`` on 50 particles of a 2-D
  Gaussian mixture (the seed example's problem, serial kernels), and of a large
  evaluation, ``ksd_and_grad`` on 5,000 particles (threaded kernels), each in a
  process of its own;
* *cold*: the cache folder is empty, so the call compiles what it needs;
  *warm*: a second process on the same folder loads the compiled code.

Each row is the median of ``--repeats`` processes (a new cache folder for each
cold one), with the smallest and largest value. The rows go to
``benchmarks/results/startup.json`` (``--json PATH`` elsewhere, ``--no-json``
not at all) with the machine, the revision and the date.

    python benchmarks/bench_startup.py --repeats 3
    python benchmarks/bench_startup.py --quick      # one process each, the small call only
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402

SNIPPETS = {
    "small": (
        "x = np.random.default_rng(0).normal(size=(50, 2))\n"
        "kn.ksdd_lbfgs(x, target, bw=0.1, max_iter=5)\n"
    ),
    "large": (
        "x = np.random.default_rng(0).normal(size=(5000, 2))\nkn.ksd_and_grad(x, target, bw=0.1)\n"
    ),
}

CHILD = """
import json, time
start = time.perf_counter()
import numpy as np
import numba
dependencies = time.perf_counter()
import ksdnumba as kn
imported = time.perf_counter()
target = kn.GaussianMixture(np.array([[-1.0, 0.0], [1.0, 0.0]]), [0.3, 0.3])
{snippet}
done = time.perf_counter()
print(json.dumps({{"import_s": imported - start, "numpy_numba_s": dependencies - start,
                  "call_s": done - imported}}))
"""


def _run(snippet, cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(snippet=snippet)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"the timed process failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(repeats, calls=tuple(SNIPPETS)):
    """``{(call, state): {"import_s": [...], "numpy_numba_s": [...], "call_s": [...]}}``.

    One value per process: ``repeats`` cold and warm pairs for each call.
    """
    results = {}
    for name in calls:
        snippet = SNIPPETS[name]
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as cache_dir:
                for state in ("cold", "warm"):
                    timing = _run(snippet, cache_dir)
                    row = results.setdefault((name, state), {key: [] for key in timing})
                    for key, value in timing.items():
                        row[key].append(value)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="processes per row (default: %(default)s)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one process each, the small call only: a smoke test"
    )
    _results.add_arguments(parser, "startup")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.quick:
        args.repeats = 1
    import numba
    import numpy as np

    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, numba {numba.__version__}, "
        f"os.cpu_count() = {os.cpu_count()}; median of {args.repeats} processes"
    )
    results = measure(args.repeats, ("small",) if args.quick else tuple(SNIPPETS))
    labels = {"small": "ksdd_lbfgs, n = 50", "large": "ksd_and_grad, n = 5000"}
    print(f"{'first call':>24} {'cache':>6} {'import':>9} {'of which':>9} {'call':>9}")
    print(f"{'':>24} {'':>6} {'ksdnumba':>9} {'np+numba':>9} {'':>9}   (seconds)")
    print("-" * 64)
    rows = []
    for (name, state), row in results.items():
        med = {key: statistics.median(values) for key, values in row.items()}
        print(
            f"{labels[name]:>24} {state:>6} {med['import_s']:9.3f} "
            f"{med['numpy_numba_s']:9.3f} {med['call_s']:9.3f}"
        )
        out = {"call": name, "label": labels[name], "cache": state, "processes": len(row["call_s"])}
        for key, values in row.items():
            out[key] = med[key]
            out[key[:-2] + "_min_s"] = min(values)
            out[key[:-2] + "_max_s"] = max(values)
            out[key[:-2] + "_all_s"] = values
        rows.append(out)
    _results.write(
        "startup", rows, meta={"repeats": args.repeats, "quick": args.quick}, path=args.json
    )


if __name__ == "__main__":
    main()
