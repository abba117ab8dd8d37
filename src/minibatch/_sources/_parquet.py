"""Numeric Parquet columns of a file or a directory, read by row groups."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minibatch._sources._base import Source, _DetectedError, _import


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

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np, pyarrow as pa, pyarrow.parquet as pq, minibatch as mb
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.parquet"
    >>> table = pa.table({"x": np.arange(100.0), "y": 2 * np.arange(100.0)})
    >>> pq.write_table(table, path, row_group_size=25)
    >>> source = mb.parquet(path, columns=["x", "y"])
    >>> source.shape, source.chunks
    ((100, 2), (25, 25, 25, 25))
    >>> xb = mb.Minibatch(source, batch_size=10, window=50)
    >>> rows = xb.eval()
    >>> rows.shape, bool((rows[:, 1] == 2 * rows[:, 0]).all())
    ((10, 2), True)
    """
    path = Path(os.fspath(path))
    return _parquet(path, columns, f"mb.parquet({str(path)!r})")


def _is_parquet_path(value: str | os.PathLike[Any]) -> bool:
    path = os.fspath(value)
    if not isinstance(path, str):
        return False
    if os.path.isfile(path):
        return path.endswith(".parquet")
    return os.path.isdir(path) and bool(_parquet_files(Path(path)))


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
