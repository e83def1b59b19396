"""Run lkgof's ``DC_KSD`` on the cases of tests/test_relative.py and print the values
the tests pin (lkgof targets Python 3.6, autograd and the unpackaged kgof, so the suite
cannot import it).

Set up once, outside the package's environment (nothing here is a dependency)::

    pip install --target /work/ref-site autograd future     # then remove its numpy copy
    git clone https://github.com/noukoudashisoup/lkgof      # and wittawatj/kernel-gof
    PYTHONPATH=/work/ref-site:/path/to/lkgof:/path/to/kernel-gof MPLBACKEND=Agg \
        python benchmarks/pin_relative_lkgof.py

``lkgof.numpyro_models`` (NumPyro, for the PPCA experiments only) is replaced by an
empty module, so that ``lkgof.mctest`` imports without JAX. Prints a dict per case:
DC_KSD's ``pvalue``, ``test_stat``, ``h0_rejected`` and ``get_mean_variance``.
"""

import sys
import types

import numpy as np

sys.modules.setdefault("lkgof.numpyro_models", types.ModuleType("lkgof.numpyro_models"))

import kgof.data as kdata  # noqa: E402
import kgof.kernel as kkernel  # noqa: E402
import lkgof.mctest as mctest  # noqa: E402


class Model:
    """A Gaussian N(mean, diag(var)) with kgof's ``score`` (lkgof's stein_kernel_gram
    calls ``p.score``)."""

    def __init__(self, mean, var):
        self.mean = np.asarray(mean, dtype=float)
        self.var = np.asarray(var, dtype=float)

    def score(self, X):
        return -(X - self.mean) / self.var


def case_data(name):
    """The sample and models of one case; the same code as tests/test_relative.py."""
    rng = np.random.default_rng({"imq": 0, "gauss": 1, "imq-c2": 2, "null": 3}[name])
    if name == "null":
        x = rng.normal(size=(150, 2))
        return x, Model([0.3, 0.0], [1.0, 1.0]), Model([-0.3, 0.0], [1.0, 1.0])
    x = rng.normal(size=(200, 3)) * np.array([1.0, 1.5, 0.7]) + 0.2
    return x, Model([0.0, 0.0, 0.0], [1.0, 1.0, 1.0]), Model([0.2, 0.1, 0.2], [1.0, 2.0, 0.5])


KERNELS = {
    "imq": lambda: kkernel.KIMQ(b=-0.5, c=1.0),
    "gauss": lambda: kkernel.KGauss(1.7),
    "imq-c2": lambda: kkernel.KIMQ(b=-0.5, c=np.sqrt(2.5)),
    "null": lambda: kkernel.KIMQ(b=-0.5, c=1.0),
}


def main():
    for name, make in KERNELS.items():
        x, p, q = case_data(name)
        k = make()
        test = mctest.DC_KSD(p, q, k, k, alpha=0.05)
        mean, var = test.get_mean_variance(kdata.Data(x))
        out = test.perform_test(kdata.Data(x))
        print(
            f"{name!r}: {{'mean': {float(mean)!r}, 'variance': {float(var)!r}, "
            f"'test_stat': {float(out['test_stat'])!r}, 'pvalue': {float(out['pvalue'])!r}, "
            f"'reject': {bool(out['h0_rejected'])!r}}},"
        )


if __name__ == "__main__":
    main()
