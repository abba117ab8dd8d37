"""Smoke test of the installed wheel, run from a directory outside the source tree.

``python smoke_wheel.py none|all SOURCE_TREE``: ``minibatch`` must come from site-packages (not
from SOURCE_TREE/src), carry ``py.typed`` and the LICENSE, and run the README's example (read
from the wheel's own metadata) and a fit streamed from a memmap. With ``all`` (every extra
installed) Zarr, HDF5, Parquet and Dask sources are streamed too and the demo's plotting
library imports; with ``none`` Parquet, whose pyarrow no dependency of pymc brings, is refused
by an error naming the extra to install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pymc as pm

import minibatch as mb

EXTRAS = {
    "zarr": "zarr",
    "hdf5": "h5py",
    "parquet": "pyarrow",
    "dask": "dask",
    "demo": "matplotlib",
}


def check_installed(tree: Path) -> None:
    where = Path(mb.__file__).resolve()
    assert "site-packages" in where.parts and not where.is_relative_to(tree / "src"), where
    assert mb.__version__ == importlib.metadata.version("pymc-minibatch")
    assert importlib.resources.files("minibatch").joinpath("py.typed").is_file()
    files = importlib.metadata.distribution("pymc-minibatch").files or []
    assert any(f.name == "LICENSE" for f in files), "LICENSE missing from the wheel"
    print(f"minibatch {mb.__version__} from {where.parent}; pymc {pm.__version__}")


def readme_example() -> None:
    """The README's example, as the wheel's own description has it (10,000 steps)."""
    readme = importlib.metadata.metadata("pymc-minibatch").get_payload()  # type: ignore[attr-defined]
    code = re.findall(r"```python\n(.*?)\n```", readme, flags=re.S)[0]
    start = time.perf_counter()
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    mean = namespace["approx"].mean.eval()
    np.testing.assert_allclose(mean, [1.0, -2.0, 0.5], atol=0.05)
    print(f"README example: w = {np.round(mean, 3)} in {time.perf_counter() - start:.1f} s")


def streamed_fit(name: str, x: object, y: object, n: int) -> None:
    start = time.perf_counter()
    xb, yb = mb.Minibatch(x, y, batch_size=500, window="1MiB")
    with pm.Model():
        w = pm.Normal("w", 0, 10, shape=3)
        pm.Normal("y", xb @ w, 1.0, observed=yb)
        approx = pm.fit(10_000, random_seed=0, progressbar=False)  # as the README
    mean = approx.mean.eval()
    np.testing.assert_allclose(mean, [1.0, -2.0, 0.5], atol=0.05)
    print(f"streamed from {name} ({n} rows): w = {np.round(mean, 3)}", end=" ")
    print(f"in {time.perf_counter() - start:.1f} s")


def streamed(directory: Path, extras: str) -> None:
    n, rng = 200_000, np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=n)
    np.save(directory / "X.npy", x)
    np.save(directory / "y.npy", y)
    mapped = (np.load(directory / "X.npy", mmap_mode="r"), np.load(directory / "y.npy", "r"))
    streamed_fit("memmap", *mapped, n)
    if extras == "none":  # pymc's own dependencies may bring some (h5py, matplotlib with 5.28)
        present = [m for m in EXTRAS.values() if importlib.util.find_spec(m) is not None]
        print(f"without extras, installed by pymc's dependencies: {present or 'none'}")
        assert importlib.util.find_spec("pyarrow") is None, "pyarrow without [parquet]"
        try:
            mb.parquet(directory)
        except ImportError as err:
            assert "pip install 'pymc-minibatch[parquet]'" in str(err), err
            print(f"without extras: {err}")
        else:
            raise AssertionError("mb.parquet worked without pyarrow")
        return
    import dask.array as da
    import h5py
    import matplotlib
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zarr

    z = zarr.create_array(
        store=str(directory / "y.zarr"), shape=(n,), chunks=(20_000,), dtype=y.dtype
    )
    z[:] = y
    with h5py.File(directory / "X.h5", "w") as f:
        f.create_dataset("X", data=x, chunks=(10_000, 3))
    pq.write_table(pa.table({"y": y}), directory / "y.parquet", row_group_size=25_000)
    with h5py.File(directory / "X.h5", "r") as f:
        streamed_fit("HDF5 and Zarr", f["X"], zarr.open_array(str(directory / "y.zarr")), n)
        streamed_fit("HDF5 and Parquet", f["X"], mb.parquet(directory / "y.parquet", "y"), n)
    streamed_fit("Dask and memmap", da.from_array(x, chunks=(20_000, 3)), mapped[1], n)
    print(f"matplotlib {matplotlib.__version__} (the demo extra)")


def main() -> None:
    extras, tree = sys.argv[1], Path(sys.argv[2]).resolve()
    assert extras in ("none", "all"), extras
    assert not Path.cwd().resolve().is_relative_to(tree), "run me outside the source tree"
    check_installed(tree)
    readme_example()
    with tempfile.TemporaryDirectory() as directory:
        streamed(Path(directory), extras)
    print(f"wheel smoke test ({extras} extras): ok")


if __name__ == "__main__":
    main()
