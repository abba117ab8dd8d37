"""The package's promises: a small sorted public API, typed, no import-time side effects."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata, resources

import minibatch as mb


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
