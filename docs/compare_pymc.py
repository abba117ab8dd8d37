"""Checks each row of docs/compatibility.md's comparison with ``pm.Minibatch``; run it to re-verify.

``python docs/compare_pymc.py`` prints one line per case: what pm.Minibatch does, what
mb.Minibatch does.  Exceptions are shown by type and the start of their message.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace

import minibatch as mb

warnings.filterwarnings("ignore")
DATA = np.random.default_rng(0).normal(size=(400, 10))


def outcome(fn) -> str:  # type: ignore[no-untyped-def]
    try:
        return f"ok: {fn()}"
    except Exception as exc:  # reporting any failure is the point
        first_line = (str(exc).splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first_line[:70]}"


def column_model(make, total_size):  # type: ignore[no-untyped-def]
    """``x ~ N(mu, 1)`` with ``mu ~ N(0, 1)`` per column, observed through ``make(DATA)``."""
    xb = make(DATA, batch_size=50)
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 1, shape=10)
        pm.Normal("x", mu, 1, observed=xb, total_size=total_size)
    return model


def advi_tuple_total_size(make):  # type: ignore[no-untyped-def]
    with column_model(make, DATA.shape):
        approx = pm.fit(20, progressbar=False, random_seed=0)
    return f"loss {approx.hist[-1]:.4g}"


def normalising_constant_int_rank2(make):  # type: ignore[no-untyped-def]
    with column_model(make, 400):
        const = pm.ADVI().approx.symbolic_normalizing_constant.eval()
    return f"{float(const):g} (N/batch = 8)"


def int64_poisson(make):  # type: ignore[no-untyped-def]
    cb = make(np.arange(100, dtype="int64") % 7, batch_size=10)
    with pm.Model() as model:
        lam = pm.Exponential("lam", 1)
        pm.Poisson("c", lam, observed=cb, total_size=100)
    return f"logp {model.compile_logp()({'lam_log__': 0.0}):.4g}"


def numpy_int_batch_size(make):  # type: ignore[no-untyped-def]
    return make(DATA, batch_size=np.int64(4)).eval().shape


def replace_by_other_length(make):  # type: ignore[no-untyped-def]
    xb = make(DATA, batch_size=50)
    return clone_replace(xb.sum(), {xb: pt.as_tensor(DATA[:7])}).eval().round(3)


def mismatched_lengths(make):  # type: ignore[no-untyped-def]
    make(DATA, DATA[:-1], batch_size=5)
    return "accepted at construction"


def obj_n_mc_3(make):  # type: ignore[no-untyped-def]
    with column_model(make, 400):
        approx = pm.fit(20, obj_n_mc=3, progressbar=False, random_seed=0)
    return f"loss {approx.hist[-1]:.4g}"


def short_total_size_tuple(make):  # type: ignore[no-untyped-def]
    model = column_model(make, (400,))
    return f"logp {model.compile_logp()({'mu': np.zeros(10)}):.4g}"


def svgd(make):  # type: ignore[no-untyped-def]
    with column_model(make, 400):
        approx = pm.fit(20, method="svgd", progressbar=False, random_seed=0)
    return f"{approx.histogram.get_value().shape[0]} particles"


def jax_prior_predictive(make):  # type: ignore[no-untyped-def]
    with column_model(make, 400):
        prior = pm.sample_prior_predictive(3, random_seed=0, compile_kwargs=dict(mode="JAX"))
    return prior.prior_predictive["x"].shape


CASES = [
    advi_tuple_total_size,
    normalising_constant_int_rank2,
    int64_poisson,
    numpy_int_batch_size,
    replace_by_other_length,
    mismatched_lengths,
    obj_n_mc_3,
    short_total_size_tuple,
    svgd,
    jax_prior_predictive,
]

if __name__ == "__main__":
    logging.getLogger("pytensor").setLevel(logging.CRITICAL)
    logging.getLogger("pymc").setLevel(logging.CRITICAL)
    # pm.Minibatch first: building an mb.Minibatch mends PyMC's VI normalising constant.
    pm_results = [outcome(lambda c=case: c(pm.Minibatch)) for case in CASES]
    mb_results = [outcome(lambda c=case: c(mb.Minibatch)) for case in CASES]
    print(f"pymc {pm.__version__}, pytensor {pytensor.__version__}, minibatch {mb.__version__}")
    for case, pm_result, mb_result in zip(CASES, pm_results, mb_results, strict=True):
        print(f"{case.__name__}\n  pm.Minibatch: {pm_result}\n  mb.Minibatch: {mb_result}")
