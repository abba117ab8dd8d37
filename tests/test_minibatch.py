"""``Minibatch``: synchronised outputs, PyMC observed data, the missing-total_size warning."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymc.model.transform.basic import remove_minibatched_nodes

import minibatch as mb


def test_one_input_gives_a_variable_several_give_a_tuple(rows):
    one = mb.Minibatch(rows, batch_size=2)
    two = mb.Minibatch(rows, rows, batch_size=2)
    assert isinstance(one, mb.Minibatch)
    assert isinstance(two, tuple) and len(two) == 2


def test_outputs_named(rows):
    xb, yb = mb.Minibatch(rows, rows, batch_size=2)
    assert (xb.name, yb.name) == ("minibatch_0", "minibatch_1")


def test_new_batch_on_every_call_of_a_plain_function(rows):
    xb = mb.Minibatch(np.arange(10**6), batch_size=10, random_seed=0)
    f = pytensor.function([], xb)
    assert not np.array_equal(f(), f())


def test_equal_int_seeds_share_one_index_other_seeds_do_not():
    a = mb.Minibatch(np.arange(10**6), batch_size=10, random_seed=3)
    b = mb.Minibatch(np.arange(10**6) * 2, batch_size=10, random_seed=3)
    c = mb.Minibatch(np.arange(10**6), batch_size=10, random_seed=4)
    va, vb, vc = pm.draw([a, b, c], random_seed=0)
    np.testing.assert_array_equal(2 * va, vb)
    assert not np.array_equal(va, vc)


def test_synchronised_when_pymc_reseeds(rows):
    """Separate RNGs with equal seeds diverge once PyMC reseeds (seed 002); one index cannot."""
    xb, yb = mb.Minibatch(rows, rows[:, 2], batch_size=5, random_seed=7)
    for seed in range(5):
        x, y = pm.draw([xb, yb], random_seed=seed)
        np.testing.assert_array_equal(x[:, 2], y)


DTYPES = ["float64", "float32", "int64", "int32", "int16", "uint8"]


@st.composite
def datasets(draw):
    n = draw(st.integers(1, 30))
    count = draw(st.integers(1, 4))
    out = []
    for k in range(count):
        trailing = draw(st.lists(st.integers(1, 3), max_size=2))
        dtype = draw(st.sampled_from(DTYPES))
        rows = np.arange(n).reshape((n,) + (1,) * len(trailing)) + k
        out.append(np.broadcast_to(rows, (n, *trailing)).astype(dtype))
    return out


@settings(max_examples=40, deadline=None)
@given(data=datasets(), batch_size=st.integers(1, 50), seed=st.integers(0, 2**32 - 1))
def test_property_all_outputs_come_from_the_same_rows(data, batch_size, seed):
    outs = mb.Minibatch(*data, batch_size=batch_size, random_seed=seed)
    outs = outs if isinstance(outs, tuple) else (outs,)
    values = pytensor.function([], list(outs), mode="FAST_COMPILE")()
    source_rows = None
    for k, (value, datum) in enumerate(zip(values, data, strict=True)):
        assert value.shape == (batch_size, *datum.shape[1:])
        flat = value.reshape(batch_size, -1).astype(np.int64) - k
        assert (flat == flat[:, :1]).all()  # every entry of a batch row comes from one source row
        if source_rows is None:
            source_rows = flat[:, 0]
        np.testing.assert_array_equal(flat[:, 0], source_rows)
    assert ((source_rows >= 0) & (source_rows < len(data[0]))).all()


def test_observed_in_a_model(rows):
    xb, yb = mb.Minibatch(rows[:, :2], rows[:, 2], batch_size=4)
    with pm.Model() as model:
        w = pm.Normal("w", 0, 1, shape=2)
        pm.Normal("y", xb @ w, 1, observed=yb, total_size=len(rows))
    assert np.isfinite(model.compile_logp()({"w": np.zeros(2)}))


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16"])
def test_integer_minibatch_observed_by_a_discrete_likelihood(dtype):
    counts = np.random.default_rng(0).poisson(4.0, size=200).astype(dtype)
    cb = mb.Minibatch(counts, batch_size=20)
    with pm.Model() as model:
        lam = pm.Exponential("lam", 1.0)
        pm.Poisson("c", lam, observed=cb, total_size=200)
    logp = model.compile_logp()({"lam_log__": np.log(4.0)})
    assert np.isfinite(logp)


def test_no_warning_with_total_size(rows):
    xb = mb.Minibatch(rows, batch_size=4)
    with pm.Model(), warnings.catch_warnings():
        warnings.simplefilter("error")
        pm.Normal("x", 0, 1, observed=xb, total_size=rows.shape)


def test_pymc_can_remove_the_minibatch(rows):
    xb, yb = mb.Minibatch(rows[:, :2], rows[:, 2], batch_size=4)
    with pm.Model() as model:
        w = pm.Normal("w", 0, 1, shape=2)
        pm.Normal("y", xb @ w, 1, observed=yb, total_size=len(rows))
    full = remove_minibatched_nodes(model)
    w = np.array([0.1, 0.0])
    logp = full.compile_logp()({"w": w})
    expected = np.sum(pm.logp(pm.Normal.dist(0, 1), w).eval()) + np.sum(
        pm.logp(pm.Normal.dist(0.1 * rows[:, 0], 1), rows[:, 2]).eval()
    )
    # remove_minibatched_nodes keeps total_size: scale N / N = 1 on the full data.
    np.testing.assert_allclose(logp, expected, rtol=1e-10)


# ---- state across processes, interruptions and threads ----

CHILD = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import cloudpickle, numpy as np, pymc as pm
model, approx = cloudpickle.loads(sys.stdin.buffer.read())
loaded_mean = float(approx.mean.eval()[0])
with model:
    fitted = pm.fit(3000, random_seed=2, progressbar=False,
                    obj_optimizer=pm.adam(learning_rate=0.05), compile_kwargs=dict(mode="NUMBA"))
    step = pm.ADVI(random_seed=0).objective.step_function(compile_kwargs=dict(mode="NUMBA"))
    svgd = pm.fit(50, method="svgd", random_seed=3, progressbar=False,
                  inf_kwargs=dict(n_particles=10), compile_kwargs=dict(mode="NUMBA"))
draws = fitted.sample(4000, random_seed=4).posterior["mu"].values.ravel()
print(json.dumps(dict(
    loaded_mean=loaded_mean, mean=float(draws.mean()), sd=float(draws.std()),
    ops=sorted(type(n.op).__name__ for n in step.maker.fgraph.apply_nodes),
    svgd_finite=bool(np.isfinite(svgd.histogram.get_value()).all()),
)))
"""


def _conjugate_model(c, **kwargs):
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=mb.Minibatch(c.y, batch_size=100, **kwargs))
    return model


def test_a_pickled_model_and_approximation_fit_in_a_fresh_process(conjugate):
    """cloudpickle into a process that never built a Minibatch: the workarounds come along
    (SVGD runs), the Numba index draw is used, and ADVI finds the exact posterior (mean 5 %,
    sd 20 %)."""
    cloudpickle = pytest.importorskip("cloudpickle")
    model = _conjugate_model(conjugate)
    with model:
        approx = pm.fit(100, random_seed=1, progressbar=False)
    blob = cloudpickle.dumps((model, approx))
    run = subprocess.run(
        [sys.executable, "-c", CHILD], input=blob, capture_output=True, check=True, timeout=600
    )
    found = json.loads(run.stdout.decode().strip().splitlines()[-1])
    assert found["loaded_mean"] == pytest.approx(float(approx.mean.eval()[0]))
    assert abs(found["mean"] - conjugate.post_mean) < 0.05 * conjugate.post_mean
    assert abs(found["sd"] - conjugate.post_sd) < 0.20 * conjugate.post_sd
    assert "IndexDraw" in found["ops"]
    assert found["svgd_finite"]


def _fit_with_interrupt(c, interrupt_at=None):
    with _conjugate_model(c, random_seed=5):
        inference = pm.ADVI(random_seed=1)
        fired = []

        def stop(approx, losses, i):
            if i == interrupt_at and not fired:
                fired.append(i)
                raise KeyboardInterrupt

        inference.fit(
            100, callbacks=[stop], progressbar=False, obj_optimizer=pm.adam(learning_rate=0.05)
        )
        # usable: finite parameters and losses (sampling here would reseed the step's RNGs)
        usable = (
            np.isfinite(inference.approx.mean.eval()).all() and np.isfinite(inference.hist).all()
        )
        if interrupt_at is not None:
            inference.refine(100 - interrupt_at, progressbar=False)
        return bool(usable), inference.approx.mean.eval()


def test_an_interrupted_fit_is_usable_and_refine_continues_the_batch_stream(conjugate):
    """Interrupted after 50 steps, then refined by 50: the very fit of 100 uninterrupted steps
    (same batches in the same order, same optimiser state)."""
    usable, interrupted = _fit_with_interrupt(conjugate, interrupt_at=50)
    _, straight = _fit_with_interrupt(conjugate)
    assert usable
    np.testing.assert_array_equal(interrupted, straight)


def test_fits_in_two_threads_do_not_share_index_state(conjugate):
    """Two compiled fits stepped in two threads at once draw the batches each draws alone.

    The step functions are compiled in this thread: compiling in two threads at once is not
    safe upstream.  pytensor's ``config.change_flags`` saves and restores without a lock, and
    PyMC's VI compile switches ``compute_test_value`` between "off" and "ignore" with it
    (one thread then reads "off" where it had read "ignore" and raises), pytensor's
    ``infer_static_shape`` sets ``cxx=""`` (left behind, every later function runs Python
    implementations, 10-60x slower) and its compile ``traceback__limit=0``.  What is ours, the
    index state, is exercised by the steps.
    """

    def step_function(seed):
        with _conjugate_model(conjugate):
            inference = pm.ADVI(random_seed=seed)
            return inference.objective.step_function(score=True, compile_kwargs=dict(mode="CVM"))

    def run(step, out, key):
        try:
            out[key] = np.array([step() for _ in range(300)])
        except BaseException as err:  # re-raised in the test's thread, with its traceback
            errors.append(err)

    errors = []
    alone, together = {}, {}
    for seed in (1, 2):
        run(step_function(seed), alone, seed)
    steps = {seed: step_function(seed) for seed in (1, 2)}
    threads = [threading.Thread(target=run, args=(steps[s], together, s)) for s in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    # the same batches give the same losses; two threads may only change the last bit of a sum
    # (floating-point reduction order), while another index stream changes them by whole units
    for seed in (1, 2):
        np.testing.assert_allclose(together[seed], alone[seed], rtol=1e-12)
    assert np.abs(alone[1] - alone[2]).max() > 1.0
