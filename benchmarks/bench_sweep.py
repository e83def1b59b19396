"""Time a seed-sized sweep in this process, in a spawn pool and on a Dask LocalCluster.

The grid is the seed figure's (3 variances x 3 initialisations, 50 particles,
bw = 0.1) over 4 seeds: 36 L-BFGS fits of 50 particles. Each runner is timed
``--repeat`` times after one untimed sweep that fills numba's cache; the start of
the pool and of the cluster is part of each time (a sweep starts its pool; the
cluster's start is printed apart). Prints one line per runner and checks that
the particles are bit-identical between runners. The rows (``part`` ``runner``,
and ``cluster_start``) go to ``benchmarks/results/sweep.json`` (``--json PATH``
elsewhere, ``--no-json`` not at all) with the machine, the revision and the date.

    python benchmarks/bench_sweep.py [--seeds 4] [--repeat 3] [--workers 2]
    python benchmarks/bench_sweep.py --quick     # one seed, one repeat: a smoke test
"""

import argparse
import os
import sys
import time

import numpy as np

import ksdnumba as kn
from ksdnumba.datasets import two_modes

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask LocalCluster")
    parser.add_argument("--quick", action="store_true", help="one seed, one repeat")
    _results.add_arguments(parser, "sweep")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.repeat = 1, 1
    targets = {f"variance {v}": two_modes(v) for v in (0.1, 0.3, 2.0)}
    configs = kn.grid(
        method="ksdd_lbfgs",
        target=list(targets),
        init=["init1", "init2", "init3"],
        seed=range(args.seeds),
        n=50,
        bw=0.1,
    )
    reference = kn.sweep(configs, targets, progress=False)  # fills numba's cache
    rows = []

    def timed(runner, name, **kwargs):
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            s = kn.sweep(configs, targets, progress=False, **kwargs)
            times.append(time.perf_counter() - start)
            same = all(np.array_equal(a.x, b.x) for a, b in zip(s, reference, strict=True))
        fit = np.median([row.time for row in s])
        print(
            f"{name:<34} {np.median(times):6.2f} s (median of {args.repeat}; "
            f"min {min(times):.2f}), median fit {1e3 * fit:.0f} ms, "
            f"bit-identical to serial: {same}"
        )
        rows.append(
            {
                "part": "runner",
                "runner": runner,
                "label": name,
                "workers": args.workers if runner != "serial" else 1,
                "fits": len(configs),
                "median_s": float(np.median(times)),
                "min_s": min(times),
                "times_s": times,
                "median_fit_ms": 1e3 * fit,
                "bit_identical": same,
            }
        )

    print(f"{len(configs)} fits of 50 particles")
    timed("serial", "in this process")
    timed("pool", f"spawn pool, {args.workers} workers", client=args.workers)
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        args.no_dask = True
        print("Dask LocalCluster: skipped (distributed is not importable)")
    if not args.no_dask:
        start = time.perf_counter()
        cluster = LocalCluster(
            n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        client = Client(cluster)
        started = time.perf_counter() - start
        print(f"{'LocalCluster start':<34} {started:6.2f} s")
        rows.append({"part": "cluster_start", "workers": args.workers, "seconds": started})
        try:
            timed("dask", f"Dask LocalCluster, {args.workers} x 1 thread", client=client)
        finally:
            client.close()
            cluster.close()
    meta = {
        "seeds": args.seeds,
        "repeat": args.repeat,
        "workers": args.workers,
        "fits": len(configs),
        "particles": 50,
        "bw": 0.1,
        "quick": args.quick,
    }
    _results.write("sweep", rows, meta=meta, path=args.json)


if __name__ == "__main__":
    main()
