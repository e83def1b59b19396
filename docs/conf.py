"""Sphinx configuration of the ksdnumba documentation.

Build from the repository root with::

    python -m pip install -e ".[docs]" &&
        python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery executes every script of ``examples/``: about a minute on 2 cores
once Numba's cache is warm.
"""

import sys
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the gallery runs headless

import ksdnumba  # noqa: E402

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "sphinxext"))

# -- Project -------------------------------------------------------------------------

project = "ksdnumba"
author = "The ksdnumba developers"
copyright = f"{date.today().year}, {author}"
release = ksdnumba.__version__
version = release

# -- General -------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "ksdnumba_benchmarks",  # docs/sphinxext: tables from benchmarks/results/*.json
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "sphinxext", "**/*.ipynb"]
default_role = "code"  # `x` in prose is inline code, as in the docstrings
pygments_style = "sphinx"

# -- API reference: autosummary + numpydoc -------------------------------------------

autosummary_generate = True
autodoc_typehints = "none"  # the numpydoc sections give the types, in words
autodoc_preserve_defaults = True  # `dtype=np.float64`, not "<class ...>"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False  # the class template lists the methods instead
numpydoc_class_members_toctree = False
numpydoc_use_plots = False

# -- Math ----------------------------------------------------------------------------
# MathJax 3 from its CDN (Sphinx's default): the best rendering for readers online.
# Offline, formulas show as their TeX source; the build itself needs no network.

# -- Benchmarks ----------------------------------------------------------------------
# benchmarks.rst builds its tables from the JSON files the benchmark scripts write.

benchmark_results_dir = "../benchmarks/results"

# -- Gallery -------------------------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # execute every example
    "within_subsection_order": "ksdnumba_gallery.ExampleOrder",
    # Examples save their figure in the working directory, which Sphinx-Gallery sets
    # to examples/: remove what a run writes there, keep the module state fresh.
    "reset_modules": ("matplotlib", "ksdnumba_gallery.remove_example_outputs"),
    "reset_modules_order": "both",
    "doc_module": ("ksdnumba",),
    "backreferences_dir": "gen_modules/backreferences",
    "abort_on_example_error": True,
    "remove_config_comments": True,
    "min_reported_time": 1,
    # Objects that no example uses get an empty mini-gallery, not a warning.
    "log_level": {"backreference_missing": "debug"},
}

# -- HTML ----------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"ksdnumba {release}"
html_static_path = ["_static"]
html_css_files = ["ksdnumba.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "header_links_before_dropdown": 7,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {
    "index": [],
    "api": [],
    "mathematics": [],
    "ksddescent": [],
    "stein_thinning": [],
    "sweeps": [],
    "benchmarks": [],
}
html_context = {"default_mode": "light"}
