"""Sphinx configuration of the docs site: ``nox -s docs`` builds it into ``build/docs/html``.

MyST-NB executes the notebooks under ``notebooks/`` at build time (the only place they are
executed: the test suite no longer runs them), in a kernel of the building interpreter with the
Agg backend, in a temporary working directory, and caches the outputs under
``build/docs/jupyter_cache`` so that a rebuild reruns only a changed notebook.  A cell that
raises fails the build.  No intersphinx: CI reaches only package registries, so links to PyMC,
pytensor and NumPy are written as ordinary links.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import minibatch

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "docs"

project = "pymc-minibatch"
author = "the pymc-minibatch developers"
copyright = "the pymc-minibatch developers, Apache-2.0"
release = version = minibatch.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
]
templates_path = ["_templates"]
exclude_patterns = ["notebooks/README.md", "*.py", "*.json"]
suppress_warnings: list[str] = []

# MyST: $...$ maths, ::: fences, and heading anchors for in-page links
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# MyST-NB: execute the notebooks once, cached; a failing cell fails the build
nb_execution_mode = "cache"
nb_execution_cache_path = str(BUILD / "jupyter_cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_in_temp = True
nb_execution_show_tb = True
nb_merge_streams = True

# The notebooks declare the ``python3`` kernel; it is mapped to a kernel of this very
# interpreter (whatever ``python3`` means elsewhere on the machine), with the Agg backend.
KERNEL = "minibatch-docs"
nb_kernel_rgx_aliases = {"python3": KERNEL}


def _kernelspec() -> None:
    spec = BUILD / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"Python ({sys.executable})",
                "language": "python",
                "env": {"MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"},
            }
        )
    )
    os.environ["JUPYTER_PATH"] = str(BUILD / "jupyter")


# autodoc / autosummary / numpydoc: one page per public name; members are documented only
# where this package defines them (a Minibatch is a TensorVariable: its pytensor methods are
# pytensor's to document)
autosummary_generate = True
autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "inherited-members": True}
numpydoc_show_class_members = False
numpydoc_xref_param_type = False


def _skip_foreign_member(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> Any:
    """Skip a class member that this package does not define (pytensor's, Python's)."""
    target = obj.fget if isinstance(obj, property) else obj
    module = getattr(target, "__module__", None) or ""
    if what in ("class", "exception") and not module.startswith("minibatch"):
        return True
    return None


def setup(app: Any) -> None:
    _kernelspec()
    app.connect("autodoc-skip-member", _skip_foreign_member)


# HTML: the PyData theme, as the PyMC ecosystem uses it
html_theme = "pydata_sphinx_theme"
html_title = f"pymc-minibatch {release}"
html_static_path: list[str] = []
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
