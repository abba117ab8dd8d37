"""Demo: full-data ADVI against minibatch ADVI on the seeds' 40000 x 100 example.

Run ``python -m minibatch.demo``: prints a table (steps per second, speed-up, the largest error of
the fitted means against the data's column means) and writes a PNG with both loss curves.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymc as pm

import minibatch as mb


@dataclass
class FitResult:
    """What one fit took and produced."""

    label: str
    rows_per_step: int
    steps: int
    seconds: float
    max_abs_error: float
    hist: np.ndarray

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds


def make_data(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Uniform columns, scaled by 1..9 and shifted by 0..10, as in the seeds' notebook."""
    rng = np.random.default_rng(seed)
    data = rng.random((rows, cols))
    data *= rng.integers(1, 10, size=cols)
    data += rng.random(cols) * 10
    return data


def fit(label: str, data: np.ndarray, observed, rows: int, steps: int, seed: int) -> FitResult:  # type: ignore[no-untyped-def]
    """ADVI on ``mu ~ N(0, 1e5)``, ``sd ~ HalfNormal``, ``Normal(mu, sd)`` likelihood.

    PyMC normalises a minibatch loss to one batch, so the loss is divided by the rows it covers
    (the batch, or all rows) to put both fits on one scale.
    """
    cols = data.shape[1]
    with pm.Model():
        mu = pm.Normal("mu", 0, sigma=1e5, shape=cols)
        sd = pm.HalfNormal("sd", shape=cols)
        pm.Normal("lik", mu, sigma=sd, observed=observed, total_size=data.shape)
        inference = pm.ADVI(random_seed=seed)
        step = inference.objective.step_function(
            score=True, obj_optimizer=pm.adam(learning_rate=0.05)
        )
        step()  # compile and warm up outside the timed loop
        hist = np.empty(steps)
        start = time.perf_counter()
        for i in range(steps):
            hist[i] = step()
        seconds = time.perf_counter() - start
        fitted = inference.approx.mean.eval()[:cols]  # mu comes first in the flat vector
    error = float(np.abs(fitted - data.mean(0)).max())
    return FitResult(label, rows, steps, seconds, error, hist / rows)


def table(results: Sequence[FitResult]) -> str:
    """A plain-text table of the results; the speed-up is relative to the first row."""
    base = results[0].steps_per_second
    lines = [
        f"{'fit':<24}{'steps':>8}{'seconds':>10}{'steps/s':>10}{'speed-up':>10}{'max|err|':>10}"
    ]
    for r in results:
        lines.append(
            f"{r.label:<24}{r.steps:>8}{r.seconds:>10.2f}{r.steps_per_second:>10.1f}"
            f"{r.steps_per_second / base:>9.1f}x{r.max_abs_error:>10.3f}"
        )
    return "\n".join(lines)


def plot(results: Sequence[FitResult], path: str) -> None:
    """Loss against wall-clock time for each fit, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        seconds = np.linspace(0, r.seconds, len(r.hist))
        ax.plot(seconds, r.hist, label=f"{r.label} ({r.steps_per_second:.0f} steps/s)")
    ax.set(xlabel="wall-clock seconds", ylabel="loss (-ELBO per data row)", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> list[FitResult]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=40000)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--full-steps", type=int, default=400)
    parser.add_argument("--minibatch-steps", type=int, default=20000)
    parser.add_argument("--plot", default="minibatch-demo.png")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    # pip-installed pytensor warns that it found no BLAS; it uses numpy's, which is fine here.
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    data = make_data(args.rows, args.cols)
    batch = mb.Minibatch(data, batch_size=args.batch_size)
    results = [
        fit("full data", data, data, args.rows, args.full_steps, args.seed),
        fit(
            f"mb.Minibatch({args.batch_size})",
            data,
            batch,
            args.batch_size,
            args.minibatch_steps,
            args.seed,
        ),
    ]
    print(f"ADVI on {args.rows} x {args.cols} data (Adam, learning rate 0.05)")
    print(table(results))
    plot(results, args.plot)
    print(f"loss curves written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
