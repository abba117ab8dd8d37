"""Every backend, every VI method: the 4 x 3 matrix, the seeds' model, forward sampling, seeds."""

from __future__ import annotations

import importlib

import numpy as np
import pymc as pm
import pytensor
import pytest

import minibatch as mb
from minibatch.demo import make_data

# PyMC warns on every ASVGD that the method is experimental; that is PyMC's to say.
pytestmark = pytest.mark.filterwarnings(
    "ignore:You are using experimental inference Operator:UserWarning"
)

MODES = ["CVM", "NUMBA", "JAX"]
METHODS = ["advi", "fullrank_advi", "svgd", "asvgd"]
# Steps, learning rate and Monte Carlo size per method: enough to converge on every backend.
# The Stein methods cost O(particles^2) a step: 50 particles (or draws) over 4000-5000 steps left
# the mean within 0.32 and the sd within 0.26 of the tolerances below, on every backend and
# both stacks, at about a third of the time of 100 over 10000.
SETTINGS = {
    "advi": dict(n=10000, learning_rate=0.005),
    "fullrank_advi": dict(n=10000, learning_rate=0.005),
    "svgd": dict(n=4000, learning_rate=0.005, inf_kwargs=dict(n_particles=50)),
    "asvgd": dict(n=5000, learning_rate=0.006, obj_n_mc=50),
}


def test_requested_backends_are_installed():
    """A backend test must never skip silently: numba and jax are test dependencies."""
    for name in ("numba", "jax"):
        importlib.import_module(name)


def conjugate_model(c):
    yb = mb.Minibatch(c.y, batch_size=100)
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=yb, total_size=len(c.y))
    return model


def fit(model, method, mode, seed=3, **overrides):
    settings = {**SETTINGS[method], **overrides}
    lr = settings.pop("learning_rate")
    with model:
        return pm.fit(
            method=method,
            random_seed=seed,
            progressbar=False,
            compile_kwargs=dict(mode=mode),
            obj_optimizer=pm.adam(learning_rate=lr),
            **settings,
        )


def moments(approx):
    """Posterior mean and sd of the single free variable, from the approximation's parameters."""
    if hasattr(approx, "histogram"):
        particles = approx.histogram.eval()[:, 0]
        return particles.mean(), particles.std()
    if hasattr(approx, "cov"):
        return approx.mean.eval()[0], np.sqrt(approx.cov.eval()[0, 0])
    return approx.mean.eval()[0], approx.std.eval()[0]


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_matrix_conjugate_posterior(conjugate, method, mode):
    """Batch 100 of n = 1000: mean within 5 %, sd within 20 % of the exact posterior."""
    mean, sd = moments(fit(conjugate_model(conjugate), method, mode))
    assert abs(mean - conjugate.post_mean) < 0.05 * abs(conjugate.post_mean)
    assert abs(sd - conjugate.post_sd) < 0.20 * conjugate.post_sd


@pytest.fixture(scope="module")
def seeds_data():
    return make_data(40000, 100)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_seeds_model_tuple_total_size_every_backend(seeds_data, mode):
    xb = mb.Minibatch(seeds_data, batch_size=500)
    with pm.Model():
        mu = pm.Normal("mu", 0, sigma=1e5, shape=100)
        sd = pm.HalfNormal("sd", shape=100)
        pm.Normal("lik", mu, sigma=sd, observed=xb, total_size=seeds_data.shape)
        approx = pm.fit(
            10000,
            random_seed=1,
            progressbar=False,
            compile_kwargs=dict(mode=mode),
            obj_optimizer=pm.adam(learning_rate=0.05),
        )
    assert np.isfinite(approx.hist).all()
    fitted = approx.mean.eval()[:100]  # mu is first in the flat parameter vector
    # posterior sds of the column means are <= 0.013; 0.3 leaves room for the SGD noise only
    np.testing.assert_allclose(fitted, seeds_data.mean(0), atol=0.3)


@pytest.mark.parametrize("mode", ["NUMBA", "JAX"])
def test_prior_and_posterior_predictive_compile(conjugate, mode):
    model = conjugate_model(conjugate)
    with model:
        prior = pm.sample_prior_predictive(draws=20, random_seed=1, compile_kwargs=dict(mode=mode))
        idata = pm.fit(200, random_seed=1, progressbar=False).sample(20, random_seed=2)
        post = pm.sample_posterior_predictive(
            idata, random_seed=3, compile_kwargs=dict(mode=mode), progressbar=False
        )
    assert prior.prior_predictive["y"].shape == (1, 20, 100)
    assert np.isfinite(post.posterior_predictive["y"]).all()


@pytest.mark.parametrize("method", ["advi", "svgd"])
def test_after_a_jax_fit_the_default_backend_works(conjugate, method):
    model = conjugate_model(conjugate)
    approx = fit(model, method, "JAX", n=100)
    assert all(isinstance(p.get_value(), np.ndarray) for p in approx.params)
    assert approx.sample(10, random_seed=0).posterior["mu"].shape == (1, 10)
    assert np.isfinite(approx.mean.eval()).all()
    node = approx.sample_node(model["mu"] * 2, size=5)
    assert node.eval().shape == (5,)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", MODES)
def test_same_seed_same_fit_every_backend(conjugate, method, mode):
    def state(seed):
        approx = fit(conjugate_model(conjugate), method, mode, seed=seed, n=30)
        return np.concatenate([approx.hist, *(p.get_value().ravel() for p in approx.params)])

    first, again, other = state(5), state(5), state(6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_svgd_particles_ignore_numpy_global_state(conjugate):
    def particles():
        with conjugate_model(conjugate):
            return pm.SVGD(n_particles=10, random_seed=4).approx.histogram.get_value()

    np.random.seed(1)
    first = particles()
    np.random.seed(2)
    state = np.random.get_state()
    np.testing.assert_array_equal(first, particles())
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # the caller's state is kept


def test_floatx_float32_on_c_and_numba():
    """JAX under float32 is left out: pytensor then runs JAX without x64 (docs/compatibility.md)."""
    y = np.random.default_rng(0).normal(size=500)
    with pytensor.config.change_flags(floatX="float32"):
        yb = mb.Minibatch(y, batch_size=50)
        with pm.Model():
            mu = pm.Normal("mu", 0, 10)
            pm.Normal("y", mu, 1, observed=yb, total_size=500)
            for mode in ["CVM", "NUMBA"]:
                approx = pm.fit(50, progressbar=False, compile_kwargs=dict(mode=mode))
                assert approx.params[0].dtype == "float32"
                assert np.isfinite(approx.hist).all()
