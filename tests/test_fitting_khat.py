"""Pareto k-hat against known truths: generalized Pareto draws of known shape, Gaussian weight
ratios whose tail shape is known in closed form, and the edge cases of the weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from minibatch._fitting._khat import gpd_fit, pareto_khat, tail_length


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_gpd_fit_recovers_the_shape_of_generalized_pareto_draws(k):
    """The maximum-likelihood shape has standard error (1 + k) / sqrt(n); the prior toward 0.5
    moves it by 10 |0.5 - k| / (n + 10).  Four standard errors plus that shift."""
    n = 100_000
    draws = stats.genpareto(k, scale=2.0).rvs(n, random_state=np.random.default_rng(11))
    khat, sigma = gpd_fit(draws)
    se = (1 + k) / math.sqrt(n)
    assert abs(khat - k) < 4 * se + 10 * abs(0.5 - k) / (n + 10)
    assert abs(sigma - 2.0) < 0.05 * 2.0


@pytest.mark.parametrize("k", [0.2, 0.5, 0.9])
def test_pareto_khat_reads_the_tail_of_pareto_distributed_weights(k):
    """The tail of a generalized Pareto above any threshold is generalized Pareto of the same
    shape, so k-hat of the weights estimates k from the largest M of them."""
    draws = 1_000_000
    weights = stats.genpareto(k).rvs(draws, random_state=np.random.default_rng(12))
    tail = tail_length(draws)
    assert tail == 3000
    assert abs(pareto_khat(np.log(weights)) - k) < 4 * (1 + k) / math.sqrt(tail)


@pytest.mark.parametrize(("var_q", "var_p"), [(1.0, 2.0), (1.0, 1.25)])
def test_gaussian_weight_ratio_has_shape_one_minus_the_variance_ratio(var_q, var_p):
    """x ~ N(0, var_q), w = N(x; 0, var_p) / N(x; 0, var_q): P(w > t) ~ t^(-1 / k) with
    k = 1 - var_q / var_p (up to a log factor, which biases a finite-sample fit low)."""
    x = np.random.default_rng(13).normal(0.0, math.sqrt(var_q), 200_000)
    log_w = stats.norm.logpdf(x, 0, math.sqrt(var_p)) - stats.norm.logpdf(x, 0, math.sqrt(var_q))
    k = 1 - var_q / var_p
    assert k - 0.15 < pareto_khat(log_w) < k + 0.05


def test_exact_draws_give_a_small_khat():
    """q == p: the weights are constant up to rounding (p and q computed two ways), and a
    proposal wider than the target has bounded weights."""
    x = np.random.default_rng(14).normal(1.0, 2.0, 4000)
    log_p = stats.norm.logpdf(x, 1.0, 2.0)
    log_q = -0.5 * ((x - 1.0) / 2.0) ** 2 - math.log(2.0 * math.sqrt(2 * math.pi))
    assert pareto_khat(log_p - log_q) < 0.5
    assert pareto_khat(np.zeros(4000)) == -math.inf
    wide = stats.norm.logpdf(x, 1.0, 1.0) - stats.norm.logpdf(x, 1.0, 2.0)
    assert pareto_khat(wide) < 0.0


def test_edge_cases_of_the_weights():
    lw = np.random.default_rng(15).normal(size=2000)
    base = pareto_khat(lw)
    assert pareto_khat(lw + 1e4) == pytest.approx(base, abs=1e-6)  # a constant cancels
    assert pareto_khat(lw.reshape(40, 50)) == base  # read flat
    with_zeros = np.concatenate([lw, np.full(500, -np.inf)])
    assert math.isfinite(pareto_khat(with_zeros))
    assert pareto_khat(np.full(100, -np.inf)) == math.inf
    assert pareto_khat(np.concatenate([lw, [np.inf]])) == math.inf
    assert math.isnan(pareto_khat(lw[:20]))  # M = ceil(S / 5) = 5 needs 21 draws
    assert math.isfinite(pareto_khat(lw[:21]))
    mostly_tied = np.concatenate([np.zeros(1900), lw[:100]])  # threshold ties in the tail
    assert math.isfinite(pareto_khat(mostly_tied))
    with pytest.raises(ValueError, match="NaN"):
        pareto_khat(np.array([0.0, np.nan] * 20))
    with pytest.raises(ValueError, match="empty"):
        pareto_khat(np.array([]))


def _arviz_khat(log_weights):
    """ArviZ's PSIS k-hat of the same log weights, when the installed ArviZ has it."""
    try:  # arviz 0.x
        from arviz import psislw

        return float(psislw(log_weights)[1])
    except ImportError:
        pass
    try:  # arviz 1.x: arviz_stats, whose psislw takes log-likelihoods (weights are their negation)
        from arviz_stats.base import array_stats

        return float(array_stats.psislw(-log_weights)[1])
    except (ImportError, AttributeError):
        return None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_arviz_when_installed(seed):
    """3600 draws: 3 sqrt(S) = 180 is a whole number, where ArviZ 0.x (which rounds it up, as
    here) and arviz_stats 1.x (which rounds it down) read the same tail."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=2700)
    log_w = np.concatenate([x**2 / 3, rng.standard_t(3, size=900)])
    assert tail_length(log_w.size) == 180
    theirs = _arviz_khat(log_w)
    if theirs is None:
        pytest.skip("no PSIS in the installed arviz")
    assert pareto_khat(log_w) == pytest.approx(theirs, abs=1e-8)
