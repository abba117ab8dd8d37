"""The gather: one index applied to many datasets, casts that stay minibatches, open batch axis."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.data import is_valid_observed
from pymc.pytensorf import constant_fold, extract_obs_data
from pytensor.graph.replace import clone_replace, graph_replace

import minibatch as mb
from minibatch._compat import TAKE_OPS
from minibatch._gather import MinibatchGatherOp, gather


def test_one_gather_node_for_all_datasets(rows):
    xb, yb, zb = mb.Minibatch(rows, rows[:, 0], rows.astype("int64"), batch_size=4)
    assert xb.owner is yb.owner is zb.owner
    assert isinstance(xb.owner.op, MinibatchGatherOp)
    assert all(isinstance(v, mb.Minibatch) for v in (xb, yb, zb))


def test_batch_axis_is_open_but_batch_size_is_a_graph_constant(rows):
    """The subsampled axis is open; the others keep their static lengths (fast steps)."""
    xb = mb.Minibatch(rows, batch_size=4)
    assert xb.type.shape == (None, 3)
    assert mb.Minibatch(rows, 4).type.shape == (None, None)  # legacy form: shapeless
    [size] = constant_fold([xb.shape[0]])
    assert size == 4


@pytest.mark.parametrize("length", [1, 7, 38])
def test_clone_replace_with_data_of_any_length(rows, length):
    xb = mb.Minibatch(rows, batch_size=4)
    node = xb**2
    test = np.random.default_rng(0).laplace(size=(length, 3))
    out = clone_replace(node, {xb: pt.as_tensor(test)}).eval()
    np.testing.assert_allclose(out, test**2)


def test_graph_replace_with_symbolic_tensor_of_other_length(rows):
    xb = mb.Minibatch(rows, batch_size=4)
    new = pt.matrix("new", shape=(None, 3))
    out = graph_replace(xb.sum(0), {xb: new})
    f = pytensor.function([new], out)
    np.testing.assert_allclose(f(np.ones((9, 3))), [9.0, 9.0, 9.0])


def test_astype_casts_the_source_and_keeps_the_index(rows):
    xb, ib = mb.Minibatch(rows, rows.astype("int64"), batch_size=6)
    cast = ib.astype("int32")
    assert isinstance(cast, mb.Minibatch)
    assert cast.dtype == "int32"
    assert cast.owner.inputs[0] is xb.owner.inputs[0]  # the same index variable
    assert is_valid_observed(cast)
    x, c = pm.draw([xb, cast], random_seed=4)
    np.testing.assert_array_equal(x, c)
    assert ib.astype("int64") is ib


def test_pymc_reads_the_source_data_back(rows):
    xb, ib = mb.Minibatch(rows, rows[:, 0].astype("int64"), batch_size=3)
    np.testing.assert_array_equal(extract_obs_data(xb), rows)
    np.testing.assert_array_equal(extract_obs_data(ib), rows[:, 0])


def test_gather_indexes_the_leading_axis():
    idx = pt.as_tensor(np.array([1, 1, 0]))
    (out,) = gather(idx, [pt.as_tensor(np.arange(8).reshape(2, 2, 2))])
    np.testing.assert_array_equal(out.eval(), np.arange(8).reshape(2, 2, 2)[[1, 1, 0]])


def _take(mode, x_type=None):
    """The gather of a given index, compiled: ``(data, index) -> data[index]``."""
    x = pt.matrix("x") if x_type is None else x_type
    i = pt.lvector("i")
    (taken,) = gather(i, [x])
    return pytensor.function([x, i], taken, mode=mode)


@pytest.mark.parametrize("mode", ["CVM", "NUMBA", "JAX"])
def test_gather_equals_numpy_on_every_backend(mode):
    data = np.random.default_rng(0).normal(size=(50, 7))
    index = np.random.default_rng(1).integers(0, 50, size=300)
    f = _take(mode)
    np.testing.assert_array_equal(np.asarray(f(data, index)), data[index])
    np.testing.assert_array_equal(np.asarray(f(data, index[:3])), data[index[:3]])


@pytest.mark.parametrize(
    "data",
    [
        np.arange(60.0).reshape(12, 5),
        np.asfortranarray(np.arange(60.0).reshape(12, 5)),
        np.arange(120.0).reshape(24, 5)[::2],  # strided rows
        np.arange(12.0).reshape(12, 1, 1),
        np.arange(12),  # integers, 1-D
        np.zeros((12, 0)),  # empty rows
    ],
    ids=["c", "fortran", "strided", "3d", "int-1d", "empty-rows"],
)
@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])
def test_gather_layouts_and_negative_positions(data, mode):
    x = pt.tensor("x", dtype=data.dtype, shape=(None,) * data.ndim)
    f = _take(mode, x)
    index = np.array([3, -1, 0, 11, -12, 3])
    np.testing.assert_array_equal(f(data, index), data[index])


def test_c_gather_refuses_positions_out_of_range():
    """Our index never leaves ``[0, n)``; pytensor's C take checks anyway."""
    f = _take("CVM")
    for position in (12, -13):
        with pytest.raises(IndexError, match="out of bounds"):
            f(np.zeros((12, 2)), np.array([0, position]))


def test_minibatch_step_is_the_draw_and_pytensors_take_with_nothing_around_it(rows):
    """The draw feeds pytensor's own take: no Assert, copy or cast between data and batch."""
    x, i = pt.matrix("x"), pt.lvector("i")
    plain = pytensor.function([x, i], x[i], mode="CVM")
    (take_op,) = [node.op for node in plain.maker.fgraph.apply_nodes]
    xb = mb.Minibatch(rows, batch_size=5)
    f = pytensor.function([], xb, mode="CVM")
    nodes = f.maker.fgraph.toposort()
    (take,) = [n for n in nodes if n.op == take_op]
    assert take.outputs[0] is f.maker.fgraph.outputs[0]
    kinds = {type(n.op).__name__ for n in nodes}
    expected = {type(take_op).__name__, "IndexRV", "Shape_i", "DimShuffle"}  # n = shape[0]
    assert kinds == expected, kinds
    assert f().shape == (5, 3)


def test_float32_data_stays_float32_through_the_gather(rows):
    with pytensor.config.change_flags(floatX="float32"):
        xb = mb.Minibatch(rows, batch_size=5)
        f = pytensor.function([], xb, mode="CVM")
        dtypes = {v.dtype for v in f.maker.fgraph.variables if getattr(v, "ndim", 0) == 2}
    assert xb.dtype == "float32"
    assert dtypes == {"float32"}
    assert f().dtype == np.float32


def test_compiled_batches_get_their_static_length_back(rows):
    """The take by our index is rebuilt with the batch length; pymc's SpecifyShape then goes."""
    xb = mb.Minibatch(rows, batch_size=5)
    with pm.Model():
        mu = pm.Normal("mu", 0, 1, shape=3)
        pm.Normal("x", mu, 1, observed=xb)
        step = pm.ADVI(random_seed=0).objective.step_function(compile_kwargs=dict(mode="CVM"))
    nodes = step.maker.fgraph.apply_nodes
    assert not [n for n in nodes if type(n.op).__name__ == "SpecifyShape"]
    takes = [n for n in nodes if isinstance(n.op, TAKE_OPS)]
    assert [t.outputs[0].type.shape for t in takes] == [(5, 3)]


def test_index_of_gives_the_rows_of_every_dataset_and_axis():
    x = np.arange(40.0).reshape(10, 4)
    y = np.arange(40).reshape(10, 4) * 3
    xb, yb = mb.Minibatch(x, y, batch_size=[4, 3])
    rows, cols = mb.index_of(xb), mb.index_of(xb, axis=1)
    r, c, ry, rc, xv, yv = pm.draw(
        [rows, cols, mb.index_of(yb), mb.index_of(xb.astype("float32")), xb, yb], random_seed=3
    )
    np.testing.assert_array_equal(ry, r)  # one index for every dataset of the call
    np.testing.assert_array_equal(rc, r)  # and for expressions of a batch
    np.testing.assert_array_equal(xv, x[np.ix_(r, c)])
    np.testing.assert_array_equal(yv, y[np.ix_(r, c)])


def test_index_of_refuses_what_it_cannot_answer():
    xb = mb.Minibatch(np.zeros((10, 2)), batch_size=4)
    with pytest.raises(TypeError, match="batch must be a minibatch"):
        mb.index_of(pt.as_tensor(np.zeros(3)))
    with pytest.raises(ValueError, match=r"axis 1 .* subsampled axes are \[0\]"):
        mb.index_of(xb, axis=1)
    with pytest.raises(TypeError, match="axis must be an int"):
        mb.index_of(xb, axis=True)
