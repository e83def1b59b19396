"""Scores of PyMC models for many draws: a loop over compile_dlogp against batched graphs.

For ``--draws`` draws (default 10,000) of two models,

* ``logistic``: Bayesian logistic regression, 100 coefficients with N(0, 1)
  priors, 1,000 rows of synthetic data (fixed seed);
* ``schools``: the eight-schools model, non-centred,

it times the score of every draw by

* ``loop_compile_dlogp``: a Python loop over ``model.compile_dlogp()``, one
  point dict per draw (the dicts built before the clock starts);
* ``vectorize_dlogp[MODE]``: ``vectorize_graph`` of ``model.dlogp()`` over a
  flat batch (the first attempt reported in issue 26), compiled in ``MODE``;
* ``from_pymc[MODE]``: ``from_pymc(model, mode=MODE).score``, whose
  graph is the one-point log density vectorised over rows, then differentiated
  (the gradient of the rows' sum), 1024 rows per call; all rows in one call
  (``batch=None``) and ``vectorize=False`` (its loop fallback) as variants;
* ``numpy``: the logistic score written by hand in NumPy, the floor of any
  batched graph of the same operations;

and the HVP of ``from_pymc`` batched and in its loop. The load average before
and after is recorded: on a shared machine, BLAS threads contending with other
processes slow the matrix products of small calls most. Each batched time is
the best of 3 calls after one that compiles (whose time is reported as
``first_call_s``); each loop runs once. For each batched graph the compiled
function's operations are counted (``ops``): ``Dot22``/``Gemm``/``Dot`` are
matrix products, ``Blockwise(...)`` a per-row loop inside PyTensor.

``--startup`` also measures, in fresh subprocesses, import + compile + first
call of ``from_pymc(...).score`` with an empty PyTensor cache (a temporary
``base_compiledir``) and again with that cache filled.

Run from the repository root with PyMC installed: ``python
benchmarks/bench_pymc.py`` (about a minute on a 2-core machine), under
``flock /tmp/bench.lock`` on a shared machine; ``--quick`` (500 draws) for a
smoke test. Prints a table and writes its rows (``part`` ``methods`` or
``startup``) to ``benchmarks/results/pymc_py<X.Y>.json`` (``--json PATH``
elsewhere, ``--no-json`` not at all) with the machine, the revision and the date
(``benchmarks/_results.py``); ``meta`` has the PyMC, PyTensor and ArviZ versions.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _results  # noqa: E402

try:
    from ksdnumba.targets import from_pymc
except ImportError:  # until ksdnumba.targets exports it
    from ksdnumba.targets._pymc import from_pymc

SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def logistic_data(n_obs=1000, p=100, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_obs, p)) / np.sqrt(p)
    y = (rng.random(n_obs) < 1.0 / (1.0 + np.exp(-X @ rng.normal(size=p)))).astype(np.int64)
    return X, y


def build_model(name):
    import pymc as pm
    import pytensor.tensor as pt

    with pm.Model() as model:
        if name == "logistic":
            X, y = logistic_data()
            beta = pm.Normal("beta", 0.0, 1.0, shape=X.shape[1])
            pm.Bernoulli("y", logit_p=pt.dot(X, beta), observed=y)
        else:
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfCauchy("tau", 5.0)
            theta_tilde = pm.Normal("theta_tilde", 0.0, 1.0, shape=8)
            theta = pm.Deterministic("theta", mu + tau * theta_tilde)
            pm.Normal("y", theta, SCHOOLS_SIGMA, observed=SCHOOLS_Y)
    return model


def numpy_logistic_score(B):
    X, y = logistic_data()
    u = B @ X.T
    return (y - 1.0 / (1.0 + np.exp(-u))) @ X - B


def op_counts(fn):
    """The compiled function's operations, Blockwise and Elemwise named by their core op."""
    names = []
    for node in fn.maker.fgraph.toposort():
        op = node.op
        core = getattr(op, "core_op", None) or getattr(op, "scalar_op", None)
        label = type(op).__name__
        if type(op).__name__ == "Blockwise":
            label = f"Blockwise({type(core).__name__})"
        names.append(label)
    return dict(Counter(names))


def best_of(call, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
    # The best of the repeats: the machine is shared, and a slower run measures the others.
    return min(times), out


def vectorize_dlogp(model, mode):
    """The issue's first attempt: model.dlogp() on a flat vector, vectorised over a batch."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import graph_replace, vectorize_graph

    shapes = model.eval_rv_shapes()
    flat = pt.vector("flat")
    pieces, start = {}, 0
    for v in model.value_vars:
        size = int(np.prod(shapes[v.name]))
        pieces[v] = flat[start : start + size].reshape(tuple(int(s) for s in shapes[v.name]))
        start += size
    grad = graph_replace(model.dlogp(), pieces, strict=False)
    batch = pt.matrix("batch")
    return pytensor.function([batch], vectorize_graph(grad, {flat: batch}), mode=mode)


def run_model(name, n_draws, modes, seed=0):
    model = build_model(name)
    target = from_pymc(model)
    d = target.n_dims
    x = 0.3 * np.random.default_rng(seed).normal(size=(n_draws, d))
    v = np.random.default_rng(seed + 1).normal(size=(n_draws, d))
    rows = {}

    dlogp = model.compile_dlogp()
    dicts = [
        {k: r[target.slices[k]].reshape(target.shapes[k]) for k in target.value_vars} for r in x
    ]
    dlogp(dicts[0])
    seconds, out = best_of(lambda: np.array([dlogp(p) for p in dicts]), 1)
    reference = out
    rows["loop_compile_dlogp"] = {"seconds": seconds}

    def batched(label, fn, args, reference, repeats=3, ops=None):
        start = time.perf_counter()
        fn(*(a[:2] for a in args))
        first = time.perf_counter() - start
        seconds, out = best_of(lambda: fn(*args), repeats)
        out = np.asarray(out)
        err = float(np.max(np.abs(out - reference)) / max(1.0, np.max(np.abs(reference))))
        rows[label] = {"seconds": seconds, "first_call_s": first, "max_rel_err": err}
        if ops is not None:
            rows[label]["ops"] = ops

    for mode in modes:
        start = time.perf_counter()
        fn = vectorize_dlogp(model, mode)
        compiled = time.perf_counter() - start
        batched(f"vectorize_dlogp[{mode}]", fn, (x,), reference, ops=op_counts(fn))
        rows[f"vectorize_dlogp[{mode}]"]["first_call_s"] += compiled
    for mode in modes:
        t = from_pymc(model, mode=mode)
        batched(f"from_pymc[{mode}]", t.score, (x,), reference)
        rows[f"from_pymc[{mode}]"]["ops"] = op_counts(t._score_fn._fn)
    t = from_pymc(model, batch=None)
    batched("from_pymc[batch=None]", t.score, (x,), reference)
    t = from_pymc(model, vectorize=False)
    batched("from_pymc[vectorize=False]", t.score, (x,), reference, repeats=1)
    if name == "logistic":
        batched("numpy", numpy_logistic_score, (x,), reference)

    # The HVP, batched and in the loop fallback, against each other.
    hvp_loop = from_pymc(model, vectorize=False)
    hvp_loop.hvp(x[:2], v[:2])
    seconds, hvp_reference = best_of(lambda: hvp_loop.hvp(x, v), 1)
    rows["hvp[vectorize=False]"] = {"seconds": seconds}
    batched("hvp[from_pymc]", target.hvp, (x, v), hvp_reference)
    rows["hvp[from_pymc]"]["ops"] = op_counts(target._hvp_fn._fn)
    for row in rows.values():
        row["us_per_draw"] = 1e6 * row["seconds"] / n_draws
    return {"n_draws": n_draws, "d": d, "methods": rows}


STARTUP_SCRIPT = """
import time, warnings
start = time.perf_counter()
warnings.simplefilter("ignore")
import numpy as np
import bench_pymc
model = bench_pymc.build_model({name!r})
imported = time.perf_counter()
target = bench_pymc.from_pymc(model)
target.score(np.zeros((2, target.n_dims)))
scored = time.perf_counter()
target.hvp(np.zeros((2, target.n_dims)), np.ones((2, target.n_dims)))
print(imported - start, scored - imported, time.perf_counter() - scored)
"""


def startup(name):
    """Import + build, first score, first hvp: with an empty and a filled PyTensor cache."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={cache}")
        env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.dirname(os.path.abspath(__file__))])
        for label in ("cold", "warm"):
            proc = subprocess.run(
                [sys.executable, "-c", STARTUP_SCRIPT.format(name=name)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            imp, score, hvp = map(float, proc.stdout.split())
            out[label] = {"import_and_model_s": imp, "first_score_s": score, "first_hvp_s": hvp}
    return out


def versions():
    import arviz
    import pymc
    import pytensor

    return dict(
        pymc=pymc.__version__,
        pytensor=pytensor.__version__,
        arviz=arviz.__version__,
        pytensor_mode_default=str(pytensor.config.mode),
        pytensor_blas_ldflags=pytensor.config.blas__ldflags,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=10_000)
    parser.add_argument("--models", default="logistic,schools")
    parser.add_argument(
        "--modes",
        default="CVM,NUMBA",
        help="PyTensor modes for the batched graphs (comma-separated)",
    )
    parser.add_argument(
        "--startup",
        action="store_true",
        help="also time import + compile in fresh processes, cold and warm",
    )
    parser.add_argument("--quick", action="store_true", help="500 draws: a smoke test")
    _results.add_arguments(parser, "pymc_py<X.Y>")
    args = parser.parse_args(argv)
    if args.quick:
        args.draws = 500
    warnings.simplefilter("ignore")  # PyTensor's BLAS warning, ArviZ's FutureWarning
    modes = args.modes.split(",")
    meta = {"draws": args.draws, "modes": modes, "versions": versions(), "quick": args.quick}
    rows = []
    for name in args.models.split(","):
        res = run_model(name, args.draws, modes)
        if args.startup:
            res["startup"] = startup(name)
        for label, row in res["methods"].items():
            rows.append(
                {
                    "part": "methods",
                    "model": name,
                    "n_draws": res["n_draws"],
                    "d": res["d"],
                    "method": label,
                    **row,
                }
            )
        for label, row in res.get("startup", {}).items():
            rows.append({"part": "startup", "model": name, "cache": label, **row})
        print(f"\n{name}: {res['n_draws']} draws, d = {res['d']}")
        print(f"  {'method':30s} {'us/draw':>9s} {'first call s':>13s} {'rel err':>9s}  ops")
        for label, row in res["methods"].items():
            first = f"{row['first_call_s']:13.2f}" if "first_call_s" in row else " " * 13
            err = f"{row['max_rel_err']:9.1e}" if "max_rel_err" in row else " " * 9
            ops = ", ".join(
                f"{k} {n}"
                for k, n in row.get("ops", {}).items()
                if k not in ("Shape_i", "SpecifyShape", "MakeVector")
            )
            print(f"  {label:30s} {row['us_per_draw']:9.2f} {first} {err}  {ops}")
        if args.startup:
            for label, row in res["startup"].items():
                print(f"  startup {label}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()))
    name = f"pymc_py{sys.version_info[0]}.{sys.version_info[1]}"
    _results.write(name, rows, meta=meta, path=args.json)


if __name__ == "__main__":
    main()
