"""A streamed minibatch: sources too big for memory, seen through a window refreshed in the
background.

One :class:`Stream` serves one ``Minibatch`` call: it holds one shared variable per source,
each holding the same ``W`` rows (a window, see ``_window``), and the shared index draws the
batch from those rows.  During a fit (``_streamfit`` drives it) a single reader thread reads
the next window while the optimiser steps; every ``steps_per_window`` steps the new window
replaces the old one with ``set_value`` (a pointer swap), and the retired window's buffers
are where the reader writes the window after next: 64-byte aligned (JAX uses them in place on
a CPU) and allocated once.  Memory: two windows (the one in use and the one being read) plus
what a source's decoder holds for one chunk.

The windows of a fit are reproducible: a fresh fit seeds the window generator from the index's
own generator, which ``pm.fit(random_seed=...)`` has just reseeded, and reads its first window
from that seed before the first step.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytensor
from pytensor.compile import SharedVariable

from minibatch._sources import Source, SourceError
from minibatch._storage import aligned_empty
from minibatch._window import block_bounds, plan, window_rows

DEFAULT_TIMEOUT = 300.0


class Stream:
    """The windows of one ``Minibatch`` call's sources (see the module notes).

    Parameters
    ----------
    sources : sequence of Source
        The call's data, with equal numbers of rows.
    dtypes : sequence of str
        The stored dtype of each source.
    window : int or str
        Rows per window, or bytes (``"64MiB"``) for all sources together.
    batch_size : int
        The batch size, for the default ``steps_per_window``.
    steps_per_window : int, optional
        Steps between window refreshes; by default ``ceil(W / batch_size)``, so that each row
        of a window is drawn about once.
    timeout : float
        Seconds to wait for a window before the fit stops with a :class:`SourceError`.
    seed : int, Generator or None
        Seed of the window generator outside fits (the first window's rows).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        dtypes: Sequence[Any],
        window: Any,
        batch_size: int,
        steps_per_window: int | None,
        timeout: float,
        seed: Any,
    ) -> None:
        self.sources = list(sources)
        self.dtypes = [np.dtype(d) for d in dtypes]
        self.n_rows = int(self.sources[0].shape[0])
        row_bytes = sum(
            int(np.prod(s.shape[1:], dtype=np.int64)) * d.itemsize
            for s, d in zip(self.sources, self.dtypes, strict=True)
        )
        self.window_rows = window_rows(window, row_bytes, self.n_rows)
        self.window_bytes = self.window_rows * row_bytes
        self.bounds = block_bounds([s.chunks for s in self.sources], self.n_rows, self.window_rows)
        self.steps_per_window = (
            -(-self.window_rows // batch_size) if steps_per_window is None else steps_per_window
        )
        self.timeout = float(timeout)
        for source in self.sources:  # a source that can wait (a cluster) waits no longer
            if hasattr(source, "timeout"):
                source.timeout = self.timeout
        self.rng = np.random.default_rng(seed).spawn(1)[0]  # not the index's own stream
        self.shared: list[SharedVariable] = []
        self.index_rng: SharedVariable | None = None
        self._executor: cf.ThreadPoolExecutor | None = None
        self._next: cf.Future | None = None
        self._spare: list[np.ndarray] | None = None  # the retired window's buffers
        self._steps = 0
        self.windows = 0  # windows read so far
        self.read_seconds = 0.0  # time the reader spent reading them
        self.wait_seconds = 0.0  # time the fit spent waiting for the reader

    @property
    def static(self) -> bool:
        """Whether one window holds all the rows (nothing to stream)."""
        return self.window_rows >= self.n_rows

    def describe(self) -> str:
        """What is streamed, through how large a window."""
        kinds = ", ".join(s.describe() for s in self.sources)
        return (
            f"{self.n_rows} rows of {kinds} through a window of {self.window_rows} rows "
            f"({self.window_bytes / 2**20:.1f} MiB)"
        )

    def read(self, into: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Read one window with the window generator: one aligned array per source, written
        into the arrays ``into`` when given (the retired window's)."""
        ranges = plan(self.bounds, self.window_rows, self.rng)
        start = time.perf_counter()
        arrays = []
        for i, (source, dtype) in enumerate(zip(self.sources, self.dtypes, strict=True)):
            shape = (self.window_rows, *source.shape[1:])
            out = into[i] if into is not None else aligned_empty(shape, dtype)
            try:
                source.read(ranges, out)
            except SourceError:
                raise
            except Exception as err:
                raise SourceError(f"reading a window of {source.describe()} failed: {err}") from err
            # a sum is NaN when a value is (or inf meets -inf): no temporary of the window's size
            if out.dtype.kind == "f" and np.isnan(out.sum()) and np.isnan(out).any():
                raise SourceError(
                    f"{source.label} ({source.describe()}) has NaN entries in rows read for a "
                    "window; a minibatch draws them as data. Drop or fill those rows in the "
                    "source."
                )
            arrays.append(out)
        self.read_seconds += time.perf_counter() - start
        self.windows += 1
        return arrays

    def tensors(self, open_axes: Sequence[int]) -> list[Any]:
        """The shared variables, holding a first window (built once, at construction)."""
        for array in self.read():
            shape = tuple(None if axis in open_axes else n for axis, n in enumerate(array.shape))
            shared = pytensor.shared(array, shape=shape, borrow=True)
            shared.tag.minibatch_stream = self
            self.shared.append(shared)
        return self.shared

    # --- driven by a fit (``_streamfit``) -------------------------------------------------

    def begin(self, fresh: bool) -> None:
        """Start (``fresh``) or resume a fit: seed and read a first window, start the reader."""
        if self.static:
            return
        self.end()  # a reader a loop of one's own started is replaced, not left running
        if fresh:
            self._steps = 0
            if self.index_rng is not None:
                state = copy.deepcopy(self.index_rng.get_value(borrow=True))
                self.rng = np.random.default_rng(np.random.default_rng(state).integers(2**63))
            self._swap(self.read(self._take_spare()))
        self._executor = cf.ThreadPoolExecutor(1, thread_name_prefix="minibatch-window")
        self._prefetch()

    @property
    def to_refresh(self) -> int:
        """Steps until the next window is swapped in."""
        return self.steps_per_window - self._steps % self.steps_per_window

    def after_step(self, steps: int = 1) -> None:
        """Count ``steps`` steps (one call's); every ``steps_per_window`` steps, swap in the
        next window.  A call must not run past a swap (:attr:`to_refresh`).

        Outside ``pm.fit`` (a loop of one's own) the first call starts the reader.
        """
        if self.static:
            return
        if self._next is None:
            self.begin(fresh=False)
        if steps > self.to_refresh:
            raise ValueError(f"{steps} steps run past the next window, due in {self.to_refresh}")
        self._steps += steps
        if self._steps % self.steps_per_window:
            return
        start, pending = time.perf_counter(), self._next
        assert pending is not None  # begin() submitted it
        try:
            arrays = pending.result(timeout=self.timeout)
        except cf.TimeoutError:
            raise SourceError(
                f"the next window of {self.describe()} was not read within {self.timeout:g} s "
                "(Minibatch(timeout=...)); is the source still reachable?"
            ) from None
        finally:
            self.wait_seconds += time.perf_counter() - start
        self._swap(arrays)
        self._prefetch()

    def end(self) -> None:
        """Stop the reader (a read in progress finishes on its own and is dropped)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor, self._next = None, None

    def _prefetch(self) -> None:
        assert self._executor is not None
        self._next = self._executor.submit(self.read, self._take_spare())

    def _take_spare(self) -> list[np.ndarray] | None:
        spare, self._spare = self._spare, None
        return spare

    def _swap(self, arrays: list[np.ndarray]) -> None:
        """Put ``arrays`` in the shared variables; the retired window's arrays become the spare
        that the next read fills: two windows in all, with no allocation per window.  Every
        step that read the retired arrays has returned by then (a fit fetches each step's
        loss or parameters before its callbacks run)."""
        retired = [shared.get_value(borrow=True) for shared in self.shared]
        for shared, array in zip(self.shared, arrays, strict=True):
            shared.set_value(array, borrow=True)
        if all(
            r.shape == a.shape and r.dtype == a.dtype for r, a in zip(retired, arrays, strict=True)
        ):
            self._spare = retired


def stream_of(var: Any) -> Stream | None:
    """The stream whose window ``var`` (a stored-data variable) holds, if any."""
    return getattr(getattr(var, "tag", None), "minibatch_stream", None)
