"""Apply one index to any number of datasets along one axis: the gather node.

:class:`MinibatchGatherOp` takes ``(index, *data)`` and returns ``(index, *batches)``, with
``batch_i = data_i[..., index, ...]`` along its ``axis``.  The order is PyMC's convention, made
to fit: ``pymc.data.MinibatchOp`` users map output *i* back to input *i* (``extract_obs_data``,
``remove_minibatched_nodes``), and VI passes input 0 — our index — to its Monte Carlo ``scan`` as
a non-sequence, so one index is drawn per optimisation step.  Several subsampled axes chain one
gather per axis.

``Minibatch`` (in ``_minibatch``) gives the batches its class, after the gather is built: a
copy of the graph holds plain ``TensorVariable`` batches, which :func:`source_of` still
recognises.  Their subsampled axis has no static length, so a batch can be replaced by data of
any length (``clone_replace``, ``more_replacements=``, ``sample_node``); the batch size is still
a constant of the graph (the index has a static shape) and every backend sees it after shape
inference.

The rows are copied by pytensor's own take (``x[index]``) on every backend: measured side by
side, no kernel of ours beat it (``docs/performance.md``).  The index is in range by
construction (drawn in ``[0, n)`` from the length of the data it indexes, which every dataset of
a gather shares), which matters on pytensor 3's Numba take: it does not check bounds.

Compiled, a batch gets its static length back (:func:`static_batch_length`, a rewrite of takes
by our index): pymc 6 pins an observed batch to its inferred shape with a ``SpecifyShape``,
and that view kept the likelihood's elementwise kernel from working in place (+20 µs per step
on the seeds' model, C backend).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.graph.rewriting.basic import copy_stack_trace, node_rewriter
from pytensor.graph.traversal import ancestors
from pytensor.scalar import Cast
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.shape import SpecifyShape
from pytensor.tensor.variable import TensorVariable

from minibatch._compat import TAKE_OPS
from minibatch._index import IndexRV
from minibatch._numba_index import IndexDraw
from minibatch._ops import BatchOp
from minibatch._rowwise import NotRowwiseError, is_rows, propagate
from minibatch._schemes import EpochDraw, SubsetDraw, epochs_completed, is_epoch_state

# The Ops that draw an index: the scheme's draw, or the Numba rewrite's draw with replacement.
INDEX_DRAWS = (IndexRV, IndexDraw, SubsetDraw, EpochDraw)


@node_rewriter(list(TAKE_OPS))
def static_batch_length(fgraph: Any, node: Any) -> list[Any] | None:
    """A take by one of our index draws, rebuilt so that its output has the index's length.

    Inside the (inlined) gather the batch axis is open; rebuilt from the same inputs, the take
    knows the batch length from the index's static shape.  Only takes by our index are touched.
    """
    ours = any(
        inp.owner is not None and isinstance(inp.owner.op, INDEX_DRAWS) for inp in node.inputs[1:]
    )
    if not ours:
        return None
    (old,) = node.outputs
    (new,) = node.op.make_node(*node.inputs).outputs
    if new.type == old.type or not old.type.is_super(new.type):
        return None
    copy_stack_trace(old, new)
    return [new]


@functools.cache
def register_static_batch_length() -> None:
    """Register :func:`static_batch_length` with pytensor's canonicalisations (every backend)."""
    from pytensor.tensor.rewriting.basic import register_canonicalize

    register_canonicalize(static_batch_length, "minibatch")


class MinibatchGatherOp(BatchOp):
    """Marks a gather: inputs ``(index, *data)``, outputs ``(index, *batches)`` along ``axis``."""

    def __init__(self, *args: Any, axis: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.axis = axis

    def __str__(self) -> str:
        return "MinibatchGather"


def gather(index: TensorVariable, data: Sequence[TensorVariable], axis: int = 0) -> list[Any]:
    """Index every tensor in ``data`` with ``index`` along ``axis``, in one node.

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt
    >>> idx = pt.as_tensor(np.array([2, 0]))
    >>> xb, yb = gather(idx, [pt.as_tensor(np.arange(6).reshape(3, 2)), pt.as_tensor(np.arange(3))])
    >>> xb.eval().tolist(), yb.eval().tolist()
    ([[4, 5], [0, 1]], [2, 0])
    >>> xb.type.shape  # the batch axis stays open to replacement
    (None, 2)
    """
    register_static_batch_length()
    index_in = pt.lvector("index")
    data_in = [d.type() for d in data]
    position = (slice(None),) * axis + (index_in,)
    batches_in = [d[position] for d in data_in]  # pytensor's own take on every backend
    op = MinibatchGatherOp([index_in, *data_in], [index_in.copy(), *batches_in], axis=axis)
    _, *batches = op(index, *data)
    return batches


def source_of(var: Any, passed: bool = False) -> tuple[Any, list[tuple[int, Any]]]:
    """The stored data under ``var``'s gathers (and casts), and ``(axis, index)`` of each gather.

    With ``passed`` the index is the gather's output 0 (the index passed through the gather)
    instead of its input 0 (the index itself).

    ``var`` is a batch when the list is not empty; any copy of a batch's graph (a clone, a model
    rebuilt from its graph) is one too.

    >>> import numpy as np, pytensor.tensor as pt
    >>> data = pt.as_tensor(np.zeros((3, 2)))
    >>> (xb,) = gather(pt.as_tensor(np.array([2, 0])), [data])
    >>> source, gathers = source_of(xb.astype("float32"))
    >>> source is data, [axis for axis, _ in gathers]
    (True, [0])
    """
    source: Any = var
    gathers = []
    while source.owner is not None:
        node = source.owner
        if isinstance(node.op, MinibatchGatherOp):
            gathers.append((node.op.axis, node.outputs[0] if passed else node.inputs[0]))
            source = node.inputs[node.outputs.index(source)]
        elif isinstance(node.op, SpecifyShape) or (
            isinstance(node.op, Elemwise) and isinstance(node.op.scalar_op, Cast)
        ):
            source = node.inputs[0]
        else:
            break
    return source, gathers


def uncast(var: Any) -> Any:
    """``var`` under any chain of casts (``x.astype(...)``)."""
    while var.owner is not None and (
        isinstance(var.owner.op, Elemwise) and isinstance(var.owner.op.scalar_op, Cast)
    ):
        var = var.owner.inputs[0]
    return var


def cast_source(var: TensorVariable, dtype: str) -> TensorVariable:
    """``var`` cast to ``dtype``; for a batch, the cast is pushed down to the stored data.

    The result of a cast of a batch is a batch again, drawn by the same indices, so PyMC still
    accepts it as observed data.
    """
    node = var.owner
    if node is None or not isinstance(node.op, MinibatchGatherOp):
        return pt.cast(var, dtype)
    index, *data = node.inputs
    source = data[node.outputs.index(var) - 1]
    (cast,) = gather(index, [cast_source(source, dtype)], node.op.axis)
    return cast


def index_of(batch: Any, axis: int = 0) -> TensorVariable:
    """The index that draws ``batch`` along ``axis``: the batch's rows as positions in its data.

    Every dataset of one ``Minibatch`` call (and every expression of a batch) has the same index,
    so ``z[mb.index_of(xb)]`` takes the rows of a full-length variable ``z`` that go with the
    rows of ``xb``: this is how a local latent variable (one value per data row) enters a
    minibatch likelihood.  With several subsampled axes each has its own index.

    Parameters
    ----------
    batch : Minibatch or TensorVariable
        A batch of ``mb.Minibatch`` (or a cast of one, or a copy of its graph), or an
        expression that is row-wise in one call's batch (``Yb * 2``, ``Yb[:, 0]``,
        ``pt.exp(Yb)``, ``Yb.T``; the rule of ``docs/transform.md``).
    axis : int, default 0
        The subsampled axis whose index is wanted, as it stands in ``batch`` (axis 1 of
        ``Yb.T``).

    Returns
    -------
    TensorVariable
        The int64 vector of positions, drawn once per step (one draw per ``pm.fit`` step,
        shared by every Monte Carlo sample of that step and every dataset of the call).  It is
        the index as it leaves the batch's gather (output 0), not the draw itself: PyMC's VI
        keeps a draw outside its Monte Carlo ``scan`` only where it enters a gather, and the
        logp rewrites copy what the likelihood's parameters use, so a use of the draw itself
        would be drawn again inside the scan.  ``mb.full_data_model`` turns it into every row.

    Raises
    ------
    TypeError
        If ``batch`` is not a minibatch.
    ValueError
        If ``axis`` is not one of its subsampled axes, or an expression mixes the batches of
        several calls or is not row-wise in its batch (the message says which node).

    Examples
    --------
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> xb = mb.Minibatch(np.arange(10.0) * 10, batch_size=3, random_seed=0)
    >>> rows, values = pm.draw([mb.index_of(xb), xb], random_seed=1)
    >>> bool((values == rows * 10).all())
    True
    >>> rows, values = pm.draw([mb.index_of(xb[None, :], axis=1), xb], random_seed=2)
    >>> bool((values == rows * 10).all())
    True
    """
    _, gathers = source_of(batch, passed=True)
    if not gathers and isinstance(batch, Variable):
        gathers = _expression_gathers(batch)
    if not gathers:
        raise TypeError(
            f"batch must be a minibatch (a batch of mb.Minibatch or an expression of one); "
            f"got {batch!r}"
        )
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer):
        raise TypeError(f"axis must be an int; got {axis!r}")
    found = {int(a): index for a, index in gathers}
    if int(axis) not in found:
        raise ValueError(
            f"axis {axis} of {describe_batch(batch)} is not subsampled; its subsampled axes "
            f"are {sorted(found)}"
        )
    return found[int(axis)]


def describe_batch(batch: Any) -> str:
    """A batch named by what the user wrote: its ``name=``, or its default name and its call
    site (``'minibatch_0' (the Minibatch call at model.py:12)``)."""
    name = repr(batch.name) if getattr(batch, "name", None) else str(batch)
    tag = getattr(batch, "tag", None)
    site = getattr(tag, "call_site", None)
    if site is None or getattr(tag, "user_named", False):  # name= is what the user wrote
        return name
    return f"{name} ({site.describe('Minibatch')})"


def _expression_gathers(expr: Any) -> list[tuple[int, Any]]:
    """``(axis in expr, index)`` for an expression that is row-wise in one call's batch, one
    pair per subsampled axis of that call (a two-axis batch chains one gather per axis).

    ValueError when it mixes the batches of several calls or is not row-wise in its batch.
    """
    graph = set(ancestors([expr]))
    nodes = {v.owner for v in graph if v.owner is not None}
    found = [n for n in nodes if isinstance(n.op, MinibatchGatherOp)]
    outer = [n for n in found if not any(o in m.inputs for m in found for o in n.outputs)]
    draws = {(n.op.axis, n.inputs[0]) for n in outer}
    if len(draws) > 1:
        used = sorted({describe_batch(b) for n in outer for b in n.outputs[1:] if b in graph})
        raise ValueError(
            f"{expr!r} combines batches drawn by {len(draws)} different indices (several "
            f"mb.Minibatch calls: {used}): it has no one index. Draw them in one call"
        )
    if not outer:
        return []
    batches = [out for n in outer for out in n.outputs[1:]]
    pairs, errors = [], []
    gather: Any = outer[0]
    while gather is not None:  # the outer gather's batches carry every axis of the chain
        try:
            states = propagate(dict.fromkeys(batches, gather.op.axis), [expr])
        except NotRowwiseError as err:
            errors.append(err.args[0])
        else:
            axis: Any = states.get(expr)
            if is_rows(axis):
                pairs.append((int(axis), gather.outputs[0]))
            else:
                errors.append("it has no batch axis")
        inner = {
            i.owner
            for i in gather.inputs[1:]
            if i.owner is not None and isinstance(i.owner.op, MinibatchGatherOp)
        }
        gather = inner.pop() if len(inner) == 1 else None
    if not pairs:
        raise ValueError(f"{expr!r} is not row-wise in its batch: {errors[0]}")
    return pairs


def epoch_of(batch: Any) -> int:
    """The number of whole passes over the data that ``batch``'s epoch index has finished.

    Only for batches of ``Minibatch(..., sampling="epoch")``; read it in a ``pm.fit`` callback
    (``callbacks=[lambda approx, losses, i: ...]``).  A fresh ``pm.fit`` starts a fresh epoch;
    ``refine`` continues.  With several subsampled axes this is the first axis's count.

    Parameters
    ----------
    batch : Minibatch
        A batch of a ``sampling="epoch"`` call.

    Returns
    -------
    int
        Passes finished so far.

    Raises
    ------
    ValueError
        ``batch`` is not drawn by an epoch index.

    Examples
    --------
    >>> import numpy as np, pytensor, minibatch as mb
    >>> xb = mb.Minibatch(np.arange(10.0), batch_size=5, sampling="epoch", random_seed=0)
    >>> draw = pytensor.function([], xb)
    >>> seen = [draw() for _ in range(4)]
    >>> mb.epoch_of(xb)
    2
    >>> sorted(np.concatenate(seen[2:]).astype(int).tolist()) == list(range(10))
    True
    """
    _, gathers = source_of(batch)
    for _, index in reversed(gathers):  # the gathers run from the last axis to the first
        states = [var for var in index.owner.inputs if is_epoch_state(var)]
        if states:
            return epochs_completed(np.asarray(states[0].get_value(borrow=True)))
    raise ValueError(
        f"batch must be drawn with sampling='epoch' (a batch of "
        f"mb.Minibatch(..., sampling='epoch')); got {batch!r}"
    )
