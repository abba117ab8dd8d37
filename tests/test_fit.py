"""``pm.fit`` on minibatch models: ADVI and FullRankADVI on the C backend."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
from pymc.data import MinibatchIndexRV
from pytensor.scan.op import Scan

import minibatch as mb
from minibatch._numba_index import IndexDraw

METHODS = ["advi", "fullrank_advi"]


def _conjugate_model(c, batch_size=100):
    yb = mb.Minibatch(c.y, batch_size=batch_size)
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=yb, total_size=len(c.y))
    return model


def _posterior_moments(approx):
    (mean,) = approx.mean.eval()
    sd = approx.std.eval()[0] if hasattr(approx, "std") else np.sqrt(approx.cov.eval()[0, 0])
    return float(mean), float(sd)


@pytest.mark.parametrize("method", METHODS)
def test_conjugate_normal_posterior(conjugate, method):
    """n = 1000, batch 100, total_size = n: mean within 5 %, sd within 20 % of the exact values."""
    with _conjugate_model(conjugate):
        approx = pm.fit(
            20000,
            method=method,
            random_seed=42,
            progressbar=False,
            obj_optimizer=pm.adam(learning_rate=0.01),
        )
    mean, sd = _posterior_moments(approx)
    assert abs(mean - conjugate.post_mean) < 0.05 * abs(conjugate.post_mean)
    assert abs(sd - conjugate.post_sd) < 0.20 * conjugate.post_sd


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_history_other_seed_differs(conjugate, method):
    def hist(seed):
        with _conjugate_model(conjugate):
            return pm.fit(200, method=method, random_seed=seed, progressbar=False).hist

    first, again, other = hist(5), hist(5), hist(6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("method", METHODS)
def test_obj_n_mc_draws_one_batch_per_step(conjugate, method):
    """The Monte Carlo samples run in a scan; the index must be drawn once, outside it."""
    with _conjugate_model(conjugate):
        inference = pm.ADVI() if method == "advi" else pm.FullRankADVI()
        step = inference.objective.step_function(obj_n_mc=4, score=True)
        inference.fit(300, obj_n_mc=4, progressbar=False)
    nodes = step.maker.fgraph.apply_nodes
    scans = [n for n in nodes if isinstance(n.op, Scan)]
    assert scans, "obj_n_mc > 1 should go through a scan"
    for scan in scans:
        inner = scan.op.fgraph.apply_nodes
        assert not [n for n in inner if isinstance(n.op, MinibatchIndexRV | IndexDraw)]
    assert len([n for n in nodes if isinstance(n.op, MinibatchIndexRV | IndexDraw)]) == 1
    assert np.isfinite(inference.hist).all()


def test_fit_with_the_progress_bar(conjugate):
    with _conjugate_model(conjugate):
        approx = pm.fit(50, random_seed=0)
    assert len(approx.hist) == 50


@pytest.mark.parametrize("length", [7, 1000])
def test_sample_node_replaces_the_batch_with_data_of_any_length(conjugate, length):
    yb = mb.Minibatch(conjugate.y, batch_size=100)
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, conjugate.sigma, observed=yb, total_size=len(conjugate.y))
        approx = pm.fit(100, random_seed=0, progressbar=False)
    test = np.arange(float(length))
    node = yb.sum() + 0 * mu
    out = approx.sample_node(node, more_replacements={yb: test}, size=5).eval()
    np.testing.assert_allclose(out, np.full(5, test.sum()))
