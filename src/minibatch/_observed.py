"""Observed minibatches in a PyMC model: ``total_size`` inferred, checked or warned about.

:func:`as_given` marks a ``total_size`` to be used as written; it installs the hooks below, so
it works on models that use no ``mb.Minibatch`` (PyMC's own, or more_replacements).

``Model.register_rv`` is wrapped (installed with the first ``Minibatch``, idempotent).  For an
observed variable it

* validates an explicit ``total_size`` (see ``_total_size``) and hands PyMC one entry per axis;
* when the observed data is a minibatch (or a cast of one) and ``total_size`` is omitted, scales
  by the stored data's length on each subsampled axis;
* when ``total_size`` is given for a minibatch, refuses values that disagree with the stored
  data (``mb.as_given`` skips both the inference and the check);
* when the observed data is computed from minibatches (``xb[:, 0] * 2``), wraps that expression
  in a :class:`DerivedBatchOp` so PyMC accepts it as data, and warns if ``total_size`` is
  missing, since no axis mapping is known.

PyMC's own "total_size not provided ... pm.Minibatch" warning is silenced for these cases only:
the inference or our own warning replaces it.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
from pymc.model.core import Model
from pymc.variational.minibatch_rv import MinibatchRandomVariable
from pymc.variational.opvi import ObjectiveFunction
from pytensor.graph.basic import Variable
from pytensor.graph.traversal import ancestors

from minibatch._compat import warn_at_user_line
from minibatch._derived import derive, is_batch
from minibatch._gather import describe_batch, source_of
from minibatch._inputs import current_value
from minibatch._ops import is_ours
from minibatch._pairing import check_pairing
from minibatch._total_size import (
    AsGiven,
    TotalSizeWarning,
    check_agreement,
    implied,
    is_window,
    normalise,
)
from minibatch._upstream._patch import patch

_PYMC_WARNING = "total_size not provided for observed variable"


def as_given(total_size: Any) -> AsGiven:
    """Mark ``total_size`` to be used exactly as written: not inferred, not checked.

    By default an observed minibatch is scaled by its stored data's length on each subsampled
    axis, and an explicit ``total_size`` that disagrees with that length raises a
    ``ValueError``.  Wrap the value in ``as_given`` when the difference is meant: the stored
    rows are themselves a sample of a larger population, or the density is deliberately
    tempered.  ``as_given(None)`` leaves the density unscaled.

    Parameters
    ----------
    total_size : int, tuple, pm.Data shape or None
        Any of PyMC's forms of ``total_size``; ``None`` for no scaling.

    Returns
    -------
    AsGiven
        A marker to pass as ``total_size=``.

    Examples
    --------
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> xb = mb.Minibatch(np.zeros(100), batch_size=10)
    >>> with pm.Model() as model:
    ...     y = pm.Normal("y", observed=xb, total_size=mb.as_given(1_000_000))
    >>> int(model.observed_RVs[0].owner.inputs[1].eval())
    1000000
    """
    install()
    if isinstance(total_size, AsGiven):
        return total_size
    return AsGiven(total_size)


def resolve(observed: Any, total_size: Any, name: str) -> tuple[Any, Any]:
    """The ``(observed, total_size)`` to hand PyMC for one observed variable."""
    ndim = int(getattr(observed, "ndim", np.ndim(observed)))
    if isinstance(total_size, AsGiven):
        given = total_size.total_size
        return derive(observed), None if given is None else normalise(given, ndim, name)
    sizes = None if total_size is None else normalise(total_size, ndim, name)
    if is_batch(observed):
        _refuse_missing_values(observed, name)
        if sizes is None:
            if is_window(observed):
                warn_at_user_line(
                    f"observed variable {name!r} is drawn from a window of its data "
                    f"(in_memory_size / update_shared_f) and has no total_size, so its density "
                    f"is scaled by the window's length, not the population's. Pass "
                    f"total_size=<number of rows of the whole data set>.",
                    TotalSizeWarning,
                )
            return observed, implied(observed)
        check_agreement(observed, sizes, name)
        return observed, sizes
    derived = derive(observed)
    if derived is not observed and sizes is None:
        warn_at_user_line(
            f"observed variable {name!r} is computed from a minibatch ({observed}) in a way "
            "minibatch cannot map to the data's axes, so its density is not scaled. Pass "
            "total_size=... (the full length of each subsampled axis), or observe the "
            "minibatch itself.",
            TotalSizeWarning,
        )
    return derived, sizes


def _refuse_missing_values(batch: Any, name: str) -> None:
    """NaN in observed minibatch data: PyMC would impute it batch by batch; refuse it instead."""
    values = current_value(source_of(batch)[0])
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(
            f"observed variable {name!r} is drawn from data with {int(np.isnan(values).sum())} "
            f"NaN entries (minibatch {describe_batch(batch)}). PyMC would treat them as missing "
            "values to impute, but a minibatch holds other rows at every step, so no imputed "
            "variable would stay attached to a row. Drop the rows with NaN, or fill them, before "
            "building the Minibatch."
        )


def registering_total_size(register: Any) -> Any:
    """Wrap ``Model.register_rv`` so observed minibatches get a checked or inferred total_size."""

    @functools.wraps(register)
    def wrapper(
        self: Model,
        rv_var: Any,
        name: str,
        *,
        observed: Any = None,
        total_size: Any = None,
        **kw: Any,
    ) -> Any:
        if observed is None:
            if isinstance(total_size, AsGiven):
                total_size = total_size.total_size
            return register(self, rv_var, name, observed=observed, total_size=total_size, **kw)
        observed, total_size = resolve(observed, total_size, name)
        check_pairing(rv_var, observed, name)
        with warnings.catch_warnings():
            if isinstance(observed, Variable) and any(
                is_ours(v.owner) for v in ancestors([observed])
            ):
                warnings.filterwarnings("ignore", _PYMC_WARNING, UserWarning)
            return register(self, rv_var, name, observed=observed, total_size=total_size, **kw)

    return wrapper


def unscaled_replacements(model: Model, replacements: Any) -> list[str]:
    """Observed variables without ``total_size`` whose data ``replacements`` turn into batches."""
    names = []
    for rv in model.observed_RVs:
        value = model.rvs_to_values.get(rv)
        new = (replacements or {}).get(value)
        if new is None or isinstance(rv.owner.op, MinibatchRandomVariable):
            continue
        if isinstance(new, Variable) and any(is_ours(v.owner) for v in ancestors([new])):
            names.append(rv.name)
    return names


def warn_unscaled(model: Any, more_replacements: Any) -> None:
    """Warn (:class:`TotalSizeWarning`) for each observed variable that ``more_replacements``
    turns into a minibatch without a ``total_size``."""
    for name in unscaled_replacements(model, more_replacements):
        warn_at_user_line(
            f"more_replacements turns the data of observed variable {name!r} into a "
            "minibatch, but it has no total_size: its density is not scaled to the full "
            "data. Pass total_size=<full length> to that observed variable.",
            TotalSizeWarning,
        )


def checking_replacements(step_function: Any) -> Any:
    """Wrap ``ObjectiveFunction.step_function``: warn when a replacement leaves a fit unscaled."""

    @functools.wraps(step_function)
    def wrapper(self: Any, *args: Any, more_replacements: Any = None, **kwargs: Any) -> Any:
        warn_unscaled(self.approx.model, more_replacements)
        return step_function(self, *args, more_replacements=more_replacements, **kwargs)

    return wrapper


def install() -> None:
    """Route observed variables through :func:`resolve`; check fits' replacements (idempotent)."""
    patch(Model, "register_rv", registering_total_size)
    patch(ObjectiveFunction, "step_function", checking_replacements)
