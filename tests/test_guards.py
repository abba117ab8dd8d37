"""Samplers that need the full data refuse minibatch models; the full-data model samples right."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest

import minibatch as mb
from minibatch._guards import minibatch_observations


def model_of(c, make=mb.Minibatch):
    yb = make(c.y, batch_size=100)
    with pm.Model() as model:
        mu = pm.Normal("mu", c.mu0, c.tau0)
        pm.Normal("y", mu, c.sigma, observed=yb, total_size=len(c.y))
    return model


CALLS = {
    "sample": lambda: pm.sample(draws=5, tune=5, chains=1, progressbar=False),
    "find_MAP": lambda: pm.find_MAP(progressbar=False),
    "sample_smc": lambda: pm.sample_smc(draws=10, chains=1, progressbar=False),
}


@pytest.mark.parametrize("name", list(CALLS))
@pytest.mark.parametrize("make", [mb.Minibatch, pm.Minibatch], ids=["mb", "pm"])
def test_samplers_refuse_minibatch_models_naming_the_variables(conjugate, name, make):
    mb.Minibatch(np.ones(3), batch_size=1)  # installs the guards
    with (
        model_of(conjugate, make),
        pytest.raises(
            ValueError, match=rf"pm\.{name} needs the full data.*\['y'\].*full_data_model"
        ),
    ):
        CALLS[name]()


def test_the_guard_reaches_every_namespace_of_a_sampler(conjugate):
    from minibatch._guards import GUARDED

    with model_of(conjugate):
        for name, modules in GUARDED.items():
            for module in modules:
                with pytest.raises(ValueError, match="needs the full data"):
                    getattr(module, name)()


def test_models_without_minibatches_are_not_refused(conjugate):
    mb.Minibatch(np.ones(3), batch_size=1)
    with pm.Model() as model:
        mu = pm.Normal("mu", conjugate.mu0, conjugate.tau0)
        pm.Normal("y", mu, conjugate.sigma, observed=conjugate.y)
        idata = pm.sample(draws=20, tune=20, chains=1, progressbar=False, random_seed=1)
    assert minibatch_observations(model) == []
    assert idata.posterior["mu"].shape == (1, 20)


def test_the_full_data_model_samples_the_exact_posterior(conjugate, nuts_draws):
    """NUTS, 2 chains x 1000 draws (ESS >= ~800): the mean within 0.15 posterior sd (over 4 MC
    standard errors) and the sd within 10 % (over 3 of its standard errors)."""
    model = model_of(conjugate)
    with mb.full_data_model(model):
        draws = nuts_draws("mu", seed=7, tune=500)
    assert abs(draws.mean() - conjugate.post_mean) < 0.15 * conjugate.post_sd
    assert abs(draws.std() - conjugate.post_sd) < 0.10 * conjugate.post_sd
