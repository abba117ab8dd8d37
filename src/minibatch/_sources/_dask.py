"""Dask arrays, computed on the active scheduler (a distributed cluster: with a timeout)."""

from __future__ import annotations

import sys
import time
from contextlib import suppress
from typing import Any

import numpy as np

from minibatch._sources._base import Source, _DetectedError


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


def _distributed_client(array: Any) -> Any | None:
    """The distributed client that would compute ``array`` now, or None for a local scheduler."""
    if "distributed" not in sys.modules:  # no client can exist
        return None
    import dask.base

    scheduler = dask.base.get_scheduler(collections=[array])
    owner = getattr(scheduler, "__self__", None)  # a client's scheduler is its bound ``get``
    return owner if type(owner).__name__ == "Client" and hasattr(owner, "compute") else None
