"""mb.fit on every backend and method, every sampling scheme, streamed windows, local latents.

The conjugate normal model has an exact posterior (one parameter: mean-field and full-rank are
both exact), so every cell is held to the goal's bounds in posterior sds: the rule aims at an
RMS of 0.1 and a largest error of 0.25-0.3 with probability 0.95 (docs/convergence.md).
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest

import minibatch as mb
from minibatch._fitting._fit import local_variables

pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using experimental inference Operator:UserWarning"
)

LINKERS = {"CVM": "VMLinker", "NUMBA": "NumbaLinker", "JAX": "JAXLinker"}


def _conjugate_model(c, batch):
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=batch)
    return model


def _errors(approx, c):
    mean, sd = float(approx.mean.eval()[0]), float(approx.std.eval()[0])
    return abs(mean - c.post_mean) / c.post_sd, abs(np.log(sd / c.post_sd))


def _converged_fit(model, **kwargs):
    with model, warnings.catch_warnings():
        warnings.simplefilter("error", mb.NotConvergedWarning)
        return mb.fit(progressbar=False, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
@pytest.mark.parametrize("mode", list(LINKERS))
def test_every_backend_and_method_reaches_the_exact_posterior(conjugate, mode, method):
    model = _conjugate_model(conjugate, mb.Minibatch(conjugate.y, batch_size=100))
    approx = _converged_fit(model, method=method, random_seed=5, compile_kwargs=dict(mode=mode))
    step = approx.report.inference.state.step
    assert type(step.maker.linker).__name__ == LINKERS[mode]  # compiled where asked
    assert approx.report.converged and approx.report.rollbacks == 0
    mean_err, logsd_err = _errors(approx, conjugate)
    assert mean_err <= 0.3 and logsd_err <= 0.25


@pytest.mark.parametrize("method", ["svgd", "asvgd"])
def test_particle_methods_are_refused_with_the_reason(conjugate, method):
    model = _conjugate_model(conjugate, mb.Minibatch(conjugate.y, batch_size=100))
    with model, pytest.raises(NotImplementedError, match="set of particles") as err:
        mb.fit(100, method=method)
    assert f"pm.fit(method={method!r})" in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("sampling", ["with_replacement", "without_replacement", "epoch"])
def test_every_sampling_scheme_reaches_the_exact_posterior(conjugate, sampling):
    batch = mb.Minibatch(conjugate.y, batch_size=100, sampling=sampling)
    approx = _converged_fit(_conjugate_model(conjugate, batch), random_seed=7)
    mean_err, logsd_err = _errors(approx, conjugate)
    assert mean_err <= 0.3 and logsd_err <= 0.25


@pytest.mark.slow
def test_streamed_windows_are_averaged_over_many_windows(conjugate, tmp_path):
    """Sorted data, so every window of 100 rows has its own optimum, many posterior sds from
    the full-data one: the average is right only if it spans many windows, and its MCSE only
    if its batches do (the batches are whole windows: 10 steps each here)."""
    c = conjugate
    path = tmp_path / "y.npy"
    np.save(path, np.sort(c.y))
    source = np.load(path, mmap_mode="r")
    batch = mb.Minibatch(source, batch_size=10, window=100, steps_per_window=10)
    approx = _converged_fit(_conjugate_model(c, batch), random_seed=3)
    averager = approx.report.inference._minibatch_fit_run.averager
    assert averager.rule.batch_size % 10 == 0  # whole windows
    assert approx.report.averaged >= 8 * averager.rule.batch_size
    mean_err, logsd_err = _errors(approx, c)
    assert mean_err <= 0.3 and logsd_err <= 0.25


def _local_model(n=100, batch=50, seed=20261203):
    """z_i ~ N(0.5, 1), y_i ~ N(z_i, 0.7^2): each z_i's posterior is exact and normal."""
    y = np.random.default_rng(seed).normal(0.5, np.hypot(1.0, 0.7), size=n)
    yb = mb.Minibatch(y, batch_size=batch)
    with pm.Model() as model:
        z = pm.Normal("z", 0.5, 1.0, shape=n)
        pm.Normal("y", z[mb.index_of(yb)], 0.7, observed=yb)
    precision = 1 + 1 / 0.7**2
    return model, (0.5 + y / 0.7**2) / precision, precision**-0.5


@pytest.mark.slow
def test_local_latents_reach_every_rows_posterior():
    model, post_mean, post_sd = _local_model()
    approx = _converged_fit(model, random_seed=2)
    mean = approx.mean.eval()
    sd = approx.std.eval()
    errors = np.abs(mean - post_mean) / post_sd
    # 100 parameters: RMS at most 0.1 and the largest at most 0.3 (docs/convergence.md)
    assert np.sqrt(np.mean(errors**2)) <= 0.1 and errors.max() <= 0.3
    assert np.abs(np.log(sd / post_sd)).max() <= 0.3


def test_full_rank_over_local_latents_is_refused():
    model, _, _ = _local_model()
    assert local_variables(model) == ["z"]
    with model, pytest.raises(NotImplementedError, match=r"local latent variables \(\['z'\]"):
        mb.fit(10, method="fullrank_advi")


def test_local_variables_of_minibatch_model_and_none_without():
    y = np.arange(40.0)
    with pm.Model(coords={"obs": range(40)}) as full:
        w = pm.Normal("w")
        z = pm.Normal("z", 0, 1, dims="obs")
        pm.Normal("y", w + z, 0.5, observed=y, dims="obs")
    assert local_variables(mb.minibatch_model(full, 10, local=["z"], random_seed=1)) == ["z"]
    assert local_variables(mb.minibatch_model(full, 10, random_seed=1)) == []
