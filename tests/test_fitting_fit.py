"""mb.fit on the conjugate normal model (exact posterior): averaged, self-stopping, reproducible.

Tolerances are the goal's bounds in posterior sds (the rule aims at an RMS of 0.1 and a largest
error of 0.25-0.3 with probability 0.95); the model has one parameter, so mean-field is exact.
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest
from pymc.pytensorf import compile

import minibatch as mb


@pytest.fixture(scope="module")
def model(conjugate):
    with pm.Model() as m:
        mu = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        pm.Normal("y", mu, conjugate.sigma, observed=mb.Minibatch(conjugate.y, batch_size=100))
    return m


def _errors(approx, c):
    mean, sd = float(approx.mean.eval()[0]), float(approx.std.eval()[0])
    return abs(mean - c.post_mean) / c.post_sd, abs(np.log(sd / c.post_sd))


@pytest.fixture(scope="module")
def default_fit(model):
    with model, warnings.catch_warnings():
        warnings.simplefilter("error", mb.NotConvergedWarning)
        return mb.fit(random_seed=11, progressbar=False)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
def test_defaults_stop_by_themselves_at_the_exact_posterior(model, conjugate, method):
    with model, warnings.catch_warnings():
        warnings.simplefilter("error", mb.NotConvergedWarning)
        approx = mb.fit(method=method, random_seed=11, progressbar=False)
    report = approx.report
    assert report.converged and report.reason == "converged"
    assert report.steps < mb._fitting._fit.DEFAULT_CAP
    assert len(approx.hist) == report.steps and np.isfinite(approx.hist).all()
    mean_err, logsd_err = _errors(approx, conjugate)
    assert mean_err <= 0.3 and logsd_err <= 0.25
    assert report.mcse["mean"] <= report.threshold and report.averaged >= 1000
    assert "converged after" in report.summary()


@pytest.mark.slow
def test_average_reaches_the_posterior_where_the_last_iterate_does_not(model, conjugate):
    """Adam at a fixed 0.1 jitters by about two posterior sds; its average does not."""
    last = {}

    def keep_last(approx, losses, i):
        last["mu"] = float(approx.params[0].get_value()[0])

    with model:
        approx = mb.fit(
            20_000,
            stop=False,
            random_seed=3,
            progressbar=False,
            obj_optimizer=pm.adam(learning_rate=0.1),
            callbacks=[keep_last],
        )
    assert approx.report.reason == "fixed" and approx.report.step_sizes == []
    assert abs(last["mu"] - conjugate.post_mean) / conjugate.post_sd > 0.5
    assert _errors(approx, conjugate)[0] <= 0.3


def test_cap_warns_and_reports(model):
    with model, pytest.warns(mb.NotConvergedWarning, match="cap of 500 steps") as record:
        approx = mb.fit(500, random_seed=1, progressbar=False)
    assert "R-hat" in str(record[0].message) and "method=approx.report.inference" in str(
        record[0].message
    )
    report = approx.report
    assert not report.converged and report.reason == "cap" and report.steps == 500
    assert len(approx.hist) == 500 and report.averaged > 0


def test_fixed_n_runs_exactly_n_steps(model):
    with model, warnings.catch_warnings():
        warnings.simplefilter("error", mb.NotConvergedWarning)
        approx = mb.fit(3000, stop=False, random_seed=1, progressbar=False)
    assert approx.report.steps == 3000 and len(approx.hist) == 3000
    assert approx.report.reason == "fixed"


@pytest.mark.slow
def test_interrupt_returns_the_average_and_a_fit_continues(model, conjugate):
    fired = []

    def interrupt(approx, losses, i):  # Ctrl-C once, after step 1500
        if i == 1500 and not fired:
            fired.append(i)
            raise KeyboardInterrupt

    with model, pytest.warns(mb.NotConvergedWarning, match="interrupted"):
        approx = mb.fit(random_seed=2, progressbar=False, callbacks=[interrupt])
    report = approx.report
    assert report.reason == "interrupted" and report.steps == 1500 and len(approx.hist) == 1500
    averaged = approx.mean.eval().copy()
    state = report.inference._minibatch_fit_run.averager
    assert not np.array_equal(averaged, state.last[:1])  # the average, not the last iterate
    with warnings.catch_warnings():
        warnings.simplefilter("error", mb.NotConvergedWarning)
        again = mb.fit(method=report.inference, progressbar=False)
    assert again is approx and again.report.converged and again.report.steps > 1500
    assert len(again.hist) == again.report.steps
    assert _errors(again, conjugate)[0] <= 0.3


@pytest.mark.slow
def test_same_seed_same_fit_other_seed_differs(model, default_fit):
    with model:
        again = mb.fit(random_seed=11, progressbar=False)
        other = mb.fit(random_seed=12, progressbar=False)
    assert again.report.steps == default_fit.report.steps
    assert again.report.step_sizes == default_fit.report.step_sizes
    np.testing.assert_array_equal(again.hist, default_fit.hist)
    np.testing.assert_array_equal(again.mean.eval(), default_fit.mean.eval())
    assert not np.array_equal(other.hist[:100], default_fit.hist[:100])


@pytest.mark.slow
def test_works_on_a_full_data_model_and_with_sample(conjugate):
    with pm.Model():
        mu = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        pm.Normal("y", mu, conjugate.sigma, observed=conjugate.y)
        approx = mb.fit(random_seed=5, progressbar=False)
    assert approx.report.converged
    draws = approx.sample(2000, random_seed=1).posterior["mu"].values.ravel()
    mean_err, _ = _errors(approx, conjugate)
    assert mean_err <= 0.3
    # 2000 draws: the sample mean is within 4 / sqrt(2000) posterior sds of q's mean
    assert abs(draws.mean() - approx.mean.eval()[0]) < 4 * conjugate.post_sd / np.sqrt(2000)


def test_pm_fit_is_unchanged(model):
    with model:
        approx = pm.fit(200, random_seed=1, progressbar=False)
    assert not hasattr(approx, "report") and len(approx.hist) == 200


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "n must be a positive int"),
        ({"n": True}, ValueError, "n must be a positive int"),
        ({"tolerance": 0.0}, ValueError, "tolerance must be a number in"),
        ({"stop": False}, ValueError, "stop=False runs exactly n steps"),
        ({"method": "svgd"}, NotImplementedError, r"Run it with pm.fit\(method=.svgd.\)"),
        ({"method": "nuts"}, KeyError, "method must be one of"),
        ({"method": 3}, TypeError, "method must be 'advi'"),
        ({"method": "fullrank_advi", "start_sigma": {"mu": 1.0}}, NotImplementedError, "advi"),
    ],
)
def test_bad_arguments_are_refused_by_name(model, kwargs, error, match):
    with model, pytest.raises(error, match=match):
        mb.fit(progressbar=False, **kwargs)


def test_a_finished_fit_is_not_kept_alive(model):
    """The rule's state lives on the Inference, not in a registry: it goes with the fit."""
    import gc
    import weakref

    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", mb.NotConvergedWarning)
        approx = mb.fit(200, random_seed=1, progressbar=False)
    alive = weakref.ref(approx.report.inference)
    del approx
    gc.collect()
    assert alive() is None


def test_the_approximation_serves_sample_node_and_full_data_prediction(model, conjugate):
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", mb.NotConvergedWarning)
        approx = mb.fit(2000, random_seed=1, progressbar=False)
    mean, sd = float(approx.mean.eval()[0]), float(approx.std.eval()[0])
    node = compile([], approx.sample_node(model["mu"], size=4000), random_seed=1)()
    # 4000 draws of N(mean, sd): their mean is within 4 standard errors
    assert node.shape == (4000,) and abs(node.mean() - mean) < 4 * sd / np.sqrt(4000)
    full = mb.full_data_model(model)
    idata = approx.sample(50, random_seed=2)
    ppc = pm.sample_posterior_predictive(idata, model=full, random_seed=3, progressbar=False)
    assert ppc.posterior_predictive["y"].shape == (1, 50, len(conjugate.y))
