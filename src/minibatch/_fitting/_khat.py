"""The Pareto shape k-hat of importance weights (Pareto smoothed importance sampling's diagnostic).

The largest ``M = ceil(min(S / 5, 3 sqrt(S)))`` of ``S`` importance weights, less the next
largest, are taken as draws of a generalized Pareto distribution (GPD) with density
``(1 / sigma) (1 + k x / sigma) ** (-1 / k - 1)``; its shape ``k`` is estimated.  Weights whose
distribution has ``k`` finite moments below ``1 / k``: at ``k >= 0.5`` their variance is infinite,
at ``k >= 1`` their mean too (Vehtari, Simpson, Gelman, Yao and Gabry, JMLR 2024).

The fit is the empirical-Bayes estimator of Zhang and Stephens (Technometrics 2009).  In the
parameter ``theta = -k / sigma`` the likelihood maximised over ``k`` is explicit:
``k(theta) = mean(log(1 - theta x))`` and the profile log-likelihood is
``n (log(-theta / k(theta)) - k(theta) - 1)``.  ``theta`` is averaged over a grid of ``m`` values
(``m = 30 + floor(sqrt(n))``, placed by the quantiles of a prior built from the sample's largest
value and first quartile), each weighted by its profile likelihood; ``k`` is then
``k(theta_hat)``.  Last, the estimate is pulled toward 0.5 as by a prior worth 10 draws:
``(n k + 10 * 0.5) / (n + 10)`` (the PSIS paper's weakly informative prior).
"""

from __future__ import annotations

import math

import numpy as np

# Zhang and Stephens' prior scale (their "p = 3") and the PSIS paper's prior on k.
_GRID_PRIOR = 3.0
_PRIOR_K, _PRIOR_WEIGHT = 0.5, 10.0
_MIN_TAIL = 5


def tail_length(draws: int) -> int:
    """``M``, the number of largest weights that the Pareto fit reads out of ``draws``.

    >>> tail_length(1000), tail_length(100), tail_length(10_000)
    (95, 20, 300)
    """
    return math.ceil(min(draws / 5.0, 3.0 * math.sqrt(draws)))


def gpd_fit(exceedances: np.ndarray) -> tuple[float, float]:
    """``(k, sigma)``: a generalized Pareto fit to positive ``exceedances`` (any order).

    The Zhang-Stephens estimate of the shape, adjusted toward 0.5 by the PSIS prior (module
    notes); ``sigma`` is the scale at the unadjusted shape.  At least two values are needed and
    the largest must be positive.
    """
    x = np.sort(np.asarray(exceedances, dtype=np.float64).ravel())
    n = x.size
    if n < 2 or not x[-1] > 0:
        raise ValueError("gpd_fit needs at least two exceedances, the largest positive")
    positive = x[x > 0]
    quartile = x[int(n / 4 + 0.5) - 1]
    if quartile <= 0:  # ties at the threshold: the first quartile of the positive values
        quartile = positive[int(positive.size / 4 + 0.5) - 1] if positive.size >= 4 else x[-1]
    m = 30 + int(math.sqrt(n))
    j = np.arange(1, m + 1, dtype=np.float64)
    theta = 1.0 / x[-1] + (1.0 - np.sqrt(m / (j - 0.5))) / (_GRID_PRIOR * quartile)
    # theta < 1 / max(x) on the whole grid, so every log1p below is finite
    k_of = np.array([np.log1p(-t * x).mean() for t in theta])
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(k_of != 0, -theta / k_of, 1.0 / x.mean())  # theta -> 0: 1 / mean(x)
        profile = n * (np.log(ratio) - k_of - 1.0)
    profile = np.where(np.isfinite(profile), profile, -np.inf)
    weights = np.exp(profile - profile.max())
    theta_hat = float((theta * weights).sum() / weights.sum())
    k = float(np.log1p(-theta_hat * x).mean())
    sigma = -k / theta_hat if theta_hat != 0 else float(x.mean())
    k = (n * k + _PRIOR_WEIGHT * _PRIOR_K) / (n + _PRIOR_WEIGHT)
    return k, float(sigma)


def pareto_khat(log_weights: np.ndarray) -> float:
    """The Pareto shape k-hat of the tail of importance weights given on the log scale.

    Parameters
    ----------
    log_weights : array_like
        ``log p(theta_s) - log q(theta_s)`` of draws ``theta_s`` from ``q``, any shape (read
        flat), up to a common constant.  ``-inf`` (a weight of zero) is allowed; NaN is not.

    Returns
    -------
    float
        The estimated shape of the weights' upper tail: below 0.5 the weights have a finite
        variance; from 0.5 to 0.7 importance sampling still works, slowly; above 0.7 (or the
        sample-size limit ``1 - 1 / log10(S)`` when smaller) an estimate weighted by them is
        not reliable.  Special values: ``-inf`` when the largest ``M`` weights all equal the
        next one (no tail at all, e.g. constant weights: ``q`` is ``p``); ``inf`` when a log
        weight is ``+inf`` or every weight is zero; NaN when ``M < 5`` (fewer than 21 draws)
        leaves too few to fit.

    Notes
    -----
    The largest ``M = ceil(min(S / 5, 3 sqrt(S)))`` weights, less the ``(M + 1)``-th largest, are
    fitted by a generalized Pareto distribution (Zhang and Stephens 2009), and the shape is
    pulled toward 0.5 as by a prior worth 10 draws (Vehtari et al. 2024).  The weights are
    exponentiated relative to the largest, so any constant in the log weights cancels.

    Examples
    --------
    Weights with a Pareto tail of known shape: a ratio of Gaussians whose proposal has half the
    target's variance has ``k = 1 - 1/2``.

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(0.0, 1.0, 100_000)  # q = N(0, 1), p = N(0, 2)
    >>> log_w = -x**2 / 4 + x**2 / 2
    >>> round(pareto_khat(log_w), 1)
    0.5
    >>> pareto_khat(np.zeros(1000))  # q == p: every weight equal
    -inf
    """
    lw = np.asarray(log_weights, dtype=np.float64).ravel()
    if lw.size == 0:
        raise ValueError("log_weights is empty")
    if np.isnan(lw).any():
        raise ValueError("log_weights holds NaN; a zero weight is -inf")
    if np.isposinf(lw).any():
        return math.inf
    top = lw.max()
    if top == -math.inf:
        return math.inf
    tail = tail_length(lw.size)
    if tail < _MIN_TAIL:
        return math.nan
    largest = np.partition(lw, lw.size - tail - 1)[lw.size - tail - 1 :]
    threshold, tail_lw = largest[0], np.sort(largest[1:])
    exceedances = np.exp(tail_lw - top) - np.exp(threshold - top)
    if not exceedances[-1] > 0:
        return -math.inf
    return gpd_fit(exceedances)[0]
