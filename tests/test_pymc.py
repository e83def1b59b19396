"""from_pymc: scores, HVPs and transforms of PyMC models; ArviZ traces in and out."""

import pickle
import sys
import warnings

import numpy as np
import pytest

import ksdnumba as kn
from ksdnumba._arviz import chain_draw_indices, posterior_dataset, thinned_trace

pm = pytest.importorskip("pymc")
xr = pytest.importorskip("xarray")
pt = pytest.importorskip("pytensor.tensor")

from ksdnumba.targets._pymc import PyMCTarget, from_pymc  # noqa: E402

# The eight-schools data (Rubin 1981), as in PyMC's and Stan's examples.
SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def bounded_model():
    """Positive, interval and dependent-interval variables, and a matrix one."""
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 2.0)
        sigma = pm.HalfNormal("sigma", 1.5)
        lo = pm.Normal("lo", 0.0, 1.0)
        # Its bounds are another free variable: the forward transform needs lo's value.
        pm.Uniform("u", lower=lo, upper=lo + 3.0, shape=2)
        pm.Normal("W", 0.0, 1.0, shape=(2, 3))
        pm.Normal("y", mu, sigma, observed=[0.3, -0.2, 0.5, 1.1])
    return model


def logistic_model(n_obs=40, p=5, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_obs, p))
    y = (rng.random(n_obs) < 1.0 / (1.0 + np.exp(-X @ rng.normal(size=p)))).astype(int)
    with pm.Model() as model:
        alpha = pm.Normal("alpha", 0.0, 2.0)
        beta = pm.Normal("beta", 0.0, 1.0, shape=p)
        pm.Bernoulli("y", logit_p=alpha + pt.dot(X, beta), observed=y)
    return model


def schools_model(centred):
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        if centred:
            theta = pm.Normal("theta", mu, tau, shape=8)
        else:
            theta_tilde = pm.Normal("theta_tilde", 0.0, 1.0, shape=8)
            theta = pm.Deterministic("theta", mu + tau * theta_tilde)
        pm.Normal("y", theta, SCHOOLS_SIGMA, observed=SCHOOLS_Y)
    return model


MODELS = {
    "bounded": bounded_model,
    "logistic": logistic_model,
    "schools-centred": lambda: schools_model(True),
    "schools-noncentred": lambda: schools_model(False),
}


@pytest.fixture(scope="module")
def targets():
    return {}


def get_target(targets, name):
    if name not in targets:
        targets[name] = from_pymc(MODELS[name]())
    return targets[name]


def points(target, n=6, seed=0, scale=0.7):
    return scale * np.random.default_rng(seed).normal(size=(n, target.n_dims))


def point_dict(target, row):
    return {v: row[target.slices[v]].reshape(target.shapes[v]) for v in target.value_vars}


def five_point(f, x, direction, h):
    """Fourth-order central difference of f along `direction` (error ~ h^4)."""
    return (
        -f(x + 2 * h * direction)
        + 8 * f(x + h * direction)
        - 8 * f(x - h * direction)
        + f(x - 2 * h * direction)
    ) / (12 * h)


# ------------------------------------------------------------------ layout


def test_names_follow_value_vars_in_c_order(targets):
    target = get_target(targets, "bounded")
    assert target.value_vars == ["mu", "sigma_log__", "lo", "u_interval__", "W"]
    assert target.free_vars == ["mu", "sigma", "lo", "u", "W"]
    assert target.names == [
        "mu",
        "sigma_log__",
        "lo",
        "u_interval__[0]",
        "u_interval__[1]",
        "W[0, 0]",
        "W[0, 1]",
        "W[0, 2]",
        "W[1, 0]",
        "W[1, 1]",
        "W[1, 2]",
    ]
    assert target.n_dims == target.dim == 11
    assert target.slices["W"] == slice(5, 11)


# ------------------------------------------------------------------ score, logp, hvp


@pytest.mark.parametrize(
    "name",
    [
        "bounded",
        pytest.param("logistic", marks=pytest.mark.slow),
        pytest.param("schools-centred", marks=pytest.mark.slow),
        "schools-noncentred",
    ],
)
def test_score_and_logp_match_pymc(targets, name):
    target = get_target(targets, name)
    model = target.model
    x = points(target)
    score = target.score(x)
    logp = target.logpdf(x)
    np.testing.assert_array_equal(target.log_prob(x), logp)
    dlogp = model.compile_dlogp()
    logp_fn = model.compile_logp()
    for row, s, lp in zip(x, score, logp):
        point = point_dict(target, row)
        # The same raveling as PyMC's: the flat row is DictToArrayBijection's.
        raveled = pm.blocking.DictToArrayBijection.map(point)
        np.testing.assert_array_equal(raveled.data, row)
        np.testing.assert_allclose(s, dlogp(point), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(lp, logp_fn(point), rtol=1e-12)


@pytest.mark.parametrize(
    "name",
    [
        "bounded",
        pytest.param("logistic", marks=pytest.mark.slow),
        pytest.param("schools-centred", marks=pytest.mark.slow),
        "schools-noncentred",
    ],
)
def test_score_and_hvp_match_finite_differences(targets, name):
    target = get_target(targets, name)
    x = points(target, n=4, seed=2)
    score = target.score(x)
    fd = np.empty_like(x)
    for j in range(target.n_dims):
        e = np.zeros(target.n_dims)
        e[j] = 1.0
        fd[:, j] = five_point(target.logpdf, x, e, 1e-3)
    scale = np.abs(score).max()
    np.testing.assert_allclose(score, fd, rtol=1e-8, atol=1e-8 * scale)

    v = np.random.default_rng(3).normal(size=x.shape)
    hvp = target.hvp(x, v)
    fd = five_point(target.score, x, v, 1e-3)
    np.testing.assert_allclose(hvp, fd, rtol=1e-8, atol=1e-8 * np.abs(hvp).max())
    # The Hessian is symmetric: u . H v = v . H u, row by row.
    u = np.random.default_rng(4).normal(size=x.shape)
    np.testing.assert_allclose(
        np.sum(u * hvp, axis=1), np.sum(v * target.hvp(x, u), axis=1), rtol=1e-12
    )


@pytest.mark.slow
def test_loop_and_batches_give_the_batched_numbers(targets):
    target = get_target(targets, "bounded")
    x = points(target, n=5, seed=5)
    v = np.ones_like(x)
    looped = from_pymc(target.model, vectorize=False)
    chunked = from_pymc(target.model, batch=2)
    whole = from_pymc(target.model, batch=None)
    for other in (looped, chunked, whole):
        np.testing.assert_allclose(other.score(x), target.score(x), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(other.hvp(x, v), target.hvp(x, v), rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(other.logpdf(x), target.logpdf(x), rtol=1e-14)
    assert target.vectorized and not looped.vectorized


def test_vectorize_failure_falls_back_to_a_loop(targets, monkeypatch):
    import pytensor.graph.replace

    def refuse(*args, **kwargs):
        raise NotImplementedError("no batching here")

    monkeypatch.setattr(pytensor.graph.replace, "vectorize_graph", refuse)
    reference = get_target(targets, "bounded")
    target = from_pymc(reference.model)
    x = points(target, n=3)
    with pytest.warns(RuntimeWarning, match="no batching here.*row by row"):
        score = target.score(x)
    np.testing.assert_allclose(score, reference.score(x), rtol=1e-13, atol=1e-13)
    assert not target.vectorized


def test_empty_input_and_pickling(targets):
    target = get_target(targets, "bounded")
    assert target.score(np.empty((0, target.n_dims))).shape == (0, target.n_dims)
    x = points(target, n=3)
    clone = pickle.loads(pickle.dumps(target))
    np.testing.assert_array_equal(clone.score(x), target.score(x))
    assert clone.names == target.names


def test_tempered(targets):
    target = get_target(targets, "bounded")
    x = points(target, n=2)
    np.testing.assert_allclose(target.tempered(0.5).score(x), 0.5 * target.score(x))


# ------------------------------------------------------------------ transforms


def posterior_from(target, x):
    """A posterior Dataset holding the constrained values of x (chains, draws, d)."""
    values = target.to_constrained(x)
    return xr.Dataset(
        {
            name: (("chain", "draw", *[f"{name}_dim_{k}" for k in range(arr.ndim - 2)]), arr)
            for name, arr in values.items()
        }
    )


def test_to_constrained_applies_the_back_transforms(targets):
    target = get_target(targets, "bounded")
    x = points(target, n=4, seed=6)
    values = target.to_constrained(x)
    assert list(values) == target.free_vars
    np.testing.assert_allclose(values["sigma"], np.exp(x[:, 1]), rtol=1e-15)
    lo = x[:, 2]
    expected_u = lo[:, None] + 3.0 / (1.0 + np.exp(-x[:, 3:5]))
    np.testing.assert_allclose(values["u"], expected_u, rtol=1e-14)
    np.testing.assert_array_equal(values["W"], x[:, 5:].reshape(4, 2, 3))
    assert target.to_constrained(x.reshape(2, 2, -1))["W"].shape == (2, 2, 2, 3)


def test_round_trip_through_a_posterior(targets):
    target = get_target(targets, "bounded")
    x = points(target, n=6, seed=7).reshape(2, 3, -1)
    post = posterior_from(target, x)
    for trace in (post, xr.DataTree.from_dict({"posterior": post})):
        back = target.to_unconstrained(trace)
        assert back.shape == (2, 3, target.n_dims)
        np.testing.assert_allclose(back, x, rtol=1e-12, atol=1e-12)


def test_to_unconstrained_loop_fallback(targets):
    reference = get_target(targets, "bounded")
    looped = from_pymc(reference.model, vectorize=False)
    x = points(reference, n=4, seed=8).reshape(2, 2, -1)
    post = posterior_from(reference, x)
    np.testing.assert_allclose(looped.to_unconstrained(post), x, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        looped.to_constrained(x)["u"], reference.to_constrained(x)["u"], rtol=1e-15
    )


# ------------------------------------------------------------------ real traces


@pytest.fixture(scope="module")
def schools_trace():
    model = schools_model(centred=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trace = pm.sample(
            draws=50,
            tune=50,
            chains=2,
            cores=1,
            random_seed=11,
            progressbar=False,
            compute_convergence_checks=False,
            model=model,
        )
    return model, trace


@pytest.mark.slow
def test_trace_conversion_on_a_pymc_sample(schools_trace):
    model, trace = schools_trace
    target = from_pymc(model)
    x = target.to_unconstrained(trace)
    assert x.shape == (2, 50, 10)
    post = posterior_dataset(trace)
    np.testing.assert_allclose(x[..., 1], np.log(post["tau"].values), rtol=1e-14)
    np.testing.assert_allclose(x[..., 2:], post["theta_tilde"].values, rtol=1e-15)
    # The sampler's own log density at each draw: same space, same order, same Jacobian.
    lp = posterior_dataset_stats(trace)["lp"].values
    np.testing.assert_allclose(target.logpdf(x.reshape(-1, 10)).reshape(2, 50), lp, rtol=1e-10)
    back = target.to_constrained(x)
    np.testing.assert_allclose(back["tau"], post["tau"].values, rtol=1e-14)


def posterior_dataset_stats(trace):
    if hasattr(trace, "sample_stats"):
        return trace.sample_stats
    return trace["sample_stats"].to_dataset()


@pytest.mark.slow
def test_thinned_trace_works_with_arviz(schools_trace):
    az = pytest.importorskip("arviz")
    model, trace = schools_trace
    target = from_pymc(model)
    x = target.to_unconstrained(trace)
    flat = x.reshape(-1, target.n_dims)
    res = kn.stein_thinning(flat, target.score(flat), 12)
    chain, draw = chain_draw_indices(res.indices, trace)
    np.testing.assert_array_equal(x[chain, draw], flat[res.indices])
    thinned = thinned_trace(trace, res.indices)
    assert type(thinned) is type(trace)
    post = posterior_dataset(thinned)
    assert dict(post.sizes)["draw"] == 12 and dict(post.sizes)["chain"] == 1
    np.testing.assert_array_equal(
        post["tau"].values[0], posterior_dataset(trace)["tau"].values[chain, draw]
    )
    np.testing.assert_array_equal(post["source_chain"].values, chain)
    np.testing.assert_array_equal(
        posterior_dataset_stats(thinned)["lp"].values[0],
        posterior_dataset_stats(trace)["lp"].values[chain, draw],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = az.summary(thinned)
    assert len(summary) >= 10


def test_thinned_trace_of_a_datatree_and_an_inferencedata():
    az = pytest.importorskip("arviz")
    mu = np.arange(8.0).reshape(2, 4)
    post = xr.Dataset({"mu": (("chain", "draw"), mu)})
    observed = xr.Dataset({"y": (("y_dim_0",), np.ones(3))})
    tree = xr.DataTree.from_dict({"posterior": post, "observed_data": observed})
    thinned = thinned_trace(tree, [5, 0, 5])
    assert isinstance(thinned, xr.DataTree)
    np.testing.assert_array_equal(thinned["posterior"]["mu"].values, [[5.0, 0.0, 5.0]])
    np.testing.assert_array_equal(thinned["observed_data"]["y"].values, np.ones(3))
    major = int(az.__version__.split(".")[0])
    if major < 1:  # ArviZ 1.x keeps the name InferenceData as an alias of DataTree
        idata = az.InferenceData(posterior=post, observed_data=observed)
        thinned = thinned_trace(idata, [7, 1])
        assert isinstance(thinned, az.InferenceData)
        np.testing.assert_array_equal(thinned.posterior["mu"].values, [[7.0, 1.0]])
        assert "observed_data" in thinned.groups()
    from_dataset = thinned_trace(post, [1])
    assert isinstance(from_dataset, xr.DataTree if major >= 1 else az.InferenceData)


def test_chain_draw_indices():
    chain, draw = chain_draw_indices([0, 4, 7], (2, 4))
    np.testing.assert_array_equal(chain, [0, 1, 1])
    np.testing.assert_array_equal(draw, [0, 0, 3])
    chain, draw = chain_draw_indices(np.array([5]), np.zeros((3, 2, 7)))
    assert (chain[0], draw[0]) == (2, 1)


# ------------------------------------------------------------------ the package's tools


@pytest.mark.slow
def test_package_tools_accept_the_target(targets):
    target = get_target(targets, "schools-noncentred")
    x = points(target, n=30, seed=9, scale=0.5)
    ksd2 = kn.ksd(x, target, kernel="imq", bw=1.0)
    assert np.isfinite(ksd2) and ksd2 > 0
    res = kn.stein_thinning(x, target.score(x), 5)
    assert res.indices.shape == (5,)
    test = kn.ksd_test(x, target, n_resamples=50, rng=0)
    assert test.null_distribution.shape == (50,)
    assert test.pvalue == (1 + np.sum(test.null_distribution >= test.statistic)) / 51
    fit = kn.ksdd_lbfgs(x[:10], target, max_iter=3)
    assert fit.x.shape == (10, target.n_dims) and np.isfinite(fit.fun)
    moved = kn.svgd(x[:10], target, step=1e-3, max_iter=3)
    assert moved.x.shape == (10, target.n_dims)


def test_stein_matrix_builds(targets):
    target = get_target(targets, "bounded")
    x = points(target, n=8)
    H = kn.SteinMatrix(x, target)
    assert H.shape == (8, 8)
    np.testing.assert_allclose(H.toarray(), H.toarray().T, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ bad input


def test_discrete_free_variables_are_refused():
    with pm.Model() as model:
        pm.Normal("mu", 0.0, 1.0)
        pm.Poisson("k", 3.0)
    with pytest.raises(ValueError, match=r"discrete free variables \(k\).*no score"):
        from_pymc(model)


def test_bad_models_and_options():
    with pytest.raises(TypeError, match="model must be a pymc.Model"):
        from_pymc(object())
    with pytest.raises(ValueError, match="no free variables"):
        from_pymc(pm.Model())
    with pytest.raises(ValueError, match="batch"):
        from_pymc(bounded_model(), batch=0)


def test_points_of_the_wrong_dimension(targets):
    target = get_target(targets, "bounded")
    with pytest.raises(ValueError, match="n_dims=11"):
        target.score(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="same shape as x"):
        target.hvp(np.zeros((2, 11)), np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 11\)"):
        target.to_constrained(np.zeros((2, 3)))


def test_bad_traces(targets):
    target = get_target(targets, "bounded")
    x = points(target, n=4, seed=10).reshape(2, 2, -1)
    post = posterior_from(target, x)
    stats = xr.Dataset({"lp": (("chain", "draw"), np.zeros((2, 2)))})
    with pytest.raises(ValueError, match="no posterior group.*sample_stats"):
        target.to_unconstrained(xr.DataTree.from_dict({"sample_stats": stats}))
    with pytest.raises(TypeError, match="InferenceData"):
        target.to_unconstrained({"posterior": post})
    with pytest.raises(ValueError, match="no 'chain' dimension"):
        target.to_unconstrained(post.isel(chain=0))
    nan = post.copy(deep=True)
    nan["mu"][1, 0] = np.nan
    with pytest.raises(ValueError, match=r"draws of 'mu' contain NaN.*1 of 4"):
        target.to_unconstrained(nan)
    with pytest.raises(ValueError, match="lacks the model's free variables sigma"):
        target.to_unconstrained(post.drop_vars("sigma"))
    wrong = post.assign(W=(("chain", "draw", "a", "b"), np.zeros((2, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"'W' have shape \(3, 3\).*do not match the model"):
        target.to_unconstrained(wrong)
    negative = post.assign(sigma=-post["sigma"])
    with pytest.raises(ValueError, match="4 of 4 draws are outside the support.*sigma_log__"):
        target.to_unconstrained(negative)


def test_bad_indices():
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 8\)"):
        chain_draw_indices([8], (2, 4))
    with pytest.raises(ValueError, match="1-D array of integers"):
        chain_draw_indices([0.5], (2, 4))
    mu = xr.Dataset({"mu": (("chain", "draw"), np.zeros((2, 4)))})
    with pytest.raises(ValueError, match="no posterior group"):
        thinned_trace(xr.DataTree.from_dict({"prior": mu}), [0])


def test_missing_pymc_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymc", None)
    with pytest.raises(ImportError, match=r"pip install 'ksdnumba\[pymc\]'"):
        from_pymc(object())
    with pytest.raises(ImportError, match=r"ksdnumba\[pymc\]"):
        PyMCTarget(object())


def test_missing_arviz_names_the_extra(monkeypatch):
    post = xr.Dataset({"mu": (("chain", "draw"), np.zeros((2, 4)))})
    monkeypatch.setitem(sys.modules, "arviz", None)
    with pytest.raises(ImportError, match=r"pip install 'ksdnumba\[arviz\]'"):
        thinned_trace(post, [0])
