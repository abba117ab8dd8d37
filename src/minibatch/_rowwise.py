"""The row-wise rule: which graph nodes act row by row along a batch axis.

A node is *row-wise* when each output row depends only on the same row of its batched inputs.
Then evaluating it on a batch of rows gives exactly the batch's rows of its full-data value,
which is what subsampling a likelihood needs (``minibatch_model``) and what makes an expression
of a batch still drawn by the batch's index (``index_of``).

The rule works on *states*, one per variable, propagated through a graph in topological order:

* an ``int`` ``p``: the variable's axis ``p`` runs over the batch rows;
* :data:`COUNT`: a value equal to the number of rows (``X.shape[0]``), which becomes the
  batch's length when the graph is rebuilt on batches.  Only a shape may use it
  (``pt.ones(X.shape[0])``): any other use (a division by the number of rows) is refused;
* ``Entry(p)``: a shape vector whose entry ``p`` is the number of rows (``X.shape``);
* ``None``: not on the batch dimension.

:func:`output_states` gives a node's output states from its input states, or raises
:class:`NotRowwiseError` saying why the node mixes rows.  Accepted: elementwise maths of any
number of batched inputs whose batch axes line up (unbatched inputs broadcast there),
transposes and new axes (the batch axis is followed), basic indexing that keeps the batch
axis whole, a take ``a[group]`` by a per-row index, ``X @ w``, reductions, softmax,
log-softmax, cumulative ops, sorts and joins along other axes, shapes, and the gufunc-like
nodes (Blockwise, random variables) whose batch axis is a loop axis of their signature.

>>> import pytensor.tensor as pt
>>> x = pt.matrix("x")
>>> node = pt.special.softmax(x, axis=1).owner
>>> output_states(node, [0])
[0]
>>> output_states(x.sum(axis=0).owner, [0])
Traceback (most recent call last):
...
minibatch._rowwise.NotRowwiseError: Sum{axis=0} reduces along the batch axis (axis 0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytensor.tensor as pt
from pymc.distributions.custom import CustomSymbolicDistRV
from pymc.distributions.distribution import SymbolicRandomVariable
from pymc.distributions.truncated import TruncatedRV
from pytensor.graph.basic import Constant
from pytensor.graph.traversal import io_toposort
from pytensor.scalar import Cast
from pytensor.tensor.basic import Alloc, Join, MakeVector
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.elemwise import CAReduce, DimShuffle, Elemwise
from pytensor.tensor.extra_ops import CumOp
from pytensor.tensor.math import Argmax, Dot
from pytensor.tensor.random.op import RandomVariable
from pytensor.tensor.shape import Shape, Shape_i, SpecifyShape
from pytensor.tensor.sort import ArgSortOp, SortOp
from pytensor.tensor.special import LogSoftmax, Softmax
from pytensor.tensor.subtensor import Subtensor
from pytensor.tensor.utils import _parse_gufunc_signature

from minibatch._compat import LOGSUMEXP_OPS, TAKE_OPS, axis_and_operands


class NotRowwiseError(ValueError):
    """A node that does not act row by row; ``args[1:]`` may hold the offending input."""


@dataclass(frozen=True)
class Entry:
    """A shape vector whose entry ``index`` is the number of rows."""

    index: int


COUNT = "the number of rows"
State = Any  # int | None | COUNT | Entry
Rule = Callable[[Any, list[State]], list[State]]

_FULL = slice(None, None, None)


def is_rows(state: State) -> bool:
    """Whether ``state`` is a batch axis (an int), not a count, a shape or ``None``."""
    return isinstance(state, int) and not isinstance(state, bool)


def output_states(node: Any, states: Sequence[State]) -> list[State]:
    """The states of ``node``'s outputs; :class:`NotRowwiseError` if it mixes rows."""
    states = list(states)
    if all(s is None for s in states):
        return [None] * len(node.outputs)
    for kind, rule in _RULES:
        if isinstance(node.op, kind):
            return rule(node, states)
    if any(is_rows(s) for s in states):
        raise NotRowwiseError(f"{node.op} is not known to act row by row")
    raise _count_used(node, states)


def _count_used(node: Any, states: list[State]) -> NotRowwiseError:
    k = next(k for k, s in enumerate(states) if s is not None)
    return NotRowwiseError(
        f"{node.op} uses the number of rows N (read from a shape) as a value; on a batch it "
        "would be the batch size, so a division by the number of rows (a mean over them) "
        "would change meaning",
        node.inputs[k],
    )


def _axes(axis: Any, ndim: int) -> tuple[int, ...]:
    """``axis`` (None, an int or a tuple, negative allowed) as non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(int(a) % max(ndim, 1) for a in axes)


def _constant(var: Any) -> Any:
    if isinstance(var, Constant):
        return var.data
    raise NotRowwiseError(f"{var} is not a constant")


def _elemwise(node: Any, states: list[State]) -> list[State]:
    if isinstance(node.op.scalar_op, Cast) and (states[0] == COUNT or isinstance(states[0], Entry)):
        return [states[0]]
    if any(s is not None and not is_rows(s) for s in states):
        raise _count_used(node, states)
    axes = {s for s in states if is_rows(s)}
    if len(axes) > 1:
        raise NotRowwiseError(f"{node.op} combines batches whose batch axes differ ({axes})")
    (p,) = axes
    for var, state in zip(node.inputs, states, strict=True):
        if state is None and not var.type.broadcastable[p]:
            raise NotRowwiseError(f"{node.op} mixes the batch rows with unbatched rows", var)
    return [p] * len(node.outputs)


def _dimshuffle(node: Any, states: list[State]) -> list[State]:
    (state,) = states
    if state == COUNT:
        return [COUNT]
    if not is_rows(state):
        raise _count_used(node, states)
    order = list(node.op.new_order)
    if state not in order:
        raise NotRowwiseError(f"{node.op} drops the batch axis")
    return [order.index(state)]


def _subtensor(node: Any, states: list[State]) -> list[State]:
    state, rest = states[0], states[1:]
    if any(s is not None for s in rest):
        raise NotRowwiseError(f"{node.op} selects with an index on the batch dimension")
    if isinstance(state, Entry):
        return [COUNT if int(_constant(node.inputs[1])) == state.index else None]
    if not is_rows(state):
        raise _count_used(node, states)
    idx = list(node.op.idx_list)
    if state < len(idx) and idx[state] != _FULL:
        raise NotRowwiseError(f"{node.op} selects along the batch axis (axis {state})")
    dropped = sum(not isinstance(i, slice) for i in idx[:state])
    return [state - dropped]


def _take(node: Any, states: list[State]) -> list[State]:
    """``a[group]``: an unbatched ``a`` taken by a per-row index vector (first index)."""
    first = getattr(node.op, "idx_list", (0,))[0]
    index_states = states[1:]
    tensors = [i for i in node.inputs[1:] if isinstance(i.type, pt.TensorType) and i.ndim > 0]
    per_row = all(
        is_rows(s) and s == 0 and i.ndim == 1
        for i, s in zip(node.inputs[1:], index_states, strict=True)
        if i in tensors
    )
    unbatched_scalars = all(
        s is None
        for i, s in zip(node.inputs[1:], index_states, strict=True)
        if i not in tensors and isinstance(i.type, pt.TensorType)
    )
    by_group = states[0] is None and is_rows(index_states[0]) and first == 0
    if by_group and per_row and unbatched_scalars:
        return [0]
    raise NotRowwiseError(f"{node.op} indexes the batch rows in a way that is not row by row")


def _dot(node: Any, states: list[State]) -> list[State]:
    (a, b), (sa, sb) = node.inputs, states
    if is_rows(sa) and sb is None and a.ndim == 2 and sa == 0:
        return [0]
    if sa is None and is_rows(sb) and b.ndim == 2 and sb == 1:
        return [node.outputs[0].ndim - 1]
    raise NotRowwiseError("a dot product sums over the batch axis")


def _reduce_like(node: Any, states: list[State], axis: Any) -> list[State]:
    """Reductions and normalisations along ``axis``: any axis but the batch one."""
    (p, *rest), var = states, node.inputs[0]
    if not is_rows(p) or any(s is not None for s in rest):
        raise _count_used(node, states)
    axes = _axes(axis, var.ndim)
    if p in axes:
        what = "reduces" if node.outputs[0].ndim < var.ndim else "normalises or orders"
        raise NotRowwiseError(f"{node.op} {what} along the batch axis (axis {p})")
    kept = node.outputs[0].ndim == var.ndim
    return [p if kept else p - sum(a < p for a in axes)] * len(node.outputs)


def _axis_prop(node: Any, states: list[State]) -> list[State]:
    return _reduce_like(node, states, node.op.axis)


def _sort(node: Any, states: list[State]) -> list[State]:
    axis, (operand, *_) = axis_and_operands(node, 1)
    axis = axis if axis is None or isinstance(axis, int) else _constant(axis)
    rest = [None] * (len(states) - 1)
    return _reduce_like(node, [states[operand], *rest], None if axis is None else int(axis))


def _join(node: Any, states: list[State]) -> list[State]:
    axis, operands = axis_and_operands(node, 0)
    axis = int(axis if isinstance(axis, int) else _constant(axis))
    parts = [states[k] for k in operands]
    p = parts[0]
    if not all(is_rows(s) and s == p for s in parts):
        raise NotRowwiseError(f"{node.op} joins batches with unbatched rows")
    if axis % node.outputs[0].ndim == p:
        raise NotRowwiseError(f"{node.op} joins along the batch axis (axis {p})")
    return [p]


def _alloc(node: Any, states: list[State]) -> list[State]:
    value, shape = states[0], states[1:]
    if any(s is not None and s != COUNT for s in shape):
        raise _count_used(node, states)
    found = {k for k, s in enumerate(shape) if s == COUNT}
    if is_rows(value):
        found.add(value + len(shape) - node.inputs[0].ndim)
    if len(found) != 1:
        raise NotRowwiseError(f"{node.op} puts the batch rows on more than one axis")
    return [found.pop()]


def _make_vector(node: Any, states: list[State]) -> list[State]:
    if any(s not in (None, COUNT) for s in states):
        raise _count_used(node, states)
    return [Entry(states.index(COUNT))]


def _shape(node: Any, states: list[State]) -> list[State]:
    if not is_rows(states[0]):
        raise _count_used(node, states)
    return [Entry(states[0])]


def _shape_i(node: Any, states: list[State]) -> list[State]:
    if not is_rows(states[0]):
        raise _count_used(node, states)
    return [COUNT if node.op.i == states[0] else None]


def _specify_shape(node: Any, states: list[State]) -> list[State]:
    if not is_rows(states[0]) or any(s not in (None, COUNT) for s in states[1:]):
        raise NotRowwiseError(f"{node.op} uses the batch rows as a shape")
    return [states[0]]


def check_gufunc(
    node: Any,
    states: Sequence[State],
    inputs_sig: Sequence[Sequence[str]],
    output_sig: Sequence[str],
    checked: Sequence[int],
    out: Any,
) -> int:
    """The batch axis of ``out`` for a gufunc-like node; :class:`NotRowwiseError` if none.

    Every batched input's batch axis must be one loop axis of the output (loop axes line up
    from the right), or a named core axis of the output that no unbatched input shares (so it
    is not contracted: ``(m,k),(k,n)->(m,n)`` keeps ``m`` of its first input and ``n`` of its
    second); unbatched inputs must broadcast on the output's batch axis.
    """
    out_loop = out.ndim - len(output_sig)
    found = set()
    for k in checked:
        var, sig, state = node.inputs[k], tuple(inputs_sig[k]), states[k]
        loop = var.ndim - len(sig)
        if state is None:
            continue
        if not is_rows(state):
            raise _count_used(node, list(states))
        if state < loop:
            found.add(out_loop - loop + state)
            continue
        name = sig[state - loop]  # a core axis: kept when named in the output, not contracted
        contracted = any(name in inputs_sig[j] for j in checked if states[j] is None)
        if name != "_" and name in output_sig and not contracted:
            found.add(out_loop + list(output_sig).index(name))
            continue
        raise NotRowwiseError(f"{node.op} reduces or moves the batch axis", var)
    if len(found) != 1:
        raise NotRowwiseError(f"{node.op} combines batches whose batch axes differ")
    (axis,) = found
    for k in checked:
        var, state = node.inputs[k], states[k]
        loop = var.ndim - len(inputs_sig[k])
        where = axis - (out_loop - loop)
        if state is None and 0 <= where < loop and not var.type.broadcastable[where]:
            raise NotRowwiseError(f"{node.op} mixes the batch rows with unbatched rows", var)
    return axis


def _blockwise(node: Any, states: list[State]) -> list[State]:
    op = node.op
    axis = check_gufunc(
        node, states, op.inputs_sig, op.outputs_sig[0], range(len(states)), node.outputs[0]
    )
    return [axis] * len(node.outputs)


def _random_variable(node: Any, states: list[State]) -> list[State]:
    """A draw: its parameters' batch axes must be the draw's axis 0 (its size is reset)."""
    op = node.op
    sig = [(), (), *[("_",) * n for n in op.ndims_params]]
    out = node.outputs[1]
    axis = check_gufunc(node, states, sig, ("_",) * op.ndim_supp, range(2, len(states)), out)
    if axis != 0:
        raise NotRowwiseError(f"{op} draws the batch rows along axis {axis}, not axis 0")
    return [None, 0]


def _truncated(node: Any, states: list[State]) -> list[State]:
    """A truncated draw (PyMC's ``Truncated``; hurdle families): its base draw's signature,
    then ``lower`` and ``upper`` elementwise."""
    base = node.op.base_rv_op
    sig = [(), (), *[("_",) * n for n in base.ndims_params], (), ()]
    out = node.outputs[0]
    axis = check_gufunc(node, states, sig, ("_",) * base.ndim_supp, range(2, len(states)), out)
    if axis != 0:
        raise NotRowwiseError(f"{node.op} draws the batch rows along axis {axis}, not axis 0")
    return [0] + [None] * (len(node.outputs) - 1)


def _symbolic_rv(node: Any, states: list[State]) -> list[State]:
    """A PyMC symbolic random variable (mixtures, hurdles, ``Censored``, ``CustomDist``...),
    by its extended signature; a ``CustomDist``'s own graph must pass the rule as well."""
    op = node.op
    if op.extended_signature is None:
        raise NotRowwiseError(f"{op} has no signature to tell its batch axes")
    (_, _, params), (_, outs) = op.get_input_output_type_idxs(op.extended_signature)
    params_sig, outputs_sig = _parse_gufunc_signature(op.signature)
    sig: list[Any] = [()] * len(node.inputs)
    for k, sig_k in zip(params, params_sig, strict=True):
        sig[k] = sig_k
    out = node.outputs[outs[0]]
    axis = check_gufunc(node, states, sig, outputs_sig[0], params, out)
    if axis != 0:
        raise NotRowwiseError(f"{op} draws the batch rows along axis {axis}, not axis 0")
    if isinstance(op, CustomSymbolicDistRV):
        inner = dict(zip(op.inner_inputs, states, strict=True))
        try:
            found = propagate(inner, op.inner_outputs)
        except NotRowwiseError as err:
            raise NotRowwiseError(f"{op}'s dist graph: {err.args[0]}", *err.args[1:]) from None
        if found.get(op.inner_outputs[outs[0]]) != 0:
            raise NotRowwiseError(f"{op}'s dist graph does not keep the batch rows on axis 0")
    result: list[State] = [None] * len(node.outputs)
    result[outs[0]] = 0
    return result


_RULES: list[tuple[Any, Rule]] = [
    (Elemwise, _elemwise),
    (DimShuffle, _dimshuffle),
    (Subtensor, _subtensor),
    (TAKE_OPS, _take),
    (Dot, _dot),
    (CAReduce | Argmax | Softmax | LogSoftmax | CumOp, _axis_prop),
    (LOGSUMEXP_OPS, _axis_prop),
    (SortOp | ArgSortOp, _sort),
    (Join, _join),
    (Alloc, _alloc),
    (MakeVector, _make_vector),
    (Shape, _shape),
    (Shape_i, _shape_i),
    (SpecifyShape, _specify_shape),
    (Blockwise, _blockwise),
    (RandomVariable, _random_variable),
    (TruncatedRV, _truncated),
    (SymbolicRandomVariable, _symbolic_rv),
]


def propagate(start: dict[Any, State], outputs: Sequence[Any]) -> dict[Any, State]:
    """The state of every variable between ``start`` (variables and their states) and
    ``outputs``; :class:`NotRowwiseError` at the first node that mixes rows."""
    states = dict(start)
    for node in io_toposort(list(start), list(outputs)):
        found = [states.get(i) for i in node.inputs]
        if any(s is not None for s in found):
            states.update(zip(node.outputs, output_states(node, found), strict=True))
    return states
