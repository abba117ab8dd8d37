"""The draws of ``mb.fit``'s Scan made to work in place on pytensor 2.38 with Numba.

pytensor#2002: a Scan's body never draws in place, so every iteration copies each generator
that the Scan carries, and pytensor 2.38's Numba backend copies a generator through Python
object mode (``numba.objmode``).  Measured on the one-parameter model of
``benchmarks/steps_per_call.py`` (two draws a step: the Monte Carlo draw and the minibatch
index): 66 µs per step in a Scan of 400 steps against 2.5 µs with both draws in place.  The fix
(pytensor#2003, in pytensor 3) lets the body destroy the generators it carries; pytensor 2.38's
Scan refuses a body with in-place nodes when it is built, and its Numba backend accepts them
when it compiles the body.

So, where the defect is present (:data:`minibatch._compat.SCAN_COPIES_GENERATORS`) and the
Scan is compiled with Numba, :func:`draws_in_place` puts in-place copies of the body's draws
into the built Scan: each ``RandomVariable``, and our index draws (``minibatch._index`` inlined
from its ``MinibatchIndexOp``, ``SubsetDraw``), whose generator is a carried state with no other
reader.  As in pytensor 3, the first iteration then advances the shared generator itself,
which the Scan's update replaces by its last state anyway.  The epoch scheme's draw also
changes its permutation, a traced state on 2.38's Numba Scan, and is left as it is.  The C
backend refuses in-place nodes in a body and is not given them.
"""

from __future__ import annotations

from typing import Any

from pytensor.graph.basic import Apply, Variable
from pytensor.graph.replace import clone_replace, graph_replace
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.op import RandomVariable

from minibatch._index import MinibatchIndexOp
from minibatch._schemes import SubsetDraw


def draws_in_place(op: Any) -> int:
    """Replace, in the body of the Scan ``op`` (after it is built), each draw whose generator is
    a carried state read by that draw alone with its in-place version; the number replaced."""
    fgraph = op.fgraph
    carried = set(op.inner_untraced_sit_sot(fgraph.inputs))
    replaced = 0
    for node in list(fgraph.toposort()):
        where = 1 if isinstance(node.op, MinibatchIndexOp) else 0
        if len(node.inputs) <= where:
            continue
        rng = node.inputs[where]
        if rng not in carried or len(fgraph.clients[rng]) != 1:
            continue
        new = _inlined_in_place(node, rng) if where else _in_place(node)
        if new is not None:
            fgraph.replace_all(list(zip(node.outputs, new, strict=True)), import_missing=True)
            replaced += 1
    return replaced


def _in_place(node: Apply) -> list[Variable] | None:
    op = node.op
    if isinstance(op, RandomVariable) and not op.inplace:
        props = op._props_dict()  # type: ignore[attr-defined]
        props["inplace"] = True
        return list(type(op)(**props).make_node(*node.inputs).outputs)
    if isinstance(op, SubsetDraw) and not op.inplace:
        return list(type(op)(op.size, inplace=True).make_node(*node.inputs).outputs)
    return None


def _inlined_in_place(node: Apply, rng: Variable) -> list[Variable] | None:
    """The outputs of an index Op's graph on ``node``'s inputs, its draw in place."""
    op = node.op
    outputs = clone_replace(op.inner_outputs, dict(zip(op.inner_inputs, node.inputs, strict=True)))
    draws = list(
        {
            v.owner: None
            for v in ancestors(outputs)
            if v.owner is not None and v.owner.inputs and v.owner.inputs[0] is rng
        }
    )
    new = _in_place(draws[0]) if len(draws) == 1 else None
    if new is None:
        return None
    return list(graph_replace(outputs, dict(zip(draws[0].outputs, new, strict=True)), strict=False))
