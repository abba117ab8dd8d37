"""Turn user data and options into validated tensors, failing early with clear messages.

Every check happens when ``Minibatch`` is called, never at evaluation: the JAX backend drops
runtime assertions, so a check left for later would be no check at all there.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.pytensorf import rvs_in_graph
from pytensor.compile import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import explicit_graph_inputs
from pytensor.tensor.variable import TensorVariable

from minibatch._storage import aligned_copy, stored_copy


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


def as_data_tensor(
    value: Any,
    label: str,
    open_axes: Sequence[int] = (0,),
    dtype: str | None = None,
    in_memory_size: Any = None,
    broadcastable: Sequence[bool] | None = None,
    shapeless: bool = False,
) -> TensorVariable:
    """Convert one dataset to a tensor: floats become ``floatX``; ints and bools keep their dtype.

    Accepts numpy arrays, nested lists, pandas objects, pytensor constants and shared variables
    (``pm.Data`` among them) and expressions of those.  ``label`` names the argument in errors;
    ``dtype`` overrides the dtype; ``in_memory_size`` keeps only a leading part of array data;
    ``broadcastable`` marks axes of length 1 as broadcastable (True) or not (False).
    Array-like data is copied once into a shared variable, so no backend embeds it in compiled
    code as a constant (Numba cannot cache such code); calls on the same array share that copy
    (see ``_storage``).  Its subsampled ``open_axes`` have no
    static length (refills and replacements may change them); the other axes keep theirs, which
    makes each optimisation step about 3x cheaper on the C backend (the seeds' model), unless
    ``shapeless`` asks for the legacy class's shapeless type (any replacement allowed).  Axes
    marked broadcastable keep a static 1.
    """
    if isinstance(value, Variable):
        tensor = _checked_symbolic(value, label)
        _check_rank(tensor.ndim, label)
        target = dtype or (pytensor.config.floatX if tensor.dtype.startswith("float") else None)
        tensor = pt.cast(tensor, target) if target and target != tensor.dtype else tensor
        if broadcastable is not None:
            axes = _broadcastable_axes(broadcastable, current_shape(tensor), open_axes, label)
            tensor = pt.specify_broadcastable(tensor, *axes) if axes else tensor
        return tensor
    array = _numeric(value, label)
    _check_rank(array.ndim, label)
    array = stored_copy(value, keep_in_memory(array, in_memory_size), dtype or _dtype(array))
    if broadcastable is None:
        broadcastable = [n == 1 and axis not in open_axes for axis, n in enumerate(array.shape)]
    ones = _broadcastable_axes(broadcastable, array.shape, open_axes, label)
    shape = tuple(
        None if axis in open_axes or (n == 1 and axis not in ones) or (shapeless and n != 1) else n
        for axis, n in enumerate(array.shape)
    )
    return pytensor.shared(array, shape=shape, borrow=True)


def _check_rank(ndim: int, label: str) -> None:
    if ndim == 0:
        raise ValueError(
            f"{label} must be at least 1-D (rows along the first axis); got a 0-d value. "
            "Hint: Minibatch(data, batch_size=...) takes the datasets first."
        )


def _broadcastable_axes(
    broadcastable: Sequence[bool], shape: Sequence[int], open_axes: Sequence[int], label: str
) -> list[int]:
    """The axes marked broadcastable, checked: of length 1 and not subsampled."""
    if len(broadcastable) != len(shape):
        raise ValueError(
            f"broadcastable {tuple(broadcastable)} must have one entry per axis of {label} "
            f"(shape {tuple(shape)})"
        )
    axes = [axis for axis, flag in enumerate(broadcastable) if flag]
    for axis in axes:
        if shape[axis] != 1 or axis in open_axes:
            raise ValueError(
                f"broadcastable marks axis {axis} of {label} (shape {tuple(shape)}), but only "
                "axes of length 1 that are not subsampled can broadcast"
            )
    return axes


def _numeric(value: Any, label: str) -> np.ndarray:
    if np.ma.is_masked(value):  # np.asarray would silently keep the masked entries' fill data
        raise ValueError(
            f"{label} is a masked array with {int(np.ma.count_masked(value))} masked entries; a "
            "minibatch would draw their underlying values as data. Drop those rows, or fill "
            "them (value.filled(...)), before building the Minibatch."
        )
    array = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{label} must hold numbers; got an array of dtype {array.dtype}. "
            "Convert it to a numeric array first."
        )
    return array


def _dtype(array: np.ndarray) -> Any:
    return pytensor.config.floatX if array.dtype.kind == "f" else array.dtype


def keep_in_memory(array: np.ndarray, in_memory_size: Any) -> np.ndarray:
    """The part of ``array`` that the legacy ``in_memory_size`` keeps (int, or per-axis list).

    >>> keep_in_memory(np.zeros((5, 4, 3)), [2, Ellipsis, slice(1, 3)]).shape
    (2, 4, 2)
    """
    if in_memory_size is None:
        return array
    entries = in_memory_size if isinstance(in_memory_size, list | tuple) else [in_memory_size]
    index = tuple(
        e if e is Ellipsis or isinstance(e, slice) else slice(0, operator.index(e)) for e in entries
    )
    return array[index]


def conform(
    value: Any, shared: SharedVariable, open_axes: Iterable[int], in_memory_size: Any = None
) -> np.ndarray:
    """``value`` made fit to replace what ``shared`` holds, or a clear error (``shared`` kept).

    Only the subsampled ``open_axes`` may change length; the dtype kind must stay.
    """
    array = keep_in_memory(_numeric(value, "value"), in_memory_size)
    stored = shared.type
    current = shared.get_value(borrow=True).shape
    shape = [None if axis in set(open_axes) else n for axis, n in enumerate(current)]
    if not np.can_cast(array.dtype, stored.dtype, casting="same_kind"):
        raise TypeError(
            f"cannot store {array.dtype} data in a minibatch of dtype {stored.dtype}; "
            "the old data is kept"
        )
    fixed = [(axis, n) for axis, n in enumerate(shape) if n is not None]
    if array.ndim != stored.ndim or any(array.shape[axis] != n for axis, n in fixed):
        expected = tuple("any" if n is None else n for n in shape)
        raise ValueError(
            f"new data of shape {array.shape} does not fit this minibatch: expected shape "
            f"{expected} (only subsampled axes may change length); the old data is kept"
        )
    return aligned_copy(array, stored.dtype)


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


def current_value(tensor: TensorVariable) -> np.ndarray:
    """The values of stored data now."""
    if isinstance(tensor, Constant):
        return np.asarray(tensor.data)
    if isinstance(tensor, SharedVariable):
        return np.asarray(tensor.get_value(borrow=True))
    return np.asarray(tensor.eval())


def current_shape(tensor: TensorVariable) -> tuple[int, ...]:
    """The shape of stored data now (shared variables can change it later)."""
    if isinstance(tensor, Constant):
        return tuple(tensor.data.shape)
    if isinstance(tensor, SharedVariable):
        return tuple(tensor.get_value(borrow=True).shape)
    return tuple(int(s) for s in tensor.shape.eval())


def check_lengths(tensors: Sequence[TensorVariable], axes: Sequence[int] = (0,)) -> list[tuple]:
    """Return the current shapes; refuse empty data and lengths that differ on subsampled axes."""
    shapes = [current_shape(t) for t in tensors]
    for i, shape in enumerate(shapes):
        if 0 in shape:
            raise ValueError(f"data argument {i} is empty (shape {shape}); nothing to sample from")
        if len(shape) <= max(axes):
            raise ValueError(
                f"data argument {i} has {len(shape)} axes but batch_size subsamples axis "
                f"{max(axes)}"
            )
    for axis in axes:
        first = shapes[0][axis]
        for i, shape in enumerate(shapes[1:], start=1):
            if shape[axis] != first:
                rows = "rows" if axis == 0 else f"entries along axis {axis}"
                raise ValueError(
                    f"data argument {i} has {shape[axis]} {rows} but argument 0 has {first}; "
                    f"every dataset of one Minibatch must have the same length along each "
                    f"subsampled axis (shapes: {', '.join(map(str, shapes))})."
                )
    return shapes


# pytensor's JAX backend runs without 64-bit integers when floatX is float32 (it sets JAX's
# x64 flag from floatX), and an index into a longer axis would wrap around silently.
INT32_MAX = 2**31 - 1


def check_index_range(shapes: Sequence[tuple], axes: Sequence[int]) -> None:
    """Refuse subsampled axes longer than an int32 index reaches while floatX is float32.

    >>> check_index_range([(2**31, 3)], [0])  # floatX is float64 here: int64 indices
    """
    if pytensor.config.floatX != "float32":
        return
    for axis in axes:
        n = shapes[0][axis]
        if n > INT32_MAX:
            raise ValueError(
                f"data argument 0 has {n} entries along subsampled axis {axis}, more than an "
                "int32 index holds; with floatX=float32, pytensor's JAX backend runs without "
                "64-bit integers and would wrap the index around. Use floatX=float64 for data "
                "this long."
            )
