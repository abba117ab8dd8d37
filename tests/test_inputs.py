"""Construction-time validation: every bad input is refused with a message naming it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

import minibatch as mb


@pytest.mark.parametrize("size", [1, 5, np.int64(5), np.int32(3), np.uint8(2)])
def test_batch_size_accepts_ints(size):
    xb = mb.Minibatch(np.ones((10, 2)), batch_size=size)
    assert xb.eval().shape == (int(size), 2)


@pytest.mark.parametrize(
    ("size", "error", "match"),
    [
        (True, TypeError, r"batch_size must be a positive int; got True \(bool\)"),
        (np.bool_(True), TypeError, r"\(bool\)"),
        (2.0, TypeError, r"got 2\.0 \(float\)"),
        ("3", TypeError, r"got '3' \(str\)"),
        (None, TypeError, r"got None"),
        (0, ValueError, r"positive int; got 0"),
        (-3, ValueError, r"got -3"),
    ],
)
def test_batch_size_refused(size, error, match):
    with pytest.raises(error, match=match):
        mb.Minibatch(np.ones((10, 2)), batch_size=size)


def test_no_data_refused():
    with pytest.raises(TypeError, match="at least one dataset"):
        mb.Minibatch(batch_size=3)


def test_zero_dim_refused_with_hint():
    with pytest.raises(ValueError, match=r"data argument 1 must be at least 1-D.*datasets first"):
        mb.Minibatch(np.ones(10), np.float64(5.0))


@pytest.mark.parametrize("empty", [np.ones((0, 3)), np.ones((4, 0)), []])
def test_empty_refused(empty):
    with pytest.raises(ValueError, match="data argument 0 is empty"):
        mb.Minibatch(empty, batch_size=2)


def test_mismatched_lengths_refused():
    with pytest.raises(ValueError, match=r"data argument 2 has 9 rows but argument 0 has 10"):
        mb.Minibatch(np.ones(10), np.ones((10, 2)), np.ones(9), batch_size=3)


def test_mismatched_shared_lengths_refused():
    x = pytensor.shared(np.ones((10, 2)))
    y = pytensor.shared(np.ones(7))
    with pytest.raises(ValueError, match="has 7 rows but argument 0 has 10"):
        mb.Minibatch(x, y, batch_size=3)


def test_random_data_refused():
    with pytest.raises(ValueError, match="data argument 0 depends on random variables"):
        mb.Minibatch(pm.Normal.dist(size=(10,)), batch_size=3)


def test_free_symbolic_input_refused():
    with pytest.raises(ValueError, match="data argument 0 depends on symbolic inputs"):
        mb.Minibatch(pt.matrix("x"), batch_size=3)


def test_non_numeric_refused():
    with pytest.raises(TypeError, match="data argument 0 must hold numbers; got an array of dtype"):
        mb.Minibatch(np.array(["a", "b"]), batch_size=1)


def test_minibatch_of_minibatch_refused():
    with pytest.raises(ValueError, match="depends on random variables"):
        mb.Minibatch(mb.Minibatch(np.ones(10), batch_size=4), batch_size=2)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a,
        lambda a: a.tolist(),
        lambda a: pd.DataFrame(a),
        lambda a: pt.as_tensor(a),
        lambda a: pytensor.shared(a),
    ],
    ids=["ndarray", "list", "DataFrame", "constant", "shared"],
)
def test_accepted_containers(make, rows):
    xb = mb.Minibatch(make(rows), batch_size=5)
    value = pm.draw(xb, random_seed=1)
    assert value.shape == (5, 3)
    assert np.isin(value[:, 0], rows[:, 0]).all()
    np.testing.assert_array_equal(value[:, 1], value[:, 0] + 100)


def test_pandas_series_and_pm_data(rows):
    with pm.Model():
        data = pm.Data("x", rows)
        xb, sb = mb.Minibatch(data, pd.Series(rows[:, 0]), batch_size=4)
    x, s = pm.draw([xb, sb], random_seed=3)
    np.testing.assert_array_equal(x[:, 0], s)
    assert xb.name == "x_minibatch"


def test_pm_data_changes_are_followed(rows):
    with pm.Model():
        data = pm.Data("x", rows)
        xb = mb.Minibatch(data, batch_size=50)
        pm.set_data({"x": rows[:3] + 1000})
    assert set(pm.draw(xb, random_seed=0)[:, 0]) <= {1000.0, 1001.0, 1002.0}


def test_dtypes_follow_pymc(rows):
    floatx = pytensor.config.floatX
    assert mb.Minibatch(rows.astype("float32"), batch_size=2).dtype == floatx
    assert mb.Minibatch(rows.astype("float64"), batch_size=2).dtype == floatx
    assert mb.Minibatch(pytensor.shared(rows.astype("float32")), batch_size=2).dtype == floatx
    assert mb.Minibatch([[1.0, 2.0]], batch_size=2).dtype == floatx
    assert mb.Minibatch(rows.astype("int64"), batch_size=2).dtype == "int64"
    assert mb.Minibatch(rows.astype("int16"), batch_size=2).dtype == "int16"
    assert mb.Minibatch([1, 2, 3], batch_size=2).dtype == "int64"
    assert mb.Minibatch(rows > 5, batch_size=2).dtype == "bool"


def test_float32_stays_float32_under_floatx32(rows):
    with pytensor.config.change_flags(floatX="float32"):
        xb = mb.Minibatch(rows, batch_size=2)
        assert xb.dtype == "float32"
        assert pm.draw(xb, random_seed=0).dtype == np.float32


def test_axes_beyond_an_int32_index_are_refused_under_float32():
    """2**31 rows cost nothing here: a broadcast view in a shared variable."""
    huge = pytensor.shared(np.broadcast_to(np.zeros(1, dtype=bool), (2**31,)), borrow=True)
    refused = pytest.raises(ValueError, match=r"data argument 0 has 2147483648 entries.*int32")
    with pytensor.config.change_flags(floatX="float32"), refused:
        mb.Minibatch(huge, batch_size=10)
    from minibatch._gather import source_of

    ((_, index),) = source_of(mb.Minibatch(huge, batch_size=10))[1]  # under float64: built
    assert index.dtype == "int64" and index.type.shape == (10,)
