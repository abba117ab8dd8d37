"""Reading rows of data that may not fit in memory: one :class:`Source` per argument.

A source answers one question, for a background thread that fills in-memory windows: "write
rows ``[a, b)`` of each of these ranges into this buffer".  :func:`open_source` wraps what the
caller passed:

========== ============================================== ====================================
kind       value                                          ``chunks`` (lengths along axis 0)
========== ============================================== ====================================
array      a numeric array-like held in memory            None
memmap     ``np.memmap`` / ``np.load(..., mmap_mode="r")`` None
zarr       a zarr 3 ``zarr.Array``                        its chunk grid
hdf5       an ``h5py.Dataset`` of an open file            its chunk grid (None if contiguous)
parquet    :func:`parquet` or a ``.parquet`` path          its row groups, file after file
dask       a ``dask.array.Array``                         ``x.chunks[0]``
========== ============================================== ====================================

Construction checks what can be checked cheaply (at least one axis and one row, a numeric
dtype, an open file, known chunk sizes, null-free Parquet columns) and raises naming the
argument.  A failure while reading (a file removed, a cluster lost) raises :class:`SourceError`
naming the argument, the source and the rows; failures that libraries would hide are made
visible:

* **zarr** returns the fill value for a chunk missing from its store.  Chunks that were never
  written are legitimately read that way, so each source remembers which stored objects
  existed when it was opened; one of those that is gone when read raises.  How: on zarr >= 3.2,
  an array whose chunks were all stored at open is read with ``read_missing_chunks=False``
  (zarr raises itself, for any store); otherwise, for a local directory store, the files of the
  chunks a read touched are checked after the read.  Other stores get no check on zarr < 3.2 or
  when some chunks were never written.
* **dask.distributed** waits forever for workers that are gone.  A dask source reads through
  the distributed client that was the default when it was opened (or is now), and waits at most
  :attr:`DaskSource.timeout` seconds; a closed client raises at once.
* **Parquet** files are opened on each read, so a removed or rewritten file raises instead of
  being read from a stale handle.

Optional libraries are imported only when a value needs them; values are recognised without
importing anything (a zarr array can only exist once zarr is imported).
"""

from __future__ import annotations

import copy
import mmap
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from minibatch._compat import ZARR_READ_MISSING_CHUNKS

NUMERIC_KINDS = "biuf"

ACCEPTED = (
    "a numeric array (numpy array, nested list, pandas object), a memory-mapped array "
    "(np.load(path, mmap_mode='r')), a zarr array, an h5py Dataset, a dask array, "
    "mb.parquet(path), or the path of a .parquet file or of a directory of .parquet files"
)

# zarr metadata documents, which sit next to the chunk files of an array's directory
_ZARR_METADATA = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})


class SourceError(RuntimeError):
    """A source failed while it was being read (file removed, cluster lost, ...)."""


class _DetectedError(Exception):
    """A failure this module detected itself; :meth:`Source.read` reports it as SourceError."""


class Source:
    """Rows of one argument's data, read by row ranges into a caller's buffer.

    Attributes
    ----------
    kind : str
        ``"array"``, ``"memmap"``, ``"zarr"``, ``"hdf5"``, ``"parquet"`` or ``"dask"``.
    label : str
        How errors name the argument, e.g. ``"data argument 0"``.
    shape : tuple of int
        The full shape; ``shape[0]`` is the number of rows.
    dtype : numpy.dtype
        The data's dtype: boolean, integer or floating point.
    chunks : tuple of int or None
        The native chunk lengths along axis 0 (they sum to ``shape[0]``): reading whole chunks
        is cheapest.  None when the source has no native chunking.

    Examples
    --------
    >>> src = open_source(np.arange(12.0).reshape(6, 2), "x")
    >>> src.kind, src.shape, src.dtype.name, src.chunks
    ('array', (6, 2), 'float64', None)
    >>> out = np.empty((3, 2), dtype="float32")
    >>> src.read([(4, 6), (0, 1)], out)
    >>> out.tolist()
    [[8.0, 9.0], [10.0, 11.0], [0.0, 1.0]]
    >>> src.describe()
    'in-memory array, shape (6, 2), float64'
    """

    kind: str = ""

    def __init__(
        self, label: str, shape: tuple[int, ...], dtype: Any, chunks: Sequence[int] | None
    ) -> None:
        self.label = label
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.chunks = None if chunks is None else tuple(int(n) for n in chunks)
        _check_layout(label, self.what(), self.shape, self.dtype)

    def read(self, ranges: Sequence[tuple[int, int]], out: np.ndarray) -> None:
        """Write rows ``[a, b)`` of each range, one range after the other, into ``out``.

        Parameters
        ----------
        ranges : sequence of (int, int)
            Row ranges, ``0 <= a <= b <= shape[0]``, in the order they fill ``out``.
        out : numpy.ndarray
            Shape ``(sum of b - a,) + shape[1:]``.  Its dtype may differ from :attr:`dtype`:
            values are cast as numpy assignment casts them.

        Raises
        ------
        ValueError
            ``ranges`` or ``out`` do not fit the source (a caller's mistake).
        SourceError
            Reading failed; the message names the argument, the source and the rows, and the
            library's exception is chained to it.
        """
        spans = _check_ranges(self, ranges, out)
        try:
            self._read(spans, out)
        except Exception as err:
            reason = str(err) if isinstance(err, _DetectedError) else f"{type(err).__name__}: {err}"
            cause = err.__cause__ if isinstance(err, _DetectedError) else err
            message = (
                f"{self.label} ({self.kind} source: {self.describe()}): could not read "
                f"rows {_rows_text(spans)}: {reason}"
            )
            raise SourceError(message) from cause

    def describe(self) -> str:
        """Short text naming the source: ``"zarr array at /x.zarr, shape (60, 5), float64"``."""
        return f"{self.what()}, shape {self.shape}, {self.dtype}"

    def what(self) -> str:
        """What the data is and where it lives, e.g. ``"zarr array at /tmp/x.zarr"``."""
        return f"{self.kind} data"

    def with_label(self, label: str) -> Source:
        """This source under another argument's name (a shallow copy)."""
        new = copy.copy(self)
        new.label = label
        return new

    def _read(self, spans: list[tuple[int, int]], out: np.ndarray) -> None:
        pos = 0
        for a, b in spans:
            if b > a:
                self._read_rows(a, b, out[pos : pos + b - a])
            pos += b - a

    def _read_rows(self, a: int, b: int, dest: np.ndarray) -> None:
        raise NotImplementedError


class ArraySource(Source):
    """Rows of an array held in memory (read by slicing; no copy is made at construction)."""

    kind = "array"

    def __init__(self, data: np.ndarray, label: str) -> None:
        self._data = data
        super().__init__(label, data.shape, data.dtype, None)

    def what(self) -> str:
        return "in-memory array"

    def _read_rows(self, a: int, b: int, dest: np.ndarray) -> None:
        dest[...] = self._data[a:b]


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


class HDF5Source(Source):
    """Rows of an ``h5py.Dataset``; its file must stay open while the source is read."""

    kind = "hdf5"

    def __init__(self, dataset: Any, label: str) -> None:
        if not dataset.id.valid:
            raise ValueError(
                f"{label}: got an h5py Dataset of a closed HDF5 file; expected a dataset of an "
                "open file (keep the h5py.File open while the data is read)"
            )
        self._dataset = dataset
        self._where = f"HDF5 dataset {dataset.name} in {dataset.file.filename}"
        if dataset.shape is None:
            raise ValueError(f"{label}: expected an array; got an empty {self._where}")
        chunks = dataset.chunks
        grid = None if chunks is None else _regular(dataset.shape[0], chunks[0])
        super().__init__(label, dataset.shape, dataset.dtype, grid)

    def what(self) -> str:
        return self._where

    def _read_rows(self, a: int, b: int, dest: np.ndarray) -> None:
        if dest.dtype == self.dtype and dest.flags.c_contiguous:
            # h5py serialises access itself; only one background thread reads at a time
            self._dataset.read_direct(dest, source_sel=np.s_[a:b])
        else:
            dest[...] = self._dataset[a:b]


class DaskSource(Source):
    """Rows of a dask array, computed for all ranges of a read in one graph.

    Attributes
    ----------
    timeout : float or None
        The most seconds a read waits for a distributed cluster (None: no limit).  A cluster
        whose workers or scheduler are gone never answers; such a read raises
        :class:`SourceError` after this long.  The local schedulers need no limit.
    """

    kind = "dask"

    def __init__(self, array: Any, label: str, timeout: float | None = 300.0) -> None:
        self._array = array
        unknown = [axis for axis, n in enumerate(array.shape) if np.isnan(n)]
        if unknown:
            raise ValueError(
                f"{label}: got a dask array with unknown chunk sizes (nan) along axis "
                f"{unknown[0]}; expected known chunk sizes: call x.compute_chunk_sizes() first"
            )
        self.timeout = timeout
        self._client = _distributed_client(array)
        super().__init__(label, array.shape, array.dtype, array.chunks[0] if array.ndim else None)

    def what(self) -> str:
        return "dask array"

    def _read(self, spans: list[tuple[int, int]], out: np.ndarray) -> None:
        spans = [(a, b) for a, b in spans if b > a]
        if not spans:
            return
        pieces = [self._array[a:b] for a, b in spans]
        client = self._client if self._client is not None else _distributed_client(self._array)
        if client is None:
            import dask

            values = dask.compute(*pieces)
        else:
            values = (self._compute_on(client, pieces),)
        pos = 0
        for value in values:
            out[pos : pos + len(value)] = value
            pos += len(value)

    def _compute_on(self, client: Any, pieces: list[Any]) -> Any:
        """All pieces, concatenated, computed on ``client`` in at most ``timeout`` seconds."""
        if client.status in ("closing", "closed"):
            raise _DetectedError(f"the dask distributed client {client} is closed")
        if len(pieces) > 1:
            import dask.array

            pieces = [dask.array.concatenate(pieces)]
        future = client.compute(pieces[0])
        start = time.monotonic()
        try:
            return future.result(timeout=self.timeout)
        except TimeoutError as err:
            with suppress(Exception):
                future.cancel()
            raise _DetectedError(
                f"the dask distributed cluster gave no result in {time.monotonic() - start:.1f} "
                f"s (client status {client.status!r}): its workers or scheduler may be gone; "
                "set the source's timeout to wait longer"
            ) from err


class ParquetSource(Source):
    """Rows of numeric Parquet columns, in one file or in the files of a directory.

    Made by :func:`parquet`.  ``chunks`` are the row groups, file after file: a read decodes
    each row group it touches once.  Files are opened on each read, and one that is gone or
    changed since :func:`parquet` looked at it raises :class:`SourceError`.
    """

    kind = "parquet"

    def __init__(
        self,
        path: Path,
        files: list[Path],
        columns: tuple[str, ...],
        one_column: bool,
        groups: list[tuple[int, int, int]],
        label: str,
        dtype: np.dtype,
        types: dict[str, Any],
        stamps: list[tuple[int, int, int]],
    ) -> None:
        self.path = path
        self.files = files
        self.columns = columns
        self._groups = groups  # (file index, row group index, rows) of each non-empty group
        self._starts = np.cumsum([0] + [rows for _, _, rows in groups])
        self._types = types
        self._stamps = stamps  # each file as it was when its metadata was read
        rows = int(self._starts[-1])
        shape = (rows,) if one_column else (rows, len(columns))
        super().__init__(label, shape, dtype, [rows for _, _, rows in groups])

    def what(self) -> str:
        cols = ", ".join(repr(c) for c in self.columns)
        if len(self.files) == 1 and self.files[0] == self.path:
            return f"Parquet file {self.path} (columns {cols})"
        return f"Parquet data at {self.path} ({len(self.files)} files, columns {cols})"

    def _read(self, spans: list[tuple[int, int]], out: np.ndarray) -> None:
        opened: dict[int, Any] = {}
        cache: tuple[int, list[np.ndarray]] | None = None  # the last decoded row group
        try:
            pos = 0
            for a, b in spans:
                for group, lo, hi in self._pieces(a, b):
                    if cache is None or cache[0] != group:
                        cache = (group, self._decode(group, opened))
                    for j, column in enumerate(cache[1]):
                        dest = out[pos : pos + hi - lo]
                        if out.ndim == 1:
                            dest[...] = column[lo:hi]
                        else:
                            dest[:, j] = column[lo:hi]
                    pos += hi - lo
        finally:
            for handle in opened.values():
                handle.close()

    def _pieces(self, a: int, b: int) -> Iterator[tuple[int, int, int]]:
        """(row group, first row, end row) within each group that rows ``[a, b)`` touch."""
        group = int(np.searchsorted(self._starts, a, side="right")) - 1
        while a < b:
            start, end = int(self._starts[group]), int(self._starts[group + 1])
            stop = min(b, end)
            yield group, a - start, stop - start
            a, group = stop, group + 1

    def _decode(self, group: int, opened: dict[int, Any]) -> list[np.ndarray]:
        file, index, rows = self._groups[group]
        if file not in opened:
            if _file_stamp(self.files[file]) != self._stamps[file]:
                raise _DetectedError(f"{self.files[file]} changed since the source was opened")
            pq = _import("pyarrow.parquet", "parquet", "reading Parquet")
            opened[file] = pq.ParquetFile(str(self.files[file]))
        table = opened[file].read_row_group(index, columns=list(self.columns))
        if table.num_rows != rows:
            raise _DetectedError(f"row group {index} of {self.files[file]} has changed length")
        arrays = []
        for name in self.columns:
            column = table.column(name)
            if column.type != self._types[name] or column.null_count:
                raise _DetectedError(f"column {name!r} of {self.files[file]} changed")
            arrays.append(column.to_numpy())
        return arrays


def is_out_of_core(value: Any) -> bool:
    """Whether ``value`` is data read from outside memory: it gets a windowed stream.

    True for memory-mapped arrays (``np.memmap``, ``np.load(..., mmap_mode="r")``, arrays
    viewing an ``mmap.mmap``), zarr arrays, h5py Datasets, dask arrays, :func:`parquet`
    sources, and paths (str or ``os.PathLike``) naming an existing ``.parquet`` file or a
    directory holding ``.parquet`` files.  Imports no optional library.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     np.save(f"{tmp}/x.npy", np.arange(6.0))
    ...     mapped = np.load(f"{tmp}/x.npy", mmap_mode="r")
    ...     print(is_out_of_core(mapped), is_out_of_core(mapped[2:]), is_out_of_core(mapped + 1))
    ...     del mapped
    True True False
    >>> is_out_of_core(np.ones(3)), is_out_of_core([1, 2]), is_out_of_core("no/such.parquet")
    (False, False, False)
    """
    if isinstance(value, Source):
        return value.kind != "array"
    if isinstance(value, np.ndarray):
        return _is_memory_mapped(value)
    if _library_kind(value) is not None:
        return True
    if isinstance(value, (str, os.PathLike)):
        return _is_parquet_path(value)
    return False


def open_source(value: Any, label: str) -> Source:
    """The :class:`Source` reading ``value``, checked; errors name the argument as ``label``.

    Parameters
    ----------
    value
        Anything :func:`is_out_of_core` accepts, a :class:`Source`, or an in-memory numeric
        array-like (numpy array, nested list, pandas object), which becomes an ``"array"``
        source without a copy when it is a numpy array.
    label : str
        How errors name the argument, e.g. ``"data argument 0"``.

    Raises
    ------
    TypeError
        An object of another kind, a path that is not Parquet data, or a dtype that is not
        boolean, integer or floating point.
    ValueError
        No axis, no rows, an h5py Dataset of a closed file, a dask array of unknown chunk
        sizes, or bad Parquet data (see :func:`parquet`).
    ImportError
        Reading the value needs an optional library that is not installed.

    Examples
    --------
    >>> open_source([[1, 2], [3, 4]], "y").describe()
    'in-memory array, shape (2, 2), int64'
    >>> open_source({"a": 1}, "data argument 1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: data argument 1: expected a numeric array ...; got a dict
    """
    if isinstance(value, Source):
        return value.with_label(label)
    if isinstance(value, np.ndarray) and _is_memory_mapped(value):
        return MemmapSource(value, label)
    kind = _library_kind(value)
    if kind == "zarr":
        return ZarrSource(value, label)
    if kind == "hdf5":
        return HDF5Source(value, label)
    if kind == "dask":
        return DaskSource(value, label)
    if isinstance(value, (str, os.PathLike)):
        if not _is_parquet_path(value):
            raise TypeError(
                f"{label}: a path must name a .parquet file or a directory of .parquet files; "
                f"got {os.fspath(value)!r}"
            )
        return _parquet(Path(os.fspath(value)), None, label)
    return ArraySource(_in_memory(value, label), label)


def parquet(
    path: str | os.PathLike[str], columns: str | Sequence[str] | None = None
) -> ParquetSource:
    """Numeric columns of Parquet data, read by row groups without loading the whole of it.

    Parameters
    ----------
    path : str or os.PathLike
        A Parquet file, or a directory: its ``*.parquet`` files (not those of subdirectories),
        sorted by name, are the rows one after the other.
    columns : str, sequence of str or None
        None: every column, which must all be numeric (a 2-D source, columns in file order).
        A str: that column alone (a 1-D source).  A sequence: those columns in that order (2-D).

    Returns
    -------
    ParquetSource
        Its dtype is ``np.result_type`` of the columns' dtypes; its ``chunks`` are the row
        groups' lengths.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        No Parquet files, a column that is missing, files whose schemas differ on a selected
        column, or a column holding nulls (a minibatch must not see a null as a number).
    TypeError
        A selected column is not boolean, integer or floating point.
    ImportError
        pyarrow is not installed.
    """
    path = Path(os.fspath(path))
    return _parquet(path, columns, f"mb.parquet({str(path)!r})")


# --- validation ---------------------------------------------------------------------------


def _check_layout(label: str, what: str, shape: Sequence[Any], dtype: Any) -> None:
    if len(shape) == 0:
        raise ValueError(f"{label}: expected data with a leading axis of rows; got a 0-d {what}")
    if shape[0] == 0:
        raise ValueError(f"{label}: expected at least one row; got {what} of shape {tuple(shape)}")
    dtype = np.dtype(dtype)
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None:
        raise TypeError(
            f"{label}: expected numeric data (boolean, integer or floating point); got {what} "
            f"of dtype {dtype}"
        )


def _check_ranges(
    source: Source, ranges: Sequence[tuple[int, int]], out: np.ndarray
) -> list[tuple[int, int]]:
    spans = [(int(a), int(b)) for a, b in ranges]
    rows = source.shape[0]
    for a, b in spans:
        if not 0 <= a <= b <= rows:
            raise ValueError(f"{source.label}: row range [{a}, {b}) is outside [0, {rows})")
    expected = (sum(b - a for a, b in spans), *source.shape[1:])
    if out.shape != expected:
        raise ValueError(f"{source.label}: out has shape {out.shape}; expected {expected}")
    return spans


def _rows_text(spans: list[tuple[int, int]]) -> str:
    """``[0, 5), [9, 12)``; long lists end with how many more ranges and rows there are."""
    shown = ", ".join(f"[{a}, {b})" for a, b in spans[:3])
    if len(spans) <= 3:
        return shown
    return f"{shown} and {len(spans) - 3} more ranges ({sum(b - a for a, b in spans)} rows)"


def _in_memory(value: Any, label: str) -> np.ndarray:
    """``value`` as an ndarray (itself when it is one), or TypeError naming what is accepted."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, (dict, set, frozenset, bytes, str)) or value is None:
        raise TypeError(f"{label}: expected {ACCEPTED}; got a {type(value).__name__}")
    try:
        to_numpy = getattr(value, "to_numpy", None)
        array = to_numpy() if callable(to_numpy) else np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{label}: expected {ACCEPTED}; got a {type(value).__name__} ({err})"
        ) from err
    if not isinstance(array, np.ndarray) or (array.dtype.kind == "O" and array.ndim == 0):
        raise TypeError(f"{label}: expected {ACCEPTED}; got a {type(value).__name__}")
    return array  # arrays of objects are refused by the dtype check, which says so


# --- recognising values without importing their libraries ---------------------------------

# kind -> (module, class) of the libraries' array types
_LIBRARY_TYPES = {
    "zarr": ("zarr", "Array"),
    "hdf5": ("h5py", "Dataset"),
    "dask": ("dask.array", "Array"),
}


def _library_kind(value: Any) -> str | None:
    """``"zarr"``, ``"hdf5"`` or ``"dask"`` for those libraries' arrays, else None.

    A library that was never imported has made no instances, so ``sys.modules`` decides.
    """
    for kind, (module, name) in _LIBRARY_TYPES.items():
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(value, cls):
            return kind
    return None


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


def _is_parquet_path(value: str | os.PathLike[Any]) -> bool:
    path = os.fspath(value)
    if not isinstance(path, str):
        return False
    if os.path.isfile(path):
        return path.endswith(".parquet")
    return os.path.isdir(path) and bool(_parquet_files(Path(path)))


def _import(module: str, extra: str, what: str) -> Any:
    """Import an optional library, or raise ImportError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs {module.partition('.')[0]}: pip install 'pymc-minibatch[{extra}]'"
        ) from err


# --- zarr ----------------------------------------------------------------------------------


def _regular(rows: int, chunk: int) -> tuple[int, ...]:
    """Lengths of a regular grid of ``chunk`` rows, the last one shorter if need be.

    >>> _regular(10, 4), _regular(8, 4), _regular(3, 5)
    ((4, 4, 2), (4, 4), (3,))
    """
    full, rest = divmod(rows, chunk)
    return (chunk,) * full + ((rest,) if rest else ())


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


# --- dask ----------------------------------------------------------------------------------


def _distributed_client(array: Any) -> Any | None:
    """The distributed client that would compute ``array`` now, or None for a local scheduler."""
    if "distributed" not in sys.modules:  # no client can exist
        return None
    import dask.base

    scheduler = dask.base.get_scheduler(collections=[array])
    owner = getattr(scheduler, "__self__", None)  # a client's scheduler is its bound ``get``
    return owner if type(owner).__name__ == "Client" and hasattr(owner, "compute") else None


# --- Parquet -------------------------------------------------------------------------------


def _parquet_files(directory: Path) -> list[Path]:
    return sorted(
        (p for p in directory.iterdir() if p.suffix == ".parquet" and p.is_file()),
        key=lambda p: p.name,
    )


def _file_stamp(path: Path) -> tuple[int, int, int]:
    """What changes when a file is rewritten or replaced: its inode, size and mtime."""
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def _parquet(path: Path, columns: str | Sequence[str] | None, label: str) -> ParquetSource:
    pq = _import("pyarrow.parquet", "parquet", "reading Parquet")
    if not path.exists():
        raise FileNotFoundError(f"{label}: no such file or directory: {path}")
    files = _parquet_files(path) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{label}: expected .parquet files in the directory {path}; found none")
    schemas, stamps = [], []
    for file in files:
        stamps.append(_file_stamp(file))
        try:
            with pq.ParquetFile(str(file)) as handle:
                schemas.append((handle.schema_arrow, handle.metadata))
        except Exception as err:
            raise ValueError(f"{label}: could not read {file} as Parquet: {err}") from err
    names = _selected_columns(schemas[0][0], columns, label, files[0])
    types = {name: schemas[0][0].field(name).type for name in names}
    dtypes = _column_dtypes(types, label, columns)
    groups = []
    for index, (file, (schema, meta)) in enumerate(zip(files, schemas, strict=True)):
        _check_same_schema(schema, types, file, files[0], label)
        _check_no_nulls(meta, names, file, label, pq)
        groups += [
            (index, g, meta.row_group(g).num_rows)
            for g in range(meta.num_row_groups)
            if meta.row_group(g).num_rows
        ]
    one_column = isinstance(columns, str)
    dtype = np.result_type(*dtypes)
    return ParquetSource(path, files, tuple(names), one_column, groups, label, dtype, types, stamps)


def _selected_columns(
    schema: Any, columns: str | Sequence[str] | None, label: str, file: Path
) -> list[str]:
    if columns is None:
        index = {
            c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)
        }
        return [name for name in schema.names if name not in index]
    names = [columns] if isinstance(columns, str) else list(columns)
    if not names:
        raise ValueError(f"{label}: columns=[] selects no column; expected column names")
    for name in names:
        if name not in schema.names:
            raise ValueError(
                f"{label}: no column {name!r} in {file}; its columns are {schema.names}"
            )
    return names


def _column_dtypes(types: dict[str, Any], label: str, columns: Any) -> list[np.dtype]:
    """The numpy dtype of each column, or TypeError naming every column that is not numeric."""
    import pyarrow as pa

    def numeric(typ: Any) -> bool:
        return bool(
            pa.types.is_boolean(typ) or pa.types.is_integer(typ) or pa.types.is_floating(typ)
        )

    bad = [f"{name!r} ({typ})" for name, typ in types.items() if not numeric(typ)]
    if bad:
        good = [name for name, typ in types.items() if numeric(typ)]
        hint = f"; pass columns=[...] naming numeric ones, e.g. columns={good!r}"
        raise TypeError(
            f"{label}: expected numeric columns (boolean, integer or floating point); got "
            f"{', '.join(bad)}{hint if columns is None else ''}"
        )
    return [np.dtype(typ.to_pandas_dtype()) for typ in types.values()]


def _check_same_schema(
    schema: Any, types: dict[str, Any], file: Path, first: Path, label: str
) -> None:
    for name, typ in types.items():
        if name not in schema.names:
            raise ValueError(f"{label}: {file} has no column {name!r}, which {first.name} has")
        if schema.field(name).type != typ:
            raise ValueError(
                f"{label}: column {name!r} of {file} has type {schema.field(name).type}; "
                f"{first.name} has {typ} (the files' schemas differ)"
            )


def _check_no_nulls(meta: Any, names: list[str], file: Path, label: str, pq: Any) -> None:
    """No selected column holds a null: from the statistics, else by decoding that column."""
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        where = {group.column(j).path_in_schema: j for j in range(group.num_columns)}
        for name in names:
            stats = group.column(where[name]).statistics
            if stats is not None and stats.has_null_count:
                nulls = stats.null_count
            else:
                with pq.ParquetFile(str(file)) as handle:
                    nulls = handle.read_row_group(g, columns=[name]).column(0).null_count
            if nulls:
                raise ValueError(
                    f"{label}: column {name!r} of {file} holds {nulls} null values (row group "
                    f"{g}); a minibatch cannot use them as numbers: fill or drop them first"
                )
