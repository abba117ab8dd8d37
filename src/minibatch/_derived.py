"""Observed data computed from minibatches (``xb[:, 0] * 2``), made acceptable to PyMC.

PyMC accepts observed data that depends on random variables only through ``MinibatchOp``
outputs.  An expression of batches is data too (it depends on the index alone), so it is
wrapped in a :class:`DerivedBatchOp` whose leaves are the batches and other inputs.
"""

from __future__ import annotations

from typing import Any

from pymc.data import MinibatchOp
from pymc.pytensorf import rvs_in_graph
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.replace import clone_replace

from minibatch._gather import MinibatchGatherOp, source_of
from minibatch._ops import BatchOp


class DerivedBatchOp(BatchOp):
    """Data computed from minibatches: inputs ``(*leaves)``, outputs ``(*leaves, value)``.

    Output *i* is input *i* for every leaf, so ``remove_minibatched_nodes`` maps them back and
    the value is recomputed from the full data; input 0 is a batch, a valid scan non-sequence.
    """

    def __str__(self) -> str:
        return "DerivedBatch"


def is_batch(value: Any) -> bool:
    """Whether ``value`` is a batch: a gather output, possibly cast (see ``source_of``)."""
    return isinstance(value, Variable) and bool(source_of(value)[1])


def derive(observed: Any) -> Any:
    """``observed`` wrapped in a ``DerivedBatchOp`` if it is computed from our batches only."""
    if not isinstance(observed, Variable) or is_batch(observed):
        return observed
    if observed.owner is None or isinstance(observed.owner.op, MinibatchOp):
        return observed
    leaves = _leaves(observed)
    if not any(_is_gathered(leaf) for leaf in leaves):
        return observed
    inner_in = [leaf.type() for leaf in leaves]
    inner = clone_replace(observed, dict(zip(leaves, inner_in, strict=True)))
    if rvs_in_graph(inner):
        return observed  # other random variables: PyMC's own check decides
    op = DerivedBatchOp(inner_in, [*(v.copy() for v in inner_in), inner])
    value = op(*leaves)[-1]
    value.name = observed.name
    return value


def _is_gathered(var: Any) -> bool:
    return var.owner is not None and isinstance(var.owner.op, MinibatchGatherOp)


def _leaves(value: Variable) -> list[Variable]:
    """The batches and non-constant roots that ``value`` is computed from; batches first."""
    leaves: dict[Variable, None] = {}
    stack, seen = [value], set()
    while stack:
        var = stack.pop()
        if var in seen:
            continue
        seen.add(var)
        if _is_gathered(var) or (var.owner is None and not isinstance(var, Constant)):
            leaves[var] = None
        elif var.owner is not None:
            stack.extend(var.owner.inputs)
    return sorted(leaves, key=lambda v: not _is_gathered(v))
