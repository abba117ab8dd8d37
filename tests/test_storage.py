"""Stored data: one 64-byte aligned copy per source array, shared by every call that uses it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import minibatch as mb
from minibatch._storage import _COPIES, aligned_copy, aligned_empty, stored_copy


def stored(batch):
    """The buffer a minibatch draws from."""
    return batch.shared.get_value(borrow=True)


@pytest.mark.parametrize("dtype", ["float64", "float32", "int8", "bool"])
@pytest.mark.parametrize("shape", [(0,), (1,), (7, 3), (1000, 13)])
def test_aligned_arrays(shape, dtype):
    for _ in range(5):  # several allocations: any start offset would show
        a = aligned_empty(shape, dtype)
        assert a.size == 0 or a.ctypes.data % 64 == 0  # an empty array points anywhere
        assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
    src = np.arange(np.prod(shape)).reshape(shape)[..., ::-1]  # not contiguous
    b = aligned_copy(src, dtype)
    assert (b.size == 0 or b.ctypes.data % 64 == 0) and b.flags.c_contiguous
    np.testing.assert_array_equal(b, src.astype(dtype))


def test_calls_on_one_array_store_it_once():
    x = np.random.default_rng(0).normal(size=(200, 3))
    a = mb.Minibatch(x, batch_size=10)
    b = mb.Minibatch(x, batch_size=50)
    assert a.shared is not b.shared
    assert stored(a) is stored(b)
    assert not np.shares_memory(stored(a), x)  # still a copy of the caller's array
    assert stored(a).ctypes.data % 64 == 0
    assert a.eval().shape == (10, 3) and b.eval().shape == (50, 3)


def test_one_call_with_two_arrays_and_pandas_sources():
    frame = pd.DataFrame(np.arange(40.0).reshape(20, 2))
    xa, ya = mb.Minibatch(frame, frame[0], batch_size=4)
    xb, _ = mb.Minibatch(frame, frame[0], batch_size=6)
    assert stored(xa) is stored(xb)
    assert stored(xa) is not stored(ya)
    np.testing.assert_array_equal(stored(xa), frame.to_numpy())


def test_refill_replaces_only_its_own_buffer():
    x = np.ones((30, 2))
    a = mb.Minibatch(x, batch_size=5)
    b = mb.Minibatch(x, batch_size=5, random_seed=None)
    a.set_value(np.full((40, 2), 7.0))
    np.testing.assert_array_equal(stored(b), x)
    assert (a.eval() == 7.0).all() and (b.eval() == 1.0).all()
    assert stored(a).ctypes.data % 64 == 0  # refills are aligned too


def test_changed_source_is_copied_again():
    x = np.zeros((30, 2))
    a = mb.Minibatch(x, batch_size=5)
    x[3, 1] = np.nan
    b = mb.Minibatch(x, batch_size=5)
    assert stored(a) is not stored(b)
    assert not np.isnan(stored(a)).any()
    assert np.isnan(stored(b)[3, 1])
    c = mb.Minibatch(x, batch_size=5)  # NaN equals NaN: unchanged since b
    assert stored(c) is stored(b)


def test_dtype_and_shape_get_their_own_copy():
    x = np.arange(60.0).reshape(30, 2)
    a = mb.Minibatch(x, batch_size=5)
    f32 = mb.Minibatch(x, batch_size=5, dtype="float32")
    part = mb.Minibatch(x, 5, in_memory_size=20)
    assert stored(f32).dtype == np.float32 and stored(a).dtype == np.float64
    assert stored(part).shape == (20, 2)
    assert len({id(stored(v)) for v in (a, f32, part)}) == 3


def test_cast_comparison_goes_by_chunks(monkeypatch):
    monkeypatch.setattr("minibatch._storage._CHUNK", 7)
    x = np.arange(50, dtype=np.int64)
    first = stored_copy(x, x, "float64")
    assert stored_copy(x, x, "float64") is first
    x[49] = 1
    assert stored_copy(x, x, "float64") is not first


def test_sources_are_not_kept_alive():
    x = np.ones((10, 2))
    mb.Minibatch(x, batch_size=2)
    key = id(x)
    assert key in _COPIES
    del x
    assert key not in _COPIES


def test_lists_are_copied_each_time():
    rows = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]
    a, b = mb.Minibatch(rows, batch_size=2), mb.Minibatch(rows, batch_size=2)
    assert stored(a) is not stored(b)
    np.testing.assert_array_equal(stored(a), stored(b))


def test_jax_uses_the_stored_buffer_in_place():
    jax = pytest.importorskip("jax")
    x = np.random.default_rng(1).normal(size=(4000, 25))
    buffer = stored(mb.Minibatch(x, batch_size=10))
    # JAX on a CPU copies a NumPy argument unless it is 64-byte aligned; NumPy's own large
    # buffers are not (that copy cost JAX a whole dataset per step).
    assert jax.device_put(buffer).unsafe_buffer_pointer() == buffer.ctypes.data
