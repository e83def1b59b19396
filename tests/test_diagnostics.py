"""Running KSD curves and the MCMC diagnostic: stein-thinning's ksd live and pinned, the
dense oracle, the per-chain curves, ArviZ traces with PyMC targets, the plot, every error."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import ksdnumba as kn
from ksdnumba.diagnostics import KSDDiagnosticResult, ksd_curve, ksd_diagnostic
from ksdnumba.kernels import _reference as ref

RTOL = 1e-10
ROOT = Path(__file__).resolve().parent.parent


def _sample(n=40):
    """The sample of tests/test_thinning.py's pinned indices."""
    rng = np.random.default_rng(2026)
    x = rng.normal(size=(n, 2)) * [1.0, 3.0] + [0.5, -1.0]
    return x, -(x - [0.5, -1.0]) / [1.0, 9.0]


def _heavy(n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_t(4, size=(n, d)) * rng.uniform(0.5, 3.0, size=d)
    return x, -x / (1.0 + x**2)


def _dense_curve(z, t, L, kernel="imq"):
    """sqrt(sum of the leading m x m block) / m from the dense oracle."""
    K = ref.preconditioned_stein_matrix(kernel, z, t, L)
    n = z.shape[0]
    blocks = [K[:m, :m].sum() for m in range(1, n + 1)]
    return np.sqrt(blocks) / np.arange(1, n + 1)


# ------------------------------------------------------------------ ksd_curve


# stein-thinning 0.2.0's stein.ksd(_make_stein_integrand(x, s, standardize, preconditioner), 40)
# for _sample(), at m = 1, 2, 5, 10, 40: the comparison runs where it is not installed.
AT = [1, 2, 5, 10, 40]
PINNED = [
    (
        "id",
        True,
        [
            1.578066254736878,
            1.4813863676109442,
            0.772150608394283,
            0.5137071100173294,
            0.3003549558777927,
        ],
    ),
    (
        "med",
        False,
        [
            0.9191957264968903,
            1.2973499553546575,
            0.5529472716537005,
            0.29173634151576755,
            0.13849604547083458,
        ],
    ),
    (
        "sclmed",
        True,
        [
            1.535394357387842,
            1.4613650453239198,
            0.7575183429836341,
            0.5026190578668512,
            0.29385121337143627,
        ],
    ),
    (
        "smpcov",
        True,
        [
            1.3214435343096698,
            1.3649794291924353,
            0.6740851887845255,
            0.4410405230987968,
            0.2582744805521639,
        ],
    ),
    (
        "0.5",
        False,
        [
            2.15301504066245,
            1.7986522527797788,
            1.000769688822019,
            0.6462644246900731,
            0.3728172692091018,
        ],
    ),
]


@pytest.mark.parametrize("preconditioner, standardize, expected", PINNED)
def test_pinned_stein_thinning_ksd(preconditioner, standardize, expected):
    x, s = _sample()
    got = ksd_curve(x, s, preconditioner=preconditioner, standardize=standardize, at=AT)
    np.testing.assert_allclose(got, expected, rtol=RTOL)


@pytest.mark.parametrize("preconditioner", ["id", "med", "sclmed", "smpcov", "2.5"])
@pytest.mark.parametrize("standardize", [True, False])
@pytest.mark.parametrize("n, d", [(1100, 3), (300, 1), (200, 6)])
def test_same_values_as_stein_thinning(preconditioner, standardize, n, d):
    thinning = pytest.importorskip("stein_thinning.thinning")
    stein = pytest.importorskip("stein_thinning.stein")
    if preconditioner == "smpcov" and d == 1:
        pytest.skip("stein-thinning's smpcov fails at d = 1")
    x, s = _heavy(n, d, n + d)
    # The integrand stein-thinning's thin() builds for these options.
    integrand = thinning._make_stein_integrand(
        x, s, standardize=standardize, preconditioner=preconditioner
    )
    theirs = stein.ksd(integrand, n)
    ours = ksd_curve(x, s, standardize=standardize, preconditioner=preconditioner)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL)


@pytest.mark.parametrize("kernel", ["imq", "gaussian"])
@pytest.mark.parametrize("preconditioner", ["sclmed", "smpcov", 0.7])
def test_matches_the_dense_oracle(kernel, preconditioner):
    x, s = _heavy(150, 3, 7)
    res = kn.stein_thinning(x, s, 1, kernel=kernel, preconditioner=preconditioner)
    z, t = x / res.scale, s * res.scale
    expected = _dense_curve(z, t, res.preconditioner, kernel)
    got = ksd_curve(x, s, kernel=kernel, preconditioner=preconditioner)
    np.testing.assert_allclose(got, expected, rtol=RTOL)


def test_defaults_are_stein_thinnings_kernel():
    # The curve of the picked points, in the whole sample's kernel, is ThinningResult.ksd.
    x, s = _heavy(400, 2, 3)
    res = kn.stein_thinning(x, s, 30)
    z, t = x / res.scale, s * res.scale
    picked = ksd_curve(
        z[res.indices],
        t[res.indices],
        preconditioner=np.linalg.inv(res.preconditioner),
        standardize=False,
    )
    np.testing.assert_allclose(picked, res.ksd, rtol=RTOL)
    np.testing.assert_allclose(ksd_curve(x, s), _dense_curve(z, t, res.preconditioner), rtol=RTOL)


def test_at_selects_from_the_same_curve():
    x, s = _heavy(120, 2, 4)
    curve = ksd_curve(x, s)
    assert curve.shape == (120,) and curve.dtype == np.float64
    at = [120, 1, 7, 7, 60]
    np.testing.assert_array_equal(ksd_curve(x, s, at=at), curve[np.array(at) - 1])
    assert ksd_curve(x, s, at=np.array([[2, 3]])).shape == (1, 2)
    value = ksd_curve(x, s, at=50)
    assert isinstance(value, float) and value == curve[49]
    assert ksd_curve(x, s, at=[]).shape == (0,)
    # One point: the root of its diagonal entry.
    one = ksd_curve(x[:1], s[:1], preconditioner=1.0, standardize=False)
    np.testing.assert_allclose(one, [np.sqrt(s[0] @ s[0] + 2.0)], rtol=RTOL)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"at": [0]}, ValueError, r"at must lie in \[1, 30\]"),
        ({"at": [31]}, ValueError, r"at must lie in \[1, 30\].*31"),
        ({"at": [1.5]}, TypeError, "at must be integers"),
        ({"at": [True]}, TypeError, "at must be integers"),
        ({"kernel": "linear"}, ValueError, "unknown kernel 'linear'"),
        ({"preconditioner": "bogus"}, ValueError, "unknown preconditioner 'bogus'"),
        ({"standardize": "yes"}, TypeError, "standardize must be True or False"),
    ],
)
def test_bad_options(kwargs, error, match):
    x, s = _heavy(30, 2, 5)
    with pytest.raises(error, match=match):
        ksd_curve(x, s, **kwargs)


def test_bad_samples():
    x, s = _heavy(30, 2, 5)
    with pytest.raises(ValueError, match=r"scores must have the shape of sample, \(30, 2\)"):
        ksd_curve(x, s[:, :1])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="sample contains non-finite values"):
        ksd_curve(bad, s)
    with pytest.raises(ValueError, match="sample must be a 2-D array"):
        ksd_curve(x[:, 0], s[:, 0])
    with pytest.raises(ValueError, match=r"column\(s\) \[0\] of sample are constant"):
        ksd_curve(np.c_[np.ones(30), x[:, 1]], s)


# ------------------------------------------------------------------ ksd_diagnostic


def _chains(n_chains=3, n_draws=200, d=2, seed=0):
    x = np.random.default_rng(seed).normal(size=(n_chains, n_draws, d))
    return x, -x


def test_one_chain_is_ksd_curve():
    x, s = _chains(1, 300)
    res = ksd_diagnostic(x[0], s[0], n_grid=12)
    assert isinstance(res, KSDDiagnosticResult)
    assert (res.n_chains, res.n_draws, res.n_dims) == (1, 300, 2)
    assert res.m[0] == 1 and res.m[-1] == 300 and np.all(np.diff(res.m) > 0)
    np.testing.assert_array_equal(res.ksd[0], ksd_curve(x[0], s[0], at=res.m))
    assert res.pooled_ksd == pytest.approx(res.final_ksd[0], rel=RTOL)
    same = ksd_diagnostic(x, s, n_grid=12)
    np.testing.assert_array_equal(same.ksd, res.ksd)


def test_chains_pooled_and_reference_against_the_dense_oracle():
    x, s = _chains(3, 80)
    res = ksd_diagnostic(x, s, n_grid=10)
    flat, sflat = x.reshape(-1, 2), s.reshape(-1, 2)
    # One kernel for every chain: the pooled draws' scale and preconditioner.
    pooled = kn.stein_thinning(flat, sflat, 1)
    np.testing.assert_array_equal(res.scale, pooled.scale)
    np.testing.assert_array_equal(res.preconditioner, pooled.preconditioner)
    z, t = x / res.scale, s * res.scale
    for c in range(3):
        dense = _dense_curve(z[c], t[c], res.preconditioner)
        np.testing.assert_allclose(res.ksd[c], dense[res.m - 1], rtol=RTOL)
    np.testing.assert_array_equal(res.final_ksd, res.ksd[:, -1])
    K = ref.preconditioned_stein_matrix(
        "imq", z.reshape(-1, 2), t.reshape(-1, 2), res.preconditioner
    )
    assert res.pooled_ksd == pytest.approx(np.sqrt(K.sum()) / 240, rel=RTOL)
    assert res.pooled_ksd == pytest.approx(ksd_curve(flat, sflat)[-1], rel=RTOL)
    h = np.mean(np.diag(K))
    np.testing.assert_allclose(res.reference, np.sqrt(h / res.m), rtol=RTOL)
    assert res.reference_pooled == pytest.approx(np.sqrt(h / 240), rel=RTOL)
    assert res.exact_ksd is None and res.exact_pooled_ksd is None  # arrays: no sampler


def test_a_stuck_chain_stands_out_and_exact_draws_follow_the_reference():
    x, _ = _chains(4, 400, seed=1)
    x[2] = 1.5 + 0.2 * x[2]  # stuck in a corner of the target
    target = kn.Gaussian(np.zeros(2), 1.0)
    res = ksd_diagnostic(x, target, rng=0)
    assert int(np.argmax(res.final_ksd)) == 2
    assert res.final_ksd[2] > 10 * res.reference[-1]
    good = np.delete(np.arange(4), 2)
    assert np.all(res.final_ksd[good] < 2 * res.reference[-1])
    assert abs(res.slope[2]) < 0.1 and np.all(res.slope[good] < -0.25)
    assert res.exact_ksd.shape == res.m.shape
    assert 0.5 < res.exact_pooled_ksd / res.reference_pooled < 1.5
    again = ksd_diagnostic(x, target, rng=0)
    np.testing.assert_array_equal(again.exact_ksd, res.exact_ksd)
    assert ksd_diagnostic(x, target, exact=False).exact_ksd is None
    # A target with sample but a callable without: the same curves either way.
    plain = ksd_diagnostic(x, lambda z: -z)
    np.testing.assert_allclose(plain.ksd, res.ksd, rtol=RTOL)
    assert plain.exact_ksd is None


def test_scores_as_array_or_target_agree():
    x, s = _chains(2, 150)
    by_array = ksd_diagnostic(x, s)
    by_target = ksd_diagnostic(x, kn.Gaussian(np.zeros(2), 1.0), exact=False)
    for key in ("m", "ksd", "final_ksd", "pooled_ksd", "reference", "slope"):
        np.testing.assert_allclose(by_target[key], by_array[key], rtol=RTOL)
    other = ksd_diagnostic(x, s, preconditioner="med", standardize=False, kernel="gaussian")
    assert other.kernel == "gaussian" and not np.allclose(other.ksd, by_array.ksd)


def test_to_dataframe():
    pytest.importorskip("pandas")
    x, s = _chains(2, 100)
    res = ksd_diagnostic(x, kn.Gaussian(np.zeros(2), 1.0), n_grid=6, rng=1)
    df = res.to_dataframe()
    k = res.m.size
    assert list(df.columns) == ["curve", "chain", "m", "ksd"]
    assert df.groupby("curve", sort=False).size().to_dict() == {
        "chain": 2 * k,
        "pooled": 1,
        "reference": k + 1,
        "exact": k + 1,
    }
    assert str(df["chain"].dtype) == "Int64" and df["chain"].isna().sum() == 2 * k + 3
    chain1 = df[(df.curve == "chain") & (df.chain == 1)]
    np.testing.assert_array_equal(chain1["m"], res.m)
    np.testing.assert_array_equal(chain1["ksd"], res.ksd[1])
    pooled = df[df.curve == "pooled"].iloc[0]
    assert pooled["m"] == 200 and pooled["ksd"] == res.pooled_ksd


def test_to_dataframe_without_pandas_names_the_extra(monkeypatch):
    x, s = _chains(1, 20)
    res = ksd_diagnostic(x, s, n_grid=3)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'ksdnumba\[dask\]'.*pip install pandas"):
        res.to_dataframe()


def test_progress(capsys):
    x, s = _chains(2, 50)
    quiet = ksd_diagnostic(x, s, n_grid=4)
    assert capsys.readouterr().err == ""
    loud = ksd_diagnostic(x, s, n_grid=4, progress=True)
    assert "KSD curves" in capsys.readouterr().err
    np.testing.assert_array_equal(loud.ksd, quiet.ksd)


def test_bad_draws():
    x, s = _chains(2, 30, d=3)
    bad = x.copy()
    bad[1, 3, 2] = np.nan
    bad[1, 7, 0] = np.inf
    with pytest.raises(ValueError, match=r"draws contain NaN.*2 of 60 draws.*chain 1, draw 3"):
        ksd_diagnostic(bad, s)
    with pytest.raises(ValueError, match=r"draws\[\.\.\., None\]"):
        ksd_diagnostic(x[0, :, 0], s[0, :, 0])
    with pytest.raises(ValueError, match=r"\(n_chains, n_draws, d\) or \(n, d\), got shape"):
        ksd_diagnostic(x[None], s[None])
    with pytest.raises(ValueError, match="must not be empty"):
        ksd_diagnostic(x[:, :0], s[:, :0])
    with pytest.raises(ValueError, match="draws must be a numeric array"):
        ksd_diagnostic(np.array([["a"]]), s)
    # Dimension mismatch with the target, and scores of another shape.
    with pytest.raises(ValueError, match="draws has 3 columns.*target is 2-dimensional"):
        ksd_diagnostic(x, kn.Gaussian(np.zeros(2), 1.0))
    with pytest.raises(
        ValueError,
        match=r"scores_or_target must be a target or an array of "
        r"the shape of draws, \(2, 30, 3\)",
    ):
        ksd_diagnostic(x, s[:, :, :2])
    nan_scores = s.copy()
    nan_scores[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="scores_or_target contains non-finite"):
        ksd_diagnostic(x, nan_scores)
    with pytest.raises(ValueError, match="target.score returned non-finite"):
        ksd_diagnostic(x, lambda z: np.full_like(z, np.nan))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_grid": 1}, ValueError, "n_grid must be >= 2"),
        ({"n_grid": 2.0}, TypeError, "n_grid must be an integer"),
        ({"exact": "yes"}, TypeError, "exact must be True or False"),
        ({"progress": 1}, TypeError, "progress must be True or False"),
        ({"rng": "seed"}, TypeError, "rng must be None"),
        ({"kernel": "linear"}, ValueError, "unknown kernel"),
    ],
)
def test_bad_options_of_the_diagnostic(kwargs, error, match):
    x, _ = _chains(2, 20)
    with pytest.raises(error, match=match):
        ksd_diagnostic(x, kn.Gaussian(np.zeros(2), 1.0), **kwargs)


class _Posterior:
    """Stands for an xarray Dataset: told by its data_vars, never read."""

    data_vars = {"mu": None}


def test_a_trace_needs_a_pymc_target():
    with pytest.raises(TypeError, match=r"draws is an ArviZ trace.*kn.targets.from_pymc"):
        ksd_diagnostic(_Posterior(), lambda z: -z)
    with pytest.raises(TypeError, match=r"sample is an ArviZ trace, so scores.*from_pymc"):
        kn.stein_thinning(_Posterior(), np.zeros((10, 1)), 3)


# ------------------------------------------------------------------ the plot


def test_plot_ksd_curve():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ksdnumba.plotting import plot_ksd_curve

    x, _ = _chains(3, 100)
    res = ksd_diagnostic(x, kn.Gaussian(np.zeros(2), 1.0), rng=0)
    fig, ax = plt.subplots()
    try:
        assert plot_ksd_curve(res, ax=ax) is ax
        # 3 chains, the reference, the exact draws, the pooled star.
        assert len(ax.lines) == 6
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        np.testing.assert_array_equal(ax.lines[1].get_ydata(), res.ksd[1])
        assert ax.lines[3].get_xdata()[-1] == 300
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[:3] == ["chain 0", "chain 1", "chain 2"]
        ax.clear()
        plot_ksd_curve(res, ax=ax, reference=False, exact=False, pooled=False, legend=False)
        assert len(ax.lines) == 3 and ax.get_legend() is None
        with pytest.raises(TypeError, match="what ksdnumba.ksd_diagnostic returns"):
            plot_ksd_curve({"m": res.m}, ax=ax)
    finally:
        plt.close(fig)


def test_public_names():
    assert kn.ksd_curve is ksd_curve and kn.ksd_diagnostic is ksd_diagnostic
    assert kn.KSDDiagnosticResult is KSDDiagnosticResult


# ------------------------------------------------------------------ PyMC and ArviZ

# The eight-schools data (Rubin 1981).
SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def _pymc():
    return pytest.importorskip("pymc")


def _schools(pm):
    with pm.Model() as model:
        mu = pm.Normal("mu", 0.0, 5.0)
        tau = pm.HalfCauchy("tau", 5.0)
        theta_tilde = pm.Normal("theta_tilde", 0.0, 1.0, shape=8)
        pm.Normal("y", mu + tau * theta_tilde, SCHOOLS_SIGMA, observed=SCHOOLS_Y)
    return model


@pytest.fixture(scope="module")
def schools():
    pm = _pymc()
    model = _schools(pm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trace = pm.sample(
            draws=60,
            tune=60,
            chains=2,
            cores=1,
            random_seed=5,
            progressbar=False,
            compute_convergence_checks=False,
            model=model,
        )
    return model, kn.targets.from_pymc(model), trace


def _posterior(target, x):
    """A posterior Dataset of the constrained values of x, (chains, draws, d)."""
    import xarray as xr

    values = target.to_constrained(x)
    return xr.Dataset(
        {
            name: (("chain", "draw", *[f"{name}_dim_{k}" for k in range(arr.ndim - 2)]), arr)
            for name, arr in values.items()
        }
    )


@pytest.mark.slow
def test_diagnostic_of_a_pymc_trace(schools):
    _, target, trace = schools
    res = ksd_diagnostic(trace, target, n_grid=8)
    x = target.to_unconstrained(trace)
    assert (res.n_chains, res.n_draws, res.n_dims) == (2, 60, 10)
    assert res.names == target.names and res.names[1] == "tau_log__"
    by_hand = ksd_diagnostic(x, target.score(x.reshape(-1, 10)).reshape(x.shape), n_grid=8)
    np.testing.assert_array_equal(res.ksd, by_hand.ksd)
    assert res.pooled_ksd == by_hand.pooled_ksd
    assert res.exact_ksd is None  # a PyMC target has no exact sampler
    assert np.all(np.isfinite(res.ksd)) and np.all(res.ksd > 0)


@pytest.mark.slow
def test_stein_thinning_of_a_pymc_trace(schools):
    az = pytest.importorskip("arviz")
    _, target, trace = schools
    res = kn.stein_thinning(trace, target, 15)
    x = target.to_unconstrained(trace)
    flat = x.reshape(-1, 10)
    # The array path, unchanged: the same indices.
    np.testing.assert_array_equal(
        res.indices, kn.stein_thinning(flat, target.score(flat), 15).indices
    )
    chain, draw = kn.chain_draw_indices(res.indices, trace)
    np.testing.assert_array_equal(x[chain, draw], flat[res.indices])
    thinned = kn.thinned_trace(trace, res.indices)
    assert type(thinned) is type(trace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = az.summary(thinned)
    assert len(summary) >= 10
    # Regularised thinning with the same target.
    reg = kn.stein_thinning(trace, target, 15, regularize=True, target=target)
    assert reg.indices.shape == (15,)


@pytest.mark.slow
def test_bad_traces(schools):
    xr = pytest.importorskip("xarray")
    _, target, trace = schools
    x = np.random.default_rng(3).normal(size=(2, 4, 10))
    post = _posterior(target, x)
    stats = xr.Dataset({"lp": (("chain", "draw"), np.zeros((2, 4)))})
    no_posterior = xr.DataTree.from_dict({"sample_stats": stats})
    with pytest.raises(ValueError, match="no posterior group"):
        ksd_diagnostic(no_posterior, target)
    with pytest.raises(ValueError, match="no posterior group"):
        kn.stein_thinning(no_posterior, target, 3)
    nan = post.copy(deep=True)
    nan["mu"][1, 2] = np.nan
    with pytest.raises(ValueError, match=r"draws of 'mu' contain NaN.*1 of 8"):
        ksd_diagnostic(nan, target)
    # A trace of another model: nine schools.
    wrong = post.assign(theta_tilde=(("chain", "draw", "school"), np.zeros((2, 4, 9))))
    with pytest.raises(ValueError, match=r"'theta_tilde' have shape \(9,\).*do not match"):
        ksd_diagnostic(wrong, target)
    with pytest.raises(ValueError, match="draws has 9 columns.*target is 10-dimensional"):
        ksd_diagnostic(x[..., :9], target)


def test_discrete_free_variables_have_no_score():
    pm = _pymc()
    with pm.Model() as model:
        pm.Normal("mu", 0.0, 1.0)
        pm.Poisson("k", 3.0)
    with pytest.raises(ValueError, match=r"discrete free variables \(k\).*no score"):
        ksd_diagnostic(np.zeros((2, 5, 1)), kn.targets.from_pymc(model))


@pytest.mark.slow
def test_gallery_example_runs(tmp_path):
    pytest.importorskip("pymc")
    pytest.importorskip("matplotlib")
    script = ROOT / "examples" / "plot_mcmc_diagnostics.py"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    png = tmp_path / "plot_mcmc_diagnostics.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 30_000
    finals = [line for line in proc.stdout.splitlines() if line.startswith("final KSD")]
    assert len(finals) == 2, proc.stdout
