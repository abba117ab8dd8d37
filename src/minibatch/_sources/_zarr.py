"""Zarr 3 arrays, whose missing chunks raise instead of reading as the fill value."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from minibatch._compat import ZARR_READ_MISSING_CHUNKS
from minibatch._sources._base import Source, _check_layout, _DetectedError, _regular

# zarr metadata documents, which sit next to the chunk files of an array's directory
_ZARR_METADATA = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})


class ZarrSource(Source):
    """Rows of a zarr 3 array, read by slicing; a stored chunk removed later raises."""

    kind = "zarr"

    def __init__(self, array: Any, label: str) -> None:
        self._array = array
        self._reader = array
        self._dir = _zarr_directory(array)
        self._where = str(self._dir) if self._dir is not None else str(array.store_path)
        _check_layout(label, self.what(), array.shape, array.dtype)  # a 0-d array has no grid
        try:
            chunk = int(array.chunks[0])
            storage = tuple(int(n) for n in (array.shards or array.chunks))
        except NotImplementedError as err:  # zarr's experimental rectilinear chunk grids
            raise TypeError(
                f"{label}: expected a zarr array with a regular chunk grid; got {self.what()} "
                f"({err})"
            ) from err
        super().__init__(label, array.shape, array.dtype, _regular(array.shape[0], chunk))
        # the blocks of rows that the store keeps as one object (a shard, or else a chunk)
        self._storage = storage
        self._watched: np.ndarray | None = None  # stored objects to check after each read
        stored = self._stored_at_open()
        if ZARR_READ_MISSING_CHUNKS and _all_stored(array, stored):
            self._reader = array.with_config({"read_missing_chunks": False})
        elif stored is not None:
            self._watched = stored

    def what(self) -> str:
        return f"zarr array at {self._where}"

    def _read_rows(self, a: int, b: int, dest: np.ndarray) -> None:
        dest[...] = self._reader[a:b]
        if self._watched is not None:
            self._check_still_stored(a, b)

    def _stored_at_open(self) -> np.ndarray | None:
        """Which stored objects (shard or chunk grid) exist now; None unless a local store."""
        if self._dir is None:
            return None
        names = set()
        for root, _, files in os.walk(self._dir):
            rel = os.path.relpath(root, self._dir)
            for name in files:
                if name not in _ZARR_METADATA:
                    names.add(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
        grid = tuple(-(-n // s) for n, s in zip(self.shape, self._storage, strict=True))
        encode = self._array.metadata.encode_chunk_key
        stored = np.zeros(grid, dtype=bool)
        for coords in np.ndindex(*grid):
            stored[coords] = encode(coords) in names
        return stored

    def _check_still_stored(self, a: int, b: int) -> None:
        # After the read: a chunk file that existed at open and is gone now was read as fill
        # values (or is about to be); either way the rows are not the data.
        assert self._watched is not None and self._dir is not None
        first = a // self._storage[0]
        block = self._watched[first : (b - 1) // self._storage[0] + 1]
        encode = self._array.metadata.encode_chunk_key
        for offset in np.argwhere(block):
            coords = (first + int(offset[0]), *(int(i) for i in offset[1:]))
            key = encode(coords)
            if not os.path.exists(os.path.join(self._dir, key)):
                raise _DetectedError(
                    f"chunk {key!r} existed when the source was opened and is gone from "
                    f"{self._dir} (zarr would have returned fill values for it)"
                )


def _zarr_directory(array: Any) -> Path | None:
    """The directory of an array in a local directory store; None for any other store."""
    from zarr.storage import LocalStore

    store = array.store
    if not isinstance(store, LocalStore):
        return None
    return Path(store.root) / array.path if array.path else Path(store.root)


def _all_stored(array: Any, stored: np.ndarray | None) -> bool:
    """Whether every chunk (or shard) of ``array`` was in its store at open."""
    if stored is not None:
        return bool(stored.all())
    try:  # lists the store; a store that cannot list gets no check
        return bool(array.nchunks_initialized == array.nchunks)
    except Exception:
        return False
