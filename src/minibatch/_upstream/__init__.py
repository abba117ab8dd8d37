"""Workarounds for PyMC bugs that stand between minibatch models and ``pm.fit``.

Each workaround is minimal, lives in its own module named for what it mends, names the upstream
issue or change, and leaves every call it is not about untouched.  Each applies only where its
defect is present on the running pymc / pytensor: decided by a cheap probe of the defect (no
compiled code) or, where none is cheap, by version (``_compat``); ``tests/test_upstream.py``
holds a canary per defect and version that fails when upstream behaviour changes.
:func:`install` applies what is needed; ``Minibatch`` calls it, and it is idempotent.  Nothing
happens at import time and no installed file is touched.

``scaling``
    VI's loss normaliser crashes on tuple ``total_size`` and mis-scales int ``total_size`` on
    rank >= 2 observations (regression of pymc PR #7787).
``scan``
    SVGD / ASVGD refuse every ``MinibatchOp``; ours are safe (the index is drawn outside the
    particle scan), so the refusal is lifted for them only.  The scan's non-sequences are
    listed once each (two gathers by one index would otherwise repeat it).
``seeding``
    ``random_seed`` fixes SVGD's initial particles and the RNGs that only updates use (the
    minibatch index of an SVGD step).
``backends``
    VI parameters get static shapes (pymc#8359); parameters are handed back as NumPy arrays
    after a JAX fit (pymc#8360); PyMC's ``MinibatchRandomVariable`` gets JAX and Numba
    implementations so forward sampling compiles on those backends.
``jax_rngs``
    pytensor 3 turns the update of an unused draw (the minibatch index in JAX forward
    sampling) into the generator itself, which the JAX linker then hands back as a NumPy
    Generator: the second call fails; such functions convert it again (no upstream issue
    found; pytensor 3 only).
``stein``
    SVGD / ASVGD divide their whole update by ``N / batch`` on a minibatch model, so each
    step is that many times too small; Stein inference stops scaling its cost to the
    minibatch (no upstream issue found as of pymc 6.4.0).
``scan_rngs``
    Not installed: ``mb.fit``'s Scan applies it to its own graph.  pytensor 2.38's Scan
    copies each generator at every iteration (pytensor#2002); on Numba its draws are made to
    work in place.
"""

from __future__ import annotations

from minibatch._upstream import backends, jax_rngs, scaling, scan, seeding, stein


def install() -> None:
    """Apply every workaround that this pymc / pytensor needs (idempotent)."""
    scaling.install()
    scan.install()
    seeding.install()
    backends.install()
    jax_rngs.install()
    stein.install()
