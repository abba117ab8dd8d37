"""Every accepted total_size form scales right; every malformed one fails with its name."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from scipy import stats

import minibatch as mb
from minibatch._total_size import normalise

N, COLS, BATCH = 40, 6, 8


def _normaliser(data, total_size, batch=BATCH):
    """VI's normalising constant N / batch of a model observing a minibatch of ``data``."""
    xb = mb.Minibatch(data, batch_size=batch)
    with pm.Model():
        mu = pm.Normal("mu", 0, 1)
        pm.Normal("x", mu, 1, observed=xb, total_size=total_size)
        return float(pm.ADVI().approx.symbolic_normalizing_constant.eval())


@pytest.mark.parametrize(
    "total_size",
    [
        N,
        np.int64(N),
        np.int32(N),
        (N, COLS),
        [N, None],
        (N, ...),
        (N, ..., COLS),
        (N,),
        np.array([N]),
    ],
    ids=repr,
)
def test_accepted_forms(total_size):
    data = np.zeros((N, COLS))
    assert _normaliser(data, total_size) == N / BATCH


@pytest.mark.parametrize(
    ("total_size", "error", "match"),
    [
        (True, TypeError, "got the bool True"),
        (np.bool_(True), TypeError, "got the bool"),
        (0, ValueError, "sizes must be positive; got 0"),
        (-N, ValueError, "sizes must be positive"),
        (float(N), TypeError, "expected a positive int, None, Ellipsis or a sequence"),
        ("40", TypeError, "of type str"),
        ({N}, TypeError, "of type set"),
        ((N, COLS, 1), ValueError, r"has 3 entries .* more than the 2 axes"),
        ((N, ..., ...), ValueError, "2 Ellipsis entries; at most one"),
        ((), ValueError, "is empty"),
        ((N, 2.5), TypeError, "got 2.5 of type float"),
        (np.zeros((1, 1), dtype=int), TypeError, "of type ndarray"),
    ],
    ids=repr,
)
def test_malformed_total_size_names_the_variable(total_size, error, match):
    with pytest.raises(error, match=match) as info:
        _normaliser(np.zeros((N, COLS)), total_size)
    assert "total_size of observed variable 'x' (data of rank 2)" in str(info.value)


def test_errors_come_at_construction_even_without_a_minibatch():
    mb.Minibatch(np.zeros(3), batch_size=1)  # installs the check
    with pm.Model(), pytest.raises(TypeError, match="got the bool True"):
        pm.Normal("x", 0, 1, observed=np.zeros(5), total_size=True)


def test_short_sequence_covers_leading_axes_as_in_the_legacy_api():
    """``(10, None, 30)`` on rank-5 data: PyMC raises a bare AssertionError here."""
    assert normalise((10, None, 30), 5, "x") == [10, None, 30, None, None]
    assert normalise((10, ..., 50), 5, "x") == [10, None, None, None, 50]
    assert normalise(10, 3, "x") == [10, None, None]


def test_symbolic_entries_and_data_shapes():
    data = pt.as_tensor(np.zeros((N, COLS)))
    sizes = normalise(data.shape, 2, "x")
    assert [int(s.eval()) for s in sizes] == [N, COLS]
    with pytest.raises(TypeError, match="integer vector of static length"):
        normalise(pt.vector("v", dtype="int64"), 2, "x")
    with pytest.raises(TypeError, match="integer scalar"):
        normalise([pt.scalar("f")], 2, "x")


def test_free_variables_still_refuse_total_size():
    mb.Minibatch(np.zeros(3), batch_size=1)
    with pm.Model(), pytest.raises(ValueError, match="only be passed to observed"):
        pm.Normal("mu", 0, 1, total_size=10)


def _window_model(total_size, refills):
    """Windows of 2000 equal values: every batch has the same density, whatever rows it draws."""
    xb = mb.Minibatch(
        np.full(2000, 0.5),
        batch_size=100,
        update_shared_f=lambda: next(refills),
        in_memory_size=2000,
    )
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 1)
        obs = pm.Normal("x", mu, 1, observed=xb, total_size=total_size)
    return xb, model.compile_logp(vars=[obs])


def test_a_window_of_a_larger_population_is_scaled_by_the_population_after_each_refill():
    refills = iter([np.full(2000, 1.5), np.full(1500, -2.0)])
    xb, logp = _window_model(100_000, refills)
    for value in (0.5, 1.5, -2.0):
        assert float(logp({"mu": 0.0})) == pytest.approx(100_000 * stats.norm.logpdf(value))
        if value != -2.0:
            xb.update_shared()


def test_a_window_without_total_size_warns_that_the_window_length_is_used():
    with pytest.warns(mb.TotalSizeWarning, match="window's length, not the population's"):
        _, logp = _window_model(None, iter([]))
    assert float(logp({"mu": 0.0})) == pytest.approx(2000 * stats.norm.logpdf(0.5))


def test_a_window_population_smaller_than_the_window_is_refused():
    with pytest.raises(ValueError, match="a window's population must be at least the window"):
        _window_model(1000, iter([]))
