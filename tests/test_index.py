"""The index: one RandomVariable, bounded, fresh on every call, reseeded by PyMC."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.data import MinibatchIndexRV, MinibatchOp, minibatch_index
from pymc.pytensorf import compile as pm_compile
from pymc.pytensorf import rvs_in_graph

from minibatch._index import MinibatchIndexOp, draw_index, index_rv, new_rng


def test_index_is_one_pymc_index_rv_with_static_size():
    rng = new_rng(0)
    idx = draw_index(pt.as_tensor(np.zeros(7)), 5, rng)
    assert isinstance(idx.owner.op, MinibatchIndexOp)
    assert isinstance(idx.owner.op, MinibatchOp)  # PyMC accepts it in observed data
    inner_rvs = [
        n.op for n in idx.owner.op.fgraph.apply_nodes if isinstance(n.op, MinibatchIndexRV)
    ]
    assert len(inner_rvs) == 1
    assert idx.type.shape == (5,)
    assert idx.dtype == "int64"


def test_plain_function_draws_new_in_range_indices():
    idx = draw_index(pt.as_tensor(np.zeros(1000)), 50, new_rng(0))
    f = pytensor.function([], idx)
    draws = np.stack([f() for _ in range(20)])
    assert draws.min() >= 0 and draws.max() < 1000
    assert len({tuple(d) for d in draws}) == 20


def test_draws_cover_rows_uniformly():
    # 10 rows, 20000 draws: each count ~ Binomial(20000, 0.1), sd = 42.4; 6 sd cannot flake.
    idx = draw_index(pt.as_tensor(np.zeros(10)), 20000, new_rng(5))
    counts = np.bincount(idx.eval(), minlength=10)
    assert np.abs(counts - 2000).max() < 6 * np.sqrt(20000 * 0.1 * 0.9)


def test_pymc_compile_reseeds_the_index():
    rng = new_rng(0)
    idx = draw_index(pt.as_tensor(np.zeros(10**6)), 8, rng)
    a = pm_compile([], idx, random_seed=11)()
    b = pm_compile([], idx, random_seed=11)()
    c = pm_compile([], idx, random_seed=12)()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_index_is_the_only_random_thing():
    idx = draw_index(pt.as_tensor(np.zeros(10)), 3, new_rng(0))
    assert len({v.owner for v in rvs_in_graph(idx)}) == 1
    assert pm.draw(idx, random_seed=1).shape == (3,)


@pytest.mark.parametrize("mode", ["FAST_RUN", "FAST_COMPILE"])
@pytest.mark.parametrize("n", [1, 7, 40_000])
def test_draws_are_numpys_integers_stream(mode, n):
    """The lean perform draws what ``Generator.integers(0, n, size)`` draws, step after step."""
    idx = draw_index(pt.as_tensor(np.zeros(n)), 500, new_rng(3))
    f = pytensor.function([], idx, mode=mode)  # advances the rng by its default_update
    reference = np.random.default_rng(3)
    for _ in range(3):
        np.testing.assert_array_equal(f(), reference.integers(0, n, size=500))


def test_lean_perform_matches_the_parent_on_ranges_beyond_32_bits():
    rng = pytensor.shared(np.random.default_rng(8))
    draw = index_rv(0, 2**40 + 3, size=(6,), rng=rng)
    parent = minibatch_index(0, 2**40 + 3, size=(6,), rng=rng)
    a, b = pytensor.function([], [draw, parent])()
    np.testing.assert_array_equal(a, b)  # both drew from copies of the same state


def test_broadcast_bounds_use_the_parents_perform():
    rng = pytensor.shared(np.random.default_rng(2))
    draw = index_rv(np.array([0, 100]), np.array([10, 110]), size=(4, 2), rng=rng)
    out = pytensor.function([], draw, mode="FAST_RUN")()
    expected = np.random.default_rng(2).integers([0, 100], [10, 110], size=(4, 2))
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("stored", ["constant", "shared"])
def test_jax_draw_is_in_range_uniform_and_fresh(stored):
    """40000 rows: more than an int8 holds (the shape of shared data reaches JAX weakly typed)."""
    pytest.importorskip("jax")
    rows = np.zeros((40_000, 2))
    data = pt.as_tensor(rows) if stored == "constant" else pytensor.shared(rows)
    idx = draw_index(data, 20_000, new_rng(4))
    f = pytensor.function([], idx, mode="JAX")
    first, second = np.asarray(f()), np.asarray(f())
    assert first.dtype == np.int64 and not np.array_equal(first, second)
    assert first.min() >= 0 and first.max() < 40_000
    counts = np.bincount(first // 4000, minlength=10)  # ten bins of 4000 rows
    assert np.abs(counts - 2000).max() < 6 * np.sqrt(20000 * 0.1 * 0.9)  # 6 sd
    assert np.bincount(first % 10, minlength=10).min() > 1500  # low digits uniform too
