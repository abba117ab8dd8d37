"""Sessions: tests, backend (one per pytensor mode), lint, typecheck, demo, bench (``nox -l``)."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite, doctests and every backend included."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=PYTHON)
@nox.parametrize("mode", ["FAST_RUN", "NUMBA", "JAX"])
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


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Per-step cost against a constant batch and pm.Minibatch; writes docs/performance.png."""
    session.install("-e", ".[test]")
    session.run("python", "benchmarks/bench.py", *session.posargs)
