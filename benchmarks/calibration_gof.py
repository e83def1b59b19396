"""Level and power of the goodness-of-fit tests, measured (not timed tests).

Run from the repository root (about 15 minutes on two quiet cores)::

    python benchmarks/calibration_gof.py

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
* ``--quick`` (or ``--smoke``): a few repetitions at small sizes, to check the
  script; it writes no results file unless ``--json PATH`` is given.

Each repetition has its own seed; the tests' bootstrap draws too. Writes
``benchmarks/results/calibration_gof.json`` (``--json PATH`` elsewhere, ``--no-json``
not at all; ``benchmarks/_results.py``: the machine, the revision, the date, the load
average before and after) after each part and each power point, so that a stopped
run keeps what it measured (``meta["complete"]`` says whether it ended). Rows:

* ``part="level"``: one per test (``test`` = ``ksdagg``, ``ksd_test`` or
  ``relative_ksd_test``) and ``problem`` (``gamma`` or ``equally_far``), with
  ``rejections``, ``repetitions``, ``rate`` and its binomial ``stderr``;
* ``part="power"``: one per point (``problem`` = ``student_t`` or ``rbm``, ``n``,
  ``sigma`` for the RBM), ``ksdagg_rate``, ``ksd_test_rate`` (the median bandwidth)
  with their ``_rejections`` and ``_stderr``, and ``repetitions``.

``seconds`` is the time of the loop that ran the row's point: the two tests of a
level or power point share one loop, and so one time.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _results  # noqa: E402

ALPHA = 0.05
KSD_TEST_OPTIONS = {"bw": "median", "n_resamples": 500}
PROBLEMS = {
    "gamma": "the README's Gamma(5, 5) model, samples drawn from it (d = 1)",
    "equally_far": "N(0, I_2) samples, p = N((0.3, 0), I) and q = N((-0.3, 0), I)",
    "student_t": "Student-t(5) samples scaled to unit variance, against N(0, 1)",
    "rbm": (
        "Gauss-Bernoulli RBM (d_x = 50, d_h = 40), samples from the RBM whose B has "
        "N(0, sigma^2) noise added"
    ),
}


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


def _level_row(test, problem, n, d, rate, seconds):
    row = {"part": "level", "test": test, "problem": problem, "n": n, "d": d, **rate}
    return {**row, "alpha": ALPHA, "seconds": seconds}


def level(reps, n, draws):
    import ksdnumba as kn
    import ksdnumba.gof as gof

    rows = []
    start = time.perf_counter()
    agg, single = [], []
    for r in range(reps):
        x, s = gamma_null(n, np.random.default_rng(1000 + r))
        agg.append(gof.ksdagg(x, s, n_resamples=draws, rng=r).reject)
        single.append(
            kn.ksd_test(x, lambda z: (5 - 1) / z - 1 / 5, **KSD_TEST_OPTIONS, rng=r).reject
        )
    t = time.perf_counter() - start
    for test, decisions in (("ksdagg", agg), ("ksd_test", single)):
        rate = _rate(decisions)
        rows.append(_level_row(test, "gamma", n, 1, rate, t))
        _line(f"level, {test}, Gamma(5, 5), n = {n}", rate, t)
    start = time.perf_counter()
    rel = []
    p = kn.Gaussian(np.array([0.3, 0.0]), 1.0)
    q = kn.Gaussian(np.array([-0.3, 0.0]), 1.0)
    for r in range(reps):
        x = np.random.default_rng(2000 + r).normal(size=(n, 2))
        rel.append(gof.relative_ksd_test(x, p, q).reject)
    t = time.perf_counter() - start
    rate = _rate(rel)
    rows.append(_level_row("relative_ksd_test", "equally_far", n, 2, rate, t))
    _line(f"level, relative test, p and q equally far, d = 2, n = {n}", rate, t)
    return rows


def _power_point(make, reps, draws, seed):
    import ksdnumba as kn
    import ksdnumba.gof as gof

    agg, single = [], []
    for r in range(reps):
        x, score = make(np.random.default_rng(seed + r))
        agg.append(gof.ksdagg(x, score(x), n_resamples=draws, rng=r).reject)
        single.append(kn.ksd_test(x, score, **KSD_TEST_OPTIONS, rng=r).reject)
    return _rate(agg), _rate(single)


def _power_row(problem, n, agg, single, seconds, **more):
    """One power point: both tests' rates side by side."""
    row = {"part": "power", "problem": problem, **more, "n": n}
    row["repetitions"] = agg["repetitions"]
    for test, rate in (("ksdagg", agg), ("ksd_test", single)):
        row.update({f"{test}_{k}": rate[k] for k in ("rejections", "rate", "stderr")})
    row.update(alpha=ALPHA, seconds=seconds)
    return row


def power(reps, draws, t_sizes, sigmas, rbm_n, sweeps, save=lambda rows: None):
    rows = []
    scale = np.sqrt(3.0 / 5.0)  # t(5) has variance 5/3
    for n in t_sizes:
        start = time.perf_counter()

        def make(rng, n=n):
            return rng.standard_t(5, size=(n, 1)) * scale, lambda z: -z

        agg, single = _power_point(make, reps, draws, 3000 + n)
        t = time.perf_counter() - start
        rows.append(_power_row("student_t", n, agg, single, t))
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
        rows.append(_power_row("rbm", rbm_n, agg, single, t, sigma=sigma))
        _line(f"power, KSDAgg, RBM sigma = {sigma}, n = {rbm_n}", agg, t)
        _line(f"power, ksd_test (median bw), RBM sigma = {sigma}, n = {rbm_n}", single, t)
        save(rows)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--level-reps", type=int, default=200)
    parser.add_argument("--power-reps", type=int, default=40)
    parser.add_argument(
        "--quick", "--smoke", action="store_true", help="a few repetitions at small sizes"
    )
    parser.add_argument("--parts", default="level,t,rbm", help="which of level, t, rbm to run")
    parser.add_argument("--sigmas", default="0,0.01,0.02,0.04", help="RBM perturbations")
    parser.add_argument("--sweeps", type=int, default=2000, help="Gibbs sweeps per RBM sample")
    _results.add_arguments(parser, "calibration_gof")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    quick = args.quick
    draws = (200, 200) if quick else (2000, 2000)
    parts = args.parts.split(",")
    sigmas = [0.0, 0.06] if quick else [float(v) for v in args.sigmas.split(",")]
    level_reps = 4 if quick else args.level_reps
    power_reps = 3 if quick else args.power_reps
    sweeps = 20 if quick else args.sweeps
    meta = {
        "alpha": ALPHA,
        "draws": draws,
        "ksd_test": KSD_TEST_OPTIONS,
        "parts": parts,
        "level_reps": level_reps,
        "power_reps": power_reps,
        "sweeps": sweeps,
        "problems": PROBLEMS,
        "quick": quick,
        "complete": False,
    }
    rows = []

    def save(more=()):
        _results.write("calibration_gof", rows + list(more), meta=meta, path=args.json)

    if "level" in parts:
        rows += level(level_reps, 100 if quick else 500, draws)
        save()
    rows += power(
        power_reps,
        draws,
        ([50] if quick else [100, 200, 400]) if "t" in parts else [],
        sigmas if "rbm" in parts else [],
        60 if quick else 500,
        sweeps,
        save=save,
    )
    meta["complete"] = True
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
