"""Sources: rows of in-memory and out-of-core data read by row ranges.

Every kind is read from real files in ``tmp_path`` (zarr directories, HDF5 files, Parquet files,
``.npy`` memmaps), dask through a real ``LocalCluster`` of worker processes on loopback, and
every read is compared with the same rows of the numpy array the data was written from.
"""

from __future__ import annotations

import ast
import mmap
import os
import re
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import distributed
import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytensor
import pytest
import zarr
from distributed import Client, LocalCluster

from minibatch import _compat
from minibatch._sources import Source, SourceError, is_out_of_core, open_source, parquet
from minibatch._sources._dask import DaskSource
from minibatch._sources._parquet import ParquetSource

SOURCES = Path(__file__).resolve().parents[1] / "src" / "minibatch" / "_sources"
OPTIONAL = ("zarr", "h5py", "pyarrow", "dask", "distributed")


def reference(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Float data (no zeros, so a chunk read as fill values shows); 1-D data is int32."""
    rng = np.random.default_rng(seed)
    if len(shape) == 1:
        return rng.integers(1, 1000, size=shape).astype(np.int32)
    return rng.normal(size=shape) + 10.0


def random_ranges(rng: np.random.Generator, rows: int) -> list[tuple[int, int]]:
    """The whole extent, random (overlapping, unordered) blocks and empty ranges."""
    starts = rng.integers(0, rows, size=10)
    lengths = rng.integers(0, 25, size=10)
    blocks = [(int(a), int(min(a + n, rows))) for a, n in zip(starts, lengths, strict=True)]
    return [(0, rows), *blocks, (rows, rows), (3, 3)]


def expected(ref: np.ndarray, ranges: list[tuple[int, int]], dtype: np.dtype) -> np.ndarray:
    """What numpy assignment of those rows into a ``dtype`` buffer gives."""
    want = np.empty((sum(b - a for a, b in ranges), *ref.shape[1:]), dtype=dtype)
    want[...] = np.concatenate([ref[a:b] for a, b in ranges])
    return want


def assert_reads(source: Source, ref: np.ndarray, seed: int = 0) -> None:
    """Random ranges read into buffers of the source's dtype, float32 and float64 equal numpy's."""
    assert source.shape == ref.shape and source.dtype == ref.dtype
    rng = np.random.default_rng(seed)
    for dtype in (ref.dtype, np.dtype("float32"), np.dtype("float64")):
        for _ in range(2):
            ranges = random_ranges(rng, len(ref))
            want = expected(ref, ranges, dtype)
            out = ~want if dtype.kind == "b" else want + np.ones(1, dtype)  # wrong everywhere
            source.read(ranges, out)
            np.testing.assert_array_equal(out, want)


# --- writing real data ---------------------------------------------------------------------


def write_npy(tmp_path: Path, ref: np.ndarray) -> np.ndarray:
    np.save(tmp_path / "x.npy", ref)
    return np.load(tmp_path / "x.npy", mmap_mode="r")


def write_zarr(tmp_path: Path, ref: np.ndarray, chunks: tuple[int, ...] | None = None, **kw):
    chunks = chunks or (10, *(max(1, n // 2) for n in ref.shape[1:]))
    z = zarr.create_array(
        tmp_path / "x.zarr", shape=ref.shape, chunks=chunks, dtype=ref.dtype, **kw
    )
    z[...] = ref
    return zarr.open_array(tmp_path / "x.zarr", mode="r")


@pytest.fixture
def h5(tmp_path):
    """Writes an HDF5 dataset and keeps its file open until the test ends."""
    files = []

    def write(ref: np.ndarray, chunks: tuple[int, ...] | None = None, name: str = "x.h5"):
        with h5py.File(tmp_path / name, "w") as f:
            f.create_dataset("data", data=ref, chunks=chunks)
        files.append(h5py.File(tmp_path / name, "r"))
        return files[-1]["data"]

    yield write
    for f in files:
        f.close()


def write_parquet(directory: Path, ref: np.ndarray, splits=(50,), row_group_size=20) -> Path:
    """``ref``'s columns (c0, c1, ...) in one file per block of rows, a_0.parquet, a_1.parquet..."""
    directory.mkdir(exist_ok=True)
    ref2 = ref.reshape(len(ref), -1)
    for i, block in enumerate(np.split(ref2, list(splits))):
        table = pa.table({f"c{j}": block[:, j] for j in range(ref2.shape[1])})
        pq.write_table(table, directory / f"a_{i}.parquet", row_group_size=row_group_size)
    return directory


def make(kind: str, tmp_path: Path, h5, ref: np.ndarray):
    """``ref`` stored as ``kind``: the value one would pass to open_source."""
    if kind == "array":
        return ref
    if kind == "memmap":
        return write_npy(tmp_path, ref)
    if kind == "zarr":
        return write_zarr(tmp_path, ref)
    if kind == "hdf5":
        return h5(ref, chunks=(16, *ref.shape[1:]))
    if kind == "parquet":
        path = write_parquet(tmp_path / "pq", ref)
        return parquet(path, "c0") if ref.ndim == 1 else parquet(path)
    if kind == "dask":
        return da.from_array(ref, chunks=((10, 30, len(ref) - 40), *ref.shape[1:]))
    raise AssertionError(kind)


KINDS = ["array", "memmap", "zarr", "hdf5", "parquet", "dask"]


SHAPES = {"1d": (103,), "2d": (103, 4), "3d": (41, 3, 2)}


@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        pytest.param(kind, shape, id=f"{kind}-{name}")
        for kind in KINDS
        for name, shape in SHAPES.items()
        if not (kind == "parquet" and name == "3d")  # Parquet columns: 1-D and 2-D only
    ],
)
def test_random_ranges_read_exactly_the_rows(kind, shape, tmp_path, h5):
    ref = reference(shape)
    source = open_source(make(kind, tmp_path, h5, ref), "data argument 0")
    assert source.kind == kind and source.label == "data argument 0"
    assert_reads(source, ref)


@pytest.mark.parametrize("kind", KINDS)
def test_describe_names_the_kind_the_place_and_the_layout(kind, tmp_path, h5):
    source = open_source(make(kind, tmp_path, h5, reference((60, 2))), "x")
    text = source.describe()
    assert text.endswith("shape (60, 2), float64")
    where = {"memmap": "x.npy", "zarr": "x.zarr", "hdf5": "x.h5", "parquet": "pq"}
    if kind in where:
        assert str(tmp_path / where[kind]) in text
    else:
        assert text.startswith({"array": "in-memory array", "dask": "dask array"}[kind])


def test_a_numpy_array_is_not_copied_and_pandas_is_read():
    ref = reference((20, 3))
    source = open_source(ref, "x")
    assert source._data is ref  # no copy
    frame = pd.DataFrame(ref, columns=list("abc"))
    assert_reads(open_source(frame, "frame"), ref)
    assert_reads(open_source(frame["b"], "series"), ref[:, 1])
    assert_reads(open_source(ref.tolist(), "list"), ref)


def test_memmap_kinds_of_access(tmp_path):
    ref = reference((50, 3))
    mapped = write_npy(tmp_path, ref)
    direct = np.memmap(tmp_path / "raw.bin", dtype=ref.dtype, mode="w+", shape=ref.shape)
    direct[...] = ref
    direct.flush()
    for value, want in [(mapped, ref), (mapped[5:40], ref[5:40]), (np.asarray(direct), ref)]:
        source = open_source(value, "x")
        assert source.kind == "memmap" and source.chunks is None
        assert_reads(source, want)
    assert "raw.bin" in open_source(np.asarray(direct), "x").describe()


# --- chunks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "chunks", "shards", "want"),
    [
        (103, (10, 2), None, (10,) * 10 + (3,)),  # regular, last chunk shorter
        (100, (10, 4), None, (10,) * 10),
        (103, (5, 4), (20, 4), (5,) * 20 + (3,)),  # sharded: the chunks inside the shards
    ],
)
def test_zarr_chunks_are_its_grid_along_rows(rows, chunks, shards, want, tmp_path):
    ref = reference((rows, 4))
    source = open_source(write_zarr(tmp_path, ref, chunks, shards=shards), "x")
    assert source.chunks == want and sum(source.chunks) == rows
    assert_reads(source, ref)


def test_hdf5_chunks_chunked_and_contiguous(h5):
    ref = reference((103, 4))
    assert open_source(h5(ref, chunks=(16, 2)), "x").chunks == (16,) * 6 + (7,)
    assert open_source(h5(ref, chunks=None, name="c.h5"), "x").chunks is None


def test_parquet_chunks_are_the_row_groups_of_all_files_in_name_order(tmp_path):
    ref = reference((80, 3))
    directory = tmp_path / "pq"
    directory.mkdir()
    # written out of order: the names decide the order (b after a), not the writing
    pq.write_table(pa.table({"u": ref[50:, 0], "v": ref[50:, 2]}), directory / "b.parquet", 16)
    pq.write_table(pa.table({"u": ref[:50, 0], "v": ref[:50, 2]}), directory / "a.parquet", 20)
    (directory / "notes.txt").write_text("not data")
    nested = directory / "old"
    nested.mkdir()  # subdirectories are not read
    pq.write_table(pa.table({"u": ref[:5, 0], "v": ref[:5, 2]}), nested / "c.parquet")
    source = open_source(directory, "x")
    assert source.chunks == (20, 20, 10, 16, 14)
    assert source.files == [directory / "a.parquet", directory / "b.parquet"]
    assert_reads(source, ref[:, [0, 2]])


def test_dask_chunks_irregular():
    ref = reference((103, 4))
    source = open_source(da.from_array(ref, chunks=((7, 50, 1, 45), (2, 2))), "x")
    assert source.chunks == (7, 50, 1, 45)
    assert open_source(ref, "x").chunks is None


# --- what counts as out of core ------------------------------------------------------------


def test_is_out_of_core_true(tmp_path, h5):
    ref = reference((30, 2))
    mapped = write_npy(tmp_path, ref)
    with open(tmp_path / "x.npy", "rb") as f:
        raw = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    pq_dir = write_parquet(tmp_path / "pq", ref, splits=(10,))
    values = [
        mapped,
        mapped[3:9],  # a slice of a memmap
        np.asarray(mapped),  # an ndarray viewing the mapping
        np.frombuffer(raw, dtype=np.uint8),
        write_zarr(tmp_path, ref),
        h5(ref),
        da.from_array(ref),
        parquet(pq_dir),
        pq_dir,  # a directory of .parquet files
        str(pq_dir / "a_0.parquet"),
        pq_dir / "a_1.parquet",
    ]
    assert [is_out_of_core(v) for v in values] == [True] * len(values)
    del values, mapped
    raw.close()


def test_is_out_of_core_false(tmp_path):
    ref = reference((30, 2))
    mapped = write_npy(tmp_path, ref)
    (tmp_path / "x.csv").write_text("1,2\n")
    (tmp_path / "empty").mkdir()
    values = [
        ref,
        np.load(tmp_path / "x.npy"),  # read into memory
        mapped + 1,  # computed from a memmap: in memory
        np.array(mapped),
        ref.tolist(),
        pd.DataFrame(ref),
        pytensor.shared(ref),
        open_source(ref, "x"),
        str(tmp_path / "x.csv"),
        tmp_path / "empty",
        str(tmp_path / "missing.parquet"),
        {"a": ref},
        None,
    ]
    assert [is_out_of_core(v) for v in values] == [False] * len(values)


def test_no_optional_library_is_imported_at_module_level():
    roots = set()
    modules = sorted(SOURCES.glob("*.py"))
    assert len(modules) > 5
    for module in modules:
        for node in ast.parse(module.read_text()).body:  # the modules' top-level statements
            if isinstance(node, ast.Import):
                roots |= {alias.name.partition(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots.add((node.module or "").partition(".")[0])
    assert {"numpy", "minibatch"} <= roots
    assert not roots & {*OPTIONAL, "pymc", "pytensor"}


# --- construction errors -------------------------------------------------------------------


def stored_as(kind: str, tmp_path: Path, h5, ref: np.ndarray):
    """``ref`` as ``kind`` without open_source's checks in the way of writing it."""
    if kind == "memmap":
        return write_npy(tmp_path, ref)
    if kind == "zarr":
        if ref.dtype.fields is not None:
            z = zarr.create_array(
                tmp_path / "s.zarr", shape=ref.shape, dtype=ref.dtype, zarr_format=2
            )
            return z
        return zarr.create_array(tmp_path / "s.zarr", shape=ref.shape, dtype=ref.dtype)
    if kind == "hdf5":
        return h5(ref)
    if kind == "dask":
        return da.from_array(ref)
    return ref


STRUCTURED = np.zeros(4, dtype=[("a", "f8"), ("b", "i4")])


@pytest.mark.parametrize("kind", ["array", "memmap", "zarr", "hdf5", "dask"])
@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (np.float64(3.0), ValueError, "expected data with a leading axis of rows; got a 0-d"),
        (np.zeros((0, 3)), ValueError, "expected at least one row; got .* of shape \\(0, 3\\)"),
        (STRUCTURED, TypeError, "expected numeric data .*; got .* of dtype"),
        (np.array([1 + 2j, 3j]), TypeError, "expected numeric data .*; got .* complex128"),
    ],
    ids=["0-d", "no rows", "structured", "complex"],
)
def test_bad_layouts_are_refused_naming_the_argument(kind, data, error, match, tmp_path, h5):
    value = stored_as(kind, tmp_path, h5, np.asarray(data))
    with pytest.raises(error, match=rf"^data argument 3: {match}"):
        open_source(value, "data argument 3")


@pytest.mark.parametrize("kind", ["array", "zarr", "dask"])
def test_strings_and_objects_are_refused(kind, tmp_path, h5):
    if kind == "zarr":
        value = zarr.create_array(tmp_path / "s.zarr", shape=(3,), dtype=str)
    elif kind == "dask":
        value = da.from_array(np.array(["a", None, 1], dtype=object), chunks=2)
    else:
        value = [object(), "b"]
    with pytest.raises(TypeError, match=r"^y: expected numeric data"):
        open_source(value, "y")


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, None, {1, 2}, b"bytes", [[1.0], [1.0, 2.0]], object(), pytensor.shared(1.0)],
    ids=["dict", "None", "set", "bytes", "ragged", "object", "pytensor"],
)
def test_unsupported_objects_name_what_is_accepted(value):
    with pytest.raises(TypeError, match=r"^data argument 0: expected a numeric array .*dask array"):
        open_source(value, "data argument 0")


def test_a_path_that_is_not_parquet_is_refused(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n")
    for path in [tmp_path / "x.csv", str(tmp_path / "missing.parquet"), tmp_path]:
        with pytest.raises(TypeError, match=r"^x: a path must name a .parquet file or a directory"):
            open_source(path, "x")


def test_a_dataset_of_a_closed_hdf5_file_is_refused(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        dataset = f.create_dataset("data", data=reference((10, 2)))
    with pytest.raises(
        ValueError, match=r"^x: got an h5py Dataset of a closed HDF5 file; expected"
    ):
        open_source(dataset, "x")


def test_dask_unknown_chunk_sizes_are_refused():
    x = da.from_array(np.arange(20.0), chunks=5)
    y = x[x > 3]
    with pytest.raises(ValueError, match=r"^x: .*unknown chunk sizes.*compute_chunk_sizes\(\)"):
        open_source(y, "x")
    assert_reads(open_source(y.compute_chunk_sizes(), "x"), np.arange(4.0, 20.0))


@pytest.mark.skipif(
    not hasattr(zarr.Array, "read_chunk_sizes"), reason="this zarr has no rectilinear grids"
)
def test_zarr_rectilinear_chunk_grids_are_refused(tmp_path):
    with zarr.config.set({"array.rectilinear_chunks": True}):  # experimental in zarr
        z = zarr.create_array(tmp_path / "r.zarr", shape=(10, 2), chunks=[[3, 7], [2]], dtype="f8")
        with pytest.raises(TypeError, match=r"^x: expected a zarr array with a regular chunk grid"):
            open_source(z, "x")


def test_bad_ranges_and_buffers_are_the_callers_mistake():
    source = open_source(reference((10, 2)), "x")
    with pytest.raises(ValueError, match=r"row range \[8, 11\) is outside \[0, 10\)"):
        source.read([(8, 11)], np.empty((3, 2)))
    with pytest.raises(ValueError, match=r"out has shape \(3, 3\); expected \(3, 2\)"):
        source.read([(0, 3)], np.empty((3, 3)))


# --- Parquet -------------------------------------------------------------------------------


def test_parquet_columns_select_order_and_dimension(tmp_path):
    a, b, c = reference((40,)), reference((40, 2))[:, 0], np.arange(40, dtype=np.int8)
    pq.write_table(pa.table({"a": a, "b": b, "c": c}), tmp_path / "t.parquet", row_group_size=15)
    one = parquet(tmp_path / "t.parquet", "b")
    assert one.shape == (40,) and one.dtype == np.float64 and one.chunks == (15, 15, 10)
    assert_reads(one, b)
    two = parquet(str(tmp_path / "t.parquet"), ["c", "a"])
    assert two.shape == (40, 2) and two.dtype == np.result_type(np.int8, np.int32)
    assert_reads(two, np.column_stack([c, a]).astype(two.dtype))
    every = parquet(tmp_path / "t.parquet")
    assert every.columns == ("a", "b", "c") and every.dtype == np.float64
    assert_reads(every, np.column_stack([a, b, c]))


def test_parquet_bool_and_unsigned_columns(tmp_path):
    flags = np.arange(30) % 3 == 0
    counts = np.arange(30, dtype=np.uint16)
    pq.write_table(pa.table({"f": flags, "n": counts}), tmp_path / "t.parquet", row_group_size=7)
    assert_reads(parquet(tmp_path / "t.parquet", "f"), flags)
    both = parquet(tmp_path / "t.parquet")
    assert both.dtype == np.uint16
    assert_reads(both, np.column_stack([flags, counts]).astype(np.uint16))


def test_parquet_from_pandas_leaves_the_index_out(tmp_path):
    frame = pd.DataFrame({"x": np.arange(5.0), "y": np.arange(5.0) * 2}, index=[4, 3, 2, 1, 0])
    frame.to_parquet(tmp_path / "f.parquet", index=True)
    source = parquet(tmp_path / "f.parquet")
    assert source.columns == ("x", "y")
    assert_reads(source, frame.to_numpy())


def test_parquet_non_numeric_columns_are_named(tmp_path):
    table = pa.table({"x": [1.0, 2.0], "name": ["a", "b"], "y": [3, 4], "t": ["c", "d"]})
    pq.write_table(table, tmp_path / "t.parquet")
    expect = (
        r"expected numeric columns \(boolean, integer or floating point\); got 'name' \(string\)"
    )
    with pytest.raises(
        TypeError, match=expect + r", 't' \(string\); pass columns=\[...\] .* columns=\['x', 'y'\]$"
    ):
        parquet(tmp_path / "t.parquet")
    with pytest.raises(TypeError, match="^data argument 1: " + expect):
        open_source(tmp_path / "t.parquet", "data argument 1")
    with pytest.raises(TypeError, match=expect + "$"):
        parquet(tmp_path / "t.parquet", ["x", "name"])
    assert parquet(tmp_path / "t.parquet", ["y", "x"]).shape == (2, 2)


def test_parquet_missing_column_lists_the_columns(tmp_path):
    pq.write_table(pa.table({"x": [1.0], "y": [2.0]}), tmp_path / "t.parquet")
    with pytest.raises(
        ValueError, match=r"no column 'z' in .*t.parquet; its columns are \['x', 'y'\]"
    ):
        parquet(tmp_path / "t.parquet", ["x", "z"])


@pytest.mark.parametrize(
    ("second", "match"),
    [
        (
            {"x": pa.array([1, 2], pa.int64()), "y": [1.0, 2.0]},
            "column 'x' of .*b.parquet has type int64; a.parquet has double",
        ),
        ({"y": [1.0, 2.0]}, "b.parquet has no column 'x', which a.parquet has"),
    ],
    ids=["type", "missing"],
)
def test_parquet_files_whose_schemas_differ_are_refused(second, match, tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0], "y": [3.0, 4.0]}), tmp_path / "a.parquet")
    pq.write_table(pa.table(second), tmp_path / "b.parquet")
    pq.write_table(pa.table({"x": [5.0], "y": [6.0]}), tmp_path / "c.parquet")
    with pytest.raises(ValueError, match=match):
        parquet(tmp_path)
    assert parquet(tmp_path, "y").shape == (5,)  # the columns that agree are fine


@pytest.mark.parametrize("statistics", [True, False], ids=["statistics", "no statistics"])
def test_parquet_nulls_are_refused(statistics, tmp_path):
    table = pa.table({"x": [1.0, 2.0, 3.0, 4.0], "y": pa.array([1.0, None, 3.0, 4.0])})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2, write_statistics=statistics)
    with pytest.raises(
        ValueError, match=r"column 'y' of .*t.parquet holds 1 null values \(row group 0\)"
    ):
        parquet(tmp_path / "t.parquet")
    assert_reads(parquet(tmp_path / "t.parquet", "x"), np.array([1.0, 2.0, 3.0, 4.0]))


def test_parquet_paths_that_hold_no_data(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file or directory"):
        parquet(tmp_path / "missing.parquet")
    with pytest.raises(
        ValueError, match=r"expected .parquet files in the directory .*; found none"
    ):
        parquet(tmp_path)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=r"could not read .*bad.parquet as Parquet"):
        parquet(tmp_path / "bad.parquet")
    pq.write_table(pa.table({"x": pa.array([], pa.float64())}), tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match=r"^data argument 0: expected at least one row"):
        open_source(tmp_path / "empty.parquet", "data argument 0")


def test_parquet_source_takes_the_arguments_label(tmp_path):
    source = parquet(write_parquet(tmp_path / "pq", reference((60, 2))))
    assert isinstance(source, ParquetSource) and source.label.startswith("mb.parquet(")
    relabelled = open_source(source, "data argument 2")
    assert relabelled.label == "data argument 2" and source.label.startswith("mb.parquet(")
    assert relabelled.chunks == source.chunks


def test_parquet_decodes_each_row_group_once_per_read(tmp_path, monkeypatch):
    ref = reference((60, 2))
    source = parquet(write_parquet(tmp_path / "pq", ref, splits=(30,), row_group_size=10))
    decoded = []
    read_row_group = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        decoded.append(i)
        return read_row_group(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    ranges = [(0, 4), (4, 9), (9, 12), (12, 13), (41, 45), (45, 50)]
    out = np.empty((sum(b - a for a, b in ranges), 2))
    source.read(ranges, out)
    np.testing.assert_array_equal(out, expected(ref, ranges, out.dtype))
    assert decoded == [0, 1, 1]  # groups 0 and 1 of a_0, then group 1 of a_1 (rows 40-49)


@pytest.mark.parametrize("blocked", [["pyarrow", "pyarrow.parquet"], ["pyarrow.parquet"]])
def test_missing_pyarrow_names_the_extra(blocked, tmp_path, monkeypatch):
    path = write_parquet(tmp_path / "pq", reference((60, 2)))
    for name in blocked:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    match = r"^reading Parquet needs pyarrow: pip install 'pymc-minibatch\[parquet\]'$"
    with pytest.raises(ImportError, match=match):
        parquet(path)
    with pytest.raises(ImportError, match=match):
        open_source(path, "x")
    assert is_out_of_core(path)  # recognising a path needs no pyarrow


# --- faults while reading ------------------------------------------------------------------


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_chunk_deleted_after_open_raises(zarr_format, tmp_path):
    ref = reference((40, 4, 2))
    group = zarr.open_group(tmp_path / "g.zarr", mode="w", zarr_format=zarr_format)
    z = group.create_array("sub/x", shape=ref.shape, chunks=(10, 2, 2), dtype=ref.dtype)
    z[...] = ref
    source = open_source(
        zarr.open_array(tmp_path / "g.zarr" / "sub" / "x", mode="r"), "data argument 0"
    )
    assert_reads(source, ref)
    key = z.metadata.encode_chunk_key((1, 1, 0))  # rows 10-19, columns 2-3
    os.remove(tmp_path / "g.zarr" / "sub" / "x" / key)
    where = tmp_path / "g.zarr" / "sub" / "x"
    with pytest.raises(
        SourceError,
        match=rf"(?s)^data argument 0 \(zarr source: zarr array at {re.escape(str(where))}, "
        rf"shape \(40, 4, 2\), float64\): could not read rows \[12, 15\): .*'{key}'",
    ):
        source.read([(12, 15)], np.empty((3, 4, 2)))
    out = np.empty((10, 4, 2))
    source.read([(0, 5), (35, 40)], out)  # the other chunks still read
    np.testing.assert_array_equal(out, np.concatenate([ref[:5], ref[35:]]))


def test_zarr_chunks_never_written_read_as_fill_and_deleted_ones_raise(tmp_path):
    ref = reference((50, 3))
    ref[20:30] = 0.0  # one chunk of fill values: zarr does not store it
    z = write_zarr(tmp_path, ref, chunks=(10, 3))
    assert not (tmp_path / "x.zarr" / "c" / "2" / "0").exists()
    source = open_source(z, "x")
    assert_reads(source, ref)
    os.remove(tmp_path / "x.zarr" / "c" / "4" / "0")
    with pytest.raises(SourceError, match=r"(?s)could not read rows \[0, 50\): .*'c/4/0'"):
        source.read([(0, 50)], np.empty((50, 3)))
    out = np.empty((15, 3))
    source.read([(15, 30)], out)
    np.testing.assert_array_equal(out, ref[15:30])


@pytest.mark.skipif(
    not _compat.ZARR_READ_MISSING_CHUNKS, reason="zarr < 3.2 cannot report missing chunks"
)
def test_zarr_missing_chunk_of_a_memory_store_raises():
    ref = reference((30, 2))
    contents: dict = {}
    z = zarr.create_array(
        zarr.storage.MemoryStore(contents), shape=ref.shape, chunks=(10, 2), dtype="f8"
    )
    z[...] = ref
    source = open_source(z, "x")
    assert_reads(source, ref)
    del contents["c/1/0"]
    with pytest.raises(
        SourceError, match=r"(?s)zarr array at memory://.*ChunkNotFoundError.*'c/1/0'"
    ):
        source.read([(10, 12)], np.empty((2, 2)))


def test_parquet_file_deleted_or_rewritten_after_open_raises(tmp_path):
    ref = reference((80, 2))
    path = write_parquet(tmp_path / "pq", ref, splits=(50,))
    source = open_source(path, "data argument 1")
    assert_reads(source, ref)
    (path / "a_1.parquet").unlink()
    out = np.empty((20, 2))
    with pytest.raises(
        SourceError,
        match=rf"^data argument 1 \(parquet source: Parquet data at {re.escape(str(path))} "
        rf"\(2 files, columns 'c0', 'c1'\), shape \(80, 2\), float64\): could not read rows "
        r"\[40, 60\): FileNotFoundError",
    ) as info:
        source.read([(40, 60)], out)
    assert isinstance(info.value.__cause__, FileNotFoundError)
    source.read([(0, 20)], out)  # the file that is still there reads
    np.testing.assert_array_equal(out, ref[:20])
    # a file rewritten with other rows (same layout) is not read as if it were the old one
    pq.write_table(pa.table({"c0": ref[:50, 1], "c1": ref[:50, 0]}), path / "a_0.parquet", 20)
    with pytest.raises(SourceError, match=r"a_0.parquet changed since the source was opened"):
        source.read([(0, 20)], out)


def test_hdf5_file_closed_after_open_raises(h5):
    ref = reference((30, 2))
    dataset = h5(ref, chunks=(8, 2))
    source = open_source(dataset, "x")
    assert_reads(source, ref)
    dataset.file.close()
    for dtype in ("float64", "float32"):  # read_direct and the cast through a temporary
        with pytest.raises(SourceError, match=r"^x \(hdf5 source: HDF5 dataset /data in .*x.h5"):
            source.read([(0, 4)], np.empty((4, 2), dtype=dtype))


# --- dask on a real cluster ----------------------------------------------------------------


def local_cluster(n_workers: int) -> LocalCluster:
    """Workers in their own processes, on loopback, without a dashboard.

    The scheduler serves HTTP routes even without a dashboard, on port 8787 unless told
    otherwise (``dashboard_address=None`` included), and warns when that port is taken, as it
    is by a second cluster: a random loopback port avoids the clash.
    """
    return LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
    )


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2) as running:
        yield running


@pytest.fixture(scope="module")
def client(cluster):
    # not the default client: each test says which client a source is opened under
    with Client(cluster, set_as_default=False) as connected:
        yield connected


def on_workers_only(ref: np.ndarray):
    """``ref`` as a dask array whose blocks can only be computed on a distributed worker."""

    def check(block):
        distributed.get_worker()  # ValueError outside a worker
        return block

    chunks = ((10, 30, len(ref) - 40), *ref.shape[1:])
    return da.from_array(ref, chunks=chunks).map_blocks(check, dtype=ref.dtype)


def test_dask_reads_on_the_cluster_it_was_opened_under(client):
    ref = reference((103, 4))
    x = on_workers_only(ref)
    with client.as_current():
        source = open_source(x, "x")
    assert isinstance(source, DaskSource) and source.chunks == (10, 30, 63)
    assert_reads(source, ref)  # outside the with: the source remembers its client
    with pytest.raises(SourceError, match=r"^x \(dask source: dask array.*ValueError"):
        open_source(x, "x").read([(0, 3)], np.empty((3, 4)))  # no client: computed here


def test_dask_read_with_a_closed_client_raises(cluster):
    ref = reference((40, 2))
    connected = Client(cluster.scheduler_address, set_as_default=False)
    with connected.as_current():
        source = open_source(da.from_array(ref, chunks=10), "x")
    assert_reads(source, ref)
    connected.close()
    start = time.monotonic()
    with pytest.raises(
        SourceError,
        match=r"could not read rows \[0, 5\): the dask distributed client .* is closed",
    ):
        source.read([(0, 5)], np.empty((5, 2)))
    assert time.monotonic() - start < 5


def assert_fails_in_time(source: DaskSource, match: str) -> SourceError:
    start = time.monotonic()
    with pytest.raises(SourceError, match=match) as info:
        source.read([(0, 5), (20, 25)], np.empty((10, 2)))
    assert time.monotonic() - start < source.timeout + 4
    return info.value


def test_dask_read_from_a_lost_cluster_raises_within_the_timeout():
    ref = reference((40, 2))
    with local_cluster(1) as lost:
        # connected by address, as to a remote cluster: losing it does not close the client
        connected = Client(lost.scheduler_address, set_as_default=False)
        with connected.as_current():
            source = open_source(da.from_array(ref, chunks=10), "x")
        assert source.timeout == 300.0
        assert_reads(source, ref)
        source.timeout = 1.0
        lost.scale(0)  # every worker gone: distributed waits for one forever
        deadline = time.monotonic() + 30
        while connected.scheduler_info()["workers"] and time.monotonic() < deadline:
            time.sleep(0.05)
        error = assert_fails_in_time(
            source, r"^x \(dask source: .*gave no result in 1.0 s .*set the source's timeout"
        )
        assert isinstance(error.__cause__, TimeoutError)
    # The scheduler is gone too: the read times out, or fails sooner when the client notices
    # the lost connection while the read waits (it then cancels its futures).
    assert_fails_in_time(source, r"^x \(dask source: dask array.*could not read rows")
    connected.close()


def test_dask_local_scheduler_needs_no_cluster():
    ref = reference((50, 3))
    with dask.config.set(scheduler="synchronous"):
        source = open_source(da.from_array(ref, chunks=((20, 30), (3,))), "x")
        assert source._client is None
        assert_reads(source, ref)


@pytest.mark.parametrize("offset", [0, 100, 5000])
def test_memmaps_are_read_from_the_file_not_through_the_mapping(offset, tmp_path):
    """Row slices of memmaps at any file offset, and arrays viewing them, read the file."""
    ref = np.arange(4000 * 3, dtype="float32").reshape(4000, 3)
    mm = np.memmap(tmp_path / "a.bin", dtype="float32", mode="w+", shape=ref.shape, offset=offset)
    mm[:] = ref
    mm.flush()
    for view, rows in [(mm, ref), (mm[1234:], ref[1234:]), (np.asarray(mm)[7:900], ref[7:900])]:
        source = open_source(view, "x")
        assert source._file is not None  # the file path, not the mapping
        out = np.empty((30, 3), dtype="float64")
        source.read([(5, 15), (400, 420)], out)
        np.testing.assert_array_equal(out, np.concatenate([rows[5:15], rows[400:420]]))
    column = open_source(mm[:, 1:], "x")  # not contiguous rows: read through the mapping
    assert column._file is None
    out = np.empty((2, 2), dtype="float32")
    column.read([(10, 12)], out)
    np.testing.assert_array_equal(out, ref[10:12, 1:])


def _rss_file_kib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    pytest.skip("no RssFile in /proc/self/status")


def test_reading_a_whole_memmap_leaves_the_resident_set_alone(tmp_path):
    """64 MiB read window by window: the mapping would add ~64 MiB of file pages to the
    process's resident set; file reads add none (the bound is half the file)."""
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype="float64", shape=(2**20, 8))
    big[:] = 1.0
    big.flush()
    del big
    source = open_source(np.load(path, mmap_mode="r"), "x")
    out = np.empty((2**16, 8))
    before = _rss_file_kib()
    for a in range(0, 2**20, 2**16):
        source.read([(a, a + 2**16)], out)
    assert _rss_file_kib() - before < 32 * 1024


def test_a_memmap_whose_file_was_truncated_raises(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(10000.0))
    source = open_source(np.load(path, mmap_mode="r"), "y")
    with open(path, "r+b") as f:
        f.truncate(4000)
    with pytest.raises(SourceError, match=r"y \(memmap source.*shorter than the array"):
        source.read([(9000, 9010)], np.empty(10))
