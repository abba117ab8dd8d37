"""Minibatches that should be paired but are drawn independently: a warning, at model building.

PyMC's own example "GLM-hierarchical-advi-minibatch" builds three minibatches of one 919-row
data set with three separate calls and observes one of them with the others as covariates.
Each call draws its own index, so row *k* of the observation and row *k* of its covariates come
from different source rows: ADVI then fits noise (the slope 0.015 against NUTS's -0.64), and
nothing says why.  When an observed variable's density combines batches drawn by different
indices over data of the same length along a subsampled axis, :func:`check_pairing` warns with
:class:`UnpairedMinibatchWarning`, naming them and showing the one-call fix.  Batches drawn by
one index (one call, or equal explicit int seeds) and data of different lengths (independent
draws meant as such) pass quietly.

Each batch is named by where the user built it, since names given by default repeat across
calls (``minibatch_0`` three times, or ``minibatch.0`` for ``pm.Minibatch``): its name, then
its position in the call and the call's file and line, as in ``'minibatch_0' (data argument 0
of the Minibatch call at radon.py:12)``.  ``Minibatch`` records that :class:`CallSite` at
construction (``batch.tag.call_site``); for ``pm.Minibatch`` it is read from the stack trace
PyTensor keeps on the batch (``tag.trace``).  Call sites rather than the names the user
assigned to: those are not known at construction and can only be guessed from source text.
The warning is reported at the user's line (:func:`minibatch._compat.warn_at_user_line`).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from pymc.data import MinibatchOp
from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors

from minibatch._compat import user_frame, warn_at_user_line
from minibatch._gather import MinibatchGatherOp
from minibatch._inputs import current_shape
from minibatch._ops import is_ours


class UnpairedMinibatchWarning(UserWarning):
    """An observed density combines minibatches of equal length drawn by different indices.

    Batches of separate ``Minibatch`` calls are drawn by separate indices, so their rows do not
    belong together; build data that belongs together in one call
    (``Minibatch(x, y, batch_size=...)``).  See ``docs/pairing.md``.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> x, y = np.arange(100.0), 2 * np.arange(100.0)
    >>> xb, yb = mb.Minibatch(x, batch_size=10), mb.Minibatch(y, batch_size=10)
    >>> with pm.Model(), warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     obs = pm.Normal("y", pm.Normal("w", 0, 1) * xb, 1, observed=yb)
    >>> any(issubclass(w.category, mb.UnpairedMinibatchWarning) for w in caught)
    True
    >>> xb, yb = mb.Minibatch(x, y, batch_size=10)  # one call, one index: no warning
    >>> with pm.Model(), warnings.catch_warnings():
    ...     warnings.simplefilter("error", mb.UnpairedMinibatchWarning)
    ...     obs = pm.Normal("y", pm.Normal("w", 0, 1) * xb, 1, observed=yb)
    """


@dataclass(frozen=True)
class CallSite:
    """Where a batch was built: the user's ``(file, line)`` (if any) and its place in the call."""

    where: tuple[str, int] | None
    position: int
    count: int

    def describe(self, call: str) -> str:
        """``"data argument 1 of the Minibatch call at model.py:12"``.

        >>> CallSite(("/home/me/model.py", 12), 1, 3).describe("Minibatch")
        'data argument 1 of the Minibatch call at model.py:12'
        >>> CallSite(None, 0, 1).describe("pm.Minibatch")
        'a pm.Minibatch call'
        """
        text = f"the {call} call" if self.count > 1 or self.where else f"a {call} call"
        if self.count > 1:
            text = f"data argument {self.position} of {text}"
        if self.where is not None:
            filename, line = self.where
            text += f" at {os.path.basename(filename)}:{line}"
        return text


def _label(batch: Any, call: str, site: CallSite | None) -> str:
    name = repr(batch.name) if batch.name else str(batch)
    return name if site is None else f"{name} ({site.describe(call)})"


def _traced_site(batch: Any, position: int, count: int) -> CallSite:
    """The call site of a ``pm.Minibatch`` batch, from PyTensor's ``tag.trace`` of it."""
    traces = getattr(batch.tag, "trace", None) or [[]]
    frames = [(frame[0], frame[1]) for frame in reversed(traces[0])]
    return CallSite(user_frame(frames), position, count)


def _draws(graph: list[Any]) -> dict[tuple[int, int], dict[Any, list[str]]]:
    """``{(axis, length): {index: [batch names]}}`` for the batches that ``graph`` uses."""
    found: dict[tuple[int, int], dict[Any, list[str]]] = defaultdict(lambda: defaultdict(list))
    seen = set()
    for var in ancestors(graph):
        node = var.owner
        if node is None or node in seen:
            continue
        seen.add(node)
        if isinstance(node.op, MinibatchGatherOp):
            axis, (index, *sources) = node.op.axis, node.inputs
            for source, batch in zip(sources, node.outputs[1:], strict=True):
                key = (axis, current_shape(source)[axis])
                site = getattr(batch.tag, "call_site", None)
                found[key][index].append(_label(batch, "Minibatch", site))
        elif isinstance(node.op, MinibatchOp) and not is_ours(node):  # pm.Minibatch
            *sources, rng = node.inputs
            for k, (source, batch) in enumerate(zip(sources, node.outputs, strict=False)):
                site = _traced_site(batch, k, len(sources))
                found[(0, current_shape(source)[0])][rng].append(
                    _label(batch, "pm.Minibatch", site)
                )
    return found


def check_pairing(rv: Any, observed: Any, name: str) -> None:
    """Warn when ``name``'s density mixes batches of equal length drawn by different indices."""
    graph = [v for v in (rv, observed) if isinstance(v, Variable)]
    for (axis, length), by_index in _draws(graph).items():
        if len(by_index) < 2:
            continue
        names = sorted(batch for batches in by_index.values() for batch in batches)
        where = "rows" if axis == 0 else f"entries along axis {axis}"
        warn_at_user_line(
            f"observed variable {name!r} combines minibatches of data with {length} {where} "
            f"that are drawn by {len(by_index)} different random indices: {names}. Their "
            f"entries do not belong together (row k of one comes from another source row than "
            f"row k of the other), so the fit sees shuffled data. Build them in one call, which "
            f"draws one index for all: `a, b, c = mb.Minibatch(A, B, C, batch_size=...)`. "
            f"(Filter mb.UnpairedMinibatchWarning if independent draws are meant.)",
            UnpairedMinibatchWarning,
        )
