"""``Minibatch``: synchronised outputs, PyMC observed data, the missing-total_size warning."""

from __future__ import annotations

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
