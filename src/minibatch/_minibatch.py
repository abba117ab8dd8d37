"""Building minibatches: the call rules, the legacy options, and ``align_minibatches``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from minibatch import _observed, _upstream
from minibatch._gather import gather
from minibatch._index import add_user, index_for
from minibatch._inputs import as_data_tensor, check_lengths
from minibatch._spec import is_spec_entry, parse_spec
from minibatch._variable import Minibatch, Storage, attach_storage

_UNSET: Any = object()


def build(
    *data: Any,
    batch_size: Any = _UNSET,
    dtype: str | None = None,
    broadcastable: Any = None,
    name: str | None = None,
    random_seed: Any = _UNSET,
    update_shared_f: Any = None,
    in_memory_size: Any = None,
) -> Minibatch | tuple[Minibatch, ...]:
    """Build the batches of ``Minibatch(*data, ...)``; the parameters are documented there."""
    given = len(data)
    data, batch_size = _split_positional_batch_size(data, batch_size)
    positional = len(data) < given
    if not data:
        raise TypeError("Minibatch needs at least one dataset: Minibatch(data, batch_size=...)")
    _upstream.install()
    _observed.install()
    seed = None if random_seed is _UNSET else random_seed
    spec = 128 if batch_size is _UNSET else batch_size
    ndim = _rank(data[0])
    axes = parse_spec(spec, ndim, seed)
    open_axes = [a.axis for a in axes]
    legacy = positional or isinstance(spec, list | tuple) or dtype is not None
    legacy |= any(v is not None for v in (broadcastable, update_shared_f, in_memory_size))
    tensors = [
        as_data_tensor(
            d, f"data argument {i}", open_axes, dtype, in_memory_size, broadcastable, legacy
        )
        for i, d in enumerate(data)
    ]
    shapes = check_lengths(tensors, open_axes)
    batches: list[Any] = tensors
    indices = [index_for(tensors[0], shapes[0][a.axis], a.size, a.seed, a.axis) for a in axes]
    for ax, index in zip(axes, indices, strict=True):
        batches = gather(index, batches, ax.axis)
    storage = Storage(update_shared_f, in_memory_size)
    for i, (batch, tensor) in enumerate(zip(batches, tensors, strict=True)):
        batch.name = _name(name, tensor, i, len(batches))
        attach_storage(batch, storage)
        for index in indices:
            add_user(index, batch)
    return batches[0] if len(batches) == 1 else tuple(batches)


def _split_positional_batch_size(data: tuple, batch_size: Any) -> tuple[tuple, Any]:
    if len(data) < 2 or not _looks_like_spec(data[1]):
        return data, batch_size
    if len(data) > 2:
        raise TypeError(
            f"argument 1 ({data[1]!r}) reads as a legacy batch size, but more datasets follow it; "
            "write Minibatch(x, y, ..., batch_size=...), or pass numbers meant as data as an array"
        )
    if batch_size is not _UNSET:
        raise TypeError(
            f"batch size given twice: positionally ({data[1]!r}) and as batch_size={batch_size!r}; "
            "pass numbers meant as a second dataset as an array"
        )
    return data[:1], data[1]


def _looks_like_spec(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return len(value) > 0 and all(is_spec_entry(v) for v in value)
    return is_spec_entry(value) and value is not None and value is not Ellipsis


def _rank(value: Any) -> int:
    ndim = getattr(value, "ndim", None)
    if ndim is None:
        ndim = np.ndim(value.to_numpy() if hasattr(value, "to_numpy") else value)
    return int(ndim)


def _name(name: str | None, tensor: Any, i: int, count: int) -> str:
    if name is not None:
        return name if count == 1 else f"{name}_{i}"
    return f"{tensor.name}_minibatch" if tensor.name else f"minibatch_{i}"


def align_minibatches(batches: Iterable[Any] | None = None) -> None:
    """Kept for legacy code; alignment now holds by construction, so this checks and returns.

    The legacy API aligned separately built Minibatch objects by resetting generators that had
    equal seeds, and ``pm.fit``'s reseeding undid it.  Now the datasets of one call share one
    index, and separate calls with the same int ``random_seed`` and batch size over data of the
    same length share one index too, whatever PyMC reseeds.  There is nothing left to reset;
    arguments that are not minibatches are still refused, as before.
    """
    for batch in batches or ():
        if not isinstance(batch, Minibatch):
            raise TypeError(f"{batch!r} is not a Minibatch")
