"""What differs between the two supported stacks, in one place.

Supported: pymc 5.28 / pytensor 2.38 (CPython 3.11) and pymc 6.4 / pytensor 3.3 (CPython 3.12
and 3.13).  Every other module imports the differing names from here, so no version test sits
anywhere else.  What this module knows:

* **The C backend's mode name.**  In pytensor 3 ``mode="FAST_RUN"`` (and the default mode)
  compile with Numba; the C backend is ``"CVM"``, a name pytensor 2.38 accepts too.
  :data:`C_MODE` is that name.
* **The take Ops.**  ``x[idx]`` compiles to ``AdvancedSubtensor1`` on pytensor 2.38 and to
  ``AdvancedSubtensor`` on pytensor 3 (where ``AdvancedSubtensor1`` is gone); :data:`TAKE_OPS`
  holds those that exist.
* **Ops that carry an axis.**  ``pt.logsumexp`` is one Op on pytensor 3 only
  (:data:`LOGSUMEXP_OPS`, empty on 2.38, where it is a graph of Ops that carry their axes).
* **Ops built for their input types.**  pytensor 3's ``SymbolicOp``s (:data:`SYMBOLIC_OPS`)
  are rebuilt by calling them, not by ``make_node``.
* **Where Join and sorts keep their axis** (:func:`axis_and_operands`): an input on 2.38,
  a prop on 3.
* **``default_update``.**  pytensor 3 deprecates setting ``SharedVariable.default_update``
  and offers no replacement, while still honouring it.  The legacy promise "a plain
  ``pytensor.function`` draws a new batch on every call" rests on it (PyMC's own compile finds
  the update through the Op instead).  :func:`set_default_update` sets it with that one
  deprecation caught; ``tests/test_compat.py`` fails when pytensor stops honouring it.
* **Where a warning is reported** (:func:`warn_at_user_line`): at the first frame of the
  user's code, outside minibatch, PyMC and PyTensor (:func:`user_frame`), through
  ``skip_file_prefixes`` on Python 3.12+ and a stack walk computing ``stacklevel`` on 3.11.
* **Numba's Scan and untraced tensor states** (:data:`NUMBA_UNTRACED_TENSORS`): pytensor 3's
  Numba Scan carries a tensor state untraced (its last value only), 2.38's does not (its
  code generator assumes an untraced state is a generator: ``KeyError: 'outer_in_2'``); there
  ``mb.fit``'s Scan traces its tensor states, and pytensor cuts those buffers.
* **A Scan body's draws** (:data:`SCAN_COPIES_GENERATORS`): pytensor 2.38 copies every
  generator a Scan carries at each iteration (pytensor#2002; on Numba through object mode);
  ``_upstream.scan_rngs`` makes the draws of ``mb.fit``'s Scan work in place there.
* **Where a model variable keeps its dims** (:data:`MODEL_VAR_DIMS_ARE_PROPS`): pymc 6 keeps
  name and dims on the ``ModelVar`` Op of ``pymc.model.fgraph``; pymc 5.28 gives the dims as
  constant inputs.
* **Upstream defects decided by version**, for the ``_upstream`` workarounds that no cheap
  probe can decide (each has a canary per version in ``tests/test_upstream.py``).
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterable
from types import FrameType
from typing import Any

import pymc
import pytensor
from pymc.model import fgraph as _model_fgraph
from pytensor.compile import SharedVariable
from pytensor.compile import builders as _builders
from pytensor.scan.op import Scan as _ScanOp
from pytensor.tensor import special as _special
from pytensor.tensor import subtensor as _subtensor


def _release(version: str) -> tuple[int, ...]:
    """``"6.4.0"`` -> ``(6, 4, 0)``; pre-release and local parts are dropped.

    >>> _release("3.3.8"), _release("5.28.5+dev1"), _release("6.4.0rc1")
    ((3, 3, 8), (5, 28, 5), (6, 4, 0))
    """
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group().split(".")) if match else ()


PYMC_VERSION = _release(pymc.__version__)
PYTENSOR_VERSION = _release(pytensor.__version__)
PYTENSOR_3 = PYTENSOR_VERSION >= (3,)

C_MODE = "CVM"

MODEL_VAR_DIMS_ARE_PROPS = "dims" in getattr(_model_fgraph.ModelVar, "__props__", ())

TAKE_OPS: tuple[type, ...] = tuple(
    getattr(_subtensor, name)
    for name in ("AdvancedSubtensor1", "AdvancedSubtensor")
    if hasattr(_subtensor, name)
)
# pytensor 3 builds some Ops (softmax, log-softmax, logsumexp, ...) as ``SymbolicOp``s whose
# graph is fixed for the input types they were called with: ``make_node`` on inputs of another
# static shape pins them back with a SpecifyShape, while calling the Op builds a fresh graph.
SYMBOLIC_OPS: tuple[type, ...] = tuple(
    getattr(_builders, name) for name in ("SymbolicOp",) if hasattr(_builders, name)
)


def axis_and_operands(node: Any, axis_input: int) -> tuple[Any, list[int]]:
    """The ``axis`` of a Join or sort node and the positions of its tensor operands.

    pytensor 2.38 passes the axis as input ``axis_input`` (0 for Join, 1 for sorts); pytensor 3
    holds it as a prop (``op.axis``) and every input is an operand.  An axis input is returned
    as the variable.
    """
    if "axis" in getattr(node.op, "__props__", ()):
        return node.op.axis, list(range(len(node.inputs)))
    others = [k for k in range(len(node.inputs)) if k != axis_input]
    return node.inputs[axis_input], others


# ``pt.logsumexp`` is a graph of Max, Exp, Sum and Log on pytensor 2.38 and one Op carrying
# its ``axis`` (``LogSumExp``) on pytensor 3.
LOGSUMEXP_OPS: tuple[type, ...] = tuple(
    getattr(_special, name) for name in ("LogSumExp",) if hasattr(_special, name)
)

# pymc#8359 (VI parameters of unknown shape) and pymc#8360 (JAX arrays left in the parameters
# after a JAX fit) are fixed in pymc 6.4.0.
VI_PARAMS_LACK_STATIC_SHAPES = PYMC_VERSION < (6, 4)
FIT_LEAVES_JAX_ARRAYS = PYMC_VERSION < (6, 4)
# pytensor 3's JAX linker hands a function whose RNG update became the RNG itself (the draw was
# rewritten away) a numpy Generator from the second call on; 2.38 does not.
JAX_PASSES_GENERATORS = PYTENSOR_3
NUMBA_UNTRACED_TENSORS = PYTENSOR_3
# pytensor#2002 (fixed by pytensor#2003, in pytensor 3): a Scan's body never draws in place, so
# every iteration copies each generator it carries; the fix gave Scan the method asked here.
SCAN_COPIES_GENERATORS = not hasattr(_ScanOp, "inner_destroyable_inputs")


_DEFAULT_UPDATE_DEPRECATION = "Setting default_update is deprecated"


def set_default_update(shared: SharedVariable, update: Any) -> None:
    """``shared.default_update = update``, with pytensor 3's deprecation of the setter caught.

    The behaviour is kept on purpose (see the module notes); the warning is caught for this one
    assignment only, so any other use of the setter still warns.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", _DEFAULT_UPDATE_DEPRECATION, DeprecationWarning)
        shared.default_update = update


def _installed(distribution: str) -> tuple[int, ...] | None:
    """The installed release of ``distribution``, read from its metadata without importing it.

    >>> _installed("numpy") >= (1, 26), _installed("no-such-distribution-here")
    (True, None)
    """
    from importlib import metadata

    try:
        return _release(metadata.version(distribution))
    except metadata.PackageNotFoundError:
        return None


# zarr 3.2.0 added the array config ``read_missing_chunks`` (zarr-python#3748): with False, a
# read of a chunk missing from the store raises ``ChunkNotFoundError`` instead of returning the
# fill value. zarr 3.1 has no such option. Read from metadata: zarr is optional, imported lazily.
ZARR_VERSION = _installed("zarr")
ZARR_READ_MISSING_CHUNKS = ZARR_VERSION is not None and ZARR_VERSION >= (3, 2)


# The packages whose frames are not the user's: a warning raised from inside them is reported
# at the first frame outside them.
INTERNAL_DIRS: tuple[str, ...] = tuple(
    os.path.dirname(os.path.abspath(path)) + os.sep
    for path in (__file__, pymc.__file__, pytensor.__file__)
    if path
)


def _internal(filename: str) -> bool:
    return os.path.abspath(filename).startswith(INTERNAL_DIRS)


def user_frame(frames: Iterable[tuple[str, int]] | None = None) -> tuple[str, int] | None:
    """``(filename, line)`` of the first frame outside minibatch, PyMC and PyTensor.

    ``frames`` (innermost first) defaults to the calling stack; ``None`` when every frame is
    internal (a call from inside PyMC with no user code on the stack).
    """
    if frames is None:
        frames = _stack()
    for filename, line in frames:
        if not _internal(filename):
            return filename, line
    return None


def _stack() -> Iterable[tuple[str, int]]:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        yield frame.f_code.co_filename, frame.f_lineno
        frame = frame.f_back


def warn_at_user_line(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` reported at the user's line, not inside a library.

    Python 3.12+ skips the frames of minibatch, PyMC and PyTensor with ``skip_file_prefixes``;
    3.11 walks the stack for the ``stacklevel`` of the first frame outside them.
    """
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, skip_file_prefixes=INTERNAL_DIRS)
        return
    level = 1
    frame: FrameType | None = sys._getframe(0)
    while frame is not None and _internal(frame.f_code.co_filename):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)
