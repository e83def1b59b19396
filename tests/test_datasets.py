"""Tests of ksdnumba.datasets and mode_occupancy, and the claims of the mixture examples.

Each claim of examples/plot_init.py, plot_skewed.py and plot_temperature.py is
checked here on a small variant that calls the library directly, with a fixed
seed; the examples themselves only run headless (test_examples.py).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import ksdnumba as kn
from ksdnumba.datasets import skewed_mixture, three_modes, two_modes

# ------------------------------------------------------------------------- mixtures


def test_two_modes():
    t = two_modes(0.5)
    assert isinstance(t, kn.GaussianMixture)
    assert_array_equal(t.means, [[-1.0, 0.0], [1.0, 0.0]])
    assert_array_equal(t.covariances, [0.5, 0.5])
    assert_allclose(t.weights, [0.5, 0.5])


def test_skewed_mixture():
    t = skewed_mixture()
    assert_array_equal(t.means, [[-3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    assert_array_equal(t.covariances, [0.5, 0.3, 0.1])
    assert_allclose(t.weights, np.full(3, 1 / 3))


def test_three_modes():
    t = three_modes(0.2)
    assert_array_equal(t.means, [[-1.0, -1.0], [1.0, 1.0], [1.0, -1.0]])
    assert_array_equal(t.covariances, [0.2, 0.2, 0.2])


@pytest.mark.parametrize("factory", [two_modes, three_modes])
def test_mixture_variance_is_validated(factory):
    with pytest.raises(ValueError, match="positive variances"):
        factory(-1.0)


# ------------------------------------------------------------------- mode_occupancy


def test_mode_occupancy_counts_every_particle_once():
    t = three_modes(0.1)
    x = t.sample(300, rng=0)
    counts, n_stranded = kn.mode_occupancy(x, t.means, radius=3 * np.sqrt(0.1))
    assert counts.sum() + n_stranded == 300
    # Exact samples: about a third per mode, and a 3-sigma ball in 2-D holds 98.9%.
    assert np.all(np.abs(counts / 300 - 1 / 3) < 0.1)
    assert n_stranded <= 12


def test_mode_occupancy_radius_per_mode():
    means = [[0.0, 0.0], [10.0, 0.0]]
    x = np.array([[0.5, 0.0], [9.0, 0.0], [5.0, 0.0]])
    counts, n_stranded = kn.mode_occupancy(x, means, radius=[1.0, 2.0])
    assert counts.tolist() == [1, 1] and n_stranded == 1
    counts, n_stranded = kn.mode_occupancy(x, means, radius=[1.0, 0.5])
    assert counts.tolist() == [1, 0] and n_stranded == 2


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"radius": 0.0}, ValueError, "positive and finite"),
        ({"radius": np.inf}, ValueError, "positive and finite"),
        ({"radius": [1.0, 1.0, 1.0]}, ValueError, r"shape \(2,\)"),
        ({"radius": True}, TypeError, "radius must be"),
        ({"radius": "1"}, TypeError, "radius must be"),
        ({"radius": 1.0, "means": [[0.0, 0.0, 0.0]]}, ValueError, "means has 3 columns"),
    ],
)
def test_mode_occupancy_errors(kwargs, error, match):
    args = {"means": [[0.0, 0.0], [1.0, 0.0]], **kwargs}
    with pytest.raises(error, match=match):
        kn.mode_occupancy(np.zeros((3, 2)), **args)


# ---------------------------------------------------------- claims of the examples


def test_init_claim_start_decides_the_modes():
    # plot_init.py: started left of both modes, no particle reaches the right
    # mode; started between them, each mode gets at least a third.
    rng = np.random.default_rng(0)
    target = two_modes(0.3)
    left = 0.1 * rng.standard_normal((50, 2)) + np.array([-2.0, 0.0])
    centre = 0.5 * rng.standard_normal((50, 2))
    counts_left, _ = kn.mode_occupancy(
        kn.ksdd_lbfgs(left, target, bw=0.1).x, target.means, radius=1.0
    )
    counts_centre, _ = kn.mode_occupancy(
        kn.ksdd_lbfgs(centre, target, bw=0.1).x, target.means, radius=1.0
    )
    assert counts_left[1] == 0 and counts_left[0] >= 30, counts_left
    assert np.all(counts_centre >= 50 / 3), counts_centre


def test_skewed_claim_every_component_used_proportions_off():
    # plot_skewed.py, with 60 particles instead of 100: every component holds
    # particles, and the widest one holds more than its weight of 1/3.
    rng = np.random.default_rng(0)
    target = skewed_mixture()
    x0 = 2.0 * rng.standard_normal((60, 2))
    x = kn.ksdd_lbfgs(x0, target, bw=0.1).x
    counts, _ = kn.mode_occupancy(x, target.means, radius=3 * np.sqrt(target.covariances))
    assert np.all(counts >= 3), counts
    assert counts[0] / 60 > 0.4, counts


@pytest.mark.parametrize("seed", [0, 1])
def test_temperature_claim_annealing_strands_fewer(seed):
    # plot_temperature.py: annealing (beta = 0.1, then 1) leaves fewer particles
    # between the modes than the direct run, and every mode gets a fair share.
    rng = np.random.default_rng(seed)
    target = three_modes(0.1)
    x0 = rng.standard_normal((50, 2)) / 3
    radius = 3 * np.sqrt(0.1)
    direct = kn.ksdd_lbfgs(x0, target, bw=0.1).x
    hot = kn.ksdd_lbfgs(x0, target.tempered(0.1), bw=0.1).x
    annealed = kn.ksdd_lbfgs(hot, target, bw=0.1).x
    counts_direct, stranded_direct = kn.mode_occupancy(direct, target.means, radius=radius)
    counts_annealed, stranded_annealed = kn.mode_occupancy(annealed, target.means, radius=radius)
    assert stranded_annealed < stranded_direct, (stranded_annealed, stranded_direct)
    assert np.all(counts_annealed >= 10), counts_annealed
    assert counts_annealed.min() > counts_direct.min(), (counts_annealed, counts_direct)
