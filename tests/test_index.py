"""The index: one RandomVariable, bounded, fresh on every call, reseeded by PyMC; one Numba draw."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.data import MinibatchIndexRV, MinibatchOp, minibatch_index
from pymc.pytensorf import compile as pm_compile
from pymc.pytensorf import rvs_in_graph
from pytensor.compile.mode import get_mode
from pytensor.tensor.random.op import RandomVariable, RandomVariableWithCoreShape

import minibatch as mb
from minibatch._index import IndexRV, MinibatchIndexOp, draw_index, index_rv, new_rng
from minibatch._numba_index import IndexDraw


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


@pytest.mark.parametrize("mode", ["CVM", "FAST_COMPILE"])
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
    draw = index_rv.make_node(rng, [6], 0, 2**40 + 3).outputs[1]
    parent = minibatch_index.make_node(rng, [6], 0, 2**40 + 3).outputs[1]
    a, b = pytensor.function([], [draw, parent])()
    np.testing.assert_array_equal(a, b)  # both drew from copies of the same state


def test_broadcast_bounds_use_the_parents_perform():
    rng = pytensor.shared(np.random.default_rng(2))
    draw = index_rv.make_node(rng, [4, 2], np.array([0, 100]), np.array([10, 110])).outputs[1]
    out = pytensor.function([], draw, mode="CVM")()
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


# --- Numba: the index drawn as one vector (IndexDraw), the same numbers as numpy and C ---


def op_types(f):
    return [type(node.op) for node in f.maker.fgraph.apply_nodes]


@pytest.fixture(scope="module")
def c_and_numba():
    """One index over shared data (its length set per test), compiled on C and on Numba."""
    data = pytensor.shared(np.zeros((10, 2)))
    rng = new_rng(0)
    idx = draw_index(data, 500, rng)
    fns = {mode: pytensor.function([], idx, mode=mode) for mode in ["CVM", "NUMBA"]}
    return data, rng, fns


def test_numba_draws_the_index_with_index_draw_inplace(c_and_numba):
    _, _, fns = c_and_numba
    numba_ops = [n.op for n in fns["NUMBA"].maker.fgraph.apply_nodes]
    draws = [op for op in numba_ops if isinstance(op, IndexDraw)]
    assert len(draws) == 1 and draws[0].inplace and draws[0].destroy_map == {0: [0]}
    assert not any(isinstance(op, RandomVariable | RandomVariableWithCoreShape) for op in numba_ops)


@pytest.mark.parametrize("mode", ["CVM", "JAX"])
def test_c_and_jax_keep_the_random_variable(mode):
    if mode == "JAX":
        pytest.importorskip("jax")
    xb = mb.Minibatch(np.zeros((40, 2)), batch_size=5)
    types = op_types(pytensor.function([], xb, mode=mode))
    assert IndexDraw not in types
    if mode == "CVM":
        assert IndexRV in types


def test_pymcs_minibatch_on_numba_keeps_pytensors_draw():
    batch = pm.Minibatch(np.zeros((40, 2)), batch_size=5)
    types = op_types(pytensor.function([], batch, mode="NUMBA"))
    assert RandomVariableWithCoreShape in types and IndexDraw not in types


@pytest.mark.parametrize("n", [1, 7, 40_000])
def test_numba_draws_what_c_and_numpy_draw(c_and_numba, n):
    """Same seed, three calls: C, Numba and ``Generator.integers`` agree; the rng advances."""
    data, rng, fns = c_and_numba
    data.set_value(np.zeros((n, 2)))
    draws = {}
    for mode, f in fns.items():
        rng.set_value(np.random.default_rng(3))
        draws[mode] = [f() for _ in range(3)]
        state = rng.get_value(borrow=True).bit_generator.state
        reference = np.random.default_rng(3)
        for draw in draws[mode]:
            np.testing.assert_array_equal(draw, reference.integers(0, n, size=500))
        assert state == reference.bit_generator.state
    np.testing.assert_array_equal(draws["NUMBA"], draws["CVM"])


def test_numba_draw_beyond_32_bits_with_a_matrix_size():
    rng = pytensor.shared(np.random.default_rng(8))
    draw = index_rv.make_node(rng, [2, 3], 0, 2**40 + 3).outputs[1]
    f = pytensor.function([], draw, mode="NUMBA", updates={rng: draw.owner.outputs[0]})
    assert IndexDraw in op_types(f)
    reference = np.random.default_rng(8)
    for _ in range(2):
        np.testing.assert_array_equal(f(), reference.integers(0, 2**40 + 3, size=(2, 3)))


def test_numba_draw_not_inplace_copies_the_generator():
    """Without inplace rewrites the draw advances a copy, which the update then stores."""
    rng = new_rng(4)
    idx = draw_index(pytensor.shared(np.zeros(50)), 20, rng)
    f = pytensor.function([], idx, mode=get_mode("NUMBA").excluding("inplace"))
    (op,) = [n.op for n in f.maker.fgraph.apply_nodes if isinstance(n.op, IndexDraw)]
    assert not op.inplace and not op.destroy_map
    first = rng.get_value(borrow=True)
    state = first.bit_generator.state
    reference = np.random.default_rng(4)
    for _ in range(2):
        np.testing.assert_array_equal(f(), reference.integers(0, 50, size=20))
    assert first.bit_generator.state == state
    assert rng.get_value(borrow=True).bit_generator.state == reference.bit_generator.state


@pytest.mark.parametrize("inplace", [False, True])
def test_index_draw_perform_matches_the_lean_perform(inplace):
    rng_in = pt.random.type.random_generator_type("rng")
    outputs = {}
    for op in (IndexDraw(ndim=1, inplace=inplace), IndexRV(inplace=inplace)):
        node = op.make_node(rng_in, pt.as_tensor([6]), pt.as_tensor(0), pt.as_tensor(40_000))
        generator = np.random.default_rng(6)
        out: list[list] = [[None], [None]]
        op.perform(node, [generator, np.array([6]), np.array(0), np.array(40_000)], out)
        assert (out[0][0] is generator) == inplace
        outputs[type(op)] = out[1][0]
    np.testing.assert_array_equal(outputs[IndexDraw], outputs[IndexRV])
    np.testing.assert_array_equal(
        outputs[IndexDraw], np.random.default_rng(6).integers(0, 40_000, 6)
    )


def test_advi_on_numba_repeats_with_a_seed_and_draws_cs_batches(conjugate):
    """``random_seed=1`` twice on Numba: equal fits, and equal (to rounding) to the C fit."""

    def fit(mode):
        yb = mb.Minibatch(conjugate.y, batch_size=50)
        with pm.Model():
            mu = pm.Normal("mu", 0, 10)
            pm.Normal("y", mu, conjugate.sigma, observed=yb, total_size=len(conjugate.y))
            approx = pm.fit(30, random_seed=1, progressbar=False, compile_kwargs=dict(mode=mode))
        return np.concatenate([approx.hist, *(p.get_value().ravel() for p in approx.params)])

    first, again = fit("NUMBA"), fit("NUMBA")
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, fit("CVM"), rtol=1e-9)
