"""The stopping rule of :func:`minibatch.fit` as a ``pm.fit`` callback: :class:`Converged`.

``pm.fit`` runs its own optimiser, which a callback cannot change, so the callback runs the rule
of :mod:`._rule` with the step left alone: it averages the stationary iterates, and once their
average is accurate it writes that average into the approximation and ends the fit.
"""

from __future__ import annotations

import time
import warnings
import weakref
from typing import Any

from pymc.variational.approximations import Empirical, EmpiricalGroup

from minibatch._fitting._report import FitReport, NotConvergedWarning
from minibatch._fitting._rule import Averager, Rule
from minibatch._fitting._scales import Layout, layout_of


class Converged:
    """A ``pm.fit`` callback that averages the iterates and stops the fit once the average is
    accurate.

    The rule is :func:`minibatch.fit`'s (see ``docs/convergence.md``), less the step-size
    halving: a callback cannot change ``pm.fit``'s optimiser, so the step is the one given to
    ``pm.fit``.  At every step the callback adds the iterate to a bounded-memory average; once
    the iterates are stationary (split-R-hat) and the average's MCSE is small against q's sd
    (means) and on log sd (spreads), it writes the **average** into the approximation and
    raises ``StopIteration``, so ``pm.fit`` returns an approximation holding the average.

    Parameters
    ----------
    tolerance : float
        The root-mean-square error accepted for the averaged parameters, in q's standard
        deviations for means and on the log scale for standard deviations; the largest error
        over all parameters is then at most ``2.5 * tolerance`` (with probability 0.95), up to
        the bias a too-large fixed step leaves (which no averaging removes).

    Attributes
    ----------
    converged : bool
        Whether the rule has been met.
    averager : Averager or None
        The rule's state (``None`` before the first step).  ``averager.average()`` is the
        average installed; ``averager.last`` the last iterate.

    Notes
    -----
    **When** ``n`` **runs out first** (or the fit is interrupted with Ctrl-C), ``pm.fit``
    returns without telling the callback: the approximation then holds the **last iterate**,
    not the average, and ``converged`` is ``False``.  Call :meth:`install` to write the average
    so far into it (it warns with :class:`~minibatch.NotConvergedWarning`), or continue the fit
    (``inference.refine(n)`` with an ``Inference`` of your own; the callback keeps averaging).

    **One approximation per callback.** The callback binds to the approximation of its first
    call; calling it with another (a second ``pm.fit`` with the same object) raises
    ``ValueError``: make a new ``Converged`` for each fit.

    **Refused:** SVGD and ASVGD (an ``Empirical`` approximation), whose particles are the
    approximation and have no average to converge, and approximations other than one
    mean-field or one full-rank group (``NotImplementedError`` at the first step).

    ``report`` has no loss history (``report.inference`` is ``None``); the losses are in
    ``approx.hist``: ``plot_report(cb.report, hist=approx.hist)``.

    Examples
    --------
    >>> import numpy as np, pymc as pm, minibatch as mb
    >>> y = np.random.default_rng(0).normal(3.0, 1.0, size=1000)
    >>> with pm.Model():
    ...     mu = pm.Normal("mu", 0.0, 10.0)
    ...     _ = pm.Normal("y", mu, 1.0, observed=mb.Minibatch(y, batch_size=100))
    ...     cb = Converged(tolerance=0.1)
    ...     approx = pm.fit(50_000, callbacks=[cb], obj_optimizer=pm.adam(learning_rate=1e-2),
    ...                     random_seed=1, progressbar=False)
    >>> cb.converged, cb.report.reason, len(approx.hist) < 50_000
    (True, 'converged', True)
    >>> bool(approx.mean.eval()[0] == cb.averager.average()[0])  # the average, installed
    True
    """

    def __init__(self, tolerance: float = 0.1) -> None:
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, float | int)
            or not 0 < tolerance < 1
        ):
            raise ValueError(f"tolerance must be a number in (0, 1), got {tolerance!r}")
        self.rule = Rule(tolerance=float(tolerance))
        self.averager: Averager | None = None
        self._approx: weakref.ref[Any] | None = None
        self._began = self._ended = 0.0

    @property
    def converged(self) -> bool:
        return self.averager is not None and self.averager.converged

    def __call__(self, approx: Any, losses: Any, i: int) -> None:
        averager = self.averager
        if averager is None:
            averager = self._bind(approx)
        elif self._approx is None or self._approx() is not approx:
            raise ValueError(
                "this Converged callback was used with another approximation: it averages one "
                "fit's iterates; make a new Converged() for each fit"
            )
        try:
            averager(approx, losses, i)
        except StopIteration:
            averager.layout.write(averager.average())
            message = f"Converged: the average met its tolerance after {averager.steps} steps"
            raise StopIteration(message) from None
        finally:
            self._ended = time.perf_counter()

    def _bind(self, approx: Any) -> Averager:
        groups = list(getattr(approx, "groups", ()))
        if isinstance(approx, Empirical) or any(isinstance(g, EmpiricalGroup) for g in groups):
            raise NotImplementedError(
                f"Converged cannot stop a fit of an {type(approx).__name__} approximation (SVGD, "
                "ASVGD): its particles are the approximation, and they have no average to "
                "converge; run those with a fixed n"
            )
        try:
            layout: Layout = layout_of(approx)
        except NotImplementedError:
            found = ", ".join(type(g).__name__ for g in groups) or "no group"
            raise NotImplementedError(
                "Converged averages ADVI (one MeanFieldGroup) and FullRankADVI (one "
                f"FullRankGroup) approximations; this {type(approx).__name__} has {found}"
            ) from None
        self.averager = Averager(layout, self.rule, learning_rate=None, stop=True)
        self._approx = weakref.ref(approx)
        self._began = time.perf_counter()
        return self.averager

    @property
    def report(self) -> FitReport:
        """The fit's record so far (:class:`~minibatch.FitReport`): ``reason`` is
        ``"converged"`` once the rule is met, ``"cap"`` until then (the callback cannot tell
        ``n`` running out from an interrupt); ``seconds`` spans the first to the last step."""
        if self.averager is None:
            return FitReport()
        report = self.averager.summarise()
        report.reason = "converged" if report.converged else "cap"
        report.seconds = self._ended - self._began
        return report

    def install(self, approx: Any) -> FitReport:
        """Write the average of the iterates so far into ``approx`` and return the report.

        For a fit that ended before the rule was met (``n`` ran out, or an interrupt), where
        ``pm.fit`` left the last iterate in ``approx``; warns with
        :class:`~minibatch.NotConvergedWarning` unless the rule was met (then the average is
        already installed, and is written again).
        """
        averager = self.averager
        if averager is None:
            raise ValueError("nothing to install: this Converged callback has not run yet")
        if self._approx is None or self._approx() is not approx:
            raise ValueError("install() takes the approximation that this callback averaged")
        averager.layout.write(averager.average())
        report = self.report
        if not report.converged:
            warnings.warn(
                "the fit ended before the iterates' average met its tolerance; the "
                f"approximation now holds the average so far. {report.summary()}.",
                NotConvergedWarning,
                stacklevel=2,
            )
        return report
