"""Where array data lives: one aligned copy per source array, whatever number of calls use it.

``Minibatch`` copies array data once, so later edits of the caller's array cannot change a
model behind its back.  Two things about that copy matter for speed and memory:

* **Alignment.** Each copy starts on a 64-byte boundary.  JAX on a CPU uses a NumPy argument
  in place only when its buffer is 64-byte aligned and copies it otherwise, on every call;
  NumPy's large buffers start 16 bytes into a page, so an ordinary copy would cost one copy of
  the whole dataset per optimisation step on JAX.
* **One copy per source.**  Calls on the same array (``mb.Minibatch(x, batch_size=100)`` and
  ``mb.Minibatch(x, batch_size=1000)``) share one stored buffer instead of storing ``x`` twice.
  Each call still gets its own shared variable, so refilling one minibatch (``set_value``)
  replaces only its own buffer.  A source is reused only while it holds the same values as the
  stored copy (checked on every call, which costs a comparison instead of a copy).
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

ALIGNMENT = 64

# id(source) -> (weak reference to the source, {(dtype, shape): weak reference to the copy})
_COPIES: dict[int, tuple[weakref.ref, dict[tuple[str, tuple[int, ...]], weakref.ref]]] = {}

# Elements compared at a time when dtypes differ (bounds the temporary cast).
_CHUNK = 1 << 20


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array whose buffer starts on a 64-byte boundary.

    >>> a = aligned_empty((3, 5), "float32")
    >>> a.shape, a.dtype.name, a.ctypes.data % 64, a.flags.c_contiguous
    ((3, 5), 'float32', 0, True)
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def aligned_copy(array: np.ndarray, dtype: Any = None) -> np.ndarray:
    """A C-contiguous, 64-byte aligned copy of ``array`` (cast to ``dtype`` if given).

    >>> x = np.arange(6).reshape(2, 3)
    >>> y = aligned_copy(x, "float64")
    >>> y.tolist(), y.dtype.name, y.ctypes.data % 64, np.shares_memory(x, y)
    ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], 'float64', 0, False)
    """
    out = aligned_empty(array.shape, array.dtype if dtype is None else dtype)
    np.copyto(out, array, casting="unsafe")
    return out


def stored_copy(source: Any, array: np.ndarray, dtype: Any) -> np.ndarray:
    """The stored copy of ``array`` (the values of ``source``) as ``dtype``: reused or made.

    ``source`` is the object the caller passed (an array, a pandas object); a copy made for it
    before is returned again when it has the same dtype and shape and still equals ``array``.
    Sources that cannot be weakly referenced (lists) always get a new copy.

    >>> x = np.ones((4, 2))
    >>> stored_copy(x, x, "float64") is stored_copy(x, x, "float64")
    True
    >>> x[0, 0] = 5.0  # the caller changed its array: the next call copies again
    >>> float(stored_copy(x, x, "float64")[0, 0])
    5.0
    """
    dtype = np.dtype(dtype)
    key = (dtype.str, tuple(array.shape))
    entry = _COPIES.get(id(source))
    if entry is not None and entry[0]() is source:
        ref = entry[1].get(key)
        copy = None if ref is None else ref()
        if copy is not None and _equal(copy, array):
            return copy
    copy = aligned_copy(array, dtype)
    _remember(source, key, copy)
    return copy


def _remember(source: Any, key: tuple[str, tuple[int, ...]], copy: np.ndarray) -> None:
    entry = _COPIES.get(id(source))
    if entry is None or entry[0]() is not source:
        ident = id(source)

        def forget(_: weakref.ref) -> None:
            _COPIES.pop(ident, None)

        try:
            ref = weakref.ref(source, forget)
        except TypeError:
            return
        entry = (ref, {})
        _COPIES[ident] = entry
    entry[1][key] = weakref.ref(copy)


def _equal(copy: np.ndarray, array: np.ndarray) -> bool:
    """Whether ``array`` cast to ``copy``'s dtype equals ``copy`` (NaN equal to NaN)."""
    nan = copy.dtype.kind in "fc"
    if array.dtype == copy.dtype:
        return bool(np.array_equal(copy, array, equal_nan=nan))
    flat_copy, flat = copy.reshape(-1), np.ravel(array)
    for start in range(0, flat.size, _CHUNK):
        part = flat[start : start + _CHUNK].astype(copy.dtype)
        if not np.array_equal(flat_copy[start : start + _CHUNK], part, equal_nan=nan):
            return False
    return True
