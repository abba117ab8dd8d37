"""``total_size``: VI's loss normalisation.

``symbolic_normalizing_constant`` calls ``get_scaling(total_size, constant_fold([shape]))``:
the shape vector arrives wrapped in a one-element tuple, a regression of pymc PR #7787
("Do not include rvs in symbolic normalizing constant"; no upstream issue filed as of
pymc 5.28.5).  ``get_scaling`` then reads the whole shape vector as the first axis, so a tuple
``total_size`` raises ``IndexError: tuple index out of range`` and an int ``total_size`` on a
rank-2 observed multiplies every axis' ratio together (loss 400x too small in the seeds' model).
Our wrapper unwraps that tuple and leaves every other call untouched.
"""

from __future__ import annotations

from typing import Any

import pymc.variational.opvi as _opvi
from pymc.variational.minibatch_rv import get_scaling as _pymc_get_scaling

from minibatch._upstream._patch import patch


def get_scaling(total_size: Any, shape: Any) -> Any:
    """PyMC's ``get_scaling``, accepting the ``[shape_vector]`` form that opvi passes."""
    if isinstance(shape, tuple | list) and len(shape) == 1 and getattr(shape[0], "ndim", 0) == 1:
        shape = shape[0]
    return _pymc_get_scaling(total_size, shape)


def install() -> None:
    """Mend opvi's ``get_scaling`` call (idempotent)."""
    patch(_opvi, "get_scaling", lambda _: get_scaling)
