"""plot_convergence: runs against time and their median, drawn headless."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import ksdnumba as kn  # noqa: E402
from ksdnumba.plotting import plot_convergence  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_single_run_is_one_line(ax):
    t = np.linspace(0, 1, 30)
    plot_convergence(t, t**2, ax=ax, label="run", color="red")
    assert len(ax.lines) == 1
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), t)
    assert ax.lines[0].get_label() == "run"
    assert ax.lines[0].get_color() == "red"


def test_median_holds_each_run_at_its_last_value(ax):
    times = [np.array([0.0, 1.0]), np.array([0.0, 2.0]), np.array([0.0, 4.0])]
    values = [np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([1.0, 1.0])]
    plot_convergence(times, values, ax=ax, n_grid=5, label="median")
    assert len(ax.lines) == 4  # three runs, then the median
    median = ax.lines[-1]
    assert median.get_label() == "median"
    np.testing.assert_allclose(median.get_xdata(), [0, 1, 2, 3, 4])
    # t = 1: runs at 0 (ended), 0.5, 1; from t = 2 on: 0, 0 (both ended), 1
    np.testing.assert_allclose(median.get_ydata(), [1.0, 0.5, 0.0, 0.0, 0.0])
    colors = {line.get_color() for line in ax.lines}
    assert len(colors) == 1  # runs and median share the axes' next colour


def test_log_time_grid_and_axis(ax):
    times = [np.array([0.0, 1e-3, 1e-1]), np.array([0.0, 1e-2, 1.0])]
    values = [np.array([3.0, 2.0, 1.0]), np.array([3.0, 2.0, 1.0])]
    plot_convergence(times, values, ax=ax, n_grid=3, log_time=True)
    assert ax.get_xscale() == "log"
    np.testing.assert_allclose(ax.lines[-1].get_xdata(), [1e-3, np.sqrt(1e-3), 1.0])


def test_with_sampler_results(ax):
    target = kn.Gaussian(np.zeros(1), 1.0)
    x0 = np.random.default_rng(0).uniform(-2, 2, size=(10, 1))
    runs = [kn.svgd(x0, target, step=step, max_iter=20, store=True) for step in (0.1, 0.5)]
    plot_convergence([r.times for r in runs], [r.history for r in runs], ax=ax)
    assert len(ax.lines) == 3


def test_errors(ax):
    t = np.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="times has 2 runs but values has 1"):
        plot_convergence([t, t], [t], ax=ax)
    with pytest.raises(ValueError, match="run 0: 5 times but 4 values"):
        plot_convergence(t, t[:4], ax=ax)
    with pytest.raises(ValueError, match="run 0: the times must not decrease"):
        plot_convergence(t[::-1], t, ax=ax)
    with pytest.raises(ValueError, match="n_grid must be >= 2"):
        plot_convergence([t, t], [t, t], ax=ax, n_grid=1)
    with pytest.raises(ValueError, match="non-empty 1-D array"):
        plot_convergence(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)), ax=ax)
    with pytest.raises(ValueError, match="log_time=True needs positive times"):
        plot_convergence([np.zeros(2), np.zeros(2)], [t[:2], t[:2]], ax=ax, log_time=True)
