"""Reproducible VI fits: ``pm.fit(random_seed=s)`` fixes every random draw, SVGD included.

SVGD's step function has no outputs (``KSD`` returns no loss), and PyMC's ``compile`` reseeds only
the RNGs it finds above the outputs, not above the updates: the minibatch index then starts from
whatever state it was built with, and ``random_seed`` does not fix the batches.  The wrapper of
opvi's ``compile`` reseeds the RNGs that only the updates use, from a seed derived from
``random_seed`` (a stream distinct from the ones ``compile`` spawns itself).  No upstream issue
found as of pymc 5.28.5.

``EmpiricalGroup.create_shared_params`` jitters SVGD's initial particles with
``np.random.normal`` (NumPy's global state).  The wrapper runs it under a global state seeded from
the group's own ``rng`` (which ``random_seed`` seeds) and restores the caller's state afterwards.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pymc.variational.approximations as _approximations
import pymc.variational.opvi as _opvi
from pymc.pytensorf import collect_default_updates, reseed_rngs

from minibatch._upstream._patch import patch


def seeded_by_group_rng(create: Any) -> Any:
    """Run ``create`` under NumPy global state seeded from the group's ``rng``, then restore it."""

    @functools.wraps(create)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = np.random.get_state()
        np.random.seed(self.rng.randint(2**32, dtype=np.uint64))
        try:
            return create(self, *args, **kwargs)
        finally:
            np.random.set_state(state)

    return wrapper


def reseeding_update_rngs(compile: Any) -> Any:
    """Wrap PyMC's ``compile`` so RNGs used only by the updates are reseeded too."""

    @functools.wraps(compile)
    def wrapper(inputs: Any, outputs: Any, random_seed: Any = None, **kwargs: Any) -> Any:
        updates = kwargs.get("updates") or {}
        if updates:
            seen = collect_default_updates(outputs, inputs=inputs)
            in_updates = collect_default_updates(list(updates.values()), inputs=inputs)
            only_updates = [rng for rng in in_updates if rng not in seen and rng not in updates]
            if only_updates:
                child = np.random.SeedSequence(random_seed).spawn(1)[0]
                reseed_rngs(only_updates, int(child.generate_state(1)[0]))
        return compile(inputs, outputs, random_seed=random_seed, **kwargs)

    return wrapper


def install() -> None:
    """Seed SVGD's particles and the RNGs only updates use from ``random_seed`` (idempotent)."""
    patch(_approximations.EmpiricalGroup, "create_shared_params", seeded_by_group_rng)
    patch(_opvi, "compile", reseeding_update_rngs)
