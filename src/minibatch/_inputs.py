"""Turn user data and options into validated tensors, failing early with clear messages.

Every check happens when ``Minibatch`` is called, never at evaluation: the JAX backend drops
runtime assertions, so a check left for later would be no check at all there.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.pytensorf import rvs_in_graph
from pytensor.compile import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import explicit_graph_inputs
from pytensor.tensor.variable import TensorVariable


def check_batch_size(batch_size: Any) -> int:
    """Return ``batch_size`` as a positive ``int``; numpy integers pass, bool and floats do not.

    >>> check_batch_size(np.int64(3))
    3
    >>> check_batch_size(True)
    Traceback (most recent call last):
    ...
    TypeError: batch_size must be a positive int; got True (bool)
    """
    if isinstance(batch_size, bool | np.bool_):
        raise TypeError(f"batch_size must be a positive int; got {batch_size!r} (bool)")
    try:
        size = operator.index(batch_size)
    except TypeError:
        raise TypeError(
            f"batch_size must be a positive int; got {batch_size!r} ({type(batch_size).__name__})"
        ) from None
    if size < 1:
        raise ValueError(f"batch_size must be a positive int; got {size}")
    return size


def as_data_tensor(value: Any, label: str) -> TensorVariable:
    """Convert one dataset to a tensor: floats become ``floatX``; ints and bools keep their dtype.

    Accepts numpy arrays, nested lists, pandas objects, pytensor constants and shared variables
    (``pm.Data`` among them) and expressions of those.  ``label`` names the argument in errors.
    Array-like data is copied once into a shared variable whose leading length is left open: no
    backend then embeds it in compiled code as a constant (Numba cannot cache such code; JAX
    folds it into the program), and its rows can later be replaced.
    """
    if isinstance(value, Variable):
        tensor = _checked_symbolic(value, label)
    else:
        if hasattr(value, "to_numpy"):  # pandas Series / DataFrame
            value = value.to_numpy()
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(
                f"{label} must hold numbers; got an array of dtype {array.dtype}. "
                "Convert it to a numeric array first."
            )
        dtype = pytensor.config.floatX if array.dtype.kind == "f" else array.dtype
        array = np.array(array, dtype=dtype, copy=True)
        shape = (None, *array.shape[1:]) if array.ndim else ()
        tensor = pytensor.shared(array, shape=shape, borrow=True)
    if tensor.dtype.startswith("float") and tensor.dtype != pytensor.config.floatX:
        tensor = pt.cast(tensor, pytensor.config.floatX)
    if tensor.ndim == 0:
        raise ValueError(
            f"{label} must be at least 1-D (rows along the first axis); got a 0-d value. "
            "Hint: batch_size is keyword-only, write Minibatch(data, batch_size=...)."
        )
    return tensor


def _checked_symbolic(value: Variable, label: str) -> TensorVariable:
    if not isinstance(value, TensorVariable):
        raise TypeError(f"{label} must be a tensor; got {value.type}")
    if rvs_in_graph(value):
        raise ValueError(
            f"{label} depends on random variables; a minibatch needs fixed data "
            "(an array, a pm.Data container or a shared variable)."
        )
    free = [
        v for v in explicit_graph_inputs([value]) if not isinstance(v, Constant | SharedVariable)
    ]
    if free:
        raise ValueError(
            f"{label} depends on symbolic inputs {free}; a minibatch needs stored data "
            "(an array, a pm.Data container or a shared variable)."
        )
    return value


def current_shape(tensor: TensorVariable) -> tuple[int, ...]:
    """The shape of stored data now (shared variables can change it later)."""
    if isinstance(tensor, Constant):
        return tuple(tensor.data.shape)
    if isinstance(tensor, SharedVariable):
        return tuple(tensor.get_value(borrow=True).shape)
    return tuple(int(s) for s in tensor.shape.eval())


def check_lengths(tensors: Sequence[TensorVariable]) -> int:
    """Return the common leading length; refuse empty data and mismatched lengths."""
    shapes = [current_shape(t) for t in tensors]
    for i, shape in enumerate(shapes):
        if 0 in shape:
            raise ValueError(f"data argument {i} is empty (shape {shape}); nothing to sample from")
    first = shapes[0][0]
    for i, shape in enumerate(shapes[1:], start=1):
        if shape[0] != first:
            raise ValueError(
                f"data argument {i} has {shape[0]} rows but argument 0 has {first}; every dataset "
                "of one Minibatch must have the same length along the first axis "
                f"(shapes: {', '.join(map(str, shapes))})."
            )
    return first
