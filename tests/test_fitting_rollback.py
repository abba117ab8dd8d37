"""A non-finite step is undone and retried, not fatal and not silent."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

import minibatch as mb
from minibatch._fitting._rollback import MAX_RETRIES, Guard, nonfinite_variables
from minibatch._fitting._scales import layout_of


def _counted_step(fail_first: int):
    """x += rate * g, with g NaN on the first ``fail_first`` calls (an int counter, which is
    not rolled back, like a random generator), and an Adam-like moment m += 1 each call."""
    x = pytensor.shared(np.array([1.0, 2.0]), name="x")
    m = pytensor.shared(np.array(0.0), name="m")
    calls = pytensor.shared(np.array(0, dtype="int64"), name="calls")
    rate = pytensor.shared(np.array(0.25), name="rate")
    g = pt.switch(pt.lt(calls, fail_first), np.nan, 1.0)
    step = pytensor.function(
        [], x.sum(), updates={x: x + rate * g, m: m + 1.0, calls: calls + 1}, mode="CVM"
    )
    return step, x, m, calls, rate


def test_a_non_finite_step_is_undone_and_retried_with_a_smaller_step():
    step, x, m, calls, rate = _counted_step(fail_first=2)
    guard = Guard(step, lambda every=False: [], {"mean": rate})
    assert {v.name for v in guard.watched} == {"x", "m"}  # float values the step updates
    loss = guard()
    assert guard.rollbacks == 2 and int(calls.get_value()) == 3
    # undone twice (x and m as before), then one step at 0.25 * 0.5**2
    np.testing.assert_array_equal(x.get_value(), [1.0 + 0.0625, 2.0 + 0.0625])
    assert float(m.get_value()) == 1.0
    assert loss == 3.0 and float(rate.get_value()) == 0.25  # the step size is put back
    guard()
    np.testing.assert_array_equal(x.get_value(), [1.0 + 0.3125, 2.0 + 0.3125])


def test_a_run_of_non_finite_steps_raises_with_the_last_finite_values_kept():
    step, x, m, _, _ = _counted_step(fail_first=10**6)
    guard = Guard(step, lambda every=False: ["x"] if every else [], None)
    with pytest.raises(FloatingPointError, match=f"{MAX_RETRIES} attempts in a row") as err:
        guard()
    assert "finite parameters of ['x']" in str(err.value)
    assert guard.rollbacks == MAX_RETRIES
    np.testing.assert_array_equal(x.get_value(), [1.0, 2.0])
    assert float(m.get_value()) == 0.0


def _cliff_model():
    """x ~ N(0, 1) with a density that is NaN beyond x = 2: draws from q land there now and
    then, and each such step has a NaN loss."""
    with pm.Model() as model:
        x = pm.Normal("x", 0.0, 1.0)
        pm.Potential("cliff", pt.switch(x > 2.0, np.nan, 0.0))
    return model


def test_mb_fit_survives_what_stops_pm_fit():
    model = _cliff_model()
    with model, pytest.raises(FloatingPointError, match="NaN occurred"):
        pm.fit(2000, random_seed=3, progressbar=False)
    with model:
        approx = mb.fit(2000, random_seed=3, stop=False, progressbar=False)
    report = approx.report
    assert report.rollbacks > 0 and f"{report.rollbacks} non-finite steps undone" in (
        report.summary()
    )
    assert np.isfinite(approx.hist).all() and len(approx.hist) == 2000
    assert np.isfinite(approx.mean.eval()).all() and np.isfinite(approx.std.eval()).all()


def test_mb_fit_raises_when_every_attempt_is_non_finite():
    with pm.Model():
        x = pm.Normal("x", 0.0, 1.0, shape=2)
        pm.Potential("nowhere", pt.switch(x[0] > -1e9, np.nan, 0.0))
        with pytest.raises(FloatingPointError, match=r"finite parameters of \['x'\]"):
            mb.fit(100, random_seed=3, progressbar=False)


@pytest.mark.parametrize("inference", [pm.ADVI, pm.FullRankADVI])
def test_the_variables_with_non_finite_parameters_are_named(inference):
    with pm.Model():
        pm.Normal("a", shape=2)
        pm.HalfNormal("b")
        pm.Normal("c", shape=3)
        approx = inference(random_seed=0).approx
    layout = layout_of(approx)
    assert nonfinite_variables(approx, layout) == []
    assert nonfinite_variables(approx, layout, every=True) == ["a", "b_log__", "c"]
    flat = layout.read()
    # b's sd (mean-field), or L[2, 0], the first entry of b's row of L (row-major tril)
    flat[layout.dim + (2 if layout.family == "meanfield" else 3)] = np.nan
    layout.write(flat)
    assert nonfinite_variables(approx, layout) == ["b_log__"]
    flat[4] = np.inf  # c's second mean
    layout.write(flat)
    assert nonfinite_variables(approx, layout) == ["b_log__", "c"]
