"""Streamed minibatches: out-of-core sources seen through windows refreshed during ``pm.fit``."""

from __future__ import annotations

import threading
import time

import numpy as np
import pymc as pm
import pytest

import minibatch as mb
from minibatch._stream import stream_of
from minibatch._streamfit import WindowRefresh

zarr = pytest.importorskip("zarr")


def _memmap(path, array):
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    mm[:] = array
    mm.flush()
    del mm
    return np.load(path, mmap_mode="r")


def _zarr(path, array, chunk):
    z = zarr.create_array(
        store=str(path), shape=array.shape, chunks=(chunk, *array.shape[1:]), dtype=array.dtype
    )
    z[:] = array
    return zarr.open_array(str(path), mode="r")


@pytest.fixture
def ids(tmp_path):
    """Row ids 0..n-1 as a Zarr X (column 0 = id, column 1 = 2 * id) and a memmap y (= id)."""
    n = 1003
    x = np.stack([np.arange(n), 2 * np.arange(n)], axis=1).astype("float64")
    return _zarr(tmp_path / "x.zarr", x, 64), _memmap(
        tmp_path / "y.npy", np.arange(n, dtype="int64")
    )


def _stream(batch):
    from minibatch._gather import source_of

    return stream_of(source_of(batch)[0])


def _drive(batches, steps, fresh=True):
    """Draw ``steps`` batches the way pm.fit does: a compiled draw, the refresh after each."""
    stream = _stream(batches[0])
    draw = pm.compile([], list(batches), random_seed=1)
    refresh = WindowRefresh([stream])
    stream.begin(fresh=fresh)
    try:
        out = []
        for _ in range(steps):
            out.append(draw())
            refresh(None)
        return out
    finally:
        stream.end()


def test_a_zarr_and_a_memmap_stay_paired_row_for_row_across_windows(ids):
    x, y = ids
    xb, yb = mb.Minibatch(x, y, batch_size=16, window=100, steps_per_window=3)
    stream = _stream(xb)
    assert stream is _stream(yb) and stream.window_rows == 100 and stream.n_rows == 1003
    assert xb.shared.get_value().shape == (100, 2)  # a window in memory, not the source
    seen = set()
    for xv, yv in _drive([xb, yb], 60):
        np.testing.assert_array_equal(xv[:, 0], yv)
        np.testing.assert_array_equal(xv[:, 1], 2 * yv)
        seen.update(yv.tolist())
    assert stream.windows >= 60 // 3
    assert len(seen) > 300  # 20 windows of 100 of 1003 rows: far more than one window's rows


def test_total_size_is_the_sources_length_not_the_windows(ids):
    x, y = ids
    _, yb = mb.Minibatch(x, y, batch_size=10, window=100)
    with pm.Model() as model:
        pm.Normal("obs", 0, 1, observed=yb)
    assert int(model.observed_RVs[0].owner.inputs[1].eval()) == 1003
    with pm.Model(), pytest.raises(ValueError, match=r"1003 rows of its source .*window of 100"):
        pm.Normal("obs", 0, 1, observed=yb, total_size=100)
    with pm.Model():
        pm.Normal("obs", 0, 1, observed=yb, total_size=1003)


def test_the_scaled_logp_is_unbiased_over_windows_on_sorted_data(tmp_path):
    """Data sorted by value, windows of 60 of 997 rows in chunks of 64: the mean of the scaled
    batch logp over 6000 (window, batch) draws is the full-data logp within 5 standard errors."""
    y = np.sort(np.random.default_rng(3).standard_t(3, size=997)) * 3
    z = _zarr(tmp_path / "y.zarr", y, 64)
    yb = mb.Minibatch(z, batch_size=10, window=60, steps_per_window=1, random_seed=4)
    with pm.Model() as model:
        pm.Normal("obs", 1.0, 2.0, observed=yb)
    logp = model.compile_logp(sum=True)
    stream = _stream(yb)
    refresh = WindowRefresh([stream])
    stream.begin(fresh=True)
    try:
        values = []
        for _ in range(6000):
            values.append(logp({}))
            refresh(None)
    finally:
        stream.end()
    exact = pm.logp(pm.Normal.dist(1.0, 2.0), y).eval().sum()
    values = np.array(values)
    se = values.std() / np.sqrt(len(values))
    assert abs(values.mean() - exact) < 5 * se
    assert se < 0.05 * abs(exact)  # the check is tight enough to mean something


def _conjugate_fit(c, yb, seed=42):
    with pm.Model():
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=yb)
        approx = pm.fit(
            20000, random_seed=seed, progressbar=False, obj_optimizer=pm.adam(learning_rate=0.01)
        )
    return float(approx.mean.eval()[0]), float(approx.std.eval()[0])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memmap", "zarr"])
def test_conjugate_posterior_from_a_source_eight_times_the_window(conjugate, tmp_path, kind):
    """n = 1000 streamed through windows of 125 rows, batch 100: mean within 5 %, sd within
    20 % of the exact posterior, and of the in-memory fit."""
    c = conjugate
    source = (
        _memmap(tmp_path / "y.npy", c.y)
        if kind == "memmap"
        else _zarr(tmp_path / "y.zarr", c.y, 50)
    )
    mean, sd = _conjugate_fit(c, mb.Minibatch(source, batch_size=100, window=125))
    assert abs(mean - c.post_mean) < 0.05 * abs(c.post_mean)
    assert abs(sd - c.post_sd) < 0.20 * c.post_sd
    mem_mean, mem_sd = _conjugate_fit(c, mb.Minibatch(c.y, batch_size=100))
    assert abs(mean - mem_mean) < 0.05 * abs(c.post_mean)
    assert abs(sd - mem_sd) < 0.20 * c.post_sd


def _small_fit(source, seed, steps=300, **kw):
    yb = mb.Minibatch(source, batch_size=20, window=100, random_seed=0)
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 2.0, observed=yb)
        approx = pm.fit(steps, random_seed=seed, progressbar=False, **kw)
    return approx, _stream(yb)


def test_pm_fit_refreshes_windows_by_itself_and_is_reproducible(conjugate, tmp_path):
    z = _zarr(tmp_path / "y.zarr", conjugate.y, 50)
    first, stream = _small_fit(z, seed=7)
    assert stream.steps_per_window == 5  # ceil(window / batch)
    assert stream.windows >= 300 // 5 + 1  # the construction's, one per 5 steps, the next
    again, _ = _small_fit(z, seed=7)
    other, _ = _small_fit(z, seed=8)
    np.testing.assert_array_equal(first.hist, again.hist)
    assert not np.allclose(first.hist, other.hist)
    deadline = time.monotonic() + 10
    while any(t.name.startswith("minibatch-window") for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the window reader outlived the fit"
        time.sleep(0.05)


def test_refine_continues_the_stream(conjugate, tmp_path):
    z = _zarr(tmp_path / "y.zarr", conjugate.y, 50)
    yb = mb.Minibatch(z, batch_size=20, window=100)
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 2.0, observed=yb)
        inference = pm.ADVI(random_seed=1)
        inference.fit(50, progressbar=False)
        read = _stream(yb).windows
        inference.refine(100, progressbar=False)
    assert _stream(yb).windows >= read + 100 // 5
    assert len(inference.hist) == 150
    assert all(not isinstance(cb, WindowRefresh) for cb in inference.state.callbacks)


def test_a_source_failing_mid_fit_stops_it_and_keeps_the_approximation(conjugate, tmp_path):
    """Chunk files removed after step 20: the next window read raises (no silent zeros, no
    stale window), and the error carries the approximation fitted so far."""
    path = tmp_path / "y.zarr"
    z = _zarr(path, conjugate.y, 50)

    def remove_chunks(approx, losses, i):
        if i == 20:
            for chunk in (path / "c").iterdir():
                chunk.unlink()

    with pytest.raises(mb.SourceError) as info:
        _small_fit(z, seed=1, steps=300, callbacks=[remove_chunks])
    approx = info.value.approx
    draws = approx.sample(50, random_seed=0).posterior["mu"]
    assert draws.shape == (1, 50) and np.isfinite(draws).all()
    assert "err.approx" in "".join(getattr(info.value, "__notes__", []))


def test_full_data_model_refuses_a_streamed_minibatch_and_says_how(ids):
    x, y = ids
    xb, yb = mb.Minibatch(x, y, batch_size=10, window=100)
    with pm.Model() as model:
        w = pm.Normal("w", 0, 1)
        pm.Normal("obs", w * xb[:, 0], 1, observed=yb)
    with pytest.raises(ValueError, match=r"chunk by chunk.*mb.full_data_model\(model, \{batch"):
        mb.full_data_model(model)
    chunk = mb.full_data_model(model, {xb: np.asarray(x[:200]), yb: np.asarray(y[:200])})
    assert chunk["obs"].eval().shape == (200,)  # the observed value follows the chunk too
    np.testing.assert_array_equal(chunk.rvs_to_values[chunk["obs"]].eval(), np.asarray(y[:200]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"window": "lots"}, ValueError, "window must be a number of rows"),
        ({"window": 100, "steps_per_window": 0}, ValueError, "steps_per_window must be"),
        ({"window": 100, "timeout": -1}, ValueError, "timeout must be a positive number"),
        ({"window": 100, "in_memory_size": 10}, TypeError, "in_memory_size is a legacy option"),
        ({"window": 100, "batch_size": [None, 1]}, ValueError, "must subsample the first axis"),
    ],
)
def test_bad_streaming_options_are_refused_at_construction(ids, kwargs, error, match):
    x, _ = ids
    kwargs = {"batch_size": 10, **kwargs}
    with pytest.raises(error, match=match):
        mb.Minibatch(x, **kwargs)


def test_sources_of_different_lengths_are_refused(tmp_path):
    z = _zarr(tmp_path / "x.zarr", np.zeros(100), 10)
    m = _memmap(tmp_path / "y.npy", np.zeros(99))
    with pytest.raises(ValueError, match=r"data argument 1 .* has 99 rows but argument 0"):
        mb.Minibatch(z, m, batch_size=10)


def test_in_memory_arrays_stream_too_when_a_window_is_asked_for(rows):
    xb = mb.Minibatch(rows, batch_size=3, window=5, random_seed=0)
    assert xb.shared.get_value().shape == (5, 3)
    for (value,) in _drive([xb], 10):
        np.testing.assert_array_equal(value[:, 1], value[:, 0] + 100)


def test_log_likelihood_chunk_by_chunk_equals_the_in_memory_full_model(ids, tmp_path):
    """The recipe in docs/streaming.md: chunks written to a Zarr array, equal to the full-data
    model of the same data held in memory."""
    x, y = ids
    xv, yv = np.array(x), np.array(y)  # in memory (np.asarray of a memmap is still mapped)

    def model_of(xb, yb):
        with pm.Model() as model:
            w = pm.Normal("w", 0, 1)
            pm.Normal("obs", w * xb[:, 0], 1000.0, observed=yb)
        return model

    xs, ys = mb.Minibatch(x, y, batch_size=10, window=100)
    streamed = model_of(xs, ys)
    in_memory = model_of(*mb.Minibatch(xv, yv, batch_size=10))
    with streamed:
        idata = pm.fit(50, random_seed=0, progressbar=False).sample(20, random_seed=1)
    out = zarr.create_array(
        store=str(tmp_path / "ll.zarr"), shape=(20, 1003), chunks=(20, 300), dtype="f8"
    )
    for a in range(0, 1003, 300):
        b = min(a + 300, 1003)
        chunk = mb.full_data_model(streamed, {xs: xv[a:b], ys: yv[a:b]})
        ll = pm.compute_log_likelihood(
            idata, model=chunk, extend_inferencedata=False, progressbar=False
        )
        out[:, a:b] = ll["obs"].values.reshape(20, b - a)
    full = pm.compute_log_likelihood(
        idata, model=mb.full_data_model(in_memory), extend_inferencedata=False, progressbar=False
    )
    np.testing.assert_allclose(out[:], full["obs"].values.reshape(20, 1003), rtol=1e-12)


def test_nan_in_a_later_window_stops_the_fit(tmp_path):
    """NaN written into the file after construction: a window that holds it stops the fit
    (PyMC would otherwise see NaN data, or a minibatch would silently impute per batch)."""
    path = tmp_path / "y.npy"
    y = np.lib.format.open_memmap(path, mode="w+", dtype="float64", shape=(1000,))
    y[:] = np.random.default_rng(0).normal(size=1000)
    y.flush()
    yb = mb.Minibatch(np.load(path, mmap_mode="r"), batch_size=20, window=100, random_seed=0)
    y[500:600] = np.nan
    y.flush()
    with pytest.raises(mb.SourceError, match="NaN entries in rows read"), pm.Model():
        pm.Normal("y", pm.Normal("mu", 0, 10), 2.0, observed=yb)
        pm.fit(2000, random_seed=1, progressbar=False)


def test_a_loop_of_ones_own_refreshes_with_window_refresh(ids):
    """No begin(): the first refresh starts the reader; close() stops it."""
    x, y = ids
    xb, yb = mb.Minibatch(x, y, batch_size=10, window=100, steps_per_window=2)
    stream = _stream(xb)
    draw = pm.compile([], [xb, yb], random_seed=3)
    refresh = mb.WindowRefresh([stream])
    seen = set()
    for _ in range(40):
        xv, yv = draw()
        np.testing.assert_array_equal(xv[:, 0], yv)
        seen.update(yv.tolist())
        refresh(None)
    refresh.close()
    assert stream.windows >= 1 + 40 // 2 and len(seen) > 100


def test_two_window_buffers_serve_every_window(ids):
    """The reader writes into the retired window: after the first swap no window is allocated,
    and the windows still differ."""
    x, y = ids
    _, yb = mb.Minibatch(x, y, batch_size=10, window=100, steps_per_window=1)
    stream, shared = _stream(yb), yb.shared
    refresh = mb.WindowRefresh([stream])
    addresses, windows = set(), []
    for _ in range(30):
        refresh(None)
        value = shared.get_value(borrow=True)
        addresses.add(value.ctypes.data)
        windows.append(value.copy())
    refresh.close()
    assert len(addresses) == 2
    assert len({w.tobytes() for w in windows}) == 30


def test_hdf5_parquet_and_dask_sources_stay_paired_in_one_call(tmp_path):
    """Four kinds in one call (HDF5 X, Parquet y from two files of uneven row groups, a Dask
    array, an in-memory array): every batch's rows agree, across windows."""
    h5py = pytest.importorskip("h5py")
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    da = pytest.importorskip("dask.array")
    n = 900
    ids = np.arange(n, dtype="float64")
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f.create_dataset("x", data=np.stack([ids, -ids], 1), chunks=(64, 2))
    (tmp_path / "y").mkdir()
    pq.write_table(
        pa.table({"id": ids[:500], "other": ids[:500] * 3}),
        tmp_path / "y" / "a.parquet",
        row_group_size=70,
    )
    pq.write_table(
        pa.table({"id": ids[500:], "other": ids[500:] * 3}),
        tmp_path / "y" / "b.parquet",
        row_group_size=130,
    )
    with h5py.File(tmp_path / "x.h5", "r") as f:
        batches = mb.Minibatch(
            f["x"],
            mb.parquet(tmp_path / "y", columns="id"),
            da.from_array(2 * ids, chunks=50),
            3 * ids,
            batch_size=25,
            window=200,
            steps_per_window=2,
            random_seed=2,
        )
        stream = _stream(batches[0])
        assert stream.n_rows == n and [s.kind for s in stream.sources] == [
            "hdf5",
            "parquet",
            "dask",
            "array",
        ]
        seen = set()
        for xv, yv, dv, av in _drive(list(batches), 40):
            np.testing.assert_array_equal(xv[:, 0], yv)
            np.testing.assert_array_equal(-xv[:, 1], yv)
            np.testing.assert_array_equal(dv, 2 * yv)
            np.testing.assert_array_equal(av, 3 * yv)
            seen.update(yv.tolist())
    assert len(seen) > 400
