"""``Minibatch``: the public class, its call rules and legacy options, and ``align_minibatches``."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from numbers import Real
from typing import Any

import numpy as np
import pytensor

from minibatch import _guards, _observed, _streamfit, _upstream
from minibatch._compat import user_frame
from minibatch._gather import gather
from minibatch._index import add_user, draw_index, index_for, new_rng
from minibatch._inputs import as_data_tensor, check_index_range, check_lengths
from minibatch._pairing import CallSite
from minibatch._schemes import check_scheme, scheme_named
from minibatch._sources import is_out_of_core, open_source
from minibatch._spec import is_spec_entry, parse_spec
from minibatch._stream import DEFAULT_TIMEOUT, Stream
from minibatch._variable import BatchVariable, Storage, attach_storage
from minibatch._window import DEFAULT_WINDOW

_UNSET: Any = object()


class Minibatch(BatchVariable):
    """Random batches of one or more datasets, drawn by one shared index.

    ``Minibatch(*data, batch_size=128)`` returns one batch for one dataset and a tuple for
    several; each batch is a ``Minibatch``, a ``TensorVariable`` that supports any math and
    PyMC's ``observed=``.  The legacy signature ``Minibatch(data, batch_size=128, dtype=None,
    broadcastable=None, name=None, random_seed=None, update_shared_f=None, in_memory_size=None)``
    works too.  Row ``k`` of every batch of one call comes from the same source row, whatever
    seeds PyMC assigns later.  Every bad input is refused here, naming the argument.

    Parameters
    ----------
    *data : array_like, TensorVariable or out-of-core source
        One or more datasets with equal lengths along every subsampled axis: numpy arrays,
        nested lists, pandas objects, pytensor constants or shared variables, ``pm.Data``.
        Floating-point data becomes ``floatX``; integer data keeps its dtype.  Array data is
        copied once into a shared variable (``batch.shared``).  Data bigger than memory is
        streamed instead (see ``window``): numpy memmaps, Zarr arrays, h5py datasets, Dask
        arrays, and Parquet files or directories (a path, or :func:`minibatch.parquet` to
        choose columns); in-memory arrays may join them in one call.
    batch_size : int or list, default 128
        An int subsamples the leading axis.  A list has one entry per leading axis: an int, a
        ``(size, seed)`` pair, ``None`` (keep the axis whole) or one ``Ellipsis`` (keep the axes
        it stands for; later entries address the trailing axes).  Numpy ints are accepted.
    dtype : str, optional
        Cast the data to this dtype instead.
    broadcastable : tuple of bool, optional
        Which axes broadcast.  By default an axis of length 1 that is not subsampled does.
    name : str, optional
        Name of the batch (``name_i`` for the i-th of several).
    random_seed : int, numpy Generator or None, default None
        Seed of the index generators.  Minibatches built with the same explicit int seed and
        batch size over data of the same length share one index, so separate objects stay
        aligned even after PyMC reseeds (the legacy way of aligning them).  The legacy default
        was 42, which aligned separate objects silently; here alignment is asked for with an
        explicit seed, or by building the datasets in one call.
    update_shared_f : callable, optional
        Returns new data for ``batch.update_shared()``.
    in_memory_size : int or list of int | slice | Ellipsis, optional
        Keep only this part of the data (and of every refill) in memory.
    window : int or str, optional
        Stream the data through a window of this many rows, or bytes (``"64MiB"``, for all
        datasets of the call together); default ``"128MiB"`` for out-of-core sources.  Each
        window is a random run of the sources' chunks in random order, so every row has the
        same chance to be in it, and ``total_size`` is the sources' full length.  ``pm.fit``
        reads the next window in a background thread and swaps it in by itself; about two
        windows are in memory at a time.  See ``docs/streaming.md``.
    steps_per_window : int, optional
        Fit steps between window swaps; by default ``ceil(window rows / batch_size)``.
    timeout : float, default 300
        Seconds a fit waits for the next window before it stops with
        :class:`minibatch.SourceError`.
    sampling : {"with_replacement", "without_replacement", "epoch"}, default "with_replacement"
        How each step's rows are drawn, on every subsampled axis, for every dataset of the
        call: independently with replacement (PyMC's scheme); ``batch_size`` distinct rows, a
        uniformly random subset afresh each step; or epochs, passes through a fresh random
        permutation of the rows, each row exactly once per pass (:func:`minibatch.epoch_of`
        counts them; a fresh ``pm.fit`` starts a fresh epoch); when ``batch_size`` does not
        divide N, a batch that straddles two passes can hold a row twice, while each pass is
        still exactly a permutation of all the rows.  All three give an unbiased
        estimate of the full log-likelihood; the last two have less gradient noise
        (``docs/gradient_noise.md``).  The last two need ``batch_size`` at most the number of
        rows, and in-memory data.

    Returns
    -------
    Minibatch or tuple of Minibatch
        One batch for one dataset, a tuple for several.  Use them as ``observed=`` data with
        ``total_size`` set to the full size, so the likelihood is scaled by N / batch.

    Raises
    ------
    TypeError, ValueError
        At construction, naming the argument: a bad batch size or spec, 0-d, empty or
        non-numeric data, lengths that differ on a subsampled axis, data that depends on random
        variables, ambiguous positional arguments.

    Notes
    -----
    Static shapes: the axes that are not subsampled keep their static lengths, which makes each
    step much cheaper (about 3x on the C backend for the seeds' model) but means a batch can only
    be replaced by data with those lengths.  A legacy-form call (a positional or list batch
    size, or any of ``dtype``, ``broadcastable``, ``update_shared_f``, ``in_memory_size``) builds
    the legacy class's shapeless batch instead, which any replacement fits.

    Telling the two signatures apart: a second positional argument that is an int, or a list
    or tuple whose entries are ints, ``(size, seed)`` pairs, ``None`` or ``Ellipsis``, is the
    legacy batch size: ``Minibatch(data, 20)``, ``Minibatch(data, [2, None, 20])``.  Pass a
    list of numbers meant as a second dataset as an array.  Giving a positional batch size and
    ``batch_size=`` both, or a positional batch size after several datasets, is refused.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> import minibatch as mb
    >>> x = np.arange(20.0).reshape(10, 2)
    >>> y = np.arange(10)
    >>> xb, yb = mb.Minibatch(x, y, batch_size=4, random_seed=1)
    >>> isinstance(xb, mb.Minibatch)
    True
    >>> xv, yv = pm.draw([xb, yb], random_seed=2)
    >>> xv.shape, yv.shape
    ((4, 2), (4,))
    >>> bool((xv[:, 0] == 2 * yv).all())  # the same rows of x and y
    True

    In a model, with ``total_size`` the full number of rows:

    >>> with pm.Model() as model:
    ...     w = pm.Normal("w", 0, 1)
    ...     obs = pm.Normal("obs", w * xb[:, 0], 1, observed=yb, total_size=len(y))

    The legacy attributes:

    >>> xb.shared.get_value().shape, xb.minibatch is xb
    ((10, 2), True)
    >>> xb.set_value(np.ones((10, 2)))
    >>> pm.draw(xb, random_seed=0).tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]

    Epochs: five steps of 2 rows pass once through the 10 rows.

    >>> import pytensor
    >>> eb = mb.Minibatch(y, batch_size=2, sampling="epoch")
    >>> draw = pytensor.function([], eb)
    >>> sorted(np.concatenate([draw() for _ in range(5)]).tolist()) == list(range(10))
    True
    >>> mb.epoch_of(eb)
    1
    """

    def __new__(cls, *data: Any, **kwargs: Any) -> Any:
        if not data or "type" in kwargs:  # pytensor cloning, or the copy protocol
            return super().__new__(cls)
        return build(*data, **kwargs)

    def __init__(self, *data: Any, **kwargs: Any) -> None:
        if "type" in kwargs:
            super().__init__(**kwargs)
        elif not data:
            raise TypeError("Minibatch needs at least one dataset: Minibatch(data, batch_size=...)")
        # otherwise __new__ built this batch already

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickled (say in a fresh process): install what building a minibatch installs."""
        self.__dict__.update(state)
        install()


def install() -> None:
    """The workarounds, the model hooks and the guards that minibatch models rely on."""
    _upstream.install()
    _observed.install()
    _guards.install()
    _streamfit.install()


def build(
    *data: Any,
    batch_size: Any = _UNSET,
    dtype: str | None = None,
    broadcastable: Any = None,
    name: str | None = None,
    random_seed: Any = _UNSET,
    update_shared_f: Any = None,
    in_memory_size: Any = None,
    window: Any = None,
    steps_per_window: Any = None,
    timeout: Any = DEFAULT_TIMEOUT,
    sampling: Any = "with_replacement",
) -> Minibatch | tuple[Minibatch, ...]:
    """Build the batches of ``Minibatch(*data, ...)``; the parameters are documented there."""
    given = len(data)
    data, batch_size = _split_positional_batch_size(data, batch_size)
    positional = len(data) < given
    if not data:
        raise TypeError("Minibatch needs at least one dataset: Minibatch(data, batch_size=...)")
    install()
    seed = None if random_seed is _UNSET else random_seed
    spec = 128 if batch_size is _UNSET else batch_size
    ndim = _rank(data[0])
    axes = parse_spec(spec, ndim, seed)
    open_axes = [a.axis for a in axes]
    legacy = positional or isinstance(spec, list | tuple) or dtype is not None
    legacy |= any(v is not None for v in (broadcastable, update_shared_f, in_memory_size))
    stream = None
    tensors: list[Any]
    if window is not None or any(is_out_of_core(d) for d in data):
        if scheme_named(sampling) != "with_replacement":
            raise ValueError(
                f"sampling={sampling!r} is for in-memory data; a streamed Minibatch (an "
                "out-of-core source, or window=...) draws with replacement within each window, "
                "and every window is a fresh random run of the data's chunks "
                "(docs/streaming.md). Drop sampling=..., or load the data into memory first."
            )
        _check_streamable(
            axes,
            {
                "broadcastable": broadcastable,
                "update_shared_f": update_shared_f,
                "in_memory_size": in_memory_size,
            },
        )
        stream = _stream(data, axes[0].size, dtype, window, steps_per_window, timeout, seed)
        tensors = list(stream.tensors(open_axes))
    else:
        tensors = [
            as_data_tensor(
                d, f"data argument {i}", open_axes, dtype, in_memory_size, broadcastable, legacy
            )
            for i, d in enumerate(data)
        ]
    shapes = check_lengths(tensors, open_axes)
    check_index_range(shapes, open_axes)
    for a in axes:
        check_scheme(sampling, a.size, shapes[0][a.axis])
    batches: list[Any] = tensors
    indices = [
        _streamed_index(stream, tensors[0], a.size, a.seed)
        if stream is not None and a.axis == 0
        else index_for(tensors[0], shapes[0][a.axis], a.size, a.seed, a.axis, sampling)
        for a in axes
    ]
    for ax, index in zip(axes, indices, strict=True):
        batches = gather(index, batches, ax.axis)
    storage = Storage(update_shared_f, in_memory_size)
    site = user_frame()
    for i, (batch, tensor) in enumerate(zip(batches, tensors, strict=True)):
        batch.__class__ = Minibatch
        batch.name = _name(name, tensor, i, len(batches))
        batch.tag.call_site = CallSite(site, i, len(batches))
        batch.tag.user_named = name is not None
        attach_storage(batch, storage)
        for index in indices:
            add_user(index, batch)
    return batches[0] if len(batches) == 1 else tuple(batches)


def _stream(
    data: tuple, batch_size: int, dtype: Any, window: Any, steps: Any, timeout: Any, seed: Any
) -> Stream:
    """The stream of a call whose data are (or include) out-of-core sources."""
    sources = [open_source(d, f"data argument {i}") for i, d in enumerate(data)]
    for i, source in enumerate(sources[1:], start=1):
        if source.shape[0] != sources[0].shape[0]:
            raise ValueError(
                f"data argument {i} ({source.describe()}) has {source.shape[0]} rows but "
                f"argument 0 ({sources[0].describe()}) has {sources[0].shape[0]}; every dataset "
                "of one Minibatch must have the same number of rows."
            )
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1
    ):
        raise ValueError(f"steps_per_window must be a positive int or None; got {steps!r}")
    if isinstance(timeout, bool | np.bool_) or not isinstance(timeout, Real) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}")
    dtypes = [
        dtype or (pytensor.config.floatX if s.dtype.kind == "f" else s.dtype) for s in sources
    ]
    return Stream(
        sources,
        dtypes,
        DEFAULT_WINDOW if window is None else window,
        batch_size,
        None if steps is None else int(steps),
        float(timeout),
        seed,
    )


def _streamed_index(stream: Stream, data: Any, size: int, seed: Any) -> Any:
    """The row index of a streamed call: never shared with another call (it draws positions in
    this stream's window), its generator known to the stream (which seeds windows from it)."""
    stream.index_rng = new_rng(seed)
    return draw_index(data, size, stream.index_rng, 0)


def _check_streamable(axes: list, options: dict[str, Any]) -> None:
    """Refuse what a streamed minibatch cannot honour, naming the argument."""
    for name, value in options.items():
        if value is not None:
            raise TypeError(
                f"{name} is a legacy option for in-memory data; a streamed Minibatch (an "
                "out-of-core source, or window=...) reads its windows itself. Drop "
                f"{name}=..., or load the data into memory first."
            )
    if axes[0].axis != 0:
        raise ValueError(
            "a streamed Minibatch reads windows of rows, so batch_size must subsample the "
            f"first axis; this spec leaves it whole (first subsampled axis: {axes[0].axis})"
        )


def _signature() -> inspect.Signature:
    """``Minibatch(*data, batch_size=128, ...)`` as ``help()`` and the docs show it.

    ``Minibatch.__new__`` takes ``*data, **kwargs`` (it tells a legacy call from a new one and
    pytensor's cloning from both); the keywords it accepts are ``build``'s.

    >>> str(_signature()).startswith("(*data, batch_size=128, dtype=None")
    True
    """
    shown = {"batch_size": 128, "random_seed": None}
    return inspect.Signature(
        [
            parameter.replace(
                default=shown.get(parameter.name, parameter.default),
                annotation=inspect.Parameter.empty,
            )
            for parameter in inspect.signature(build).parameters.values()
        ]
    )


Minibatch.__signature__ = _signature()  # type: ignore[attr-defined]


def _split_positional_batch_size(data: tuple, batch_size: Any) -> tuple[tuple, Any]:
    if len(data) < 2 or not _looks_like_spec(data[1]):
        return data, batch_size
    if len(data) > 2:
        raise TypeError(
            f"argument 1 ({data[1]!r}) reads as a legacy batch size, but more datasets follow it; "
            "write Minibatch(x, y, ..., batch_size=...), or pass numbers meant as data as an array"
        )
    if batch_size is not _UNSET:
        raise TypeError(
            f"batch size given twice: positionally ({data[1]!r}) and as batch_size={batch_size!r}; "
            "pass numbers meant as a second dataset as an array"
        )
    return data[:1], data[1]


def _looks_like_spec(value: Any) -> bool:
    if isinstance(value, list | tuple):
        return len(value) > 0 and all(is_spec_entry(v) for v in value)
    return is_spec_entry(value) and value is not None and value is not Ellipsis


def _rank(value: Any) -> int:
    ndim = getattr(value, "ndim", None)
    if ndim is None:
        ndim = np.ndim(value.to_numpy() if hasattr(value, "to_numpy") else value)
    return int(ndim)


def _name(name: str | None, tensor: Any, i: int, count: int) -> str:
    if name is not None:
        return name if count == 1 else f"{name}_{i}"
    return f"{tensor.name}_minibatch" if tensor.name else f"minibatch_{i}"


def align_minibatches(batches: Iterable[Any] | None = None) -> None:
    """Kept for legacy code; alignment now holds by construction, so this checks and returns.

    The legacy API aligned separately built Minibatch objects by resetting generators that had
    equal seeds, and ``pm.fit``'s reseeding undid it.  Now the datasets of one call share one
    index, and separate calls with the same int ``random_seed`` and batch size over data of the
    same length share one index too, whatever PyMC reseeds.  There is nothing left to reset;
    arguments that are not minibatches are still refused, as before.

    Parameters
    ----------
    batches : iterable of Minibatch, optional
        The minibatches to check.

    Raises
    ------
    TypeError
        An entry is not a ``Minibatch``.

    Examples
    --------
    >>> import numpy as np, minibatch as mb
    >>> xb = mb.Minibatch(np.arange(10.0), 2, random_seed=3)  # legacy form
    >>> yb = mb.Minibatch(np.arange(10.0), 2, random_seed=3)  # same seed: the same index
    >>> mb.align_minibatches([xb, yb])  # nothing left to do
    >>> mb.align_minibatches([np.zeros(3)])
    Traceback (most recent call last):
    ...
    TypeError: array([0., 0., 0.]) is not a Minibatch
    """
    for batch in batches or ():
        if not isinstance(batch, Minibatch):
            raise TypeError(f"{batch!r} is not a Minibatch")
