"""Helpers for the Sphinx-Gallery configuration in ``docs/conf.py``.

They live in a module, not in ``conf.py``, so that Sphinx can pickle the
configuration that refers to them by name.
"""

from pathlib import Path

# The order of the gallery: the paper's seed figure first, then the comparisons
# on Gaussians, the studies of the minima, and the Bayesian models.
ORDER = (
    "plot_minima.py",
    "plot_minima_statistics.py",
    "plot_simple_gaussian.py",
    "plot_quantitative_expe_gaussian.py",
    "plot_init.py",
    "plot_skewed.py",
    "plot_temperature.py",
    "plot_logistic_regression.py",
    "plot_ica.py",
    "plot_stein_thinning.py",
)


class ExampleOrder:
    """Sort key of the examples: their place in :data:`ORDER`, then their name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __repr__(self):
        return "ExampleOrder"

    def __call__(self, filename):
        name = Path(filename).name
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)


_before = {}


def remove_example_outputs(gallery_conf, fname, when):
    """Delete the files an example wrote next to itself while it ran.

    Sphinx-Gallery runs each example in its source directory, where the scripts
    save their figures; the gallery has its own copies, so these are litter.
    Only files that appeared during the run are removed.
    """
    if fname is None:
        return
    dirs = gallery_conf["examples_dirs"]
    dirs = [dirs] if isinstance(dirs, str) else dirs
    folders = [Path(gallery_conf["src_dir"], d).resolve() for d in dirs]
    files = {path for folder in folders for path in folder.iterdir() if path.is_file()}
    if when == "before":
        _before[fname] = files
    else:
        for path in files - _before.pop(fname, files):
            path.unlink()
