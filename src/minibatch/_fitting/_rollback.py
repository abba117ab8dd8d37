"""A non-finite step undone and retried: the compiled step function of an ``mb.fit``, guarded.

PyMC's loop stops the whole fit with ``FloatingPointError`` at the first NaN loss (and does not
notice an infinite one, whose step then makes the parameters NaN).  One bad Monte Carlo draw or
one extreme minibatch should not cost the fit: :class:`Guard` wraps the compiled step so that
after each step it checks the loss and every floating-point value the step updated (the
variational parameters and the optimiser's moments).  A step with anything non-finite is
undone (each of those values put back as it was before the step) and retried with a fresh draw
and, when the step size is ours, with every step size halved for that retry; the step sizes
are then put back.  ``max_retries`` failures of one step in a row raise ``FloatingPointError``
naming the variables whose parameters went non-finite (or saying that the loss did at finite
parameters), as PyMC's message does.

The values are copied into two preallocated buffer sets, swapped after each good step, so a
step allocates nothing; on JAX, whose arrays never change in place, the good values are kept as
they are, without a copy or a transfer from the device.  The random generators are not rolled
back: a retry draws anew.  A step of ``k`` optimiser steps in one call (:mod:`._scan`) is tried
once (:meth:`Guard.settle`; the call computes whether what it updated is finite, so nothing is
read back to check it): if anything is not finite the whole call is undone and its steps rerun
one at a time, each guarded as above (a model whose draws fail now and then would fail a call
of many steps too often to retry it whole); functions that share the guarded values share one
guard.

>>> import numpy as np, pymc as pm, pytensor.tensor as pt, minibatch as mb
>>> with pm.Model():
...     x = pm.Normal("x", 0.0, 1.0)
...     _ = pm.Potential("cliff", pt.switch(x > 2.0, np.nan, 0.0))  # NaN beyond 2
...     approx = mb.fit(3000, random_seed=3, stop=False, progressbar=False)
>>> approx.report.rollbacks > 0, bool(np.isfinite(approx.mean.eval()).all())
(True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pytensor.tensor.type import TensorType

from minibatch._fitting._scales import Layout

MAX_RETRIES = 8
"""Consecutive non-finite attempts at one step before the fit is stopped."""

RETRY_FACTOR = 0.5
"""Each retry's step sizes, relative to the last attempt's."""


def updated_values(function: Any) -> list[Any]:
    """The floating-point shared variables that a compiled pytensor function updates."""
    found = []
    for given in function.maker.inputs:
        var = getattr(given, "variable", None)
        if getattr(given, "update", None) is None or var is None:
            continue
        if isinstance(var.type, TensorType) and np.dtype(var.type.dtype).kind == "f":
            found.append(var)
    return found


class Guard:
    """The compiled step, with a non-finite step undone and retried (see the module docstring).

    Parameters
    ----------
    step : callable
        PyMC's compiled step function (returns the loss).
    names : callable
        ``names()`` gives the variables whose parameters are non-finite now, for the error;
        ``names(every=True)`` all of q's variables.
    rates : dict, optional
        The shared step sizes to halve on a retry; ``None`` when the optimiser is the user's
        (a retry then only draws anew).
    """

    def __init__(
        self,
        step: Any,
        names: Any,
        rates: dict[str, Any] | None = None,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self.step, self.names, self.rates, self.max_retries = step, names, rates, max_retries
        self.watched = updated_values(step)
        self._good: list[Any] = [np.array(v.get_value(borrow=True)) for v in self.watched]
        self._spare: list[Any] = [np.empty_like(a) for a in self._good]
        self.rollbacks = 0

    def __getattr__(self, name: str) -> Any:  # maker, profile, ...: the compiled function's
        return getattr(self.__dict__["step"], name)

    def __call__(self, step: Any = None) -> Any:
        """Run ``step`` (by default the guarded step; another compiled function that updates
        the same values may be given), undone and retried while not finite."""
        step = self.step if step is None else step
        loss = step()
        if np.all(np.isfinite(loss)) and self._take():  # the step of every good step: no more
            return loss
        return self._retry(step, loss)

    def settle(self, losses: Any, finite: Any, values: dict[Any, Any] | None = None) -> Any:
        """Check a call that has been started (its losses, its finite flag and, where they
        were kept, the values it left: :meth:`Steps.launch <._scan.Steps.launch>`): its losses
        as NumPy if all is finite (its values become the good ones), else ``None`` with the
        values put back as they were before it (a call of many steps is then rerun a step at a
        time, each guarded)."""
        losses = np.asarray(losses)
        if bool(finite) and np.isfinite(losses).all():
            self._keep(values)
            return losses
        self.undo()
        self.rollbacks += 1
        return None

    def _retry(self, step: Any, loss: Any) -> Any:
        """Undo the failed step and retry it with smaller steps; put the step sizes back."""
        rates = {k: r.get_value() for k, r in (self.rates or {}).items()}
        try:
            for attempt in range(1, self.max_retries + 1):
                bad = self.names()
                self.undo()
                self.rollbacks += 1
                if attempt == self.max_retries:
                    break
                for kind, rate in (self.rates or {}).items():
                    value = rates[kind] * RETRY_FACTOR**attempt
                    rate.set_value(np.asarray(value, dtype=rate.dtype))
                loss = step()
                if np.all(np.isfinite(loss)) and self._take():
                    return loss
        finally:
            for kind, rate in (self.rates or {}).items():
                rate.set_value(rates[kind])
        raise FloatingPointError(self._message(loss, bad))

    def _take(self) -> bool:
        """Keep the step's new values if all are finite (then they become the good ones)."""
        for var in self.watched:
            if not np.isfinite(np.asarray(var.get_value(borrow=True))).all():
                return False
        self._keep()
        return True

    def _keep(self, values: dict[Any, Any] | None = None) -> None:
        """The values now (or ``values``, a call's) are the good ones: a NumPy array (which a
        later step may change in place) copied into a spare buffer, a JAX array (never
        changed) kept as it is."""
        for i, var in enumerate(self.watched):
            value = var.get_value(borrow=True) if values is None else values[var]
            if not isinstance(value, np.ndarray):
                self._good[i] = value
                continue
            spare = self._spare[i]
            if spare is None or spare.shape != value.shape or spare.dtype != value.dtype:
                spare = np.empty_like(value)
            np.copyto(spare, value)
            old = self._good[i]
            self._spare[i] = old if isinstance(old, np.ndarray) else None
            self._good[i] = spare

    def undo(self) -> None:
        """Put back the good values (those after the last step or call that was kept)."""
        for var, value in zip(self.watched, self._good, strict=True):
            var.set_value(value.copy())

    def _message(self, loss: Any, bad: list[str]) -> str:
        what = (
            f"the parameters of {bad} went non-finite"
            if bad
            else f"the loss was {loss} at finite parameters of {self.names(every=True)} (the "
            "model's density or its gradient is not finite at some draws from q)"
        )
        shrink = (
            f", each retry with step sizes {RETRY_FACTOR} times smaller"
            if self.rates is not None
            else ""
        )
        return (
            f"mb.fit: {self.max_retries} attempts in a row at one step were not finite ({what}); "
            f"each was undone and retried with a fresh draw{shrink}. The approximation holds "
            "the last finite parameters. Check the model's density where q puts mass (bounds, "
            "log of zero, overflow), or start elsewhere (start=...)."
        )


def nonfinite_variables(approx: Any, layout: Layout, every: bool = False) -> list[str]:
    """The value variables of ``approx`` with a non-finite mean, sd or Cholesky row (or all of
    them, with ``every``)."""
    ordering = approx.groups[0].ordering
    if every:
        return list(ordering)
    bad = ~np.isfinite(layout.read())
    if not bad.any():
        return []
    coords = bad[: layout.dim].copy()
    rest = bad[layout.dim :]
    if layout.family == "meanfield":
        coords |= rest
    else:
        coords[np.tril_indices(layout.dim)[0][rest]] = True
    return [name for name, (_, where, _, _) in ordering.items() if coords[where].any()]
