"""Minibatches for PyMC that stay synchronised, scale right, and fit with ``pm.fit``.

``import minibatch as mb`` gives :func:`Minibatch`, a drop-in replacement for ``pm.Minibatch``.

How it works, in three separable pieces (index, apply, scale)
-------------------------------------------------------------
Index (``_index``)
    One pytensor ``RandomVariable`` draws ``batch_size`` positions with replacement from one
    shared numpy Generator. It is wrapped in an Op subclassing ``pymc.data.MinibatchOp`` so
    PyMC accepts observed data that depends on it, and its RNG carries a ``default_update`` so
    PyMC's compile (which reseeds it from ``random_seed``) and plain ``pytensor.function`` both
    advance it.
Apply (``_gather``)
    One gather node applies that index to every dataset of a ``Minibatch`` call: the outputs are
    synchronised by construction, not by equal seeds. The index is the gather's input 0, which
    PyMC's VI passes to its Monte Carlo ``scan`` as a non-sequence: one batch per step, shared by
    every ``obj_n_mc`` sample. Batches keep an open leading axis so that they can be replaced by
    data of any length, while the batch size stays a graph constant for static-shape backends.
Scale (``_observed``, ``_total_size``; PyMC's ``total_size`` wrapper)
    An observed minibatch gets ``total_size`` = its stored data's length on each subsampled axis
    when none is given; an explicit one is validated and checked against the stored data
    (``as_given`` opts out). PyMC's ``MinibatchRandomVariable`` then multiplies the density by
    ``N / batch`` per axis in ``model.logp()`` and in VI, whose loss normaliser reads the same
    wrapper (mended in ``_upstream``). :func:`full_data_model` undoes batches and scaling for
    prediction.

Layers, each importing only those before it (``tests/test_layers.py``)
----------------------------------------------------------------------
``_compat`` (what differs between pymc 5.28 / pytensor 2.38 and pymc 6.4 / pytensor 3.3),
``_ops`` (the Op base), ``_storage`` and ``_inputs`` (data), ``_spec``, ``_numba_index``,
``_schemes`` (draws without replacement and epochs) and ``_index`` (the index), ``_gather``,
``_variable`` (the batch's legacy attributes), ``_derived``, ``_total_size``, ``_pairing`` and
``_observed`` (model hooks), ``_upstream`` (workarounds), ``_guards``, ``_minibatch`` (the
public ``Minibatch``), ``_predict`` and ``_transform`` (``minibatch_model``: a full-data model
turned into its minibatch version).  Streaming out-of-core data adds ``_sources`` (reading
rows of memmaps, Zarr, HDF5, Parquet, Dask), ``_window`` (which rows a window holds),
``_stream`` (the windows and their reader thread) and ``_streamfit`` (driving them inside
``pm.fit``, and starting epoch indices afresh).

Where later features plug in
----------------------------
* Numba / JAX: the index and gather are ordinary pytensor Ops once PyMC's inline rewrite has
  opened the two wrappers; a backend that needs more registers a dispatch for them.
* SVGD / ASVGD: the same input-0 convention puts the index outside the particle scan.
* Legacy API (multi-axis batch specs, ``.shared``, ``set_value``, aligned seeds): one gather
  node per subsampled axis; ``Minibatch`` (a ``TensorVariable`` subclass) carries the
  attributes, and objects built with the same int seed share one index variable.
* Other sampling schemes (``sampling="without_replacement"`` or ``"epoch"``): another draw
  inside the index Op (``_schemes``, with its C, Numba and JAX implementations); the gather and
  the scaling stay as they are.  ``index_of`` exposes the index itself, for local latent
  variables (``z[index_of(xb)]``).
"""

from minibatch._fitting import (
    Converged,
    FitReport,
    FullDataCheck,
    NotConvergedWarning,
    check_fit,
    fit,
    pareto_khat,
)
from minibatch._gather import epoch_of, index_of
from minibatch._minibatch import Minibatch, align_minibatches
from minibatch._observed import as_given
from minibatch._pairing import UnpairedMinibatchWarning
from minibatch._predict import full_data_model, log_likelihood
from minibatch._sources import SourceError, parquet
from minibatch._streamfit import WindowRefresh
from minibatch._total_size import TotalSizeWarning
from minibatch._transform import minibatch_model

__version__ = "0.1.0"

__all__ = [
    "Converged",
    "FitReport",
    "FullDataCheck",
    "Minibatch",
    "NotConvergedWarning",
    "SourceError",
    "TotalSizeWarning",
    "UnpairedMinibatchWarning",
    "WindowRefresh",
    "__version__",
    "align_minibatches",
    "as_given",
    "check_fit",
    "epoch_of",
    "fit",
    "full_data_model",
    "index_of",
    "log_likelihood",
    "minibatch_model",
    "pareto_khat",
    "parquet",
]
