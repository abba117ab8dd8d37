"""Apply one index to any number of datasets: the gather, and the variables it returns.

:class:`MinibatchGatherOp` takes ``(index, *data)`` and returns ``(index, *batches)``, with
``batch_i = data_i[index]`` along the leading axis.  The order is PyMC's convention, made to fit:
``pymc.data.MinibatchOp`` users map output *i* back to input *i* (``extract_obs_data``,
``remove_minibatched_nodes``), and VI passes input 0 — our index — to its Monte Carlo ``scan`` as
a non-sequence, so one index is drawn per optimisation step.

The batches are :class:`MinibatchVariable` instances.  Their leading axis has no static length,
so a batch can be replaced by data of any length (``clone_replace``, ``more_replacements=``,
``sample_node``); the batch size is still a constant of the graph (the index has a static shape)
and every backend sees it after shape inference.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytensor.tensor as pt
from pymc.data import MinibatchOp
from pytensor.graph.basic import Apply
from pytensor.tensor.variable import TensorVariable


class MinibatchVariable(TensorVariable):
    """A batch of a dataset drawn by a shared minibatch index.

    It behaves like any ``TensorVariable``.  One thing differs: casting it (``astype``) casts the
    stored data and gathers with the same index, so the result is still a minibatch that PyMC
    accepts as observed data — PyMC casts integer observations to ``int32`` on its own.
    """

    def astype(self, dtype):  # type: ignore[no-untyped-def]
        node = self.owner
        if str(dtype) == self.dtype or node is None or not isinstance(node.op, MinibatchGatherOp):
            return super().astype(dtype)
        index, *data = node.inputs
        source = data[node.outputs.index(self) - 1]
        (cast,) = gather(index, [pt.cast(source, dtype)])
        cast.name = self.name
        return cast


class MinibatchGatherOp(MinibatchOp):
    """Marks the gather of a minibatch (inputs ``index, *data``; outputs ``index, *batches``)."""

    def __str__(self) -> str:
        return "MinibatchGather"

    def make_node(self, *inputs) -> Apply:  # type: ignore[no-untyped-def]
        node = super().make_node(*inputs)
        for out in node.outputs[1:]:
            out.__class__ = MinibatchVariable
        return node


def gather(index: TensorVariable, data: Sequence[TensorVariable]) -> list[MinibatchVariable]:
    """Index every tensor in ``data`` with ``index`` along its leading axis, in one node.

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
    batches_in = [d[index_in] for d in data_in]
    op = MinibatchGatherOp([index_in, *data_in], [index_in.copy(), *batches_in])
    _, *batches = op(index, *data)
    return batches
