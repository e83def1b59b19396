"""median_bandwidth: the median heuristic in ksdnumba's squared-length-scale convention."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist

import ksdnumba as kn


def test_median_of_squared_distances():
    x = np.random.default_rng(0).normal(size=(101, 3))
    assert kn.median_bandwidth(x) == np.median(pdist(x) ** 2)


def test_small_example():
    # squared distances 1, 9, 4 -> median 4
    assert kn.median_bandwidth([[0.0], [1.0], [3.0]]) == 4.0


def test_scales_with_the_square_of_the_data():
    x = np.random.default_rng(1).normal(size=(50, 2))
    np.testing.assert_allclose(kn.median_bandwidth(3 * x), 9 * kn.median_bandwidth(x), rtol=1e-12)


def test_subsample_above_max_points_is_reproducible_and_close():
    x = np.random.default_rng(2).normal(size=(3000, 2))
    exact = kn.median_bandwidth(x, max_points=3000)
    approx = kn.median_bandwidth(x, max_points=500)
    assert approx == kn.median_bandwidth(x, max_points=500)
    assert approx == pytest.approx(exact, rel=0.1)
    assert approx != kn.median_bandwidth(x, max_points=500, rng=1)


def test_errors():
    with pytest.raises(ValueError, match="at least 2 points"):
        kn.median_bandwidth(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="median squared distance .* is 0"):
        kn.median_bandwidth(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="max_points must be >= 2"):
        kn.median_bandwidth(np.ones((5, 2)), max_points=1)
    with pytest.raises(ValueError, match="2-D"):
        kn.median_bandwidth(np.ones(5))
