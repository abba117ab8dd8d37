"""Many optimiser steps per compiled call: the same fit, step for step, whatever ``k``.

``mb.fit(steps_per_call=k)`` runs ``k`` steps in one compiled Scan and cuts calls where the
rule decides, a window is swapped and ``n`` ends, so every figure must equal the fit with one
step per call, to floating-point rounding (the Scan sums the iterates in another order).
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytest
from pymc.variational.callbacks import CheckParametersConvergence
from pytensor.scan.op import Scan
from pytensor.tensor.random.type import RandomType

import minibatch as mb
from minibatch._compat import C_MODE, SCAN_COPIES_GENERATORS
from minibatch._fitting._fit import default_steps_per_call
from minibatch._fitting._rollback import Guard
from minibatch._fitting._scan import Steps

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using experimental inference Operator:UserWarning"
)

RTOL = 1e-9  # the Scan's sums of iterates, added in another order: rounding, not steps
SCHEMES = ["with_replacement", "without_replacement", "epoch"]


def _model(conjugate, **options):
    with pm.Model() as model:
        mu = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        batch = mb.Minibatch(conjugate.y, batch_size=10, **options)
        pm.Normal("y", mu, conjugate.sigma, observed=batch)
    return model


def _fit(model, k, mode=C_MODE, **kwargs):
    kwargs.setdefault("random_seed", 5)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore", mb.NotConvergedWarning)
        kwargs.setdefault("progressbar", False)
        return mb.fit(steps_per_call=k, compile_kwargs={"mode": mode}, **kwargs)


def _assert_same_fit(a, b):
    assert a.report.steps == b.report.steps and a.report.reason == b.report.reason
    assert a.report.step_sizes == b.report.step_sizes
    assert len(a.hist) == len(b.hist) == a.report.steps
    np.testing.assert_allclose(a.hist, b.hist, rtol=RTOL)
    for pa, pb in zip(a.params, b.params, strict=True):
        np.testing.assert_allclose(pa.get_value(), pb.get_value(), rtol=RTOL)


@pytest.mark.parametrize("sampling", SCHEMES)
@pytest.mark.parametrize("mode", [C_MODE, "NUMBA", "JAX"])
def test_k_steps_per_call_equal_k_single_steps(conjugate, mode, sampling):
    """60 steps, rule off: 4 steps per call (cut at the rule's batch ends, 25 and 50) against
    one step per call, on every backend and sampling scheme."""
    model = _model(conjugate, sampling=sampling)
    one = _fit(model, 1, mode, n=60, stop=False)
    four = _fit(model, 4, mode, n=60, stop=False)
    _assert_same_fit(one, four)
    assert one.report.reason == "fixed"


@pytest.mark.parametrize("mode", [C_MODE, "NUMBA", "JAX"])
@pytest.mark.parametrize(("method", "options"), [("fullrank_advi", {}), ("advi", {"obj_n_mc": 2})])
def test_full_rank_and_several_draws_per_step(mode, method, options):
    """FullRankADVI and obj_n_mc > 1 (a Scan of draws inside the Scan of steps)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    y = x @ np.array([1.0, -1.0]) + rng.normal(size=200)
    xb, yb = mb.Minibatch(x, y, batch_size=20)
    with pm.Model() as model:
        w = pm.Normal("w", 0.0, 10.0, shape=2)
        pm.Normal("y", xb @ w, 1.0, observed=yb)
    one = _fit(model, 1, mode, n=40, stop=False, method=method, **options)
    many = _fit(model, 8, mode, n=40, stop=False, method=method, **options)
    _assert_same_fit(one, many)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "ks"), [(C_MODE, [1, 7]), ("JAX", [1, 7, 25])])
def test_the_fit_does_not_depend_on_k(conjugate, mode, ks):
    """With the rule on: the same steps, halvings, stop and average for every k (7 leaves
    remainders that run one step at a time; on JAX the two compiled functions hold separate
    copies of the generators, kept in step)."""
    model = _model(conjugate)
    fits = [_fit(model, k, mode) for k in ks]
    assert fits[0].report.converged
    for other in fits[1:]:
        _assert_same_fit(fits[0], other)


def test_callbacks_run_at_call_boundaries(conjugate):
    seen = []
    _fit(_model(conjugate), 4, n=30, stop=False, callbacks=[lambda a, losses, i: seen.append(i)])
    # calls of 4 steps, cut at the rule's first batch end (25) and at n
    assert seen == [4, 8, 12, 16, 20, 24, 25, 29, 30]


def test_default_calls_are_long_and_cut_where_the_fit_needs(conjugate):
    """The defaults: calls of up to 400 steps on C (pytensor 3) and Numba (any count), of 1600
    or a shorter static length on JAX, and one step per call on pytensor 2.38's C backend."""
    c_default = (1, ()) if SCAN_COPIES_GENERATORS else (400, ())
    assert default_steps_per_call(C_MODE, 25) == c_default
    assert default_steps_per_call("NUMBA", 25) == (400, ())
    assert default_steps_per_call("JAX", 25) == (1600, (25, 100, 400))
    assert default_steps_per_call("JAX", 25, [10]) == (320, (5, 20, 80))  # every=10
    seen = []
    _fit(
        _model(conjugate),
        None,
        "NUMBA",
        n=60,
        stop=False,
        callbacks=[lambda a, losses, i: seen.append(i)],
    )
    assert seen == [25, 50, 60]  # one call per rule batch, then the rest in one call


def test_jax_calls_have_static_lengths_and_every_is_met(conjugate, monkeypatch):
    """On JAX the calls are of the lengths compiled (here 5, the divisor of 25 and of every=10,
    20, 80 and 320), a callback's every cuts them, the calls of one stretch between two cuts
    are started back to back (the callbacks run at the stretch's end), and the remainder runs a
    step at a time."""
    plans = []
    plan = Steps.plan

    def planned(self, room):
        plans.append(plan(self, room))
        return plans[-1]

    monkeypatch.setattr(Steps, "plan", planned)
    seen = []
    check = CheckParametersConvergence(every=10, tolerance=1e-12)
    _fit(
        _model(conjugate),
        None,
        "JAX",
        n=52,
        stop=False,
        callbacks=[check, lambda a, losses, i: seen.append(i)],
    )
    assert seen == [10, 20, 25, 30, 40, 50, 51, 52]  # every's multiples, the rule's batch, n
    assert plans == [[5, 5], [5, 5], [5], [5], [5, 5], [5, 5], [], []]


def test_a_plan_is_one_call_where_calls_wait_for_their_steps(conjugate):
    """C and Numba run a call's steps before it returns: one call a plan (of any count); JAX
    plans the longest compiled lengths that fit, back to back."""
    numba = _fit(_model(conjugate), None, "NUMBA", n=1, stop=False)
    jax = _fit(_model(conjugate), None, "JAX", n=1, stop=False)
    assert numba.report.inference._minibatch_fit_run.steps.plan(925) == [400]
    assert jax.report.inference._minibatch_fit_run.steps.plan(925) == [400, 400, 100, 25]
    assert jax.report.inference._minibatch_fit_run.steps.plan(3250) == [1600, 1600, 25, 25]
    assert jax.report.inference._minibatch_fit_run.steps.plan(24) == []


def test_an_interrupt_between_started_calls_keeps_the_calls_done(conjugate, monkeypatch):
    """Ctrl-C while JAX's second call of a stretch is awaited: the fit ends after the first
    (its history, average and optimiser state those of a fit of that many steps), not at the
    values the started calls left."""
    settle = Guard.settle
    settled = []

    def interrupted(self, *args):
        settled.append(1)
        if len(settled) == 8:
            raise KeyboardInterrupt
        return settle(self, *args)

    model = _model(conjugate)
    with monkeypatch.context() as patch:
        patch.setattr(Guard, "settle", interrupted)
        cut = _fit(model, 4, "JAX")
    assert cut.report.reason == "interrupted" and cut.report.steps == len(cut.hist) == 29
    whole = _fit(model, 4, "JAX", n=29, stop=False)
    np.testing.assert_allclose(cut.hist, whole.hist, rtol=RTOL)
    np.testing.assert_allclose(cut.mean.eval(), whole.mean.eval(), rtol=RTOL)
    np.testing.assert_allclose(cut.std.eval(), whole.std.eval(), rtol=RTOL)
    guards = [fit.report.inference._minibatch_fit_run.guard for fit in (cut, whole)]
    for a, b in zip(*(guard.watched for guard in guards), strict=True):  # Adam's moments too
        np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=RTOL)


def test_numba_draws_in_the_scan_work_in_place(conjugate):
    """Every draw in the compiled body of the Scan works on its generator in place (pytensor 3
    does it; on pytensor 2.38, pytensor#2002, ``_upstream.scan_rngs`` does): no generator is
    copied per step."""
    approx = _fit(_model(conjugate), 4, "NUMBA", n=8, stop=False)
    (node,) = _scan_nodes(approx.report.inference._minibatch_fit_run.steps.many)
    body = node.op.fgraph
    generators = [v for v in body.inputs if isinstance(v.type, RandomType)]
    assert len(generators) == 2  # the index and q's draw
    for rng in generators:
        ((reader, position),) = body.clients[rng]
        assert [position] in reader.op.destroy_map.values(), reader


def test_interrupt_stops_at_a_call_boundary_with_the_fit_so_far(conjugate):
    def interrupt(approx, losses, i):
        if i >= 12:
            raise KeyboardInterrupt

    with pytest.warns(mb.NotConvergedWarning, match="interrupted"), _model(conjugate):
        approx = mb.fit(
            progressbar=False,
            steps_per_call=4,
            compile_kwargs={"mode": C_MODE},
            random_seed=1,
            callbacks=[interrupt],
        )
    assert approx.report.reason == "interrupted"
    assert approx.report.steps == len(approx.hist) == 12


@pytest.mark.parametrize("mode", [C_MODE, "JAX"])
def test_a_non_finite_call_is_undone_and_rerun(mode):
    """A call with a NaN is undone and its steps rerun one at a time; on JAX the calls started
    after it in its stretch are dropped and rerun."""
    import pytensor.tensor as pt

    with pm.Model():
        x = pm.Normal("x", 0.0, 1.0)
        pm.Potential("cliff", pt.switch(x > 2.0, np.nan, 0.0))
        approx = mb.fit(
            2000,
            random_seed=3,
            stop=False,
            progressbar=False,
            steps_per_call=8,
            compile_kwargs={"mode": mode},
        )
    assert approx.report.rollbacks > 0 and len(approx.hist) == 2000
    assert np.isfinite(approx.hist).all() and np.isfinite(approx.mean.eval()).all()


@pytest.mark.parametrize("mode", [C_MODE, "JAX"])
def test_streamed_windows_are_swapped_at_the_same_steps(conjugate, tmp_path, mode):
    """A memmap streamed through windows of 100 rows, swapped every 30 steps: calls of 8 are
    cut at every swap (on JAX started back to back within a swap's stretch), and the fit
    equals one step per call."""
    path = tmp_path / "y.npy"
    np.save(path, conjugate.y)
    with pm.Model() as model:
        mu = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        batch = mb.Minibatch(
            np.load(path, mmap_mode="r"), batch_size=10, window=100, steps_per_window=30
        )
        pm.Normal("y", mu, conjugate.sigma, observed=batch)
    one = _fit(model, 1, mode, n=200, stop=False)
    eight = _fit(model, 8, mode, n=200, stop=False)
    _assert_same_fit(one, eight)


def _scan_nodes(function):
    return [node for node in function.maker.fgraph.apply_nodes if isinstance(node.op, Scan)]


def test_every_state_is_carried_untraced_on_jax(conjugate):
    """The parameters, optimiser moments, generators and the epoch state are carried by the
    Scan as untraced states (lax.scan carries: at most one copy per call, none per step); only
    the losses are traced."""
    approx = _fit(_model(conjugate, sampling="epoch"), 4, "JAX", n=8, stop=False)
    run = approx.report.inference._minibatch_fit_run
    (node,) = _scan_nodes(run.steps.many)
    info = node.op.info
    assert info.n_sit_sot == info.n_mit_sot == info.n_mit_mot == 0
    assert info.n_nit_sot == 1  # the losses
    carried = node.op.outer_untraced_sit_sot(node.inputs)
    states = [v for v in carried if getattr(v, "name", None) == "minibatch_epoch_state"]
    assert len(states) == 1 and len(carried) >= 6  # mu, rho, 2 x 2 moments, rngs, state, sums


def test_a_step_size_set_during_a_jax_run_stays(conjugate):
    """The data held on the device for a JAX run are put back after it, but a value set during
    the run (the rule halving a step size) is not undone."""
    approx = _fit(_model(conjugate), 4, "JAX", n=8, stop=False)
    run = approx.report.inference._minibatch_fit_run
    rate = run.averager.learning_rate["mean"]
    with run.steps.resident():
        rate.set_value(np.asarray(0.025))
    assert rate.get_value() == 0.025
    one = run.steps.one
    stored = [
        container.storage[0]
        for given, container in zip(one.maker.inputs, one.input_storage, strict=True)
        if given.update is None and isinstance(given.variable, pytensor.compile.SharedVariable)
    ]
    assert stored and all(isinstance(value, np.ndarray) for value in stored)


def test_steps_per_call_is_checked_by_name(conjugate):
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="steps_per_call must be a positive int"):
            _fit(_model(conjugate), bad, n=10, stop=False)


def test_pytensor_flags_and_pm_fit_untouched(conjugate):
    model = _model(conjugate)
    before = pytensor.config.mode
    _fit(model, 4, n=8, stop=False)
    assert pytensor.config.mode == before
    with model:
        approx = pm.fit(5, progressbar=False, random_seed=1)
    assert len(approx.hist) == 5


def test_more_replacements_without_total_size_warn_as_in_pm_fit():
    y = np.random.default_rng(0).normal(size=200)
    with pm.Model():
        yd = pm.Data("yd", y)
        mu = pm.Normal("mu")
        pm.Normal("obs", mu, 1.0, observed=yd)
        with pytest.warns(mb.TotalSizeWarning, match="'obs'"):
            mb.fit(
                4,
                stop=False,
                progressbar=False,
                steps_per_call=2,
                compile_kwargs={"mode": C_MODE},
                more_replacements={yd: mb.Minibatch(y, batch_size=20)},
            )


def test_jax_leaves_numpy_parameters_and_data(conjugate):
    """The stored data were held on the device during the fit: NumPy again after it, as are
    the parameters."""

    def read(steps):
        return [
            container.storage[0]
            for given, container in zip(
                steps.many.maker.inputs, steps.many.input_storage, strict=True
            )
            if given.update is None and isinstance(getattr(given.variable.type, "ndim", None), int)
        ]

    model = _model(conjugate)
    with model:
        inference = pm.ADVI(random_seed=5)
    seen = []

    def look(approx, losses, i):
        seen.extend(type(v).__module__ for v in read(inference._minibatch_fit_run.steps))

    with model:
        approx = mb.fit(
            8,
            method=inference,
            stop=False,
            progressbar=False,
            steps_per_call=4,
            compile_kwargs={"mode": "JAX"},
            callbacks=[look],
        )
    assert seen and all(module.startswith("jax") for module in seen)  # on the device
    after = read(inference._minibatch_fit_run.steps)
    assert after and all(isinstance(value, np.ndarray) for value in after)
    assert all(isinstance(p.get_value(borrow=True), np.ndarray) for p in approx.params)


@pytest.mark.parametrize("mode", ["NUMBA", "JAX"])
def test_the_progress_bar_advances_after_each_call(conjugate, monkeypatch, mode):
    """Shown, the bar advances after each call (on JAX within a stretch too) by its steps, to
    ``n`` in all."""
    from pymc.progress_bar import CustomProgress

    advances = []
    update = CustomProgress.update

    def counted(self, task, advance=None, **fields):
        advances.append(advance)
        return update(self, task, advance=advance, **fields)

    monkeypatch.setattr(CustomProgress, "update", counted)
    _fit(_model(conjugate), 4, mode, n=60, stop=False, progressbar=True)
    assert sum(advances) == 60
    # calls of 4 up to the rule's batch ends (25, 50), a step left over; the 10 to n: Numba
    # runs any count (2), JAX static lengths (4), then single steps
    expected = [4] * 6 + [1] + [4] * 6 + [1] + ([4, 4, 2] if mode == "NUMBA" else [4, 4, 1, 1])
    assert advances == expected
