"""What ``_compat`` relies on in each pytensor, checked so that a change upstream is noticed."""

from __future__ import annotations

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode

from minibatch import _compat
from minibatch._index import index_rv


def test_default_update_is_still_honoured_by_plain_functions():
    """The legacy promise (a plain ``pytensor.function`` draws a new batch) rests on it."""
    rng = pytensor.shared(np.random.default_rng(0))
    next_rng, draw = index_rv.make_node(rng, [4], 0, 1000).outputs
    _compat.set_default_update(rng, next_rng)
    f = pytensor.function([], draw)
    assert not np.array_equal(f(), f())


def test_setting_default_update_directly_is_deprecated_on_pytensor_3_only():
    """When this fails on pytensor 3, the deprecation moved on (removal, or a replacement)."""
    rng = pytensor.shared(np.random.default_rng(0))
    next_rng, _ = index_rv.make_node(rng, [4], 0, 1000).outputs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rng.default_update = next_rng
    deprecated = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert bool(deprecated) is _compat.PYTENSOR_3
    assert rng.default_update is not None


def test_calling_a_random_variable_without_return_next_rng_warns_on_pytensor_3_only():
    """Why the package builds its draws with ``make_node``."""
    rng = pytensor.shared(np.random.default_rng(0))
    if _compat.PYTENSOR_3:
        with pytest.warns(DeprecationWarning, match="return_next_rng"):
            pt.random.normal(size=2, rng=rng)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pt.random.normal(size=2, rng=rng)


def test_c_mode_is_the_c_backend_and_fast_run_is_numba_on_pytensor_3():
    c_linker = get_mode(_compat.C_MODE).linker
    assert type(c_linker).__name__ == "VMLinker" and c_linker.c_thunks
    fast_run = type(get_mode("FAST_RUN").linker).__name__
    assert (fast_run == "NumbaLinker") is _compat.PYTENSOR_3
