"""The VI loss normalisation that PyMC gets wrong, mended by ``minibatch._upstream``."""

from __future__ import annotations

import inspect

import numpy as np
import pymc as pm
import pymc.variational.opvi as opvi
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.pytensorf import constant_fold
from pymc.variational.approximations import MeanFieldGroup
from pymc.variational.inference import Inference
from pymc.variational.minibatch_rv import get_scaling as pymc_get_scaling

import minibatch as mb
from minibatch import _compat, _upstream
from minibatch._upstream import backends, scaling, scan, seeding, stein

N, COLS, BATCH = 400, 10, 50


def test_pymc_still_has_the_bug():
    """Canary: when PyMC fixes its call, this fails and the workaround can go."""
    total_size = [pt.constant(N), pt.constant(COLS)]
    shape = constant_fold([pt.as_tensor(np.zeros((BATCH, COLS))).shape])
    with pytest.raises(IndexError):
        pymc_get_scaling(total_size, shape)


def test_install_is_idempotent_and_only_touches_opvi():
    mb.Minibatch(np.ones(3), batch_size=1)
    _upstream.install()
    assert opvi.get_scaling is scaling.get_scaling
    assert pm.variational.minibatch_rv.get_scaling is pymc_get_scaling


@pytest.mark.parametrize(
    "total_size", [N, (N, COLS), (N, None), (N, Ellipsis), (None, COLS)], ids=str
)
def test_normalising_constant_is_n_over_batch(total_size):
    data = np.random.default_rng(0).normal(size=(N, COLS))
    xb = mb.Minibatch(data, batch_size=BATCH)
    with pm.Model():
        mu = pm.Normal("mu", 0, 1, shape=COLS)
        pm.Normal("x", mu, 1, observed=xb, total_size=mb.as_given(total_size))
        approx = pm.ADVI().approx
    expected = 1.0 if total_size == (None, COLS) else N / BATCH
    assert float(approx.symbolic_normalizing_constant.eval()) == pytest.approx(expected)


def test_wrapper_leaves_well_formed_calls_alone():
    ts = [pt.constant(N), pt.constant(COLS)]
    shape = pt.as_tensor(np.zeros((BATCH, COLS))).shape
    assert scaling.get_scaling(ts, shape).eval() == pymc_get_scaling(ts, shape).eval()


# ---- canaries: each workaround's defect, per version (they fail when upstream changes) ----

PYMC_6 = _compat.PYMC_VERSION >= (6,)


def test_probes_find_the_defects_of_both_supported_versions():
    """Present in pymc 5.28.5 and 6.4.0 alike; a probe that turns False means a fix upstream."""
    assert scaling.present()
    assert scan.refusal_present()
    assert scan.repeats_present()
    assert seeding.update_rngs_unseeded()
    assert seeding.update_rngs_frozen()
    assert seeding.particles_use_global_state()
    assert stein.present()


def test_version_gates_are_the_measured_ones():
    assert _compat.VI_PARAMS_LACK_STATIC_SHAPES is (not PYMC_6)
    assert _compat.FIT_LEAVES_JAX_ARRAYS is (not PYMC_6)
    assert _compat.JAX_PASSES_GENERATORS is _compat.PYTENSOR_3
    assert _compat.SCAN_COPIES_GENERATORS is (not _compat.PYTENSOR_3)


def test_canary_scan_bodies_copy_generators_pytensor_2002():
    """pytensor's own Scan of a draw, compiled with Numba: on 2.38 the body's draw copies its
    generator at each iteration (not in place), on pytensor 3 it works in place."""
    from pytensor.scan.op import Scan
    from pytensor.tensor.random.type import RandomType

    def step(generator):
        next_generator, draw = pt.random.normal.make_node(generator, None, 0.0, 1.0).outputs
        return next_generator, draw

    rng = pytensor.shared(np.random.default_rng(0))
    final, draws = pytensor.scan(step, outputs_info=[rng, None], n_steps=5, return_updates=False)
    f = pytensor.function([], draws, updates={rng: final}, mode="NUMBA")
    f()
    (node,) = [n for n in f.maker.fgraph.apply_nodes if isinstance(n.op, Scan)]
    (inner_rng,) = [v for v in node.op.fgraph.inputs if isinstance(v.type, RandomType)]
    ((reader, position),) = node.op.fgraph.clients[inner_rng]
    in_place = [position] in reader.op.destroy_map.values()
    assert in_place is (not _compat.SCAN_COPIES_GENERATORS)


def _tiny_advi():
    with pm.Model():
        pm.Normal("mu", 0, 1, shape=3)
        return pm.ADVI(random_seed=0)


def test_canary_vi_parameter_shapes_pymc_8359():
    """pymc's own parameters: unknown shapes on 5.28, static on 6.4 (so the wrapper stays off)."""
    mb.Minibatch(np.ones(3), batch_size=1)  # installs what this version needs
    create = inspect.unwrap(MeanFieldGroup.create_shared_params)
    group = _tiny_advi().approx.groups[0]
    shapes = {p.type.shape for p in create(group).values()}
    assert shapes == ({(3,)} if PYMC_6 else {(None,)})
    patched = MeanFieldGroup.create_shared_params is not create
    assert patched is _compat.VI_PARAMS_LACK_STATIC_SHAPES


def test_canary_jax_arrays_after_a_jax_fit_pymc_8360():
    """pymc's own ``fit``: jax arrays left in the parameters on 5.28, NumPy arrays on 6.4."""
    pytest.importorskip("jax")
    inference = _tiny_advi()
    fit = inspect.unwrap(Inference.fit)
    fit(inference, 3, progressbar=False, compile_kwargs=dict(mode="JAX"))
    kinds = {isinstance(p.get_value(borrow=True), np.ndarray) for p in inference.approx.params}
    for p in inference.approx.params:  # leave nothing that crashes the C backend later
        p.set_value(np.asarray(p.get_value(borrow=True)))
    assert kinds == {PYMC_6}


def test_canary_minibatch_rv_has_no_jax_or_numba_conversion_of_pymcs_own():
    """The conversions registered for ``MinibatchRandomVariable`` are still ours, not PyMC's."""
    pytest.importorskip("jax")
    from pymc.variational.minibatch_rv import MinibatchRandomVariable
    from pytensor.link.jax.dispatch import jax_funcify

    mb.Minibatch(np.ones(3), batch_size=1)
    assert jax_funcify.registry[MinibatchRandomVariable].__module__ == backends.__name__


def _rng_passed_through_twice() -> None:
    rng, other = (
        pytensor.shared(np.random.default_rng(0)),
        pytensor.shared(np.random.default_rng(1)),
    )
    next_rng, x = pt.random.normal.make_node(rng, [3], 0.0, 1.0).outputs
    next_other, z = pt.random.normal.make_node(other, [3], 0.0, 1.0).outputs
    # x's value is unused: pytensor rewrites its draw away, and rng's update becomes rng itself
    f = pytensor.function(
        [], [z, pt.ones_like(x)], updates={rng: next_rng, other: next_other}, mode="JAX"
    )
    f()
    f()


def test_canary_jax_identity_rng_update(monkeypatch):
    """pytensor 3's JAX linker fails on the second call; 2.38 does not; the wrapper mends it."""
    pytest.importorskip("jax")
    from pytensor.link.jax.linker import JAXLinker

    mb.Minibatch(np.ones(3), batch_size=1)
    _rng_passed_through_twice()  # with the workaround, where it applies
    with monkeypatch.context() as m:
        m.setattr(JAXLinker, "jit_compile", inspect.unwrap(JAXLinker.jit_compile))
        if _compat.PYTENSOR_3:
            with pytest.raises(TypeError, match="Generator"):
                _rng_passed_through_twice()
        else:
            _rng_passed_through_twice()


@pytest.mark.filterwarnings("ignore:You are using experimental inference Operator:UserWarning")
def test_asvgd_steps_draw_fresh_monte_carlo_samples():
    """Every RNG an ASVGD step reads is updated by it (PyMC left the Monte Carlo one frozen)."""
    from pytensor.tensor.random.type import RandomType

    y = np.random.default_rng(0).normal(size=100)
    with pm.Model():
        mu = pm.Normal("mu", 0, 10)
        pm.Normal("y", mu, 1, observed=mb.Minibatch(y, batch_size=10))
        inference = pm.ASVGD()
        step = inference.objective.step_function(score=False, obj_n_mc=10)
    rngs = [i for i in step.maker.inputs if isinstance(i.variable.type, RandomType)]
    assert len(rngs) == 2  # the index and the Monte Carlo draws
    assert all(i.update is not None for i in rngs)
    before = [i.variable.get_value(borrow=True).bit_generator.state for i in rngs]
    step()
    after = [i.variable.get_value(borrow=True).bit_generator.state for i in rngs]
    assert all(b != a for b, a in zip(before, after, strict=True))
