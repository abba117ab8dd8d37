"""A model as a graph and back (PyMC's ``fgraph_from_model``), initial values kept.

PyMC's ``fgraph_from_model`` refuses a model with any ``initval=`` ("Cannot convert models with
non-default initial_values", pymc 5.28 and 6.4), and the models people write have them (the
BNN notebook's weights).  :func:`to_fgraph` converts the model with its initial values set
aside for the call (restored at once, whatever happens), and :func:`restore_initvals` sets
them on the new model by name.  The user's model ends as it began.

>>> import pymc as pm
>>> from pymc.model.fgraph import model_from_fgraph
>>> with pm.Model() as model:
...     w = pm.Normal("w", 0, 1, initval=0.5)
>>> fgraph, memo, initvals = to_fgraph(model)
>>> new = restore_initvals(model_from_fgraph(fgraph, mutate_fgraph=True), initvals)
>>> float(new.initial_point()["w"]), float(model.initial_point()["w"])
(0.5, 0.5)
"""

from __future__ import annotations

from typing import Any

from pymc.model.core import Model
from pymc.model.fgraph import fgraph_from_model


def to_fgraph(model: Model) -> tuple[Any, dict[Any, Any], dict[str, Any]]:
    """``fgraph_from_model(model)`` and the model's initial values, ``{name: initval}``."""
    initvals = {
        rv.name: value for rv, value in model.rvs_to_initial_values.items() if value is not None
    }
    saved = dict(model.rvs_to_initial_values)
    try:
        for rv in saved:
            model.rvs_to_initial_values[rv] = None
        fgraph, memo = fgraph_from_model(model)
    finally:
        model.rvs_to_initial_values.update(saved)
    return fgraph, memo, initvals


def restore_initvals(model: Model, initvals: dict[str, Any]) -> Model:
    """``model`` with the initial values ``{name: initval}`` set on its variables."""
    for name, value in initvals.items():
        model.set_initval(model[name], value)
    return model
