"""The random index: one draw of batch positions, shared by every dataset that uses it.

The index is PyMC's own ``MinibatchIndexRV``, an ordinary pytensor ``RandomVariable`` (integers
in ``[0, n)``, drawn with replacement) that PyMC's logp machinery already allows in a logp graph,
wrapped in :class:`MinibatchIndexOp`.  The wrapper exists for two PyMC contracts:

* PyMC accepts observed data that depends on a random variable only through a
  ``pymc.data.MinibatchOp``; our Op subclasses it, so minibatches are valid ``observed=``.
* PyMC's VI hands ``node.inputs[0]`` of every ``MinibatchOp`` to its Monte Carlo ``scan`` as a
  non-sequence.  Our input 0 is the data the index ranges over, a harmless non-sequence, and the
  gather puts the index itself at input 0 (see ``_gather``), so the index is drawn once per
  step, outside the scan, and every Monte Carlo sample sees the same batch.

The length ``n`` is computed inside the Op from that data.  Were it an outer input, PyMC's logp
rewrites (which rewrite the likelihood's parameters but not the observed value) could turn
``x.shape[0]`` into ``12`` in one branch only, leaving two index draws on one RNG.

The outputs are ``(data, rng_update, index)``.  PyMC's ``remove_minibatched_nodes`` maps output
*i* to input *i*; with this order it maps ``data -> data`` and ``rng_update -> rng`` and leaves
the index alone, which is exactly right.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.data import MinibatchIndexRV
from pytensor.compile import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.rewriting.basic import copy_stack_trace, dfs_rewriter, node_rewriter
from pytensor.tensor.basic import get_vector_length
from pytensor.tensor.random.type import RandomGeneratorType
from pytensor.tensor.type_other import NoneTypeT
from pytensor.tensor.variable import TensorVariable

from minibatch._compat import set_default_update
from minibatch._inputs import current_shape
from minibatch._numba_index import IndexDraw, draw_positions
from minibatch._ops import BatchOp
from minibatch._schemes import EpochDraw, SubsetDraw, new_epoch_state


class IndexRV(MinibatchIndexRV):
    """PyMC's ``MinibatchIndexRV`` (so PyMC allows it in logp graphs) with a leaner ``perform``.

    With one ``low`` and one ``high`` it calls ``Generator.integers`` with Python ints, which
    draws exactly the numbers numpy's broadcasting path draws, in half the time; the C backend
    runs this ``perform``.  On Numba a rewrite puts :class:`~minibatch._numba_index.IndexDraw`
    in its place (:func:`register_numba_rewrite`); JAX compiles the parent's implementation.
    """

    def make_node(self, *args: Any, **kwargs: Any) -> Apply:
        register_numba_rewrite()
        return super().make_node(*args, **kwargs)

    def perform(self, node: Apply, inputs: list[Any], outputs: list[list[Any]]) -> None:
        rng, size, low, high = inputs
        if size is None or low.size != 1 or high.size != 1:
            super().perform(node, inputs, outputs)
            return
        outputs[0][0], outputs[1][0] = draw_positions(rng, size, low, high, self.inplace)


index_rv = IndexRV()


@node_rewriter([IndexRV])
def numba_index_draw(fgraph: Any, node: Apply) -> list[Any] | None:
    """Our ``IndexRV`` as an :class:`~minibatch._numba_index.IndexDraw`, the same draw.

    Only when ``low`` and ``high`` hold one integer each, ``size`` has a known length and the
    index is int64; other draws stay ``RandomVariable`` nodes.
    """
    op = node.op  # an IndexRV: the rewriter tracks only those
    rng, size, low, high = node.inputs
    if isinstance(size.type, NoneTypeT) or node.outputs[1].type.dtype != "int64":
        return None
    try:  # IndexDraw.make_node refuses what it cannot draw
        draw = IndexDraw(ndim=get_vector_length(size), inplace=op.inplace)
        outputs = draw.make_node(rng, size, low, high).outputs
    except (TypeError, ValueError):
        return None
    copy_stack_trace(node.outputs, outputs)
    return list(outputs)


# After ``random_make_inplace`` (50.9), which makes our draw inplace, and before pytensor wraps
# every RandomVariable for Numba (``introduce_explicit_core_shape_rv``, 100).
NUMBA_REWRITE_POSITION = 51.0


@functools.cache
def register_numba_rewrite() -> None:
    """Register :func:`numba_index_draw` in pytensor's ``optdb``, for the Numba backend only.

    The rewrite is tagged ``"numba"`` alone, so the C and JAX backends never run it; exclude
    it by name (``get_mode("NUMBA").excluding("minibatch_numba_index_draw")``) to compile
    pytensor's own draw instead.
    """
    optdb.register(
        "minibatch_numba_index_draw",
        dfs_rewriter(numba_index_draw),
        "numba",
        position=NUMBA_REWRITE_POSITION,
    )


class MinibatchIndexOp(BatchOp):
    """Marks an index draw: inputs ``(data, rng[, state])``, outputs ``(data, rng_update[,
    state_update], index)`` (an epoch index has a state)."""

    def __str__(self) -> str:
        return "MinibatchIndex"


def draw_index(
    data: TensorVariable,
    batch_size: int,
    rng: pytensor.compile.SharedVariable,
    axis: int = 0,
    sampling: str = "with_replacement",
) -> TensorVariable:
    """Build the symbolic index of ``batch_size`` positions along ``axis`` of ``data``.

    ``sampling`` is the scheme (``minibatch._schemes``): PyMC's draw with replacement, distinct
    positions, or epochs.  ``rng`` (and an epoch index's state) gets a ``default_update``, so
    even a plain ``pytensor.function`` draws a new index on every call; PyMC's compile
    functions find the same update through the Op.

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt
    >>> rng = pytensor.shared(np.random.default_rng(0))
    >>> idx = draw_index(pt.as_tensor(np.zeros((10, 2))), 4, rng)
    >>> idx.type.shape
    (4,)
    >>> f = pytensor.function([], idx)
    >>> bool(((f() >= 0) & (f() < 10)).all())
    True
    """
    data_in = data.type()
    rng_in = RandomGeneratorType()("rng")
    n = data_in.shape[axis]
    inputs: list[Any] = [data_in, rng_in]
    outer: list[Any] = [data, rng]
    if sampling == "with_replacement":
        # make_node, not a call: pytensor 3 deprecates calling a RandomVariable without
        # return_next_rng, an argument pytensor 2.38 does not have
        size = pt.as_tensor([batch_size], dtype="int64")
        updates = list(index_rv.make_node(rng_in, size, 0, n).outputs)
    elif sampling == "without_replacement":
        updates = list(SubsetDraw(batch_size).make_node(rng_in, n).outputs)
    else:
        state = new_epoch_state(current_shape(data)[axis])
        state_in = state.type()
        inputs.append(state_in)
        outer.append(state)
        updates = list(EpochDraw(batch_size).make_node(rng_in, state_in, n).outputs)
    *next_states, index = updates
    op = MinibatchIndexOp(inputs, [data_in.copy(), *next_states, index])
    _, *new_states, index_out = op(*outer)
    for shared, update in zip(outer[1:], new_states, strict=True):
        set_default_update(shared, update)
    index_out.name = "minibatch_index"
    return index_out


def new_rng(random_seed: Any) -> pytensor.compile.SharedVariable:
    """A shared numpy Generator for one index (PyMC reseeds it from ``random_seed``)."""
    return pytensor.shared(np.random.default_rng(random_seed), name="minibatch_rng")


# Indices built with an explicit int seed, by (axis, length, batch size, seed, scheme): the
# legacy API aligned separate Minibatch objects by giving them equal seeds; here they share one
# index variable, so they stay aligned whatever seeds PyMC assigns later.
_SEEDED: weakref.WeakValueDictionary[tuple[int, int, int, int, str], TensorVariable] = (
    weakref.WeakValueDictionary()
)


# The batches drawn by each index, so that refilling one of them can check the others.
_USERS: weakref.WeakKeyDictionary[TensorVariable, weakref.WeakSet[Any]] = (
    weakref.WeakKeyDictionary()
)


def add_user(index: TensorVariable, batch: Any) -> None:
    """Record that ``batch`` is drawn by ``index``."""
    _USERS.setdefault(index, weakref.WeakSet()).add(batch)


def users(index: TensorVariable) -> list[Any]:
    """The live batches drawn by ``index``."""
    return list(_USERS.get(index, ()))


def index_for(
    data: TensorVariable,
    length: int,
    batch_size: int,
    seed: Any,
    axis: int = 0,
    sampling: str = "with_replacement",
) -> TensorVariable:
    """The index for ``batch_size`` of ``length`` positions along ``axis`` of ``data``.

    With an int ``seed`` the index is shared by every call with the same axis, length, size and
    seed; its generator starts from ``(seed, axis)``, so the axes of one call draw independently.

    >>> import numpy as np, pytensor.tensor as pt
    >>> a = index_for(pt.as_tensor(np.zeros(9)), 9, 3, seed=42)
    >>> a is index_for(pt.as_tensor(np.ones(9)), 9, 3, seed=42)
    True
    >>> a is index_for(pt.as_tensor(np.ones(9)), 9, 3, seed=None)
    False
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool):
        return draw_index(data, batch_size, new_rng(seed), axis, sampling)
    key = (axis, length, batch_size, int(seed), sampling)
    index = _SEEDED.get(key)
    if index is None:
        index = draw_index(data, batch_size, new_rng([int(seed), axis]), axis, sampling)
        _SEEDED[key] = index
    return index
