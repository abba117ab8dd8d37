"""Build the seeds' ADVI step functions and time them in interleaved rounds.

The model: ``mu ~ N(0, 10)``, ``sd ~ HalfNormal(10)`` (one per column) and
``lik ~ N(mu, sd)`` observed on one of four things:

``const``  a constant batch, ``data[:batch]`` (``total_size=data.shape``): the floor;
``mb``     ``mb.Minibatch(data, batch_size=batch)`` (``total_size=data.shape``);
``pm``     ``pm.Minibatch(data, batch_size=batch)`` (``total_size=len(data)``: PyMC's VI
           crashes on a tuple);
``full``   all of ``data``.

The cost of a step is one call of ``pm.ADVI().objective.step_function(score=True)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

LABELS = {
    "const": "constant batch",
    "mb": "mb.Minibatch",
    "pm": "pm.Minibatch",
    "full": "full data",
}


def make_data(rows: int, cols: int = 100, dtype: str = "float64") -> np.ndarray:
    """The seeds' data: standard normal, ``rows x cols``."""
    return np.random.default_rng(0).normal(size=(rows, cols)).astype(dtype)


def observed(kind: str, data: np.ndarray, batch: int) -> tuple[Any, Any]:
    """The observed value and ``total_size`` of one kind (see the module docstring)."""
    import pymc as pm

    import minibatch as mb

    if kind == "mb":
        return mb.Minibatch(data, batch_size=batch), data.shape
    if kind == "pm":
        return pm.Minibatch(data, batch_size=batch), len(data)
    if kind == "const":
        return data[:batch], data.shape
    if kind == "full":
        return data, None
    raise ValueError(f"unknown kind {kind!r}")


def build_step(kind: str, data: np.ndarray, batch: int, mode: str) -> Callable[[], Any]:
    """Compile the ADVI step function of the seeds' model on ``kind`` data."""
    import pymc as pm

    import minibatch as mb

    mb.Minibatch(np.zeros((2, 1)), batch_size=1)  # installs the VI fixes (tuple total_size)
    with pm.Model():
        mu = pm.Normal("mu", 0, 10, shape=data.shape[1])
        sd = pm.HalfNormal("sd", 10, shape=data.shape[1])
        obs, total_size = observed(kind, data, batch)
        pm.Normal("lik", mu, sigma=sd, observed=obs, total_size=total_size)
        advi = pm.ADVI(random_seed=1)
        return advi.objective.step_function(score=True, compile_kwargs=dict(mode=mode))


def batch_alone(data: np.ndarray, batch: int, mode: str) -> Callable[[], Any]:
    """A compiled function that only draws an index and gathers a batch."""
    import pytensor

    batch_var, _ = observed("mb", data, batch)
    return pytensor.function([], batch_var, mode=mode)


def gather_alone(data: np.ndarray, batch: int, mode: str, fresh: bool | None) -> Callable[[], Any]:
    """Copying ``batch`` rows of the stored data out, as a compiled function of a given index.

    ``fresh``: new random rows every call (drawn beforehand, 64 indices in turn), so most rows
    come from memory; otherwise the same rows every call, which stay in cache.  With
    ``fresh=None`` the function returns only the index's length: the cost of the call itself.
    """
    import itertools

    import pytensor
    import pytensor.tensor as pt

    stored = observed("mb", data, batch)[0].owner.inputs[1]
    index = pt.lvector("index")
    out = index.shape[0] if fresh is None else stored[index]
    f = pytensor.function([index], out, mode=mode)
    rng = np.random.default_rng(2)
    draws = [rng.integers(0, len(data), batch) for _ in range(64 if fresh else 1)]
    cycle = itertools.cycle(draws)
    return lambda: f(next(cycle))


def _wait(outputs: Any) -> None:
    for out in outputs if isinstance(outputs, list | tuple) else [outputs]:
        getattr(out, "block_until_ready", lambda: None)()


def _calls_for(step: Callable[[], Any], seconds: float) -> int:
    """How many calls of ``step`` fill about ``seconds`` (at least 1)."""
    _wait(step())
    start = time.perf_counter()
    _wait(step())
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, min(2000, int(seconds / once)))


def interleaved(
    steps: dict[str, Callable[[], Any]], rounds: int, seconds: float
) -> dict[str, list[float]]:
    """Seconds per call of each step, one mean per round; rounds alternate the order."""
    calls = {kind: _calls_for(step, seconds) for kind, step in steps.items()}
    times: dict[str, list[float]] = {kind: [] for kind in steps}
    order = list(steps)
    for r in range(rounds):
        for kind in order if r % 2 == 0 else order[::-1]:
            step, n = steps[kind], calls[kind]
            start = time.perf_counter()
            for _ in range(n):
                out = step()
            _wait(out)
            times[kind].append((time.perf_counter() - start) / n)
    return times


def median_ratio(times: dict[str, list[float]], kind: str, base: str) -> float:
    """Median over rounds of ``kind``'s time over ``base``'s time in the same round."""
    return float(np.median(np.array(times[kind]) / np.array(times[base])))


def rss_mib() -> float:
    """The resident set size of this process now, in MiB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """The peak resident set size of this process so far, in MiB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_allocation_kib(step: Callable[[], Any], calls: int = 20) -> float:
    """Peak memory that ``calls`` steps allocate beyond what was allocated before (tracemalloc)."""
    import tracemalloc

    _wait(step())
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for _ in range(calls):
        _wait(step())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (peak - base) / 1024


def child_json(cmd: list[str], what: str) -> dict[str, Any]:
    """Run a benchmark child process; the JSON object on its last line of output."""
    import json
    import subprocess

    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))
