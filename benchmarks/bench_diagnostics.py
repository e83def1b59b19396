"""Running KSD curves: ksd_curve against stein-thinning's ksd, and ksd_diagnostic's cost.

Prints tables and writes their rows to ``benchmarks/results/diagnostics.json``
(``--json PATH`` elsewhere, ``--no-json`` not at all; ``benchmarks/_results.py``)
with the machine, the revision, the date and the load average before and after;
``part`` is ``ksd_curve`` or ``ksd_diagnostic``:

* ``kn.ksd_curve(x, s)`` (one pass over the Stein matrix's tiles,
  ``SteinMatrix.prefix_sums``) and stein-thinning 0.2.0's
  ``stein_thinning.stein.ksd(integrand, n)`` (a Python loop over the rows, each
  evaluating the kernel against the rows before it in NumPy), with the integrand
  its ``thin`` builds (``_make_stein_integrand``), both with
  ``preconditioner="sclmed"`` and ``standardize=True``, on a standard normal
  sample with its scores ``-x``, for n = 1e3 to 3e4 and d = 2 and 10: wall time,
  peak RSS of the process, and the largest relative difference of the values.
  Each run is a fresh subprocess (its own peak RSS); ours is the best of 3 calls
  after one that compiles or loads the kernels, theirs the best of 3, or one call
  when it takes more than a second, with ``OPENBLAS_NUM_THREADS=1`` (its BLAS
  threads slow it on a 2-core machine, as ``bench_thinning.py`` found). Theirs
  costs O(n^2 d^2): a run whose time, extrapolated from the previous one, would
  exceed what is left of ``--their-budget`` seconds is skipped and reported.
* ``kn.ksd_diagnostic`` on 4 chains of N(0, I_10) draws with their scores, for
  1,000 and 10,000 draws a chain (best of 3 after one call), with the kernel
  values it computes (``pairs``) per second.

Run as ``python benchmarks/bench_diagnostics.py`` from the repository root with
the package installed (or ``PYTHONPATH=.``), under ``flock /tmp/bench.lock`` on a
shared machine: a few minutes on 2 cores, most of them stein-thinning's;
``--quick`` for a small run, which writes no results file unless ``--json PATH``
is given.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402
from bench_objective import _peak_rss_mib  # noqa: E402

OPTIONS = {"preconditioner": "sclmed", "standardize": True}


def _problem(n, d):
    x = np.random.default_rng(n + d).standard_normal((n, d))
    return x, -x


def _best(call, repeats, single_if_over=None):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
        if single_if_over is not None and times[-1] > single_if_over:
            break
    # The best of the repeats: the machine is shared, and a slower run measures the others.
    return min(times), out


def _worker(which, n, d, out):
    x, s = _problem(n, d)
    if which == "ours":
        from ksdnumba.diagnostics import ksd_curve

        ksd_curve(x[:500], s[:500], **OPTIONS)  # compile or load the kernels
        seconds, values = _best(lambda: ksd_curve(x, s, **OPTIONS), 3)
    else:
        from stein_thinning.stein import ksd
        from stein_thinning.thinning import _make_stein_integrand

        integrand = _make_stein_integrand(x, s, **OPTIONS)
        seconds, values = _best(lambda: ksd(integrand, n), 3, single_if_over=1.0)
    np.save(out, np.asarray(values, dtype=np.float64))
    print(json.dumps({"seconds": seconds, "peak_rss_mib": _peak_rss_mib()}))


def _run(which, n, d, out):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    if which == "theirs":
        env["OPENBLAS_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", which, str(n), str(d), out],
        capture_output=True,
        text=True,
        env=env,
        timeout=3600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{which} {n} {d} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_curve(sizes, their_budget, tmp):
    try:
        import stein_thinning  # noqa: F401

        have_theirs = True
    except ImportError:
        have_theirs = False
    rows, spent, rate = [], 0.0, None  # rate: their seconds per n^2 d^2
    print(
        f"{'n':>6} {'d':>3} {'ours s':>9} {'ours RSS':>9} {'theirs s':>9} {'theirs RSS':>10} "
        f"{'speed-up':>9} {'max rel diff':>12}",
        flush=True,
    )
    for n, d in sizes:
        ours_file, theirs_file = os.path.join(tmp, "ours.npy"), os.path.join(tmp, "theirs.npy")
        ours = _run("ours", n, d, ours_file)
        row = {
            "part": "ksd_curve",
            "n": n,
            "d": d,
            "ours_seconds": ours["seconds"],
            "ours_peak_rss_mib": ours["peak_rss_mib"],
        }
        cost = n * n * d * d
        predicted = None if rate is None else rate * cost
        if not have_theirs:
            row["theirs"] = "not installed"
        elif predicted is not None and spent + predicted > their_budget:
            row["theirs"] = (
                f"skipped (predicted {predicted:.0f} s, budget left {their_budget - spent:.0f} s)"
            )
        else:
            theirs = _run("theirs", n, d, theirs_file)
            spent += theirs["seconds"]
            rate = theirs["seconds"] / cost
            a, b = np.load(ours_file), np.load(theirs_file)
            row.update(
                theirs_seconds=theirs["seconds"],
                theirs_peak_rss_mib=theirs["peak_rss_mib"],
                speedup=theirs["seconds"] / ours["seconds"],
                max_rel_diff=float(np.max(np.abs(a - b) / np.abs(b))),
            )
        rows.append(row)
        if "theirs_seconds" in row:
            tail = (
                f"{row['theirs_seconds']:>9.3f} {row['theirs_peak_rss_mib']:>7.0f}MiB "
                f"{row['speedup']:>8.0f}x {row['max_rel_diff']:>12.1e}"
            )
        else:
            tail = f"  {row['theirs']}"
        print(
            f"{n:>6} {d:>3} {ours['seconds']:>9.4f} {ours['peak_rss_mib']:>6.0f}MiB " + tail,
            flush=True,
        )
    return rows


def bench_diagnostic(draws_per_chain, n_chains=4, d=10):
    from ksdnumba.diagnostics import ksd_diagnostic

    rows = []
    print(f"\nksd_diagnostic, {n_chains} chains, d = {d}")
    for n in draws_per_chain:
        x = np.random.default_rng(n).standard_normal((n_chains, n, d))
        ksd_diagnostic(x[:, :100], -x[:, :100])  # compile or load
        seconds, res = _best(lambda x=x: ksd_diagnostic(x, -x), 3)
        pairs = n_chains * n * n / 2 + (n_chains * n) ** 2 / 2
        rows.append(
            {
                "part": "ksd_diagnostic",
                "n_chains": n_chains,
                "n_draws": n,
                "d": d,
                "seconds": seconds,
                "pairs": pairs,
                "gpairs_per_s": pairs / seconds / 1e9,
                "pooled_ksd": res.pooled_ksd,
            }
        )
        print(
            f"  {n:>6} draws a chain: {seconds:7.3f} s ({pairs / seconds / 1e9:.2f} Gpairs/s)",
            flush=True,
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke test)")
    parser.add_argument(
        "--their-budget",
        type=float,
        default=600.0,
        help="seconds stein-thinning's runs may take in all",
    )
    _results.add_arguments(parser, "diagnostics")
    parser.add_argument(
        "--worker", nargs=4, metavar=("WHICH", "N", "D", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        which, n, d, out = args.worker
        _worker(which, int(n), int(d), out)
        return
    if args.quick:
        sizes = [(300, 2), (1000, 10)]
        per_chain = [200]
    else:
        sizes = [(n, d) for d in (2, 10) for n in (1000, 3000, 10_000, 30_000)]
        per_chain = [1000, 10_000]
    try:
        import stein_thinning

        theirs = getattr(stein_thinning, "__version__", "installed")
    except ImportError:
        theirs = None
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench_curve(sizes, args.their_budget, tmp)
    rows += bench_diagnostic(per_chain)
    meta = {
        "options": OPTIONS,
        "stein_thinning": theirs,
        "their_budget_s": args.their_budget,
        "quick": args.quick,
    }
    _results.write("diagnostics", rows, meta=meta, path=args.json)


if __name__ == "__main__":
    main()
