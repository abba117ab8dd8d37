"""Which rows a window of a streamed source holds: its size, its blocks, and a random plan.

A streamed ``Minibatch`` keeps ``W`` of the source's ``N`` rows in memory.  The rows of a window
are chosen so that **every row has the same chance, exactly W / N, to be in it**, whatever the
sizes of the source's chunks:

1. The rows are cut into blocks (the source's own chunks, so a read decodes whole chunks).
2. For each window the blocks are put in a fresh random order and laid end to end on a circle
   of ``N`` rows.
3. The window is the ``W`` consecutive rows of that circle from a uniformly random start.

For any fixed order, a uniform start covers a given position with probability ``W / N``; so
each source row is in the window with probability ``W / N``, and a batch drawn uniformly from
the window picks it with probability ``1 / N`` per slot.  The density scaled by ``N / batch``
stays an unbiased estimate of the full-data density.  A window costs the reading of about
``W / block + 2`` blocks (the first and the last may be partly used).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}

DEFAULT_WINDOW = "128MiB"

# Blocks per window when the source has no chunks of its own (a memmap, an in-memory array).
BLOCKS_PER_WINDOW = 32


def window_rows(window: Any, row_bytes: int, n_rows: int) -> int:
    """The number of rows of a window: ``window`` rows (an int) or bytes (a str with a unit).

    ``row_bytes`` is the stored size of one row of all the sources of one call together.  A
    window larger than the data holds all of it.

    >>> window_rows(1000, 8, 10**6), window_rows("1MiB", 400, 10**6), window_rows(5, 8, 3)
    (1000, 2621, 3)
    >>> window_rows("lots", 8, 100)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: window must be a number of rows (an int) or of bytes (a str such as ...); got 'lots'
    """
    expected = (
        "window must be a number of rows (an int) or of bytes (a str such as '64MiB' or '1.5GB')"
    )
    if isinstance(window, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", window)
        unit = match.group(2).lower() if match else ""
        if match is None or (unit or "b") not in _UNITS:
            raise ValueError(f"{expected}; got {window!r}")
        rows = int(float(match.group(1)) * _UNITS[unit or "b"]) // max(row_bytes, 1)
        if rows < 1:
            raise ValueError(f"window {window!r} is smaller than one row ({row_bytes} bytes)")
        return min(rows, n_rows)
    if isinstance(window, bool | np.bool_):
        raise TypeError(f"{expected}; got the bool {window!r}")
    try:
        rows = operator.index(window)
    except TypeError:
        raise TypeError(f"{expected}; got {window!r} ({type(window).__name__})") from None
    if rows < 1:
        raise ValueError(f"{expected}, at least 1; got {rows}")
    return min(rows, n_rows)


def block_bounds(chunkings: Sequence[Sequence[int] | None], n_rows: int, rows: int) -> np.ndarray:
    """Block boundaries ``[0, ..., n_rows]``: the coarsest native chunking among the sources, or
    blocks of ``rows / 32`` rows when none has chunks.

    >>> block_bounds([None, (4, 4, 2)], 10, 6).tolist()
    [0, 4, 8, 10]
    >>> block_bounds([None], 10, 64).tolist()
    [0, 2, 4, 6, 8, 10]
    """
    native = [tuple(c) for c in chunkings if c]
    if native:
        coarsest = max(native, key=lambda c: n_rows / len(c))
        return np.concatenate([[0], np.cumsum(coarsest)]).astype(np.int64)
    size = max(1, rows // BLOCKS_PER_WINDOW)
    return np.append(np.arange(0, n_rows, size, dtype=np.int64), n_rows)


def plan(bounds: np.ndarray, rows: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """The source row ranges of one window of ``rows`` rows (see the module notes).

    >>> bounds = np.array([0, 3, 7, 10])
    >>> ranges = plan(bounds, 4, np.random.default_rng(0))
    >>> sum(b - a for a, b in ranges)
    4
    >>> all(0 <= a < b <= 10 for a, b in ranges)
    True
    """
    n_rows = int(bounds[-1])
    if rows >= n_rows:
        return [(0, n_rows)]
    starts, lengths = bounds[:-1], np.diff(bounds)
    order = rng.permutation(len(lengths))
    ends = np.cumsum(lengths[order])  # end of each block on the circle
    position = int(rng.integers(n_rows))  # the window's first row on the circle
    k = int(np.searchsorted(ends, position, side="right"))
    offset = position - (int(ends[k]) - int(lengths[order[k]]))
    ranges, left = [], rows
    while left:
        block = order[k]
        take = min(int(lengths[block]) - offset, left)
        first = int(starts[block]) + offset
        ranges.append((first, first + take))
        left -= take
        k, offset = (k + 1) % len(order), 0
    return ranges
