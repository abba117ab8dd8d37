"""The VI loss normalisation that PyMC gets wrong, mended by ``minibatch._upstream``."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pymc.variational.opvi as opvi
import pytensor.tensor as pt
import pytest
from pymc.pytensorf import constant_fold
from pymc.variational.minibatch_rv import get_scaling as pymc_get_scaling

import minibatch as mb
from minibatch import _upstream
from minibatch._upstream import scaling

N, COLS, BATCH = 400, 10, 50


def test_pymc_still_has_the_bug():
    """Canary: when PyMC fixes its call, this fails and the workaround can go."""
    total_size = [pt.constant(N), pt.constant(COLS)]
    shape = constant_fold([pt.as_tensor(np.zeros((BATCH, COLS))).shape])
    with pytest.raises(IndexError):
        pymc_get_scaling(total_size, shape)


def test_install_is_idempotent_and_only_touches_opvi():
    mb.Minibatch(np.ones(3), batch_size=1)
    _upstream.install()
    assert opvi.get_scaling is scaling.get_scaling
    assert pm.variational.minibatch_rv.get_scaling is pymc_get_scaling


@pytest.mark.parametrize(
    "total_size", [N, (N, COLS), (N, None), (N, Ellipsis), (None, COLS)], ids=str
)
def test_normalising_constant_is_n_over_batch(total_size):
    data = np.random.default_rng(0).normal(size=(N, COLS))
    xb = mb.Minibatch(data, batch_size=BATCH)
    with pm.Model():
        mu = pm.Normal("mu", 0, 1, shape=COLS)
        pm.Normal("x", mu, 1, observed=xb, total_size=mb.as_given(total_size))
        approx = pm.ADVI().approx
    expected = 1.0 if total_size == (None, COLS) else N / BATCH
    assert float(approx.symbolic_normalizing_constant.eval()) == pytest.approx(expected)


def test_wrapper_leaves_well_formed_calls_alone():
    ts = [pt.constant(N), pt.constant(COLS)]
    shape = pt.as_tensor(np.zeros((BATCH, COLS))).shape
    assert scaling.get_scaling(ts, shape).eval() == pymc_get_scaling(ts, shape).eval()
