"""Apply one index to any number of datasets along one axis: the gather node.

:class:`MinibatchGatherOp` takes ``(index, *data)`` and returns ``(index, *batches)``, with
``batch_i = data_i[..., index, ...]`` along its ``axis``.  The order is PyMC's convention, made
to fit: ``pymc.data.MinibatchOp`` users map output *i* back to input *i* (``extract_obs_data``,
``remove_minibatched_nodes``), and VI passes input 0 — our index — to its Monte Carlo ``scan`` as
a non-sequence, so one index is drawn per optimisation step.  Several subsampled axes chain one
gather per axis.

``Minibatch`` (in ``_minibatch``) gives the batches its class, after the gather is built: a
copy of the graph holds plain ``TensorVariable`` batches, which :func:`source_of` still
recognises.  Their subsampled axis has no static
length, so a batch can be replaced by data of any length (``clone_replace``,
``more_replacements=``, ``sample_node``); the batch size is still a constant of the graph (the
index has a static shape) and every backend sees it after shape inference.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from typing import Any

import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.scalar import Cast
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.shape import SpecifyShape
from pytensor.tensor.variable import TensorVariable

from minibatch._compat import TakeRows
from minibatch._ops import BatchOp

# Rows copied ahead of the one being copied: their cache lines are requested early, so several
# rows come from memory at once (random rows of a large array miss every cache).
_PREFETCH_ROWS = 4


class RowTake(TakeRows):
    """``x[index]`` along axis 0: pytensor's row take (``_compat.TakeRows``), leaner in C.

    For a C-contiguous ``x`` and an int64 index, the C code copies whole rows with ``memcpy``,
    requests the cache lines of the rows a few positions ahead, checks every position once
    (negative positions count from the end, as in numpy; others raise ``IndexError``), and
    reuses the previous output buffer when its shape allows.  Anything else goes to numpy's
    ``take``, as pytensor's take does.  Numba gets the same loop
    (:func:`register_numba_take`); Python and JAX use the parent's code.
    """

    def __str__(self) -> str:
        return "RowTake"

    def make_node(self, *inputs: Any) -> Apply:
        register_numba_take()
        return super().make_node(*inputs)

    def c_code(self, node: Apply, name: str, inp: list[str], out: list[str], sub: dict) -> str:
        x, idx = inp
        (z,) = out
        fail = sub["fail"]
        return _ROW_TAKE_C % dict(x=x, idx=idx, z=z, fail=fail, ahead=_PREFETCH_ROWS)

    def c_code_cache_version(self) -> tuple[int, ...]:
        return (1, _PREFETCH_ROWS)


_ROW_TAKE_C = """
{
    PyArrayObject *x = %(x)s, *idx = %(idx)s;
    int nd = PyArray_NDIM(x);
    if (PyArray_NDIM(idx) != 1 || PyArray_TYPE(idx) != NPY_INT64
            || !PyArray_IS_C_CONTIGUOUS(x) || !PyArray_IS_C_CONTIGUOUS(idx)) {
        Py_XDECREF(%(z)s);
        %(z)s = (PyArrayObject*)PyArray_TakeFrom(x, (PyObject*)idx, 0, NULL, NPY_RAISE);
        if (%(z)s == NULL) %(fail)s;
    } else {
        npy_intp n = PyArray_DIMS(x)[0], k = PyArray_DIMS(idx)[0];
        npy_intp dims[NPY_MAXDIMS];
        npy_intp row = PyArray_ITEMSIZE(x);
        dims[0] = k;
        for (int d = 1; d < nd; d++) { dims[d] = PyArray_DIMS(x)[d]; row *= dims[d]; }
        if (%(z)s == NULL || PyArray_NDIM(%(z)s) != nd || PyArray_TYPE(%(z)s) != PyArray_TYPE(x)
                || !PyArray_IS_C_CONTIGUOUS(%(z)s) || !PyArray_ISWRITEABLE(%(z)s)
                || !PyArray_CompareLists(PyArray_DIMS(%(z)s), dims, nd)) {
            Py_XDECREF(%(z)s);
            %(z)s = (PyArrayObject*)PyArray_EMPTY(nd, dims, PyArray_TYPE(x), 0);
            if (%(z)s == NULL) %(fail)s;
        }
        const npy_int64 *pos = (const npy_int64*)PyArray_DATA(idx);
        const char *src = PyArray_BYTES(x);
        char *dst = PyArray_BYTES(%(z)s);
        for (npy_intp i = 0; i < k; i++) {
            npy_int64 j = pos[i] < 0 ? pos[i] + n : pos[i];
            if (j < 0 || j >= n) {
                PyErr_Format(PyExc_IndexError,
                             "index %%lld is out of bounds for axis 0 with size %%lld",
                             (long long)pos[i], (long long)n);
                %(fail)s;
            }
#if defined(__GNUC__) || defined(__clang__)
            if (i + %(ahead)s < k) {
                npy_int64 a = pos[i + %(ahead)s] < 0 ? pos[i + %(ahead)s] + n : pos[i + %(ahead)s];
                if (a >= 0 && a < n) {
                    const char *p = src + a * row;
                    for (npy_intp b = 0; b < row; b += 64) __builtin_prefetch(p + b, 0, 0);
                }
            }
#endif
            memcpy(dst + i * row, src + j * row, row);
        }
    }
}
"""


@functools.cache
def register_numba_take() -> None:
    """Numba: ``RowTake`` as a row-copy loop that prefetches like the C kernel.

    pytensor's own Numba code (``x[index]``) spends ~70-100 us on 500 random rows of a
    40000 x 100 float64 array; with the cache lines of the row ``_PREFETCH_ROWS`` ahead
    requested early, ~45-55 us.
    """
    if importlib.util.find_spec("numba") is None:
        return
    import numpy as np
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic
    from pytensor.link.numba.dispatch import basic as numba_basic

    @intrinsic
    def prefetch(typingctx: Any, array: Any, offset: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            data = context.make_array(signature.args[0])(context, builder, args[0]).data
            address = builder.bitcast(builder.gep(data, [args[1]]), ir.IntType(8).as_pointer())
            i32 = ir.IntType(32)
            fnty = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
            # the typed-pointer name; LLVM with opaque pointers upgrades it
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0i8")
            builder.call(fn, [address, i32(0), i32(0), i32(1)])
            return context.get_dummy_value()

        return types.none(array, types.intp), codegen

    # With an explicit cache key: pytensor 3 registers its own take for the parent class that
    # way, and that registration is looked up before any default-key one.
    @numba_basic.register_funcify_and_cache_key(RowTake)
    def numba_row_take(op: RowTake, node: Apply, **kwargs: Any) -> Any:
        @numba_basic.numba_njit
        def row_take(x: Any, index: Any) -> Any:
            n, k = x.shape[0], index.shape[0]
            width = x.size // n if n > 0 else 0
            rows = np.ascontiguousarray(x).reshape((n, width))
            flat = rows.reshape(n * width)
            line = max(1, 64 // x.itemsize)
            out = np.empty((k, width), dtype=x.dtype)
            for i in range(k):
                j = index[i] + n if index[i] < 0 else index[i]
                if j < 0 or j >= n:
                    raise IndexError("minibatch index out of bounds")
                if i + _PREFETCH_ROWS < k:
                    a = index[i + _PREFETCH_ROWS]
                    a = a + n if a < 0 else a
                    if a >= 0 and a < n:
                        for b in range(0, width, line):
                            prefetch(flat, a * width + b)
                for c in range(width):
                    out[i, c] = rows[j, c]
            return out.reshape((k, *x.shape[1:]))

        return row_take, f"minibatch.RowTake.{_PREFETCH_ROWS}"


class MinibatchGatherOp(BatchOp):
    """Marks a gather: inputs ``(index, *data)``, outputs ``(index, *batches)`` along ``axis``."""

    def __init__(self, *args: Any, axis: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.axis = axis

    def __str__(self) -> str:
        return "MinibatchGather"


def gather(index: TensorVariable, data: Sequence[TensorVariable], axis: int = 0) -> list[Any]:
    """Index every tensor in ``data`` with ``index`` along ``axis``, in one node.

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt
    >>> idx = pt.as_tensor(np.array([2, 0]))
    >>> xb, yb = gather(idx, [pt.as_tensor(np.arange(6).reshape(3, 2)), pt.as_tensor(np.arange(3))])
    >>> xb.eval().tolist(), yb.eval().tolist()
    ([[4, 5], [0, 1]], [2, 0])
    >>> xb.type.shape  # the batch axis stays open to replacement
    (None, 2)
    """
    index_in = pt.lvector("index")
    data_in = [d.type() for d in data]
    position = (slice(None),) * axis + (index_in,)
    batches_in = [RowTake()(d, index_in) if axis == 0 else d[position] for d in data_in]
    op = MinibatchGatherOp([index_in, *data_in], [index_in.copy(), *batches_in], axis=axis)
    _, *batches = op(index, *data)
    return batches


def source_of(var: Any) -> tuple[Any, list[tuple[int, Any]]]:
    """The stored data under ``var``'s gathers (and casts), and ``(axis, index)`` of each gather.

    ``var`` is a batch when the list is not empty; any copy of a batch's graph (a clone, a model
    rebuilt from its graph) is one too.

    >>> import numpy as np, pytensor.tensor as pt
    >>> data = pt.as_tensor(np.zeros((3, 2)))
    >>> (xb,) = gather(pt.as_tensor(np.array([2, 0])), [data])
    >>> source, gathers = source_of(xb.astype("float32"))
    >>> source is data, [axis for axis, _ in gathers]
    (True, [0])
    """
    source: Any = var
    gathers = []
    while source.owner is not None:
        node = source.owner
        if isinstance(node.op, MinibatchGatherOp):
            gathers.append((node.op.axis, node.inputs[0]))
            source = node.inputs[node.outputs.index(source)]
        elif isinstance(node.op, SpecifyShape) or (
            isinstance(node.op, Elemwise) and isinstance(node.op.scalar_op, Cast)
        ):
            source = node.inputs[0]
        else:
            break
    return source, gathers


def cast_source(var: TensorVariable, dtype: str) -> TensorVariable:
    """``var`` cast to ``dtype``; for a batch, the cast is pushed down to the stored data.

    The result of a cast of a batch is a batch again, drawn by the same indices, so PyMC still
    accepts it as observed data.
    """
    node = var.owner
    if node is None or not isinstance(node.op, MinibatchGatherOp):
        return pt.cast(var, dtype)
    index, *data = node.inputs
    source = data[node.outputs.index(var) - 1]
    (cast,) = gather(index, [cast_source(source, dtype)], node.op.axis)
    return cast
