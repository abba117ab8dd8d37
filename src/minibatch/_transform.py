"""A full-data model turned into its minibatch version: :func:`minibatch_model`.

The model is copied as a graph (PyMC's ``fgraph_from_model`` / ``model_from_fgraph``).  The
batch dimension is axis 0 of the observed variables (or the dim named ``dim=``).  Every data
leaf of the likelihood graphs that lies on it (observed values, ``pm.Data`` containers, plain
arrays) goes into ONE ``mb.Minibatch`` call, so one index draws every batch; a local latent
variable ``z`` enters the likelihood as ``z[rows]``, ``rows`` being the batch of
``np.arange(N)`` drawn in that call (so ``mb.full_data_model`` turns it back into ``z``).  The graph
between those leaves and each observed variable is rebuilt on the batches, one node at a time,
and only where the node acts row by row along axis 0 (elementwise maths, ``x[:, j]``,
``X @ w``, ``a[group]``, the observed distribution's batch axis); anything else is refused,
naming the variable.  Every observed variable on the batch dimension is wrapped in PyMC's
``total_size`` wrapper with the stored data's length.  Free variables, deterministics and
potentials stay as they are: their graphs see the full data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pymc.data import MinibatchOp
from pymc.model.core import Model, modelcontext
from pymc.model.fgraph import (
    ModelDeterministic,
    ModelFreeRV,
    ModelNamed,
    ModelObservedRV,
    ModelPotential,
    ModelValuedVar,
    ModelVar,
    model_from_fgraph,
    model_observed_rv,
)
from pymc.variational.minibatch_rv import MinibatchRandomVariable, minibatch_rv
from pytensor.compile import SharedVariable
from pytensor.graph.basic import Constant
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.graph.traversal import ancestors

from minibatch._compat import MODEL_VAR_DIMS_ARE_PROPS
from minibatch._fgraph import restore_initvals, to_fgraph
from minibatch._gather import cast_source, uncast
from minibatch._minibatch import Minibatch
from minibatch._resize import DRAWS, rebuild
from minibatch._rowwise import NotRowwiseError, output_states
from minibatch._total_size import implied


def minibatch_model(
    model: Model | None,
    batch_size: int,
    *,
    dim: str | None = None,
    local: str | Iterable[str] = (),
    **minibatch_kwargs: Any,
) -> Model:
    """The minibatch version of a full-data model, for ``pm.fit``.

    Every observed variable on the batch dimension is evaluated on one random batch of rows,
    scaled by ``N / batch_size`` (``total_size``); all batch-dimension data (observed values,
    ``pm.Data`` containers, plain arrays) is drawn by one shared index, so rows stay paired.
    ``mb.full_data_model`` of the result gives back the full-data model (same logp); the
    original ``model`` is not changed and still samples with ``pm.sample``.

    Parameters
    ----------
    model : pm.Model or None
        The full-data model; the model on the context stack when None.
    batch_size : int
        Rows per batch, at most the number of rows N.
    dim : str, optional
        The model dim of the batch dimension.  By default it is axis 0 of the observed
        variables, which must then all have the same length N.  With ``dim``, the observed
        variables whose dims start with it are batched (others stay full) and ``pm.Data``
        containers are on the batch dimension when their dims start with it.
    local : str or sequence of str, optional
        Free variables with one value per data row (axis 0 of length N): they stay full
        length, and each likelihood uses ``z[idx]``, the rows of the batch.  Any other free
        variable on the batch dimension that a likelihood uses row by row is refused.
    **minibatch_kwargs
        Passed to ``mb.Minibatch`` (``random_seed``, ``sampling``, ...).

    Returns
    -------
    pm.Model
        A new model.  Its observed variables on the batch dimension have ``batch_size`` rows;
        their dims name the batch axis ``"<dim>_batch"`` (a dim of length ``batch_size``
        without coordinate values).  Free variables (local ones included), deterministics,
        potentials and data containers keep their full lengths and dims.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, a model without (or with ambiguous) observed rows, a model that
        already uses minibatches, or a variable that cannot be subsampled: named in the message.

    Examples
    --------
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> x = np.linspace(0, 1, 500)
    >>> y = 2 * x + np.random.default_rng(0).normal(0, 0.1, 500)
    >>> with pm.Model() as model:
    ...     slope = pm.Normal("slope", 0, 10)
    ...     obs = pm.Normal("y", slope * x, 0.1, observed=y)
    >>> mini = mb.minibatch_model(model, batch_size=50, random_seed=1)
    >>> pm.draw(mini["y"], random_seed=2).shape
    (50,)
    >>> with mini:
    ...     approx = pm.fit(3000, obj_optimizer=pm.adam(learning_rate=0.05),
    ...                     random_seed=3, progressbar=False)
    >>> round(float(approx.mean.eval()[0]), 1)
    2.0
    """
    model = modelcontext(model)
    batch_size = _check_batch_size(batch_size)
    local = _check_local(local)
    _refuse_minibatches(model)
    fgraph, _, initvals = to_fgraph(model)
    nodes = {v: v.owner for v in fgraph.outputs if v.owner and isinstance(v.owner.op, ModelVar)}
    names = {n.inputs[0]: (_kind(n), n.outputs[0].name) for n in nodes.values()}
    names.update({v: names[n.inputs[0]] for v, n in nodes.items()})
    data_dims = {n.inputs[0]: _dims(n) for n in nodes.values() if isinstance(n.op, ModelNamed)}
    observed = [n for n in nodes.values() if isinstance(n.op, ModelObservedRV)]
    if dim is not None and dim not in model.coords:
        raise ValueError(f"dim={dim!r} is not a dim of the model; its dims: {list(model.coords)}")
    n_rows, batched = _batched_observations(model, observed, dim)
    if batch_size > n_rows:
        raise ValueError(f"batch_size={batch_size} exceeds the {n_rows} rows of the data")
    locals_ = _local_vars(nodes, local, dim, n_rows)

    def on_batch_dim(var: Any) -> bool:
        if var in data_dims and dim is not None and data_dims[var]:
            return data_dims[var][0] == dim
        return _length(var) == n_rows and not var.type.broadcastable[0]

    rv_nodes = {_rv_node(n): n for n in batched}
    roots = [v for rv in rv_nodes for v in rv.op.dist_params(rv)]
    blockers = [v for v, n in nodes.items() if isinstance(n.op, ModelFreeRV | ModelNamed)]
    graph = list(ancestors(roots, blockers=blockers))
    inside = set(graph)
    values = list(dict.fromkeys(uncast(n.inputs[1]) for n in batched))
    leaves = values + [
        v
        for v in dict.fromkeys(graph)
        if v.owner is None and v not in values and _is_array(v) and on_batch_dim(v)
    ]
    _refuse_potentials(nodes, blockers, on_batch_dim)
    data = [v.data if isinstance(v, Constant) else v for v in leaves]
    if locals_:  # the batch's row numbers, drawn with the data: z[rows] is z's batch
        data.append(np.arange(n_rows))
    made = Minibatch(*data, batch_size=batch_size, **minibatch_kwargs)
    batches = made if isinstance(made, tuple) else (made,)
    new: dict[Any, Any] = dict(zip(leaves, batches, strict=False))
    for z in locals_:
        new[z] = z[batches[-1]]
    states = dict.fromkeys(new, 0)
    describe = _describer(names, n_rows)
    for node in fgraph.toposort():
        obs = rv_nodes.get(node)
        draw = obs is not None or (
            isinstance(node.op, DRAWS) and any(out in inside for out in node.outputs)
        )
        if isinstance(node.op, ModelVar) or not (draw or any(i in new for i in node.inputs)):
            continue
        if not draw and not any(out in inside for out in node.outputs):
            continue
        length = batches[0].shape[0] if obs is None else new[uncast(obs.inputs[1])].shape[0]
        try:
            found = _states(node, states, draw)
            args = [new.get(i, i) for i in node.inputs]
            outputs = rebuild(node, args, length, [states.get(i) for i in node.inputs])
        except NotRowwiseError as err:
            where = obs.outputs[0].name if obs else _user(node, rv_nodes)
            raise ValueError(
                f"the likelihood of observed variable {where!r} cannot be subsampled along "
                f"the batch dimension: {err.args[0]}. {describe(err.args[1:])}"
            ) from None
        new.update(zip(node.outputs, outputs, strict=True))
        states.update(zip(node.outputs, found, strict=True))
    replacements = []
    for node in batched:
        name = node.outputs[0].name
        value = new[uncast(node.inputs[1])]
        if value.dtype != node.inputs[1].dtype:
            value = cast_source(value, node.inputs[1].dtype)
        rv = new[node.inputs[0]]
        scaled = minibatch_rv(rv, *implied(value))
        dims = _dims(node)
        if dims:
            dims = (_batch_dim(fgraph, dims[0], batch_size), *dims[1:])
        replacements.append((node.outputs[0], _observed_var(scaled, value, name, dims)))
    for old, _ in replacements:  # not replace(): the batch has another static length
        fgraph.remove_output(fgraph.outputs.index(old))
    for _, var in replacements:
        fgraph.add_output(var, import_missing=True)
    return restore_initvals(model_from_fgraph(fgraph, mutate_fgraph=True), initvals)


def _check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool | np.bool_) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size must be a positive int; got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size}")
    return int(batch_size)


def _check_local(local: Any) -> list[str]:
    names = [local] if isinstance(local, str) else list(local)
    if not all(isinstance(n, str) for n in names):
        raise TypeError(f"local must be a name or a list of names of free variables; got {local!r}")
    return names


def _refuse_minibatches(model: Model) -> None:
    graph = list(model.named_vars.values()) + list(model.rvs_to_values.values())
    for var in ancestors(graph):
        if var.owner is not None and isinstance(
            var.owner.op, MinibatchOp | MinibatchRandomVariable
        ):
            raise ValueError(
                "model already uses minibatches or total_size; minibatch_model takes the "
                "full-data model (plain arrays or pm.Data); mb.full_data_model(model) gives it"
            )


def _dims(node: Any) -> tuple[str, ...]:
    if MODEL_VAR_DIMS_ARE_PROPS:
        return tuple(node.op.dims)
    start = 2 if isinstance(node.op, ModelValuedVar) else 1
    return tuple(d.data for d in node.inputs[start:])


def _observed_var(rv: Any, value: Any, name: str, dims: tuple[str, ...]) -> Any:
    rv.name = name
    if MODEL_VAR_DIMS_ARE_PROPS:
        return ModelObservedRV(name=name, dims=dims)(rv, value)
    return model_observed_rv(rv, value, *dims)


def _kind(node: Any) -> str:
    return {
        ModelFreeRV: "free variable",
        ModelObservedRV: "observed variable",
        ModelDeterministic: "deterministic",
        ModelPotential: "potential",
        ModelNamed: "data",
    }[type(node.op)]


def _states(node: Any, states: dict[Any, Any], draw: bool) -> list[Any]:
    """The row-wise states of ``node``'s outputs; a draw of the likelihood has the rows."""
    found = output_states(node, [states.get(i) for i in node.inputs])
    if draw and all(s is None for s in found):  # a draw of unbatched parameters, resized
        found[node.outputs.index(node.default_output())] = 0
    return found


def _rv_node(node: Any) -> Any:
    rv = node.inputs[0]
    if not isinstance(rv.owner.op, DRAWS):
        raise ValueError(
            f"observed variable {node.outputs[0].name!r} has a distribution "
            f"({rv.owner.op}) that minibatch_model cannot resize to a batch; build its "
            "minibatch model by hand with mb.Minibatch"
        )
    return rv.owner


def _length(var: Any) -> int | None:
    if not isinstance(var.type, pt.TensorType) or var.ndim == 0:
        return None
    if var.type.shape[0] is not None:
        return int(var.type.shape[0])
    if isinstance(var, SharedVariable):
        return int(np.shape(var.get_value(borrow=True))[0])
    if var.owner is not None and isinstance(var.owner.op, ModelVar):
        return _length(var.owner.inputs[0])
    try:  # shapes inferred first: the length of a draw does not depend on its parameters
        length: Any = rewrite_graph(var.shape[0], include=("canonicalize", "ShapeOpt"))
        return int(length.eval())
    except Exception:  # a shape that depends on unknown inputs
        return None


def _batched_observations(
    model: Model, observed: list[Any], dim: str | None
) -> tuple[int, list[Any]]:
    """The number of rows N and the observed variables on the batch dimension."""
    if dim is not None:
        n_rows = int(model.dim_lengths[dim].eval())
        batched = [n for n in observed if _dims(n)[:1] == (dim,)]
        if not batched:
            raise ValueError(
                f"no observed variable has dim={dim!r} on its first axis; the batch dimension "
                "must be the leading axis of the observed variables"
            )
        return n_rows, batched
    found = {n.outputs[0].name: _length(n.inputs[1]) for n in observed}
    lengths = {k: v for k, v in found.items() if v is not None}
    if not lengths:
        raise ValueError(
            "the model has no observed variable with a leading axis to subsample; "
            "minibatch_model needs observed data with one row per observation on axis 0"
        )
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"the observed variables have different lengths on axis 0 ({lengths}); name the "
            "batch dimension with dim=... (a dim of the model's coords)"
        )
    batched = [n for n in observed if n.outputs[0].name in lengths]
    return next(iter(lengths.values())), batched


def _local_vars(nodes: dict[Any, Any], local: list[str], dim: str | None, n_rows: int) -> list[Any]:
    free = {n.outputs[0].name: n for n in nodes.values() if isinstance(n.op, ModelFreeRV)}
    found = []
    for name in local:
        deterministic = {
            n.outputs[0].name for n in nodes.values() if isinstance(n.op, ModelDeterministic)
        }
        if name in deterministic:
            raise ValueError(
                f"local={local!r}: {name!r} is a deterministic; declare local the free "
                "variable it is built from (non-centred z = m + s * z_raw: local=['z_raw']), "
                "and the deterministic follows"
            )
        if name not in free:
            raise ValueError(
                f"local={local!r}: {name!r} is not a free variable of the model; free "
                f"variables: {sorted(free)}"
            )
        node = free[name]
        dims = _dims(node)
        rows = dims[0] == dim if dim is not None and dims else _length(node.inputs[0]) == n_rows
        if not rows:
            raise ValueError(
                f"local variable {name!r} must have one value per data row: axis 0 of length "
                f"{n_rows}" + (f" (dims starting with {dim!r})" if dim is not None else "")
            )
        found.append(node.outputs[0])
    return found


def _refuse_potentials(nodes: dict[Any, Any], blockers: list[Any], rows: Any) -> None:
    """A Potential that depends on data of the batch dimension is a sum over its rows."""
    for var, node in nodes.items():
        if isinstance(node.op, ModelPotential):
            graph = ancestors([node.inputs[0]], blockers=blockers)
            used = [v for v in graph if v.owner is None and _is_array(v) and rows(v)]
            if used:
                raise ValueError(
                    f"potential {var.name!r} depends on data of the batch dimension "
                    f"({used[0].name or 'an array of the model'}); a Potential cannot be "
                    "subsampled. Write that term as an observed variable (pm.CustomDist), or "
                    "compute its data part outside the model"
                )


def _is_array(var: Any) -> bool:
    return isinstance(var.type, pt.TensorType) and var.ndim > 0


def _batch_dim(fgraph: Any, dim: str, batch_size: int) -> str:
    name = f"{dim}_batch"
    if name not in fgraph._coords:
        fgraph._coords[name] = None
        fgraph._dim_lengths[name] = pt.constant(batch_size, dtype="int64")
    elif fgraph._coords[name] is not None:
        raise ValueError(
            f"the model already has a dim {name!r}; minibatch_model names the batch axis so"
        )
    return name


def _describer(names: dict[Any, tuple[str, str]], n_rows: int) -> Any:
    """A sentence on the variable behind an unbatched input of the batch dimension."""

    def describe(found: tuple) -> str:
        if not found:
            return "Compute that part outside the model, or build the minibatch model by hand."
        graph = [found[0], *ancestors([found[0]])]
        named = [v for v in graph if v in names and _length(v) == n_rows]
        named.sort(key=lambda v: names[v][0] != "free variable")
        if not named:
            return "Compute that part outside the model, or build the minibatch model by hand."
        kind, name = names[named[0]]
        if kind == "free variable":
            return (
                f"It uses free variable {name!r}, which has the batch dimension: a free "
                "variable cannot be subsampled. If it has one value per data row, declare it "
                f"local (local=[{name!r}]): it stays full length and the likelihood uses its "
                "rows of the batch."
            )
        return f"It uses {kind} {name!r}, which has the batch dimension but is not batched."

    return describe


def _user(node: Any, rv_nodes: dict[Any, Any]) -> str:
    """The name of an observed variable whose likelihood graph contains ``node``."""
    for rv, obs in rv_nodes.items():
        if node.outputs[0] in set(ancestors(rv.inputs)):
            return str(obs.outputs[0].name)
    return "?"
