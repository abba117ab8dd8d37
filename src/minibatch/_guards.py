"""Samplers that need the full data refuse a minibatch model, naming what to do instead.

``pm.sample``, ``pm.find_MAP`` and ``pm.sample_smc`` evaluate the model's logp as if it were
the posterior's; on a minibatch model it is another random batch at every evaluation.  NUTS
then runs without a word and returns garbage (196 divergences in 200 draws and a posterior sd
of 0.0 against an exact 0.014, measured on the landed package); MAP optimises noise.
``pm.compute_log_likelihood`` would give one scaled random batch per draw as the pointwise
log-likelihood, which silently breaks ``az.loo`` / ``az.waic`` (pymc #8300).  The wrappers
installed here (with the first ``Minibatch``) raise instead, naming the observed variables that
are drawn from minibatches and pointing at ``mb.full_data_model(model)`` (or
``mb.log_likelihood``).  VI (``pm.fit``) and forward sampling are not touched.
"""

from __future__ import annotations

import functools
from typing import Any

import pymc
import pymc.sampling
import pymc.sampling.mcmc
import pymc.smc
import pymc.smc.sampling
import pymc.stats
import pymc.stats.log_density
import pymc.tuning
import pymc.tuning.starting
from pymc.data import MinibatchOp
from pymc.model.core import Model, modelcontext
from pytensor.graph.traversal import ancestors

from minibatch._upstream._patch import patch

# Every namespace a user reaches each sampler through, with the module that defines it.
GUARDED = {
    "sample": (pymc, pymc.sampling, pymc.sampling.mcmc),
    "find_MAP": (pymc, pymc.tuning, pymc.tuning.starting),
    "sample_smc": (pymc, pymc.smc, pymc.smc.sampling),
    "compute_log_likelihood": (pymc, pymc.stats, pymc.stats.log_density),
}
# What to call instead, where it is not the same call on the full-data model.
INSTEAD = {
    "compute_log_likelihood": "mb.log_likelihood(idata, model), which computes it on the full "
    "data through mb.full_data_model(model)",
}


def minibatch_observations(model: Model) -> list[str]:
    """The observed variables of ``model`` whose density depends on a minibatch."""
    names = []
    for rv in model.observed_RVs:
        graph = [rv, model.rvs_to_values[rv]]
        if any(
            v.owner is not None and isinstance(v.owner.op, MinibatchOp) for v in ancestors(graph)
        ):
            names.append(rv.name)
    return names


def refusing_minibatches(sampler: Any) -> Any:
    """Wrap a sampler so that it raises on a model with minibatch observations."""

    @functools.wraps(sampler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            model = modelcontext(kwargs.get("model"))
        except TypeError:  # no model at all: the sampler says so itself
            return sampler(*args, **kwargs)
        names = minibatch_observations(model)
        if names:
            name = sampler.__name__
            instead = INSTEAD.get(
                name,
                f"the same model on the full data: `with mb.full_data_model(model): "
                f"pm.{name}(...)` (or pm.fit for variational inference on the minibatches)",
            )
            raise ValueError(
                f"pm.{name} needs the full data, but the observed variables {names} of this "
                f"model are drawn from minibatches: every evaluation would see another random "
                f"batch and the result would be wrong without a warning. Use {instead}."
            )
        return sampler(*args, **kwargs)

    return wrapper


def install() -> None:
    """Guard the samplers of :data:`GUARDED` (idempotent)."""
    for name, modules in GUARDED.items():
        for module in modules:
            patch(module, name, refusing_minibatches)
