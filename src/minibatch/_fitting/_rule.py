"""The stopping rule: average the stationary iterates, halve the step while it pays, stop on MCSE.

A constant-step stochastic optimiser does not converge to the optimum: its iterates settle into
a stationary distribution around it, as wide as the gradient noise and the step make it.  Their
*average* does converge, at the rate of the noise alone (Polyak and Juditsky 1992), and its
Monte Carlo error can be measured (Dhaka et al. 2020; Welandawe et al. 2024).  :class:`Averager`
is a ``pm.fit`` callback that runs the rule, one decision per completed batch of iterates
(:mod:`._batchmeans`), so every decision falls at a fixed step count and none reads a clock:

1. **Search** (each step size starts here).  At each completed batch, the split-R-hat of every
   watched parameter is computed over four pieces of the window; once none exceeds
   ``rhat_max`` (or the pieces of those that do agree within the MCSE threshold) the window is
   stationary.  Each time the window has doubled without that, its older half is dropped as
   transient.
2. **Halve** (our own optimiser only; once per step size).  If the stationary iterates jitter
   by more than ``jitter_mean`` of q's sd in a mean, or more than ``jitter_spread`` on log sd in
   a spread, their average may still be off by the curvature of the objective (the error grows
   like the square of the jitter; on log sd it is about the jitter squared: 0.2 measured at a
   jitter of 0.5), so the parameters are set to the window's average and the step of that kind
   of parameter (means and spreads have one each) is multiplied by ``step_factor`` (at most
   ``max_halvings`` times), as many times at once as the jitter predicts (its variance is
   proportional to the step).  Smaller steps do not make the average's MCSE shrink faster (the
   jitter's variance falls with the step, its autocorrelation time grows by as much), so the
   step is shrunk no further than that.
3. **Average** until the largest MCSE over the watched parameters is at most ``threshold`` (the
   MCSE taken as its upper 80 % confidence bound: from 8-16 batch means it is uncertain by
   20-27 %, and stopping at the first estimate under the threshold would pick the low ones) and
   the smallest ESS at least ``ess_min``, with R-hat still at most ``rhat_max``; then the fit
   stops (``StopIteration``), unless the rule was asked to run a fixed number of steps.

``threshold`` is ``tolerance * min(1 / r, 2.5 / z)`` for ``P`` watched parameters, where ``z``
is the two-sided 95 % normal quantile corrected for ``P`` tests (Bonferroni) and ``r`` the 95 %
quantile of the root mean square of ``P`` standard normals (``sqrt(chi2(P).ppf(0.95) / P)``):
with errors of that MCSE, their root mean square is at most ``tolerance`` and their largest at
most ``2.5 * tolerance``, each with probability 0.95, for one parameter as for a million.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy.special import chdtri, ndtri

from minibatch._fitting._batchmeans import BatchMeans
from minibatch._fitting._report import FitReport
from minibatch._fitting._scales import Layout


@dataclass(frozen=True)
class Rule:
    """The rule's settings (defaults from Welandawe et al. 2024 where they give one)."""

    tolerance: float = 0.1
    rhat_max: float = 1.1
    ess_min: float = 25.0
    batch_size: int = 25  # the first batches; 16 of them make the first window (400 steps)
    max_batches: int = 16
    min_average: int = 1000  # iterates in the averaging window before the fit may stop
    mcse_confidence: float = 0.8  # the MCSE compared is an upper bound at this confidence
    batches_per_tau: float = 2.0  # a batch spans this many autocorrelation times, at least
    jitter_mean: float = 3.0
    jitter_spread: float = 0.2
    step_factor: float = 0.5
    max_halvings: int = 12  # per kind of parameter: the step stays above 0.1 / 4096

    def threshold(self, watched: int) -> float:
        """The MCSE each of ``watched`` parameters must reach (see the module docstring)."""
        z = float(ndtri(1.0 - 0.025 / watched))  # the largest of `watched` errors, 95 %
        rms = float(np.sqrt(chdtri(watched, 0.05) / watched))  # their root mean square, 95 %
        return self.tolerance * min(1.0 / rms, 2.5 / z)


class Averager:
    """A ``pm.fit`` callback that averages the iterates and decides when to halve and stop.

    ``learning_rate`` maps ``"mean"`` and ``"spread"`` to the shared step sizes the optimiser
    reads for each kind of parameter, or is ``None`` when the optimiser is the user's (then the
    step is never changed).  ``stop=False`` runs until ``n``
    and keeps averaging.
    """

    def __init__(
        self,
        layout: Layout,
        rule: Rule,
        learning_rate: dict[str, Any] | None = None,
        stop: bool = True,
    ) -> None:
        self.layout, self.rule, self.learning_rate, self.stop = layout, rule, learning_rate, stop
        self.threshold = rule.threshold(layout.size)
        self.steps = 0
        self.halvings = {"mean": 0, "spread": 0}
        self.converged = False
        self.last: np.ndarray = layout.read()
        self.report = FitReport(threshold=self.threshold)
        self.history = self.report.history
        if learning_rate is not None:
            self.report.step_sizes.append((0, self._rates()))
        self._new_window()

    def span(self, period: int) -> None:
        """Make every batch of iterates span whole periods of ``period`` steps.

        A streamed fit sees a new window of rows every ``steps_per_window`` steps, and each
        window has its own optimum, so iterates within one window vary less than across
        windows.  Batch means over whole windows carry the variation between windows into the
        MCSE (batch means from within one window would undercount it); the window of the rule
        then spans at least as many stream windows as it has batches (8 to 16).  Batches only
        ever double, so they stay whole periods, aligned with the refreshes from step 0.
        """
        size = period * -(-self.rule.batch_size // period)
        if size != self.rule.batch_size and self.steps == 0:
            self.rule = replace(self.rule, batch_size=size)
            self._new_window()

    def _new_window(self) -> None:
        self.window = BatchMeans(self.layout.size, self.rule.max_batches, self.rule.batch_size)
        self.stationary = False
        self.decided = False

    def __call__(self, approx: Any, losses: Any, i: int) -> None:
        self.layout.read(out=self.last)  # one buffer for every step's iterate
        self.steps += 1
        merging = self.window.count == self.rule.max_batches - 1
        if self.window.add(self.last):
            self._decide(after_merge=merging)

    def add_steps(
        self, count: int, total: np.ndarray, square: np.ndarray, values: Any = None
    ) -> None:
        """Count ``count`` steps run in one call, by the sum and sum of squares of their
        iterates (:mod:`._scan`) and the parameters it left (``values``, by shared variable;
        by default the current ones); they must not run past the batch being filled
        (:attr:`to_decision`), so every decision falls where it falls step by step."""
        self.layout.read(out=self.last, values=values)
        self.steps += count
        merging = self.window.count == self.rule.max_batches - 1
        if self.window.add_sums(total, square, count):
            self._decide(after_merge=merging)

    @property
    def to_decision(self) -> int:
        """Steps until the next decision (the end of the batch being filled)."""
        return self.window.to_complete

    def _decide(self, after_merge: bool) -> None:
        window = self.window
        if not self.stationary:
            if window.count < window.max_batches // 2:
                return
            rhat = window.rhat()
            if not self._settled(rhat):
                if after_merge:  # the window has doubled since the last drop: drop again
                    self._record(rhat=rhat)
                    window.drop_first_half()
                return
            self._record(rhat=rhat)
            self.stationary = True
        stats = self.statistics()
        self._record(**stats)
        if not self.decided:  # halve or not: decided once per step size, when it is stationary
            self.decided = True
            if self._halve(stats):
                return
        self.converged = self._accurate(stats) and self._settled(stats["rhat"])
        if self.converged and self.stop:
            raise StopIteration(f"mb.fit: converged after {self.steps} steps")

    def _accurate(self, stats: dict[str, np.ndarray]) -> bool:
        """At least ``min_average`` iterates averaged, every parameter's MCSE within the
        threshold, and either its ESS large enough and its batches long enough (several
        autocorrelation times) for the batch-means MCSE to be trusted, or its iterates moving by
        no more than the threshold (then no average of them can be further off)."""
        window = self.window
        if window.iterates < self.rule.min_average:
            return False
        small = stats["jitter"] <= self.threshold
        # batch means are near independent once a batch spans several autocorrelation times
        tau = window.iterates / np.maximum(stats["ess"], 1e-300)
        long_batches = window.batch_size >= self.rule.batches_per_tau * tau
        trusted = ((stats["ess"] >= self.rule.ess_min) & long_batches) | small
        return bool((stats["mcse"] <= self.threshold).all() and trusted.all())

    def _settled(self, rhat: np.ndarray) -> bool:
        """Stationary enough: for every parameter, R-hat is small, or the window's pieces agree
        to within the MCSE threshold in the watched units (a drift too small to matter)."""
        slow = rhat > self.rule.rhat_max
        if not slow.any():
            return True
        scales = self.layout.scales(self.window.mean())
        drift = self.window.drift() / scales
        return bool((drift[slow] <= self.threshold).all())

    def _record(self, **stats: np.ndarray) -> None:
        kinds = self.layout.kinds
        entry: dict[str, Any] = {"step": self.steps, "stationary": self.stationary}
        if self.learning_rate is not None:
            entry.update({f"step_{kind}": rate for kind, rate in self._rates().items()})
        for name, values in stats.items():
            pick = np.min if name == "ess" else np.max
            for kind in ("mean", "spread"):
                entry[f"{name}_{kind}"] = float(pick(values[kinds == kind]))
        self.history.append(entry)

    def statistics(self) -> dict[str, np.ndarray]:
        """The window's R-hat, ESS, and MCSE and jitter in the watched units."""
        window = self.window
        scales = self.layout.scales(window.mean())
        # the batch means give the MCSE with count - 1 degrees of freedom: use its upper bound
        # (chdtri(dof, c): chi2(dof)'s 1 - c quantile)
        dof = window.count - 1
        upper = np.sqrt(dof / chdtri(dof, self.rule.mcse_confidence))
        return {
            "rhat": window.rhat(),
            "ess": window.ess(),
            "mcse": window.mcse() * upper / scales,
            "jitter": np.sqrt(window.variance()) / scales,
        }

    def _halve(self, stats: dict[str, np.ndarray]) -> bool:
        """Shrink the step of each kind (means, spreads) whose iterates jitter too wide.

        In the stationary regime the jitter's variance is proportional to the step (measured:
        halving the step divides it by 2.0-2.8), so the step is multiplied by ``step_factor`` as
        many times as it takes to bring the widest jitter of that kind within its limit.
        """
        rule, kinds = self.rule, self.layout.kinds
        if self.learning_rate is None:
            return False
        limits = {"mean": rule.jitter_mean, "spread": rule.jitter_spread}
        shrunk = False
        for kind, limit in limits.items():
            widest = float(stats["jitter"][kinds == kind].max())
            times = int(np.ceil(np.log((widest / limit) ** 2) / np.log(1 / rule.step_factor)))
            times = min(times, rule.max_halvings - self.halvings[kind])
            if times > 0:
                rate = self.learning_rate[kind]
                value = np.asarray(rate.get_value(borrow=True)) * rule.step_factor**times
                rate.set_value(np.asarray(value, dtype=rate.dtype))
                self.halvings[kind] += times
                shrunk = True
        if not shrunk:
            return False
        self.layout.write(self.window.mean())
        self.converged = False
        self.report.step_sizes.append((self.steps, self._rates()))
        self._new_window()
        return True

    def _rates(self) -> dict[str, float]:
        assert self.learning_rate is not None
        rates = self.learning_rate.items()
        return {kind: float(rate.get_value(borrow=True)) for kind, rate in rates}

    def average(self) -> np.ndarray:
        """The parameters to install: the stationary window's mean (the latest half if none)."""
        window = self.window
        if window.iterates + window._filled == 0:
            return self.last
        if not self.stationary and window.count >= 2:  # the later half of the window
            keep = window.count - window.count // 2
            later = window.sums[window.count - keep : window.count].sum(0)
            return later / (keep * window.batch_size)
        return window.mean(partial=True)

    def summarise(self) -> FitReport:
        """Fill the report's figures from the current window."""
        report, window = self.report, self.window
        report.steps = self.steps
        report.converged = self.converged
        report.averaged = window.iterates + window._filled
        if window.count >= 4:
            stats = self.statistics()
            kinds = self.layout.kinds
            for kind in ("mean", "spread"):
                sel = kinds == kind
                report.rhat[kind] = float(stats["rhat"][sel].max())
                report.mcse[kind] = float(stats["mcse"][sel].max())
                report.ess[kind] = float(stats["ess"][sel].min())
        return report
