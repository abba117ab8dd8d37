"""The batch variable: a TensorVariable with the legacy attributes (``.shared``, refills)."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

from pytensor.compile import SharedVariable
from pytensor.tensor.variable import TensorVariable

from minibatch._gather import cast_source, source_of
from minibatch._index import users
from minibatch._inputs import conform


@dataclass(frozen=True)
class Storage:
    """What the legacy API kept beside a batch: how to refill it, and how much of it to keep."""

    update_shared_f: Any = None
    in_memory_size: Any = None


class BatchVariable(TensorVariable):
    """A batch with the legacy attributes; :class:`minibatch.Minibatch` builds and subclasses it."""

    def astype(self, dtype: Any) -> Any:
        """Cast; the result is still a batch (the stored data is cast, the indices are kept)."""
        if str(dtype) == self.dtype:
            return self
        cast = cast_source(self, str(dtype))
        cast.__class__ = type(self)
        cast.name = self.name
        return cast

    @property
    def minibatch(self) -> BatchVariable:
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
        return source_of(self)

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


def attach_storage(batch: BatchVariable, storage: Storage) -> None:
    """Keep the legacy refill settings with a batch (in ``tag``, which pytensor copies on clone)."""
    batch.tag.minibatch_storage = storage
