"""What the stopping rule watches: the variational parameters, each on the scale that matters.

An error in a parameter counts against the scale on which a user reads the fit:

* a **mean** of q: in units of q's own standard deviation for that coordinate;
* a **standard-deviation parameter** (mean-field ``rho``, with ``sd = log1p(exp(rho))``): on the
  log scale of the sd, absolute (0.1 on log sd is 10 %), so ``rho`` is multiplied by
  ``d log sd / d rho = sigmoid(rho) / softplus(rho)``;
* a **Cholesky entry** ``L[i, j]`` (full-rank ``L_tril``): in units of q's sd of coordinate
  ``i``, the norm of row ``i`` of ``L`` (an error ``e`` there moves that sd by at most ``e``).
  PyMC stores the diagonal unconstrained (``L[i, i] = softplus(L_tril entry)``), so an error in
  a diagonal entry is divided by ``sigmoid`` of it as well.

:func:`layout_of` reads which parameters an approximation has; :meth:`Layout.scales` gives, at a
point, the factor by which each watched scalar's error is divided, and :meth:`Layout.kinds` the
kind of each (``"mean"`` or ``"spread"``).

>>> import numpy as np, pymc as pm
>>> with pm.Model():
...     _ = pm.Normal("x", shape=2)
...     approx = pm.ADVI(random_seed=0).approx
>>> layout = layout_of(approx)
>>> layout.size, layout.kinds.tolist()
(4, ['mean', 'mean', 'spread', 'spread'])
>>> rho = np.log(np.expm1(np.array([0.5, 2.0])))  # sds 0.5 and 2
>>> layout.scales(np.concatenate([[0.0, 0.0], rho])).round(3).tolist()
[0.5, 2.0, 1.271, 2.313]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pymc.variational.approximations import FullRankGroup, MeanFieldGroup


@dataclass(frozen=True)
class Layout:
    """The approximation's parameters as one flat vector: ``[mu, rho]`` or ``[mu, L_tril]``."""

    family: str  # "meanfield" or "fullrank"
    dim: int  # coordinates of q
    params: tuple[Any, ...]  # the shared variables, in the order of the flat vector

    @property
    def size(self) -> int:
        extra = self.dim if self.family == "meanfield" else self.dim * (self.dim + 1) // 2
        return self.dim + extra

    @property
    def kinds(self) -> np.ndarray:
        return np.array(["mean"] * self.dim + ["spread"] * (self.size - self.dim))

    def read(self, out: np.ndarray | None = None, values: Any = None) -> np.ndarray:
        """The current parameters (or ``values[p]`` of each parameter ``p``), flat (a copy,
        into ``out`` when given)."""
        found = [p.get_value(borrow=True) if values is None else values[p] for p in self.params]
        return np.concatenate([np.asarray(v).ravel() for v in found], out=out)

    def write(self, flat: np.ndarray) -> None:
        """Set the parameters from a flat vector."""
        start = 0
        for p in self.params:
            value = np.asarray(p.get_value(borrow=True))
            stop = start + value.size
            p.set_value(flat[start:stop].reshape(value.shape).astype(value.dtype))
            start = stop

    def qsd(self, flat: np.ndarray) -> np.ndarray:
        """q's standard deviation of each coordinate at the parameters ``flat``."""
        rest = flat[self.dim :]
        if self.family == "meanfield":
            return np.logaddexp(0.0, rest)
        rows = self.cholesky(flat)
        return np.sqrt((rows * rows).sum(1))

    def cholesky(self, flat: np.ndarray) -> np.ndarray:
        """q's Cholesky factor ``L`` at the full-rank parameters ``flat`` (as PyMC builds it:
        the stored diagonal passed through softplus)."""
        rows = np.zeros((self.dim, self.dim))
        rows[np.tril_indices(self.dim)] = flat[self.dim :]
        diag = np.arange(self.dim)
        rows[diag, diag] = np.logaddexp(0.0, rows[diag, diag])
        return rows

    def scales(self, flat: np.ndarray) -> np.ndarray:
        """The unit of each watched scalar's error at ``flat`` (see the module docstring)."""
        sd = self.qsd(flat)
        if self.family == "meanfield":
            rho = flat[self.dim :]
            # d log sd / d rho = sigmoid(rho) / softplus(rho): divide rho's error by its inverse
            spread = sd * (1.0 + np.exp(-rho))
        else:
            row, col = np.tril_indices(self.dim)
            spread = sd[row]
            raw = flat[self.dim :][row == col]  # d softplus / d raw = sigmoid(raw)
            spread[row == col] *= 1.0 + np.exp(-raw)
        return np.concatenate([sd, spread])


def layout_of(approx: Any) -> Layout:
    """The flat parameter layout of a one-group mean-field or full-rank approximation."""
    groups = list(getattr(approx, "groups", ()))
    if len(groups) != 1 or not isinstance(groups[0], MeanFieldGroup | FullRankGroup):
        found = ", ".join(type(g).__name__ for g in groups) or "no group"
        raise NotImplementedError(
            "mb.fit averages and stops ADVI (one MeanFieldGroup) and FullRankADVI (one "
            f"FullRankGroup) approximations; this one has {found}. Use pm.fit for it."
        )
    group = groups[0]
    if isinstance(group, MeanFieldGroup):
        names, family = ("mu", "rho"), "meanfield"
    else:
        names, family = ("mu", "L_tril"), "fullrank"
    params = tuple(group.params_dict[name] for name in names)
    return Layout(family, int(group.ddim), params)
