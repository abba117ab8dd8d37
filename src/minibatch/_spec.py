"""Batch specs: which axes are subsampled, by how many, and with which seed.

A spec is an int (the leading axis) or, as in the legacy API, a list with one entry per leading
axis: an int size, a ``(size, seed)`` pair, ``None`` (keep the axis whole) or one ``Ellipsis``
(keep every axis it stands for, so the entries after it address the trailing axes).
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

from minibatch._inputs import check_batch_size


class AxisBatch(NamedTuple):
    """One subsampled axis: ``size`` positions drawn with generator seed ``seed``."""

    axis: int
    size: int
    seed: Any


def is_spec_entry(entry: Any) -> bool:
    """Could ``entry`` be an item of a batch-size list (not of a dataset)?"""
    if entry is None or entry is Ellipsis:
        return True
    if isinstance(entry, tuple):
        return len(entry) == 2 and all(_is_int(e) for e in entry)
    return _is_int(entry)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def parse_spec(spec: Any, ndim: int, seed: Any) -> list[AxisBatch]:
    """Resolve ``spec`` against data of rank ``ndim``; ``seed`` is the default seed.

    >>> [(a.axis, a.size) for a in parse_spec([2, None, 20, Ellipsis, 10], ndim=5, seed=42)]
    [(0, 2), (2, 20), (4, 10)]
    >>> parse_spec([(10, 7)], ndim=2, seed=None)
    [AxisBatch(axis=0, size=10, seed=7)]
    """
    if not isinstance(spec, list | tuple):
        return [AxisBatch(0, check_batch_size(spec), seed)]
    entries = list(spec)
    if entries.count(Ellipsis) > 1:
        raise ValueError(f"batch_size {spec!r} has more than one Ellipsis; at most one is allowed")
    if Ellipsis in entries:
        cut = entries.index(Ellipsis)
        head, tail = entries[:cut], entries[cut + 1 :]
        if len(head) + len(tail) > ndim:
            raise ValueError(_too_long(spec, ndim))
        entries = head + [None] * (ndim - len(head) - len(tail)) + tail
    if len(entries) > ndim:
        raise ValueError(_too_long(spec, ndim))
    axes = []
    for axis, entry in enumerate(entries):
        if entry is None:
            continue
        if not is_spec_entry(entry):
            raise TypeError(
                f"batch_size entry {entry!r} (axis {axis}) must be an int, a (size, seed) pair, "
                "None or Ellipsis"
            )
        size, entry_seed = entry if isinstance(entry, tuple) else (entry, seed)
        axes.append(AxisBatch(axis, check_batch_size(size), entry_seed))
    if not axes:
        raise ValueError(f"batch_size {spec!r} subsamples no axis; give at least one size")
    return axes


def _too_long(spec: Any, ndim: int) -> str:
    return (
        f"batch_size {spec!r} addresses more axes than the data has ({ndim}); "
        "if it is meant as a dataset, pass it as an array"
    )
