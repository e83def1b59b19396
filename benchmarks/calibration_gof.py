"""Level and power of the goodness-of-fit tests, measured (not timed tests).

Run from the repository root (about 15 minutes on two quiet cores)::

    python benchmarks/calibration_gof.py --json benchmarks/results/calibration_gof.json

* Level at alpha = 0.05 over ``--level-reps`` (200) samples drawn from the model:
  KSDAgg (ksdagg's defaults: 10 bandwidths, B1 = B2 = 2,000) on the README's
  Gamma(5, 5) model at n = 500; ``ksd_test`` at the median bandwidth on the same;
  the relative test with two models equally far from the sample (N(+0.3, 1) and
  N(-0.3, 1) for N(0, 1) data, d = 2, n = 500: KSD(p) = KSD(q) by symmetry, the
  boundary of its null hypothesis).
* Power over ``--power-reps`` (40) samples per point, KSDAgg against ``ksd_test``
  at the median bandwidth (wild bootstrap, 500 draws): a Student-t(5) sample,
  scaled to unit variance, against N(0, 1) for n = 100, 200, 400; and the
  Gaussian-Bernoulli RBM of KSDAgg's paper (after Liu et al. 2016 and Jitkrittum
  et al. 2017: d_x = 50, d_h = 40, B of random signs, b and c standard normal),
  the sample drawn (Gibbs, 2,000 sweeps) from the RBM whose B has N(0, sigma^2)
  noise added, n = 500, sigma in 0, 0.01, 0.02, 0.04.
* ``--smoke``: a few repetitions at small sizes, to check the script.

Each repetition has its own seed; the tests' bootstrap draws too. The JSON holds
the machine, the git revision, the date and every rejection rate with its
binomial standard error.
"""

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ksdagg import _git_revision  # noqa: E402
from bench_objective import _machine  # noqa: E402

ALPHA = 0.05


def gamma_null(n, rng):
    x = rng.gamma(5.0, 5.0, size=(n, 1))
    return x, (5 - 1) / x - 1 / 5


class RBM:
    """Gaussian-Bernoulli RBM: p(x) ~ sum_h exp(x^T B h + b^T x + c^T h - |x|^2 / 2),
    h in {-1, 1}^dh; score b - x + B tanh(B^T x + c)."""

    def __init__(self, B, b, c):
        self.B, self.b, self.c = B, b, c

    def score(self, x):
        return self.b - x + np.tanh(x @ self.B + self.c) @ self.B.T

    def sample(self, n, rng, sweeps=2000):
        x = rng.normal(size=(n, len(self.b)))
        for _ in range(sweeps):
            prob = 1.0 / (1.0 + np.exp(-2.0 * (x @ self.B + self.c)))
            h = np.where(rng.random(prob.shape) < prob, 1.0, -1.0)
            x = h @ self.B.T + self.b + rng.normal(size=x.shape)
        return x


def rbm_model(dx=50, dh=40, seed=0):
    rng = np.random.default_rng(seed)
    return RBM(rng.choice([-1.0, 1.0], size=(dx, dh)), rng.normal(size=dx), rng.normal(size=dh))


def _rate(decisions):
    k, m = int(np.sum(decisions)), len(decisions)
    p = k / m
    return {"rejections": k, "repetitions": m, "rate": p, "stderr": float(np.sqrt(p * (1 - p) / m))}


def _line(name, rate, seconds):
    print(
        f"{name:<58} {rate['rate']:.3f} +- {rate['stderr']:.3f} ({rate['rejections']}/"
        f"{rate['repetitions']}), {seconds:.0f} s",
        flush=True,
    )


def level(reps, n, draws):
    import ksdnumba as kn
    import ksdnumba.gof as gof

    out = {}
    start = time.perf_counter()
    agg, single = [], []
    for r in range(reps):
        x, s = gamma_null(n, np.random.default_rng(1000 + r))
        agg.append(gof.ksdagg(x, s, n_resamples=draws, rng=r).reject)
        single.append(
            kn.ksd_test(
                x, lambda z: (5 - 1) / z - 1 / 5, bw="median", n_resamples=500, rng=r
            ).reject
        )
    t = time.perf_counter() - start
    out["ksdagg_gamma"] = _rate(agg)
    out["ksd_test_median_gamma"] = _rate(single)
    _line(f"level, KSDAgg, Gamma(5, 5), n = {n}", out["ksdagg_gamma"], t)
    _line(f"level, ksd_test (median bw), Gamma(5, 5), n = {n}", out["ksd_test_median_gamma"], t)
    start = time.perf_counter()
    rel = []
    p = kn.Gaussian(np.array([0.3, 0.0]), 1.0)
    q = kn.Gaussian(np.array([-0.3, 0.0]), 1.0)
    for r in range(reps):
        x = np.random.default_rng(2000 + r).normal(size=(n, 2))
        rel.append(gof.relative_ksd_test(x, p, q).reject)
    out["relative_equally_far"] = _rate(rel)
    _line(
        f"level, relative test, p and q equally far, d = 2, n = {n}",
        out["relative_equally_far"],
        time.perf_counter() - start,
    )
    return out


def _power_point(make, reps, draws, seed):
    import ksdnumba as kn
    import ksdnumba.gof as gof

    agg, single = [], []
    for r in range(reps):
        x, score = make(np.random.default_rng(seed + r))
        agg.append(gof.ksdagg(x, score(x), n_resamples=draws, rng=r).reject)
        single.append(kn.ksd_test(x, score, bw="median", n_resamples=500, rng=r).reject)
    return _rate(agg), _rate(single)


def power(reps, draws, t_sizes, sigmas, rbm_n, sweeps, save=lambda rows: None):
    rows = []
    scale = np.sqrt(3.0 / 5.0)  # t(5) has variance 5/3
    for n in t_sizes:
        start = time.perf_counter()

        def make(rng, n=n):
            return rng.standard_t(5, size=(n, 1)) * scale, lambda z: -z

        agg, single = _power_point(make, reps, draws, 3000 + n)
        t = time.perf_counter() - start
        rows.append(
            {"problem": "student-t(5) vs N(0, 1)", "n": n, "ksdagg": agg, "ksd_test_median": single}
        )
        _line(f"power, KSDAgg, t(5) vs N(0, 1), n = {n}", agg, t)
        _line(f"power, ksd_test (median bw), t(5) vs N(0, 1), n = {n}", single, t)
        save(rows)
    model = rbm_model()
    for sigma in sigmas:
        start = time.perf_counter()

        def make(rng, sigma=sigma):
            noisy = RBM(model.B + sigma * rng.normal(size=model.B.shape), model.b, model.c)
            return noisy.sample(rbm_n, rng, sweeps), model.score

        agg, single = _power_point(make, reps, draws, 4000 + int(1000 * sigma))
        t = time.perf_counter() - start
        rows.append(
            {
                "problem": "Gauss-Bernoulli RBM, B + N(0, sigma^2)",
                "sigma": sigma,
                "n": rbm_n,
                "ksdagg": agg,
                "ksd_test_median": single,
            }
        )
        _line(f"power, KSDAgg, RBM sigma = {sigma}, n = {rbm_n}", agg, t)
        _line(f"power, ksd_test (median bw), RBM sigma = {sigma}, n = {rbm_n}", single, t)
        save(rows)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--level-reps", type=int, default=200)
    parser.add_argument("--power-reps", type=int, default=40)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--parts", default="level,t,rbm", help="which of level, t, rbm to run")
    parser.add_argument("--sigmas", default="0,0.01,0.02,0.04", help="RBM perturbations")
    parser.add_argument("--sweeps", type=int, default=2000, help="Gibbs sweeps per RBM sample")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    smoke = args.smoke
    report = {
        "benchmark": "calibration_gof",
        "revision": _git_revision(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": _machine(),
        "load_before": os.getloadavg(),
        "alpha": ALPHA,
        "command": " ".join([Path(sys.argv[0]).name] + (argv or sys.argv[1:])),
    }
    draws = (200, 200) if smoke else (2000, 2000)
    parts = args.parts.split(",")

    def save():
        report["load_after"] = os.getloadavg()
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(
                    report,
                    f,
                    indent=1,
                    default=lambda v: v.item() if hasattr(v, "item") else str(v),
                )

    if "level" in parts:
        report["level"] = level(4 if smoke else args.level_reps, 100 if smoke else 500, draws)
        save()
    sigmas = [0.0, 0.06] if smoke else [float(v) for v in args.sigmas.split(",")]
    report["power"] = power(
        3 if smoke else args.power_reps,
        draws,
        ([50] if smoke else [100, 200, 400]) if "t" in parts else [],
        sigmas if "rbm" in parts else [],
        60 if smoke else 500,
        20 if smoke else args.sweeps,
        save=lambda rows: (report.__setitem__("power", rows), save()),
    )
    save()
    print(f"load average before {report['load_before']}, after {report['load_after']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
