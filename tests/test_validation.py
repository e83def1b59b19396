"""Every public entry point refuses bad input with an error that names the problem.

One table lists the entry points with the options each takes; every shared
check runs over every entry point that has the option, so that a new entry
point joins every check by one line. The keyword-only rule of the API is
checked on the signatures of every public callable.
"""

import inspect
import subprocess
import sys

import numpy as np
import pytest

import ksdnumba as kn
from ksdnumba import datasets, plotting

TARGET = kn.Gaussian(np.zeros(2), 1.0)
X0 = np.random.default_rng(0).normal(size=(5, 2))
Y = np.random.default_rng(1).normal(size=(7, 2))


OTHER = kn.Gaussian(np.ones(2), 1.0)


def _thin(x, **kw):
    return kn.stein_thinning(x, x, 2, **kw)  # the points are checked before the scores


def _thin_gf(x, **kw):
    n = len(x)  # the points are checked before the densities and the gradient
    return kn.stein_thinning_gf(x, np.zeros(n), np.zeros(n), np.zeros((n, 2)), 2, **kw)


# name: (call, name of the points in messages, options it takes)
ENTRY_POINTS = {
    "ksdd_lbfgs": (
        lambda x, **kw: kn.ksdd_lbfgs(x, TARGET, **{"max_iter": 2, **kw}),
        "x0",
        {
            "target",
            "kernel",
            "bw",
            "beta",
            "backend",
            "dtype",
            "max_iter",
            "ftol",
            "gtol",
            "callback",
            "verbose",
            "progress",
        },
    ),
    "ksdd_gradient": (
        lambda x, **kw: kn.ksdd_gradient(x, TARGET, step=0.1, **{"max_iter": 2, **kw}),
        "x0",
        {
            "target",
            "kernel",
            "bw",
            "beta",
            "backend",
            "dtype",
            "max_iter",
            "gtol",
            "callback",
            "verbose",
            "progress",
        },
    ),
    "svgd": (
        lambda x, **kw: kn.svgd(x, TARGET, step=0.1, **{"max_iter": 2, **kw}),
        "x0",
        {"target", "bw", "backend", "dtype", "max_iter", "gtol", "callback", "verbose", "progress"},
    ),
    "mmd_lbfgs": (
        lambda x, **kw: kn.mmd_lbfgs(x, Y, **{"max_iter": 2, **kw}),
        "x0",
        {"bw", "backend", "dtype", "max_iter", "ftol", "gtol", "callback", "verbose", "progress"},
    ),
    "ksd": (
        lambda x, **kw: kn.ksd(x, TARGET, **kw),
        "x",
        {"target", "kernel", "bw", "beta", "backend"},
    ),
    "ksd_and_grad": (
        lambda x, **kw: kn.ksd_and_grad(x, TARGET, **kw),
        "x",
        {"target", "kernel", "bw", "beta", "backend"},
    ),
    "ksd_test": (
        lambda x, **kw: kn.ksd_test(x, TARGET, **{"n_resamples": 5, **kw}),
        "x",
        {"target", "kernel", "bw", "beta", "backend", "rng"},
    ),
    "stein_thinning": (_thin, "sample", {"backend"}),
    "stein_thinning_gf": (_thin_gf, "sample", {"kernel", "backend"}),
    "kernel_thinning": (
        lambda x, **kw: kn.kernel_thinning(x, x, 1, **kw),
        "sample",
        {"kernel", "rng", "progress"},
    ),
    "stein_weights": (
        lambda x, **kw: kn.stein_weights(x, x, **kw),
        "sample",
        {"kernel", "backend", "max_iter", "progress"},
    ),
    "ksd_curve": (lambda x, **kw: kn.ksd_curve(x, x, **kw), "sample", {"kernel", "backend"}),
    "ksdagg": (
        lambda x, **kw: kn.ksdagg(x, TARGET, **{"n_resamples": (200, 50), **kw}),
        "x",
        {"target", "backend", "dtype", "rng", "progress"},
    ),
    "relative_ksd_test": (
        lambda x, **kw: kn.relative_ksd_test(x, TARGET, OTHER, **kw),
        "x",
        {"target", "kernel", "bw", "beta", "backend"},
    ),
    "SteinMatrix": (
        lambda x, **kw: kn.SteinMatrix(x, TARGET, **kw),
        "x",
        {"target", "kernel", "bw", "beta", "backend"},
    ),
}


def _having(option):
    return [name for name, (_, _, options) in ENTRY_POINTS.items() if option in options]


def _call(entry, x=X0, **kw):
    return ENTRY_POINTS[entry][0](x, **kw)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros(5), r"{} must be a 2-D array of shape \(n_particles, n_dims\), got 1-D"),
        (np.zeros((2, 5, 2)), "{} must be a 2-D array .* got 3-D"),
        (np.zeros((0, 2)), "{} must not be empty"),
        (np.zeros((3, 0)), "{} must not be empty"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "{} contains non-finite"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), "{} contains non-finite"),
        (np.array([["a", "b"]]), "{} must be a numeric"),
        (np.array([[1 + 1j, 0j]]), "{} must be a numeric"),
        (np.array([[None, 1.0]], dtype=object), "{} must be a numeric"),
    ],
)
def test_bad_points(entry, x, match):
    with pytest.raises(ValueError, match=match.format(ENTRY_POINTS[entry][1])):
        _call(entry, x)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_integer_points_are_converted(entry):
    # Integer points give what the same points in float64 give.
    x = np.array([[0, 1], [2, -1], [1, 1]])
    kw = {"rng": 0} if "rng" in ENTRY_POINTS[entry][2] else {}
    out, ref = _call(entry, x, **kw), _call(entry, x.astype(np.float64), **kw)
    if isinstance(out, tuple):
        pairs = zip(out, ref)
    elif isinstance(out, dict):
        assert out.keys() == ref.keys()
        pairs = [(out[k], ref[k]) for k in out if isinstance(out[k], np.ndarray | float)]
        assert pairs
    elif entry == "SteinMatrix":
        pairs = [(out.toarray(), ref.toarray())]
    else:
        pairs = [(out, ref)]
    for a, b in pairs:
        np.testing.assert_array_equal(a, b)
        if np.asarray(a).dtype.kind == "f":
            assert np.asarray(a).dtype == np.float64


@pytest.mark.parametrize("entry", _having("target"))
def test_dimension_mismatch(entry):
    with pytest.raises(ValueError, match="3 columns .* (target|p) is 2-dimensional"):
        _call(entry, np.zeros((4, 3)))


@pytest.mark.parametrize("entry", _having("bw"))
@pytest.mark.parametrize("bw", [0.0, -1.0, np.inf, np.nan])
def test_bad_bandwidth_value(entry, bw):
    with pytest.raises(ValueError, match="bw must be positive and finite"):
        _call(entry, bw=bw)


@pytest.mark.parametrize("entry", [e for e in _having("bw") if e != "SteinMatrix"])
@pytest.mark.parametrize("bw", [None, True, [1.0]])
def test_bad_bandwidth_type(entry, bw):
    # (SteinMatrix's bw=None means "no bandwidth given": 1.0, or its preconditioner.)
    with pytest.raises(TypeError, match="bw must be a positive real number"):
        _call(entry, bw=bw)


@pytest.mark.parametrize("entry", _having("bw"))
def test_bandwidth_string_other_than_median(entry):
    with pytest.raises(ValueError, match="bw must be a positive number or 'median', got 'mean'"):
        _call(entry, bw="mean")


@pytest.mark.parametrize("entry", _having("beta"))
@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5, 1.5, np.nan])
def test_bad_beta(entry, beta):
    with pytest.raises(ValueError, match=r"beta must be in the open interval \(0, 1\)"):
        _call(entry, kernel="imq", beta=beta)


@pytest.mark.parametrize("entry", _having("beta"))
def test_beta_type(entry):
    with pytest.raises(TypeError, match="beta must be a real number"):
        _call(entry, kernel="imq", beta="0.5")


@pytest.mark.parametrize("entry", _having("kernel"))
def test_unknown_kernel_lists_valid_names(entry):
    with pytest.raises(ValueError, match="unknown kernel 'rbf'; valid names are 'gaussian', 'imq'"):
        _call(entry, kernel="rbf")


@pytest.mark.parametrize("entry", _having("backend"))
def test_unknown_backend_lists_valid_names(entry):
    with pytest.raises(ValueError, match="unknown backend 'gpu'; valid names are 'auto', 'cpu'"):
        _call(entry, backend="gpu")


@pytest.mark.parametrize("entry", _having("max_iter"))
@pytest.mark.parametrize("max_iter, error", [(-1, ValueError), (1.5, TypeError), ("10", TypeError)])
def test_bad_max_iter(entry, max_iter, error):
    with pytest.raises(error, match="max_iter must be"):
        _call(entry, max_iter=max_iter)


@pytest.mark.parametrize("entry, name", [(e, t) for t in ("ftol", "gtol") for e in _having(t)])
@pytest.mark.parametrize("value", [-1e-3, np.nan])
def test_bad_tolerances(entry, name, value):
    with pytest.raises(ValueError, match=f"{name} must be non-negative and finite"):
        _call(entry, **{name: value})


@pytest.mark.parametrize("entry", _having("dtype"))
@pytest.mark.parametrize(
    "dtype, error",
    [
        (np.int32, ValueError),
        (np.float16, ValueError),
        ("complex", ValueError),
        ("nonsense", TypeError),
    ],
)
def test_bad_dtype(entry, dtype, error):
    with pytest.raises(error, match="dtype must be np.float32 or np.float64"):
        _call(entry, dtype=dtype)


@pytest.mark.parametrize("entry", _having("callback"))
def test_bad_callback(entry):
    with pytest.raises(TypeError, match="callback must be callable or None, got int"):
        _call(entry, callback=3)


@pytest.mark.parametrize("entry", _having("verbose"))
def test_bad_verbose(entry):
    with pytest.raises(ValueError, match="verbose must be >= 0"):
        _call(entry, verbose=-1)


@pytest.mark.parametrize("entry", _having("progress"))
def test_bad_progress(entry):
    with pytest.raises(TypeError, match="progress must be True or False, got 1"):
        _call(entry, progress=1)


@pytest.mark.parametrize("entry", _having("rng"))
@pytest.mark.parametrize("rng, error", [("seed", TypeError), (1.5, TypeError), (-1, ValueError)])
def test_bad_rng(entry, rng, error):
    with pytest.raises(error, match="rng"):
        _call(entry, rng=rng)


@pytest.mark.parametrize("entry", _having("target"))
def test_not_a_target(entry):
    with pytest.raises(TypeError, match="target must be"):
        ENTRY_POINTS[entry][0].__code__  # the table's calls fix TARGET: call directly
        {
            "ksdd_lbfgs": lambda: kn.ksdd_lbfgs(X0, "gaussian"),
            "ksdd_gradient": lambda: kn.ksdd_gradient(X0, "gaussian", step=0.1),
            "svgd": lambda: kn.svgd(X0, "gaussian", step=0.1),
            "ksd": lambda: kn.ksd(X0, "gaussian"),
            "ksd_and_grad": lambda: kn.ksd_and_grad(X0, "gaussian"),
            "ksd_test": lambda: kn.ksd_test(X0, "gaussian"),
            "SteinMatrix": lambda: kn.SteinMatrix(X0, object()),
            "ksdagg": lambda: kn.ksdagg(X0, "gaussian"),
            "relative_ksd_test": lambda: kn.relative_ksd_test(X0, "gaussian", OTHER),
        }[entry]()


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


@pytest.mark.parametrize(
    "call", [kn.ksdd_lbfgs, kn.ksd_and_grad, kn.ksd, kn.ksd_test, kn.SteinMatrix]
)
def test_score_of_wrong_shape(call):
    with pytest.raises(ValueError, match=r"target.score returned shape \(5, 1\) .* \(5, 2\)"):
        call(X0, _WrongShape())


def test_score_function_of_wrong_shape():
    with pytest.raises(ValueError, match="shape"):
        kn.ksdd_lbfgs(X0, lambda x: x.ravel())


def test_non_finite_hvp_at_start():
    with pytest.raises(ValueError, match="target.hvp returned non-finite values"):
        kn.ksdd_lbfgs(X0, _NanHvp())


def test_unknown_statistic():
    with pytest.raises(ValueError, match="unknown statistic 'w'; valid names are 'v', 'u'"):
        kn.ksd(X0, TARGET, statistic="w")


def test_u_statistic_needs_two_particles():
    with pytest.raises(ValueError, match="at least 2 particles"):
        kn.ksd(X0[:1], TARGET, statistic="u")


def test_u_statistic_has_no_root():
    with pytest.raises(ValueError, match="can be negative, so it has no square root"):
        kn.ksd(X0, TARGET, statistic="u", squared=False)
    with pytest.raises(TypeError, match="squared must be True or False"):
        kn.ksd(X0, TARGET, squared="yes")


@pytest.mark.parametrize("step", [0.0, -1.0, np.inf, np.nan])
@pytest.mark.parametrize("entry", [kn.ksdd_gradient, kn.svgd])
def test_bad_step_value(entry, step):
    with pytest.raises(ValueError, match="step must be positive and finite"):
        entry(X0, TARGET, step=step)


@pytest.mark.parametrize("step", [None, "0.1", True])
@pytest.mark.parametrize("entry", [kn.ksdd_gradient, kn.svgd])
def test_bad_step_type(entry, step):
    with pytest.raises(TypeError, match="step must be a positive real number"):
        entry(X0, TARGET, step=step)


# --------------------------------------------------------------------------- ksdd_gradient


@pytest.mark.parametrize(
    "clamp, error, match",
    [
        ((1.0, -1.0), ValueError, r"clamp must be \(low, high\) with low < high"),
        ((1.0, 1.0), ValueError, r"clamp must be \(low, high\) with low < high"),
        ((-np.inf, 1.0), ValueError, "clamp must have finite bounds"),
        ((np.nan, 1.0), ValueError, "clamp must have finite bounds"),
        ((0.0, 1.0, 2.0), TypeError, r"clamp must be None or a pair \(low, high\)"),
        (1.0, TypeError, r"clamp must be None or a pair \(low, high\)"),
        (("a", "b"), TypeError, r"clamp must be None or a pair \(low, high\)"),
        ((None, 1.0), TypeError, r"clamp must be None or a pair \(low, high\)"),
    ],
)
def test_bad_clamp(clamp, error, match):
    with pytest.raises(error, match=match):
        kn.ksdd_gradient(X0, TARGET, step=0.1, clamp=clamp)


def test_clamp_accepts_integers_and_arrays():
    res = kn.ksdd_gradient(
        np.clip(X0, -3, 3), TARGET, step=0.1, clamp=np.array([-3, 3]), max_iter=2
    )
    assert res.x.min() >= -3 and res.x.max() <= 3


@pytest.mark.parametrize("entry", ["kernel", "beta"])
def test_ksdd_gradient_checks_the_kernel_like_ksdd_lbfgs(entry):
    if entry == "kernel":
        with pytest.raises(ValueError, match="unknown kernel 'rbf'; valid names are"):
            kn.ksdd_gradient(X0, TARGET, step=0.1, kernel="rbf")
    else:
        with pytest.raises(ValueError, match=r"beta must be in the open interval \(0, 1\)"):
            kn.ksdd_gradient(X0, TARGET, step=0.1, kernel="imq", beta=1.5)


def test_ksdd_gradient_needs_hvp():
    class OnlyScore:
        def score(self, x):
            return -x

    with pytest.raises(TypeError, match="has a score but no hvp method"):
        kn.ksdd_gradient(X0, OnlyScore(), step=0.1)


# --------------------------------------------------------------------------- svgd


def test_unknown_optimizer_lists_valid_names():
    with pytest.raises(
        ValueError, match="unknown optimizer 'adam'; valid names are 'sgd', 'adagrad'"
    ):
        kn.svgd(X0, TARGET, step=0.1, optimizer="adam")


@pytest.mark.parametrize("target", ["gaussian", None, 3.0])
def test_svgd_target_without_score(target):
    with pytest.raises(TypeError, match=r"target must be an object with a score\(x\) method"):
        kn.svgd(X0, target, step=0.1)


def test_svgd_target_class_instead_of_instance():
    with pytest.raises(TypeError, match="target must be an instance, got the class Gaussian"):
        kn.svgd(X0, kn.Gaussian, step=0.1)


def test_svgd_median_needs_two_particles():
    with pytest.raises(ValueError, match="at least 2 points"):
        kn.svgd(X0[:1], TARGET, step=0.1, bw="median")


def test_svgd_non_finite_score_at_start():
    with pytest.raises(ValueError, match="target.score returned non-finite values .* 5 of 5"):
        kn.svgd(X0, lambda x: np.full_like(x, np.nan), step=0.1)


def test_svgd_score_of_wrong_shape():
    with pytest.raises(ValueError, match=r"returned shape \(5, 1\)"):
        kn.svgd(X0, lambda x: x[:, :1], step=0.1)


# --------------------------------------------------------------------------- mmd_lbfgs


@pytest.mark.parametrize(
    "samples, match",
    [
        (np.zeros(7), r"target_samples must be a 2-D array .* got 1-D"),
        (np.zeros((2, 7, 2)), "target_samples must be a 2-D array .* got 3-D"),
        (np.zeros((0, 2)), "target_samples must not be empty"),
        (np.array([[0.0, np.inf]]), "target_samples contains non-finite"),
        (
            np.zeros((7, 3)),
            r"target_samples has 3 columns \(dimensions\) but x0 has 2; "
            r"expected shape \(m, 2\)",
        ),
        (np.zeros((7, 1)), "target_samples has 1 columns"),
        ([["a", "b"]], "target_samples must be a numeric"),
    ],
)
def test_bad_target_samples(samples, match):
    with pytest.raises(ValueError, match=match):
        kn.mmd_lbfgs(X0, samples)


def test_mmd_median_of_coincident_particles():
    with pytest.raises(ValueError, match="median squared distance"):
        kn.mmd_lbfgs(np.zeros((7, 2)), X0, bw="median")


# --------------------------------------------------------------------------- the API's rules

# The data each public callable takes positionally; everything after is keyword-only.
POSITIONAL = {
    "ksdd_lbfgs": ("x0", "target"),
    "ksdd_gradient": ("x0", "target"),
    "svgd": ("x0", "target"),
    "mmd_lbfgs": ("x0", "target_samples"),
    "ksd": ("x", "target"),
    "ksd_and_grad": ("x", "target"),
    "ksd_test": ("x", "target"),
    "stein_thinning": ("sample", "scores", "m"),
    "SteinMatrix": ("x", "score"),
    "median_bandwidth": ("x",),
    "histogram_kl": ("x", "reference"),
    "mode_occupancy": ("x", "means"),
    "amari_distance": ("W", "A"),
    "sweep": ("configs", "targets"),
    "grid": (),
    "Gaussian": ("mean", "covariance"),
    "GaussianMixture": ("means", "covariances", "weights"),
    "ScoreFunction": ("score", "hvp"),
    "BayesianLogisticRegression": ("X", "y"),
    "BayesianICA": ("X",),
    "two_modes": ("variance",),
    "three_modes": ("variance",),
    "skewed_mixture": (),
    "breast_cancer": (),
    "laplace_mixtures": ("n_samples", "n_sources"),
    "plot_target_2d": ("target",),
    "plot_particles": ("x",),
    "plot_convergence": ("times", "values"),
    "SweepResult": ("rows",),
    "ksdagg": ("x", "target_or_scores"),
    "relative_ksd_test": ("x", "p", "q"),
    "stein_thinning_gf": ("sample", "log_p", "log_q", "gradient_q", "m"),
    "chain_draw_indices": ("indices", "trace"),
    "thinned_trace": ("trace", "indices"),
    "ksd_curve": ("sample", "scores"),
    "ksd_diagnostic": ("draws", "scores_or_target"),
    "plot_ksd_curve": ("result",),
    "stein_weights": ("sample", "scores"),
    "kernel_thinning": ("sample", "scores", "rounds"),
}


def _public_callables():
    out = {}
    for module, names in (
        (kn, kn.__all__),
        (datasets, datasets.__all__),
        (plotting, plotting.__all__),
    ):
        for name in names:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or (inspect.isclass(obj) and "__init__" in vars(obj)):
                out[name] = obj
    return out


def test_every_public_callable_is_in_the_table():
    missing = sorted(set(_public_callables()) - set(POSITIONAL))
    assert not missing, f"add these to POSITIONAL: {missing}"


@pytest.mark.parametrize("name", sorted(_public_callables()))
def test_options_are_keyword_only(name):
    obj = _public_callables()[name]
    params = [
        p
        for p in inspect.signature(obj).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert tuple(positional) == POSITIONAL[name], (
        f"{name}: positional {positional}, expected {POSITIONAL[name]} then keyword-only options"
    )


def test_import_is_light_and_compiles_nothing():
    """`import ksdnumba` pulls in no deep-learning framework nor CUDA, and compiles no kernel."""
    code = (
        "import sys, ksdnumba\n"
        "from ksdnumba.kernels import _cpu\n"
        "heavy = [m for m in ('torch', 'jax', 'tensorflow', 'matplotlib', 'scipy.optimize',\n"
        "                     'scipy.spatial', 'scipy.special', 'scipy.linalg', 'scipy.sparse',\n"
        "                     'numba.cuda', 'pandas', 'pymc', 'arviz', 'tqdm')\n"
        "         if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "compiled = [n for n in dir(_cpu) if getattr(getattr(_cpu, n), 'signatures', None)]\n"
        "assert not compiled, compiled\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
