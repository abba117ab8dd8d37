"""The package's promises: a small sorted public API, typed, no import-time side effects."""

from __future__ import annotations

import inspect
import subprocess
import sys
import tomllib
from importlib import metadata, resources
from pathlib import Path

import minibatch as mb

ROOT = Path(__file__).resolve().parents[1]


def test_public_api_is_sorted_and_importable():
    assert mb.__all__ == sorted(mb.__all__)
    for name in mb.__all__:
        assert hasattr(mb, name)


def test_version_matches_metadata():
    assert mb.__version__ == metadata.version("pymc-minibatch")


def test_typed():
    assert resources.files("minibatch").joinpath("py.typed").is_file()


def test_import_changes_nothing_in_pymc():
    code = (
        "import pymc.variational.opvi as o, pymc.variational.minibatch_rv as r\n"
        "import minibatch\n"
        "assert o.get_scaling is r.get_scaling\n"
    )
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)


def test_every_public_name_has_a_numpydoc_docstring_with_an_example():
    """The API reference is generated from these; their examples run as doctests."""
    for name in mb.__all__:
        if name == "__version__":
            continue
        obj = getattr(mb, name)
        doc = inspect.getdoc(obj) or ""
        assert "\nExamples\n--------\n" in doc and "\n>>> " in doc, name
        if inspect.isfunction(obj) or name in {"Minibatch", "WindowRefresh"}:
            assert "\nParameters\n----------\n" in doc, name


def test_minibatch_signature_is_the_documented_one():
    params = inspect.signature(mb.Minibatch).parameters
    assert list(params)[:3] == ["data", "batch_size", "dtype"]
    assert params["batch_size"].default == 128 and "sampling" in params


def test_version_is_written_once():
    """pyproject.toml reads the version from minibatch/__init__.py (hatch's dynamic version)."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in meta["project"] and meta["project"]["dynamic"] == ["version"]
    assert meta["tool"]["hatch"]["version"]["path"] == "src/minibatch/__init__.py"
