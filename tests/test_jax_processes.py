"""PyMC's JAX failure is random: a JAX cell counts only if it passes in 5 fresh processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import warnings
    warnings.simplefilter("ignore")
    import numpy as np, pymc as pm
    import minibatch as mb
    from minibatch.demo import make_data

    data = make_data(4000, 20)
    for method in ["advi", "fullrank_advi", "svgd", "asvgd"]:
        xb = mb.Minibatch(data, batch_size=100)
        with pm.Model():
            mu = pm.Normal("mu", 0, sigma=1e5, shape=20)
            sd = pm.HalfNormal("sd", shape=20)
            pm.Normal("lik", mu, sigma=sd, observed=xb, total_size=data.shape)
            kwargs = dict(obj_n_mc=10) if method == "asvgd" else {}
            approx = pm.fit(20, method=method, random_seed=1, progressbar=False,
                            compile_kwargs=dict(mode="JAX"), **kwargs)
        approx.sample(5)
        print(method, "ok")
    """
)


def test_jax_compiles_in_five_fresh_processes_in_a_row():
    """The seeds' model with two vector free variables, every method, 5 fresh interpreters."""
    for attempt in range(5):
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600
        )
        assert run.returncode == 0, f"attempt {attempt}: {run.stderr[-2000:]}"
        assert run.stdout.split() == [
            "advi",
            "ok",
            "fullrank_advi",
            "ok",
            "svgd",
            "ok",
            "asvgd",
            "ok",
        ]
