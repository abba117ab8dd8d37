"""The docs notebooks (MyST markdown) are well-formed, and the docs build is what executes them.

They run once per CI run, in ``nox -s docs``: MyST-NB executes each in a fresh kernel of the
building interpreter (Agg backend, temporary working directory) and a cell that raises fails
the build (docs/conf.py). This suite checks only what needs no kernel.
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
NOTEBOOKS_DIR = DOCS / "notebooks"
NOTEBOOKS = sorted(p for p in NOTEBOOKS_DIR.glob("*.md") if p.name != "README.md")


def test_notebooks_found() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"more_replacements.md", "iris_svgd.md", "iris_minibatch.md", "streaming.md"} <= names


def test_notebooks_have_no_doctest_prompts() -> None:
    """pytest collects every docs/*.md as a doctest file: a stray prompt would run as one."""
    for path in [*NOTEBOOKS, NOTEBOOKS_DIR / "README.md"]:
        assert ">>>" not in path.read_text(), path


def test_notebooks_declare_python3_and_have_code_cells() -> None:
    """The kernel name the docs build maps to its own interpreter; cells for it to run."""
    for path in NOTEBOOKS:
        text = path.read_text()
        front = text.split("---", 2)[1]
        assert re.search(r"kernelspec:\n(  .*\n)*  name: python3\n", front), path.name
        assert "```{code-cell} ipython3" in text, path.name


def test_docs_build_executes_every_notebook_and_fails_on_an_error() -> None:
    conf = runpy.run_path(str(DOCS / "conf.py"))
    assert conf["nb_execution_mode"] == "cache"
    assert conf["nb_execution_raise_on_error"] is True
    assert conf["nb_execution_in_temp"] is True
    assert conf["nb_kernel_rgx_aliases"] == {"python3": conf["KERNEL"]}
    assert not any("notebooks/*" in pattern for pattern in conf["exclude_patterns"])
    toctrees = "".join(page.read_text() for page in DOCS.glob("*.md"))
    for path in NOTEBOOKS:
        assert f"<notebooks/{path.stem}>\n" in toctrees, path.name
