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
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from typing import Any

from pymc.data import MinibatchOp
from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors

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
                found[key][index].append(batch.name or str(batch))
        elif isinstance(node.op, MinibatchOp) and not is_ours(node):  # pm.Minibatch
            *sources, rng = node.inputs
            for source, batch in zip(sources, node.outputs, strict=False):
                found[(0, current_shape(source)[0])][rng].append(batch.name or str(batch))
    return found


def check_pairing(rv: Any, observed: Any, name: str) -> None:
    """Warn when ``name``'s density mixes batches of equal length drawn by different indices."""
    graph = [v for v in (rv, observed) if isinstance(v, Variable)]
    for (axis, length), by_index in _draws(graph).items():
        if len(by_index) < 2:
            continue
        names = sorted(batch for batches in by_index.values() for batch in batches)
        where = "rows" if axis == 0 else f"entries along axis {axis}"
        warnings.warn(
            f"observed variable {name!r} combines minibatches of data with {length} {where} "
            f"that are drawn by {len(by_index)} different random indices: {names}. Their "
            f"entries do not belong together (row k of one comes from another source row than "
            f"row k of the other), so the fit sees shuffled data. Build them in one call, which "
            f"draws one index for all: `a, b, c = mb.Minibatch(A, B, C, batch_size=...)`. "
            f"(Filter mb.UnpairedMinibatchWarning if independent draws are meant.)",
            UnpairedMinibatchWarning,
            stacklevel=5,
        )
