"""What a fit by :func:`minibatch.fit` did, and the warning it gives when it did not converge."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class NotConvergedWarning(UserWarning):
    """An :func:`minibatch.fit` ended before its stopping rule was met.

    The approximation holds the average of the iterates so far; ``approx.report`` says why the
    fit ended (``reason``) and how far it was (``rhat``, ``mcse``, ``ess``, ``steps``).

    Examples
    --------
    >>> import warnings, numpy as np, pymc as pm, minibatch as mb
    >>> with pm.Model():
    ...     mu = pm.Normal("mu")
    ...     _ = pm.Normal("y", mu, 1.0, observed=np.zeros(10))
    ...     with warnings.catch_warnings(record=True) as caught:
    ...         warnings.simplefilter("always")
    ...         approx = mb.fit(100, random_seed=0, progressbar=False)  # far too few steps
    >>> [w.category.__name__ for w in caught if issubclass(w.category, mb.NotConvergedWarning)]
    ['NotConvergedWarning']
    >>> approx.report.reason, approx.report.steps
    ('cap', 100)
    """


@dataclass
class FitReport:
    """The record of an :func:`minibatch.fit`, kept as ``approx.report``.

    Attributes
    ----------
    converged : bool
        Whether the stopping rule was met (stationary iterates, MCSE and ESS within bounds).
    reason : str
        ``"converged"``, ``"cap"`` (``n`` steps done first), ``"fixed"`` (the rule was off),
        ``"interrupted"`` or ``"callback"`` (a callback raised ``StopIteration``).
    steps : int
        Optimiser steps done, over every call that continued this fit.
    seconds : float
        Wall time of the steps (compilation included), for information only: no decision reads it.
    averaged : int
        How many iterates the installed average is taken over.
    rhat, mcse, ess : dict
        The largest split-R-hat, the largest MCSE (in the watched units: q's sd for means, log sd
        for spreads) and the smallest ESS of the averaging window, each for ``"mean"`` and
        ``"spread"`` parameters.
    threshold : float
        The MCSE every watched parameter had to reach.
    step_sizes : list of (int, dict)
        The step at which each pair of step sizes began, ``{"mean": ..., "spread": ...}`` (empty
        when the optimiser is the user's).
    rollbacks : int
        Steps undone because their loss or new parameters were not finite (each retried with a
        fresh draw and smaller steps; see :mod:`minibatch._fitting._rollback`).
    history : list of dict
        One entry per decision of the rule: ``step``, ``stationary``, the step sizes
        (``step_mean``, ``step_spread``) and the window's largest ``rhat_*``, ``mcse_*`` and
        ``jitter_*`` and smallest ``ess_*`` for means and spreads (R-hat alone while searching).
    inference : pymc Inference
        The inference object: pass it as ``method=`` to continue this fit.

    Examples
    --------
    >>> from minibatch import FitReport
    >>> report = FitReport(converged=True, reason="converged", steps=5000, averaged=3200,
    ...                    rhat={"mean": 1.01}, mcse={"mean": 0.04}, ess={"mean": 600.0},
    ...                    threshold=0.058)
    >>> for part in report.summary().split("; "):
    ...     print(part)
    converged after 5000 steps (3200 averaged)
    R-hat max: mean 1.01
    MCSE max: mean 0.04 (threshold 0.058)
    ESS min: mean 600
    """

    converged: bool = False
    reason: str = "cap"
    steps: int = 0
    seconds: float = 0.0
    averaged: int = 0
    rhat: dict[str, float] = field(default_factory=dict)
    mcse: dict[str, float] = field(default_factory=dict)
    ess: dict[str, float] = field(default_factory=dict)
    threshold: float = float("nan")
    step_sizes: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    rollbacks: int = 0
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    inference: Any = field(default=None, repr=False)

    def summary(self) -> str:
        """One line: converged or not, steps, and the figures the rule reads."""

        def fmt(d: dict[str, float]) -> str:
            return ", ".join(f"{k} {v:.3g}" for k, v in d.items()) or "n/a"

        state = "converged" if self.converged else f"NOT converged ({self.reason})"
        return (
            f"{state} after {self.steps} steps ({self.averaged} averaged); "
            f"R-hat max: {fmt(self.rhat)}; MCSE max: {fmt(self.mcse)} "
            f"(threshold {self.threshold:.3g}); ESS min: {fmt(self.ess)}"
            + (f"; {self.rollbacks} non-finite steps undone" if self.rollbacks else "")
        )

    def plot(self, axes: Any = None) -> Any:
        """Draw the loss, the step sizes and the rule's decisions; return the figure.

        See :func:`minibatch._fitting._plot.plot_report`; needs matplotlib
        (``pip install "pymc-minibatch[plot]"``).
        """
        from minibatch._fitting._plot import plot_report

        return plot_report(self, axes=axes)
