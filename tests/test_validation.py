"""Every public entry point refuses bad input with an error that names the problem."""

import subprocess
import sys

import numpy as np
import pytest

import ksdnumba as kn

TARGET = kn.Gaussian(np.zeros(2), 1.0)
X0 = np.random.default_rng(0).normal(size=(5, 2))

ENTRY_POINTS = {
    "ksdd_lbfgs": lambda x, **kw: kn.ksdd_lbfgs(x, TARGET, **kw),
    "ksd_and_grad": lambda x, **kw: kn.ksd_and_grad(x, TARGET, **kw),
    "ksd": lambda x, **kw: kn.ksd(x, TARGET, **kw),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros(5), r"2-D array of shape \(n_particles, n_dims\), got 1-D"),
        (np.zeros((2, 5, 2)), "got 3-D"),
        (np.zeros((0, 2)), "must not be empty"),
        (np.zeros((3, 0)), "must not be empty"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "non-finite"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), "non-finite"),
        (np.array([["a", "b"]]), "numeric"),
        (np.array([[1 + 1j, 0j]]), "numeric"),
        (np.array([[None, 1.0]], dtype=object), "numeric"),
    ],
)
def test_bad_particles(entry, x, match):
    with pytest.raises(ValueError, match=match):
        ENTRY_POINTS[entry](x)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_integer_particles_are_converted(entry):
    ENTRY_POINTS[entry](np.array([[0, 1], [2, -1]]))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_dimension_mismatch(entry):
    with pytest.raises(ValueError, match="3 columns .* target is 2-dimensional"):
        ENTRY_POINTS[entry](np.zeros((4, 3)))


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("bw", [0.0, -1.0, np.inf, np.nan])
def test_bad_bandwidth_value(entry, bw):
    with pytest.raises(ValueError, match="bw must be positive and finite"):
        ENTRY_POINTS[entry](X0, bw=bw)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("bw", [None, True, [1.0]])
def test_bad_bandwidth_type(entry, bw):
    with pytest.raises(TypeError, match="bw must be a positive real number"):
        ENTRY_POINTS[entry](X0, bw=bw)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bandwidth_string_other_than_median(entry):
    with pytest.raises(ValueError, match="bw must be a positive number or 'median', got 'mean'"):
        ENTRY_POINTS[entry](X0, bw="mean")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5, 1.5, np.nan])
def test_bad_beta(entry, beta):
    with pytest.raises(ValueError, match=r"beta must be in the open interval \(0, 1\)"):
        ENTRY_POINTS[entry](X0, kernel="imq", beta=beta)


def test_beta_type():
    with pytest.raises(TypeError, match="beta must be a real number"):
        kn.ksd(X0, TARGET, kernel="imq", beta="0.5")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_unknown_kernel_lists_valid_names(entry):
    with pytest.raises(
        ValueError, match="unknown kernel 'rbf'; valid names are 'gaussian', 'imq', 'linear'"
    ):
        ENTRY_POINTS[entry](X0, kernel="rbf")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_unknown_backend_lists_valid_names(entry):
    with pytest.raises(ValueError, match="unknown backend 'gpu'; valid names are 'auto', 'cpu'"):
        ENTRY_POINTS[entry](X0, backend="gpu")


def test_unknown_statistic():
    with pytest.raises(ValueError, match="unknown statistic 'w'; valid names are 'v', 'u'"):
        kn.ksd(X0, TARGET, statistic="w")


def test_u_statistic_needs_two_particles():
    with pytest.raises(ValueError, match="at least 2 particles"):
        kn.ksd(X0[:1], TARGET, statistic="u")


@pytest.mark.parametrize("max_iter, error", [(-1, ValueError), (1.5, TypeError), ("10", TypeError)])
def test_bad_max_iter(max_iter, error):
    with pytest.raises(error, match="max_iter must be"):
        kn.ksdd_lbfgs(X0, TARGET, max_iter=max_iter)


@pytest.mark.parametrize("name", ["ftol", "gtol"])
@pytest.mark.parametrize("value", [-1e-3, np.nan])
def test_bad_tolerances(name, value):
    with pytest.raises(ValueError, match=f"{name} must be non-negative and finite"):
        kn.ksdd_lbfgs(X0, TARGET, **{name: value})


@pytest.mark.parametrize("dtype, error", [(np.int32, ValueError), (np.float16, ValueError),
                                          ("complex", ValueError), ("nonsense", TypeError)])
def test_bad_dtype(dtype, error):
    with pytest.raises(error, match="dtype must be np.float32 or np.float64"):
        kn.ksdd_lbfgs(X0, TARGET, dtype=dtype)


def test_bad_callback():
    with pytest.raises(TypeError, match="callback must be callable"):
        kn.ksdd_lbfgs(X0, TARGET, callback=3)


def test_bad_verbose():
    with pytest.raises(ValueError, match="verbose must be >= 0"):
        kn.ksdd_lbfgs(X0, TARGET, verbose=-1)


def test_not_a_target():
    with pytest.raises(TypeError):
        kn.ksdd_lbfgs(X0, "gaussian")


class _WrongShape:
    def score(self, x):
        return x[:, :1]

    def hvp(self, x, v):
        return v


class _NanHvp:
    def score(self, x):
        return -x

    def hvp(self, x, v):
        return np.full_like(v, np.nan)


@pytest.mark.parametrize("entry", ["ksdd_lbfgs", "ksd_and_grad", "ksd"])
def test_score_of_wrong_shape(entry):
    call = {"ksdd_lbfgs": kn.ksdd_lbfgs, "ksd_and_grad": kn.ksd_and_grad, "ksd": kn.ksd}[entry]
    with pytest.raises(ValueError, match=r"target.score returned shape \(5, 1\) .* \(5, 2\)"):
        call(X0, _WrongShape())


def test_score_function_of_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        kn.ksdd_lbfgs(X0, lambda x: x.ravel())


def test_non_finite_hvp_at_start():
    with pytest.raises(ValueError, match="target.hvp returned non-finite values"):
        kn.ksdd_lbfgs(X0, _NanHvp())


def test_import_is_light_and_compiles_nothing():
    """`import ksdnumba` pulls in no deep-learning framework nor CUDA, and compiles no kernel."""
    code = (
        "import sys, ksdnumba\n"
        "from ksdnumba.kernels import _cpu\n"
        "heavy = [m for m in ('torch', 'jax', 'tensorflow', 'matplotlib', 'scipy.optimize',\n"
        "                     'scipy.spatial', 'scipy.special', 'scipy.linalg', 'numba.cuda')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "compiled = [n for n in dir(_cpu) if getattr(getattr(_cpu, n), 'signatures', None)]\n"
        "assert not compiled, compiled\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
