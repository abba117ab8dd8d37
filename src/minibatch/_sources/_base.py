"""The source interface: reading row ranges into a buffer, its checks and its errors."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

NUMERIC_KINDS = "biuf"


ACCEPTED = (
    "a numeric array (numpy array, nested list, pandas object), a memory-mapped array "
    "(np.load(path, mmap_mode='r')), a zarr array, an h5py Dataset, a dask array, "
    "mb.parquet(path), or the path of a .parquet file or of a directory of .parquet files"
)


class SourceError(RuntimeError):
    """A source failed while it was being read (file removed, cluster lost, ...).

    Raised from inside ``pm.fit`` by the window reader: the message names the source and the
    rows that failed.

    Attributes
    ----------
    approx : pymc.variational.approximations.Approximation
        The fit so far, when a read fails after the fit's first step (a failure of the first
        window, read before the first step, has none).

    Examples
    --------
    NaN written into a memmap after the minibatch was built stops the fit at the first window
    that holds it:

    >>> import pathlib, tempfile
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "y.npy"
    >>> y = np.lib.format.open_memmap(path, mode="w+", dtype="float64", shape=(1000,))
    >>> y[:] = np.random.default_rng(0).normal(size=1000)
    >>> yb = mb.Minibatch(np.load(path, mmap_mode="r"), batch_size=20, window=100)
    >>> y[500:600] = np.nan
    >>> y.flush()
    >>> with pm.Model():
    ...     obs = pm.Normal("y", pm.Normal("mu", 0, 10), 2.0, observed=yb)
    ...     try:
    ...         pm.fit(2000, random_seed=1, progressbar=False)
    ...     except mb.SourceError as err:
    ...         print("NaN entries in rows read" in str(err))
    True
    """


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
    >>> src = ArraySource(np.arange(12.0).reshape(6, 2), "x")
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


def _import(module: str, extra: str, what: str) -> Any:
    """Import an optional library, or raise ImportError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs {module.partition('.')[0]}: pip install 'pymc-minibatch[{extra}]'"
        ) from err


def _regular(rows: int, chunk: int) -> tuple[int, ...]:
    """Lengths of a regular grid of ``chunk`` rows, the last one shorter if need be.

    >>> _regular(10, 4), _regular(8, 4), _regular(3, 5)
    ((4, 4, 2), (4, 4), (3,))
    """
    full, rest = divmod(rows, chunk)
    return (chunk,) * full + ((rest,) if rest else ())
