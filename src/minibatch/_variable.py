"""The ``Minibatch`` variable: a TensorVariable that is a batch, with the legacy attributes."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from pytensor.compile import SharedVariable
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.shape import SpecifyShape
from pytensor.tensor.variable import TensorVariable

from minibatch._gather import MinibatchGatherOp, cast_source
from minibatch._index import users


@dataclass(frozen=True)
class Storage:
    """What the legacy API kept beside a batch: how to refill it, and how much of it to keep."""

    update_shared_f: Any = None
    in_memory_size: Any = None


class Minibatch(TensorVariable):
    """Random batches of one or more datasets, drawn by one shared index.

    ``Minibatch(*data, batch_size=128)`` returns one batch for one dataset and a tuple for
    several; each batch is a ``Minibatch``, a ``TensorVariable`` that supports any math and
    PyMC's ``observed=``.  The legacy signature ``Minibatch(data, batch_size=128, dtype=None,
    broadcastable=None, name=None, random_seed=None, update_shared_f=None, in_memory_size=None)``
    works too.  Row ``k`` of every batch of one call comes from the same source row, whatever
    seeds PyMC assigns later.  Every bad input is refused here, naming the argument.

    Parameters
    ----------
    *data : array_like or TensorVariable
        One or more datasets with equal lengths along every subsampled axis: numpy arrays,
        nested lists, pandas objects, pytensor constants or shared variables, ``pm.Data``.
        Floating-point data becomes ``floatX``; integer data keeps its dtype.  Array data is
        copied once into a shared variable (``batch.shared``).
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
    """

    def __new__(cls, *data: Any, **kwargs: Any) -> Any:
        if not data or "type" in kwargs:  # pytensor cloning, or the copy protocol
            return super().__new__(cls)
        from minibatch._minibatch import build

        return build(*data, **kwargs)

    def __init__(self, *data: Any, **kwargs: Any) -> None:
        if "type" in kwargs:
            super().__init__(**kwargs)
        elif not data:
            raise TypeError("Minibatch needs at least one dataset: Minibatch(data, batch_size=...)")
        # otherwise __new__ built this batch already

    def astype(self, dtype: Any) -> Any:
        """Cast; the result is still a batch (the stored data is cast, the indices are kept)."""
        if str(dtype) == self.dtype:
            return self
        cast = cast_source(self, str(dtype))
        cast.name = self.name
        return cast

    @property
    def minibatch(self) -> Minibatch:
        """The batch itself (legacy: the random slice that training uses)."""
        return self

    @property
    def shared(self) -> SharedVariable:
        """The shared variable that stores the full data this batch is drawn from."""
        source, _ = self._source()
        if not isinstance(source, SharedVariable):
            raise AttributeError(
                f"{self.name or 'this minibatch'} is drawn from {source}, which is not stored in "
                "a shared variable; build the Minibatch from an array or a pm.Data container."
            )
        return source

    def _source(self) -> tuple[Any, list[tuple[int, Any]]]:
        """The stored data under the gathers (and casts), and ``(axis, index)`` of each gather."""
        source: Any = self
        gathers = []
        while source.owner is not None:
            node = source.owner
            if isinstance(node.op, MinibatchGatherOp):
                gathers.append((node.op.axis, node.inputs[0]))
                source = node.inputs[node.outputs.index(source)]
            elif isinstance(node.op, SpecifyShape) or (
                isinstance(node.op, Elemwise) and len(node.inputs) == 1  # a cast
            ):
                source = node.inputs[0]
            else:
                break
        return source, gathers

    @property
    def in_memory_size(self) -> Any:
        """The part of each new dataset that is kept in memory (legacy ``in_memory_size``)."""
        return self._storage.in_memory_size

    @property
    def _storage(self) -> Storage:
        return getattr(self.tag, "minibatch_storage", Storage())

    def set_value(self, value: Any) -> None:
        """Replace the stored data; batches come from the new data from the next draw on.

        ``value`` may have another length along the subsampled axes, unless another minibatch
        is drawn by the same index (one call's datasets, or equal int seeds): they must keep
        equal lengths to stay aligned.  Every other axis and the dtype kind must match.  A
        misfit leaves the old data in place and raises a ``ValueError`` / ``TypeError`` saying
        what differs.  An inferred ``total_size`` follows the new length; an explicit one does not.
        """
        from minibatch._inputs import conform

        shared = self.shared
        _, gathers = self._source()
        new = conform(value, shared, [axis for axis, _ in gathers], self._storage.in_memory_size)
        old = shared.get_value(borrow=True).shape
        for axis, index in gathers:
            if new.shape[axis] != old[axis]:
                self._check_index_is_ours(index, axis, new.shape[axis], old[axis])
        shared.set_value(new, borrow=True)

    def _check_index_is_ours(self, index: Any, axis: int, new: int, old: int) -> None:
        """A new length is fine only if no other minibatch is drawn by the same index."""
        gc.collect()  # graphs are cyclic: dropped minibatches linger until collected
        shared = self.shared
        others = {u.name for u in users(index) if u._source()[0] is not shared}
        if index.owner.inputs[0] is not shared or others:
            raise ValueError(
                f"new data has {new} entries along axis {axis}, not {old}, but this minibatch "
                f"shares its index with {sorted(others) or 'another minibatch'} (built in the "
                "same call, or with the same int random_seed and batch size), which keeps them "
                "aligned; the old data is kept. Refill them with data of the old length, or build "
                "them again."
            )

    def update_shared(self) -> None:
        """Refill the stored data from ``update_shared_f()`` (legacy API)."""
        update = self._storage.update_shared_f
        if update is None:
            raise ValueError(
                "update_shared needs update_shared_f, given when building the Minibatch"
            )
        self.set_value(update())


def attach_storage(batch: Minibatch, storage: Storage) -> None:
    """Keep the legacy refill settings with a batch (in ``tag``, which pytensor copies on clone)."""
    batch.tag.minibatch_storage = storage
