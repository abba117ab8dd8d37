"""The base of the minibatch Ops (index, gather, derived batch): PyMC's contract, no gradient.

Every Op of this package that carries batch data subclasses :class:`BatchOp`, a
``pymc.data.MinibatchOp``: PyMC accepts observed data that depends on a random variable only
through such an Op, and its VI hands input 0 of each one to the Monte Carlo ``scan`` as a
non-sequence.  :func:`is_ours` tells our nodes from PyMC's own ``pm.Minibatch`` nodes, which
the ``_upstream`` workarounds and the model hooks treat differently.
"""

from __future__ import annotations

from typing import Any

from pymc.data import MinibatchOp
from pytensor.gradient import disconnected_type


class BatchOp(MinibatchOp):
    """A ``MinibatchOp`` through which no gradient flows.

    Data and index are never parameters.  Without a disconnected ``connection_pattern``,
    pytensor differentiates the inner graph and fails on the integer outputs (the index,
    integer data) inside SVGD's particle scan.  ``L_op`` (pytensor 2.38) and ``pullback``
    (pytensor 3, where ``OpFromGraph`` defines it) say the same for a caller that asks anyway.
    """

    def connection_pattern(self, node: Any) -> list[list[bool]]:
        return [[False] * len(node.outputs) for _ in node.inputs]

    def L_op(self, inputs: Any, outputs: Any, output_grads: Any) -> list[Any]:  # noqa: N802
        return [disconnected_type() for _ in inputs]

    def pullback(self, inputs: Any, outputs: Any, output_grads: Any) -> list[Any]:
        return [disconnected_type() for _ in inputs]


def is_ours(node: Any) -> bool:
    """Whether ``node`` applies one of the minibatch Ops (index, gather, derived batch)."""
    return node is not None and isinstance(node.op, BatchOp)
