"""Sessions: tests per Python, backend (one per pytensor mode), lint, typecheck, demo, bench.

``nox -l`` lists them.  The Pythons are the supported stacks: 3.11 resolves pymc 5.28 /
pytensor 2.38, 3.12 and 3.13 resolve pymc 6.4 / pytensor 3.3 (see pyproject.toml).  nox looks
for ``python3.12`` and ``python3.13`` on PATH; ``.ci/run`` puts pyenv's there.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = True  # a missing Python fails, never skips
PYTHON = "3.11"
PYTHONS = ["3.11", "3.12", "3.13"]


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
