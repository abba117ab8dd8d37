"""Fuzzing the constructors: every input gives what is promised, or an error naming its argument.

Over random shapes, dtypes, input kinds, batch specs and ``total_size`` forms, ``mb.Minibatch``,
an observed variable on it, ``set_value`` refills and ``full_data_model(model, data=...)``
either work as documented (shapes, dtypes, the scale ``N / batch`` per subsampled axis) or raise
a ``TypeError`` / ``ValueError`` whose message names the argument.  Any other exception, or a
wrong scale, fails.  Examples are derandomised: the same ones run every time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pymc.variational.minibatch_rv import MinibatchRandomVariable

import minibatch as mb

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DTYPES = ["float64", "float32", "int64", "int32", "uint8", "bool", "complex128"]
KINDS = ["array", "list", "pandas", "constant", "shared"]
# A message that names what was wrong: the argument or the option.
NAMED = (
    "batch_size",
    "data argument",
    "total_size",
    "value must",  # set_value(value)
    "new data",
    "broadcastable",
    "minibatch of dtype",
)


def evaluate(var):
    return pytensor.function([], var, mode="FAST_COMPILE")()


def as_kind(array, kind):
    if kind == "list":
        return array.tolist()
    if kind == "pandas":
        return pd.DataFrame(array) if array.ndim == 2 else pd.Series(array)
    if kind == "constant":
        return pt.constant(array)
    if kind == "shared":
        return pytensor.shared(array)
    return array


@st.composite
def datasets(draw):
    ndim = draw(st.integers(1, 3))
    length = st.one_of(st.integers(1, 6), st.integers(1, 6), st.just(0))  # now and then empty
    shape = tuple(draw(st.lists(length, min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(["float64", "int64", *DTYPES]))  # mostly the usual ones
    kind = draw(st.sampled_from(KINDS if ndim <= 2 else ["array", "list", "constant", "shared"]))
    values = np.arange(int(np.prod(shape))).reshape(shape) % 5
    return values.astype(dtype), kind


spec_entries = st.one_of(
    st.integers(-2, 8),
    st.none(),
    st.just(Ellipsis),
    st.booleans(),
    st.floats(0.5, 4.0),
    st.tuples(st.integers(1, 4), st.integers(0, 3)),
)
batch_specs = st.one_of(
    st.integers(1, 6),
    st.integers(1, 6),
    st.lists(st.one_of(st.integers(1, 4), st.none()), min_size=1, max_size=3),
    st.integers(-2, 10),
    st.booleans(),
    st.floats(0.5, 4.0),
    st.just("3"),
    st.lists(spec_entries, min_size=0, max_size=4),
)


def expected_dtype(dtype):
    return pytensor.config.floatX if dtype.startswith("float") else dtype


def check_named(err):
    event(f"refused: {type(err).__name__}")
    assert isinstance(err, TypeError | ValueError), repr(err)
    assert any(word in str(err) for word in NAMED), str(err)


@settings(FUZZ, max_examples=250)
@given(data=datasets(), spec=batch_specs)
def test_minibatch_gives_the_promised_batch_or_a_named_error(data, spec):
    array, kind = data
    try:
        xb = mb.Minibatch(as_kind(array, kind), batch_size=spec)
    except Exception as err:
        check_named(err)
        return
    event("built")
    assert array.dtype.kind in "biuf" and 0 not in array.shape
    assert xb.dtype == expected_dtype(array.dtype.name)
    value = evaluate(xb)
    sizes = {axis: size for axis, size in _subsampled(xb)}
    for axis, n in enumerate(array.shape):
        assert value.shape[axis] == sizes.get(axis, n)
    assert set(np.unique(value)) <= set(np.unique(array.astype(value.dtype)))


def _subsampled(xb):
    from minibatch._gather import source_of

    _, gathers = source_of(xb)
    return [(axis, int(index.type.shape[0])) for axis, index in gathers]


total_sizes = st.one_of(
    st.none(),
    st.integers(-1, 12),
    st.booleans(),
    st.just("10"),
    st.just(Ellipsis),
    st.lists(st.one_of(st.none(), st.integers(0, 12), st.just(Ellipsis)), max_size=4).map(tuple),
)


@FUZZ
@given(
    shape=st.tuples(st.integers(1, 8), st.integers(1, 4)),
    batch=st.integers(1, 6),
    two_axes=st.booleans(),
    total_size=total_sizes,
    exact=st.booleans(),
)
def test_observed_minibatches_are_scaled_by_n_over_batch_or_refused(
    shape, batch, two_axes, total_size, exact
):
    array = np.ones(shape)
    spec = [batch, min(batch, 2)] if two_axes else batch
    xb = mb.Minibatch(array, batch_size=spec)
    subsampled = dict(_subsampled(xb))
    if exact:  # the right total_size, in the tuple form, as users write it
        total_size = tuple(n if axis in subsampled else None for axis, n in enumerate(shape))
    try:
        with pm.Model() as model:
            pm.Normal("x", 0, 1, observed=xb, total_size=total_size)
    except Exception as err:
        check_named(err)
        assert not exact
        return
    event("scaled")
    expected = np.prod([shape[axis] / size for axis, size in subsampled.items()])
    (rv,) = model.observed_RVs
    assert isinstance(rv.owner.op, MinibatchRandomVariable)
    scale = pm.logp(rv, np.zeros_like(evaluate(xb))).sum() / pm.logp(pm.Normal.dist(0, 1), 0.0)
    got = float(evaluate(scale)) / np.prod(evaluate(xb).shape)
    assert got == pytest.approx(expected), (total_size, spec)


@FUZZ
@given(
    rows=st.integers(1, 8),
    new_shape=st.tuples(st.integers(0, 9), st.one_of(st.just(3), st.just(3), st.integers(1, 4))),
    new_dtype=st.sampled_from(["float64", "float32", "int64", *DTYPES]),
    kind=st.sampled_from(["array", "list"]),
)
def test_set_value_refills_or_refuses_keeping_the_old_data(rows, new_shape, new_dtype, kind):
    xb = mb.Minibatch(np.ones((rows, 3)), batch_size=2)
    old = xb.shared.get_value().copy()
    new = (np.arange(int(np.prod(new_shape))).reshape(new_shape) % 3).astype(new_dtype)
    try:
        xb.set_value(as_kind(new, kind))
    except Exception as err:
        check_named(err)
        np.testing.assert_array_equal(xb.shared.get_value(), old)
        return
    assert (new_shape[1] == 3 and new_shape[0] > 0) or new.size == 0
    np.testing.assert_array_equal(xb.shared.get_value(), new.astype(xb.dtype))


@FUZZ
@given(
    lengths=st.integers(0, 5).flatmap(
        lambda n: st.tuples(st.just(n), st.one_of(st.just(n), st.integers(0, 5)))
    ),
    cols=st.one_of(st.just(2), st.just(2), st.integers(1, 3)),
    give=st.sampled_from(["both", "both", "both", "x", "y"]),
)
def test_full_data_model_with_new_data_predicts_or_refuses(lengths, cols, give):
    x, y = np.ones((20, 2)), np.ones(20)
    xb, yb = mb.Minibatch(x, y, batch_size=4)
    with pm.Model() as model:
        w = pm.Normal("w", 0, 1, shape=2)
        pm.Normal("y", xb @ w, 1, observed=yb)
    new = {"x": (xb, np.ones((lengths[0], cols))), "y": (yb, np.zeros(lengths[1]))}
    chosen = dict(new.values()) if give == "both" else dict([new[give]])
    try:
        full = mb.full_data_model(model, chosen)
    except Exception as err:
        check_named(err)
        return
    assert give == "both" and lengths[0] == lengths[1] and cols == 2
    assert full["y"].type.ndim == 1
