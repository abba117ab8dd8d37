"""Gradient noise of the three sampling schemes, and how long each takes to the exact posterior.

Run ``python benchmarks/gradient_noise.py`` (``--quick`` runs reduced sizes).  Two models:

``conjugate``  ``y_i ~ N(mu, sigma^2)``, sigma known, ``mu ~ N(mu0, tau0^2)`` (the test suite's
               fixture: N = 1000 draws of N(3, 2^2), sigma = 2, mu0 = 0, tau0 = 10), batch 100;
``seeds``      the seeds' 40000 x 100 example (``minibatch.demo.make_data``): ``mu ~ N(0, 10)``
               and ``sd ~ HalfNormal(10)`` per column, ``N(mu, sd)`` observed on the batch with
               ``total_size=data.shape``, batch 500.

Each is observed on ``mb.Minibatch(data, batch_size=B, sampling=scheme)`` for the three schemes,
all in one process.  Three measurements:

1. **data-term gradient**: the gradient of the minibatch log-likelihood estimate (``N/B`` times
   the batch's sum) w.r.t. the model's free variables at a fixed point (the exact posterior
   mean), over K steps: subsampling noise only.  Its variance is the mean squared deviation from
   the exact full-data gradient, summed over the components (the trace); the theory for
   with-replacement is ``N^2 / B`` times the per-row gradients' population variance, without
   replacement ``(N - B) / (N - 1)`` times that.  Also the variance of the average over each
   epoch (``N / B`` consecutive steps): zero for epochs when B divides N;
2. **ELBO gradient**: the gradient w.r.t. ADVI's mean-field parameters (mu, rho) that
   ``pm.fit`` follows (``objective.step_function`` with an optimizer that stores the gradient
   and moves nothing), at the parameters of the exact posterior: subsampling plus Monte Carlo
   noise (one draw of z per step, PyMC's default);
3. **time to the exact posterior**: ``pm.fit`` (ADVI, Adam at a fixed learning rate) from
   PyMC's start, several random seeds, the schemes interleaved (the order rotates per seed).
   Every ``--every`` steps a callback reads the fitted means and sds; the distance is the
   largest over the free variables of ``|mean - exact mean| / (tol_mean * exact sd)`` and
   ``|sd / exact sd - 1| / tol_sd``; a fit has *reached* the posterior at the first check from
   which the distance stays <= 1 for ``--window`` steps.  Seconds are wall time from step 1.

The exact posterior: closed form for the conjugate model; for the seeds model the Gaussian
(Laplace) approximation at the maximum likelihood, which the 40000 rows make exact to well
under 1 % of a posterior sd: ``mu_j`` has mean the column mean and sd ``s_j / sqrt(N)`` (``s_j``
the column's population sd), ``log sd_j`` has mean ``log s_j`` and sd ``1 / sqrt(2N)``.

Writes a JSON of everything (``--json``) and a two-panel plot (``--plot``), and prints tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = ("with_replacement", "without_replacement", "epoch")
CURVE_POINTS = 100  # points per fit kept for the plot (the JSON stays small)
COLORS = {"with_replacement": "C0", "without_replacement": "C1", "epoch": "C2"}


# --- the two models ------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A model family on fixed data, its exact posterior and the per-row gradients there."""

    name: str
    data: np.ndarray
    batch: int
    sigma: float | None = None  # the conjugate model's known sd; None for the seeds model
    mu0: float = 0.0
    tau0: float = 10.0
    tol_sd: float | None = 0.2  # the fitted sd within 20 % of the exact one; None: not checked

    @property
    def n(self) -> int:
        return len(self.data)

    def model(self, scheme: str, seed: int = 0) -> Any:
        """The model observed on ``mb.Minibatch(data, batch_size=batch, sampling=scheme)``."""
        import pymc as pm

        import minibatch as mb

        batch = mb.Minibatch(self.data, batch_size=self.batch, sampling=scheme, random_seed=seed)
        with pm.Model() as model:
            if self.sigma is not None:
                mu = pm.Normal("mu", self.mu0, self.tau0)
                pm.Normal("lik", mu, self.sigma, observed=batch, total_size=self.n)
            else:
                cols = self.data.shape[1]
                mu = pm.Normal("mu", 0, 10, shape=cols)
                sd = pm.HalfNormal("sd", 10, shape=cols)
                pm.Normal("lik", mu, sigma=sd, observed=batch, total_size=self.data.shape)
        return model

    def exact(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Exact posterior mean and sd of each free (value) variable, by name."""
        if self.sigma is not None:
            precision = 1 / self.tau0**2 + self.n / self.sigma**2
            mean = (self.mu0 / self.tau0**2 + self.data.sum() / self.sigma**2) / precision
            return {"mu": (np.array([mean]), np.array([precision**-0.5]))}
        s = self.data.std(0)
        half = np.full_like(s, (2 * self.n) ** -0.5)
        return {"mu": (self.data.mean(0), s / np.sqrt(self.n)), "sd_log__": (np.log(s), half)}

    def tolerance(self) -> dict[str, np.ndarray]:
        """How far each fitted mean may be from the exact one (see the module docstring)."""
        exact = self.exact()
        if self.sigma is not None:
            return {"mu": exact["mu"][1]}  # one posterior sd (2 % of the mean)
        s = self.data.std(0)
        return {"mu": 0.1 * s, "sd_log__": np.full_like(s, 0.05)}

    def per_row_gradients(self) -> np.ndarray:
        """``N x d``: each row's log-likelihood gradient at the exact mean (mu, then log sd)."""
        exact = self.exact()
        mu = exact["mu"][0]
        if self.sigma is not None:
            return (self.data[:, None] - mu) / self.sigma**2
        sd = np.exp(exact["sd_log__"][0])
        z = (self.data - mu) / sd
        return np.hstack([z / sd, z**2 - 1])


def conjugate_problem(n: int = 1000, batch: int = 100) -> Problem:
    """The test suite's conjugate model (``tests/conftest.py``), ``n`` rows."""
    y = np.random.default_rng(20261121).normal(3.0, 2.0, size=n)
    return Problem("conjugate", y, batch, sigma=2.0)


def seeds_problem(rows: int = 40000, cols: int = 100, batch: int = 500) -> Problem:
    """The seeds' example (``minibatch.demo.make_data``)."""
    from minibatch.demo import make_data

    return Problem("seeds", make_data(rows, cols), batch, tol_sd=None)


def flat(problem: Problem, ordering: Any) -> tuple[np.ndarray, np.ndarray]:
    """The exact mean and sd as flat vectors, in an approximation's ``ordering``."""
    exact = problem.exact()
    names = [name for name, *_ in ordering.values()]
    mean, sd = (np.concatenate([exact[name][k] for name in names]) for k in (0, 1))
    return mean, sd


# --- 1. the data term's gradient -----------------------------------------------------------


def data_term_gradients(problem: Problem, scheme: str, draws: int, seed: int) -> np.ndarray:
    """``draws x d``: the minibatch log-likelihood's gradient at the exact mean, one per step."""
    import pytensor.tensor as pt
    from pymc.pytensorf import compile as pm_compile

    model = problem.model(scheme, seed)
    logp = model.logp(vars=model.observed_RVs)
    grad = pt.concatenate([pt.grad(logp, v).ravel() for v in model.value_vars])
    f = pm_compile(model.value_vars, grad, random_seed=seed)
    exact = problem.exact()
    point = [
        exact[v.name][0].reshape(np.shape(model.initial_point()[v.name])) for v in model.value_vars
    ]
    return np.array([f(*point) for _ in range(draws)])


def summarise_data_term(problem: Problem, grads: dict[str, np.ndarray]) -> dict[str, Any]:
    """Traces of the per-step and per-epoch variances, with the theory, for each scheme."""
    rows = problem.per_row_gradients()
    full = rows.sum(0)
    n, b = problem.n, problem.batch
    steps = n // b
    wr = n**2 / b * rows.var(0).sum()
    fpc = (n - b) / (n - 1)
    out: dict[str, Any] = {"theory_with_replacement": wr, "fpc": fpc, "steps_per_epoch": steps}
    for scheme, g in grads.items():
        dev2 = ((g - full) ** 2).sum(1)  # squared deviation from the exact gradient, per step
        epochs = g[: len(g) // steps * steps].reshape(-1, steps, g.shape[1]).mean(1)
        theory = wr if scheme == "with_replacement" else wr * fpc
        out[scheme] = {
            "trace": float(dev2.mean()),
            # the standard error of that mean over independent steps (a sample variance's spread)
            "se": float(dev2.std() / np.sqrt(len(dev2))),
            "theory": float(theory),
            "epoch_average_trace": float(((epochs - full) ** 2).sum(1).mean()),
            "epoch_average_theory": 0.0 if scheme == "epoch" and n % b == 0 else theory / steps,
        }
    for scheme in grads:
        out[scheme]["ratio"] = out[scheme]["trace"] / out["with_replacement"]["trace"]
    return out


# --- 2. the ELBO gradient that pm.fit follows ----------------------------------------------


def elbo_gradients(problem: Problem, scheme: str, draws: int, seed: int) -> np.ndarray:
    """``draws x 2d``: ADVI's gradient w.r.t. (mu, rho) at the exact posterior, one per step."""
    import pymc as pm
    import pytensor

    with problem.model(scheme, seed):
        advi = pm.ADVI(random_seed=seed)
    group = advi.approx.groups[0]
    mean, sd = flat(problem, group.ordering)
    params = group.params_dict
    params["mu"].set_value(mean)
    params["rho"].set_value(np.log(np.expm1(sd)))  # sd = softplus(rho)
    ordered = [params["mu"], params["rho"]]
    stores = [pytensor.shared(np.zeros_like(mean), shape=mean.shape) for _ in ordered]

    def store(grads: list[Any], given: list[Any]) -> dict[Any, Any]:
        """An "optimizer" that keeps the gradient and leaves the parameters where they are."""
        by_param = dict(zip(given, grads, strict=True))
        return {s: by_param[p] for s, p in zip(stores, ordered, strict=True)}

    # score=True, as pm.fit has it for ADVI: PyMC's compile collects the updates of the random
    # generators from the outputs only, so without the loss as an output z would never change
    step = advi.objective.step_function(obj_optimizer=store, score=True)
    out = np.empty((draws, 2 * len(mean)))
    for k in range(draws):
        step()
        out[k] = np.concatenate([s.get_value() for s in stores])
    return out


def summarise_elbo(problem: Problem, grads: dict[str, np.ndarray]) -> dict[str, Any]:
    """Traces of the per-step variance and of the variance of epoch averages (sample ones)."""
    steps = problem.n // problem.batch
    out: dict[str, Any] = {}
    for scheme, g in grads.items():
        epochs = g[: len(g) // steps * steps].reshape(-1, steps, g.shape[1]).mean(1)
        out[scheme] = {
            "trace": float(g.var(0, ddof=1).sum()),
            "epoch_average_trace": float(epochs.var(0, ddof=1).sum()),
        }
    for scheme in grads:
        out[scheme]["ratio"] = out[scheme]["trace"] / out["with_replacement"]["trace"]
    return out


# --- 3. time to the exact posterior --------------------------------------------------------


@dataclass
class Tracker:
    """A ``pm.fit`` callback: every ``every`` steps, the distance to the exact posterior."""

    problem: Problem
    every: int

    def __post_init__(self) -> None:
        self.steps: list[int] = []
        self.seconds: list[float] = []
        self.distance: list[float] = []
        self.start = 0.0
        self.mean = self.sd = self.tol = np.empty(0)

    def __call__(self, approx: Any, losses: Any, i: int) -> None:
        if i == 1:
            self.start = time.perf_counter()
            ordering = approx.groups[0].ordering
            self.mean, self.sd = flat(self.problem, ordering)
            self.tol = np.concatenate([self.problem.tolerance()[n] for n, *_ in ordering.values()])
        if i % self.every:
            return
        params = approx.groups[0].params_dict
        mu, rho = params["mu"].get_value(borrow=True), params["rho"].get_value(borrow=True)
        far = np.abs(mu - self.mean) / self.tol
        if self.problem.tol_sd is not None:
            sd = np.logaddexp(0.0, rho)  # softplus, as pymc's rho2sigma
            far = np.maximum(far, np.abs(sd / self.sd - 1) / self.problem.tol_sd)
        self.steps.append(i)
        self.seconds.append(time.perf_counter() - self.start)
        self.distance.append(float(far.max()))

    def reached(self, window: int) -> tuple[int | None, float | None]:
        """The first check (step, seconds) from which the distance stays <= 1 for ``window``."""
        within = np.array(self.distance) <= 1
        span = window // self.every
        for k in range(len(within) - span):
            if within[k : k + span + 1].all():
                return self.steps[k], self.seconds[k]
        return None, None


def fit_to_posterior(
    problem: Problem, scheme: str, seed: int, steps: int, lr: float, every: int
) -> Tracker:
    """One ``pm.fit`` of ``steps`` ADVI steps (Adam at ``lr``), tracked every ``every`` steps."""
    import pymc as pm

    tracker = Tracker(problem, every)
    with problem.model(scheme, seed):
        pm.fit(
            steps,
            method="advi",
            random_seed=seed,
            progressbar=False,
            obj_optimizer=pm.adam(learning_rate=lr),
            callbacks=[tracker],
        )
    return tracker


def time_to_posterior(
    problem: Problem, seeds: list[int], steps: int, lr: float, every: int, window: int
) -> dict[str, Any]:
    """Every scheme from every seed, interleaved: steps and seconds to the posterior, curves."""
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SCHEMES}
    for r, seed in enumerate(seeds):
        order = SCHEMES[r % 3 :] + SCHEMES[: r % 3]
        for scheme in order:
            tracker = fit_to_posterior(problem, scheme, seed, steps, lr, every)
            step, seconds = tracker.reached(window)
            thin = slice(None, None, max(1, len(tracker.steps) // CURVE_POINTS))
            runs[scheme].append(
                {
                    "seed": seed,
                    "step": step,
                    "seconds": seconds,
                    "us_per_step": 1e6 * tracker.seconds[-1] / (tracker.steps[-1] - 1),
                    # the noise floor: the median distance over the last fifth of the fit
                    "final_distance": float(
                        np.median(tracker.distance[-len(tracker.steps) // 5 :])
                    ),
                    "steps": tracker.steps[thin],
                    "distance": [float(f"{d:.4g}") for d in tracker.distance[thin]],
                }
            )
    out: dict[str, Any] = {"lr": lr, "steps": steps, "every": every, "window": window}
    for scheme, fits in runs.items():

        def median(key: str, fits: list[dict[str, Any]] = fits) -> float | None:
            values = [f[key] for f in fits]
            return None if None in values else float(np.median(values))

        out[scheme] = {
            "fits": fits,
            "reached": sum(f["step"] is not None for f in fits),
            "median_step": median("step"),
            "median_seconds": median("seconds"),
            "median_us_per_step": median("us_per_step"),
            "median_final_distance": median("final_distance"),
        }
    return out


# --- the run -------------------------------------------------------------------------------


def measure(problem: Problem, args: argparse.Namespace, draws: int, lr: float) -> dict[str, Any]:
    """All three measurements of one model, every scheme."""
    start = time.perf_counter()
    data = {s: data_term_gradients(problem, s, draws, args.seed) for s in SCHEMES}
    elbo = {s: elbo_gradients(problem, s, draws, args.seed) for s in SCHEMES}
    fits = time_to_posterior(
        problem, list(range(args.fits)), args.steps[problem.name], lr, args.every, args.window
    )
    return {
        "rows": problem.n,
        "batch": problem.batch,
        "dims": int(problem.per_row_gradients().shape[1]),
        "draws": draws,
        "data_term": summarise_data_term(problem, data),
        "elbo": summarise_elbo(problem, elbo),
        "fit": fits,
        "seconds": time.perf_counter() - start,
    }


def _fmt(value: float | None, digits: str = ".3g") -> str:
    return "never" if value is None else format(value, digits)


def tables(results: dict[str, Any]) -> str:
    """The markdown tables of a run."""
    lines = [
        "| model | scheme | data-term tr Var | theory | ratio to w.r. | epoch-avg tr Var "
        "| ELBO tr Var | ratio to w.r. | ELBO epoch-avg tr Var | steps to posterior "
        "| seconds | µs/step | reached | final distance |",
        "|---" * 14 + "|",
    ]
    for name, r in results["models"].items():
        for s in SCHEMES:
            d, e, f = r["data_term"][s], r["elbo"][s], r["fit"][s]
            lines.append(
                f"| {name} | {s} | {d['trace']:.4g} | {d['theory']:.4g} | {d['ratio']:.3f} "
                f"| {d['epoch_average_trace']:.3g} | {e['trace']:.4g} | {e['ratio']:.3f} "
                f"| {e['epoch_average_trace']:.3g} | {_fmt(f['median_step'], '.0f')} "
                f"| {_fmt(f['median_seconds'], '.2f')} | {_fmt(f['median_us_per_step'], '.0f')} "
                f"| {f['reached']}/{len(f['fits'])} | {_fmt(f['median_final_distance'], '.2f')} |"
            )
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Left: per-step gradient variance per scheme, relative to with-replacement (the data
    term with 2 standard errors and (N-B)/(N-1) marked; the ELBO gradient); then, per model,
    the distance to the exact posterior against the step, median over the seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results["models"])
    fig, axes = plt.subplots(1, 1 + len(models), figsize=(5.5 + 4.5 * len(models), 4.2))
    bars = [(m, part) for m in models for part in ("data_term", "elbo")]
    width = 0.8 / len(SCHEMES)
    low = 1.0
    for k, scheme in enumerate(SCHEMES):
        rows = [results["models"][m][part] for m, part in bars]
        heights = np.array([r[scheme]["ratio"] for r in rows])
        errors = [2 * r[scheme].get("se", 0) / r["with_replacement"]["trace"] for r in rows]
        xs = np.arange(len(bars)) + (k - 1) * width
        axes[0].bar(xs, heights, width, yerr=errors, label=scheme, color=COLORS[scheme])
        low = min(low, heights.min())
    for x, (m, part) in enumerate(bars):
        if part == "data_term":
            fpc = results["models"][m]["data_term"]["fpc"]
            axes[0].plot([x - 0.45, x + 0.45], [fpc, fpc], color="k", lw=1.5)
    axes[0].set_xticks(np.arange(len(bars)))
    labels = [f"{m}\n{'data term' if p == 'data_term' else 'ELBO'}" for m, p in bars]
    axes[0].set_xticklabels(labels)
    axes[0].set(ylabel="tr Var(gradient) / with_replacement's", ylim=(low - 0.05, 1.07))
    axes[0].set_title("per-step gradient variance (black: (N-B)/(N-1))", fontsize=10)
    axes[0].legend(fontsize=7, loc="upper center", ncol=3)
    for ax, m in zip(axes[1:], models, strict=True):
        fit = results["models"][m]["fit"]
        for scheme in SCHEMES:
            curves = [np.array(f["distance"]) for f in fit[scheme]["fits"]]
            steps = np.array(fit[scheme]["fits"][0]["steps"])
            ax.plot(steps, np.median(curves, axis=0), color=COLORS[scheme], label=scheme, lw=1)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set(xlabel="ADVI step", ylabel="distance to the exact posterior", yscale="log")
        ax.set_title(f"{m}: median of {len(curves)} seeds (Adam, lr {fit['lr']})", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--quick`` swaps in reduced sizes (for those not given)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conjugate-rows", type=int, default=1000)
    parser.add_argument("--conjugate-batch", type=int, default=100)
    parser.add_argument("--seeds-shape", default="40000x100", help="ROWSxCOLS")
    parser.add_argument("--seeds-batch", type=int, default=500)
    parser.add_argument("--draws", type=int, default=20000, help="gradient draws, conjugate")
    parser.add_argument("--seeds-draws", type=int, default=4000, help="gradient draws, seeds")
    parser.add_argument("--fits", type=int, default=7, help="random seeds per scheme")
    parser.add_argument("--conjugate-steps", type=int, default=10000)
    parser.add_argument("--seeds-steps", type=int, default=6000)
    parser.add_argument("--conjugate-lr", type=float, default=0.01)
    parser.add_argument("--seeds-lr", type=float, default=0.01)
    parser.add_argument("--every", type=int, default=10, help="steps between checks")
    parser.add_argument("--window", type=int, default=200, help="steps to stay within")
    parser.add_argument("--seed", type=int, default=1, help="for the gradient draws")
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "gradient_noise.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "gradient_noise.png")
    parser.add_argument("--quick", action="store_true", help="reduced sizes, for a smoke test")
    parser.add_argument("--replot", type=Path, help="only redraw the plot from this JSON")
    args = parser.parse_args(argv)
    if args.quick:  # reduced defaults; options given explicitly still win
        parser.set_defaults(seeds_shape="4000x10", seeds_batch=100, draws=400, seeds_draws=200)
        parser.set_defaults(fits=2, conjugate_steps=5000, seeds_steps=2000, seeds_lr=0.03)
        args = parser.parse_args(argv)
    args.steps = {"conjugate": args.conjugate_steps, "seeds": args.seeds_steps}
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure both models, print the tables, write the JSON and the plot."""
    args = parse(argv)
    if args.replot:
        results = json.loads(args.replot.read_text())
        print(tables(results))
        plot(results, args.plot)
        return dict(results)
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    start = time.perf_counter()
    rows, cols = (int(v) for v in args.seeds_shape.lower().split("x"))
    problems: list[tuple[Problem, int, float]] = [
        (
            conjugate_problem(args.conjugate_rows, args.conjugate_batch),
            args.draws,
            args.conjugate_lr,
        ),
        (seeds_problem(rows, cols, args.seeds_batch), args.seeds_draws, args.seeds_lr),
    ]
    import pymc as pm

    logging.getLogger("pymc").setLevel(logging.WARNING)  # "Finished [100%]" after every fit
    results: dict[str, Any] = {
        "stack": {"python": sys.version.split()[0], "pymc": pm.__version__},
        "options": {k: str(v) for k, v in vars(args).items()},
        "models": {p.name: measure(p, args, draws, lr) for p, draws, lr in problems},
    }
    results["seconds"] = time.perf_counter() - start
    print(tables(results))
    print(f"\n{results['stack']}, {results['seconds']:.0f} s")
    args.json.write_text(json.dumps(results))
    plot(results, args.plot)
    print(f"json: {args.json}\nplot: {args.plot}")
    return results


if __name__ == "__main__":
    main()
