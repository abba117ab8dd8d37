"""Sessions: tests per Python, backend (one per pytensor mode), lint, typecheck, demo, bench,
docs, build (sdist and wheel) and wheel (the built wheel smoke-tested on both stacks).

``nox -l`` lists them.  The Pythons are the supported stacks: 3.11 resolves pymc 5.28 /
pytensor 2.38, 3.12 and 3.13 resolve pymc 6.4 / pytensor 3.3 (see pyproject.toml).  nox looks
for ``python3.12`` and ``python3.13`` on PATH; ``.ci/run`` puts pyenv's there.
"""

from __future__ import annotations

import glob
import shutil
import tempfile
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True  # a missing Python fails, never skips
PYTHON = "3.11"
PYTHONS = ["3.11", "3.12", "3.13"]
ROOT = Path(__file__).resolve().parent


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite, doctests and every backend included: ``nox -s tests-3.12``."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHONS)
@nox.parametrize("mode", ["CVM", "NUMBA", "JAX"])
def backend(session: nox.Session, mode: str) -> None:
    """The backend tests of one pytensor mode: ``nox -s "backend(mode='JAX')"``."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "tests/test_backends.py", "-k", mode, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy on the package."""
    session.install("-e", ".", "mypy")
    session.run("mypy")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The README's demo: full-data against minibatch ADVI."""
    session.install(".[demo]")
    session.run("python", "-m", "minibatch.demo", *session.posargs)


@nox.session(python=PYTHONS)
def bench(session: nox.Session) -> None:
    """Per-step cost against a constant batch and pm.Minibatch; writes docs/performance.png."""
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/bench.py", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """The docs site into build/docs/html, warnings as errors, the notebooks executed.

    MyST-NB caches their outputs in build/docs/jupyter_cache: a rebuild reruns only a changed
    notebook.
    """
    session.install("-e", ".[docs]")
    session.run(
        "sphinx-build",
        "-b",
        "html",
        "-W",
        "--keep-going",
        "docs",
        "build/docs/html",
        *session.posargs,
    )


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """The sdist and the wheel (the wheel built from the sdist) into dist/, twine-checked."""
    shutil.rmtree("dist", ignore_errors=True)
    session.install("build>=1.2", "twine>=5")
    session.run("python", "-m", "build")
    session.run("twine", "check", "--strict", *sorted(glob.glob("dist/*")))


@nox.session(python=["3.11", "3.12"], requires=["build"])
@nox.parametrize("extras", ["none", "all"])
def wheel(session: nox.Session, extras: str) -> None:
    """The built wheel in a fresh venv, without extras and with all, smoke-tested outside.

    The wheel, not the checkout, is installed; .ci/smoke_wheel.py runs from a temporary
    directory outside the source tree.
    """
    (wheel_file,) = glob.glob(str(ROOT / "dist" / "*.whl"))
    all_extras = "[zarr,hdf5,parquet,dask,demo]" if extras == "all" else ""
    session.install(f"pymc-minibatch{all_extras} @ {Path(wheel_file).as_uri()}")
    outside = Path(tempfile.mkdtemp(prefix="minibatch-smoke-"))
    shutil.copy(ROOT / ".ci" / "smoke_wheel.py", outside)
    session.chdir(outside)
    try:
        session.run("python", "smoke_wheel.py", extras, str(ROOT))
    finally:
        session.chdir(ROOT)
        shutil.rmtree(outside, ignore_errors=True)
