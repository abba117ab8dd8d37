"""The backend x method matrix, for pm.Minibatch or mb.Minibatch: ``python docs/matrix.py mb``.

Each cell fits the conjugate normal model (n = 1000, batch 100, total_size = n) and prints "ok"
(posterior mean within 5 % and sd within 20 % of the exact posterior) or "OFF", the wall time
and both relative errors.
Then the seeds' model (two vector free variables, ``total_size=data.shape``) is fitted with ADVI
on JAX in 5 fresh processes, since PyMC's JAX failure depends on the process.  Run it once per
library, in separate processes: building an mb.Minibatch mends PyMC for the rest of a process.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings

import numpy as np
import pymc as pm
import pytensor

import minibatch as mb

MODES = ["CVM", "NUMBA", "JAX"]
METHODS = {
    "advi": dict(n=10000, lr=0.005),
    "fullrank_advi": dict(n=10000, lr=0.005),
    "svgd": dict(n=10000, lr=0.005, inf_kwargs=dict(n_particles=100)),
    "asvgd": dict(n=10000, lr=0.003, obj_n_mc=100),
}
SEEDS_JAX = """
import warnings; warnings.simplefilter("ignore")
import numpy as np, pymc as pm, minibatch as mb
from minibatch.demo import make_data
data = make_data(40000, 100)
xb = {lib}.Minibatch(data, batch_size=500)
with pm.Model():
    mu = pm.Normal("mu", 0, sigma=1e5, shape=100)
    sd = pm.HalfNormal("sd", shape=100)
    pm.Normal("lik", mu, sigma=sd, observed=xb, total_size={total_size})
    pm.fit(100, progressbar=False, compile_kwargs=dict(mode="JAX"))
"""


def cell(make, method: str, mode: str) -> str:
    rng = np.random.default_rng(20261121)
    y = rng.normal(3.0, 2.0, size=1000)
    precision = 1 / 10.0**2 + len(y) / 2.0**2
    exact_mean, exact_sd = y.sum() / 2.0**2 / precision, precision**-0.5
    settings = dict(METHODS[method])
    n, lr = settings.pop("n"), settings.pop("lr")
    start = time.perf_counter()
    try:
        with pm.Model():
            mu = pm.Normal("mu", 0, 10)
            pm.Normal("y", mu, 2.0, observed=make(y, batch_size=100), total_size=len(y))
            approx = pm.fit(
                n,
                method=method,
                random_seed=3,
                progressbar=False,
                compile_kwargs=dict(mode=mode),
                obj_optimizer=pm.adam(learning_rate=lr),
                **settings,
            )
        draws = approx.sample(4000, random_seed=0).posterior["mu"].values.ravel()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:60]}"
    seconds = time.perf_counter() - start
    mean_err = (draws.mean() - exact_mean) / exact_mean
    sd_err = (draws.std() - exact_sd) / exact_sd
    status = "ok" if abs(mean_err) < 0.05 and abs(sd_err) < 0.20 else "OFF"
    return f"{status} {seconds:5.1f} s  mean {mean_err:+.3f}  sd {sd_err:+.3f}"


def main(lib: str) -> None:
    warnings.simplefilter("ignore")
    make = {"pm": pm.Minibatch, "mb": mb.Minibatch}[lib]
    print(f"{lib}.Minibatch; pymc {pm.__version__}, pytensor {pytensor.__version__}")
    for mode in MODES:
        for method in METHODS:
            print(f"{mode:9} {method:14} {cell(make, method, mode)}", flush=True)
    # pm.Minibatch crashes on the tuple form under VI, so it gets the int form here
    total_size = "data.shape" if lib == "mb" else "len(data)"
    script = SEEDS_JAX.format(lib=lib, total_size=total_size)
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True) for _ in range(5)]
    passed = sum(run.returncode == 0 for run in runs)
    print(f"seeds' model, ADVI, JAX, total_size={total_size}: {passed}/5 fresh processes compiled")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "mb")
