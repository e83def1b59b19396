"""
==================================================
Bayesian logistic regression on breast cancer data
==================================================

The posterior of Bayesian logistic regression, the benchmark of the SVGD
paper (Liu and Wang, 2016) and of Korba et al. (2021): weights
:math:`w \\sim \\mathcal{N}(0, I / \\alpha)`, precision
:math:`\\alpha \\sim \\mathrm{Gamma}(1, 0.01)`, particles
:math:`(w, \\log \\alpha)` (:class:`ksdnumba.BayesianLogisticRegression`).
The data: the Breast Cancer Wisconsin (Diagnostic) set, 569 masses and 30
features, which ships with the package (:func:`ksdnumba.datasets.breast_cancer`,
CC BY 4.0), 75% for training and 25% for testing. KSD descent by L-BFGS and
SVGD (adaptive steps, as in the SVGD paper) move the same 50 particles; we
follow the test accuracy of the posterior predictive and its test
log-likelihood against wall time. Both beat the majority class by far and
reach the same accuracy; L-BFGS gets there sooner.

References: Q. Liu, D. Wang, "Stein Variational Gradient Descent", NeurIPS
2016; A. Korba, P.-C. Aubin-Frankowski, S. Majewski, P. Ablin, "Kernel Stein
Discrepancy Descent", ICML 2021.
"""

import time

import matplotlib.pyplot as plt
import numpy as np

import ksdnumba as kn
from ksdnumba.datasets import breast_cancer
from ksdnumba.plotting import plot_convergence

# %%
# Data, model and start
# ---------------------
# The particles start with w ~ N(0, I) and log alpha = 0.

X_train, X_test, y_train, y_test = breast_cancer(test_fraction=0.25, rng=0)
target = kn.BayesianLogisticRegression(X_train, y_train, a0=1.0, b0=0.01)
majority = max(y_test.mean(), 1.0 - y_test.mean())
print(
    f"{X_train.shape[0]} training rows, {X_test.shape[0]} test rows, "
    f"{target.n_dims} dimensions; majority class: {majority:.3f} of the test set"
)

rng = np.random.default_rng(0)
n_particles = 50
x0 = np.column_stack([rng.standard_normal((n_particles, target.n_features)), np.zeros(n_particles)])


def test_scores(theta):
    """Test accuracy and mean test log-likelihood of the posterior predictive."""
    proba = np.clip(target.predict_proba(theta, X_test), 1e-12, 1 - 1e-12)
    loglik = np.mean(np.where(y_test == 1, np.log(proba), np.log1p(-proba)))
    return target.accuracy(theta, X_test, y_test), loglik


# %%
# KSD descent and SVGD
# --------------------
# Both use the median heuristic for the bandwidth (KSD descent: at the start;
# SVGD: at every iteration) and keep every iterate (``store=True``).

# A first, one-iteration run of each compiles the Numba kernels, so that the
# times below are those of the sampling alone.
kn.ksdd_lbfgs(x0, target, bw="median", max_iter=1)
kn.svgd(x0, target, step=0.01, bw="median", max_iter=1, optimizer="adagrad")

runs = {}
start = time.perf_counter()
runs["KSD descent, L-BFGS"] = kn.ksdd_lbfgs(x0, target, bw="median", max_iter=1000, store=True)
print(
    f"KSD descent, L-BFGS: {runs['KSD descent, L-BFGS'].nit} iterations in "
    f"{time.perf_counter() - start:.2f} s"
)
start = time.perf_counter()
runs["SVGD, adagrad"] = kn.svgd(
    x0, target, step=0.01, bw="median", max_iter=1000, optimizer="adagrad", store=True
)
print(
    f"SVGD, adagrad: {runs['SVGD, adagrad'].nit} iterations in {time.perf_counter() - start:.2f} s"
)

# %%
# Test accuracy and log-likelihood against time
# ---------------------------------------------

fig, (ax_acc, ax_ll) = plt.subplots(1, 2, figsize=(10, 4))
for name, res in runs.items():
    scores = np.array([test_scores(theta) for theta in res.trajectory])
    times = np.maximum(res.times, 1e-4)
    plot_convergence(times, scores[:, 0], ax=ax_acc, label=name, log_time=True)
    plot_convergence(times, scores[:, 1], ax=ax_ll, label=name, log_time=True)
    accuracy, loglik = test_scores(res.x)
    print(f"{name}: test accuracy {accuracy:.3f}, test log-likelihood {loglik:.3f}")
ax_acc.axhline(majority, color="k", linestyle="--", linewidth=1, label="majority class")
ax_acc.set_xlabel("time (s)")
ax_acc.set_ylabel("test accuracy")
ax_acc.set_ylim(0.5, 1.0)
ax_acc.legend(fontsize=9)
ax_ll.set_xlabel("time (s)")
ax_ll.set_ylabel("mean test log-likelihood")
ax_ll.legend(fontsize=9)
fig.suptitle(f"Bayesian logistic regression, breast cancer data ({n_particles} particles)")
fig.tight_layout()
fig.savefig("plot_logistic_regression.png", dpi=150)
print("saved plot_logistic_regression.png")
