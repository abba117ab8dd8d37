"""Prediction: a minibatch model turned into its full-data model, or a model of new data.

:func:`full_data_model` copies a model (PyMC's ``fgraph_from_model`` / ``model_from_fgraph``)
with every minibatch replaced by the data it is drawn from (or by new data), the ``total_size``
scaling removed, and coords and dims kept.

Deterministics computed from minibatches hold one random batch's values in a fitted trace.
``pm.sample_posterior_predictive`` takes trace values for variables whose inputs it believes
unchanged, and a ``pm.Data`` container's value has not changed.  So each replacement carries a
zero-cost marker (an inline Op with an extra, unnamed shared input, gone after compilation)
that PyMC's check sees as new data: those deterministics are recomputed from the full data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.data import MinibatchOp
from pymc.model.core import Model, modelcontext
from pymc.model.fgraph import model_from_fgraph
from pymc.variational.minibatch_rv import MinibatchRandomVariable
from pytensor.compile.builders import OpFromGraph
from pytensor.graph.basic import Variable
from pytensor.graph.fg import FunctionGraph
from pytensor.graph.replace import clone_replace

from minibatch._fgraph import restore_initvals, to_fgraph
from minibatch._gather import MinibatchGatherOp, describe_batch, uncast
from minibatch._stream import stream_of


class NewData(OpFromGraph):
    """``(data, marker) -> data``: data that a fitted trace has not seen (see module docs)."""

    def __str__(self) -> str:
        return "NewData"


def full_data_model(model: Model | None = None, data: Mapping[Any, Any] | None = None) -> Model:
    """A copy of ``model`` in which every minibatch is its full data, unscaled.

    Use it for ``pm.sample_posterior_predictive`` (and ``pm.compute_log_likelihood``) after a
    minibatch fit.  Every minibatch — of ``mb.Minibatch`` or ``pm.Minibatch`` — is replaced by
    the data it draws from, the ``total_size`` scaling of observed variables is removed, and
    coords and dims are kept.  ``pm.Data`` containers stay containers: ``pm.set_data`` on the
    returned model predicts on new data.

    Parameters
    ----------
    model : pm.Model, optional
        The minibatch model; the model on the context stack by default.
    data : mapping, optional
        New data for some minibatches, ``{batch: array}``, where ``batch`` is a minibatch
        variable used in ``model``.  The new arrays may have any length along the subsampled
        axes; batches drawn by one index (one ``Minibatch`` call) get data of one length, and
        all of them must be given (an observed one can be ``np.zeros(n)``).

    Returns
    -------
    pm.Model
        A new model; ``model`` itself is left unchanged.

    Examples
    --------
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> x = np.linspace(0, 1, 1000)
    >>> y = 2 * x + np.random.default_rng(0).normal(0, 0.1, 1000)
    >>> xb, yb = mb.Minibatch(x, y, batch_size=50)
    >>> with pm.Model() as model:
    ...     slope = pm.Normal("slope", 0, 10)
    ...     mu = pm.Deterministic("mu", slope * xb)
    ...     obs = pm.Normal("obs", mu, 0.1, observed=yb)
    ...     approx = pm.fit(3000, obj_optimizer=pm.adam(learning_rate=0.05),
    ...                     random_seed=1, progressbar=False)
    ...     idata = approx.sample(100, random_seed=2)
    >>> with mb.full_data_model(model):
    ...     pp = pm.sample_posterior_predictive(idata, progressbar=False, random_seed=3)
    >>> pp.posterior_predictive["obs"].shape  # every row, not a batch
    (1, 100, 1000)
    >>> new = mb.full_data_model(model, {xb: [0.0, 0.5, 1.0], yb: np.zeros(3)})
    >>> with new:
    ...     pp = pm.sample_posterior_predictive(
    ...         idata, var_names=["mu"], progressbar=False, random_seed=3
    ...     )
    >>> np.round(pp.posterior_predictive["mu"].mean(("chain", "draw")).values, 1)
    array([0., 1., 2.])
    """
    model = modelcontext(model)
    fgraph, memo, initvals = to_fgraph(model)
    given = _with_cast_twins(fgraph, _given(data or {}, memo))
    marker = pytensor.shared(np.int8(0))
    unscaled: dict[Variable, Variable] = {}
    replacements: dict[Variable, Variable] = {}
    for node in fgraph.apply_nodes:
        if isinstance(node.op, MinibatchRandomVariable):
            unscaled[node.outputs[0]] = node.inputs[0]
        elif isinstance(node.op, MinibatchGatherOp):
            for out, source in zip(node.outputs[1:], node.inputs[1:], strict=True):
                if out not in given and fgraph.clients.get(out):
                    _refuse_streamed(source, out)
                replacements[out] = given.get(out, source)
            if fgraph.clients.get(node.outputs[0]):  # the index used as a value
                replacements[node.outputs[0]] = _every_row(node, given)
        elif isinstance(node.op, MinibatchOp):
            replacements.update(zip(node.outputs, node.inputs, strict=False))
    _check_complete(fgraph, given)
    fgraph.replace_all(list(unscaled.items()), import_missing=True)
    resolved = {
        out: _marked(_follow(new, replacements), marker) for out, new in replacements.items()
    }
    outputs = clone_replace(fgraph.outputs, resolved, rebuild_strict=False)
    for old, new in zip(fgraph.outputs, outputs, strict=True):
        new.name = old.name
    new_fgraph = FunctionGraph(outputs=outputs, clone=False)
    new_fgraph._coords = fgraph._coords  # type: ignore[attr-defined]
    new_fgraph._dim_lengths = fgraph._dim_lengths  # type: ignore[attr-defined]
    return restore_initvals(model_from_fgraph(new_fgraph, mutate_fgraph=True), initvals)


def log_likelihood(idata: Any, model: Model | None = None, **kwargs: Any) -> Any:
    """The pointwise log-likelihood of the full data, for ``az.loo`` / ``az.waic``.

    ``pm.compute_log_likelihood`` on a minibatch model would give one scaled random batch per
    draw; this computes it on :func:`full_data_model` of ``model`` instead: one unscaled value
    per observation, per posterior draw.  Keyword arguments go to
    ``pm.compute_log_likelihood`` (by default the ``log_likelihood`` group is added to
    ``idata``, which is returned).

    Parameters
    ----------
    idata : arviz.InferenceData
        Posterior draws, e.g. ``approx.sample(...)`` or ``pm.sample`` of the full-data model.
    model : pymc.Model, optional
        The minibatch model; the one of the enclosing ``with`` block by default.
    **kwargs
        Passed to ``pm.compute_log_likelihood``.

    Returns
    -------
    arviz.InferenceData
        With the pointwise log-likelihood of every observation.

    Examples
    --------
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> y = np.random.default_rng(0).normal(1.0, 1.0, 500)
    >>> with pm.Model() as model:
    ...     mu = pm.Normal("mu", 0, 10)
    ...     obs = pm.Normal("obs", mu, 1, observed=mb.Minibatch(y, batch_size=50))
    ...     approx = pm.fit(2000, random_seed=1, progressbar=False)
    >>> idata = mb.log_likelihood(approx.sample(100, random_seed=2), model, progressbar=False)
    >>> idata.log_likelihood["obs"].shape  # every row, every draw
    (1, 100, 500)
    """
    from pymc.stats.log_density import compute_log_likelihood

    return compute_log_likelihood(idata, model=full_data_model(modelcontext(model)), **kwargs)


def _with_cast_twins(fgraph: FunctionGraph, given: dict[Variable, Any]) -> dict[Variable, Any]:
    """``given`` plus new data for the twins of given batches: the same index gathering a cast
    of the same data (PyMC casts integer observed data, and the cast is pushed below the
    gather), so the observed value follows the new data too."""
    gathers = [n for n in fgraph.apply_nodes if isinstance(n.op, MinibatchGatherOp)]
    by_base = {
        (node.inputs[0], uncast(source)): given[out]
        for node in gathers
        for out, source in zip(node.outputs[1:], node.inputs[1:], strict=True)
        if out in given
    }
    twins = dict(given)
    for node in gathers:
        for out, source in zip(node.outputs[1:], node.inputs[1:], strict=True):
            new = by_base.get((node.inputs[0], uncast(source)))
            if out not in twins and new is not None:
                twins[out] = pt.cast(new, out.type.dtype)
    return twins


def _refuse_streamed(source: Variable, batch: Variable) -> None:
    """A streamed batch has no full data in memory: say how to predict chunk by chunk."""
    stream = stream_of(uncast(source))
    if stream is None or stream.static:  # a window of all rows is the full data
        return
    raise ValueError(
        f"minibatch {describe_batch(batch)} streams {stream.describe()}; its full-data model would "
        "load the whole source into memory, which full_data_model never does silently. "
        "Predict chunk by chunk instead: for each range of rows a:b, build "
        "mb.full_data_model(model, {batch: source[a:b], ...}) with every batch of that "
        "Minibatch call given its rows a:b, run pm.sample_posterior_predictive or "
        "pm.compute_log_likelihood on it, and write each chunk's result out (for example "
        "to a Zarr array) before reading the next; docs/streaming.md shows the loop."
    )


def _every_row(node: Any, given: Mapping[Variable, Any]) -> Variable:
    """``arange(n)`` for a gather's index that the model uses as a value (``z[mb.index_of(xb)]``,
    a local latent variable), so that the full-data model takes every row of ``z``.

    New data for the gather's batches is refused: the rows of new data are not rows of ``z``.
    """
    renewed = [b.name for b in node.outputs[1:] if b in given]
    if renewed:
        raise ValueError(
            f"new data given for {renewed}, whose index the model also uses as a value (a "
            "variable indexed by mb.index_of: a local latent variable, one value per row of "
            "the data); new rows have no such values. Predict on the data the model was "
            "built with, or build a model for the new rows."
        )
    return pt.arange(node.inputs[1].shape[node.op.axis], dtype="int64")


def _follow(var: Variable, replacements: Mapping[Variable, Variable]) -> Variable:
    while var in replacements and replacements[var] is not var:
        var = replacements[var]
    return var


def _marked(var: Variable, marker: Variable) -> Variable:
    if not isinstance(var.type, pt.TensorType):
        return var
    inputs = [var.type(), marker.type()]
    op = NewData(inputs, [inputs[0].copy()], inline=True, on_unused_input="ignore")
    return op(var, marker)


def _given(data: Mapping[Any, Any], memo: Mapping[Variable, Variable]) -> dict[Variable, Any]:
    given = {}
    for batch, value in data.items():
        node = getattr(batch, "owner", None)
        if node is None or not isinstance(node.op, MinibatchGatherOp) or batch not in memo:
            raise ValueError(
                f"data keys must be minibatch variables used in the model; got {batch!r}"
            )
        new = pt.as_tensor(np.asarray(value, dtype=batch.dtype))
        if new.ndim != batch.ndim:
            raise ValueError(
                f"new data for {describe_batch(batch)} must have rank {batch.ndim}; got shape "
                f"{np.shape(value)}"
            )
        fixed = [
            (axis, n)
            for axis, n in enumerate(batch.type.shape)
            if n is not None and axis != node.op.axis
        ]
        if any(new.type.shape[axis] != n for axis, n in fixed):
            expected = tuple(
                "any" if axis == node.op.axis else n for axis, n in enumerate(batch.type.shape)
            )
            raise ValueError(
                f"new data for {describe_batch(batch)} has shape {np.shape(value)}; "
                f"expected {expected} "
                "(only the subsampled axis may change length)"
            )
        given[memo[batch]] = new
    return given


def _check_complete(fgraph: FunctionGraph, given: Mapping[Variable, Any]) -> None:
    """Refuse new data for some but not all batches of one gather, or of unequal lengths."""
    for node in fgraph.apply_nodes:
        if not isinstance(node.op, MinibatchGatherOp):
            continue
        batches = node.outputs[1:]
        chosen = [b for b in batches if b in given]
        if not chosen:
            continue
        missing = [b.name for b in batches if b not in given and fgraph.clients.get(b)]
        if missing:
            raise ValueError(
                f"new data given for {[b.name for b in chosen]} but not for {missing}, which "
                "are drawn by the same index: give every one of them new data of the same "
                "length (an observed one can be np.zeros(n))"
            )
        axis = node.op.axis
        lengths = {b.name: given[b].type.shape[axis] for b in chosen}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"new data drawn together must have one length; got {lengths}")
