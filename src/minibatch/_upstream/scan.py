"""VI's scans over Monte Carlo samples and SVGD particles, on minibatch models.

``KSD.apply`` (``pymc.variational.operators``) raises ``NotImplementedInference`` whenever
``_known_scan_ignored_inputs`` finds a ``MinibatchOp`` or ``SimulatorRV``: with PyMC's own
Minibatch the index RNG sat inside the scan over particles, so each particle saw another batch
and the gradient was wrong (opvi: "remove when scan issue with grads is fixed"; no upstream issue
found as of pymc 6.4.0).  That same function, in opvi, picks the scan's non-sequences: input 0
of each ``MinibatchOp`` node, and input 0 of our gather is the index.  So with our minibatches
the index is drawn once per step, outside the scan, and all particles see the same rows (tested
against the same step on a constant batch).  operators' copy of the function is pointed at one
that skips our nodes.

opvi's copy, which builds the scan, returns input 0 of every node, duplicates included: two
gathers by one index (a batch and its cast, or several subsampled axes of one call) then give
the scan the same non-sequence twice, and pytensor refuses (``UnusedInputError: Variable
minibatch_index is used twice``).  It is wrapped to drop repeats, keeping the order.

Both present in pymc 5.28.5 and 6.4.0; :func:`refusal_present` and :func:`repeats_present`
ask the two functions about two tiny ``MinibatchOp`` nodes on one input (no compile).
"""

from __future__ import annotations

import functools
from typing import Any

import pymc.variational.operators as _operators
import pymc.variational.opvi as _opvi
import pytensor.tensor as pt
from pymc.data import MinibatchOp
from pymc.distributions.simulator import SimulatorRV
from pytensor.graph.traversal import ancestors

from minibatch._ops import BatchOp, is_ours
from minibatch._upstream._patch import patch


def scan_unsafe_inputs(terms: Any) -> list[Any]:
    """What PyMC's guard finds (``MinibatchOp`` and ``SimulatorRV`` nodes), less our own nodes."""
    return [
        var.owner.inputs[0]
        for var in ancestors(terms)
        if var.owner is not None
        and isinstance(var.owner.op, MinibatchOp | SimulatorRV)
        and not is_ours(var.owner)
    ]


def without_repeats(find: Any) -> Any:
    """Wrap opvi's ``_known_scan_ignored_inputs`` so each input is listed once."""

    @functools.wraps(find)
    def wrapper(terms: Any) -> list[Any]:
        return list(dict.fromkeys(find(terms)))

    return wrapper


def _two_batches_of_one_input() -> list[Any]:
    data = pt.vector("data")
    inner = pt.vector("inner")
    first = BatchOp([inner], [inner * 1.0])(data)
    second = BatchOp([inner], [inner * 2.0])(data)
    return [first + second]


@functools.cache
def refusal_present() -> bool:
    """Whether the guard that SVGD / ASVGD consult flags our Ops."""
    return bool(_operators._known_scan_ignored_inputs(_two_batches_of_one_input()))


@functools.cache
def repeats_present() -> bool:
    """Whether opvi lists one input twice for two nodes that share it."""
    found = _opvi._known_scan_ignored_inputs(_two_batches_of_one_input())
    return len(found) != len(set(found))


def install() -> None:
    """Let SVGD and ASVGD run on our minibatches; list each scan input once (idempotent)."""
    if refusal_present():
        patch(_operators, "_known_scan_ignored_inputs", lambda _: scan_unsafe_inputs)
    if repeats_present():
        patch(_opvi, "_known_scan_ignored_inputs", without_repeats)
