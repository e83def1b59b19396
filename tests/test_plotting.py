"""The plotting helpers, drawn headless."""

import subprocess
import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import ksdnumba as kn  # noqa: E402
from ksdnumba.plotting import plot_particles, plot_target_2d  # noqa: E402


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


@pytest.fixture
def mixture():
    return kn.GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.3, 0.3])


def test_target_contours_and_quiver(ax, mixture):
    out = plot_target_2d(mixture, ax=ax, xlim=(-3, 3), ylim=(-2, 2), levels=4, quiver=7)
    assert out is ax
    quivers = [c for c in ax.collections if isinstance(c, matplotlib.quiver.Quiver)]
    assert len(quivers) == 1
    assert quivers[0].N == 7 * 7
    # the score field is drawn where the points are: arrows point to the modes
    u = quivers[0].U.reshape(7, 7)
    assert u[3, 0] > 0 and u[3, -1] < 0
    assert len(ax.collections) >= 2  # contours, quiver
    assert ax.get_xlim() == (-3.0, 3.0)
    assert ax.get_ylim() == (-2.0, 2.0)
    assert ax.get_aspect() == 1.0


def test_target_without_logpdf_has_no_contours(ax):
    out = plot_target_2d(lambda x: -x, ax=ax, quiver=5)
    assert out is ax
    assert len(ax.collections) == 1
    assert isinstance(ax.collections[0], matplotlib.quiver.Quiver)


def test_target_grid_zero_skips(ax, mixture):
    plot_target_2d(mixture, ax=ax, grid=0, quiver=0)
    assert len(ax.collections) == 0


def test_target_draws_on_current_axes(mixture):
    fig = plt.figure()
    try:
        assert plot_target_2d(mixture, quiver=4) is plt.gca()
    finally:
        plt.close(fig)


@pytest.mark.parametrize("d", [1, 3])
def test_target_not_2d_raises(ax, d):
    target = kn.Gaussian(np.zeros(d), 1.0)
    with pytest.raises(ValueError, match="2-D target"):
        plot_target_2d(target, ax=ax)


def test_target_score_not_2d_raises(ax):
    with pytest.raises(ValueError, match="2-D target"):
        plot_target_2d(lambda x: np.zeros((len(x), 3)), ax=ax)


def test_target_bad_limits_raise(ax, mixture):
    with pytest.raises(ValueError, match="xlim"):
        plot_target_2d(mixture, ax=ax, xlim=(1, -1))


def test_particles_layers(ax):
    rng = np.random.default_rng(0)
    traj = rng.normal(size=(6, 10, 2))
    out = plot_particles(traj[-1], ax=ax, x_init=traj[0], trajectory=traj)
    assert out is ax
    assert len(ax.lines) == 10  # one line per particle
    assert len(ax.collections) == 2  # initial and final particles
    init, final = ax.collections
    np.testing.assert_array_equal(init.get_offsets(), traj[0])
    np.testing.assert_array_equal(final.get_offsets(), traj[-1])
    np.testing.assert_array_equal(ax.lines[3].get_xydata(), traj[:, 3])


def test_particles_alone(ax):
    plot_particles(np.zeros((3, 2)), ax=ax)
    assert len(ax.collections) == 1
    assert len(ax.lines) == 0


def test_particles_from_a_run(ax, mixture):
    x0 = np.random.default_rng(1).normal(size=(8, 2))
    res = kn.ksdd_lbfgs(x0, mixture, bw=0.5, max_iter=5, store=True)
    plot_target_2d(mixture, ax=ax, grid=20, quiver=5)
    plot_particles(res.x, ax=ax, x_init=x0, trajectory=res.trajectory)
    assert len(ax.lines) == 8
    assert ax.get_xlim() == (-2.0, 2.0)  # limits of the target kept


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"x": np.zeros((5, 3))}, "x must have shape"),
        ({"x": np.zeros(5)}, "x must have shape"),
        ({"x": np.zeros((5, 2)), "x_init": np.zeros((5, 1))}, "x_init must have shape"),
        ({"x": np.zeros((5, 2)), "trajectory": np.zeros((4, 5, 3))}, "trajectory must"),
        ({"x": np.zeros((5, 2)), "trajectory": np.zeros((4, 6, 2))}, "6 particles"),
    ],
)
def test_particles_bad_shapes_raise(ax, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_particles(ax=ax, **kwargs)


def test_import_without_matplotlib():
    # A fresh interpreter in which matplotlib cannot be imported: the module
    # imports, and a call says how to install it.
    code = (
        "import sys; sys.modules['matplotlib'] = None; "
        "sys.modules['matplotlib.pyplot'] = None\n"
        "import numpy as np\n"
        "import ksdnumba.plotting as p\n"
        "try:\n"
        "    p.plot_particles(np.zeros((2, 2)))\n"
        "except ImportError as e:\n"
        "    assert 'pip install ksdnumba[plot]' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
