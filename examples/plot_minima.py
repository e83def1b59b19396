"""
======================================
Structure of the minima of KSD descent
======================================

KSD descent moves particles deterministically, so where they end depends on
where they start: the squared KSD has many local minima. With a small
bandwidth (``bw = 0.1``) the particles of these minima line up on structures
(lines, arcs) instead of spreading over the target, most visibly when the
start is symmetric. We run L-BFGS from three initialisations on a mixture of
two Gaussians with three variances, as in Korba et al. (2021).

Reference: A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin, "Kernel
Stein Discrepancy Descent", ICML 2021.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

import ksdnumba as kn
from ksdnumba.plotting import plot_particles, plot_target_2d

# %%
# The three initialisations
# -------------------------
# 50 particles around the origin: on the vertical axis (init1), spread in
# both directions (init2), and close to the vertical axis (init3). The same
# three starts serve every target, so that a column differs only by the
# variance of the mixture.

rng = np.random.default_rng(0)
n_particles, bw = 50, 0.1
init1 = 0.5 * rng.standard_normal((n_particles, 2))
init1[:, 0] = 0.0
init2 = 0.5 * rng.standard_normal((n_particles, 2))
init3 = 0.5 * rng.standard_normal((n_particles, 2))
init3[:, 0] = 0.05 * rng.standard_normal(n_particles)
inits = {"init1": init1, "init2": init2, "init3": init3}

# %%
# KSD descent on the mixtures
# ---------------------------
# Centres (-1, 0) and (1, 0), equal weights, isotropic variance 0.1, 0.3 or
# 2. ``store=True`` keeps every iterate to draw the paths of the particles.

variances = [0.1, 0.3, 2.0]
fig, axes = plt.subplots(
    len(variances), len(inits), figsize=(9, 7), subplot_kw={"xticks": [], "yticks": []}
)
fit_time = 0.0
for row, var in zip(axes, variances, strict=True):
    target = kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [var, var])
    for ax, (name, x0) in zip(row, inits.items(), strict=True):
        start = time.perf_counter()
        res = kn.ksdd_lbfgs(x0, target, bw=bw, store=True)
        fit_time += time.perf_counter() - start
        print(
            f"variance {var:<3}  {name}: {res.nit:5d} iterations, "
            f"KSD^2 = {res.fun:.4e}, success = {res.success}"
        )
        plot_target_2d(target, ax=ax)
        plot_particles(res.x, ax=ax, x_init=x0, trajectory=res.trajectory)
        ax.set_title(f"variance {var}, {name}", fontsize=9)
print(f"total time of the {axes.size} fits: {fit_time:.2f} s")

fig.suptitle(f"Minima of KSD descent (Gaussian kernel, bw = {bw}, {n_particles} particles)")
fig.tight_layout()
fig.savefig("plot_minima.png", dpi=150)
print("saved plot_minima.png")
