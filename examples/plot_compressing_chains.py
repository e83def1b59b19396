"""
==================================================
Compressing a Markov chain: four ways to keep less
==================================================

A Markov chain gives thousands of correlated states where a few hundred would
do, and its states are biased when the chain mixes slowly. Four tools shrink
it to ``m`` points: standard thinning (every k-th state), greedy Stein thinning
(Riabiz et al., 2022), Stein kernel thinning (Dwivedi and Mackey, 2021), and
Stein importance weights (Liu and Lee, 2017), which here reweight the
standard-thinned states instead of choosing them (or, as a reference, every
state of the chain). All but the first need only the target's score at the
states. We compare them by the kernel Stein discrepancy (KSD) of what they keep
and by the error of a few expectations, on a chain that spends more time in one
mode of a two-mode target than it should.

References: M. Riabiz et al., "Optimal thinning of MCMC output", JRSS B, 2022.
R. Dwivedi, L. Mackey, "Kernel Thinning", COLT 2021. Q. Liu, J. D. Lee,
"Black-box importance sampling", AISTATS 2017.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

import ksdnumba as kn
from ksdnumba.compression import kernel_thinning, stein_weights
from ksdnumba.plotting import plot_particles, plot_target_2d

# %%
# A random-walk Metropolis chain
# ------------------------------
# The package's mixture of two Gaussians at (-1, 0) and (1, 0), variance 0.3.
# The chain starts outside the modes with small steps and crosses between the
# modes a few times only, so one mode holds more than its half of the states.
# We keep 4096 states after a burn-in of 500. (With modes much further apart
# than their width, no Stein method sees the proportions of the modes: the
# score inside each mode does not depend on them.)

target = kn.datasets.two_modes(0.3)
rng = np.random.default_rng(0)
n_steps, step, burn_in = 4096 + 500, 0.3, 500
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
scores = target.score(sample)
n = len(sample)
print(
    f"{n} states, {np.mean(sample[:, 0] > 0):.0%} of them in the right-hand mode "
    f"(the target has 50 %), {len(np.unique(sample, axis=0))} distinct"
)

# %%
# One kernel for all
# ------------------
# Every method is given the same kernel, the inverse multiquadric with length
# scale the median distance between the states (``preconditioner`` a number,
# no standardisation), so that the KSD of each output is measured in the kernel
# the methods used. The weighted KSD comes from the Stein matrix of the points,
# :math:`\sqrt{w^\top H w}`.

h = kn.median_bandwidth(sample)
options = {"preconditioner": h, "standardize": False}


def ksd_of(points, weights=None):
    H = kn.SteinMatrix(points, target, kernel="imq", bw=h)
    w = np.full(len(points), 1.0 / len(points)) if weights is None else weights
    return np.sqrt(max(H.quadratic_forms(w), 0.0))


# Expectations with known values: E x1 = E x2 = 0, E x1^2 = 1.3, E x2^2 = 0.3.
functions = {
    "x1": lambda x: x[:, 0],
    "x2": lambda x: x[:, 1],
    "x1^2": lambda x: x[:, 0] ** 2,
    "x2^2": lambda x: x[:, 1] ** 2,
}
exact = {"x1": 0.0, "x2": 0.0, "x1^2": 1.3, "x2^2": 0.3}


def error_of(points, weights=None):
    w = np.full(len(points), 1.0 / len(points)) if weights is None else weights
    return max(abs(w @ f(points) - exact[name]) for name, f in functions.items())


# %%
# Compressing to m = n / 2**r points
# ----------------------------------
# Stein kernel thinning halves the chain ``r`` times; the others keep the same
# number of points. The weights are computed on the standard-thinned states.

methods = [
    "standard thinning",
    "greedy Stein thinning",
    "Stein kernel thinning",
    "Stein weights (on the standard-thinned states)",
]
sizes, ksd, err, kept = [], {k: [] for k in methods}, {k: [] for k in methods}, {}
start = time.perf_counter()
for rounds in range(3, 8):
    m = n // 2**rounds
    sizes.append(m)
    every = np.arange(n - 1, -1, -(2**rounds))[::-1]
    greedy = kn.stein_thinning(sample, scores, m, **options).indices
    kt = kernel_thinning(sample, scores, rounds, rng=0, **options).indices
    weights = stein_weights(sample[every], scores[every], **options).weights
    for name, idx, w in zip(
        methods, [every, greedy, kt, every], [None, None, None, weights], strict=True
    ):
        ksd[name].append(ksd_of(sample[idx], w))
        err[name].append(error_of(sample[idx], w))
    if m == 64:
        kept = {
            "standard thinning": (every, None),
            "greedy Stein thinning": (greedy, None),
            "Stein kernel thinning": (kt, None),
            "Stein weights on standard-thinned states": (every, weights),
        }
print(f"four compressions at five sizes in {time.perf_counter() - start:.1f} s")
for name in methods:
    print(
        f"{name:>47}: KSD at m = 64: {ksd[name][3]:.4f}, largest error of the "
        f"expectations: {err[name][3]:.3f}"
    )

# %%
# Weighting the whole chain
# -------------------------
# The weights of every state correct the chain's bias towards one mode: the
# weighted fraction of states in the right-hand mode moves back towards one
# half, and the weighted expectations are the most accurate of all, at the
# price of keeping the states with a positive weight (the support).

start = time.perf_counter()
whole = stein_weights(sample, scores, **options)
print(
    f"weights of all {n} states in {time.perf_counter() - start:.1f} s: KKT residual "
    f"{whole.kkt_residual:.1e}, {whole.support.size} states with a positive weight"
)
right = sample[:, 0] > 0
print(
    f"right-hand mode: {right.mean():.0%} of the states, {whole.weights @ right:.0%} of the weight"
)
whole_ksd = ksd_of(sample[whole.support], whole.weights[whole.support])
whole_err = error_of(sample[whole.support], whole.weights[whole.support])
print(
    f"weighted chain: KSD {whole_ksd:.4f}, largest error of the expectations "
    f"{whole_err:.3f} (unweighted: {ksd_of(sample):.4f}, {error_of(sample):.3f})"
)

# %%
# The figure
# ----------

colors = ["0.5", "tab:blue", "tab:green", "tab:orange"]
fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
limits = {"xlim": (-2.8, 2.8), "ylim": (-1.8, 1.8)}
for ax, (name, (idx, weights)), color in zip(axes.flat[:4], kept.items(), colors, strict=True):
    plot_target_2d(target, ax=ax, quiver=0, **limits)
    size = 10 if weights is None else 4000 * weights
    plot_particles(sample[idx], ax=ax, color=color, s=size)
    ax.set_title(f"{name} (64 points)", fontsize=10)
for ax, values, point, label in (
    (axes[1, 1], ksd, whole_ksd, "KSD"),
    (axes[1, 2], err, whole_err, "largest error of E f"),
):
    for name, color in zip(methods, colors, strict=True):
        ax.loglog(sizes, values[name], "o-", color=color, label=name, ms=4)
    ax.loglog(
        [whole.support.size],
        [point],
        "*",
        color="tab:red",
        ms=10,
        label="Stein weights of the whole chain (support)",
    )
    ax.annotate(
        f"{whole.support.size} states",
        (whole.support.size, point),
        fontsize=7,
        textcoords="offset points",
        xytext=(-20, 6),
    )
    ax.set_xticks(sizes, [str(t) for t in sizes], fontsize=8)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("output size m")
    ax.set_ylabel(label)
axes[1, 1].legend(fontsize=7, loc="lower left")
axes[1, 1].set_title("KSD against output size", fontsize=10)
axes[1, 2].set_title("error of E x1, E x2, E x1^2, E x2^2", fontsize=10)
fig.tight_layout()
fig.savefig("plot_compressing_chains.png", dpi=150)
print("saved plot_compressing_chains.png")
