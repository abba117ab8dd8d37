"""Apply one index to any number of datasets along one axis: the gather node.

:class:`MinibatchGatherOp` takes ``(index, *data)`` and returns ``(index, *batches)``, with
``batch_i = data_i[..., index, ...]`` along its ``axis``.  The order is PyMC's convention, made
to fit: ``pymc.data.MinibatchOp`` users map output *i* back to input *i* (``extract_obs_data``,
``remove_minibatched_nodes``), and VI passes input 0 — our index — to its Monte Carlo ``scan`` as
a non-sequence, so one index is drawn per optimisation step.  Several subsampled axes chain one
gather per axis.

The batches are :class:`~minibatch.Minibatch` variables.  Their subsampled axis has no static
length, so a batch can be replaced by data of any length (``clone_replace``,
``more_replacements=``, ``sample_node``); the batch size is still a constant of the graph (the
index has a static shape) and every backend sees it after shape inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytensor.tensor as pt
from pymc.data import MinibatchOp
from pytensor.graph.basic import Apply
from pytensor.tensor.variable import TensorVariable


class MinibatchGatherOp(MinibatchOp):
    """Marks a gather: inputs ``(index, *data)``, outputs ``(index, *batches)`` along ``axis``."""

    def __init__(self, *args: Any, axis: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.axis = axis

    def __str__(self) -> str:
        return "MinibatchGather"

    def make_node(self, *inputs: Any) -> Apply:
        from minibatch._variable import Minibatch

        node = super().make_node(*inputs)
        for out in node.outputs[1:]:
            out.__class__ = Minibatch
        return node


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
    index_in = pt.lvector("index")
    data_in = [d.type() for d in data]
    position = (slice(None),) * axis + (index_in,)
    batches_in = [d[position] for d in data_in]
    op = MinibatchGatherOp([index_in, *data_in], [index_in.copy(), *batches_in], axis=axis)
    _, *batches = op(index, *data)
    return batches


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
