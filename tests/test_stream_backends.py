"""Streamed minibatches on every backend and VI method: windows swapped in compiled fits."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

import minibatch as mb
from minibatch._gather import source_of
from minibatch._stream import stream_of
from minibatch._streamfit import WindowRefresh
from test_backends import METHODS, MODES, SETTINGS, fit, moments

zarr = pytest.importorskip("zarr")

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using experimental inference Operator:UserWarning"
)


@pytest.fixture(scope="module")
def store(tmp_path_factory, conjugate):
    """The conjugate model's 1000 rows in a Zarr array of 50-row chunks."""
    path = tmp_path_factory.mktemp("stream") / "y.zarr"
    z = zarr.create_array(store=str(path), shape=(1000,), chunks=(50,), dtype="float64")
    z[:] = conjugate.y
    return zarr.open_array(str(path), mode="r")


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, conjugate):
    """The same rows in a .npy file, memory-mapped (cheap reads for the long fits)."""
    path = tmp_path_factory.mktemp("stream") / "y.npy"
    np.save(path, conjugate.y)
    return np.load(path, mmap_mode="r")


def streamed_model(c, store):
    yb = mb.Minibatch(store, batch_size=100, window=125)
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=yb)
    return model, stream_of(source_of(yb)[0])


@pytest.mark.parametrize("mode", MODES)
def test_compiled_draws_see_new_windows_and_stay_paired(mode):
    ids = np.arange(400.0)
    xb, yb = mb.Minibatch(np.stack([ids, -ids], 1), ids, batch_size=8, window=40, random_seed=1)
    stream = stream_of(source_of(xb)[0])
    stream.steps_per_window = 2
    draw = pm.compile([], [xb, yb], random_seed=2, mode=mode)
    refresh = WindowRefresh([stream])
    stream.begin(fresh=True)
    seen = set()
    try:
        for _ in range(100):
            xv, yv = draw()
            np.testing.assert_array_equal(xv[:, 0], yv)
            np.testing.assert_array_equal(xv[:, 1], -yv)
            seen.update(np.asarray(yv).tolist())
            refresh(None)
    finally:
        stream.end()
    assert len(seen) > 200  # a window holds 40 rows; 50 windows show most of the 400


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_streamed_fit_is_reproducible_on_every_backend(conjugate, store, method, mode):
    def state(seed):
        model, stream = streamed_model(conjugate, store)
        before = stream.windows
        approx = fit(model, method, mode, seed=seed, n=30)
        assert stream.windows - before >= 30 // stream.steps_per_window
        return np.concatenate([approx.hist, *(p.get_value().ravel() for p in approx.params)])

    first, again, other = state(5), state(5), state(6)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_streamed_matrix_conjugate_posterior(conjugate, mapped, method, mode):
    """Windows of 125 of 1000 rows, batch 100: mean within 5 %, sd within 20 % of exact."""
    model, stream = streamed_model(conjugate, mapped)
    mean, sd = moments(fit(model, method, mode))
    assert stream.windows > SETTINGS[method]["n"] // stream.steps_per_window
    assert abs(mean - conjugate.post_mean) < 0.05 * abs(conjugate.post_mean)
    assert abs(sd - conjugate.post_sd) < 0.20 * conjugate.post_sd
