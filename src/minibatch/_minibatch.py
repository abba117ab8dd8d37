"""``Minibatch``: random batches of one or more datasets, synchronised by one shared index."""

from __future__ import annotations

from typing import Any

import numpy as np

from minibatch import _upstream
from minibatch._gather import MinibatchVariable, gather
from minibatch._index import draw_index, new_rng
from minibatch._inputs import as_data_tensor, check_batch_size, check_lengths


def Minibatch(  # noqa: N802 - a constructor-like name, as in PyMC
    *data: Any,
    batch_size: int = 128,
    random_seed: int | np.random.Generator | None = None,
) -> MinibatchVariable | tuple[MinibatchVariable, ...]:
    """Draw random rows of one or more datasets, the same rows from each.

    Every call builds ONE random index of ``batch_size`` positions (with replacement, as in
    PyMC) and applies it to every dataset, so row ``k`` of every output comes from the same
    source row, whatever seeds PyMC assigns later.

    Parameters
    ----------
    *data : array_like or TensorVariable
        One or more datasets with the same length along the first axis: numpy arrays, nested
        lists, pandas objects, pytensor constants or shared variables, ``pm.Data`` containers.
        Floating-point data is cast to ``pytensor.config.floatX``; integer data keeps its dtype.
    batch_size : int, default 128
        Rows per batch (keyword-only). Numpy integers are accepted; bools are not.
    random_seed : int, numpy Generator or None
        Seed of the index's generator. ``pm.fit(random_seed=...)`` and the other PyMC samplers
        reseed it, so this only matters for plain ``pytensor.function`` / ``eval`` use.

    Returns
    -------
    MinibatchVariable or tuple of MinibatchVariable
        One batch for one dataset, a tuple for several. Use them as ``observed=`` data with
        ``total_size`` set to the full size, so the likelihood is scaled by ``N / batch_size``.

    Raises
    ------
    TypeError, ValueError
        At construction, naming the argument: a bad ``batch_size``, 0-d, empty or non-numeric
        data, datasets of different lengths, data that depends on random variables.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> import minibatch as mb
    >>> x = np.arange(20.0).reshape(10, 2)
    >>> y = np.arange(10)
    >>> xb, yb = mb.Minibatch(x, y, batch_size=4, random_seed=1)
    >>> xv, yv = pm.draw([xb, yb], random_seed=2)
    >>> xv.shape, yv.shape
    ((4, 2), (4,))
    >>> bool((xv[:, 0] == 2 * yv).all())  # the same rows of x and y
    True

    In a model, with ``total_size`` the full number of rows:

    >>> with pm.Model() as model:
    ...     w = pm.Normal("w", 0, 1)
    ...     obs = pm.Normal("obs", w * xb[:, 0], 1, observed=yb, total_size=len(y))
    """
    if not data:
        raise TypeError(
            "Minibatch needs at least one dataset: Minibatch(data, ..., batch_size=...)"
        )
    _upstream.install()
    size = check_batch_size(batch_size)
    tensors = [as_data_tensor(d, f"data argument {i}") for i, d in enumerate(data)]
    check_lengths(tensors)
    index = draw_index(tensors[0], size, new_rng(random_seed))
    batches = gather(index, tensors)
    for i, (batch, tensor) in enumerate(zip(batches, tensors, strict=True)):
        batch.name = f"{tensor.name}_minibatch" if tensor.name else f"minibatch_{i}"
    return batches[0] if len(batches) == 1 else tuple(batches)
