"""
=========================================
Stein thinning of MCMC output, and a test
=========================================

A Markov chain's output is long, correlated, and starts with a burn-in far from
the target. Stein thinning (Riabiz et al., 2022) keeps the few points whose
kernel Stein discrepancy (KSD) to the target is smallest, picked greedily, and
needs only the target's score at each state. On a mixture whose chain spends
more time in one mode, plain Stein thinning also picks points between and around
the modes, where the density is low; regularised Stein thinning (Benard et al.,
2023) adds the log density and its Laplacian to the objective and stops that. We
compare both with keeping every k-th state, along the running KSD, and ask the
KSD goodness-of-fit test about the chain before and after its burn-in.

References: M. Riabiz et al., "Optimal thinning of MCMC output", JRSS B, 2022.
C. Benard, B. Staber, S. Da Veiga, "Kernel Stein Discrepancy thinning: a
theoretical perspective of pathologies and a practical fix with regularization",
NeurIPS 2023. K. Chwialkowski, H. Strathmann, A. Gretton, "A Kernel Test of
Goodness of Fit", ICML 2016.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

import ksdnumba as kn
from ksdnumba.plotting import plot_particles, plot_target_2d

# %%
# A random-walk Metropolis chain
# ------------------------------
# The seed's mixture of two Gaussians at (-1, 0) and (1, 0), variance 0.1. The
# chain starts at (3, 2.5), outside the modes, with small steps: it reaches the
# right-hand mode within a few dozen steps and crosses to the other one rarely,
# so that the right-hand mode holds more than its half of the states.

target = kn.datasets.two_modes(0.1)
rng = np.random.default_rng(0)
n_steps, step, burn_in = 6000, 0.3, 500
proposals = step * rng.standard_normal((n_steps, 2))
log_u = np.log(rng.uniform(size=n_steps))
state = np.array([3.0, 2.5])
log_p = target.logpdf(state[None])[0]
chain = np.empty((n_steps, 2))
for i in range(n_steps):
    candidate = state + proposals[i]
    log_p_candidate = target.logpdf(candidate[None])[0]
    if log_u[i] < log_p_candidate - log_p:
        state, log_p = candidate, log_p_candidate
    chain[i] = state
sample = chain[burn_in:]
print(
    f"chain: {n_steps} states, {np.mean(sample[:, 0] > 0):.0%} of them after the "
    f"burn-in in the right-hand mode (the target has 50 %)"
)

# %%
# Three ways to keep 100 points
# -----------------------------
# Stein thinning needs the scores at the states; regularised thinning also the
# log density and the diagonal of its Hessian, which it takes from the target
# (``logpdf`` and ``hvp``), with the default weight ``lam = 1 / m``. The
# preconditioner ``"med"`` (the median distance between the states as length
# scale) without standardisation makes the kernel this package's IMQ kernel
# with ``bw`` the squared median distance, so that :func:`ksdnumba.ksd` measures
# every selection in the kernel thinning minimises.

m = 100
scores = target.score(sample)
start = time.perf_counter()
plain = kn.stein_thinning(sample, scores, m, preconditioner="med", standardize=False)
regular = kn.stein_thinning(
    sample, scores, m, preconditioner="med", standardize=False, regularize=True, target=target
)
print(f"both thinnings of {len(sample)} states in {time.perf_counter() - start:.2f} s")
every = np.arange(0, len(sample), len(sample) // m)[:m]
picks = {
    "Stein thinning": plain.indices,
    "regularised Stein thinning": regular.indices,
    f"every {len(sample) // m}th state": every,
}

bw = 1.0 / plain.preconditioner[0, 0]
running = {
    name: [np.sqrt(kn.ksd(sample[idx[:t]], target, kernel="imq", bw=bw)) for t in range(1, m + 1)]
    for name, idx in picks.items()
}
assert np.allclose(running["Stein thinning"], plain.ksd)  # the same kernel

# A point is in a low-density region when its log density is below the 5 %
# quantile of the target's own (5 % of exact samples are).
threshold = np.quantile(target.logpdf(target.sample(20_000, rng=1)), 0.05)
for name, idx in picks.items():
    low = np.mean(target.logpdf(sample[idx]) < threshold)
    print(
        f"{name}: KSD of the {m} points {running[name][-1]:.4f}, "
        f"{low:.0%} of them in low-density regions"
    )

# %%
# The KSD test before and after the burn-in
# -----------------------------------------
# The test assumes independent points, which the states of a chain are not; we
# test every 5th state of the burn-in and every 25th state after it, far enough
# apart to be nearly independent. The wild bootstrap gives the p-values.

tests = {"burn-in": chain[:burn_in:5], "after burn-in": sample[::25]}
pvalues = {}
for name, points in tests.items():
    result = kn.ksd_test(points, target, rng=0)
    pvalues[name] = result.pvalue
    print(
        f"KSD test, {name} ({len(points)} states): statistic {result.statistic:.3f}, "
        f"p-value {result.pvalue:.3f}, reject: {result.reject}"
    )

# %%
# The figure
# ----------

fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
limits = {"xlim": (-2.0, 3.5), "ylim": (-1.5, 3.0)}
ax = axes[0, 0]
plot_target_2d(target, ax=ax, quiver=0, **limits)
ax.plot(chain[:burn_in, 0], chain[:burn_in, 1], color="tab:red", lw=0.6, label="burn-in")
ax.plot(sample[:, 0], sample[:, 1], ".", color="0.5", ms=1, label="after burn-in")
ax.legend(loc="upper left", fontsize=8)
ax.set_title("random-walk Metropolis chain", fontsize=10)
for ax, (name, idx), color in zip(
    [axes[0, 1], axes[0, 2], axes[1, 0]],
    picks.items(),
    ["tab:blue", "tab:green", "tab:orange"],
    strict=True,
):
    plot_target_2d(target, ax=ax, quiver=0, **limits)
    plot_particles(sample[idx], ax=ax, color=color, s=10)
    ax.set_title(f"{name} ({m} points)", fontsize=10)
ax = axes[1, 1]
for (name, values), color in zip(
    running.items(), ["tab:blue", "tab:green", "tab:orange"], strict=True
):
    ax.loglog(np.arange(1, m + 1), values, color=color, label=name)
ax.set_xlabel("number of points m")
ax.set_ylabel("KSD of the first m points")
ax.legend(fontsize=8)
ax.set_title("running KSD", fontsize=10)
ax = axes[1, 2]
ax.bar(list(pvalues), list(pvalues.values()), color=["tab:red", "0.5"])
ax.axhline(0.05, color="black", ls="--", lw=1, label="alpha = 0.05")
ax.set_ylim(0, 1)
ax.set_ylabel("p-value")
ax.legend(fontsize=8)
ax.set_title("KSD test (wild bootstrap)", fontsize=10)
fig.tight_layout()
fig.savefig("plot_stein_thinning.png", dpi=150)
print("saved plot_stein_thinning.png")
