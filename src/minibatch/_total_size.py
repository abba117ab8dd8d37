"""``total_size``: its accepted forms, the value a minibatch implies, and the agreement check.

A ``total_size`` is normalised to one entry per axis of the observed data: an int (the full
length of that axis, scaled by ``total / batch``), a symbolic int scalar, or ``None`` (axis not
scaled).  The accepted forms are PyMC's, checked with messages instead of bare assertions:

* an int (numpy ints too; not bool), for the leading axis;
* a sequence of ints / ``None`` with at most one ``Ellipsis``, no longer than the data's rank; a
  sequence shorter than the rank without ``Ellipsis`` covers the leading axes (legacy API);
* a symbolic integer scalar, or a symbolic integer vector of static length (``pm.Data.shape``);
* :class:`AsGiven` (``mb.as_given``) around any of these: used exactly as written, neither
  inferred nor checked.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pytensor.graph.basic import Variable
from pytensor.tensor.type import integer_dtypes
from pytensor.tensor.variable import TensorVariable

from minibatch._gather import describe_batch, source_of
from minibatch._inputs import current_shape
from minibatch._stream import stream_of


class TotalSizeWarning(UserWarning):
    """A minibatch observation whose density minibatch could not scale for you.

    Data computed from a batch (``xb * 2``) is accepted as observed data, but its length is
    not known to be the stored data's: without ``total_size`` it warns, and so does
    ``pm.fit(more_replacements={data: batch})`` on an observed variable without ``total_size``.
    Give ``total_size``, or ``total_size=mb.as_given(None)`` to leave the density unscaled.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> xb = mb.Minibatch(np.arange(100.0), batch_size=10)
    >>> with pm.Model(), warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     obs = pm.Normal("y", 0, 1, observed=xb * 2)
    >>> any(issubclass(w.category, mb.TotalSizeWarning) for w in caught)
    True
    >>> with pm.Model(), warnings.catch_warnings():
    ...     warnings.simplefilter("error", mb.TotalSizeWarning)
    ...     obs = pm.Normal("y", 0, 1, observed=xb * 2, total_size=100)  # no warning
    """


@dataclass(frozen=True)
class AsGiven:
    """A ``total_size`` to use exactly as written (see :func:`as_given`)."""

    total_size: Any


def normalise(total_size: Any, ndim: int, name: str) -> list[Any]:
    """``total_size`` as one entry per axis (int, symbolic int scalar or None), or an error."""
    where = f"total_size of observed variable {name!r} (data of rank {ndim})"
    if isinstance(total_size, Variable):
        return normalise(_symbolic_entries(total_size, where), ndim, name)
    if isinstance(total_size, np.ndarray) and total_size.ndim == 1:
        total_size = total_size.tolist()
    if not isinstance(total_size, list | tuple):
        return normalise([_entry(total_size, where)], ndim, name)
    entries = list(total_size)
    if not entries:
        raise ValueError(f"{where} is empty; omit total_size, or give one entry per axis")
    if entries.count(Ellipsis) > 1:
        raise ValueError(f"{where} has {entries.count(Ellipsis)} Ellipsis entries; at most one")
    named = [e for e in entries if e is not Ellipsis]
    if len(named) > ndim:
        raise ValueError(
            f"{where} has {len(named)} entries ({total_size!r}), more than the {ndim} axes of the "
            "data; give at most one entry per axis"
        )
    named = [_entry(e, where) for e in named]
    cut = entries.index(Ellipsis) if Ellipsis in entries else len(named)
    return named[:cut] + [None] * (ndim - len(named)) + named[cut:]


def _entry(value: Any, where: str) -> Any:
    if value is None:
        return None
    if isinstance(value, TensorVariable):
        if value.ndim != 0 or value.dtype not in integer_dtypes:
            raise TypeError(
                f"{where}: a symbolic entry must be an integer scalar, got {value.type}"
            )
        return value
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{where}: got the bool {value!r}; expected a positive int or None")
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(
            f"{where}: expected a positive int, None, Ellipsis or a sequence of them; got "
            f"{value!r} of type {type(value).__name__}"
        ) from None
    if size <= 0:
        raise ValueError(f"{where}: sizes must be positive; got {size}")
    return size


def _symbolic_entries(value: Any, where: str) -> Any:
    if value.ndim == 0:
        return [value]
    length = value.type.shape[0] if value.ndim == 1 else None
    if length is None or value.dtype not in integer_dtypes:
        raise TypeError(
            f"{where}: a symbolic total_size must be an integer scalar or an integer vector of "
            f"static length (such as pm.Data(...).shape); got {value.type}"
        )
    return [value[i] for i in range(length)]


def implied(batch: Any) -> list[Any]:
    """The ``total_size`` a minibatch implies: its stored data's length on subsampled axes.

    The entries are symbolic (the stored data's shape), so a refill of another length with
    ``set_value`` rescales the density from the next evaluation on.
    """
    source, gathers = source_of(batch)
    rows = streamed_rows(source)
    sizes: list[Any] = [None] * batch.ndim
    for axis, _ in gathers:
        sizes[axis] = rows if axis == 0 and rows is not None else source.shape[axis]
    return sizes


def streamed_rows(source: Any) -> int | None:
    """The full number of rows of a streamed source whose window ``source`` holds, else None.

    A streamed minibatch is scaled by its source's length, never by its window's.
    """
    stream = stream_of(source)
    return None if stream is None else stream.n_rows


def is_window(batch: Any) -> bool:
    """Whether ``batch``'s stored rows are a window of a larger data set: the legacy
    ``in_memory_size`` keeps part of the data, ``update_shared_f`` refills it with new parts."""
    storage = getattr(batch.tag, "minibatch_storage", None)
    return storage is not None and (
        storage.update_shared_f is not None or storage.in_memory_size is not None
    )


def check_agreement(batch: Any, sizes: list[Any], name: str) -> None:
    """Refuse a ``total_size`` that would scale ``batch`` by anything but full / batch length.

    For a window (:func:`is_window`) a size larger than the stored length of a subsampled axis
    is the population the window is drawn from, and is accepted.
    """
    source, gathers = source_of(batch)
    stored = current_shape(source)
    rows = streamed_rows(source)
    if rows is not None:  # a streamed source: its own length, not its window's
        stored = (rows, *stored[1:])
    subsampled = {axis for axis, _ in gathers}
    window = is_window(batch)
    for axis, size in enumerate(sizes):
        if isinstance(size, Variable):
            continue
        if axis in subsampled and window and size is not None and size > stored[axis]:
            continue  # the population of a window
        if axis in subsampled and size != stored[axis]:
            found = "no entry (None)" if size is None else size
            raise ValueError(
                f"total_size of observed variable {name!r} gives {found} for axis {axis}, but "
                f"the minibatch {describe_batch(batch)} draws that axis from {stored[axis]} "
                + (
                    f"rows of its source (streamed through a window of "
                    f"{current_shape(source)[0]} rows; total_size is the source's length). "
                    if rows is not None and axis == 0
                    else "stored entries. "
                )
                + "Omit total_size to scale by the stored length, or wrap the value in "
                "mb.as_given(...) if the difference is meant"
                + (
                    " (a window's population must be at least the window)."
                    if window
                    else "; for a window of a larger data set, build the Minibatch with "
                    "in_memory_size or update_shared_f."
                )
            )
        if axis not in subsampled and size is not None and size != stored[axis]:
            raise ValueError(
                f"total_size of observed variable {name!r} gives {size} for axis {axis}, which "
                f"the minibatch {describe_batch(batch)} does not subsample "
                f"(all {stored[axis]} entries "
                "are in every batch): the density would be scaled by "
                f"{size}/{stored[axis]}. Use None for that axis, omit total_size, or wrap the "
                "value in mb.as_given(...) if the scaling is meant."
            )
