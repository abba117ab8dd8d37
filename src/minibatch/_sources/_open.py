"""Which values are out-of-core sources, and the source that reads each value."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from minibatch._sources._base import ArraySource, Source, _in_memory
from minibatch._sources._dask import DaskSource
from minibatch._sources._hdf5 import HDF5Source
from minibatch._sources._memmap import MemmapSource, _is_memory_mapped
from minibatch._sources._parquet import _is_parquet_path, _parquet
from minibatch._sources._zarr import ZarrSource


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
