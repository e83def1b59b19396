"""ksdnumba: Kernel Stein Discrepancy descent without a deep-learning framework.

Particles are moved to minimise the Kernel Stein Discrepancy (KSD) to a target
known through its score. The KSD and its gradient are computed in closed form by
Numba-compiled loops and handed to SciPy's L-BFGS-B.
"""

from . import datasets
from ._arviz import chain_draw_indices, thinned_trace
from ._result import SamplingResult
from ._sweep import FitResult, SweepResult, grid, sweep
from .compression import KernelThinningResult, WeightsResult, kernel_thinning, stein_weights
from .contenders import mmd_lbfgs, svgd
from .descent import ksdd_gradient, ksdd_lbfgs
from .diagnostics import KSDDiagnosticResult, ksd_curve, ksd_diagnostic
from .gof import (
    KSDAggResult,
    KSDTestResult,
    RelativeKSDTestResult,
    ksd_test,
    ksdagg,
    relative_ksd_test,
)
from .metrics import amari_distance, histogram_kl, ksd, median_bandwidth, mode_occupancy
from .objective import ksd_and_grad
from .targets import (
    BayesianICA,
    BayesianLogisticRegression,
    Gaussian,
    GaussianMixture,
    ScoreFunction,
)
from .thinning import (
    GradientFreeThinningResult,
    ThinningResult,
    stein_thinning,
    stein_thinning_gf,
)

__version__ = "0.1.0.dev0"


def __getattr__(name):
    # SteinMatrix subclasses SciPy's LinearOperator, whose import (scipy.sparse)
    # would double the package's import time: it loads on first use.
    if name == "SteinMatrix":
        from .stein_matrix import SteinMatrix

        return SteinMatrix
    raise AttributeError(f"module 'ksdnumba' has no attribute {name!r}")


__all__ = [
    "BayesianICA",
    "BayesianLogisticRegression",
    "FitResult",
    "Gaussian",
    "GradientFreeThinningResult",
    "GaussianMixture",
    "KSDAggResult",
    "KSDDiagnosticResult",
    "KSDTestResult",
    "KernelThinningResult",
    "RelativeKSDTestResult",
    "SamplingResult",
    "ScoreFunction",
    "SteinMatrix",
    "SweepResult",
    "ThinningResult",
    "WeightsResult",
    "amari_distance",
    "chain_draw_indices",
    "datasets",
    "grid",
    "histogram_kl",
    "kernel_thinning",
    "ksd",
    "ksd_and_grad",
    "ksd_curve",
    "ksd_diagnostic",
    "ksd_test",
    "ksdagg",
    "ksdd_gradient",
    "ksdd_lbfgs",
    "median_bandwidth",
    "mode_occupancy",
    "mmd_lbfgs",
    "relative_ksd_test",
    "stein_thinning",
    "stein_thinning_gf",
    "stein_weights",
    "svgd",
    "sweep",
    "thinned_trace",
]
