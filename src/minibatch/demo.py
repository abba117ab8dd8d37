"""Demo: full-data ADVI, minibatch ADVI at a fixed step, and ``mb.fit``, on the seeds' model.

Run ``python -m minibatch.demo``: prints a table (steps, seconds, steps per second, speed-up,
and the errors against the exact answer, in posterior sds) and writes a PNG with the loss curves.
The model is the seeds' 40000 x 100 example: ``mu ~ N(0, 1e5)``, ``sd ~ HalfNormal(1)`` and a
``Normal(mu, sd)`` likelihood per column.  At this size the posterior of ``(mu, log sd)`` is
Gaussian to well under 0.01 posterior sd, so its Laplace approximation (:func:`reference`) is
the exact answer a fit should reach.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
    mean_errors: np.ndarray  # |fitted - exact| / posterior sd, per parameter
    sd_ratios: np.ndarray  # fitted sd / exact mean-field sd, per parameter
    hist: np.ndarray

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds

    @property
    def max_error(self) -> float:
        return float(self.mean_errors.max())


def make_data(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Uniform columns, scaled by 1..9 and shifted by 0..10, as in the seeds' notebook."""
    rng = np.random.default_rng(seed)
    data = rng.random((rows, cols))
    data *= rng.integers(1, 10, size=cols)
    data += rng.random(cols) * 10
    return data


def reference(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact posterior mode and sds of ``[mu, log sd]`` (Laplace, by Newton's method).

    The unconstrained log density of one column is ``N(mu; 0, 1e5) + HalfNormal(e^t; 1) + t +
    sum_i N(y_i; mu, e^t)`` (``t = log sd``, ``+ t`` the Jacobian); at its mode the Hessian is
    diagonal, so the posterior sds equal the mean-field optimum's.

    >>> data = make_data(20_000, 2)
    >>> mean, sd = reference(data)
    >>> bool(np.allclose(mean[:2], data.mean(0), atol=1e-6)), bool(np.all(sd[:2] < 0.05))
    (True, True)
    """
    n = len(data)
    mean, ss = data.mean(0), ((data - data.mean(0)) ** 2).sum(0)
    mu, t = mean.copy(), np.log(data.std(0))
    for _ in range(50):
        s2 = np.exp(2 * t)
        q = ss + n * (mean - mu) ** 2
        g_mu, g_t = n * (mean - mu) / s2 - mu / 1e10, -n + q / s2 - s2 + 1
        h_mm, h_tt, h_mt = -n / s2 - 1e-10, -2 * q / s2 - 2 * s2, -2 * n * (mean - mu) / s2
        det = h_mm * h_tt - h_mt**2
        mu, t = mu - (h_tt * g_mu - h_mt * g_t) / det, t - (h_mm * g_t - h_mt * g_mu) / det
    s2 = np.exp(2 * t)
    precision = np.concatenate([n / s2 + 1e-10, 2 * ss / s2 + 2 * s2])
    return np.concatenate([mu, t]), 1 / np.sqrt(precision)


def model_of(data: np.ndarray, observed: Any) -> pm.Model:
    cols = data.shape[1]
    with pm.Model() as model:
        mu = pm.Normal("mu", 0, sigma=1e5, shape=cols)
        sd = pm.HalfNormal("sd", shape=cols)
        pm.Normal("lik", mu, sigma=sd, observed=observed, total_size=data.shape)
    return model


def fixed_step(
    label: str, data: np.ndarray, observed: Any, rows: int, steps: int, seed: int
) -> FitResult:
    """ADVI with Adam at a fixed step of 0.05, timed without its compilation.

    PyMC normalises a minibatch loss to one batch, so the loss is divided by the rows it covers
    (the batch, or all rows) to put the fits on one scale.
    """
    with model_of(data, observed):
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
        return _result(label, data, rows, steps, seconds, inference.approx, hist)


def averaged(data: np.ndarray, observed: Any, rows: int, seed: int) -> FitResult:
    """``mb.fit()`` with its defaults: it stops by itself (compilation included in its time)."""
    with model_of(data, observed):
        approx = mb.fit(random_seed=seed, progressbar=False)
    report = approx.report
    label = "mb.fit()" + ("" if report.converged else f" ({report.reason})")
    return _result(label, data, rows, report.steps, report.seconds, approx, approx.hist)


def _result(
    label: str, data: np.ndarray, rows: int, steps: int, seconds: float, approx: Any, hist: Any
) -> FitResult:
    mean, sd = reference(data)
    errors = np.abs(approx.mean.eval() - mean) / sd
    ratios = approx.std.eval() / sd
    return FitResult(label, rows, steps, seconds, errors, ratios, np.asarray(hist) / rows)


def table(results: Sequence[FitResult]) -> str:
    """A plain-text table; the speed-up is relative to the first row; errors in posterior sds."""
    lines = [
        f"{'fit':<25}{'steps':>8}{'seconds':>9}{'steps/s':>9}{'speed-up':>9}"
        f"{'median err':>11}{'max err':>9}{'sd ratio':>14}"
    ]
    base = results[0].steps_per_second
    for r in results:
        ratio = f"{r.sd_ratios.min():.2f}-{r.sd_ratios.max():.2f}"
        lines.append(
            f"{r.label:<25}{r.steps:>8}{r.seconds:>9.2f}{r.steps_per_second:>9.0f}"
            f"{r.steps_per_second / base:>8.1f}x{np.median(r.mean_errors):>11.2f}"
            f"{r.max_error:>9.2f}{ratio:>14}"
        )
    return "\n".join(lines)


def plot(results: Sequence[FitResult], path: str) -> None:
    """Loss against steps for each fit, on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.plot(np.arange(1, len(r.hist) + 1), r.hist, label=r.label, lw=0.8)
    ax.set(xlabel="steps", ylabel="loss (-ELBO per data row)", yscale="log", xscale="log")
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
    b = args.batch_size
    results = [
        fixed_step("full data", data, data, args.rows, args.full_steps, args.seed),
        fixed_step(f"mb.Minibatch({b}), Adam", data, batch, b, args.minibatch_steps, args.seed),
        averaged(data, batch, b, args.seed),
    ]
    print(f"ADVI on {args.rows} x {args.cols} data; errors of the means in posterior sds,")
    print("sd ratio: fitted / exact sd (Adam: a fixed step of 0.05; mb.fit: its defaults)")
    print(table(results))
    plot(results, args.plot)
    print(f"loss curves written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
