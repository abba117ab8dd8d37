"""The stopping rule on sequences whose truth is known, the scales it reads, its threshold."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytest
from scipy.special import ndtri
from scipy.stats import chi2

from minibatch._fitting._rule import Averager, Rule
from minibatch._fitting._scales import Layout, layout_of


def _layout(dim: int) -> Layout:
    mu = pytensor.shared(np.zeros(dim), name="mu")
    rho = pytensor.shared(np.zeros(dim), name="rho")
    return Layout("meanfield", dim, (mu, rho))


def _run(averager: Averager, means: np.ndarray, rho: float, steps: int) -> int | None:
    """Feed the iterates mu = means[t] (+ the noise in means), rho fixed; the stopping step."""
    mu, r = averager.layout.params
    for t in range(steps):
        mu.set_value(means[t])
        r.set_value(np.full(averager.layout.dim, rho))
        try:
            averager(None, None, t)
        except StopIteration:
            return t + 1
    return None


def test_fires_on_a_stationary_sequence_not_on_a_drifting_one():
    """AR(1) jitter of 0.5 q-sd around fixed means: the rule stops, and the average is within
    3 MCSE thresholds of the truth. The same jitter on a drift of one q-sd per 400 steps (the
    first window), still going at the end: never, although the jitter alone would stop."""
    rng = np.random.default_rng(3)
    dim, steps, sd = 5, 60_000, float(np.log1p(np.exp(0.0)))
    noise = np.zeros((steps, dim))
    for t in range(1, steps):
        noise[t] = 0.8 * noise[t - 1] + rng.normal(scale=0.5 * sd * 0.6, size=dim)
    truth = np.arange(dim, dtype=float)
    stationary = Averager(_layout(dim), Rule())
    stopped = _run(stationary, truth + noise, 0.0, steps)
    assert stopped is not None and stopped < steps
    error = np.abs(stationary.average()[:dim] - truth) / sd
    assert error.max() < 3 * stationary.threshold
    drift = truth + noise + np.arange(steps)[:, None] * sd / 400
    drifting = Averager(_layout(dim), Rule())
    assert _run(drifting, drift, 0.0, steps) is None
    assert not drifting.converged


def test_no_stop_when_off_but_still_averaged():
    rng = np.random.default_rng(4)
    averager = Averager(_layout(2), Rule(), stop=False)
    draws = rng.normal(size=(5000, 2)) * 0.1
    assert _run(averager, draws, 0.0, 5000) is None
    assert averager.converged  # the rule is met, but the run goes on
    averaged = averager.window.iterates + averager.window._filled
    np.testing.assert_allclose(averager.average()[:2], draws[5000 - averaged :].mean(0))


def test_threshold_meets_rms_and_max_bounds():
    rule = Rule(tolerance=0.1)
    for p in (1, 2, 10, 1000, 10**6):
        expected = 0.1 * min(1 / np.sqrt(chi2.ppf(0.95, p) / p), 2.5 / ndtri(1 - 0.025 / p))
        assert rule.threshold(p) == pytest.approx(expected)
    assert rule.threshold(1) < rule.threshold(200) and rule.threshold(10**6) < rule.threshold(200)


def test_scales_are_q_sd_and_log_sd_derivatives():
    """Mean-field: mu in q's sd; rho divided by 1 / (d log sd / d rho), checked numerically.
    Full rank: the norm of L's row for mu and for every entry of that row."""
    with pm.Model():
        pm.Normal("x", shape=3)
        mf = layout_of(pm.ADVI(random_seed=0).approx)
        full_rank = pm.FullRankADVI(random_seed=0).approx
        fr = layout_of(full_rank)
    rho = np.array([-3.0, 0.0, 2.0])
    scales = mf.scales(np.concatenate([np.zeros(3), rho]))
    sd = np.log1p(np.exp(rho))
    np.testing.assert_allclose(scales[:3], sd)
    h = 1e-6
    dlogsd = (np.log(np.log1p(np.exp(rho + h))) - np.log(np.log1p(np.exp(rho - h)))) / (2 * h)
    np.testing.assert_allclose(scales[3:], 1 / dlogsd, rtol=1e-6)
    # PyMC keeps L's diagonal unconstrained: L[i, i] = softplus(stored entry)
    chol = np.array([[1.0, 0, 0], [0.5, 2.0, 0], [-1.0, 0.3, 0.2]])
    stored = chol.copy()
    stored[np.diag_indices(3)] = np.log(np.expm1(np.diag(chol)))
    row, col = np.tril_indices(3)
    flat = np.concatenate([np.zeros(3), stored[row, col]])
    fr.write(flat)
    np.testing.assert_allclose(full_rank.L.eval(), chol)  # the layout reads PyMC's L
    np.testing.assert_allclose(fr.cholesky(flat), chol)
    np.testing.assert_allclose(fr.qsd(flat), full_rank.std.eval())
    rows = np.linalg.norm(chol, axis=1)
    np.testing.assert_allclose(fr.scales(flat)[:3], rows)
    # an error e in a stored diagonal entry moves L[i, i] by sigmoid(entry) * e
    sigmoid = 1 / (1 + np.exp(-stored[row, col]))
    expected = np.where(row == col, rows[row] / sigmoid, rows[row])
    np.testing.assert_allclose(fr.scales(flat)[3:], expected)


def test_other_approximations_are_refused_by_name():
    with pm.Model():
        pm.Normal("x")
        svgd = pm.SVGD(n_particles=2, random_seed=0)
    with pytest.raises(NotImplementedError, match="EmpiricalGroup"):
        layout_of(svgd.approx)
