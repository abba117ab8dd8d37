"""The legacy pm.Minibatch API (PyMC 3/4 docstring): every parameter, attribute and idiom."""

from __future__ import annotations

import copy

import numpy as np
import pymc as pm
import pytensor
import pytest
from pymc.pytensorf import compile as pm_compile
from pytensor.graph.replace import clone_replace
from scipy import stats

import minibatch as mb

MORE = np.random.default_rng(0).random((10, 20, 30, 40, 50))


def test_minibatch_is_a_tensor_variable_class():
    assert issubclass(mb.Minibatch, pytensor.tensor.TensorVariable)
    x = mb.Minibatch(np.ones((5, 2)), 2)
    assert isinstance(x, mb.Minibatch)
    assert isinstance(x.clone(), mb.Minibatch)
    assert isinstance(copy.copy(x), mb.Minibatch)


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        (10 // 5, (2, 20, 30, 40, 50)),
        ([2, Ellipsis, 10], (2, 20, 30, 40, 10)),
        ([2, None, 20], (2, 20, 20, 40, 50)),
        ([2, None, 20, Ellipsis, 10], (2, 20, 20, 40, 10)),
        ([(3, 1), (4, 2)], (3, 4, 30, 40, 50)),
        ([None, np.int64(5)], (10, 5, 30, 40, 50)),
    ],
    ids=str,
)
def test_batch_specs_give_the_docstring_shapes(spec, shape):
    assert mb.Minibatch(MORE, spec).eval().shape == shape
    assert mb.Minibatch(MORE, batch_size=spec).eval().shape == shape


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ([2, Ellipsis, 3, Ellipsis], ValueError, "more than one Ellipsis"),
        ([1, 1, 1, 1, 1, 1], ValueError, "more axes than the data has"),
        ([None, None], ValueError, "subsamples no axis"),
        ([0, None], ValueError, "positive int; got 0"),
        ([(2, 3, 4)], TypeError, r"batch_size entry \(2, 3, 4\)"),
    ],
)
def test_bad_specs_are_refused(spec, error, match):
    with pytest.raises(error, match=match):
        mb.Minibatch(MORE, batch_size=spec)


def test_ambiguous_calls_are_refused():
    with pytest.raises(TypeError, match="batch size given twice"):
        mb.Minibatch(np.ones(10), 3, batch_size=4)
    with pytest.raises(TypeError, match="reads as a legacy batch size, but more datasets"):
        mb.Minibatch(np.ones(10), [3], np.ones(10))


def test_several_inputs_share_every_random_axis():
    x = np.arange(6 * 5).reshape(6, 5).astype(float)
    xb, yb = mb.Minibatch(x, x + 1000, batch_size=[3, 2])
    xv, yv = pm.draw([xb, yb], random_seed=1)
    np.testing.assert_array_equal(yv, xv + 1000)
    # every entry of the batch comes from the drawn rows and columns: x[r, c] = 5 r + c
    rows, cols = xv // 5, xv % 5
    assert (rows == rows[:, :1]).all() and (cols == cols[:1, :]).all()


@pytest.mark.parametrize(
    ("spec", "total_size", "scale"),
    [
        ([2, Ellipsis, 10], (10, Ellipsis, 50), 10 / 2 * 50 / 10),
        ([2, None, 20], (10, None, 30), 10 / 2 * 30 / 20),
        ([2, None, 20, Ellipsis, 10], (10, None, 30, Ellipsis, 50), 5 * 1.5 * 5),
    ],
    ids=str,
)
def test_total_size_in_the_same_structure_scales_exactly(spec, total_size, scale):
    small = MORE[:, :3, :, :2, :]
    xb = mb.Minibatch(small, spec)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 1)
        pm.Normal("x", mu, 1, observed=xb, total_size=total_size)
    f = pm_compile(model.value_vars, [model.logp(vars=model.observed_RVs), xb], random_seed=2)
    logp, batch = f(0.0)
    np.testing.assert_allclose(logp, scale * stats.norm.logpdf(batch).sum(), rtol=1e-7)


def test_dtype_name_and_broadcastable():
    x = mb.Minibatch(np.random.rand(100, 100), batch_size=[(10, 42), (10, 42)], dtype="int32")
    assert str(x.dtype) == "int32"
    named = mb.Minibatch(np.ones((5, 1)), 2, name="batch")
    assert named.name == "batch"
    assert mb.Minibatch(np.ones((5, 1)), 2).broadcastable == (False, True)
    assert mb.Minibatch(np.ones((5, 1)), 2, broadcastable=(False, False)).broadcastable == (
        False,
        False,
    )
    with pytest.raises(ValueError, match="only axes of length 1 that are not subsampled"):
        mb.Minibatch(np.ones((5, 3)), 2, broadcastable=(False, True))
    with pytest.raises(ValueError, match="one entry per axis"):
        mb.Minibatch(np.ones((5, 3)), 2, broadcastable=(False,))


def test_shared_minibatch_and_replacing_by_the_stored_data():
    data = np.random.rand(30, 4)
    x = mb.Minibatch(data, 5)
    np.testing.assert_allclose(x.shared.get_value(), data)
    assert x.minibatch is x
    node = x**2
    full = clone_replace(node, {x.minibatch: x.shared}).eval()
    np.testing.assert_allclose(full, data**2)


def test_set_value_changes_the_source_and_refuses_misfits():
    x = mb.Minibatch(np.zeros((30, 4)), 5)
    x.set_value(np.ones((7, 4)))
    assert pm.draw(x, random_seed=0).tolist() == [[1.0] * 4] * 5
    with pytest.raises(ValueError, match=r"shape \(7, 3\) does not fit.*old data is kept"):
        x.set_value(np.ones((7, 3)))
    ints = mb.Minibatch(np.arange(10), 3)
    with pytest.raises(TypeError, match="cannot store float64 data in a minibatch of dtype int64"):
        ints.set_value(np.ones(4))
    np.testing.assert_array_equal(x.shared.get_value(), np.ones((7, 4)))
    np.testing.assert_array_equal(ints.shared.get_value(), np.arange(10))


def test_another_length_is_refused_while_another_minibatch_shares_the_index():
    a = mb.Minibatch(np.zeros((31, 2)), 5, random_seed=3, name="a")
    b = mb.Minibatch(np.ones((31, 2)), 5, random_seed=3, name="b")
    b.set_value(np.full((31, 2), 2.0))  # same length: fine
    for batch in (a, b):
        with pytest.raises(ValueError, match=r"shares its index .* old data is kept"):
            batch.set_value(np.zeros((40, 2)))
    xb, _yb = mb.Minibatch(np.zeros((9, 2)), np.zeros(9), batch_size=3, name="xy")
    with pytest.raises(ValueError, match=r"shares its index with \['xy_1'\]"):
        xb.set_value(np.zeros((12, 2)))
    assert a.shared.get_value().shape == (31, 2) and xb.shared.get_value().shape == (9, 2)


def test_a_lone_minibatch_takes_any_length_with_the_default_seed():
    x = mb.Minibatch(np.zeros((33, 2)), 5)
    x.set_value(np.ones((80, 2)))
    assert set(pm.draw(x, random_seed=1).ravel()) == {1.0}


def test_update_shared_and_in_memory_size():
    calls = iter([np.full((20, 3), 1.0), np.full((20, 3), 2.0)])
    x = mb.Minibatch(
        np.zeros((20, 3)),
        4,
        update_shared_f=lambda: next(calls),
        in_memory_size=8,
    )
    assert x.in_memory_size == 8
    assert x.shared.get_value().shape == (8, 3)
    x.update_shared()
    np.testing.assert_array_equal(x.shared.get_value(), np.full((8, 3), 1.0))
    x.update_shared()
    assert set(pm.draw(x, random_seed=0).ravel()) == {2.0}
    with pytest.raises(ValueError, match="update_shared needs update_shared_f"):
        mb.Minibatch(np.zeros((20, 3)), 4).update_shared()


def test_in_memory_size_per_axis():
    x = mb.Minibatch(np.zeros((20, 6, 5)), 4, in_memory_size=[10, Ellipsis, slice(1, 3)])
    assert x.shared.get_value().shape == (10, 6, 2)


def test_a_plain_function_draws_a_new_batch_per_call():
    x = mb.Minibatch(np.arange(10**6), 10)
    f = pytensor.function([], x)
    assert not np.array_equal(f(), f())


def test_equal_explicit_seeds_stay_aligned_after_pm_fit():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    y = x @ np.array([1.0, -1.0])
    xb = mb.Minibatch(x, batch_size=20, random_seed=5)
    yb = mb.Minibatch(y, batch_size=20, random_seed=5)
    with pm.Model():
        w = pm.Normal("w", 0, 1, shape=2)
        pm.Normal("y", xb @ w, 0.1, observed=yb, total_size=200)
        approx = pm.fit(300, random_seed=11, progressbar=False)
    assert np.isfinite(approx.hist).all()
    for seed in (1, 2):
        xv, yv = pm.draw([xb, yb], random_seed=seed)
        np.testing.assert_allclose(yv, xv @ np.array([1.0, -1.0]))


def test_align_minibatches_checks_its_arguments():
    x = mb.Minibatch(np.ones(10), 2)
    assert mb.align_minibatches([x]) is None
    assert mb.align_minibatches() is None
    with pytest.raises(TypeError, match="is not a Minibatch"):
        mb.align_minibatches([np.ones(3)])
