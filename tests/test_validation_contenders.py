"""ksdd_gradient, svgd and mmd_lbfgs refuse bad input with an error naming the problem."""

import numpy as np
import pytest

import ksdnumba as kn

TARGET = kn.Gaussian(np.zeros(2), 1.0)
X0 = np.random.default_rng(0).normal(size=(5, 2))
Y = np.random.default_rng(1).normal(size=(7, 2))

ENTRY_POINTS = {
    "ksdd_gradient": lambda x, **kw: kn.ksdd_gradient(x, TARGET, step=0.1, **{"max_iter": 2, **kw}),
    "svgd": lambda x, **kw: kn.svgd(x, TARGET, step=0.1, **{"max_iter": 2, **kw}),
    "mmd_lbfgs": lambda x, **kw: kn.mmd_lbfgs(x, Y, **{"max_iter": 2, **kw}),
}
STEPPED = {
    "ksdd_gradient": lambda step: kn.ksdd_gradient(X0, TARGET, step=step),
    "svgd": lambda step: kn.svgd(X0, TARGET, step=step),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize(
    "x, match",
    [
        (np.zeros(5), r"x0 must be a 2-D array of shape \(n_particles, n_dims\), got 1-D"),
        (np.zeros((0, 2)), "x0 must not be empty"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "x0 contains non-finite"),
        (np.array([["a", "b"]]), "x0 must be a numeric"),
    ],
)
def test_bad_particles(entry, x, match):
    with pytest.raises(ValueError, match=match):
        ENTRY_POINTS[entry](x)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_integer_particles_are_converted(entry):
    res = ENTRY_POINTS[entry](np.array([[0, 1], [2, -1]]))
    assert res.x.dtype == np.float64


@pytest.mark.parametrize("entry", ["ksdd_gradient", "svgd"])
def test_dimension_mismatch_with_target(entry):
    with pytest.raises(ValueError, match="3 columns .* target is 2-dimensional"):
        ENTRY_POINTS[entry](np.zeros((4, 3)))


@pytest.mark.parametrize("entry", STEPPED)
@pytest.mark.parametrize("step", [0.0, -1.0, np.inf, np.nan])
def test_bad_step_value(entry, step):
    with pytest.raises(ValueError, match="step must be positive and finite"):
        STEPPED[entry](step)


@pytest.mark.parametrize("entry", STEPPED)
@pytest.mark.parametrize("step", [None, "0.1", True])
def test_bad_step_type(entry, step):
    with pytest.raises(TypeError, match="step must be a positive real number"):
        STEPPED[entry](step)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("bw", [0.0, -1.0, np.inf, np.nan])
def test_bad_bandwidth(entry, bw):
    with pytest.raises(ValueError, match="bw must be positive and finite"):
        ENTRY_POINTS[entry](X0, bw=bw)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bandwidth_string_other_than_median(entry):
    with pytest.raises(ValueError, match="bw must be a positive number or 'median', got 'mean'"):
        ENTRY_POINTS[entry](X0, bw="mean")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("max_iter, error", [(-1, ValueError), (1.5, TypeError)])
def test_bad_max_iter(entry, max_iter, error):
    with pytest.raises(error, match="max_iter must be"):
        ENTRY_POINTS[entry](X0, max_iter=max_iter)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bad_dtype(entry):
    with pytest.raises(ValueError, match="dtype must be np.float32 or np.float64"):
        ENTRY_POINTS[entry](X0, dtype=np.int32)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bad_callback(entry):
    with pytest.raises(TypeError, match="callback must be callable or None, got int"):
        ENTRY_POINTS[entry](X0, callback=3)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_unknown_backend_lists_valid_names(entry):
    with pytest.raises(ValueError, match="unknown backend 'gpu'; valid names are 'auto', 'cpu'"):
        ENTRY_POINTS[entry](X0, backend="gpu")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_bad_verbose(entry):
    with pytest.raises(ValueError, match="verbose must be >= 0"):
        ENTRY_POINTS[entry](X0, verbose=-1)


@pytest.mark.parametrize("entry, name", [("ksdd_gradient", "gtol"), ("svgd", "gtol"),
                                         ("mmd_lbfgs", "ftol"), ("mmd_lbfgs", "gtol")])
@pytest.mark.parametrize("value", [-1e-3, np.nan])
def test_bad_tolerances(entry, name, value):
    with pytest.raises(ValueError, match=f"{name} must be non-negative and finite"):
        ENTRY_POINTS[entry](X0, **{name: value})


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
    res = kn.ksdd_gradient(np.clip(X0, -3, 3), TARGET, step=0.1, clamp=np.array([-3, 3]),
                           max_iter=2)
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
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; valid names are 'sgd', "
                                         "'adagrad'"):
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
        (np.zeros((7, 3)), r"target_samples has 3 columns \(dimensions\) but x0 has 2; "
                           r"expected shape \(m, 2\)"),
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
