"""Did the fit work?  A full-data importance-sampling check of a fitted approximation.

Yao, Vehtari, Simpson and Gelman (ICML 2018, "Yes, but did it work?") draw ``theta_s`` from
``q`` and compute ``log w_s = log p(theta_s, y) - log q(theta_s)`` on the unconstrained space
(the Jacobians of the transforms included, so ``p`` is the density ``q`` approximates).  The
Pareto shape k-hat of the weights' tail (:func:`~minibatch._fitting._khat.pareto_khat`) says
whether ``q`` covers ``p``: below 0.5 the weights have a finite variance and ``q`` is close;
above 0.7 ``q`` misses mass of ``p`` that no reweighting of its draws recovers.

After a minibatch fit ``p`` must be the **full-data** posterior: :func:`check_fit` evaluates
``log p`` on :func:`minibatch.full_data_model` of the approximation's model (every minibatch
replaced by its data, no ``total_size`` scaling), compiled once for a chunk of draws at a time,
so memory holds ``chunk`` draws' worth of the model's intermediate arrays, never ``draws``'.
``log q`` is computed here in closed form from the group's parameters (``mu`` and ``rho``, or
``mu`` and ``L_tril``), from the very standard-normal draws that make ``theta_s``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pymc.variational.approximations import FullRankGroup, MeanFieldGroup

from minibatch._compat import C_MODE
from minibatch._fitting._khat import pareto_khat

GOOD, OK = 0.5, 0.7


@dataclass(frozen=True, eq=False)
class FullDataCheck:
    """The result of :func:`check_fit`.

    Attributes
    ----------
    khat : float
        The Pareto shape of the importance weights' tail (see :func:`pareto_khat`).
    draws : int
        ``S``, the draws from ``q``.
    log_weights : numpy.ndarray
        ``log p(theta_s, y) - log q(theta_s)`` of each draw (read-only), ``p`` unnormalised.
    ess : float
        The importance-sampling effective sample size of the raw weights (no Pareto smoothing),
        ``(sum w)^2 / sum w^2`` computed from the weights normalised to sum to one: between 1
        and ``draws``.
    parameters : int
        The unconstrained coordinates of ``q``.
    verdict : str
        ``"good"`` (k-hat below 0.5), ``"ok"`` (below :attr:`threshold`) or ``"bad"``.

    Examples
    --------
    >>> import numpy as np
    >>> from minibatch import FullDataCheck
    >>> check = FullDataCheck(khat=0.31, draws=1000, log_weights=np.zeros(1000), ess=940.0,
    ...                       parameters=3, verdict="good")
    >>> round(check.threshold, 3)
    0.667
    >>> for part in check.summary().split("; "):
    ...     print(part)
    Pareto k-hat 0.31 (good
    good < 0.5, ok < 0.67) from 1000 draws of 3 parameters
    importance ESS 940 (94%)
    """

    khat: float
    draws: int
    log_weights: np.ndarray
    ess: float
    parameters: int
    verdict: str

    @property
    def threshold(self) -> float:
        """``min(1 - 1 / log10(S), 0.7)``: the k-hat above which the draws cannot be trusted."""
        return sample_size_threshold(self.draws)

    def summary(self) -> str:
        """One line: k-hat, its verdict and the importance ESS."""
        return (
            f"Pareto k-hat {self.khat:.2f} ({self.verdict}; good < {GOOD}, ok < "
            f"{self.threshold:.2f}) from {self.draws} draws of {self.parameters} "
            f"parameter{'s' if self.parameters != 1 else ''}; "
            f"importance ESS {self.ess:.0f} ({self.ess / self.draws:.0%})"
        )

    def __repr__(self) -> str:
        return f"FullDataCheck({self.summary()})"


def sample_size_threshold(draws: int) -> float:
    """``min(1 - 1 / log10(S), 0.7)`` (the PSIS paper's limit for ``S`` draws).

    >>> round(sample_size_threshold(100), 3), round(sample_size_threshold(1000), 3)
    (0.5, 0.667)
    >>> sample_size_threshold(100_000)
    0.7
    """
    return min(1.0 - 1.0 / math.log10(draws), OK)


def verdict_of(khat: float, draws: int) -> str:
    """``"good"``, ``"ok"`` or ``"bad"`` for a k-hat from ``draws`` draws (NaN is ``"bad"``).

    >>> verdict_of(0.3, 1000), verdict_of(0.6, 1000), verdict_of(0.68, 1000)
    ('good', 'ok', 'bad')
    """
    limit = sample_size_threshold(draws)
    if khat < min(GOOD, limit):
        return "good"
    if khat < limit:
        return "ok"
    return "bad"


def importance_ess(log_weights: np.ndarray) -> float:
    """``(sum w)^2 / sum w^2`` of the weights ``exp(log_weights)``, computed stably.

    >>> importance_ess(np.zeros(50)), importance_ess(np.array([0.0, -np.inf, -np.inf]))
    (50.0, 1.0)
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    top = lw.max()
    if not np.isfinite(top):
        return math.nan if np.isnan(top) or top < 0 else 1.0
    w = np.exp(lw - top)
    return float(w.sum() ** 2 / (w * w).sum())


def check_fit(
    approx: Any,
    draws: int = 1000,
    *,
    model: Any = None,
    chunk: int = 100,
    random_seed: Any = None,
    compile_kwargs: Mapping[str, Any] | None = None,
) -> FullDataCheck:
    """Check a fitted approximation against the full-data posterior with Pareto k-hat.

    Draws ``draws`` points from ``approx`` on the unconstrained space, weighs each by
    ``p(theta, y) / q(theta)`` with ``p`` the full-data model's joint density (Jacobians
    included) and fits a generalized Pareto distribution to the largest weights (Yao et al.
    2018).  k-hat below 0.5: ``q`` is close to the posterior; 0.5 to 0.7: usable with care;
    above 0.7 (or ``min(1 - 1 / log10(draws), 0.7)``, which is lower below 2,154 draws): ``q``
    is not reliable, and importance sampling cannot repair it.

    k-hat grows with the number of parameters for a fixed per-coordinate mismatch (the log
    weights' variance adds up over coordinates): a model with many local latent variables can
    show k-hat above 0.7 while every marginal is accurate (``docs/khat.md``).

    Parameters
    ----------
    approx : pymc.variational.Approximation
        A one-group mean-field (``ADVI``) or full-rank (``FullRankADVI``) approximation, as
        ``pm.fit`` or ``mb.fit`` return.
    draws : int
        ``S``, at least 10 (at least 21 for a k-hat; 1000 or more for a trustworthy one).
    model : pymc.Model, optional
        The model whose full data define ``p``; ``approx.model`` by default.  It goes through
        :func:`minibatch.full_data_model`, so it can be the minibatch model (with its data in
        memory) or a full-data model built by hand: the way to check a fit of streamed data,
        whose full data ``check_fit`` never loads by itself.  Its free variables must be those
        of ``approx``, by name.
    chunk : int
        Draws evaluated together: memory holds ``chunk`` draws' worth of the model's arrays.
    random_seed : int or numpy.random.Generator, optional
        Fixes the draws, and with them the result.
    compile_kwargs : mapping, optional
        For ``pytensor.function`` (``mode`` defaults to the C backend, ``"CVM"``, which compiles
        in a fraction of Numba's time).

    Returns
    -------
    FullDataCheck
        ``khat``, ``verdict``, ``ess``, the ``log_weights`` and a ``summary()``.

    Examples
    --------
    >>> import numpy as np, pymc as pm
    >>> y = np.random.default_rng(0).normal(1.0, 1.0, 200)
    >>> with pm.Model():
    ...     mu = pm.Normal("mu", 0.0, 10.0)
    ...     sigma = pm.HalfNormal("sigma", 5.0)
    ...     _ = pm.Normal("y", mu, sigma, observed=y)
    ...     approx = pm.fit(4000, random_seed=1, progressbar=False,
    ...                     obj_optimizer=pm.adam(learning_rate=0.03))
    >>> check = check_fit(approx, 1000, random_seed=2)
    >>> check.verdict, check.parameters, check.log_weights.shape
    ('good', 2, (1000,))
    """
    draws = _count("draws", draws, 10)
    chunk = _count("chunk", chunk, 1)
    group = _group_of(approx)
    full = _full_data(approx, model)
    ordering = list(group.ordering.values())
    dim = int(group.ddim)
    logp = _batched_logp(full, ordering, dim, compile_kwargs)
    mean, factor, log_det = _gaussian(group, dim)
    rng = np.random.default_rng(random_seed)

    log_weights = np.empty(draws)
    for start in range(0, draws, chunk):
        stop = min(start + chunk, draws)
        eps = rng.standard_normal((stop - start, dim))
        theta = mean + (eps * factor if factor.ndim == 1 else eps @ factor.T)
        log_q = -0.5 * (eps * eps).sum(1) - 0.5 * dim * math.log(2 * math.pi) - log_det
        log_weights[start:stop] = logp(theta) - log_q
    log_weights[np.isnan(log_weights)] = -np.inf  # an undefined density: a weight of zero
    log_weights.setflags(write=False)
    khat = pareto_khat(log_weights)
    return FullDataCheck(
        khat=khat,
        draws=draws,
        log_weights=log_weights,
        ess=importance_ess(log_weights),
        parameters=dim,
        verdict=verdict_of(khat, draws),
    )


def _count(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ValueError(f"{name} must be an int >= {least}; got {value!r}")
    return int(value)


def _group_of(approx: Any) -> Any:
    groups = list(getattr(approx, "groups", None) or ())
    if len(groups) != 1 or not isinstance(groups[0], MeanFieldGroup | FullRankGroup):
        found = ", ".join(type(g).__name__ for g in groups) if groups else type(approx).__name__
        raise TypeError(
            "approx must be a one-group mean-field (ADVI) or full-rank (FullRankADVI) "
            f"approximation, as pm.fit or mb.fit return; got {found}"
        )
    return groups[0]


def _full_data(approx: Any, model: Any) -> Any:
    from minibatch._predict import full_data_model

    source = approx.model if model is None else model
    try:
        return full_data_model(source)
    except ValueError as err:
        if "streams" not in str(err):
            raise
        raise ValueError(
            "check_fit weighs draws by the full-data posterior, but this model's minibatches "
            "are streamed and check_fit never loads a streamed source into memory by itself. "
            "If the full data fit in memory, build the same model on them (np.asarray of each "
            "source, with pm.Data or plain arrays and no total_size) and pass it: "
            "check_fit(approx, model=full_model). Its free variables must have the names and "
            "shapes of the fitted model's."
        ) from err


def _batched_logp(
    full: Any, ordering: list[Any], dim: int, compile_kwargs: Mapping[str, Any] | None
) -> Callable[[np.ndarray], np.ndarray]:
    """``theta (c, dim) -> log p (c,)``: the full-data joint logp, Jacobians included, of a
    chunk of flat unconstrained points, laid out as the group's ``ordering``."""
    values = {v.name: v for v in full.value_vars}
    names = [name for name, *_ in ordering]
    if set(names) != set(values):
        raise ValueError(
            "the model's free variables must be those of approx: the model has "
            f"{sorted(values)}, approx {sorted(names)}"
        )
    logp = full.logp(jacobian=True)
    dtype = pytensor.config.floatX
    flat = pt.matrix("theta", dtype=dtype)
    batched = {}
    for name, where, shape, var_dtype in ordering:
        value = values[name]
        batched[value] = flat[:, where].reshape((flat.shape[0], *shape)).astype(var_dtype)
    kwargs = {"mode": C_MODE, **(compile_kwargs or {})}
    try:
        from pytensor.graph.replace import vectorize_graph

        out = vectorize_graph(logp, replace=batched)
        fn = pytensor.function([flat], out, on_unused_input="ignore", **kwargs)
    except NotImplementedError:  # an Op without a batched form: one draw at a time
        one = pt.vector("theta", dtype=dtype)
        single = {
            values[name]: one[where].reshape(shape).astype(var_dtype)
            for name, where, shape, var_dtype in ordering
        }
        from pytensor.graph.replace import graph_replace

        each = pytensor.function(
            [one], graph_replace(logp, single), on_unused_input="ignore", **kwargs
        )
        return lambda theta: np.array([each(row.astype(dtype)) for row in theta], dtype=float)

    def evaluate(theta: np.ndarray) -> np.ndarray:
        return np.asarray(fn(theta.astype(dtype)), dtype=np.float64).reshape(len(theta))

    return evaluate


def _gaussian(group: Any, dim: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(mean, factor, log det)`` of q: ``theta = mean + factor * eps`` (mean-field, factor
    the sds) or ``mean + factor @ eps`` (full rank, factor the Cholesky factor ``L``)."""
    params = group.params_dict
    mean = np.asarray(params["mu"].get_value(), dtype=np.float64)
    if isinstance(group, MeanFieldGroup):
        sd = np.logaddexp(0.0, np.asarray(params["rho"].get_value(), dtype=np.float64))
        return mean, sd, float(np.log(sd).sum())
    chol = np.zeros((dim, dim))
    chol[np.tril_indices(dim)] = np.asarray(params["L_tril"].get_value(), dtype=np.float64)
    # PyMC's FullRankGroup.L: the diagonal goes through softplus (rho2sigma), like mean-field sds
    diag = np.logaddexp(0.0, np.diag(chol))
    chol[np.diag_indices(dim)] = diag
    return mean, chol, float(np.log(diag).sum())
