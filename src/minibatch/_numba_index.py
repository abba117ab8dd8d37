"""Numba: the index drawn in one vectorised ``Generator.integers`` call.

pytensor's Numba backend wraps every ``RandomVariable`` in ``RandomVariableWithCoreShape`` and
draws it element by element (one scalar ``rng.integers`` per position).  :class:`IndexDraw` is
the same draw as an ordinary Op, which that wrapper leaves alone; its Numba implementation
(:func:`register_numba_draw`) draws the whole index at once.  The rewrite that puts it in place
of our ``IndexRV`` runs on the Numba backend only (see ``minibatch._index``).

Numba ports numpy's bounded-integer algorithms, so both draw the same numbers from the same
generator state, and leave the generator in the same state.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.tensor.basic import as_tensor_variable, get_vector_length, infer_static_shape
from pytensor.tensor.random.type import RandomGeneratorType
from pytensor.tensor.random.utils import custom_rng_deepcopy
from pytensor.tensor.type import TensorType

# Integer dtypes that convert to int64 without loss: the bounds the Numba kernel accepts.
BOUND_DTYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"})


class IndexDraw(Op):
    """``rng.integers(low, high, size)``: inputs ``(rng, size, low, high)``, outputs ``(rng, idx)``.

    ``low`` and ``high`` hold one integer each, ``size`` has ``ndim`` entries and the index is
    int64.  With ``inplace`` the generator is advanced in place (``destroy_map={0: [0]}``), as
    an inplace ``RandomVariable`` does; otherwise a copy is advanced and returned.

    Parameters
    ----------
    ndim : int
        The length of ``size``, the rank of the index.
    inplace : bool
        Whether the draw advances its input generator.
    """

    __props__ = ("ndim", "inplace")

    def __init__(self, ndim: int = 1, inplace: bool = False) -> None:
        self.ndim = ndim
        self.inplace = inplace
        if inplace:
            self.destroy_map = {0: [0]}

    def __str__(self) -> str:
        return f"IndexDraw{{inplace={self.inplace}}}"

    def make_node(self, *inputs: Any) -> Apply:
        register_numba_draw()
        rng, size, low, high = inputs
        if not isinstance(rng.type, RandomGeneratorType):
            raise TypeError(f"IndexDraw needs a numpy Generator, not {rng.type}")
        size = as_tensor_variable(size, dtype="int64")
        low, high = as_tensor_variable(low), as_tensor_variable(high)
        if get_vector_length(size) != self.ndim:
            raise ValueError(f"size must have {self.ndim} entries")
        for bound in (low, high):
            if bound.type.dtype not in BOUND_DTYPES or any(s != 1 for s in bound.type.shape):
                raise TypeError(f"low and high must be single integers, not {bound.type}")
        _, static_shape = infer_static_shape(size)
        index = TensorType("int64", shape=static_shape)()
        return Apply(self, [rng, size, low, high], [rng.type(), index])

    def perform(self, node: Apply, inputs: Sequence[Any], outputs: list[list[Any]]) -> None:
        rng, size, low, high = inputs
        outputs[0][0], outputs[1][0] = draw_positions(rng, size, low, high, self.inplace)

    def infer_shape(self, *args: Any) -> list[Any]:
        # (fgraph, node, shapes) on pytensor 2.38, (node, shapes) on pytensor 3
        size: Any = args[-2].inputs[1]
        return [None, [size[i] for i in range(self.ndim)]]


def draw_positions(
    rng: np.random.Generator, size: np.ndarray, low: np.ndarray, high: np.ndarray, inplace: bool
) -> tuple[np.random.Generator, np.ndarray]:
    """``(generator, rng.integers(low, high, size))``, advancing a copy unless ``inplace``.

    Python ints for the bounds and the size take numpy's scalar path, which draws exactly the
    numbers of its broadcasting path in half the time.
    """
    if not inplace:
        rng = custom_rng_deepcopy(rng)
    return rng, rng.integers(low.item(), high.item(), size=size.tolist(), dtype=np.int64)


@functools.cache
def register_numba_draw() -> None:
    """Register the Numba implementation of :class:`IndexDraw`: one vector draw.

    Numba boxes the generator's state, draws ``prod(size)`` integers in one
    ``Generator.integers`` call and returns the generator (a copy, unless ``inplace``).
    """
    if importlib.util.find_spec("numba") is None:
        return
    from numba.np.unsafe.ndarray import to_fixed_tuple
    from pytensor.link.numba.dispatch import basic as numba_basic
    from pytensor.link.numba.dispatch.compile_ops import numba_deepcopy  # loads its overloads

    @numba_basic.register_funcify_default_op_cache_key(IndexDraw)
    def numba_index_draw(op: IndexDraw, node: Apply, **kwargs: Any) -> Any:
        ndim, inplace = op.ndim, op.inplace

        @numba_basic.numba_njit
        def index_draw(rng: Any, size: Any, low: Any, high: Any) -> Any:
            if not inplace:
                rng = numba_deepcopy(rng)
            lo = np.int64(low.ravel()[0])
            hi = np.int64(high.ravel()[0])
            shape = to_fixed_tuple(size, ndim)
            return rng, rng.integers(lo, hi, size=shape, dtype=np.int64)

        return index_draw, 1
