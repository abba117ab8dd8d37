"""Numba and JAX: what PyMC's VI and forward sampling need to compile and stay usable.

Static VI parameter shapes (pymc#8359)
    ``MeanFieldGroup``, ``FullRankGroup`` and ``EmpiricalGroup`` create their parameters as
    shared variables of unknown shape, although the shapes are known.  Depending on rewrite
    order, a shape then reaches a JAX ``broadcast_to`` as a traced value and compilation fails
    (``TypeError: Shapes must be 1D sequences of concrete values``), in some fresh processes and
    not others.  The wrapper re-creates the parameters with static shapes; other backends only
    gain shape information.  In SVGD's particle matrix, axes of length 1 stay unknown: a static
    1 makes the axis broadcastable, which breaks the type checks of the scan over particles.
NumPy parameters after a fit (pymc#8360)
    A JAX step function leaves ``jax.Array`` objects in the parameters' storage; the default
    backend then crashes on them (``approx.mean.eval()`` segfaults).  After ``Inference.fit``
    returns, non-NumPy parameter values are copied back into NumPy arrays.
``MinibatchRandomVariable`` on JAX and Numba
    PyMC's ``total_size`` wrapper has no JAX conversion (``pm.sample_prior_predictive`` with
    ``mode="JAX"`` fails) and no Numba one (object-mode fallback).  Forward, it is an identity on
    its first input; that is registered through pytensor's dispatch, when the backend is installed.

Which apply: the first two by pymc's version (``_compat``: fixed in 6.4.0), the third by a look
at pytensor's dispatch tables (:func:`minibatch_rv_unconverted`).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import numpy as np
import pymc.variational.approximations as _approximations
import pytensor
from pymc.variational.inference import Inference
from pymc.variational.minibatch_rv import MinibatchRandomVariable

from minibatch import _compat
from minibatch._upstream._patch import patch

GROUPS = (
    _approximations.MeanFieldGroup,
    _approximations.FullRankGroup,
    _approximations.EmpiricalGroup,
)


def with_static_shapes(create: Any) -> Any:
    """Wrap ``create_shared_params`` so the shared parameters it returns have static shapes."""

    @functools.wraps(create)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        params = create(self, *args, **kwargs)
        scanned = isinstance(self, _approximations.EmpiricalGroup)
        return {key: _static(value, keep_ones_open=scanned) for key, value in params.items()}

    return wrapper


def _static(shared: Any, keep_ones_open: bool) -> Any:
    value = shared.get_value(borrow=True)
    shape = tuple(None if keep_ones_open and n == 1 else n for n in value.shape)
    return pytensor.shared(value, name=shared.name, shape=shape, borrow=True)


def with_numpy_params(fit: Any) -> Any:
    """Wrap ``Inference.fit`` so the approximation's parameters hold NumPy arrays afterwards."""

    @functools.wraps(fit)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fit(self, *args, **kwargs)
        finally:
            for param in self.approx.params:
                value = param.get_value(borrow=True)
                if not isinstance(value, np.ndarray):
                    param.set_value(np.asarray(value))

    return wrapper


def minibatch_rv_unconverted() -> dict[str, bool]:
    """For JAX and Numba (where installed): whether ``MinibatchRandomVariable`` lacks its own
    conversion, so that pytensor would fail (JAX) or fall back to object mode (Numba)."""
    missing = {}
    if importlib.util.find_spec("jax") is not None:
        from pytensor.link.jax.dispatch import jax_funcify

        missing["jax"] = MinibatchRandomVariable not in jax_funcify.registry
    if importlib.util.find_spec("numba") is not None:
        from pytensor.link.numba.dispatch import basic as numba_basic

        tables = (numba_basic.numba_funcify, numba_basic.numba_funcify_default_op_cache_key)
        missing["numba"] = all(MinibatchRandomVariable not in t.registry for t in tables)
    return missing


@functools.cache
def register_minibatch_rv_dispatch() -> None:
    """Forward, ``MinibatchRandomVariable(rv, *total_size)`` is ``rv``: say so to JAX and Numba."""
    missing = minibatch_rv_unconverted()
    if missing.get("jax"):
        from pytensor.link.jax.dispatch import jax_funcify

        @jax_funcify.register(MinibatchRandomVariable)
        def jax_minibatch_rv(op: Any, **kwargs: Any) -> Any:
            def identity(rv: Any, *total_size: Any) -> Any:
                return rv

            return identity

    if missing.get("numba"):
        from pytensor.link.numba.dispatch import basic as numba_basic

        @numba_basic.register_funcify_default_op_cache_key(MinibatchRandomVariable)
        def numba_minibatch_rv(op: Any, node: Any, **kwargs: Any) -> Any:
            @numba_basic.numba_njit
            def identity(rv: Any, *total_size: Any) -> Any:
                return rv

            return identity


def install() -> None:
    """Apply the backend workarounds this pymc / pytensor needs (idempotent)."""
    if _compat.VI_PARAMS_LACK_STATIC_SHAPES:
        for group in GROUPS:
            patch(group, "create_shared_params", with_static_shapes)
    if _compat.FIT_LEAVES_JAX_ARRAYS:
        patch(Inference, "fit", with_numpy_params)
    register_minibatch_rv_dispatch()
