"""``total_size``: VI's loss normalisation.

``symbolic_normalizing_constant`` calls ``get_scaling(total_size, constant_fold([shape]))``:
the shape vector arrives wrapped in a one-element tuple, a regression of pymc PR #7787
("Do not include rvs in symbolic normalizing constant"; no upstream issue filed as of
pymc 6.4.0).  ``get_scaling`` then reads the whole shape vector as the first axis, so a tuple
``total_size`` raises ``IndexError: tuple index out of range`` and an int ``total_size`` on a
rank-2 observed multiplies every axis' ratio together (loss 400x too small in the seeds' model).
Our wrapper unwraps that tuple and leaves every other call untouched.

Present in pymc 5.28.5 and 6.4.0.  :func:`present` asks PyMC's ``get_scaling`` the question
opvi asks it, for a 2 x 3 observed with ``total_size=(8, 3)`` (a symbolic graph, no compile).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pymc.variational.opvi as _opvi
import pytensor.tensor as pt
from pymc.pytensorf import constant_fold
from pymc.variational.minibatch_rv import get_scaling as _pymc_get_scaling

from minibatch._upstream._patch import patch


def get_scaling(total_size: Any, shape: Any) -> Any:
    """PyMC's ``get_scaling``, accepting the ``[shape_vector]`` form that opvi passes."""
    if isinstance(shape, tuple | list) and len(shape) == 1 and getattr(shape[0], "ndim", 0) == 1:
        shape = shape[0]
    return _pymc_get_scaling(total_size, shape)


@functools.cache
def present() -> bool:
    """Whether opvi's form of the call fails or mis-scales: expected 8 / 2 = 4."""
    shape = constant_fold([pt.as_tensor(np.zeros((2, 3))).shape], raise_not_constant=False)
    try:
        value = _pymc_get_scaling([pt.constant(8), pt.constant(3)], shape).eval()
    except IndexError:
        return True
    return bool(not np.isclose(value, 4.0))


def install() -> None:
    """Mend opvi's ``get_scaling`` call where it is broken (idempotent)."""
    if present():
        patch(_opvi, "get_scaling", lambda _: get_scaling)
