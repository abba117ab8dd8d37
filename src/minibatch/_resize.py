"""A likelihood node rebuilt on batches: its inputs swapped for their batches, draws resized.

:func:`rebuild` is the second half of ``minibatch_model``'s walk over a likelihood graph (the
first is the row-wise rule, ``_rowwise``): the node is made again from the batched inputs.
Draws are given the batch's length on axis 0: a ``RandomVariable`` through its ``size``, a
PyMC symbolic random variable
(mixtures, hurdles, ``Censored``, ``DirichletMultinomial``, ``CustomDist``) by rebuilding
its graph on the new inputs, with its components (draws of their own) resized before it.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytensor.tensor as pt
from pymc.distributions.distribution import SymbolicRandomVariable
from pymc.distributions.truncated import Truncated, TruncatedRV
from pytensor.graph.traversal import io_toposort
from pytensor.tensor.random.op import RandomVariable
from pytensor.tensor.shape import SpecifyShape
from pytensor.tensor.type_other import NoneConst

from minibatch._compat import SYMBOLIC_OPS
from minibatch._rowwise import NotRowwiseError, is_rows

DRAWS = (RandomVariable, SymbolicRandomVariable)


def rebuild(node: Any, args: list[Any], length: Any, states: list[Any]) -> list[Any]:
    """``node`` made again from ``args`` (of row-wise ``states``); a draw gets ``length`` rows
    on axis 0."""
    op = node.op
    if isinstance(op, RandomVariable):
        args[1] = sized(node.inputs[1], length)
    elif isinstance(op, SymbolicRandomVariable):
        return _symbolic(node, args, length, states)
    elif isinstance(op, SpecifyShape):
        args[1:] = [NoneConst] * (len(args) - 1)
    elif isinstance(op, SYMBOLIC_OPS):  # a graph made for its input types: made again
        call: Any = op
        return list(call(*args, return_list=True))
    return list(op.make_node(*args).outputs)


def sized(size: Any, length: Any) -> Any:
    """``size`` with ``length`` as its first entry; an empty or absent size is kept."""
    if not isinstance(size.type, pt.TensorType) or not size.type.shape[0]:
        return size
    rest = [size[k] for k in range(1, size.type.shape[0])]
    return pt.stack([length, *rest]).astype("int64")


def _symbolic(node: Any, args: list[Any], length: Any, states: list[Any]) -> list[Any]:
    """The symbolic draw's graph on the batched inputs, with their batch axis open.

    The batch length is not put in the types of the Op's graph: ``full_data_model`` swaps
    every batch back for its data, and the draw must take that too.
    """
    op, size_at = node.op, _size_index(node.op)
    if size_at is not None:
        args[size_at] = sized(node.inputs[size_at], length)
    if isinstance(op, TruncatedRV):  # its draw is a Scan: PyMC builds it again, at the size
        *draw, lower, upper = args
        base = op.base_rv_op.make_node(*draw).default_output()
        with warnings.catch_warnings():  # pymc 5.28 calls pytensor 2.38's scan the old way
            warnings.filterwarnings("ignore", "Scan return signature", DeprecationWarning)
            rv = Truncated.rv_op(base, lower, upper, max_n_steps=op.max_n_steps, size=draw[1])
        return list(rv.owner.outputs)
    inner = [_opened(arg, state) for arg, state in zip(args, states, strict=True)]
    outputs = _inner_graph(op, inner)
    try:
        new_op = type(op)(inputs=inner, outputs=outputs, extended_signature=op.extended_signature)
    except (TypeError, ValueError):  # an Op with options of its own
        raise NotRowwiseError(f"{op} cannot be rebuilt on a batch") from None
    return list(new_op.make_node(*args).outputs)


def _inner_graph(op: Any, inputs: list[Any]) -> list[Any]:
    """``op``'s graph made again on ``inputs``, without the shapes it pinned (``SpecifyShape``
    of the full data's length, as ``Truncated`` writes)."""
    memo = dict(zip(op.inner_inputs, inputs, strict=True))
    for node in io_toposort(op.inner_inputs, op.inner_outputs):
        args = [memo.get(i, i) for i in node.inputs]
        if isinstance(node.op, SpecifyShape):
            args[1:] = [NoneConst] * (len(args) - 1)
        memo.update(zip(node.outputs, node.op.make_node(*args).outputs, strict=True))
    return [memo.get(out, out) for out in op.inner_outputs]


def _size_index(op: Any) -> int | None:
    """Where the size input is, from the extended signature; a truncated draw has none, but
    its base draw's inputs first (``rng, size, *params``)."""
    if isinstance(op, TruncatedRV):
        return 1
    (_, size_at, _), _ = op.get_input_output_type_idxs(op.extended_signature)
    return size_at


def _opened(var: Any, state: Any) -> Any:
    """A fresh input of ``var``'s type, with no static length on its batch axis."""
    if not is_rows(state):
        return var.type()
    shape = list(var.type.shape)
    shape[state] = None
    return var.type.clone(shape=tuple(shape))()
