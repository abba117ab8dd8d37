"""Observed minibatches: total_size inferred when omitted, checked when given, warned about when
it cannot be known; VI's loss on the same scale as with ``pm.Minibatch``."""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest
from pymc.pytensorf import compile as pm_compile
from scipy import stats

import minibatch as mb

N, COLS, BATCH = 40, 3, 8


def _compiled_logp(xb, **observe):
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("x", mu, 2.0, observed=xb, **observe)
    return pm_compile(model.value_vars, [model.logp(), xb], random_seed=1)


def _expected(batch, scale, mu=0.5):
    # PyMC keeps float literals such as sigma=2.0 as float32 constants: compare to rtol 1e-7.
    return stats.norm(0, 10).logpdf(mu) + scale * stats.norm(mu, 2.0).logpdf(batch).sum()


@pytest.mark.parametrize(
    ("spec", "scale"),
    [(BATCH, N / BATCH), ([BATCH, 2], N / BATCH * COLS / 2), ([None, 2], COLS / 2)],
    ids=["rows", "rows-and-columns", "columns-only"],
)
def test_omitted_total_size_scales_by_the_stored_lengths(spec, scale):
    data = np.random.default_rng(0).normal(size=(N, COLS))
    xb = mb.Minibatch(data, batch_size=spec)
    f = _compiled_logp(xb)
    for _ in range(3):
        logp, batch = f(0.5)
        np.testing.assert_allclose(logp, _expected(batch, scale), rtol=1e-7)


def test_no_warning_when_inferred_or_agreeing():
    xb = mb.Minibatch(np.zeros((N, COLS)), batch_size=BATCH)
    with warnings.catch_warnings(), pm.Model():
        warnings.simplefilter("error")
        pm.Normal("a", 0, 1, observed=xb)
        pm.Normal("b", 0, 1, observed=xb, total_size=N)
        pm.Normal("c", 0, 1, observed=xb, total_size=(N, COLS))


def test_inferred_scale_follows_a_refill_of_another_length():
    xb = mb.Minibatch(np.zeros(N), batch_size=BATCH)
    f = _compiled_logp(xb)
    xb.set_value(np.ones(3 * N))
    logp, batch = f(0.5)
    np.testing.assert_allclose(logp, _expected(batch, 3 * N / BATCH), rtol=1e-7)


def test_casts_are_inferred_too():
    counts = np.random.default_rng(1).poisson(4, size=200)  # int64: PyMC casts to int32
    cb = mb.Minibatch(counts, batch_size=20)
    with pm.Model() as model:
        lam = pm.Exponential("lam", 1.0)
        pm.Poisson("c", lam, observed=cb)
    f = pm_compile(model.value_vars, [model.logp(), model.observed_RVs[0].tag.observations])
    logp, batch = f(np.log(4.0))
    expected = stats.expon.logpdf(4.0) + np.log(4.0) + 10 * stats.poisson(4).logpmf(batch).sum()
    np.testing.assert_allclose(logp, expected, rtol=1e-7)


@pytest.mark.parametrize(
    ("total_size", "match"),
    [
        (N - 1, "gives 39 for axis 0, but the minibatch 'x_data' draws that axis from 40"),
        ((None, COLS), r"gives no entry \(None\) for axis 0"),
        ((N, COLS + 1), "gives 4 for axis 1, which the minibatch 'x_data' does not subsample"),
    ],
)
def test_disagreeing_total_size_is_refused_at_construction(total_size, match):
    xb = mb.Minibatch(np.zeros((N, COLS)), batch_size=BATCH, name="x_data")
    with pm.Model(), pytest.raises(ValueError, match=match) as info:
        pm.Normal("x", 0, 1, observed=xb, total_size=total_size)
    assert "mb.as_given" in str(info.value)


def test_as_given_is_used_exactly_as_written():
    data = np.random.default_rng(2).normal(size=N)
    xb = mb.Minibatch(data, batch_size=BATCH)
    for given, scale in [(10 * N, 10 * N / BATCH), (None, 1.0)]:
        logp, batch = _compiled_logp(xb, total_size=mb.as_given(given))(0.5)
        np.testing.assert_allclose(logp, _expected(batch, scale), rtol=1e-7)


def test_derived_observed_warns_naming_the_variable_and_only_once():
    xb = mb.Minibatch(np.zeros((N, COLS)), batch_size=BATCH)
    with pm.Model(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm.Normal("doubled", 0, 1, observed=xb[:, 0] * 2)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert caught[0].category is mb.TotalSizeWarning
    assert "observed variable 'doubled' is computed from a minibatch" in messages[0]


def test_derived_observed_with_total_size_scales_and_recomputes_on_full_data():
    data = np.random.default_rng(3).normal(size=(N, COLS))
    xb = mb.Minibatch(data, batch_size=BATCH)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("x", mu, 2.0, observed=xb[:, 0] * 2, total_size=N)
    f = pm_compile(model.value_vars, [model.logp(), model.observed_RVs[0].tag.observations])
    logp, derived = f(0.5)
    np.testing.assert_allclose(logp, _expected(derived, N / BATCH), rtol=1e-7)
    full = mb.full_data_model(model)
    np.testing.assert_allclose(
        full.compile_logp()({"mu": 0.5}), _expected(data[:, 0] * 2, 1.0), rtol=1e-7
    )


def test_pymc_minibatch_without_total_size_still_gets_pymcs_warning():
    mb.Minibatch(np.zeros(3), batch_size=1)  # install the hook
    xb = pm.Minibatch(np.zeros(N), batch_size=BATCH)
    with pm.Model(), pytest.warns(UserWarning, match="total_size not provided"):
        pm.Normal("x", 0, 1, observed=xb)


def _conjugate_fit(c, total_size, method="advi", steps=20000):
    yb = mb.Minibatch(c.y, batch_size=100)
    with pm.Model():
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=yb, total_size=total_size)
        approx = pm.fit(
            steps,
            method=method,
            random_seed=42,
            progressbar=False,
            obj_optimizer=pm.adam(learning_rate=0.01),
        )
    return float(approx.mean.eval()[0]), float(approx.std.eval()[0]), approx.hist


def test_omitting_total_size_fits_exactly_as_passing_it(conjugate):
    omitted = _conjugate_fit(conjugate, None, steps=500)
    passed = _conjugate_fit(conjugate, len(conjugate.y), steps=500)
    np.testing.assert_allclose(omitted[:2], passed[:2], rtol=1e-12)
    np.testing.assert_allclose(omitted[2], passed[2], rtol=1e-12)


@pytest.mark.slow
def test_omitted_total_size_gives_the_exact_posterior_and_opting_out_does_not(conjugate):
    """Scaled: mean within 5 %, sd within 20 % of the exact posterior.  Unscaled (as_given(None)),
    the 100 rows of a batch act as the whole data set: sd = sigma / sqrt(100 + sigma^2/tau0^2),
    about sqrt(10) times the exact one; checked to 20 %."""
    mean, sd, _ = _conjugate_fit(conjugate, None)
    assert abs(mean - conjugate.post_mean) < 0.05 * abs(conjugate.post_mean)
    assert abs(sd - conjugate.post_sd) < 0.20 * conjugate.post_sd
    _, sd_unscaled, _ = _conjugate_fit(conjugate, mb.as_given(None))
    one_batch_sd = (1 / conjugate.tau0**2 + 100 / conjugate.sigma**2) ** -0.5
    assert abs(sd_unscaled - one_batch_sd) < 0.20 * one_batch_sd


def _loss_normaliser_and_losses(batch, total_size, data, steps=3000):
    """VI's normalising constant and the losses of ``steps`` steps at fixed parameters."""
    with pm.Model():
        mu = pm.Normal("mu", 0, 10, shape=data.shape[1])
        pm.Normal("x", mu, 1.0, observed=batch, total_size=total_size)
        advi = pm.ADVI(random_seed=7)
        constant = float(advi.approx.symbolic_normalizing_constant.eval())
        advi.fit(steps, obj_optimizer=pm.sgd(learning_rate=0.0), progressbar=False)
    return constant, np.asarray(advi.hist)


def test_loss_is_on_the_scale_of_pm_minibatch_side_by_side():
    """Same model, same data: ``mb`` (inferred total_size) and ``pm.Minibatch`` (total_size=N)
    share VI's normalising constant N / batch, and at fixed parameters their losses are two
    samples of one distribution: their means agree within 5 combined standard errors."""
    data = np.random.default_rng(4).normal(1.0, 1.0, size=(2000, 5))
    pm_const, pm_loss = _loss_normaliser_and_losses(
        pm.Minibatch(data, batch_size=50), len(data), data
    )
    mb_const, mb_loss = _loss_normaliser_and_losses(mb.Minibatch(data, batch_size=50), None, data)
    assert pm_const == mb_const == len(data) / 50
    se = np.hypot(pm_loss.std() / np.sqrt(len(pm_loss)), mb_loss.std() / np.sqrt(len(mb_loss)))
    assert abs(pm_loss.mean() - mb_loss.mean()) < 5 * se


def _replaced_fit(total_size):
    y = np.random.default_rng(5).normal(size=200)
    with pm.Model():
        yd = pm.Data("y", y)
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("obs", mu, 1, observed=yd, total_size=total_size)
        pm.fit(5, more_replacements={yd: mb.Minibatch(y, batch_size=20)}, progressbar=False)


def test_replacing_unscaled_data_by_a_minibatch_in_a_fit_warns():
    with pytest.warns(mb.TotalSizeWarning, match="observed variable 'obs' into a minibatch"):
        _replaced_fit(None)


def test_replacing_scaled_data_by_a_minibatch_in_a_fit_is_quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("error", mb.TotalSizeWarning)
        _replaced_fit(200)


@pytest.mark.parametrize("observed", [np.zeros(5), [0.0, 1.0], 0.5], ids=["array", "list", "float"])
def test_plain_observed_data_passes_through(observed):
    mb.Minibatch(np.zeros(3), batch_size=1)  # install the hook
    with pm.Model() as model:
        pm.Normal("x", 0, 1, observed=observed, total_size=mb.as_given(None))
        pm.Normal("z", 0, 1, observed=observed)
    assert np.isfinite(model.compile_logp()({}))


def test_nan_in_observed_minibatch_data_is_refused_naming_the_variable():
    y = np.arange(20.0)
    y[3] = np.nan
    yb = mb.Minibatch(
        y, batch_size=5
    )  # as a covariate it could still be fine: refused when observed
    with pm.Model(), pytest.raises(ValueError, match=r"'y' is drawn from data with 1 NaN entries"):
        pm.Normal("y", 0, 1, observed=yb)


def test_integer_observed_data_passes_the_nan_check():
    counts = mb.Minibatch(np.arange(20), batch_size=5)
    with pm.Model():
        pm.Poisson("c", 3.0, observed=counts)  # integers hold no NaN


def test_masked_arrays_with_masked_entries_are_refused_at_construction():
    data = np.ma.masked_array(np.arange(6.0), mask=[0, 1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="data argument 0 is a masked array with 1 masked"):
        mb.Minibatch(data, batch_size=2)
    unmasked = mb.Minibatch(np.ma.masked_array(np.arange(6.0)), batch_size=2)
    assert unmasked.shared.get_value().tolist() == list(range(6))
