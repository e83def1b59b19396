"""histogram_kl: the KL divergence between binned particles and reference samples."""

import numpy as np
import pytest

import ksdnumba as kn

REFERENCE = np.random.default_rng(0).normal(size=20_000)


def test_matches_the_formula_with_explicit_edges():
    x = np.array([-2.0, -0.5, 0.1, 0.2, 0.3, 5.0])
    reference = np.array([-3.0, -1.0, -0.2, 0.4, 0.6, 0.8, 1.5, 2.5])
    edges = [-1.0, 0.0, 1.0]  # bins (-inf, 0), [0, inf) once the outer ones are opened
    p = np.array([2, 4]) / 6
    q = np.array([3, 5]) / 8
    expected = np.sum(p * np.log(p / q))
    assert kn.histogram_kl(x, reference, bins=edges) == pytest.approx(expected, rel=1e-14)


def test_outer_bins_are_open():
    """Particles beyond the edges count in the first and last bins, not nowhere."""
    reference = np.linspace(-0.999, 0.999, 1000)  # 500 on each side of 0
    inside = kn.histogram_kl([-0.9, 0.9], reference, bins=[-1.0, 0.0, 1.0])
    outside = kn.histogram_kl([-50.0, 50.0], reference, bins=[-1.0, 0.0, 1.0])
    assert inside == outside == pytest.approx(0.0, abs=1e-12)


def test_default_bins_have_equal_reference_mass():
    # 100 particles: 10 bins at the deciles of the reference; one particle per
    # decile interval, ten times over, gives KL = 0.
    deciles = np.quantile(REFERENCE, np.linspace(0.05, 0.95, 10))
    x = np.repeat(deciles, 10)
    assert kn.histogram_kl(x, REFERENCE) == pytest.approx(0.0, abs=1e-6)
    # all in one bin: KL = log(B) with Q_b = 1/B
    assert kn.histogram_kl(np.zeros(100), REFERENCE) == pytest.approx(np.log(10), rel=1e-3)


def test_good_samples_beat_bad_ones():
    rng = np.random.default_rng(1)
    good = rng.normal(size=(30, 1))
    narrow = 0.3 * rng.normal(size=(30, 1))
    shifted = good + 2.0
    kl_good = kn.histogram_kl(good, REFERENCE)
    assert kl_good < kn.histogram_kl(narrow, REFERENCE)
    assert kl_good < kn.histogram_kl(shifted, REFERENCE)
    assert kl_good >= 0


def test_empty_reference_bin_gives_inf():
    assert kn.histogram_kl([5.0], [0.0, 0.1, 0.2], bins=[0.0, 1.0, 2.0, 3.0]) == np.inf


def test_shapes_and_errors():
    x = np.random.default_rng(2).normal(size=30)
    assert kn.histogram_kl(x[:, None], REFERENCE[:, None]) == kn.histogram_kl(x, REFERENCE)
    with pytest.raises(ValueError, match=r"x must be 1-D data, of shape \(n,\) or \(n, 1\)"):
        kn.histogram_kl(np.zeros((5, 2)), REFERENCE)
    with pytest.raises(ValueError, match="reference must be 1-D data"):
        kn.histogram_kl(x, np.zeros((5, 2, 1)))
    with pytest.raises(ValueError, match="x contains non-finite"):
        kn.histogram_kl([np.nan, 1.0], REFERENCE)
    with pytest.raises(ValueError, match="bins must be >= 2, got 1"):
        kn.histogram_kl(x, REFERENCE, bins=1)
    with pytest.raises(ValueError, match="at least 3 edges"):
        kn.histogram_kl(x, REFERENCE, bins=[0.0, 1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        kn.histogram_kl(x, REFERENCE, bins=[0.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="quantiles coincide"):
        kn.histogram_kl(x, np.r_[np.zeros(50), np.ones(50)], bins=5)
