"""Sampling schemes other than PyMC's (positions drawn with replacement): two index draws.

:class:`SubsetDraw` draws ``size`` *distinct* positions of ``[0, n)``: a uniformly random subset,
fresh at every step.  It draws ``size`` positions with replacement, then redraws the repeats
(every occurrence of a value after its first) until none is left.  The rule looks only at
which draws are equal, so relabelling the rows by any permutation leaves the distribution of
the result unchanged; a distribution on ``size``-subsets that every permutation preserves is
the uniform one.  Each row is in a batch with probability exactly ``size / n``.  Expected work
is ``O(size)`` per step while ``size`` is well under ``n`` (the repeats are ``~size**2 / 2n``).

:class:`EpochDraw` walks through a permutation of ``[0, n)``, ``size`` positions per step, and
shuffles again when it runs out: every row is drawn exactly once per epoch.  The state is an
int64 vector ``[position, epochs started, *permutation]`` held in a shared variable next to the
generator.  A batch that crosses the end of an epoch takes the last rows of the old permutation
and the first rows of the new one (the same row can then appear twice in that batch, once per
epoch).  Work per step is ``O(size)`` plus an ``O(n)`` shuffle once per epoch, when the Op
works in place (:func:`draw_inplace`, a rewrite like pytensor's ``random_make_inplace``;
the C and Numba backends run it).  JAX arrays are immutable and pytensor's JAX linker donates
no buffers, so there the state is copied every step (8 bytes a row).

Both are Ops that consume a numpy Generator (``RNGConsumerOp``, not ``RandomVariable``):
PyMC's logp machinery refuses random variables in a logp graph other than its own
``MinibatchIndexRV``, but has no objection to an Op that is not a ``RandomVariable``.  Each has
a ``perform`` (the C backend), a Numba implementation (the same numbers from the same
generator state) and a JAX one (pytensor's JAX generator: a key, split once per step).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Apply, Variable
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.tensor.random.op import RNGConsumerOp
from pytensor.tensor.random.type import RandomGeneratorType
from pytensor.tensor.random.utils import custom_rng_deepcopy
from pytensor.tensor.type import TensorType

SCHEMES = ("with_replacement", "without_replacement", "epoch")
_ONCE = {
    "without_replacement": "draws each row at most once per batch",
    "epoch": (
        "passes through a permutation of all the rows, each row exactly once per pass (a batch "
        "that straddles two passes, when batch_size does not divide N, can hold a row twice)"
    ),
}


def scheme_named(sampling: Any) -> str:
    """``sampling``, checked to name a scheme."""
    if not isinstance(sampling, str) or sampling not in SCHEMES:
        raise ValueError(
            f"sampling must be one of {', '.join(map(repr, SCHEMES))}; got {sampling!r}"
        )
    return sampling


def check_scheme(sampling: Any, batch_size: int, length: int) -> str:
    """``sampling`` checked against the batch size and the length of a subsampled axis."""
    if scheme_named(sampling) != "with_replacement" and batch_size > length:
        raise ValueError(
            f"sampling={sampling!r} {_ONCE[sampling]}, so batch_size "
            f"({batch_size}) must not exceed the number of rows ({length}); use "
            "sampling='with_replacement' for batches larger than the data"
        )
    return sampling


class _DrawOp(RNGConsumerOp):
    """Shared parts: ``size`` positions, optionally working in place on the inputs.

    An ``RNGConsumerOp`` with its ``update``, through which pymc 6 finds (and ``pm.fit``'s
    ``random_seed`` reseeds) the generator; pymc 5.28 also reads its ``default_update``.
    """

    __props__ = ("size", "inplace")

    def __init__(self, size: int, inplace: bool = False) -> None:
        self.size = int(size)
        self.inplace = inplace

    def update(self, node: Apply) -> dict[Variable, Variable]:
        return {node.inputs[0]: node.outputs[0]}

    def infer_shape(self, *args: Any) -> list[Any]:
        # (fgraph, node, shapes) on pytensor 2.38, (node, shapes) on pytensor 3
        node, shapes = args[-2], args[-1]
        return [*shapes[: len(node.outputs) - 1], (pt.constant(self.size, dtype="int64"),)]

    def _checked(self, rng: Any, n: Any) -> tuple[Variable, Variable]:
        register_backends()
        if not isinstance(rng.type, RandomGeneratorType):
            raise TypeError(f"{type(self).__name__} needs a numpy Generator, not {rng.type}")
        n = pt.as_tensor_variable(n, dtype="int64")
        if n.type.ndim != 0:
            raise TypeError(f"n must be a scalar, not {n.type}")
        return rng, n

    def _index_type(self) -> TensorType:
        return TensorType("int64", shape=(self.size,))


class SubsetDraw(_DrawOp):
    """``size`` distinct positions of ``[0, n)``: inputs ``(rng, n)``, outputs ``(rng, index)``."""

    def __str__(self) -> str:
        return f"SubsetDraw{{size={self.size}, inplace={self.inplace}}}"

    def make_node(self, *inputs: Any) -> Apply:
        rng, n = self._checked(*inputs)
        if self.inplace:
            self.destroy_map = {0: [0]}
        return Apply(self, [rng, n], [rng.type(), self._index_type()()])

    def perform(self, node: Apply, inputs: Sequence[Any], outputs: list[list[Any]]) -> None:
        rng, n = inputs
        if not self.inplace:
            rng = custom_rng_deepcopy(rng)
        outputs[0][0] = rng
        outputs[1][0] = distinct_positions(rng, int(n), self.size)


def _later_repeats(index: np.ndarray) -> np.ndarray:
    """Mask of the entries equal to an earlier entry (a stable sort keeps first ones first)."""
    order = np.argsort(index, kind="mergesort")
    ranked = index[order]
    repeat = np.zeros(index.shape[0], dtype=np.bool_)
    repeat[order[1:]] = ranked[1:] == ranked[:-1]
    return repeat


def distinct_positions(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` distinct positions of ``[0, n)``, uniformly random as a set (see module docs).

    >>> pos = distinct_positions(np.random.default_rng(0), 10, 10)
    >>> sorted(pos.tolist()) == list(range(10))
    True
    """
    index = rng.integers(0, n, size=size, dtype=np.int64)
    repeat = _later_repeats(index)
    while repeat.any():
        index[repeat] = rng.integers(0, n, size=int(repeat.sum()), dtype=np.int64)
        repeat = _later_repeats(index)
    return index


class EpochDraw(_DrawOp):
    """Epochs: inputs ``(rng, state, n)``, outputs ``(rng, state, index)``; see module docs."""

    def __str__(self) -> str:
        return f"EpochDraw{{size={self.size}, inplace={self.inplace}}}"

    def make_node(self, *inputs: Any) -> Apply:
        rng, state, n = inputs
        rng, n = self._checked(rng, n)
        state = pt.as_tensor_variable(state)
        if state.type.dtype != "int64" or state.type.ndim != 1:
            raise TypeError(f"state must be an int64 vector, not {state.type}")
        if self.inplace:
            self.destroy_map = {0: [0], 1: [1]}
        return Apply(self, [rng, state, n], [rng.type(), state.type(), self._index_type()()])

    def perform(self, node: Apply, inputs: Sequence[Any], outputs: list[list[Any]]) -> None:
        rng, state, n = inputs
        n = int(n)
        if state.shape[0] != n + 2:  # new data of another length: start afresh
            state = fresh_state(n, epochs=int(state[1]) if state.shape[0] >= 2 else 0)
        elif not self.inplace:
            state = state.copy()
        if not self.inplace:
            rng = custom_rng_deepcopy(rng)
        outputs[0][0] = rng
        outputs[2][0] = epoch_step(rng, state, self.size)
        outputs[1][0] = state


def fresh_state(n: int, epochs: int = 0) -> np.ndarray:
    """The state before the first step: the permutation used up (a shuffle comes first)."""
    state = np.empty(n + 2, dtype=np.int64)
    state[0], state[1] = n, epochs
    state[2:] = np.arange(n)
    return state


def epoch_step(rng: np.random.Generator, state: np.ndarray, size: int) -> np.ndarray:
    """Take the next ``size`` positions of ``state``'s permutation, shuffling when it runs out.

    ``state`` (``[position, epochs started, *permutation]``) is advanced in place.

    >>> state = fresh_state(5)
    >>> rng = np.random.default_rng(0)
    >>> rows = np.concatenate([epoch_step(rng, state, 5) for _ in range(3)])
    >>> [sorted(rows[i : i + 5].tolist()) for i in (0, 5, 10)]
    [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]]
    >>> int(state[1])
    3
    """
    position = int(state[0])
    perm = state[2:]
    n = perm.shape[0]
    if position + size <= n:
        state[0] = position + size
        return perm[position : position + size].copy()
    left = n - position
    index = np.empty(size, dtype=np.int64)
    index[:left] = perm[position:]
    rng.shuffle(perm)
    index[left:] = perm[: size - left]
    state[0] = size - left
    state[1] += 1
    return index


def epochs_completed(state: np.ndarray) -> int:
    """Whole passes over the data finished, from an epoch state."""
    started, position, n = int(state[1]), int(state[0]), state.shape[0] - 2
    return max(started - 1 + (position >= n), 0)


@node_rewriter([SubsetDraw, EpochDraw], inplace=True)
def draw_inplace(fgraph: Any, node: Apply) -> list[Any] | None:
    """Our draws made to work in place (generator and state), as pytensor does for its RVs."""
    op = node.op
    if op.inplace:
        return None
    return type(op)(op.size, inplace=True).make_node(*node.inputs).outputs


@functools.cache
def register_backends() -> None:
    """The in-place rewrite (tagged as pytensor's own), and the Numba and JAX implementations."""
    optdb.register(
        "minibatch_draw_inplace",
        dfs_rewriter(draw_inplace, ignore_newtrees=True),
        "fast_run",
        "inplace",
        position=50.91,
    )
    if importlib.util.find_spec("numba") is not None:
        _register_numba()
    if importlib.util.find_spec("jax") is not None:
        _register_jax()


def _register_numba() -> None:
    from pytensor.link.numba.dispatch import basic as numba_basic
    from pytensor.link.numba.dispatch.compile_ops import numba_deepcopy  # loads its overloads

    njit = numba_basic.numba_njit

    @njit
    def later_repeats(index: Any) -> Any:
        order = np.argsort(index, kind="mergesort")
        repeat = np.zeros(index.shape[0], dtype=np.bool_)
        for k in range(1, index.shape[0]):
            if index[order[k]] == index[order[k - 1]]:
                repeat[order[k]] = True
        return repeat

    @njit
    def distinct(rng: Any, n: Any, size: Any) -> Any:
        index = rng.integers(0, n, size=size, dtype=np.int64)
        repeat = later_repeats(index)
        while repeat.any():
            where = np.nonzero(repeat)[0]
            redrawn = rng.integers(0, n, size=where.shape[0], dtype=np.int64)
            for k in range(where.shape[0]):
                index[where[k]] = redrawn[k]
            repeat = later_repeats(index)
        return index

    @numba_basic.register_funcify_default_op_cache_key(SubsetDraw)
    def numba_subset_draw(op: SubsetDraw, node: Apply, **kwargs: Any) -> Any:
        size, inplace = op.size, op.inplace

        @njit
        def subset_draw(rng: Any, n: Any) -> Any:
            if not inplace:
                rng = numba_deepcopy(rng)
            return rng, distinct(rng, np.int64(n.item()), size)

        return subset_draw, 1

    @numba_basic.register_funcify_default_op_cache_key(EpochDraw)
    def numba_epoch_draw(op: EpochDraw, node: Apply, **kwargs: Any) -> Any:
        size, inplace = op.size, op.inplace

        @njit
        def epoch_draw(rng: Any, state: Any, n: Any) -> Any:
            rows = np.int64(n.item())
            if state.shape[0] != rows + 2:
                epochs = state[1] if state.shape[0] >= 2 else 0
                state = np.empty(rows + 2, dtype=np.int64)
                state[0], state[1] = rows, epochs
                state[2:] = np.arange(rows)
            elif not inplace:
                state = state.copy()
            if not inplace:
                rng = numba_deepcopy(rng)
            position = state[0]
            perm = state[2:]
            index = np.empty(size, dtype=np.int64)
            if position + size <= rows:
                index[:] = perm[position : position + size]
                state[0] = position + size
            else:
                left = rows - position
                index[:left] = perm[position:]
                rng.shuffle(perm)
                index[left:] = perm[: size - left]
                state[0] = size - left
                state[1] += 1
            return rng, state, index

        return epoch_draw, 1


def _register_jax() -> None:
    import jax
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    def split(rng: Any) -> tuple[Any, Any]:
        key, sub = jax.random.split(rng["jax_state"])
        return {**rng, "jax_state": key}, sub

    def later_repeats(index: Any) -> Any:
        order = jnp.argsort(index, stable=True)
        ranked = index[order]
        repeat_sorted = jnp.concatenate([jnp.zeros(1, bool), ranked[1:] == ranked[:-1]])
        return jnp.zeros(index.shape[0], bool).at[order].set(repeat_sorted)

    @jax_funcify.register(SubsetDraw)
    def jax_subset_draw(op: SubsetDraw, **kwargs: Any) -> Any:
        size = op.size

        def subset_draw(rng: Any, n: Any) -> Any:
            rng, key = split(rng)
            key, first = jax.random.split(key)
            index = jax.random.randint(first, (size,), 0, n, dtype=jnp.int64)

            def more(carry: Any) -> Any:
                return later_repeats(carry[1]).any()

            def redraw(carry: Any) -> Any:
                key, index = carry
                key, sub = jax.random.split(key)
                fresh = jax.random.randint(sub, (size,), 0, n, dtype=jnp.int64)
                return key, jnp.where(later_repeats(index), fresh, index)

            _, index = jax.lax.while_loop(more, redraw, (key, index))
            return rng, index

        return subset_draw

    @jax_funcify.register(EpochDraw)
    def jax_epoch_draw(op: EpochDraw, **kwargs: Any) -> Any:
        size = op.size

        def epoch_draw(rng: Any, state: Any, n: Any) -> Any:
            rows = state.shape[0] - 2  # static; new data of another length start afresh
            given = _concrete(n)
            if given is not None and given != rows:
                rows = given
                epochs = state[1] if state.shape[0] >= 2 else 0
                state = jnp.concatenate(
                    [jnp.array([rows], jnp.int64), jnp.reshape(epochs, (1,)), jnp.arange(rows)]
                )
            rng, key = split(rng)
            position, started, perm = state[0], state[1], state[2:]
            roll = position + size > rows
            new = jax.lax.cond(roll, lambda p: jax.random.permutation(key, p), lambda p: p, perm)
            slots = position + jnp.arange(size)
            old_rows = perm[jnp.clip(slots, 0, rows - 1)]
            new_rows = new[jnp.clip(slots - rows, 0, rows - 1)]
            index = jnp.where(slots < rows, old_rows, new_rows)
            head = jnp.stack(
                [jnp.where(roll, position + size - rows, position + size), started + roll]
            ).astype(jnp.int64)
            return rng, jnp.concatenate([head, new]), index

        return epoch_draw


def _concrete(value: Any) -> int | None:
    """``value`` as an int when it is known while tracing (a static shape), else None."""
    try:
        return int(value)
    except TypeError:  # a tracer: jax's ConcretizationTypeError is a TypeError
        return None


def new_epoch_state(n: int) -> pytensor.compile.SharedVariable:
    """The shared epoch state for ``n`` rows, tagged so that a fresh fit can find and reset it."""
    state = pytensor.shared(fresh_state(n), name="minibatch_epoch_state")
    state.tag.minibatch_epoch_state = True
    return state


def reset_epoch_state(state: pytensor.compile.SharedVariable) -> None:
    """Back to before the first step (a fresh fit starts a fresh epoch)."""
    value = state.get_value(borrow=True)
    state.set_value(fresh_state(value.shape[0] - 2))


def is_epoch_state(var: Any) -> bool:
    """Whether ``var`` is the shared state of an epoch index."""
    return bool(getattr(getattr(var, "tag", None), "minibatch_epoch_state", False))
