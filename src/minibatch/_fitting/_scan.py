"""Many optimiser steps in one compiled call: PyMC's VI step as the body of a pytensor Scan.

A minibatch step is cheap, so what surrounds it dominates: the call into the compiled function,
the copies of its inputs and outputs, and on JAX the dispatch of a jitted function.
:class:`Steps` builds PyMC's step graph once (``ObjectiveFunction.updates``: the loss, the
optimiser's updates of the variational parameters and of its own moments) and compiles it as
one step and as many, sharing every state:

* :attr:`Steps.one`, one step, exactly what ``pm.fit`` compiles (the loss as output, the
  updates applied);
* :attr:`Steps.many`, up to ``k`` steps in a ``Scan`` over ``arange(count)``
  (:meth:`Steps.call`), returning the losses and whether every value the call updated is
  finite.  On C and Numba the count is an input of one compiled function; JAX's ``lax.scan``
  needs a static length, so there a function is compiled per length (``k``, and each shorter
  length given, when first run).  A JAX call returns before its steps have run:
  :meth:`Steps.launch` starts one and keeps the values it leaves in the shared variables (its
  own results), so several can be started back to back and checked afterwards
  (:mod:`._loop`).

Every state the step changes is carried by the Scan as an update of its shared variable, not as
a traced output: the variational parameters, the optimiser's moments, the generators of the
Monte Carlo draws and of the minibatch index, and the epoch scheme's permutation (a shared
variable's ``default_update``, which a Scan body does not apply by itself, so it is added here).
Scan keeps such states *untraced* (only the last value, on JAX too: a carry of ``lax.scan``, not
a stacked output), so a call copies an O(N) state at most once, never once per step.

The Scan also sums the iterates for :class:`~minibatch._fitting._rule.Averager`: two more shared
vectors hold the sum and the sum of squares of the flat parameter vector (``[mu, rho]`` or
``[mu, L_tril]``) over the call's steps, restarted at the call's first step, so the average and
its batch means count every step, not every ``k``-th.

Both functions read the same shared variables, so calls of either may follow each other in any
order, and ``k`` steps of :attr:`Steps.one` give what one call of ``k`` steps gives, to
floating-point rounding (``tests/test_fitting_scan.py``).  One exception, handled here: pytensor's
JAX linker gives each compiled function its own *copy* of every shared generator (its
``fgraph_convert``), so two JAX functions would draw from two streams; when the loop switches
from one function to the other, the generators' states are copied from the function that ran
last into the one about to run (:class:`_Shared`).

On pytensor 2.38 with Numba the Scan's draws are made to work in place
(:mod:`minibatch._upstream.scan_rngs`, pytensor#2002).

>>> import numpy as np, pymc as pm
>>> from minibatch._fitting._scales import layout_of
>>> with pm.Model():
...     _ = pm.Normal("x", 0.0, 1.0)
...     inference = pm.ADVI(random_seed=0)
>>> steps = Steps(inference.objective, layout_of(inference.approx),
...               obj_optimizer=pm.adam(learning_rate=0.01)).compile(4)
>>> call = steps.launch(3)
>>> call.losses.shape, bool(call.finite), steps.sums(call)[0].shape
((3,), True, (2,))
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.pytensorf import collect_default_updates
from pymc.variational import opvi as _opvi
from pytensor.compile import SharedVariable
from pytensor.compile.mode import get_mode
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import graph_inputs
from pytensor.scan.op import Scan, ScanInfo
from pytensor.scan.utils import expand_empty
from pytensor.tensor.random.type import RandomType
from pytensor.tensor.shape import shape_padleft
from pytensor.tensor.type import TensorType

from minibatch._compat import NUMBA_UNTRACED_TENSORS, SCAN_COPIES_GENERATORS
from minibatch._fitting._scales import Layout
from minibatch._upstream.scan_rngs import draws_in_place


def linker_of(mode: Any) -> str:
    """The class name of the linker that ``mode`` (a name, a Mode or ``None``: the default)
    compiles with: ``"JAXLinker"``, ``"NumbaLinker"``, ``"CVMLinker"``, ..."""
    return type(get_mode(mode).linker).__name__


class Steps:
    """PyMC's step compiled as one step and as ``k`` steps per call (see the module docstring).

    Parameters
    ----------
    objective : pymc ObjectiveFunction
        ``inference.objective``.
    layout : Layout
        The flat parameter vector whose sums :meth:`sums` returns.
    compile_kwargs : dict, optional
        As for ``pm.fit`` (``mode=...``).
    **update_kwargs
        What ``ObjectiveFunction.updates`` takes (``obj_optimizer``, ``obj_n_mc``,
        ``more_replacements``, ``total_grad_norm_constraint``, ...).

    The graph is built on construction (:attr:`inputs` tells what it reads), and compiled by
    :meth:`compile`.
    """

    def __init__(
        self,
        objective: Any,
        layout: Layout,
        compile_kwargs: dict[str, Any] | None = None,
        **update_kwargs: Any,
    ) -> None:
        updates = objective.updates(**update_kwargs)
        # the seed PyMC's step_function draws, from the same generator
        self.seed = objective.approx.rng.randint(2**30, dtype=np.int64)
        self.layout = layout
        self.compile_kwargs = dict(compile_kwargs or {})
        self.linker = linker_of(self.compile_kwargs.get("mode"))
        self.loss, self.updates = updates.loss, dict(updates)
        self.inputs = list(graph_inputs([self.loss, *self.updates.values()]))
        draws = update_kwargs.get("obj_n_mc") or 1
        if draws > 1 and self.linker == "JAXLinker":
            self.loss, self.updates = self._static_data_shapes(self.loss, self.updates)
        self.k = 0
        self.lengths: tuple[int, ...] = ()
        self.one: Any = None
        self.many: Any = None
        self._fixed: dict[int, Any] = {}  # JAX: the Scan of each static length compiled so far
        self._total: Any = None
        self._square: Any = None
        self._last: list[_Shared] = []  # the function that ran last, shared by both
        # while resident: each container held (its array, the device copy put in its place)
        self._held: list[tuple[Any, Any, Any]] | None = None
        self._copies: dict[int, tuple[Any, Any]] = {}  # each array held: (it, its device copy)
        self._skip: list[Any] = []

    def compile(self, k: int, shorter: Sequence[int] = ()) -> Steps:
        """Compile the single step, and for ``k > 1`` the Scan of up to ``k`` steps.

        On C and Numba the Scan's length is an input (:meth:`call` runs any count up to ``k``
        with one compiled function).  JAX needs a static length: a Scan is compiled for ``k``
        steps and for each length of ``shorter``, the shortest now and the others when a call
        of that length is first run.

        The single step is compiled first, as ``pm.fit`` compiles it: PyMC's compile reseeds
        the generators it finds, in the order it finds them, and that order differs in the
        Scan's graph; so each Scan is compiled with the generators' states put back after it,
        and every function starts from the states ``pm.fit`` would start from.
        """
        self.k = int(k)
        self.one = self._compile(self.loss, self.updates)
        self._last[:] = [self.one]
        if self.k == 1:
            return self
        size = self.layout.size
        self._total = pytensor.shared(np.zeros(size), name="mb_fit_iterate_sum")
        self._square = pytensor.shared(np.zeros(size), name="mb_fit_iterate_square")
        if self.linker == "JAXLinker":
            self.lengths = tuple(sorted({self.k, *(int(c) for c in shorter if 1 < c < k)}))
            self.many = self._fixed_length(self.lengths[0])  # the first used
        else:
            self.many = self._compile_many(pt.lscalar("steps"))
        return self

    @property
    def asynchronous(self) -> bool:
        """Whether a call returns before its steps have run (JAX: its results are futures), so
        that several calls can be started back to back (:meth:`plan`)."""
        return self.linker == "JAXLinker"

    def plan(self, room: int) -> list[int]:
        """The calls that run ``room`` steps, or as many of them as calls of many steps can:
        on JAX the longest compiled length that fits, again and again (its calls are started
        back to back, :meth:`launch`); elsewhere one call (the loop comes back for the rest)."""
        counts: list[int] = []
        while (count := self.longest(room)) > 1:
            counts.append(count)
            room -= count
            if not self.asynchronous:
                break
        return counts

    def longest(self, room: int) -> int:
        """The most steps that one call can run without passing ``room`` steps (1: the single
        step)."""
        if self.many is None:
            return 1
        if not self.lengths:
            return max(1, min(room, self.k))
        return max((n for n in self.lengths if n <= room), default=1)

    def call(self, count: int) -> tuple[Any, Any]:
        """Run ``count`` steps (a length :meth:`longest` gave) in one call of the Scan: their
        losses, and whether every value the call updated is finite."""
        if not self.lengths:
            return self.many(count)
        return self._fixed_length(count)()

    def launch(self, count: int) -> Launched:
        """Start :meth:`call` of ``count`` steps: its losses, its finite flag and, where the
        call returns before its steps have run (:attr:`asynchronous`), every value it left in
        a shared variable, kept as the call's own (its results, not waited for, so the next
        call can start at once); elsewhere ``values`` is ``None`` and the values are read when
        needed, before the next call (NumPy arrays, which a later call changes in place)."""
        losses, finite = self.call(count)
        if not self.asynchronous:
            return Launched(count, losses, finite, None)
        updated = self._fixed_length(count).updated
        return Launched(count, losses, finite, {var: box[0] for var, box in updated})

    def _fixed_length(self, count: int) -> Any:
        function = self._fixed.get(count)
        if function is None:
            function = self._fixed[count] = self._compile_many(pt.constant(count, dtype="int64"))
        return function

    def _compile(
        self, outputs: Any, updates: dict[Any, Any], inputs: Sequence[Any] = ()
    ) -> _Shared:
        # opvi's compile, looked up now: the workarounds installed on it apply, as in pm.fit
        function = _opvi.compile(
            list(inputs),
            outputs,
            updates=updates,
            random_seed=self.seed,
            **self.compile_kwargs,
        )
        shared = _Shared(function, self._last)
        if self._held is not None:
            self._hold(shared)
        return shared

    def _compile_many(self, length: Any) -> Any:
        updates = dict(self.updates)
        states = [self.loss, *updates.values()]
        for rng, update in collect_default_updates(states).items():
            updates.setdefault(rng, update)
        for var in graph_inputs(states):  # default updates (the epoch state), which Scan skips
            default = getattr(var, "default_update", None)
            if isinstance(var, SharedVariable) and default is not None:
                updates.setdefault(var, default)
        params = self.layout.params
        flat = pt.concatenate([pt.flatten(updates[p]) for p in params]).astype("float64")
        step = pt.lscalar("step")
        restart = pt.eq(step, 0)  # each call sums its own steps
        updates[self._total] = pt.switch(restart, 0.0, self._total) + flat
        updates[self._square] = pt.switch(restart, 0.0, self._square) + flat * flat
        trace = self.linker == "NumbaLinker"
        losses, final = untraced_scan(
            step,
            length,
            self.loss,
            updates,
            trace_tensors=trace and not NUMBA_UNTRACED_TENSORS,
            in_place=trace and SCAN_COPIES_GENERATORS,
        )
        watched = [
            value
            for var, value in final.items()
            if isinstance(var.type, TensorType)
            and np.dtype(var.type.dtype).kind == "f"
            and var is not self._total
            and var is not self._square
        ]
        finite = pt.all(pt.stack([~pt.any(pt.isnan(v) | pt.isinf(v)) for v in watched]))
        inputs = [] if isinstance(length, pt.TensorConstant) else [length]
        # PyMC's compile reseeds the generators: their states are put back after it
        rngs = [v for v in self.inputs if isinstance(v, SharedVariable)]
        rngs = [v for v in rngs if isinstance(v.type, RandomType)]
        kept = [rng.get_value(borrow=False) for rng in rngs]
        try:
            return self._compile([losses, finite], final, inputs)
        finally:
            for rng, value in zip(rngs, kept, strict=True):
                rng.set_value(value, borrow=True)

    def _static_data_shapes(self, loss: Any, updates: dict[Any, Any]) -> tuple[Any, Any]:
        """The graph with each shared tensor that the step only reads (the stored data, a
        stream's window) given its current shape.

        With ``obj_n_mc > 1`` PyMC's graph builds an array shape from the data's length, which
        inside ``lax.scan`` is a traced value, and JAX refuses it; so on JAX both functions are
        built from this graph then (they draw the same: ``tests/test_fitting_scan.py``).
        """
        fixed: dict[Any, Any] = {
            var: pt.specify_shape(var, var.get_value(borrow=True).shape)
            for var in self.inputs
            if isinstance(var, SharedVariable)
            and isinstance(var.type, TensorType)
            and var not in updates
            and None in var.type.shape
        }
        if not fixed:
            return loss, updates
        keys = list(updates)
        new_loss, *values = graph_replace([loss, *updates.values()], fixed, strict=False)
        return new_loss, dict(zip(keys, values, strict=True))

    @contextlib.contextmanager
    def resident(self, skip: Any = ()) -> Iterator[None]:
        """On JAX, hold the stored data on the device for the run (else do nothing).

        pytensor's JAX linker passes a shared variable's value to the jitted function as it is
        stored: a NumPy array is copied to the device at every call, and ``set_value`` stores
        NumPy whatever it is given.  For the run, each shared tensor that the steps only read
        (the stored data; not ``skip``: a stream's window, refilled in place) holds a device
        copy in its container (one copy of each array, kept for the next run while the array
        stays stored); the NumPy array is put back after the run, however it ends, except where
        a value was set during the run (a step size halved by the rule), which stays.
        What the steps update (parameters, moments, the epoch state) is stored back as a device
        array by pytensor after each call, so it stays on the device: copied at most once a
        call, never once a step.  A callback that evaluates another, non-JAX, function of the
        same data during the run would see the device array.
        """
        if self.linker != "JAXLinker":
            yield
            return
        self._held, self._skip = [], list(skip)
        try:
            self._hold(self.one, *self._fixed.values(), fresh=True)
            yield
        finally:
            for container, value, copy in self._held:
                if container.storage[0] is copy:  # not set anew during the run (a step size)
                    container.storage[0] = value
            self._held = None

    def _hold(self, *functions: Any, fresh: bool = False) -> None:
        """Put a device copy of each stored array that ``functions`` only read in their
        containers (a Scan of another length, compiled during the run, included): one copy of
        each array, whichever functions read it, all put on the device at once, and kept for
        the next run while the array stays stored (pytensor's contract: a stored array is not
        changed in place; ``set_value`` stores another); ``fresh`` forgets the copies of the
        arrays no longer stored."""
        import jax

        assert self._held is not None
        found = [
            (container, container.storage[0])
            for function in functions
            for given, container in function.given
            if isinstance(given.variable, SharedVariable)
            and given.update is None
            and isinstance(container.storage[0], np.ndarray)
            and not any(given.variable is other for other in self._skip)
        ]
        stored = {id(value): value for _, value in found}
        if fresh:
            self._copies = {key: kept for key, kept in self._copies.items() if key in stored}
        new = [value for key, value in stored.items() if key not in self._copies]
        for value, copy in zip(new, jax.device_put(new), strict=True):
            self._copies[id(value)] = (value, copy)
        for container, value in found:
            copy = self._copies[id(value)][1]  # [0]: the array, kept so that its id stays its own
            container.storage[0] = copy
            self._held.append((container, value, copy))

    def sums(self, call: Launched) -> tuple[np.ndarray, np.ndarray]:
        """The sum and the sum of squares of the flat iterates over the steps of ``call``."""
        total, square = (np.asarray(call.value(v), np.float64) for v in (self._total, self._square))
        return total, square


@dataclasses.dataclass(frozen=True)
class Launched:
    """A started call of many steps (:meth:`Steps.launch`)."""

    count: int
    losses: Any
    finite: Any
    values: dict[Any, Any] | None  # each updated shared variable -> the value the call left

    def value(self, var: Any) -> Any:
        """What the call left in the shared variable ``var`` (its current value if the
        values were not kept)."""
        return var.get_value(borrow=True) if self.values is None else self.values[var]


def untraced_scan(
    step: Any,
    k: Any,
    output: Any,
    updates: dict[Any, Any],
    trace_tensors: bool = False,
    in_place: bool = False,
) -> tuple[Any, dict[Any, Any]]:
    """``k`` iterations of a graph (``k`` an int64 scalar, constant or not): ``output`` traced
    (a length-``k`` vector), every shared variable of ``updates`` carried *untraced* (only its
    last value): ``(outputs, updates)``.

    ``pytensor.scan`` traces a tensor that a body updates (a length-``k`` buffer, which JAX
    stacks in full), and keeps only non-tensor states (generators) untraced; so the Scan is
    built here directly: ``step`` (an int64 scalar) is its sequence ``arange(k)``, the updated
    shared variables are its untraced states, the others its non-sequences.  With
    ``trace_tensors`` the tensor states are traced instead (pytensor 2.38's Numba Scan has no
    untraced tensor states; its buffers are cut to the last values by pytensor's
    ``scan_save_mem`` rewrite, which Numba applies and JAX does not).  With ``in_place`` the
    body's draws are made to work in place (:mod:`minibatch._upstream.scan_rngs`).
    """
    states = list(updates)
    traced = [s for s in states if trace_tensors and isinstance(s.type, TensorType)]
    carried = [s for s in states if not any(s is t for t in traced)]
    graph = [output, *updates.values()]
    shared = [v for v in graph_inputs(graph) if isinstance(v, SharedVariable) and v not in updates]
    inner = {var: var.type() for var in [*states, *shared]}
    new_output, *new_updates = graph_replace(graph, inner, strict=False)
    final = {
        s: inner[s].type.filter_variable(u, allow_convert=True)
        for s, u in zip(states, new_updates, strict=True)
    }
    info = ScanInfo(
        n_seqs=1,
        mit_mot_in_slices=(),
        mit_mot_out_slices=(),
        mit_sot_in_slices=(),
        sit_sot_in_slices=tuple((-1,) for _ in traced),
        n_nit_sot=1,
        n_untraced_sit_sot=len(carried),
        n_non_seqs=len(shared),
        as_while=False,
    )
    op = Scan(
        [
            step,
            *(inner[s] for s in traced),
            *(inner[s] for s in carried),
            *(inner[v] for v in shared),
        ],
        [*(final[s] for s in traced), new_output, *(final[s] for s in carried)],
        info,
    )
    if in_place:
        draws_in_place(op)
    n = pt.as_tensor_variable(k, dtype="int64")
    buffers = [expand_empty(shape_padleft(s), n) for s in traced]
    outs: Any = op(n, pt.arange(n, dtype="int64"), *buffers, *carried, n, *shared)
    traces, (losses, *last) = outs[: len(traced)], outs[len(traced) :]
    ends = {
        **{s: t[-1] for s, t in zip(traced, traces, strict=True)},
        **dict(zip(carried, last, strict=True)),
    }
    return losses, {s: ends[s] for s in states}


class _Shared:
    """A compiled step function that takes the generators' states from the function of the
    same fit that ran before it, where the two hold separate copies (JAX; see the module
    docstring); otherwise the compiled function itself (``maker``, ``profile``, ...)."""

    def __init__(self, function: Any, last: list[_Shared]) -> None:
        self.function, self._last = function, last
        # each input (pytensor's In: variable, update) with its container
        self.given = list(zip(function.maker.inputs, function.input_storage, strict=True))
        self.updated = [  # each shared variable the function updates, and its storage
            (given.variable, container.storage)
            for given, container in self.given
            if given.update is not None
        ]
        self.rngs = {
            given.variable: container
            for given, container in self.given
            if isinstance(given.variable, SharedVariable)
            and isinstance(given.variable.type, RandomType)
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["function"], name)

    def __call__(self, *args: Any) -> Any:
        if self._last and self._last[0] is not self:
            for rng, container in self._last[0].rngs.items():
                mine = self.rngs.get(rng)
                if mine is not None and mine is not container:
                    mine.storage[0] = container.storage[0]
        self._last[:] = [self]
        return self.function(*args)
