"""Reproducible VI fits: ``pm.fit(random_seed=s)`` fixes every random draw, SVGD included.

SVGD's step function has no outputs (``KSD`` returns no loss), and PyMC's ``compile`` reseeds only
the RNGs it finds above the outputs, not above the updates: the minibatch index then starts from
whatever state it was built with, and ``random_seed`` does not fix the batches.  Nor does it add
their updates: an RNG without a ``default_update`` then never advances, so ASVGD (whose step
function has no loss output either) drew the same Monte Carlo samples at every step of a
``pm.fit`` — one fixed set of ``obj_n_mc`` draws instead of fresh ones.  The wrapper of opvi's
``compile`` reseeds the RNGs that only the updates use, from a seed derived from
``random_seed`` (a stream distinct from the ones ``compile`` spawns itself), and updates them.
No upstream issue found as of pymc 5.28.5 / 6.4.0.

``EmpiricalGroup.create_shared_params`` jitters SVGD's initial particles with
``np.random.normal`` (NumPy's global state).  The wrapper runs it under a global state seeded from
the group's own ``rng`` (which ``random_seed`` seeds) and restores the caller's state afterwards.

All three present in pymc 5.28.5 and 6.4.0.  :func:`update_rngs_unseeded` and
:func:`update_rngs_frozen` compile one function with an update and no output on pytensor's
Python linker, unoptimised (milliseconds);
:func:`particles_use_global_state` builds two 2 x 1 particle sets under two global seeds.
"""

from __future__ import annotations

import functools
import inspect
from types import SimpleNamespace
from typing import Any

import numpy as np
import pymc.variational.approximations as _approximations
import pymc.variational.opvi as _opvi
import pytensor
import pytensor.tensor as pt
from pymc.pytensorf import collect_default_updates, reseed_rngs
from pytensor.compile.mode import Mode

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
                kwargs["updates"] = {**updates, **{rng: in_updates[rng] for rng in only_updates}}
        return compile(inputs, outputs, random_seed=random_seed, **kwargs)

    return wrapper


@functools.cache
def update_rngs_unseeded() -> bool:
    """Whether PyMC's ``compile`` leaves an RNG alone that only an update uses."""
    rng = pytensor.shared(np.random.default_rng(0))
    next_rng, _ = pt.random.normal.make_node(rng, None, 0.0, 1.0).outputs
    before = rng.get_value(borrow=True).bit_generator.state
    mode = Mode(linker="py", optimizer="None")
    inspect.unwrap(_opvi.compile)([], [], updates={rng: next_rng}, random_seed=1, mode=mode)
    return bool(rng.get_value(borrow=True).bit_generator.state == before)


@functools.cache
def update_rngs_frozen() -> bool:
    """Whether PyMC's ``compile`` leaves an RNG unadvanced that only an update's graph uses."""
    rng = pytensor.shared(np.random.default_rng(0))
    total = pytensor.shared(0.0)
    _, draw = pt.random.normal.make_node(rng, None, 0.0, 1.0).outputs
    mode = Mode(linker="py", optimizer="None")
    step = inspect.unwrap(_opvi.compile)([], [], updates={total: total + draw}, mode=mode)
    step()
    first = total.get_value()
    step()
    return bool(total.get_value() == 2 * first)


@functools.cache
def particles_use_global_state() -> bool:
    """Whether SVGD's initial particles follow NumPy's global state rather than ``rng``."""
    create = inspect.unwrap(_approximations.EmpiricalGroup.create_shared_params)
    group = SimpleNamespace(_prepare_start=lambda start: np.zeros(1))
    state = np.random.get_state()
    try:
        draws = []
        for seed in (1, 2):
            np.random.seed(seed)
            draws.append(create(group, size=2, jitter=1)["histogram"].get_value())
    finally:
        np.random.set_state(state)
    return not np.array_equal(draws[0], draws[1])


def install() -> None:
    """Seed SVGD's particles and the RNGs only updates use from ``random_seed`` (idempotent)."""
    if particles_use_global_state():
        patch(_approximations.EmpiricalGroup, "create_shared_params", seeded_by_group_rng)
    if update_rngs_unseeded() or update_rngs_frozen():
        patch(_opvi, "compile", reseeding_update_rngs)
