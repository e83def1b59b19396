"""Ctrl-C during a solve keeps its work; inside a sweep it stops the sweep."""

import numpy as np
import pytest

import ksdnumba as kn

TARGET = kn.Gaussian(np.zeros(2), 1.0)
X0 = np.random.default_rng(0).uniform(-2, 2, size=(15, 2))
SAMPLERS = {
    "ksdd_lbfgs": lambda t, **kw: kn.ksdd_lbfgs(X0, t, bw=0.5, **kw),
    "ksdd_gradient": lambda t, **kw: kn.ksdd_gradient(X0, t, step=0.5, bw=0.5, **kw),
    "svgd": lambda t, **kw: kn.svgd(X0, t, step=0.5, bw=0.5, **kw),
    "mmd_lbfgs": lambda t, **kw: kn.mmd_lbfgs(X0, TARGET.sample(40, rng=1), bw=0.5, **kw),
}


class InterruptedAt:
    """A callback (or a target) that raises KeyboardInterrupt at its ``k``-th call."""

    def __init__(self, k):
        self.k = k
        self.calls = 0
        self.n_dims = 2

    def __call__(self, x):
        self.calls += 1
        if self.calls == self.k:
            raise KeyboardInterrupt

    def score(self, x):
        self(x)
        return TARGET.score(x)

    def hvp(self, x, v):
        return TARGET.hvp(x, v)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_interrupt_from_the_callback_returns_the_run_so_far(sampler):
    seen = []

    def callback(x):
        seen.append(x)
        if len(seen) == 4:  # the start and three iterations
            raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning, match=f"{sampler}: interrupted by the user"):
        res = SAMPLERS[sampler](TARGET, callback=callback, store=True, max_iter=50)
    assert not res.success and res.status == -2
    assert "KeyboardInterrupt" in res.message
    np.testing.assert_array_equal(res.x, seen[-1])
    assert np.isfinite(res.x).all() and res.x.shape == X0.shape
    assert len(res.trajectory) == len(res.history) == 4 and res.nit == 3


@pytest.mark.parametrize("sampler", ["ksdd_lbfgs", "ksdd_gradient", "svgd"])
def test_interrupt_from_the_targets_score(sampler):
    target = InterruptedAt(6)
    with pytest.warns(RuntimeWarning, match="interrupted"):
        res = SAMPLERS[sampler](target, max_iter=50)
    assert res.status == -2 and not res.success
    assert np.isfinite(res.x).all() and np.isfinite(res.fun)


def test_interrupt_at_the_start_propagates():
    # Nothing to return yet: the interrupt goes on to the caller.
    with pytest.raises(KeyboardInterrupt):
        kn.ksdd_lbfgs(X0, InterruptedAt(1), bw=0.5)


def test_an_interrupt_stops_the_sweep_and_is_not_recorded(tmp_path):
    class Interrupts:
        """Fine for the fit of 10 particles, interrupted in the fit of 12."""

        n_dims = 2

        def score(self, x):
            if x.shape[0] == 12:
                raise KeyboardInterrupt
            return TARGET.score(x)

        def hvp(self, x, v):
            return TARGET.hvp(x, v)

    configs = kn.grid(method="ksdd_lbfgs", n=[10, 12], bw=0.5, max_iter=5)
    with pytest.raises(KeyboardInterrupt):
        kn.sweep(configs, {"t": Interrupts()}, directory=tmp_path, progress=False)
    assert len(list(tmp_path.glob("fit-*.npz"))) == 1  # the finished fit only
