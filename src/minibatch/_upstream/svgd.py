"""SVGD and ASVGD on minibatch models.

``KSD.apply`` (``pymc.variational.operators``) raises ``NotImplementedInference`` whenever
``_known_scan_ignored_inputs`` finds a ``MinibatchOp``: with PyMC's own Minibatch the index RNG
sat inside the scan over particles, so every particle saw another batch and the gradient was
wrong.  Ours put the index at the gather's input 0, which that same function hands to the scan
as a non-sequence: one batch per step for all particles, drawn outside the scan.  The guard
therefore keeps refusing PyMC's own Minibatch and Simulator RVs and lets ours through; opvi's
own copy of the function, which builds the scan, is not touched.

``Empirical.create_shared_params`` jitters the initial particles with ``np.random.normal``
(NumPy's global state), so ``pm.fit(method="svgd", random_seed=s)`` is not reproducible.  The
wrapper runs it under a global state seeded from the group's own ``rng`` (which ``random_seed``
seeds) and restores the caller's global state afterwards.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pymc.variational.approximations as _approximations
import pymc.variational.operators as _operators
from pymc.data import MinibatchOp
from pymc.distributions.simulator import SimulatorRV
from pytensor.graph.traversal import ancestors

from minibatch._gather import MinibatchGatherOp
from minibatch._index import MinibatchIndexOp
from minibatch._upstream._patch import patch


def known_scan_ignored_inputs_except_ours(terms: Any) -> list[Any]:
    """What PyMC's guard finds (``MinibatchOp`` and ``SimulatorRV`` nodes), less our own nodes."""
    return [
        var.owner.inputs[0]
        for var in ancestors(terms)
        if var.owner is not None
        and isinstance(var.owner.op, MinibatchOp | SimulatorRV)
        and not isinstance(var.owner.op, MinibatchGatherOp | MinibatchIndexOp)
    ]


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


def install() -> None:
    """Lift the SVGD guard for our minibatches and seed SVGD's particles (idempotent)."""
    patch(_operators, "_known_scan_ignored_inputs", lambda _: known_scan_ignored_inputs_except_ours)
    patch(_approximations.EmpiricalGroup, "create_shared_params", seeded_by_group_rng)
