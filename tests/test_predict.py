"""full_data_model: the minibatch model on its full data, or on new data, for prediction."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from scipy import stats

import minibatch as mb

N, BATCH = 300, 30
RNG = np.random.default_rng(11)
X = RNG.normal(size=(N, 2))
Y = X @ np.array([1.0, -2.0]) + RNG.normal(0, 0.5, size=N)


def _regression(xb, yb, **observe):
    with pm.Model(coords={"feature": ["a", "b"]}) as model:
        w = pm.Normal("w", 0, 5, dims="feature")
        mu = pm.Deterministic("mu", xb @ w)
        pm.Normal("y", mu, 0.5, observed=yb, **observe)
    return model


@pytest.fixture(scope="module")
def fitted():
    xb, yb = mb.Minibatch(X, Y, batch_size=BATCH)
    model = _regression(xb, yb)
    with model:
        approx = pm.fit(
            3000, obj_optimizer=pm.adam(learning_rate=0.05), random_seed=3, progressbar=False
        )
    return model, xb, yb, approx.sample(200, random_seed=4)


def _exact_logp(w, x, y):
    return stats.norm(0, 5).logpdf(w).sum() + stats.norm(x @ w, 0.5).logpdf(y).sum()


@pytest.mark.parametrize("make", [mb.Minibatch, pm.Minibatch], ids=["mb", "pm"])
def test_full_model_logp_is_the_unscaled_full_data_logp(make):
    xb, yb = make(X, Y, batch_size=BATCH)
    model = _regression(xb, yb, total_size=N)
    full = mb.full_data_model(model)
    w = np.array([0.3, -0.7])
    np.testing.assert_allclose(full.compile_logp()({"w": w}), _exact_logp(w, X, Y), rtol=1e-7)
    assert full.observed_RVs[0].owner.op.__class__.__name__ == "NormalRV"  # no scaling wrapper


def test_coords_and_dims_are_kept(fitted):
    model, *_ = fitted
    full = mb.full_data_model(model)
    assert full.coords["feature"] == ("a", "b")
    assert tuple(full.named_vars_to_dims["w"]) == ("feature",)


def test_posterior_predictive_covers_every_row(fitted):
    model, _, _, idata = fitted
    with mb.full_data_model(model):
        pp = pm.sample_posterior_predictive(
            idata, var_names=["mu", "y"], progressbar=False, random_seed=5
        )
    assert pp.posterior_predictive["y"].shape == (1, 200, N)
    mu = pp.posterior_predictive["mu"].mean(("chain", "draw")).values
    w_mean = idata.posterior["w"].mean(("chain", "draw")).values
    np.testing.assert_allclose(mu, X @ w_mean, rtol=1e-10, atol=1e-10)


def test_default_call_recomputes_deterministics_computed_from_batches(fitted):
    """The trace holds mu for one batch of 30 rows; the full model must not reuse it."""
    model, _, _, idata = fitted
    assert idata.posterior["mu"].shape[-1] == BATCH
    with mb.full_data_model(model):
        pp = pm.sample_posterior_predictive(idata, progressbar=False, random_seed=5)
    assert pp.posterior_predictive["y"].shape == (1, 200, N)


def test_new_data_of_another_length(fitted):
    model, xb, yb, idata = fitted
    new_x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
    with mb.full_data_model(model, {xb: new_x, yb: np.zeros(5)}):
        pp = pm.sample_posterior_predictive(
            idata, var_names=["mu", "y"], progressbar=False, random_seed=5
        )
    w = idata.posterior["w"].values.reshape(-1, 2)
    expected = (w @ new_x.T).mean(0)
    np.testing.assert_allclose(pp.posterior_predictive["mu"].mean(("chain", "draw")), expected)
    assert pp.posterior_predictive["y"].shape == (1, 200, 5)


def test_pm_data_sources_take_set_data():
    with pm.Model(coords={"feature": ["a", "b"]}) as model:
        xd, yd = pm.Data("X", X), pm.Data("Y", Y)
        xb, yb = mb.Minibatch(xd, yd, batch_size=BATCH)
        w = pm.Normal("w", 0, 5, dims="feature")
        pm.Normal("y", xb @ w, 0.5, observed=yb)
        idata = pm.fit(200, random_seed=1, progressbar=False).sample(50, random_seed=2)
    with mb.full_data_model(model):
        pm.set_data({"X": X[:4], "Y": np.zeros(4)})
        pp = pm.sample_posterior_predictive(idata, progressbar=False, random_seed=3)
    assert pp.posterior_predictive["y"].shape == (1, 50, 4)


def test_new_data_must_cover_every_batch_of_the_index(fitted):
    model, xb, _, _ = fitted
    with pytest.raises(ValueError, match=r"not for \['.*'\], which are drawn by the same index"):
        mb.full_data_model(model, {xb: X[:5]})


def test_new_data_keys_and_ranks_are_checked(fitted):
    model, xb, yb, _ = fitted
    with pytest.raises(ValueError, match="data keys must be minibatch variables"):
        mb.full_data_model(model, {"X": X})
    with pytest.raises(ValueError, match="must have rank 2"):
        mb.full_data_model(model, {xb: np.zeros(3), yb: np.zeros(3)})
    with pytest.raises(ValueError, match="one length"):
        mb.full_data_model(model, {xb: np.zeros((3, 2)), yb: np.zeros(4)})


def _elpd(loo):
    """``elpd_loo`` of an ``az.loo`` result: ArviZ 0.x calls it ``elpd_loo``, 1.x ``elpd``."""
    return float(getattr(loo, "elpd_loo", None) or loo.elpd)


def test_log_likelihood_is_the_full_data_one_and_loo_agrees(conjugate):
    import arviz as az

    c = conjugate
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=mb.Minibatch(c.y, batch_size=100))
        approx = pm.fit(
            3000, random_seed=1, progressbar=False, obj_optimizer=pm.adam(learning_rate=0.05)
        )
    ours = mb.log_likelihood(approx.sample(200, random_seed=2), model, progressbar=False)
    with pm.Model() as full:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=c.y)
    reference = pm.compute_log_likelihood(
        approx.sample(200, random_seed=2), model=full, progressbar=False
    )
    assert ours.log_likelihood["y"].shape == (1, 200, len(c.y))  # every row, unscaled
    np.testing.assert_allclose(ours.log_likelihood["y"], reference.log_likelihood["y"])
    assert _elpd(az.loo(ours)) == pytest.approx(_elpd(az.loo(reference)), rel=1e-12)


def test_compute_log_likelihood_on_a_minibatch_model_points_at_log_likelihood(conjugate):
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 2, observed=mb.Minibatch(conjugate.y, batch_size=100))
        idata = pm.fit(50, random_seed=1, progressbar=False).sample(10, random_seed=2)
        with pytest.raises(ValueError, match=r"\['y'\].*mb\.log_likelihood\(idata, model\)"):
            pm.compute_log_likelihood(idata, progressbar=False)


def test_new_data_reaches_an_integer_observed_value():
    """PyMC casts integer observed data (the cast sits below the gather, in a twin gather of
    the same index); new data for the batch must replace the observed value as well."""
    x = np.arange(300.0)
    y = np.arange(300)
    xb, yb = mb.Minibatch(x, y, batch_size=10)
    with pm.Model() as model:
        w = pm.Normal("w", 0, 1)
        pm.Normal("obs", w * xb, 1, observed=yb)
    new = mb.full_data_model(model, {xb: x[:7], yb: y[:7] + 1})
    assert new["obs"].eval().shape == (7,)
    np.testing.assert_array_equal(new.rvs_to_values[new["obs"]].eval(), y[:7] + 1)


def test_a_local_latent_variable_takes_every_row_in_the_full_data_model():
    """``z[mb.index_of(yb)]`` becomes ``z`` itself: the full model's logp, and new rows refused."""
    n, b = 30, 5
    y = np.random.default_rng(0).normal(size=n)
    yb = mb.Minibatch(y, batch_size=b)
    with pm.Model() as model:
        z = pm.Normal("z", 0, 1, shape=n)
        pm.Normal("obs", z[mb.index_of(yb)], 0.5, observed=yb, total_size=n)
    with pm.Model() as full:
        z = pm.Normal("z", 0, 1, shape=n)
        pm.Normal("obs", z, 0.5, observed=y)
    point = {"z": np.random.default_rng(1).normal(size=n)}
    np.testing.assert_allclose(
        mb.full_data_model(model).compile_logp()(point), full.compile_logp()(point), rtol=1e-12
    )
    with pytest.raises(ValueError, match=r"also uses as a value .* local latent variable"):
        mb.full_data_model(model, {yb: np.zeros(4)})
