"""Per-step cost of ``mb.fit`` against ``steps_per_call`` (k), beside PyMC's and NumPyro's.

Run ``python benchmarks/steps_per_call.py`` (``--quick``: the one-parameter model, k in (1, 4),
one round, short calls, no NumPyro; ``--help`` for the rest).  Each backend (C, Numba, JAX)
runs in its own child process (``steps.child_json``), which measures, compilation excluded,
on three models:

``one``         ``y ~ N(mu, 1)``, ``mu ~ N(0, 10)``, N = 1000, batch 100 (the conjugate normal);
``regression``  the README's: ``X`` 40,000 x 3 standard normal, ``y = X @ [1, -2, 0.5] + noise``,
                ``w ~ N(0, 10)``, batch 500 (``mb.Minibatch(X, y)``: the rows stay paired);
``seeds``       ``minibatch.demo``'s 40,000 x 100 model on ``mb.Minibatch(data, batch_size=500)``;

these kinds of step, in interleaved rounds (the order alternates; ``steps.interleaved``):

* ``k=K``: ``mb.fit`` with ``steps_per_call=K`` (``default``: ``None``, mb.fit's choice) and
  ``stop=False``, first for ``--warm`` steps (it compiles; 6400 by default, after which the
  rule's batches are 400-800 steps long), then continued (``mb.fit(n,
  method=approx.report.inference, stop=False)``, which reuses the compiled functions; a first
  continuation brings the step count back to a multiple of ``n``, so each timed one starts
  where one of the rule's batches starts, as a fit does) for ``n`` steps per call (``STEPS``
  per model, or ``--steps``, rounded up to a multiple of K): the fit's loop, rule and guard
  included;
* ``alone k=K``: that fit's compiled call of K steps (the Scan; the single step for K = 1; for
  the default, its longest call) in a plain loop;
* ``pm.fit``: PyMC's loop, ``pm.ADVI().fit`` continued by ``refine`` (Adam, step 0.01);
* ``pm step``: PyMC's bare compiled step (``objective.step_function``) in a plain loop;
* ``numpyro plate`` / ``numpyro randint`` (Numba and JAX processes, when numpyro is
  importable): NumPyro's SVI (``AutoNormal``, ``Adam(0.01)``, ``Trace_ELBO``, float64) as ONE
  jitted ``jax.lax.scan`` of ``svi.update`` over ``n`` steps, the batch drawn by
  ``numpyro.plate(..., subsample_size=B)`` or by ``jax.random.randint`` inside the model;
* ``C ref`` (JAX process, seeds model): the C backend's fastest ``mb.fit`` (the k the C process
  found best), so the goal "JAX <= 1.5 x C" is a ratio from the same rounds.

``mb.fit`` uses its own optimiser (Adam from 0.1, two step sizes); the fit's calls are cut
where the rule's batch of iterates ends (``stop=False`` still fills the batches): on C and
Numba a call then runs the steps left, on JAX (static lengths) the longest compiled length that
fits, and what is left runs one step at a time: the table shows that share.  Times are medians
of the per-round means; ratios are medians of the per-round ratios.  It prints three markdown
tables and the goals.
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import json
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import steps as st

MODES = ["CVM", "NUMBA", "JAX"]
MODELS = ["one", "regression", "seeds"]
KS = [0, 1, 4, 16, 64, 256]  # 0: the default (steps_per_call=None)
STEPS = {"one": 6400, "regression": 6400, "seeds": 1600}  # about the steps of a timed call
NUMPYRO_MODES = {"NUMBA", "JAX"}  # the processes whose goals are ratios to NumPyro
GOALS = {"JAX": 1.5, "NUMBA": 2.0}  # the one-parameter model's step / NumPyro's randint step
GOAL_JAX_OVER_C = 1.5  # the seeds' model: JAX's step / the best C step
LABELS = {"CVM": "C", "NUMBA": "Numba", "JAX": "JAX"}


# --- the models -----------------------------------------------------------------------------


def make_data(name: str) -> tuple[dict[str, np.ndarray], int]:
    """The arrays of one model and its batch size."""
    if name == "one":
        return {"y": np.random.default_rng(0).normal(3.0, 1.0, size=1000)}, 100
    if name == "regression":  # the README's
        x = np.random.default_rng(0).normal(size=(40_000, 3))
        y = x @ np.array([1.0, -2.0, 0.5]) + np.random.default_rng(1).normal(size=40_000)
        return {"x": x, "y": y}, 500
    if name == "seeds":
        from minibatch.demo import make_data as seeds_data

        return {"data": seeds_data(40_000, 100)}, 500
    raise ValueError(f"unknown model {name!r}")


def pymc_model(name: str, arrays: dict[str, np.ndarray], batch: int) -> Any:
    """The PyMC model of ``name`` on ``mb.Minibatch`` batches."""
    import pymc as pm

    import minibatch as mb

    if name == "seeds":
        from minibatch.demo import model_of

        data = arrays["data"]
        return model_of(data, mb.Minibatch(data, batch_size=batch))
    with pm.Model() as model:
        if name == "one":
            mu = pm.Normal("mu", 0.0, 10.0)
            pm.Normal("y", mu, 1.0, observed=mb.Minibatch(arrays["y"], batch_size=batch))
        else:
            xb, yb = mb.Minibatch(arrays["x"], arrays["y"], batch_size=batch)
            w = pm.Normal("w", 0, 10, shape=3)
            pm.Normal("y", xb @ w, 1.0, observed=yb)
    return model


def numpyro_model(name: str, draw: str, rows: int, batch: int) -> Callable[..., None]:
    """The NumPyro model of ``name``, its batch drawn by a subsampling plate or ``randint``."""
    import contextlib

    import jax
    import numpyro
    import numpyro.distributions as dist

    @contextlib.contextmanager
    def batch_rows(dim: int = -1) -> Any:
        if draw == "plate":  # the plate draws the index and scales by rows / batch
            with numpyro.plate("data", rows, subsample_size=batch, dim=dim) as index:
                yield index
        else:
            index = jax.random.randint(numpyro.prng_key(), (batch,), 0, rows)
            with numpyro.handlers.scale(scale=rows / batch), numpyro.plate("data", batch, dim=dim):
                yield index

    def one(y: Any) -> None:
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with batch_rows() as index:
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y[index])

    def regression(x: Any, y: Any) -> None:
        w = numpyro.sample("w", dist.Normal(0.0, 10.0).expand([3]).to_event(1))
        with batch_rows() as index:
            numpyro.sample("y", dist.Normal(x[index] @ w, 1.0), obs=y[index])

    def seeds(data: Any) -> None:
        with numpyro.plate("cols", data.shape[1], dim=-1):
            mu = numpyro.sample("mu", dist.Normal(0.0, 1e5))
            sd = numpyro.sample("sd", dist.HalfNormal(1.0))
        with batch_rows(dim=-2) as index:
            numpyro.sample("lik", dist.Normal(mu, sd), obs=data[index])

    return {"one": one, "regression": regression, "seeds": seeds}[name]


# --- the steps, each a callable and the optimiser steps one call takes -----------------------


class Counter:
    """An ``mb.fit`` callback: the steps done, and how many of them ran one at a time."""

    def __init__(self) -> None:
        self.last, self.steps, self.single, self.k = 0, 0, 0, 1

    def __call__(self, approx: Any, losses: Any, i: int) -> None:
        done, self.last = i - self.last, i
        self.steps += done
        self.single += done == 1

    def share(self, k: int) -> float:
        """The share of the counted steps that ran in calls of many steps (``k`` at most)."""
        return 1.0 if k == 1 or not self.steps else 1 - self.single / self.steps


def mb_fit_steps(model: Any, k: int, mode: str, warm: int, steps: int) -> dict[str, Any]:
    """A compiled, warmed-up ``mb.fit``: its continuation (``steps`` rounded up to a multiple of
    ``k``) and its compiled call of ``k`` steps (``k=0``: the default, and its longest call)."""
    import minibatch as mb

    steps = k * -(-steps // k) if k else steps
    counter = Counter()
    with model:
        # warm + 1 steps: the last one runs alone, so the single step is compiled (k > 1) now
        approx = mb.fit(
            warm + 1,
            stop=False,
            steps_per_call=k or None,
            compile_kwargs=dict(mode=mode),
            random_seed=1,
            progressbar=False,
            callbacks=[counter],
        )
    inference = approx.report.inference
    # back onto the grid of the rule's batches (25 x 2^j steps; ``steps`` is such a multiple):
    # each timed continuation then starts where a batch starts, as a fit from step 0 does
    realign = -(warm + 1) % steps
    if realign:
        mb.fit(realign, method=inference, stop=False, progressbar=False)
    counter.steps = counter.single = 0  # count the continuations only (calibration and rounds)

    def fit() -> Any:
        return mb.fit(steps, method=inference, stop=False, progressbar=False)

    run = inference._minibatch_fit_run  # the fit's compiled steps (see _fit.py's _Run)
    longest = run.steps.k
    alone = functools.partial(run.steps.call, longest) if longest > 1 else run.steps.one
    counter.k = longest
    return {"fit": (fit, steps), "alone": (alone, longest), "counter": counter}


def pymc_steps(model: Any, mode: str, warm: int, steps: int) -> dict[str, Any]:
    """PyMC's loop (``pm.ADVI().fit`` continued by ``refine``) and its bare compiled step."""
    import pymc as pm

    with model:
        inference = pm.ADVI(random_seed=1)
        inference.fit(
            warm,
            obj_optimizer=pm.adam(learning_rate=0.01),
            progressbar=False,
            compile_kwargs=dict(mode=mode),
        )
        bare = pm.ADVI(random_seed=1)
        step = bare.objective.step_function(
            score=True,
            obj_optimizer=pm.adam(learning_rate=0.01),
            compile_kwargs=dict(mode=mode),
        )
    return {
        "pm.fit": (lambda: inference.refine(steps, progressbar=False), steps),
        "pm step": (step, 1),
    }


def numpyro_steps(name: str, arrays: dict[str, np.ndarray], batch: int, steps: int) -> dict:
    """NumPyro's SVI as one jitted ``lax.scan`` of ``steps`` updates, per way of drawing."""
    import jax

    jax.config.update("jax_enable_x64", True)  # float64, as pytensor's graphs
    import jax.numpy as jnp
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal
    from numpyro.optim import Adam

    args = tuple(jnp.asarray(v) for v in arrays.values())
    rows = len(next(iter(arrays.values())))
    found = {}
    for draw in ("plate", "randint"):
        model = numpyro_model(name, draw, rows, batch)
        svi = SVI(model, AutoNormal(model), Adam(0.01), Trace_ELBO())
        state = [svi.init(jax.random.PRNGKey(1), *args)]

        @jax.jit
        def scan(svi_state: Any, *data: Any, svi: Any = svi) -> Any:
            def body(carry: Any, _: Any) -> Any:
                return svi.update(carry, *data)

            return jax.lax.scan(body, svi_state, None, length=steps)

        def call(scan: Any = scan, state: list = state) -> Any:
            state[0], losses = scan(state[0], *args)
            return losses  # steps.interleaved waits for it (block_until_ready)

        call().block_until_ready()  # compile
        found[f"numpyro {draw}"] = (call, steps)
    return found


# --- one backend: a child process -----------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run in the child process of one backend: every model's kinds, in interleaved rounds."""
    warnings.filterwarnings("ignore")
    import pymc  # noqa: F401  (pymc sets its logger's level when imported)

    logging.getLogger("pymc").setLevel(logging.ERROR)
    c_best = dict(item.split(":") for item in args.c_best.split(",")) if args.c_best else {}
    models = {}
    for name in args.models:
        best = int(c_best[name]) if name in c_best else None
        models[name] = measure_model(args, name, best)
        gc.collect()
    return {"mode": args.child, "models": models}


def measure_model(args: argparse.Namespace, name: str, c_best: int | None) -> dict[str, Any]:
    """Build every kind of step of one model on this process's backend, then time them."""
    mode = args.child
    arrays, batch = make_data(name)
    model = pymc_model(name, arrays, batch)
    steps = args.steps or STEPS[name]
    built: dict[str, tuple[Callable[[], Any], int]] = {}
    counters: dict[int, Counter] = {}
    failed: dict[str, str] = {}
    began = time.perf_counter()

    def attempt(kind: str, make: Callable[[], dict[str, Any]]) -> None:
        try:
            built.update(make())
        except Exception as err:  # a kind that cannot compile or run is a result too
            failed[kind] = f"{type(err).__name__}: {str(err)[:120]}"

    def fit_of(k: int) -> dict[str, Any]:
        found = mb_fit_steps(model, k, mode, args.warm, steps)
        counters[k] = found["counter"]
        return {f"k={k}": found["fit"], f"alone k={k}": found["alone"]}

    def c_ref() -> dict[str, Any]:
        ref = pymc_model(name, arrays, batch)
        return {"C ref": mb_fit_steps(ref, int(c_best), "CVM", args.warm, steps)["fit"]}

    attempt("pm", lambda: pymc_steps(model, mode, args.warm, steps))
    for k in args.ks:
        attempt(f"k={k}", functools.partial(fit_of, k))
    if c_best is not None:
        attempt("C ref", c_ref)
    if args.numpyro and mode in NUMPYRO_MODES:
        attempt("numpyro", lambda: numpyro_steps(name, arrays, batch, steps))
    compiled = time.perf_counter() - began
    per_call = st.interleaved(
        {kind: fn for kind, (fn, _) in built.items()}, args.rounds, args.seconds
    )
    return {
        "times": {kind: [t / built[kind][1] for t in ts] for kind, ts in per_call.items()},
        "share": {k: c.share(c.k) for k, c in counters.items()},
        "failed": failed,
        "compile_s": compiled,
        "c_best": c_best,
    }


def run_child(args: argparse.Namespace, mode: str, c_best: dict[str, int]) -> dict[str, Any]:
    """``measure`` for one backend in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, __file__, f"--child={mode}", f"--models={','.join(args.models)}"]
    cmd += [f"--ks={','.join(map(str, args.ks))}", f"--rounds={args.rounds}"]
    cmd += [f"--seconds={args.seconds}", f"--steps={args.steps or 0}", f"--warm={args.warm}"]
    if c_best:
        cmd.append("--c-best=" + ",".join(f"{m}:{k}" for m, k in c_best.items()))
    if not args.numpyro:
        cmd.append("--no-numpyro")
    return st.child_json(cmd, f"steps_per_call child {mode}")


# --- the tables -----------------------------------------------------------------------------


def label(k: int | None) -> str:
    """A column's name: ``k=K``, or ``default`` for ``k=0`` (``steps_per_call=None``)."""
    return "default" if k == 0 else f"k={k}"


def _us(seconds: list[float] | None) -> str:
    if not seconds:
        return "-"
    value = float(np.median(seconds)) * 1e6
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def best_k(times: dict[str, list[float]], ks: list[int], prefix: str = "k=") -> int | None:
    """The k whose median per-step time is smallest."""
    found = [k for k in ks if f"{prefix}{k}" in times]
    return min(found, key=lambda k: np.median(times[f"{prefix}{k}"])) if found else None


def ratio(times: dict[str, list[float]], kind: str, base: str) -> float | None:
    if kind not in times or base not in times:
        return None
    return st.median_ratio(times, kind, base)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def tables(args: argparse.Namespace, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the three tables and the goals; return the goals' figures."""
    ks = args.ks
    k_head = " | ".join(label(k) for k in ks)
    print("\n## mb.fit µs per step against steps_per_call (loop, rule and guard included)\n")
    print(f"| model | mode | pm.fit | PyMC step | {k_head} | NumPyro plate | NumPyro randint |")
    print("|---|---|---|---|" + "---|" * len(ks) + "---|---|")
    for name in args.models:
        for res in results:
            found = res["models"][name]
            times, share = found["times"], found["share"]
            cells = []
            for k in ks:
                cell = _us(times.get(f"k={k}")) if f"k={k}" in times else "failed"
                part = share.get(str(k), share.get(k, 1.0))
                if f"k={k}" in times and part < 0.995:
                    cell += f" [{part:.0%}]"
                cells.append(cell)
            refs = [_us(times.get(kind)) for kind in ("pm.fit", "pm step")]
            numpyro = [_us(times.get(f"numpyro {d}")) for d in ("plate", "randint")]
            print(
                f"| {name} | {LABELS[res['mode']]} | {' | '.join(refs)} | {' | '.join(cells)} "
                f"| {' | '.join(numpyro)} |"
            )
    print(
        "\n[p%]: the share of the steps that ran in calls of k steps; the rest ran one at a time "
        "(cut at the ends of the rule's batches of iterates). PyMC: Adam, step 0.01, one step "
        "per call. NumPyro: one jitted lax.scan of the whole call."
    )
    print("\n## The compiled call of k steps alone, µs per step (ratio to k=1)\n")
    print(f"| model | mode | {k_head} |")
    print("|---|---|" + "---|" * len(ks))
    for name in args.models:
        for res in results:
            times = res["models"][name]["times"]
            cells = []
            for k in ks:
                kind = f"alone k={k}"
                cell = _us(times.get(kind)) if kind in times else "failed"
                if k != 1 and kind in times and "alone k=1" in times:
                    cell += f" ({st.median_ratio(times, kind, 'alone k=1'):.2f})"
                cells.append(cell)
            print(f"| {name} | {LABELS[res['mode']]} | {' | '.join(cells)} |")
    print("\n## Ratios (medians of per-round ratios)\n")
    print(
        "| model | mode | best k | best / k=1 | default k / k=1 | best / pm.fit | best / PyMC step "
        "| default k / NumPyro randint | best / NumPyro randint |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    figures: dict[str, Any] = {}
    for name in args.models:
        for res in results:
            mode, times = res["mode"], res["models"][name]["times"]
            best = best_k(times, ks)
            default = 0 if 0 in ks else None
            b, d = f"k={best}", f"k={default}"
            row = {
                "best": best,
                "best/k1": ratio(times, b, "k=1"),
                "default/k1": ratio(times, d, "k=1"),
                "best/pm.fit": ratio(times, b, "pm.fit"),
                "best/pm step": ratio(times, b, "pm step"),
                "default/numpyro": ratio(times, d, "numpyro randint"),
                "best/numpyro": ratio(times, b, "numpyro randint"),
                "c_ref": ratio(times, d, "C ref"),
                "best/c_ref": ratio(times, b, "C ref"),
                "best_us": float(np.median(times[b])) * 1e6 if best else None,
            }
            figures[f"{name} {mode}"] = row
            cells = [row[key] for key in list(row)[1:7]]
            print(
                f"| {name} | {LABELS[mode]} | {label(best)} | {' | '.join(_x(c) for c in cells)} |"
            )
    failures = [
        f"- {name}, {LABELS[res['mode']]}, {kind}: {error}"
        for name in args.models
        for res in results
        for kind, error in res["models"][name]["failed"].items()
    ]
    if failures:
        print("\nfailed (not timed):\n" + "\n".join(failures))
    goals(args, results, figures)
    return figures


def goals(args: argparse.Namespace, results: list[dict[str, Any]], figures: dict) -> None:
    """The goals, met or not, with their figures."""
    modes = {res["mode"] for res in results}
    print("\n## Goals\n")
    for mode, goal in GOALS.items():
        row = figures.get(f"one {mode}")
        if row is None or not args.numpyro:
            continue
        if row["default/numpyro"] is None:
            print(f"- one-parameter model, {LABELS[mode]}: not measured (see the failures)")
            continue
        met = row["default/numpyro"] <= goal
        print(
            f"- one-parameter model, {LABELS[mode]}: mb.fit (default) / NumPyro's "
            f"scanned randint step = {row['default/numpyro']:.2f} (best k={row['best']}: "
            f"{_x(row['best/numpyro'])}); goal <= {goal}: {'met' if met else 'NOT met'}"
        )
    row = figures.get("seeds JAX")
    if row is not None and row["c_ref"] is not None:
        met = row["c_ref"] <= GOAL_JAX_OVER_C
        c_row = figures.get("seeds CVM", {})
        cross = (
            f"; across processes, best JAX / best C = {row['best_us'] / c_row['best_us']:.2f}"
            if c_row.get("best_us") and row.get("best_us")
            else ""
        )
        print(
            f"- seeds' model: JAX mb.fit (default) / C mb.fit "
            f"({label(results[-1]['models']['seeds']['c_best'])}, same rounds) = "
            f"{row['c_ref']:.2f} "
            f"(best JAX k={row['best']}: {_x(row['best/c_ref'])}{cross}); goal <= "
            f"{GOAL_JAX_OVER_C}: {'met' if met else 'NOT met'}"
        )
    if "CVM" in modes:
        for name in args.models:
            row = figures.get(f"{name} CVM")
            times = next(r for r in results if r["mode"] == "CVM")["models"][name]["times"]
            more = [k for k in args.ks if k != 1 and f"k={k}" in times]
            if not row or not more:
                continue
            k = min(more, key=lambda k: np.median(times[f"k={k}"]))
            print(
                f"- C, {name}: the best other k ({label(k)}) / k=1 = "
                f"{st.median_ratio(times, f'k={k}', 'k=1'):.2f} for the fit, "
                f"{_x(ratio(times, f'alone k={k}', 'alone k=1'))} for the compiled call alone"
            )


# --- the command line -----------------------------------------------------------------------


def numpyro_note() -> str | None:
    """Why the NumPyro columns are skipped, or None when numpyro is importable here."""
    if importlib.util.find_spec("numpyro") is not None:
        return None
    return (
        f"note: numpyro is not importable in {sys.executable}: the NumPyro columns are skipped. "
        "`pip install numpyro` adds them (check first with `pip install --dry-run numpyro` that "
        "it keeps this environment's jax and jaxlib)."
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` swaps in a smoke-test's sizes."""
    names = lambda text: text.split(",")  # noqa: E731
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", type=names, default=MODES)
    parser.add_argument("--models", type=names, default=MODELS)
    parser.add_argument("--ks", type=ints, default=KS)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="per kind and round")
    parser.add_argument(
        "--steps", type=int, default=0, help="steps per timed call (0: per model, STEPS)"
    )
    parser.add_argument("--warm", type=int, default=6400, help="steps of the first fit")
    parser.add_argument("--no-numpyro", dest="numpyro", action="store_false")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # MODE: one backend's process
    parser.add_argument("--c-best", help=argparse.SUPPRESS)  # MODEL:K,...: the C reference
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.ks, args.rounds, args.seconds = ["one"], [0, 1, 4], 1, 0.01
        args.steps, args.warm, args.numpyro = 200, 100, False
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every backend's child process and print the tables; return what was measured."""
    args = parse(argv)
    if args.child:
        found = measure(args)
        print(json.dumps(found))
        return found
    start = time.perf_counter()
    note = numpyro_note() if args.numpyro else None
    if note:
        print(note)
        args.numpyro = False
    results, c_best = [], {}
    for mode in args.modes:  # C first: the JAX process times the best C fit beside its own
        ref = c_best if mode == "JAX" and "seeds" in args.models else {}
        res = run_child(args, mode, {k: v for k, v in ref.items() if k == "seeds"})
        results.append(res)
        print(
            f"({LABELS[mode]}: compiled in "
            f"{sum(m['compile_s'] for m in res['models'].values()):.0f} s)",
            flush=True,
        )
        if mode == "CVM":
            c_best = {name: best_k(m["times"], args.ks) for name, m in res["models"].items()}
    figures = tables(args, results)
    seconds = time.perf_counter() - start
    print(f"\n(total {seconds:.0f} s, {sys.executable}, {os.cpu_count()} CPUs)")
    return {"results": results, "figures": figures, "seconds": seconds, "numpyro_note": note}


if __name__ == "__main__":
    main()
