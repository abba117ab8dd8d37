"""JAX: functions whose RNG update is the RNG itself keep working after their first call.

pytensor 3's rewrites drop a random draw whose value nothing uses and turn its RNG update into
the RNG itself.  That happens to the minibatch index in forward sampling
(``pm.sample_prior_predictive`` / ``sample_posterior_predictive`` with ``mode="JAX"``): the
batch size is a graph constant, so the sampled observation no longer needs the index.  pytensor's
JAX linker converts numpy Generators to JAX keys once, when the function is built; such an
identity update writes a numpy Generator back into the input, and the second call fails with
``TypeError: ... argument ... of type numpy.random._generator.Generator`` (pytensor 3.3.8, also
with no minibatch in the graph; no upstream issue found; pytensor 2.38 is not affected).

The wrapper of ``JAXLinker.jit_compile`` converts Generator arguments with pytensor's own
``jax_typify``, only for functions that have such an identity output, so no other function
(a VI step among them) pays a check per call.  Applied on pytensor 3 (``_compat``).
"""

from __future__ import annotations

import functools
from typing import Any

from minibatch import _compat
from minibatch._upstream._patch import patch


def passes_rng_through(fgraph: Any) -> bool:
    """Whether an output of ``fgraph`` is one of its RNG inputs, unchanged."""
    from pytensor.tensor.random.type import RandomType

    inputs = set(fgraph.inputs)
    return any(out in inputs and isinstance(out.type, RandomType) for out in fgraph.outputs)


def converting_generators(jit_compile: Any) -> Any:
    """Wrap ``JAXLinker.jit_compile``: Generator arguments become JAX keys on every call."""

    @functools.wraps(jit_compile)
    def wrapper(self: Any, fn: Any) -> Any:
        compiled = jit_compile(self, fn)
        if not passes_rng_through(self.fgraph):
            return compiled
        import numpy as np
        from pytensor.link.jax.dispatch import jax_typify

        def call(*args: Any) -> Any:
            return compiled(
                *(jax_typify(a) if isinstance(a, np.random.Generator) else a for a in args)
            )

        return call

    return wrapper


def install() -> None:
    """Apply the wrapper where pytensor's JAX linker has the defect (idempotent)."""
    if not _compat.JAX_PASSES_GENERATORS:
        return
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        return
    from pytensor.link.jax.linker import JAXLinker

    patch(JAXLinker, "jit_compile", converting_generators)
