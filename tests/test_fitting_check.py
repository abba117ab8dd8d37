"""check_fit: full-data Pareto k-hat of fitted approximations, on models whose answer is known.

* A conjugate normal mean: the posterior is one Gaussian coordinate, which mean-field holds
  exactly, so k-hat is small.
* A regression on two covariates of correlation 0.995: the posterior is Gaussian with
  correlation rho = -0.994.  Mean-field's optimum has each variance 1 - rho^2 times the
  marginal, so along the ridge q's variance is sigma^2 (1 - rho^2) against p's
  sigma^2 (1 + |rho|): 1 - |rho| times it, and the weights' tail shape is
  1 - (1 - |rho|) = 0.994 (see test_fitting_khat): k-hat far above 0.7.  Full rank holds the
  posterior exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pymc as pm
import pytest
from scipy import stats

import minibatch as mb
from minibatch._compat import C_MODE
from minibatch._fitting._check import FullDataCheck, _gaussian, check_fit

C = {"mode": C_MODE}  # pymc 6 compiles fits with Numba by default: slow to compile


def _ridge_data():
    rng = np.random.default_rng(7)
    x1 = rng.normal(size=200)
    x2 = 0.995 * x1 + math.sqrt(1 - 0.995**2) * rng.normal(size=200)
    x = np.column_stack([x1, x2])
    return x, x @ np.array([1.0, 1.0]) + rng.normal(size=200)


@pytest.fixture(scope="module")
def ridge():
    x, y = _ridge_data()
    with pm.Model() as model:
        w = pm.Normal("w", 0, 10, shape=2)
        pm.Normal("y", x @ w, 1.0, observed=y)
    precision = x.T @ x + np.eye(2) / 100
    return model, np.linalg.solve(precision, x.T @ y), precision


def _conjugate_minibatch_model(conjugate):
    with pm.Model() as model:
        mu = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        pm.Normal("y", mu, conjugate.sigma, observed=mb.Minibatch(conjugate.y, batch_size=100))
    return model


def test_exact_mean_field_family_gives_a_small_khat(conjugate):
    """A minibatch fit checked against its full data (1000 rows, batches of 100)."""
    model = _conjugate_minibatch_model(conjugate)
    approx = mb.fit(model=model, random_seed=1, progressbar=False, compile_kwargs=C)
    check = check_fit(approx, 2000, random_seed=2)
    assert isinstance(check, FullDataCheck)
    assert check.khat < 0.5 and check.verdict == "good", check.summary()
    assert check.parameters == 1 and check.draws == 2000 and check.log_weights.shape == (2000,)
    assert check.ess > 0.9 * 2000
    assert "good" in check.summary() and "2000 draws" in check.summary()


def test_log_weights_are_the_full_data_posterior_over_q(conjugate):
    """Each log weight is log p(mu) + sum over all 1000 rows of log N(y_i; mu, sigma) - log q(mu)
    (no total_size scaling), for the draws mu = m + s * eps that the seed fixes; and the same
    for a full-data model built by hand, and whatever the chunk."""
    model = _conjugate_minibatch_model(conjugate)
    approx = pm.fit(2000, model=model, random_seed=1, progressbar=False, compile_kwargs=C)
    check = check_fit(approx, 50, chunk=7, random_seed=3)
    (m,), (s,) = approx.mean.eval(), approx.std.eval()
    eps = np.random.default_rng(3).standard_normal(50)
    mu = m + s * eps
    log_p = stats.norm.logpdf(mu, conjugate.mu0, conjugate.tau0) + stats.norm.logpdf(
        conjugate.y[:, None], mu, conjugate.sigma
    ).sum(0)
    np.testing.assert_allclose(check.log_weights, log_p - stats.norm.logpdf(mu, m, s), rtol=1e-9)

    with pm.Model() as by_hand:
        mu_ = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        pm.Normal("y", mu_, conjugate.sigma, observed=conjugate.y)
    again = check_fit(approx, 50, model=by_hand, chunk=50, random_seed=3)
    np.testing.assert_allclose(again.log_weights, check.log_weights, rtol=1e-12)
    with pytest.raises(ValueError, match="read-only"):
        check.log_weights[0] = 0.0


def test_strong_correlation_mean_field_is_bad_and_full_rank_is_good(ridge):
    model, mean, precision = ridge
    mean_field = mb.fit(
        method="advi", model=model, random_seed=0, progressbar=False, compile_kwargs=C
    )
    # mean-field's optimum: each variance the inverse of the precision's diagonal, 1 - rho^2
    # times the marginal variance
    np.testing.assert_allclose(mean_field.std.eval(), np.diag(precision) ** -0.5, rtol=0.1)
    check = check_fit(mean_field, 2000, random_seed=10)
    assert check.khat > 0.8 and check.verdict == "bad", check.summary()
    assert check.ess < 0.1 * 2000

    # full rank, started at the posterior mean so that the ridge need not be walked; the
    # smaller second step settles the Cholesky factor
    with model:
        inference = pm.FullRankADVI(random_seed=0, start={"w": mean})
        inference.fit(
            2000, obj_optimizer=pm.adam(learning_rate=0.02), progressbar=False, compile_kwargs=C
        )
        full_rank = inference.fit(
            2000, obj_optimizer=pm.adam(learning_rate=0.002), progressbar=False, compile_kwargs=C
        )
    np.testing.assert_allclose(full_rank.cov.eval(), np.linalg.inv(precision), rtol=0.15)
    check = check_fit(full_rank, 2000, random_seed=10)
    assert check.khat < 0.5 and check.verdict == "good", check.summary()
    assert check.ess > 0.8 * 2000


def test_q_drawn_is_the_approximation(ridge):
    """The mean and covariance check_fit draws from are those PyMC's group defines (the
    full-rank diagonal passes through softplus), for both families."""
    model, _, _ = ridge
    for method in (pm.ADVI, pm.FullRankADVI):
        with model:
            approx = method(random_seed=4).fit(300, progressbar=False, compile_kwargs=C)
        group = approx.groups[0]
        mean, factor, log_det = _gaussian(group, 2)
        cov = np.diag(factor**2) if factor.ndim == 1 else factor @ factor.T
        np.testing.assert_allclose(mean, approx.mean.eval(), rtol=1e-12)
        np.testing.assert_allclose(cov, approx.cov.eval(), rtol=1e-10)
        assert log_det == pytest.approx(0.5 * np.linalg.slogdet(cov)[1], rel=1e-10)


def test_arguments_are_checked_by_name(conjugate):
    model = _conjugate_minibatch_model(conjugate)
    with model:
        approx = pm.ADVI(random_seed=0).approx
    for bad in (5, 10.0, True, "100"):
        with pytest.raises(ValueError, match=r"draws must be an int >= 10"):
            check_fit(approx, bad)
    for bad in (0, 2.5, None):
        with pytest.raises(ValueError, match=r"chunk must be an int >= 1"):
            check_fit(approx, 100, chunk=bad)
    with model:
        svgd = pm.SVGD(n_particles=5, random_seed=0).approx
    with pytest.raises(TypeError, match=r"approx must be .*got EmpiricalGroup"):
        check_fit(svgd)
    with pytest.raises(TypeError, match=r"approx must be .*got ndarray"):
        check_fit(np.zeros(3))
    with pm.Model() as other:
        pm.Normal("nu", 0, 1)
    with pytest.raises(ValueError, match=r"free variables must be those of approx"):
        check_fit(approx, 100, model=other)


def test_streamed_data_are_refused_with_the_recipe(tmp_path, conjugate):
    path = tmp_path / "y.npy"
    stored = np.lib.format.open_memmap(path, mode="w+", dtype="float64", shape=(1000,))
    stored[:] = conjugate.y
    stored.flush()
    source = np.load(path, mmap_mode="r")
    with pm.Model():
        mu = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        pm.Normal(
            "y", mu, conjugate.sigma, observed=mb.Minibatch(source, batch_size=10, window=100)
        )
        approx = pm.ADVI(random_seed=0).approx
    with pytest.raises(ValueError, match=r"streamed.*check_fit\(approx, model=full_model\)"):
        check_fit(approx, 100)
    with pm.Model() as in_memory:
        mu = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        pm.Normal("y", mu, conjugate.sigma, observed=np.asarray(source))
    check = check_fit(approx, 100, model=in_memory, random_seed=0)
    assert check.draws == 100 and np.isfinite(check.log_weights).all()
