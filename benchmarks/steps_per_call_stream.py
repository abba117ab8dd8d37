"""Streamed windows with k steps per call: steps/s and the time the fit waited for the reader.

``python benchmarks/steps_per_call_stream.py JAX`` (or ``NUMBA``, ``CVM``): a 1,000,000 x 10
regression stored as two .npy memmaps, streamed through windows of 65,536 rows, batches of 500;
20,000 steps of ``mb.fit`` (rule off) with 1 and 25 steps per call, compile excluded (the fit
is continued), two interleaved rounds.  Prints steps/s, the steps per window and the seconds
the fit waited for the next window.
"""

import pathlib
import sys
import tempfile
import time
import warnings

import numpy as np
import pymc as pm

import minibatch as mb
from minibatch._streamfit import streams_of

warnings.filterwarnings("ignore")
mode = sys.argv[1] if len(sys.argv) > 1 else "JAX"
rng = np.random.default_rng(0)
n = 1_000_000
x = rng.normal(size=(n, 10))
y = x @ np.linspace(-1, 1, 10) + rng.normal(size=n)
d = pathlib.Path(tempfile.mkdtemp())
np.save(d / "x.npy", x)
np.save(d / "y.npy", y)
X, Y = np.load(d / "x.npy", mmap_mode="r"), np.load(d / "y.npy", mmap_mode="r")
for rnd in range(2):
    for k in (1, 25):
        xb, yb = mb.Minibatch(X, Y, batch_size=500, window=65_536)
        with pm.Model():
            w = pm.Normal("w", 0, 10, shape=10)
            pm.Normal("y", xb @ w, 1.0, observed=yb)
            a = mb.fit(
                2000,
                stop=False,
                random_seed=1,
                progressbar=False,
                steps_per_call=k,
                compile_kwargs=dict(mode=mode),
            )
            steps = a.report.inference._minibatch_fit_run.steps
            (stream,) = streams_of(steps.inputs)
            w0 = stream.wait_seconds
            t = time.perf_counter()
            mb.fit(20_000, method=a.report.inference, stop=False, progressbar=False)
            dt = time.perf_counter() - t
            print(
                f"{mode} round {rnd} k={k:>2} spw={stream.steps_per_window} "
                f"{20000 / dt:8.0f} steps/s, waited {stream.wait_seconds - w0:.2f} s of {dt:.2f} s",
                flush=True,
            )
