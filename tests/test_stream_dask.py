"""A Dask array on a ``dask.distributed.LocalCluster`` (loopback workers started here) as the
source of a streamed fit: windows are computed on the cluster, the fit runs in this process."""

from __future__ import annotations

import time

import numpy as np
import pymc as pm
import pytest

import minibatch as mb
from minibatch._gather import source_of
from minibatch._stream import stream_of

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


def _cluster():
    return distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: tests and other clusters may run at once
    )


@pytest.fixture(scope="module")
def client():
    with _cluster() as cluster, distributed.Client(cluster) as client:
        yield client


def _fit(yb, steps, seed=1, **kw):
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 2.0, observed=yb)
        return pm.fit(
            steps,
            random_seed=seed,
            progressbar=False,
            obj_optimizer=pm.adam(learning_rate=0.01),
            **kw,
        )


def test_windows_are_computed_on_the_cluster(client, conjugate):
    c = conjugate
    y = client.persist(da.from_array(c.y, chunks=50))  # the chunks live on the workers
    yb = mb.Minibatch(y, batch_size=100, window=200, steps_per_window=20)
    stream = stream_of(source_of(yb)[0])
    assert stream.n_rows == 1000 and stream.bounds.tolist() == list(range(0, 1001, 50))
    with distributed.get_task_stream(client) as tasks:
        approx = _fit(yb, 4000)
    workers = {t["worker"] for t in tasks.data}
    assert workers and all(w.startswith("tcp://127.0.0.1:") for w in workers)
    assert stream.windows >= 4000 // 20
    # the exact posterior mean, to 5 % (its sd is 0.063, 2 % of the mean)
    assert abs(float(approx.mean.eval()[0]) - c.post_mean) < 0.05 * abs(c.post_mean)


def test_a_lost_cluster_stops_the_fit_within_the_timeout(conjugate):
    with _cluster() as cluster, distributed.Client(cluster) as client:
        y = client.persist(da.from_array(conjugate.y, chunks=50))
        yb = mb.Minibatch(y, batch_size=100, window=200, steps_per_window=5, timeout=3)

        def lose_cluster(approx, losses, i):
            if i == 12:
                cluster.close()

        start = time.monotonic()
        with pytest.raises(mb.SourceError) as info:
            _fit(yb, 500, callbacks=[lose_cluster])
        assert time.monotonic() - start < 60
    assert np.isfinite(info.value.approx.mean.eval()).all()
