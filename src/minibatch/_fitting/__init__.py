"""Fitting: ``mb.fit``, PyMC's VI steps with the stationary iterates averaged and a stopping rule.

``_batchmeans`` (bounded-memory mean, MCSE, ESS and split-R-hat of a run of iterates),
``_scales`` (which parameters are watched, on which scale), ``_report`` (the fit's record and
its warning), ``_rule`` (the decisions: stationary, halve, stop), ``_rollback`` (a non-finite
step undone and retried), ``_fit`` (the public function), ``_callback`` (the rule as a
``pm.fit`` callback), ``_plot`` (a report drawn), ``_khat`` (Pareto k-hat) and ``_check`` (the
full-data check of a fitted approximation).
"""

from minibatch._fitting._callback import Converged
from minibatch._fitting._check import FullDataCheck, check_fit
from minibatch._fitting._fit import fit
from minibatch._fitting._khat import pareto_khat
from minibatch._fitting._report import FitReport, NotConvergedWarning

__all__ = [
    "Converged",
    "FitReport",
    "FullDataCheck",
    "NotConvergedWarning",
    "check_fit",
    "fit",
    "pareto_khat",
]
