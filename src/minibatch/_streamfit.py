"""Streamed minibatches inside ``pm.fit``: windows refreshed with nothing for the user to do.

PyMC's ``Inference.fit`` and ``Inference.refine`` both run their steps in
``Inference._iterate_with_loss`` / ``_iterate_without_loss``, called once the step function is
compiled (so ``pm.fit(random_seed=...)`` has reseeded the index generators).  Both are wrapped
(installed with the first streamed ``Minibatch``): when the compiled step function reads the
window of a stream, the stream is started before the first step, a :class:`WindowRefresh`
callback is appended to the fit's callbacks for the run, and the reader is stopped when the
run ends, however it ends.  A fresh fit (not ``refine``) also starts every epoch index it
draws from at a fresh epoch, so that ``pm.fit(random_seed=...)`` reproduces its batches.

A reader that fails stops the fit with its :class:`~minibatch.SourceError`, whose ``approx``
attribute holds the approximation fitted so far (``err.approx.sample(...)`` still works).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

from pymc.variational.inference import Inference

from minibatch._schemes import is_epoch_state, reset_epoch_state
from minibatch._sources import SourceError
from minibatch._stream import Stream, stream_of
from minibatch._upstream._patch import patch


class WindowRefresh:
    """The callback that swaps each stream's next window in (``callback(approx, losses, i)``).

    ``pm.fit`` adds it by itself; it is public for loops that call a compiled step function
    directly: call it once after each step (the first call starts the reader threads), and
    :meth:`close` it after the loop.

    Parameters
    ----------
    streams : sequence of Stream
        The streams the loop's compiled function reads (``minibatch._streamfit.streams_in``
        finds them).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> from minibatch._streamfit import streams_in
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> np.save(path, np.arange(1000.0))
    >>> xb = mb.Minibatch(np.load(path, mmap_mode="r"), batch_size=10, window=100)
    >>> draw = pm.compile([], xb, random_seed=0)
    >>> refresh = mb.WindowRefresh(streams_in(draw))
    >>> seen = set()
    >>> for _ in range(100):
    ...     seen.update(draw().tolist())
    ...     refresh(None)  # after each step; the first call starts the reader
    >>> refresh.close()
    >>> len(seen) > 100  # rows from more than one window of 100
    True
    """

    def __init__(self, streams: Sequence[Stream]) -> None:
        self.streams = list(streams)

    def __call__(self, approx: Any, losses: Any = None, i: int | None = None) -> None:
        self.advance(approx, 1)

    def advance(self, approx: Any, steps: int) -> None:
        """Count ``steps`` steps run in one call (which must not run past a window swap)."""
        for stream in self.streams:
            try:
                stream.after_step(steps)
            except SourceError as err:
                err.approx = approx  # type: ignore[attr-defined]
                err.add_note("The fit stopped here; the approximation fitted so far is err.approx.")
                raise

    def close(self) -> None:
        """Stop the reader threads (a later call starts them again)."""
        for stream in self.streams:
            stream.end()


def _inputs_of(function: Any) -> list[Any]:
    """The variables (shared ones included) that a compiled pytensor function reads."""
    maker = getattr(function, "maker", None)
    return [getattr(given, "variable", None) for given in getattr(maker, "inputs", ())]


def streams_in(function: Any) -> list[Stream]:
    """The streams whose windows a compiled pytensor function reads."""
    return streams_of(_inputs_of(function))


def streams_of(variables: Sequence[Any]) -> list[Stream]:
    """The streams whose windows are among ``variables`` (a graph's inputs)."""
    found: dict[int, Stream] = {}
    for var in variables:
        stream = stream_of(var)
        if stream is not None:
            found[id(stream)] = stream
    return list(found.values())


def epoch_states_in(function: Any) -> list[Any]:
    """The epoch states (shared variables) that a compiled pytensor function reads."""
    return [var for var in _inputs_of(function) if is_epoch_state(var)]


@contextlib.contextmanager
def driven(function: Any, fresh: bool) -> Iterator[WindowRefresh]:
    """One run of a compiled step function: a fresh run (not a continuation) starts every
    epoch index it draws from at a fresh epoch; the streams it reads are started before the run
    and stopped after it, however it ends.  Yields the :class:`WindowRefresh` of those streams
    (with none, when it reads none)."""
    if fresh:
        for state in epoch_states_in(function):
            reset_epoch_state(state)
    refresh = WindowRefresh(streams_in(function))
    try:
        for stream in refresh.streams:
            stream.begin(fresh=fresh)
        yield refresh
    finally:
        for stream in refresh.streams:
            stream.end()


def streaming(iterate: Any) -> Any:
    """Wrap ``Inference._iterate_with_loss`` (or ``_without_loss``) to drive the streams."""

    @functools.wraps(iterate)
    def wrapper(self: Inference, s: int, n: int, step_func: Any, *args: Any, **kwargs: Any) -> Any:
        with driven(step_func, fresh=s == 0) as refresh:
            if not refresh.streams:
                return iterate(self, s, n, step_func, *args, **kwargs)
            *rest, callbacks = args
            state = iterate(self, s, n, step_func, *rest, [*callbacks, refresh], **kwargs)
        return state._replace(callbacks=callbacks)

    return wrapper


def install() -> None:
    """Wrap both iteration loops of PyMC's ``Inference`` (idempotent)."""
    patch(Inference, "_iterate_with_loss", streaming)
    patch(Inference, "_iterate_without_loss", streaming)
