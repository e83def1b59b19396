"""Shared fixtures and helpers for the test suite."""

import os

# The CUDA kernels run in numba's CUDA simulator unless told otherwise
# (NUMBA_ENABLE_CUDASIM=0 runs tests/test_kernels_cuda.py on a real GPU). numba
# reads the variable when it is first imported, so this comes before any import
# of numba (through ksdnumba) in the test session.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ksdnumba as kn  # noqa: E402


def central_difference_gradient(f, x, h=1e-6):
    """Gradient of the scalar function ``f`` at ``x`` by central differences.

    The step is relative to each coordinate's scale; with ``f`` of order one the
    error is ~h^2 (truncation) + 1e-16 / h (round-off), about 1e-10.
    """
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        step = h * max(1.0, abs(x[idx]))
        xp = x.copy()
        xm = x.copy()
        xp[idx] += step
        xm[idx] -= step
        grad[idx] = (f(xp) - f(xm)) / (2 * step)
    return grad


def fd_gradient(f, x, h):
    """Central differences of a row-wise scalar function f: (n, d) -> (n,)."""
    grad = np.empty_like(x)
    for j in range(x.shape[1]):
        e = np.zeros(x.shape[1])
        e[j] = h
        grad[:, j] = (f(x + e) - f(x - e)) / (2.0 * h)
    return grad


def fd_directional(f, x, v, h):
    """Central difference of a row-wise field f: (n, d) -> (n, d) along v."""
    return (f(x + h * v) - f(x - h * v)) / (2.0 * h)


def _random_spd(rng, d, scale):
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.5 * np.eye(d))


def make_targets(d, rng):
    """One target of each kind the package ships, in dimension ``d``."""
    means = rng.normal(size=(3, d))
    return {
        "gaussian-scalar": kn.Gaussian(rng.normal(size=d), 0.7),
        "gaussian-diag": kn.Gaussian(rng.normal(size=d), rng.uniform(0.5, 2.0, size=d)),
        "gaussian-full": kn.Gaussian(rng.normal(size=d), _random_spd(rng, d, 1.0)),
        "mixture-iso": kn.GaussianMixture(means, np.array([0.5, 1.0, 1.5]), [0.2, 0.3, 0.5]),
        "mixture-diag": kn.GaussianMixture(means, rng.uniform(0.5, 2.0, size=(3, d))),
        "mixture-full": kn.GaussianMixture(
            means, np.stack([_random_spd(rng, d, s) for s in (0.6, 1.0, 1.4)]), [1, 2, 3]
        ),
    }


TARGET_KINDS = [
    "gaussian-scalar",
    "gaussian-diag",
    "gaussian-full",
    "mixture-iso",
    "mixture-diag",
    "mixture-full",
]


@pytest.fixture
def rng():
    return np.random.default_rng(0)
