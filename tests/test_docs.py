"""The documentation stays complete and its code stays true (no Sphinx needed)."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

import ksdnumba
from ksdnumba import datasets, plotting

pytestmark = pytest.mark.slow  # the pages' code runs whole workflows

DOCS = Path(__file__).resolve().parent.parent / "docs"


def documented_names(rst):
    """Fully qualified names that an API page documents.

    Entries of ``autosummary`` blocks, qualified by the current module
    (``.. module::`` or ``.. currentmodule::``), and modules named by
    ``.. automodule::`` or ``.. module::``.
    """
    names, module, in_autosummary = set(), "", False
    for line in rst.splitlines():
        directive = re.match(r"\.\. ([\w:-]+)::\s*(\S*)", line)
        if directive:
            kind, argument = directive.groups()
            in_autosummary = kind == "autosummary"
            if kind in ("module", "currentmodule", "automodule"):
                module = argument
                names.add(argument)
            continue
        if in_autosummary and line.startswith("   ") and not line.strip().startswith(":"):
            if line.strip():
                names.add(f"{module}.{line.strip()}")
        elif line.strip() and not line.startswith(" "):
            in_autosummary = False
    return names


def test_api_reference_lists_every_public_name():
    documented = documented_names((DOCS / "api.rst").read_text())
    public = [f"ksdnumba.{name}" for name in ksdnumba.__all__]
    public += [f"ksdnumba.datasets.{name}" for name in datasets.__all__]
    public += [f"ksdnumba.plotting.{name}" for name in plotting.__all__]
    missing = sorted(set(public) - documented)
    assert not missing, f"add these to docs/api.rst: {missing}"


def test_documented_names_exist():
    # A name left in docs/api.rst after it was removed from the package would break
    # the Sphinx build; say which here, where it is quicker to see.
    import importlib

    for name in documented_names((DOCS / "api.rst").read_text()):
        module, _, attr = name.rpartition(".")
        if module and hasattr(importlib.import_module(module), attr):
            continue
        importlib.import_module(name)


def python_blocks(path):
    """The ``.. code-block:: python`` blocks of an rst file, dedented."""
    blocks = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        body = []
        for following in lines[i + 1 :]:
            if following.strip() and not following.startswith("   "):
                break
            body.append(following[3:])
        code = "\n".join(body).strip("\n")
        if not code.startswith(":"):  # options would come first; none are used
            blocks.append(code)
    return blocks


PAGES = sorted(DOCS.glob("*.rst"))


@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_code_blocks_run(page):
    # Blocks that show ksddescent's code need PyTorch, which is no dependency: they
    # are shown, not run. Blocks with PyMC or ArviZ run where the pymc extra is
    # installed; without it the rest of the page, which builds on them, is skipped.
    # Every other block runs, in the order of the page.
    namespace = {}
    has_pymc = importlib.util.find_spec("pymc") is not None
    try:
        for code in python_blocks(page):
            if re.search(r"\b(torch|ksddescent)\b", code):
                continue
            if not has_pymc and re.search(r"\b(pymc|arviz)\b", code):
                break
            exec(compile(code, str(page), "exec"), namespace)
    finally:
        # A page's figures would otherwise become the current axes of later tests
        # (the plotting doctests draw on plt.gca()).
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def test_quick_start_is_short():
    blocks = python_blocks(DOCS / "index.rst")
    assert blocks, "the home page has no quick start"
    assert len([line for line in blocks[0].splitlines() if line.strip()]) <= 10


def test_ci_builds_the_docs_with_the_readme_command():
    root = DOCS.parent
    readme = (root / "README.md").read_text()
    command = re.search(r"## Documentation\n.*?```bash\n(.*?)\n```", readme, flags=re.S).group(1)
    assert "-W" in command.split(), "the documented build must treat warnings as errors"
    assert command in (root / ".ci" / "run").read_text().splitlines()
