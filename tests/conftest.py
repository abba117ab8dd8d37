"""Shared fixtures: small deterministic data and the conjugate normal model's exact posterior.

Every test also checks that it leaves pytensor's config flags as it found them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytensor
import pytest


def pytensor_flags() -> dict[str, Any]:
    """The value of every pytensor config flag."""
    config = pytensor.config
    return {name: getattr(config, name) for name in config._config_var_dict}


def restore_pytensor_flags(saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Put back every flag that differs from ``saved``; return them as ``{name: (was, now)}``."""
    now = pytensor_flags()
    changed = {name: (was, now[name]) for name, was in saved.items() if now[name] != was}
    for name, (was, _) in changed.items():
        setattr(pytensor.config, name, was)
    return changed


@pytest.fixture(autouse=True)
def _pytensor_flags_are_left_unchanged():
    """A flag left changed slows or alters every later test: pytensor's compile sets ``cxx=""``
    (Python implementations, 10-60x slower) and ``traceback__limit=0`` inside
    ``config.change_flags``, which is not thread-safe.  Restore it and fail the test."""
    saved = pytensor_flags()
    yield
    changed = restore_pytensor_flags(saved)
    assert not changed, f"the test left pytensor flags changed (was, now): {changed}"


@dataclass(frozen=True)
class Conjugate:
    """y_i ~ N(mu, sigma^2) with sigma known and mu ~ N(mu0, tau0^2): the posterior is exact."""

    y: np.ndarray
    sigma: float
    mu0: float
    tau0: float

    @property
    def post_precision(self) -> float:
        return 1 / self.tau0**2 + len(self.y) / self.sigma**2

    @property
    def post_mean(self) -> float:
        return (self.mu0 / self.tau0**2 + self.y.sum() / self.sigma**2) / self.post_precision

    @property
    def post_sd(self) -> float:
        return self.post_precision**-0.5


@pytest.fixture(scope="session")
def conjugate() -> Conjugate:
    rng = np.random.default_rng(20261121)
    return Conjugate(y=rng.normal(3.0, 2.0, size=1000), sigma=2.0, mu0=0.0, tau0=10.0)


@pytest.fixture
def rows() -> np.ndarray:
    """A 12x3 float array whose row i holds i, 100 + i, 200 + i: any column tells the row."""
    i = np.arange(12.0)[:, None]
    return i + np.array([0.0, 100.0, 200.0])


@pytest.fixture
def nuts_draws():
    """NUTS draws of one variable of the model in context: 2 chains x 1000, on one core."""
    import pymc as pm

    def draw(name: str, seed: int, tune: int = 1000) -> np.ndarray:
        idata = pm.sample(
            1000,
            tune=tune,
            chains=2,
            cores=1,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
        )
        return idata.posterior[name].values.ravel()

    return draw
