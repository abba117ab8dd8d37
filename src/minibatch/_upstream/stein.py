"""SVGD and ASVGD on minibatches take full-data-sized steps.

PyMC's ``Stein`` divides both terms of the Stein update, the density term (through
``logp_norm``) and the repulsive term, by the approximation's ``symbolic_normalizing_constant``
``t``, which with ``scale_cost_to_minibatch=True`` (PyMC's default) is ``N / batch`` on a
minibatch model and 1 on full data.  Dividing both terms leaves the fixed point where it was
but makes every update ``t`` times smaller; PyMC's default optimiser for them,
``adagrad_window``, divides by ``sqrt(sum of squared gradients + epsilon)`` with
``epsilon=0.1``, so it does not undo the factor for gradients of that size.  A minibatch fit
then needs ``t`` times the steps of the full-data fit with the same settings: on the conjugate
normal model (n = 1000, batch 128, SVGD with 500 particles, ``jitter=1``,
``adagrad_window(learning_rate=0.075, n_win=7)``, 300 steps) the particle sd was 1.33 x the
exact posterior sd, against 1.02 x on full data.  No upstream issue found as of pymc 6.4.0.

The remedy: Stein inference (``ImplicitGradient``: SVGD, ASVGD) sets its approximation's
``scale_cost_to_minibatch`` to False, so ``t = 1`` and the update is an unbiased estimate of
the full-data update, of the same size.  Setting ``approx.scale_cost_to_minibatch = True``
afterwards restores PyMC's behaviour.

Present in pymc 5.28.5 and 6.4.0; :func:`present` builds PyMC's ``Stein`` terms on a stand-in
approximation and looks for the normalising constant in them (symbolic, no model, no compile).
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import pytensor.tensor as pt
from pymc.variational.inference import ImplicitGradient
from pymc.variational.stein import Stein
from pytensor.graph.traversal import ancestors

from minibatch._upstream._patch import patch


@functools.cache
def present() -> bool:
    """Whether PyMC's Stein update divides both of its terms by the normalising constant."""
    t = pt.scalar("t")
    approx = SimpleNamespace(
        symbolic_normalizing_constant=t,
        joint_histogram=pt.matrix("histogram"),
        sized_symbolic_logp=pt.vector("logp"),
        symbolic_randoms=[],
        collect=lambda name: [],
    )
    stein = Stein(approx, use_histogram=True)
    found = ancestors([stein.repulsive_part_grad, stein.logp_norm])
    return t in set(found)


def unscaled_stein(init: Any) -> Any:
    """Wrap ``ImplicitGradient.__init__``: its approximation does not scale to the minibatch."""

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.approx.scale_cost_to_minibatch = False

    return wrapper


def install() -> None:
    """Let SVGD / ASVGD steps have the full-data size where PyMC shrinks them (idempotent)."""
    if present():
        patch(ImplicitGradient, "__init__", unscaled_stein)
