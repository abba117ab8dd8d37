"""The index: one RandomVariable, bounded, fresh on every call, reseeded by PyMC."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.data import MinibatchIndexRV, MinibatchOp
from pymc.pytensorf import compile as pm_compile
from pymc.pytensorf import rvs_in_graph

from minibatch._index import MinibatchIndexOp, draw_index, new_rng


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
