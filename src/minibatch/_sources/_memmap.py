"""Memory-mapped arrays, read from their files so that the resident set stays bounded."""

from __future__ import annotations

import mmap
from typing import Any

import numpy as np

from minibatch._sources._base import ArraySource, _DetectedError


class MemmapSource(ArraySource):
    """Rows of a memory-mapped array, read from its file with plain reads.

    Reading through the mapping would map every page read into this process: its resident
    set would grow to the size of the file over a fit (page-cache pages, but counted as the
    process's memory).  When the rows lie contiguously in the file (a C-ordered memmap or a
    row slice of one) they are read with ``readinto`` instead, which leaves the resident set
    at the size of the buffers; other layouts are read through the mapping.
    """

    kind = "memmap"

    def __init__(self, data: np.ndarray, label: str) -> None:
        super().__init__(data, label)
        self._file = _row_layout(data)

    def what(self) -> str:
        name = _memmap_filename(self._data)
        return "memory-mapped array" + ("" if name is None else f" of {name}")

    def _read(self, spans: list[tuple[int, int]], out: np.ndarray) -> None:
        if self._file is None:
            super()._read(spans, out)
            return
        name, first, row_bytes = self._file
        with open(name, "rb", buffering=0) as f:
            pos = 0
            for a, b in spans:
                dest = out[pos : pos + b - a]
                direct = dest.dtype == self.dtype and dest.flags.c_contiguous
                target = dest if direct else np.empty((b - a, *self.shape[1:]), self.dtype)
                f.seek(first + a * row_bytes)
                got = f.readinto(memoryview(target.reshape(-1)).cast("B"))  # type: ignore[arg-type]
                if got != (b - a) * row_bytes:
                    raise _DetectedError(
                        f"{name} ended after {got} of {(b - a) * row_bytes} bytes: the file is "
                        "shorter than the array it was mapped as"
                    )
                if not direct:
                    dest[...] = target
                pos += b - a


def _is_memory_mapped(array: np.ndarray) -> bool:
    base: Any = array
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):  # np.frombuffer(mapping) keeps a memoryview of it
        base = base.obj
    return isinstance(base, mmap.mmap)


def _memmap_filename(array: np.ndarray) -> str | None:
    base: Any = array
    while isinstance(base, np.ndarray):
        name = getattr(base, "filename", None)
        if name:
            return str(name)
        base = base.base
    return None


def _row_layout(array: np.ndarray) -> tuple[str, int, int] | None:
    """``(file name, byte offset of row 0, bytes per row)`` of a memmap whose rows lie
    contiguously in its file, or None."""
    mapped: Any = array
    while isinstance(mapped, np.ndarray) and not isinstance(mapped, np.memmap):
        mapped = mapped.base
    name = getattr(mapped, "filename", None)
    handle = getattr(mapped, "_mmap", None)
    if not name or handle is None or not array.flags.c_contiguous or array.dtype.hasobject:
        return None
    # np.memmap maps the file from its offset rounded down to the allocation granularity;
    # slices keep the parent's ``offset``, so the pointers tell where this array starts.
    offset = int(mapped.offset)
    mapped_from = offset - offset % mmap.ALLOCATIONGRANULARITY
    try:
        start = np.frombuffer(handle, dtype=np.uint8).ctypes.data
    except (TypeError, ValueError):  # a closed mapping
        return None
    row_bytes = int(np.prod(array.shape[1:], dtype=np.int64)) * array.dtype.itemsize
    return str(name), mapped_from + array.ctypes.data - start, row_bytes
