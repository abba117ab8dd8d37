"""The gather: one index applied to many datasets, casts that stay minibatches, open batch axis."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.data import is_valid_observed
from pymc.pytensorf import constant_fold, extract_obs_data
from pytensor.graph.replace import graph_replace

import minibatch as mb
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
    out = pytensor.clone_replace(node, {xb: pt.as_tensor(test)}).eval()
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
