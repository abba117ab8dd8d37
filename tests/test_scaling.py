"""total_size scales the observed density by N / batch on each subsampled axis, unbiasedly."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from pymc.pytensorf import compile as pm_compile
from scipy import stats

import minibatch as mb

N, COLS, BATCH = 40, 6, 8


def _model(data, total_size, batch=BATCH):
    xb = mb.Minibatch(data, batch_size=batch, random_seed=0)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("x", mu, 2.0, observed=xb, total_size=total_size)
    return model, xb


TOTAL_SIZES_2D = [N, (N, COLS), (N, None), [N, None], (N, Ellipsis), (N, Ellipsis, COLS)]


@pytest.mark.parametrize("total_size", TOTAL_SIZES_2D, ids=str)
def test_logp_scales_the_drawn_batch(total_size):
    data = np.random.default_rng(1).normal(size=(N, COLS))
    model, xb = _model(data, total_size)
    f = pm_compile(model.value_vars, [model.logp(), xb], random_seed=3)
    for _ in range(3):
        logp, batch = f(0.5)
        expected = (
            stats.norm(0, 10).logpdf(0.5) + N / BATCH * stats.norm(0.5, 2.0).logpdf(batch).sum()
        )
        np.testing.assert_allclose(logp, expected, rtol=1e-7)


@pytest.mark.parametrize("total_size", TOTAL_SIZES_2D, ids=str)
def test_compile_logp_of_identical_rows_is_the_full_logp(total_size):
    """With identical rows every batch is alike: the scaled logp is exactly the full-data logp."""
    row = np.random.default_rng(2).normal(size=COLS)
    model, _ = _model(np.tile(row, (N, 1)), total_size)
    expected = stats.norm(0, 10).logpdf(0.5) + N * stats.norm(0.5, 2.0).logpdf(row).sum()
    np.testing.assert_allclose(model.compile_logp()({"mu": 0.5}), expected, rtol=1e-7)


def test_rank_3_with_none_and_ellipsis_entries():
    data = np.random.default_rng(3).normal(size=(N, 2, 3))
    model, xb = _model(data, (N, Ellipsis))
    f = pm_compile(model.value_vars, [model.logp(), xb], random_seed=3)
    logp, batch = f(0.0)
    expected = stats.norm(0, 10).logpdf(0) + N / BATCH * stats.norm(0, 2.0).logpdf(batch).sum()
    np.testing.assert_allclose(logp, expected, rtol=1e-7)


def test_expected_scaled_logp_is_the_full_logp():
    """E over index draws of (N/b) sum_batch logp_i equals sum_i logp_i.

    With replacement, the estimator's variance is (N^2 / b) Var_pop(logp_i); the mean of K draws
    is checked to within 5 of its standard errors (fixed seeds: no flakes).
    """
    data = np.random.default_rng(4).standard_t(df=5, size=N * 25)
    n, b, draws = len(data), 10, 4000
    model, _ = _model(data, n, batch=b)
    obs_logp = model.logp(vars=model.observed_RVs)
    f = pm_compile(model.value_vars, obs_logp, random_seed=5)
    estimates = np.array([f(0.3) for _ in range(draws)])
    per_row = stats.norm(0.3, 2.0).logpdf(data)
    se = n * per_row.std() / np.sqrt(b * draws)
    assert abs(estimates.mean() - per_row.sum()) < 5 * se
    # and the spread is the with-replacement spread, within 10 % (K = 4000: sd of sd ~ 1.1 %)
    np.testing.assert_allclose(estimates.std(), n * per_row.std() / np.sqrt(b), rtol=0.1)
