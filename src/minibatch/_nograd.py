"""Gradients through the minibatch Ops: none, by design."""

from __future__ import annotations

from typing import Any

from pytensor.gradient import disconnected_type


class NoGradient:
    """Mixin for the minibatch Ops: data and index are never parameters, so no gradient flows
    back through a batch.  Without it, pytensor differentiates the inner graph and fails on the
    integer outputs (the index, integer data) inside SVGD's particle scan."""

    def connection_pattern(self, node: Any) -> list[list[bool]]:
        return [[False] * len(node.outputs) for _ in node.inputs]

    def L_op(self, inputs: Any, outputs: Any, output_grads: Any) -> list[Any]:  # noqa: N802
        return [disconnected_type() for _ in inputs]
