"""h5py datasets of open HDF5 files."""

from __future__ import annotations

from typing import Any

import numpy as np

from minibatch._sources._base import Source, _regular


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
