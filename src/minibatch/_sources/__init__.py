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

from minibatch._sources._base import Source, SourceError
from minibatch._sources._open import is_out_of_core, open_source
from minibatch._sources._parquet import parquet

__all__ = ["Source", "SourceError", "is_out_of_core", "open_source", "parquet"]
