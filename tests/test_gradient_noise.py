"""The gradient-noise benchmark measures what the mathematics says (fixed seeds, reduced sizes).

The data term's gradient at a fixed point is (N/B) times a batch's sum of per-row gradients:
its variance is ``N^2 / B`` times their population variance with replacement, ``(N - B)/(N - 1)``
times that without, and the average over an epoch (B divides N) is the full-data gradient
exactly.  A measured variance is a mean of K squared deviations ``d_k^2``; over independent
steps its standard error is ``sd(d^2) / sqrt(K)``, and the checks allow 5 of them.  Within an
epoch of m batches the deviations sum to zero (correlation ``-1/(m - 1)``, roughly Gaussian),
so their squares correlate by ``1/(m - 1)^2`` and the variance of the mean grows by
``1 + 1/(m - 1)``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gradient_noise.py"
SCHEMES = ("with_replacement", "without_replacement", "epoch")


@pytest.fixture(scope="module")
def gn():
    spec = importlib.util.spec_from_file_location("gradient_noise", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.fixture(scope="module")
def conjugate_terms(gn):
    problem = gn.conjugate_problem(1000, 100)
    grads = {s: gn.data_term_gradients(problem, s, 1000, seed=3) for s in SCHEMES}
    return problem, grads, gn.summarise_data_term(problem, grads)


def test_the_per_row_gradients_sum_to_the_full_data_gradient(gn):
    """At the exact posterior mean the full likelihood gradient balances the prior's."""
    problem = gn.conjugate_problem(1000, 100)
    (mean,), _ = problem.exact()["mu"]
    prior = -(mean - problem.mu0) / problem.tau0**2
    np.testing.assert_allclose(problem.per_row_gradients().sum(), -prior, rtol=1e-9)


def test_subsampling_variance_matches_the_finite_population_correction(conjugate_terms):
    problem, _, summary = conjugate_terms
    n, b = problem.n, problem.batch
    wr = summary["theory_with_replacement"]
    y = problem.data
    assert wr == pytest.approx(n**2 / b * y.var() / problem.sigma**4)
    assert summary["fpc"] == (n - b) / (n - 1)
    inflation = {"with_replacement": 1.0, "without_replacement": 1.0}
    inflation["epoch"] = np.sqrt(1 + 1 / (n // b - 1))
    for scheme in SCHEMES:
        row = summary[scheme]
        expected = wr if scheme == "with_replacement" else wr * summary["fpc"]
        assert row["theory"] == pytest.approx(expected)
        assert abs(row["trace"] - expected) < 5 * row["se"] * inflation[scheme], scheme


def test_the_average_over_an_epoch_is_the_full_data_gradient(conjugate_terms):
    problem, grads, summary = conjugate_terms
    steps = problem.n // problem.batch
    epochs = grads["epoch"].reshape(-1, steps, 1).mean(1)
    full = problem.per_row_gradients().sum(0)
    np.testing.assert_allclose(epochs, np.broadcast_to(full, epochs.shape), atol=1e-9)
    assert summary["epoch"]["epoch_average_trace"] < 1e-12 * summary["epoch"]["trace"]
    for scheme in ("with_replacement", "without_replacement"):  # independent steps: trace / m
        row = summary[scheme]
        assert row["epoch_average_theory"] == pytest.approx(row["theory"] / steps)
        assert row["epoch_average_trace"] > 0.5 * row["epoch_average_theory"]


def test_the_seeds_model_epoch_average_is_exact_in_every_component(gn):
    problem = gn.seeds_problem(rows=1000, cols=3, batch=50)
    grads = {s: gn.data_term_gradients(problem, s, 400, seed=2) for s in SCHEMES[::2]}
    summary = gn.summarise_data_term(problem, grads)
    assert summary["epoch"]["epoch_average_trace"] < 1e-12 * summary["epoch"]["trace"]
    row = summary["with_replacement"]
    assert abs(row["trace"] - row["theory"]) < 5 * row["se"]
    assert grads["epoch"].shape == (400, 6)  # mu and log sd, 3 columns each


def test_the_elbo_gradient_is_zero_on_average_at_the_exact_posterior(gn):
    """The exact posterior is Gaussian, so it is ADVI's optimum: E[gradient] = 0 there."""
    problem = gn.conjugate_problem(1000, 100)
    grads = {s: gn.elbo_gradients(problem, s, 600, seed=4) for s in SCHEMES}
    for scheme, g in grads.items():
        se = g.std(0) / np.sqrt(len(g))
        assert (np.abs(g.mean(0)) < 5 * se).all(), scheme
    summary = gn.summarise_elbo(problem, grads)
    # the Monte Carlo draw of z changes every step: an epoch's average still varies
    assert 0 < summary["epoch"]["epoch_average_trace"] < summary["epoch"]["trace"] / 5


def test_quick_run_writes_the_json_and_the_plot(gn, tmp_path, capsys):
    import json

    out, png = tmp_path / "noise.json", tmp_path / "noise.png"
    results = gn.main(["--quick", "--fits=1", f"--json={out}", f"--plot={png}"])
    assert "| conjugate | epoch |" in capsys.readouterr().out
    assert json.loads(out.read_text())["models"].keys() == {"conjugate", "seeds"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for model in results["models"].values():
        for scheme in SCHEMES:
            [fit] = model["fit"][scheme]["fits"]
            assert len(fit["distance"]) == len(fit["steps"]) > 0
            assert model["data_term"][scheme]["trace"] > 0
