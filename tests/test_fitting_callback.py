"""The stopping rule as a pm.fit callback, on the conjugate normal model (exact posterior).

y_i ~ N(mu, 1), N = 1000, mu ~ N(0, 10): the posterior is N(m, 1 / prec), and mean-field is
exact for one parameter, so q's sd at the optimum is the posterior sd.
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest

import minibatch as mb
from minibatch._fitting._callback import Converged

TOLERANCE = 0.1
N_STEPS = 100_000
# the C backend: pytensor 3 defaults to Numba, whose compile takes a minute for SVGD
CVM = {"compile_kwargs": {"mode": "CVM"}}


@pytest.fixture(scope="module")
def data():
    y = np.random.default_rng(7).normal(3.0, 1.0, size=1000)
    prec = 1 / 10.0**2 + len(y)
    return y, y.sum() / prec, prec**-0.5  # data, posterior mean, posterior sd


@pytest.fixture(scope="module")
def model(data):
    with pm.Model() as m:
        mu = pm.Normal("mu", 0.0, 10.0)
        pm.Normal("y", mu, 1.0, observed=mb.Minibatch(data[0], batch_size=100))
    return m


@pytest.fixture(scope="module")
def stopped(model):
    cb = Converged(tolerance=TOLERANCE)
    with model:
        approx = pm.fit(
            N_STEPS,
            callbacks=[cb],
            obj_optimizer=pm.adam(learning_rate=3e-2),
            random_seed=2,
            progressbar=False,
            **CVM,
        )
    return cb, approx


def test_stops_early_with_the_average_installed(stopped):
    cb, approx = stopped
    assert cb.converged and len(approx.hist) < N_STEPS
    report = cb.report
    assert report.converged and report.reason == "converged"
    # PyMC drops the loss of the step that raised StopIteration
    assert report.steps == len(approx.hist) + 1
    assert report.averaged >= cb.rule.min_average and report.step_sizes == []
    assert report.mcse["mean"] <= report.threshold and report.inference is None
    average = cb.averager.average()
    assert approx.mean.eval()[0] == average[0]  # exactly the average, not the last iterate
    assert approx.params[1].get_value()[0] == average[1]
    assert average[0] != cb.averager.last[0]


def test_the_installed_average_meets_the_rules_guarantee(stopped, data):
    """The largest error is at most 2.5 * tolerance, in q's sds (here the posterior sd)."""
    _, approx = stopped
    post_mean, post_sd = data[1:]
    mean, sd = float(approx.mean.eval()[0]), float(approx.std.eval()[0])
    assert abs(np.log(sd / post_sd)) <= 2.5 * TOLERANCE
    assert abs(mean - post_mean) <= 2.5 * TOLERANCE * min(sd, post_sd)


def test_n_running_out_leaves_the_last_iterate_until_install(model):
    cb = Converged(tolerance=TOLERANCE)
    with model:
        approx = pm.fit(
            600,
            callbacks=[cb],
            obj_optimizer=pm.adam(learning_rate=3e-2),
            random_seed=1,
            progressbar=False,
            **CVM,
        )
    assert not cb.converged and len(approx.hist) == 600
    last = cb.averager.last
    np.testing.assert_array_equal(approx.mean.eval(), last[:1])  # pm.fit's last iterate
    with pytest.warns(mb.NotConvergedWarning, match="holds the average so far"):
        report = cb.install(approx)
    assert report is not None and not report.converged and report.reason == "cap"
    assert report.steps == 600 and report.averaged > 0
    average = cb.averager.average()
    assert approx.mean.eval()[0] == average[0] and average[0] != last[0]


def test_svgd_is_refused_by_name(model):
    cb = Converged()
    with model, pytest.raises(NotImplementedError, match=r"Empirical approximation \(SVGD"):
        pm.fit(2, method="svgd", callbacks=[cb], random_seed=1, progressbar=False, **CVM)
    assert cb.averager is None


def test_one_callback_per_approximation(model):
    with model:
        first, second = pm.ADVI(random_seed=1).approx, pm.ADVI(random_seed=2).approx
    cb = Converged()
    with pytest.raises(ValueError, match="has not run yet"):
        cb.install(first)
    cb(first, np.zeros(1), 1)
    with pytest.raises(ValueError, match="another approximation"):
        cb(second, np.zeros(2), 2)
    with pytest.raises(ValueError, match="the approximation that this callback averaged"):
        cb.install(second)
    assert cb.averager is not None and cb.averager.steps == 1


def test_report_before_the_first_step_and_bad_tolerance():
    report = Converged().report
    assert not report.converged and report.steps == 0
    for bad in (0.0, 1.0, True, "0.1"):
        with pytest.raises(ValueError, match="tolerance must be a number"):
            Converged(tolerance=bad)


def test_no_warning_when_installing_a_converged_fit(stopped):
    cb, approx = stopped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = cb.install(approx)
    assert report.converged and approx.mean.eval()[0] == cb.averager.average()[0]
