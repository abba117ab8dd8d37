"""Minibatches that belong together but are drawn separately: warned, with the one-call fix."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pymc as pm
import pytest

import minibatch as mb

N, COUNTIES, SLOPE = 919, 85, -0.64


@pytest.fixture(scope="module")
def radon():
    """Data shaped like the notebook's: 919 houses in 85 counties, floor 0/1, log radon."""
    rng = np.random.default_rng(919)
    county = rng.integers(0, COUNTIES, N)
    floor = (rng.random(N) < 0.2).astype(float)
    intercepts = rng.normal(1.5, 0.3, COUNTIES)
    log_radon = intercepts[county] + SLOPE * floor + rng.normal(0, 0.75, N)
    return log_radon, floor, county


def model_of(log_radon, floor, county, total_size=N):
    with pm.Model() as model:
        mu_a = pm.Normal("mu_a", 0, 10)
        sigma_a = pm.HalfNormal("sigma_a", 5)
        a = pm.Normal("a", mu_a, sigma_a, shape=COUNTIES)
        b = pm.Normal("b", 0, 10)
        eps = pm.HalfNormal("eps", 5)
        pm.Normal(
            "log_radon", a[county] + b * floor, eps, observed=log_radon, total_size=total_size
        )
    return model


def separate(radon):
    log_radon, floor, county = radon
    return (
        mb.Minibatch(log_radon, batch_size=100, name="log_radon_b"),
        mb.Minibatch(floor, batch_size=100, name="floor_b"),
        mb.Minibatch(county, batch_size=100, name="county_b"),
    )


def test_the_notebooks_separate_calls_warn_naming_the_three(radon):
    with pytest.warns(mb.UnpairedMinibatchWarning) as caught:
        model_of(*separate(radon))
    (warning,) = caught
    message = str(warning.message)
    for name in ("log_radon_b", "floor_b", "county_b", "919 rows", "3 different random indices"):
        assert name in message
    assert "mb.Minibatch(A, B, C, batch_size=...)" in message


def test_pm_minibatch_separate_calls_warn_too(radon):
    log_radon, floor, _ = radon
    yb, fb = pm.Minibatch(log_radon, batch_size=100), pm.Minibatch(floor, batch_size=100)
    mb.Minibatch(np.ones(3), batch_size=1)  # installs the model hooks
    with pm.Model(), pytest.warns(mb.UnpairedMinibatchWarning, match="2 different random indices"):
        b = pm.Normal("b", 0, 10)
        pm.Normal("log_radon", b * fb, 1, observed=yb, total_size=N)


def _labels(message):
    """The batches a warning lists, one string each."""
    return ast.literal_eval(re.search(r"random indices: (\[.*\])\. Their", message).group(1))


def test_separate_calls_without_names_are_named_by_their_call_sites(radon):
    """The notebook's own code gives no names: each batch is named by its call's line."""
    log_radon, floor, county = radon
    first = inspect.currentframe().f_lineno + 1
    yb = mb.Minibatch(log_radon, batch_size=100)
    fb = mb.Minibatch(floor, batch_size=100)
    cb = mb.Minibatch(county, batch_size=100)
    with pytest.warns(mb.UnpairedMinibatchWarning) as caught:
        model_of(yb, fb, cb)
    (warning,) = caught
    labels = _labels(str(warning.message))
    assert sorted(labels) == sorted(
        f"'minibatch_0' (the Minibatch call at test_pairing.py:{first + k})" for k in range(3)
    )


def test_batches_of_one_call_are_named_by_their_position(radon):
    log_radon, floor, county = radon
    line = inspect.currentframe().f_lineno + 1
    yb, fb = mb.Minibatch(log_radon, floor, batch_size=100)
    cb = mb.Minibatch(county, batch_size=100)
    with pytest.warns(mb.UnpairedMinibatchWarning) as caught:
        model_of(yb, fb, cb)
    labels = _labels(str(caught[0].message))
    assert sorted(labels) == [
        f"'minibatch_0' (data argument 0 of the Minibatch call at test_pairing.py:{line})",
        f"'minibatch_0' (the Minibatch call at test_pairing.py:{line + 1})",
        f"'minibatch_1' (data argument 1 of the Minibatch call at test_pairing.py:{line})",
    ]


def test_pm_minibatch_batches_are_named_by_their_call_sites(radon):
    log_radon, floor, _ = radon
    mb.Minibatch(np.ones(3), batch_size=1)  # installs the model hooks
    line = inspect.currentframe().f_lineno + 1
    yb = pm.Minibatch(log_radon, batch_size=100)
    fb = pm.Minibatch(floor, batch_size=100)
    with pm.Model(), pytest.warns(mb.UnpairedMinibatchWarning) as caught:
        b = pm.Normal("b", 0, 10)
        pm.Normal("log_radon", b * fb, 1, observed=yb, total_size=N)
    labels = _labels(str(caught[0].message))
    assert sorted(labels) == [
        f"Minibatch.0 (the pm.Minibatch call at test_pairing.py:{line + k})" for k in range(2)
    ]


SCRIPT = """\
import numpy as np
import pymc as pm
import minibatch as mb

yb = mb.Minibatch(np.zeros(50), batch_size=10)
xb = mb.Minibatch(np.ones(50), batch_size=10)


def build():
    with pm.Model():
        b = pm.Normal("b", 0, 1)
        pm.Normal("y", b * xb, 1, observed=yb, total_size=50)  # line 12


build()
"""


def test_the_warning_is_reported_at_the_users_line_in_a_script(tmp_path):
    """Run as a script, not at ``sys:1:`` nor inside pymc, pytensor or minibatch."""
    script = tmp_path / "radon_script.py"
    script.write_text(SCRIPT)
    src = str(Path(mb.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-W", "always::UserWarning", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    reported = re.findall(r"^(.*):(\d+): UnpairedMinibatchWarning", done.stderr, re.MULTILINE)
    assert reported == [(str(script), "12")], done.stderr
    assert "(the Minibatch call at radon_script.py:5)" in done.stderr
    assert "(the Minibatch call at radon_script.py:6)" in done.stderr


@pytest.mark.parametrize("how", ["one call", "equal int seeds"])
def test_batches_drawn_by_one_index_are_quiet(radon, how):
    log_radon, floor, county = radon
    if how == "one call":
        batches = mb.Minibatch(log_radon, floor, county, batch_size=100)
    else:
        batches = [mb.Minibatch(d, batch_size=100, random_seed=42) for d in radon]
    with warnings.catch_warnings():
        warnings.simplefilter("error", mb.UnpairedMinibatchWarning)
        model_of(*batches)


def test_independent_draws_over_data_of_other_lengths_are_quiet():
    """Two observations of different sizes, each with its own index: nothing to pair."""
    xb = mb.Minibatch(np.zeros(300), batch_size=30)
    yb = mb.Minibatch(np.zeros(500), batch_size=30)
    with warnings.catch_warnings(), pm.Model():
        warnings.simplefilter("error", mb.UnpairedMinibatchWarning)
        mu = pm.Normal("mu", 0, 1)
        pm.Normal("z", mu + 0 * xb, 1, observed=yb, total_size=500)


def _slope(model, **fit):
    with model:
        approx = pm.fit(
            20_000,
            random_seed=3,
            progressbar=False,
            obj_optimizer=pm.adam(learning_rate=0.01),
            compile_kwargs=dict(mode="CVM"),
            **fit,
        )
    return float(approx.sample(2000, random_seed=4).posterior["b"].mean())


@pytest.mark.slow
def test_one_call_fits_the_slope_of_nuts_and_separate_calls_do_not(radon, nuts_draws):
    """NUTS on the full data is the reference; tolerance 2 of its posterior sds (ADVI's mean-field
    mean plus the SGD noise of a constant learning rate)."""
    with model_of(*radon, total_size=None):
        draws = nuts_draws("b", seed=5)
    nuts, sd = float(draws.mean()), float(draws.std())
    one_call = _slope(model_of(*mb.Minibatch(*radon, batch_size=100)))
    with pytest.warns(mb.UnpairedMinibatchWarning):
        unpaired = model_of(*separate(radon))
    shuffled = _slope(unpaired)
    print(f"NUTS {nuts:.3f} (sd {sd:.3f}), one call {one_call:.3f}, separate calls {shuffled:.3f}")
    assert abs(one_call - nuts) < 2 * sd
    assert abs(shuffled - nuts) > 4 * sd  # what the warning is about
