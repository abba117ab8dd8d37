"""Fitting: ``mb.fit``, PyMC's VI steps with the stationary iterates averaged and a stopping rule.

``_batchmeans`` (bounded-memory mean, MCSE, ESS and split-R-hat of a run of iterates),
``_scales`` (which parameters are watched, on which scale), ``_report`` (the fit's record and
its warning), ``_rule`` (the decisions: stationary, halve, stop), ``_fit`` (the public function).
"""

from minibatch._fitting._fit import fit
from minibatch._fitting._report import FitReport, NotConvergedWarning

__all__ = ["FitReport", "NotConvergedWarning", "fit"]
